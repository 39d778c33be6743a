"""Bin edges and vectorised per-group statistics (medians, counts) used by the metrics module.

Per-bin and per-galaxy statistics are computed for all groups at once (compiled group-by, no
Python loop over groups), so that binning millions of spaxels stays fast.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..validate import MAX_BINS, positive_int

BinSpec = int | str | Sequence[float] | np.ndarray | None


def fd_bin_edges(x: np.ndarray) -> np.ndarray:
    """Freedman-Diaconis bin edges over the finite values of `x`.

    The rule's bin width is h = 2 IQR n^(-1/3); numpy then spreads ceil(range / h) equal bins
    over [min, max], so the actual width is range / ceil(range / h) <= h. With IQR = 0 a single
    bin is returned.
    """
    x = _finite_values(x)
    lo, hi = float(x.min()), float(x.max())
    if lo == hi:
        return _single_bin(lo)
    q75, q25 = np.percentile(x, [75, 25])
    width = 2.0 * (q75 - q25) * x.size ** (-1.0 / 3.0)
    if width > 0 and (hi - lo) / width > MAX_BINS:
        raise InputError(f"the Freedman-Diaconis rule gives {math.ceil((hi - lo) / width):,} bins over "
                         f"[{lo:g}, {hi:g}] (at most {MAX_BINS:,}); give a number of bins or explicit edges")
    return _histogram_edges(x, "fd")


def _single_bin(value: float) -> np.ndarray:
    """One bin holding a constant value (padded by 0.5, or by a few float steps for huge values)."""
    pad = max(0.5, 4.0 * float(np.spacing(abs(value))))
    return np.array([value - pad, value + pad])


def _histogram_edges(x: np.ndarray, bins: int | str) -> np.ndarray:
    try:
        return np.histogram_bin_edges(x, bins=bins)
    except ValueError as exc:  # e.g. a range too small for the float resolution
        raise InputError(f"cannot make bins {bins!r} over [{x.min():g}, {x.max():g}]: {exc}") from exc


def bin_edges(x: np.ndarray, bins: BinSpec = None) -> np.ndarray:
    """Bin edges for the finite values of `x`.

    `bins`: None -> Freedman-Diaconis rule; an int N -> N equal-width bins over [min, max];
    a string -> any numpy.histogram_bin_edges rule ('fd', 'sturges', 'auto', ...);
    a sequence -> explicit edges (strictly increasing, at least two).
    """
    if bins is None:
        return fd_bin_edges(x)
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        n = positive_int(bins, "number of bins", maximum=MAX_BINS)
        finite = _finite_values(x)
        lo, hi = float(finite.min()), float(finite.max())
        if lo == hi:
            a, b = _single_bin(lo)
            return np.linspace(a, b, n + 1)
        return _histogram_edges(finite, n)
    if isinstance(bins, str):
        finite = _finite_values(x)
        if finite.min() == finite.max():
            return _single_bin(float(finite.min()))
        edges = _histogram_edges(finite, bins)
        if edges.size - 1 > MAX_BINS:
            raise InputError(f"binning rule {bins!r} gives {edges.size - 1:,} bins (at most {MAX_BINS:,})")
        return edges
    edges = np.asarray(bins, dtype=float).ravel()
    if edges.size - 1 > MAX_BINS:
        raise InputError(f"{edges.size - 1:,} bins given (at most {MAX_BINS:,})")
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
