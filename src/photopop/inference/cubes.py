"""Image cubes (bands x y x x) to per-pixel target maps that keep the celestial WCS.

The cube layouts and units accepted are those of `photopop.inference.cube_layout` (docs/inference.md).
Pixels are predicted in blocks of whole image rows through the same chunk kernel as catalogues
(`predict_chunk`); a pixel with a NaN, masked or non-positive flux in any model band gets NaN in every
map. The output FITS has one 2-D image HDU per target (and per ``<target>_sigma``) with the input's
celestial WCS (``WCS(header).celestial.to_header()``); `predict_cubes` makes several cubes one
resumable run with the manifest of catalogue runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .. import __version__
from ..checksums import file_sha256
from ..errors import InputError
from ..io import atomic_path
from ..photometry.columns import MAG_PREFIX
from ..validate import positive_int
from .chunks import DEFAULT_CHUNK_ROWS, check_input_bands, output_columns, predict_chunk
from .cube_layout import CubeLayout, read_cube_layout, to_ab_mag
from .fingerprints import predictor_hash
from .manifest import MAPS_SUFFIX, Manifest, claim_prediction_output
from .predictors import as_predictor
from .reports import PredictReport

#: BUNIT of the output maps for the targets photopop knows (others get none)
TARGET_UNITS = {"log_age": "dex(yr)", "zh": "dex", "log_age_mw": "dex(yr)", "zh_mw": "dex", "a_v": "mag"}


@dataclass
class CubeReport:
    """What `predict_cube` wrote."""

    path: Path
    out_path: Path
    shape: tuple[int, int]
    columns: list[str]
    n_pixels: int
    n_nan_pixels: int
    has_wcs: bool
    seconds: float


def _check_cube(predictor: Any, lay: CubeLayout, ignore_extra_bands: bool) -> list[int]:
    """Positions (in the cube's band list) of the model's bands; MismatchError if they differ."""
    check_input_bands(predictor, lay.bands, lay.filter_system, str(lay.path), ignore_extra_bands)
    return [lay.bands.index(b) for b in predictor.bands]


def predict_cube(model: Any, cube_path: str | Path, out_path: str | Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 device: str = "auto", batch_size: int = 4096, filter_system: str | None = None,
                 on_nan: str = "nan", ignore_extra_bands: bool = False) -> CubeReport:
    """Predict every pixel of an image cube and write one map per output column, keeping the WCS.

    Pixels are processed in blocks of about `chunk_rows` pixels (whole image rows) read from a
    memory map, so memory is bounded by the maps plus one block. The FITS file is written
    atomically; its primary header records the model hash and the input's size and mtime.
    """
    from ..outputs import check_output_path

    t0 = time.perf_counter()
    chunk_rows = positive_int(chunk_rows, "chunk_rows")
    check_output_path(out_path, [cube_path], what="output maps file", folder=False)
    predictor = as_predictor(model, device=device, batch_size=batch_size)
    lay = read_cube_layout(cube_path, filter_system)
    order = _check_cube(predictor, lay, ignore_extra_bands)
    return _predict_layout(predictor, lay, order, Path(out_path), int(chunk_rows), on_nan, t0)


def _predict_layout(predictor: Any, lay: CubeLayout, order: list[int], out_path: Path, chunk_rows: int,
                    on_nan: str, t0: float) -> CubeReport:
    from astropy.io import fits

    ny, nx = lay.shape
    cols = output_columns(predictor)
    maps = np.full((len(cols), ny, nx), np.nan, dtype=np.float32)
    rows_per_block = max(1, chunk_rows // max(nx, 1))
    n_nan = 0
    names = [MAG_PREFIX + b for b in predictor.bands]
    with fits.open(lay.path, memmap=True) as hdul:
        mask = hdul[lay.mask_hdu].data if lay.mask_hdu is not None else None
        for y0 in range(0, ny, rows_per_block):
            y1 = min(ny, y0 + rows_per_block)
            mags = np.empty((len(order), y1 - y0, nx), dtype=np.float64)
            for j, k in enumerate(order):
                raw = (hdul[lay.hdus[0]].data[k, y0:y1] if lay.layout == "3d" else hdul[lay.hdus[k]].data[y0:y1])
                mags[j] = to_ab_mag(np.asarray(raw, dtype=np.float64), lay.units[k], lay.bands[k],
                                     lay.filter_system, lay.path)
                if mask is not None:
                    bad = mask[y0:y1] if mask.ndim == 2 else mask[k, y0:y1]
                    mags[j][np.asarray(bad) != 0] = np.nan
            frame = pd.DataFrame(mags.reshape(len(order), -1).T, columns=names)
            pred, bad_rows = predict_chunk(predictor, frame, on_nan, f"{lay.path} rows {y0}-{y1}")
            n_nan += bad_rows
            maps[:, y0:y1, :] = pred[cols].to_numpy(dtype=np.float64).T.reshape(len(cols), y1 - y0, nx)
    st = lay.path.stat()
    primary = fits.PrimaryHDU()
    ph = primary.header
    ph["PPVERS"] = (__version__, "photopop version")
    ph["PPMODEL"] = str(predictor_hash(predictor))  # sha256 of the model folder
    ph["PPINPUT"] = lay.path.name
    ph["PPINSIZE"] = (int(st.st_size), "input size (bytes)")
    ph["PPINMTIM"] = (int(st.st_mtime_ns), "input mtime (ns)")
    if lay.filter_system:
        ph["FILTSYS"] = lay.filter_system
    ph["NTARGETS"] = len(cols)
    for k, v in lay.copy.items():
        ph[k] = v
    hdus = [primary]
    for c, image in zip(cols, maps):
        header = lay.wcs_header.copy()
        for k, v in lay.copy.items():
            header[k] = v
        base = c[:-len("_sigma")] if c.endswith("_sigma") else c
        if base in TARGET_UNITS:
            header["BUNIT"] = TARGET_UNITS[base]
        header["TARGET"] = (c, "NaN where a band was missing")
        hdus.append(fits.ImageHDU(image, header=header, name=c.upper()))
    with atomic_path(out_path) as tmp:
        fits.HDUList(hdus).writeto(tmp, output_verify="exception")
    return CubeReport(lay.path, out_path, lay.shape, cols, ny * nx, n_nan, lay.has_wcs, time.perf_counter() - t0)


def maps_name(path: str | Path) -> str:
    """``<stem>_maps.fits`` for an input cube file."""
    name = Path(path).name
    for suffix in (".fits.gz", ".fits", ".fit", ".fts"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name + MAPS_SUFFIX


def predict_cubes(model: Any, inputs: Iterable[str | Path], out_dir: str | Path, *,
                  chunk_rows: int = DEFAULT_CHUNK_ROWS, device: str = "auto", batch_size: int = 4096,
                  filter_system: str | None = None, on_nan: str = "nan", ignore_extra_bands: bool = False,
                  overwrite: bool = False, progress: bool = False) -> PredictReport:
    """`predict_cube` for several cubes into ``out_dir/<stem>_maps.fits``, resumable like catalogues.

    Every cube's bands are checked before any map is written; maps already recorded in
    ``_manifest.json`` with the same model and input fingerprints are skipped on rerun.
    """
    t0 = time.perf_counter()
    chunk_rows = positive_int(chunk_rows, "chunk_rows")
    batch_size = positive_int(batch_size, "batch_size")
    predictor = as_predictor(model, device=device, batch_size=batch_size)
    paths = [Path(p) for p in inputs]
    layouts = [read_cube_layout(p, filter_system) for p in paths]
    orders = [_check_cube(predictor, lay, ignore_extra_bands) for lay in layouts]
    names = [maps_name(p) for p in paths]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"cubes with the same file name would write the same maps {dup}; run them separately")
    cols = output_columns(predictor)
    run = {"kind": "cubes", "model_hash": predictor_hash(predictor), "on_nan": on_nan, "columns": cols,
           "inputs": [{"index": i, "path": str(p.resolve()), "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
                      for i, p in enumerate(paths)]}
    with claim_prediction_output(out_dir, model, paths):
        manifest = Manifest.open(out_dir, run, overwrite=overwrite)
        report = PredictReport(Path(out_dir), "cubes", [str(p) for p in paths], cols)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(paths), unit="cube", desc="predict")
        try:
            for i, (lay, order, name) in enumerate(zip(layouts, orders, names)):
                if manifest.finished_chunks(i):
                    report.n_parts_skipped += 1
                else:
                    rep = _predict_layout(predictor, lay, order, Path(out_dir) / name, int(chunk_rows), on_nan,
                                          time.perf_counter())
                    manifest.add({"name": name, "input": i, "chunk": 0, "start": 0, "rows": rep.n_pixels,
                                  "nan_rows": rep.n_nan_pixels, "shape": list(rep.shape), "wcs": rep.has_wcs,
                                  "sha256": file_sha256(Path(out_dir) / name)})
                    report.n_parts_written += 1
                    report.n_rows_predicted += rep.n_pixels
                if bar is not None:
                    bar.update(1)
            manifest.finish()
        finally:
            manifest.save(force=True)
            if bar is not None:
                bar.close()
    report.maps = [Path(out_dir) / n for n in names]
    report.n_parts = len(manifest.parts)
    report.n_rows = int(sum(p["rows"] for p in manifest.parts.values()))
    report.n_nan_rows = int(sum(p.get("nan_rows", 0) for p in manifest.parts.values()))
    report.seconds = time.perf_counter() - t0
    return report


__all__ = ["CubeReport", "maps_name", "predict_cube", "predict_cubes"]
