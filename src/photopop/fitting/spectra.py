"""Spectra to fit: one record per spectrum (`FitSpectrum`), read from SDSS spec files, spectrum tables, or a
binned-spectra set (the ``spectra/*.fits`` files of an `photopop ifu prepare` folder, layout below).

Spectrum-set FITS file (one per cube, all rows on one wavelength grid): extensions WAVE (n_wave, A, header
MEDIUM = 'air' | 'vacuum'), FLUX (n, n_wave; BUNIT), IVAR (n, n_wave; 0 = no data), BADPIX (n, n_wave; uint8,
1 = bad), FWHM (n_wave, instrumental FWHM in A, observed frame) and the binary table ROWS (id, galaxy_id,
spaxel_id, redshift). Optional BINMAP: the (ny, nx) bin id of every spaxel (-1 = unused) with the cube's
celestial WCS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..io import atomic_path, read_json

#: `kind` in the meta.json of an `ifu prepare` folder
BINS_KIND = "ifu-bins"
BINS_META = "meta.json"
BINS_SPECTRA_DIR = "spectra"


@dataclass
class FitSpectrum:
    """One spectrum to fit. wavelength_aa: observed frame, increasing; flux in any f_lambda unit; ivar in that
    unit^-2 (None = unknown errors); bad: True = unusable pixel; fwhm_aa: instrumental FWHM per pixel (A,
    observed) or None; redshift: None = unknown; medium: 'air' or 'vacuum' wavelengths."""

    id: str
    wavelength_aa: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray | None
    bad: np.ndarray
    fwhm_aa: np.ndarray | None
    redshift: float | None
    medium: str = "air"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SpectrumSet:
    """Many spectra on one wavelength grid (rows = spectra)."""

    wavelength_aa: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    bad: np.ndarray
    fwhm_aa: np.ndarray
    ids: np.ndarray
    galaxy_id: np.ndarray
    spaxel_id: np.ndarray
    redshift: np.ndarray
    medium: str
    flux_unit: str
    bin_map: np.ndarray | None = None
    wcs_header: Any = None

    def rows(self) -> list[FitSpectrum]:
        """One `FitSpectrum` per row."""
        return [FitSpectrum(str(self.ids[i]), self.wavelength_aa, self.flux[i], self.ivar[i], self.bad[i],
                            self.fwhm_aa, float(self.redshift[i]), self.medium,
                            {"galaxy_id": int(self.galaxy_id[i]), "spaxel_id": int(self.spaxel_id[i])})
                for i in range(self.flux.shape[0])]


def write_spectrum_set(path: str | os.PathLike, s: SpectrumSet) -> None:
    """Write a spectrum set (layout in the module docstring) atomically."""
    from astropy.io import fits

    wave = fits.ImageHDU(np.asarray(s.wavelength_aa, np.float64), name="WAVE")
    wave.header["MEDIUM"] = s.medium
    wave.header["BUNIT"] = "Angstrom"
    flux = fits.ImageHDU(np.asarray(s.flux, np.float32), name="FLUX")
    flux.header["BUNIT"] = s.flux_unit
    rows = fits.BinTableHDU.from_columns([
        fits.Column("id", "A64", array=np.asarray(s.ids, dtype="U64")),
        fits.Column("galaxy_id", "K", array=np.asarray(s.galaxy_id, np.int64)),
        fits.Column("spaxel_id", "K", array=np.asarray(s.spaxel_id, np.int64)),
        fits.Column("redshift", "D", array=np.asarray(s.redshift, np.float64))], name="ROWS")
    hdus = [fits.PrimaryHDU(), wave, flux, fits.ImageHDU(np.asarray(s.ivar, np.float32), name="IVAR"),
            fits.ImageHDU(np.asarray(s.bad, np.uint8), name="BADPIX"),
            fits.ImageHDU(np.asarray(s.fwhm_aa, np.float64), name="FWHM"), rows]
    if s.bin_map is not None:
        hdus.append(fits.ImageHDU(np.asarray(s.bin_map, np.int32), header=s.wcs_header, name="BINMAP"))
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)


def read_spectrum_set(path: str | os.PathLike) -> SpectrumSet:
    """Read a spectrum-set FITS file written by `write_spectrum_set`."""
    from astropy.io import fits

    path = Path(path)
    try:
        with fits.open(path, memmap=False) as h:
            names = {x.name for x in h}
            need = {"WAVE", "FLUX", "IVAR", "BADPIX", "FWHM", "ROWS"}
            if not need <= names:
                raise InputError(f"{path}: not a photopop spectrum set (missing {sorted(need - names)})")
            rows = h["ROWS"].data
            s = SpectrumSet(np.asarray(h["WAVE"].data, np.float64), np.asarray(h["FLUX"].data, np.float64),
                            np.asarray(h["IVAR"].data, np.float64), np.asarray(h["BADPIX"].data) != 0,
                            np.asarray(h["FWHM"].data, np.float64),
                            np.array([str(v).strip() for v in rows["id"]]), np.asarray(rows["galaxy_id"], np.int64),
                            np.asarray(rows["spaxel_id"], np.int64), np.asarray(rows["redshift"], np.float64),
                            str(h["WAVE"].header.get("MEDIUM", "air")), str(h["FLUX"].header.get("BUNIT", "")))
            if "BINMAP" in names:
                s.bin_map = np.asarray(h["BINMAP"].data)
                s.wcs_header = h["BINMAP"].header.copy()
    except OSError as exc:
        raise InputError(f"{path}: cannot read spectrum set ({exc})") from exc
    n = s.flux.shape[0] if s.flux.ndim == 2 else -1
    if n < 0 or any(a.shape != s.flux.shape for a in (s.ivar, s.bad)) or s.wavelength_aa.shape != (s.flux.shape[1],) \
            or s.fwhm_aa.shape != s.wavelength_aa.shape or len(s.ids) != n:
        raise InputError(f"{path}: inconsistent array shapes in the spectrum set")
    return s


def is_bins_folder(path: str | os.PathLike) -> bool:
    """True for a folder written by `photopop ifu prepare` (meta.json kind 'ifu-bins')."""
    p = Path(path)
    return p.is_dir() and (p / BINS_META).is_file() and read_json(p / BINS_META).get("kind") == BINS_KIND


def bins_spectrum_files(path: str | os.PathLike) -> list[Path]:
    """The spectrum-set files of an `ifu prepare` folder, in galaxy order."""
    p = Path(path)
    files = sorted((p / BINS_SPECTRA_DIR).glob("*.fits"))
    if not files:
        raise InputError(f"{p}: no spectra/*.fits in this ifu-bins folder")
    return files


def _sdss_fwhm(path: Path, wave_aa: np.ndarray) -> np.ndarray | None:
    """Instrumental FWHM (A) per pixel of an SDSS spec file from its WDISP column (sigma in log-lambda pixels:
    FWHM = 2.355 * wdisp * dlambda), or None if absent."""
    from astropy.io import fits

    with fits.open(path, memmap=False) as h:
        cols = {c.lower(): c for c in h[1].columns.names}
        if "wdisp" not in cols:
            return None
        wdisp = np.asarray(h[1].data[cols["wdisp"]], dtype=np.float64)
    dlam = np.gradient(wave_aa)
    fwhm = np.sqrt(8 * np.log(2)) * wdisp * dlam
    good = np.isfinite(fwhm) & (fwhm > 0)
    if not good.any():
        return None
    return np.interp(wave_aa, wave_aa[good], fwhm[good])


def read_fit_spectra(path: str | os.PathLike, *, redshift: float | None = None, fwhm_aa: float | None = None,
                     medium: str | None = None, table_options: dict[str, Any] | None = None
                     ) -> list[FitSpectrum]:
    """The spectra of one input: an `ifu prepare` folder (all bins), an SDSS spec file, or a spectrum table
    (as `photopop photometry` reads it, `photometry.spectra.read_spectrum`).

    redshift / fwhm_aa (A, observed) / medium fill in what the file does not say (SDSS: Z from SPECOBJ, FWHM
    from WDISP, vacuum). A table without a resolution needs `fwhm_aa`.
    """
    from ..photometry.spectra import read_spectrum

    p = Path(path)
    if p.is_dir():
        if not is_bins_folder(p):
            raise InputError(f"{p}: a folder input must be an `ifu prepare` output (meta.json kind '{BINS_KIND}')")
        out: list[FitSpectrum] = []
        for f in bins_spectrum_files(p):
            out.extend(read_spectrum_set(f).rows())
        return out
    spec = read_spectrum(p, **(table_options or {}))
    wave = spec.wavelength.to_value("Angstrom")
    sdss = spec.meta.get("format") == "sdss"
    fwhm = _sdss_fwhm(p, wave) if sdss else None
    if fwhm is None and fwhm_aa is not None:
        if not fwhm_aa > 0:
            raise InputError(f"fwhm_aa must be > 0, got {fwhm_aa}")
        fwhm = np.full(wave.size, float(fwhm_aa))
    if fwhm is None:
        raise InputError(f"{p}: the spectrum's resolution is unknown; give its instrumental FWHM in Angstrom "
                         "(--fwhm / fwhm_aa)")
    z = spec.redshift if spec.redshift is not None else redshift
    med = spec.meta.get("wavelength_medium") or medium or "air"
    if med not in ("air", "vacuum"):
        raise InputError(f"{p}: wavelength medium must be 'air' or 'vacuum', got {med!r}")
    return [FitSpectrum(p.name.removesuffix(".gz").rsplit(".", 1)[0], wave, spec.flux.value.astype(np.float64),
                        spec.ivar, np.asarray(spec.mask, bool), fwhm, z, med, {"file": str(p)})]


def read_many(paths: Sequence[str | os.PathLike], **kwargs: Any) -> list[FitSpectrum]:
    """`read_fit_spectra` of each input, concatenated; ids must be unique."""
    out: list[FitSpectrum] = []
    for p in paths:
        out.extend(read_fit_spectra(p, **kwargs))
    ids = [s.id for s in out]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise InputError(f"duplicate spectrum ids {dup}: inputs must have distinct file names / bin ids")
    return out
