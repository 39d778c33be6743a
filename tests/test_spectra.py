"""Spectrum readers: SDSS/BOSS spec files and plain FITS/CSV/Parquet tables, in their real layouts."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table

from photopop.errors import InputError
from photopop.photometry.spectra import SDSS_FLUX_UNIT, read_spectrum
from photopop.photometry.ab import FLAM_UNIT

LOGLAM = np.arange(3.5800, 3.9640, 1e-4)  # 3802-9204 A, the SDSS/BOSS log grid


def flat_fnu_sdss_units(wave_aa: np.ndarray, jy: float = 3631e-9) -> np.ndarray:
    """A flat f_nu (default 22.5 mag AB) in SDSS flux units (1e-17 erg/s/cm2/A)."""
    return (jy * u.Jy).to_value(SDSS_FLUX_UNIT, u.spectral_density(wave_aa * u.AA))


def write_sdss_spec(path: Path, *, z: float = 0.0831, bad: slice | None = None, ivar_zero: slice | None = None,
                    nan_flux: slice | None = None) -> Path:
    """A small file in the spec-PLATE-MJD-FIBER.fits layout: COADD in HDU 1, SPECOBJ in HDU 2."""
    wave = 10**LOGLAM
    flux = flat_fnu_sdss_units(wave).astype(np.float32)
    ivar = np.full(wave.size, 4.0, dtype=np.float32)
    and_mask = np.zeros(wave.size, dtype=np.int32)
    if bad is not None:
        and_mask[bad] = 1 << 24
        flux[bad] = 1e6  # garbage under the mask
    if ivar_zero is not None:
        ivar[ivar_zero] = 0
    if nan_flux is not None:
        flux[nan_flux] = np.nan
    primary = fits.PrimaryHDU()
    primary.header.update(PLATEID=266, MJD=51602, FIBERID=1, RA=146.71421, DEC=-1.0413)
    coadd = fits.BinTableHDU.from_columns([
        fits.Column(name="flux", format="E", array=flux),
        fits.Column(name="loglam", format="E", array=LOGLAM.astype(np.float32)),
        fits.Column(name="ivar", format="E", array=ivar),
        fits.Column(name="and_mask", format="J", array=and_mask),
        fits.Column(name="or_mask", format="J", array=and_mask),
        fits.Column(name="wdisp", format="E", array=np.ones(wave.size, np.float32)),
        fits.Column(name="sky", format="E", array=np.zeros(wave.size, np.float32)),
        fits.Column(name="model", format="E", array=flux),
    ], name="COADD")
    specobj = fits.BinTableHDU.from_columns([
        fits.Column(name="PLATE", format="J", array=[266]),
        fits.Column(name="MJD", format="J", array=[51602]),
        fits.Column(name="FIBERID", format="J", array=[1]),
        fits.Column(name="CLASS", format="6A", array=["GALAXY"]),
        fits.Column(name="Z", format="E", array=[z]),
        fits.Column(name="Z_ERR", format="E", array=[1e-5]),
        fits.Column(name="ZWARNING", format="J", array=[0]),
    ], name="SPECOBJ")
    fits.HDUList([primary, coadd, specobj]).writeto(path)
    return path


def test_sdss_spec_file(tmp_path):
    path = write_sdss_spec(tmp_path / "spec-0266-51602-0001.fits", bad=slice(100, 110), ivar_zero=slice(200, 203))
    spec = read_spectrum(path)
    np.testing.assert_allclose(spec.wavelength.to_value(u.AA), 10 ** LOGLAM.astype(np.float32).astype(float), rtol=1e-12)
    assert spec.flux.unit == SDSS_FLUX_UNIT and spec.flux.unit.is_equivalent(FLAM_UNIT)
    assert spec.mask.sum() == 13 and spec.mask[100:110].all() and spec.mask[200:203].all()
    assert spec.redshift == pytest.approx(0.0831, rel=1e-6)
    assert spec.meta["plate"] == 266 and spec.meta["fiberid"] == 1 and spec.meta["class"] == "GALAXY"
    res = spec.photometry("sdss")
    # grid 3802-9204 A: u and z mostly outside; the 13 masked pixels (3890-3985 A) lie in g's blue wing
    assert res.coverage.tolist() == ["none", "interpolated", "full", "full", "none"]
    assert 0 < res.interpolated_fraction[1] < 0.01 and res.uncovered_fraction[1] < 0.01
    # flat f_nu of 22.5 mag: 1 nmgy in g, r, i; the masked garbage is excluded
    np.testing.assert_allclose(res.mag_ab[1:4], 22.5, atol=1e-5)
    np.testing.assert_allclose(res.flux_nmgy[1:4], 1.0, rtol=1e-5)
    assert np.all(res.mag_err[1:4] > 0) and np.isnan(res.mag_ab[0]) and np.isnan(res.mag_err[4])


def test_sdss_spec_nan_flux_is_masked(tmp_path):
    spec = read_spectrum(write_sdss_spec(tmp_path / "spec-nan.fits", nan_flux=slice(500, 501)))
    assert spec.mask[500] and spec.mask.sum() == 1


def test_fits_table_with_tunit(tmp_path):
    wave = np.linspace(3500, 9500, 3001)
    fnu = np.full(wave.size, 3631e-6)
    tab = Table({"WAVE": wave * u.nm / 10, "FNU": fnu * u.Jy, "ERR": 0.01 * fnu * u.Jy})
    path = tmp_path / "spectrum.fits"
    tab.write(path)
    spec = read_spectrum(path, flux_column="fnu", error_column="ERR")
    assert spec.wavelength.unit == u.AA and spec.flux.unit == u.Jy
    np.testing.assert_allclose(spec.wavelength.value, wave)
    np.testing.assert_allclose(spec.ivar, 1 / (0.01 * fnu) ** 2)
    res = spec.photometry("sdss")
    np.testing.assert_allclose(res.mag_ab[1:4], 15.0, atol=1e-9)
    with pytest.raises(InputError, match="has unit Jy in the file but mJy was given"):
        read_spectrum(path, flux_column="fnu", flux_unit="mJy")


def test_csv_needs_units_and_parquet(tmp_path):
    wave = np.linspace(3500, 9500, 601)[::-1]  # unsorted input gets sorted
    flam = 1e-17 * (wave / 5000) ** -2
    df = pd.DataFrame({"lambda": wave, "f": flam, "err": 0.1 * flam, "bad": (np.arange(wave.size) == 7).astype(int)})
    csv = tmp_path / "s.csv"
    df.to_csv(csv, index=False)
    with pytest.raises(InputError, match="CSV spectrum needs explicit units"):
        read_spectrum(csv, flux_column="f")
    spec = read_spectrum(csv, flux_column="f", error_column="err", mask_column="bad",
                         wave_unit="Angstrom", flux_unit="erg / (s cm2 Angstrom)")
    assert np.all(np.diff(spec.wavelength.value) > 0) and spec.mask.sum() == 1
    assert spec.mask[wave.size - 1 - 7]
    pq = tmp_path / "s.parquet"
    df.to_parquet(pq)
    with pytest.raises(InputError, match="column 'f' has no unit"):
        read_spectrum(pq, flux_column="f", wave_unit="AA")
    spec2 = read_spectrum(pq, flux_column="f", wave_unit="nm", flux_unit="erg / (s cm2 Angstrom)")
    np.testing.assert_allclose(spec2.wavelength.to_value(u.AA), np.sort(wave) * 10)
    with pytest.raises(InputError, match="no flux column 'flux_x'"):
        read_spectrum(pq, flux_column="flux_x", wave_unit="AA", flux_unit="Jy")
    with pytest.raises(InputError, match="cannot find a wavelength column"):
        pd.DataFrame({"x": [1.0, 2.0], "flux": [1.0, 2.0]}).to_csv(tmp_path / "nowave.csv", index=False)
        read_spectrum(tmp_path / "nowave.csv", wave_unit="AA", flux_unit="Jy")


@pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")
def test_corrupt_and_missing_files(tmp_path):
    corrupt = tmp_path / "spec-0001-00001-0001.fits"
    corrupt.write_bytes(b"SIMPLE  =                    T" + b"\x00garbage" * 50)
    with pytest.raises(InputError, match="spec-0001-00001-0001.fits: cannot read spectrum"):
        read_spectrum(corrupt)
    with pytest.raises(InputError, match="no such spectrum file"):
        read_spectrum(tmp_path / "absent.fits")
    odd = tmp_path / "spectrum.txt"
    odd.write_text("1 2\n")
    with pytest.raises(InputError, match="unknown spectrum format"):
        read_spectrum(odd)
    dup = tmp_path / "dup.csv"
    pd.DataFrame({"wave": [4000.0, 4000.0, 4001.0], "flux": [1.0, 1.0, 1.0]}).to_csv(dup, index=False)
    with pytest.raises(InputError, match="duplicate wavelengths"):
        read_spectrum(dup, wave_unit="AA", flux_unit="Jy")
