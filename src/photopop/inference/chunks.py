"""The chunk kernel: predict one block of rows, apply the NaN policy, write one part file.

`predict_chunk` is what every prediction path calls (catalogues in one process or on Dask workers,
image cubes, in-memory tables): it checks the input columns, masks implausible magnitudes (see
`photopop.photometry.magnitudes`), applies the NaN policy and checks what the model returned.
`ChunkJob` / `process_chunk` are one unit of catalogue work: read a row range, predict, write its
part atomically and return the manifest record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError, MismatchError
from ..photometry.columns import MAG_PREFIX
from ..photometry.magnitudes import (
    describe_implausible,
    magnitude_matrix,
    mask_implausible,
)
from .ids import check_chunk_ids
from .inputs import CatalogInput
from .manifest import part_name, write_part
from .readers import read_rows

ON_NAN = ("nan", "refuse")
DEFAULT_CHUNK_ROWS = 100_000
#: the columns every catalogue part starts with after the ids: which input and which row of it
ROW_COLUMNS = ("input_index", "row_index")


def check_on_nan(on_nan: str) -> None:
    """InputError unless `on_nan` is one of ON_NAN."""
    if on_nan not in ON_NAN:
        raise InputError(f"on_nan must be one of {list(ON_NAN)}, got {on_nan!r}")


def extra_columns(predictor: Any) -> list[str]:
    """Input columns the predictor needs besides ``mag_<band>`` (its ``extra_columns``, default none)."""
    return [str(c) for c in (getattr(predictor, "extra_columns", None) or ())]


def output_columns(predictor: Any) -> list[str]:
    """Columns that `predict_frame` returns (asked from an empty frame unless it declares them)."""
    declared = getattr(predictor, "output_columns", None)
    if declared:
        return list(declared)
    names = [MAG_PREFIX + b for b in predictor.bands] + extra_columns(predictor)
    empty = pd.DataFrame({c: pd.Series(dtype=np.float64) for c in names})
    return [str(c) for c in predictor.predict_frame(empty).columns]


def predict_chunk(predictor: Any, df: pd.DataFrame, on_nan: str = "nan",
                  what: str = "input") -> tuple[pd.DataFrame, int]:
    """Predictions (RangeIndex, one row per row of `df`) and the number of rows with a missing band.

    A band is missing when its magnitude is NaN or implausible (inf, a sentinel such as 99, or
    outside the model's ``mag_range``, default -10 .. 40 AB; see `photopop.photometry.magnitudes`):
    implausible values are masked to NaN first, so they are counted with the NaN rows. Rows with a
    missing band get NaN predictions (``on_nan='nan'``) or raise InputError (``'refuse'``), unless
    the predictor ``handles_nan`` itself (then it sees NaN for the masked bands). Non-numeric
    magnitude columns raise InputError. Vectorised: the model sees all complete rows in one call.
    """
    check_on_nan(on_nan)
    cols = [MAG_PREFIX + b for b in predictor.bands]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"{what}: missing magnitude column(s) {missing}")
    extra = [c for c in extra_columns(predictor) if c not in cols]
    absent = [c for c in extra if c not in df.columns]
    if absent:
        raise InputError(f"{what}: missing column(s) {absent[:6]} the model is conditioned on")
    raw = magnitude_matrix(df, cols, what)
    mags, n_implausible = mask_implausible(raw, getattr(predictor, "mag_range", None))
    frame = pd.DataFrame(mags, columns=cols)
    for c in extra:
        frame[c] = df[c].to_numpy()
    n = len(frame)
    ok = np.isfinite(mags).all(axis=1)
    n_bad = int(n - ok.sum())
    if n_bad == 0 or getattr(predictor, "handles_nan", False):
        pred = predictor.predict_frame(frame)
        _check_output(predictor, pred, n, what)
        return pred.reset_index(drop=True), n_bad
    if on_nan == "refuse":
        bad_bands = [b for j, b in enumerate(predictor.bands) if not np.isfinite(mags[:, j]).all()]
        why = (f" ({describe_implausible(raw, cols, getattr(predictor, 'mag_range', None))})"
               if n_implausible else "")
        raise InputError(f"{what}: {n_bad} row(s) have NaN/inf or implausible magnitudes (band(s) {bad_bands})"
                         f"{why}; use on_nan='nan' (--on-nan nan) to write NaN predictions for them")
    sub = predictor.predict_frame(frame.loc[ok].reset_index(drop=True))
    _check_output(predictor, sub, int(ok.sum()), what)
    values = np.full((n, sub.shape[1]), np.nan, dtype=np.float64)
    values[ok] = sub.to_numpy(dtype=np.float64)
    return pd.DataFrame(values, columns=[str(c) for c in sub.columns]), n_bad


def _check_output(predictor: Any, pred: pd.DataFrame, n: int, what: str) -> None:
    if not isinstance(pred, pd.DataFrame) or len(pred) != n:
        raise InputError(f"{what}: the model returned {type(pred).__name__} of length "
                         f"{len(pred) if hasattr(pred, '__len__') else '?'} for {n} rows")
    missing = [t for t in predictor.targets if t not in pred.columns]
    if missing:
        raise InputError(f"{what}: the model's output lacks target column(s) {missing}")


def check_input_bands(predictor: Any, bands: Sequence[str], filter_system: str | None, what: str,
                      ignore_extra_bands: bool = False) -> None:
    """MismatchError naming `what` if its bands or filter system differ from the model's."""
    from ..models.sed_base import check_bands

    given = [b for b in bands if b in set(predictor.bands)] if ignore_extra_bands else list(bands)
    try:
        check_bands(predictor.bands, given, predictor.filter_system, filter_system)
    except MismatchError as exc:
        raise MismatchError(f"{what}: {exc}") from exc


def row_columns(input_index: int, start: int, n: int) -> pd.DataFrame:
    """``input_index`` and ``row_index`` (0-based row in the input file) of a chunk's rows."""
    return pd.DataFrame({"input_index": np.full(n, input_index, dtype=np.int32),
                         "row_index": np.arange(start, start + n, dtype=np.int64)})


@dataclass(frozen=True)
class ChunkJob:
    """Everything a worker needs to predict one chunk and write its part file (picklable)."""

    source: CatalogInput
    chunk: int
    start: int
    stop: int | None  # None: rows come with the job (CSV)
    out_dir: str
    read_columns: tuple[str, ...]
    id_columns: tuple[str, ...]
    on_nan: str
    model_hash: str

    @property
    def name(self) -> str:
        return part_name(self.source.index, self.chunk)


def process_chunk(predictor: Any, job: ChunkJob, frame: pd.DataFrame | None = None) -> dict[str, Any]:
    """Read (unless `frame` is given), predict and atomically write one part; returns its manifest record."""
    if frame is None:
        frame = read_rows(job.source, job.start, int(job.stop), job.read_columns)
    what = f"{job.source.path} rows {job.start}-{job.start + len(frame)}"
    ids = check_chunk_ids(frame, job.id_columns, what, job.start)
    pred, n_nan = predict_chunk(predictor, frame, job.on_nan, what)
    out = pd.concat([ids, row_columns(job.source.index, job.start, len(frame)), pred], axis=1)
    digest = write_part(out, Path(job.out_dir) / job.name, {"photopop_model_hash": job.model_hash,
                                                             "photopop_input": job.source.path})
    return {"name": job.name, "input": job.source.index, "chunk": job.chunk, "start": job.start,
            "rows": len(frame), "nan_rows": n_nan, "sha256": digest}
