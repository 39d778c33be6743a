"""Quantiles of per-object scores whose exchangeable unit is the galaxy: the leave-one-galaxy-out level.

The posterior's spread factors and its out-of-domain threshold are quantiles of scores over held-out
galaxies' spaxels (a normalised residual, an OOD score), applied to new galaxies. Spaxels of one galaxy
share that galaxy's error, so the scores come in clusters: most galaxies of the default mock have no
spaxel in the top 1 % of OOD scores and two or three have most of theirs there. The plain spaxel quantile
at level p is then a biased estimate of the threshold that covers p of a **new** galaxy's spaxels: when
the held-out galaxies happen to lack the tail galaxies it is set low, and new galaxies exceed it more
often than 1 - p (on the default mock's folds: 1.4 % of in-domain spaxels flagged at p = 0.99, measured by
re-splitting each fold's unseen galaxies; docs/posteriors.md). `resplit_coverage` is that diagnostic for one score.

`grouped_level` removes that bias the way a grouped jackknife does: it picks the level lambda at which
the quantile of the **other** galaxies' scores covers p of each left-out galaxy's spaxels, averaged over
all spaxels (leave one galaxy out, LOGO); `grouped_quantile` is the quantile of all scores at lambda.
For independent objects (one per group) lambda is close to p; for clustered tails it moves outwards as
far as the clustering requires. Without groups (or fewer than `MIN_GROUPS`) it is p, the plain quantile.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError

#: fewer groups than this: no leave-one-group-out estimate (the plain quantile is used)
MIN_GROUPS = 3
#: candidate levels: 1 - (1 - p) * m for these multipliers m of the tail share (and p itself)
_TAIL_MULTIPLIERS = np.geomspace(3.0, 0.02, 160)


def logo_coverage(scores: np.ndarray, codes: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Share of all scores <= the `levels` quantiles of the scores of the other groups (one value per level).

    scores (n,), codes (n,) integer group codes 0..G-1. Infinite scores are allowed (never covered).
    """
    covered = np.zeros(levels.size)
    for c in range(int(codes.max()) + 1):
        m = codes == c
        if not m.any() or m.all():
            continue
        with np.errstate(invalid="ignore"):
            t = np.quantile(scores[~m], levels)
        t = np.where(np.isnan(t), np.inf, t)  # an interpolation between inf scores
        covered += (scores[m][:, None] <= t[None, :]).sum(axis=0)
    return covered / scores.size


def grouped_level(scores: Any, groups: Any, level: float) -> float:
    """The quantile level lambda whose leave-one-group-out coverage of the scores is `level` (module docstring).

    Linear interpolation between candidate levels; clipped to [0, 1]. `level` itself without groups or with
    fewer than `MIN_GROUPS` of them.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    if not 0.0 < float(level) < 1.0:
        raise InputError(f"level must be in (0, 1), got {level}")
    if s.size == 0 or np.isnan(s).any():
        raise InputError("grouped_level needs at least one score and no NaN scores")
    if groups is None:
        return float(level)
    g = np.asarray(groups).ravel()
    if g.size != s.size:
        raise InputError(f"groups must have one entry per score ({s.size}), got {g.size}")
    codes = np.unique(g, return_inverse=True)[1]
    if int(codes.max()) + 1 < MIN_GROUPS:
        return float(level)
    levels = np.unique(np.clip(np.r_[1.0 - (1.0 - level) * _TAIL_MULTIPLIERS, level], 0.0, 1.0))
    cov = np.maximum.accumulate(logo_coverage(s, codes, levels))  # non-decreasing in the level
    i = int(np.searchsorted(cov, level))  # first candidate covering at least `level`
    if i == 0:
        return float(levels[0])
    if i >= levels.size:
        return float(levels[-1])
    c0, c1 = cov[i - 1], cov[i]
    w = 0.0 if c1 <= c0 else (level - c0) / (c1 - c0)
    return float(levels[i - 1] + w * (levels[i] - levels[i - 1]))


def grouped_quantile(scores: Any, groups: Any, level: float) -> tuple[float, float]:
    """(quantile of all `scores` at `grouped_level`, that level): the score threshold that covers `level` of
    a new group's objects (leave-one-group-out estimate); the plain `level` quantile without groups."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    lam = grouped_level(s, groups, level)
    with np.errstate(invalid="ignore"):
        q = float(np.quantile(s, lam))
    return (np.inf if np.isnan(q) else q), lam


def resplit_coverage(scores: Any, groups: Any, n_calib_groups: int, level: float, n_rep: int = 400,
                     seed: int = 0, grouped: bool = True) -> tuple[float, float]:
    """(mean, sd) over `n_rep` random re-splits of the groups: coverage of the held-back groups' objects by the
    `level` quantile of `n_calib_groups` calibration groups (`grouped_quantile`, or the plain quantile).

    A diagnostic of the calibration procedure itself (docs/posteriors.md): with exchangeable groups, the
    mean is the coverage the procedure gives new groups in expectation, the sd that of one split. Coverage
    is the share of the held-back objects with score <= the quantile (object-weighted mean over re-splits).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    g = np.asarray(groups).ravel()
    names = np.unique(g)
    if g.size != s.size or not 1 <= int(n_calib_groups) < names.size:
        raise InputError(f"resplit_coverage needs one group per score and 1 <= n_calib_groups < {names.size}")
    rng = np.random.default_rng(seed)
    cov, n_out = np.empty(int(n_rep)), np.empty(int(n_rep))
    for i in range(int(n_rep)):
        cal = np.isin(g, rng.choice(names, int(n_calib_groups), replace=False))
        q = grouped_quantile(s[cal], g[cal], level)[0] if grouped else float(np.quantile(s[cal], level))
        cov[i], n_out[i] = np.mean(s[~cal] <= q), (~cal).sum()
    return float(np.average(cov, weights=n_out)), float(cov.std())
