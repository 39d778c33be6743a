"""Filter systems: the one place that knows band names, their curves and the built-in sets.

A `FilterSystem` is an ordered set of `FilterCurve`s (sorted by pivot wavelength; curves are defined in
`photopop.photometry.curves`) that answers band names, pivots, FWHM, ranges and selections.

Built-in systems (`load_filter_system`):

* ``sdss``: u, g, r, i, z of speclite's ``sdss2010`` (Doi et al. 2010, airmass 1.3).
* ``jpas``: the 60 measured J-PAS curves (total throughput) that ship in the ``milespy`` wheel,
  read from the installed files without importing milespy and without renormalising.
* ``jplus``: the 12 J-PLUS curves from the same folder; ``milespy:<PREFIX>`` for any other set there.
* ``jpas-califa``: the 37 J-PAS bands a CALIFA COMB spectrum (3700-7500 A observed) gives with <= 1% of
  each band's response uncovered, minus J0660/J0670 (H-alpha, as Liew-Cain et al. 2021); see
  `jpas_liew_cain_2021`.
* an SVO Filter Profile Service id (``svo:SLOAN/SDSS.r`` or just ``SLOAN/SDSS.r``), several
  separated by commas; fetched once and cached (see `photopop.photometry.svo`).
* a file (two-column ASCII with an explicit unit, or an SVO VOTable) or a folder of such files.

Filter families (`filter_family`, `same_filter_family`): a named subset of a system's bands
(``jpas-califa`` of ``jpas``, a ``select`` result ``jpas[12]``) belongs to that system's family; the
model check (`photopop.models.saved.check_bands`) treats systems of one family as the same system.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from astropy import units as u

from ..errors import InputError
from .curves import (BROAD_MIN_FWHM, NARROW_MAX_FWHM, FilterCurve, filter_curve_from_arrays, fwhm,
                     pivot_wavelength, read_filter_curve)

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
    "filter_family",
    "same_filter_family",
    "pivot_wavelength",
    "fwhm",
    "SYSTEM_NAMES",
    "NARROW_MAX_FWHM",
    "BROAD_MIN_FWHM",
]

#: band renaming for files of the milespy folder: J-PAS names for the two u bands
_MILESPY_RENAME = {"OAJ_JPAS": {"uJava": "uJAVA", "u": "uJPAS"}}
#: short names of the built-in systems
SYSTEM_NAMES = ("sdss", "jpas", "jplus", "jpas-califa")
_MILESPY_ALIASES = {"jpas": "OAJ_JPAS", "jplus": "OAJ_JPLUS"}
#: Liew-Cain et al. (2021) from CALIFA COMB spectra: observed range, the largest uncovered share of a band's
#: AB weight, and the two bands dropped because of H-alpha (see `jpas_liew_cain_2021`)
CALIFA_COMB_RANGE_AA = (3700.0, 7500.0)
CALIFA_MAX_UNCOVERED = 0.01
LIEW_CAIN_EXCLUDE = ("J0660", "J0670")
#: family of each built-in system name (a subset of a system's bands is the same filter system)
_FAMILIES = {"jpas": "jpas", "milespy:oaj_jpas": "jpas", "jpas-califa": "jpas", "jpas_califa": "jpas",
             "jpas-liew-cain-2021": "jpas", "jplus": "jplus", "milespy:oaj_jplus": "jplus", "sdss": "sdss"}
_SELECTION_SUFFIX = re.compile(r"\[\d+\]$")


def filter_family(name: str | None) -> str | None:
    """The filter system a system name belongs to: 'jpas' for 'jpas', 'jpas-califa', 'milespy:OAJ_JPAS'
    and selections such as 'jpas[12]'; 'jplus', 'sdss' likewise; any other name is its own family
    (compared case-insensitively). None stays None."""
    if name is None:
        return None
    key = str(name).strip()
    while _SELECTION_SUFFIX.search(key):
        key = _SELECTION_SUFFIX.sub("", key)
    return _FAMILIES.get(key.lower(), key.lower())


def same_filter_family(a: str | None, b: str | None) -> bool:
    """True when two filter-system names belong to one family (see `filter_family`); a missing name
    (None or '') matches anything."""
    if not a or not b:
        return True
    return filter_family(a) == filter_family(b)


@dataclass(frozen=True, eq=False)
class FilterSystem:
    """An ordered set of band curves (sorted by pivot wavelength) with a name.

    Band names are unique. `select` returns a new system; nothing is mutated.

    Parameters
    ----------
    name : str
        The system's name (as model folders and catalogue metadata record it).
    curves : tuple of FilterCurve
        The band curves, in any order (sorted by pivot on construction).
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
    """The J-PAS bands of Liew-Cain et al. (2021) as a CALIFA spectrum gives them: 37 bands.

    Rule: every J-PAS band with at most 1% of its AB weight (int T/lambda dlambda) outside the
    observed range of a CALIFA COMB cube, 3700-7500 A, minus J0660 and J0670 (H-alpha, as in the
    paper). The criterion is in the observed frame: the paper synthesised J-PAS photometry from the
    observed CALIFA spectra, and J-PAS itself observes the redshifted light, so the galaxies'
    redshift (0.005-0.03) does not move the limits (it moves H-alpha, 6596-6760 A, into J0660 and
    J0670). Result: J0378-J0740 without J0660/J0670 (35 narrow bands) + gSDSS + rSDSS. uJPAS (47% of
    its weight below 3700 A) and J0750 (51% above 7500 A) are out. See docs/photometry.md for the
    paper's "36 minus 2" and why no range-based rule gives 34 from the COMB range.
    """
    jpas = load_filter_system("jpas")  # criterion 'response' is what `coverage.covered_by` applies to a range
    return jpas.select(wavelength_range=CALIFA_COMB_RANGE_AA, criterion="response",
                       max_outside=CALIFA_MAX_UNCOVERED, exclude=list(LIEW_CAIN_EXCLUDE), name="jpas-califa")


_SYSTEM_CACHE: dict[str, FilterSystem] = {}
#: file suffixes read as filter curves (a folder's curves; paths never taken for SVO ids)
_CURVE_SUFFIXES = {".dat", ".txt", ".xml", ".vot", ".votable", ".csv", ".tab"}


def load_filter_system(spec: "str | os.PathLike | FilterSystem", *, unit: str | u.UnitBase | None = None) -> FilterSystem:
    """Resolve a filter-system spec to a `FilterSystem`.

    spec: ``'sdss'``, ``'jpas'``, ``'jplus'``, ``'jpas-califa'``, ``'milespy:<PREFIX>'``,
    ``'svo:<ID>[,<ID>...]'`` (or a bare SVO id containing '/'), a file holding one curve, or a folder
    whose ``*.dat``/``*.txt``/``*.xml``/``*.vot`` files are the bands. `unit` is the wavelength unit
    of ASCII files. A `FilterSystem` is returned unchanged.

    Parameters
    ----------
    spec : str, path or FilterSystem
        A system name, ``milespy:``/``svo:`` spec, a curve file or a folder of curve files.
    unit : str or astropy unit, optional
        Wavelength unit of ASCII curve files that do not state it.

    Returns
    -------
    FilterSystem
        The bands ordered by pivot wavelength (named systems are cached).

    Raises
    ------
    InputError
        An unknown name, an unreadable or implausible curve, or an SVO id that cannot be fetched.
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
