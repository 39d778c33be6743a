"""Training checkpoints: one file holding everything needed to resume a run bit for bit.

A checkpoint stores the model, optimizer and scheduler states, the torch RNG states (global CPU,
CUDA, and the shuffling generator), the epoch, the early-stopping state (best weights, best loss,
epochs without improvement), the learning-curve history and a fingerprint of the config and data.
It is written atomically (temporary file + rename), so a run killed mid-write keeps the previous
checkpoint intact.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..hashing import array_hash, json_hash
from ..io import atomic_path, torch_save

CHECKPOINT_VERSION = 1
#: what torch.load raises for a truncated, damaged or foreign file (anything else is a bug and propagates)
_LOAD_ERRORS = (OSError, RuntimeError, EOFError, ValueError, KeyError, TypeError, pickle.UnpicklingError)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` (tensors, numbers, strings, lists, dicts) atomically with torch.save."""
    state = dict(state, checkpoint_version=CHECKPOINT_VERSION)
    with atomic_path(path) as tmp:
        torch_save(state, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """Read a checkpoint, or None if there is none; InputError naming the file if it is corrupt."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except _LOAD_ERRORS as exc:
        raise InputError(f"{path}: corrupt checkpoint ({type(exc).__name__}: {exc}); delete it to start over") from exc
    if not isinstance(state, dict) or state.get("checkpoint_version") != CHECKPOINT_VERSION:
        raise InputError(f"{path}: not a photopop checkpoint (version {CHECKPOINT_VERSION}); delete it to start over")
    return state


def data_fingerprint(*arrays: np.ndarray | torch.Tensor) -> str:
    """sha256 over the shapes and float64 values of the training/validation arrays (`hashing.array_hash`)."""
    return array_hash(*(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a for a in arrays))


def settings_fingerprint(settings: dict[str, Any]) -> str:
    """sha256 of a JSON-able settings dict (sorted keys; `hashing.json_hash`)."""
    return json_hash(settings)
