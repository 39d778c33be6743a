"""Mock IFU survey: reproducible, physically ordered, with the between-galaxy effect; geometry formulas."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from photopop.datasets.sed_table import read_sed_table
from photopop.errors import InputError
from photopop.simulate.geometry import (
    GalaxySampleConfig,
    bulge_disc_scale,
    draw_galaxies,
    sersic_bn,
    sersic_enclosed_fraction,
    sersic_surface_density,
    shen03_re_kpc,
    spaxel_grid,
)
from photopop.evaluation.galaxy_gap import galaxy_gap
from photopop.simulate.ifu import (
    IFUSurveyConfig,
    alpha_modulation,
    band_depths,
    galaxy_spectra,
    plan_survey,
    select_bands,
    simulate_ifu_survey,
)


def tiny_config(seed: int = 1, n_galaxies: int = 6, spaxels: float = 16.0, **noise) -> IFUSurveyConfig:
    cfg = IFUSurveyConfig(seed=seed)
    cfg.sample = replace(cfg.sample, n_galaxies=n_galaxies, spaxels_per_galaxy=spaxels, spaxels_scatter_dex=0.0)
    cfg.noise = replace(cfg.noise, **noise)
    return cfg


@pytest.fixture(scope="module")
def tiny():
    return simulate_ifu_survey(tiny_config(n_galaxies=4, spaxels=12))


# -- geometry formulas against known answers ---------------------------------------------------------
def test_sersic_formulas():
    # b_1 = 1.678347, b_4 = 7.669249 (Ciotti & Bertin 1999)
    np.testing.assert_allclose(sersic_bn([1.0, 4.0]), [1.678347, 7.669249], rtol=1e-5)
    np.testing.assert_allclose(sersic_enclosed_fraction(1.0, [1.0, 4.0]), 0.5, rtol=1e-12)
    for n in (1.0, 4.0):
        total = integrate.quad(lambda r: 2 * np.pi * r * sersic_surface_density(r, n, 2.0, 5.0), 0, np.inf)[0]
        half = integrate.quad(lambda r: 2 * np.pi * r * sersic_surface_density(r, n, 2.0, 5.0), 0, 2.0)[0]
        assert total == pytest.approx(5.0, rel=1e-6) and half == pytest.approx(2.5, rel=1e-6)
    # bulge + disc half-mass radius: pure disc -> 1 (disc R_e), pure bulge -> rho, mixture in between
    x = bulge_disc_scale(np.array([0.0, 0.5, 1.0]), 4.0, 1.0, 0.3)
    np.testing.assert_allclose(x[[0, 2]], [1.0, 0.3], rtol=1e-9)
    f = 0.5 * sersic_enclosed_fraction(x[1] / 0.3, 4.0) + 0.5 * sersic_enclosed_fraction(x[1], 1.0)
    assert f == pytest.approx(0.5, abs=1e-9)


def test_shen03_sizes():
    re, sig = shen03_re_kpc(np.array([10.0, 11.0]), np.array([False, True]))
    late = 0.10 * 1e10**0.14 * (1 + 1e10 / 3.98e10) ** 0.25
    early = 2.88e-6 * 1e11**0.56
    np.testing.assert_allclose(re, [late, early], rtol=1e-12)
    assert np.all((sig > 0.34) & (sig < 0.47))


def test_sample_and_grid():
    cfg = GalaxySampleConfig(n_galaxies=40)
    rng = np.random.default_rng(5)
    g = draw_galaxies(cfg, rng)
    assert (g["type"] == "early").sum() == round(40 * 44 / 190)
    assert g["redshift"].between(0.005, 0.03).all()
    assert g["log_mstar"].between(9.0, 11.8).all()
    assert g["inclination_deg"].between(0, cfg.max_inclination_deg).all()
    s = spaxel_grid(g, cfg, rng)
    assert s["r_re"].max() <= cfg.r_max_re and s["r_re"].min() >= 0
    assert not s.duplicated(["galaxy_id", "spaxel_id"]).any()
    n = s.groupby("galaxy_id").size()
    assert 0.7 * cfg.spaxels_per_galaxy < n.mean() < 1.3 * cfg.spaxels_per_galaxy
    # bins beyond r_split are outer_bin_factor x larger; bins tile the ellipse (area ~ pi r^2 cos i)
    gal = g.set_index("galaxy_id")
    ratio = s.groupby(["galaxy_id", s["r_re"] > cfg.r_split_re])["spacing_arcsec"].first().unstack()
    np.testing.assert_allclose((ratio[True] / ratio[False]).dropna(), 2.0)
    area = (s["spacing_arcsec"] ** 2).groupby(s["galaxy_id"]).sum()
    ellipse = np.pi * (cfg.r_max_re * gal["re_arcsec"]) ** 2 * np.cos(np.deg2rad(gal["inclination_deg"]))
    assert np.median(area / ellipse) == pytest.approx(1.0, abs=0.1)
    # the bins hold most of the stellar mass (Sersic wings beyond 2.5 R_e are missing)
    frac = s.groupby("galaxy_id")["mass_msun"].sum() / 10 ** gal["log_mstar"]
    assert frac.between(0.65, 1.0).all()


# -- the survey ---------------------------------------------------------------------------------------
def test_tiny_survey_schema(tiny):
    s, g = tiny.spaxels, tiny.galaxies
    assert tiny.kind == "mock-ifu" and tiny.filter_system == "jpas" and len(tiny.bands) == 37
    assert "J0660" not in tiny.bands and "J0670" not in tiny.bands and "uJPAS" not in tiny.bands
    assert len(g) == 4 and set(s["galaxy_id"]) <= set(g["galaxy_id"])
    assert s["log_age_true"].between(7.5, 10.35).all() and s["zh_true"].between(-2.3, 0.7).all()
    # noise: observed minus true magnitudes scatter like the quoted errors
    pull = (tiny.magnitudes("mag") - tiny.magnitudes("magtrue")) / tiny.magnitudes("magerr")
    assert 0.8 < np.std(pull[np.abs(pull) < 10]) < 1.2
    # label noise 0.05 dex by default
    assert 0.03 < np.std(s["log_age"] - s["log_age_true"]) < 0.07
    # galaxy sSFR = sum of bin SFRs / sum of bin masses, bin SFR = bin sSFR x bin mass
    above = s["log_ssfr"] > -14.0  # -14 is the floor
    ssfr = 10 ** s["log_ssfr"] * s["mass_msun"]
    np.testing.assert_allclose(s.loc[above, "sfr_100_msun_yr"], ssfr[above], rtol=1e-9)
    expect = np.log10(ssfr.groupby(s["galaxy_id"]).sum() / s["mass_msun"].groupby(s["galaxy_id"]).sum())
    got = g.set_index("galaxy_id")["log_ssfr"]
    ok = above.groupby(s["galaxy_id"]).all()
    assert ok.any()
    np.testing.assert_allclose(got[ok[ok].index], expect[ok[ok].index], atol=1e-9)


def test_same_seed_same_files_different_seed_differs(tmp_path, tiny):
    again = simulate_ifu_survey(tiny_config(n_galaxies=4, spaxels=12))
    pd.testing.assert_frame_equal(again.spaxels, tiny.spaxels)
    pd.testing.assert_frame_equal(again.galaxies, tiny.galaxies)
    tiny.write(tmp_path / "a")
    again.write(tmp_path / "b")
    for name in ("spaxels.parquet", "galaxies.parquet", "meta.json", "config.toml"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    other = simulate_ifu_survey(tiny_config(seed=2, n_galaxies=4, spaxels=12))
    assert not np.allclose(other.spaxels["mag_J0500"].to_numpy()[:10], tiny.spaxels["mag_J0500"].to_numpy()[:10])
    back = read_sed_table(tmp_path / "a")
    assert back.meta["seed"] == 1 and back.config["seed"] == 1
    assert json.loads((tmp_path / "a" / "meta.json").read_text())["bands"] == tiny.bands


def test_noise_free_and_label_noise_off():
    t = simulate_ifu_survey(tiny_config(n_galaxies=2, snr_scale=float("inf"), label_noise_age=0.0,
                                        label_noise_zh=0.0, min_snr=0.0))
    np.testing.assert_array_equal(t.magnitudes("mag"), t.magnitudes("magtrue"))
    np.testing.assert_array_equal(t.magnitudes("magerr"), 0.0)
    np.testing.assert_array_equal(t.spaxels["log_age"], t.spaxels["log_age_true"])


def test_magnitudes_match_the_spectra():
    """magtrue_* equal synth_photometry of the composed observed spectra (no shortcut in the survey path)."""
    from photopop.photometry.synth import synth_photometry

    cfg = tiny_config(n_galaxies=2, snr_scale=float("inf"), min_snr=0.0)
    plan = plan_survey(cfg)
    table = simulate_ifu_survey(cfg)
    wave, flux, rows = galaxy_spectra(plan, 0)
    phot = synth_photometry(wave, flux, plan.system, wave_unit="Angstrom", flux_unit="erg/(s cm2 AA)")
    mine = table.spaxels[table.spaxels["galaxy_id"] == 0]
    np.testing.assert_allclose(mine[[f"magtrue_{b}" for b in table.bands]].to_numpy(),
                               phot.mag_ab[rows["spaxel_id"].to_numpy()], atol=2e-4)


def test_brightness_follows_distance_and_mass():
    """A bin's flux scales with its stellar mass: magtrue + 2.5 log10(mass) has small scatter per galaxy."""
    t = simulate_ifu_survey(tiny_config(n_galaxies=3, snr_scale=float("inf"), min_snr=0.0))
    s = t.spaxels
    m_per_mass = s["magtrue_J0550"] + 2.5 * np.log10(s["mass_msun"])
    assert m_per_mass.groupby(s["galaxy_id"]).std().max() < 1.0  # M/L varies by < 1 mag across a galaxy
    # absolute check for one bin: M/L of an old population ~ 1-10 in the V band
    g = t.galaxies.set_index("galaxy_id")
    row = s.iloc[0]
    from astropy.cosmology import Planck18

    dm = Planck18.distmod(g.loc[row["galaxy_id"], "redshift"]).value
    abs_mag = row["magtrue_J0550"] - dm
    m_over_l = row["mass_msun"] / 10 ** (-0.4 * (abs_mag - 4.81))  # V-band-ish solar abs mag 4.81 (AB ~4.8)
    assert 0.1 < m_over_l < 20


def test_late_type_gradients_negative():
    cfg = tiny_config(seed=3, n_galaxies=8, spaxels=30, snr_scale=float("inf"))
    cfg.sample = replace(cfg.sample, early_fraction=0.0)
    t = simulate_ifu_survey(cfg)
    g = t.galaxies
    assert (g["type"] == "late").all()
    assert g["grad_log_age"].median() < -0.05
    assert g["grad_zh"].median() < -0.03
    assert (g["grad_zh_input"] < 0).mean() >= 0.8
    # the fitted gradient is the least-squares slope of the noise-free labels inside R_e
    gid = int(g["galaxy_id"].iloc[0])
    s = t.spaxels[(t.spaxels["galaxy_id"] == gid) & (t.spaxels["r_re"] < 1)]
    slope = np.polyfit(s["r_re"], s["log_age_true"], 1)[0]
    assert g["grad_log_age"].iloc[0] == pytest.approx(slope, abs=1e-9)


def test_between_galaxy_differences_exceed_within():
    """The Set A / Set B effect: SED->label regression is much worse on unseen galaxies."""
    t = simulate_ifu_survey(tiny_config(seed=4, n_galaxies=12, spaxels=30, snr_scale=float("inf")))
    gap = galaxy_gap(t, "log_age_true", n_neighbors=5)
    # over survey seeds 4-9: Set B / Set A rmse 4.3-9.8 (log age) and 3.9-12 ([Z/H]), between-galaxy share
    # 0.64-0.87; were spaxels of different galaxies interchangeable, the ratio would be ~1
    assert gap["rmse_set_b"] > 2.5 * gap["rmse_set_a"]
    assert gap["set_b_between_share"] > 0.5  # errors on unseen galaxies are mostly galaxy-wide offsets
    gz = galaxy_gap(t, "zh_true", n_neighbors=5)
    assert gz["rmse_set_b"] > 2.5 * gz["rmse_set_a"] and gz["set_b_between_share"] > 0.5


def test_band_selection_and_depths():
    from photopop.photometry.filters import load_filter_system

    cfg = IFUSurveyConfig(all_bands=True)
    assert select_bands(cfg)[1].bands == load_filter_system("jpas").bands  # every shipped J-PAS curve
    _, sys34 = select_bands(IFUSurveyConfig())
    d = band_depths(sys34, IFUSurveyConfig().noise)
    i = sys34.bands.index("J0500")
    assert d[i] == pytest.approx(22.5) and d[sys34.bands.index("rSDSS")] > 23.0
    with pytest.raises(InputError, match="J9999"):
        band_depths(sys34, replace(IFUSurveyConfig().noise, depth_overrides={"J9999": 22.0}))
    with pytest.raises(InputError, match="either bands or all_bands"):
        IFUSurveyConfig(bands=("J0500",), all_bands=True).check()


def test_alpha_modulation():
    w = np.array([4000.0, 5177.0, 5270.0])
    m = alpha_modulation(w, 0.1)
    assert m[0] == pytest.approx(1.0, abs=1e-6) and m[1] < 0.91 and m[2] > 1.0
    np.testing.assert_array_equal(alpha_modulation(w, 0.0), 1.0)


def test_bad_config():
    with pytest.raises(InputError, match="n_galaxies"):
        simulate_ifu_survey(tiny_config(n_galaxies=0))
    with pytest.raises(InputError, match="snr_scale"):
        simulate_ifu_survey(tiny_config(snr_scale=0.0))


def test_cli_writes_the_folder(tmp_path, capsys):
    from photopop.cli.main import main
    from photopop.config import save_config

    cfg = tiny_config(n_galaxies=4, spaxels=12)
    save_config(cfg, tmp_path / "survey.toml")
    out = tmp_path / "mock"
    rc = main(["simulate", "ifu", "--config", str(tmp_path / "survey.toml"), "--galaxies", "2", "--seed", "7",
               "--snr", "inf", "--out", str(out), "--figures"])
    assert rc == 0
    t = read_sed_table(out)
    assert t.meta["seed"] == 7 and len(t.galaxies) == 2 and t.config["sample"]["n_galaxies"] == 2
    np.testing.assert_array_equal(t.magnitudes("mag"), t.magnitudes("magtrue"))
    assert (out / "figures" / "spaxel_sed.png").stat().st_size > 10_000
    assert (out / "figures" / "label_maps.png").stat().st_size > 10_000
    assert "wrote" in capsys.readouterr().out
    # bad input: one line on stderr, exit status 2, nothing written
    with pytest.raises(SystemExit) as exc:  # refused by the shared validator, as an argparse type
        main(["simulate", "ifu", "--galaxies", "0", "--out", str(tmp_path / "bad")])
    assert exc.value.code == 2 and not (tmp_path / "bad").exists()
    assert "--galaxies must be a positive integer, got 0" in capsys.readouterr().err


def test_other_ssp_library(tmp_path):
    """A user SSP grid (no surviving-mass fractions, no nebular grids) works; too short a grid is refused."""
    from photopop.populations import SSPGrid

    bc = SSPGrid.bc03(wave_range=(3000.0, 7600.0))
    ages = slice(0, None, 4)
    zs = [2, 4, 5]
    user = SSPGrid(bc.ages_yr[ages], bc.zh[zs], bc.wavelength_aa, bc.spectra[zs][:, ages], None, name="mine")
    user.save(tmp_path / "grid.npz")
    cfg = tiny_config(n_galaxies=2, spaxels=8)
    cfg.ssp_file = str(tmp_path / "grid.npz")
    t = simulate_ifu_survey(cfg)
    assert t.meta["ssp_grid"] == "grid" and t.meta["nebular"] is False and t.meta["mass_normalisation"] == "formed"
    assert np.isfinite(t.magnitudes("magtrue")).all() and t.spaxels["zh_true"].between(bc.zh[2], bc.zh[5]).all()
    red = bc.wavelength_aa > 4000
    short = SSPGrid(bc.ages_yr, bc.zh, bc.wavelength_aa[red], bc.spectra[:, :, red],
                    bc.mass_fraction, name="short")
    short.save(tmp_path / "short.npz")
    cfg.ssp_file = str(tmp_path / "short.npz")
    with pytest.raises(InputError, match=r"J0378.*gSDSS"):
        simulate_ifu_survey(cfg)
