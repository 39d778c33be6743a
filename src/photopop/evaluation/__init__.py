"""photopop.evaluation: prediction metrics (one module) and radial gradients."""

from .binning import bin_edges, fd_bin_edges
from .gradients import compare_gradients, deprojected_radius, inclination_from_axis_ratio, radial_gradients
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
    "deprojected_radius",
    "fd_bin_edges",
    "grouped_stats",
    "inclination_from_axis_ratio",
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
