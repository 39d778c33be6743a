"""User filter curves: one file (two-column ASCII with an explicit unit, or an SVO VOTable) or a folder.

One curve source of `photopop.photometry.filters.load_filter_system`; the curve readers themselves are in
`photopop.photometry.curves`.
"""

from __future__ import annotations

import os
from pathlib import Path

from astropy import units as u

from ..errors import InputError
from .curves import read_filter_curve
from .system import FilterSystem

#: file suffixes read as filter curves (a folder's curves; paths never taken for SVO ids)
CURVE_SUFFIXES = {".dat", ".txt", ".xml", ".vot", ".votable", ".csv", ".tab"}


def load_curve_files(spec: "str | os.PathLike", unit: str | u.UnitBase | None = None) -> FilterSystem | None:
    """The system of a curve file (one band) or of a folder of curve files (its ``CURVE_SUFFIXES`` files,
    one band each); None when `spec` is neither. `unit` is the wavelength unit of ASCII files."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in CURVE_SUFFIXES)
        if not files:
            raise InputError(f"{path}: folder holds no filter curve files (*.dat, *.txt, *.xml, *.vot)")
        return FilterSystem(path.name, tuple(read_filter_curve(f, unit=unit) for f in files))
    if path.is_file():
        curve = read_filter_curve(path, unit=unit)
        return FilterSystem(curve.name, (curve,))
    return None


__all__ = ["CURVE_SUFFIXES", "load_curve_files"]
