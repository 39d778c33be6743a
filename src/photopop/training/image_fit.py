"""Training the image regressor with Wu & Boada's (2019) recipe.

The recipe (Sect. 3 and App. A of the paper, fastai 0.7 defaults where the paper is silent):

1. *Frozen stage* (``freeze_epochs`` = 2): the ResNet body is frozen (its batch-norm layers stay
   trainable, as fastai's ``train_bn``) and the head is trained at ``lr_frozen`` = 0.1.
2. *Unfrozen stage* (the remaining ``epochs - freeze_epochs`` = 8): every layer trains with
   discriminative learning rates ``lrs`` = (1e-3, 1e-2, 1e-1) for the layer groups
   stem+layer1+layer2 / layer3+layer4 / head.

Each stage runs one `torch.optim.lr_scheduler.OneCycleLR` cycle (warm-up to the maximum rate
over ``pct_start`` of the steps, cosine annealing to max/(div_factor x final_div_factor)),
stepped every mini-batch; SGD with momentum (cycled between 0.85 and 0.95 by the scheduler) is
the default optimiser. The loss is the RMSE of the standardised targets (``loss='rmse'``, the
paper), or with ``loss='gaussian_nll'`` the Gaussian negative log-likelihood of a heteroscedastic
head (means and log-variances, `photopop.training.fit.loss_terms`, as the SED networks); the epoch
is then chosen by the validation NLL (standardised units, constant dropped). Training images get a
random D4 element (flips and quarter turns) and a shift of up to ``round(shift_frac x size)``
pixels each; validation runs once per epoch without augmentation, and the weights of the epoch
with the lowest validation loss are kept (no early stopping: the paper trains a fixed 10 epochs).

The recipe is an `ImageStep` of the one training loop (`photopop.training.loop.run_loop`): the step
brings the stages' optimisers and schedules, the data order and the loss; the loop runs the epochs,
keeps the best epoch's weights and writes checkpoints (``checkpoint_path``) from which a killed fit
resumes to the same final weights.

Reproducibility: everything runs inside ``torch.random.fork_rng`` seeded with ``seed`` (weights,
dropout, shuffling, augmentation), so the caller's RNG is untouched and the same config gives the
same numbers on the same device. Mixed precision (``amp``) uses bf16 (or fp16 with gradient
scaling) autocast on CUDA; it is off on CPU by default.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from ..config import to_dict
from ..errors import InputError, MismatchError
from ..models.augment import SHIFT_MODES, augment_batch, shift_pixels
from ..models.image_regressor import IMAGE_LOSSES, ImageModelConfig, ImageRegressor
from ..models.image_source import ImageSource, as_image_source, fit_input_normalisation
from ..validate import positive_int
from .checkpoint import data_fingerprint, settings_fingerprint
from .device import resolve_device
from .fit import loss_terms
from .loop import Callback, TrainStep, run_loop, seeded_run

OPTIMIZERS = ("sgd", "adamw")
AMP_MODES = ("auto", "off", "bf16", "fp16")


@dataclass
class ImageFitConfig:
    """Training settings; the defaults are Wu & Boada's recipe (10 epochs, 2 frozen)."""

    epochs: int = 10
    freeze_epochs: int = 2
    lr_frozen: float = 0.1
    lrs: tuple[float, float, float] = (1e-3, 1e-2, 1e-1)
    optimizer: str = "sgd"  # 'sgd' (momentum) or 'adamw'
    momentum: float = 0.9
    weight_decay: float = 0.0
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    batch_size: int = 128
    augment: bool = True
    shift_frac: float = 0.03  # largest shift = round(shift_frac x image size) pixels
    shift_mode: str = "reflect"
    train_bn: bool = True
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    amp: str = "auto"
    device: str = "auto"
    seed: int = 0
    eval_batch_size: int = 128
    num_threads: int = 0  # torch CPU threads; 0 = torch's default
    loss: str = "rmse"  # 'rmse' (the paper) or 'gaussian_nll' (heteroscedastic: mean and sigma per target)

    def validate(self) -> "ImageFitConfig":
        """Raise InputError for out-of-range settings."""
        if self.epochs < 1 or not 0 <= self.freeze_epochs <= self.epochs:
            raise InputError("need epochs >= 1 and 0 <= freeze_epochs <= epochs; "
                             f"got {self.epochs}, {self.freeze_epochs}")
        if len(self.lrs) != 3 or not all(lr > 0 for lr in self.lrs) or not self.lr_frozen > 0:
            raise InputError("learning rates must be positive (three layer-group rates); "
                             f"got {self.lrs}, {self.lr_frozen}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {self.optimizer!r}; use one of {list(OPTIMIZERS)}")
        if self.amp not in AMP_MODES:
            raise InputError(f"unknown amp mode {self.amp!r}; use one of {list(AMP_MODES)}")
        if self.shift_mode not in SHIFT_MODES:
            raise InputError(f"unknown shift_mode {self.shift_mode!r}; use one of {list(SHIFT_MODES)}")
        if self.batch_size < 2:
            raise InputError(f"batch_size must be >= 2 (batch norm), got {self.batch_size}")
        if self.loss not in IMAGE_LOSSES:
            raise InputError(f"unknown loss {self.loss!r}; use one of {list(IMAGE_LOSSES)}")
        if not 0 < self.pct_start < 1:
            raise InputError(f"pct_start must be in (0, 1), got {self.pct_start}")
        return self


@dataclass
class ImageFitResult:
    """A trained model (best-validation weights), its learning curve and the learning-rate trace."""

    model: ImageRegressor
    history: pd.DataFrame
    best_epoch: int
    best_val_loss: float
    lr_trace: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))  # (steps, 3 groups)
    train_seconds: float = 0.0


def make_optimizer(model: ImageRegressor, config: ImageFitConfig, stage: str, steps: int,
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.OneCycleLR]:
    """Optimiser with one parameter group per layer group and its one-cycle schedule for a stage.

    ``stage='frozen'``: the body is frozen (`ImageRegressor.freeze_body`) and every group peaks at
    ``lr_frozen``; ``'unfrozen'``: everything trains, group g peaks at ``lrs[g]``.
    """
    if stage == "frozen":
        model.freeze_body(config.train_bn)
        max_lr = [config.lr_frozen] * 3
    elif stage == "unfrozen":
        model.unfreeze()
        max_lr = list(config.lrs)
    else:
        raise InputError(f"unknown stage {stage!r}")
    groups = [{"params": [p for p in ps if p.requires_grad]} for ps in model.group_parameters()]
    groups = [g if g["params"] else {"params": [], "lr": 0.0} for g in groups]
    if config.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=max_lr[-1], momentum=config.momentum,
                                                     weight_decay=config.weight_decay)
    else:
        opt = torch.optim.AdamW(groups, lr=max_lr[-1], weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=max_lr, total_steps=max(int(steps), 1), pct_start=config.pct_start,
        div_factor=config.div_factor, final_div_factor=config.final_div_factor, anneal_strategy="cos",
        cycle_momentum=True)
    return opt, sched


def _targets_array(targets: Any, names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    if isinstance(targets, pd.DataFrame):
        names = list(names or targets.columns)
        missing = [c for c in names if c not in targets.columns]
        if missing:
            raise InputError(f"target column(s) {missing} not in the catalogue; columns: {list(targets.columns)}")
        return targets[names].to_numpy(dtype=np.float64), names
    y = np.asarray(targets, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    names = list(names) if names is not None else [f"target{j}" for j in range(y.shape[1])]
    if y.ndim != 2 or y.shape[1] != len(names):
        raise InputError(f"targets must be (n, {len(names)}); got shape {y.shape}")
    return y, names


def _amp_enabled(mode: str, device: torch.device) -> tuple[bool, torch.dtype | None]:
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return False, None
    if mode == "fp16":
        return True, torch.float16
    if mode == "bf16":
        return True, torch.bfloat16
    return True, (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


def _rmse_loss(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """RMSE over every element (the paper's loss), with a tiny floor so the gradient stays finite."""
    return torch.sqrt(torch.mean(torch.square(pred.float() - y)) + 1e-12)


def _nll_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian NLL (constant dropped) of standardised means and clamped log-variances."""
    return loss_terms(out.float(), y, heteroscedastic=True)[1].mean()


def gaussian_nll(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> float:
    """Mean of log(sigma) + (y - mu)^2 / (2 sigma^2) over every element (the NLL without log sqrt(2 pi))."""
    return float(np.mean(np.log(sigma) + 0.5 * np.square((y - mu) / sigma)))


def fit_image_regressor(
    images: Any,
    targets: Any,
    train_idx: Any,
    val_idx: Any,
    target_names: Sequence[str] | None = None,
    bands: Sequence[str] | None = None,
    model_config: ImageModelConfig | None = None,
    config: ImageFitConfig | None = None,
    log: Callable[[str], None] | None = None,
    *,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 1,
    callback: Callback | None = None,
) -> ImageFitResult:
    """Train an `ImageRegressor` on rows `train_idx`, select the epoch on rows `val_idx`.

    `images`: an ImageSet, `ImageSource` or (n, C, H, W) array; `targets`: (n, n_targets) array
    or a DataFrame (with `target_names` as columns), row-aligned with the images. Input and target
    normalisation are fitted on the training rows only. With `checkpoint_path`, a checkpoint is written
    atomically every `checkpoint_every` epochs and at the end, and a compatible one (same settings,
    targets, rows and input normalisation) is resumed: a killed fit ends with the same weights as an
    uninterrupted one (on CPU). `callback(epoch, record)` runs after every epoch, after the checkpoint.
    """
    config = (config or ImageFitConfig()).validate()
    model_config = model_config or ImageModelConfig()
    source = as_image_source(images, bands)
    y, names = _targets_array(targets, target_names)
    if y.shape[0] != len(source):
        raise MismatchError(f"{len(source)} images but {y.shape[0]} target rows")
    tr = np.asarray(train_idx, dtype=np.int64).ravel()
    va = np.asarray(val_idx, dtype=np.int64).ravel()
    if tr.size < 2 or va.size < 1:
        raise InputError(f"need at least 2 training and 1 validation images (got {tr.size}, {va.size})")
    if min(tr.min(), va.min()) < 0 or max(tr.max(), va.max()) >= len(source):
        raise InputError(f"training/validation row indices must lie in 0..{len(source) - 1}")
    if np.intersect1d(tr, va).size:
        raise InputError("training and validation rows overlap")
    for what, rows in (("training", tr), ("validation", va)):
        bad = ~np.all(np.isfinite(y[rows]), axis=1)
        if bad.any():
            raise InputError(f"{int(bad.sum())} {what} row(s) have NaN/inf targets {names}; drop them first")
    positive_int(checkpoint_every, "checkpoint_every")
    device = resolve_device(config.device)
    use_amp, amp_dt = _amp_enabled(config.amp, device)
    say = log or (lambda msg: None)
    band_names = list(source.bands) if source.bands is not None else [f"band{j}" for j in range(source.shape[1])]

    with seeded_run(device, config.seed, config.num_threads):
        t0 = time.perf_counter()
        model = ImageRegressor(band_names, source.image_size, names, model_config, pixel_kind=source.pixel_kind,
                               loss=config.loss)
        soft, mean, std = fit_input_normalisation(source, tr, model_config.input_transform,
                                                  model_config.softening_factor, model_config.softening or None)
        y_mean = y[tr].mean(axis=0)
        y_std = y[tr].std(axis=0)
        y_std = np.where(y_std > 0, y_std, 1.0)
        model.set_normalisation(mean, std, y_mean, y_std, in_soft=soft)
        model.to(device)
        if device.type == "cuda":
            model.to(memory_format=torch.channels_last)
        say(f"image regressor {model_config.arch} ({model.pretrained_source}) on {device}: "
            f"{tr.size} training / {va.size} validation images of {source.image_size}px, targets {names}")
        fingerprint = settings_fingerprint({
            "fit": _train_section(config), "model": to_dict(model_config), "pretrained": model.pretrained_source,
            "images": list(source.shape), "bands": band_names, "pixel_kind": source.pixel_kind,
            "normalisation": [soft.tolist(), mean.tolist(), std.tolist()],
            "data": data_fingerprint(y, tr, va)})
        with ThreadPoolExecutor(max_workers=1) as pool:
            step = ImageStep(model, source, y, y_mean, y_std, names, tr, va, config, device, amp_dt if use_amp else None,
                             pool, say)
            res = run_loop(step, max_epochs=config.epochs, checkpoint_path=checkpoint_path,
                           checkpoint_every=checkpoint_every, fingerprint=fingerprint, callback=callback)
    if res.best_state is None:
        raise InputError("training diverged: the validation loss was never finite (lower the learning rates)")
    model.unfreeze()
    model.eval()
    model.extra_config = {"train": _train_section(config)}
    return ImageFitResult(model, pd.DataFrame(res.history), res.best_epoch, res.best_loss,
                          np.asarray(step.lr_trace, dtype=np.float64), time.perf_counter() - t0)


def stage_of(config: ImageFitConfig, epoch: int) -> str:
    """'frozen' for the first ``freeze_epochs`` epochs (1-based), then 'unfrozen'."""
    return "frozen" if epoch <= config.freeze_epochs else "unfrozen"


class ImageStep(TrainStep):
    """The image trainer's part of the loop: per stage an optimiser and one-cycle schedule
    (`make_optimizer`, stepped every batch), a seeded numpy permutation of the training rows per epoch,
    the next batch read in a background thread while the current one trains, D4 + shift augmentation
    from its own ``torch.Generator``, the RMSE (or Gaussian NLL) loss, and validation without
    augmentation; its state (stage, optimiser, schedule, generators, learning-rate trace) is
    checkpointed."""

    def __init__(self, model: ImageRegressor, source: ImageSource, y: np.ndarray, y_mean: np.ndarray,
                 y_std: np.ndarray,
                 names: list[str], tr: np.ndarray, va: np.ndarray, config: ImageFitConfig, device: torch.device,
                 amp_dtype: torch.dtype | None, pool: ThreadPoolExecutor, say: Callable[[str], None]) -> None:
        self.model, self.source, self.y, self.y_std, self.names = model, source, y, y_std, names
        self.tr, self.va, self.config, self.device, self.amp_dtype = tr, va, config, device, amp_dtype
        self.grad_clip = float(config.grad_clip)
        self.pool, self.say = pool, say
        self.loss_fn = _nll_loss if model.heteroscedastic else _rmse_loss
        self.gen = torch.Generator().manual_seed(config.seed + 1)
        self.rng = np.random.default_rng(config.seed)
        max_shift = shift_pixels(source.image_size, config.shift_frac) if config.augment else 0
        self.max_shift = 0 if source.image_size - 1 <= max_shift else max_shift
        bs = config.batch_size
        self.n_batches = tr.size // bs + (1 if tr.size % bs >= 2 else 0)  # a last batch of one breaks batch norm
        self.yt = torch.from_numpy(((y - y_mean) / y_std).astype(np.float32))
        self.lr_trace: list[list[float]] = []
        self.stage: str | None = None

    def _start_stage(self, stage: str) -> None:
        n_ep = self.config.freeze_epochs if stage == "frozen" else self.config.epochs - self.config.freeze_epochs
        self.optimizer, self.sched = make_optimizer(self.model, self.config, stage, n_ep * self.n_batches)
        self.stage = stage

    def begin_epoch(self, epoch: int) -> None:
        stage = stage_of(self.config, epoch)
        if stage != self.stage:
            self._start_stage(stage)
        self.t_epoch = time.perf_counter()
        self.model.train()
        self.losses: list[float] = []
        self.step0 = len(self.lr_trace)

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        bs, device, cfg = self.config.batch_size, self.device, self.config
        order = self.tr[self.rng.permutation(self.tr.size)]
        batches = [order[i * bs:(i + 1) * bs] for i in range(self.n_batches)]
        fut = self.pool.submit(self.source.take, batches[0])
        for b, rows_b in enumerate(batches):
            xb_np = fut.result()
            if b + 1 < len(batches):
                fut = self.pool.submit(self.source.take, batches[b + 1])
            xb = torch.from_numpy(xb_np).to(device, non_blocking=True)
            if cfg.augment:
                xb = augment_batch(xb, self.max_shift, self.gen, d4=True, shift_mode=cfg.shift_mode)
            if device.type == "cuda":
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, self.yt[torch.from_numpy(rows_b)].to(device, non_blocking=True)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self.loss_fn(self.model(batch[0]), batch[1])

    def after_step(self, loss: torch.Tensor) -> None:
        self.lr_trace.append([g["lr"] for g in self.optimizer.param_groups])
        self.sched.step()
        self.losses.append(float(loss.detach()))

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        y, va, y_std, names = self.y, self.va, self.y_std, self.names
        pred, sig = self.model.predict_with_sigma(self.source, tta=False, batch_size=self.config.eval_batch_size,
                                                  device=self.device, amp=self.amp_dtype is not None, indices=va)
        if sig is None:
            val_loss = float(np.sqrt(np.mean(np.square((pred - y[va]) / y_std))))
        else:
            val_loss = gaussian_nll(y[va] / y_std, pred / y_std, sig / y_std)
        row: dict[str, Any] = {"epoch": epoch, "stage": self.stage, "train_loss": float(np.mean(self.losses)),
                               "val_loss": val_loss, "lr_max": float(np.max(self.lr_trace[self.step0:])),
                               "seconds": time.perf_counter() - self.t_epoch}
        for j, name in enumerate(names):
            row[f"val_rmse_{name}"] = float(np.sqrt(np.mean((pred[:, j] - y[va, j]) ** 2)))
        self.say(f"epoch {epoch:3d} [{self.stage}] train {row['train_loss']:.4f} val {val_loss:.4f} "
                 + " ".join(f"rmse_{n}={row[f'val_rmse_{n}']:.4f}" for n in names) + f" ({row['seconds']:.1f}s)")
        return row

    def state(self) -> dict[str, Any]:
        return {"stage": self.stage, "optimizer": self.optimizer.state_dict(), "scheduler": self.sched.state_dict(),
                "gen_rng": self.gen.get_state(), "np_rng": self.rng.bit_generator.state,
                "lr_trace": [list(r) for r in self.lr_trace]}

    def load_state(self, state: dict[str, Any]) -> None:
        self._start_stage(str(state["stage"]))
        self.optimizer.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.gen.set_state(state["gen_rng"])
        self.rng.bit_generator.state = state["np_rng"]
        self.lr_trace = [list(r) for r in state["lr_trace"]]


def _train_section(config: ImageFitConfig) -> dict[str, Any]:
    return to_dict(config)
