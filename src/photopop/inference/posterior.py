"""Posterior models as predictors: quantiles, correlation and OOD flag per row, or raw samples.

`PosteriorPredictor` wraps a `photopop.models.posterior_model.SavedPosterior` for `predict_catalog`
(and so for ``photopop predict``, Dask workers and image cubes): it asks for the ``magerr_<band>``
(and e.g. ``redshift``) columns through ``extra_columns`` and returns per row ``<t>_p025``,
``<t>_p16``, ``<t>_p50``, ``<t>_p84``, ``<t>_p975``, ``corr_log_age_zh``, ``ood_score`` and
``ood_flag`` (1.0 beyond the model's threshold, 0.0 inside, NaN where nothing was predicted).

`SamplesPredictor` returns the draws themselves, one row per object with columns ``<t>_s<k>``
(float32), so `predict_samples` writes them as a separate Parquet dataset with the same streamed,
atomic, resumable machinery (and Dask path) as every prediction. Draws are seeded: the same rows,
seed and batch size give the same numbers.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..errors import InputError
from .catalog import predict_catalog
from .predictors import BasePredictor
from .reports import PredictReport

DEFAULT_SAMPLES = 1000


class PosteriorPredictor(BasePredictor):
    """A `SavedPosterior` as a `Predictor` bound to a device, batch size, draw count and seed (picklable)."""

    def __init__(self, model: Any, device: str = "auto", batch_size: int = 1024, n_samples: int | None = None,
                 seed: int = 0, path: str | Path | None = None) -> None:
        super().__init__(model, device=device, batch_size=batch_size, path=path)
        self.n_samples = int(n_samples or model.meta.get("n_samples", DEFAULT_SAMPLES))
        if self.n_samples < 1:
            raise InputError(f"n_samples must be >= 1, got {self.n_samples}")
        self.seed = int(seed)
        self.model_hash = posterior_hash(model, self.n_samples, self.seed)

    @property
    def targets(self) -> list[str]:
        """The p50 columns stand for the targets (what `predict_chunk` checks)."""
        return [f"{t}_p50" for t in self.model.targets]

    @property
    def extra_columns(self) -> list[str]:
        return list(self.model.extra_columns)

    @property
    def output_columns(self) -> list[str]:
        return self.model.output_columns()

    def _inputs(self, df: pd.DataFrame) -> np.ndarray:
        return self.model.frame_inputs(df, bands=self.bands)

    def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """Quantiles, correlation, ood_score and ood_flag for the rows of `df`."""
        x = self._inputs(df)
        samples, ctx = self.model.sample_inputs(x, self.n_samples, self.seed, self.batch_size, self.device,
                                                with_context=True, raw=True)
        return self.model.summarise(samples, ctx, raw=True)[self.output_columns]


class SamplesPredictor(PosteriorPredictor):
    """Posterior draws as columns ``<t>_s<k>`` (float32), one row per object."""

    def __init__(self, model: Any, **kw: Any) -> None:
        kw.pop("path", None)  # an in-memory predictor: Dask ships it to the workers
        super().__init__(model, **kw)
        self.model_hash = hashlib.sha256((self.model_hash + ":samples").encode()).hexdigest()

    @property
    def targets(self) -> list[str]:
        return [f"{t}_s0000" for t in self.model.targets]

    @property
    def output_columns(self) -> list[str]:
        return [f"{t}_s{k:04d}" for t in self.model.targets for k in range(self.n_samples)]

    def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        samples = self.model.sample_inputs(self._inputs(df), self.n_samples, self.seed, self.batch_size, self.device)
        n = samples.shape[1]
        wide = np.ascontiguousarray(samples.transpose(1, 2, 0)).reshape(n, -1)  # target-major per row
        return pd.DataFrame(wide, columns=self.output_columns)


def posterior_hash(model: Any, n_samples: int, seed: int) -> str:
    """sha256 of the weights, normalisation, OOD statistics, prediction meta, draw count and seed."""
    import json

    h = hashlib.sha256()
    for name, tensor in sorted(model.network.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    keys = ("bands", "filter_system", "targets", "nan_policy", "use_magerr", "extra_columns", "ood_threshold")
    h.update(json.dumps({"meta": {k: model.meta.get(k) for k in keys}, "in": model.input_norm.to_dict(),
                         "out": model.target_norm.to_dict(), "n": int(n_samples), "seed": int(seed),
                         "ood": model.ood_mean.tolist(), "arch": repr(model.network.config),
                         "ood_parts": [None if v is None else np.asarray(v).tolist()
                                       for v in (getattr(model, "ood_principal", None), getattr(model, "ood_scales", None))],
                         "spread": model.meta.get("spread_factors"),
                         **({"spread95": model.meta["spread_factors_95"]} if model.meta.get("spread_factors_95") else {})},
                        sort_keys=True, default=str).encode())
    return h.hexdigest()


def predict_samples(model: Any, inputs: str | Path | Iterable[str | Path], out_dir: str | Path, n_samples: int,
                    *, seed: int = 0, device: str = "auto", batch_size: int = 1024, **kw: Any) -> PredictReport:
    """Write `n_samples` draws per object of every input row as a Parquet dataset (see `predict_catalog`).

    `model`: a posterior model folder, a `SavedPosterior` or a `PosteriorPredictor`. Chunks default to
    rows x samples of about 10^7 values so a part stays near 40 MB.
    """
    from ..models.posterior_model import SavedPosterior

    if isinstance(model, (str, Path)):
        model = SavedPosterior.load(model)
    inner = getattr(model, "model", model)
    if not isinstance(inner, SavedPosterior):
        raise InputError(f"posterior samples need a posterior model (kind 'sed-posterior'), got {type(inner).__name__}")
    pred = SamplesPredictor(inner, device=device, batch_size=batch_size, n_samples=n_samples, seed=seed)
    kw.setdefault("chunk_rows", max(1, 10_000_000 // (int(n_samples) * len(inner.targets))))
    return predict_catalog(pred, inputs, out_dir, device=device, batch_size=batch_size, **kw)
