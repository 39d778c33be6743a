"""Band response curves: `FilterCurve` (one band, validated), its pivot/FWHM/support, and readers.

A `FilterCurve` is one band's response T(lambda) (wavelength in Angstrom, strictly increasing;
dimensionless, non-negative). `filter_curve_from_arrays` builds one from arrays with an explicit unit;
`read_filter_curve` reads an SVO VOTable or two-column ASCII file. Filter *systems* (ordered sets of
curves, the built-in ones, selections) live in `photopop.photometry.filters`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u

from ..errors import InputError

__all__ = [
    "FilterCurve",
    "filter_curve_from_arrays",
    "read_filter_curve",
    "pivot_wavelength",
    "fwhm",
    "NARROW_MAX_FWHM",
    "BROAD_MIN_FWHM",
    "SUPPORT_LEVEL",
]

#: band kinds by FWHM: narrow < 250 A <= medium < 500 A <= broad
NARROW_MAX_FWHM = 250.0
BROAD_MIN_FWHM = 500.0
#: level (fraction of peak) that defines a band's response range ("support")
SUPPORT_LEVEL = 0.01
#: negative transmissions down to this fraction of the peak are measurement noise and set to 0
NEGATIVE_NOISE = 1e-3
#: a curve whose pivot falls below this (in Angstrom) was almost surely given in nm or micron
MIN_PLAUSIBLE_PIVOT_AA = 1000.0


def _trapz(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.trapezoid(y, x))


def pivot_wavelength(wavelength: np.ndarray, transmission: np.ndarray) -> float:
    """Pivot wavelength sqrt(int T lam dlam / int T / lam dlam), trapezoid rule on the curve's grid."""
    return float(np.sqrt(_trapz(transmission * wavelength, wavelength)
                         / _trapz(transmission / wavelength, wavelength)))


def _outer_crossings(wavelength: np.ndarray, transmission: np.ndarray, level: float) -> tuple[float, float]:
    """Outermost wavelengths where T crosses `level`, linearly interpolated between samples."""
    above = np.flatnonzero(transmission >= level)
    i0, i1 = int(above[0]), int(above[-1])
    if i0 == 0:
        lo = float(wavelength[0])
    else:
        w0, w1, t0, t1 = wavelength[i0 - 1], wavelength[i0], transmission[i0 - 1], transmission[i0]
        lo = float(w0 + (level - t0) * (w1 - w0) / (t1 - t0))
    if i1 == len(wavelength) - 1:
        hi = float(wavelength[-1])
    else:
        w0, w1, t0, t1 = wavelength[i1], wavelength[i1 + 1], transmission[i1], transmission[i1 + 1]
        hi = float(w0 + (t0 - level) * (w1 - w0) / (t0 - t1))
    return lo, hi


def fwhm(wavelength: np.ndarray, transmission: np.ndarray) -> float:
    """Full width at half maximum between the outermost half-maximum crossings (linear interpolation)."""
    lo, hi = _outer_crossings(wavelength, transmission, 0.5 * float(np.max(transmission)))
    return hi - lo


@dataclass(frozen=True, eq=False)
class FilterCurve:
    """One band's response curve: wavelength in Angstrom (strictly increasing), transmission >= 0.

    The transmission is kept as given (never renormalised): AB magnitudes do not depend on its
    scale, but its shape (including the lambda-dependence of a total-throughput curve) matters.
    Construction validates the arrays and raises InputError naming the band. Negative values down
    to 1e-3 of the peak (lab noise around zero in measured curves) are set to 0 and counted in
    ``meta['negative_values_clipped']``; anything more negative is refused.
    """

    name: str
    wavelength: np.ndarray
    transmission: np.ndarray
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        w = np.array(self.wavelength, dtype=float)
        t = np.array(self.transmission, dtype=float)
        where = f"filter {self.name!r}" + (f" ({self.source})" if self.source else "")
        if w.ndim != 1 or t.ndim != 1 or w.shape != t.shape:
            raise InputError(f"{where}: wavelength and transmission must be 1-D arrays of equal length "
                             f"(got shapes {w.shape} and {t.shape})")
        if w.size < 2:
            raise InputError(f"{where}: needs at least 2 points, got {w.size}")
        if not np.all(np.isfinite(w)):
            raise InputError(f"{where}: wavelength contains NaN or inf")
        if not np.all(np.isfinite(t)):
            raise InputError(f"{where}: transmission contains NaN or inf "
                             f"(first at {w[np.flatnonzero(~np.isfinite(t))[0]]:g} A)")
        dw = np.diff(w)
        if np.any(dw == 0):
            i = int(np.flatnonzero(dw == 0)[0])
            raise InputError(f"{where}: duplicate wavelength {w[i]:g} A")
        if np.any(dw < 0):
            i = int(np.flatnonzero(dw < 0)[0])
            raise InputError(f"{where}: wavelengths are not increasing ({w[i]:g} then {w[i + 1]:g} A)")
        if np.any(w <= 0):
            raise InputError(f"{where}: wavelengths must be positive")
        if not np.any(t > 0):
            raise InputError(f"{where}: transmission is zero everywhere" + (" or negative" if np.any(t < 0) else ""))
        floor = -NEGATIVE_NOISE * float(np.max(t))
        if np.any(t < floor):
            i = int(np.flatnonzero(t < floor)[0])
            raise InputError(f"{where}: negative transmission {t[i]:g} at {w[i]:g} A (more negative than "
                             f"measurement noise, {NEGATIVE_NOISE:g} x peak)")
        if np.any(t < 0):  # lab-measurement noise around zero: clip, and say so in meta
            self.meta["negative_values_clipped"] = int(np.count_nonzero(t < 0))
            t = np.clip(t, 0.0, None)
        piv = pivot_wavelength(w, t)
        if piv < MIN_PLAUSIBLE_PIVOT_AA:
            raise InputError(
                f"{where}: pivot wavelength {piv:.4g} A is below {MIN_PLAUSIBLE_PIVOT_AA:g} A; the curve "
                f"looks like it is in nm or micron read as Angstrom: give the right wavelength unit")
        w.setflags(write=False)
        t.setflags(write=False)
        object.__setattr__(self, "wavelength", w)
        object.__setattr__(self, "transmission", t)

    @cached_property
    def pivot(self) -> float:
        """Pivot wavelength (A): sqrt(int T lam dlam / int T/lam dlam)."""
        return pivot_wavelength(self.wavelength, self.transmission)

    @cached_property
    def fwhm(self) -> float:
        """FWHM (A) between the outermost half-maximum crossings, linearly interpolated."""
        return fwhm(self.wavelength, self.transmission)

    @property
    def peak(self) -> float:
        """Maximum transmission."""
        return float(np.max(self.transmission))

    @cached_property
    def support(self) -> tuple[float, float]:
        """Response range (A): outermost crossings of 1% of the peak transmission."""
        return _outer_crossings(self.wavelength, self.transmission, SUPPORT_LEVEL * self.peak)

    @property
    def extent(self) -> tuple[float, float]:
        """First and last wavelength (A) of the tabulated curve."""
        return float(self.wavelength[0]), float(self.wavelength[-1])

    @property
    def kind(self) -> str:
        """'narrow' (FWHM < 250 A), 'medium' (< 500 A) or 'broad' (by FWHM only)."""
        if self.fwhm < NARROW_MAX_FWHM:
            return "narrow"
        return "medium" if self.fwhm < BROAD_MIN_FWHM else "broad"

    def share_outside(self, lo: float, hi: float) -> float:
        """Share of the band's AB weight, int T/lam dlam, that falls outside [lo, hi] (A).

        This is the fraction of a flat-f_nu source's band flux that a spectrum covering exactly
        [lo, hi] would miss: the same measure `synth_photometry` uses for its coverage flags.
        """
        w, t = self.wavelength, self.transmission
        total = _trapz(t / w, w)
        lo_c, hi_c = max(lo, w[0]), min(hi, w[-1])
        if hi_c <= lo_c:
            return 1.0
        inner = (w > lo_c) & (w < hi_c)
        x = np.concatenate([[lo_c], w[inner], [hi_c]])
        y = np.interp(x, w, t)
        return float(min(1.0, max(0.0, 1.0 - _trapz(y / x, x) / total)))

    def renamed(self, name: str) -> "FilterCurve":
        """The same curve under another band name."""
        return FilterCurve(name, self.wavelength, self.transmission, self.source, dict(self.meta))

    def __repr__(self) -> str:
        return (f"FilterCurve({self.name!r}, pivot={self.pivot:.1f} A, fwhm={self.fwhm:.1f} A, "
                f"{self.wavelength.size} points)")



# -- building curves ---------------------------------------------------------------------------

def _wave_unit(unit: str | u.UnitBase | None, where: str) -> u.UnitBase:
    if unit is None:
        raise InputError(f"{where}: give the wavelength unit explicitly "
                         "(unit='Angstrom', 'nm', 'micron'; CLI: --filter-unit)")
    try:
        unit = u.Unit(unit)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{where}: unknown wavelength unit {unit!r}") from exc
    if not unit.is_equivalent(u.AA):
        raise InputError(f"{where}: {unit} is not a wavelength (length) unit")
    return unit


def filter_curve_from_arrays(name: str, wavelength: Any, transmission: Any, unit: str | u.UnitBase | None = None,
                             *, source: str = "arrays") -> FilterCurve:
    """A validated `FilterCurve` from arrays: `wavelength` a length Quantity, or numbers with `unit`."""
    where = f"filter {name!r}"
    if isinstance(wavelength, u.Quantity):
        if not wavelength.unit.is_equivalent(u.AA):
            raise InputError(f"{where}: wavelength unit {wavelength.unit} is not a length")
        w = wavelength.to_value(u.AA)
    else:
        w = (np.asarray(wavelength, dtype=float) * _wave_unit(unit, where)).to_value(u.AA)
    t = transmission.to_value(u.dimensionless_unscaled) if isinstance(transmission, u.Quantity) else transmission
    return FilterCurve(name, w, np.asarray(t, dtype=float), source)


def _is_votable(path: Path) -> bool:
    if path.suffix.lower() in {".xml", ".vot", ".votable"}:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(512).lstrip()
    except OSError:
        return False
    return head.startswith(b"<?xml") or b"<VOTABLE" in head


def read_filter_curve(path: str | os.PathLike, *, unit: str | u.UnitBase | None = None,
                      name: str | None = None) -> FilterCurve:
    """Read one curve from a file.

    * SVO VOTable (``.xml``/``.vot``, as the SVO Filter Profile Service serves): the wavelength unit
      comes from the file (`unit` overrides it only when the file has none).
    * Two-column ASCII (wavelength, transmission; ``#`` comments): `unit` is required.

    The band name defaults to the file name without its last suffix (``OAJ_JPAS.J0378.dat`` ->
    ``OAJ_JPAS.J0378``).
    """
    path = Path(path)
    name = name or path.stem
    if not path.is_file():
        raise InputError(f"{path}: no such filter file")
    if _is_votable(path):
        from astropy.io.votable import parse_single_table

        try:
            with warnings.catch_warnings():  # SVO writes 'Angstrom', which VOUnit deprecates
                warnings.simplefilter("ignore", u.UnitsWarning)
                tab = parse_single_table(str(path)).to_table()
        except (OSError, ValueError, IndexError) as exc:  # unreadable, not XML/VOTable, no table in it
            raise InputError(f"{path}: cannot read as VOTable ({type(exc).__name__}: {exc})") from exc
        cols = {c.lower(): c for c in tab.colnames}
        wcol = cols.get("wavelength", tab.colnames[0])
        tcol = cols.get("transmission", tab.colnames[1] if len(tab.colnames) > 1 else None)
        if tcol is None:
            raise InputError(f"{path}: VOTable needs a wavelength and a transmission column")
        file_unit = tab[wcol].unit
        wunit = _wave_unit(file_unit if file_unit is not None else unit, str(path))
        meta = {"filter_id": tab.meta.get("filterID") or tab.meta.get("ID")} if tab.meta else {}
        return FilterCurve(name, (np.asarray(tab[wcol], dtype=float) * wunit).to_value(u.AA),
                           np.asarray(tab[tcol], dtype=float), str(path), {k: v for k, v in meta.items() if v})
    wunit = _wave_unit(unit, str(path))
    try:
        data = np.loadtxt(path, comments="#", ndmin=2, delimiter="," if path.suffix.lower() == ".csv" else None)
    except (OSError, ValueError) as exc:  # unreadable, not numbers (UnicodeDecodeError is a ValueError)
        raise InputError(f"{path}: cannot read as two-column ASCII ({type(exc).__name__}: {exc})") from exc
    if data.shape[1] < 2 or data.shape[0] < 2:
        raise InputError(f"{path}: expected two columns (wavelength, transmission), got shape {data.shape}")
    return FilterCurve(name, (data[:, 0] * wunit).to_value(u.AA), data[:, 1], str(path))
