"""Catalogue inputs: expand the arguments into files and inspect each before any work.

An input argument is a Parquet, FITS or CSV file, an SED-table folder (its ``spaxels.parquet``) or
a Parquet dataset folder (its ``*.parquet`` files in sorted order). `inspect_inputs` reads only
schemas and row counts: columns, bands (``mag_<band>``), the declared filter system and a
fingerprint (path, size, mtime) for resume. `input_kind` tells catalogues from FITS image cubes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..errors import InputError, MismatchError
from ..io import check_csv_complete, read_errors, table_format, verify_parquet_footer
from ..photometry.columns import MAG_PREFIX, bands_from_columns


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
    except read_errors() as exc:
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
            declared = json.loads(meta.read_text())
        except (OSError, ValueError) as exc:  # unreadable, not UTF-8 or not JSON
            raise InputError(f"{meta}: cannot read ({exc})") from exc
        if not isinstance(declared, dict):
            raise InputError(f"{meta}: cannot read (a JSON {type(declared).__name__}, not an object)")
        system = declared.get("filter_system")
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
    except read_errors() as exc:  # a corrupt or unreadable file (anything else is a bug)
        raise InputError(f"{path}: cannot read as {fmt} ({type(exc).__name__}: {exc})") from exc
    file_system = declared_system or file_system
    if user_system and file_system and str(user_system) != str(file_system):
        raise MismatchError(f"{path}: declares filter system {file_system!r}, but {user_system!r} was given")
    bands = tuple(bands_from_columns(columns))
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


