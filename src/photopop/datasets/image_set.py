"""`ImageSet`: the on-disk format for galaxy image cutouts plus their catalogue.

A folder with `images.h5` (float32 `images` (n, 3, H, W) in band order g, r, i, nanomaggies per
pixel, and/or uint8 `rgb` (n, H, W, 3) irg composites, plus int64 `ids`), `catalog.parquet` (row i
<-> image i), `meta.json` and optionally `config.toml` and `cutouts/<id>.png`. See
docs/images-data.md for the contract. Reading is lazy (h5py) so a training loop only ever holds the
images it asked for; writing is atomic (built in a temporary folder, renamed into place).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..checksums import verify_checksums, write_checksums
from ..errors import InputError
from ..io import dumps_json, read_json, read_table, write_table_atomic
from ..outputs import replace_output

#: band order of the `images` dataset (axis 1)
IMAGE_BANDS: tuple[str, ...] = ("g", "r", "i")
#: channel order of the `rgb` dataset (last axis): R <- i, G <- r, B <- g, as SDSS JPEG cutouts
RGB_CHANNELS: tuple[str, ...] = ("i", "r", "g")
IMAGE_UNITS = "nanomaggies per pixel"
IMAGES_FILE = "images.h5"
CATALOG_FILE = "catalog.parquet"
META_FILE = "meta.json"
#: what h5py raises for a damaged file (OSError: checksum or decode failure; the others: broken metadata)
H5_ERRORS: tuple[type[BaseException], ...] = (OSError, KeyError, ValueError, RuntimeError, TypeError)
CUTOUT_DIR = "cutouts"

Index = int | slice | Sequence[int] | np.ndarray


def _as_index_array(idx: Index, n: int) -> np.ndarray:
    """Turn an int / slice / integer sequence into a validated int64 array of row positions."""
    if isinstance(idx, slice):
        return np.arange(n, dtype=np.int64)[idx]
    arr = np.asarray(idx)
    if arr.dtype == bool:
        raise InputError("boolean masks are not accepted as image indices; use np.flatnonzero(mask)")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"image indices must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64).reshape(-1)
    if arr.size and (arr.min() < -n or arr.max() >= n):
        raise InputError(f"image index out of range for an image set of {n} rows")
    return np.where(arr < 0, arr + n, arr)


def _read_rows(dset: Any, rows: np.ndarray) -> np.ndarray:
    """Read `rows` (any order, repeats allowed) from an h5py dataset along axis 0."""
    if rows.size == 0:
        return np.empty((0,) + tuple(dset.shape[1:]), dtype=dset.dtype)
    uniq, inverse = np.unique(rows, return_inverse=True)
    if uniq.size > 1 and uniq[-1] - uniq[0] + 1 == uniq.size:  # contiguous run: one slice read
        block = dset[int(uniq[0]): int(uniq[-1]) + 1]
    else:
        block = dset[uniq]  # h5py fancy indexing needs increasing, unique indices
    return np.ascontiguousarray(block[inverse])


class ImageSet:
    """A validated, lazily read image set (see module docstring and docs/images-data.md)."""

    def __init__(self, path: Path, catalog: pd.DataFrame, meta: dict[str, Any], info: dict[str, Any]):
        self.path = Path(path)
        self.catalog = catalog
        self.meta = meta
        self.ids = catalog["id"].to_numpy(dtype=np.int64)
        self.has_images: bool = info["has_images"]
        self.has_rgb: bool = info["has_rgb"]
        self.image_shape: tuple[int, int] = info["image_shape"]
        self.pixel_scale_arcsec: float = info["pixel_scale_arcsec"]
        self.bands: tuple[str, ...] = IMAGE_BANDS
        self.rgb_channels: tuple[str, ...] = RGB_CHANNELS
        self._h5: Any = None
        self._pid: int | None = None

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike) -> "ImageSet":
        """Open and validate an image-set folder; raises InputError naming what is wrong."""
        import h5py

        path = Path(path)
        if not path.is_dir():
            raise InputError(f"{path}: not an image-set folder (no such directory)")
        for name in (IMAGES_FILE, CATALOG_FILE, META_FILE):
            if not (path / name).exists():
                raise InputError(f"{path}: image set is missing {name}")
        verify_checksums(path, [CATALOG_FILE, META_FILE])
        meta = read_json(path / META_FILE)
        if not isinstance(meta, dict):
            raise InputError(f"{path / META_FILE}: expected a JSON object, got a JSON {type(meta).__name__}")
        catalog = read_table(path / CATALOG_FILE)
        if "id" not in catalog.columns:
            raise InputError(f"{path / CATALOG_FILE}: missing column 'id'")
        if not np.issubdtype(catalog["id"].dtype, np.integer):
            raise InputError(f"{path / CATALOG_FILE}: column 'id' must be integer, got {catalog['id'].dtype}")
        dup = catalog["id"][catalog["id"].duplicated()]
        if len(dup):
            raise InputError(f"{path / CATALOG_FILE}: duplicate id(s) {dup.head(5).tolist()}")
        h5path = path / IMAGES_FILE
        try:
            with h5py.File(h5path, "r") as h5:
                info = _validate_h5(h5, h5path, len(catalog), catalog["id"].to_numpy(np.int64))
        except H5_ERRORS as exc:  # corrupt file or metadata; a damaged chunk fails its Fletcher-32 checksum
            raise InputError(f"{h5path}: cannot read as HDF5 ({type(exc).__name__}: {exc})") from exc
        return cls(path, catalog.reset_index(drop=True), meta, info)

    # -- access ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.catalog)

    def __repr__(self) -> str:
        kinds = "+".join(k for k, v in (("images", self.has_images), ("rgb", self.has_rgb)) if v)
        return (f"ImageSet({str(self.path)!r}, n={len(self)}, {kinds}, "
                f"{self.image_shape[0]}x{self.image_shape[1]} @ {self.pixel_scale_arcsec}\"/pix)")

    def _file(self) -> Any:
        import h5py

        if self._h5 is None or self._pid != os.getpid():  # (re)open in each process
            self._h5 = h5py.File(self.path / IMAGES_FILE, "r")
            self._pid = os.getpid()
        return self._h5

    def images(self, idx: Index) -> np.ndarray:
        """float32 (k, 3, H, W) images in band order (g, r, i), nanomaggies per pixel.

        An int gives (3, H, W).
        """
        if not self.has_images:
            raise InputError(f"{self.path}: this image set has no calibrated 'images' (only 'rgb')")
        rows = _as_index_array(idx, len(self))
        out = self._read("images", rows)
        return out[0] if np.ndim(idx) == 0 and not isinstance(idx, slice) else out

    def rgb(self, idx: Index) -> np.ndarray:
        """uint8 (k, H, W, 3) colour composites, channels (R, G, B) = (i, r, g). An int gives (H, W, 3)."""
        if not self.has_rgb:
            raise InputError(f"{self.path}: this image set has no 'rgb' composites")
        rows = _as_index_array(idx, len(self))
        out = self._read("rgb", rows)
        return out[0] if np.ndim(idx) == 0 and not isinstance(idx, slice) else out

    def _read(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Rows of dataset `name`; InputError naming the file if the bytes are damaged (checksums)."""
        try:
            return _read_rows(self._file()[name], rows)
        except H5_ERRORS as exc:
            raise InputError(f"{self.path / IMAGES_FILE}: cannot read {name!r} rows ({type(exc).__name__}: "
                             f"{exc}); the file is damaged") from exc

    def close(self) -> None:
        """Close the HDF5 file (it is re-opened on the next access)."""
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = None

    def __enter__(self) -> "ImageSet":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:  # picklable for DataLoader workers
        state = self.__dict__.copy()
        state["_h5"] = None
        state["_pid"] = None
        return state


def _validate_h5(h5: Any, h5path: Path, n: int, cat_ids: np.ndarray) -> dict[str, Any]:
    has_images = "images" in h5
    has_rgb = "rgb" in h5
    if not (has_images or has_rgb):
        raise InputError(f"{h5path}: holds neither an 'images' nor an 'rgb' dataset")
    shape: tuple[int, int] | None = None
    scale = float("nan")
    if has_images:
        d = h5["images"]
        if d.dtype != np.float32 or d.ndim != 4 or d.shape[1] != 3:
            raise InputError(f"{h5path}: dataset 'images' must be float32 (n, 3, H, W), "
                             f"got {d.dtype} {d.shape}")
        bands = tuple(str(b) for b in d.attrs.get("bands", ()))
        if bands != IMAGE_BANDS:
            raise InputError(f"{h5path}: 'images' bands must be {list(IMAGE_BANDS)}, got {list(bands)}")
        if d.shape[0] != n:
            raise InputError(f"{h5path}: 'images' has {d.shape[0]} rows but the catalogue has {n}")
        shape = (int(d.shape[2]), int(d.shape[3]))
        scale = float(d.attrs.get("pixel_scale_arcsec", np.nan))
    if has_rgb:
        d = h5["rgb"]
        if d.dtype != np.uint8 or d.ndim != 4 or d.shape[3] != 3:
            raise InputError(f"{h5path}: dataset 'rgb' must be uint8 (n, H, W, 3), got {d.dtype} {d.shape}")
        if d.shape[0] != n:
            raise InputError(f"{h5path}: 'rgb' has {d.shape[0]} rows but the catalogue has {n}")
        rshape = (int(d.shape[1]), int(d.shape[2]))
        if shape is not None and rshape != shape:
            raise InputError(f"{h5path}: 'rgb' is {rshape} pixels but 'images' is {shape}")
        shape = rshape
        if not np.isfinite(scale):
            scale = float(d.attrs.get("pixel_scale_arcsec", np.nan))
    if "ids" not in h5:
        raise InputError(f"{h5path}: missing dataset 'ids'")
    ids = np.asarray(h5["ids"][:], dtype=np.int64)
    if ids.shape != (n,) or not np.array_equal(ids, cat_ids):
        raise InputError(f"{h5path}: dataset 'ids' does not match catalog.parquet 'id' (row order differs)")
    assert shape is not None
    return {"has_images": has_images, "has_rgb": has_rgb, "image_shape": shape, "pixel_scale_arcsec": scale}


@dataclass
class ImageSetWriter:
    """Stream images into a new image set with bounded memory; atomic on exit.

    Use as a context manager: rows are written with `write(rows, images=..., rgb=...)` in any order;
    on a clean exit the folder is validated and renamed into place, on an exception nothing is left.
    `png=True` also writes `cutouts/<id>.png` from the rgb composites. An existing folder is replaced
    only if photopop wrote it as an image set with the same `settings` (default: meta and config),
    or with `overwrite`; `inputs` (e.g. a cutout folder) may not overlap `path`.
    """

    path: str | os.PathLike
    catalog: pd.DataFrame
    image_shape: tuple[int, int]
    has_images: bool = True
    has_rgb: bool = True
    pixel_scale_arcsec: float = 0.296
    meta: dict[str, Any] = field(default_factory=dict)
    config: Any = None
    png: bool = False
    compression: str | None = None
    rgb_attrs: dict[str, Any] = field(default_factory=dict)
    extra_files: dict[str, str] = field(default_factory=dict)
    settings: Any = None
    overwrite: bool = False
    inputs: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if not (self.has_images or self.has_rgb):
            raise InputError("an image set needs images, rgb or both")
        if "id" not in self.catalog.columns:
            raise InputError("catalogue has no 'id' column")
        ids = self.catalog["id"]
        if ids.duplicated().any():
            raise InputError(f"catalogue has duplicate id(s) {ids[ids.duplicated()].head(5).tolist()}")
        self.catalog = self.catalog.reset_index(drop=True).copy()
        self.catalog["id"] = self.catalog["id"].astype(np.int64)
        self._written = np.zeros(len(self.catalog), dtype=bool)
        self._ctx: Any = None
        self._tmp: Path | None = None
        self._h5: Any = None

    def __enter__(self) -> "ImageSetWriter":
        import h5py

        settings = self.settings
        if settings is None:
            from ..config import to_dict

            config = to_dict(self.config) if self.config is not None and not isinstance(self.config, dict) else self.config
            settings = {"meta": self.meta, "config": config}
        self._ctx = replace_output(self.path, "image-set", settings, overwrite=self.overwrite, inputs=self.inputs)
        self._tmp = self._ctx.__enter__()
        n = len(self.catalog)
        h, w = self.image_shape
        self._h5 = h5py.File(self._tmp / IMAGES_FILE, "w", libver="latest")  # latest: metadata checksums
        comp = {"compression": self.compression} if self.compression else {}
        check = {"fletcher32": True} if n else {}  # a checksum per chunk, verified by h5py on every read
        if self.has_images:
            d = self._h5.create_dataset("images", shape=(n, 3, h, w), dtype=np.float32,
                                        chunks=(1, 3, h, w) if n else None, **comp, **check)
            d.attrs["bands"] = list(IMAGE_BANDS)
            d.attrs["pixel_scale_arcsec"] = float(self.pixel_scale_arcsec)
            d.attrs["units"] = IMAGE_UNITS
        if self.has_rgb:
            d = self._h5.create_dataset("rgb", shape=(n, h, w, 3), dtype=np.uint8,
                                        chunks=(1, h, w, 3) if n else None, **comp, **check)
            d.attrs["channels"] = list(RGB_CHANNELS)
            d.attrs["pixel_scale_arcsec"] = float(self.pixel_scale_arcsec)
            for k, v in self.rgb_attrs.items():
                d.attrs[k] = v
        self._h5.create_dataset("ids", data=self.catalog["id"].to_numpy(np.int64), **check)
        if self.png:
            (self._tmp / CUTOUT_DIR).mkdir()
        return self

    def write(self, rows: Sequence[int] | np.ndarray, images: np.ndarray | None = None,
              rgb: np.ndarray | None = None) -> None:
        """Write a block of rows (integer positions into the catalogue)."""
        rows = _as_index_array(rows, len(self.catalog))
        h, w = self.image_shape
        if self.has_images:
            if images is None:
                raise InputError("this image set stores calibrated images: pass images=")
            images = np.asarray(images, dtype=np.float32)
            if images.shape != (rows.size, 3, h, w):
                raise InputError(f"images block must be {(rows.size, 3, h, w)}, got {images.shape}")
        if self.has_rgb:
            if rgb is None:
                raise InputError("this image set stores rgb composites: pass rgb=")
            rgb = np.asarray(rgb)
            if rgb.dtype != np.uint8 or rgb.shape != (rows.size, h, w, 3):
                raise InputError(f"rgb block must be uint8 {(rows.size, h, w, 3)}, got {rgb.dtype} {rgb.shape}")
        if rows.size and np.array_equal(rows, np.arange(rows[0], rows[0] + rows.size)):
            blocks = [(slice(int(rows[0]), int(rows[0]) + rows.size), slice(None))]  # one contiguous write
        else:
            blocks = [(int(row), k) for k, row in enumerate(rows)]  # chunk-aligned per-row writes
        for dst, src in blocks:
            if self.has_images:
                self._h5["images"][dst] = images[src]  # type: ignore[index]
            if self.has_rgb:
                self._h5["rgb"][dst] = rgb[src]  # type: ignore[index]
        if self.png and self.has_rgb:
            from PIL import Image

            assert self._tmp is not None and rgb is not None
            for k, row in enumerate(rows):
                Image.fromarray(rgb[k]).save(self._tmp / CUTOUT_DIR / f"{int(self.catalog['id'].iat[row])}.png")
        self._written[rows] = True

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        import sys

        try:
            if exc_type is None:
                self._finalise()
            else:
                self._h5.close()
        except BaseException:
            if self._h5.id.valid:
                self._h5.close()
            self._ctx.__exit__(*sys.exc_info())  # removes the temporary folder
            raise
        self._ctx.__exit__(exc_type, exc, tb)  # renames into place, or cleans up on error

    def _finalise(self) -> None:
        missing = np.flatnonzero(~self._written)
        if missing.size:
            raise InputError(f"image set incomplete: {missing.size} row(s) never written "
                             f"(first: {missing[:5].tolist()})")
        self._h5.close()
        assert self._tmp is not None
        write_table_atomic(self.catalog, self._tmp / CATALOG_FILE)
        meta = {"photopop_version": __version__, "kind": "user", "n": len(self.catalog),
                "bands": list(IMAGE_BANDS), "rgb_channels": list(RGB_CHANNELS),
                "image_shape": list(self.image_shape), "pixel_scale_arcsec": float(self.pixel_scale_arcsec),
                "units": IMAGE_UNITS, "has_images": self.has_images, "has_rgb": self.has_rgb,
                "has_png": self.png}
        meta.update(self.meta)
        (self._tmp / META_FILE).write_text(dumps_json(meta) + "\n")
        if self.config is not None:
            from ..config import dumps_toml

            (self._tmp / "config.toml").write_text(dumps_toml(self.config))
        for name, text in self.extra_files.items():
            (self._tmp / name).write_text(text)
        # the small files; the HDF5 file checks itself (Fletcher-32 chunks, checksummed metadata)
        write_checksums(self._tmp, [n for n in (CATALOG_FILE, META_FILE, "config.toml") if (self._tmp / n).exists()])


def write_image_set(path: str | os.PathLike, catalog: pd.DataFrame, images: np.ndarray | None = None,
                    rgb: np.ndarray | None = None, *, pixel_scale_arcsec: float = 0.296,
                    meta: dict[str, Any] | None = None, config: Any = None, png: bool = False,
                    compression: str | None = None, overwrite: bool = False) -> ImageSet:
    """Write in-memory arrays as an image set (atomically) and return it opened."""
    if images is None and rgb is None:
        raise InputError("write_image_set needs images, rgb or both")
    ref = images if images is not None else rgb
    assert ref is not None
    if len(ref) != len(catalog):
        raise InputError(f"{len(ref)} images but {len(catalog)} catalogue rows")
    shape = (ref.shape[2], ref.shape[3]) if images is not None else (ref.shape[1], ref.shape[2])
    with ImageSetWriter(path, catalog, image_shape=shape, has_images=images is not None,
                        has_rgb=rgb is not None, pixel_scale_arcsec=pixel_scale_arcsec,
                        meta=meta or {}, config=config, png=png, compression=compression,
                        overwrite=overwrite) as w:
        w.write(np.arange(len(catalog)), images=images, rgb=rgb)
    return ImageSet.open(path)
