"""The plan of a mock IFU survey: everything but spectra and noise (`plan_survey` -> `SurveyPlan`).

Galaxies with their population parameters and hidden factors (`draw_population_parameters`), spaxel bins
(`photopop.simulate.geometry`), the bands (`select_bands`) with their depths (`band_depths`) and the SSP grid
cut to the rest-frame range the bands need (`load_ssp_grid`). Random streams: the survey seed's
`SeedSequence` spawns four; the plan uses the first three (sample, grid, populations), the simulator the
fourth (noise, one per galaxy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from ..photometry.filters import FilterSystem, load_filter_system
from ..populations.ssp import SSPGrid
from .geometry import draw_galaxies, spaxel_grid
from .ifu_config import DEFAULT_BAND_SET, IFUSurveyConfig, NoiseConfig, PopulationConfig


@dataclass
class SurveyPlan:
    """Galaxies (with their population parameters and hidden factors), spaxel bins, bands and SSP grid."""

    config: IFUSurveyConfig
    galaxies: pd.DataFrame
    spaxels: pd.DataFrame
    system: FilterSystem
    grid: SSPGrid
    depth_mag: np.ndarray

    def galaxy_rows(self, galaxy_id: int) -> np.ndarray:
        """Row indices of the spaxels of one galaxy."""
        return np.flatnonzero(self.spaxels["galaxy_id"].to_numpy() == galaxy_id)


def select_bands(config: IFUSurveyConfig) -> tuple[str, FilterSystem]:
    """(filter-system name for meta.json, selected FilterSystem) of a survey config."""
    system = load_filter_system(config.filter_system)
    if config.all_bands:
        return config.filter_system, system
    if config.bands:
        return config.filter_system, system.select(list(config.bands))
    if config.filter_system.lower() != "jpas":
        return config.filter_system, system
    paper = load_filter_system(DEFAULT_BAND_SET)
    return config.filter_system, system.select(paper.bands)


def band_depths(system: FilterSystem, noise: NoiseConfig) -> np.ndarray:
    """5-sigma depth (AB mag, 3-arcsec aperture) per band of `system` (see `NoiseConfig`)."""
    depth = np.interp(system.pivots, noise.depth_wave_aa, noise.depth_mag)
    depth = depth + np.where(np.array(system.kinds) == "narrow", 0.0, noise.depth_offset_broad)
    unknown = sorted(set(noise.depth_overrides) - set(system.bands))
    if unknown:
        raise InputError(f"noise.depth_overrides names band(s) {unknown} that are not simulated")
    for b, v in noise.depth_overrides.items():
        depth[system.bands.index(b)] = float(v)
    return depth


def _u(rng: np.random.Generator, lo_hi: tuple[float, float], size: int) -> np.ndarray:
    lo, hi = lo_hi
    return lo + (hi - lo) * rng.random(size)


def draw_population_parameters(galaxies: pd.DataFrame, pop: PopulationConfig,
                               rng: np.random.Generator) -> pd.DataFrame:
    """Per-galaxy population parameters and hidden factors (columns added to a copy of `galaxies`)."""
    from astropy.cosmology import Planck18

    g = galaxies.copy()
    n = len(g)
    early = (g["type"] == "early").to_numpy()
    logm = g["log_mstar"].to_numpy()
    t_univ = Planck18.age(g["redshift"].to_numpy()).to_value("Gyr")

    zh_c = (pop.zh_at_10p5 + pop.zh_mass_slope * (logm - 10.5) + pop.zh_scatter * rng.standard_normal(n)
            + np.where(early, pop.zh_early_offset, 0.0))
    grad_zh = np.where(early, pop.grad_zh_early[0] + pop.grad_zh_early[1] * rng.standard_normal(n),
                       pop.grad_zh_late[0] + pop.grad_zh_late[1] * rng.standard_normal(n))
    t0 = np.where(early, _u(rng, pop.age_start_early, n), _u(rng, pop.age_start_late, n))
    t0 = np.minimum(t0, t_univ - 0.05)
    t0_grad = np.where(early, _u(rng, pop.age_start_grad_early, n), _u(rng, pop.age_start_grad_late, n))
    log_tau = np.where(early, _u(rng, pop.log_tau_early, n),
                       pop.log_tau_at_10p5 + pop.log_tau_mass_slope * (logm - 10.5)
                       + pop.log_tau_scatter * rng.standard_normal(n))
    log_tau_grad = np.where(early, _u(rng, pop.log_tau_grad_early, n), _u(rng, pop.log_tau_grad_late, n))
    bulge_t0 = np.minimum(_u(rng, pop.bulge_age_start, n), t_univ - 0.05)
    bulge_log_tau = _u(rng, pop.bulge_log_tau, n)
    cos_i = np.cos(np.deg2rad(g["inclination_deg"].to_numpy()))
    a_v0 = np.where(early, _u(rng, pop.a_v_early, n), _u(rng, pop.a_v_late, n)) * cos_i ** -pop.a_v_inclination_power
    a_v_scale = _u(rng, pop.a_v_scale_re, n)

    family = np.where(rng.random(n) < pop.exponential_fraction, "exponential", "delayed")
    dust_slope = pop.dust_slope_sd * np.clip(rng.standard_normal(n), -2.5, 2.5)
    birth = _u(rng, pop.birth_cloud_factor, n)
    alpha = pop.alpha_tweak_sd * np.clip(rng.standard_normal(n), -2.5, 2.5)
    has_burst = rng.random(n) < np.where(early, pop.burst_probability_early, pop.burst_probability_late)
    burst_frac = np.where(has_burst, 10.0 ** _u(rng, pop.burst_log_fraction, n), 0.0)
    burst_age = 10.0 ** _u(rng, tuple(np.log10(pop.burst_age_gyr)), n)
    burst_scale = _u(rng, pop.burst_scale_re, n)
    chem = _u(rng, pop.chem_slope, n)
    log_u = _u(rng, pop.log_u, n)

    g["zh_centre_input"] = zh_c
    g["grad_zh_input"] = grad_zh
    g["age_start_gyr_input"] = t0
    g["grad_age_start_input"] = -t0_grad
    g["log_tau_gyr_input"] = log_tau
    g["grad_log_tau_input"] = log_tau_grad
    g["bulge_age_start_gyr"] = bulge_t0
    g["bulge_log_tau_gyr"] = bulge_log_tau
    g["a_v_centre"] = a_v0
    g["a_v_scale_re"] = a_v_scale
    g["sfh_family"] = family
    g["dust_slope"] = dust_slope
    g["birth_cloud_factor"] = birth
    g["alpha_tweak"] = alpha
    g["burst_fraction"] = burst_frac
    g["burst_age_gyr"] = burst_age
    g["burst_scale_re"] = burst_scale
    g["chem_slope"] = chem
    g["log_u"] = log_u
    return g


def plan_survey(config: IFUSurveyConfig) -> SurveyPlan:
    """Draw the sample, the bins and the population parameters; load the bands and the SSP grid."""
    config.check()
    ss = np.random.SeedSequence(int(config.seed))
    s_sample, s_grid, s_pop, _ = ss.spawn(4)
    galaxies = draw_galaxies(config.sample, np.random.default_rng(s_sample))
    spaxels = spaxel_grid(galaxies, config.sample, np.random.default_rng(s_grid))
    galaxies = draw_population_parameters(galaxies, config.populations, np.random.default_rng(s_pop))
    _, system = select_bands(config)
    depth = band_depths(system, config.noise)
    # rest-frame range the bands need at the survey's redshifts (1 per cent beyond the 1%-of-peak support)
    lo = system.wavelength_ranges[:, 0].min() / (1 + galaxies["redshift"].max()) / 1.01
    hi = system.wavelength_ranges[:, 1].max() / (1 + galaxies["redshift"].min()) * 1.01
    lo, hi = min(lo, 5400.0), max(hi, 5600.0)  # keep the 5450-5550 A label reference window
    grid = load_ssp_grid(config, (lo, hi))
    w0, w1 = grid.wavelength_aa[0], grid.wavelength_aa[-1]
    z_lo, z_hi = galaxies["redshift"].min(), galaxies["redshift"].max()
    covered = system.inside((w0 * (1 + z_hi), w1 * (1 + z_lo)))
    if not covered.all():
        missing = [b for b, c in zip(system.bands, covered) if not c]
        raise InputError(f"SSP grid {grid.name} covers {w0:.0f}-{w1:.0f} A (rest), too little for band(s) {missing} "
                         f"at z = {z_lo:.3f}-{z_hi:.3f}; choose bands inside it (config 'bands')")
    return SurveyPlan(config, galaxies, spaxels, system, grid, depth)


def load_ssp_grid(config: IFUSurveyConfig, wave_range: tuple[float, float]) -> SSPGrid:
    """The survey's SSP grid (BC03 by default, see `IFUSurveyConfig.ssp_folder` / `ssp_file`), cut to wave_range."""
    if config.ssp_folder:
        return SSPGrid.from_miles_folder(config.ssp_folder, pattern=config.ssp_pattern, wave_range=wave_range)
    if config.ssp_file:
        return SSPGrid.from_file(config.ssp_file, wave_range=wave_range)
    return SSPGrid.bc03(wave_range=wave_range)


__all__ = ["SurveyPlan", "band_depths", "draw_population_parameters", "load_ssp_grid", "plan_survey",
           "select_bands"]
