"""Filter systems by name: `load_filter_system`, the one place that knows the built-in sets.

`FilterSystem` (an ordered set of `FilterCurve`s) is defined in `photopop.photometry.system`, the curves in
`photopop.photometry.curves`; each curve source is its own module below this dispatcher (`sdss_curves`,
`milespy_curves`, `svo`, `curve_files`). The names of those modules are importable from here as before.

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

Filter families (`filter_family`, `same_filter_family`, in `photopop.photometry.system`): a named subset of
a system's bands (``jpas-califa`` of ``jpas``, a ``select`` result ``jpas[12]``) belongs to that system's
family; the model check (`photopop.models.sed_base.check_bands`) treats systems of one family as the same system.
"""

from __future__ import annotations

import os
from pathlib import Path

from astropy import units as u

from ..errors import InputError
from .curve_files import CURVE_SUFFIXES, load_curve_files
from .curves import (BROAD_MIN_FWHM, NARROW_MAX_FWHM, FilterCurve, filter_curve_from_arrays, fwhm,
                     pivot_wavelength, read_filter_curve)
from .milespy_curves import list_milespy_systems, load_milespy_system, milespy_filter_dir
from .sdss_curves import sdss_system
from .svo import load_svo_system
from .system import FilterSystem, filter_family, same_filter_family

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

#: short names of the built-in systems
SYSTEM_NAMES = ("sdss", "jpas", "jplus", "jpas-califa")
_MILESPY_ALIASES = {"jpas": "OAJ_JPAS", "jplus": "OAJ_JPLUS"}
#: Liew-Cain et al. (2021) from CALIFA COMB spectra: observed range, the largest uncovered share of a band's
#: AB weight, and the two bands dropped because of H-alpha (see `jpas_liew_cain_2021`)
CALIFA_COMB_RANGE_AA = (3700.0, 7500.0)
CALIFA_MAX_UNCOVERED = 0.01
LIEW_CAIN_EXCLUDE = ("J0660", "J0670")


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
                                         and Path(text).suffix.lower() not in CURVE_SUFFIXES):
            return load_svo_system([s.strip() for s in text.split(":", 1)[-1].split(",") if s.strip()]
                                   if key.startswith("svo:") else [s.strip() for s in text.split(",")])
        if system is not None:
            _SYSTEM_CACHE[key] = system
            return system
    system = load_curve_files(spec, unit=unit)
    if system is not None:
        return system
    path = Path(spec)
    if path.suffix.lower() in CURVE_SUFFIXES or os.sep in text:
        raise InputError(f"{path}: no such filter curve file or folder")
    raise InputError(f"unknown filter system {text!r}: use one of {list(SYSTEM_NAMES)}, 'milespy:<PREFIX>' "
                     f"(e.g. milespy:OAJ_JPLUS), 'svo:<SVO id>' (e.g. svo:SLOAN/SDSS.r), or a curve file/folder")
