"""Mock imaging survey: label model formulas, photometric calibration, determinism, flux conservation."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest

from photopop.errors import InputError
from photopop.simulate.colour_table import ab_magnitudes
from photopop.simulate.images import (ImageSurveyConfig, _bilinear_weights, draw_catalog,
                                      electrons_per_nanomaggy, half_light_radius, petrosian_fraction,
                                      resample_bilinear, simulate_image_survey)
from photopop.simulate.fibre import fibre_mean_radius
from photopop.simulate.mzr import LabelConfig, fmr_oh, mzr_slope, mzr_tremonti04, oh_true_model, random_oh_sigma

TINY = dict(image_size=64, n_galaxies=8, chunk_size=3, neighbour_rate=0.5, star_rate=0.25, trail_rate=0.25,
            bad_column_rate=0.25)


# ------------------------------------------------------------------------------------------- label model
def test_mzr_polynomial_values():
    # Wu & Boada eq. 2 at log M = 10: -1.492 + 18.47 - 8.026
    assert mzr_tremonti04(10.0) == pytest.approx(8.952, abs=1e-12)
    assert mzr_tremonti04(9.0) == pytest.approx(-1.492 + 16.623 - 6.50106, abs=1e-12)
    np.testing.assert_allclose(mzr_tremonti04(np.array([10.0, 11.0])), [8.952, -1.492 + 20.317 - 9.71146])
    # slope is the derivative; the turnover is at 11.506
    assert mzr_slope(10.0) == pytest.approx((mzr_tremonti04(10.0 + 1e-6) - mzr_tremonti04(10.0 - 1e-6)) / 2e-6,
                                            rel=1e-6)
    assert mzr_slope(1.847 / (2 * 0.08026)) == pytest.approx(0.0, abs=1e-12)


def test_fmr_lowers_metallicity_at_high_sfr():
    cfg = LabelConfig()
    logm = np.full(3, 10.0)
    oh = fmr_oh(logm, np.array([-0.5, 0.0, 0.5]), cfg)
    assert oh[1] == pytest.approx(8.952)  # main-sequence galaxies follow eq. 2
    assert oh[0] > oh[1] > oh[2]
    # the MZR evaluated at mu = log M - 0.32 dSFR (Mannucci et al. 2010): mu = 9.84 and 10.16
    assert oh[2] == pytest.approx(-1.492 + 1.847 * 9.84 - 0.08026 * 9.84**2, abs=1e-12)
    assert oh[0] == pytest.approx(-1.492 + 1.847 * 10.16 - 0.08026 * 10.16**2, abs=1e-12)
    # large offsets are clipped at fmr_dsfr_clip (1 dex)
    assert fmr_oh(np.array([10.0]), np.array([3.0]), cfg)[0] == pytest.approx(mzr_tremonti04(10.0 - 0.32))


def test_total_intrinsic_scatter_is_configured_value():
    cfg = LabelConfig(oh_scatter=0.10)
    rng = np.random.default_rng(1)
    n = 40000
    logm = np.full(n, 10.0)
    dsfr = cfg.ms_scatter * rng.standard_normal(n)
    size_sigma = np.full(n, 0.17)
    size_res = size_sigma * rng.standard_normal(n)
    oh = oh_true_model(logm, dsfr, size_res, size_sigma, rng, cfg)
    assert np.std(oh - mzr_tremonti04(10.0)) == pytest.approx(0.10, abs=0.003)
    assert random_oh_sigma(np.array([10.0]), np.array([0.17]), cfg)[0] < 0.10


def test_fibre_mean_radius_limits():
    from scipy.special import gammainc

    # thin face-on exponential disc, no seeing: <R> inside radius a = 2 h P(3, a/h) / P(2, a/h)
    re, a = 2.0, 1.5
    h = re / 1.678
    expect = 2 * h * gammainc(3, a / h) / gammainc(2, a / h) / re
    got = fibre_mean_radius(np.array([re]), np.array([0.0]), a, thickness=0.0, n_samples=20000)
    assert got[0] == pytest.approx(expect, rel=0.02)
    # a galaxy much larger than the fibre: surface brightness ~uniform over the aperture, <R> -> 2a/3
    got = fibre_mean_radius(np.array([25.0]), np.array([0.0]), a, thickness=0.0, n_samples=50000)
    assert got[0] == pytest.approx(2 * a / 3 / 25.0, rel=0.1)
    # unresolved galaxy: the fibre sees the whole disc, <R> = 2 h = 2 R_e / 1.678, for any inclination
    got = fibre_mean_radius(np.full(2, 0.05), np.array([0.0, 90.0]), a)
    np.testing.assert_allclose(got, 2 / 1.678, rtol=0.03)
    # edge-on discs: the line of sight crosses the outer disc -> larger radii, monotonic in inclination
    got = fibre_mean_radius(np.full(5, 3.0), np.array([0.0, 30.0, 60.0, 75.0, 90.0]), a, seeing_fwhm_arcsec=1.4)
    assert np.all(np.diff(got) > 0) and got[-1] - got[0] > 0.3
    with pytest.raises(InputError):
        fibre_mean_radius(np.array([1.0]), np.array([95.0]))


def test_petrosian_and_half_light():
    np.testing.assert_allclose(petrosian_fraction(np.array([1.0, 4.0])), [0.99, 0.80])
    re = np.array([[2.0, 2.0], [1.0, 1.0]])
    hlr = half_light_radius(np.array([[1.0, 3.0], [1.0, 0.0]]), re, np.array([[1.0, 4.0], [4.0, 1.0]]))
    np.testing.assert_allclose(hlr, [2.0, 1.0], rtol=2e-3)
    # exponential + compact bulge: between the two
    hlr = half_light_radius(np.array([[1.0, 1.0]]), np.array([[0.5, 3.0]]), np.array([[4.0, 1.0]]))
    assert 0.5 < hlr[0] < 3.0


def test_ab_magnitudes_flat_fnu_and_electrons():
    wave = np.linspace(2500.0, 12000.0, 20000)
    fnu = 3631e-23 * 10 ** (-0.4 * 20.0)  # a flat 20 mag AB source
    flam = fnu * 2.99792458e18 / wave**2
    np.testing.assert_allclose(ab_magnitudes(wave, flam[None, :])[0], 20.0, atol=1e-6)
    e = electrons_per_nanomaggy(ImageSurveyConfig())
    # SDSS frames: gain / nMgyPerCount ~ 1000 (g), 940 (r), 730 (i) e- per nanomaggy
    assert 900 < e[1] < 1200 and 850 < e[2] < 1050 and 600 < e[3] < 800


def test_bilinear_resampling_conserves_flux():
    n_in, s_in, n_out, s_out = 98, 0.396, 128, 0.296
    y, x = (np.mgrid[0:n_in, 0:n_in] - (n_in - 1) / 2) * s_in
    img = np.exp(-0.5 * (x**2 + y**2) / 2.0**2)  # smooth blob, sigma 2"
    i0, t = _bilinear_weights(n_out, s_out, n_in, s_in)
    out = resample_bilinear(img, i0, t) * (s_out / s_in) ** 2
    assert out.sum() == pytest.approx(img.sum(), rel=2e-3)
    # exact at coinciding centres (the stamp centre)
    assert out[63:65, 63:65].mean() * (s_in / s_out) ** 2 == pytest.approx(img[48:50, 48:50].mean(), rel=2e-3)


def test_config_validation():
    with pytest.raises(InputError, match="psf_kind"):
        ImageSurveyConfig(psf_kind="gauss").validate()
    with pytest.raises(InputError, match="redshift_range"):
        ImageSurveyConfig(redshift_range=(0.0, 0.3)).validate()
    with pytest.raises(InputError, match="sky_mag"):
        ImageSurveyConfig(sky_mag_arcsec2=(21.0, 20.0)).validate()


# ------------------------------------------------------------------------------------------- catalogue
def test_catalogue_physics():
    cfg = ImageSurveyConfig(n_galaxies=3000, seed=11)
    cat, _ = draw_catalog(cfg, np.random.default_rng(11))
    # the statistical bounds below hold over seeds 11-18: |MS residual mean| <= 76% of 0.02, corr <= -0.43,
    # edge-on minus face-on fibre offset <= -0.025, quenched g-r excess >= 0.41, pull std 0.996-1.011
    assert len(cat) == 3000 and cat["id"].is_unique
    assert cat["r_petro_true"].max() < 17.77
    assert cat["redshift"].between(0.02, 0.2).all()
    needed = ["oh", "oh_true", "log_mstar", "sfr", "log_sfr", "r_petro", "r50_arcsec", "redshift",
              "inclination_deg", "bulge_fraction"] + [f"{p}_{b}" for p in ("mag", "magerr") for b in "ugriz"]
    assert not cat[needed].isna().any().any()
    np.testing.assert_allclose(np.log10(cat["sfr"]), cat["log_sfr"])
    # MZR holds on average for main-sequence galaxies
    ms = cat["delta_log_sfr"].abs() < 0.1
    resid = cat["oh_true"][ms] - mzr_tremonti04(np.clip(cat["log_mstar"][ms], 8.5, 11.5))
    assert abs(resid.mean()) < 0.02
    # fibre effect: edge-on galaxies have lower observed metallicity
    d = cat["oh_fibre_true"] - cat["oh_true"]
    assert np.corrcoef(d, cat["inclination_deg"])[0, 1] < -0.1
    assert d[cat["inclination_deg"] > 75].mean() < d[cat["inclination_deg"] < 30].mean() - 0.02
    # quenched galaxies are redder
    gr = cat["magtrue_g"] - cat["magtrue_r"]
    assert gr[cat["is_quenched"]].mean() > gr[~cat["is_quenched"]].mean() + 0.1
    # catalogue errors describe the scatter of observed around true magnitudes
    pull = (cat["mag_r"] - cat["magtrue_r"]) / cat["magerr_r"]
    assert 0.85 < pull.std() < 1.15


# ------------------------------------------------------------------------------------------- rendering
def test_tiny_survey_deterministic_across_workers(tmp_path):
    cfg = ImageSurveyConfig(seed=7, **TINY)
    a = simulate_image_survey(cfg, tmp_path / "a", n_workers=1)
    b = simulate_image_survey(dataclasses.replace(cfg, chunk_size=5), tmp_path / "b", n_workers=2)
    assert len(a) == 8 and a.image_shape == (64, 64)
    ia, ib = a.images(np.arange(8)), b.images(np.arange(8))
    assert ia.dtype == np.float32 and np.all(np.isfinite(ia))
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(a.rgb(np.arange(8)), b.rgb(np.arange(8)))
    assert a.catalog.equals(b.catalog)
    c = simulate_image_survey(dataclasses.replace(cfg, seed=8), tmp_path / "c", n_workers=1)
    assert not np.allclose(c.images([0]), ia[[0]])
    assert (tmp_path / "a" / "config.toml").exists()
    assert a.meta["kind"] == "mock-images" and a.meta["seed"] == 7


def test_flux_calibration(tmp_path):
    base = dict(image_size=128, n_galaxies=8, seed=3, neighbour_rate=0.0, star_rate=0.0, trail_rate=0.0,
                bad_column_rate=0.0)
    clean = simulate_image_survey(ImageSurveyConfig(add_noise=False, **base), tmp_path / "clean", n_workers=1)
    noisy = simulate_image_survey(ImageSurveyConfig(**base), tmp_path / "noisy", n_workers=1)
    cat = clean.catalog
    small = np.flatnonzero(cat["r50_arcsec"] < 4.0)  # fully inside the 38" stamp
    assert small.size >= 4
    for b, band in enumerate("gri"):
        f_cat = 10 ** (-0.4 * (cat[f"magtrue_{band}"].to_numpy()[small] - 22.5))
        f_img = clean.images(small)[:, b].sum(axis=(1, 2))
        np.testing.assert_allclose(f_img, f_cat, rtol=0.03)
        # with noise: the difference is consistent with the pixel noise (correlated: use the sum's true spread)
        diff = noisy.images(small)[:, b].sum(axis=(1, 2)) - f_img
        sky_sd = noisy.images(small)[:, b, :16, :16].std()  # empty corner
        assert np.all(np.abs(diff) < 6 * sky_sd * 128 * 1.5 + 0.02 * f_cat)
    # images and rgb have the same orientation: pixel (y, x) of both is the same sky pixel
    rgb = clean.rgb(np.arange(8)).astype(float)
    img = clean.images(np.arange(8))
    same = [np.corrcoef(img[k, 2].ravel(), rgb[k, :, :, 0].ravel())[0, 1] for k in range(8)]
    flipped = [np.corrcoef(img[k, 2, ::-1].ravel(), rgb[k, :, :, 0].ravel())[0, 1] for k in range(8)]
    assert np.mean(same) > 0.8 and np.mean(same) > np.mean(flipped) + 0.05
    # noise-free and noisy images share the same galaxy (same seeds)
    assert np.corrcoef(clean.images([0]).ravel(), noisy.images([0]).ravel())[0, 1] > 0.9


def test_coarse_pixels_drawn_directly(tmp_path):
    # output pixels coarser than the native 0.396": drawn on the output grid, flux still conserved
    cfg = ImageSurveyConfig(image_size=32, pixel_scale_arcsec=0.792, n_galaxies=4, seed=2, add_noise=False,
                            neighbour_rate=0.0, star_rate=0.0, trail_rate=0.0, bad_column_rate=0.0)
    s = simulate_image_survey(cfg, tmp_path / "coarse", n_workers=1)
    cat = s.catalog
    small = np.flatnonzero(cat["r50_arcsec"] < 4.0)
    f_cat = 10 ** (-0.4 * (cat["magtrue_r"].to_numpy()[small] - 22.5))
    np.testing.assert_allclose(s.images(small)[:, 1].sum(axis=(1, 2)), f_cat, rtol=0.03)


def test_simulate_cli_registration(tmp_path):
    from photopop.cli.images import register_simulate_images

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    sim = sub.add_parser("simulate").add_subparsers()
    register_simulate_images(sim)
    args = parser.parse_args(["simulate", "images", "--galaxies", "2", "--seed", "1", "--size", "32",
                              "--out", str(tmp_path / "m"), "--workers", "1", "--no-progress"])
    assert args.func(args) == 0
    from photopop.datasets.image_set import ImageSet

    s = ImageSet.open(tmp_path / "m")
    assert len(s) == 2 and s.image_shape == (32, 32)
