"""Real IFU cubes -> the spaxel (SED) table: synthetic photometry of every spaxel, masks, deprojected radii.

`read_ifu_cube` reads one galaxy's cube in either layout

* CALIFA (V500/V1200/COMB): primary HDU = flux cube (NAXIS3 = wavelength; lambda_i = CRVAL3 + (i + 1 - CRPIX3)
  CDELT3, CRPIX3 = 1 if absent; flux in 1e-16 erg/s/cm^2/A), extensions ERROR (same units) and BADPIX
  (non-zero = bad);
* MaNGA LOGCUBE: extensions FLUX (1e-17 erg/s/cm^2/A/spaxel), WAVE (Angstrom, log-spaced), IVAR and MASK
  (MANGA_DRP3PIXMASK bits; by default NOCOV, DEADFIBER, FORESTAR and DONOTUSE mark bad pixels, as
  `photopop.photometry.pixmask.MANGA_BAD`),

plus per-spaxel label maps (2-D arrays or FITS images, e.g. the log_age and zh of a spectral fit), and returns
an `SEDTable` of kind 'ifu-cube'. All spaxels go through one `synth_photometry` call (one matrix product),
with the cube's errors propagated and bad pixels excluded.

A spaxel (or bin) is dropped when the share of bad pixels inside the bands' wavelength range exceeds
`bad_pixel_max`, when a label is not finite, or when any band flux is not positive (no magnitude); the counts
are in ``meta['dropped']``. Sky offsets follow the cube's celestial WCS (x east, y north, arcsec); the
deprojected radius uses the given centre (0-based pixel x = column, y = row), position angle (north through
east), inclination and R_e (thin disc; `photopop.geometry.deprojected_radius`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import InputError, MismatchError
from ..geometry import deprojected_radius
from ..io import open_fits
from ..photometry.pixmask import MANGA_BAD, MANGA_DRP3PIXMASK
from .sed_table import SEDTable

#: MANGA_DRP3PIXMASK bits that make a pixel unusable (`photopop.photometry.pixmask.MANGA_BAD`)
MANGA_BAD_BITS = tuple(MANGA_DRP3PIXMASK[name] for name in MANGA_BAD)
CALIFA_FLUX_UNIT = "1e-16 erg / (s cm2 Angstrom)"
MANGA_FLUX_UNIT = "1e-17 erg / (s cm2 Angstrom)"


def _open(path: Path) -> Any:
    if not path.exists():
        raise InputError(f"{path}: no such IFU cube")
    return open_fits(path)  # checksums verified where the file has them; InputError if corrupt


def _cube_layout(hdul: Any) -> str:
    names = {h.name.upper() for h in hdul}
    if {"FLUX", "WAVE"} <= names:
        return "manga"
    if hdul[0].data is not None and hdul[0].data.ndim == 3:
        return "califa"
    raise InputError("not an IFU cube: expected a CALIFA layout (3-D primary HDU) or a MaNGA LOGCUBE "
                     f"(FLUX and WAVE extensions); extensions are {sorted(names)}")


def _linear_wavelength(header: Any, n: int, path: Path) -> np.ndarray:
    crval = header.get("CRVAL3")
    cdelt = header.get("CDELT3", header.get("CD3_3"))
    if crval is None or cdelt is None:
        raise InputError(f"{path}: primary header lacks CRVAL3/CDELT3 (or CD3_3) for the wavelength axis")
    crpix = header.get("CRPIX3", 1.0)
    wave = crval + (np.arange(n) + 1.0 - crpix) * cdelt
    unit = str(header.get("CUNIT3", "Angstrom")).strip().lower()
    if unit in ("m", "meter", "metre"):
        wave = wave * 1e10
    elif unit in ("nm", "nanometer"):
        wave = wave * 10.0
    elif unit not in ("angstrom", "a", "aa", "angstroms", ""):
        raise InputError(f"{path}: unsupported wavelength unit CUNIT3={unit!r}")
    return wave


def _sky_matrix(header: Any, pixel_scale_arcsec: float | None, path: Path) -> np.ndarray:
    """2x2 matrix (arcsec per pixel) from (d col, d row) to (east, north) offsets."""
    if pixel_scale_arcsec is not None:
        if not pixel_scale_arcsec > 0:
            raise InputError("pixel_scale_arcsec must be > 0")
        # north up, east left: the usual orientation of IFU cubes
        return np.array([[-pixel_scale_arcsec, 0.0], [0.0, pixel_scale_arcsec]])
    import warnings

    from astropy.wcs import FITSFixedWarning, WCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header).celestial
        except (ValueError, KeyError) as exc:  # astropy.wcs.WcsError and its kinds are ValueErrors
            raise InputError(f"{path}: cannot read the celestial WCS ({exc}); pass pixel_scale_arcsec") from exc
    if wcs.naxis != 2 or not wcs.has_celestial:
        raise InputError(f"{path}: no celestial WCS in the header; pass pixel_scale_arcsec")
    m = wcs.pixel_scale_matrix * 3600.0  # deg -> arcsec; rows (RA, Dec), columns (x, y)
    units = [str(un) for un in wcs.wcs.cunit]
    if any(un not in ("deg", "") for un in units):
        raise InputError(f"{path}: celestial axes in {units}, expected degrees")
    return m


def _read_map(value: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        with _open(path) as h:
            hdu = next((x for x in h if x.data is not None and np.ndim(x.data) == 2), None)
            if hdu is None:
                raise InputError(f"{path}: no 2-D image for label {name!r}")
            arr = np.asarray(hdu.data, dtype=np.float64)
    else:
        arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise MismatchError(f"label map {name!r} has shape {arr.shape}, the cube's spaxels are {shape} (ny, nx)")
    return arr


@dataclass
class CubeData:
    """An IFU cube as arrays: flux (n_wave, ny, nx), wave (n_wave,) A, err or ivar (same shape, either may be
    None), bad (True = unusable), sky (2x2 arcsec per pixel, (d col, d row) -> (east, north)), the flux unit,
    layout ('califa' | 'manga'), the celestial WCS header (None when `pixel_scale_arcsec` replaced it), the
    wavelength medium and the primary/FLUX header."""

    flux: np.ndarray
    wave: np.ndarray
    err: np.ndarray | None
    ivar: np.ndarray | None
    bad: np.ndarray
    sky: np.ndarray
    flux_unit: str
    layout: str
    medium: str
    header: Any
    celestial_header: Any
    extensions: dict[str, np.ndarray]


def load_cube(cube_path: str | os.PathLike, *, pixel_scale_arcsec: float | None = None, flux_unit: str | None = None,
              mask_bits: Sequence[int] = MANGA_BAD_BITS, layout: str = "auto",
              extra_extensions: Sequence[str] = ()) -> CubeData:
    """Read a CALIFA or MaNGA LOGCUBE cube (layouts in the module docstring) into `CubeData`, checked.

    extra_extensions : names of further 1-D/2-D extensions to return when present (e.g. MaNGA 'SPECRES').
    """
    path = Path(cube_path)
    with _open(path) as hdul:
        kind = _cube_layout(hdul) if layout == "auto" else layout
        names = {h.name.upper() for h in hdul}
        if kind == "califa":
            header = hdul[0].header
            flux = np.asarray(hdul[0].data, dtype=np.float64)
            wave = _linear_wavelength(header, flux.shape[0], path)
            err = np.asarray(hdul["ERROR"].data, dtype=np.float64) if "ERROR" in names else None
            bad = np.asarray(hdul["BADPIX"].data) != 0 if "BADPIX" in names else np.zeros(flux.shape, bool)
            unit = flux_unit or CALIFA_FLUX_UNIT
            ivar = None
            medium = "air"
        elif kind == "manga":
            header = hdul["FLUX"].header
            flux = np.asarray(hdul["FLUX"].data, dtype=np.float64)
            wave = np.asarray(hdul["WAVE"].data, dtype=np.float64)
            ivar = np.asarray(hdul["IVAR"].data, dtype=np.float64) if "IVAR" in names else None
            bits = np.bitwise_or.reduce([1 << int(b) for b in mask_bits]) if len(mask_bits) else 0
            bad = ((np.asarray(hdul["MASK"].data).astype(np.int64) & bits) != 0 if "MASK" in names
                   else np.zeros(flux.shape, bool))
            if ivar is not None:
                bad |= ~(ivar > 0)
            unit = flux_unit or MANGA_FLUX_UNIT
            err = None
            medium = "vacuum"
        else:
            raise InputError(f"layout must be 'auto', 'califa' or 'manga', got {layout!r}")
        sky = _sky_matrix(header, pixel_scale_arcsec, path)
        extensions = {n: np.asarray(hdul[n].data) for n in extra_extensions if n in names}
        header = header.copy()
    celestial = None
    if pixel_scale_arcsec is None:
        import warnings

        from astropy.wcs import FITSFixedWarning, WCS

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            celestial = WCS(header).celestial.to_header()
    if flux.ndim != 3 or wave.shape != (flux.shape[0],):
        raise InputError(f"{path}: flux must be (n_wave, ny, nx) with a matching wavelength axis; got flux "
                         f"{flux.shape}, wavelength {wave.shape}")
    for arr, what in ((err, "ERROR"), (ivar, "IVAR"), (bad, "bad-pixel mask")):
        if arr is not None and arr.shape != flux.shape:
            raise InputError(f"{path}: {what} has shape {arr.shape}, flux has {flux.shape}")
    if np.any(np.diff(wave) <= 0):
        raise InputError(f"{path}: wavelengths are not strictly increasing")
    bad = bad | ~np.isfinite(flux)
    if err is not None:
        bad |= ~np.isfinite(err) | (err <= 0)  # an error of 0 is no measurement
    return CubeData(flux, wave, err, ivar, bad, sky, unit, kind, medium, header, celestial, extensions)


def read_ifu_cube(cube_path: str | os.PathLike, labels: Mapping[str, Any] | None = None, *,
                  centre: tuple[float, float] | None = None, pa_deg: float = 0.0, inclination_deg: float = 0.0,
                  re_arcsec: float, system: Any = "jpas-califa", bands: Sequence[str] | None = None,
                  galaxy_id: int = 0, bad_pixel_max: float = 0.2, bin_map: Any = None,
                  pixel_scale_arcsec: float | None = None, flux_unit: str | None = None,
                  mask_bits: Sequence[int] = MANGA_BAD_BITS, drop_uncovered: bool = False,
                  layout: str = "auto") -> SEDTable:
    """Turn an IFU cube (+ label maps) into an SEDTable of kind 'ifu-cube' (see module docstring).

    labels : {'log_age': map, 'zh': map, ...}, each a (ny, nx) array or a FITS image path (NaN = no fit).
    centre : (x0, y0) galaxy centre in 0-based pixels (x = column); default the cube's middle.
    pa_deg, inclination_deg, re_arcsec : geometry for r_re (PA of the major axis, north through east).
    system, bands : filter system (name or FilterSystem) and optional band subset; bands the cube does not
        cover raise InputError unless drop_uncovered=True (then they are left out).
    bin_map : optional (ny, nx) integer map of bin ids (e.g. Voronoi bins; < 0 = unused): spectra of a bin are
        summed (bad pixels of a member are filled with the mean of the good members at that wavelength), errors
        added in quadrature, labels averaged, positions averaged; spaxel_id is then the bin id.
    bad_pixel_max : largest tolerated share of bad pixels in the bands' range.
    pixel_scale_arcsec : overrides the WCS (north up, east left assumed).
    flux_unit : overrides the layout's default unit (CALIFA 1e-16, MaNGA 1e-17 erg/s/cm^2/A).
    """
    from ..photometry.filters import load_filter_system
    from ..photometry.synth import synth_photometry

    path = Path(cube_path)
    if not re_arcsec or not re_arcsec > 0:
        raise InputError(f"re_arcsec must be > 0, got {re_arcsec}")
    if not 0 <= bad_pixel_max <= 1:
        raise InputError(f"bad_pixel_max must be in [0, 1], got {bad_pixel_max}")
    cube = load_cube(path, pixel_scale_arcsec=pixel_scale_arcsec, flux_unit=flux_unit, mask_bits=mask_bits,
                     layout=layout)
    flux, wave, err, ivar, bad, sky, unit, kind = (cube.flux, cube.wave, cube.err, cube.ivar, cube.bad, cube.sky,
                                                   cube.flux_unit, cube.layout)
    nw, ny, nx = flux.shape

    fsys = load_filter_system(system)
    if bands is not None:
        fsys = fsys.select(list(bands))
    covered = fsys.inside((wave[0], wave[-1]))
    if not covered.all():
        missing = [b for b, c in zip(fsys.bands, covered) if not c]
        if not drop_uncovered or covered.sum() == 0:
            raise InputError(f"{path}: the cube covers {wave[0]:.0f}-{wave[-1]:.0f} A, too little for band(s) "
                             f"{missing}; pick bands inside it or pass drop_uncovered=True")
        fsys = fsys.select([b for b, c in zip(fsys.bands, covered) if c], name=fsys.name)

    # spectra as rows (spaxel-major), one per spaxel, or one per bin
    rows_flux = flux.reshape(nw, ny * nx).T
    rows_bad = bad.reshape(nw, ny * nx).T
    rows_err = err.reshape(nw, ny * nx).T if err is not None else None
    rows_ivar = ivar.reshape(nw, ny * nx).T if ivar is not None else None
    yy, xx = np.mgrid[0:ny, 0:nx]
    px, py = xx.ravel().astype(np.float64), yy.ravel().astype(np.float64)
    label_maps = {k: _read_map(v, (ny, nx), k).ravel() for k, v in (labels or {}).items()}
    ids = np.arange(ny * nx, dtype=np.int64)
    members = np.ones(ny * nx, dtype=np.int64)
    if bin_map is not None:
        bm = _read_map(bin_map, (ny, nx), "bin_map").ravel()
        use = np.isfinite(bm) & (bm >= 0)
        if not np.all(bm[use] == np.round(bm[use])):
            raise InputError("bin_map must hold integer bin ids (< 0 or NaN = unused)")
        ids, inv = np.unique(bm[use].astype(np.int64), return_inverse=True)
        nb = ids.size
        members = np.bincount(inv, minlength=nb)

        def bsum(a: np.ndarray) -> np.ndarray:
            out = np.zeros((nb,) + a.shape[1:])
            np.add.at(out, inv, a[use])
            return out

        good = ~rows_bad
        n_good = bsum(good.astype(float))
        mean_good = bsum(np.where(good, rows_flux, 0.0)) / np.maximum(n_good, 1)
        rows_flux = mean_good * members[:, None]
        rows_bad = n_good == 0
        if rows_err is not None:
            var = bsum(np.where(good, rows_err, 0.0) ** 2) / np.maximum(n_good, 1) ** 2
            rows_err = np.sqrt(var) * members[:, None]
        if rows_ivar is not None:
            var = bsum(np.where(good, 1.0 / np.where(good & (rows_ivar > 0), rows_ivar, 1.0), 0.0))
            var = var / np.maximum(n_good, 1) ** 2 * members[:, None] ** 2
            with np.errstate(divide="ignore"):
                rows_ivar = np.where(var > 0, 1.0 / var, 0.0)
        px, py = bsum(px) / members, bsum(py) / members
        label_maps = {k: bsum(v) / members for k, v in label_maps.items()}

    # share of bad pixels inside the bands' range
    lo, hi = fsys.wavelength_ranges[:, 0].min(), fsys.wavelength_ranges[:, 1].max()
    in_range = (wave >= lo) & (wave <= hi)
    bad_share = rows_bad[:, in_range].mean(axis=1) if in_range.any() else np.ones(ids.size)
    phot = synth_photometry(wave, np.where(rows_bad, np.nan, rows_flux), fsys, wave_unit="Angstrom",
                            flux_unit=unit, flux_err=None if rows_err is None else np.where(rows_bad, np.nan, rows_err),
                            ivar=None if rows_ivar is None else np.where(rows_bad, 0.0, rows_ivar), mask=rows_bad,
                            coverage_tolerance=max(bad_pixel_max, 0.01),
                            max_interpolated=min(max(bad_pixel_max, 0.01), 0.99))
    mag = np.atleast_2d(phot.mag_ab)
    magerr = np.atleast_2d(phot.mag_err) if phot.mag_err is not None else np.zeros_like(mag)

    keep_pix = bad_share <= bad_pixel_max
    keep_lab = np.ones(ids.size, bool)
    for v in label_maps.values():
        keep_lab &= np.isfinite(v)
    keep_flux = np.all(np.isfinite(mag), axis=1) & np.all(np.isfinite(magerr), axis=1)
    keep = keep_pix & keep_lab & keep_flux
    dropped = {"bad_pixels": int((~keep_pix).sum()), "labels": int((keep_pix & ~keep_lab).sum()),
               "flux": int((keep_pix & keep_lab & ~keep_flux).sum())}
    if not keep.any():
        raise InputError(f"{path}: no usable spaxel (dropped: {dropped})")

    x0, y0 = centre if centre is not None else ((nx - 1) / 2.0, (ny - 1) / 2.0)
    dx_pix, dy_pix = px - x0, py - y0
    x_arc = sky[0, 0] * dx_pix + sky[0, 1] * dy_pix
    y_arc = sky[1, 0] * dx_pix + sky[1, 1] * dy_pix
    r_re = deprojected_radius(x_arc, y_arc, pa_deg, inclination_deg, re_arcsec)

    cols: dict[str, Any] = {
        "galaxy_id": np.full(int(keep.sum()), int(galaxy_id), dtype=np.int64),
        "spaxel_id": ids[keep].astype(np.int64),
        "x_arcsec": x_arc[keep], "y_arcsec": y_arc[keep], "r_re": r_re[keep],
    }
    for j, b in enumerate(fsys.bands):
        cols[f"mag_{b}"] = mag[keep, j]
        cols[f"magerr_{b}"] = magerr[keep, j]
    for k, v in label_maps.items():
        cols[k] = v[keep]
    cols["pix_x"] = px[keep]
    cols["pix_y"] = py[keep]
    cols["bad_pixel_share"] = bad_share[keep]
    if bin_map is not None:
        cols["n_spaxels_in_bin"] = members[keep].astype(np.int64)
    spaxels = pd.DataFrame(cols)
    galaxies = pd.DataFrame({"galaxy_id": [int(galaxy_id)], "re_arcsec": [float(re_arcsec)],
                             "pa_deg": [float(pa_deg)], "inclination_deg": [float(inclination_deg)],
                             "centre_x_pix": [float(x0)], "centre_y_pix": [float(y0)], "source": [str(path)]})
    meta = {"kind": "ifu-cube", "filter_system": getattr(system, "name", str(system)), "bands": fsys.bands,
            "seed": None,
            "photopop_version": __version__, "source": str(path), "layout": kind, "flux_unit": unit,
            "dropped": dropped, "n_input": int(ids.size)}
    return SEDTable(spaxels, galaxies, meta).validate(source=str(path))


def cube_wavelength(cube_path: str | os.PathLike, layout: str = "auto") -> np.ndarray:
    """The wavelength axis (A) of a CALIFA or MaNGA cube, read from its headers / WAVE extension only."""
    path = Path(cube_path)
    with _open(path) as hdul:
        kind = _cube_layout(hdul) if layout == "auto" else layout
        if kind == "califa":
            return _linear_wavelength(hdul[0].header, int(hdul[0].header.get("NAXIS3", 0)), path)
        if kind == "manga":
            return np.asarray(hdul["WAVE"].data, dtype=np.float64)
    raise InputError(f"layout must be 'auto', 'califa' or 'manga', got {layout!r}")
