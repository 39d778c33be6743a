"""Training the SED CNN (and the posterior flows): `train_network`, the SED step of the one loop.

`train_network` checks the arrays and hands `SEDStep` (data order, augmentation, loss, validation,
history records) to `photopop.training.loop.run_loop`, which does the epochs, early stopping,
best-weight restore, checkpoints and resume. The estimator on top is
`photopop.training.sed_regressor.SEDRegressor`.

The training follows Liew-Cain et al. (2021): MSE loss, Adam (or RMSprop), early stopping on the
*validation* loss with patience 25 and at most 5000 epochs, best weights restored at the end.
It keeps all tensors on the device and draws one permutation per epoch (no DataLoader), so an
epoch over 20 000 spaxels takes well under a second on a laptop CPU.

Reproducibility: the weights are initialised under ``torch.manual_seed(seed)``, shuffles use a
seeded ``torch.Generator``, dropout uses the global torch RNG seeded the same way, all inside
``torch.random.fork_rng`` so the caller's RNG state is untouched. A checkpoint (every
``checkpoint_every`` epochs, atomically) holds all states, so an interrupted run resumes to the
same final weights as an uninterrupted one (on CPU; CUDA kernels may not be bitwise deterministic).

Learning curves: epoch 0 is the MSE of predictions drawn at random from the training labels
(Liew-Cain Fig. 4), then one row per epoch with the training loss (mean over the epoch's batches,
in train mode), the validation loss (standardised units: the early-stopping criterion), the learning
rate and per-target MSE in label units (dex^2).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..config import to_dict
from ..errors import InputError
from ..io import dumps_json
from ..models.normalise import Standardiser
from ..models.sed_cnn import LOGVAR_MAX, LOGVAR_MIN, SEDCNN, SEDCNNConfig
from .checkpoint import data_fingerprint, settings_fingerprint
from .device import resolve_device
from .loop import Callback, TrainStep, run_loop, seeded_run

OPTIMIZERS = ("adam", "rmsprop")
LR_SCHEDULES = ("none", "plateau")
LOSSES = ("mse", "gaussian_nll")


@dataclass
class TrainConfig:
    """Optimisation settings; the defaults are the paper's (patience 25, at most 5000 epochs).

    optimizer: 'adam' or 'rmsprop' (rho 0.9, eps 1e-7 as Keras). lr_schedule: 'none' or 'plateau'
    (ReduceLROnPlateau on the validation loss with lr_factor / lr_patience / min_lr).
    checkpoint_every: epochs between checkpoints (when a checkpoint path is given).
    device: 'auto' (CUDA if present, else CPU), 'cpu', 'cuda', 'cuda:N'. num_threads: torch CPU
    threads during training (restored afterwards; 0 = torch's default). The default 1 is deliberate:
    batches of this small network are too small for intra-op threads to pay, and on a machine whose
    cores are shared, multi-threaded steps can run 10-20x slower (threads wait at every barrier).

    loss: 'mse' (the paper) or 'gaussian_nll': a heteroscedastic head, the network outputs a mean and a
    log-variance per target and minimises 0.5 (log s^2 + (y - mu)^2 / s^2) (log-variance clamped to
    [LOGVAR_MIN, LOGVAR_MAX]); early stopping then follows the validation NLL.
    noise_augment: each batch, add Gaussian noise with the rows' own input errors (``x_train_sd`` of
    `train_network`, from the magerr columns) to the inputs, so the network learns from re-noised data.
    band_dropout: for models with a presence-mask channel (nan_policy 'mask'), each training row hides a
    fraction ~ U(0, band_dropout) of its bands every batch, so it learns to predict with bands missing.
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    max_epochs: int = 5000
    patience: int = 25
    min_delta: float = 0.0
    lr_schedule: str = "none"
    lr_factor: float = 0.5
    lr_patience: int = 10
    min_lr: float = 1e-6
    checkpoint_every: int = 10
    seed: int = 0
    device: str = "auto"
    num_threads: int = 1
    loss: str = "mse"
    noise_augment: bool = False
    band_dropout: float = 0.0

    def validate(self) -> None:
        """Raise InputError for out-of-range settings."""
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {self.optimizer!r}; use one of {list(OPTIMIZERS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(f"unknown lr_schedule {self.lr_schedule!r}; use one of {list(LR_SCHEDULES)}")
        if self.loss not in LOSSES:
            raise InputError(f"unknown loss {self.loss!r}; use one of {list(LOSSES)}")
        if not 0.0 <= float(self.band_dropout) < 1.0:
            raise InputError(f"band_dropout must be in [0, 1), got {self.band_dropout}")
        if not self.learning_rate > 0:
            raise InputError(f"learning_rate must be > 0, got {self.learning_rate}")
        from ..validate import finite_float, positive_int, seed

        for name in ("batch_size", "max_epochs", "patience", "checkpoint_every"):
            positive_int(getattr(self, name), name)
        seed(self.seed, "seed")
        finite_float(self.learning_rate, "learning_rate", minimum=0.0, strict_minimum=True)


@dataclass
class TrainResult:
    """Outcome of `train_network`: learning curves and the early-stopping summary."""

    history: pd.DataFrame
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped_early: bool
    resumed_from_epoch: int = 0


def _fingerprint_settings(model: nn.Module, config: TrainConfig) -> dict[str, Any]:
    # max_epochs / checkpoint_every / device / threads do not change the trajectory up to a given epoch
    defaults = {"loss": "mse", "noise_augment": False, "band_dropout": 0.0}
    keep = {k: v for k, v in asdict(config).items()
            if k not in ("max_epochs", "checkpoint_every", "device", "num_threads")
            and not (k in defaults and v == defaults[k])}
    arch = getattr(model, "config", None)
    keep["architecture"] = to_dict(arch) if arch is not None else repr(model)
    if isinstance(keep["architecture"], dict) and keep["architecture"].get("in_channels") == 1:
        del keep["architecture"]["in_channels"]  # checkpoints made before the mask channel stay valid
    keep["n_parameters"] = sum(p.numel() for p in model.parameters())
    return keep


def _random_label_mse(y_true: np.ndarray, y_pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-column MSE of y_true against labels drawn at random from y_pool (the epoch-0 baseline)."""
    draw = y_pool[rng.integers(0, y_pool.shape[0], size=y_true.shape[0])]
    return np.mean((y_true - draw) ** 2, axis=0)


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    return torch.optim.RMSprop(model.parameters(), lr=config.learning_rate, alpha=0.9, eps=1e-7,
                               weight_decay=config.weight_decay)


def train_network(
    model: nn.Module,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    config: TrainConfig | None = None,
    *,
    checkpoint_path: str | Path | None = None,
    target_names: Sequence[str] | None = None,
    target_scale: np.ndarray | None = None,
    quiet: bool = False,
    callback: Callback | None = None,
    x_train_sd: np.ndarray | None = None,
) -> TrainResult:
    """Train `model` in place on standardised arrays; returns learning curves (best weights restored).

    x_*: (n, n_features), y_*: (n, n_targets) standardised. `target_scale` (per target) converts the
    per-target MSE to label units in the history. `callback(epoch, record)` runs after every epoch
    (after the checkpoint); an exception it raises (e.g. optuna's TrialPruned) stops training.
    With `checkpoint_path`, an existing compatible checkpoint is resumed.
    With ``config.loss == 'gaussian_nll'`` the model must have 2 n_targets outputs (means, then
    log-variances). A model with ``in_channels == 2`` takes x with NaN for missing bands (turned into a
    value channel with 0 and a presence mask). `x_train_sd` (same shape as x_train, standardised units)
    is the per-row input noise used when ``config.noise_augment`` is on.
    A model with its own ``loss_terms(x, y) -> (error of the mean or None, per-row loss (n, m))`` (e.g.
    the negative log-probability of a posterior flow, `photopop.models.posterior.PosteriorNet`) is trained
    on that loss instead (``config.loss`` is then unused); without a mean error the per-target MSE columns
    of the history are NaN after epoch 0. A model with ``n_bands`` hides only its first ``n_bands`` input
    columns under ``band_dropout``.
    """
    config = config or TrainConfig()
    config.validate()
    device = resolve_device(config.device)
    y_train = np.asarray(y_train, dtype=np.float64).reshape(len(y_train), -1)
    y_val = np.asarray(y_val, dtype=np.float64).reshape(len(y_val), -1)
    x_train = np.asarray(x_train, dtype=np.float64)
    x_val = np.asarray(x_val, dtype=np.float64)
    if len(x_train) != len(y_train) or len(x_val) != len(y_val):
        raise InputError("inputs and targets differ in length")
    if len(x_train) < 1 or len(x_val) < 1:
        raise InputError(f"need at least one training and one validation row, got {len(x_train)} and {len(x_val)}")
    mask_mode = int(getattr(model, "in_channels", 1)) == 2
    for name, arr in (("training inputs", x_train), ("training targets", y_train),
                      ("validation inputs", x_val), ("validation targets", y_val)):
        ok = ~np.isinf(arr) if (mask_mode and "inputs" in name) else np.isfinite(arr)
        if not np.all(ok):
            raise InputError(f"{name} contain NaN/inf")
    n_targets = y_train.shape[1]
    n_out = None if callable(getattr(model, "loss_terms", None)) else getattr(model, "n_outputs", None)
    want = 2 * n_targets if config.loss == "gaussian_nll" else n_targets
    if n_out is not None and int(n_out) != want:
        raise InputError(f"loss {config.loss!r} with {n_targets} target(s) needs a network with {want} outputs, "
                         f"this one has {n_out}")
    if config.noise_augment:
        if x_train_sd is None:
            raise InputError("noise_augment needs the per-row input errors (x_train_sd, from magerr columns)")
        x_train_sd = np.asarray(x_train_sd, dtype=np.float64)
        if x_train_sd.shape != x_train.shape or not np.all(np.isfinite(x_train_sd) | np.isnan(x_train)):
            raise InputError(f"x_train_sd must be finite with the shape of x_train {x_train.shape}")
    else:
        x_train_sd = None
    if config.band_dropout > 0 and not mask_mode:
        raise InputError("band_dropout needs a network with a mask channel (architecture in_channels=2)")
    names = list(target_names) if target_names is not None else [f"t{j}" for j in range(n_targets)]
    scale2 = (np.ones(n_targets) if target_scale is None else np.asarray(target_scale, dtype=np.float64)) ** 2

    fingerprint = settings_fingerprint({"settings": _fingerprint_settings(model, config),
                                        "data": data_fingerprint(x_train, y_train, x_val, y_val)})
    with seeded_run(device, config.seed, config.num_threads):
        step = SEDStep(model, x_train, y_train, x_val, y_val, config, device, names, scale2, x_train_sd, mask_mode)
        res = run_loop(step, max_epochs=config.max_epochs, patience=config.patience, min_delta=config.min_delta,
                       checkpoint_path=checkpoint_path, checkpoint_every=config.checkpoint_every,
                       fingerprint=fingerprint, callback=callback, quiet=quiet)
    return TrainResult(history=pd.DataFrame(res.history), best_epoch=res.best_epoch, best_val_loss=res.best_loss,
                       epochs_run=res.epochs_run, stopped_early=res.stopped_early,
                       resumed_from_epoch=res.resumed_from_epoch)


def mask_channels(x: np.ndarray) -> np.ndarray:
    """(n, L) standardised features with NaN for missing -> (n, 2, L): value (missing = 0) and presence mask."""
    present = np.isfinite(x)
    return np.stack([np.where(present, x, 0.0), present.astype(np.float64)], axis=1)


def loss_terms(out: torch.Tensor, y: torch.Tensor, heteroscedastic: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(error of the mean, per-element loss): squared error, or the Gaussian NLL without its constant."""
    k = y.shape[1]
    if not heteroscedastic:
        err = out - y
        return err, err * err
    err = out[:, :k] - y
    logv = out[:, k:].clamp(LOGVAR_MIN, LOGVAR_MAX)
    return err, 0.5 * (logv + err * err * torch.exp(-logv))


def batch_terms(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                heteroscedastic: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The model's own ``loss_terms(x, y)`` if it has one, else `loss_terms` of its outputs."""
    own = getattr(model, "loss_terms", None)
    if callable(own):
        return own(x, y)
    return loss_terms(model(x), y, heteroscedastic)


class SEDStep(TrainStep):
    """The SED trainer's part of the loop: one seeded permutation per epoch (``torch.Generator``),
    noise / band-dropout augmentation from its own generator, the MSE / Gaussian-NLL (or the model's own)
    loss, validation in eval mode, the ReduceLROnPlateau schedule and the epoch's history record."""

    def __init__(self, model: nn.Module, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                 y_val: np.ndarray, config: TrainConfig, device: torch.device, names: list[str],
                 scale2: np.ndarray, x_sd: np.ndarray | None = None, mask_mode: bool = False) -> None:
        self.config, self.device, self.names, self.scale2, self.mask_mode = config, device, names, scale2, mask_mode
        self.model = model
        self.y_train, self.y_val = y_train, y_val
        self.gen = torch.Generator().manual_seed(config.seed)
        # augmentation draws come from their own stream: the default trajectory is unchanged
        self.aug = torch.Generator().manual_seed(config.seed + 7919)
        self.hetero = config.loss == "gaussian_nll"
        if mask_mode:
            x_train, x_val = mask_channels(x_train), mask_channels(x_val)
        model.to(device)
        self.optimizer = _make_optimizer(model, config)
        self.sched = (torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr)
            if config.lr_schedule == "plateau" else None)
        self.xt = torch.as_tensor(x_train, dtype=torch.float32, device=device)
        self.yt = torch.as_tensor(y_train, dtype=torch.float32, device=device)
        self.xv = torch.as_tensor(x_val, dtype=torch.float32, device=device)
        self.yv = torch.as_tensor(y_val, dtype=torch.float32, device=device)
        self.sdt = (torch.as_tensor(np.nan_to_num(x_sd), dtype=torch.float32, device=device)
                    if x_sd is not None else None)
        self._terms: tuple[torch.Tensor | None, torch.Tensor] | None = None

    def initial_record(self) -> dict[str, Any]:
        """Epoch 0: the loss of labels drawn at random from the training labels (Liew-Cain Fig. 4)."""
        y_train, y_val, names, scale2 = self.y_train, self.y_val, self.names, self.scale2
        rng = np.random.default_rng(self.config.seed)
        tr0 = _random_label_mse(y_train, y_train, rng)
        va0 = _random_label_mse(y_val, y_train, rng)
        f0 = 0.5 if self.hetero else 1.0  # NLL with unit variance = half the MSE (constant dropped)
        rec0: dict[str, Any] = {"epoch": 0, "train_loss": float(f0 * tr0.mean()), "val_loss": float(f0 * va0.mean()),
                                "lr": float(self.config.learning_rate)}
        if callable(getattr(self.model, "loss_terms", None)):  # a density: -log N(y; 0, I), the standardised prior
            c = 0.5 * y_train.shape[1] * math.log(2 * math.pi)
            rec0["train_loss"] = float(0.5 * (y_train ** 2).sum(axis=1).mean() + c)
            rec0["val_loss"] = float(0.5 * (y_val ** 2).sum(axis=1).mean() + c)
        for j, t in enumerate(names):
            rec0[f"train_mse_{t}"] = float(tr0[j] * scale2[j])
            rec0[f"val_mse_{t}"] = float(va0[j] * scale2[j])
        return rec0

    def begin_epoch(self, epoch: int) -> None:
        self.model.train()
        self.sse = torch.zeros(self.yt.shape[1], dtype=torch.float64, device=self.device)
        self.sloss = torch.zeros(self.yt.shape[1], dtype=torch.float64, device=self.device)

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, bs, cfg = self.xt.shape[0], int(self.config.batch_size), self.config
        perm = torch.randperm(n, generator=self.gen).to(self.device)
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            xb, yb = self.xt[idx], self.yt[idx]
            if self.sdt is not None or cfg.band_dropout > 0:
                xb = _augment(xb, self.sdt[idx] if self.sdt is not None else None, cfg.band_dropout, self.aug,
                              self.mask_mode, getattr(self.model, "n_bands", None))
            yield xb, yb

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        self._terms = batch_terms(self.model, batch[0], batch[1], self.hetero)
        return self._terms[1].mean()

    def after_step(self, loss: torch.Tensor) -> None:
        err, terms = self._terms  # type: ignore[misc]
        self.sse += (err.detach() ** 2).sum(dim=0).double() if err is not None else math.nan
        self.sloss += terms.detach().sum(dim=0).double()

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        n = self.xt.shape[0]
        train_mse = (self.sse / n).cpu().numpy()
        train_loss = float((self.sloss / n).mean().cpu())
        val_mse, val_terms = _evaluate_terms(self.model, self.xv, self.yv, hetero=self.hetero)
        val_loss = float(val_terms.mean())
        if self.sched is not None:
            self.sched.step(val_loss)
        rec: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                               "lr": float(self.optimizer.param_groups[0]["lr"])}
        for j, t in enumerate(self.names):
            rec[f"train_mse_{t}"] = float(train_mse[j] * self.scale2[j])
            rec[f"val_mse_{t}"] = float(val_mse[j] * self.scale2[j])
        return rec

    def state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(),
                "scheduler": self.sched.state_dict() if self.sched is not None else None,
                "gen_rng": self.gen.get_state(), "aug_rng": self.aug.get_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.sched is not None and state.get("scheduler") is not None:
            self.sched.load_state_dict(state["scheduler"])
        if state.get("aug_rng") is not None:
            self.aug.set_state(state["aug_rng"])
        self.gen.set_state(state["gen_rng"])


def _augment(xb: torch.Tensor, sdb: torch.Tensor | None, dropout: float, gen: torch.Generator,
             mask_mode: bool, n_drop: int | None = None) -> torch.Tensor:
    """Re-noise a batch with its input errors and/or hide random bands (mask-channel models; only the
    first `n_drop` columns when given)."""
    xb = xb.clone()
    vals = xb[:, 0] if mask_mode else xb
    if sdb is not None:
        noise = torch.randn(vals.shape, generator=gen).to(xb.device) * sdb
        if mask_mode:
            noise = noise * xb[:, 1]
        vals += noise
    if dropout > 0 and mask_mode:
        frac = torch.rand((xb.shape[0], 1), generator=gen) * dropout
        drop = (torch.rand(vals.shape, generator=gen) < frac).to(xb.device)
        if n_drop is not None:
            drop[:, int(n_drop):] = False
        xb[:, 0][drop] = 0.0
        xb[:, 1][drop] = 0.0
    return xb


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 65536) -> np.ndarray:
    """Per-target MSE of the model on (x, y) in eval mode (plain MSE networks)."""
    return _evaluate_terms(model, x, y, batch)[0]


def _evaluate_terms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 65536,
                    hetero: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-target MSE of the means and per-target mean loss (MSE or NLL) on (x, y) in eval mode."""
    model.eval()
    sse = torch.zeros(y.shape[1], dtype=torch.float64, device=y.device)
    sloss = torch.zeros(y.shape[1], dtype=torch.float64, device=y.device)
    with torch.no_grad():
        for start in range(0, x.shape[0], batch):
            err, terms = batch_terms(model, x[start:start + batch], y[start:start + batch], hetero)
            sse += (err * err).sum(dim=0).double() if err is not None else math.nan
            sloss += terms.sum(dim=0).double()
    return (sse / x.shape[0]).cpu().numpy(), (sloss / x.shape[0]).cpu().numpy()


def build_network(n_inputs: int, n_outputs: int, config: SEDCNNConfig, seed: int) -> SEDCNN:
    """An `SEDCNN` with weights initialised from `seed` (the caller's RNG state is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SEDCNN(n_inputs, n_outputs, config)


def history_files(result: Any) -> dict[str, str]:
    """history.csv / history.json of a training run (a `TrainResult`, an image `ImageFitResult`: anything
    with a ``history`` DataFrame; None gives none), the extra files every trained model folder carries."""
    if result is None:
        return {}
    return {"history.csv": result.history.to_csv(index=False),
            "history.json": dumps_json(result.history.to_dict(orient="records")) + "\n"}


def load_history(path: str | Path, meta: dict[str, Any]) -> TrainResult | None:
    """The `TrainResult` of a model folder written with `history_files`: its history.csv and the
    early-stopping summary its meta.json records (None when the folder has no history.csv)."""
    hist = Path(path) / "history.csv"
    if not hist.exists():
        return None
    return TrainResult(history=pd.read_csv(hist), best_epoch=int(meta.get("best_epoch", 0)),
                       best_val_loss=float(meta.get("best_val_loss", math.nan)),
                       epochs_run=int(meta.get("epochs_run", 0)),
                       stopped_early=bool(meta.get("stopped_early", False)))


def validation_split(n: int, galaxy_ids: Any, val_idx: Any, scheme: str, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fitting rows, validation rows): `val_idx` if given, else `carve_validation` with `scheme`
    ('auto' = by galaxy when at least two galaxy ids are known, else random rows)."""
    from ..splits import carve_validation

    if val_idx is not None:
        vidx = np.unique(np.asarray(val_idx, dtype=np.int64))
        if vidx.size == 0 or vidx.size >= n or vidx.min() < 0 or vidx.max() >= n:
            raise InputError(f"val_idx must select between 1 and {n - 1} of the {n} rows")
        mask = np.ones(n, dtype=bool)
        mask[vidx] = False
        return np.flatnonzero(mask), vidx
    if scheme == "auto":
        scheme = "B" if galaxy_ids is not None and np.unique(galaxy_ids).size >= 2 else "random"
    return carve_validation(np.arange(n), galaxy_ids, scheme=scheme, fraction=fraction, seed=seed)


def _fit_nan_standardiser(x: np.ndarray, names: Sequence[str]) -> Standardiser:
    """Standardiser over the present (finite) values of each column (mask-channel models)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(x, axis=0)
        scale = np.nanstd(x, axis=0)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale))):
        bad = [names[j] for j in np.flatnonzero(~np.isfinite(mean) | ~np.isfinite(scale))]
        raise InputError(f"no measured training values in feature(s) {bad}")
    return Standardiser(list(names), mean, np.where(scale > 0, scale, 1.0))
