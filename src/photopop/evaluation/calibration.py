"""Calibration of predicted Gaussian uncertainties: coverage, PIT, z-scores and sigma recalibration.

For truth y, predicted mean mu and sigma, the standardised residual is z = (y - mu) / sigma. A
calibrated model has z ~ N(0, 1), so

* the central interval mu +- k sigma covers y with probability erf(k / sqrt 2): 68.27 % for k = 1,
  95.45 % for k = 2 (`coverage`);
* PIT = Phi(z) is uniform on [0, 1] (`pit`, `pit_histogram`): a U shape means sigmas too small,
  a hump means sigmas too large, a slope means a bias;
* std(z) = 1 (`z_std`).

Recalibration (`fit_sigma_scale`): one factor s per target so that mu +- s sigma covers 68.27 % of
held-out calibration rows: s = quantile_0.6827(|z|) on those rows (closed form). Fit it on rows the
network did not train on and that are not test rows (photopop: galaxies carved from the training
galaxies with `photopop.splits.carve_validation`, scheme 'B').
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import ndtr

from ..errors import InputError

#: probability inside +-1 and +-2 sigma of a Gaussian
P68 = math.erf(1.0 / math.sqrt(2.0))
P95 = math.erf(2.0 / math.sqrt(2.0))


def _triple(y: Any, mu: Any, sigma: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, mu, sigma = (np.asarray(a, dtype=np.float64).ravel() for a in (y, mu, sigma))
    if not (y.shape == mu.shape == sigma.shape):
        raise InputError(f"truth, mean and sigma differ in length: {y.size}, {mu.size}, {sigma.size}")
    keep = np.isfinite(y) & np.isfinite(mu) & np.isfinite(sigma)
    if np.any(sigma[keep] <= 0):
        raise InputError("predicted sigmas must be > 0")
    return y[keep], mu[keep], sigma[keep]


def z_scores(y: Any, mu: Any, sigma: Any) -> np.ndarray:
    """(y - mu) / sigma over the finite rows."""
    y, mu, sigma = _triple(y, mu, sigma)
    return (y - mu) / sigma


def coverage(y: Any, mu: Any, sigma: Any, k: float = 1.0) -> float:
    """Fraction of rows with |y - mu| <= k sigma (NaN if no finite rows)."""
    z = z_scores(y, mu, sigma)
    return float(np.mean(np.abs(z) <= k)) if z.size else math.nan


def pit(y: Any, mu: Any, sigma: Any) -> np.ndarray:
    """Probability integral transform Phi((y - mu) / sigma); uniform for calibrated Gaussians."""
    return ndtr(z_scores(y, mu, sigma))


def pit_histogram(pit_values: Any, n_bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(density per bin, bin edges) of PIT values on [0, 1]; a flat density of 1 is calibrated."""
    v = np.asarray(pit_values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if n_bins < 1:
        raise InputError(f"n_bins must be >= 1, got {n_bins}")
    counts, edges = np.histogram(v, bins=n_bins, range=(0.0, 1.0))
    density = counts / max(v.size, 1) * n_bins
    return density, edges


def z_std(y: Any, mu: Any, sigma: Any) -> float:
    """Standard deviation of z; 1 for calibrated sigmas (NaN with < 2 rows)."""
    z = z_scores(y, mu, sigma)
    return float(np.std(z, ddof=1)) if z.size > 1 else math.nan


def fit_sigma_scale(y: Any, mu: Any, sigma: Any, level: float = P68) -> float:
    """Factor s making mu +- s sigma cover `level` of the rows: s = quantile_level(|z|)."""
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be in (0, 1), got {level}")
    z = z_scores(y, mu, sigma)
    if z.size < 2:
        raise InputError(f"need at least 2 calibration rows to fit a sigma scale, got {z.size}")
    s = float(np.quantile(np.abs(z), level))
    if not s > 0:
        raise InputError("calibration residuals are all zero: cannot fit a sigma scale")
    return s


def coverage_curve(y: Any, mu: Any, sigma: Any, levels: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(nominal levels, empirical coverage) of central Gaussian intervals at each level."""
    from scipy.special import ndtri

    lv = np.linspace(0.05, 0.99, 20) if levels is None else np.asarray(levels, dtype=np.float64)
    z = np.abs(z_scores(y, mu, sigma))
    k = ndtri(0.5 + lv / 2.0)
    emp = (z[None, :] <= k[:, None]).mean(axis=1) if z.size else np.full(lv.shape, math.nan)
    return lv, emp


def coverage_error(p: float, n: int) -> float:
    """Binomial standard error sqrt(p (1 - p) / n) of a coverage fraction measured on n rows."""
    return math.sqrt(p * (1.0 - p) / n) if n > 0 else math.nan


def calibration_summary(y: Any, mu: Any, sigma: Any, scale: Any = 1.0) -> dict[str, float]:
    """Coverage (68/95, after `scale` and raw), z std (after/raw), the scale and n for one target.

    `scale` is one factor or one per row (e.g. per cross-validation fold); ``sigma_scale`` reports
    its mean over the rows.
    """
    y, mu, sigma = (np.asarray(a, dtype=np.float64).ravel() for a in (y, mu, sigma))
    sc = np.broadcast_to(np.asarray(scale, dtype=np.float64).ravel() if np.ndim(scale) else float(scale), sigma.shape)
    if not (y.shape == mu.shape == sigma.shape):
        raise InputError(f"truth, mean and sigma differ in length: {y.size}, {mu.size}, {sigma.size}")
    keep = np.isfinite(y) & np.isfinite(mu) & np.isfinite(sigma) & np.isfinite(sc)
    y, mu, sigma, sc = y[keep], mu[keep], sigma[keep], sc[keep]
    cal = sigma * sc
    return {"coverage_68": coverage(y, mu, cal, 1.0), "coverage_95": coverage(y, mu, cal, 2.0),
            "coverage_68_raw": coverage(y, mu, sigma, 1.0), "coverage_95_raw": coverage(y, mu, sigma, 2.0),
            "sigma_scale": float(np.mean(sc)) if sc.size else math.nan, "z_std": z_std(y, mu, cal),
            "z_std_raw": z_std(y, mu, sigma), "median_sigma": float(np.median(cal)) if y.size else math.nan,
            "n": int(y.size)}


def grouped_coverage_error(y: Any, mu: Any, sigma: Any, groups: Any, k: float = 1.0, n_boot: int = 500,
                           seed: int = 0) -> float:
    """Bootstrap standard error of `coverage` resampling whole groups (galaxies) with replacement.

    Errors of spaxels of one galaxy are correlated, so the binomial error understates the
    uncertainty of a coverage measured on a few dozen galaxies; this resamples galaxies instead.
    """
    y, mu, sigma, g = (np.asarray(a).ravel() for a in (y, mu, sigma, groups))
    if not (y.size == mu.size == sigma.size == g.size):
        raise InputError("truth, mean, sigma and groups differ in length")
    keep = np.isfinite(y.astype(float)) & np.isfinite(mu.astype(float)) & np.isfinite(sigma.astype(float))
    _, codes = np.unique(g[keep], return_inverse=True)
    if codes.size == 0:
        return math.nan
    inside = np.abs((y[keep] - mu[keep]) / sigma[keep]) <= k
    n_g = np.bincount(codes).astype(np.float64)
    in_g = np.bincount(codes, weights=inside.astype(np.float64))
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, n_g.size, size=(int(n_boot), n_g.size))
    cov = in_g[draw].sum(axis=1) / n_g[draw].sum(axis=1)
    return float(np.std(cov, ddof=1))
