"""photopop.evaluation: prediction metrics (one module) and radial gradients.

Deprojection and inclinations are geometry: `photopop.geometry`.
"""

from .binning import bin_edges, fd_bin_edges
from .galaxy_gap import galaxy_gap
from .gradients import compare_gradients, radial_gradients
from .metrics import (
    NMAD_SCALE,
    bias,
    binned_stats,
    grouped_stats,
    mean_bias,
    nmad,
    outlier_fraction,
    pearson_r,
    residuals,
    rmse,
    robust_sigma,
    scores,
)

__all__ = [
    "NMAD_SCALE",
    "bias",
    "bin_edges",
    "binned_stats",
    "compare_gradients",
    "fd_bin_edges",
    "galaxy_gap",
    "grouped_stats",
    "mean_bias",
    "nmad",
    "outlier_fraction",
    "pearson_r",
    "radial_gradients",
    "residuals",
    "rmse",
    "robust_sigma",
    "scores",
]
