"""`run_labels`: the resumable, atomic file-to-table run behind `photopop labels`.

The spectra are fitted in chunks of `chunk_size`; each finished chunk is written as
``<LABELS>.parts/part-<chunk>.parquet`` (atomically) and recorded in ``<LABELS>.parts/_manifest.json`` with the
run's fingerprint (inputs with size and mtime, SSP grid, config, chunking, photopop version). A run that is
stopped resumes from the finished chunks when started again with the same arguments; a different run refuses
the folder (or restarts it with `overwrite`). At the end the parts are joined into LABELS (Parquet, FITS or CSV
by extension, written atomically; Parquet carries the config in its metadata, CSV and FITS a sidecar
``<LABELS>.meta.json``) and the parts folder removed.

Outputs follow the shared contract (`photopop.outputs`, docs/architecture.md "Output folders"): the parts folder
is claimed in place (kind 'labels-parts': marker, lock, leftovers of a killed run removed, a folder of user
files refused, another run's parts replaced only with `overwrite`); LABELS is checked with `check_output_path`
(not an input, not a folder), and an existing file is replaced only with `overwrite` and only when it is a
labels table photopop wrote.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from .. import __version__
from ..errors import InputError, OutputError
from ..io import dumps_json, read_json, read_table, table_format, write_json_atomic, write_table_atomic
from ..outputs import MARKER, check_output_path, claim_output
from .config import LabelFitConfig
from .labels import load_ssp, map_chunks
from .spectra import read_many

MANIFEST = "_manifest.json"
PART_RE = re.compile(r"^part-\d{6}\.parquet$")
LABELS_KIND = "labels"
PARTS_KIND = "labels-parts"


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


def _meta_side(out: Path) -> Path:
    return out.with_name(out.name + ".meta.json")


def is_labels_table(path: str | os.PathLike) -> bool:
    """True for a labels table `run_labels` wrote (its Parquet metadata, or the sidecar of CSV/FITS)."""
    path = Path(path)
    if table_format(path) == "parquet":
        import pyarrow
        import pyarrow.parquet as pq

        try:
            raw = (pq.read_schema(path).metadata or {}).get(b"photopop")
        except (OSError, pyarrow.ArrowInvalid):
            return False
        try:
            return raw is not None and json.loads(raw.decode()).get("kind") == LABELS_KIND
        except (ValueError, AttributeError):
            return False
    side = _meta_side(path)
    try:
        return side.is_file() and read_json(side).get("kind") == LABELS_KIND
    except (InputError, AttributeError):
        return False


def _check_out(out: Path, inputs: Sequence[Path], overwrite: bool) -> None:
    """Refuse a LABELS path that is an input or a folder, a file photopop did not write, and (without
    `overwrite`) an earlier labels table."""
    check_output_path(out, inputs, what="labels table", folder=False)
    side = _meta_side(out)
    if out.exists():
        if not is_labels_table(out):
            raise OutputError(f"{out}: exists and is not a labels table photopop wrote; not touched")
        if not overwrite:
            raise OutputError(f"{out}: exists (a labels table); pass --overwrite to replace it")
    elif table_format(out) != "parquet" and side.exists():
        try:
            ours = read_json(side).get("kind") == LABELS_KIND
        except (InputError, AttributeError):
            ours = False
        if not ours:
            raise OutputError(f"{side}: exists and is not photopop's labels metadata; not touched")


def _remove_parts(d: Path) -> None:
    """Remove what photopop wrote in the parts folder, and the folder when nothing else is left."""
    for f in d.iterdir():
        if PART_RE.match(f.name) or f.name in (MANIFEST, MARKER):
            f.unlink()
    if not any(d.iterdir()):
        d.rmdir()


def _json(obj: Any) -> Any:
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
    if chunk_size < 1:
        raise InputError("chunk_size must be >= 1")
    if str(ssp).lower() != "bc03" and not Path(ssp).exists():  # before anything is claimed or read
        raise InputError(f"--ssp {ssp}: not 'bc03', a MILES-format folder or an SSP grid file")
    paths = [Path(p) for p in inputs]
    _check_out(out, paths, overwrite)
    read_options = {"redshift": redshift, "fwhm_aa": fwhm_aa, "medium": medium, **(table_options or {})}
    spectra = read_many(paths, redshift=redshift, fwhm_aa=fwhm_aa, medium=medium, table_options=table_options)
    chunks = [spectra[i:i + chunk_size] for i in range(0, len(spectra), chunk_size)]
    run = _json(_fingerprint(paths, ssp, cfg, chunk_size, len(spectra), read_options))
    d = parts_dir(out)
    with claim_output(d, PARTS_KIND, run, overwrite=overwrite, inputs=paths, in_place=True,
                      clear=["part-*.parquet", MANIFEST]):
        manifest = read_json(d / MANIFEST) if (d / MANIFEST).is_file() else None
        if manifest is None or manifest.get("run") != run:
            manifest = {"run": run, "done": {}}
            write_json_atomic(d / MANIFEST, manifest)
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
        _check_out(out, paths, overwrite)  # nothing appeared at LABELS while the fits ran
        meta = {"kind": LABELS_KIND, "photopop_version": __version__, "ssp": run["ssp"], "config": cfg.to_dict()}
        if table_format(out) == "parquet":
            write_table_atomic(table, out, metadata={"photopop": dumps_json(meta, indent=None)})
        else:
            write_json_atomic(_meta_side(out), meta)
            write_table_atomic(table, out)
        _remove_parts(d)
    return table
