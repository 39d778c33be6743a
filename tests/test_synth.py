"""Synthetic AB photometry: zero point, analytic cases, units, coverage, masks, errors, redshift."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from photopop.errors import InputError
from photopop.photometry.filters import FilterCurve, FilterSystem, load_filter_system
from photopop.photometry.ab import (AB_ZERO_POINT_JY, C_AA_PER_S, FLAM_UNIT, ab_mag_to_jy, ab_mag_to_maggies,
                                    ab_mag_to_nmgy, flux_err_from_mag, jy_to_ab_mag, mag_err_from_flux, maggies_to_ab_mag,
                                    nmgy_to_ab_mag)
from photopop.photometry.synth import band_weights, synth_photometry

WAVE = np.arange(2900.0, 11200.0, 1.0)


def box(lo: float, hi: float, name: str) -> FilterCurve:
    inner = np.arange(lo, hi + 0.5, 1.0)
    return FilterCurve(name, np.concatenate([[lo - 1e-3], inner, [hi + 1e-3]]),
                       np.concatenate([[0.0], np.ones(inner.size), [0.0]]))


BOXES = FilterSystem("boxes", (box(4000, 5000, "A"), box(6000, 6500, "B")))


def flat_fnu_flam(wave_aa: np.ndarray, jy: float = 3631.0) -> u.Quantity:
    return (jy * u.Jy).to(FLAM_UNIT, u.spectral_density(wave_aa * u.AA))


# -- zero point and analytic cases --------------------------------------------------------------

@pytest.mark.parametrize("system", ["sdss", "jpas"])
def test_flat_fnu_zero_point(system):
    r_nu = synth_photometry(WAVE * u.AA, np.full(WAVE.size, 3631.0) * u.Jy, system)
    r_lam = synth_photometry(WAVE * u.AA, flat_fnu_flam(WAVE), system)
    n = len(load_filter_system(system))
    for r in (r_nu, r_lam):
        assert r.mag_ab.shape == (n,) and np.all(r.coverage != "none")
        np.testing.assert_allclose(r.mag_ab, 0.0, atol=1e-6)
        np.testing.assert_allclose(r.flux_maggies, 1.0, rtol=1e-6)
        np.testing.assert_allclose(r.flux_nmgy, 1e9, rtol=1e-6)
        np.testing.assert_allclose(r.flux_jy, 3631.0, rtol=1e-6)
    # also on a coarse, uneven grid: the quadrature makes the zero point exact there too
    coarse = np.geomspace(2900, 11200, 350)
    r = synth_photometry(coarse * u.AA, flat_fnu_flam(coarse), system)
    np.testing.assert_allclose(r.mag_ab, 0.0, atol=1e-6)


@pytest.mark.parametrize("beta", [-2.0, -1.0, 0.0, 1.5])
def test_power_law_through_top_hat_matches_analytic_integral(beta):
    # f_lambda = A lam^beta: <f_nu> = A int lam^(beta+1) dlam / (c int dlam / lam)
    amp = 1e-17 * 5000.0 ** -beta
    res = synth_photometry(WAVE, amp * WAVE**beta, BOXES, wave_unit="AA", flux_unit=FLAM_UNIT)
    for k, (a, b) in enumerate([(4000.0, 5000.0), (6000.0, 6500.0)]):
        num = (b ** (beta + 2) - a ** (beta + 2)) / (beta + 2) if beta != -2 else np.log(b / a)
        fnu_cgs = amp * num / (C_AA_PER_S * np.log(b / a))
        assert res.mag_ab[k] == pytest.approx(-2.5 * np.log10(fnu_cgs * 1e23 / 3631.0), abs=1e-6)


# -- units ---------------------------------------------------------------------------------------

def test_unit_handling():
    wave = WAVE * u.AA
    flam = 2e-17 * (WAVE / 5000.0) ** -1.3 * FLAM_UNIT
    ref = synth_photometry(wave, flam, "sdss").mag_ab
    same = [
        synth_photometry(wave.to(u.nm), flam.to(u.W / u.m**2 / u.nm), "sdss"),  # 1 W/m2/nm = 100 erg/s/cm2/A
        synth_photometry(wave, flam.to(u.Jy, u.spectral_density(wave)), "sdss"),
        synth_photometry(wave, flam.to(u.mJy, u.spectral_density(wave)), "sdss"),
        synth_photometry(wave, flam.to(u.photon / u.s / u.cm**2 / u.AA, u.spectral_density(wave)), "sdss"),
        synth_photometry(WAVE / 1e4, flam.value * 1e17, "sdss", wave_unit="micron",
                         flux_unit="1e-17 erg / (s cm2 Angstrom)"),
    ]
    for r in same:
        np.testing.assert_allclose(r.mag_ab, ref, atol=2e-6)
    assert flam.to_value(u.W / u.m**2 / u.nm)[0] == pytest.approx(flam.value[0] / 100)
    with pytest.raises(InputError, match="flux has no unit"):
        synth_photometry(wave, flam.value, "sdss")
    with pytest.raises(InputError, match="wavelength has no unit"):
        synth_photometry(WAVE, flam, "sdss")
    with pytest.raises(InputError, match="not a spectral flux density"):
        synth_photometry(wave, flam.value * u.erg / u.s, "sdss")
    with pytest.raises(InputError, match="not a length"):
        synth_photometry(WAVE * u.s, flam, "sdss")
    with pytest.raises(InputError, match="but flux_unit"):
        synth_photometry(wave, flam, "sdss", flux_unit="Jy")


# -- coverage ------------------------------------------------------------------------------------

def test_coverage_flags():
    a, b = 4000.0, 5000.0
    # cut the grid so that a known share of box A's AB weight int dlam/lam is missing
    cut_small = a * (b / a) ** 0.005  # 0.5% missing
    cut_big = a * (b / a) ** 0.3  # 30% missing
    fnu = lambda w: np.full(w.size, 1e-3)  # noqa: E731  (1 mJy)
    wave = np.arange(cut_small, 7000.0, 1.0)
    r = synth_photometry(wave * u.AA, fnu(wave) * u.Jy, BOXES)
    assert list(r.coverage) == ["partial", "full"]
    assert r.uncovered_fraction[0] == pytest.approx(0.005, rel=1e-3)
    np.testing.assert_allclose(r.flux_jy, 1e-3, rtol=1e-9)  # the mean over the covered part
    wave = np.arange(cut_big, 7000.0, 1.0)
    r = synth_photometry(wave * u.AA, fnu(wave) * u.Jy, BOXES)
    assert list(r.coverage) == ["none", "full"] and np.isnan(r.mag_ab[0]) and np.isnan(r.flux_nmgy[0])
    assert r.uncovered_fraction[0] == pytest.approx(0.3, rel=1e-3)
    r = synth_photometry(wave * u.AA, fnu(wave) * u.Jy, BOXES, coverage_tolerance=0.5)
    assert list(r.coverage) == ["partial", "full"] and np.isfinite(r.mag_ab[0])
    wave = np.arange(5500.0, 7000.0, 1.0)  # no overlap with box A at all
    r = synth_photometry(wave * u.AA, fnu(wave) * u.Jy, BOXES)
    assert list(r.coverage) == ["none", "full"] and r.uncovered_fraction[0] == 1.0


# -- many spectra, masks, errors -----------------------------------------------------------------

def test_many_spectra_at_once_equal_one_by_one(rng):
    flux = (1 + 0.3 * rng.standard_normal((7, WAVE.size))) * 1e-17
    many = synth_photometry(WAVE * u.AA, flux * FLAM_UNIT, "jpas", chunk_size=3)
    for i in (0, 4, 6):
        one = synth_photometry(WAVE * u.AA, flux[i] * FLAM_UNIT, "jpas")
        np.testing.assert_allclose(many.flux_nmgy[i], one.flux_nmgy, rtol=1e-12)
    assert many.mag_ab.shape == (7, 60) and many.coverage.shape == (7, 60)
    table = many.to_pandas()
    assert table.shape[0] == 7 and "mag_J0378" in table and "flux_nmgy_uJPAS" in table
    long = many.to_pandas("long")
    assert len(long) == 7 * 60 and {"spectrum", "band", "mag_ab", "coverage"} <= set(long.columns)


def test_weight_matrix_is_cached():
    w1 = band_weights(WAVE.copy(), "sdss")
    w2 = band_weights(WAVE.copy(), load_filter_system("sdss"))
    assert w1 is w2
    assert band_weights(WAVE * 1.1, "sdss") is not w1
    assert w1.matrix.shape == (5, WAVE.size)


def test_masked_pixels_are_interpolated_or_voided():
    flam = flat_fnu_flam(WAVE).value
    flux = np.vstack([flam, flam, flam * (WAVE / 5000.0) ** 2, flam])
    mask = np.zeros(flux.shape, dtype=bool)
    mask[0, (WAVE > 4400) & (WAVE < 4403)] = True  # 0.3% of box A: interpolated
    mask[1, (WAVE > 4400) & (WAVE < 4600)] = True  # ~20% of box A (> 10%): NaN
    mask[2, (WAVE > 4400) & (WAVE < 4403)] = True
    mask[3, WAVE < 4003] = True  # masked up to the band's blue edge: nothing to interpolate from -> uncovered
    flux[0, mask[0]] = np.nan  # masked pixels may hold anything
    r = synth_photometry(WAVE * u.AA, flux * FLAM_UNIT, BOXES, mask=mask)
    assert r.coverage.tolist() == [["interpolated", "full"], ["none", "full"], ["interpolated", "full"],
                                   ["partial", "full"]]
    # linear interpolation of f_lambda ~ lambda^-2 over 3 A: error ~ f'' h^2 / 8 ~ 4e-7 of 0.3% of the band
    assert r.mag_ab[0, 0] == pytest.approx(0.0, abs=1e-8)
    assert r.mag_ab[3, 0] == pytest.approx(0.0, abs=1e-12)  # renormalised over the covered part: exact
    assert np.isnan(r.mag_ab[1, 0]) and r.mag_ab[1, 1] == pytest.approx(0.0, abs=1e-9)
    unmasked = synth_photometry(WAVE * u.AA, flux[2] * FLAM_UNIT, BOXES)
    assert abs(r.flux_nmgy[2, 0] / unmasked.flux_nmgy[0] - 1) < 1e-8
    # two 1-A pixels (each carries 1 A of the piecewise-linear spectrum) of int dlam/lam = ln(5/4)
    assert r.interpolated_fraction[0, 0] == pytest.approx(2.0 / 4401.5 / np.log(1.25), rel=1e-3)
    assert r.uncovered_fraction[0, 0] == 0.0 and r.interpolated_fraction[3, 0] == 0.0
    assert r.uncovered_fraction[3, 0] == pytest.approx(np.log(4002.5 / 4000) / np.log(1.25), rel=2e-3)
    loose = synth_photometry(WAVE * u.AA, flux * FLAM_UNIT, BOXES, mask=mask, max_interpolated=0.25)
    # chord error of lambda^-2 over the 200-A run: mean (2/3) * 6 h^2 / (8 lambda^2) ~ 1e-3, times its 20% share
    chord = (2 / 3) * 6 * 200.0**2 / (8 * 4500.0**2) * 0.2 * 2.5 / np.log(10)
    assert loose.coverage[1, 0] == "interpolated" and abs(loose.mag_ab[1, 0]) < 1.2 * chord


def test_errors_match_monte_carlo(rng):
    wave = np.arange(3500.0, 7500.0, 2.0)
    truth = 1e-17 * (1 + 0.5 * np.sin(wave / 300.0))
    sigma = 0.4e-17 * (0.5 + rng.random(wave.size))
    system = load_filter_system("jpas").select(["J0400", "J0550", "gSDSS", "J0690"])
    draws = truth + sigma * rng.standard_normal((4000, wave.size))
    mc = synth_photometry(wave * u.AA, draws * FLAM_UNIT, system)
    pred = synth_photometry(wave * u.AA, truth * FLAM_UNIT, system, flux_err=sigma * FLAM_UNIT)
    pred_ivar = synth_photometry(wave * u.AA, truth * FLAM_UNIT, system, ivar=1 / sigma**2)
    np.testing.assert_allclose(pred_ivar.flux_err_nmgy, pred.flux_err_nmgy, rtol=1e-12)
    pred_jy = synth_photometry(wave * u.AA, truth * FLAM_UNIT, system,  # errors in another (f_nu) unit
                               flux_err=(sigma * FLAM_UNIT).to(u.mJy, u.spectral_density(wave * u.AA)))
    np.testing.assert_allclose(pred_jy.flux_err_nmgy, pred.flux_err_nmgy, rtol=1e-10)
    # std of 4000 draws: 1.1% sampling error; allow 5%
    np.testing.assert_allclose(mc.flux_nmgy.std(axis=0), pred.flux_err_nmgy, rtol=0.05)
    np.testing.assert_allclose(mc.mag_ab.std(axis=0), pred.mag_err, rtol=0.05)
    np.testing.assert_allclose(pred.mag_err, mag_err_from_flux(pred.flux_nmgy, pred.flux_err_nmgy))
    # ivar == 0 masks the pixel; masked errors propagate with renormalised weights
    ivar = 1 / sigma**2
    ivar[(wave > 3990) & (wave < 3994)] = 0.0  # one 2-A pixel near the peak of J0400: ~1.4% of the band
    strict = synth_photometry(wave * u.AA, truth * FLAM_UNIT, system, ivar=ivar, max_interpolated=0.01)
    assert strict.coverage[0] == "none" and 0.01 < strict.interpolated_fraction[0] < 0.02
    masked = synth_photometry(wave * u.AA, truth * FLAM_UNIT, system, ivar=ivar)
    assert masked.bands == ["J0400", "gSDSS", "J0550", "J0690"]  # ordered by pivot
    assert masked.coverage.tolist() == ["interpolated", "interpolated", "full", "full"]  # gSDSS covers 3992 A too
    assert np.isfinite(masked.mag_err).all() and masked.mag_err[0] > 0


def test_redshift_convention():
    # flat f_nu observed at z: f_nu,obs = (1 + z) f_nu -> m = -2.5 log10(1 + z)
    z = 0.35
    for flux in (np.full(WAVE.size, 3631.0) * u.Jy, flat_fnu_flam(WAVE)):
        r = synth_photometry(WAVE * u.AA, flux, "sdss", redshift=z)
        ok = r.coverage != "none"
        assert ok.sum() >= 3 and r.redshift == z
        np.testing.assert_allclose(r.mag_ab[ok], -2.5 * np.log10(1 + z), atol=1e-6)
    # same as shifting by hand: lam (1 + z), f_lambda / (1 + z)
    flam = 1e-17 * (1 + 0.3 * np.cos(WAVE / 200.0))
    a = synth_photometry(WAVE * u.AA, flam * FLAM_UNIT, "jpas", redshift=0.1)
    b = synth_photometry(WAVE * 1.1 * u.AA, flam / 1.1 * FLAM_UNIT, "jpas")
    np.testing.assert_allclose(a.mag_ab, b.mag_ab, equal_nan=True, atol=1e-12)
    with pytest.raises(InputError, match="redshift"):
        synth_photometry(WAVE * u.AA, flam * FLAM_UNIT, "jpas", redshift=-1.5)


def test_bad_inputs():
    flam = flat_fnu_flam(WAVE)
    with pytest.raises(InputError, match="shape"):
        synth_photometry(WAVE * u.AA, flam[:-1], "sdss")
    with pytest.raises(InputError, match="strictly increasing"):
        synth_photometry(WAVE[::-1] * u.AA, flam, "sdss")
    with pytest.raises(InputError, match="not both"):
        synth_photometry(WAVE * u.AA, flam, "sdss", flux_err=flam * 0.1, ivar=np.ones(WAVE.size))
    with pytest.raises(InputError, match="negative"):
        synth_photometry(WAVE * u.AA, flam, "sdss", ivar=-np.ones(WAVE.size))
    with pytest.raises(InputError, match="negative"):
        synth_photometry(WAVE * u.AA, flam, "sdss", flux_err=-0.1 * flam)
    with pytest.raises(InputError, match="coverage_tolerance"):
        synth_photometry(WAVE * u.AA, flam, "sdss", coverage_tolerance=1.5)


# -- formulas ------------------------------------------------------------------------------------

def test_magnitude_helpers():
    assert ab_mag_to_nmgy(22.5) == pytest.approx(1.0)
    assert nmgy_to_ab_mag(1.0) == pytest.approx(22.5)
    assert ab_mag_to_jy(0.0) == pytest.approx(3631.0)
    assert jy_to_ab_mag(3631e-9) == pytest.approx(22.5)
    m = np.array([15.0, 20.3, 24.1])
    np.testing.assert_allclose(maggies_to_ab_mag(ab_mag_to_maggies(m)), m)
    assert np.isnan(nmgy_to_ab_mag(-1.0)) and np.isnan(maggies_to_ab_mag(0.0))
    assert mag_err_from_flux(100.0, 1.0) == pytest.approx(2.5 / np.log(10) / 100)
    assert flux_err_from_mag(100.0, mag_err_from_flux(100.0, 3.0)) == pytest.approx(3.0)
    assert np.isnan(mag_err_from_flux(-1.0, 1.0))
    # a negative band flux keeps its flux but has no magnitude
    r = synth_photometry(WAVE * u.AA, -flat_fnu_flam(WAVE), BOXES)
    assert np.all(np.isnan(r.mag_ab)) and np.all(r.flux_maggies < 0)
    assert AB_ZERO_POINT_JY == 3631.0
