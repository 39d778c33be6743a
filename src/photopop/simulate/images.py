"""Mock SDSS-like imaging survey rendered with GalSim: g, r, i cutouts of bulge + disc (+ clumps) galaxies.

`simulate_image_survey(config, out_dir)` draws a flux-limited (petroMag_r < 17.77) catalogue at 0.02 < z < 0.2,
renders 128 x 128 cutouts at 0.296"/pixel with SDSS-like PSF, sky noise and artefacts, and writes an `ImageSet`
(see docs/images-data.md, which also lists the physics and which image features carry the metallicity signal).

Pipeline (everything up to rendering is vectorised over galaxies in the main process):

1. labels (`mzr.py`): log M* (Baldry et al. 2012 double Schechter), z (uniform in comoving volume), SFR (main
   sequence + quenched), sizes (Shen et al. 2003), 12+log(O/H) (MZR + FMR + size term + scatter);
2. stellar populations (`colour_table.py`): ugriz magnitudes of bulge, disc and young clumps from BC03 for their
   SFHs and a metallicity tied to the gas, Calzetti attenuation that grows with inclination;
3. selection on the noise-free petroMag_r, then fibre metallicity, catalogue noise;
4. rendering (GalSim; parallel worker processes, one seed per galaxy from SeedSequence.spawn so the images do
   not depend on the number of workers or the chunk size): Sersic bulge + InclinedExponential disc +
   RandomKnots clumps, each with its own colour, convolved with a per-galaxy, per-band Kolmogorov (or Moffat)
   PSF, drawn on the native 0.396"/pixel SDSS grid with Poisson + sky + dark noise in electrons (53.9 s
   exposure, SDSS collecting area and filter curves), neighbours / bright stars (with saturation bleed) /
   satellite trails / bad columns at low rates, then bilinearly resampled to 0.296"/pixel as the SDSS cutout
   service does (so the output noise is correlated between neighbouring pixels exactly as in real cutouts);
5. an irg colour composite (astropy make_lupton_rgb, Lupton et al. 2004 asinh stretch) per galaxy.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import InputError
from .colour_table import BANDS_UGRIZ, ColourTable, build_colour_table, distance_modulus, kpc_per_arcsec
from .mzr import (LabelConfig, draw_sfr, fibre_mean_radius, main_sequence_log_sfr, oh_true_model,
                  stellar_zh_from_gas)

if TYPE_CHECKING:  # pragma: no cover
    from ..datasets.image_set import ImageSet

RENDER_BANDS = ("g", "r", "i")
_RB = [BANDS_UGRIZ.index(b) for b in RENDER_BANDS]
PLANCK_H = 6.62607015e-27  # erg s
NMGY_FNU = 3.631e-29        # erg/s/cm^2/Hz of 1 nanomaggy


@dataclass
class ImageSurveyConfig:
    """Settings of the mock imaging survey (saved as config.toml with every run)."""

    n_galaxies: int = 1000
    seed: int = 0
    image_size: int = 128                       # output pixels per side
    pixel_scale_arcsec: float = 0.296           # output (cutout) pixel scale
    native_pixel_scale_arcsec: float = 0.396    # SDSS camera pixel scale
    redshift_range: tuple[float, float] = (0.02, 0.2)
    logm_range: tuple[float, float] = (8.5, 11.8)
    r_petro_limit: float = 17.77                # SDSS main-sample spectroscopic limit
    psf_kind: str = "kolmogorov"                # or "moffat"
    psf_fwhm_arcsec: float = 1.4                # median r-band seeing
    psf_fwhm_scatter: float = 0.2               # per-galaxy (field) scatter, arcsec
    psf_band_jitter: float = 0.03               # fractional per-band scatter on top of FWHM ∝ lambda^-0.2
    moffat_beta: float = 3.5
    sky_mag_arcsec2: tuple[float, ...] = (22.1, 21.0, 20.2, 19.6, 18.7)  # u g r i z, AB mag / arcsec^2
    gain: tuple[float, ...] = (1.6, 3.9, 4.7, 5.1, 4.8)                  # e-/DN, u g r i z
    dark_variance_dn: tuple[float, ...] = (9.0, 1.4, 1.2, 1.6, 1.0)      # DN^2 per native pixel
    exposure_s: float = 53.9
    collecting_area_m2: float = 3.58            # 2.5 m primary minus central obstruction
    saturation_electrons: float = 1.7e5         # full well: point sources saturate at r ~ 14
    calibration_floor_mag: float = 0.01         # photometric calibration floor of catalogue magnitudes
    disc_h_over_r: float = 0.12                 # disc scale height / scale length (InclinedExponential)
    disc_intrinsic_q: float = 0.15              # edge-on axis ratio used for projected q
    neighbour_rate: float = 0.3                 # mean number of neighbour galaxies per cutout
    star_rate: float = 0.02                     # fraction of cutouts with a bright star
    trail_rate: float = 0.005                   # fraction with a satellite trail (one band)
    bad_column_rate: float = 0.005              # fraction with a dead/hot column (one band)
    rgb_q: float = 8.0                          # Lupton asinh softening Q
    rgb_stretch: float = 0.4                    # linear stretch (nanomaggies per pixel)
    rgb_scales: tuple[float, float, float] = (1.0, 1.3, 2.2)  # multipliers of i, r, g before the stretch
    rgb_jpeg_quality: int = 0                   # >0: pass the rgb through JPEG at this quality (real-cutout-like)
    png: bool = False                           # also write cutouts/<id>.png
    compression: str = ""                       # HDF5 compression ('', 'gzip', 'lzf')
    chunk_size: int = 16                        # galaxies per worker task
    folding_threshold: float = 5e-3             # GalSim accuracy (default 5e-3)
    add_noise: bool = True                      # False: noise-free images (diagnostics, calibration tests)
    labels: LabelConfig = field(default_factory=LabelConfig)

    def validate(self) -> None:
        """Raise InputError naming the first bad setting."""
        if self.n_galaxies < 1:
            raise InputError("n_galaxies must be >= 1")
        if self.image_size < 8:
            raise InputError("image_size must be >= 8 pixels")
        if not (0 < self.pixel_scale_arcsec and 0 < self.native_pixel_scale_arcsec):
            raise InputError("pixel scales must be > 0")
        z0, z1 = self.redshift_range
        if not 0.005 <= z0 < z1 <= 0.25:
            raise InputError(f"redshift_range must lie within 0.005-0.25 (colour table), got {self.redshift_range}")
        m0, m1 = self.logm_range
        if not 7.0 <= m0 < m1 <= 12.5:
            raise InputError(f"logm_range must lie within 7-12.5, got {self.logm_range}")
        for name in ("sky_mag_arcsec2", "gain", "dark_variance_dn"):
            if len(getattr(self, name)) != 5:
                raise InputError(f"{name} needs 5 values (u, g, r, i, z)")
        if self.psf_kind not in ("kolmogorov", "moffat"):
            raise InputError(f"psf_kind must be 'kolmogorov' or 'moffat', got {self.psf_kind!r}")
        if len(self.rgb_scales) != 3:
            raise InputError("rgb_scales needs 3 values (i, r, g)")
        if self.compression not in ("", "gzip", "lzf"):
            raise InputError("compression must be '', 'gzip' or 'lzf'")
        for name in ("neighbour_rate", "star_rate", "trail_rate", "bad_column_rate"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0")
        for name in ("star_rate", "trail_rate", "bad_column_rate"):
            if getattr(self, name) > 1:
                raise InputError(f"{name} is a fraction and must be <= 1")
        if self.chunk_size < 1:
            raise InputError("chunk_size must be >= 1")
        self.labels.validate()


# ----------------------------------------------------------------------------------------- photometric model
def electrons_per_nanomaggy(cfg: ImageSurveyConfig) -> np.ndarray:
    """Photo-electrons per nanomaggy in one exposure, ugriz: A t f_nu(1 nmgy) / h ∫ T dlambda / lambda.

    The SDSS curves (speclite sdss2010) are total system responses (atmosphere, optics, CCD QE). With
    3.58 m^2 and 53.9 s this gives ~1050 / 950 / 690 e- per nanomaggy in g / r / i, matching SDSS frames
    (gain / nMgyPerCount ~ 3.9/0.0038, 4.7/0.0050, 5.1/0.0070).
    """
    from scipy.integrate import trapezoid

    from ..photometry.filters import load_filter_system

    system = load_filter_system("sdss")
    out = []
    for band in BANDS_UGRIZ:
        c = system.curves[system.bands.index(band)]
        integral = trapezoid(c.transmission / c.wavelength, c.wavelength)
        out.append(cfg.collecting_area_m2 * 1e4 * cfg.exposure_s * NMGY_FNU / PLANCK_H * integral)
    return np.array(out)


def sky_nanomaggies_per_arcsec2(cfg: ImageSurveyConfig) -> np.ndarray:
    """Sky surface brightness in nanomaggies / arcsec^2, ugriz."""
    return 10.0 ** (-0.4 * (np.asarray(cfg.sky_mag_arcsec2, dtype=np.float64) - 22.5))


def band_pivots() -> np.ndarray:
    """Pivot wavelengths (A) of SDSS ugriz."""
    from ..photometry.filters import load_filter_system

    system = load_filter_system("sdss")
    return np.array([system.pivots[system.bands.index(b)] for b in BANDS_UGRIZ])


def petrosian_fraction(sersic_n: np.ndarray) -> np.ndarray:
    """Fraction of a Sersic profile's flux inside the SDSS Petrosian aperture (2 R_P, eta = 0.2).

    Linear in n between the published anchors 0.99 (exponential, n = 1) and 0.80 (de Vaucouleurs, n = 4)
    (Blanton et al. 2001; Graham et al. 2005), clipped to [0.75, 1].
    """
    n = np.asarray(sersic_n, dtype=np.float64)
    return np.clip(0.99 - (n - 1.0) * (0.19 / 3.0), 0.75, 1.0)


def half_light_radius(fluxes: np.ndarray, re: np.ndarray, sersic_n: np.ndarray, n_grid: int = 256) -> np.ndarray:
    """Half-light radius of a sum of circular Sersic components (vectorised over galaxies).

    fluxes, re, sersic_n: (n_gal, n_comp). Enclosed fraction of each component is the regularised incomplete
    gamma function P(2n, b_n (R/R_e)^(1/n)), b_n from P(2n, b_n) = 1/2; solved on a log radius grid.
    """
    from scipy.special import gammainc, gammaincinv

    f = np.asarray(fluxes, dtype=np.float64)
    re = np.asarray(re, dtype=np.float64)
    n = np.asarray(sersic_n, dtype=np.float64)
    bn = gammaincinv(2.0 * n, 0.5)
    rmax = re.max(axis=1)
    grid = rmax[:, None] * np.geomspace(1e-3, 10.0, n_grid)[None, :]  # (g, k)
    x = bn[:, :, None] * (grid[:, None, :] / re[:, :, None]) ** (1.0 / n[:, :, None])
    enclosed = (f[:, :, None] * gammainc(2.0 * n[:, :, None], x)).sum(axis=1) / f.sum(axis=1)[:, None]
    out = np.empty(len(f))
    for k in range(len(f)):  # 1-d interpolation per galaxy on a monotonic curve (cheap)
        out[k] = np.interp(0.5, enclosed[k], grid[k])
    return out


# ----------------------------------------------------------------------------------------- catalogue
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
    flux = lambda m: 10.0 ** (-0.4 * (m - 22.5))  # noqa: E731  (nanomaggies)
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
        oh_true=oh_true, zh_stars=zh_gas, a_v=av_disc, n_knots=n_knots, clump_fraction=clump_frac,
        f_bulge=f_bulge, f_disc_smooth=f_disc_smooth, f_knots=f_knots, f_total=f_total,
        r_petro_true=22.5 - 2.5 * np.log10(f_petro_r),
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
    rbar = fibre_mean_radius(g["re_disc_arcsec"], g["inclination_deg"], lc.fibre_radius_arcsec,
                             lc.emission_thickness, lc.fibre_seeing_fwhm_arcsec)
    oh_fibre_true = g["oh_true"] + lc.gradient_dex_per_re * (rbar - lc.pivot_re)
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
    floor = 0.4 * np.log(10.0) * cfg.calibration_floor_mag
    var = nea[:, None] * (sky / e_per + dark_nmgy2)[None, :] + f_true / e_per[None, :] + (floor * f_true) ** 2
    sig_f = np.sqrt(var)
    f_obs = np.maximum(f_true + sig_f * rng.standard_normal(f_true.shape), 1e-3 * sig_f)
    frac_petro = (petrosian_fraction(g["sersic_n"]) * g["f_bulge"][:, 2]
                  + petrosian_fraction(np.ones(n)) * (g["f_disc_smooth"][:, 2] + g["f_knots"][:, 2])) / f_true[:, 2]
    r_petro = 22.5 - 2.5 * np.log10(np.maximum(f_obs[:, 2] * frac_petro, 1e-6))
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
    for k in ("log_mstar", "sfr", "log_sfr", "log_ssfr", "delta_log_sfr", "is_quenched", "redshift"):
        cat[k] = g[k]
    for b, band in enumerate(BANDS_UGRIZ):
        cat[f"mag_{band}"] = 22.5 - 2.5 * np.log10(f_obs[:, b])
        cat[f"magerr_{band}"] = 2.5 / np.log(10.0) * sig_f[:, b] / f_obs[:, b]
    for b, band in enumerate(BANDS_UGRIZ):
        cat[f"magtrue_{band}"] = 22.5 - 2.5 * np.log10(f_true[:, b])
    cat["r_petro"] = r_petro
    cat["r_petro_true"] = g["r_petro_true"]
    cat["r50_arcsec"] = r50
    cat["inclination_deg"] = g["inclination_deg"]
    cat["axis_ratio"] = g["axis_ratio"]
    cat["pa_deg"] = g["pa_deg"]
    cat["bulge_fraction"] = g["f_bulge"][:, 2] / f_true[:, 2]
    for k in ("bulge_mass_fraction", "sersic_n", "re_disc_kpc", "re_disc_arcsec", "re_bulge_kpc",
              "re_bulge_arcsec", "size_residual_dex", "zh_stars", "a_v", "n_knots", "clump_fraction"):
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


# ----------------------------------------------------------------------------------------- rendering
def _bilinear_weights(n_out: int, scale_out: float, n_in: int, scale_in: float) -> tuple[np.ndarray, np.ndarray]:
    """1-d bilinear interpolation between two centred pixel grids: (i0, t) so out = (1-t) x[i0] + t x[i0+1]."""
    u = ((np.arange(n_out) - (n_out - 1) / 2.0) * scale_out) / scale_in + (n_in - 1) / 2.0
    i0 = np.clip(np.floor(u).astype(int), 0, n_in - 2)
    return i0, np.clip(u - i0, 0.0, 1.0)


def resample_bilinear(images: np.ndarray, i0: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Separable bilinear resampling of (..., n_in, n_in) arrays onto the grid given by `_bilinear_weights`."""
    rows = images[..., i0, :] * (1.0 - t)[:, None] + images[..., i0 + 1, :] * t[:, None]
    return rows[..., i0] * (1.0 - t) + rows[..., i0 + 1] * t


def draw_grid(cfg: ImageSurveyConfig) -> tuple[int, float]:
    """(pixels per side, arcsec per pixel) of the grid galaxies are drawn and noised on.

    Output pixels finer than the native 0.396" (the paper's 0.296"): the native grid, covering the cutout plus a
    1-pixel interpolation margin, later resampled. Output pixels as coarse or coarser (e.g. 0.592" for fast
    low-resolution runs): drawn directly on the output grid, each pixel binning (scale / 0.396)^2 native pixels.
    """
    if cfg.pixel_scale_arcsec >= cfg.native_pixel_scale_arcsec:
        return cfg.image_size, cfg.pixel_scale_arcsec
    n = int(np.ceil(cfg.image_size * cfg.pixel_scale_arcsec / cfg.native_pixel_scale_arcsec)) + 2
    return n + (n % 2), cfg.native_pixel_scale_arcsec


def _geometry(cfg: ImageSurveyConfig) -> dict[str, Any]:
    e_per = electrons_per_nanomaggy(cfg)[_RB]
    n_draw, s_draw = draw_grid(cfg)
    binning = (s_draw / cfg.native_pixel_scale_arcsec) ** 2  # native pixels per drawn pixel
    return dict(
        n_out=cfg.image_size, scale_out=cfg.pixel_scale_arcsec, n_nat=n_draw, scale_nat=s_draw, binning=binning,
        e_per=e_per, sky_nat=sky_nanomaggies_per_arcsec2(cfg)[_RB] * s_draw**2,
        dark_e2=np.asarray(cfg.dark_variance_dn)[_RB] * np.asarray(cfg.gain)[_RB] ** 2 * binning,
        sat_e=cfg.saturation_electrons * binning, psf_kind=cfg.psf_kind, beta=cfg.moffat_beta,
        h_over_r=cfg.disc_h_over_r, folding=cfg.folding_threshold, rgb_q=cfg.rgb_q,
        rgb_stretch=cfg.rgb_stretch, rgb_scales=tuple(cfg.rgb_scales), jpeg=cfg.rgb_jpeg_quality,
        noise=cfg.add_noise,
    )


def _psf(geo: dict[str, Any], fwhm: float, gsp: Any) -> Any:
    import galsim

    if geo["psf_kind"] == "moffat":
        return galsim.Moffat(beta=geo["beta"], fwhm=fwhm, gsparams=gsp)
    return galsim.Kolmogorov(fwhm=fwhm, gsparams=gsp)


def _bleed(sig_e: np.ndarray, full_well: float) -> None:
    """Saturate pixels above the full well and bleed the excess charge up and down the column (in place)."""
    for col in np.flatnonzero((sig_e > full_well).any(axis=0)):
        c = sig_e[:, col]
        over = c > full_well
        excess = float((c[over] - full_well).sum())
        rows = np.flatnonzero(over)
        c[over] = full_well
        extra = int(np.ceil(excess / full_well))
        lo, hi = rows.min(), rows.max()
        up = extra // 2
        c[max(lo - (extra - up), 0): lo] = full_well
        c[hi + 1: hi + 1 + up] = full_well


def render_galaxy(p: dict[str, Any], entropy: np.ndarray, geo: dict[str, Any]) -> np.ndarray:
    """Render one galaxy: float32 (3, H, W) g, r, i cutout in nanomaggies per output pixel, row 0 at the top."""
    import galsim

    rng = np.random.default_rng(np.random.SeedSequence(entropy.tolist()))
    gs_rng = galsim.BaseDeviate(int(rng.integers(1, 2**31 - 1)))
    gsp = galsim.GSParams(folding_threshold=geo["folding"], maxk_threshold=2e-3)
    n_nat, s_nat = geo["n_nat"], geo["scale_nat"]
    pa = galsim.Angle(float(p["pa"]), galsim.degrees)
    bulge = galsim.Sersic(n=float(p["sersic_n"]), half_light_radius=float(p["re_bulge"]), gsparams=gsp) \
        .shear(q=float(p["q_bulge"]), beta=pa)
    disc = galsim.InclinedExponential(float(p["incl"]) * galsim.degrees, half_light_radius=float(p["re_disc"]),
                                      scale_h_over_r=geo["h_over_r"], gsparams=gsp).rotate(pa)
    knots = None
    if int(p["n_knots"]) > 0 and float(p["f_knots"][1]) > 0:
        q = float(p["q_proj"])
        knots = galsim.RandomKnots(int(p["n_knots"]), half_light_radius=float(p["re_disc"]), rng=gs_rng,
                                   gsparams=gsp).shear(q=q, beta=pa).dilate(np.sqrt(q))
    offset = rng.uniform(-0.5, 0.5, 2)  # sub-pixel position on the native grid
    extras: list[tuple[Any, np.ndarray]] = []  # (profile of flux 1, flux per band)
    fov = n_nat * s_nat / 2.0
    for _ in range(int(p["n_neigh"])):
        rad, ang = rng.uniform(2.5, fov * 1.2), rng.uniform(0, 2 * np.pi)
        nb = galsim.Sersic(n=float(rng.choice([1.0, 4.0])), half_light_radius=float(rng.uniform(0.3, 2.5)),
                           gsparams=gsp).shear(q=float(rng.uniform(0.3, 1.0)),
                                              beta=rng.uniform(0, 180) * galsim.degrees)
        rmag = rng.uniform(max(float(p["r_mag"]) - 1.0, 15.0), 22.0)
        gr, ri = rng.uniform(0.3, 1.1), rng.uniform(0.15, 0.5)
        fl = 10 ** (-0.4 * (np.array([rmag + gr, rmag, rmag - ri]) - 22.5))
        extras.append((nb.shift(rad * np.cos(ang), rad * np.sin(ang)), fl))
    if bool(p["has_star"]):
        x, y = rng.uniform(-fov * 1.1, fov * 1.1, 2)
        rmag = rng.uniform(12.5, 16.0)
        gr, ri = rng.uniform(0.3, 1.4), rng.uniform(0.1, 0.6)
        fl = 10 ** (-0.4 * (np.array([rmag + gr, rmag, rmag - ri]) - 22.5))
        extras.append((galsim.DeltaFunction(gsparams=gsp).shift(x, y), fl))
    native = np.empty((3, n_nat, n_nat))
    for b in range(3):
        comps = [float(p["f_bulge"][b]) * bulge, float(p["f_disc"][b]) * disc]
        if knots is not None:
            comps.append(float(p["f_knots"][b]) * knots)
        psf = _psf(geo, float(p["fwhm"][b]), gsp)
        img = galsim.ImageD(n_nat, n_nat, scale=s_nat)
        galsim.Convolve(galsim.Sum(comps), psf).drawImage(img, offset=offset)
        for prof, fl in extras:
            galsim.Convolve(float(fl[b]) * prof, psf).drawImage(img, offset=offset, add_to_image=True)
        native[b] = img.array
    # detector: electrons, saturation + bleed, Poisson/sky/dark noise (Gaussian), back to nanomaggies
    e_per, sky = geo["e_per"], geo["sky_nat"]
    for b in range(3):
        sig_e = native[b] * e_per[b]
        if sig_e.max() + sky[b] * e_per[b] > geo["sat_e"]:
            tot = sig_e + sky[b] * e_per[b]
            _bleed(tot, geo["sat_e"])
            sig_e = tot - sky[b] * e_per[b]
        var_e = np.maximum(sig_e, 0.0) + sky[b] * e_per[b] + geo["dark_e2"][b]
        noise = rng.standard_normal(sig_e.shape)  # always drawn: same random stream with or without noise
        native[b] = (sig_e + (np.sqrt(var_e) * noise if geo["noise"] else 0.0)) / e_per[b]
    yy, xx = (np.mgrid[0:n_nat, 0:n_nat] - (n_nat - 1) / 2.0) * s_nat
    if int(p["trail_band"]) >= 0:
        b = int(p["trail_band"])
        theta = rng.uniform(0, np.pi)
        x0, y0 = rng.uniform(-fov / 2, fov / 2, 2)
        d = (xx - x0) * np.sin(theta) - (yy - y0) * np.cos(theta)
        sigma = float(p["fwhm"][b]) / 2.3548
        native[b] += rng.uniform(0.05, 0.6) * geo["binning"] * np.exp(-0.5 * (d / sigma) ** 2)
    if int(p["badcol_band"]) >= 0:
        b = int(p["badcol_band"])
        col = int(rng.integers(0, n_nat))
        native[b][:, col] = -sky[b] if rng.random() < 0.5 else 5.0 * sky[b]  # dead or hot (sky-subtracted)
    # resample to the cutout grid (bilinear), preserving surface brightness -> nanomaggies per output pixel
    if n_nat == geo["n_out"] and s_nat == geo["scale_out"]:
        out = native  # drawn on the output grid
    else:
        i0, t = _bilinear_weights(geo["n_out"], geo["scale_out"], n_nat, s_nat)
        out = resample_bilinear(native, i0, t) * (geo["scale_out"] / s_nat) ** 2
    return np.ascontiguousarray(out[:, ::-1, :], dtype=np.float32)  # row 0 = top (north), as in SDSS JPEGs


def make_rgb(images: np.ndarray, q: float = 8.0, stretch: float = 0.4,
             scales: tuple[float, float, float] = (1.0, 1.3, 2.2), jpeg_quality: int = 0) -> np.ndarray:
    """irg colour composites (uint8 (n, H, W, 3)) of (n, 3, H, W) g, r, i images in nanomaggies.

    astropy's make_lupton_rgb (Lupton et al. 2004 asinh stretch of the summed intensity, colours preserved)
    with R <- i * scales[0], G <- r * scales[1], B <- g * scales[2]; pixel (y, x) of the composite is pixel
    (y, x) of the input (row 0 = top). `jpeg_quality` > 0 round-trips through JPEG.
    """
    from astropy.visualization import make_lupton_rgb

    images = np.asarray(images)
    out = np.empty((images.shape[0], images.shape[2], images.shape[3], 3), dtype=np.uint8)
    for k in range(images.shape[0]):
        g, r, i = images[k]
        with np.errstate(invalid="ignore", divide="ignore"):  # astropy divides 0/0 where intensity is 0
            rgb = make_lupton_rgb(i * scales[0], r * scales[1], g * scales[2], stretch=stretch, Q=q)
        out[k] = rgb
    if jpeg_quality > 0:
        import io

        from PIL import Image

        for k in range(out.shape[0]):
            buf = io.BytesIO()
            Image.fromarray(out[k]).save(buf, format="JPEG", quality=int(jpeg_quality))
            buf.seek(0)
            out[k] = np.asarray(Image.open(buf).convert("RGB"))
    return out


def _render_chunk(rows: np.ndarray, params: dict[str, np.ndarray], entropies: np.ndarray,
                  geo: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Worker task: render the galaxies of one chunk; returns (rows, images, rgb)."""
    imgs = np.empty((len(rows), 3, geo["n_out"], geo["n_out"]), dtype=np.float32)
    for k in range(len(rows)):
        p = {name: arr[k] for name, arr in params.items()}
        imgs[k] = render_galaxy(p, entropies[k], geo)
    rgb = make_rgb(imgs, geo["rgb_q"], geo["rgb_stretch"], geo["rgb_scales"], geo["jpeg"])
    return rows, imgs, rgb


def _mp_context() -> Any:
    """'fork' on Linux (no `if __name__ == "__main__"` guard needed in user scripts, no re-import cost);
    'spawn' elsewhere (macOS/Windows scripts then need the usual main guard)."""
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def galaxy_entropies(seed: int, n: int) -> np.ndarray:
    """(n, 4) uint32 per-galaxy seeds: SeedSequence(seed) -> child 1 -> spawn(n) (child 0 draws the catalogue)."""
    children = np.random.SeedSequence(seed).spawn(2)[1].spawn(n)
    return np.array([c.generate_state(4) for c in children], dtype=np.uint32)


def simulate_image_survey(config: ImageSurveyConfig, out_dir: str | os.PathLike, *, n_workers: int | None = 1,
                          progress: bool = False, overwrite: bool = False) -> ImageSet:
    """Draw, render and write a mock imaging survey; returns the opened `ImageSet`.

    `out_dir` follows the output-folder contract (`photopop.outputs`): a folder photopop wrote as an
    image set with the same config is rewritten, another one only with `overwrite`.

    n_workers: worker processes (None = all CPUs; 1 = in this process). The images do not depend on it.
    """
    from ..datasets.image_set import ImageSet, ImageSetWriter

    config.validate()
    from ..config import to_dict
    from ..outputs import check_output

    settings = {"config": to_dict(config)}
    check_output(out_dir, "image-set", settings, overwrite=overwrite)  # before rendering
    t0 = time.perf_counter()
    cat_rng = np.random.default_rng(np.random.SeedSequence(config.seed).spawn(2)[0])
    catalog, render = draw_catalog(config, cat_rng)
    n = len(catalog)
    entropies = galaxy_entropies(config.seed, n)
    geo = _geometry(config)
    chunks = [np.arange(s, min(s + config.chunk_size, n)) for s in range(0, n, config.chunk_size)]
    workers = (os.cpu_count() or 1) if n_workers is None else max(int(n_workers), 1)
    meta = {"kind": "mock-images", "seed": config.seed, "n_workers": workers,
            "photopop_version": __version__, "render_bands": list(RENDER_BANDS),
            "catalog_bands": list(BANDS_UGRIZ), "native_pixel_scale_arcsec": config.native_pixel_scale_arcsec,
            "electrons_per_nanomaggy_gri": geo["e_per"].tolist()}
    rgb_attrs = {"Q": config.rgb_q, "stretch": config.rgb_stretch, "scales_irg": list(config.rgb_scales),
                 "method": "astropy.visualization.make_lupton_rgb"}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="gal", desc="rendering")

    def task(rows: np.ndarray) -> tuple:
        return rows, {k: v[rows] for k, v in render.items()}, entropies[rows], geo

    with ImageSetWriter(out_dir, catalog, image_shape=(config.image_size, config.image_size),
                        pixel_scale_arcsec=config.pixel_scale_arcsec, meta=meta, config=config,
                        png=config.png, compression=config.compression or None, rgb_attrs=rgb_attrs,
                        settings=settings, overwrite=overwrite) as writer:
        def store(result: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
            rows, imgs, rgb = result
            writer.write(rows, images=imgs, rgb=rgb)
            if bar is not None:
                bar.update(len(rows))

        if workers == 1:
            for rows in chunks:
                store(_render_chunk(*task(rows)))
        else:
            ctx = _mp_context()
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                pending: set[cf.Future] = set()
                for rows in chunks:  # bounded number of chunks in flight: bounded memory
                    if len(pending) >= 2 * workers:
                        done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                        for fut in done:
                            store(fut.result())
                    pending.add(pool.submit(_render_chunk, *task(rows)))
                for fut in cf.as_completed(pending):
                    store(fut.result())
        writer.meta["elapsed_s"] = round(time.perf_counter() - t0, 2)
    if bar is not None:
        bar.close()
    return ImageSet.open(out_dir)


__all__ = ["ImageSurveyConfig", "simulate_image_survey", "draw_catalog", "render_galaxy", "make_rgb",
           "electrons_per_nanomaggy", "sky_nanomaggies_per_arcsec2", "petrosian_fraction",
           "half_light_radius", "galaxy_entropies", "draw_grid"]

