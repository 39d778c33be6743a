"""Photometry catalogues: one row per spectrum with magnitudes, fluxes and coverage, written for `predict`.

`photometry_catalogue(spectra, system)` synthesises every spectrum (spectra on one wavelength grid go
through one `synth_photometry` call) and returns a DataFrame with ``id``, ``file``, ``redshift_file`` and
per band ``mag_<band>``, ``magerr_<band>``, ``flux_nmgy_<band>``, ``flux_err_nmgy_<band>``,
``coverage_<band>`` (full / partial / interpolated / none), ``uncovered_<band>`` and
``interpolated_<band>`` (shares of the band's AB weight). `write_catalogue` writes it atomically by
extension with the filter system in the file's metadata, where `photopop predict` reads it:

* Parquet: schema metadata ``filter_system``, ``bands`` (JSON list), ``kind`` = 'photometry-catalogue',
  ``photopop_version``;
* FITS: a binary table with header keywords ``FILTSYS``, ``FILTBNDS`` (comma-separated, long-string
  CONTINUE cards), ``PPKIND``, ``PPVERS``;
* CSV: the table, plus a sidecar ``<file>.meta.json`` with the same keys as the Parquet metadata
  (`read_catalogue_meta` reads any of the three).

An existing file is replaced only when it is a photometry catalogue photopop wrote and `overwrite`
is given; anything else at the path is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import InputError
from ..io import atomic_path, read_json, table_format, write_json_atomic, write_table_atomic
from .columns import MAG_PREFIX, MAGERR_PREFIX
from .filters import load_filter_system
from .masking import DEFAULT_MAX_INTERPOLATED
from .synth import synth_photometry
from .system import FilterSystem

__all__ = ["CATALOGUE_KIND", "photometry_catalogue", "write_catalogue", "read_catalogue_meta", "sidecar_path"]

CATALOGUE_KIND = "photometry-catalogue"


def sidecar_path(path: str | os.PathLike) -> Path:
    """The metadata file next to a CSV catalogue: ``<file>.meta.json``."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def photometry_catalogue(spectra: Sequence[Any], system: FilterSystem | str, *, ids: Sequence[str] | None = None,
                         redshift: float = 0.0, coverage_tolerance: float = 0.01,
                         max_interpolated: float = DEFAULT_MAX_INTERPOLATED) -> pd.DataFrame:
    """One row per spectrum (objects with ``wavelength``, ``flux``, ``ivar``, ``mask``, ``meta``, such as
    `read_spectrum`'s). ids default to the file stems; they must be unique."""
    system = load_filter_system(system)
    spectra = list(spectra)
    if not spectra:
        raise InputError("no spectra given")
    files = [str(s.meta.get("file", "")) for s in spectra]
    if ids is None:
        ids = [Path(f).stem if f else f"spectrum{k}" for k, f in enumerate(files)]
    ids = [str(i) for i in ids]
    if len(ids) != len(spectra):
        raise InputError(f"{len(ids)} ids for {len(spectra)} spectra")
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise InputError(f"duplicate spectrum id(s) {dup[:5]}: give unique ids (e.g. --id path)")
    groups: dict[tuple, list[int]] = {}
    for k, s in enumerate(spectra):
        w = np.asarray(s.wavelength.value, dtype=float)
        key = (w.tobytes(), str(s.wavelength.unit), str(s.flux.unit), s.ivar is None)
        groups.setdefault(key, []).append(k)
    parts: list[pd.DataFrame] = []
    order: list[int] = []
    for rows in groups.values():
        first = spectra[rows[0]]
        flux = np.vstack([np.asarray(spectra[k].flux.value, dtype=float) for k in rows])
        ivar = None if first.ivar is None else np.vstack([np.asarray(spectra[k].ivar, float) for k in rows])
        mask = np.vstack([np.asarray(spectra[k].mask, bool) for k in rows])
        where = files[rows[0]] if len(rows) == 1 else f"{files[rows[0]]} (and {len(rows) - 1} more on its grid)"
        res = synth_photometry(first.wavelength, flux * first.flux.unit, system, ivar=ivar, mask=mask,
                               redshift=redshift, coverage_tolerance=coverage_tolerance,
                               max_interpolated=max_interpolated, source=where)
        tab = res.to_pandas()
        for b in res.bands:  # always present, NaN without errors
            for col in (MAGERR_PREFIX + b, f"flux_err_nmgy_{b}"):
                if col not in tab:
                    tab[col] = np.nan
        parts.append(tab)
        order.extend(rows)
    body = pd.concat(parts, ignore_index=True)
    body.index = order
    body = body.sort_index().reset_index(drop=True)
    head = pd.DataFrame({"id": ids, "file": files,
                         "redshift_file": [np.nan if s.meta.get("redshift") is None else float(s.meta["redshift"])
                                           for s in spectra]})
    cols = []
    for b in system.bands:
        cols += [MAG_PREFIX + b, MAGERR_PREFIX + b, f"flux_nmgy_{b}", f"flux_err_nmgy_{b}", f"coverage_{b}",
                 f"uncovered_{b}", f"interpolated_{b}"]
    return pd.concat([head, body[cols]], axis=1)


def _meta(system: FilterSystem) -> dict[str, str]:
    return {"filter_system": system.name, "bands": json.dumps(system.bands), "kind": CATALOGUE_KIND,
            "photopop_version": __version__}


def read_catalogue_meta(path: str | os.PathLike) -> dict[str, Any] | None:
    """The metadata `write_catalogue` stored (``filter_system``, ``bands`` list, ``kind``, ...), or None
    for a file without it (not an InputError: any table may be given to `predict`)."""
    path = Path(path)
    try:
        fmt = table_format(path)
    except InputError:
        return None
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            raw = pq.read_schema(path).metadata or {}
            meta = {k.decode(): v.decode() for k, v in raw.items() if k.decode() in _meta_keys()}
        elif fmt == "fits":
            from astropy.io import fits

            with fits.open(path, memmap=True) as hdul:
                head = hdul[1].header if len(hdul) > 1 else hdul[0].header
                meta = {"filter_system": head.get("FILTSYS"), "bands": head.get("FILTBNDS"), "kind": head.get("PPKIND"),
                        "photopop_version": head.get("PPVERS")}
                if meta["bands"]:
                    meta["bands"] = json.dumps(str(meta["bands"]).split(","))
        else:
            side = sidecar_path(path)
            if not side.is_file():
                return None
            meta = read_json(side)
            if not isinstance(meta, dict):
                raise InputError(f"{side}: not a JSON object")
            meta = {k: (json.dumps(v) if k == "bands" and isinstance(v, list) else v) for k, v in meta.items()}
    except OSError as exc:
        raise InputError(f"{path}: cannot read its metadata ({exc})") from exc
    meta = {k: v for k, v in meta.items() if v}
    if not meta.get("filter_system"):
        return None
    if "bands" in meta:
        try:
            meta["bands"] = list(json.loads(meta["bands"]))
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path}: metadata 'bands' is not a JSON list") from exc
    return meta


def _meta_keys() -> set[str]:
    return {"filter_system", "bands", "kind", "photopop_version"}


def write_catalogue(df: pd.DataFrame, path: str | os.PathLike, system: FilterSystem | str, *,
                    overwrite: bool = False, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Write `df` (from `photometry_catalogue`) to `path` by extension, atomically (see module docstring)."""
    path = Path(path)
    system = load_filter_system(system)
    fmt = table_format(path)
    if any(Path(p).resolve() == path.resolve() for p in inputs):
        raise InputError(f"{path}: is one of the input spectra; choose another --out")
    side = sidecar_path(path)
    if fmt == "csv" and side.exists() and not path.exists():  # a sidecar left alone by a failed write
        try:
            ours = read_json(side).get("kind") == CATALOGUE_KIND
        except (InputError, AttributeError):
            ours = False
        if not ours:
            raise InputError(f"{side}: exists and is not photopop's catalogue metadata; not touched")
    if path.exists():
        if path.is_dir():
            raise InputError(f"{path}: is a folder; --out must be a .parquet, .fits or .csv file")
        prior = read_catalogue_meta(path)
        if not prior or prior.get("kind") != CATALOGUE_KIND:
            raise InputError(f"{path}: exists and is not a photometry catalogue photopop wrote; not touched")
        if not overwrite:
            raise InputError(f"{path}: exists (a photometry catalogue); pass --overwrite to replace it")
    meta = _meta(system)
    if fmt == "parquet":
        write_table_atomic(df, path, metadata=meta)
    elif fmt == "fits":
        from astropy.table import Table

        tab = Table.from_pandas(df)
        tab.meta.update({"FILTSYS": system.name, "FILTBNDS": ",".join(system.bands), "PPKIND": CATALOGUE_KIND,
                         "PPVERS": __version__})
        with atomic_path(path) as tmp:
            tab.write(tmp, format="fits", overwrite=True)
    else:
        write_json_atomic(sidecar_path(path), {**meta, "bands": system.bands})
        write_table_atomic(df, path)
    return path
