"""Filter curves and filter systems: the one place that knows band names and their response curves.

A `FilterCurve` is one band's response T(lambda) (wavelength in Angstrom, strictly increasing;
dimensionless, non-negative). A `FilterSystem` is an ordered set of curves (sorted by pivot
wavelength) that answers band names, pivots, FWHM, ranges, and selections.

Built-in systems (`load_filter_system`):

* ``sdss``: u, g, r, i, z of speclite's ``sdss2010`` (Doi et al. 2010, airmass 1.3).
* ``jpas``: the 60 measured J-PAS curves (total throughput) that ship in the ``milespy`` wheel,
  read from the installed files without importing milespy and without renormalising.
* ``jplus``: the 12 J-PLUS curves from the same folder; ``milespy:<PREFIX>`` for any other set there.
* ``jpas-califa``: the 34 J-PAS bands of Liew-Cain et al. (2021); see `jpas_liew_cain_2021`.
* an SVO Filter Profile Service id (``svo:SLOAN/SDSS.r`` or just ``SLOAN/SDSS.r``), several
  separated by commas; fetched once and cached (see `photopop.photometry.svo`).
* a file (two-column ASCII with an explicit unit, or an SVO VOTable) or a folder of such files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from astropy import units as u

from ..errors import InputError

__all__ = [
    "FilterCurve",
    "FilterSystem",
    "filter_curve_from_arrays",
    "read_filter_curve",
    "load_filter_system",
    "load_milespy_system",
    "list_milespy_systems",
    "milespy_filter_dir",
    "sdss_system",
    "jpas_liew_cain_2021",
    "pivot_wavelength",
    "fwhm",
    "SYSTEM_NAMES",
    "NARROW_MAX_FWHM",
    "BROAD_MIN_FWHM",
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

#: band renaming for files of the milespy folder: J-PAS names for the two u bands
_MILESPY_RENAME = {"OAJ_JPAS": {"uJava": "uJAVA", "u": "uJPAS"}}
#: short names of the built-in systems
SYSTEM_NAMES = ("sdss", "jpas", "jplus", "jpas-califa")
_MILESPY_ALIASES = {"jpas": "OAJ_JPAS", "jplus": "OAJ_JPLUS"}
#: Liew-Cain et al. (2021): CALIFA range and the two bands dropped because of H-alpha
LIEW_CAIN_RANGE_AA = (3700.0, 7000.0)
LIEW_CAIN_MARGIN_AA = 50.0
LIEW_CAIN_EXCLUDE = ("J0660", "J0670")


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


@dataclass(frozen=True, eq=False)
class FilterSystem:
    """An ordered set of band curves (sorted by pivot wavelength) with a name.

    Band names are unique. `select` returns a new system; nothing is mutated.
    """

    name: str
    curves: tuple[FilterCurve, ...]

    def __post_init__(self) -> None:
        curves = tuple(self.curves)
        if not curves:
            raise InputError(f"filter system {self.name!r} has no bands")
        names = [c.name for c in curves]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputError(f"filter system {self.name!r}: duplicate band name(s) {dupes}")
        object.__setattr__(self, "curves", tuple(sorted(curves, key=lambda c: c.pivot)))

    # -- lookups ---------------------------------------------------------------------------
    @property
    def bands(self) -> list[str]:
        """Band names, bluest first."""
        return [c.name for c in self.curves]

    @property
    def pivots(self) -> np.ndarray:
        """Pivot wavelengths (A), one per band."""
        return np.array([c.pivot for c in self.curves])

    @property
    def fwhms(self) -> np.ndarray:
        """FWHM (A), one per band."""
        return np.array([c.fwhm for c in self.curves])

    @property
    def wavelength_ranges(self) -> np.ndarray:
        """(n_bands, 2) response ranges (A) where T > 1% of the band's peak."""
        return np.array([c.support for c in self.curves])

    @property
    def kinds(self) -> list[str]:
        """'narrow' / 'medium' / 'broad' per band (see `FilterCurve.kind`)."""
        return [c.kind for c in self.curves]

    def __len__(self) -> int:
        return len(self.curves)

    def __iter__(self) -> Iterator[FilterCurve]:
        return iter(self.curves)

    def __contains__(self, band: object) -> bool:
        return band in self.bands

    def __getitem__(self, key: str | int) -> FilterCurve:
        if isinstance(key, (int, np.integer)):
            return self.curves[int(key)]
        for c in self.curves:
            if c.name == key:
                return c
        raise InputError(f"band {key!r} is not in filter system {self.name!r}; bands: {self.bands}")

    @cached_property
    def key(self) -> str:
        """Content hash of names and curves (for caching weight matrices)."""
        h = hashlib.sha1()
        for c in self.curves:
            h.update(c.name.encode())
            h.update(c.wavelength.tobytes())
            h.update(c.transmission.tobytes())
        return h.hexdigest()

    def summary(self) -> pd.DataFrame:
        """One row per band: pivot, FWHM, response range, tabulated extent, peak T, kind, source."""
        return pd.DataFrame({
            "band": self.bands,
            "pivot_aa": self.pivots,
            "fwhm_aa": self.fwhms,
            "range_lo_aa": self.wavelength_ranges[:, 0],
            "range_hi_aa": self.wavelength_ranges[:, 1],
            "extent_lo_aa": [c.extent[0] for c in self.curves],
            "extent_hi_aa": [c.extent[1] for c in self.curves],
            "peak": [c.peak for c in self.curves],
            "kind": self.kinds,
            "source": [c.source for c in self.curves],
        })

    # -- selection -------------------------------------------------------------------------
    def _check_names(self, names: Iterable[str], what: str) -> list[str]:
        names = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in names if n not in self.bands]
        if unknown:
            raise InputError(f"{what}: band(s) {unknown} not in filter system {self.name!r}; bands: {self.bands}")
        return names

    def inside(self, wavelength_range: tuple[float, float], *, criterion: str = "response",
               max_outside: float = 0.01, margin: float = 0.0) -> np.ndarray:
        """Boolean per band: is the band inside `wavelength_range` (A)?

        criterion:
          * ``"response"`` (default): at most `max_outside` of the band's AB weight
            int T/lam dlam lies outside the range, i.e. a spectrum covering exactly the range
            gives the band as 'full' or 'partial' in `synth_photometry` (not NaN).
          * ``"support"``: the range where T > 1% of peak lies inside.
          * ``"pivot"``: the pivot lies inside the range widened by `margin` A on each side.
        """
        lo, hi = (float(v) for v in wavelength_range)
        if not lo < hi:
            raise InputError(f"wavelength_range must be (low, high) with low < high, got {wavelength_range}")
        if criterion == "response":
            return np.array([c.share_outside(lo, hi) <= max_outside for c in self.curves])
        if criterion == "support":
            r = self.wavelength_ranges
            return (r[:, 0] >= lo) & (r[:, 1] <= hi)
        if criterion == "pivot":
            p = self.pivots
            return (p >= lo - margin) & (p <= hi + margin)
        raise InputError(f"unknown selection criterion {criterion!r}; use 'response', 'support' or 'pivot'")

    def select(self, names: Sequence[str] | None = None, *, wavelength_range: tuple[float, float] | None = None,
               exclude: Sequence[str] | None = None, kind: str | Sequence[str] | None = None,
               criterion: str = "response", max_outside: float = 0.01, margin: float = 0.0,
               name: str | None = None) -> "FilterSystem":
        """A subset: bands in `names` (all if None), inside `wavelength_range` (see `inside`),
        of the given `kind`(s), minus `exclude`. Unknown names raise InputError; an empty result too."""
        keep = np.ones(len(self), dtype=bool)
        if names is not None:
            wanted = set(self._check_names(names, "select"))
            keep &= np.array([b in wanted for b in self.bands])
        if wavelength_range is not None:
            keep &= self.inside(wavelength_range, criterion=criterion, max_outside=max_outside, margin=margin)
        if kind is not None:
            kinds = {kind} if isinstance(kind, str) else set(kind)
            bad = kinds - {"narrow", "medium", "broad"}
            if bad:
                raise InputError(f"unknown band kind(s) {sorted(bad)}; use 'narrow', 'medium' or 'broad'")
            keep &= np.array([k in kinds for k in self.kinds])
        if exclude is not None:
            dropped = set(self._check_names(exclude, "exclude"))
            keep &= np.array([b not in dropped for b in self.bands])
        curves = tuple(c for c, k in zip(self.curves, keep) if k)
        if not curves:
            raise InputError(f"selection from {self.name!r} leaves no bands")
        return FilterSystem(name or f"{self.name}[{len(curves)}]", curves)

    def __repr__(self) -> str:
        return f"FilterSystem({self.name!r}, {len(self)} bands: {', '.join(self.bands[:6])}{'...' if len(self) > 6 else ''})"


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
        except Exception as exc:
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
    except Exception as exc:
        raise InputError(f"{path}: cannot read as two-column ASCII ({type(exc).__name__}: {exc})") from exc
    if data.shape[1] < 2 or data.shape[0] < 2:
        raise InputError(f"{path}: expected two columns (wavelength, transmission), got shape {data.shape}")
    return FilterCurve(name, (data[:, 0] * wunit).to_value(u.AA), data[:, 1], str(path))


# -- built-in systems --------------------------------------------------------------------------

def sdss_system() -> FilterSystem:
    """SDSS u, g, r, i, z: speclite's ``sdss2010`` curves (Doi et al. 2010, through airmass 1.3)."""
    import speclite.filters

    responses = speclite.filters.load_filters("sdss2010-*")
    curves = tuple(FilterCurve(r.meta["band_name"], np.asarray(r.wavelength, float), np.asarray(r.response, float),
                               f"speclite:{r.name}") for r in responses)
    return FilterSystem("sdss", curves)


def milespy_filter_dir() -> Path:
    """Folder of filter curves inside the installed milespy package, found without importing it."""
    spec = importlib.util.find_spec("milespy")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the milespy package is not installed: `pip install milespy` provides the "
                         "J-PAS/J-PLUS filter curves (or pass the curves as files)")
    for loc in spec.submodule_search_locations:
        folder = Path(loc) / "config_files" / "filters"
        if folder.is_dir():
            return folder
    raise InputError(f"milespy is installed at {list(spec.submodule_search_locations)} but has no "
                     "config_files/filters folder")


def list_milespy_systems() -> dict[str, list[str]]:
    """Prefix -> file band names of every filter set in milespy's folder (e.g. 'OAJ_JPAS': [...])."""
    out: dict[str, list[str]] = {}
    for f in sorted(milespy_filter_dir().glob("*.dat")):
        prefix, _, band = f.name[: -len(".dat")].partition(".")
        out.setdefault(prefix, []).append(band)
    return out


def load_milespy_system(prefix: str, name: str | None = None) -> FilterSystem:
    """All curves ``<prefix>.<band>.dat`` of milespy's folder (Angstrom, transmission as given)."""
    folder = milespy_filter_dir()
    files = sorted(folder.glob(f"{prefix}.*.dat"))
    if not files:
        raise InputError(f"no milespy filter set {prefix!r}; available: {sorted(list_milespy_systems())}")
    rename = _MILESPY_RENAME.get(prefix, {})
    curves = []
    for f in files:
        band = f.name[len(prefix) + 1: -len(".dat")]
        curve = read_filter_curve(f, unit=u.AA, name=rename.get(band, band))
        curves.append(FilterCurve(curve.name, curve.wavelength, curve.transmission, f"milespy:{f.name}"))
    return FilterSystem(name or f"milespy:{prefix}", tuple(curves))


def jpas_liew_cain_2021() -> FilterSystem:
    """The 34 J-PAS bands of Liew-Cain et al. (2021), a reconstruction.

    The paper synthesises "36 J-PAS magnitudes" because CALIFA covers 3700-7000 A, then drops
    J0660 and J0670 (H-alpha). The only selection of the 60 J-PAS curves by that range that gives
    36 is by pivot wavelength, to within half the 100-A band spacing: pivot in [3650, 7050] A,
    i.e. J0378-J0700 (33 narrow bands) + uJPAS + gSDSS + rSDSS. Two of these, uJPAS (47% of its
    weight below 3700 A) and J0700 (56% above 7000 A), cannot be synthesised from a spectrum that
    really stops at 3700-7000 A; see docs/photometry.md.
    """
    jpas = load_filter_system("jpas")
    return jpas.select(wavelength_range=LIEW_CAIN_RANGE_AA, criterion="pivot", margin=LIEW_CAIN_MARGIN_AA,
                       exclude=list(LIEW_CAIN_EXCLUDE), name="jpas-califa")


_SYSTEM_CACHE: dict[str, FilterSystem] = {}
#: file suffixes read as filter curves (a folder's curves; paths never taken for SVO ids)
_CURVE_SUFFIXES = {".dat", ".txt", ".xml", ".vot", ".votable", ".csv", ".tab"}


def load_filter_system(spec: "str | os.PathLike | FilterSystem", *, unit: str | u.UnitBase | None = None) -> FilterSystem:
    """Resolve a filter-system spec to a `FilterSystem`.

    spec: ``'sdss'``, ``'jpas'``, ``'jplus'``, ``'jpas-califa'``, ``'milespy:<PREFIX>'``,
    ``'svo:<ID>[,<ID>...]'`` (or a bare SVO id containing '/'), a file holding one curve, or a folder
    whose ``*.dat``/``*.txt``/``*.xml``/``*.vot`` files are the bands. `unit` is the wavelength unit
    of ASCII files. A `FilterSystem` is returned unchanged.
    """
    if isinstance(spec, FilterSystem):
        return spec
    text = str(spec)
    key = text.lower()
    if isinstance(spec, str) and key in _SYSTEM_CACHE:
        return _SYSTEM_CACHE[key]
    system: FilterSystem | None = None
    if isinstance(spec, str):
        if key == "sdss":
            system = sdss_system()
        elif key in _MILESPY_ALIASES:
            system = load_milespy_system(_MILESPY_ALIASES[key], name=key)
        elif key in {"jpas-califa", "jpas_califa", "jpas-liew-cain-2021"}:
            system = jpas_liew_cain_2021()
        elif key.startswith("milespy:"):
            system = load_milespy_system(text.split(":", 1)[1])
        elif key.startswith("svo:") or (text.count("/") == 1 and not Path(text).exists()
                                         and Path(text).suffix.lower() not in _CURVE_SUFFIXES):
            from .svo import load_svo_system

            return load_svo_system([s.strip() for s in text.split(":", 1)[-1].split(",") if s.strip()]
                                   if key.startswith("svo:") else [s.strip() for s in text.split(",")])
        if system is not None:
            _SYSTEM_CACHE[key] = system
            return system
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _CURVE_SUFFIXES)
        if not files:
            raise InputError(f"{path}: folder holds no filter curve files (*.dat, *.txt, *.xml, *.vot)")
        return FilterSystem(path.name, tuple(read_filter_curve(f, unit=unit) for f in files))
    if path.is_file():
        curve = read_filter_curve(path, unit=unit)
        return FilterSystem(curve.name, (curve,))
    if path.suffix.lower() in _CURVE_SUFFIXES or os.sep in text:
        raise InputError(f"{path}: no such filter curve file or folder")
    raise InputError(f"unknown filter system {text!r}: use one of {list(SYSTEM_NAMES)}, 'milespy:<PREFIX>' "
                     f"(e.g. milespy:OAJ_JPLUS), 'svo:<SVO id>' (e.g. svo:SLOAN/SDSS.r), or a curve file/folder")
