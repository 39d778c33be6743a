"""`bin_maps`: per-bin values (pPXF labels, CNN predictions, ...) painted back onto the cube's spaxel grid.

For every galaxy of an `ifu prepare` folder, each value column of a table keyed by (galaxy_id, spaxel_id) becomes
a (ny, nx) image: the value of the bin each spaxel belongs to, NaN for spaxels in no bin or bins without a value.
`write_bin_maps` writes ``<galaxy_id>_maps.fits`` per galaxy (one image extension per column, named after it,
with the cube's celestial WCS), the folder written atomically as a whole (kind 'ifu-maps').
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..fitting.spectra import bins_spectrum_files, is_bins_folder, read_spectrum_set
from ..io import read_table


def bin_maps(bins: str | os.PathLike, values: pd.DataFrame, columns: Sequence[str]
             ) -> dict[int, tuple[dict[str, np.ndarray], object]]:
    """{galaxy_id: ({column: (ny, nx) image}, celestial WCS header)} for the galaxies in `bins`."""
    bins = Path(bins)
    if not is_bins_folder(bins):
        raise InputError(f"{bins}: not an `ifu prepare` folder (meta.json kind 'ifu-bins')")
    missing = [c for c in ["galaxy_id", "spaxel_id", *columns] if c not in values.columns]
    if missing:
        raise InputError(f"value table lacks column(s) {missing}")
    out = {}
    for f in bins_spectrum_files(bins):
        s = read_spectrum_set(f)
        if s.bin_map is None:
            raise InputError(f"{f}: no BINMAP extension")
        gid = int(s.galaxy_id[0])
        sub = values[values["galaxy_id"] == gid].set_index("spaxel_id")
        if sub.index.duplicated().any():
            raise InputError(f"value table: duplicate (galaxy_id, spaxel_id) rows for galaxy {gid}")
        bm = np.asarray(s.bin_map, np.int64)
        images = {}
        for c in columns:
            lookup = pd.Series(pd.to_numeric(sub[c], errors="coerce").to_numpy(np.float64), index=sub.index)
            img = lookup.reindex(bm.ravel()).to_numpy(np.float64).reshape(bm.shape).copy()
            img[bm < 0] = np.nan
            images[c] = img
        out[gid] = (images, s.wcs_header)
    return out


def write_bin_maps(bins: str | os.PathLike, values: str | os.PathLike | pd.DataFrame, columns: Sequence[str],
                   out_dir: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
    """Write ``<out_dir>/<galaxy_id>_maps.fits`` for every galaxy, the folder as a whole (output-folder contract,
    kind 'ifu-maps': a folder of user files or another kind is refused, other settings need `overwrite`)."""
    from astropy.io import fits

    from ..outputs import check_output, replace_output, source_id

    inputs = [bins] + ([] if isinstance(values, pd.DataFrame) else [values])
    settings = {"bins": source_id(bins), "values": source_id(values), "columns": list(columns)}
    check_output(out_dir, "ifu-maps", settings, overwrite=overwrite, inputs=inputs)
    table = values if isinstance(values, pd.DataFrame) else read_table(values)
    maps = bin_maps(bins, table, columns)
    out_dir = Path(out_dir)
    paths = []
    with replace_output(out_dir, "ifu-maps", settings, overwrite=overwrite, inputs=inputs) as tmp:
        for gid, (images, wcs_header) in maps.items():
            name = f"{gid:06d}_maps.fits"
            hdus = [fits.PrimaryHDU()]
            for col, img in images.items():
                hdr = fits.Header() if wcs_header is None else fits.Header(wcs_header)
                hdr["EXTNAME"] = col.upper()
                hdr["GALAXY"] = gid
                hdus.append(fits.ImageHDU(img.astype(np.float32), header=hdr))
            fits.HDUList(hdus).writeto(tmp / name)
            paths.append(out_dir / name)
    return paths
