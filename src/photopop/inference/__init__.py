"""photopop.inference: survey-scale prediction from saved models (see docs/inference.md).

`predict_catalog` streams catalogues (Parquet, FITS, CSV) into a resumable, partitioned Parquet
dataset, optionally over a Dask cluster; `predict_cube` turns image cubes into target maps that keep
the WCS; `load_model` reads any registered model folder as a predictor.

Names are imported lazily so that importing the package does not pull in torch or dask.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Predictor": "predict", "PredictReport": "predict", "SEDPredictor": "predict", "as_predictor": "predict",
    "load_model": "predict", "register_model_kind": "predict", "predict_catalog": "predict",
    "predict_chunk": "predict", "predict_inputs": "predict",
    "CubeReport": "cubes", "predict_cube": "cubes", "predict_cubes": "cubes", "read_cube_layout": "cubes",
    "open_client": "distributed",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
