"""Stellar populations: SSP grids, star-formation and chemical histories, dust, composites and their labels.

Quick start::

    from photopop.populations import SSPGrid, DelayedTau, compose
    grid = SSPGrid.bc03(wave_range=(3000, 10000))
    sfh = DelayedTau(age_start_gyr=[10.0, 5.0], tau_gyr=[1.0, 3.0])
    comp = compose(grid, sfh, zh=[0.0, -0.4], a_v=[0.3, 0.8], dust="calzetti")
    comp.flux            # (2, n_wave) L_sun/A for 1 M_sun formed each
    comp.labels.to_frame()

See docs/populations.md.
"""

from .chemistry import ChemicalHistory, ConstantZ, LinearLogAgeZ, TabulatedZ, component_weights, metallicity_split
from .compose import BandComposite, Composite, compose, compose_bands, iter_compose
from .dust import Calzetti, CharlotFall, DustModel, Extinction, NoDust, calzetti_k, get_dust
from .labels import Labels, population_labels
from .nebular import NebularLines, line_names, nebular_line_luminosities
from .sfh import SFH, Burst, Combined, Constant, DelayedTau, Exponential, Tabulated, with_burst
from .ssp import REF_WINDOW_AA, SSP_UNIT, SSPGrid, bc03_path, mean_in_window

__all__ = [
    "SSPGrid", "SSP_UNIT", "REF_WINDOW_AA", "bc03_path", "mean_in_window",
    "SFH", "Constant", "Exponential", "DelayedTau", "Burst", "Tabulated", "Combined", "with_burst",
    "ChemicalHistory", "ConstantZ", "LinearLogAgeZ", "TabulatedZ", "component_weights", "metallicity_split",
    "DustModel", "Calzetti", "CharlotFall", "Extinction", "NoDust", "calzetti_k", "get_dust",
    "Labels", "population_labels", "NebularLines", "line_names", "nebular_line_luminosities",
    "Composite", "BandComposite", "compose", "compose_bands", "iter_compose",
]
