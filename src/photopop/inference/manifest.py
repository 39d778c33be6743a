"""The output folder of a prediction run: part files, ``_manifest.json``, ``_SUCCESS`` and resume.

The output folder is a Parquet dataset: ``part-<input>-<chunk>.parquet`` files (each written to a
temporary file and renamed into place), ``_manifest.json`` (the run's fingerprint and the finished
parts, rewritten atomically) and ``_SUCCESS`` once every part is there and the ids were checked.
`Manifest.open` resumes a run with the same fingerprint (re-verifying every listed part's sha256)
and refuses folders holding another run or files photopop did not write.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from .. import __version__
from ..checksums import file_sha256
from ..errors import InputError, MismatchError
from ..io import dumps_json, write_table_atomic, write_text_atomic
from .inputs import CatalogInput

MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"
MAPS_SUFFIX = "_maps.fits"
PART_RE = re.compile(r"^part-\d{5}-\d{6}\.parquet$")
#: the columns every catalogue part holds after the ids: which input and which row of it
ROW_COLUMNS = ("input_index", "row_index")
#: seconds between manifest rewrites while parts stream in (it is always written at the end)
MANIFEST_INTERVAL_S = 2.0


def n_chunks(n_rows: int, chunk_rows: int) -> int:
    """Chunks of an input with `n_rows` rows (an empty input still gets one, empty, part)."""
    return max(1, math.ceil(n_rows / chunk_rows))


def part_name(input_index: int, chunk_index: int) -> str:
    """File name of the part holding chunk `chunk_index` of input `input_index`."""
    return f"part-{input_index:05d}-{chunk_index:06d}.parquet"


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
                except (OSError, ValueError) as exc:  # unreadable or not JSON
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




def claim_prediction_output(out_dir: str | Path, model: Any, inputs: Sequence[str | Path]) -> Any:
    """Claim and lock `out_dir` for a prediction run (`photopop.outputs`): a second run on the same
    folder is refused naming the first; a file, a foreign folder or an input in the way is refused.
    The run's fingerprint is compared by the manifest (`Manifest.open`)."""
    from ..outputs import claim_output

    sources = list(inputs) + ([model] if isinstance(model, (str, Path)) else [])
    return claim_output(out_dir, "predict", None, inputs=sources, in_place=True)
