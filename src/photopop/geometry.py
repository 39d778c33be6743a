"""Galaxy geometry, below every science package: deprojected radii, inclinations, straight lines in radius.

* `deprojected_radius`, `inclination_from_axis_ratio`: where a sky position lies in a thin inclined disc.
* `radial_slopes`: the per-galaxy least-squares slope of a value against radius inside ``r_max``
  (Liew-Cain et al. 2021, Sect. 3.3), with the pieces it is built from (`flat_points`, `select_inside`,
  `padded_chunks`, `centre_chunk`, `weighted_line`) that `photopop.evaluation.gradients.radial_gradients`
  reuses for its subsampling errors, so that the simulator's true gradients and the evaluated ones come from
  one fit (the same float operations, so the same bits).

It imports nothing of photopop but `errors`, so that datasets/, simulate/ and evaluation/ can all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd
from astropy import units as u

from .errors import InputError, MismatchError

#: upper bound on (draws x galaxies x points) held in memory at once (float64 -> ~160 MB per array)
CHUNK_CELLS = 4_000_000


def _value(x: Any, unit: u.UnitBase) -> np.ndarray:
    """Array of `x` in `unit`; astropy Quantities are converted, plain numbers taken as `unit`."""
    if isinstance(x, u.Quantity):
        try:
            return np.asarray(x.to_value(unit), dtype=float)
        except u.UnitConversionError as exc:
            raise InputError(f"expected a quantity convertible to {unit}, got {x.unit}") from exc
    return np.asarray(x, dtype=float)


def deprojected_radius(
    x_arcsec: Any,
    y_arcsec: Any,
    pa_deg: Any,
    inclination_deg: Any,
    re_arcsec: Any = None,
    x0: Any = 0.0,
    y0: Any = 0.0,
) -> np.ndarray:
    """Face-on galactocentric radius of sky positions in a thin inclined disc.

    Convention: x points east (left on the sky, +x in photopop tables), y north; the position angle
    PA of the major axis is measured from north (+y) through east (+x). The offset along the major
    axis is a = dx sin(PA) + dy cos(PA), along the minor axis b = dx cos(PA) - dy sin(PA), and the
    face-on radius is r = sqrt(a^2 + (b / cos i)^2). Returned in arcsec, or in units of R_e when
    `re_arcsec` is given. All arguments broadcast (e.g. per-spaxel arrays against per-spaxel
    geometry); astropy Quantities are converted (angles to deg, offsets to arcsec).
    Inclination must lie in [0, 90) deg; near edge-on the thin-disc deprojection becomes unreliable.
    """
    dx = _value(x_arcsec, u.arcsec) - _value(x0, u.arcsec)
    dy = _value(y_arcsec, u.arcsec) - _value(y0, u.arcsec)
    pa = np.deg2rad(_value(pa_deg, u.deg))
    inc = _value(inclination_deg, u.deg)
    if np.any(~np.isfinite(inc)) or np.any((inc < 0) | (inc >= 90)):
        raise InputError("inclination must be finite and in [0, 90) degrees for deprojection")
    a = dx * np.sin(pa) + dy * np.cos(pa)
    b = dx * np.cos(pa) - dy * np.sin(pa)
    r = np.hypot(a, b / np.cos(np.deg2rad(inc)))
    if re_arcsec is not None:
        re = _value(re_arcsec, u.arcsec)
        if np.any(~(re > 0)):
            raise InputError("effective radius re_arcsec must be > 0")
        r = r / re
    return r


def inclination_from_axis_ratio(b_a: Any, q0: float = 0.2) -> np.ndarray:
    """Inclination (deg) from the observed axis ratio b/a of an oblate disc of intrinsic ratio q0.

    Hubble (1926): cos^2 i = ((b/a)^2 - q0^2) / (1 - q0^2); b/a <= q0 gives 90 deg. q0 = 0 is the
    infinitely thin disc, cos i = b/a.
    """
    q = np.asarray(b_a, dtype=float)
    if not 0 <= q0 < 1:
        raise InputError(f"intrinsic axis ratio q0 must be in [0, 1), got {q0}")
    if np.any(~np.isfinite(q)) or np.any((q <= 0) | (q > 1)):
        raise InputError("axis ratio b/a must be in (0, 1]")
    cos2 = np.clip((q * q - q0 * q0) / (1 - q0 * q0), 0.0, 1.0)
    return np.rad2deg(np.arccos(np.sqrt(cos2)))


# -- straight lines against radius, per galaxy -------------------------------------------------------------
def weighted_line(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope and intercept of weighted least squares along the last axis (x, y centred by the caller)."""
    s = w.sum(-1)
    sx, sy = (w * x).sum(-1), (w * y).sum(-1)
    sxx, sxy = (w * x * x).sum(-1), (w * x * y).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (s * sxy - sx * sy) / (s * sxx - sx * sx)
        intercept = (sy - slope * sx) / s
    return slope, intercept


def flat_points(r: Any, value: Any, group_ids: Any, what: str = "radial_slopes"
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(r, value, group id) as flat arrays; MismatchError naming `what` if their lengths differ."""
    rr = np.asarray(r, dtype=float).ravel()
    vv = np.asarray(value, dtype=float).ravel()
    gg = np.asarray(group_ids).ravel()
    if not rr.size == vv.size == gg.size:
        raise MismatchError(f"{what}: r ({rr.size}), value ({vv.size}) and group_ids ({gg.size}) differ in length")
    return rr, vv, gg


@dataclass
class InsidePoints:
    """The points of every galaxy inside r_max and which galaxies have enough of them (`select_inside`)."""

    r: np.ndarray
    value: np.ndarray
    labels: np.ndarray  #: sorted unique group ids
    codes: np.ndarray  #: group index of every point
    inside: np.ndarray  #: finite point with r < r_max
    n_inside: np.ndarray
    n_outside: np.ndarray
    selected: np.ndarray


def select_inside(rr: np.ndarray, vv: np.ndarray, gg: np.ndarray, r_max: float, min_inside: int,
                  min_outside: int) -> InsidePoints:
    """Galaxies with >= min_inside finite points at r < r_max and >= min_outside at r > r_max."""
    labels, codes = np.unique(gg, return_inverse=True)
    n_gal = labels.size
    ok = np.isfinite(rr) & np.isfinite(vv)
    inside = ok & (rr < r_max)
    n_in = np.bincount(codes[inside], minlength=n_gal)
    n_out = np.bincount(codes[ok & (rr > r_max)], minlength=n_gal)
    selected = (n_in >= min_inside) & (n_out >= min_outside)
    return InsidePoints(rr, vv, labels, codes, inside, n_in, n_out, selected)


def padded_chunks(pts: InsidePoints, cells_per_point: int = 1, max_cells: int | None = None
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The inside points of the selected galaxies as padded (galaxies, points) arrays, chunk by chunk.

    Galaxies are sorted by their number of points so that a chunk pads little; a chunk holds at most
    `max_cells` (default `CHUNK_CELLS`) / `cells_per_point` cells (cells_per_point: e.g. the number of
    subsample draws).
    Yields (galaxy indices into `pts.labels`, r, value, valid) with zeros where `valid` is False.
    """
    max_cells = CHUNK_CELLS if max_cells is None else max_cells
    n_in, codes = pts.n_inside, pts.codes
    n_gal = pts.labels.size
    sel_gal = np.flatnonzero(pts.selected)
    if not sel_gal.size:
        return
    rows = np.flatnonzero(pts.inside & pts.selected[codes])
    gal_order = sel_gal[np.argsort(n_in[sel_gal], kind="stable")]
    rank = np.empty(n_gal, dtype=np.int64)
    rank[gal_order] = np.arange(gal_order.size)
    rows = rows[np.lexsort((rows, rank[codes[rows]]))]
    g_rows = rank[codes[rows]]
    starts = np.searchsorted(g_rows, np.arange(gal_order.size))
    pos = np.arange(rows.size) - starts[g_rows]
    lo = 0
    while lo < gal_order.size:
        hi = lo + 1
        while hi < gal_order.size and (hi - lo + 1) * n_in[gal_order[hi]] * cells_per_point <= max_cells:
            hi += 1
        width = n_in[gal_order[hi - 1]]
        sel_rows = (g_rows >= lo) & (g_rows < hi)
        gi, pi = g_rows[sel_rows] - lo, pos[sel_rows]
        shape = (hi - lo, width)
        rp, vp = np.zeros(shape), np.zeros(shape)
        valid = np.zeros(shape, dtype=bool)
        rp[gi, pi], vp[gi, pi], valid[gi, pi] = pts.r[rows[sel_rows]], pts.value[rows[sel_rows]], True
        yield gal_order[lo:hi], rp, vp, valid
        lo = hi


def centre_chunk(r: np.ndarray, v: np.ndarray, valid: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean r, mean value, centred r, centred value, least-squares slope) of each row of a padded chunk."""
    n = valid.sum(1)
    rbar = np.where(valid, r, 0).sum(1) / n
    vbar = np.where(valid, v, 0).sum(1) / n
    rc = np.where(valid, r - rbar[:, None], 0.0)
    vc = np.where(valid, v - vbar[:, None], 0.0)
    slope, _ = weighted_line(valid.astype(float), rc, vc)
    return rbar, vbar, rc, vc, slope


def radial_slopes(r: Any, value: Any, group_ids: Any, r_max: float = 1.0, min_inside: int = 2,
                  min_outside: int = 0) -> pd.Series:
    """Least-squares slope d(value)/dr of the points inside r_max of every galaxy (NaN if not selected).

    A galaxy is selected with >= `min_inside` points at r < r_max and >= `min_outside` at r > r_max (rows
    with non-finite r or value are ignored). This is the ``slope`` column of
    `photopop.evaluation.gradients.radial_gradients` without its subsampling errors (the same numbers).
    Returns a Series indexed by group id (``galaxy_id``).
    """
    rr, vv, gg = flat_points(r, value, group_ids)
    if min_inside < 2:
        raise InputError(f"min_inside must be >= 2 to fit a line, got {min_inside}")
    pts = select_inside(rr, vv, gg, r_max, min_inside, min_outside)
    slope = np.full(pts.labels.size, np.nan)
    for gal, rp, vp, valid in padded_chunks(pts):
        slope[gal] = centre_chunk(rp, vp, valid)[4]
    return pd.Series(slope, index=pd.Index(pts.labels, name="galaxy_id"), name="slope")


__all__ = ["CHUNK_CELLS", "InsidePoints", "centre_chunk", "deprojected_radius", "flat_points",
           "inclination_from_axis_ratio", "padded_chunks", "radial_slopes", "select_inside", "weighted_line"]
