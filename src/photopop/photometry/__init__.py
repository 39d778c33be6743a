"""Filter systems, synthetic AB photometry and spectrum readers (the lowest science stage).

Main names: `FilterSystem`, `load_filter_system`, `synth_photometry`, `PhotometryResult`,
`read_spectrum`, `covered_by`. See docs/photometry.md.
"""

from .coverage import coverage_table, covered_by
from .filters import (FilterCurve, FilterSystem, filter_curve_from_arrays, filter_family, jpas_liew_cain_2021,
                      list_milespy_systems, load_filter_system, read_filter_curve, same_filter_family)
from .spectra import Spectrum, read_spectrum
from .ab import (AB_ZERO_POINT_JY, ab_mag_to_jy, ab_mag_to_maggies, ab_mag_to_nmgy, flux_err_from_mag,
                 jy_to_ab_mag, mag_err_from_flux, maggies_to_ab_mag, nmgy_to_ab_mag)
from .result import PhotometryResult
from .synth import band_weights, synth_photometry

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
    "coverage_table",
    "covered_by",
    "filter_curve_from_arrays",
    "filter_family",
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
    "same_filter_family",
    "synth_photometry",
]
