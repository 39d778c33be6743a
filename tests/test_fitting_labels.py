"""pPXF label fits against known answers: spectra composed by photopop from SSPs of the template grid."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from photopop.errors import InputError
from photopop.fitting import FitSpectrum, LabelFitConfig, fit_labels, load_ssp
from photopop.fitting.ppxf_fit import weights_to_labels
from photopop.fitting.templates import build_templates, subset_grid
from photopop.populations.compose import compose
from photopop.populations.labels import population_labels
from photopop.populations.ssp import SSPGrid

C_KMS = 299792.458
#: small, fast fits: 4 metallicities, ages 0.25 dex apart, 4000-5800 A
FAST = LabelFitConfig(fit_window_aa=(4000.0, 5800.0), age_step_dex=0.25, zh_range=(-0.8, 0.5), mdegree=4,
                      min_good_pixels=100)
SIGMA_KMS = 150.0
VELSCALE = 69.0


@pytest.fixture(scope="module")
def templates_grid() -> SSPGrid:
    return load_ssp("bc03", FAST)


def full_grid() -> SSPGrid:
    return SSPGrid.bc03(wave_range=(3500.0, 7000.0))


def mass_weights(full: SSPGrid, log_ages, masses) -> np.ndarray:
    """(1, nAge) mass per age of the full grid at the given log ages (grid ages of the template subset)."""
    w = np.zeros((1, full.ages_yr.size))
    for la, m in zip(log_ages, masses):
        j = int(np.argmin(np.abs(full.log_ages - la)))
        assert abs(full.log_ages[j] - la) < 1e-9
        w[0, j] += m
    return w


def observe(wave_rest, flux_rest, *, snr, seed, z=0.01, sigma_kms=SIGMA_KMS, fwhm_aa=2.51) -> FitSpectrum:
    """A log-sampled 'observed' spectrum: LOSVD sigma, redshift z, Gaussian noise of S/N `snr` per pixel."""
    from ppxf import ppxf_util

    sel = (wave_rest > 3600) & (wave_rest < 6900)
    f, ln_lam, _ = ppxf_util.log_rebin(wave_rest[sel], flux_rest[sel], velscale=VELSCALE)
    f = gaussian_filter1d(f, sigma_kms / VELSCALE)
    sig = np.median(f) / snr
    obs = f + np.random.default_rng(seed).normal(0.0, sig, f.size)
    n = f.size
    lam = np.exp(ln_lam)
    win = (lam >= FAST.fit_window_aa[0]) & (lam <= FAST.fit_window_aa[1])
    return FitSpectrum(f"s{seed}", lam * (1 + z), obs, np.full(n, sig**-2), np.zeros(n, bool),
                       np.full(n, fwhm_aa * (1 + z)), z, extra={"snr_window": float(np.median(f[win]) / sig)})


@pytest.mark.parametrize("ia, iz", [(12, 2), (19, 3)])
def test_single_ssp_comes_back(templates_grid, ia, iz):
    g = templates_grid
    full = full_grid()
    la, zh = g.log_ages[ia], g.zh[iz]
    c = compose(full, mass_weights(full, [la], [1.0]), zh=zh, a_v=0.3, dust="calzetti", dtype="float64")
    spectra = [observe(full.wavelength_aa, c.flux[0], snr=100, seed=s) for s in range(2)]
    df = fit_labels(spectra, g, FAST)
    assert (df["status"] == "ok").all()
    # templates are 0.25 dex apart in age and >= 0.3 dex in [Z/H]: 0.05 dex means < 20 % (age) and < 17 %
    # ([Z/H]) of the light went to a neighbouring SSP
    np.testing.assert_allclose(df["log_age"], la, atol=0.05)
    np.testing.assert_allclose(df["zh"], zh, atol=0.05)
    # mass weights up-weight any old light (an old star has ~10x the M/L of a 0.2 Gyr one): never younger
    assert np.all(df["log_age_mw"] >= df["log_age"] - 0.05)
    if la >= 9.0:  # old SSPs: neighbours have similar M/L, so mass and light weights agree
        np.testing.assert_allclose(df["log_age_mw"], la, atol=0.1)
    # sigma: within 4 formal errors of the input, and the formal error is small
    assert np.all(np.abs(df["sigma_kms"] - SIGMA_KMS) < 4 * df["sigma_err_kms"] + 1.0)
    assert np.all(df["chi2_red"].between(0.8, 1.25))  # chi2/dof of ~1500 pixels: 1 +- 5 sqrt(2/1500)
    # S/N = median flux / error over the fitted pixels: the noise-free value over the window, up to the
    # emission-line masks (Balmer absorption troughs are left out, which raises the median by a few %)
    np.testing.assert_allclose(df["snr"], [sp.extra["snr_window"] for sp in spectra], rtol=0.1)
    assert not df["chi2_flag"].any()


def test_two_ssp_mix_known_light_fractions(templates_grid):
    g = templates_grid
    full = full_grid()
    la1, la2 = g.log_ages[13], g.log_ages[19]
    iz = 2
    light = full.mean_flux()[np.argmin(np.abs(full.zh - g.zh[iz]))]
    l1, l2 = (light[np.argmin(np.abs(full.log_ages - a))] for a in (la1, la2))
    f1 = 0.4  # light fraction of the young SSP in the label window
    masses = [f1 / l1, (1 - f1) / l2]
    c = compose(full, mass_weights(full, [la1, la2], masses), zh=g.zh[iz], dtype="float64")
    expect = f1 * la1 + (1 - f1) * la2
    assert c.labels.log_age[0] == pytest.approx(expect, abs=1e-6)  # photopop's own definition
    spectra = [observe(full.wavelength_aa, c.flux[0], snr=150, seed=s) for s in range(3)]
    df = fit_labels(spectra, g, FAST)
    assert (df["status"] == "ok").all()
    # a 10 % error on the light fraction moves the LW age by 0.1 * (la2 - la1) ~ 0.15 dex; allow 0.08
    np.testing.assert_allclose(df["log_age"], expect, atol=0.08)
    np.testing.assert_allclose(df["log_age_mw"], c.labels.log_age_mw[0], atol=0.08)
    assert abs(df["log_age"].mean() - expect) < abs(df["log_age"].mean() - la2)
    # regularised (pPXF's recipe: noise rescaled to chi2_red = 1 first): the smoothness prior spreads two bursts
    # over the ages between them, so the LW age stays between them (it moved 0.14 dex younger here; see
    # docs/real-data.md); the reported chi2_red is against the input errors, a little above the unregularised one
    from dataclasses import replace

    reg = fit_labels(spectra[:1], g, replace(FAST, regul=100.0))
    assert reg["status"].iloc[0] == "ok"
    assert la1 < reg["log_age"].iloc[0] < la2
    assert df["chi2_red"].iloc[0] <= reg["chi2_red"].iloc[0] < 1.3


def test_weights_to_labels_matches_population_labels(templates_grid):
    """pPXF light weights -> labels is photopop's definition: the same numbers as population_labels on the
    implied masses."""
    g = subset_grid(templates_grid, zh_range=(-0.5, 0.5))
    tpl = build_templates(g, 60.0, (4200.0, 5800.0), 2.51)
    rng = np.random.default_rng(3)
    w = rng.random(tpl.log_age.size) * (rng.random(tpl.log_age.size) < 0.3)
    got = weights_to_labels(w, tpl)
    mass = (w / tpl.light).reshape(1, *tpl.reg_dim)
    ref = population_labels(g, mass, light_ref=g.mean_flux(), young=np.zeros(g.ages_yr.size, bool),
                            sfr_10=np.zeros(1), sfr_100=np.zeros(1), a_v=np.zeros(1))
    assert got["log_age"] == pytest.approx(ref.log_age[0], abs=1e-12)
    assert got["zh"] == pytest.approx(ref.zh[0], abs=1e-12)
    assert got["log_age_mw"] == pytest.approx(ref.log_age_mw[0], abs=1e-12)
    assert got["zh_mw"] == pytest.approx(ref.zh_mw[0], abs=1e-12)
    # the templates are normalised to unit mean in the label window (before broadening, so ~1 after)
    win = (tpl.lam_aa > 5450) & (tpl.lam_aa < 5550)
    np.testing.assert_allclose(tpl.templates[win].mean(axis=0), 1.0, rtol=0.02)


def test_status_says_why_not(templates_grid):
    full = full_grid()
    c = compose(full, mass_weights(full, [templates_grid.log_ages[17]], [1.0]), zh=0.0, dtype="float64")
    good = observe(full.wavelength_aa, c.flux[0], snr=50, seed=0)
    n = good.flux.size
    blue = FitSpectrum("blue", good.wavelength_aa[:300], good.flux[:300], good.ivar[:300], good.bad[:300],
                       good.fwhm_aa[:300], 0.01)
    masked = FitSpectrum("masked", good.wavelength_aa, good.flux, good.ivar, np.arange(n) % 25 != 0,
                         good.fwhm_aa, 0.01)
    noz = FitSpectrum("noz", good.wavelength_aa, good.flux, good.ivar, good.bad, good.fwhm_aa, None)
    df = fit_labels([good, blue, masked, noz], templates_grid, FAST).set_index("id")
    assert df.loc["s0", "status"] == "ok"
    assert df.loc["blue", "status"].startswith("does not cover the fit window")
    assert df.loc["masked", "status"].startswith("too few good pixels")
    assert df.loc["noz", "status"].startswith("no redshift")
    bad = df.drop(index="s0")
    assert bad[["log_age", "zh", "sigma_kms", "chi2_red"]].isna().all().all() and not bad["chi2_flag"].any()


def test_bad_config_and_grid():
    with pytest.raises(InputError, match="fit_window_aa"):
        LabelFitConfig(fit_window_aa=(5000.0, 4000.0))
    with pytest.raises(InputError, match="mass"):
        LabelFitConfig(mass="light")
    with pytest.raises(InputError, match="not 'bc03'"):
        load_ssp("/no/such/grid", FAST)
    g = SSPGrid([1e9, 1e10], [0.0], np.linspace(3000, 8000, 500), np.ones((1, 2, 500)), name="mine")
    with pytest.raises(InputError, match="resolution is unknown"):
        build_templates(g, 60.0, (4000.0, 6000.0), 3.0)


def test_user_grid_file_gives_the_same_fit(templates_grid, tmp_path):
    """A user grid (SSPGrid.save -> --ssp FILE) is fitted exactly like the grid it was saved from; its
    resolution must be given, since a user file does not say it."""
    from dataclasses import replace

    path = tmp_path / "mygrid.npz"
    templates_grid.save(path)
    full = full_grid()
    c = compose(full, mass_weights(full, [templates_grid.log_ages[18]], [1.0]), zh=0.0, dtype="float64")
    spec = [observe(full.wavelength_aa, c.flux[0], snr=80, seed=5)]
    with pytest.raises(InputError, match="resolution is unknown"):
        fit_labels(spec, path, FAST)
    mine = fit_labels(spec, path, replace(FAST, template_fwhm_aa=2.51))
    ref = fit_labels(spec, templates_grid, FAST)
    cols = ["log_age", "zh", "log_age_mw", "zh_mw", "sigma_kms", "chi2_red"]
    np.testing.assert_allclose(mine[cols].to_numpy(float), ref[cols].to_numpy(float), rtol=1e-6)
