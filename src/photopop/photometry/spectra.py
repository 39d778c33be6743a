"""Readers for real spectra: SDSS/BOSS ``spec-PLATE-MJD-FIBER.fits`` files and plain tables.

`read_spectrum` returns a `Spectrum` (wavelength and flux as Quantities, inverse variance, bad-pixel
mask, metadata including the redshift when the file has one), ready for `synth_photometry`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u

from ..errors import InputError
from ..io import check_csv_complete, open_fits, read_errors, table_format

__all__ = ["Spectrum", "read_spectrum", "SDSS_FLUX_UNIT"]

#: SDSS/BOSS spectra: flux in 1e-17 erg/s/cm2/A, ivar in its inverse square
SDSS_FLUX_UNIT = u.Unit(1e-17 * u.erg / u.s / u.cm**2 / u.AA)
_WAVE_NAMES = ("wavelength", "wave", "lambda", "lam", "wl")
_FLUX_NAMES = ("flux", "f_lambda", "flam", "f_nu", "fnu")


@dataclass
class Spectrum:
    """One spectrum: wavelength (Quantity, increasing), flux (Quantity), ivar (in flux.unit**-2 or
    None), mask (True = bad pixel), meta (file, format, redshift when known, ...)."""

    wavelength: u.Quantity
    flux: u.Quantity
    ivar: np.ndarray | None = None
    mask: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = np.shape(self.wavelength)
        if np.shape(self.flux) != n or (self.ivar is not None and np.shape(self.ivar) != n) or (
                self.mask is not None and np.shape(self.mask) != n):
            raise InputError(f"{self.meta.get('file', 'spectrum')}: wavelength, flux, ivar and mask must have "
                             "the same length")
        if self.mask is None:
            self.mask = np.zeros(n, dtype=bool)

    @property
    def redshift(self) -> float | None:
        """Redshift from the file (SDSS SPECOBJ Z), or None."""
        z = self.meta.get("redshift")
        return None if z is None else float(z)

    def photometry(self, system: Any, **kwargs: Any) -> Any:
        """`synth_photometry` of this spectrum (ivar and mask passed along; errors name the file)."""
        from .synth import synth_photometry

        kwargs.setdefault("source", self.meta.get("file"))
        return synth_photometry(self.wavelength, self.flux, system, ivar=self.ivar, mask=self.mask, **kwargs)


def _unit(value: Any, where: str) -> u.UnitBase:
    try:
        return u.Unit(value)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{where}: unknown unit {value!r}") from exc


def _column_unit(file_unit: Any, arg_unit: Any, path: Path, column: str) -> u.UnitBase | None:
    """The unit from the file (TUNIT) or from the argument; both given and different -> error."""
    fu = _unit(file_unit, f"{path}: column {column!r}") if file_unit not in (None, "") else None
    au = _unit(arg_unit, f"{path}: unit for column {column!r}") if arg_unit is not None else None
    if fu is not None and au is not None and fu != au:
        raise InputError(f"{path}: column {column!r} has unit {fu} in the file but {au} was given")
    return fu or au


def _is_sdss(path: Path) -> bool:
    from astropy.io import fits

    with open_fits(path, "spectrum") as hdul:
        if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
            return False
        names = {n.lower() for n in hdul[1].columns.names}
        return {"loglam", "flux", "ivar"} <= names


def _read_sdss(path: Path) -> Spectrum:
    from astropy.io import fits

    with open_fits(path, "spectrum") as hdul:
        coadd = hdul[1].data
        names = {n.lower(): n for n in hdul[1].columns.names}
        loglam = np.asarray(coadd[names["loglam"]], dtype=float)
        flux = np.asarray(coadd[names["flux"]], dtype=float)
        ivar = np.asarray(coadd[names["ivar"]], dtype=float)
        and_mask = np.asarray(coadd[names["and_mask"]]) if "and_mask" in names else np.zeros(loglam.size, int)
        meta: dict[str, Any] = {"file": str(path), "format": "sdss", "wavelength_medium": "vacuum"}
        head = hdul[0].header
        for key in ("PLATEID", "MJD", "FIBERID", "RA", "DEC", "RUN2D"):
            if key in head:
                meta[key.lower()] = head[key]
        if len(hdul) > 2 and isinstance(hdul[2], fits.BinTableHDU) and hdul[2].data is not None and len(hdul[2].data):
            spec = hdul[2].data
            cols = {n.upper(): n for n in hdul[2].columns.names}
            for key, out in (("Z", "redshift"), ("Z_ERR", "redshift_err"), ("ZWARNING", "zwarning"),
                             ("CLASS", "class"), ("PLATE", "plate"), ("MJD", "mjd"), ("FIBERID", "fiberid")):
                if key in cols:
                    v = spec[cols[key]][0]
                    meta[out] = v.strip() if isinstance(v, str) else v.item() if hasattr(v, "item") else v
    if loglam.ndim != 1 or loglam.size < 2:
        raise InputError(f"{path}: COADD table has {loglam.size} pixels")
    if not np.all(np.isfinite(loglam)) or np.any(np.diff(loglam) <= 0):
        raise InputError(f"{path}: loglam is not finite and strictly increasing")
    if np.any(ivar < 0):
        raise InputError(f"{path}: negative ivar values")
    if np.any(np.isposinf(ivar)):
        raise InputError(f"{path}: ivar is +inf at {int(np.isposinf(ivar).sum())} pixel(s) (zero uncertainty): "
                         "not a valid inverse variance")
    from .pixmask import bad_pixels

    # missing: the and_mask bits that mean bad data (photopop.photometry.pixmask), ivar <= 0, non-finite flux
    mask = bad_pixels(and_mask, "sdss") | ~(ivar > 0) | ~np.isfinite(flux)
    meta["and_mask_pixels"] = int(np.count_nonzero(and_mask))
    return Spectrum(10.0**loglam * u.AA, flux * SDSS_FLUX_UNIT, ivar, mask, meta)


def _pick(columns: list[str], wanted: str | None, candidates: tuple[str, ...], path: Path, what: str) -> str:
    lower = {c.lower(): c for c in columns}
    if wanted is not None:
        if wanted in columns:
            return wanted
        if wanted.lower() in lower:
            return lower[wanted.lower()]
        raise InputError(f"{path}: no {what} column {wanted!r}; columns: {columns}")
    for c in candidates:
        if c in lower:
            return lower[c]
    raise InputError(f"{path}: cannot find a {what} column (tried {list(candidates)}); columns: {columns}; "
                     f"name it with the {what}_column argument")


def _read_table(path: Path, *, fmt: str, wavelength_column: str | None, flux_column: str | None,
                ivar_column: str | None, error_column: str | None, mask_column: str | None,
                wave_unit: Any, flux_unit: Any, hdu: int | str | None) -> Spectrum:
    units: dict[str, Any] = {}
    if fmt == "fits":
        from astropy.table import Table

        with open_fits(path, "spectrum") as hdul:
            tab = Table.read(hdul, hdu=hdu if hdu is not None else 1, format="fits")
        columns = list(tab.colnames)
        data = {c: np.asarray(tab[c]) for c in columns if tab[c].ndim == 1}
        units = {c: tab[c].unit for c in columns}
        meta = {k.lower(): v for k, v in tab.meta.items() if k.upper() in {"Z", "REDSHIFT", "OBJECT"}}
    else:
        import pandas as pd

        if fmt == "csv":
            check_csv_complete(path)
        df = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path, page_checksum_verification=True)
        columns = list(df.columns)
        data = {c: df[c].to_numpy() for c in columns}
        meta = {}
        if fmt == "csv" and (wave_unit is None or flux_unit is None):
            raise InputError(f"{path}: a CSV spectrum needs explicit units: give wave_unit and flux_unit "
                             "(--wave-unit/--flux-unit)")
    wcol = _pick(columns, wavelength_column, _WAVE_NAMES, path, "wavelength")
    fcol = _pick(columns, flux_column, _FLUX_NAMES, path, "flux")
    wu = _column_unit(units.get(wcol), wave_unit, path, wcol)
    fu = _column_unit(units.get(fcol), flux_unit, path, fcol)
    if wu is None:
        raise InputError(f"{path}: column {wcol!r} has no unit; give wave_unit (e.g. 'Angstrom')")
    if fu is None:
        raise InputError(f"{path}: column {fcol!r} has no unit; give flux_unit (e.g. 'erg / (s cm2 Angstrom)')")
    if not wu.is_equivalent(u.AA):
        raise InputError(f"{path}: wavelength unit {wu} is not a length")
    try:
        wave = np.asarray(data[wcol], dtype=float)
        flux = np.asarray(data[fcol], dtype=float)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: columns {wcol!r}/{fcol!r} are not numeric 1-D columns") from exc
    if wave.size < 2 or not np.all(np.isfinite(wave)):
        raise InputError(f"{path}: wavelength column {wcol!r} needs >= 2 finite values")
    order = np.argsort(wave, kind="stable")
    if np.any(np.diff(wave[order]) == 0):
        raise InputError(f"{path}: duplicate wavelengths in column {wcol!r}")
    mask = ~np.isfinite(flux)
    ivar = None
    if ivar_column is not None and error_column is not None:
        raise InputError(f"{path}: give ivar_column or error_column, not both")
    if ivar_column is not None:
        icol = _pick(columns, ivar_column, (), path, "ivar")
        ivar = np.asarray(data[icol], dtype=float)
        if np.any(ivar < 0):
            raise InputError(f"{path}: column {icol!r} has negative inverse variances")
        mask |= ~(ivar > 0)
    elif error_column is not None:
        ecol = _pick(columns, error_column, (), path, "error")
        err = np.asarray(data[ecol], dtype=float)
        if np.any(err < 0):
            raise InputError(f"{path}: column {ecol!r} has negative errors")
        eu = _column_unit(units.get(ecol), None, path, ecol) or fu
        err = (err * eu).to_value(fu)
        good = np.isfinite(err) & (err > 0)
        ivar = np.where(good, 1.0 / np.where(good, err, 1.0) ** 2, 0.0)
        mask |= ~good
    if mask_column is not None:
        mcol = _pick(columns, mask_column, (), path, "mask")
        mask |= np.asarray(data[mcol]).astype(bool)
    meta.update({"file": str(path), "format": fmt, "wavelength_column": wcol, "flux_column": fcol})
    if "z" in meta and "redshift" not in meta:
        meta["redshift"] = meta.pop("z")
    return Spectrum((wave[order] * wu).to(u.AA), flux[order] * fu, None if ivar is None else ivar[order],
                    mask[order], meta)


def read_spectrum(path: str | os.PathLike, *, wavelength_column: str | None = None, flux_column: str | None = None,
                  ivar_column: str | None = None, error_column: str | None = None, mask_column: str | None = None,
                  wave_unit: Any = None, flux_unit: Any = None, hdu: int | str | None = None) -> Spectrum:
    """Read one spectrum.

    * SDSS/BOSS ``spec-*.fits`` (detected by a binary table in HDU 1 with loglam, flux, ivar):
      wavelength 10**loglam (vacuum A), flux in 1e-17 erg/s/cm2/A, ivar; pixels whose and_mask has a
      bad-data bit (`photopop.photometry.pixmask.SDSS_BAD`), ivar == 0 or non-finite flux are masked; Z (and PLATE, MJD, FIBERID, CLASS) from the SPECOBJ table in HDU 2.
    * A table (FITS binary table in HDU 1 or `hdu`, CSV, Parquet) with wavelength and flux columns
      (default names tried: wavelength/wave/lambda, flux/f_lambda/f_nu; or name them). Units from the
      FITS TUNIT keywords, else from `wave_unit`/`flux_unit` (required for CSV). Optional
      `ivar_column` or `error_column` (error <= 0 or NaN -> masked) and `mask_column` (non-zero = bad).
      Rows are sorted by wavelength.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such spectrum file")
    try:
        fmt = table_format(path)
    except InputError:
        raise InputError(f"{path}: unknown spectrum format; use an SDSS spec-*.fits file or a .fits/.csv/.parquet table")
    try:
        if fmt == "fits" and hdu is None and wavelength_column is None and _is_sdss(path):
            return _read_sdss(path)
        return _read_table(path, fmt=fmt, wavelength_column=wavelength_column, flux_column=flux_column,
                           ivar_column=ivar_column, error_column=error_column, mask_column=mask_column,
                           wave_unit=wave_unit, flux_unit=flux_unit, hdu=hdu)
    except InputError:
        raise
    except read_errors() as exc:  # corrupt or unreadable file
        raise InputError(f"{path}: cannot read spectrum ({type(exc).__name__}: {exc})") from exc
