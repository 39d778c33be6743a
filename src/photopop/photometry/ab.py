"""AB magnitudes and fluxes: the one place for the AB / maggy / nanomaggy / Jy conversions.

m_AB = -2.5 log10(<f_nu> / 3631 Jy); 1 maggy = 3631 Jy; m = 22.5 - 2.5 log10(f / nmgy).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy import units as u

__all__ = [
    "AB_ZERO_POINT_JY",
    "C_AA_PER_S",
    "FLAM_UNIT",
    "ERG_PER_JY",
    "ab_mag_to_maggies",
    "maggies_to_ab_mag",
    "ab_mag_to_nmgy",
    "nmgy_to_ab_mag",
    "ab_mag_to_jy",
    "jy_to_ab_mag",
    "mag_err_from_flux",
    "flux_err_from_mag",
]

AB_ZERO_POINT_JY = 3631.0
#: speed of light in Angstrom / s
C_AA_PER_S = 2.99792458e18
FLAM_UNIT = u.erg / u.s / u.cm**2 / u.AA
#: erg s^-1 cm^-2 Hz^-1 per Jy
ERG_PER_JY = 1e-23
_LN10_25 = 2.5 / np.log(10.0)


def ab_mag_to_maggies(mag: Any) -> np.ndarray:
    """AB magnitude -> flux in maggies (1 maggy = 3631 Jy)."""
    return 10.0 ** (-0.4 * np.asarray(mag, dtype=float))


def maggies_to_ab_mag(maggies: Any) -> np.ndarray:
    """Flux in maggies -> AB magnitude; NaN where the flux is not positive."""
    f = np.asarray(maggies, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, -2.5 * np.log10(np.where(f > 0, f, 1.0)), np.nan)


def ab_mag_to_nmgy(mag: Any) -> np.ndarray:
    """AB magnitude -> flux in nanomaggies (m = 22.5 - 2.5 log10 f_nmgy), as 10^(-0.4 (m - 22.5))."""
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=float) - 22.5))


def nmgy_to_ab_mag(nmgy: Any) -> np.ndarray:
    """Flux in nanomaggies -> AB magnitude 22.5 - 2.5 log10 f; NaN where the flux is not positive."""
    f = np.asarray(nmgy, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, 22.5 - 2.5 * np.log10(np.where(f > 0, f, 1.0)), np.nan)


def ab_mag_to_jy(mag: Any) -> np.ndarray:
    """AB magnitude -> f_nu in Jy."""
    return AB_ZERO_POINT_JY * ab_mag_to_maggies(mag)


def jy_to_ab_mag(jy: Any) -> np.ndarray:
    """f_nu in Jy -> AB magnitude; NaN where the flux is not positive."""
    return maggies_to_ab_mag(np.asarray(jy, dtype=float) / AB_ZERO_POINT_JY)


def mag_err_from_flux(flux: Any, flux_err: Any) -> np.ndarray:
    """1-sigma magnitude error 2.5/ln10 * sigma_f / f (first order); NaN where f <= 0."""
    f = np.asarray(flux, dtype=float)
    e = np.asarray(flux_err, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, _LN10_25 * e / np.where(f > 0, f, 1.0), np.nan)


def flux_err_from_mag(flux: Any, mag_err: Any) -> np.ndarray:
    """1-sigma flux error from a magnitude error: sigma_f = f * mag_err * ln10 / 2.5."""
    return np.asarray(flux, dtype=float) * np.asarray(mag_err, dtype=float) / _LN10_25
