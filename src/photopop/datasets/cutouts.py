"""Real image cutouts on disk: match files named by objID to a catalogue and load them as an `ImageSet`.

A cutout folder holds one file per galaxy named ``<objID>.<ext>`` (e.g. ``1237648720693755918.jpg``):

* JPEG / PNG: an 8-bit colour composite as the SDSS ImgCutout service makes it, channels (R, G, B) =
  (i, r, g). Loaded unchanged into the image set's ``rgb`` dataset (uint8 (n, H, W, 3), channel order i, r, g).
* FITS: calibrated images, a cube of shape (3, H, W) in the primary HDU (or the first image HDU) in band order
  given by the header keyword ``BANDS`` (comma-separated, default ``g,r,i``), units nanomaggies per pixel;
  loaded into ``images`` (float32 (n, 3, H, W), reordered to g, r, i, and flipped vertically: FITS stores the
  bottom row first, an image set stores the top row first as JPEGs do).

Missing files, undecodable files, files of the wrong shape and a folder mixing FITS with JPEG/PNG are never
dropped silently: each such id is listed with its reason (returned, logged, and written to a CSV log).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import open_fits, write_table_atomic
from .image_set import IMAGE_BANDS, ImageSet, ImageSetWriter

log = logging.getLogger(__name__)

RGB_SUFFIXES = (".jpg", ".jpeg", ".png")
FITS_SUFFIXES = (".fits", ".fit", ".fits.gz")
CUTOUT_SUFFIXES = RGB_SUFFIXES + FITS_SUFFIXES


def _kind(path: Path) -> str:
    name = path.name.lower()
    return "fits" if any(name.endswith(s) for s in FITS_SUFFIXES) else "rgb"


def read_cutout(path: str | os.PathLike) -> tuple[str, np.ndarray]:
    """Decode one cutout: ('rgb', uint8 (H, W, 3) in i, r, g order) or ('images', float32 (3, H, W) g, r, i).

    Raises InputError naming the file if it cannot be decoded.
    """
    path = Path(path)
    if _kind(path) == "rgb":
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                im.load()  # full decode: a truncated file fails here
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise InputError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc
        return "rgb", arr
    with open_fits(path, "as a FITS cutout") as hdul:  # corrupt, truncated or bad-checksum files -> InputError
        hdu = next((h for h in hdul if h.data is not None and np.ndim(h.data) == 3), None)
        if hdu is None:
            raise InputError(f"{path}: no 3-d (band, y, x) image HDU")
        try:
            data = np.asarray(hdu.data, dtype=np.float32)
        except (TypeError, ValueError) as exc:  # e.g. a table HDU's records
            raise InputError(f"{path}: FITS cutout data are not numbers ({exc})") from exc
        bands = [b.strip() for b in str(hdu.header.get("BANDS", "g,r,i")).split(",")]
    if data.shape[0] != len(bands) or not set(IMAGE_BANDS) <= set(bands):
        raise InputError(f"{path}: FITS cube must hold bands {list(IMAGE_BANDS)} (BANDS={bands}, shape {data.shape})")
    data = np.ascontiguousarray(data[[bands.index(b) for b in IMAGE_BANDS], ::-1, :])  # FITS row 0 is the bottom
    if not np.all(np.isfinite(data)):
        raise InputError(f"{path}: FITS cutout holds NaN or inf pixels")
    return "images", data


@dataclass
class CutoutMatch:
    """Result of `match_cutouts`: matched rows (in catalogue order) with their files, and what is missing."""

    catalog: pd.DataFrame   # matched rows, with an int64 `id` column
    paths: list[Path]       # one file per matched row
    missing: pd.DataFrame   # columns id, path, reason (missing file / unreadable / wrong shape)
    kind: str               # 'rgb' or 'images'
    image_shape: tuple[int, int] | None


def _find_files(folder: Path) -> dict[int, list[Path]]:
    found: dict[int, list[Path]] = {}
    for p in folder.iterdir():
        name = p.name.lower()
        suffix = next((s for s in CUTOUT_SUFFIXES if name.endswith(s)), None)
        if suffix is None or not p.is_file():
            continue
        stem = p.name[: -len(suffix)]
        if stem.lstrip("-").isdigit():
            found.setdefault(int(stem), []).append(p)
    return found


def _id_column(catalog: pd.DataFrame, id_column: str | None) -> str:
    if id_column is not None:
        if id_column not in catalog.columns:
            raise InputError(f"catalogue has no column {id_column!r}")
        return id_column
    for name in ("objID", "id"):
        if name in catalog.columns:
            return name
    lower = {str(c).lower(): c for c in catalog.columns}
    if "objid" in lower:
        return lower["objid"]
    raise InputError("catalogue has no objID or id column to name the cutouts by")


def match_cutouts(catalog: pd.DataFrame, folder: str | os.PathLike, *, id_column: str | None = None,
                  decode: bool = True, log_path: str | os.PathLike | None = None) -> CutoutMatch:
    """Match files ``<objID>.<ext>`` in `folder` to catalogue rows; list missing and unreadable ones.

    With ``decode=True`` every file is fully decoded once (catching truncated downloads) and its shape checked
    against the most common shape. The missing list is logged (warning) and, if `log_path` is given, written
    there as CSV (id, path, reason).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: cutout folder does not exist")
    col = _id_column(catalog, id_column)
    ids = catalog[col].astype(np.int64).to_numpy()
    if len(np.unique(ids)) != len(ids):
        raise InputError(f"catalogue column {col!r} has duplicate ids")
    files = _find_files(folder)
    kinds = {_kind(p) for ps in files.values() for p in ps}
    if len(kinds) > 1:
        raise InputError(f"{folder}: mixes FITS and JPEG/PNG cutouts; an image set holds one kind -- "
                         "split them into separate folders")
    kind = "images" if kinds == {"fits"} else "rgb"
    rows: list[int] = []
    paths: list[Path] = []
    shapes: list[tuple[int, int]] = []
    missing: list[dict[str, object]] = []
    for k, oid in enumerate(ids):
        cands = files.get(int(oid), [])
        if not cands:
            missing.append({"id": int(oid), "path": "", "reason": "missing file"})
            continue
        if len(cands) > 1:
            missing.append({"id": int(oid), "path": ";".join(map(str, cands)),
                            "reason": "several files for this id"})
            continue
        p = cands[0]
        if decode:
            try:
                _, arr = read_cutout(p)
            except InputError as exc:
                missing.append({"id": int(oid), "path": str(p), "reason": f"unreadable: {exc}"})
                continue
            shapes.append(arr.shape[:2] if kind == "rgb" else arr.shape[1:])
        rows.append(k)
        paths.append(p)
    shape = None
    if shapes:
        vals, counts = np.unique(np.array(shapes), axis=0, return_counts=True)
        shape = tuple(int(v) for v in vals[np.argmax(counts)])
        keep = [i for i, s in enumerate(shapes) if tuple(s) == shape]
        for i, s in enumerate(shapes):
            if tuple(s) != shape:
                missing.append({"id": int(ids[rows[i]]), "path": str(paths[i]),
                                "reason": f"shape {tuple(s)} differs from the common {shape}"})
        rows = [rows[i] for i in keep]
        paths = [paths[i] for i in keep]
    matched = catalog.iloc[rows].reset_index(drop=True).copy()
    if "id" not in matched.columns or col != "id":
        matched["id"] = matched[col].astype(np.int64)
    miss = pd.DataFrame(missing, columns=["id", "path", "reason"])
    if len(miss):
        log.warning("%d of %d catalogue rows have no usable cutout in %s (first: %s)", len(miss), len(ids),
                    folder, miss["id"].head(5).tolist())
    if log_path is not None:
        write_table_atomic(miss, log_path)
    return CutoutMatch(matched, paths, miss, kind, shape)


def load_cutouts(paths: Iterable[str | os.PathLike]) -> np.ndarray:
    """Decode files into one array: uint8 (n, H, W, 3) (i, r, g) for JPEG/PNG, float32 (n, 3, H, W) for FITS."""
    arrays = [read_cutout(p)[1] for p in paths]
    if not arrays:
        raise InputError("no cutouts to load")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise InputError(f"cutouts have different shapes {sorted(shapes)}")
    return np.stack(arrays)


def cutouts_to_image_set(catalog: pd.DataFrame, folder: str | os.PathLike, out_dir: str | os.PathLike, *,
                         id_column: str | None = None, pixel_scale_arcsec: float = 0.296,
                         chunk: int = 256, meta: dict | None = None,
                         overwrite: bool = False) -> tuple[ImageSet, CutoutMatch]:
    """Match and stream a cutout folder into an image set (bounded memory); writes missing.csv inside it."""
    from ..outputs import check_output

    check_output(out_dir, "image-set", None, inputs=[folder])  # before decoding every cutout
    match = match_cutouts(catalog, folder, id_column=id_column, decode=True)
    if not len(match.catalog):
        raise InputError(f"{folder}: none of the {len(catalog)} catalogue rows has a usable cutout")
    assert match.image_shape is not None
    has_images = match.kind == "images"
    info = {"kind": "cutouts", "source_folder": str(Path(folder).resolve()), "n_missing": len(match.missing)}
    info.update(meta or {})
    with ImageSetWriter(out_dir, match.catalog, image_shape=match.image_shape, has_images=has_images,
                        has_rgb=not has_images, pixel_scale_arcsec=pixel_scale_arcsec, meta=info,
                        extra_files={"missing.csv": match.missing.to_csv(index=False)}, overwrite=overwrite,
                        inputs=(folder,)) as w:
        for s in range(0, len(match.paths), chunk):
            block = load_cutouts(match.paths[s: s + chunk])
            rows = np.arange(s, s + len(block))
            if has_images:
                w.write(rows, images=block)
            else:
                w.write(rows, rgb=block)
    return ImageSet.open(out_dir), match
