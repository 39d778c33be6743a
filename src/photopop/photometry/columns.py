"""The column schema of magnitude tables: ``mag_<band>``, ``magerr_<band>``, ``magtrue_<band>``.

One place for the prefixes so that tables, models and prediction agree on what a band column is.
"""

from __future__ import annotations

from typing import Iterable

MAG_PREFIX = "mag_"
MAGERR_PREFIX = "magerr_"
MAGTRUE_PREFIX = "magtrue_"


def mag_columns(bands: Iterable[str], prefix: str = "mag") -> list[str]:
    """Column names ``<prefix>_<band>`` for `bands` (prefix 'mag', 'magerr' or 'magtrue').

    >>> mag_columns(["g", "r"], "magerr")
    ['magerr_g', 'magerr_r']
    """
    return [f"{prefix}_{b}" for b in bands]


def bands_from_columns(columns: Iterable[str]) -> list[str]:
    """Bands in column order, inferred from ``mag_<band>`` columns.

    >>> bands_from_columns(["galaxy_id", "mag_g", "magerr_g", "mag_r"])
    ['g', 'r']
    """
    return [str(c)[len(MAG_PREFIX):] for c in columns if str(c).startswith(MAG_PREFIX)]
