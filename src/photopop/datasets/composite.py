"""8-bit irg colour composites of g, r, i images: the one Lupton et al. (2004) asinh RGB of photopop.

`lupton_rgb` turns calibrated (n, 3, H, W) g, r, i images (nanomaggies per pixel) into uint8 (n, H, W, 3)
composites with channels (R, G, B) = (i, r, g), as the SDSS ImgCutout service makes its JPEGs, through
astropy's `make_lupton_rgb` (the field's implementation: asinh stretch of the summed intensity, colours
preserved). `jpeg_roundtrip` passes composites through JPEG at a given quality, so that a mock carries
the same compression artefacts as real cutouts. The mock survey (`photopop.simulate`) writes these
composites into an image set's ``rgb`` dataset, and the reports draw them.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

#: default settings of the composite (the mock survey's `rgb_q`, `rgb_stretch`, `rgb_scales`)
DEFAULT_Q = 8.0
DEFAULT_STRETCH = 0.4
DEFAULT_SCALES = (1.0, 1.3, 2.2)


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """uint8 (n, H, W, 3) composites encoded as JPEG at `quality` (1-95, PIL) and decoded again (in place)."""
    import io

    from PIL import Image

    for k in range(rgb.shape[0]):
        buf = io.BytesIO()
        Image.fromarray(rgb[k]).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        rgb[k] = np.asarray(Image.open(buf).convert("RGB"))
    return rgb


def lupton_rgb(images: np.ndarray, q: float = DEFAULT_Q, stretch: float = DEFAULT_STRETCH,
               scales: tuple[float, float, float] = DEFAULT_SCALES, jpeg_quality: int = 0) -> np.ndarray:
    """irg colour composites (uint8 (n, H, W, 3)) of (n, 3, H, W) g, r, i images in nanomaggies.

    astropy's make_lupton_rgb (Lupton et al. 2004 asinh stretch of the summed intensity, colours preserved)
    with R <- i * scales[0], G <- r * scales[1], B <- g * scales[2]; `stretch` is in the images' units.
    Pixel (y, x) of the composite is pixel (y, x) of the input (row 0 = top). `jpeg_quality` > 0
    round-trips through JPEG (`jpeg_roundtrip`).
    """
    from astropy.visualization import make_lupton_rgb

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"expected (n, 3, H, W) g, r, i images for a colour composite, got shape {images.shape}")
    out = np.empty((images.shape[0], images.shape[2], images.shape[3], 3), dtype=np.uint8)
    for k in range(images.shape[0]):
        g, r, i = images[k]
        with np.errstate(invalid="ignore", divide="ignore"):  # astropy divides 0/0 where intensity is 0
            rgb = make_lupton_rgb(i * scales[0], r * scales[1], g * scales[2], stretch=stretch, Q=q)
        out[k] = rgb
    if jpeg_quality > 0:
        jpeg_roundtrip(out, jpeg_quality)
    return out


__all__ = ["DEFAULT_Q", "DEFAULT_SCALES", "DEFAULT_STRETCH", "jpeg_roundtrip", "lupton_rgb"]
