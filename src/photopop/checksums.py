"""``SHA256SUMS`` files: the sha256 of each file of a folder photopop wrote, verified when it is read.

Formats with their own checksums (Parquet pages, FITS CHECKSUM/DATASUM, HDF5 Fletcher-32) verify
themselves; JSON, TOML and PyTorch files do not, so model folders and image sets list them here. The
file uses the ``sha256sum`` format, so ``sha256sum -c SHA256SUMS`` checks a folder by hand too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

from .errors import InputError

CHECKSUM_FILE = "SHA256SUMS"


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUM_FILE
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_checksums(folder: str | Path, names: Sequence[str] | None = None) -> None:
    """Write ``SHA256SUMS`` for every file in `folder`, or for `names` only (call last, inside the
    atomic folder write)."""
    folder = Path(folder)
    files = _files(folder) if names is None else [folder / n for n in names]
    lines = [f"{file_sha256(p)}  {p.relative_to(folder).as_posix()}" for p in files]
    (folder / CHECKSUM_FILE).write_text("\n".join(lines) + "\n")


def verify_checksums(folder: str | Path, names: Sequence[str] = ()) -> None:
    """InputError naming the file if ``SHA256SUMS`` exists and a listed file differs or is missing.

    Folders written before checksums were kept (no ``SHA256SUMS``) are accepted as they are. `names`
    (relative paths) must be listed when the file exists, so that a file cannot escape the check.
    """
    folder = Path(folder)
    sums = folder / CHECKSUM_FILE
    if not sums.exists():
        return
    try:
        text = sums.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{sums}: cannot read ({exc})") from exc
    listed: dict[str, str] = {}
    for line in text.splitlines():
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            raise InputError(f"{sums}: malformed line {line[:80]!r}")
        listed[name] = digest
    for name in names:
        if name not in listed:
            raise InputError(f"{sums}: does not list {name}; the folder was changed after it was written")
    for name, digest in listed.items():
        path = folder / name
        if not path.is_file():
            raise InputError(f"{path}: listed in {CHECKSUM_FILE} but missing")
        if file_sha256(path) != digest:
            raise InputError(f"{path}: checksum mismatch (the file was modified or corrupted after photopop "
                             f"wrote it); restore the folder from a good copy or write it again")
