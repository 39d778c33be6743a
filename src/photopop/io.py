"""Atomic file writes and table reading shared by every stage.

Every file photopop writes goes through these helpers so that an interrupted run never leaves a
partial file that looks complete: data go to a temporary file in the same folder and are renamed
into place (an atomic operation on POSIX file systems).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .errors import InputError, OutputError


def resolved(path: str | os.PathLike) -> Path:
    """Absolute path with symlinks resolved (for comparing outputs with inputs)."""
    return Path(os.path.abspath(path)).resolve()


def is_inside(child: Path, parent: Path) -> bool:
    """True if `child` is `parent` or lies below it (both resolved)."""
    return child == parent or parent in child.parents


#: OS errors that mean "this path cannot be written" (reported as one line, not a traceback)
WRITE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG,
                          errno.ENAMETOOLONG, errno.EIO, errno.ENOTDIR})


def os_error(path: str | os.PathLike, exc: OSError, action: str = "cannot write") -> OutputError:
    """An `OutputError` naming `path`, the OS reason and, if different, the file the OS named."""
    reason = (exc.strerror or os.strerror(exc.errno)) if exc.errno else str(exc)
    named = Path(os.fsdecode(exc.filename)) if exc.filename else None
    if named is not None and not is_inside(resolved(named), resolved(Path(path))) \
            and not is_inside(resolved(Path(path)), resolved(named)):
        return OutputError(f"{named}: {reason}")  # not the output: name the file the OS refused
    where = f" ({named})" if named is not None and str(named) != str(path) else ""
    return OutputError(f"{path}: {action}: {reason}{where}")


@contextlib.contextmanager
def translate_os_errors(path: str | os.PathLike, action: str = "cannot write") -> Iterator[None]:
    """Turn write-type `OSError`s (permission, read-only, full disk...) in the block into `OutputError`."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        if exc.errno in WRITE_ERRNOS:
            raise os_error(path, exc, action) from exc
        raise



def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _follow_umask(path: Path, directory: bool) -> None:
    """mkstemp/mkdtemp create 0600/0700 entries; give them the permissions a plain open/mkdir would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


TABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".fits": "fits", ".fit": "fits",
                  ".fits.gz": "fits"}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Write-type OS errors (permission, read-only, full disk) become `OutputError` naming `path`.
    """
    path = Path(path)
    with translate_os_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            _follow_umask(tmp_path, directory=False)
            yield tmp_path
            os.replace(tmp_path, path)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path` as a whole.

    Callers must have claimed `path` first (`photopop.outputs.claim_output`): this replaces whatever
    is there. A crash leaves ``.<name>.<random>.tmp`` or ``.<name>.old`` beside it, which the next
    claim removes. Write-type OS errors become `OutputError` naming `path`.
    """
    path = Path(path)
    with translate_os_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            _follow_umask(tmp, directory=True)
            yield tmp
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                if old.exists():
                    shutil.rmtree(old)
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old)
            else:
                os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save` through a Python file object, so that a full disk or a refused write raises an
    `OSError` (turned into `OutputError` by the atomic helpers) instead of torch's RuntimeError."""
    import torch

    with open(path, "wb") as fh:
        torch.save(obj, fh)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.ndarray):
        return [_json_default(v) if isinstance(v, (np.generic,)) else v for v in obj.tolist()]
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def clean_for_json(obj: Any) -> Any:
    """Recursively turn numpy scalars/arrays into Python objects and NaN/inf into None."""
    if isinstance(obj, dict):
        return {str(k): clean_for_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_for_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean_for_json(obj.tolist())
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps_json(obj: Any, indent: int | None = 2) -> str:
    """JSON text with NaN written as null (strict JSON that any reader accepts)."""
    return json.dumps(clean_for_json(obj), indent=indent, allow_nan=False, default=_json_default)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write strict JSON (NaN as null) atomically."""
    write_text_atomic(path, dumps_json(obj) + "\n")


def read_json(path: str | os.PathLike, missing: str | None = None) -> Any:
    """Parse a JSON file; InputError with `missing` (default "no such file") if absent, or naming the
    file if it cannot be read or parsed."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"{path}: {missing or 'no such file'}") from exc
    except (OSError, ValueError) as exc:  # unreadable; not UTF-8 or not JSON (both ValueErrors)
        raise InputError(f"{path}: cannot read ({exc})") from exc


def table_format(path: str | os.PathLike) -> str:
    """Return 'csv', 'parquet' or 'fits' from a file name, or raise InputError."""
    name = str(path).lower()
    for suffix, fmt in sorted(TABLE_SUFFIXES.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return fmt
    if Path(path).is_dir():
        return "parquet"  # a Parquet dataset (folder of part files)
    raise InputError(f"{path}: unknown table format; use .csv, .parquet or .fits")


def check_csv_complete(path: str | os.PathLike) -> None:
    """InputError if a CSV file may have been cut: its last data line does not end with a newline.

    A cut mid-line gives a short row (NaN-filled by pandas) or, cut inside the last field, a changed
    number (21.345 -> 21.3); neither can be told from a complete file by parsing, but every CSV
    writer ends its last row with a newline. Reads only the head and the tail of the file.
    """
    import csv
    import io as _io

    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.readline()
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 65536))
        tail = fh.read()
    if not tail.strip() or tail.endswith((b"\n", b"\r")):
        return
    last = tail.splitlines()[-1]
    if last == head.rstrip(b"\r\n"):
        return  # a header-only file
    try:
        n_header = len(next(csv.reader(_io.StringIO(head.decode("utf-8", "replace")))))
        n_last = len(next(csv.reader(_io.StringIO(last.decode("utf-8", "replace")))))
    except (StopIteration, csv.Error):
        n_header = n_last = 0
    fields = f"has {n_last} of {n_header} fields and " if n_last != n_header else ""
    raise InputError(f"{path}: truncated CSV? the last line {fields}does not end with a newline (the file may "
                     "have been cut mid-line); re-export or re-download it, or add the final newline if it is "
                     "complete")


#: what readers raise on a corrupt or unreadable table file (anything else is a bug and keeps its traceback)
TABLE_READ_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, EOFError, UnicodeDecodeError,
                                                      KeyError, IndexError, TypeError, OverflowError)


def _arrow_errors() -> tuple[type[BaseException], ...]:
    import pyarrow as pa

    return (pa.ArrowException,)


def _fits_errors() -> tuple[type[BaseException], ...]:
    from astropy.io.fits.verify import VerifyError
    from astropy.utils.exceptions import AstropyUserWarning

    return (VerifyError, AstropyUserWarning)  # the warning is raised as an error by _read_fits_table


#: Parquet schema metadata key holding `parquet_footer_digest` (page CRCs do not cover the footer)
FOOTER_KEY = b"photopop_footer_sha256"


def parquet_footer_digest(schema: Any, num_rows: int) -> str:
    """sha256 of what the Parquet footer says about the data: column names and types, the row count
    and the key/value metadata (except this digest), so a damaged footer is detected on read."""
    import hashlib

    h = hashlib.sha256()
    h.update(str(int(num_rows)).encode())
    for f in schema:
        h.update(f"{f.name}\0{f.type}\0{f.nullable}\0".encode())
    for k, v in sorted((schema.metadata or {}).items()):
        if k != FOOTER_KEY:
            h.update(k + b"\0" + v + b"\0")
    return h.hexdigest()


def verify_parquet_footer(path: str | os.PathLike, pf: Any) -> None:
    """InputError if a Parquet file written by photopop (it carries FOOTER_KEY) has a damaged footer."""
    meta = pf.schema_arrow.metadata or {}
    want = meta.get(FOOTER_KEY)
    if want is not None and want.decode("ascii", "replace") != parquet_footer_digest(pf.schema_arrow,
                                                                                     pf.metadata.num_rows):
        raise InputError(f"{path}: Parquet footer checksum mismatch (the file is damaged)")


def read_errors() -> tuple[type[BaseException], ...]:
    """Exception types of a corrupt Parquet, FITS or CSV file (for `except read_errors() as exc:`)."""
    return TABLE_READ_ERRORS + _arrow_errors() + _fits_errors()


def read_table(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV, Parquet (file or dataset folder) or FITS binary table into a DataFrame.

    Raises InputError naming the file for a missing, empty, truncated or corrupt table, and for
    missing columns. Parquet page checksums (written by `write_table_atomic`) are verified, and FITS
    CHECKSUM/DATASUM keywords where present, so a flipped byte is an error, not a changed number.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    fmt = table_format(path)
    try:
        if fmt == "csv":
            check_csv_complete(path)
            df = pd.read_csv(path)
        elif fmt == "parquet":
            if path.is_file():
                import pyarrow.parquet as pq

                with pq.ParquetFile(path) as pf:
                    verify_parquet_footer(path, pf)
            df = pd.read_parquet(path, page_checksum_verification=True)
        else:
            df = _read_fits_table(path)
    except InputError:
        raise
    except read_errors() as exc:  # corrupt or unreadable file
        raise InputError(f"{path}: cannot read as {fmt} table ({type(exc).__name__}: {' '.join(str(exc).split())})") from exc
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise InputError(f"{path}: missing column(s) {missing}; available: {list(df.columns)}")
        df = df[columns]
    return df


def _read_fits_table(path: Path) -> pd.DataFrame:
    """The first table HDU of a FITS file (checksums verified where present)."""
    from astropy.io import fits
    from astropy.table import Table

    with open_fits(path) as hdul:
        hdu = next((h for h in hdul if isinstance(h, (fits.BinTableHDU, fits.TableHDU))), None)
        if hdu is None:
            raise InputError(f"{path}: no table HDU")
        tab = Table.read(hdu)
    names = [n for n in tab.colnames if len(tab[n].shape) <= 1]
    return tab[names].to_pandas()


def open_fits(path: str | os.PathLike, what: str = "as FITS") -> Any:
    """Open a FITS file fully into memory, verifying CHECKSUM/DATASUM keywords where the file has them.

    Returns the HDUList (use it as a context manager). A checksum mismatch, a truncated or otherwise
    corrupt file raises InputError naming the file, so a flipped byte is never read as a number.
    """
    import warnings

    from astropy.io import fits
    from astropy.utils.exceptions import AstropyUserWarning

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", AstropyUserWarning)
            hdul = fits.open(path, memmap=False, checksum=True, lazy_load_hdus=False)
            try:
                for hdu in hdul:  # decode every header and data unit now, inside the checks
                    _ = hdu.data
            except BaseException:
                hdul.close()
                raise
            return hdul
    except TABLE_READ_ERRORS + _fits_errors() as exc:
        raise InputError(f"{path}: cannot read {what} ({type(exc).__name__}: {' '.join(str(exc).split())})") from exc


def write_table_atomic(df: pd.DataFrame, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write a DataFrame as Parquet (with optional key/value schema metadata), CSV or FITS, atomically.

    Parquet pages carry CRC checksums and FITS HDUs CHECKSUM/DATASUM keywords, which `read_table`
    (and the streaming readers of `photopop.inference.stream`) verify.
    """
    fmt = table_format(path)
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(df, preserve_index=False)
            meta = dict(table.schema.metadata or {})
            meta.update({k.encode(): v.encode() for k, v in (metadata or {}).items()})
            table = table.replace_schema_metadata(meta)
            meta[FOOTER_KEY] = parquet_footer_digest(table.schema, table.num_rows).encode()
            table = table.replace_schema_metadata(meta)
            pq.write_table(table, tmp, write_page_checksum=True)  # both verified by read_table
        elif fmt == "csv":
            df.to_csv(tmp, index=False)
        else:
            from astropy.io import fits
            from astropy.table import Table

            hdus = fits.HDUList([fits.PrimaryHDU(), fits.table_to_hdu(Table.from_pandas(df))])
            hdus.writeto(tmp, overwrite=True, checksum=True)
