"""`as_frame`: astropy `Table` / `QTable` inputs as the pandas DataFrames the rest of photopop takes.

Every entry point that takes a table (``SEDRegressor.fit`` / ``predict``, saved models and ensembles,
`scores`) calls `as_frame` first, so an astronomer can pass the table astropy read from a FITS or VOTable
catalogue. Magnitude columns (``mag_<band>``, ``magerr_<band>``, ``magtrue_<band>``) may carry a
magnitude unit (``u.mag`` or ``u.ABmag``, or a plain column whose unit string is ``mag`` / ``mag(AB)``):
photopop's magnitudes are AB, so their values are taken as AB numbers. Any other unit on a magnitude
column (a flux, STmag, a length) is refused with an `InputError` naming the column and the unit,
instead of being silently read as a magnitude. Other columns lose their units (their values are kept).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..photometry.columns import MAG_PREFIX, MAGERR_PREFIX, MAGTRUE_PREFIX

__all__ = ["as_frame", "is_astropy_table"]

_MAG_PREFIXES = (MAGERR_PREFIX, MAGTRUE_PREFIX, MAG_PREFIX)


def is_astropy_table(obj: Any) -> bool:
    """True for an astropy `Table` or `QTable` (without importing astropy when it is not loaded)."""
    import sys

    table_mod = sys.modules.get("astropy.table")
    return table_mod is not None and isinstance(obj, table_mod.Table)


def as_frame(obj: Any, what: str = "table") -> Any:
    """`obj` as a pandas DataFrame if it is an astropy `Table`/`QTable`; anything else unchanged.

    Parameters
    ----------
    obj
        An astropy ``Table`` or ``QTable`` (converted), or a DataFrame, `SEDTable`, array, ... (returned
        as it is, so entry points can call this on whatever they were given).
    what
        How error messages name the input (e.g. ``"training table"``).

    Returns
    -------
    pandas.DataFrame or the input
        One column per table column, in order, with a fresh RangeIndex. Masked values of float
        columns become NaN.

    Raises
    ------
    InputError
        A magnitude column (``mag_``/``magerr_``/``magtrue_<band>``) with a unit that is not a magnitude
        (``u.mag``, ``u.ABmag``), or a multidimensional column.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.table import QTable
    >>> as_frame(QTable({"mag_r": [18.5, 19.0] * u.ABmag, "magerr_r": [0.1, 0.2] * u.mag}))
       mag_r  magerr_r
    0   18.5       0.1
    1   19.0       0.2
    """
    if not is_astropy_table(obj):
        return obj
    cols: dict[str, np.ndarray] = {}
    for name in obj.colnames:
        col = obj[name]
        if getattr(col, "ndim", 1) != 1:
            raise InputError(f"{what}: column {name!r} has shape {tuple(col.shape)}; photopop takes one value "
                             "per row and column")
        if str(name).startswith(_MAG_PREFIXES):
            _check_magnitude_unit(name, getattr(col, "unit", None), what)
        cols[str(name)] = _values(col)
    return pd.DataFrame(cols)


def _check_magnitude_unit(name: str, unit: Any, what: str) -> None:
    """InputError unless `unit` is None, ``mag`` or ``mag(AB)``."""
    if unit is None:
        return
    import astropy.units as u

    if isinstance(unit, u.MagUnit) and unit.physical_unit in (u.dimensionless_unscaled, u.AB):
        return
    if unit == u.mag:  # a plain Unit('mag'), as a Table column read from FITS may carry
        return
    raise InputError(f"{what}: column {name!r} has unit {unit.to_string()!r}; photopop takes AB magnitudes "
                     "(unit mag or mag(AB)); convert fluxes with photopop.photometry.ab before passing them")


def _values(col: Any) -> np.ndarray:
    """Plain values of a Column / MaskedColumn / Quantity (masked floats -> NaN)."""
    value = getattr(col, "value", col)  # Quantity and Magnitude -> numbers
    mask = getattr(col, "mask", None)
    arr = np.asarray(getattr(value, "data", value) if mask is not None else value)
    if mask is not None and np.any(mask):
        if arr.dtype.kind == "f":
            arr = np.where(np.asarray(mask), np.nan, arr)
        else:
            return pd.array(np.ma.MaskedArray(arr, mask=np.asarray(mask)).tolist())  # nullable dtype
    return arr
