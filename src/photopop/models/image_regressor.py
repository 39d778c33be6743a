"""`ImageRegressor`: a torchvision ResNet with a fastai-style regression head (Wu & Boada 2019).

Architecture
------------
Body: ResNet-18, -34 (the paper's) or -50 without its pooling and classifier. Head, as fastai's
``create_head``: AdaptiveConcatPool (max and average pooling side by side) -> BatchNorm ->
Dropout(0.25) -> Linear(2 nf, 512) -> ReLU -> BatchNorm -> Dropout(0.5) -> Linear(512, n_targets),
with nf = 512 (ResNet-18/34) or 2048 (ResNet-50).

Layer groups (for frozen training and discriminative learning rates): 0 = stem + layer1 + layer2,
1 = layer3 + layer4, 2 = head.

Pretrained weights
------------------
``pretrained``: 'none' (random initialisation), 'imagenet' (torchvision's ImageNet weights: read
from the torch hub cache, else downloaded with a short timeout; failure is an error), 'auto' (as
'imagenet' but falls back to random initialisation with a warning) or the path of a torchvision
ResNet state dict. ImageNet filters expect RGB; photopop's bands run from blue to red (g, r, i), so
the first convolution's input channels are reversed: band 0 <- B, band 1 <- G, band 2 <- R (the
paper's *irg* colour composite). For other band counts the RGB filters are averaged over colour
and replicated (scaled by 3 / n_bands).

Normalisation
-------------
The model stores its input transformation as buffers, so a saved model applies exactly what it was
trained with: per band, optional asinh stretch x -> asinh(x / b) (b = softening, an image-unit
scale fitted on training images: `softening_factor` x the band's pixel NMAD, or given explicitly as
`softening`, e.g. the value of the native images for their block-averaged versions: block averaging
keeps surface brightness, so the same b keeps the same stretch), then (x - mean) /
std with mean and std over all training pixels. Targets are standardised likewise; `forward`
returns standardised targets, `predict` physical ones.

Model folder
------------
``model.pt`` (state dict incl. normalisation buffers), ``config.toml`` (``[architecture]``
= `ImageModelConfig`, plus any extra sections such as ``[train]``), ``normalisation.json``
(input per band, target per name), ``meta.json`` (``bands``, ``image_size``, ``targets``,
``input_kind`` = "image", ``pixel_kind`` ('flux' calibrated images or 'rgb8' colour composites),
``pretrained_source``, ``photopop_version``). Prediction refuses images whose bands, pixel kind or
size differ from the model's with `MismatchError`.

Uncertainties
-------------
A model built with ``loss='gaussian_nll'`` (heteroscedastic) has a head with 2 n_targets outputs:
standardised means, then log-variances (clamped to [LOGVAR_MIN, LOGVAR_MAX] of
`photopop.models.sed_cnn`, as the SED networks). ``meta.json`` records ``loss`` ('rmse' when
absent: older folders) and optionally ``sigma_scale`` {target: factor} from
`photopop.evaluation.calibration.fit_sigma_scale`. `predict_with_sigma` returns (mu, sigma) in label
units; with TTA the eight D4 views are combined as a Gaussian mixture (`mixture_moments`):
mu = mean of view means, sigma^2 = mean of view variances + variance of view means.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import tomllib
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..config import from_dict, to_dict
from ..errors import InputError, MismatchError
from ..io import dumps_json, torch_save
from ..outputs import replace_output
from .augment import N_D4, block_rebin, d4_stack, tta_mean
from .folder_checks import read_meta, verify_checksums, write_checksums
from .sed_cnn import LOGVAR_MAX, LOGVAR_MIN

ARCHS = ("resnet18", "resnet34", "resnet50")
INPUT_TRANSFORMS = ("linear", "asinh")
MODEL_FILES = ("model.pt", "config.toml", "normalisation.json", "meta.json")
#: training losses: 'rmse' (the paper: one output per target) or 'gaussian_nll' (mean and log-variance)
IMAGE_LOSSES = ("rmse", "gaussian_nll")


def mixture_moments(mus: Any, sigmas: Any, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of an equal-weight mixture of Gaussians along `axis`.

    mu = mean_i mu_i, sigma^2 = mean_i sigma_i^2 + var_i mu_i (ddof 0): the aleatoric part plus the
    spread of the components (D4 views under TTA, or the members of a seed ensemble).
    """
    mus = np.asarray(mus, dtype=np.float64)
    sigmas = np.asarray(sigmas, dtype=np.float64)
    if mus.shape != sigmas.shape:
        raise InputError(f"means {mus.shape} and sigmas {sigmas.shape} differ in shape")
    if mus.shape[axis] < 1:
        raise InputError("a mixture needs at least one component")
    return mus.mean(axis=axis), np.sqrt(np.square(sigmas).mean(axis=axis) + mus.var(axis=axis))


@dataclass
class ImageModelConfig:
    """Network settings (saved as ``[architecture]`` in a model folder's config.toml)."""

    arch: str = "resnet34"
    pretrained: str = "auto"  # 'auto' | 'imagenet' | 'none' | path to a torchvision ResNet state dict
    download: bool = True  # may 'auto'/'imagenet' download weights missing from the torch hub cache?
    download_timeout_s: float = 10.0
    hidden: int = 512
    dropout: tuple[float, float] = (0.25, 0.5)
    input_transform: str = "asinh"  # 'asinh' (calibrated fluxes: colours become differences) or 'linear'
    softening_factor: float = 1.0  # asinh softening b = factor x per-band pixel NMAD (training images)
    softening: tuple[float, ...] = ()  # explicit per-band asinh softening (image units); () = fit it

    def validate(self) -> "ImageModelConfig":
        if self.arch not in ARCHS:
            raise InputError(f"unknown architecture {self.arch!r}; use one of {list(ARCHS)}")
        if self.input_transform not in INPUT_TRANSFORMS:
            raise InputError(f"unknown input_transform {self.input_transform!r}; use one of {list(INPUT_TRANSFORMS)}")
        if len(self.dropout) != 2 or not all(0 <= p < 1 for p in self.dropout):
            raise InputError(f"dropout must be two probabilities in [0, 1), got {self.dropout}")
        if self.hidden < 1:
            raise InputError(f"hidden width must be >= 1, got {self.hidden}")
        if self.softening_factor <= 0:
            raise InputError(f"softening_factor must be > 0, got {self.softening_factor}")
        if any(not (np.isfinite(b) and b > 0) for b in self.softening):
            raise InputError(f"softening values must be finite and > 0, got {self.softening}")
        return self


# --------------------------------------------------------------------------------------------
# data access and normalisation fitting
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# pretrained weights
# --------------------------------------------------------------------------------------------
def _weights_enum(arch: str) -> Any:
    from torchvision import models as tvm

    return {"resnet18": tvm.ResNet18_Weights.IMAGENET1K_V1, "resnet34": tvm.ResNet34_Weights.IMAGENET1K_V1,
            "resnet50": tvm.ResNet50_Weights.IMAGENET1K_V2}[arch]


#: URLs whose download failed in this process (not retried: one timeout per run, not one per model)
_FAILED_DOWNLOADS: dict[str, str] = {}


def _download(url: str, dest: Path, timeout: float) -> None:
    """Download `url` to `dest` atomically with a socket timeout; check torchvision's sha256 prefix."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                h.update(chunk)
        prefix = dest.stem.rsplit("-", 1)[-1]
        if not h.hexdigest().startswith(prefix):
            raise OSError(f"checksum of {url} does not start with {prefix}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_pretrained_state(arch: str, pretrained: str, download: bool = True,
                          timeout: float = 10.0) -> tuple[dict[str, torch.Tensor] | None, str]:
    """(state dict or None, description of the source) for a `pretrained` setting; see the module doc."""
    if arch not in ARCHS:
        raise InputError(f"unknown architecture {arch!r}; use one of {list(ARCHS)}")
    choice = str(pretrained)
    if choice == "none":
        return None, "random"
    if choice in ("auto", "imagenet"):
        weights = _weights_enum(arch)
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if not cache.exists():
            try:
                if not download:
                    raise OSError(f"{cache} is not in the torch hub cache and downloads are off")
                if weights.url in _FAILED_DOWNLOADS:
                    raise OSError(f"download failed earlier in this process ({_FAILED_DOWNLOADS[weights.url]})")
                try:
                    _download(weights.url, cache, timeout)
                except Exception as exc:
                    _FAILED_DOWNLOADS[weights.url] = f"{type(exc).__name__}: {exc}"
                    raise
            except Exception as exc:  # no network, timeout, bad checksum
                msg = (f"cannot load ImageNet weights for {arch} ({type(exc).__name__}: {exc}); "
                       f"put {Path(weights.url).name} into {cache.parent} or pass a weights file")
                if choice == "imagenet":
                    raise InputError(msg) from exc
                warnings.warn(msg + "; using RANDOM initialisation instead", RuntimeWarning, stacklevel=2)
                return None, "random (ImageNet weights unavailable)"
        return _read_state(cache), f"imagenet:{cache.name}"
    path = Path(choice)
    if not path.exists():
        raise InputError(f"pretrained weights file {path} not found (or use 'auto', 'imagenet', 'none')")
    return _read_state(path), f"file:{path.name}"


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{path}: cannot read a PyTorch state dict ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"{path}: not a state dict")
    return state


def _adapt_first_conv(weight: torch.Tensor, n_bands: int) -> torch.Tensor:
    """ImageNet RGB filters -> filters for `n_bands` bands ordered blue to red."""
    if weight.shape[1] != 3:
        if weight.shape[1] == n_bands:
            return weight
        raise InputError(f"pretrained first convolution has {weight.shape[1]} input channels, the model {n_bands}")
    if n_bands == 3:
        return weight.flip(1)  # (R, G, B) -> (B, G, R): band 0 (bluest) <- B
    return weight.mean(dim=1, keepdim=True).repeat(1, n_bands, 1, 1) * (3.0 / n_bands)


# --------------------------------------------------------------------------------------------
# network
# --------------------------------------------------------------------------------------------
class AdaptiveConcatPool2d(nn.Module):
    """Concatenation of adaptive max and average pooling to 1x1 (fastai), flattened: (N, 2 C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.amax(x, dim=(-2, -1)), torch.mean(x, dim=(-2, -1))], dim=1)


def make_head(n_features: int, n_out: int, hidden: int = 512,
              dropout: Sequence[float] = (0.25, 0.5)) -> nn.Sequential:
    """fastai's head: ConcatPool -> BN -> Dropout -> Linear -> ReLU -> BN -> Dropout -> Linear."""
    return nn.Sequential(
        AdaptiveConcatPool2d(),
        nn.BatchNorm1d(2 * n_features), nn.Dropout(dropout[0]), nn.Linear(2 * n_features, hidden),
        nn.ReLU(inplace=True),
        nn.BatchNorm1d(hidden), nn.Dropout(dropout[1]), nn.Linear(hidden, n_out),
    )


class ImageRegressor(nn.Module):
    """ResNet body + regression head predicting `targets` from (N, n_bands, S, S) images."""

    def __init__(self, bands: Sequence[str], image_size: int, targets: Sequence[str],
                 config: ImageModelConfig | None = None, pixel_kind: str = "flux", loss: str = "rmse") -> None:
        super().__init__()
        from torchvision import models as tvm

        if pixel_kind not in PIXEL_KINDS:
            raise InputError(f"unknown pixel kind {pixel_kind!r}; use one of {list(PIXEL_KINDS)}")
        if loss not in IMAGE_LOSSES:
            raise InputError(f"unknown loss {loss!r}; use one of {list(IMAGE_LOSSES)}")
        self.pixel_kind = pixel_kind
        self.loss = loss
        self.extra_config: dict[str, Any] = {}

        self.config = (config or ImageModelConfig()).validate()
        self.bands = [str(b) for b in bands]
        self.targets = [str(t) for t in targets]
        if not self.bands or len(set(self.bands)) != len(self.bands):
            raise InputError(f"bands must be distinct and non-empty, got {self.bands}")
        if not self.targets:
            raise InputError("at least one target is needed")
        if int(image_size) != image_size or image_size < 1:
            raise InputError(f"image size must be a positive integer, got {image_size}")
        self.image_size = int(image_size)
        n_bands, n_out = len(self.bands), len(self.targets)

        body = getattr(tvm, self.config.arch)(weights=None)
        state, self.pretrained_source = load_pretrained_state(
            self.config.arch, self.config.pretrained, self.config.download, self.config.download_timeout_s)
        if state is not None:
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            state["conv1.weight"] = _adapt_first_conv(state["conv1.weight"], n_bands)
        if n_bands != 3:
            body.conv1 = nn.Conv2d(n_bands, 64, kernel_size=7, stride=2, padding=3, bias=False)
        if state is not None:
            missing, unexpected = body.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing or unexpected:
                raise InputError(f"pretrained weights do not fit {self.config.arch}: missing {missing[:5]}, "
                                 f"unexpected {unexpected[:5]}")
        n_features = body.fc.in_features
        del body.fc, body.avgpool
        self.body = body
        n_head = 2 * n_out if self.heteroscedastic else n_out
        self.head = make_head(n_features, n_head, self.config.hidden, self.config.dropout)
        self.sigma_scale = np.ones(n_out)  # per-target recalibration of predicted sigmas (1 = none)
        # normalisation (identity until fitted)
        self.register_buffer("in_soft", torch.ones(n_bands))
        self.register_buffer("in_mean", torch.zeros(n_bands))
        self.register_buffer("in_std", torch.ones(n_bands))
        self.register_buffer("out_mean", torch.zeros(n_out))
        self.register_buffer("out_std", torch.ones(n_out))

    @property
    def heteroscedastic(self) -> bool:
        """True if the network predicts a per-object sigma (trained with the Gaussian NLL)."""
        return self.loss == "gaussian_nll"

    def set_sigma_scale(self, scale: dict[str, float] | None) -> None:
        """Store per-target sigma factors (`fit_sigma_scale` on held-out rows); None removes them."""
        if scale is None:
            self.sigma_scale = np.ones(len(self.targets))
            return
        bad = [t for t in scale if t not in self.targets]
        if bad:
            raise InputError(f"sigma_scale names unknown target(s) {bad}; model targets {self.targets}")
        vals = np.array([float(scale.get(t, 1.0)) for t in self.targets])
        if not np.all(np.isfinite(vals) & (vals > 0)):
            raise InputError(f"sigma_scale factors must be finite and > 0, got {dict(scale)}")
        self.sigma_scale = vals

    # -- structure -----------------------------------------------------------------------------
    def layer_groups(self) -> list[list[nn.Module]]:
        """[stem + layer1 + layer2, layer3 + layer4, head] (fastai's three groups for a ResNet)."""
        b = self.body
        return [[b.conv1, b.bn1, b.layer1, b.layer2], [b.layer3, b.layer4], [self.head]]

    def group_parameters(self) -> list[list[nn.Parameter]]:
        """Trainable parameters of each layer group."""
        return [[p for m in group for p in m.parameters()] for group in self.layer_groups()]

    def freeze_body(self, train_bn: bool = True) -> None:
        """Freeze groups 0 and 1 (the ResNet body); batch-norm layers stay trainable if `train_bn`."""
        for group in self.layer_groups()[:2]:
            for m in group:
                for mod in m.modules():
                    is_bn = isinstance(mod, nn.modules.batchnorm._BatchNorm)
                    for p in mod.parameters(recurse=False):
                        p.requires_grad_(bool(is_bn and train_bn))

    def unfreeze(self) -> None:
        """Make every parameter trainable."""
        for p in self.parameters():
            p.requires_grad_(True)

    # -- normalisation ---------------------------------------------------------------------------
    def set_normalisation(self, in_mean: Sequence[float], in_std: Sequence[float], out_mean: Sequence[float],
                          out_std: Sequence[float], in_soft: Sequence[float] | None = None) -> None:
        """Store input (per band) and target standardisation; scales must be positive and finite."""
        vals = {"in_mean": in_mean, "in_std": in_std, "out_mean": out_mean, "out_std": out_std,
                "in_soft": np.ones(len(self.bands)) if in_soft is None else in_soft}
        for name, v in vals.items():
            t = torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=torch.float32)
            buf = getattr(self, name)
            if t.shape != buf.shape:
                raise InputError(f"{name} must have {buf.numel()} values, got {tuple(t.shape)}")
            if not torch.all(torch.isfinite(t)) or (name in ("in_std", "out_std", "in_soft") and torch.any(t <= 0)):
                raise InputError(f"{name} must be finite{' and > 0' if name != 'in_mean' else ''}: {t.tolist()}")
            buf.copy_(t)

    def transform_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Raw images -> the (stretched and) standardised network input."""
        x = x.float()
        if self.config.input_transform == "asinh":
            x = torch.asinh(x / self.in_soft.view(1, -1, 1, 1))
        return (x - self.in_mean.view(1, -1, 1, 1)) / self.in_std.view(1, -1, 1, 1)

    # -- forward ---------------------------------------------------------------------------------
    def features(self, z: torch.Tensor) -> torch.Tensor:
        """ResNet body on standardised input: (N, nf, s, s) feature maps."""
        b = self.body
        z = b.maxpool(b.relu(b.bn1(b.conv1(z))))
        return b.layer4(b.layer3(b.layer2(b.layer1(z))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw images (N, n_bands, S, S) -> standardised targets (N, n_targets); heteroscedastic
        models: (N, 2 n_targets), standardised means then (unclamped) log-variances."""
        return self.head(self.features(self.transform_inputs(x)))

    def to_physical(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised -> physical target values."""
        return z.float() * self.out_std + self.out_mean

    # -- prediction -------------------------------------------------------------------------------
    def check_input(self, source: ImageSource) -> np.ndarray:
        """Channel order mapping `source` onto the model's bands; MismatchError for other bands,
        pixel kind or image size."""
        n_ch, h, w = source.shape[1], source.shape[2], source.shape[3]
        if source.pixel_kind != self.pixel_kind:
            what = "8-bit colour composites" if source.pixel_kind == "rgb8" else "calibrated fluxes"
            raise MismatchError(f"the model was trained on {self.pixel_kind!r} pixels, the input has "
                                f"{source.pixel_kind!r} ({what})")
        if source.bands is not None:
            given = list(source.bands)
            missing = [b for b in self.bands if b not in given]
            extra = [b for b in given if b not in self.bands]
            if missing or extra or len(set(given)) != len(given):
                raise MismatchError(f"image bands {given} differ from the model's {self.bands}"
                                    + (f": missing {missing}" if missing else "")
                                    + (f", extra {extra}" if extra else ""))
            order = np.array([given.index(b) for b in self.bands])
        elif n_ch != len(self.bands):
            raise MismatchError(f"images have {n_ch} bands, the model expects {len(self.bands)} ({self.bands})")
        else:
            order = np.arange(n_ch)
        if (h, w) != (self.image_size, self.image_size):
            raise MismatchError(f"images are {h}x{w} pixels; the model was trained on "
                                f"{self.image_size}x{self.image_size} (rebin or cut them to match)")
        return order

    @torch.no_grad()
    def predict(self, images: Any, bands: Sequence[str] | None = None, tta: bool = True, batch_size: int = 64,
                device: str | torch.device | None = None, amp: bool | None = None,
                indices: Any = None) -> np.ndarray:
        """Physical targets (n, n_targets) for raw images, streamed in batches.

        `images`: an ImageSet, an `ImageSource`, or an array / h5py dataset (n, C, H, W) whose
        channels `bands` names (checked and reordered to the model's; without names the channel
        count must match). `indices` restricts prediction to those rows. `tta` averages the
        prediction over the eight D4 images of each input (Wu & Boada's test-time augmentation).
        """
        k = len(self.targets)

        def means(xb: torch.Tensor) -> torch.Tensor:
            z = (tta_mean(self, xb) if tta else self(xb))[:, :k]
            return self.to_physical(z)

        return self._batched(means, k, images, bands, batch_size, device, amp, indices)

    @torch.no_grad()
    def predict_with_sigma(self, images: Any, bands: Sequence[str] | None = None, tta: bool = True,
                           batch_size: int = 64, device: str | torch.device | None = None,
                           amp: bool | None = None, indices: Any = None, calibrated: bool = True
                           ) -> tuple[np.ndarray, np.ndarray | None]:
        """(mu, sigma), each (n, n_targets) in label units; sigma None for a plain ('rmse') model.

        sigma = exp(log_var / 2) x target scale (log_var clamped as the SED heads), times the stored
        `sigma_scale` unless `calibrated` is False. With `tta` the eight D4 views are combined by
        `mixture_moments` (mean of view variances + variance of view means). Arguments as `predict`.
        """
        if not self.heteroscedastic:
            return self.predict(images, bands, tta, batch_size, device, amp, indices), None
        k = len(self.targets)

        def both(xb: torch.Tensor) -> torch.Tensor:
            n = xb.shape[0]
            views = N_D4 if tta else 1
            z = self(d4_stack(xb) if tta else xb).float().view(views, n, 2 * k).double()
            mu_v = z[..., :k]
            var_v = torch.exp(z[..., k:].clamp(LOGVAR_MIN, LOGVAR_MAX))
            mu = mu_v.mean(dim=0)
            var = var_v.mean(dim=0) + mu_v.var(dim=0, unbiased=False)
            std = self.out_std.double()
            return torch.cat([mu * std + self.out_mean.double(), torch.sqrt(var) * std], dim=1)

        out = self._batched(both, 2 * k, images, bands, batch_size, device, amp, indices)
        sigma = out[:, k:] * (self.sigma_scale if calibrated else 1.0)
        return out[:, :k], sigma

    def _batched(self, fn: Callable[[torch.Tensor], torch.Tensor], width: int, images: Any,
                 bands: Sequence[str] | None, batch_size: int, device: str | torch.device | None,
                 amp: bool | None, indices: Any) -> np.ndarray:
        """Apply `fn` (raw image batch -> (N, width)) to the selected rows in eval mode, batch by batch."""
        source = as_image_source(images, bands)
        order = self.check_input(source)
        rows = np.arange(len(source)) if indices is None else np.asarray(indices, dtype=np.int64).ravel()
        device = torch.device(device) if device is not None else next(self.parameters()).device
        use_amp = (device.type == "cuda") if amp is None else bool(amp)
        was_training = self.training
        self.to(device).eval()
        out = np.empty((rows.size, width), dtype=np.float64)
        try:
            for start in range(0, rows.size, batch_size):
                sl = slice(start, start + batch_size)
                xb = torch.from_numpy(np.ascontiguousarray(source.take(rows[sl])[:, order])).to(device)
                with _autocast(device, use_amp):
                    res = fn(xb)
                out[sl] = res.double().cpu().numpy()
        finally:
            self.train(was_training)
        return out

    # -- folders ------------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {"bands": self.bands, "image_size": self.image_size, "targets": self.targets, "input_kind": "image",
                "pixel_kind": self.pixel_kind, "pretrained_source": self.pretrained_source,
                "loss": self.loss, "photopop_version": __version__,
                **({"sigma_scale": dict(zip(self.targets, self.sigma_scale.tolist()))}
                   if np.any(self.sigma_scale != 1.0) else {})}

    def normalisation(self) -> dict[str, Any]:
        return {"input": {"names": self.bands, "transform": self.config.input_transform,
                          "softening": self.in_soft.tolist(), "mean": self.in_mean.tolist(),
                          "scale": self.in_std.tolist()},
                "target": {"names": self.targets, "mean": self.out_mean.tolist(), "scale": self.out_std.tolist()}}

    def save(self, path: str | Path, extra_config: dict[str, Any] | None = None,
             extra_meta: dict[str, Any] | None = None, *, overwrite: bool = False) -> Path:
        """Write the model folder atomically (see the module doc); returns its path. An existing folder
        is replaced only if photopop wrote it as an image model with the same settings, or with `overwrite`."""
        import tomli_w

        path = Path(path)
        config = {"architecture": to_dict(self.config), **(extra_config or {})}
        meta = {**self.meta(), **(extra_meta or {})}
        with replace_output(path, "image-model", {"config": config, "meta": meta}, overwrite=overwrite) as tmp:
            torch_save({k: v.detach().cpu() for k, v in self.state_dict().items()}, tmp / "model.pt")
            (tmp / "config.toml").write_text(tomli_w.dumps(config))
            (tmp / "normalisation.json").write_text(dumps_json(self.normalisation()) + "\n")
            (tmp / "meta.json").write_text(dumps_json(meta) + "\n")
            write_checksums(tmp)
        return path

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> "ImageRegressor":
        """Read a model folder written by `save` (never downloads anything)."""
        path = Path(path)
        if not path.is_dir():
            raise InputError(f"{path}: no such model folder")
        missing = [n for n in MODEL_FILES if not (path / n).exists()]
        if missing:
            raise InputError(f"{path}: not a complete image model folder, missing {missing}")
        verify_checksums(path, list(MODEL_FILES))
        try:
            config = tomllib.loads((path / "config.toml").read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"{path}/config.toml: cannot read ({exc})") from exc
        meta = read_meta(path)
        if meta.get("input_kind") != "image":
            raise MismatchError(f"{path}: not an image model (input_kind={meta.get('input_kind')!r})")
        arch = from_dict(ImageModelConfig, config.get("architecture", {}))
        source = meta.get("pretrained_source", "")
        arch = dataclasses.replace(arch, pretrained="none")  # the weights come from model.pt
        try:
            model = cls(meta["bands"], int(meta["image_size"]), meta["targets"], arch,
                        pixel_kind=meta.get("pixel_kind", "flux"), loss=meta.get("loss", "rmse"))
        except KeyError as exc:
            raise InputError(f"{path}/meta.json lacks {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path}/meta.json: ill-typed entries ({exc})") from exc
        try:
            state = torch.load(path / "model.pt", map_location=map_location, weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:
            raise InputError(f"{path}/model.pt: cannot load weights ({exc})") from exc
        model.pretrained_source = source
        model.set_sigma_scale(meta.get("sigma_scale"))
        model.extra_config = {k: v for k, v in config.items() if k != "architecture"}
        return model.eval()


class _NullContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def amp_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the GPU supports it, else fp16 (CUDA); bf16 on CPU."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def _autocast(device: torch.device, enabled: bool) -> Any:
    if not enabled:
        return _NullContext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype(device))
