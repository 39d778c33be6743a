"""Filter systems, synthetic AB photometry and spectrum readers (the lowest science stage).

Main names: `FilterSystem`, `load_filter_system`, `synth_photometry`, `PhotometryResult`,
`read_spectrum`. See docs/photometry.md.
"""

from .filters import (FilterCurve, FilterSystem, filter_curve_from_arrays, jpas_liew_cain_2021,
                      list_milespy_systems, load_filter_system, read_filter_curve)
from .spectra import Spectrum, read_spectrum
from .synth import (AB_ZERO_POINT_JY, PhotometryResult, ab_mag_to_jy, ab_mag_to_maggies, ab_mag_to_nmgy,
                    band_weights, flux_err_from_mag, jy_to_ab_mag, mag_err_from_flux, maggies_to_ab_mag,
                    nmgy_to_ab_mag, synth_photometry)

__all__ = [
    "AB_ZERO_POINT_JY",
    "FilterCurve",
    "FilterSystem",
    "PhotometryResult",
    "Spectrum",
    "ab_mag_to_jy",
    "ab_mag_to_maggies",
    "ab_mag_to_nmgy",
    "band_weights",
    "filter_curve_from_arrays",
    "flux_err_from_mag",
    "jpas_liew_cain_2021",
    "jy_to_ab_mag",
    "list_milespy_systems",
    "load_filter_system",
    "mag_err_from_flux",
    "maggies_to_ab_mag",
    "nmgy_to_ab_mag",
    "read_filter_curve",
    "read_spectrum",
    "synth_photometry",
]
