"""SDSS curves from speclite (one curve source of `photopop.photometry.filters.load_filter_system`)."""

from __future__ import annotations

import numpy as np

from .curves import FilterCurve
from .system import FilterSystem


def sdss_system() -> FilterSystem:
    """SDSS u, g, r, i, z: speclite's ``sdss2010`` curves (Doi et al. 2010, through airmass 1.3)."""
    import speclite.filters

    responses = speclite.filters.load_filters("sdss2010-*")
    curves = tuple(FilterCurve(r.meta["band_name"], np.asarray(r.wavelength, float), np.asarray(r.response, float),
                               f"speclite:{r.name}") for r in responses)
    return FilterSystem("sdss", curves)


__all__ = ["sdss_system"]
