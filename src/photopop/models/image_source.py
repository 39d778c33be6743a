"""Read access to image stacks by row index (`ImageSource`) and the input normalisation fitted on them.

An `ImageSource` hides where (n, C, H, W) images live (a numpy array, a torch tensor, an h5py dataset, an
`photopop.datasets.image_set.ImageSet` and its calibrated images or 8-bit colour composites) behind
one ``take(rows)``; training, normalisation fitting and prediction all read through it.
`fit_input_normalisation` gives the per-band asinh softening, mean and standard deviation over the
training images only (exact, in float64, chunk by chunk), which `ImageRegressor` stores as buffers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import InputError
from .augment import block_rebin

INPUT_TRANSFORMS = ("linear", "asinh")
PIXEL_KINDS = ("flux", "rgb8")
#: sources smaller than this are read into memory once (random access to HDF5 chunks is slow)
IN_MEMORY_BYTES = 2 * 1024**3


def _take_array(images: Any, idx: np.ndarray) -> np.ndarray:
    """images[idx] as float32 for a numpy array, tensor or HDF5 dataset (which needs increasing indices)."""
    if isinstance(images, np.ndarray):
        return np.asarray(images[idx], dtype=np.float32)
    if isinstance(images, torch.Tensor):
        return images[torch.from_numpy(idx)].float().numpy()
    uniq, inv = np.unique(idx, return_inverse=True)
    if uniq.size and uniq[-1] - uniq[0] + 1 == uniq.size:
        block = images[int(uniq[0]):int(uniq[-1]) + 1]
    else:
        block = images[uniq]
    return np.asarray(block, dtype=np.float32)[inv.ravel()]


@dataclass
class ImageSource:
    """Uniform read access to (n, C, H, W) float32 images by row index, whatever stores them.

    `bands` names the channels (None if unknown); `pixel_kind` is 'flux' (calibrated pixels, e.g.
    nanomaggies) or 'rgb8' (8-bit colour composites scaled to [0, 1], channels reordered to the
    bands' blue-to-red order). Build one with `as_image_source`.
    """

    reader: Callable[[np.ndarray], np.ndarray]
    shape: tuple[int, int, int, int]
    bands: tuple[str, ...] | None = None
    pixel_kind: str = "flux"

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def image_size(self) -> int:
        return self.shape[2]

    def take(self, idx: Any) -> np.ndarray:
        """float32 (k, C, H, W) images of rows `idx` (any order, repeats allowed)."""
        idx = np.asarray(idx, dtype=np.int64).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= self.shape[0]):
            raise InputError(f"image index out of range for {self.shape[0]} images")
        if idx.size == 0:
            return np.empty((0, *self.shape[1:]), dtype=np.float32)
        return self.reader(idx)

    def rebinned(self, pixels: int) -> "ImageSource":
        """A view of these images block-averaged to pixels x pixels (`augment.block_rebin`), on the fly."""
        n, c, h, _ = self.shape
        if pixels == h:
            return self
        block_rebin(np.zeros((1, 1, h, h), np.float32), pixels)  # validates the factor now
        return ImageSource(lambda idx: block_rebin(self.reader(idx), pixels), (n, c, pixels, pixels),
                           self.bands, self.pixel_kind)

    def in_memory(self, max_bytes: int = IN_MEMORY_BYTES) -> "ImageSource":
        """The same images read once into RAM if they take at most `max_bytes`, else self."""
        n, c, h, w = self.shape
        if n * c * h * w * 4 > max_bytes:
            return self
        arr = np.empty(self.shape, dtype=np.float32)
        for start in range(0, n, 1024):
            arr[start:start + 1024] = self.reader(np.arange(start, min(start + 1024, n)))
        return ImageSource(lambda idx: arr[idx], self.shape, self.bands, self.pixel_kind)


def as_image_source(obj: Any, bands: Sequence[str] | None = None, use: str = "images") -> ImageSource:
    """An `ImageSource` from an ImageSet (its calibrated `images`, or `rgb` composites with
    ``use='rgb'``), a numpy array / torch tensor / h5py dataset of shape (n, C, H, W), or a source.
    """
    if isinstance(obj, ImageSource):
        return obj
    if hasattr(obj, "images") and callable(obj.images) and hasattr(obj, "image_shape"):  # ImageSet
        n, (h, w) = len(obj), tuple(obj.image_shape)
        if use == "images":
            return ImageSource(lambda idx: np.asarray(obj.images(idx), dtype=np.float32), (n, 3, h, w),
                               tuple(obj.bands), "flux")
        if use == "rgb":
            channels = list(obj.rgb_channels)  # display order (i, r, g): reverse to blue-to-red
            order = [channels.index(b) for b in reversed(channels)]

            def read_rgb(idx: np.ndarray) -> np.ndarray:
                rgb = np.asarray(obj.rgb(idx))
                return np.ascontiguousarray(rgb[..., order].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0

            return ImageSource(read_rgb, (n, 3, h, w), tuple(reversed(channels)), "rgb8")
        raise InputError(f"use must be 'images' or 'rgb', got {use!r}")
    shape = tuple(int(v) for v in getattr(obj, "shape", ()))
    if len(shape) != 4:
        raise InputError(f"images must be an array (n, bands, height, width); got shape {shape}")
    if bands is not None and len(bands) != shape[1]:
        raise InputError(f"{len(bands)} band names for images with {shape[1]} channels")
    return ImageSource(lambda idx: _take_array(obj, idx), shape,  # type: ignore[arg-type]
                       None if bands is None else tuple(str(b) for b in bands), "flux")


def fit_input_normalisation(images: ImageSource, idx: np.ndarray, transform: str = "linear",
                            softening_factor: float = 1.0, softening: Sequence[float] | None = None,
                            chunk: int = 256, n_soft: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-band (softening, mean, std) of the input transform over the training images `idx`.

    Softening (asinh only) = `softening` if given, else factor x NMAD of the pixels of up to
    `n_soft` training images (the noise level where sky dominates; the standard deviation if the
    NMAD is 0).
    Mean and std are exact over all pixels of all `idx` images, accumulated in float64 chunk by
    chunk (bounded memory). Raises InputError for non-finite pixels or constant bands.
    """
    if transform not in INPUT_TRANSFORMS:
        raise InputError(f"unknown input_transform {transform!r}; use one of {list(INPUT_TRANSFORMS)}")
    idx = np.sort(np.asarray(idx, dtype=np.int64))
    if idx.size < 1:
        raise InputError("no training images to fit the input normalisation")
    n_bands = int(images.shape[1])
    soft = np.ones(n_bands)
    if transform == "asinh" and softening:
        soft = np.asarray(softening, dtype=np.float64)
        if soft.shape != (n_bands,) or np.any(~np.isfinite(soft)) or np.any(soft <= 0):
            raise InputError(f"softening must be {n_bands} finite positive values, got {list(softening)}")
    elif transform == "asinh":
        sample = images.take(idx[:: max(1, idx.size // n_soft)][:n_soft]).astype(np.float64)
        pix = sample.transpose(1, 0, 2, 3).reshape(n_bands, -1)
        med = np.median(pix, axis=1, keepdims=True)
        nmad = 1.4826 * np.median(np.abs(pix - med), axis=1)
        soft = softening_factor * np.where(nmad > 0, nmad, pix.std(axis=1))
        if np.any(~np.isfinite(soft)) or np.any(soft <= 0):
            raise InputError(f"cannot fit the asinh softening: bands with constant or non-finite pixels ({soft})")
    mean = np.zeros(n_bands)
    m2 = np.zeros(n_bands)
    count = 0
    for start in range(0, idx.size, chunk):  # Chan et al. pairwise update: no cancellation
        x = images.take(idx[start:start + chunk]).astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise InputError("training images contain NaN/inf pixels; fill or drop them first")
        if transform == "asinh":
            x = np.arcsinh(x / soft[None, :, None, None])
        k = x.shape[0] * x.shape[2] * x.shape[3]
        m_b = x.mean(axis=(0, 2, 3))
        m2_b = np.square(x - m_b[None, :, None, None]).sum(axis=(0, 2, 3))
        delta = m_b - mean
        tot = count + k
        mean = mean + delta * (k / tot)
        m2 = m2 + m2_b + delta**2 * (count * k / tot)
        count = tot
    std = np.sqrt(m2 / count)
    if np.any(std <= 0):
        raise InputError(f"band(s) {[int(i) for i in np.flatnonzero(std <= 0)]} are constant in the training images")
    return soft, mean, std

