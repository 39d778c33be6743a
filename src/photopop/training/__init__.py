"""photopop.training: the one training loop (early stopping, checkpoints, exact resume), the SED and image
trainers that supply its step, the estimators `SEDRegressor` and `ImageEstimator`, Optuna tuning."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "fit", "TrainResult": "fit", "train_network": "fit", "build_network": "fit",
    "SEDRegressor": "sed_regressor", "SEDRegressorConfig": "sed_regressor",
    "run_loop": "loop", "TrainStep": "loop",
    "ImageFitConfig": "image_fit", "fit_image_regressor": "image_fit",
    "ImageEstimator": "image_estimator", "ImageEstimatorConfig": "image_estimator",
    "resolve_device": "device",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "TuneConfig": "tune", "SearchSpace": "tune", "TuneResult": "tune",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
