"""The catalogue of the mock imaging survey: galaxies drawn from published relations, flux-limited.

`draw_catalog(cfg, rng)` returns the catalogue (labels, ugriz magnitudes with noise, truth columns; see
docs/images-data.md) and the per-galaxy render parameters of `photopop.simulate.image_render`. Every
draw is vectorised over galaxies and comes from the one Generator passed in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError
from ..photometry.ab import (
    ab_mag_to_nmgy,
    flux_err_from_mag,
    mag_err_from_flux,
    nmgy_to_ab_mag,
)
from .colour_table import (
    BANDS_UGRIZ,
    ColourTable,
    build_colour_table,
    distance_modulus,
    kpc_per_arcsec,
)
from .fibre import fibre_offset, gradient_dex_per_re
from .image_config import RENDER_BANDS, ImageSurveyConfig
from .image_config import RENDER_INDEX as _RB
from .image_photometry import (
    band_pivots,
    electrons_per_nanomaggy,
    half_light_radius,
    petrosian_fraction,
    sky_nanomaggies_per_arcsec2,
)
from .mzr import (
    draw_sfr,
    main_sequence_log_sfr,
    oh_true_model,
    stellar_zh_from_gas,
)

_BALDRY12 = dict(logm_star=10.66, phi1=3.96e-3, alpha1=-0.35, phi2=0.79e-3, alpha2=-1.47)


def _inverse_cdf_sample(x: np.ndarray, pdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(x))])
    return np.interp(u * cdf[-1], cdf, x)


def _mass_function(logm: np.ndarray) -> np.ndarray:
    """Baldry et al. (2012) double Schechter function dn/dlogM (Mpc^-3 dex^-1)."""
    p = _BALDRY12
    m = 10.0 ** (logm - p["logm_star"])
    return np.log(10.0) * np.exp(-m) * m * (p["phi1"] * m ** p["alpha1"] + p["phi2"] * m ** p["alpha2"])


def _shen03_late_re_kpc(logm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shen et al. (2003) late-type R_50 (kpc) and its log-normal scatter (dex)."""
    m = 10.0 ** logm
    re = 0.1 * m**0.14 * (1.0 + m / 3.98e10) ** (0.39 - 0.14)
    sig_ln = 0.34 + (0.47 - 0.34) / (1.0 + (m / 3.98e10) ** 2)
    return re, sig_ln / np.log(10.0)


def _shen03_early_re_kpc(logm: np.ndarray) -> np.ndarray:
    """Shen et al. (2003) early-type R_50 (kpc)."""
    return 2.88e-6 * (10.0 ** logm) ** 0.56


def _draw_candidates(cfg: ImageSurveyConfig, rng: np.random.Generator, n: int, table: ColourTable,
                     pivots: np.ndarray) -> dict[str, np.ndarray]:
    """Draw n candidate galaxies (before the flux limit) with all intrinsic properties and fluxes."""
    from astropy.cosmology import Planck18

    from ..populations.dust import calzetti_k

    lc = cfg.labels
    lm_grid = np.linspace(*cfg.logm_range, 512)
    logm = _inverse_cdf_sample(lm_grid, _mass_function(lm_grid), rng.random(n))
    z_grid = np.linspace(*cfg.redshift_range, 256)
    dvdz = Planck18.differential_comoving_volume(z_grid).value
    z = _inverse_cdf_sample(z_grid, dvdz, rng.random(n))
    log_sfr, quenched = draw_sfr(logm, z, rng, lc)
    dsfr = log_sfr - main_sequence_log_sfr(logm, z, lc)
    # bulge fraction (mass): rises with mass, higher for quenched galaxies
    mean_bt = np.clip(0.05 + 0.45 / (1.0 + np.exp(-(logm - 10.6) / 0.35)) + 0.25 * quenched, 0.02, 0.9)
    kappa = 6.0
    bt_mass = np.clip(rng.beta(mean_bt * kappa, (1.0 - mean_bt) * kappa), 0.0, 0.95)
    sersic_n = np.clip(np.round((1.5 + 2.5 * bt_mass + 0.5 * rng.standard_normal(n)) * 2) / 2, 1.5, 4.0)
    # sizes
    re_d_mean, sig_d = _shen03_late_re_kpc(logm)
    size_res = sig_d * rng.standard_normal(n)
    re_disc_kpc = re_d_mean * 10.0**size_res
    logm_b = logm + np.log10(np.maximum(bt_mass, 1e-4))
    re_bulge_kpc = np.maximum(_shen03_early_re_kpc(logm_b) * 10.0 ** (0.1 * rng.standard_normal(n)), 0.1)
    kpc_arcsec = kpc_per_arcsec(z)
    # orientation
    cos_i = rng.random(n)
    incl = np.degrees(np.arccos(cos_i))
    q_proj = np.sqrt(cos_i**2 + (cfg.disc_intrinsic_q * np.sin(np.radians(incl))) ** 2)
    pa = rng.uniform(0.0, 180.0, n)
    q_bulge = rng.uniform(0.6, 1.0, n)
    # metallicities
    oh_true = oh_true_model(logm, dsfr, size_res, sig_d, rng, lc)
    zh_gas = stellar_zh_from_gas(oh_true)
    zh_disc = stellar_zh_from_gas(oh_true, 0.5 * lc.stellar_zh_offset_old)
    # populations
    m_disc = logm + np.log10(np.maximum(1.0 - bt_mass, 1e-4))
    log_ssfr_disc = log_sfr - m_disc
    mag_b = table.bulge_mags(z, zh_gas, logm_b)
    mag_d = table.disc_mags(z, zh_disc, log_ssfr_disc, m_disc)
    mag_y = table.young_mags(z, zh_gas, log_ssfr_disc, m_disc)
    # dust: Calzetti screen at each band's rest-frame pivot; more for massive, star-forming and inclined discs
    av0 = np.clip(0.2 + 0.35 * (logm - 10.0), 0.05, 1.0) * np.where(quenched, 0.35, 1.0) \
        * 10.0 ** (0.1 * rng.standard_normal(n))
    av_disc = av0 * (1.0 + 1.5 * np.log10(1.0 / q_proj))
    k_v = calzetti_k(np.array([5500.0]))[0]
    k_rest = calzetti_k((pivots[None, :] / (1.0 + z[:, None])).reshape(-1)).reshape(n, 5) / k_v
    flux = ab_mag_to_nmgy  # nanomaggies
    f_bulge = flux(mag_b + 0.3 * av0[:, None] * k_rest)
    f_disc = flux(mag_d + av_disc[:, None] * k_rest)
    f_young = np.minimum(flux(mag_y + 1.5 * av_disc[:, None] * k_rest), f_disc)
    clump_frac = np.where(quenched, 0.0, rng.uniform(0.2, 0.6, n))
    f_knots = clump_frac[:, None] * f_young
    f_disc_smooth = f_disc - f_knots
    f_total = f_bulge + f_disc
    r = BANDS_UGRIZ.index("r")
    f_petro_r = petrosian_fraction(sersic_n) * f_bulge[:, r] + petrosian_fraction(np.ones(n)) * f_disc[:, r]
    sfr = 10.0**log_sfr
    n_knots = np.where(quenched, 0, np.clip(rng.poisson(5.0 + 6.0 * np.sqrt(sfr)), 3, 40))
    return dict(
        log_mstar=logm, redshift=z, log_sfr=log_sfr, sfr=sfr, is_quenched=quenched, delta_log_sfr=dsfr,
        log_ssfr=log_sfr - logm, bulge_mass_fraction=bt_mass, sersic_n=sersic_n,
        re_disc_kpc=re_disc_kpc, re_bulge_kpc=re_bulge_kpc, size_residual_dex=size_res,
        re_disc_arcsec=re_disc_kpc / kpc_arcsec, re_bulge_arcsec=re_bulge_kpc / kpc_arcsec,
        inclination_deg=incl, axis_ratio=q_proj, pa_deg=pa, bulge_axis_ratio=q_bulge,
        oh_true=oh_true, zh_stars=zh_gas, a_v=av_disc, a_v_faceon=av0, n_knots=n_knots, clump_fraction=clump_frac,
        f_bulge=f_bulge, f_disc_smooth=f_disc_smooth, f_knots=f_knots, f_total=f_total,
        r_petro_true=nmgy_to_ab_mag(f_petro_r),
    )


def draw_catalog(cfg: ImageSurveyConfig, rng: np.random.Generator,
                 table: ColourTable | None = None) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Flux-limited mock catalogue and the per-galaxy render parameters (fluxes in nanomaggies, sizes in ")."""
    cfg.validate()
    table = table or build_colour_table()
    pivots = band_pivots()
    n = cfg.n_galaxies
    parts: list[dict[str, np.ndarray]] = []
    have = 0
    batch = max(4096, 4 * n)
    for _ in range(1000):
        cand = _draw_candidates(cfg, rng, batch, table, pivots)
        keep = cand["r_petro_true"] < cfg.r_petro_limit
        parts.append({k: v[keep] for k, v in cand.items()})
        have += int(keep.sum())
        if have >= n:
            break
    else:  # pragma: no cover - only with absurd limits
        raise InputError(f"could not draw {n} galaxies brighter than r_petro = {cfg.r_petro_limit}")
    g = {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0]}
    lc = cfg.labels
    # fibre metallicity (noise-free, then observed)
    offset, rbar = fibre_offset(g["re_disc_arcsec"], g["inclination_deg"], g["log_mstar"], g["a_v_faceon"], lc)
    oh_fibre_true = g["oh_true"] + offset
    oh_obs = oh_fibre_true + lc.oh_noise * rng.standard_normal(n)
    # PSF per galaxy and band (FWHM ∝ lambda^-0.2 around the r-band value)
    pivots_gri = pivots[_RB]
    fwhm_r = np.clip(cfg.psf_fwhm_arcsec + cfg.psf_fwhm_scatter * rng.standard_normal(n), 0.8, 2.5)
    fwhm = fwhm_r[:, None] * (pivots_gri[None, :] / pivots[2]) ** -0.2 \
        * (1.0 + cfg.psf_band_jitter * rng.standard_normal((n, 3)))
    # catalogue photometry with noise: sky over the noise-equivalent area + source Poisson + calibration floor
    e_per = electrons_per_nanomaggy(cfg)
    sky = sky_nanomaggies_per_arcsec2(cfg)
    r50 = half_light_radius(np.column_stack([g["f_bulge"][:, 2], g["f_disc_smooth"][:, 2] + g["f_knots"][:, 2]]),
                            np.column_stack([g["re_bulge_arcsec"], g["re_disc_arcsec"]]),
                            np.column_stack([g["sersic_n"], np.ones(n)]))
    sigma_psf = np.median(fwhm, axis=1) / 2.3548
    nea = 4.0 * np.pi * ((r50 / 1.1774) ** 2 + sigma_psf**2)  # arcsec^2
    pix_area = cfg.native_pixel_scale_arcsec**2
    dark_nmgy2 = np.asarray(cfg.dark_variance_dn) * np.asarray(cfg.gain) ** 2 / e_per**2 / pix_area
    f_true = g["f_total"]
    floor = flux_err_from_mag(1.0, cfg.calibration_floor_mag)  # fractional flux error
    var = nea[:, None] * (sky / e_per + dark_nmgy2)[None, :] + f_true / e_per[None, :] + (floor * f_true) ** 2
    sig_f = np.sqrt(var)
    f_obs = np.maximum(f_true + sig_f * rng.standard_normal(f_true.shape), 1e-3 * sig_f)
    frac_petro = (petrosian_fraction(g["sersic_n"]) * g["f_bulge"][:, 2]
                  + petrosian_fraction(np.ones(n)) * (g["f_disc_smooth"][:, 2] + g["f_knots"][:, 2])) / f_true[:, 2]
    r_petro = nmgy_to_ab_mag(np.maximum(f_obs[:, 2] * frac_petro, 1e-6))
    # artefact flags (details drawn per galaxy at render time)
    n_neigh = rng.poisson(cfg.neighbour_rate, n)
    has_star = rng.random(n) < cfg.star_rate
    trail_band = np.where(rng.random(n) < cfg.trail_rate, rng.integers(0, 3, n), -1)
    badcol_band = np.where(rng.random(n) < cfg.bad_column_rate, rng.integers(0, 3, n), -1)
    cat = pd.DataFrame({"id": np.arange(n, dtype=np.int64)})
    cat["oh"] = oh_obs
    cat["oh_true"] = g["oh_true"]
    cat["oh_fibre_true"] = oh_fibre_true
    cat["fibre_mean_r_re"] = rbar
    cat["fibre_gradient_dex_per_re"] = gradient_dex_per_re(g["log_mstar"], lc)
    for k in ("log_mstar", "sfr", "log_sfr", "log_ssfr", "delta_log_sfr", "is_quenched", "redshift"):
        cat[k] = g[k]
    for b, band in enumerate(BANDS_UGRIZ):
        cat[f"mag_{band}"] = nmgy_to_ab_mag(f_obs[:, b])
        cat[f"magerr_{band}"] = mag_err_from_flux(f_obs[:, b], sig_f[:, b])
    for b, band in enumerate(BANDS_UGRIZ):
        cat[f"magtrue_{band}"] = nmgy_to_ab_mag(f_true[:, b])
    cat["r_petro"] = r_petro
    cat["r_petro_true"] = g["r_petro_true"]
    cat["r50_arcsec"] = r50
    cat["inclination_deg"] = g["inclination_deg"]
    cat["axis_ratio"] = g["axis_ratio"]
    cat["pa_deg"] = g["pa_deg"]
    cat["bulge_fraction"] = g["f_bulge"][:, 2] / f_true[:, 2]
    for k in ("bulge_mass_fraction", "sersic_n", "re_disc_kpc", "re_disc_arcsec", "re_bulge_kpc",
              "re_bulge_arcsec", "size_residual_dex", "zh_stars", "a_v", "a_v_faceon", "n_knots", "clump_fraction"):
        cat[k] = g[k]
    cat["distmod"] = distance_modulus(g["redshift"])
    for b, band in enumerate(RENDER_BANDS):
        cat[f"psf_fwhm_{band}"] = fwhm[:, b]
    cat["n_neighbours"] = n_neigh
    cat["has_star"] = has_star
    cat["trail_band"] = trail_band
    cat["bad_column_band"] = badcol_band
    render = dict(
        f_bulge=g["f_bulge"][:, _RB], f_disc=g["f_disc_smooth"][:, _RB], f_knots=g["f_knots"][:, _RB],
        re_bulge=g["re_bulge_arcsec"], re_disc=g["re_disc_arcsec"], sersic_n=g["sersic_n"],
        q_bulge=g["bulge_axis_ratio"], incl=g["inclination_deg"], q_proj=g["axis_ratio"], pa=g["pa_deg"],
        n_knots=g["n_knots"], fwhm=fwhm, n_neigh=n_neigh, has_star=has_star, trail_band=trail_band,
        badcol_band=badcol_band, r_mag=cat["magtrue_r"].to_numpy(),
    )
    return cat, render



__all__ = ["draw_catalog"]
