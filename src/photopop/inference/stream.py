"""Streaming catalogue readers and the atomic, resumable partitioned writer.

Readers never hold more than one chunk of the selected columns (plus one Parquet row group being
decoded): Parquet through `pyarrow.parquet.ParquetFile.iter_batches`, FITS tables through row slices
of a memory-mapped HDU, CSV through `pandas.read_csv(chunksize=...)`. A chunk is the row range
``[k * chunk_rows, (k + 1) * chunk_rows)`` of one input file, so chunk k is the same rows on every
run and on every Dask worker.

The output folder is a Parquet dataset: ``part-<input>-<chunk>.parquet`` files (each written to a
temporary file and renamed into place), ``_manifest.json`` (the run's fingerprint and the finished
parts, rewritten atomically) and ``_SUCCESS`` once every part is there and the ids were checked.
"""

from __future__ import annotations

import json
import math
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..checksums import file_sha256
from ..errors import InputError, MismatchError
from ..io import (check_csv_complete, dumps_json, table_format, verify_parquet_footer, write_table_atomic,
                  write_text_atomic)

MAG_PREFIX = "mag_"
ROW_COLUMNS = ("input_index", "row_index")
MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"
MAPS_SUFFIX = "_maps.fits"
PART_RE = re.compile(r"^part-\d{5}-\d{6}\.parquet$")
#: ids held in memory at once by the final uniqueness pass (more rows -> several hash-bucket passes)
MAX_IDS_IN_MEMORY = 20_000_000
#: rows per decoded Parquet batch, and the read buffer per column
PARQUET_BATCH_ROWS = 16_384
PARQUET_BUFFER_BYTES = 1 << 20
#: seconds between manifest rewrites while parts stream in (it is always written at the end)
MANIFEST_INTERVAL_S = 2.0


# -- inputs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CatalogInput:
    """One input file as inspected before any work: format, columns, bands, rows, fingerprint."""

    index: int
    path: str
    fmt: str  # 'parquet', 'fits', 'csv' or 'cube'
    columns: tuple[str, ...]
    bands: tuple[str, ...]
    filter_system: str | None
    n_rows: int | None  # None for CSV (counted while streaming)
    size: int
    mtime_ns: int
    hdu: int | None = None  # FITS table HDU

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the input for resume: path, size, modification time."""
        return {"index": self.index, "path": str(Path(self.path).resolve()), "size": self.size,
                "mtime_ns": self.mtime_ns}


def n_chunks(n_rows: int, chunk_rows: int) -> int:
    """Chunks of an input with `n_rows` rows (an empty input still gets one, empty, part)."""
    return max(1, math.ceil(n_rows / chunk_rows))


def part_name(input_index: int, chunk_index: int) -> str:
    """File name of the part holding chunk `chunk_index` of input `input_index`."""
    return f"part-{input_index:05d}-{chunk_index:06d}.parquet"


def input_kind(path: str | Path) -> str:
    """'cube' for a FITS image cube (a 3-D image HDU, or two or more 2-D image HDUs), else 'catalog'."""
    path = Path(path)
    if path.is_dir() or table_format_or_none(path) != "fits":
        return "catalog"
    from astropy.io import fits

    try:
        with fits.open(path, memmap=True) as hdul:
            dims = [h.header.get("NAXIS", 0) for h in hdul if h.is_image]
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except Exception as exc:
        raise InputError(f"{path}: cannot read as FITS ({type(exc).__name__}: {exc})") from exc
    if 3 in dims or sum(d == 2 for d in dims) >= 2:
        return "cube"
    return "catalog"


def table_format_or_none(path: Path) -> str | None:
    try:
        return table_format(path)
    except InputError:
        return None


def _hidden(rel: Path) -> bool:
    return any(part.startswith((".", "_")) for part in rel.parts)


def expand_input(path: Path) -> list[tuple[Path, str | None]]:
    """Files of one input argument with the filter system its folder declares (meta.json).

    A file is itself; an SED-table folder gives its ``spaxels.parquet``; another folder is a Parquet
    dataset: its ``*.parquet`` files in sorted order (hidden and ``_``-prefixed entries skipped).
    """
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if not path.is_dir():
        return [(path, None)]
    system = None
    meta = path / "meta.json"
    if meta.exists():
        try:
            system = json.loads(meta.read_text()).get("filter_system")
        except Exception as exc:
            raise InputError(f"{meta}: cannot read ({exc})") from exc
    if (path / "spaxels.parquet").exists():
        return [(path / "spaxels.parquet", system)]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".parquet", ".pq")
                   and not _hidden(p.relative_to(path)))
    if not files:
        raise InputError(f"{path}: a folder without Parquet files (expected an SED table or a Parquet dataset)")
    return [(f, system) for f in files]


def inspect_inputs(inputs: str | Path | Iterable[str | Path], filter_system: str | None = None) -> list[CatalogInput]:
    """Expand and inspect every input (schema and row count only; nothing is read in bulk)."""
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not items:
        raise InputError("no inputs given")
    out: list[CatalogInput] = []
    seen: dict[str, str] = {}
    for item in items:
        for f, declared in expand_input(Path(item)):
            key = str(f.resolve())
            if key in seen:
                raise InputError(f"{f}: given twice (also as {seen[key]})")
            seen[key] = str(f)
            out.append(inspect_file(f, len(out), declared, filter_system))
    return out


def inspect_file(path: Path, index: int, declared_system: str | None = None,
                 user_system: str | None = None) -> CatalogInput:
    """Columns, bands, filter system and row count of one catalogue file (InputError if unreadable)."""
    fmt = table_format_or_none(path)
    if fmt is None:
        raise InputError(f"{path}: unknown input format; use .parquet, .fits or .csv (or a Parquet dataset folder)")
    hdu = None
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path, page_checksum_verification=True)
            verify_parquet_footer(path, pf)
            columns = tuple(pf.schema_arrow.names)
            n_rows: int | None = pf.metadata.num_rows
            meta = pf.schema_arrow.metadata or {}
            file_system = meta.get(b"filter_system", b"").decode() or None
        elif fmt == "fits":
            if input_kind(path) == "cube":
                st = path.stat()
                return CatalogInput(index, str(path), "cube", (), (), user_system, None, st.st_size, st.st_mtime_ns)
            columns, n_rows, file_system, hdu = _inspect_fits_table(path)
        else:
            columns, n_rows, file_system = _inspect_csv(path), None, _csv_sidecar_system(path)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot read as {fmt} ({type(exc).__name__}: {exc})") from exc
    file_system = declared_system or file_system
    if user_system and file_system and str(user_system) != str(file_system):
        raise MismatchError(f"{path}: declares filter system {file_system!r}, but {user_system!r} was given")
    bands = tuple(c[len(MAG_PREFIX):] for c in columns if c.startswith(MAG_PREFIX))
    if not bands:
        raise InputError(f"{path}: no magnitude columns ('{MAG_PREFIX}<band>'); columns: {list(columns)[:40]}")
    st = path.stat()
    return CatalogInput(index, str(path), fmt, columns, bands, file_system or user_system, n_rows,
                        st.st_size, st.st_mtime_ns, hdu)


def _inspect_fits_table(path: Path) -> tuple[tuple[str, ...], int, str | None, int]:
    from astropy.io import fits

    with fits.open(path, memmap=True) as hdul:
        tables = [i for i, h in enumerate(hdul) if isinstance(h, (fits.BinTableHDU, fits.TableHDU))]
        if not tables:
            raise InputError(f"{path}: no table HDU (and not an image cube)")
        with_mags = [i for i in tables if any(n.startswith(MAG_PREFIX) for n in hdul[i].columns.names)]
        i = (with_mags or tables)[0]
        h = hdul[i]
        names = tuple(n for n, f in zip(h.columns.names, h.columns.formats) if _scalar_fits_format(f, h, n))
        system = h.header.get("FILTSYS") or hdul[0].header.get("FILTSYS")
        return names, int(h.header.get("NAXIS2", 0)), (str(system) if system else None), i


def _scalar_fits_format(fmt: str, hdu: Any, name: str) -> bool:
    dim = hdu.columns[name].dim
    repeat = re.match(r"^(\d*)", str(fmt)).group(1)
    return dim is None and (repeat in ("", "1") or str(fmt).endswith("A"))


def _csv_sidecar_system(path: Path) -> str | None:
    """Filter system of a CSV catalogue from its ``<file>.meta.json`` sidecar (`photopop photometry --out`)."""
    from ..photometry.catalogue import read_catalogue_meta

    meta = read_catalogue_meta(path)
    return None if meta is None else str(meta["filter_system"])


def _inspect_csv(path: Path) -> tuple[str, ...]:
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if not head.strip():
        raise InputError(f"{path}: empty CSV file")
    if b"\0" in head:
        raise InputError(f"{path}: not a text CSV file (binary content)")
    check_csv_complete(path)
    return tuple(str(c) for c in pd.read_csv(path, nrows=2).columns)


# -- chunk readers ---------------------------------------------------------------------------------
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
    except Exception as exc:
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
    except Exception as exc:
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
            frame = None if k in skip else _guard(src, start, stop, lambda: reader.read(start, stop))
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
    except (InputError, GeneratorExit):
        raise
    except Exception as exc:
        raise InputError(f"{src.path}: cannot read CSV rows from {start} ({type(exc).__name__}: {exc})") from exc
    if k == 0:
        yield Chunk(0, 0, 0, None if 0 in skip else pd.DataFrame({c: pd.Series(dtype=np.float64) for c in columns}))


# -- chunk checks and output rows ----------------------------------------------------------------------
def check_chunk_ids(frame: pd.DataFrame, id_columns: Sequence[str], what: str, start: int) -> pd.DataFrame:
    """The id columns of a chunk (RangeIndex); InputError for missing or duplicated ids in it."""
    ids = list(id_columns)
    if not ids:
        return pd.DataFrame(index=pd.RangeIndex(len(frame)))
    out = frame[ids].reset_index(drop=True)
    null = out.isna().any(axis=1).to_numpy()
    if null.any():
        raise InputError(f"{what}: {int(null.sum())} row(s) without an id in {ids} (first: row {start + int(np.argmax(null))})")
    dup = out.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)[:4] + start
        first = out.iloc[int(np.flatnonzero(dup)[0])].to_dict()
        raise InputError(f"{what}: duplicate ids {ids}: {int(dup.sum())} rows share ids, e.g. {first} "
                         f"(rows {rows.tolist()})")
    return out


def row_columns(input_index: int, start: int, n: int) -> pd.DataFrame:
    """``input_index`` and ``row_index`` (0-based row in the input file) of a chunk's rows."""
    return pd.DataFrame({"input_index": np.full(n, input_index, dtype=np.int32),
                         "row_index": np.arange(start, start + n, dtype=np.int64)})


def write_part(df: pd.DataFrame, path: Path, metadata: dict[str, str] | None = None) -> str:
    """Write one part file atomically (temporary file in the same folder, then os.replace); returns its
    sha256, which the manifest records so that a resumed run re-verifies the part."""
    write_table_atomic(df, path, metadata)
    return file_sha256(path)


def _intact(path: Path, record: dict[str, Any]) -> bool:
    """True if a listed part file exists and still has the sha256 the manifest recorded (records
    written before hashes were kept are trusted as before)."""
    if not path.is_file():
        return False
    want = record.get("sha256")
    return want is None or file_sha256(path) == want


# -- the manifest ----------------------------------------------------------------------------------------
def _ours(name: str) -> bool:
    return name in (MANIFEST, SUCCESS) or bool(PART_RE.match(name)) or name.endswith(MAPS_SUFFIX) \
        or name.startswith(".")


class Manifest:
    """The run's fingerprint and its finished parts, kept in ``_manifest.json`` (written atomically)."""

    def __init__(self, out_dir: Path, run: dict[str, Any], parts: dict[str, dict[str, Any]],
                 chunks: dict[int, int]) -> None:
        self.out_dir = out_dir
        self.run = run
        self.parts = parts
        self.chunks = chunks
        self.complete = False
        self.was_complete = False  # the run had finished before (manifest complete and _SUCCESS present)
        self._dirty = True
        self._last_save = 0.0
        self._success_removed = False

    @classmethod
    def open(cls, out_dir: str | Path, run: dict[str, Any], overwrite: bool = False) -> "Manifest":
        """Resume the run in `out_dir` if it has the same fingerprint, else start it (refusing foreign files)."""
        out = Path(out_dir)
        run = json.loads(dumps_json(run))
        if out.exists() and not out.is_dir():
            raise InputError(f"{out}: exists and is not a folder")
        parts: dict[str, dict[str, Any]] = {}
        chunks: dict[int, int] = {}
        old: dict[str, Any] | None = None
        if out.exists():
            foreign = sorted(p.name for p in out.iterdir() if not _ours(p.name))
            if foreign:
                raise InputError(f"{out}: holds files photopop predict did not write ({foreign[:5]}); "
                                 "choose a new or empty output folder")
            for p in out.iterdir():  # temporary files of an interrupted run
                if p.name.startswith(".") and p.name.endswith(".tmp"):
                    p.unlink()
            mfile = out / MANIFEST
            if mfile.exists():
                try:
                    old = json.loads(mfile.read_text())
                except Exception as exc:
                    if not overwrite:
                        raise InputError(f"{mfile}: unreadable ({exc}); pass overwrite (--overwrite)") from exc
            has_outputs = any(PART_RE.match(p.name) or p.name.endswith(MAPS_SUFFIX) for p in out.iterdir())
            if overwrite:
                for p in out.iterdir():
                    if p.is_file() and _ours(p.name) and not p.name.startswith("."):
                        p.unlink()
            elif old is not None:
                diff = _run_difference(old.get("run", {}), run)
                if diff:
                    raise MismatchError(f"{out}: holds the output of another run ({diff}); pass overwrite "
                                        "(--overwrite) to replace it, or choose another output folder")
                listed = old.get("parts", {})
                parts = {n: r for n, r in listed.items() if _intact(out / n, r)}
                for n in set(listed) - set(parts):  # truncated or modified since written: redo it
                    if PART_RE.match(n):
                        (out / n).unlink(missing_ok=True)
                chunks = {int(k): int(v) for k, v in old.get("chunks", {}).items()}
            elif has_outputs:
                raise InputError(f"{out}: has output files but no {MANIFEST}; pass overwrite (--overwrite) "
                                 "or choose another output folder")
        out.mkdir(parents=True, exist_ok=True)
        manifest = cls(out, run, parts, chunks)
        manifest.was_complete = bool(not overwrite and old is not None and old.get("complete")
                                     and (out / SUCCESS).exists() and len(parts) == len(old.get("parts", {})))
        return manifest

    def finished_chunks(self, input_index: int) -> set[int]:
        """Chunk indices of `input_index` whose part is recorded and present."""
        return {int(r["chunk"]) for r in self.parts.values() if int(r["input"]) == input_index}

    def all_done(self, input_index: int) -> int | None:
        """The chunk count of `input_index` if every one of its chunks is finished, else None."""
        n = self.chunks.get(int(input_index))
        if n is not None and self.finished_chunks(input_index) >= set(range(n)):
            return n
        return None

    def part_names(self) -> list[str]:
        return sorted(self.parts)

    def add(self, record: dict[str, Any]) -> None:
        """Record a finished part (the first one of a run removes a stale ``_SUCCESS``)."""
        if not self._success_removed:
            (self.out_dir / SUCCESS).unlink(missing_ok=True)
            self._success_removed = True
            self.complete = False
        self.parts[str(record["name"])] = dict(record)
        self._dirty = True
        self.save()

    def set_chunks(self, input_index: int, n: int) -> None:
        """Record how many chunks input `input_index` has (known once it was read to the end)."""
        self.chunks[int(input_index)] = int(n)
        self._dirty = True

    def check_complete(self, sources: Sequence[CatalogInput], chunk_rows: int) -> None:
        """InputError if any chunk of any input lacks its part (so ``_SUCCESS`` is never premature)."""
        for src in sources:
            n = n_chunks(src.n_rows, chunk_rows) if src.n_rows is not None else self.chunks.get(src.index)
            if n is None:
                raise InputError(f"{src.path}: number of chunks unknown; the run did not finish reading it")
            missing = sorted(set(range(n)) - self.finished_chunks(src.index))
            if missing:
                raise InputError(f"{src.path}: chunk(s) {missing[:5]} have no part file")

    def save(self, force: bool = False) -> None:
        """Rewrite the manifest atomically (at most every MANIFEST_INTERVAL_S unless forced)."""
        now = time.monotonic()
        if not self._dirty or (not force and now - self._last_save < MANIFEST_INTERVAL_S):
            return
        body = {"photopop_version": __version__, "complete": self.complete, "run": self.run,
                "chunks": {str(k): v for k, v in sorted(self.chunks.items())},
                "parts": {n: self.parts[n] for n in sorted(self.parts)}}
        write_text_atomic(self.out_dir / MANIFEST, dumps_json(body) + "\n")
        self._dirty = False
        self._last_save = now

    def finish(self) -> None:
        """Mark the run complete: manifest first, then the ``_SUCCESS`` marker."""
        self.complete = True
        self._dirty = True
        self.save(force=True)
        write_text_atomic(self.out_dir / SUCCESS, "")


def _run_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Human-readable first difference between two run fingerprints ('' if equal)."""
    if old == new:
        return ""
    for key in sorted(set(old) | set(new)):
        if key == "inputs":
            continue
        if old.get(key) != new.get(key):
            return f"{key}: {old.get(key)!r} then, {new.get(key)!r} now"
    a, b = old.get("inputs", []), new.get("inputs", [])
    if len(a) != len(b):
        return f"{len(a)} inputs then, {len(b)} now"
    for x, y in zip(a, b):
        if x != y:
            what = [k for k in ("path", "size", "mtime_ns") if x.get(k) != y.get(k)]
            return f"input {y.get('path')} changed ({', '.join(what)})"
    return "settings differ"


# -- uniqueness of ids over the whole output ------------------------------------------------------------
def check_unique_ids(out_dir: Path, part_names: Sequence[str], id_columns: Sequence[str],
                     max_ids_in_memory: int = MAX_IDS_IN_MEMORY) -> None:
    """InputError if two output rows share their ids, reading only the id columns.

    Memory stays bounded: with more than `max_ids_in_memory` rows the ids are split into hash
    buckets and checked one bucket per pass over the parts.
    """
    import pyarrow.parquet as pq

    ids = list(id_columns)
    paths = [Path(out_dir) / n for n in sorted(part_names)]
    total = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
    n_buckets = max(1, math.ceil(total / max(1, int(max_ids_in_memory))))
    for bucket in range(n_buckets):
        frames = []
        for p in paths:
            df = pq.read_table(p, columns=ids + list(ROW_COLUMNS), page_checksum_verification=True).to_pandas()
            if n_buckets > 1:
                h = pd.util.hash_pandas_object(df[ids], index=False).to_numpy()
                df = df[h % np.uint64(n_buckets) == bucket]
            frames.append(df)
        if not frames:
            continue
        everything = pd.concat(frames, ignore_index=True)
        dup = everything.duplicated(ids, keep=False).to_numpy()
        if dup.any():
            dups = everything[dup].sort_values(ids + list(ROW_COLUMNS))
            first = dups.iloc[0]
            same = dups[(dups[ids] == first[ids]).all(axis=1)].head(4)
            key = ", ".join(f"{c}={first[c]}" for c in ids)
            where = ", ".join(f"input {int(r.input_index)} row {int(r.row_index)}" for r in same.itertuples())
            raise InputError(f"duplicate ids {ids}: {int(dup.sum())} output rows share ids across chunks or "
                             f"inputs, e.g. {key} at {where}; {out_dir} is left without {SUCCESS}")
