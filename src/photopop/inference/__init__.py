"""photopop.inference: survey-scale prediction from saved models (see docs/inference.md).

`predict_catalog` streams catalogues (Parquet, FITS, CSV) into a resumable, partitioned Parquet
dataset, optionally over a Dask cluster; `predict_cube` turns image cubes into target maps that keep
the WCS; `load_model` reads any registered model folder as a predictor; `predict_inputs` (catalogues
or cubes) and `predict_table` (one in-memory table) are what the command line calls.

Modules, lowest first: `fingerprints`, `inputs`, `manifest`, `ids`, `readers`, `reports`,
`predictors`, `chunks`, `cube_layout`, `catalog`, `distributed`, `cubes`, `posterior`, `run`.

Names are imported lazily so that importing the package does not pull in torch or dask.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Predictor": "predictors", "BasePredictor": "predictors", "SEDPredictor": "predictors",
    "as_predictor": "predictors", "load_model": "predictors",
    "PredictReport": "reports", "predict_catalog": "catalog", "predict_chunk": "chunks",
    "predict_inputs": "run", "predict_table": "run",
    "CubeReport": "cubes", "predict_cube": "cubes", "predict_cubes": "cubes", "read_cube_layout": "cube_layout",
    "open_client": "distributed",
    "PosteriorPredictor": "posterior", "predict_samples": "posterior",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
