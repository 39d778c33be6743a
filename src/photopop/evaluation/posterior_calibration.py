"""Calibration of posterior samples on held-out objects: interval coverage, SBC ranks, TARP, degeneracy.

For truths y (n, k) and posterior draws (S, n, k):

* coverage of the central 68.27 % / 95.45 % intervals per target (quantiles of the draws), through
  `photopop.evaluation.calibration.coverage` with centre (lo + hi) / 2 and half-width (hi - lo) / 2
  (|y - centre| <= half-width is y in [lo, hi]), and its galaxy-bootstrap error;
* simulation-based calibration (Talts et al. 2018): the rank of y among its S draws is uniform on
  0..S for a calibrated posterior; ranks from `sbi.diagnostics.sbc._run_sbc`, uniformity p-values from
  `sbi.diagnostics.sbc.check_uniformity_frequentist` (Kolmogorov-Smirnov), over all objects and, with
  groups, with one object per group (galaxy), whose ranks are independent (`grouped_sbc_pvalue`);
* TARP (Lemos et al. 2023), a joint test: `sbi.diagnostics.tarp._run_tarp` (expected coverage against
  credibility) and `check_tarp` (ATC: 0 calibrated, < 0 too narrow, > 0 too wide; KS p-value);
* width at equal coverage: every method's intervals scaled (one factor per target, the
  `fit_sigma_scale` closed form) so that exactly 68.27 % of the rows are inside, then the median width
  is compared, so a method cannot look sharp by under-covering;
* the age-[Z/H] degeneracy: mean per-object posterior correlation of the draws against the
  correlation of the point-estimate residuals over objects.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from .calibration import P68, P95, coverage, fit_sigma_scale, grouped_coverage_error
from .metrics import pearson_r


def central_interval(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) quantiles (n, k) of the central `level` interval of draws (S, n, k)."""
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(samples, [a, 1.0 - a], axis=0)
    return lo, hi


def interval_coverage(y: Any, lo: Any, hi: Any) -> float:
    """Fraction of finite rows with lo <= y <= hi (via the Gaussian-interval `coverage`)."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    half = np.maximum((hi - lo) / 2.0, np.finfo(np.float64).tiny)
    return coverage(y, (lo + hi) / 2.0, half, 1.0)


def width_at_coverage(y: Any, centre: Any, half_width: Any, level: float = P68) -> tuple[float, float]:
    """(median full width after scaling the intervals to cover `level` of the rows, the scale factor)."""
    s = fit_sigma_scale(y, centre, np.maximum(np.asarray(half_width, dtype=np.float64), 1e-12), level)
    return float(np.median(2.0 * s * np.asarray(half_width, dtype=np.float64))), s


def sbc_ranks(y: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """SBC ranks (n, k): how many of each object's draws lie below its truth (sbi's `_run_sbc`)."""
    import torch
    from sbi.diagnostics.sbc import _run_sbc

    th = torch.as_tensor(np.asarray(y, dtype=np.float32))
    xs = torch.zeros((th.shape[0], 1))
    ranks = _run_sbc(th, xs, torch.as_tensor(np.asarray(samples, dtype=np.float32)), reduce_fns="marginals",
                     show_progress_bar=False)
    return ranks.numpy().astype(np.int64)


def sbc_summary(ranks: np.ndarray, n_samples: int, n_bins: int = 20) -> dict[str, Any]:
    """KS p-value of rank uniformity per target (sbi) and the rank histogram (density; 1 = flat)."""
    import torch
    from sbi.diagnostics.sbc import check_uniformity_frequentist

    pvals = check_uniformity_frequentist(torch.as_tensor(ranks, dtype=torch.float32), int(n_samples)).numpy()
    hists = []
    for j in range(ranks.shape[1]):
        counts, _ = np.histogram(ranks[:, j], bins=n_bins, range=(0, n_samples + 1))
        hists.append((counts / max(ranks.shape[0], 1) * n_bins).tolist())
    return {"ks_pvalue": [float(p) for p in pvals], "rank_hist": hists, "n_bins": int(n_bins)}


def grouped_sbc_pvalue(ranks: np.ndarray, groups: Any, n_samples: int, n_rep: int = 200,
                       seed: int = 0) -> dict[str, Any]:
    """SBC uniformity with one object per group: median KS p-value over `n_rep` random picks.

    Ranks of objects in one group (spaxels of one galaxy) share the group's error, so the KS test over
    all objects treats thousands of correlated ranks as independent and rejects any galaxy-level
    bias with p ~ 0. One rank per group (picked at random, seeded) gives independent ranks; the median
    p-value over the picks says whether the galaxies' ranks are consistent with uniform.
    """
    import torch
    from sbi.diagnostics.sbc import check_uniformity_frequentist

    g = np.asarray(groups)
    codes = np.unique(g, return_inverse=True)[1]
    order = np.argsort(codes, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(codes[order])) + 1]
    sizes = np.diff(np.r_[starts, codes.size])
    rng = np.random.default_rng(seed)
    pvals = []
    for _ in range(int(n_rep)):
        pick = order[starts + (rng.random(starts.size) * sizes).astype(np.int64)]
        r = torch.as_tensor(ranks[pick], dtype=torch.float32)
        pvals.append(check_uniformity_frequentist(r, int(n_samples)).numpy())
    return {"ks_pvalue": np.median(np.asarray(pvals), axis=0).tolist(), "n_groups": int(starts.size),
            "n_rep": int(n_rep)}


def tarp_summary(y: np.ndarray, samples: np.ndarray, seed: int = 0, n_bins: int | None = None) -> dict[str, Any]:
    """TARP expected coverage curve, ATC and KS p-value (sbi), references drawn with `seed`."""
    import torch
    from sbi.diagnostics.tarp import _run_tarp, check_tarp

    th = torch.as_tensor(np.asarray(y, dtype=np.float32))
    ps = torch.as_tensor(np.asarray(samples, dtype=np.float32))
    lo, hi = th.min(dim=0).values, th.max(dim=0).values
    gen = torch.Generator().manual_seed(int(seed))
    refs = lo + (hi - lo) * torch.rand(th.shape, generator=gen)
    bins = n_bins or max(5, min(50, th.shape[0] // 10))
    ecp, alpha = _run_tarp(ps, th, refs, num_bins=bins, z_score_theta=True)
    atc, ks = check_tarp(ecp, alpha)
    return {"atc": float(atc), "ks_pvalue": float(ks), "ecp": ecp.numpy().tolist(), "alpha": alpha.numpy().tolist()}


def posterior_calibration(y: Any, samples: Any, targets: Sequence[str], groups: Any = None,
                          seed: int = 0, n_boot: int = 500) -> dict[str, Any]:
    """Coverage (68/95, galaxy-bootstrap errors), widths, SBC and TARP of draws (S, n, k) against y (n, k).

    Rows with a non-finite truth or draw are left out. Returns ``{"per_target": {t: {...}}, "sbc": ...,
    "tarp": ..., "n": n}``.
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1, len(targets))
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim != 3 or s.shape[1:] != y.shape:
        raise InputError(f"samples must be (n_samples, {y.shape[0]}, {y.shape[1]}), got {s.shape}")
    keep = np.isfinite(y).all(axis=1) & np.isfinite(s).all(axis=(0, 2))
    y, s = y[keep], s[:, keep]
    g = None if groups is None else np.asarray(groups)[keep]
    if y.shape[0] < 2:
        raise InputError(f"need at least 2 finite rows to measure calibration, got {y.shape[0]}")
    out: dict[str, Any] = {"per_target": {}, "n": int(y.shape[0]), "n_samples": int(s.shape[0])}
    med = np.median(s, axis=0)
    for j, t in enumerate(targets):
        rec: dict[str, float] = {}
        for name, level in (("68", P68), ("95", P95)):
            lo, hi = central_interval(s[:, :, j], level)
            rec[f"coverage_{name}"] = interval_coverage(y[:, j], lo, hi)
            if g is not None:
                rec[f"coverage_{name}_err"] = grouped_coverage_error(y[:, j], (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-12),
                                                                     g, 1.0, n_boot, seed)
            rec[f"median_width_{name}"] = float(np.median(hi - lo))
            if name == "68":
                w, f = width_at_coverage(y[:, j], (lo + hi) / 2, (hi - lo) / 2)
                rec["width_68_at_nominal"], rec["scale_to_nominal"] = w, f
        rec["bias_median"] = float(np.mean(med[:, j] - y[:, j]))
        out["per_target"][t] = rec
    ranks = sbc_ranks(y, s)
    out["sbc"] = sbc_summary(ranks, s.shape[0])
    if g is not None:
        out["sbc"]["one_per_group"] = grouped_sbc_pvalue(ranks, g, s.shape[0], seed=seed)
    out["tarp"] = tarp_summary(y, s, seed)
    return out


def posterior_degeneracy(y: Any, point: Any, corr_per_object: Any) -> dict[str, float]:
    """Age-[Z/H] degeneracy: residual correlation over objects against the mean per-object correlation.

    y, point: (n, 2) (log_age, zh) truths and point estimates; corr_per_object: (n,) the correlation a
    method assigns each object (posterior draws; for a deep ensemble the member-spread part).
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(point, dtype=np.float64)
    c = np.asarray(corr_per_object, dtype=np.float64)
    res = p - y
    keep = np.isfinite(res).all(axis=1) & np.isfinite(c)
    r = pearson_r(res[keep, 0], res[keep, 1]) if keep.sum() > 2 else math.nan
    return {"residual_corr": float(r), "mean_object_corr": float(np.mean(c[keep])) if keep.any() else math.nan,
            "median_object_corr": float(np.median(c[keep])) if keep.any() else math.nan}
