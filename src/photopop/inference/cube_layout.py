"""Image-cube files: where the bands live, their units and WCS, and pixels -> AB magnitudes.

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
the filter system. `read_cube_layout` reads headers only; `to_ab_mag` converts one band's pixels.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import read_errors

AUX_EXTNAMES = ("MASK", "ERR", "ERROR", "IVAR", "VAR", "VARIANCE", "WEIGHT", "BANDS")
MAG_UNITS = ("mag", "mag(ab)", "abmag", "magab", "ab", "mag_ab", "abmag(ab)")
MAGGY_ALIASES = {"nanomaggy": "nmgy", "nanomaggies": "nmgy", "maggies": "maggy"}
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
    except read_errors() as exc:  # a corrupt or unreadable file (anything else is a bug)
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
        except (ValueError, KeyError) as exc:  # astropy.wcs.WcsError is a ValueError
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


# -- units ------------------------------------------------------------------------------------------
def to_ab_mag(values: np.ndarray, unit: str, band: str, filter_system: str | None, path: Path) -> np.ndarray:
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
    except ValueError as exc:  # not a unit string astropy parses
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


