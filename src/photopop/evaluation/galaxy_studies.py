"""Galaxy-level statistics of the Liew-Cain et al. (2021) studies (Sects. 4.2-4.6, Figs. 7-14, Table 1).

Pure functions on tables; nothing here trains a model (that is `photopop.experiments.studies`).

* `per_galaxy_residuals` -- median and robust standard deviation of pred - truth per galaxy (Figs. 10-12).
* `rank_bins` / `rank_binned_stats` -- bins of a fixed number of galaxies, consecutive in rank of a property
  (16 per bin in Figs. 10-12; 6 early / 10 late in Fig. 14), with the median and robust sigma (or the mean and
  standard deviation) of a value per bin.
* `property_dependence` -- per-galaxy residual statistics against galaxy properties, binned by rank.
* `gradient_differences` / `gradient_summary` -- per-galaxy gradient differences with errors (Figs. 7, 9).
* `morphology_table` -- Table 1: robust sigma per training set x application set x target.
* `training_size_summary` -- Fig. 13: mean and spread of the robust sigma over repeated trainings.
* `gradient_mass_bins` -- Fig. 14: gradient against stellar mass, binned by type.
* `mismatch_summary` -- bias and scatter added by predicting a mock built from another SSP library.

Residuals are pred - truth everywhere; robust sigma is 1.4826 MAD (`photopop.evaluation.metrics.nmad`).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError, MismatchError
from .gradients import compare_gradients
from .metrics import NMAD_SCALE, bias, grouped_stats, nmad, pearson_r

#: galaxy properties of Liew-Cain et al. Sect. 4.4 (columns of the galaxy table)
DEFAULT_PROPERTIES = ("log_ssfr", "inclination_deg", "a_v", "bulge_fraction")
STATISTICS = ("median", "mean")


def per_galaxy_residuals(galaxy_ids: Any, truth: Any, pred: Any) -> pd.DataFrame:
    """Per galaxy: n, median residual and robust sigma of pred - truth (Liew-Cain et al. Figs. 10-12).

    Returns a DataFrame indexed by `galaxy_id` with columns n, median_residual, robust_sigma. Rows with
    non-finite truth or prediction are ignored; galaxies left without rows are dropped.
    """
    g = grouped_stats(truth, pred, galaxy_ids)
    out = pd.DataFrame({"n": g["n"].to_numpy(), "median_residual": g["bias"].to_numpy(),
                        "robust_sigma": g["nmad"].to_numpy()}, index=pd.Index(g.index.to_numpy(), name="galaxy_id"))
    return out


def rank_bins(x: Any, per_bin: int, min_last: int | None = None) -> np.ndarray:
    """Bin code of every value: consecutive groups of `per_bin` values in rank order of `x`.

    Values are sorted (ties keep their input order, so the result is deterministic); bin k holds ranks
    k*per_bin .. (k+1)*per_bin - 1. A final, incomplete bin with fewer than `min_last` values
    (default per_bin // 2, at least 1) is merged into the bin before it, so no bin is smaller than that.
    Non-finite values get code -1.
    """
    if int(per_bin) != per_bin or per_bin < 1:
        raise InputError(f"galaxies per bin must be an integer >= 1, got {per_bin}")
    per_bin = int(per_bin)
    xx = np.asarray(x, dtype=float).ravel()
    ok = np.isfinite(xx)
    codes = np.full(xx.size, -1, dtype=np.int64)
    n = int(ok.sum())
    if n == 0:
        return codes
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(xx[idx], kind="stable")]
    bins = np.arange(n) // per_bin
    rest = n % per_bin
    limit = max(per_bin // 2, 1) if min_last is None else int(min_last)
    if rest and n > per_bin and rest < limit:
        bins[bins == bins[-1]] -= 1
    codes[order] = bins
    return codes


def rank_binned_stats(x: Any, y: Any, per_bin: int = 16, statistic: str = "median",
                      min_last: int | None = None) -> pd.DataFrame:
    """Statistics of `y` in bins of `per_bin` objects consecutive in rank of `x` (see `rank_bins`).

    statistic 'median': x_centre = median x, y_centre = median y, y_spread = robust sigma (1.4826 MAD) of y
    (Liew-Cain et al. Figs. 10-12: "median of bins of 16 galaxies ... robust standard deviation of the bin").
    statistic 'mean': x_centre = mean x, y_centre = mean y, y_spread = standard deviation (ddof=1; NaN for
    one object) of y (Fig. 14: "mean value for each bin ... error bars showing the standard deviation").
    Pairs with non-finite x or y are ignored. Columns: bin, n, x_lo, x_hi, x_centre, y_centre, y_spread.
    """
    if statistic not in STATISTICS:
        raise InputError(f"unknown bin statistic {statistic!r}; use one of {list(STATISTICS)}")
    xx = np.asarray(x, dtype=float).ravel()
    yy = np.asarray(y, dtype=float).ravel()
    if xx.shape != yy.shape:
        raise MismatchError(f"binning variable has {xx.size} values but y has {yy.size}")
    ok = np.isfinite(xx) & np.isfinite(yy)
    codes = rank_bins(np.where(ok, xx, np.nan), per_bin, min_last)
    keep = codes >= 0
    cols = ["bin", "n", "x_lo", "x_hi", "x_centre", "y_centre", "y_spread"]
    if not keep.any():
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    df = pd.DataFrame({"bin": codes[keep], "x": xx[keep], "y": yy[keep]})
    grp = df.groupby("bin", sort=True)
    if statistic == "median":
        y_spread = grp["y"].agg(lambda v: NMAD_SCALE * np.median(np.abs(v - np.median(v))))
        centre_x, centre_y = grp["x"].median(), grp["y"].median()
    else:
        y_spread = grp["y"].std(ddof=1)
        centre_x, centre_y = grp["x"].mean(), grp["y"].mean()
    out = pd.DataFrame({
        "bin": centre_x.index.to_numpy(np.int64),
        "n": grp.size().to_numpy(np.int64),
        "x_lo": grp["x"].min().to_numpy(),
        "x_hi": grp["x"].max().to_numpy(),
        "x_centre": centre_x.to_numpy(),
        "y_centre": centre_y.to_numpy(),
        "y_spread": y_spread.to_numpy(dtype=float),
    })
    return out[cols]


def property_dependence(residual_stats: pd.DataFrame, galaxies: pd.DataFrame,
                        properties: Sequence[str] = DEFAULT_PROPERTIES, per_bin: int = 16
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-galaxy residual median and robust sigma against galaxy properties (Liew-Cain et al. Sect. 4.4).

    `residual_stats`: from `per_galaxy_residuals` (indexed by galaxy_id). `galaxies`: the galaxy table
    (column galaxy_id plus `properties`). Returns (points, bins): points has one row per galaxy with the
    properties and the two statistics; bins (long format) has columns property, statistic
    ('median_residual' or 'robust_sigma'), then `rank_binned_stats` columns with the median and robust
    sigma of the per-galaxy statistic in bins of `per_bin` galaxies ranked by the property, and the
    Spearman rank correlation of property and statistic over the galaxies (columns spearman_r and its
    two-sided p-value spearman_p).
    """
    if "galaxy_id" not in galaxies.columns:
        raise InputError("galaxy table has no 'galaxy_id' column")
    missing = [p for p in properties if p not in galaxies.columns]
    if missing:
        raise InputError(f"galaxy table lacks property column(s) {missing}; columns: {list(galaxies.columns)}")
    points = residual_stats.join(galaxies.set_index("galaxy_id")[list(properties)], how="inner")
    if points.empty:
        raise MismatchError("no galaxy of the residual statistics is in the galaxy table")
    parts = []
    for prop in properties:  # a handful of properties x two statistics: tiny loops over columns
        for stat in ("median_residual", "robust_sigma"):
            b = rank_binned_stats(points[prop], points[stat], per_bin=per_bin, statistic="median")
            b.insert(0, "statistic", stat)
            b.insert(0, "property", prop)
            b["spearman_r"], b["spearman_p"] = spearman(points[prop], points[stat])
            parts.append(b)
    return points.reset_index(), pd.concat(parts, ignore_index=True)


def spearman_r(a: Any, b: Any) -> float:
    """Spearman rank correlation over pairs where both are finite (NaN for fewer than 3 pairs)."""
    return spearman(a, b)[0]


def spearman(a: Any, b: Any) -> tuple[float, float]:
    """(Spearman rank correlation, two-sided p-value of no correlation) over pairs where both are finite.

    scipy.stats.spearmanr; (NaN, NaN) for fewer than 3 pairs or a constant variable.
    """
    from scipy.stats import spearmanr

    aa, bb = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    ok = np.isfinite(aa) & np.isfinite(bb)
    if ok.sum() < 3 or np.ptp(aa[ok]) == 0 or np.ptp(bb[ok]) == 0:
        return float("nan"), float("nan")
    res = spearmanr(aa[ok], bb[ok])
    return float(res.statistic), float(res.pvalue)


# -- gradients ----------------------------------------------------------------------------------------------
def gradient_differences(reference: pd.DataFrame, other: pd.DataFrame, column: str = "slope_mean",
                         error: str = "slope_err") -> pd.DataFrame:
    """Per galaxy selected in both: the two gradients, their difference other - reference and its error.

    `reference`, `other`: tables from `radial_gradients`. `diff_err` = sqrt(err_ref^2 + err_other^2) of the
    `error` column: an upper bound, since truth and prediction share their Monte Carlo subsamples.
    """
    for name, tab in (("reference", reference), ("other", other)):
        missing = [c for c in (column, error, "selected") if c not in tab.columns]
        if missing:
            raise InputError(f"{name} gradient table lacks column(s) {missing}")
    a = reference[reference["selected"].astype(bool)]
    b = other[other["selected"].astype(bool)]
    j = a[[column, error]].add_suffix("_ref").join(b[[column, error]].add_suffix("_other"), how="inner")
    out = pd.DataFrame({
        "grad_ref": j[f"{column}_ref"], "grad_other": j[f"{column}_other"],
        "err_ref": j[f"{error}_ref"], "err_other": j[f"{error}_other"],
    })
    out["diff"] = out["grad_other"] - out["grad_ref"]
    out["diff_err"] = np.hypot(out["err_ref"], out["err_other"])
    out.index.name = "galaxy_id"
    return out.dropna(subset=["diff"])


def gradient_summary(reference: pd.DataFrame | pd.Series, other: pd.DataFrame | pd.Series,
                     column: str = "slope_mean") -> dict[str, float]:
    """n, robust_sigma, bias (median) and rmse of the gradient differences other - reference.

    Accepts `radial_gradients` tables or Series of gradients indexed by galaxy (e.g. the true gradients of
    a mock's galaxy table); wraps `photopop.evaluation.gradients.compare_gradients`.
    """
    return compare_gradients(reference, other, column=column)


# -- morphology cross-training (Table 1) --------------------------------------------------------------------
def morphology_table(predictions: pd.DataFrame, targets: Sequence[str] | None = None) -> pd.DataFrame:
    """Robust sigma of pred - truth per target, application set and training set (Liew-Cain et al. Table 1).

    `predictions`: long table with columns train_set (e.g. 'early', 'late', 'all'), appl_type ('early' or
    'late': the type of the predicted galaxy), target, truth, pred. The application set 'all' pools both
    types. Returns a DataFrame indexed by (target, appl_set) with one column per training set, plus
    attrs['n'] (same shape, number of rows used) for reading how solid each entry is.
    """
    need = ["train_set", "appl_type", "target", "truth", "pred"]
    missing = [c for c in need if c not in predictions.columns]
    if missing:
        raise InputError(f"morphology predictions lack column(s) {missing}")
    df = predictions[need].copy()
    if targets is not None:
        df = df[df["target"].isin(list(targets))]
    df = df[np.isfinite(df["truth"].to_numpy(float)) & np.isfinite(df["pred"].to_numpy(float))]
    if df.empty:
        raise InputError("no finite morphology predictions")
    df["res"] = df["pred"].to_numpy(float) - df["truth"].to_numpy(float)
    pooled = pd.concat([df, df.assign(appl_type="all")], ignore_index=True)
    grp = pooled.groupby(["target", "appl_type", "train_set"], sort=False)["res"]
    sig = grp.agg(nmad).unstack("train_set")
    cnt = grp.size().unstack("train_set")
    train_order = [t for t in ("early", "late", "all") if t in sig.columns] + \
        sorted(c for c in sig.columns if c not in ("early", "late", "all"))
    tgt_order = list(dict.fromkeys(targets if targets is not None else df["target"]))
    rows = [(t, a) for t in tgt_order for a in ("early", "late", "all") if (t, a) in sig.index]
    sig = sig.reindex(index=pd.MultiIndex.from_tuples(rows, names=["target", "appl_set"]), columns=train_order)
    cnt = cnt.reindex(index=sig.index, columns=train_order)
    sig.attrs["n"] = cnt.fillna(0).astype(np.int64)
    return sig


# -- training-set size (Fig. 13) ------------------------------------------------------------------------------
def training_size_summary(records: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread of the robust sigma over repeats, per scheme, fraction and target (Fig. 13).

    `records`: one row per trained model with columns scheme, fraction, repeat, target, robust_sigma and
    optionally random_robust_sigma (the random-draw prediction), n_train, n_train_galaxies. Returns columns
    scheme, fraction, target, n_repeats, mean, std (ddof=1 over repeats), sem (std / sqrt(n_repeats)),
    random_mean, n_train, n_train_galaxies (means over repeats).
    """
    need = ["scheme", "fraction", "repeat", "target", "robust_sigma"]
    missing = [c for c in need if c not in records.columns]
    if missing:
        raise InputError(f"training-size records lack column(s) {missing}")
    rec = records.copy()
    for opt in ("random_robust_sigma", "n_train", "n_train_galaxies"):
        if opt not in rec.columns:
            rec[opt] = np.nan
    grp = rec.groupby(["scheme", "fraction", "target"], sort=True)
    out = pd.DataFrame({
        "n_repeats": grp["robust_sigma"].count(),
        "mean": grp["robust_sigma"].mean(),
        "std": grp["robust_sigma"].std(ddof=1),
        "random_mean": grp["random_robust_sigma"].mean(),
        "n_train": grp["n_train"].mean(),
        "n_train_galaxies": grp["n_train_galaxies"].mean(),
    }).reset_index()
    out["sem"] = out["std"] / np.sqrt(out["n_repeats"])
    return out[["scheme", "fraction", "target", "n_repeats", "mean", "std", "sem", "random_mean", "n_train",
                "n_train_galaxies"]]


# -- gradient against mass (Fig. 14) --------------------------------------------------------------------------
def gradient_mass_bins(gradients: pd.Series, galaxies: pd.DataFrame,
                       per_bin: Mapping[str, int] | None = None, mass_column: str = "log_mstar",
                       statistic: str = "mean") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gradients against stellar mass per galaxy type, binned by rank of mass (Liew-Cain et al. Fig. 14).

    `gradients`: Series of gradients indexed by galaxy_id (NaN = not selected). `per_bin`: galaxies per
    bin for each type (default early 6, late 10, as the paper). Returns (points, bins): points has
    galaxy_id, type, log mass and gradient; bins has type plus the `rank_binned_stats` columns (mean and
    standard deviation by default, as the paper).
    """
    per_bin = dict(per_bin or {"early": 6, "late": 10})
    need = ["galaxy_id", "type", mass_column]
    missing = [c for c in need if c not in galaxies.columns]
    if missing:
        raise InputError(f"galaxy table lacks column(s) {missing}")
    g = galaxies.set_index("galaxy_id")[["type", mass_column]]
    pts = g.join(gradients.rename("gradient"), how="inner").dropna(subset=["gradient"])
    parts = []
    for typ, n_per in per_bin.items():  # two types
        sub = pts[pts["type"].astype(str) == typ]
        b = rank_binned_stats(sub[mass_column], sub["gradient"], per_bin=n_per, statistic=statistic)
        b.insert(0, "type", typ)
        parts.append(b)
    bins = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return pts.reset_index().rename(columns={"index": "galaxy_id"}), bins


# -- model mismatch -------------------------------------------------------------------------------------------
def mismatch_summary(truth_ref: Any, pred_ref: Any, truth_alt: Any, pred_alt: Any) -> dict[str, float]:
    """Bias and scatter added when the same models predict a mock built from another SSP library.

    ref: predictions of the training library's own mock (out-of-fold); alt: the same models on the same
    spaxels of the other library's mock, against that mock's labels. Returns n, bias_ref, bias_alt,
    robust_sigma_ref, robust_sigma_alt, added_bias = bias_alt - bias_ref and added_scatter =
    sqrt(max(sigma_alt^2 - sigma_ref^2, 0)) (the extra scatter in quadrature).
    """
    tr, pr = np.asarray(truth_ref, float).ravel(), np.asarray(pred_ref, float).ravel()
    ta, pa = np.asarray(truth_alt, float).ravel(), np.asarray(pred_alt, float).ravel()
    if not tr.size == pr.size == ta.size == pa.size:
        raise MismatchError("reference and other-library predictions must cover the same spaxels")
    ok = np.isfinite(tr) & np.isfinite(pr) & np.isfinite(ta) & np.isfinite(pa)
    xr, xa = pr[ok] - tr[ok], pa[ok] - ta[ok]
    s_ref, s_alt = nmad(xr), nmad(xa)
    added = float(np.sqrt(max(s_alt ** 2 - s_ref ** 2, 0.0))) if np.isfinite(s_alt + s_ref) else float("nan")
    return {
        "n": int(ok.sum()),
        "bias_ref": bias(xr), "bias_alt": bias(xa),
        "robust_sigma_ref": s_ref, "robust_sigma_alt": s_alt,
        "added_bias": bias(xa) - bias(xr),
        "added_scatter": added,
        "label_shift": bias(ta[ok] - tr[ok]),
    }


def residual_correlation(truth: Mapping[str, Any], pred: Mapping[str, Any],
                         pair: Iterable[str] = ("log_age", "zh")) -> float:
    """Pearson r between the residuals of two targets (Liew-Cain et al.: r = -0.24 for age and [Z/H])."""
    a, b = list(pair)
    for name in (a, b):
        if name not in truth or name not in pred:
            raise InputError(f"no truth/prediction for target {name!r}")
    return pearson_r(np.asarray(pred[a], float) - np.asarray(truth[a], float),
                     np.asarray(pred[b], float) - np.asarray(truth[b], float))
