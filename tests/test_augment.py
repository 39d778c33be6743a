"""D4 augmentation, shifts, test-time augmentation and flux-conserving rebinning."""

import numpy as np
import pytest
import torch

from photopop.errors import InputError
from photopop.models.augment import (N_D4, augment_batch, block_rebin, d4_inverse, d4_inverse_index, d4_stack,
                                     d4_transform, random_d4, random_shift, shift_images, shift_pixels, tta_mean)

from conftest import U32, float32_forward_bound


def _gamma(k: int) -> float:
    """Higham's gamma_k = k u / (1 - k u): the relative error bound of a float32 sum of k same-sign terms."""
    return k * U32 / (1 - k * U32)


def _img(n=2, c=3, s=5, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, c, s, s)).astype(np.float32))


def test_d4_has_eight_distinct_elements():
    x = _img(1, 1, 4)
    outs = [d4_transform(x, k) for k in range(N_D4)]
    for i in range(N_D4):
        for j in range(i + 1, N_D4):
            assert not torch.equal(outs[i], outs[j]), (i, j)


def test_d4_elements_match_numpy_definitions():
    x = _img(1, 1, 4)
    a = x[0, 0].numpy()
    assert np.array_equal(d4_transform(x, 1)[0, 0].numpy(), np.rot90(a, 1))
    assert np.array_equal(d4_transform(x, 4)[0, 0].numpy(), a[:, ::-1])
    assert np.array_equal(d4_transform(x, 6)[0, 0].numpy(), np.rot90(a[:, ::-1], 2))


def test_d4_is_a_bijection_and_inverses_compose_to_identity():
    x = _img(3, 2, 6)
    for k in range(N_D4):
        y = d4_transform(x, k)
        # a permutation of pixels: same multiset of values in every image/channel
        assert torch.equal(torch.sort(y.flatten(2), dim=-1).values, torch.sort(x.flatten(2), dim=-1).values)
        assert torch.equal(d4_inverse(y, k), x)
        assert torch.equal(d4_transform(y, d4_inverse_index(k)), x)
        assert torch.equal(d4_transform(d4_inverse(x, k), k), x)


def test_d4_group_closure():
    """Composition of any two elements is again one of the eight."""
    x = _img(1, 1, 4)
    images = [d4_transform(x, k) for k in range(N_D4)]
    for a in range(N_D4):
        for b in range(N_D4):
            y = d4_transform(d4_transform(x, a), b)
            assert sum(torch.equal(y, im) for im in images) == 1


def test_d4_rejects_bad_input():
    with pytest.raises(InputError):
        d4_transform(torch.zeros(1, 1, 3, 4), 1)
    with pytest.raises(InputError):
        d4_transform(torch.zeros(1, 1, 3, 3), 8)


def test_random_d4_applies_one_group_element_per_image():
    x = _img(16, 2, 5)
    y = random_d4(x, torch.Generator().manual_seed(1))
    used = set()
    for i in range(16):
        matches = [k for k in range(N_D4) if torch.equal(y[i], d4_transform(x[i:i + 1], k)[0])]
        assert matches
        used.add(matches[0])
    assert len(used) > 2  # really random, not a fixed element


def _symmetric_img(n=2, c=3, s=6, seed=0):
    """Images exactly (bitwise) invariant under D4: a pixel's value depends only on its orbit, keyed by
    (min, max) of its two distances from the centre."""
    table = _img(n, c, s, seed)
    d = np.abs(2 * np.arange(s) - (s - 1)) // 2
    lo, hi = np.minimum.outer(d, d), np.maximum.outer(d, d)
    return table[:, :, torch.from_numpy(lo), torch.from_numpy(hi)].contiguous()


def test_tta_of_rotation_invariant_input_equals_plain_prediction():
    """A D4-symmetric image gives the same TTA mean as a single forward pass, for any model."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    base = _img(2, 3, 6)
    sym = _symmetric_img(2, 3, 6)
    for k in range(N_D4):
        assert torch.equal(d4_transform(sym, k), sym)
    with torch.no_grad():
        plain = net(sym)
        tta = tta_mean(net, sym)
        # a batch of 8 N vs N rows: two float32 evaluations, each within the forward-error bound, then the
        # float32 mean of 8 outputs (gamma_8 of their magnitude). Bound 7e-5-1e-4 here, measured 3e-8; the
        # outputs themselves are 0.1-0.3.
        tol = 2 * float32_forward_bound(net, sym.numpy()) + _gamma(N_D4) * plain.abs().numpy()
        assert np.all(np.abs((tta - plain).numpy()) <= tol)
        # and TTA of a non-symmetric input is the mean over the eight transformed inputs
        views = [d4_transform(base, k) for k in range(N_D4)]
        manual = torch.stack([net(v) for v in views]).mean(0)
        tol = np.mean([2 * float32_forward_bound(net, v.numpy()) for v in views], axis=0)
        assert np.all(np.abs((tta_mean(net, base) - manual).numpy()) <= tol)


def test_d4_stack_order():
    x = _img(3, 1, 4)
    st = d4_stack(x)
    assert st.shape == (24, 1, 4, 4)
    assert torch.equal(st[3 * 5:3 * 6], d4_transform(x, 5))


def test_shift_moves_content_and_roll_is_a_permutation():
    x = torch.zeros(2, 1, 7, 7)
    x[:, :, 3, 3] = 1.0
    y = shift_images(x, torch.tensor([1, -2]), torch.tensor([2, 0]), 2, mode="zeros")
    assert y[0, 0, 4, 5] == 1 and y[0].sum() == 1
    assert y[1, 0, 1, 3] == 1 and y[1].sum() == 1
    z = _img(4, 3, 6)
    r = shift_images(z, torch.tensor([1, -1, 2, 0]), torch.tensor([0, 2, -2, 1]), 2, mode="roll")
    assert torch.allclose(r[0], torch.roll(z[0], shifts=(1, 0), dims=(-2, -1)))
    assert torch.allclose(r[2], torch.roll(z[2], shifts=(2, -2), dims=(-2, -1)))
    back = shift_images(r, torch.tensor([-1, 1, -2, 0]), torch.tensor([0, -2, 2, -1]), 2, mode="roll")
    assert torch.equal(back, z)


def test_shift_reflect_has_no_zero_border_and_bounds_are_checked():
    z = torch.ones(3, 2, 8, 8)
    y = random_shift(z, 2, torch.Generator().manual_seed(0), mode="reflect")
    assert torch.equal(y, z)
    with pytest.raises(InputError):
        shift_images(z, torch.tensor([3, 0, 0]), torch.tensor([0, 0, 0]), 2)
    assert shift_pixels(128, 0.03) == 4 and shift_pixels(32, 0.03) == 1 and shift_pixels(16, 0.03) == 0


def test_augment_batch_seeded():
    x = _img(8, 3, 8)
    a = augment_batch(x, 1, torch.Generator().manual_seed(3))
    b = augment_batch(x, 1, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape


def test_block_rebin_conserves_flux_and_averages_blocks():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
    for p in (8, 4, 2, 1):
        y = block_rebin(x, p)
        f = 8 // p
        assert y.shape == (2, 3, p, p)
        # float32 block means (f^2 terms) summed over p^2 blocks vs the float64 total: gamma_(f^2 + p^2 + 2)
        exact = x.astype(np.float64).sum(axis=(-2, -1))
        bound = _gamma(f * f + p * p + 2) * np.abs(x).astype(np.float64).sum(axis=(-2, -1))
        assert np.all(np.abs(y.sum(axis=(-2, -1), dtype=np.float64) * f * f - exact) <= bound)
    y = block_rebin(x, 4)
    assert np.isclose(y[1, 2, 1, 3], x[1, 2, 2:4, 6:8].mean())
    t = block_rebin(torch.from_numpy(x), 2)
    # two float32 means of 16 terms, each within gamma_17 of the exact block mean of |x|
    bound = 2 * _gamma(17) * block_rebin(np.abs(x).astype(np.float64), 2)
    assert np.all(np.abs(t.numpy() - block_rebin(x, 2)) <= bound)
    with pytest.raises(InputError):
        block_rebin(x, 3)
