"""J-PAS / J-PLUS (and any other set) from the filter files of the installed milespy wheel.

One curve source of `photopop.photometry.filters.load_filter_system`: the measured curves (total
throughput) in milespy's ``config_files/filters`` folder, read as files without importing milespy and
without renormalising.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from astropy import units as u

from ..errors import InputError
from .curves import FilterCurve, read_filter_curve
from .system import FilterSystem

#: band renaming for files of the milespy folder: J-PAS names for the two u bands
_MILESPY_RENAME = {"OAJ_JPAS": {"uJava": "uJAVA", "u": "uJPAS"}}


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


__all__ = ["list_milespy_systems", "load_milespy_system", "milespy_filter_dir"]
