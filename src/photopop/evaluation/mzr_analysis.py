"""The mass-metallicity relation (MZR) traced by predicted and by true metallicities (Wu & Boada 2019, Fig. 6).

Wu & Boada ask whether the CNN's residuals are random (they would widen the MZR) or follow a hidden
variable (the MZR stays as tight). For each 0.2 dex bin of *true* stellar mass this module gives,
for a metallicity column (predicted or true):

* ``median``        running median of the metallicity;
* ``rmse``          RMS of the metallicity about the reference relation (e.g. Tremonti et al. 2004,
                    eq. 2 of the paper), or about the bin's median when no relation is given;
* ``nmad``          1.4826 median |Z - median(Z)| (scatter about the bin's own median, robust);
* ``std``           standard deviation about the bin mean (the usual "sigma" of the MZR);
* ``n``             galaxies in the bin.

The statistics come from `photopop.evaluation.metrics.binned_stats` (one metrics module); the
reference relation is passed in as a function so this module does not depend on the simulator.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from ..errors import InputError, MismatchError
from .metrics import binned_stats, nmad, rmse

Relation = Callable[[np.ndarray], np.ndarray]


def mass_bin_edges(logm: Any, width: float = 0.2, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Edges of `width`-dex bins aligned to multiples of `width`, covering the finite masses (or [lo, hi])."""
    if not width > 0:
        raise InputError(f"mass bin width must be > 0, got {width}")
    x = np.asarray(logm, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0 and (lo is None or hi is None):
        raise InputError("no finite stellar masses to bin")
    lo = float(np.floor(x.min() / width) * width) if lo is None else float(lo)
    hi = float(np.ceil(x.max() / width) * width) if hi is None else float(hi)
    if hi <= lo:
        hi = lo + width
    n = int(np.ceil(round((hi - lo) / width, 9)))
    return np.round(lo + width * np.arange(n + 1), 10)  # no 8.799999999999999 edges


def binned_mzr(logm: Any, z: Any, relation: Relation | None = None, width: float = 0.2,
               edges: np.ndarray | None = None, min_count: int = 1) -> pd.DataFrame:
    """MZR statistics of metallicities `z` in bins of stellar mass `logm` (see the module doc).

    Columns: lo, hi, centre, n, median, rmse (about `relation`, or about the bin median), nmad, std,
    relation (the reference at the bin centre, NaN without one). Bins with fewer than `min_count`
    galaxies keep their row with NaN statistics.
    """
    m = np.asarray(logm, dtype=float).ravel()
    zz = np.asarray(z, dtype=float).ravel()
    if m.shape != zz.shape:
        raise MismatchError(f"{m.size} stellar masses but {zz.size} metallicities")
    ok = np.isfinite(m) & np.isfinite(zz)
    if not ok.any():
        raise InputError("no galaxy has both a finite stellar mass and metallicity")
    edges = mass_bin_edges(m[ok], width) if edges is None else np.asarray(edges, dtype=float)
    # scatter about the running median: reference = per-row bin median (first pass)
    first = binned_stats(np.zeros_like(zz), zz, by=m, bins=edges)
    codes = np.searchsorted(edges, m, side="right") - 1
    codes[m == edges[-1]] = edges.size - 2
    inside = ok & (codes >= 0) & (codes < edges.size - 1)
    med_row = np.full(m.size, np.nan)
    med_row[inside] = first["median"].to_numpy()[codes[inside]]
    if relation is not None:
        ref_row = np.asarray(relation(m), dtype=float)
        about = binned_stats(ref_row, zz, by=m, bins=edges)
    else:
        about = binned_stats(med_row, zz, by=m, bins=edges)
    centre = 0.5 * (edges[:-1] + edges[1:])
    n = first["n"].to_numpy()
    std = _binned_std(m[inside], zz[inside], edges)
    out = pd.DataFrame({
        "lo": edges[:-1], "hi": edges[1:], "centre": centre, "n": n,
        "median": first["median"].to_numpy(),
        "rmse": about["rmse"].to_numpy(),
        "nmad": first["nmad"].to_numpy(),
        "std": std,
        "relation": np.asarray(relation(centre), dtype=float) if relation is not None else np.full(centre.size, np.nan),
    })
    few = out["n"] < max(min_count, 1)
    out.loc[few, ["median", "rmse", "nmad", "std"]] = np.nan
    return out


def _binned_std(m: np.ndarray, z: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Population standard deviation of z in each mass bin (NaN when empty), vectorised."""
    nb = edges.size - 1
    codes = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, nb - 1)
    cnt = np.bincount(codes, minlength=nb).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(codes, weights=z, minlength=nb) / cnt
        var = np.bincount(codes, weights=(z - mean[codes]) ** 2, minlength=nb) / cnt
    return np.sqrt(var)


def mzr_comparison(logm: Any, z_true: Any, z_pred: Any, relation: Relation | None = None, width: float = 0.2,
                   mass_range: tuple[float, float] | None = None, min_count: int = 5) -> dict[str, Any]:
    """Fig. 6 in numbers: the binned MZR of the true and of the predicted metallicities, and the
    global scatter of each about the relation (or, without one, about the binned medians).

    Returns {"edges", "true": DataFrame, "pred": DataFrame, "scatter": {"true": {"rmse", "nmad"},
    "pred": {...}}, "mass_range"}. Global scatter uses galaxies inside `mass_range` (default: all).
    """
    m = np.asarray(logm, dtype=float).ravel()
    zt = np.asarray(z_true, dtype=float).ravel()
    zp = np.asarray(z_pred, dtype=float).ravel()
    if not (m.shape == zt.shape == zp.shape):
        raise MismatchError(f"lengths differ: {m.size} masses, {zt.size} true and {zp.size} predicted metallicities")
    ok = np.isfinite(m) & np.isfinite(zt) & np.isfinite(zp)
    if mass_range is not None:
        ok &= (m >= mass_range[0]) & (m <= mass_range[1])
    if not ok.any():
        raise InputError("no galaxies with finite mass and metallicities in the mass range")
    edges = mass_bin_edges(m[ok], width)
    true_tab = binned_mzr(m[ok], zt[ok], relation, width, edges, min_count)
    pred_tab = binned_mzr(m[ok], zp[ok], relation, width, edges, min_count)
    scatter = {}
    for name, zz, tab in (("true", zt[ok], true_tab), ("pred", zp[ok], pred_tab)):
        if relation is not None:
            resid = zz - np.asarray(relation(m[ok]), dtype=float)
        else:
            codes = np.clip(np.searchsorted(edges, m[ok], side="right") - 1, 0, edges.size - 2)
            resid = zz - tab["median"].to_numpy()[codes]
        scatter[name] = {"rmse": rmse(resid), "nmad": nmad(resid), "n": int(np.isfinite(resid).sum())}
    return {"edges": edges, "true": true_tab, "pred": pred_tab, "scatter": scatter,
            "mass_range": None if mass_range is None else list(mass_range)}
