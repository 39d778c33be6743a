"""Which bands a spectrum can give: uncovered shares, grid gaps, masked runs, and `covered_by`.

One measure everywhere: a band's *AB weight* int T/lambda dlambda. For a spectrum on a wavelength grid
the share of that weight the spectrum cannot provide has three parts:

* outside the grid's span (`FilterCurve.share_outside`);
* inside a *gap* of the grid: an interval between two neighbouring pixels that is wider than
  `GAP_FACTOR` times the median interval of the `GAP_WINDOW` intervals around it (a jump in the grid),
  or wider than half the band's FWHM (the band is not sampled). A band "covered" only by one linear
  interpolation across such an interval is not measured; the gap's weight counts as uncovered;
* masked pixels before the first or after the last good pixel of a spectrum (nothing to interpolate
  from): uncovered as well.

Masked pixels *between* good pixels are filled by linear interpolation (the SDSS pipeline does the
same for its synthetic fluxes); their share of the weight is the band's *interpolated* share.
`synth_photometry` gives a band NaN (coverage 'none') when the uncovered share exceeds its
`coverage_tolerance` (default 1%) or the interpolated share exceeds `max_interpolated` (default 10%).

`covered_by(system, source, redshift=0, max_uncovered=0.01, max_interpolated=0.1)` selects the bands
a wavelength range, a wavelength grid or a spectrum (anything with ``wavelength`` and ``mask``) gives
by that rule; `coverage_table` returns the shares per band.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from astropy import units as u

from ..errors import InputError
from .filters import load_filter_system
from .masking import DEFAULT_MAX_INTERPOLATED, FULL_EPS, fill_masked
from .synth import band_weights
from .system import FilterSystem

__all__ = ["coverage_table", "covered_by"]

#: redshifts evaluated inside a redshift interval (the worst share over them is used)
_N_REDSHIFTS = 11


def _wave_aa(wavelength: Any) -> np.ndarray:
    if isinstance(wavelength, u.Quantity):
        return np.asarray(wavelength.to_value(u.AA), dtype=float)
    return np.asarray(wavelength, dtype=float)


def _redshifts(redshift: float | Sequence[float]) -> np.ndarray:
    z = np.atleast_1d(np.asarray(redshift, dtype=float))
    if z.size == 2 and z[0] <= z[1]:
        z = np.linspace(z[0], z[1], _N_REDSHIFTS)
    elif z.size != 1:
        raise InputError(f"redshift must be one value or (z_min, z_max), got {redshift!r}")
    if not np.all(np.isfinite(z)) or np.any(z <= -1):
        raise InputError(f"redshift must be finite and > -1, got {redshift!r}")
    return z


def coverage_table(system: FilterSystem | str, source: Any, *, redshift: float | Sequence[float] = 0.0,
                   max_uncovered: float = 0.01, max_interpolated: float = DEFAULT_MAX_INTERPOLATED) -> pd.DataFrame:
    """Per band: ``band``, ``pivot_aa``, ``uncovered`` and ``interpolated`` shares, ``coverage`` flag and
    ``covered`` (a number, not NaN, from `synth_photometry` with these limits).

    source: a wavelength range ``(lo, hi)`` in A, a wavelength grid (Quantity or A), or a spectrum
    (an object with ``wavelength`` and optionally ``mask``, e.g. `read_spectrum`'s `Spectrum`; its
    masked pixels count). redshift: the source is rest frame and observed at z (as in
    `synth_photometry`; 0 for observed spectra); ``(z_min, z_max)`` takes the worst share over 11
    redshifts in that interval.
    """
    system = load_filter_system(system)
    if not 0 <= max_uncovered < 1 or not 0 <= max_interpolated < 1:
        raise InputError(f"max_uncovered and max_interpolated must be in [0, 1), got {max_uncovered}, "
                         f"{max_interpolated}")
    unc = np.zeros(len(system))
    itp = np.zeros(len(system))
    mask = None
    if isinstance(source, tuple) and len(source) == 2 and np.ndim(source[0]) == 0:
        lo, hi = (float(_wave_aa(v)) for v in source)
        if not lo < hi:
            raise InputError(f"wavelength range must be (low, high) with low < high, got {source}")
        grid = None
    else:
        wave = getattr(source, "wavelength", source)
        grid = _wave_aa(wave)
        if grid.ndim != 1 or grid.size < 2 or not np.all(np.isfinite(grid)) or np.any(np.diff(grid) <= 0):
            raise InputError("the wavelength grid must be 1-D, finite and strictly increasing with >= 2 pixels")
        m = getattr(source, "mask", None)
        mask = None if m is None else np.asarray(m, dtype=bool)
    for z in _redshifts(redshift):
        if grid is None:
            u_z = np.array([c.share_outside(lo * (1 + z), hi * (1 + z)) for c in system.curves])
            i_z = np.zeros(len(system))
        else:
            bw = band_weights(grid * (1 + z), system)
            u_z, i_z = bw.uncovered.copy(), np.zeros(len(system))
            if mask is not None and mask.any():
                fill = fill_masked(np.zeros((1, grid.size)), ~mask[None, :], grid)
                with np.errstate(divide="ignore", invalid="ignore"):
                    norm = np.where(bw.norm > 0, bw.norm, 1.0)
                    edge = (fill["edge"].astype(float) @ bw.share.T)[0] / norm
                    i_z = (fill["interior"].astype(float) @ bw.share.T)[0] / norm
                u_z = np.clip(u_z + (1.0 - u_z) * edge, 0.0, 1.0)
            u_z[bw.norm <= 0] = 1.0
        unc, itp = np.maximum(unc, u_z), np.maximum(itp, i_z)
    none = (unc > max_uncovered) | (itp > max_interpolated)
    flag = np.where(none, "none", np.where(itp > FULL_EPS, "interpolated", np.where(unc > FULL_EPS, "partial", "full")))
    return pd.DataFrame({"band": system.bands, "pivot_aa": system.pivots, "uncovered": unc,
                         "interpolated": itp, "coverage": flag, "covered": ~none})


def covered_by(system: FilterSystem | str, source: Any, *, redshift: float | Sequence[float] = 0.0,
               max_uncovered: float = 0.01, max_interpolated: float = DEFAULT_MAX_INTERPOLATED,
               name: str | None = None) -> FilterSystem:
    """The bands of `system` that `source` gives (see `coverage_table`); InputError if none.

    The result keeps the system's name (a subset of a system is the same filter system for the model
    check) unless `name` is given.
    """
    system = load_filter_system(system)
    tab = coverage_table(system, source, redshift=redshift, max_uncovered=max_uncovered,
                         max_interpolated=max_interpolated)
    keep = tab["band"][tab["covered"]].tolist()
    if not keep:
        raise InputError(f"no band of {system.name!r} is covered with <= {max_uncovered:.0%} of its response "
                         f"uncovered (and <= {max_interpolated:.0%} interpolated)")
    return system.select(keep, name=name or system.name)
