"""A small stage runner: cache each step of an experiment by the hash of what it depends on.

A stage has a name, the settings it depends on (a dataclass or plain dict), a version string (bump it
when the stage's code changes its output) and its upstream stages. Its hash is

    sha256(name, version, photopop version, settings, {upstream name: upstream hash})[:12]

so a changed setting reruns that stage and everything downstream of it, and nothing else; a new photopop
release starts afresh. (The key is the settings, not the code: after editing photopop itself, bump the
stage's version or use ``force``.) Output goes
to ``<root>/<name>-<hash>/``, built in a temporary folder beside it and renamed into place only when
the stage function returns; the last file written is ``DONE.json`` (the done-marker, with the settings,
upstream hashes, timing and photopop version). A folder with a done-marker is reused; anything else
(an interrupted run, a crash) is redone. Old folders of other settings stay, so switching back is free.

Long stages (many trainings) can be `resumable`: they are built in a persistent hidden folder
``<root>/.<name>-<hash>.partial/`` that survives a crash; the stage function must reuse what it finds
there (e.g. one file per trained model). On success the folder gets its done-marker and is renamed to
``<name>-<hash>/``, an atomic step as well.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .. import __version__
from ..config import to_dict
from ..hashing import json_hash
from ..errors import InputError
from ..io import atomic_dir, dumps_json

DONE_FILE = "DONE.json"

#: a stage function writes its outputs into `out_dir` and may read its upstream stages' folders
StageFunc = Callable[[Path, Mapping[str, "StageResult"]], Any]


@dataclass(frozen=True)
class StageResult:
    """A finished stage: its folder, hash and whether it came from the cache."""

    name: str
    hash: str
    path: Path
    cached: bool
    seconds: float = 0.0

    def file(self, name: str) -> Path:
        """Path of an output file of this stage; InputError if the stage did not write it."""
        p = self.path / name
        if not p.exists():
            raise InputError(f"stage {self.name!r} ({self.path}) has no output {name!r}")
        return p


def _plain(settings: Any) -> Any:
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        return to_dict(settings)
    return settings


def stage_hash(name: str, settings: Any, upstream: Sequence[StageResult] = (), version: str = "1") -> str:
    """The cache key of a stage (see the module docstring)."""
    return json_hash({"stage": name, "version": str(version), "photopop": __version__,
                      "settings": _plain(settings), "upstream": {u.name: u.hash for u in upstream}}, 12)


class StageRunner:
    """Runs stages into ``root`` and remembers their results (``runner.results[name]``).

    `log` receives one line per stage ("run"/"cached"); `force` names stages to redo even when cached.
    """

    def __init__(self, root: str | Path, log: Callable[[str], None] | None = None,
                 force: Sequence[str] = ()):
        self.root = Path(root)
        self.log = log or (lambda msg: None)
        self.force = set(force)
        self.results: dict[str, StageResult] = {}

    def path_for(self, name: str, hash_: str) -> Path:
        """Folder of a stage with a given hash."""
        return self.root / f"{name}-{hash_}"

    def is_done(self, name: str, settings: Any, upstream: Sequence[StageResult] = (), version: str = "1") -> bool:
        """Whether the stage's output for these settings and upstream exists and is complete."""
        h = stage_hash(name, settings, upstream, version)
        return (self.path_for(name, h) / DONE_FILE).exists()

    def partial_path_for(self, name: str, hash_: str) -> Path:
        """Persistent build folder of a resumable stage."""
        return self.root / f".{name}-{hash_}.partial"

    def run(self, name: str, settings: Any, func: StageFunc, upstream: Sequence[StageResult] = (),
            version: str = "1", resumable: bool = False) -> StageResult:
        """Run `func(out_dir, {upstream name: result})` unless its folder is complete already."""
        if not name or "/" in name or name.startswith("."):
            raise InputError(f"invalid stage name {name!r}")
        upstream = list(upstream)
        names = [u.name for u in upstream]
        if len(set(names)) != len(names):
            raise InputError(f"stage {name!r}: duplicate upstream stages {names}")
        h = stage_hash(name, settings, upstream, version)
        path = self.path_for(name, h)
        done = path / DONE_FILE
        forced = name in self.force
        if done.exists() and not forced:
            try:
                seconds = float(json.loads(done.read_text()).get("seconds", 0.0))
            except (ValueError, OSError):
                seconds = 0.0
            res = StageResult(name, h, path, cached=True, seconds=seconds)
            self.log(f"stage {name}-{h}: cached")
            self.results[name] = res
            return res
        self.log(f"stage {name}-{h}: running")
        t0 = time.perf_counter()
        ups = {u.name: u for u in upstream}

        def marker() -> str:
            return dumps_json({"stage": name, "hash": h, "version": str(version), "settings": _plain(settings),
                               "upstream": {u.name: u.hash for u in upstream},
                               "seconds": time.perf_counter() - t0, "photopop_version": __version__,
                               "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n"

        if resumable:
            partial = self.partial_path_for(name, h)
            if forced and partial.exists():
                shutil.rmtree(partial)
            partial.mkdir(parents=True, exist_ok=True)
            func(partial, ups)
            (partial / DONE_FILE).write_text(marker())
            if path.exists():
                shutil.rmtree(path)
            os.replace(partial, path)
        else:
            with atomic_dir(path) as tmp:
                func(tmp, ups)
                (tmp / DONE_FILE).write_text(marker())
        seconds = time.perf_counter() - t0
        res = StageResult(name, h, path, cached=False, seconds=seconds)
        self.log(f"stage {name}-{h}: done in {seconds:.1f} s")
        self.results[name] = res
        return res
