"""Radial gradients with a Monte Carlo subsampling error, and their comparison.

Follows Liew-Cain et al. (2021), Sect. 3.3: for each galaxy with at least 25 points inside R_e
and at least one outside, fit value = a + b r by least squares to the points inside R_e, repeat on
100 random subsamples of 75 per cent of those points (drawn without replacement) and report the mean
and standard deviation of the slopes. All galaxies and all draws are fitted at once with closed-form
weighted least-squares sums; galaxies are processed in chunks of similar size to bound memory.
The geometry (deprojected radii, inclinations) and the per-galaxy least-squares line live in
`photopop.geometry`, below datasets/ and simulate/, which use them too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..geometry import centre_chunk, flat_points, padded_chunks, select_inside, weighted_line
from .metrics import bias, nmad, rmse

def _fit_chunk(
    r: np.ndarray, v: np.ndarray, valid: np.ndarray, m: np.ndarray, n_boot: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Full and subsampled fits for a padded (galaxies, points) chunk; m points per draw per galaxy."""
    rbar, vbar, rc, vc, full_b = centre_chunk(r, v, valid)
    keys = rng.random((n_boot, *r.shape))
    keys[:, ~valid] = np.inf  # padding never drawn
    kth = np.take_along_axis(np.sort(keys, axis=-1), (m - 1)[None, :, None], axis=-1)
    w = (keys <= kth).astype(float)  # exactly m_g random points of galaxy g in every draw
    b, a = weighted_line(w, rc[None], vc[None])
    a = a + vbar - b * rbar  # back to uncentred intercept
    return {
        "slope": full_b,
        "slope_mean": b.mean(0),
        "slope_std": b.std(0, ddof=1) if n_boot > 1 else np.full(b.shape[1], np.nan),
        "intercept": a.mean(0),
    }


def radial_gradients(
    r: Any,
    value: Any,
    group_ids: Any,
    r_max: float = 1.0,
    min_inside: int = 25,
    min_outside: int = 1,
    n_boot: int = 100,
    frac: float = 0.75,
    seed: int | np.random.Generator = 0,
) -> pd.DataFrame:
    """Linear radial gradient d(value)/dr inside r_max for every galaxy (Liew-Cain et al. 2021).

    A galaxy is `selected` if it has >= `min_inside` points with r < r_max and >= `min_outside`
    points with r > r_max (rows with non-finite r or value are ignored). For selected galaxies,
    `slope` is the least-squares slope of all points inside r_max; `n_boot` subsamples of
    m = round(frac * n_inside) points (without replacement) give `slope_mean`, `slope_std`
    (ddof=1) and `intercept` (mean of the subsample intercepts). `slope_err` =
    slope_std * sqrt(m / (n_inside - m)) is the delete-d jackknife standard error of the slope
    (Shao & Wu 1989): the subsample scatter alone understates the slope error by that factor
    (sqrt(1/3) for 75 per cent). Units are value units per unit of r (dex / R_e with r in R_e).
    Same seed and input give the same numbers; inputs that share r (truth and prediction of the
    same spaxels) get the same subsamples, so their gradients are compared draw by draw.
    Returns a DataFrame indexed by group id with columns n_inside, n_outside, selected, slope,
    slope_mean, slope_std, slope_err, intercept (NaN for galaxies not selected).
    """
    rr, vv, gg = flat_points(r, value, group_ids, "radial_gradients")
    if not 0 < frac <= 1:
        raise InputError(f"subsample fraction must be in (0, 1], got {frac}")
    if n_boot < 1:
        raise InputError(f"n_boot must be >= 1, got {n_boot}")
    if min_inside < 2:
        raise InputError(f"min_inside must be >= 2 to fit a line, got {min_inside}")
    rng = np.random.default_rng(seed)
    pts = select_inside(rr, vv, gg, r_max, min_inside, min_outside)
    labels, n_in, n_out, selected = pts.labels, pts.n_inside, pts.n_outside, pts.selected
    n_gal = labels.size
    m_all = np.clip(np.rint(frac * n_in).astype(np.int64), 2, None)

    cols = {k: np.full(n_gal, np.nan) for k in ("slope", "slope_mean", "slope_std", "intercept")}
    for gal, rp, vp, valid in padded_chunks(pts, n_boot):  # same sizes and draws as one pass over galaxies
        out = _fit_chunk(rp, vp, valid, m_all[gal], n_boot, rng)
        for k, arr in out.items():
            cols[k][gal] = arr

    m = m_all.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(n_in > m, np.sqrt(m / (n_in - m)), np.nan)
    df = pd.DataFrame(
        {
            "n_inside": n_in.astype(np.int64),
            "n_outside": n_out.astype(np.int64),
            "selected": selected,
            "slope": cols["slope"],
            "slope_mean": cols["slope_mean"],
            "slope_std": cols["slope_std"],
            "slope_err": np.where(selected, cols["slope_std"] * scale, np.nan),
            "intercept": cols["intercept"],
        },
        index=pd.Index(labels, name="galaxy_id"),
    )
    return df


def compare_gradients(grad_a: Any, grad_b: Any, column: str = "slope_mean") -> dict[str, float]:
    """Scatter of gradient differences b - a over galaxies selected in both (Liew-Cain et al. Fig. 7).

    `grad_a`, `grad_b`: DataFrames from `radial_gradients` (aligned on their index; `column` used)
    or Series of gradients indexed by galaxy. Returns n, robust_sigma (1.4826 MAD), bias (median
    difference) and rmse.
    """
    a, b = _gradient_series(grad_a, column), _gradient_series(grad_b, column)
    joined = pd.concat({"a": a, "b": b}, axis=1, join="inner").dropna()
    d = (joined["b"] - joined["a"]).to_numpy()
    return {"n": int(d.size), "robust_sigma": nmad(d), "bias": bias(d), "rmse": rmse(d)}


def _gradient_series(g: Any, column: str) -> pd.Series:
    if isinstance(g, pd.DataFrame):
        if column not in g.columns:
            raise InputError(f"gradient table has no column {column!r}; columns: {list(g.columns)}")
        s = g[column]
        if "selected" in g.columns:
            s = s[g["selected"].astype(bool)]
        return s.astype(float)
    if isinstance(g, pd.Series):
        return g.astype(float)
    raise InputError("compare_gradients expects DataFrames from radial_gradients or pandas Series")
