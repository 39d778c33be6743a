"""Image cubes (bands x y x x) to per-pixel target maps that keep the celestial WCS.

Accepted FITS layouts (docs/inference.md):

* **3-D cube**: the first 3-D image HDU (primary or extension, not MASK/ERR/IVAR/VAR/WEIGHT) holds
  data of shape (n_bands, ny, nx), i.e. NAXIS3 = band. Band names come from a ``BANDS`` binary
  table extension (column ``band``) or header keywords ``BAND1`` .. ``BANDn``.
* **one HDU per band**: 2-D image HDUs of equal shape and equal celestial WCS; a band's name is its
  ``BAND`` keyword (if any HDU has one, only those HDUs are bands) else its ``EXTNAME``.

Units from ``BUNIT`` (the band HDU's, else the primary's): AB magnitudes (``mag``, ``mag(AB)``,
``ABmag``), f_nu (``Jy``, ``mJy``, ``uJy``, ``nJy``, ``erg/(s cm2 Hz)``), maggies (``maggy``,
``nmgy``/``nanomaggies``) or f_lambda (``erg/(s cm2 Angstrom)`` with any scale; converted through
the filter system's pivot wavelengths, f_nu = f_lambda * lambda_p^2 / c). An optional ``MASK``
image HDU of shape (ny, nx) or (n_bands, ny, nx) flags bad pixels (non-zero). ``FILTSYS`` names
the filter system. Pixels with a NaN, masked or non-positive flux in any model band get NaN in
every map; the output FITS has one 2-D image HDU per target (and per ``<target>_sigma``) with the
input's celestial WCS (``WCS(header).celestial.to_header()``).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import InputError
from ..io import atomic_path
from ..validate import positive_int
from . import stream
from .predict import (DEFAULT_CHUNK_ROWS, MAG_PREFIX, PredictReport, as_predictor, check_input_bands,
                      claim_prediction_output, output_columns, predict_chunk, predictor_hash)

AUX_EXTNAMES = ("MASK", "ERR", "ERROR", "IVAR", "VAR", "VARIANCE", "WEIGHT", "BANDS")
MAG_UNITS = ("mag", "mag(ab)", "abmag", "magab", "ab", "mag_ab", "abmag(ab)")
MAGGY_ALIASES = {"nanomaggy": "nmgy", "nanomaggies": "nmgy", "maggies": "maggy"}
#: BUNIT of the output maps for the targets photopop knows (others get none)
TARGET_UNITS = {"log_age": "dex(yr)", "zh": "dex", "log_age_mw": "dex(yr)", "zh_mw": "dex", "a_v": "mag"}
#: input header keywords copied onto every map
COPY_KEYWORDS = ("OBJECT", "TELESCOP", "INSTRUME", "DATE-OBS", "MJD-OBS", "EQUINOX", "RADESYS")


@dataclass
class CubeLayout:
    """Where the bands of a cube live, their units, its WCS and its filter system (headers only)."""

    path: Path
    layout: str  # '3d' or 'per-band'
    bands: list[str]
    units: list[str]  # BUNIT per band
    shape: tuple[int, int]  # (ny, nx)
    hdus: list[int]  # the cube HDU ('3d') or one HDU per band
    mask_hdu: int | None
    wcs_header: Any  # astropy Header of the celestial WCS (may be empty)
    has_wcs: bool
    filter_system: str | None
    copy: dict[str, Any] = field(default_factory=dict)


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


def read_cube_layout(path: str | Path, filter_system: str | None = None) -> CubeLayout:
    """Inspect a cube file's headers (no pixel data is read); InputError naming what is wrong."""
    from astropy.io import fits

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        with fits.open(path, memmap=True) as hdul:
            return _layout(path, hdul, filter_system)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot read as a FITS cube ({type(exc).__name__}: {exc})") from exc


def _extname(h: Any) -> str:
    return str(h.header.get("EXTNAME", "")).strip().upper()


def _layout(path: Path, hdul: Any, filter_system: str | None) -> CubeLayout:
    from astropy.io import fits

    primary = hdul[0].header
    images = [i for i, h in enumerate(hdul) if h.is_image and _extname(h) not in AUX_EXTNAMES]
    cube3d = [i for i in images if hdul[i].header.get("NAXIS", 0) == 3]
    masks = [i for i, h in enumerate(hdul) if h.is_image and _extname(h) == "MASK"]
    if cube3d:
        i = cube3d[0]
        h = hdul[i].header
        n_bands, ny, nx = int(h["NAXIS3"]), int(h["NAXIS2"]), int(h["NAXIS1"])
        bands = _band_names_3d(path, hdul, h, n_bands)
        units = [_bunit(path, h, primary)] * n_bands
        hdus, header, layout = [i], h, "3d"
    else:
        flat = [i for i in images if hdul[i].header.get("NAXIS", 0) == 2]
        tagged = [i for i in flat if "BAND" in hdul[i].header]
        hdus = tagged or flat
        if len(hdus) < 1:
            raise InputError(f"{path}: no 3-D image HDU and no 2-D band HDUs; see docs/inference.md for cube layouts")
        bands = [str(hdul[i].header.get("BAND") or hdul[i].header.get("EXTNAME") or "").strip() for i in hdus]
        if any(not b for b in bands):
            raise InputError(f"{path}: band HDU(s) {[i for i, b in zip(hdus, bands) if not b]} have neither BAND nor EXTNAME")
        shapes = {(int(hdul[i].header["NAXIS2"]), int(hdul[i].header["NAXIS1"])) for i in hdus}
        if len(shapes) != 1:
            raise InputError(f"{path}: band images differ in shape {sorted(shapes)}")
        ny, nx = shapes.pop()
        units = [_bunit(path, hdul[i].header, primary) for i in hdus]
        header, layout = hdul[hdus[0]].header, "per-band"
    wcs = _celestial_wcs(path, header)
    if layout == "per-band":
        for i, b in zip(hdus[1:], bands[1:]):
            other = _celestial_wcs(path, hdul[i].header)
            if not _same_wcs(wcs, other):
                raise InputError(f"{path}: band {b!r} (HDU {i}) has another celestial WCS than band {bands[0]!r}; "
                                 "resample the bands onto one pixel grid first")
    mask_hdu = None
    if masks:
        mask_hdu = masks[0]
        mshape = tuple(int(hdul[mask_hdu].header[f"NAXIS{k}"]) for k in range(hdul[mask_hdu].header["NAXIS"], 0, -1))
        if mshape not in ((ny, nx), (len(bands), ny, nx)):
            raise InputError(f"{path}: MASK has shape {mshape}; expected {(ny, nx)} or {(len(bands), ny, nx)}")
    system = header.get("FILTSYS") or primary.get("FILTSYS")
    system = str(system) if system else None
    if filter_system and system and str(filter_system) != system:
        from ..errors import MismatchError

        raise MismatchError(f"{path}: declares filter system {system!r}, but {filter_system!r} was given")
    copy = {k: primary[k] for k in COPY_KEYWORDS if k in primary}
    copy.update({k: header[k] for k in COPY_KEYWORDS if k in header})
    if len(set(bands)) != len(bands):
        raise InputError(f"{path}: band names repeat: {bands}")
    return CubeLayout(path, layout, bands, units, (ny, nx), hdus, mask_hdu,
                      wcs.to_header() if wcs is not None else fits.Header(), wcs is not None,
                      system or filter_system, copy)


def _band_names_3d(path: Path, hdul: Any, header: Any, n_bands: int) -> list[str]:
    from astropy.io import fits

    for h in hdul:
        if isinstance(h, fits.BinTableHDU) and _extname(h) == "BANDS":
            names = {n.lower(): n for n in h.columns.names}
            if "band" not in names:
                raise InputError(f"{path}: BANDS extension lacks a 'band' column (has {h.columns.names})")
            bands = [str(b).strip() for b in np.char.decode(np.asarray(h.data[names["band"]]).astype("S"), "ascii")]
            if len(bands) != n_bands:
                raise InputError(f"{path}: BANDS lists {len(bands)} bands, the cube has {n_bands} planes")
            return bands
    keys = [f"BAND{k}" for k in range(1, n_bands + 1)]
    missing = [k for k in keys if k not in header and k not in hdul[0].header]
    if missing:
        raise InputError(f"{path}: band names unknown: no BANDS extension and header lacks {missing[:3]}"
                         f"{'...' if len(missing) > 3 else ''} (BAND1..BAND{n_bands})")
    return [str(header.get(k, hdul[0].header.get(k))).strip() for k in keys]


def _bunit(path: Path, header: Any, primary: Any) -> str:
    unit = header.get("BUNIT") or primary.get("BUNIT")
    if not unit:
        raise InputError(f"{path}: no BUNIT: say whether pixels are AB magnitudes ('mag') or fluxes "
                         "('nmgy', 'Jy', 'erg/(s cm2 Angstrom)', ...)")
    return str(unit).strip()


def _celestial_wcs(path: Path, header: Any) -> Any:
    from astropy.wcs import WCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            w = WCS(header)
        except Exception as exc:
            raise InputError(f"{path}: invalid WCS ({type(exc).__name__}: {exc})") from exc
    if not w.has_celestial:
        return None
    if sorted((w.wcs.lng, w.wcs.lat)) != [0, 1]:
        raise InputError(f"{path}: the celestial axes must be NAXIS1 and NAXIS2 (the band axis NAXIS3)")
    return w.celestial


def _same_wcs(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    from astropy.wcs import WCSCOMPARE_ANCILLARY

    return bool(a.wcs.compare(b.wcs, cmp=WCSCOMPARE_ANCILLARY, tolerance=1e-10))


# -- units -----------------------------------------------------------------------------------------
def _to_ab_mag(values: np.ndarray, unit: str, band: str, filter_system: str | None, path: Path) -> np.ndarray:
    """AB magnitudes from pixel values in `unit` (NaN where a flux is not positive or not finite)."""
    import astropy.units as u

    from ..photometry.ab import jy_to_ab_mag, maggies_to_ab_mag

    key = unit.lower().replace(" ", "")
    if key in MAG_UNITS:
        return np.where(np.isfinite(values), values, np.nan)
    text = MAGGY_ALIASES.get(key, unit)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = u.Unit(text)
    except Exception as exc:
        raise InputError(f"{path}: BUNIT {unit!r} is not a unit astropy knows") from exc
    with np.errstate(invalid="ignore", divide="ignore"):
        if q.is_equivalent(u.mgy):
            return maggies_to_ab_mag(values * (1.0 * q).to_value(u.mgy))
        if q.is_equivalent(u.Jy):
            return jy_to_ab_mag(values * (1.0 * q).to_value(u.Jy))
        if q.is_equivalent(u.erg / u.s / u.cm ** 2 / u.AA):
            pivot = _pivot_aa(band, filter_system, path)
            to_jy = (1.0 * q).to_value(u.Jy, equivalencies=u.spectral_density(pivot * u.AA))
            return jy_to_ab_mag(values * to_jy)
    raise InputError(f"{path}: BUNIT {unit!r} is neither AB magnitudes nor a flux density (f_nu, maggies, f_lambda)")


def _pivot_aa(band: str, filter_system: str | None, path: Path) -> float:
    if not filter_system:
        raise InputError(f"{path}: f_lambda pixels need the filter system's pivot wavelengths: set FILTSYS "
                         "or pass filter_system")
    from ..photometry.filters import load_filter_system

    system = load_filter_system(filter_system)
    if band not in system.bands:
        raise InputError(f"{path}: band {band!r} is not in filter system {filter_system!r}")
    return float(system.pivots[system.bands.index(band)])


# -- prediction --------------------------------------------------------------------------------------
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
                mags[j] = _to_ab_mag(np.asarray(raw, dtype=np.float64), lay.units[k], lay.bands[k],
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
    return name + stream.MAPS_SUFFIX


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
        manifest = stream.Manifest.open(out_dir, run, overwrite=overwrite)
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
                                  "sha256": stream.file_sha256(Path(out_dir) / name)})
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


__all__: Sequence[str] = ("CubeLayout", "CubeReport", "maps_name", "predict_cube", "predict_cubes", "read_cube_layout")
