"""Mock IFU survey: a CALIFA-like galaxy sample observed with J-PAS-like photometry per spaxel.

`simulate_ifu_survey(IFUSurveyConfig()) -> SEDTable` is the embedded default data set of photopop: 190
galaxies (44 early types), ~100 binned spaxels each, out to 2.5 R_e, as in Liew-Cain et al. (2021, Sect. 2).

Physics, per galaxy (see docs/mock-ifu.md for the numbers and references):

* geometry, masses and sizes from `photopop.simulate.geometry` (Shen et al. 2003 sizes, bulge + disc Sersic
  profiles, random orientation, square sky bins);
* every spaxel has its own star-formation history: a bulge (old exponential SFH) plus a disc (delayed-tau or
  exponential, per galaxy) whose start time decreases and whose timescale grows with radius (inside-out
  growth), an optional recent burst, a chemical history [Z/H](age) = [Z/H]_final(r) - chem_slope * age / T_0(r)
  with [Z/H]_final falling with radius, and dust A_V(r) falling exponentially with radius;
* galaxy-specific hidden factors that the labels do not capture: SFH family, dust-curve slope and birth-cloud
  factor, an alpha-like line-strength tweak (Mg b up, Fe 5270/5335 down), burst fraction, age and extent,
  chemical-history slope. They make galaxies differ from each other more than the spaxels of one galaxy do
  (the Set A / Set B gap of the paper; `photopop.evaluation.galaxy_gap` measures it);
* composite spectra through `photopop.populations.iter_compose` on the BC03 grid restricted to the rest-frame
  range the bands need; band fluxes from the photometry weight matrix at the galaxy's redshift, scaled by
  the bin's stellar mass and the Planck18 luminosity distance; spectra are never all held at once (one
  galaxy at a time);
* noise: background-limited, from a per-band 5-sigma depth (AB mag in a 3-arcsec aperture) scaled to the bin
  area, plus a calibration floor; noise on the labels (default 0.05 dex) with the true labels kept.

Randomness: one `numpy.random.SeedSequence(seed)` spawns independent streams for the sample, the grid, the
population parameters and the noise (one per galaxy), so the same seed gives the same table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..datasets.sed_table import SEDTable
from ..geometry import radial_slopes
from ..photometry.columns import MAG_PREFIX, MAGERR_PREFIX, MAGTRUE_PREFIX
from ..photometry.ab import AB_ZERO_POINT_JY
from ..photometry.synth import band_weights
from ..populations.compose import compose, iter_compose
from ..populations.dust import DustModel, calzetti_k
from ..populations.labels import Labels
from ..populations.nebular import NebularLines
from ..populations.sfh import Combined, DelayedTau, Exponential, with_burst
from .geometry import luminosity_distance_mpc
# the settings and the plan, importable from here as before (their homes: ifu_config, ifu_plan)
from .ifu_config import DEFAULT_BAND_SET, IFUSurveyConfig, NoiseConfig, PopulationConfig
from .ifu_plan import (SurveyPlan, band_depths, draw_population_parameters, load_ssp_grid, plan_survey,
                       select_bands)

#: erg/s per L_sun (IAU 2015 nominal) and cm per Mpc
L_SUN_ERG_S = 3.828e33
MPC_CM = 3.0856775814913673e24
#: floor of log10(sSFR / yr^-1) for spaxels without recent star formation
LOG_SSFR_FLOOR = -14.0
#: alpha-like tweak: (centre A, sigma A, relative depth) of features deepened (+) or weakened (-) by it
ALPHA_FEATURES = ((5177.0, 20.0, 1.0), (4300.0, 30.0, 0.5), (5270.0, 15.0, -0.6), (5335.0, 15.0, -0.6))


# -- dust with a per-galaxy slope -----------------------------------------------------------------
@dataclass(frozen=True)
class SlopedCalzetti(DustModel):
    """Calzetti (2000) curve tilted by (lambda / 5500 A)**slope (Noll et al. 2009), with birth clouds.

    Diffuse A_lambda / A_V = k(lambda) / R_V * (lambda / 5500)**slope; stars younger than t_bc_yr get
    birth_factor times the diffuse attenuation (extra = birth_factor - 1).
    """

    slope: float = 0.0
    birth_factor: float = 1.0
    r_v: float = 4.05
    t_bc_yr: float = 1e7
    name: str = "calzetti-sloped"

    def diffuse(self, wave_aa):
        w = np.asarray(wave_aa, dtype=np.float64)
        return calzetti_k(w, self.r_v) / self.r_v * (w / 5500.0) ** self.slope

    def birth(self, wave_aa):
        return (self.birth_factor - 1.0) * self.diffuse(wave_aa)

    @property
    def has_birth_clouds(self) -> bool:
        return self.birth_factor != 1.0


def alpha_modulation(wave_rest_aa: np.ndarray, amplitude: float) -> np.ndarray:
    """Multiplicative line-strength tweak 1 - amplitude * sum_j d_j G_j(lambda) (rest frame).

    Positive amplitude deepens Mg b 5177 and the G band 4300 and weakens Fe 5270/5335, as alpha
    enhancement does; an order-0.05 amplitude changes narrow-band magnitudes by ~0.01 mag.
    """
    w = np.asarray(wave_rest_aa, dtype=np.float64)
    m = np.ones_like(w)
    for centre, sigma, depth in ALPHA_FEATURES:
        m -= amplitude * depth * np.exp(-0.5 * ((w - centre) / sigma) ** 2)
    return m


def _galaxy_populations(plan: SurveyPlan, galaxy_id: int) -> tuple[Any, np.ndarray, np.ndarray, SlopedCalzetti]:
    """(SFH, [Z/H](age) (n, nAge), A_V (n,), dust model) of one galaxy's spaxels."""
    g = plan.galaxies.iloc[int(np.flatnonzero(plan.galaxies["galaxy_id"].to_numpy() == galaxy_id)[0])]
    rows = plan.galaxy_rows(galaxy_id)
    r = plan.spaxels["r_re"].to_numpy()[rows]
    share = plan.spaxels["bulge_share"].to_numpy()[rows]
    n = rows.size
    # start of the disc's star formation (lookback, Gyr): latest at large radii; the centre value is capped
    # by the age of the Universe at the galaxy's redshift when drawn
    t0 = np.clip(g["age_start_gyr_input"] + g["grad_age_start_input"] * r, 1.0, None)
    tau = 10.0 ** (g["log_tau_gyr_input"] + g["grad_log_tau_input"] * r)
    disc_cls = Exponential if g["sfh_family"] == "exponential" else DelayedTau
    disc = disc_cls(age_start_gyr=t0, tau_gyr=tau, mass=1.0 - share)
    bulge = Exponential(age_start_gyr=np.full(n, g["bulge_age_start_gyr"]),
                        tau_gyr=np.full(n, 10.0 ** g["bulge_log_tau_gyr"]), mass=share)
    sfh = Combined([bulge, disc])
    if g["burst_fraction"] > 0:
        sfh = with_burst(sfh, g["burst_age_gyr"], g["burst_fraction"] * np.exp(-r / g["burst_scale_re"]))
    zh_final = g["zh_centre_input"] + g["grad_zh_input"] * r
    age_gyr = plan.grid.ages_yr / 1e9
    zh_age = zh_final[:, None] - g["chem_slope"] * np.clip(age_gyr[None, :] / t0[:, None], 0.0, 1.0)
    a_v = g["a_v_centre"] * np.exp(-r / g["a_v_scale_re"])
    dust = SlopedCalzetti(slope=float(g["dust_slope"]), birth_factor=float(g["birth_cloud_factor"]))
    return sfh, zh_age, a_v, dust


def _flux_scale(redshift: float) -> float:
    """From L_sun/A (rest) to observed erg/s/cm^2/A: L_sun / (4 pi d_L^2 (1 + z))."""
    d_l = float(luminosity_distance_mpc(redshift)) * MPC_CM
    return L_SUN_ERG_S / (4.0 * np.pi * d_l**2 * (1.0 + redshift))


def galaxy_spectra(plan: SurveyPlan, galaxy_id: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Noise-free observed spectra of one galaxy's spaxels (for figures and checks).

    Returns (observed wavelength (A), f_lambda (n_spaxels, n_wave) in erg/s/cm^2/A, the spaxel rows).
    The band fluxes of these spectra are the table's magtrue_* (same composition, same scaling).
    """
    g = plan.galaxies.set_index("galaxy_id").loc[galaxy_id]
    rows = plan.galaxy_rows(galaxy_id)
    sfh, zh_age, a_v, dust = _galaxy_populations(plan, galaxy_id)
    comp = compose(plan.grid, sfh, zh_age, a_v, dust, per_unit_mass=_mass_kind(plan), z_outside="clip",
                   outside="clip", mass=_mass_kind(plan), light=plan.config.light_weighting, dtype="float64",
                   nebular=_nebular(plan, g))
    z = float(g["redshift"])
    mass = plan.spaxels["mass_msun"].to_numpy()[rows]
    flux = comp.flux * alpha_modulation(comp.wavelength_aa, float(g["alpha_tweak"]))[None, :]
    flux = flux * mass[:, None] * _flux_scale(z)
    return comp.wavelength_aa * (1 + z), flux, plan.spaxels.iloc[rows].reset_index(drop=True)


def _galaxy_photometry(plan: SurveyPlan, galaxy_id: int) -> tuple[np.ndarray, Labels]:
    """Noise-free band fluxes (maggies, (n, n_bands)) and labels of one galaxy's spaxels.

    Spectra are composed in float32 (chunks of at most 2048 spaxels, on the plan's grid, which is cut to
    the rest-frame wavelengths the bands see) and projected at once onto the photometry weight matrix.
    """
    g = plan.galaxies.set_index("galaxy_id").loc[galaxy_id]
    rows = plan.galaxy_rows(galaxy_id)
    sfh, zh_age, a_v, dust = _galaxy_populations(plan, galaxy_id)
    z = float(g["redshift"])
    wave = plan.grid.wavelength_aa
    bw = band_weights(wave * (1 + z), plan.system, "flambda")
    # Jy per (L_sun/A rest): weight matrix x distance dimming x the galaxy's alpha tweak
    matrix = bw.matrix * _flux_scale(z) * alpha_modulation(wave, float(g["alpha_tweak"]))[None, :]
    proj = np.ascontiguousarray(matrix.T, dtype=np.float32)  # the plan's grid is already cut to the bands
    values = np.empty((rows.size, matrix.shape[0]))
    parts: list[tuple[np.ndarray, Labels]] = []
    for idx, flux, labels in iter_compose(plan.grid, sfh, zh_age, a_v, dust, z_outside="clip", outside="clip",
                                          light=plan.config.light_weighting, dtype="float32", mass=_mass_kind(plan),
                                          nebular=_nebular(plan, g)):
        values[idx] = flux @ proj
        parts.append((idx, labels))
    order = np.concatenate([p[0] for p in parts])
    lab = Labels.concatenate([p[1] for p in parts])
    inv = np.empty(rows.size, dtype=np.int64)
    inv[order] = np.arange(rows.size)
    lab = Labels(**{k: v[inv] for k, v in vars(lab).items()})
    # per unit surviving stellar mass (mass formed for grids without mass fractions), times the bin's mass
    mass = plan.spaxels["mass_msun"].to_numpy()[rows]
    per = lab.stellar_mass if _mass_kind(plan) == "surviving" else lab.mass_formed
    maggies = values / per[:, None] * mass[:, None] / AB_ZERO_POINT_JY
    return maggies, lab


def _mass_kind(plan: SurveyPlan) -> str:
    """Bins hold stellar (surviving) mass; a grid without surviving-mass fractions normalises by mass formed."""
    return "surviving" if plan.grid.mass_fraction is not None else "formed"


def _nebular(plan: SurveyPlan, g: pd.Series) -> NebularLines | None:
    """Emission lines of the galaxy's young stars (None when switched off)."""
    if not plan.config.nebular or plan.grid.name != "bc03_miles":
        return None  # CLOUDY line grids exist for BC03 only (recorded as meta['nebular'])
    return NebularLines(log_u=float(g["log_u"]), sigma_kms=plan.config.line_sigma_kms)


def _observe(maggies: np.ndarray, area_arcsec2: np.ndarray, depth_mag: np.ndarray, noise: NoiseConfig,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(observed maggies, their 1-sigma errors, noise-free S/N) for bins of the given area."""
    f5 = 10.0 ** (-0.4 * depth_mag)  # 5-sigma flux in maggies in the aperture
    ap_area = np.pi * (0.5 * noise.aperture_arcsec) ** 2
    sky = f5[None, :] / 5.0 * np.sqrt(area_arcsec2[:, None] / ap_area) / noise.snr_scale
    floor = noise.mag_floor / (2.5 / np.log(10.0)) * maggies
    sigma = np.sqrt(sky**2 + floor**2)
    snr = maggies / sigma
    observed = maggies + sigma * rng.standard_normal(maggies.shape)
    return observed, sigma, snr


def simulate_ifu_survey(config: IFUSurveyConfig | None = None) -> SEDTable:
    """Simulate the mock IFU survey; returns a validated `SEDTable` (kind 'mock-ifu').

    One galaxy at a time: compose its spaxels' band fluxes, scale by mass and distance, add noise. The
    galaxy table holds the true label gradients fitted to the noise-free labels inside R_e
    (grad_log_age, grad_zh) next to the input parameter gradients (grad_*_input).

    Parameters
    ----------
    config : IFUSurveyConfig, optional
        Sample, spaxel layout, populations, bands and noise (default: the 190-galaxy default mock);
        the same config (and seed) gives the same table.

    Returns
    -------
    SEDTable
        Spaxel rows (ids, geometry, ``mag_``/``magerr_``/``magtrue_<band>``, labels and truths), the galaxy
        table and metadata (filter system, bands, seed, config).
    """
    config = config or IFUSurveyConfig()
    plan = plan_survey(config)
    noise = config.noise
    ss = np.random.SeedSequence(int(config.seed))
    noise_seeds = ss.spawn(4)[3].spawn(len(plan.galaxies))
    bands = plan.system.bands
    ref_band = int(np.argmin(np.abs(plan.system.pivots - 5500.0)))  # light weights for galaxy means
    parts: list[pd.DataFrame] = []
    n_clamped = 0
    for k, gid in enumerate(plan.galaxies["galaxy_id"].to_numpy()):
        rows = plan.galaxy_rows(gid)
        if rows.size == 0:
            continue
        maggies, labels = _galaxy_photometry(plan, int(gid))
        spx = plan.spaxels.iloc[rows].reset_index(drop=True)
        rng = np.random.default_rng(noise_seeds[k])
        area = spx["spacing_arcsec"].to_numpy() ** 2
        if np.isinf(noise.snr_scale):
            observed, sigma = maggies.copy(), np.zeros_like(maggies)
            snr = np.full(maggies.shape, np.inf)
        else:
            observed, sigma, snr = _observe(maggies, area, plan.depth_mag, noise, rng)
        # a flux below its 1-sigma error is reported at 1 sigma (an upper-limit surrogate, magerr ~1.09)
        low = observed < sigma
        n_clamped += int(low.sum())
        observed = np.where(low, sigma, observed)
        df = spx[["galaxy_id", "spaxel_id", "x_arcsec", "y_arcsec", "r_re"]].copy()
        mag = -2.5 * np.log10(observed)
        with np.errstate(divide="ignore", invalid="ignore"):
            magerr = np.where(sigma > 0, 2.5 / np.log(10.0) * sigma / observed, 0.0)
        magtrue = -2.5 * np.log10(maggies)
        cols: dict[str, np.ndarray] = {}
        for j, b in enumerate(bands):
            cols[MAG_PREFIX + b] = mag[:, j]
            cols[MAGERR_PREFIX + b] = magerr[:, j]
        for j, b in enumerate(bands):
            cols[MAGTRUE_PREFIX + b] = magtrue[:, j]
        la_true, zh_true = labels.log_age, labels.zh
        cols["log_age"] = la_true + noise.label_noise_age * rng.standard_normal(len(df))
        cols["zh"] = zh_true + noise.label_noise_zh * rng.standard_normal(len(df))
        cols["log_age_true"] = la_true
        cols["zh_true"] = zh_true
        cols["log_age_mw"] = labels.log_age_mw
        cols["zh_mw"] = labels.zh_mw
        cols["a_v"] = labels.a_v
        # specific SFR over 100 Myr per unit of the bin's mass (stellar, or formed for grids without fractions)
        ssfr = labels.sfr_100 / (labels.stellar_mass if _mass_kind(plan) == "surviving" else labels.mass_formed)
        with np.errstate(divide="ignore"):
            cols["log_ssfr"] = np.maximum(np.log10(ssfr), LOG_SSFR_FLOOR)
        cols["mass_msun"] = spx["mass_msun"].to_numpy()
        cols["bin_size_arcsec"] = spx["spacing_arcsec"].to_numpy()
        cols["bulge_share"] = spx["bulge_share"].to_numpy()
        cols["sfr_100_msun_yr"] = ssfr * spx["mass_msun"].to_numpy()
        cols["light_5500"] = maggies[:, ref_band]
        cols["snr_median"] = np.median(snr, axis=1)
        df = pd.concat([df, pd.DataFrame(cols)], axis=1)
        df = df[df["snr_median"] >= noise.min_snr]
        parts.append(df)
    spaxels = pd.concat(parts, ignore_index=True)
    galaxies = _galaxy_table(plan.galaxies, spaxels)
    spaxels = spaxels.drop(columns=["light_5500"])
    meta = {
        "kind": "mock-ifu",
        "filter_system": select_bands(config)[0],
        "bands": bands,
        "seed": int(config.seed),
        "photopop_version": __version__,
        "n_galaxies": int(galaxies.shape[0]),
        "n_spaxels": int(spaxels.shape[0]),
        "n_fluxes_below_1sigma": n_clamped,
        "depth_5sigma_mag": dict(zip(bands, plan.depth_mag.round(4).tolist())),
        "ssp_grid": plan.grid.name,
        "nebular": bool(config.nebular and plan.grid.name == "bc03_miles"),
        "mass_normalisation": _mass_kind(plan),
    }
    return SEDTable(spaxels, galaxies, meta, config).validate(source="mock IFU survey")


def _galaxy_table(galaxies: pd.DataFrame, spaxels: pd.DataFrame) -> pd.DataFrame:
    """The galaxy table: sample columns, integrated sSFR, light-weighted A_V (band nearest 5500 A), true
    gradients, input parameters and hidden factors."""
    gid = spaxels["galaxy_id"].to_numpy()
    r = spaxels["r_re"].to_numpy()
    out = galaxies[galaxies["galaxy_id"].isin(np.unique(gid))].reset_index(drop=True).copy()
    grads = {}
    for col in ("log_age_true", "zh_true", "log_age_mw", "zh_mw"):  # least squares inside R_e
        slope = radial_slopes(r, spaxels[col].to_numpy(), gid, r_max=1.0, min_inside=2, min_outside=0)
        grads[col] = slope.reindex(out["galaxy_id"]).to_numpy()
    by = spaxels.groupby("galaxy_id")
    mass = by["mass_msun"].sum().reindex(out["galaxy_id"]).to_numpy()
    sfr = by["sfr_100_msun_yr"].sum().reindex(out["galaxy_id"]).to_numpy()
    w = spaxels["light_5500"]
    a_v = (spaxels["a_v"] * w).groupby(gid).sum() / w.groupby(gid).sum()
    with np.errstate(divide="ignore"):
        out["log_ssfr"] = np.maximum(np.log10(sfr / mass), LOG_SSFR_FLOOR)
    out["a_v"] = a_v.reindex(out["galaxy_id"]).to_numpy()
    out["grad_log_age"] = grads["log_age_true"]
    out["grad_zh"] = grads["zh_true"]
    out["grad_log_age_mw"] = grads["log_age_mw"]
    out["grad_zh_mw"] = grads["zh_mw"]
    out["n_spaxels"] = by.size().reindex(out["galaxy_id"]).to_numpy().astype(np.int64)
    first = ["galaxy_id", "type", "log_mstar", "re_arcsec", "re_kpc", "inclination_deg", "pa_deg", "redshift",
             "log_ssfr", "a_v", "bulge_fraction", "grad_log_age", "grad_zh"]
    return out[first + [c for c in out.columns if c not in first]]


__all__ = ["ALPHA_FEATURES", "DEFAULT_BAND_SET", "IFUSurveyConfig", "LOG_SSFR_FLOOR", "NoiseConfig",
           "PopulationConfig", "SlopedCalzetti", "SurveyPlan", "alpha_modulation", "band_depths",
           "draw_population_parameters", "galaxy_spectra", "load_ssp_grid", "plan_survey", "select_bands",
           "simulate_ifu_survey"]
