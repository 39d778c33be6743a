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
``pretrained``: 'none', 'imagenet', 'auto' or the path of a torchvision ResNet state dict; see
`photopop.models.pretrained` (ImageNet filters are mapped onto the bands blue to red). Images are read
through `photopop.models.image_source.ImageSource`, which also fits the input normalisation.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..config import from_dict, to_dict
from ..errors import InputError, MismatchError
from .amp import autocast
from .augment import N_D4, d4_stack, tta_mean
from .image_source import INPUT_TRANSFORMS, PIXEL_KINDS, ImageSource, as_image_source
from .pretrained import ARCHS, adapt_first_conv, load_pretrained_state
from .folder import load_weights, read_model_folder, write_model_folder
from .sed_cnn import LOGVAR_MAX, LOGVAR_MIN

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
            state["conv1.weight"] = adapt_first_conv(state["conv1.weight"], n_bands)
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
                with autocast(device, use_amp):
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
             extra_meta: dict[str, Any] | None = None, *, overwrite: bool = False,
             extra_files: dict[str, str] | None = None) -> Path:
        """Write the model folder atomically with `photopop.models.folder.write_model_folder` (kind
        'image-model'; see the module doc) plus any `extra_files` (name -> text); returns its path. An
        existing folder is replaced only if photopop wrote it as an image model with the same settings,
        or with `overwrite`."""
        config = {"architecture": to_dict(self.config), **(extra_config or {})}
        meta = {**self.meta(), **(extra_meta or {})}
        return write_model_folder(path, self.state_dict(), config, self.normalisation(), meta, extra_files,
                                  kind="image-model", overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> "ImageRegressor":
        """Read a model folder written by `save` with `photopop.models.folder.read_model_folder` (never
        downloads anything) and move it to `map_location`."""
        path = Path(path)
        config, _, meta, state = read_model_folder(path)
        if meta.get("input_kind") != "image":
            raise MismatchError(f"{path}: not an image model (input_kind={meta.get('input_kind')!r})")
        if not isinstance(config.get("architecture", {}), dict):
            raise InputError(f"{path / 'config.toml'}: [architecture] must be a table")
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
        load_weights(model, state, path)
        model.pretrained_source = source
        model.set_sigma_scale(meta.get("sigma_scale"))
        model.extra_config = {k: v for k, v in config.items() if k != "architecture"}
        return model.to(map_location).eval()
