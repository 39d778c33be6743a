"""The one training loop: epochs of optimiser steps, validation, early stopping, checkpoints, resume.

A trainer (`photopop.training.fit` for the SED networks and posterior flows,
`photopop.training.image_fit` for the image ResNets) supplies a `TrainStep`: its model, its own
optimiser and schedule, its own data order (``batches``) and a batch -> loss function (``loss``). The
loop does the rest, the same way for every trainer:

* each optimiser step: ``zero_grad``; the forward pass under `photopop.models.amp.autocast` (mixed
  precision on CUDA when the trainer asks for it, `contextlib.nullcontext` otherwise); backward through
  a ``GradScaler`` (active only for fp16); optional gradient-norm clipping; the optimiser step; the
  trainer's ``after_step`` (e.g. a per-batch learning-rate schedule);
* each epoch: the trainer's ``end_epoch`` validates and returns the epoch's history record (with its
  ``val_loss``); the best record's weights are kept (``val_loss < best - min_delta``, finite);
  training stops after ``patience`` epochs without improvement (None: never early); a checkpoint is
  written every ``checkpoint_every`` epochs and at the end; then the callback runs (an exception it
  raises, e.g. optuna's TrialPruned, stops training);
* at the end the best weights are restored and the model is put in eval mode.

A checkpoint (`photopop.training.checkpoint`, written atomically) holds the model, the trainer's own
state (``TrainStep.state``: optimiser, scheduler, data-order and augmentation generators), the global
torch RNG (dropout) and CUDA RNG, the gradient scaler, the early-stopping state and the history, and a
fingerprint of settings and data: a run killed at any point resumes from its last checkpoint to the same
final weights as an uninterrupted one (on CPU; CUDA kernels need not be bitwise deterministic). A
checkpoint with another fingerprint is ignored with a warning.
"""

from __future__ import annotations

import contextlib
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from .. import __version__
from ..models.amp import autocast
from .checkpoint import load_checkpoint, save_checkpoint

#: callback(epoch, record) after every epoch (after the checkpoint)
Callback = Callable[[int, dict[str, Any]], None]


class TrainStep:
    """What a trainer supplies to `run_loop`; override `batches`, `loss` and `end_epoch`.

    Attributes: ``model``, ``optimizer`` (may be replaced by `begin_epoch`, e.g. per training stage),
    ``device``, ``amp_dtype`` (None: full precision; bf16 / fp16 autocast on CUDA), ``grad_clip``
    (largest gradient norm, 0 = off).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    amp_dtype: torch.dtype | None = None
    grad_clip: float = 0.0

    def begin_epoch(self, epoch: int) -> None:
        """Before epoch `epoch` (1-based): set train mode, switch stage, start timers."""
        self.model.train()

    def batches(self, epoch: int) -> Iterable[Any]:
        """The epoch's batches in the trainer's own (seeded) order, augmented and on the device."""
        raise NotImplementedError

    def loss(self, batch: Any) -> torch.Tensor:
        """Scalar loss of one batch (the forward pass; run under autocast by the loop)."""
        raise NotImplementedError

    def after_step(self, loss: torch.Tensor) -> None:
        """After each optimiser step (per-batch schedules, running sums)."""

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        """Validate and return the epoch's history record; it must hold ``val_loss``."""
        raise NotImplementedError

    def initial_record(self) -> dict[str, Any] | None:
        """An epoch-0 history record for a fresh run (e.g. the random-label baseline), or None."""
        return None

    def state(self) -> dict[str, Any]:
        """The trainer's own resumable state (optimiser, scheduler, generators) for a checkpoint."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what `state` returned, from a checkpoint."""


@dataclass
class LoopResult:
    """Learning curve (one record per epoch) and the early-stopping summary of `run_loop`."""

    history: list[dict[str, Any]]
    best_epoch: int
    best_loss: float
    epochs_run: int
    stopped_early: bool
    resumed_from_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)


def progress_bar(total: int, initial: int, quiet: bool) -> Any:
    """A tqdm bar over epochs, shown only on an interactive terminal and when not `quiet`."""
    from tqdm.auto import tqdm

    disable = quiet or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    return tqdm(total=total, initial=initial, disable=disable, unit="epoch", desc="training", leave=False)


@contextlib.contextmanager
def seeded_run(device: torch.device, seed: int, num_threads: int = 0) -> Iterator[None]:
    """Run a training under ``torch.manual_seed(seed)`` inside ``torch.random.fork_rng`` (the caller's
    RNG states are untouched) with `num_threads` torch CPU threads (0 = leave torch's setting; the old
    setting is restored afterwards)."""
    devices = [device.index or 0] if device.type == "cuda" else []
    threads = torch.get_num_threads()
    if num_threads > 0:
        torch.set_num_threads(int(num_threads))
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the model's state dict (the kept best weights, checkpoints)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def run_loop(step: TrainStep, *, max_epochs: int, patience: int | None = None, min_delta: float = 0.0,
             checkpoint_path: str | Path | None = None, checkpoint_every: int = 10, fingerprint: str = "",
             callback: Callback | None = None, quiet: bool = True) -> LoopResult:
    """Train `step.model` for up to `max_epochs` epochs; see the module doc. Returns the history and the
    early-stopping summary; the best weights (also in ``best_state``) are loaded back into the model."""
    model, device = step.model, step.device
    use_amp = step.amp_dtype is not None
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and step.amp_dtype == torch.float16)
    ckpt = Path(checkpoint_path) if checkpoint_path else None

    epoch, best_loss, best_epoch, bad, stopped = 0, math.inf, 0, 0, False
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] = []
    resumed_from = 0
    state = load_checkpoint(ckpt) if ckpt else None
    if state is not None and state.get("fingerprint") != fingerprint:
        warnings.warn(f"{ckpt}: checkpoint was made with other settings or data; starting over", stacklevel=3)
        state = None
    if state is not None:
        step.load_state(state)
        model.load_state_dict(state["model"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        if state.get("grad_scaler") is not None:
            scaler.load_state_dict(state["grad_scaler"])
        epoch = int(state["epoch"])
        best_loss = float(state["best_loss"])
        best_epoch = int(state["best_epoch"])
        bad = int(state["bad_epochs"])
        stopped = bool(state["stopped_early"])
        best_state = state["best_state"]
        history = list(state["history"])
        resumed_from = epoch
    else:
        rec0 = step.initial_record()
        if rec0 is not None:
            history.append(rec0)

    def snapshot() -> dict[str, Any]:
        return {
            "fingerprint": fingerprint, "model": cpu_state(model), **step.state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "grad_scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "epoch": epoch, "best_loss": best_loss, "best_epoch": best_epoch, "bad_epochs": bad,
            "stopped_early": stopped, "best_state": best_state, "history": history,
            "photopop_version": __version__,
        }

    bar = progress_bar(max_epochs, min(epoch, max_epochs), quiet)
    try:
        while not stopped and epoch < max_epochs:
            epoch += 1
            step.begin_epoch(epoch)
            for batch in step.batches(epoch):
                opt = step.optimizer
                opt.zero_grad(set_to_none=True)
                with autocast(device, use_amp, step.amp_dtype):
                    loss = step.loss(batch)
                scaler.scale(loss).backward()
                if step.grad_clip > 0:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), step.grad_clip)
                scaler.step(opt)
                scaler.update()
                step.after_step(loss)
            rec = step.end_epoch(epoch)
            val_loss = float(rec["val_loss"])
            if math.isfinite(val_loss) and val_loss < best_loss - min_delta:
                best_loss, best_epoch, bad = val_loss, epoch, 0
                best_state = cpu_state(model)
            else:
                bad += 1
            stopped = patience is not None and bad >= patience
            history.append(rec)
            bar.update(1)
            bar.set_postfix(train=f"{rec.get('train_loss', math.nan):.4g}", val=f"{val_loss:.4g}", best=best_epoch)
            if ckpt and (epoch % checkpoint_every == 0 or stopped or epoch >= max_epochs):
                save_checkpoint(ckpt, snapshot())
            if callback is not None:
                callback(epoch, rec)
    finally:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return LoopResult(history, best_epoch, best_loss, epoch, stopped, resumed_from, best_state)
