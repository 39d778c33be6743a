"""Which magnitude values are physical: the one check used by training and prediction alike.

Catalogues mark missing photometry in many ways: NaN, but also sentinels such as 99, -99, 99.99 or
-9999, and broken pipelines give 1e30 or values that overflow float32 (1e39 -> inf inside the network).
A network fed such a number returns a confident, absurd prediction (log ages of -1e27). Every place
where magnitudes enter photopop therefore goes through this module:

* `magnitude_matrix` turns DataFrame columns into a float64 array, refusing strings, booleans and
  other non-numeric columns with an `InputError` naming the column and the file;
* `implausible` marks values that are not a magnitude: infinite, or outside `MagnitudeRange`
  (default -10 .. 40 AB; the brightest galaxy spaxels are ~10 mag, the faintest photometry ~32);
* training refuses them (`check_magnitudes`, called from SED-table validation and from
  `photopop.models.normalise.make_features`), prediction masks them (`mask_implausible`: NaN, so
  the row gets NaN predictions or the band is masked) and counts the rows it masked.

NaN stays "missing" (models trained with ``nan_policy='mask'`` accept it), it is never implausible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError

#: values catalogues use for "no measurement"; named in the error message when one is found
SENTINELS = (99.0, -99.0, 99.99, -99.99, 999.0, -999.0, 9999.0, -9999.0, 99999.0, -99999.0)


@dataclass(frozen=True)
class MagnitudeRange:
    """Closed range [lo, hi] of AB magnitudes accepted as measurements (default -10 .. 40).

    Anything outside (and +-inf) is implausible: refused in training, masked in prediction.
    Widen it for unusual data (e.g. ``MagnitudeRange(-30, 45)`` for absolute magnitudes).
    """

    lo: float = -10.0
    hi: float = 40.0

    def __post_init__(self) -> None:
        lo, hi = float(self.lo), float(self.hi)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise InputError(f"magnitude range must be finite with lo < hi, got [{self.lo}, {self.hi}]")
        if hi > 1e30 or lo < -1e30:
            raise InputError(f"magnitude range [{lo}, {hi}] is not a range of magnitudes")

    def to_dict(self) -> dict[str, float]:
        """JSON-able form (recorded in run fingerprints)."""
        return {"lo": float(self.lo), "hi": float(self.hi)}


DEFAULT_RANGE = MagnitudeRange()


def as_range(mag_range: "MagnitudeRange | Sequence[float] | None") -> MagnitudeRange:
    """`DEFAULT_RANGE` for None, a `MagnitudeRange` as is, (lo, hi) as a range."""
    if mag_range is None:
        return DEFAULT_RANGE
    if isinstance(mag_range, MagnitudeRange):
        return mag_range
    try:
        lo, hi = (float(v) for v in mag_range)
    except (TypeError, ValueError) as exc:
        raise InputError(f"magnitude range must be (lo, hi), got {mag_range!r}") from exc
    return MagnitudeRange(lo, hi)


def magnitude_matrix(df: pd.DataFrame, columns: Sequence[str], source: str = "input") -> np.ndarray:
    """(n_rows, len(columns)) float64 array of magnitude columns; InputError for non-numeric columns.

    Booleans, strings and other objects are not magnitudes (pandas would silently make True 1.0,
    or raise a bare ValueError for strings); integers are accepted.
    """
    out = np.empty((len(df), len(columns)), dtype=np.float64)
    for j, col in enumerate(columns):
        values = df[col]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            example = _first_non_numeric(values)
            raise InputError(f"{source}: magnitude column {col!r} is not numeric (dtype {values.dtype}"
                             f"{', e.g. ' + repr(example) if example is not None else ''})")
        try:
            out[:, j] = values.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:  # e.g. a nullable dtype pandas cannot convert
            raise InputError(f"{source}: magnitude column {col!r} cannot be read as numbers ({exc})") from exc
    return out


def _first_non_numeric(values: pd.Series) -> Any:
    for v in values.head(1000):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
            return v.item() if isinstance(v, np.generic) else v
    return None


def implausible(mags: np.ndarray, mag_range: MagnitudeRange | Sequence[float] | None = None) -> np.ndarray:
    """Boolean mask of values that are not magnitudes: +-inf or outside the range (NaN is not flagged)."""
    rng = as_range(mag_range)
    mags = np.asarray(mags, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isinf(mags) | (mags < rng.lo) | (mags > rng.hi)


def describe_implausible(mags: np.ndarray, names: Sequence[str],
                         mag_range: MagnitudeRange | Sequence[float] | None = None) -> str:
    """'' if every value is plausible, else a message naming the columns, the count and sentinel values."""
    rng = as_range(mag_range)
    mags = np.atleast_2d(np.asarray(mags, dtype=np.float64))
    bad = implausible(mags, rng)
    if not bad.any():
        return ""
    cols = np.flatnonzero(bad.any(axis=0))
    rows = np.flatnonzero(bad.any(axis=1))
    values = mags[bad]
    found = sorted({float(v) for v in values if float(v) in SENTINELS})
    first = float(mags[rows[0], np.flatnonzero(bad[rows[0]])[0]])
    text = (f"{int(bad.sum())} implausible magnitude(s) in {len(rows)} row(s), column(s) "
            f"{[str(names[c]) for c in cols[:10]]}{' ...' if len(cols) > 10 else ''} (first: {first!r} at row "
            f"{int(rows[0])}); accepted range is [{rng.lo:g}, {rng.hi:g}] AB")
    if found:
        text += f"; {found} look like missing-data sentinels: write missing values as NaN"
    return text


def check_magnitudes(mags: np.ndarray, names: Sequence[str], source: str = "input",
                     mag_range: MagnitudeRange | Sequence[float] | None = None) -> None:
    """InputError naming the problem if any value is implausible (NaN passes; callers decide on NaN)."""
    message = describe_implausible(mags, names, mag_range)
    if message:
        raise InputError(f"{source}: {message}")


def mask_implausible(mags: np.ndarray, mag_range: MagnitudeRange | Sequence[float] | None = None
                     ) -> tuple[np.ndarray, int]:
    """(copy of `mags` with implausible values set to NaN, number of rows that had any)."""
    mags = np.array(mags, dtype=np.float64, copy=True)
    bad = implausible(mags, mag_range)
    mags[bad] = np.nan
    return mags, int(bad.any(axis=-1).sum()) if bad.ndim > 1 else int(bad.sum())


def check_magnitude_errors(errs: np.ndarray, names: Sequence[str], source: str = "input",
                           allow_zero: bool = False) -> None:
    """InputError unless every magnitude error is finite and > 0 (>= 0 with `allow_zero`, noise-free mocks)."""
    errs = np.atleast_2d(np.asarray(errs, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        kinds = {"non-finite": ~np.isfinite(errs), "negative": errs < 0,
                 "zero": (errs == 0) if not allow_zero else np.zeros(errs.shape, dtype=bool)}
    bad = np.logical_or.reduce(list(kinds.values()))
    if bad.any():
        cols = [str(names[c]) for c in np.flatnonzero(bad.any(axis=0))[:10]]
        first = float(errs[bad][0])
        found = "/".join(k for k, m in kinds.items() if m.any())
        need = ">= 0" if allow_zero else "> 0 (0 is not a measurement error)"
        raise InputError(f"{source}: column(s) {cols}: {int(bad.sum())} {found} magnitude error(s) "
                         f"(first: {first!r}); errors must be finite and {need}")
