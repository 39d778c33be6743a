"""`LabelFitConfig`: every setting of the pPXF label fit (saved with each run)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import InputError
from ..populations.ssp import REF_WINDOW_AA


@dataclass
class LabelFitConfig:
    """Settings of `fit_labels` (wavelengths rest frame, Angstrom).

    fit_window_aa : the rest-frame range fitted, clipped to the data and to the templates (minus `margin_aa`);
        the data must cover at least `min_window_coverage` of it.
    min_good_pixels : fewer good pixels (after masks and emission-line masking) -> status 'too few good pixels'.
    degree : additive Legendre degree of the kinematic fit (stage 1). mdegree : multiplicative degree of the
        population fit (stage 2; absorbs dust and flux calibration). regul : pPXF regularisation strength
        (0 = none; else the noise is first rescaled to chi2_red = 1, the pPXF recipe).
    clean : pPXF's iterative sigma-clipping in stage 1. line_mask_kms : half-width of the emission-line masks
        (`ppxf.ppxf_util.determine_mask`). sigma_start_kms : first guess of sigma.
    age_step_dex, age_range_yr, zh_range : which SSPs of the grid are templates (ages >= age_step_dex apart).
    template_fwhm_aa : the grid's FWHM (A); None = known for MILES-based grids (2.51 A).
    template_medium : 'air' (MILES-based grids) or 'vacuum'; data in the other medium are converted.
    light_window_aa : the label light window (photopop's labels: 5450-5550 A).
    mass : 'surviving' (stars + remnants, grid's mass fractions) or 'formed' mass weights.
    chi2_flag_max : chi2_red above it sets chi2_flag (Liew-Cain et al. 2021 drop chi2_red > 2).
    """

    fit_window_aa: tuple[float, float] = (3700.0, 7200.0)
    min_window_coverage: float = 0.5
    min_good_pixels: int = 200
    margin_aa: float = 150.0
    degree: int = 4
    mdegree: int = 8
    regul: float = 0.0
    clean: bool = False
    line_mask_kms: float = 800.0
    sigma_start_kms: float = 150.0
    age_step_dex: float = 0.1
    age_range_yr: tuple[float, float] | None = None
    zh_range: tuple[float, float] | None = None
    template_fwhm_aa: float | None = None
    template_medium: str = "air"
    light_window_aa: tuple[float, float] = REF_WINDOW_AA
    mass: str = "surviving"
    chi2_flag_max: float = 2.0

    def __post_init__(self) -> None:
        self.fit_window_aa = tuple(float(v) for v in self.fit_window_aa)  # type: ignore[assignment]
        self.light_window_aa = tuple(float(v) for v in self.light_window_aa)  # type: ignore[assignment]
        if self.age_range_yr is not None:
            self.age_range_yr = tuple(float(v) for v in self.age_range_yr)  # type: ignore[assignment]
        if self.zh_range is not None:
            self.zh_range = tuple(float(v) for v in self.zh_range)  # type: ignore[assignment]
        w0, w1 = self.fit_window_aa
        if not 0 < w0 < w1:
            raise InputError(f"fit_window_aa must be (min, max) with 0 < min < max, got {self.fit_window_aa}")
        if not 0 < self.min_window_coverage <= 1:
            raise InputError(f"min_window_coverage must be in (0, 1], got {self.min_window_coverage}")
        for name in ("degree", "mdegree"):
            if getattr(self, name) < -1:
                raise InputError(f"{name} must be >= -1 (-1 = no polynomial), got {getattr(self, name)}")
        if self.regul < 0:
            raise InputError(f"regul must be >= 0, got {self.regul}")
        if self.template_medium not in ("air", "vacuum"):
            raise InputError(f"template_medium must be 'air' or 'vacuum', got {self.template_medium!r}")
        if self.mass not in ("surviving", "formed"):
            raise InputError(f"mass must be 'surviving' or 'formed', got {self.mass!r}")
        if self.min_good_pixels < 10:
            raise InputError("min_good_pixels must be >= 10")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
