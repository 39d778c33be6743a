"""IFU cube reader: small synthetic CALIFA and MaNGA cubes with known magnitudes, masks and radii."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from photopop.datasets.ifu import read_ifu_cube
from photopop.datasets.sed_table import read_sed_table, write_sed_table
from photopop.errors import InputError, MismatchError

C_AA = 2.99792458e18
NY, NX = 5, 6
BANDS = ["J0400", "J0450", "J0500", "J0550", "J0600", "J0650", "J0700"]


def flat_fnu_flambda(mag: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """f_lambda (erg/s/cm^2/A) of a flat-f_nu source of AB magnitude `mag`: (n_wave, ...) cube."""
    fnu = 10.0 ** (-0.4 * (np.asarray(mag) + 48.6))
    return fnu[None] * C_AA / wave.reshape((-1,) + (1,) * np.ndim(mag)) ** 2


def spaxel_mags() -> np.ndarray:
    return 17.0 + 0.1 * np.arange(NY * NX).reshape(NY, NX)


def celestial(header: fits.Header, scale_arcsec: float) -> None:
    header.update({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CUNIT1": "deg", "CUNIT2": "deg",
                   "CRVAL1": 150.0, "CRVAL2": 2.0, "CRPIX1": 3.0, "CRPIX2": 3.0,
                   "CDELT1": -scale_arcsec / 3600.0, "CDELT2": scale_arcsec / 3600.0})


def write_califa(path, wave_start=3600.0, step=8.0, n=450):
    wave = wave_start + step * np.arange(n)
    mags = spaxel_mags()
    flux = flat_fnu_flambda(mags, wave) / 1e-16  # CALIFA unit 1e-16 erg/s/cm2/A
    err = 0.01 * flux
    badpix = np.zeros(flux.shape, dtype=np.uint8)
    badpix[: n // 2, 0, 0] = 1  # spaxel (row 0, col 0): half its pixels bad -> dropped
    badpix[137:140, 1, 1] = 1  # spaxel (1, 1): a few bad pixels (4696-4712 A, between the test bands) with
    flux[137:140, 1, 1] = 1e6  # garbage values -> kept, magnitudes unchanged
    badpix[212:216, 1, 2] = 1  # spaxel (1, 2): 32 A masked inside J0550 -> renormalised, magnitudes unchanged
    flux[212:216, 1, 2] = -1e6
    flux[:, 4, 5] = 0.0  # spaxel (4, 5): no flux -> dropped
    hdr = fits.Header()
    celestial(hdr, 1.0)
    hdr.update({"CTYPE3": "AWAV", "CUNIT3": "Angstrom", "CRVAL3": wave_start, "CDELT3": step, "CRPIX3": 1.0})
    hdus = fits.HDUList([fits.PrimaryHDU(flux.astype(np.float32), header=hdr),
                         fits.ImageHDU(err.astype(np.float32), name="ERROR"),
                         fits.ImageHDU(badpix, name="BADPIX")])
    hdus.writeto(path)
    return wave


def write_manga(path, n=400):
    wave = np.geomspace(3600.0, 10300.0, n)
    mags = spaxel_mags()
    flux = flat_fnu_flambda(mags, wave) / 1e-17
    ivar = 1.0 / (0.02 * flux) ** 2
    mask = np.zeros(flux.shape, dtype=np.int32)
    mask[:, 0, 0] = 1 << 10  # DONOTUSE everywhere
    mask[:50, 2, 3] = 1 << 5  # a harmless bit: not in the default bad bits
    hdr = fits.Header()
    celestial(hdr, 0.5)
    hdr.update({"CTYPE3": "WAVE-LOG", "CUNIT3": "Angstrom", "CRVAL3": 3600.0, "CDELT3": 1.0, "CRPIX3": 1.0})
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(flux, header=hdr, name="FLUX"),
                  fits.ImageHDU(ivar, name="IVAR"), fits.ImageHDU(mask, name="MASK"),
                  fits.ImageHDU(wave, name="WAVE")]).writeto(path)
    return wave


def labels():
    age = np.full((NY, NX), 9.5)
    zh = np.linspace(-0.5, 0.2, NY * NX).reshape(NY, NX)
    zh[2, 2] = np.nan  # no fit -> dropped
    return {"log_age": age, "zh": zh}


def test_califa_magnitudes_masks_radii(tmp_path):
    write_califa(tmp_path / "cube.fits")
    t = read_ifu_cube(tmp_path / "cube.fits", labels(), centre=(2.0, 2.0), pa_deg=90.0, inclination_deg=60.0,
                      re_arcsec=4.0, system="jpas", bands=BANDS)
    assert t.kind == "ifu-cube" and t.bands == BANDS
    s = t.spaxels.set_index("spaxel_id")
    # dropped: (0,0) bad pixels, (2,2) NaN label, (4,5) no flux
    assert t.meta["dropped"] == {"bad_pixels": 1, "labels": 1, "flux": 1}
    assert len(s) == NY * NX - 3
    assert {0 * NX + 0, 2 * NX + 2, 4 * NX + 5}.isdisjoint(s.index)
    mags = spaxel_mags().ravel()
    np.testing.assert_allclose(s[[f"mag_{b}" for b in BANDS]].to_numpy(), mags[s.index][:, None]
                               * np.ones(len(BANDS)), atol=2e-3)
    # errors: 1 % per pixel, averaged over ~18 independent pixels per band -> well below 0.01 mag
    err = s[[f"magerr_{b}" for b in BANDS]].to_numpy()
    assert np.all((err > 1e-4) & (err < 0.0109))
    assert s.loc[1 * NX + 1, "bad_pixel_share"] > 0 and s.loc[1 * NX + 2, "bad_pixel_share"] > 0
    # geometry: x east = -(col - x0) arcsec, y north = row - y0; PA 90 (major axis east-west), i = 60 deg
    assert s.loc[2 * NX + 4, "x_arcsec"] == pytest.approx(-2.0, abs=1e-6)
    assert s.loc[2 * NX + 4, "r_re"] == pytest.approx(0.5, abs=1e-6)  # on the major axis: 2" / 4"
    assert s.loc[4 * NX + 2, "y_arcsec"] == pytest.approx(2.0, abs=1e-6)
    assert s.loc[4 * NX + 2, "r_re"] == pytest.approx(1.0, abs=1e-6)  # minor axis: 2" / cos 60 / 4"
    assert s.loc[1 * NX + 3, "zh"] == pytest.approx(labels()["zh"][1, 3])
    # the table is a valid SED-table folder
    write_sed_table(t, tmp_path / "sed")
    assert read_sed_table(tmp_path / "sed").meta["layout"] == "califa"


def test_default_bands_need_coverage(tmp_path):
    write_califa(tmp_path / "cube.fits", wave_start=3750.0, n=470)  # like CALIFA V500: 3750-7500 A
    with pytest.raises(InputError, match="J0378"):  # V500 starts 50 A above COMB: J0378's blue wing is lost
        read_ifu_cube(tmp_path / "cube.fits", labels(), re_arcsec=4.0)
    t = read_ifu_cube(tmp_path / "cube.fits", labels(), re_arcsec=4.0, drop_uncovered=True)
    assert "J0378" not in t.bands and "J0400" in t.bands and len(t.bands) < 37


def test_manga_layout(tmp_path):
    write_manga(tmp_path / "manga-LOGCUBE.fits")
    lab = tmp_path / "zh.fits"
    fits.PrimaryHDU(labels()["zh"]).writeto(lab)
    bands = ["J0400", "J0550", "J0700", "J0850", "J0910"]
    t = read_ifu_cube(tmp_path / "manga-LOGCUBE.fits", {"zh": lab}, re_arcsec=3.0, system="jpas",
                      bands=bands, centre=(2.0, 2.0))
    s = t.spaxels.set_index("spaxel_id")
    assert t.meta["layout"] == "manga" and t.meta["dropped"]["bad_pixels"] == 1  # DONOTUSE spaxel
    assert 2 * NX + 3 in s.index  # a non-bad mask bit keeps the spaxel
    np.testing.assert_allclose(s[[f"mag_{b}" for b in bands]].to_numpy(),
                               spaxel_mags().ravel()[s.index][:, None] * np.ones(len(bands)), atol=2e-3)
    # 0.5 arcsec spaxels
    assert s.loc[2 * NX + 4, "x_arcsec"] == pytest.approx(-1.0, abs=1e-6)
    assert np.all(s[[f"magerr_{b}" for b in bands]].to_numpy() > 0)


def test_bins_sum_member_spectra(tmp_path):
    write_califa(tmp_path / "cube.fits")
    bins = np.full((NY, NX), -1.0)
    bins[3, 0:2] = 7  # two spaxels, magnitudes m and m + 0.1
    bins[3, 2:4] = 8
    t = read_ifu_cube(tmp_path / "cube.fits", None, re_arcsec=4.0, system="jpas", bands=BANDS, bin_map=bins,
                      centre=(0.0, 0.0))
    s = t.spaxels.set_index("spaxel_id")
    assert sorted(s.index) == [7, 8] and (s["n_spaxels_in_bin"] == 2).all()
    m = spaxel_mags()
    expect = -2.5 * np.log10(10 ** (-0.4 * m[3, 0]) + 10 ** (-0.4 * m[3, 1]))
    np.testing.assert_allclose(s.loc[7, [f"mag_{b}" for b in BANDS]].to_numpy(float), expect, atol=2e-3)
    assert s.loc[7, "x_arcsec"] == pytest.approx(-0.5) and s.loc[7, "y_arcsec"] == pytest.approx(3.0)


def test_bad_inputs(tmp_path):
    write_califa(tmp_path / "cube.fits")
    with pytest.raises(MismatchError, match="log_age.*shape"):
        read_ifu_cube(tmp_path / "cube.fits", {"log_age": np.zeros((3, 3))}, re_arcsec=4.0, system="jpas",
                      bands=BANDS)
    with pytest.raises(InputError, match="re_arcsec"):
        read_ifu_cube(tmp_path / "cube.fits", None, re_arcsec=0.0, system="jpas", bands=BANDS)
    with pytest.raises(InputError, match="no such IFU cube"):
        read_ifu_cube(tmp_path / "missing.fits", None, re_arcsec=1.0)
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(tmp_path / "image.fits")
    with pytest.raises(InputError, match="not an IFU cube"):
        read_ifu_cube(tmp_path / "image.fits", None, re_arcsec=1.0)
