"""Bin edges and vectorised per-group statistics (medians, counts) used by the metrics module.

Per-bin and per-galaxy statistics are computed for all groups at once (compiled group-by, no
Python loop over groups), so that binning millions of spaxels stays fast.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError

BinSpec = int | str | Sequence[float] | np.ndarray | None


def fd_bin_edges(x: np.ndarray) -> np.ndarray:
    """Freedman-Diaconis bin edges over the finite values of `x`.

    The rule's bin width is h = 2 IQR n^(-1/3); numpy then spreads ceil(range / h) equal bins
    over [min, max], so the actual width is range / ceil(range / h) <= h. With IQR = 0 a single
    bin is returned.
    """
    x = np.asarray(x, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise InputError("cannot choose bin edges: no finite values")
    return np.histogram_bin_edges(x, bins="fd")


def bin_edges(x: np.ndarray, bins: BinSpec = None) -> np.ndarray:
    """Bin edges for the finite values of `x`.

    `bins`: None -> Freedman-Diaconis rule; an int N -> N equal-width bins over [min, max];
    a string -> any numpy.histogram_bin_edges rule ('fd', 'sturges', 'auto', ...);
    a sequence -> explicit edges (strictly increasing, at least two).
    """
    if bins is None:
        return fd_bin_edges(x)
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if bins < 1:
            raise InputError(f"number of bins must be >= 1, got {bins}")
        finite = _finite_values(x)
        return np.histogram_bin_edges(finite, bins=int(bins))
    if isinstance(bins, str):
        finite = _finite_values(x)
        try:
            return np.histogram_bin_edges(finite, bins=bins)
        except ValueError as exc:
            raise InputError(f"unknown binning rule {bins!r} ({exc})") from exc
    edges = np.asarray(bins, dtype=float).ravel()
    if edges.size < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
        raise InputError(f"bin edges must be at least two finite, strictly increasing numbers; got {edges.tolist()}")
    return edges


def _finite_values(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise InputError("cannot choose bin edges: no finite values")
    return x


def assign_bins(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of every value (bins are [lo, hi) except the last, which is [lo, hi]); -1 outside or NaN."""
    x = np.asarray(x, dtype=float).ravel()
    idx = np.searchsorted(edges, x, side="right") - 1
    idx[x == edges[-1]] = edges.size - 2  # right edge belongs to the last bin, as in numpy.histogram
    idx[(idx < 0) | (idx > edges.size - 2) | ~np.isfinite(x)] = -1
    return idx


def group_median(values: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of `values` within each group code 0..n_groups-1 (NaN for empty groups).

    `codes` < 0 are ignored. Uses pandas' compiled group-by (no Python loop over groups).
    """
    values = np.asarray(values, dtype=float).ravel()
    codes = np.asarray(codes).ravel()
    keep = codes >= 0
    med = pd.Series(values[keep]).groupby(codes[keep]).median()
    out = np.full(n_groups, np.nan)
    out[med.index.to_numpy()] = med.to_numpy()
    return out


def group_sum(values: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum of `values` within each group code (codes < 0 ignored)."""
    values = np.asarray(values, dtype=float).ravel()
    codes = np.asarray(codes).ravel()
    keep = codes >= 0
    return np.bincount(codes[keep], weights=values[keep], minlength=n_groups)[:n_groups]
