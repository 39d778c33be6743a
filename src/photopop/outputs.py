"""Output folders: what photopop may write, replace or refuse, and one writer per folder at a time.

Every command and API function that writes an output folder claims it first with `claim_output`
(or checks it early with `check_output`). The contract (docs/architecture.md, "Output folders"):

* A folder photopop writes carries a marker, ``.photopop.json``: the output ``kind`` (e.g.
  'sed-table', 'sed-model', 'predict') and a hash of the settings it was written with.
* A missing or empty folder is claimed. A folder with a marker of the same kind and the same
  settings is claimed too (an idempotent rerun, or the resume of an interrupted run). A marked
  folder of the same kind with other settings is replaced only with ``overwrite`` (``--overwrite``).
* A file at the path, a folder holding anything else (no marker: user files), a folder of another
  kind, and a path that is, contains or lies inside one of the command's inputs are refused with a
  one-line `OutputError`, before anything is touched.
* The folder is locked for the run with `filelock` (``.<name>.lock`` beside it, holding the pid, host
  and command of the holder); a second writer of the same folder is refused naming the first.
* Hidden leftovers of a killed run beside the folder (``.<name>.<random>.tmp`` and ``.<name>.old``
  of `photopop.io.atomic_dir`) are removed once the lock is held (nobody else can be writing them).

OS failures (read-only folder, permission denied, full disk) raise `OutputError` naming the path and
the reason, chained from the `OSError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from . import __version__
from .errors import OutputError
from .hashing import json_hash
from .io import (WRITE_ERRNOS, clean_for_json, dumps_json, is_inside, os_error, resolved, translate_os_errors,
                 write_text_atomic)

MARKER = ".photopop.json"
LOCK_SUFFIX = ".lock"
_HELD: dict[tuple[int, str], list[Any]] = {}  # (thread, lock path) -> [FileLock, depth] of nested claims
_HELD_GUARD = threading.Lock()


# -- settings and markers ------------------------------------------------------------------------------
def settings_hash(settings: Any) -> str:
    """sha256 of JSON-able settings (sorted keys, NaN as null): `hashing.json_hash` of the cleaned settings."""
    return json_hash(clean_for_json(settings))


def marker_for(kind: str, settings: Any = None, files: Sequence[str] | None = None) -> dict[str, Any]:
    """The marker a folder of `kind` written with `settings` carries (deterministic: no times, no pids).

    `files`: the top-level entries photopop wrote (folders replaced as a whole); None for folders
    built in place, whose content grows while they run."""
    marker: dict[str, Any] = {"kind": kind, "settings_hash": None if settings is None else settings_hash(settings),
                              "photopop_version": __version__}
    if files is not None:
        marker["files"] = sorted(set(files) - {MARKER})
    return marker


def read_marker(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The marker of a photopop output folder, or None if it has none (or an unreadable one)."""
    path = Path(folder) / MARKER
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and isinstance(marker.get("kind"), str) else None


def write_marker(folder: str | os.PathLike, kind: str, settings: Any = None,
                 files: Sequence[str] | None = None) -> None:
    """Write the marker into `folder` (a finished output folder, or the temporary folder of one)."""
    with translate_os_errors(folder):
        write_text_atomic(Path(folder) / MARKER, dumps_json(marker_for(kind, settings, files)) + "\n")


def record_files(folder: str | os.PathLike, names: Sequence[str]) -> None:
    """Add entries photopop wrote into a finished folder afterwards (e.g. figures/) to its marker."""
    marker = read_marker(folder)
    if marker is None or not isinstance(marker.get("files"), list):
        return
    marker["files"] = sorted(set(marker["files"]) | set(names))
    with translate_os_errors(folder):
        write_text_atomic(Path(folder) / MARKER, dumps_json(marker) + "\n")


# -- paths ----------------------------------------------------------------------------------------------
def _leftover_re(name: str) -> re.Pattern[str]:
    """Hidden entries beside `name` left by an interrupted atomic write (io.atomic_dir / atomic_path)."""
    return re.compile(rf"^\.{re.escape(name)}\.(?:[A-Za-z0-9_]{{8}}\.tmp|old)$")


_OWN_HIDDEN = re.compile(r"^\..+\.(?:[A-Za-z0-9_]{8}\.tmp|lock)$")  # nested outputs' locks and temporaries


def check_output_path(path: str | os.PathLike | None, inputs: Sequence[str | os.PathLike | None] = (),
                      what: str = "output", folder: bool = True) -> Path:
    """The output path as a Path; `OutputError` for an empty path, a file where a folder goes (or a
    folder where a file goes), and a path that is, contains or lies inside one of `inputs`."""
    if path is None or str(path).strip() == "":
        raise OutputError(f"{what} path is empty; give a folder name (e.g. --out runs/x)")
    out = Path(path)
    if folder and out.exists() and not out.is_dir():
        raise OutputError(f"{out}: {what} folder path exists and is a file; choose another path")
    if not folder and out.is_dir():
        raise OutputError(f"{out}: {what} file path exists and is a folder; choose another path")
    real = resolved(out)
    for inp in inputs:
        if inp is None or str(inp) == "":
            continue
        src = resolved(Path(inp))
        if real == src:
            raise OutputError(f"{out}: the {what} is the command's own input; choose another path")
        if is_inside(src, real):
            raise OutputError(f"{out}: the {what} contains the input {inp}; writing it would destroy the input")
        if is_inside(real, src) and Path(inp).is_dir():
            raise OutputError(f"{out}: the {what} lies inside the input folder {inp}; choose a path outside it")
    return out


def _contents(out: Path) -> list[str]:
    """Names in `out` that are not photopop's own lock or leftover entries."""
    return sorted(p.name for p in out.iterdir() if not _OWN_HIDDEN.match(p.name))


def _private(path: Path) -> bool:
    """True inside the private temporary folder of a running atomic write (no one else sees it)."""
    return any(re.match(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$", p.name) or p.name.endswith(".partial")
               for p in resolved(path).parents)


@dataclass
class OutputClaim:
    """A claimed output folder: ``state`` is 'new' (absent or empty), 'same' (marker of the same kind
    and settings: rerun or resume) or 'replace' (other settings, allowed by overwrite)."""

    path: Path
    kind: str
    settings: Any
    state: str
    marker: dict[str, Any] = field(default_factory=dict)

    def write_marker(self, folder: str | os.PathLike | None = None, files: Sequence[str] | None = None) -> None:
        """Write the marker into `folder` (default: the claimed folder itself, for in-place writers)."""
        write_marker(self.path if folder is None else folder, self.kind, self.settings, files)


def check_output(path: str | os.PathLike | None, kind: str, settings: Any = None, *, overwrite: bool = False,
                 inputs: Sequence[str | os.PathLike | None] = ()) -> OutputClaim:
    """Decide whether `path` may be written as an output of `kind` (see the module docstring); no lock,
    nothing touched. Call it before long work so that a bad ``--out`` fails at once."""
    out = check_output_path(path, inputs)
    if not out.exists():
        return OutputClaim(out, kind, settings, "new")
    try:
        names = _contents(out)
    except OSError as exc:
        raise os_error(out, exc, "cannot list") from exc
    if not names:
        return OutputClaim(out, kind, settings, "new")
    marker = read_marker(out)
    if marker is None:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise OutputError(f"{out}: folder holds files photopop did not write ({shown}); photopop only "
                          "replaces its own output: choose a new or empty folder")
    listed = marker.get("files")
    if isinstance(listed, list):
        added = [n for n in names if n != MARKER and n not in listed]
        if added:
            raise OutputError(f"{out}: holds files photopop did not write ({', '.join(added[:5])}); move them "
                              "away or choose another folder (photopop never deletes files it did not write)")
    if marker["kind"] != kind:
        raise OutputError(f"{out}: holds photopop output of another kind ({marker['kind']!r}, not {kind!r}); "
                          "choose another folder")
    want = None if settings is None else settings_hash(settings)
    if want is None or marker.get("settings_hash") == want:
        return OutputClaim(out, kind, settings, "same", marker)
    if not overwrite:
        raise OutputError(f"{out}: holds a {kind} written with other settings; pass --overwrite "
                          "(overwrite=True) to replace it, or choose another folder")
    return OutputClaim(out, kind, settings, "replace", marker)


def _holder(lock_path: Path) -> str:
    try:
        info = json.loads(lock_path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    return (f"process {info.get('pid')} on {info.get('host')} (started {info.get('started')}: "
            f"{info.get('command')})")


def _write_info(lock_file: Path) -> None:
    """Record the holder in the (held) lock file, for the message a refused second writer prints."""
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:500],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    fd = os.open(lock_file, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, (json.dumps(info) + "\n").encode())
    finally:
        os.close(fd)


def lock_path_for(path: str | os.PathLike) -> Path:
    """The lock file of an output path: ``.<name>.lock`` beside it."""
    real = resolved(Path(path))
    return real.parent / f".{real.name}{LOCK_SUFFIX}"


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of output `path` (re-entrant within one thread, for nested claims); `OutputError`
    naming the holder if another process or thread has it."""
    from filelock import FileLock, Timeout

    lock_file = lock_path_for(path)
    key = (threading.get_ident(), str(lock_file))  # nested claims of one call stack share the lock
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None:
            held[1] += 1
    if held is None:
        lock = FileLock(lock_file, timeout=0, thread_local=False)
        try:
            lock_file.parent.mkdir(parents=True, exist_ok=True)
            lock.acquire()
            try:
                _write_info(lock_file)
            except OSError:
                lock.release()
                raise
        except Timeout:
            raise OutputError(f"{path}: in use by {_holder(lock_file)}; wait for it to finish or choose "
                              "another output folder") from None
        except OSError as exc:
            if exc.errno not in WRITE_ERRNOS:
                raise
            reason = exc.strerror or os.strerror(exc.errno)
            raise OutputError(f"{path}: cannot write: {reason} (creating its lock file {lock_file})") from exc
        with _HELD_GUARD:
            _HELD[key] = [lock, 1]
    try:
        yield
    finally:
        with _HELD_GUARD:
            entry = _HELD[key]
            entry[1] -= 1
            done = entry[1] == 0
            if done:
                del _HELD[key]
        if done:  # unlink while still holding it: a waiter that opened this inode sees it gone and retries
            with contextlib.suppress(OSError):
                lock_file.unlink()
            entry[0].release()


def clean_leftovers(path: str | os.PathLike) -> list[Path]:
    """Remove ``.<name>.<random>.tmp`` and ``.<name>.old`` beside `path` (call with its lock held)."""
    out = Path(path)
    parent = out.parent
    if not parent.is_dir():
        return []
    pattern = _leftover_re(out.name)
    removed = []
    with translate_os_errors(parent, "cannot remove leftovers of an interrupted run"):
        for p in parent.iterdir():
            if pattern.match(p.name):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
                removed.append(p)
    return removed


def _clear(out: Path, patterns: Sequence[str]) -> None:
    """Remove the entries of a photopop folder that match `patterns` (what this kind writes) before a
    replacing in-place run; anything else (a user's file) stays."""
    import fnmatch

    for p in out.iterdir():
        if p.name == MARKER or not any(fnmatch.fnmatch(p.name, pat) for pat in patterns):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


@contextlib.contextmanager
def claim_output(path: str | os.PathLike | None, kind: str, settings: Any = None, *, overwrite: bool = False,
                 inputs: Sequence[str | os.PathLike | None] = (), in_place: bool = False,
                 clear: Sequence[str] = ()) -> Iterator[OutputClaim]:
    """Lock `path` and check it may hold an output of `kind` with `settings` (module docstring).

    For writers that replace the folder as a whole (`photopop.io.atomic_dir`), write the marker into
    the temporary folder with ``claim.write_marker(tmp)``. With `in_place` (writers that build the
    folder where it is, resumably) the folder is created and marked at once; a 'replace' claim first
    removes the entries matching the `clear` glob patterns (what this kind writes and would mix with
    the new run; content-addressed caches, and files photopop did not write, stay).
    Without `settings` nothing is compared (the caller checks its own fingerprint, e.g. predict).
    """
    out = check_output_path(path, inputs)
    ctx = contextlib.nullcontext() if _private(out) else output_lock(out)
    with ctx:
        claim = check_output(out, kind, settings, overwrite=overwrite, inputs=inputs)
        clean_leftovers(out)
        if in_place:
            with translate_os_errors(out):
                if claim.state == "replace" and clear:
                    _clear(out, clear)
                out.mkdir(parents=True, exist_ok=True)
                claim.write_marker()
        with translate_os_errors(out):
            yield claim


@contextlib.contextmanager
def replace_output(path: str | os.PathLike | None, kind: str, settings: Any = None, *, overwrite: bool = False,
                   inputs: Sequence[str | os.PathLike | None] = ()) -> Iterator[Path]:
    """Claim `path` and build it in a temporary folder that replaces it as a whole on success.

    Yields the temporary folder; the marker is written into it last, so a folder without a marker
    was never finished by photopop.
    """
    from .io import atomic_dir

    with claim_output(path, kind, settings, overwrite=overwrite, inputs=inputs) as claim, \
            atomic_dir(claim.path) as tmp:
        yield tmp
        claim.write_marker(tmp, files=[p.name for p in tmp.iterdir()])


def source_id(data: Any) -> Any:
    """What identifies an input in output settings: its resolved path, or 'in-memory' for objects."""
    if isinstance(data, (str, os.PathLike)):
        return str(resolved(data))
    return "in-memory"
