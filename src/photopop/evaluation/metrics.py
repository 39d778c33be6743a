"""The one metrics module: scatter, bias and outlier statistics of prediction residuals.

Residuals are always ``pred - truth`` (as Delta Z = Z_pred - Z_true in Wu & Boada 2019).
Every function takes array-like input, flattens it and ignores non-finite values (NaN, +-inf);
an input with no finite value gives NaN, never a warning. `scores` and `binned_stats` work on
(truth, pred) pairs and drop a row when either value is non-finite, reporting how many were dropped.

Formulas (x = residuals):

* RMSE = sqrt(mean(x^2)) -- scatter about zero, so it includes any bias.
* NMAD = 1.4826 * median(|x - median(x)|) (Wu & Boada 2019, eq. 1) -- scatter about the median,
  equal to sigma for a Gaussian and insensitive to outliers.
* robust sigma ("robust standard deviation, calculated from the median absolute deviation",
  Liew-Cain et al. 2021) -- the same formula as NMAD; both names are kept because the two papers use them.
* bias = median(x) (robust); mean_bias = mean(x).
* outlier fraction = fraction of |x| > k * sigma, sigma = NMAD(x) unless given.
* Pearson r between two variables (e.g. the age and metallicity residuals).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, MismatchError
from .binning import BinSpec, assign_bins, bin_edges, group_median, group_sum

#: 1 / Phi^-1(3/4) to the precision the papers quote: NMAD of a Gaussian equals its sigma.
NMAD_SCALE = 1.4826


def _as_float(x: Any, name: str = "values") -> np.ndarray:
    try:
        return np.asarray(x, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be numeric ({exc})") from exc


def _finite(x: Any) -> np.ndarray:
    x = _as_float(x)
    return x[np.isfinite(x)]


def residuals(truth: Any, pred: Any) -> np.ndarray:
    """pred - truth, after checking that both have the same length."""
    t, p = _as_float(truth, "truth"), _as_float(pred, "pred")
    if t.shape != p.shape:
        raise MismatchError(f"truth has {t.size} values but pred has {p.size}")
    return p - t


def rmse(x: Any) -> float:
    """Root-mean-square of residuals `x` (about zero, so bias is included)."""
    x = _finite(x)
    return float(np.sqrt(np.mean(x * x))) if x.size else float("nan")


def nmad(x: Any) -> float:
    """Normalised median absolute deviation, 1.4826 * median(|x - median(x)|)."""
    x = _finite(x)
    if x.size == 0:
        return float("nan")
    return float(NMAD_SCALE * np.median(np.abs(x - np.median(x))))


def robust_sigma(x: Any) -> float:
    """Robust standard deviation from the median absolute deviation (Liew-Cain et al. 2021).

    Identical to `nmad`: 1.4826 * MAD, which equals sigma for Gaussian residuals.
    """
    return nmad(x)


def bias(x: Any) -> float:
    """Median residual (robust bias)."""
    x = _finite(x)
    return float(np.median(x)) if x.size else float("nan")


def mean_bias(x: Any) -> float:
    """Mean residual."""
    x = _finite(x)
    return float(np.mean(x)) if x.size else float("nan")


def outlier_fraction(x: Any, k: float = 3.0, sigma: float | None = None) -> float:
    """Fraction of residuals with |x| > k * sigma; sigma defaults to NMAD(x).

    The residual is measured from zero (the truth), not from the median, so a biased estimator
    has more outliers. With sigma = 0 any non-zero residual is an outlier.
    """
    from ..validate import finite_float

    k = finite_float(k, "outlier threshold k", minimum=0.0, strict_minimum=True)
    x = _finite(x)
    if x.size == 0:
        return float("nan")
    s = nmad(x) if sigma is None else float(sigma)
    if not np.isfinite(s) or s < 0:
        raise InputError(f"outlier sigma must be a finite number >= 0, got {sigma}")
    return float(np.mean(np.abs(x) > k * s))


def pearson_r(a: Any, b: Any) -> float:
    """Pearson correlation coefficient of the pairs where both `a` and `b` are finite.

    NaN if fewer than two pairs remain or either variable is constant.
    """
    a, b = _as_float(a, "a"), _as_float(b, "b")
    if a.shape != b.shape:
        raise MismatchError(f"pearson_r: {a.size} values against {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 2:
        return float("nan")
    da, db = a - a.mean(), b - b.mean()
    den = np.sqrt(np.sum(da * da) * np.sum(db * db))
    return float(np.sum(da * db) / den) if den > 0 else float("nan")


def _pairs(truth: Any, pred: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t, p = _as_float(truth, "truth"), _as_float(pred, "pred")
    if t.shape != p.shape:
        raise MismatchError(f"truth has {t.size} values but pred has {p.size}")
    ok = np.isfinite(t) & np.isfinite(p)
    return t, p, ok


def scores(truth: Any, pred: Any, outlier_k: float = 3.0, outlier_sigma: float | None = None) -> dict[str, Any]:
    """Summary figures of pred against truth.

    Returns n, rmse, nmad, robust_sigma, bias (median), mean_bias, outlier_fraction, outlier_k and
    n_nan_excluded (rows where truth or pred is NaN/inf, dropped before everything else).
    Raises InputError if no row has both values finite.

    Parameters
    ----------
    truth, pred : array_like
        The same number of values (residuals are ``pred - truth``); astropy columns work too.
    outlier_k : float
        Outliers are residuals beyond `outlier_k` times `outlier_sigma` from zero.
    outlier_sigma : float, optional
        The scale for outliers (default: the residuals' NMAD).

    Returns
    -------
    dict
        The figures above (floats, and ints for the counts).

    Examples
    --------
    >>> s = scores([9.0, 9.5, 10.0, 8.8], [9.1, 9.4, 10.0, 8.8])
    >>> s["n"], round(s["rmse"], 6), round(s["bias"], 6), s["n_nan_excluded"]
    (4, 0.070711, 0.0, 0)
    >>> scores([1.0, float("nan")], [1.2, 2.0])["n_nan_excluded"]
    1
    """
    t, p, ok = _pairs(truth, pred)
    n = int(ok.sum())
    if n == 0:
        raise InputError(f"no rows with finite truth and prediction (all {t.size} rows have NaN/inf)")
    x = p[ok] - t[ok]
    s = nmad(x)
    return {
        "n": n,
        "rmse": rmse(x),
        "nmad": s,
        "robust_sigma": s,
        "bias": bias(x),
        "mean_bias": mean_bias(x),
        "outlier_fraction": outlier_fraction(x, outlier_k, outlier_sigma),
        "outlier_k": float(outlier_k),
        "n_nan_excluded": int(t.size - n),
    }


def _group_table(t: np.ndarray, p: np.ndarray, codes: np.ndarray, n_groups: int) -> dict[str, np.ndarray]:
    """n, median(pred), bias, rmse, nmad of residuals per group code, all groups at once."""
    x = p - t
    n = np.bincount(codes[codes >= 0], minlength=n_groups)[:n_groups]
    med_x = group_median(x, codes, n_groups)
    dev = np.where(codes >= 0, np.abs(x - med_x[np.maximum(codes, 0)]), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(group_sum(x * x, codes, n_groups) / n)
    rms[n == 0] = np.nan
    return {
        "n": n.astype(np.int64),
        "median": group_median(p, codes, n_groups),
        "bias": med_x,
        "rmse": rms,
        "nmad": NMAD_SCALE * group_median(dev, codes, n_groups),
    }


def binned_stats(truth: Any, pred: Any, by: Any = None, bins: BinSpec = None) -> pd.DataFrame:
    """Running statistics in bins of `by` (default: the truth), as in Wu & Boada (2019) Fig. 3.

    Columns: lo, hi (bin edges), n, median (running median of pred), bias (median residual),
    rmse and nmad of the residuals. Empty bins are kept with n = 0 and NaN statistics.
    `bins`: None -> Freedman-Diaconis edges; int -> that many equal-width bins; str -> a numpy
    rule; sequence -> explicit edges. Rows with non-finite truth, pred or `by`, and rows outside
    the edges, are left out; ``df.attrs['n_excluded']`` says how many.
    """
    t, p, ok = _pairs(truth, pred)
    b = t if by is None else _as_float(by, "by")
    if b.shape != t.shape:
        raise MismatchError(f"binning variable has {b.size} values but truth has {t.size}")
    ok &= np.isfinite(b)
    if not ok.any():
        raise InputError("no rows with finite truth, prediction and binning variable")
    edges = bin_edges(b[ok], bins)
    codes = np.where(ok, assign_bins(b, edges), -1)
    n_bins = edges.size - 1
    table = _group_table(t, p, codes, n_bins)
    df = pd.DataFrame({"lo": edges[:-1], "hi": edges[1:], **table})
    df.attrs["n_excluded"] = int(t.size - (codes >= 0).sum())
    return df


def grouped_stats(truth: Any, pred: Any, groups: Any) -> pd.DataFrame:
    """Per-group (e.g. per-galaxy) n, median pred, bias, rmse and nmad, indexed by group id.

    Rows with non-finite truth or pred are left out; groups left with no rows are dropped.
    """
    t, p, ok = _pairs(truth, pred)
    g = np.asarray(groups).ravel()
    if g.shape != t.shape:
        raise MismatchError(f"groups has {g.size} values but truth has {t.size}")
    labels, codes = np.unique(g[ok], return_inverse=True)
    full = np.full(t.size, -1, dtype=np.int64)
    full[ok] = codes
    table = _group_table(t, p, full, labels.size)
    return pd.DataFrame(table, index=pd.Index(labels, name="group"))
