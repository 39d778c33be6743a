"""`run_labels`: the resumable, atomic file-to-table run behind `photopop labels`.

The spectra are fitted in chunks of `chunk_size`; each finished chunk is written as
``<LABELS>.parts/part-<chunk>.parquet`` (atomically) and recorded in ``<LABELS>.parts/_manifest.json`` with the
run's fingerprint (inputs with size and mtime, SSP grid, config, chunking, photopop version). A run that is
stopped resumes from the finished chunks when started again with the same arguments; a different run refuses
the folder (or restarts it with `overwrite`). At the end the parts are joined into LABELS (Parquet, FITS or CSV
by extension, written atomically; Parquet carries the config in its metadata) and the parts folder removed.
An existing LABELS is never replaced unless `overwrite` is set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from .. import __version__
from ..errors import InputError
from ..io import dumps_json, read_json, read_table, table_format, write_json_atomic, write_table_atomic
from .config import LabelFitConfig
from .labels import load_ssp, map_chunks
from .spectra import read_many

MANIFEST = "_manifest.json"
PART_RE = re.compile(r"^part-\d{6}\.parquet$")


def parts_dir(out: Path) -> Path:
    """The work folder of a run writing `out`."""
    return out.with_name(out.name + ".parts")


def _fingerprint(paths: Sequence[Path], ssp: Any, cfg: LabelFitConfig, chunk_size: int, n: int,
                 read_options: dict[str, Any]) -> dict[str, Any]:
    def stat(p: Path) -> dict[str, Any]:
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
        return {"path": str(p.resolve()), "files": [[str(f.relative_to(p)) if f != p else "", f.stat().st_size,
                                                      f.stat().st_mtime_ns] for f in files]}

    ssp_key = str(Path(ssp).resolve()) if str(ssp).lower() != "bc03" else "bc03"
    return {"inputs": [stat(p) for p in paths], "ssp": ssp_key, "config": cfg.to_dict(), "chunk_size": chunk_size,
            "n_spectra": n, "read_options": {k: v for k, v in read_options.items() if v is not None},
            "photopop_version": __version__}


def _clear_parts(d: Path) -> None:
    """Remove the files photopop wrote in a parts folder (refusing folders with other files)."""
    others = [f.name for f in d.iterdir() if not (PART_RE.match(f.name) or f.name == MANIFEST
                                                  or f.name.startswith("."))]
    if others:
        raise InputError(f"{d}: holds files photopop did not write ({others[:3]}); not touching it")
    for f in d.iterdir():
        f.unlink()
    d.rmdir()


def _open_parts(d: Path, run: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    if d.exists():
        if not (d / MANIFEST).is_file():
            raise InputError(f"{d}: exists but is not a photopop labels work folder (no {MANIFEST})")
        old = read_json(d / MANIFEST)
        if old.get("run") == _json(run):
            return old
        if not overwrite:
            raise InputError(f"{d}: parts of a different labels run (other inputs, grid or settings); pass "
                             "--overwrite to restart it")
        _clear_parts(d)
    d.mkdir(parents=True)
    manifest = {"run": _json(run), "done": {}}
    write_json_atomic(d / MANIFEST, manifest)
    return manifest


def _json(obj: Any) -> Any:
    import json

    return json.loads(dumps_json(obj))


def run_labels(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, ssp: str | os.PathLike = "bc03",
               config: LabelFitConfig | None = None, *, n_jobs: int = 1, chunk_size: int = 16,
               overwrite: bool = False, ssp_pattern: str = "*.fits", redshift: float | None = None,
               fwhm_aa: float | None = None, medium: str | None = None,
               table_options: dict[str, Any] | None = None,
               progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Fit the spectra of `inputs` and write the labels table `out` (module docstring); returns it."""
    cfg = config or LabelFitConfig()
    out = Path(out)
    table_format(out)  # unknown extension -> InputError before any work
    if out.exists() and not overwrite:
        raise InputError(f"{out}: exists; pass --overwrite to replace it")
    if out.is_dir():
        raise InputError(f"{out}: is a folder; LABELS must be a table file (.parquet, .fits, .csv)")
    if chunk_size < 1:
        raise InputError("chunk_size must be >= 1")
    paths = [Path(p) for p in inputs]
    read_options = {"redshift": redshift, "fwhm_aa": fwhm_aa, "medium": medium, **(table_options or {})}
    spectra = read_many(paths, redshift=redshift, fwhm_aa=fwhm_aa, medium=medium, table_options=table_options)
    chunks = [spectra[i:i + chunk_size] for i in range(0, len(spectra), chunk_size)]
    run = _fingerprint(paths, ssp, cfg, chunk_size, len(spectra), read_options)
    d = parts_dir(out)
    manifest = _open_parts(d, run, overwrite)
    done = {int(k) for k, v in manifest["done"].items() if (d / v).is_file()}
    todo = [k for k in range(len(chunks)) if k not in done]
    if progress:
        progress(len(done), len(chunks))
    if todo:
        grid = load_ssp(ssp, cfg, pattern=ssp_pattern)
        for k, frame in zip(todo, map_chunks([chunks[k] for k in todo], grid, cfg, n_jobs)):
            name = f"part-{k:06d}.parquet"
            write_table_atomic(frame, d / name)
            manifest["done"][str(k)] = name
            write_json_atomic(d / MANIFEST, manifest)
            done.add(k)
            if progress:
                progress(len(done), len(chunks))
    table = pd.concat([read_table(d / manifest["done"][str(k)]) for k in range(len(chunks))], ignore_index=True)
    if len(table) != len(spectra) or list(table["id"].astype(str)) != [s.id for s in spectra]:
        raise InputError(f"{d}: the parts do not hold the {len(spectra)} spectra of this run; remove the folder")
    meta = {"photopop": dumps_json({"kind": "labels", "photopop_version": __version__, "ssp": run["ssp"],
                                    "config": cfg.to_dict()}, indent=None)}
    write_table_atomic(table, out, metadata=meta if table_format(out) == "parquet" else None)
    _clear_parts(d)
    return table
