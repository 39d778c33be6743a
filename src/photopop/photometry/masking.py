"""Grid gaps and masked pixels: the low-level pieces of band coverage (used by `synth_photometry`).

* `gap_shares`: the share of each band's AB weight (int T/lambda dlambda) inside *gaps* of a wavelength
  grid: intervals wider than `GAP_FACTOR` x the median of the `GAP_WINDOW` intervals around them (a jump
  in the grid), or wider than half the band's FWHM (the band is not sampled). A band "covered" only by
  one linear interpolation across such an interval is not measured: the gap counts as uncovered.
* `fill_masked`: linear interpolation over masked runs between good pixels (the SDSS pipeline fills
  masked pixels the same way for its synthetic fluxes), vectorised over many spectra; masked pixels
  before the first / after the last good pixel are left out (uncovered).
* `interpolation_variance`: the exact extra variance of the interpolated pixels (they share their
  neighbours' noise).

The rules that turn these shares into flags are in `photopop.photometry.synth` (docs/photometry.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .system import FilterSystem

__all__ = ["GAP_FACTOR", "GAP_WINDOW", "DEFAULT_MAX_INTERPOLATED", "FULL_EPS", "gap_shares", "fill_masked",
           "interpolation_variance"]

#: an interval wider than GAP_FACTOR x the local median interval (over GAP_WINDOW intervals) is a gap
GAP_FACTOR = 5.0
GAP_WINDOW = 21
#: largest share of a band's AB weight that may be filled by interpolation over masked pixels
DEFAULT_MAX_INTERPOLATED = 0.10
#: uncovered or interpolated share below which a band counts as 'full'
FULL_EPS = 1e-6


def _cumulative_weight(curve: Any, x: np.ndarray) -> np.ndarray:
    """int_{-inf}^{x} T/lambda dlambda / int T/lambda dlambda at the wavelengths x (0..1)."""
    w, t = curve.wavelength, curve.transmission
    y = t / w
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(w))])
    return np.interp(x, w, cum / cum[-1], left=0.0, right=1.0)


def gap_shares(wavelength_aa: np.ndarray, system: FilterSystem) -> np.ndarray:
    """(n_bands,) share of each band's AB weight that falls in gaps of the grid (see module docstring)."""
    w = np.asarray(wavelength_aa, dtype=float)
    if w.size < 2:
        return np.zeros(len(system))
    dw = np.diff(w)
    rel = dw / (0.5 * (w[1:] + w[:-1]))
    from scipy.ndimage import median_filter

    local = median_filter(rel, size=min(GAP_WINDOW, rel.size), mode="nearest")
    jump = rel > GAP_FACTOR * local
    out = np.zeros(len(system))
    for k, curve in enumerate(system.curves):
        gap = jump | (dw > 0.5 * curve.fwhm)
        if not gap.any():
            continue
        lo, hi = curve.extent
        idx = np.flatnonzero(gap & (w[1:] > lo) & (w[:-1] < hi))
        if idx.size:
            c0 = _cumulative_weight(curve, w[idx])
            c1 = _cumulative_weight(curve, w[idx + 1])
            out[k] = float(np.clip(np.sum(c1 - c0), 0.0, 1.0))
    return out


def fill_masked(values: np.ndarray, good: np.ndarray, wavelength_aa: np.ndarray) -> dict[str, np.ndarray]:
    """Linear interpolation over masked runs, row by row, vectorised over all rows.

    values, good: (n, n_wave). Returns ``filled`` (masked interior pixels replaced by the linear
    interpolation between the nearest good pixels on either side; masked edge pixels 0), ``interior``
    (masked pixels that were filled), ``edge`` (masked pixels before the first / after the last good
    pixel), and for the filled pixels (in the order of ``rows``, ``cols``) ``prev``, ``next`` (columns
    of the two good neighbours) and ``frac`` (weight of the next pixel), so that errors can be
    propagated through the same weights. Work is proportional to the number of masked pixels.
    """
    n, nw = values.shape
    w = np.asarray(wavelength_aa, dtype=float)
    good_flat = np.flatnonzero(good)  # sorted flat indices of good pixels
    bad_flat = np.flatnonzero(~good)
    k = np.searchsorted(good_flat, bad_flat)  # first good pixel after each bad one (flat order)
    row = bad_flat // nw
    has_next = k < good_flat.size
    nxt = np.where(has_next, good_flat[np.minimum(k, good_flat.size - 1)], -1)
    has_next &= (nxt // nw) == row
    has_prev = k > 0
    prv = np.where(has_prev, good_flat[np.maximum(k - 1, 0)], -1)
    has_prev &= (prv // nw) == row
    inner = has_prev & has_next
    interior = np.zeros((n, nw), dtype=bool)
    edge = np.zeros((n, nw), dtype=bool)
    interior.flat[bad_flat[inner]] = True
    edge.flat[bad_flat[~inner]] = True
    flat_i, p, q = bad_flat[inner], prv[inner], nxt[inner]
    cols, pc, qc = flat_i % nw, p % nw, q % nw
    frac = (w[cols] - w[pc]) / (w[qc] - w[pc])
    filled = np.where(good, values, 0.0)
    filled.flat[flat_i] = (1.0 - frac) * values.flat[p] + frac * values.flat[q]
    return {"filled": filled, "interior": interior, "edge": edge, "rows": flat_i // nw, "cols": cols,
            "prev": pc, "next": qc, "frac": frac}


def interpolation_variance(kernel: np.ndarray, sig2: np.ndarray, fill: dict[str, np.ndarray]) -> np.ndarray:
    """(n, n_bands) extra variance of kernel @ filled from the interpolated pixels (exact, with the
    covariance they share with their good neighbours): each filled pixel moves its kernel weight onto
    its two neighbours; var = sum_j (K_j + E_j)^2 sigma_j^2 - sum_j K_j^2 sigma_j^2 over good pixels j."""
    from scipy import sparse

    n, nw = sig2.shape
    r, i, a = fill["rows"], fill["cols"], fill["frac"]
    out = np.zeros((n, kernel.shape[0]))
    if r.size == 0:
        return out
    j = np.concatenate([fill["prev"], fill["next"]])
    rr = np.concatenate([r, r])
    ii = np.concatenate([i, i])
    ww = np.concatenate([1.0 - a, a])
    keys, inv = np.unique(rr * nw + j, return_inverse=True)
    moved = sparse.csr_matrix((ww, (inv, ii)), shape=(keys.size, nw)) @ kernel.T  # (n_groups, n_bands)
    rows, cols = keys // nw, keys % nw
    k_j = kernel[:, cols].T
    delta = (2.0 * k_j * moved + moved**2) * sig2[rows, cols][:, None]
    # rows are sorted (keys are): sum the groups of each row with one reduceat
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    out[rows[starts]] = np.add.reduceat(delta, starts, axis=0)
    return out
