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
* the fibre effect: an SDSS fibre (3" diameter) sees the emission-line-weighted metallicity of the disc area
  it covers. With a radial gradient (-0.10 dex / R_e, Sanchez et al. 2014) a fibre that reaches further out
  -- because the galaxy is small on the sky, or because it is seen edge-on so that the line of sight crosses
  the whole disc -- measures lower metallicity. `fibre_mean_radius` computes the emission-weighted mean
  galactocentric radius (in R_e) of the light entering the fibre for a 3-d exponential disc with seeing;
  `oh_fibre = oh_true + gradient (<r/R_e>_fibre - pivot)`, plus 0.03 dex measurement noise.

`oh_true` is the galaxy's characteristic gas metallicity: its value at `pivot` R_e (0.5 by default, about
what a face-on fibre covers at the survey's median redshift), so that eq. 2 describes `oh_true` and, on
average, the observed fibre values too.
"""

from __future__ import annotations

import functools
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
    gradient_dex_per_re: float = -0.10  # gas metallicity gradient (Sanchez et al. 2014)
    pivot_re: float = 0.5           # radius (R_e) at which oh_true is defined
    fibre_radius_arcsec: float = 1.5  # SDSS fibre: 3" diameter
    fibre_seeing_fwhm_arcsec: float = 1.4  # seeing that blurs light into/out of the fibre
    emission_thickness: float = 0.1   # scale height / scale length of the emission-line disc
    oh_noise: float = 0.03          # measurement noise of the fibre metallicity, dex
    stellar_zh_offset_old: float = -0.2  # [Z/H] of old disc stars relative to the gas, dex

    def validate(self) -> None:
        for name in ("ms_scatter", "quenched_scatter", "oh_scatter", "oh_noise", "quenched_width",
                     "fibre_radius_arcsec", "fibre_seeing_fwhm_arcsec", "emission_thickness"):
            if not getattr(self, name) >= 0:
                raise InputError(f"LabelConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.quenched_max_fraction <= 1:
            raise InputError("LabelConfig.quenched_max_fraction must lie in [0, 1]")


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
    """
    slope = mzr_slope(np.clip(logm, *MZR_LOGM_RANGE))
    var_fmr = (cfg.fmr_alpha * slope * cfg.ms_scatter) ** 2
    var_size = (cfg.size_coupling * np.asarray(size_sigma_dex)) ** 2
    return np.sqrt(np.maximum(cfg.oh_scatter**2 - var_fmr - var_size, 0.0))


def oh_true_model(logm: np.ndarray, delta_log_sfr: np.ndarray, size_residual_dex: np.ndarray,
                  size_sigma_dex: np.ndarray, rng: np.random.Generator, cfg: LabelConfig) -> np.ndarray:
    """Noise-free characteristic 12+log(O/H): FMR + size term + random intrinsic term."""
    random = random_oh_sigma(logm, size_sigma_dex, cfg) * rng.standard_normal(np.shape(logm))
    return fmr_oh(logm, delta_log_sfr, cfg) + cfg.size_coupling * np.asarray(size_residual_dex) + random


@functools.lru_cache(maxsize=4)
def _disc_samples(n_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fixed draws from a unit exponential disc (R/h ~ Gamma(2), phi uniform, Z/z0 ~ Laplace) and unit
    Gaussian seeing offsets; the same for every galaxy (fixed seed), so the result is deterministic."""
    rng = np.random.default_rng(20190101)
    r = rng.gamma(2.0, 1.0, n_samples)
    phi = rng.uniform(0.0, 2.0 * np.pi, n_samples)
    z = rng.laplace(0.0, 1.0, n_samples)
    gx, gy = rng.standard_normal((2, n_samples))
    return r * np.cos(phi), r * np.sin(phi), z, gx, gy


def fibre_mean_radius(re_arcsec: np.ndarray, inclination_deg: np.ndarray, fibre_radius_arcsec: float = 1.5,
                      thickness: float = 0.1, seeing_fwhm_arcsec: float = 0.0, n_samples: int = 8192,
                      chunk: int = 256) -> np.ndarray:
    """Emission-weighted mean galactocentric radius (units of R_e) of the light entering a centred fibre.

    The emission (H-alpha) follows a 3-d exponential disc, rho ∝ exp(-R/h) exp(-|Z|/z0) with h = R_e / 1.678 and
    z0 = `thickness` h, inclined by i (0 = face-on) and seen through a circular fibre of radius
    `fibre_radius_arcsec`, optionally blurred by Gaussian seeing. Computed by projecting fixed samples of the
    emission onto the sky (x = X, y = Y cos i - Z sin i, plus seeing offsets) and averaging R over those inside the
    fibre: the line of sight through an edge-on disc crosses all radii, so its fibre sees the outer disc.
    Vectorised over galaxies (chunks of `chunk` x `n_samples`). A galaxy with no sample in the fibre (R_e
    hundreds of times the fibre) gets the analytic face-on limit 2a/3 / R_e.
    """
    re = np.asarray(re_arcsec, dtype=np.float64).reshape(-1)
    inc = np.radians(np.asarray(inclination_deg, dtype=np.float64).reshape(-1))
    if re.shape != inc.shape:
        raise InputError("re_arcsec and inclination_deg must have the same length")
    if np.any(re <= 0) or np.any(inc < 0) or np.any(inc > np.pi / 2 + 1e-9):
        raise InputError("fibre_mean_radius needs re_arcsec > 0 and 0 <= inclination_deg <= 90")
    if not fibre_radius_arcsec > 0:
        raise InputError("fibre radius must be > 0")
    X, Y, Z, gx, gy = _disc_samples(int(n_samples))
    sig = seeing_fwhm_arcsec / 2.3548
    a2 = fibre_radius_arcsec**2
    r_unit = np.hypot(X, Y)  # R / h
    out = np.empty(re.size)
    for s0 in range(0, re.size, chunk):
        sl = slice(s0, s0 + chunk)
        h = (re[sl] / 1.678)[:, None]
        ci, si = np.cos(inc[sl])[:, None], np.sin(inc[sl])[:, None]
        x = h * X[None, :] + sig * gx[None, :]
        y = h * (Y[None, :] * ci - thickness * Z[None, :] * si) + sig * gy[None, :]
        inside = (x * x + y * y) < a2
        n_in = inside.sum(axis=1)
        mean_r = (inside * r_unit[None, :]).sum(axis=1) / np.maximum(n_in, 1) / 1.678
        fallback = 2.0 * fibre_radius_arcsec / 3.0 / re[sl]
        out[sl] = np.where(n_in > 0, mean_r, fallback)
    return out


def oh_fibre_model(oh_true: np.ndarray, re_disc_arcsec: np.ndarray, inclination_deg: np.ndarray,
                   cfg: LabelConfig) -> np.ndarray:
    """Noise-free fibre metallicity: oh_true + gradient * (<r/R_e>_fibre - pivot)."""
    rbar = fibre_mean_radius(re_disc_arcsec, inclination_deg, cfg.fibre_radius_arcsec, cfg.emission_thickness,
                             cfg.fibre_seeing_fwhm_arcsec)
    return np.asarray(oh_true) + cfg.gradient_dex_per_re * (rbar - cfg.pivot_re)


def stellar_zh_from_gas(oh: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """Stellar [Z/H] tied to the gas: 12+log(O/H) - 8.69 (+ offset, e.g. older stars are poorer)."""
    return np.asarray(oh, dtype=np.float64) - OH_SUN + offset
