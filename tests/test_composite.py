"""photopop.datasets.composite: the one Lupton RGB of photopop (channel order, shape checks, JPEG)."""

from __future__ import annotations

import numpy as np
import pytest

from photopop.datasets.composite import jpeg_roundtrip, lupton_rgb
from photopop.errors import InputError


def test_channels_follow_irg_order_and_rows_are_kept():
    img = np.zeros((1, 3, 8, 8), np.float32)
    img[0, 2, 1, 5] = 5.0  # i band only, at (y=1, x=5)
    rgb = lupton_rgb(img)
    assert rgb.shape == (1, 8, 8, 3) and rgb.dtype == np.uint8
    assert rgb[0, 1, 5, 0] > 0 and rgb[0, 1, 5, 1] == 0 and rgb[0, 1, 5, 2] == 0  # R <- i only
    assert np.count_nonzero(rgb) == 1  # nothing elsewhere, the pixel is not moved
    img2 = np.zeros_like(img)
    img2[0, 0, 3, 2] = 5.0  # g band -> blue channel
    assert lupton_rgb(img2)[0, 3, 2, 2] > 0 and lupton_rgb(img2)[0, 3, 2, :2].sum() == 0


def test_matches_astropy_make_lupton_rgb():
    from astropy.visualization import make_lupton_rgb

    rng = np.random.default_rng(3)
    img = rng.gamma(2.0, 0.3, (2, 3, 16, 16)).astype(np.float32)
    out = lupton_rgb(img, q=8.0, stretch=0.4, scales=(1.0, 1.3, 2.2))
    for k in range(2):
        ref = make_lupton_rgb(img[k, 2] * 1.0, img[k, 1] * 1.3, img[k, 0] * 2.2, stretch=0.4, Q=8.0)
        np.testing.assert_array_equal(out[k], ref)


def test_bad_shape_is_refused():
    with pytest.raises(InputError, match="g, r, i"):
        lupton_rgb(np.zeros((2, 4, 8, 8)))


def test_jpeg_roundtrip_is_lossy_and_deterministic():
    rng = np.random.default_rng(0)
    img = rng.gamma(2.0, 0.3, (2, 3, 32, 32)).astype(np.float32)
    plain = lupton_rgb(img)
    a = lupton_rgb(img, jpeg_quality=75)
    b = jpeg_roundtrip(plain.copy(), 75)
    np.testing.assert_array_equal(a, b)
    assert a.shape == plain.shape and a.dtype == np.uint8
    assert not np.array_equal(a, plain)  # noise does not survive JPEG unchanged
