"""photopop.training: the SED CNN training loop (early stopping, checkpoints, resume), `SEDRegressor`, Optuna tuning."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "fit", "TrainResult": "fit", "train_network": "fit", "build_network": "fit",
    "SEDRegressor": "fit", "SEDRegressorConfig": "fit",
    "resolve_device": "device",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "TuneConfig": "tune", "SearchSpace": "tune", "TuneResult": "tune",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
