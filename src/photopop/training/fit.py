"""Training the SED CNN: the epoch loop (early stopping, checkpoints, resume) and `SEDRegressor`.

The loop follows Liew-Cain et al. (2021): MSE loss, Adam (or RMSprop), early stopping on the
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
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import __version__
from ..config import from_dict, to_dict
from ..datasets.frames import as_frame
from ..errors import InputError
from ..io import dumps_json
from ..models.normalise import Standardiser, check_kind, feature_names, make_features, resolve_ref_band
from ..models.saved import SavedSEDModel, check_finite, extract_magnitudes, table_hash
from ..models.sed_cnn import LOGVAR_MAX, LOGVAR_MIN, SEDCNN, SEDCNNConfig
from ..photometry.magnitudes import as_range
from .checkpoint import data_fingerprint, load_checkpoint, save_checkpoint, settings_fingerprint
from .device import resolve_device

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


def _progress(total: int, initial: int, quiet: bool):
    from tqdm.auto import tqdm

    disable = quiet or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    return tqdm(total=total, initial=initial, disable=disable, unit="epoch", desc="training", leave=False)


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
    callback: Callable[[int, dict[str, float]], None] | None = None,
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
    devices = [device.index or 0] if device.type == "cuda" else []
    threads = torch.get_num_threads()
    if config.num_threads > 0:
        torch.set_num_threads(int(config.num_threads))
    try:
        with torch.random.fork_rng(devices=devices):
            return _train(model, x_train, y_train, x_val, y_val, config, device, fingerprint,
                          Path(checkpoint_path) if checkpoint_path else None, names, scale2, quiet, callback,
                          x_train_sd, mask_mode)
    finally:
        torch.set_num_threads(threads)


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


def _train(model, x_train, y_train, x_val, y_val, config: TrainConfig, device: torch.device, fingerprint: str,
           ckpt: Path | None, names: list[str], scale2: np.ndarray, quiet: bool, callback,
           x_sd: np.ndarray | None = None, mask_mode: bool = False) -> TrainResult:
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    # augmentation draws come from their own stream: the default trajectory is unchanged
    aug = torch.Generator().manual_seed(config.seed + 7919)
    hetero = config.loss == "gaussian_nll"
    if mask_mode:
        x_train, x_val = mask_channels(x_train), mask_channels(x_val)
    model.to(device)
    opt = _make_optimizer(model, config)
    sched = (torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=config.lr_factor,
                                                        patience=config.lr_patience, min_lr=config.min_lr)
             if config.lr_schedule == "plateau" else None)
    xt = torch.as_tensor(x_train, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y_train, dtype=torch.float32, device=device)
    xv = torch.as_tensor(x_val, dtype=torch.float32, device=device)
    yv = torch.as_tensor(y_val, dtype=torch.float32, device=device)
    sdt = (torch.as_tensor(np.nan_to_num(x_sd), dtype=torch.float32, device=device)
           if x_sd is not None else None)
    n = xt.shape[0]
    bs = int(config.batch_size)

    epoch = 0
    best_loss = math.inf
    best_epoch = 0
    bad = 0
    stopped = False
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = []
    resumed_from = 0

    state = load_checkpoint(ckpt) if ckpt else None
    if state is not None and state.get("fingerprint") != fingerprint:
        warnings.warn(f"{ckpt}: checkpoint was made with other settings or data; starting over", stacklevel=3)
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None and state.get("scheduler") is not None:
            sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("aug_rng") is not None:
            aug.set_state(state["aug_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        gen.set_state(state["gen_rng"])
        epoch = int(state["epoch"])
        best_loss = float(state["best_loss"])
        best_epoch = int(state["best_epoch"])
        bad = int(state["bad_epochs"])
        stopped = bool(state["stopped_early"])
        best_state = state["best_state"]
        history = list(state["history"])
        resumed_from = epoch
    else:
        rng = np.random.default_rng(config.seed)
        tr0 = _random_label_mse(y_train, y_train, rng)
        va0 = _random_label_mse(y_val, y_train, rng)
        f0 = 0.5 if hetero else 1.0  # NLL with unit variance = half the MSE (constant dropped)
        rec0: dict[str, float] = {"epoch": 0, "train_loss": float(f0 * tr0.mean()), "val_loss": float(f0 * va0.mean()),
                                  "lr": float(config.learning_rate)}
        if callable(getattr(model, "loss_terms", None)):  # a density: -log N(y; 0, I), the standardised prior
            c = 0.5 * y_train.shape[1] * math.log(2 * math.pi)
            rec0["train_loss"] = float(0.5 * (y_train ** 2).sum(axis=1).mean() + c)
            rec0["val_loss"] = float(0.5 * (y_val ** 2).sum(axis=1).mean() + c)
        for j, t in enumerate(names):
            rec0[f"train_mse_{t}"] = float(tr0[j] * scale2[j])
            rec0[f"val_mse_{t}"] = float(va0[j] * scale2[j])
        history.append(rec0)

    def snapshot() -> dict[str, Any]:
        return {
            "fingerprint": fingerprint,
            "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else None,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "gen_rng": gen.get_state(), "aug_rng": aug.get_state(),
            "epoch": epoch, "best_loss": best_loss, "best_epoch": best_epoch, "bad_epochs": bad,
            "stopped_early": stopped, "best_state": best_state, "history": history,
            "photopop_version": __version__,
        }

    bar = _progress(config.max_epochs, min(epoch, config.max_epochs), quiet)
    try:
        while not stopped and epoch < config.max_epochs:
            epoch += 1
            model.train()
            perm = torch.randperm(n, generator=gen).to(device)
            sse = torch.zeros(yt.shape[1], dtype=torch.float64, device=device)
            sloss = torch.zeros(yt.shape[1], dtype=torch.float64, device=device)
            for start in range(0, n, bs):
                idx = perm[start:start + bs]
                xb, yb = xt[idx], yt[idx]
                if sdt is not None or config.band_dropout > 0:
                    xb = _augment(xb, sdt[idx] if sdt is not None else None, config.band_dropout, aug, mask_mode,
                                  getattr(model, "n_bands", None))
                opt.zero_grad(set_to_none=True)
                err, terms = batch_terms(model, xb, yb, hetero)
                loss = terms.mean()
                loss.backward()
                opt.step()
                sse += (err.detach() ** 2).sum(dim=0).double() if err is not None else math.nan
                sloss += terms.detach().sum(dim=0).double()
            train_mse = (sse / n).cpu().numpy()
            train_loss = float((sloss / n).mean().cpu())
            val_mse, val_terms = _evaluate_terms(model, xv, yv, hetero=hetero)
            val_loss = float(val_terms.mean())
            if sched is not None:
                sched.step(val_loss)
            if val_loss < best_loss - config.min_delta:
                best_loss, best_epoch, bad = val_loss, epoch, 0
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
            stopped = bad >= config.patience
            rec = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                   "lr": float(opt.param_groups[0]["lr"])}
            for j, t in enumerate(names):
                rec[f"train_mse_{t}"] = float(train_mse[j] * scale2[j])
                rec[f"val_mse_{t}"] = float(val_mse[j] * scale2[j])
            history.append(rec)
            bar.update(1)
            bar.set_postfix(train=f"{rec['train_loss']:.4g}", val=f"{val_loss:.4g}", best=best_epoch)
            if ckpt and (epoch % config.checkpoint_every == 0 or stopped or epoch >= config.max_epochs):
                save_checkpoint(ckpt, snapshot())
            if callback is not None:
                callback(epoch, rec)
    finally:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(history=pd.DataFrame(history), best_epoch=best_epoch, best_val_loss=best_loss,
                       epochs_run=epoch, stopped_early=stopped, resumed_from_epoch=resumed_from)


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


def history_files(result: TrainResult | None) -> dict[str, str]:
    """history.csv / history.json of a training run, the extra files every trained model folder carries."""
    if result is None:
        return {}
    return {"history.csv": result.history.to_csv(index=False),
            "history.json": dumps_json(result.history.to_dict(orient="records")) + "\n"}


# -- the estimator ---------------------------------------------------------------------------------
@dataclass
class SEDRegressorConfig:
    """Everything that defines a trained SED model.

    targets: label columns to predict with one multi-output network (train one regressor per target
    for the paper's one-model-per-target setup). input_kind: 'mag' | 'colour' | 'flux'
    (see photopop.models.normalise); ref_band: colour reference ('' = middle band).
    val_fraction / val_scheme: validation carved from the training rows by
    `photopop.splits.carve_validation`; scheme 'auto' = by galaxy ('B') when galaxy ids are known,
    else random rows. nan_policy: 'refuse' (NaN magnitudes are an error) or 'mask' (input_kind 'mag'
    only: the network gets a presence-mask channel, is trained with ``train.band_dropout`` and then
    accepts NaN for missing bands). With ``train.loss = 'gaussian_nll'`` the model also predicts a
    per-object sigma (``<target>_sigma`` columns).
    """

    targets: tuple[str, ...] = ("log_age",)
    input_kind: str = "mag"
    ref_band: str = ""
    val_fraction: float = 0.2
    val_scheme: str = "auto"
    nan_policy: str = "refuse"
    architecture: SEDCNNConfig = field(default_factory=SEDCNNConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class SEDRegressor:
    """scikit-learn-like estimator: ``SEDRegressor(config).fit(table).predict(df)``, ``.save``/``.load``."""

    def __init__(self, config: SEDRegressorConfig | None = None):
        self.config = config or SEDRegressorConfig()
        self.model_: SavedSEDModel | None = None
        self.result_: TrainResult | None = None

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, data: Any, y: Any = None, *, bands: Sequence[str] | None = None,
            filter_system: str | None = None, galaxy_ids: Any = None,
            val_idx: Any = None, checkpoint_path: str | Path | None = None,
            quiet: bool = True, callback: Callable[[int, dict[str, float]], None] | None = None,
            magerr: Any = None) -> "SEDRegressor":
        """Train on an SEDTable, a DataFrame (mag_<band> + target columns) or an array (+ `y`, `bands`).

        Validation rows: `val_idx` (row positions) if given, else carved with `val_scheme`, grouped
        by `galaxy_ids` (default: the table's galaxy_id column). Normalisation is fitted on the
        remaining (fitting) rows only. `magerr` (n, n_bands) gives the magnitude errors for
        ``train.noise_augment`` when `data` is an array (tables give their magerr_<band> columns).

        Parameters
        ----------
        data : SEDTable, DataFrame, astropy Table/QTable or array
            Training rows: ``mag_<band>`` columns (AB) and the target columns, or an (n, n_bands) array.
        y : array_like, optional
            (n, n_targets) targets when `data` is an array.
        bands, filter_system : optional
            Band names of an array's columns and their filter system (tables give their own).
        galaxy_ids : array_like, optional
            Groups for the validation split (default: the table's ``galaxy_id``).
        val_idx : array_like of int, optional
            Validation rows (default: carved by ``val_scheme``).
        checkpoint_path : str or path, optional
            Atomic checkpoints; an existing one of the same settings and data is resumed exactly.
        quiet : bool
            No progress bar.

        Returns
        -------
        SEDRegressor
            `self`, fitted: ``model_`` (the network with its normalisation) and ``result_`` (history).
        """
        data = as_frame(data, "training table")  # astropy Table/QTable -> DataFrame
        cfg = self.config
        check_kind(cfg.input_kind)
        if cfg.nan_policy not in ("refuse", "mask"):
            raise InputError(f"unknown nan_policy {cfg.nan_policy!r}; use 'refuse' or 'mask'")
        mask_mode = cfg.nan_policy == "mask"
        if mask_mode and cfg.input_kind != "mag":
            raise InputError("nan_policy 'mask' needs input_kind 'mag' (colours/fluxes of missing bands are undefined)")
        targets = list(cfg.targets)
        if not targets:
            raise InputError("no targets configured")
        mags, bands_l, system, _ = extract_magnitudes(data, bands, filter_system)
        frame = data.spaxels if hasattr(data, "spaxels") else data if isinstance(data, pd.DataFrame) else None
        if y is None:
            if frame is None:
                raise InputError("an array of magnitudes needs targets `y`")
            missing = [t for t in targets if t not in frame.columns]
            if missing:
                raise InputError(f"table lacks target column(s) {missing}")
            yarr = frame[targets].to_numpy(dtype=np.float64)
        else:
            yarr = np.asarray(y, dtype=np.float64).reshape(len(mags), -1)
            if yarr.shape[1] != len(targets):
                raise InputError(f"y has {yarr.shape[1]} column(s) but {len(targets)} target(s) are configured")
        if galaxy_ids is None and frame is not None and "galaxy_id" in frame.columns:
            galaxy_ids = frame["galaxy_id"].to_numpy()
        if mask_mode:
            if np.isinf(mags).any():
                raise InputError("training table: infinite magnitudes (use NaN for missing bands)")
        else:
            check_finite(mags, bands_l, "training table")
        bad_y = ~np.isfinite(yarr)
        if bad_y.any():
            raise InputError(f"{int(bad_y.any(axis=1).sum())} training row(s) have NaN/inf targets "
                             f"{[t for j, t in enumerate(targets) if bad_y[:, j].any()]}")
        fit_idx, vidx = self._split(len(mags), galaxy_ids, val_idx)

        ref = cfg.ref_band or None
        # the magnitude range of an SED table (meta 'mag_range', default -10..40 AB) travels with the model
        table_meta = getattr(data, "meta", None)
        mag_range = as_range(table_meta.get("mag_range") if isinstance(table_meta, dict) else None)
        feats = make_features(mags, bands_l, cfg.input_kind, ref, mag_range)
        fnames = feature_names(bands_l, cfg.input_kind, ref)
        in_norm = _fit_nan_standardiser(feats[fit_idx], fnames) if mask_mode else Standardiser.fit(feats[fit_idx], fnames)
        tg_norm = Standardiser.fit(yarr[fit_idx], targets)
        x = in_norm.transform(feats)
        z = tg_norm.transform(yarr)
        x_sd = None
        if cfg.train.noise_augment:
            err = _magerr_array(data, frame, magerr, bands_l, mags.shape)
            x_sd = feature_noise(mags, err, bands_l, cfg.input_kind, ref) / in_norm.scale
        hetero = cfg.train.loss == "gaussian_nll"
        arch = cfg.architecture
        if mask_mode and int(arch.in_channels) != 2:
            from dataclasses import replace

            arch = replace(arch, in_channels=2)
        n_out = 2 * len(targets) if hetero else len(targets)
        net = build_network(x.shape[1], n_out, arch, cfg.train.seed)
        self.result_ = train_network(net, x[fit_idx], z[fit_idx], x[vidx], z[vidx], cfg.train,
                                     checkpoint_path=checkpoint_path, target_names=targets,
                                     target_scale=tg_norm.scale, quiet=quiet, callback=callback,
                                     x_train_sd=x_sd[fit_idx] if x_sd is not None else None)
        net.to("cpu")
        meta = {"bands": bands_l, "filter_system": system, "targets": targets, "input_kind": cfg.input_kind,
                "ref_band": resolve_ref_band(bands_l, ref) if cfg.input_kind == "colour" else None,
                "nan_policy": cfg.nan_policy, "loss": cfg.train.loss, "photopop_version": __version__,
                "mag_range": [mag_range.lo, mag_range.hi],
                "train_table_hash": table_hash(mags, yarr),
                "n_fit_rows": int(fit_idx.size), "n_val_rows": int(vidx.size),
                "best_epoch": self.result_.best_epoch, "best_val_loss": self.result_.best_val_loss,
                "epochs_run": self.result_.epochs_run, "stopped_early": self.result_.stopped_early}
        extra = {"regressor": {k: v for k, v in to_dict(cfg).items() if k not in ("architecture", "train")},
                 "train": to_dict(cfg.train)}
        self.model_ = SavedSEDModel(net, in_norm, tg_norm, meta, extra)
        return self

    def _split(self, n: int, galaxy_ids: Any, val_idx: Any) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        return validation_split(n, galaxy_ids, val_idx, cfg.val_scheme, cfg.val_fraction, cfg.train.seed)

    # -- prediction and folders ---------------------------------------------------------------------
    def _fitted(self) -> SavedSEDModel:
        if self.model_ is None:
            raise InputError("this SEDRegressor is not fitted yet: call fit() or load()")
        return self.model_

    def predict(self, data: Any, **kw: Any) -> pd.DataFrame:
        """One column per target; see `SavedSEDModel.predict` for band and filter-system checks.

        Parameters
        ----------
        data : SEDTable, DataFrame, astropy Table/QTable or array
            Rows with the model's ``mag_<band>`` columns (other columns are ignored).
        **kw
            ``bands``, ``filter_system`` (for arrays), ``batch_size``, ``device``, ``num_threads``.

        Returns
        -------
        DataFrame
            One column per target (and ``<target>_sigma`` for Gaussian-NLL models), the input's index.
        """
        return self._fitted().predict(as_frame(data), **kw)

    @property
    def history_(self) -> pd.DataFrame | None:
        return self.result_.history if self.result_ is not None else None

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the model folder (model.pt, config.toml, normalisation.json, meta.json, history.csv/.json);
        `overwrite` as in `SavedSEDModel.save`."""
        return self._fitted().save(path, extra_files=history_files(self.result_), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> "SEDRegressor":
        """Read a model folder; the config is rebuilt from its config.toml."""
        model = SavedSEDModel.load(path)
        extra = dict(model.extra_config)
        reg = dict(extra.get("regressor", {}))
        try:
            cfg = from_dict(SEDRegressorConfig, {**reg, "architecture": to_dict(model.network.config),
                                                 "train": extra.get("train", {})})
        except InputError:
            cfg = SEDRegressorConfig(targets=tuple(model.targets), input_kind=model.meta["input_kind"],
                                     architecture=model.network.config)
        out = cls(cfg)
        out.model_ = model
        hist = Path(path) / "history.csv"
        if hist.exists():
            out.result_ = TrainResult(history=pd.read_csv(hist), best_epoch=int(model.meta.get("best_epoch", 0)),
                                      best_val_loss=float(model.meta.get("best_val_loss", math.nan)),
                                      epochs_run=int(model.meta.get("epochs_run", 0)),
                                      stopped_early=bool(model.meta.get("stopped_early", False)))
        return out



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


def _magerr_array(data: Any, frame: pd.DataFrame | None, magerr: Any, bands: Sequence[str],
                  shape: tuple[int, ...]) -> np.ndarray:
    """Magnitude errors (n, n_bands) for noise augmentation, from `magerr` or the magerr_<band> columns."""
    if magerr is not None:
        err = np.asarray(magerr, dtype=np.float64)
    else:
        if frame is None:
            raise InputError("noise_augment with an array of magnitudes needs `magerr=`")
        cols = [f"magerr_{b}" for b in bands]
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise InputError(f"noise_augment needs magnitude errors; table lacks column(s) {missing[:5]}")
        err = frame[cols].to_numpy(dtype=np.float64)
    if err.shape != tuple(shape):
        raise InputError(f"magnitude errors must have shape {tuple(shape)}, got {err.shape}")
    finite = np.isfinite(err)
    if np.any(err[finite] < 0):
        raise InputError("magnitude errors must be >= 0")
    return np.where(finite, err, 0.0)


def feature_noise(mags: np.ndarray, magerr: np.ndarray, bands: Sequence[str], kind: str,
                  ref_band: str | None = None) -> np.ndarray:
    """1-sigma noise of each input feature (physical units) from magnitude errors, to first order.

    mag: sigma_m. colour m_b - m_ref: sqrt(sigma_b^2 + sigma_ref^2). flux f_b / median f:
    0.4 ln10 f_b/med sigma_b (the median's own jitter is neglected).
    """
    if kind == "mag":
        return np.asarray(magerr, dtype=np.float64).copy()
    if kind == "colour":
        ref = resolve_ref_band(bands, ref_band)
        j = list(bands).index(ref)
        keep = [i for i in range(len(bands)) if i != j]
        return np.sqrt(magerr[:, keep] ** 2 + magerr[:, [j]] ** 2)
    return 0.4 * math.log(10.0) * make_features(mags, bands, "flux") * magerr
