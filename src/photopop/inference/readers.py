"""Chunk readers: row ranges of one catalogue input with bounded memory.

Readers never hold more than one chunk of the selected columns (plus one Parquet row group being
decoded): Parquet through `pyarrow.parquet.ParquetFile.iter_batches`, FITS tables through row slices
of a memory-mapped HDU, CSV through `pandas.read_csv(chunksize=...)`. A chunk is the row range
``[k * chunk_rows, (k + 1) * chunk_rows)`` of one input file, so chunk k is the same rows on every
run and on every Dask worker.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import read_errors
from ..photometry.columns import MAG_PREFIX
from .inputs import CatalogInput
from .manifest import n_chunks

#: rows per decoded Parquet batch, and the read buffer per column
PARQUET_BATCH_ROWS = 16_384
PARQUET_BUFFER_BYTES = 1 << 20


@dataclass
class Chunk:
    """Rows [start, start + n_rows) of one input; `frame` is None for a chunk skipped on resume."""

    index: int
    start: int
    n_rows: int
    frame: pd.DataFrame | None


class _ParquetReader:
    """Row ranges of a Parquet file, streaming batch by batch; sequential ranges decode each row once."""

    def __init__(self, path: str, columns: Sequence[str]) -> None:
        import pyarrow.parquet as pq

        self.path = path
        # no pre-buffering (it reads whole row groups ahead) and a buffered stream (pages are read
        # as needed, not whole column chunks): memory then does not grow with the row-group size
        self.pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES,
                                 page_checksum_verification=True)  # pages written with CRCs are verified
        md = self.pf.metadata
        sizes = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
        self.rg_start = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self.columns = list(columns)
        self._it: Iterator[Any] | None = None
        self._pos = 0  # absolute row of the next batch from the iterator
        self._batch: Any = None  # a fetched batch not fully used yet
        self._batch_pos = 0

    def _rg_of(self, row: int) -> int:
        return int(min(max(np.searchsorted(self.rg_start, row, side="right") - 1, 0), len(self.rg_start) - 2))

    def _open(self, start: int) -> None:
        rg = self._rg_of(start)
        self._it = self.pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=list(range(rg, len(self.rg_start) - 1)),
                                        columns=self.columns, use_threads=False)
        self._pos = int(self.rg_start[rg])
        self._batch = None

    def _next(self) -> tuple[Any, int]:
        if self._batch is not None:
            out = (self._batch, self._batch_pos)
            self._batch = None
            return out
        assert self._it is not None
        batch = next(self._it)
        pos = self._pos
        self._pos += batch.num_rows
        return batch, pos

    def read(self, start: int, stop: int) -> pd.DataFrame:
        import pyarrow as pa

        if stop <= start or len(self.rg_start) < 2:
            return self.pf.schema_arrow.empty_table().select(self.columns).to_pandas()
        cur = self._batch_pos if self._batch is not None else self._pos
        if self._it is None or start < cur or self._rg_of(start) > self._rg_of(cur):
            self._open(start)
        pieces = []
        while True:
            try:
                batch, pos = self._next()
            except StopIteration:
                break
            end = pos + batch.num_rows
            lo, hi = max(start, pos), min(stop, end)
            if hi > lo:
                pieces.append(batch.slice(lo - pos, hi - lo))
            if end > stop:
                self._batch, self._batch_pos = batch, pos
                break
            if end == stop:
                break
        table = pa.Table.from_batches(pieces) if pieces else None
        if table is None or table.num_rows != stop - start:
            got = 0 if table is None else table.num_rows
            raise InputError(f"{self.path}: rows {start}-{stop} requested, {got} read (file changed?)")
        return table.to_pandas()

    def close(self) -> None:
        self._it = None
        self.pf.close()


class _FitsReader:
    """Row ranges of a FITS table through a memory map: only the sliced rows are touched."""

    def __init__(self, path: str, hdu: int, columns: Sequence[str]) -> None:
        from astropy.io import fits

        self.path = path
        self.hdul = fits.open(path, memmap=True)
        self.data = self.hdul[hdu].data
        self.columns = list(columns)

    def read(self, start: int, stop: int) -> pd.DataFrame:
        if self.data is None or stop <= start:
            return pd.DataFrame({c: pd.Series(dtype=np.float64) for c in self.columns})
        rows = self.data[start:stop]
        if len(rows) != stop - start:
            raise InputError(f"{self.path}: rows {start}-{stop} requested, {len(rows)} present (file changed?)")
        return pd.DataFrame({c: _native(rows.field(c)) for c in self.columns})

    def close(self) -> None:
        self.data = None
        self.hdul.close()


def _native(a: Any) -> np.ndarray:
    """Copy of a FITS column slice in native byte order (strings decoded), detached from the memmap."""
    a = np.asarray(a)
    if a.dtype.kind == "S":
        return np.char.decode(a, "ascii").astype(object)
    if a.dtype.byteorder not in ("=", "|"):
        return a.astype(a.dtype.newbyteorder("="))
    return np.array(a, copy=True)


@contextmanager
def open_reader(src: CatalogInput, columns: Sequence[str]) -> Iterator[Any]:
    """A random-access reader (`.read(start, stop)`) for a Parquet or FITS input."""
    try:
        reader = _ParquetReader(src.path, columns) if src.fmt == "parquet" else _FitsReader(src.path, int(src.hdu or 1), columns)
    except InputError:
        raise
    except read_errors() as exc:
        raise InputError(f"{src.path}: cannot open ({type(exc).__name__}: {exc})") from exc
    try:
        yield reader
    finally:
        reader.close()


def read_rows(src: CatalogInput, start: int, stop: int, columns: Sequence[str]) -> pd.DataFrame:
    """Rows [start, stop) of a Parquet or FITS input (CSV has no random access: use `iter_chunks`)."""
    if src.fmt == "csv":
        raise InputError(f"{src.path}: CSV rows are read sequentially; use iter_chunks")
    with open_reader(src, columns) as reader:
        return _guard(src, start, stop, lambda: reader.read(start, stop))


def _guard(src: CatalogInput, start: int, stop: int | None, fn: Any) -> Any:
    try:
        return fn()
    except InputError:
        raise
    except read_errors() as exc:  # a corrupt or changed file (anything else is a bug)
        raise InputError(f"{src.path}: cannot read rows {start}-{stop} ({type(exc).__name__}: {exc})") from exc


def iter_chunks(src: CatalogInput, chunk_rows: int, columns: Sequence[str],
                skip: Iterable[int] = ()) -> Iterator[Chunk]:
    """Every chunk of an input in order; chunks in `skip` come with ``frame=None`` and are not decoded
    (CSV chunks are parsed anyway, as CSV cannot seek by row)."""
    skip = set(skip)
    if src.fmt == "csv":
        yield from _iter_csv(src, chunk_rows, columns, skip)
        return
    n = int(src.n_rows or 0)
    with open_reader(src, columns) as reader:
        for k in range(n_chunks(n, chunk_rows)):
            start, stop = k * chunk_rows, min(n, (k + 1) * chunk_rows)
            frame = None if k in skip else _guard(src, start, stop, partial(reader.read, start, stop))
            yield Chunk(k, start, stop - start, frame)


def _iter_csv(src: CatalogInput, chunk_rows: int, columns: Sequence[str], skip: set[int]) -> Iterator[Chunk]:
    dtypes = {c: np.float64 for c in columns if c.startswith(MAG_PREFIX)}
    k = start = 0
    try:
        with pd.read_csv(src.path, usecols=list(columns), dtype=dtypes, chunksize=chunk_rows) as reader:
            while True:
                try:
                    df = next(reader)
                except StopIteration:
                    break
                yield Chunk(k, start, len(df), None if k in skip else df.reset_index(drop=True)[list(columns)])
                k += 1
                start += len(df)
    except InputError:
        raise
    except read_errors() as exc:  # a corrupt or truncated CSV (anything else is a bug)
        raise InputError(f"{src.path}: cannot read CSV rows from {start} ({type(exc).__name__}: {exc})") from exc
    if k == 0:
        yield Chunk(0, 0, 0, None if 0 in skip else pd.DataFrame({c: pd.Series(dtype=np.float64) for c in columns}))


