"""The IFU route: tiny CALIFA and MaNGA cubes of photopop composites -> ifu prepare -> labels -> ifu table ->
sed train, with the labels of every bin known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from photopop.cli.main import main
from photopop.datasets.ifu_bins import BinningConfig, GalaxyGeometry, prepare_ifu_bins
from photopop.errors import InputError
from photopop.fitting import LabelFitConfig, load_ssp
from photopop.fitting.spectra import read_spectrum_set
from photopop.populations.compose import compose
from photopop.populations.ssp import REF_WINDOW_AA, SSPGrid, mean_in_window

C_KMS = 299792.458
N = 5  # spaxels per side
BANDS = ["J0410", "J0450", "J0500", "J0550", "J0600", "J0650"]
FIT_TOML = """fit_window_aa = [4000.0, 5800.0]
age_step_dex = 0.25
zh_range = [-0.8, 0.5]
mdegree = 4
min_good_pixels = 100
"""


def celestial(header: fits.Header, scale_arcsec: float) -> None:
    header.update({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CUNIT1": "deg", "CUNIT2": "deg",
                   "CRVAL1": 150.0, "CRVAL2": 2.0, "CRPIX1": 3.0, "CRPIX2": 3.0,
                   "CDELT1": -scale_arcsec / 3600.0, "CDELT2": scale_arcsec / 3600.0})


def populations(seed_shift: float = 0.0):
    """Per spaxel: rest-frame spectra (n, n_wave) on the BC03 grid, their LW log age / [Z/H], the label-window
    light (for bin labels), and a S/N per pixel falling outwards."""
    full = SSPGrid.bc03(wave_range=(3500.0, 7100.0))
    yy, xx = np.mgrid[0:N, 0:N]
    r = np.hypot(xx - 2, yy - 2).ravel()
    # two SSPs that are templates of the FIT_TOML selection (ages 0.25 dex apart from 1e5 yr: 8.81, 9.83)
    kept = load_ssp("bc03", LabelFitConfig(age_step_dex=0.25)).log_ages
    iy, io = (int(np.argmin(np.abs(full.log_ages - kept[k]))) for k in (14, 18))
    light = full.mean_flux()
    zh = np.where(r < 1.5, 0.0, -0.39794001)
    iz = [int(np.argmin(np.abs(full.zh - z))) for z in zh]
    f_young = np.clip(0.1 + 0.2 * r + seed_shift, 0, 0.9)  # young light fraction grows outwards
    w = np.zeros((r.size, full.ages_yr.size))
    w[np.arange(r.size), iy] = f_young / light[iz, iy]
    w[np.arange(r.size), io] = (1 - f_young) / light[iz, io]
    brightness = 10 ** (-0.4 * r)  # surface-brightness profile
    c = compose(full, w * brightness[:, None], zh=zh, dtype="float64")
    snr = 120.0 * 10 ** (-0.3 * r)  # S/N per pixel: ~120 at the centre, ~17 at the corners
    lw = mean_in_window(full.wavelength_aa, c.flux, REF_WINDOW_AA)
    return full.wavelength_aa, c.flux, c.labels, lw, snr


def broaden(wave, flux, fwhm_obs_aa, z, sigma_kms=100.0):
    """Rest-frame spectra (n, nw) at BC03's 2.51 A, convolved to the instrument FWHM (observed) and a LOSVD."""
    from ppxf import ppxf_util

    fwhm_rest = np.broadcast_to(fwhm_obs_aa, wave.shape) / (1 + z)
    inst = np.sqrt(np.clip(fwhm_rest**2 - 2.51**2, 0, None)) / np.sqrt(8 * np.log(2))
    sig = np.sqrt(inst**2 + (sigma_kms * wave / C_KMS) ** 2)
    return ppxf_util.varsmooth(wave, flux.T, sig).T


def write_califa(path, z=0.015, seed=1, wcs=True, error=True):
    wave_r, flux_r, labels, lw, snr = populations()
    wave = 3750.0 + 2.0 * np.arange(1626)  # V500-like, 2 A sampling, 6 A FWHM
    spec = broaden(wave_r, flux_r, 6.0, z)
    obs = np.array([np.interp(wave, wave_r * (1 + z), s) for s in spec])
    obs *= 1.0 / np.median(obs)  # ~1 in CALIFA's 1e-16 erg/s/cm2/A
    err = np.median(obs[:, (wave > 4500) & (wave < 5800)], axis=1)[:, None] / snr[:, None] * np.ones_like(obs)
    rng = np.random.default_rng(seed)
    noisy = obs + rng.normal(0.0, err)
    cube = noisy.T.reshape(-1, N, N).astype(np.float32)
    hdr = fits.Header()
    if wcs:
        celestial(hdr, 1.0)
    hdr.update({"CTYPE3": "AWAV", "CUNIT3": "Angstrom", "CRVAL3": wave[0], "CDELT3": 2.0, "CRPIX3": 1.0})
    hdus = [fits.PrimaryHDU(cube, header=hdr)]
    if error:
        hdus.append(fits.ImageHDU(err.T.reshape(-1, N, N).astype(np.float32), name="ERROR"))
    badpix = np.zeros(cube.shape, np.uint8)
    badpix[400:405, 0, 0] = 1
    hdus.append(fits.ImageHDU(badpix, name="BADPIX"))
    fits.HDUList(hdus).writeto(path)
    return labels, lw


def write_manga(path, z=0.02, seed=2):
    from ppxf import ppxf_util

    wave_r, flux_r, labels, lw, snr = populations(seed_shift=0.1)
    wave = 10 ** (np.log10(3650.0) + 1e-4 * np.arange(2800))  # vacuum, log-sampled like a LOGCUBE
    specres = np.full(wave.size, 1800.0)  # R = lambda / FWHM
    spec = broaden(wave_r, flux_r, ppxf_util.vac_to_air(wave_r) / 1800.0 * (1 + z), z)
    obs = np.array([np.interp(wave, ppxf_util.air_to_vac(wave_r) * (1 + z), s) for s in spec])
    obs *= 1.0 / np.median(obs)
    err = np.median(obs[:, (wave > 4500) & (wave < 5800)], axis=1)[:, None] / snr[:, None] * np.ones_like(obs)
    noisy = obs + np.random.default_rng(seed).normal(0.0, err)
    hdr = fits.Header()
    celestial(hdr, 0.5)
    mask = np.zeros((wave.size, N, N), np.int32)
    mask[:, 4, 4] = 1 << 10  # DONOTUSE
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(noisy.T.reshape(-1, N, N), header=hdr, name="FLUX"),
                  fits.ImageHDU((1 / err**2).T.reshape(-1, N, N), name="IVAR"), fits.ImageHDU(mask, name="MASK"),
                  fits.ImageHDU(wave, name="WAVE"), fits.ImageHDU(specres, name="SPECRES")]).writeto(path)
    return labels, lw


def bin_truth(bins_dir, labels, lw, galaxy_id):
    """Expected LW labels of every bin: light-weighted (label window) means of its members' labels."""
    s = read_spectrum_set(bins_dir / "spectra" / f"{galaxy_id:06d}.fits")
    bm = s.bin_map.ravel()
    out = {}
    for b in s.spaxel_id:
        m = bm == b
        out[int(b)] = (np.sum(lw[m] * labels.log_age[m]) / lw[m].sum(), np.sum(lw[m] * labels.zh[m]) / lw[m].sum())
    return out


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    d = tmp_path_factory.mktemp("ifu")
    lab_c = write_califa(d / "gal1.V500.rscube.fits")
    lab_m = write_manga(d / "manga-1-2-LOGCUBE.fits")
    pd.DataFrame({"cube": ["gal1.V500.rscube.fits", "manga-1-2-LOGCUBE.fits"], "galaxy_id": [1, 2],
                  "re_arcsec": [2.0, 1.0], "redshift": [0.015, 0.02], "pa_deg": [30.0, 0.0],
                  "inclination_deg": [45.0, 0.0]}).to_csv(d / "geom.csv", index=False)
    (d / "fit.toml").write_text(FIT_TOML)
    assert main(["ifu", "prepare", str(d / "gal1.V500.rscube.fits"), str(d / "manga-1-2-LOGCUBE.fits"),
                 "--geometry", str(d / "geom.csv"), "--target-sn", "40", "--out", str(d / "bins")]) == 0
    assert main(["labels", str(d / "bins"), "--config", str(d / "fit.toml"), "--out", str(d / "labels.parquet"),
                 "--quiet"]) == 0
    return d, {1: lab_c, 2: lab_m}


def test_prepare_bins(chain):
    d, _ = chain
    bins = pd.read_parquet(d / "bins" / "bins.parquet")
    gal = pd.read_parquet(d / "bins" / "galaxies.parquet").set_index("galaxy_id")
    assert gal.loc[1, "setup"] == "V500" and gal.loc[1, "fwhm_aa"] == 6.0
    assert gal.loc[2, "setup"] == "MaNGA" and gal.loc[2, "fwhm_aa"] == pytest.approx(5500 / 1800, rel=0.3)
    for g in (1, 2):
        b = bins[bins.galaxy_id == g]
        assert b["n_spaxels"].sum() <= N * N and len(b) < b["n_spaxels"].sum()  # outskirts were binned
        merged = b[b.n_spaxels > 1]
        assert (merged["snr_bin"] > 0.6 * 40).all()  # Voronoi bins reach roughly the target (vorbin: ~ +-20 %)
    s = read_spectrum_set(d / "bins" / "spectra" / "000002.fits")
    assert s.bin_map[4, 4] == -1  # DONOTUSE spaxel left out
    assert s.medium == "vacuum" and s.wcs_header["CTYPE1"].startswith("RA")
    # the central spaxel is its own bin: distance 0 -> r_re 0
    centre = bins[(bins.galaxy_id == 1) & (bins.pix_x == 2) & (bins.pix_y == 2)]
    assert len(centre) == 1 and centre["r_re"].iloc[0] == pytest.approx(0.0, abs=1e-9)


def test_labels_of_bins_come_back(chain):
    d, truth = chain
    lab = pd.read_parquet(d / "labels.parquet")
    assert (lab["status"] == "ok").all(), lab["status"].value_counts()
    errs_age, errs_zh, snr = [], [], []
    for g, (labels, lw) in truth.items():
        exp = bin_truth(d / "bins", labels, lw, g)
        sub = lab[lab.galaxy_id == g].set_index("spaxel_id")
        for b, (la, zh) in exp.items():
            errs_age.append(sub.loc[b, "log_age"] - la)
            errs_zh.append(sub.loc[b, "zh"] - zh)
            snr.append(sub.loc[b, "snr"])
    errs_age, errs_zh, snr = np.array(errs_age), np.array(errs_zh), np.array(snr)
    # Noise-free, these spectra come back to < 0.01 dex. With noise, 6-8 seeds of single bins (CALIFA and
    # MaNGA layouts, S/N 15-44) gave sd(log_age) = 2.0-3.5 / SNR and a positivity bias (younger, more metal-rich)
    # of up to 3.5 / SNR in age; sd([Z/H]) <= 1.4 / SNR, bias <= 2.2 / SNR (docs/real-data.md). Bound: bias + 3 sd.
    assert np.all(np.abs(errs_age) < 0.01 + 14.0 / snr), np.c_[errs_age, snr]
    assert np.all(np.abs(errs_zh) < 0.01 + 7.0 / snr), np.c_[errs_zh, snr]
    assert np.sqrt(np.mean(errs_age**2)) < 0.1 and np.sqrt(np.mean(errs_zh**2)) < 0.1
    assert np.all(np.abs(lab["sigma_kms"] - 100.0) < 30.0)  # the LOSVD put into the cubes


def test_table_and_training(chain):
    d, _ = chain
    assert main(["ifu", "table", str(d / "bins"), "--labels", str(d / "labels.parquet"), "--filters", "jpas",
                 "--bands", *BANDS, "--out", str(d / "sed")]) == 0
    from photopop.datasets.sed_table import read_sed_table

    t = read_sed_table(d / "sed")
    assert t.kind == "ifu-cube" and t.bands == BANDS
    lab = pd.read_parquet(d / "labels.parquet")
    assert len(t) + sum(t.meta["dropped"].values()) == len(lab)
    assert {"log_age", "zh", "r_re", "x_arcsec", "sigma_kms"} <= set(t.spaxels.columns)
    # brighter (central) bins have brighter magnitudes
    s = t.spaxels.sort_values("r_re")
    assert s.groupby("galaxy_id")["mag_J0550"].first().lt(s.groupby("galaxy_id")["mag_J0550"].last()).all()
    # a rerun with the same inputs is idempotent (output-folder contract); other bands are refused without
    # --overwrite
    assert main(["ifu", "table", str(d / "bins"), "--labels", str(d / "labels.parquet"), "--filters", "jpas",
                 "--bands", *BANDS, "--out", str(d / "sed")]) == 0
    assert main(["ifu", "table", str(d / "bins"), "--labels", str(d / "labels.parquet"), "--filters", "jpas",
                 "--bands", *BANDS[:-1], "--out", str(d / "sed")]) == 2
    assert read_sed_table(d / "sed").bands == BANDS
    assert main(["sed", "train", "--table", str(d / "sed"), "--target", "log_age", "--out", str(d / "model"),
                 "--max-epochs", "2", "--quiet"]) == 0
    assert (d / "model" / "meta.json").is_file()
    assert main(["gradients", str(d / "sed" / "spaxels.parquet"), "--value", "log_age", "--min-inside", "2",
                 "--out", str(d / "grad.csv")]) == 0
    # predictions of the model and the pPXF labels as maps on the cube's spaxels, with its WCS
    assert main(["sed", "predict", "--model", str(d / "model"), "--table", str(d / "sed"),
                 "--out", str(d / "pred.parquet")]) == 0
    assert main(["ifu", "maps", str(d / "bins"), "--values", str(d / "labels.parquet"), "--out",
                 str(d / "maps")]) == 0
    assert main(["ifu", "maps", str(d / "bins"), "--values", str(d / "pred.parquet"), "--columns",
                 "log_age_cnn", "--out", str(d / "maps_cnn")]) == 0
    with fits.open(d / "maps" / "000001_maps.fits") as h:
        age = h["LOG_AGE"].data
        assert age.shape == (N, N) and h["LOG_AGE"].header["CTYPE1"].startswith("RA")
    lab = pd.read_parquet(d / "labels.parquet").set_index(["galaxy_id", "spaxel_id"])
    bm = read_spectrum_set(d / "bins" / "spectra" / "000001.fits").bin_map
    assert age[2, 2] == pytest.approx(lab.loc[(1, bm[2, 2]), "log_age"], rel=1e-6)
    with fits.open(d / "maps_cnn" / "000002_maps.fits") as h:
        assert np.isnan(h["LOG_AGE_CNN"].data[4, 4])  # the DONOTUSE spaxel is in no bin


def test_bad_cubes(tmp_path):
    write_califa(tmp_path / "nowcs.fits", wcs=False)
    geom = [GalaxyGeometry(1, 2.0, 0.015)]
    with pytest.raises(InputError, match="celestial WCS"):
        prepare_ifu_bins([tmp_path / "nowcs.fits"], geom, tmp_path / "b1")
    write_califa(tmp_path / "noerr.fits", error=False)
    with pytest.raises(InputError, match="no error extension"):
        prepare_ifu_bins([tmp_path / "noerr.fits"], geom, tmp_path / "b2")
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(tmp_path / "image.fits")
    with pytest.raises(InputError, match="not an IFU cube"):
        prepare_ifu_bins([tmp_path / "image.fits"], geom, tmp_path / "b3")
    with pytest.raises(InputError, match="target"):
        prepare_ifu_bins([tmp_path / "noerr.fits"], geom, tmp_path / "b4", BinningConfig(target_sn=0))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's file")
    with pytest.raises(InputError, match=r"did not write \(notes\.txt\)"):  # refused before any binning
        prepare_ifu_bins([tmp_path / "nowcs.fits"], geom, tmp_path / "mine")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("name, setup, fwhm, alpha", [("g.V1200.rscube.fits", "V1200", 2.3, 1.06),
                                                     ("g.COMB.rscube.fits", "COMB", 6.0, 1.07)])
def test_califa_setups(tmp_path, name, setup, fwhm, alpha):
    write_califa(tmp_path / name)
    out = prepare_ifu_bins([tmp_path / name], [GalaxyGeometry(3, 2.0, 0.015)], tmp_path / "bins",
                           BinningConfig(target_sn=40))
    gal = pd.read_parquet(out / "galaxies.parquet").iloc[0]
    assert (gal["setup"], gal["fwhm_aa"], gal["covariance_alpha"]) == (setup, fwhm, alpha)
    s = read_spectrum_set(out / "spectra" / "000003.fits")
    np.testing.assert_allclose(s.fwhm_aa, fwhm)
    # a bin of N spaxels: variance = sum of members' variances x (1 + alpha log10 N)^2
    bins = pd.read_parquet(out / "bins.parquet").set_index("spaxel_id")
    with fits.open(tmp_path / name) as h:
        err = np.asarray(h["ERROR"].data, np.float64)
    b = int(bins["n_spaxels"].idxmax())
    members = s.bin_map == b
    n = int(members.sum())
    k = 700  # a pixel no member has flagged
    expect = np.sum(err[k][members] ** 2) * (1 + alpha * np.log10(n)) ** 2
    row = list(s.spaxel_id).index(b)
    assert 1.0 / s.ivar[row, k] == pytest.approx(expect, rel=1e-5)
    # --fwhm overrides the survey's value; --no-covariance switches the correction off
    out2 = prepare_ifu_bins([tmp_path / name], [GalaxyGeometry(3, 2.0, 0.015)], tmp_path / "bins2",
                            BinningConfig(target_sn=40, fwhm_aa=5.0, covariance_alpha=0.0))
    gal2 = pd.read_parquet(out2 / "galaxies.parquet").iloc[0]
    assert gal2["fwhm_aa"] == 5.0 and gal2["covariance_alpha"] == 0.0
