"""Labels of the mock imaging survey: stellar mass, SFR and gas-phase metallicity 12+log(O/H).

The chain (all vectorised, every draw from a numpy Generator):

* star-forming main sequence (Renzini & Peng 2015, Chabrier IMF): log SFR = 0.76 log M* - 7.64, with
  (1+z)^2.8 evolution and 0.3 dex scatter; a mass-dependent fraction of galaxies is quenched (SFR 1.2 dex
  below the sequence, 0.4 dex scatter);
* mass-metallicity relation of Tremonti et al. (2004), the paper's eq. 2: `mzr_tremonti04`;
* fundamental metallicity relation (Mannucci et al. 2010): at fixed mass, metallicity falls with SFR; we
  evaluate the MZR at mu = log M* - alpha (log SFR - log SFR_MS(M*)) with alpha = 0.32, so galaxies on the
  main sequence follow eq. 2 exactly;
* size dependence (Ellison et al. 2008): at fixed mass, compact galaxies are more metal-rich
  (d 12+log(O/H) / d log R_e = -0.25 by default);
* a Gaussian random term whose width makes the total scatter at fixed mass `oh_scatter` (0.10 dex);
* the fibre effect (`photopop.simulate.fibre`): an SDSS fibre (3" diameter) sees the emission-line-weighted
  metallicity of the disc area it covers; with a radial gradient that steepens with mass (Belfiore et al. 2017)
  a fibre that reaches further out -- because the galaxy is small or distant, or seen edge-on so that the line of
  sight crosses the whole disc, and dust hides the inner disc (Tremonti et al. 2004) -- measures lower
  metallicity; plus 0.03 dex measurement noise.

`oh_true` is the galaxy's characteristic gas metallicity: its value at `pivot` R_e (0.5 by default, about
what a face-on fibre covers at the survey's median redshift), so that eq. 2 describes `oh_true` and, on
average, the observed fibre values too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

#: solar 12 + log(O/H) (Asplund et al. 2009), to tie stellar [Z/H] to gas metallicity
OH_SUN = 8.69
#: validity range of the Tremonti et al. (2004) polynomial in log M*
MZR_LOGM_RANGE = (8.5, 11.5)


def mzr_tremonti04(logm: np.ndarray | float) -> np.ndarray:
    """Tremonti et al. (2004) MZR, Wu & Boada (2019) eq. 2: 12+log(O/H) = -1.492 + 1.847 x - 0.08026 x^2.

    x = log10(M*/M_sun). The pure polynomial (no clipping); it was fitted over 8.5 < x < 11.5 and turns
    over at x = 11.51, so do not extrapolate far outside that range.
    """
    x = np.asarray(logm, dtype=np.float64)
    return -1.492 + 1.847 * x - 0.08026 * x**2


def mzr_slope(logm: np.ndarray | float) -> np.ndarray:
    """d(12+log O/H)/d log M* of `mzr_tremonti04`."""
    return 1.847 - 2.0 * 0.08026 * np.asarray(logm, dtype=np.float64)


@dataclass
class LabelConfig:
    """Parameters of the label model (see module docstring; defaults from the cited papers)."""

    ms_slope: float = 0.76          # Renzini & Peng (2015) main sequence slope
    ms_intercept: float = -7.64     # log SFR at log M* = 0, z = 0 (Chabrier)
    ms_evolution: float = 2.8       # SFR_MS ∝ (1+z)^ms_evolution
    ms_scatter: float = 0.3         # dex
    quenched_max_fraction: float = 0.3  # at high mass (an emission-line-selected sample has few passive galaxies)
    quenched_logm50: float = 10.7   # mass where half of quenched_max_fraction is reached
    quenched_width: float = 0.3     # dex, width of the logistic quenched-fraction curve
    quenched_offset: float = -1.2   # dex below the main sequence
    quenched_scatter: float = 0.4   # dex
    fmr_alpha: float = 0.32         # Mannucci et al. (2010) mu_0.32
    fmr_dsfr_clip: float = 1.0      # |Delta log SFR| used in the FMR term is clipped to this
    size_coupling: float = -0.25    # d(12+log O/H)/d(log R_e residual), Ellison et al. (2008)
    oh_scatter: float = 0.10        # total intrinsic scatter of oh_true at fixed mass, dex
    #: how the random term is sized: 'mzr_total' (oh_true scatters by oh_scatter at fixed mass, Tremonti et al.
    #: 2004) or 'fmr_residual' (the observed scatter at fixed mass and SFR, size term and measurement noise
    #: included, is fmr_residual_scatter: ~0.05 dex, Mannucci et al. 2010; 0.054, Curti et al. 2020)
    oh_scatter_model: str = "mzr_total"
    fmr_residual_scatter: float = 0.05
    gradient_dex_per_re: float = -0.14  # steepest gas metallicity gradient, at log M* = 10.5 (Belfiore et al. 2017)
    gradient_shape: str = "belfiore17"  # 'belfiore17': flat at log M* <= 9, steepest at 10.5, half of it at 11.5;
                                        # 'constant': gradient_dex_per_re at every mass (Sanchez et al. 2014: -0.10)
    pivot_re: float = 0.5           # radius (R_e) at which oh_true is defined
    fibre_radius_arcsec: float = 1.5  # SDSS fibre: 3" diameter
    fibre_seeing_fwhm_arcsec: float = 1.4  # seeing that blurs light into/out of the fibre
    emission_thickness: float = 0.1   # scale height / scale length of the emission-line disc
    fibre_dust: bool = True         # weight the fibre's emission by its dust attenuation (Tremonti et al. 2004)
    nebular_reddening_factor: float = 2.27  # A_V(gas) / A_V(stars) = 1 / 0.44 (Calzetti et al. 2000)
    dust_scale_ratio: float = 1.4   # dust / stellar disc scale length (Xilouris et al. 1999)
    dust_height_ratio: float = 0.5  # dust / emission disc scale height (Xilouris et al. 1999)
    oh_noise: float = 0.03          # measurement noise of the fibre metallicity, dex
    stellar_zh_offset_old: float = -0.2  # [Z/H] of old disc stars relative to the gas, dex

    def validate(self) -> None:
        for name in ("ms_scatter", "quenched_scatter", "oh_scatter", "oh_noise", "quenched_width",
                     "fibre_radius_arcsec", "fibre_seeing_fwhm_arcsec", "emission_thickness",
                     "nebular_reddening_factor"):
            if not getattr(self, name) >= 0:
                raise InputError(f"LabelConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.quenched_max_fraction <= 1:
            raise InputError("LabelConfig.quenched_max_fraction must lie in [0, 1]")
        if self.oh_scatter_model not in ("mzr_total", "fmr_residual"):
            raise InputError(f"LabelConfig.oh_scatter_model must be 'mzr_total' or 'fmr_residual', "
                             f"got {self.oh_scatter_model!r}")
        if not self.fmr_residual_scatter >= 0:
            raise InputError(f"LabelConfig.fmr_residual_scatter must be >= 0, got {self.fmr_residual_scatter}")
        if self.gradient_shape not in ("belfiore17", "constant"):
            raise InputError(f"LabelConfig.gradient_shape must be 'belfiore17' or 'constant', got {self.gradient_shape!r}")
        for name in ("dust_scale_ratio", "dust_height_ratio"):
            if not getattr(self, name) > 0:
                raise InputError(f"LabelConfig.{name} must be > 0, got {getattr(self, name)}")


def main_sequence_log_sfr(logm: np.ndarray, redshift: np.ndarray | float, cfg: LabelConfig) -> np.ndarray:
    """log10 SFR (M_sun/yr) of the star-forming main sequence at (log M*, z)."""
    logm = np.asarray(logm, dtype=np.float64)
    return cfg.ms_slope * logm + cfg.ms_intercept + cfg.ms_evolution * np.log10(1.0 + np.asarray(redshift))


def quenched_fraction(logm: np.ndarray, cfg: LabelConfig) -> np.ndarray:
    """Fraction of quenched galaxies at log M* (logistic in mass)."""
    w = max(cfg.quenched_width, 1e-6)
    return cfg.quenched_max_fraction / (1.0 + np.exp(-(np.asarray(logm) - cfg.quenched_logm50) / w))


def draw_sfr(logm: np.ndarray, redshift: np.ndarray, rng: np.random.Generator,
             cfg: LabelConfig) -> tuple[np.ndarray, np.ndarray]:
    """Draw (log SFR, quenched flag) for each galaxy."""
    logm = np.asarray(logm, dtype=np.float64)
    ms = main_sequence_log_sfr(logm, redshift, cfg)
    quenched = rng.random(logm.shape) < quenched_fraction(logm, cfg)
    scatter = np.where(quenched, cfg.quenched_scatter, cfg.ms_scatter)
    log_sfr = ms + np.where(quenched, cfg.quenched_offset, 0.0) + scatter * rng.standard_normal(logm.shape)
    return log_sfr, quenched


def fmr_oh(logm: np.ndarray, delta_log_sfr: np.ndarray, cfg: LabelConfig) -> np.ndarray:
    """Mean 12+log(O/H) at (M*, SFR offset from the main sequence): the MZR at mu = log M* - alpha dSFR.

    The argument is clipped to the polynomial's fitted range (8.5, 11.5) (flat beyond: no turnover artefact).
    """
    dsfr = np.clip(np.asarray(delta_log_sfr, dtype=np.float64), -cfg.fmr_dsfr_clip, cfg.fmr_dsfr_clip)
    mu = np.asarray(logm, dtype=np.float64) - cfg.fmr_alpha * dsfr
    return mzr_tremonti04(np.clip(mu, *MZR_LOGM_RANGE))


def random_oh_sigma(logm: np.ndarray, size_sigma_dex: np.ndarray, cfg: LabelConfig) -> np.ndarray:
    """Width of the Gaussian term that brings the total scatter at fixed mass to `cfg.oh_scatter`.

    Known terms at fixed mass: FMR (alpha * MZR slope * main-sequence scatter) and size
    (size_coupling * size scatter); the random part is sqrt(oh_scatter^2 - their variances), floored at 0.
    With ``oh_scatter_model = 'fmr_residual'`` the random part is instead what brings the scatter at fixed mass
    and SFR, measurement noise included, to `fmr_residual_scatter`: sqrt(fmr_residual^2 - size - noise variances).
    """
    var_size = (cfg.size_coupling * np.asarray(size_sigma_dex)) ** 2
    if cfg.oh_scatter_model == "fmr_residual":
        rest = cfg.fmr_residual_scatter**2 - var_size - cfg.oh_noise**2
        return np.sqrt(np.maximum(rest, 0.0)) * np.ones(np.shape(logm))
    slope = mzr_slope(np.clip(logm, *MZR_LOGM_RANGE))
    var_fmr = (cfg.fmr_alpha * slope * cfg.ms_scatter) ** 2
    return np.sqrt(np.maximum(cfg.oh_scatter**2 - var_fmr - var_size, 0.0))


def oh_true_model(logm: np.ndarray, delta_log_sfr: np.ndarray, size_residual_dex: np.ndarray,
                  size_sigma_dex: np.ndarray, rng: np.random.Generator, cfg: LabelConfig) -> np.ndarray:
    """Noise-free characteristic 12+log(O/H): FMR + size term + random intrinsic term."""
    random = random_oh_sigma(logm, size_sigma_dex, cfg) * rng.standard_normal(np.shape(logm))
    return fmr_oh(logm, delta_log_sfr, cfg) + cfg.size_coupling * np.asarray(size_residual_dex) + random


def stellar_zh_from_gas(oh: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """Stellar [Z/H] tied to the gas: 12+log(O/H) - 8.69 (+ offset, e.g. older stars are poorer)."""
    return np.asarray(oh, dtype=np.float64) - OH_SUN + offset
