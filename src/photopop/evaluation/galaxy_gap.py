"""The between-galaxy vs within-galaxy diagnostic of an SED table (`galaxy_gap`).

How much more galaxies differ from each other than the spaxels of one galaxy do, seen through the SEDs
alone: k-nearest-neighbour cross-prediction with Set A and Set B folds (Liew-Cain et al. 2021, Sect. 3.2)
and a variance decomposition of residuals. An evaluation of a table (the mock IFU survey's hidden
factors are built to produce the gap; docs/mock-ifu.md gives its values), hence here and not in simulate/.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..datasets.sed_table import SEDTable
from ..errors import InputError
from .metrics import rmse, robust_sigma


def _colour_features(table: SEDTable, which: str = "mag") -> np.ndarray:
    """Magnitudes minus each spaxel's mean magnitude (SED shape; brightness and distance removed)."""
    mags = table.magnitudes(which)
    return mags - mags.mean(axis=1, keepdims=True)


def _fold_ids(galaxy_id: np.ndarray, n_folds: int, by_galaxy: bool, rng: np.random.Generator) -> np.ndarray:
    """Set A: each galaxy's spaxels dealt into the folds in random order; Set B: whole galaxies per fold."""
    labels, codes = np.unique(galaxy_id, return_inverse=True)
    if by_galaxy:
        return rng.permutation(labels.size)[codes] % n_folds
    order = np.lexsort((rng.random(codes.size), codes))
    rank = np.empty(codes.size, dtype=np.int64)
    starts = np.searchsorted(codes[order], np.arange(labels.size))
    rank[order] = np.arange(codes.size) - starts[codes[order]]
    offset = rng.integers(0, n_folds, labels.size)[codes]
    return (rank + offset) % n_folds


def galaxy_gap(table: SEDTable, target: str = "log_age_true", n_folds: int = 4, n_neighbors: int = 10,
               features: str = "mag", seed: int = 0) -> dict[str, float]:
    """How much more galaxies differ from each other than spaxels of one galaxy do, seen through the SEDs.

    Two measures, both from regressions of `target` on the SED shape (magnitudes minus their mean,
    standardised on the training fold):

    * Set A vs Set B (Liew-Cain et al. 2021, Sect. 3.2): k-nearest-neighbour regression cross-validated
      with each galaxy's spaxels spread over the folds (A) or with whole galaxies held out (B);
      ``rmse_set_a``, ``rmse_set_b`` (and robust sigmas) and ``gap_ratio`` = rmse_set_b / rmse_set_a.
    * Variance decomposition of residuals into a between-galaxy part (spaxel-weighted variance of the
      per-galaxy mean residual) and a within-galaxy part (mean squared deviation from those means), with
      ``*_between_share`` = between / (between + within): for the Set B predictions (``set_b_*``: how much of
      the error on unseen galaxies is a galaxy-wide offset) and for one global linear ridge fit on all
      spaxels (``ridge_*``).
    """
    from sklearn.linear_model import Ridge
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.preprocessing import StandardScaler

    if target not in table.spaxels:
        raise InputError(f"galaxy_gap: no column {target!r} in the table")
    x = _colour_features(table, features)
    y = table.spaxels[target].to_numpy(dtype=np.float64)
    gid = table.spaxels["galaxy_id"].to_numpy()
    if np.unique(gid).size < n_folds:
        raise InputError(f"galaxy_gap needs at least n_folds={n_folds} galaxies")
    rng = np.random.default_rng(seed)
    out: dict[str, float] = {}
    frame = pd.DataFrame({"g": gid})

    def decompose(resid: np.ndarray, prefix: str) -> None:
        means = frame.assign(r=resid).groupby("g")["r"].transform("mean").to_numpy()
        between = float(np.mean((means - resid.mean()) ** 2))
        within = float(np.mean((resid - means) ** 2))
        out[f"{prefix}var_between"] = between
        out[f"{prefix}var_within"] = within
        out[f"{prefix}between_share"] = between / (between + within)

    for name, by_gal in (("set_a", False), ("set_b", True)):
        folds = _fold_ids(gid, n_folds, by_gal, rng)
        pred = np.empty_like(y)
        for f in range(n_folds):
            test = folds == f
            scaler = StandardScaler().fit(x[~test])
            model = KNeighborsRegressor(n_neighbors=n_neighbors).fit(scaler.transform(x[~test]), y[~test])
            pred[test] = model.predict(scaler.transform(x[test]))
        out[f"rmse_{name}"] = rmse(pred - y)
        out[f"robust_sigma_{name}"] = robust_sigma(pred - y)
        if by_gal:
            decompose(pred - y, "set_b_")
    out["gap_ratio"] = out["rmse_set_b"] / out["rmse_set_a"]
    xs = StandardScaler().fit_transform(x)
    decompose(y - Ridge(alpha=1.0).fit(xs, y).predict(xs), "ridge_")
    out.update(n_spaxels=float(y.size), n_galaxies=float(np.unique(gid).size))
    return out


__all__ = ["galaxy_gap"]
