"""Image transforms for the image regressor: the dihedral group D4, small shifts, TTA, rebinning.

Galaxies beyond the local Universe are seen at random orientation, so a galaxy's properties do not
change under the eight symmetries of the square pixel grid (Wu & Boada 2019, App. A2): the
dihedral group D4 = {R^r F^f : r = 0..3, f = 0, 1}, with R a rotation by 90 degrees
(counter-clockwise in array display) and F a left-right flip. Element ``k`` (0..7) is
``r = k % 4, f = k // 4``, applied as ``rot90(flip^f(x), r)``. Rotations invert as R^-r; every
reflection (f = 1) is its own inverse.

All functions act on the last two axes of (..., H, W) tensors and work on whole batches at once
(no Python loop over images). Training augmentation draws one D4 element and one integer shift
per image; test-time augmentation (TTA) averages a model over all eight D4 images of each input.

`block_rebin` lowers the resolution of images by averaging f x f pixel blocks (Wu & Boada Sect.
4.4): the mean surface brightness of every block is kept, so the total flux (mean x area) is
conserved exactly.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..errors import InputError

#: number of elements of the dihedral group of the square
N_D4 = 8
SHIFT_MODES = ("reflect", "replicate", "zeros", "roll")


def _check_k(k: int) -> int:
    if int(k) != k or not 0 <= k < N_D4:
        raise InputError(f"D4 element index must be an integer 0..7, got {k}")
    return int(k)


def _check_square(x: torch.Tensor) -> None:
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise InputError(f"D4 transforms need square images (..., H, H); got shape {tuple(x.shape)}")


def d4_transform(x: torch.Tensor, k: int) -> torch.Tensor:
    """Apply D4 element ``k`` (rotation k % 4 quarter turns after a flip if k >= 4) to (..., H, H)."""
    k = _check_k(k)
    _check_square(x)
    r, f = k % 4, k // 4
    if f:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, r, dims=(-2, -1)) if r else x


def d4_inverse_index(k: int) -> int:
    """Index of the inverse element: R^r -> R^-r; reflections R^r F are involutions."""
    k = _check_k(k)
    return k if k >= 4 else (-k) % 4


def d4_inverse(x: torch.Tensor, k: int) -> torch.Tensor:
    """Undo `d4_transform(., k)`."""
    return d4_transform(x, d4_inverse_index(k))


def d4_stack(x: torch.Tensor) -> torch.Tensor:
    """All eight D4 images of a batch (N, C, H, H), stacked element-major: (8 N, C, H, H)."""
    return torch.cat([d4_transform(x, k) for k in range(N_D4)], dim=0)


def random_d4(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply an independent, uniformly drawn D4 element to each image of a batch (N, C, H, H)."""
    _check_square(x)
    k = torch.randint(0, N_D4, (x.shape[0],), generator=generator, device="cpu").to(x.device)
    out = torch.empty_like(x)
    for j in range(N_D4):  # eight vectorised groups, not one call per image
        sel = k == j
        if bool(sel.any()):
            out[sel] = d4_transform(x[sel], j)
    return out


def shift_pixels(image_size: int, fraction: float) -> int:
    """Largest shift in pixels for images of side `image_size`: round(fraction * size), 0 below 1 px."""
    if fraction < 0:
        raise InputError(f"shift fraction must be >= 0, got {fraction}")
    return int(np.floor(fraction * image_size + 0.5))


def shift_images(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, max_shift: int,
                 mode: str = "reflect") -> torch.Tensor:
    """Translate every image of (N, C, H, W) by its own integer (dy[n], dx[n]) pixels, |d| <= max_shift.

    Positive shifts move the content down/right. ``mode`` fills the uncovered border: 'reflect'
    (mirror, the default: no artificial edge), 'replicate', 'zeros', or 'roll' (periodic, a pure
    permutation of pixels). One gather for the whole batch.
    """
    if mode not in SHIFT_MODES:
        raise InputError(f"unknown shift mode {mode!r}; use one of {list(SHIFT_MODES)}")
    n, c, h, w = x.shape
    s = int(max_shift)
    if s == 0:
        return x
    if mode != "roll" and s >= min(h, w):
        raise InputError(f"shift of {s} px is too large for {h}x{w} images")
    dy = dy.to(device=x.device, dtype=torch.long).view(n, 1)
    dx = dx.to(device=x.device, dtype=torch.long).view(n, 1)
    if torch.any(dy.abs() > s) or torch.any(dx.abs() > s):
        raise InputError(f"shifts must lie within +-{s} pixels")
    ar_h = torch.arange(h, device=x.device).view(1, h)
    ar_w = torch.arange(w, device=x.device).view(1, w)
    if mode == "roll":
        rows, cols, src = (ar_h - dy) % h, (ar_w - dx) % w, x
    else:
        pad_mode = {"reflect": "reflect", "replicate": "replicate", "zeros": "constant"}[mode]
        src = torch.nn.functional.pad(x, (s, s, s, s), mode=pad_mode)
        rows, cols = ar_h + s - dy, ar_w + s - dx
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    out = src[batch, :, rows.view(n, h, 1), cols.view(n, 1, w)]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None,
                 mode: str = "reflect") -> torch.Tensor:
    """Shift each image by a uniform random integer offset in [-max_shift, max_shift] on both axes."""
    if max_shift <= 0:
        return x
    n = x.shape[0]
    d = torch.randint(-max_shift, max_shift + 1, (2, n), generator=generator, device="cpu")
    return shift_images(x, d[0], d[1], max_shift, mode)


def augment_batch(x: torch.Tensor, max_shift: int = 0, generator: torch.Generator | None = None,
                  d4: bool = True, shift_mode: str = "reflect") -> torch.Tensor:
    """Training augmentation: a random D4 element and a random shift of up to `max_shift` px per image."""
    if d4:
        x = random_d4(x, generator)
    return random_shift(x, max_shift, generator, shift_mode)


def tta_mean(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Test-time augmentation: the mean of ``fn`` over the eight D4 images of each input.

    ``fn`` maps (M, C, H, H) to (M, ...); it is called once on the stacked (8 N, C, H, H) batch.
    """
    n = x.shape[0]
    y = fn(d4_stack(x))
    return y.view(N_D4, n, *y.shape[1:]).mean(dim=0)


def block_rebin(images: np.ndarray | torch.Tensor, pixels: int) -> np.ndarray | torch.Tensor:
    """Rebin (..., H, W) images to (..., pixels, pixels) by averaging f x f blocks, f = H / pixels.

    Flux-conserving: every output pixel is the mean of the input pixels it covers, so the image
    total times the pixel area is unchanged. H and W must be equal multiples of `pixels`.
    """
    h, w = images.shape[-2], images.shape[-1]
    if int(pixels) != pixels or pixels < 1:
        raise InputError(f"target size must be a positive integer number of pixels, got {pixels}")
    pixels = int(pixels)
    if h != w:
        raise InputError(f"rebinning needs square images, got {h}x{w}")
    if h % pixels:
        raise InputError(f"cannot rebin {h}x{w} images to {pixels}x{pixels}: {h} is not a multiple of {pixels}")
    f = h // pixels
    if f == 1:
        return images
    shape = (*images.shape[:-2], pixels, f, pixels, f)
    if isinstance(images, torch.Tensor):
        return images.reshape(shape).mean(dim=(-3, -1))
    arr = np.asarray(images)
    out_dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float64
    return arr.reshape(shape).mean(axis=(-3, -1), dtype=np.float64).astype(out_dtype)
