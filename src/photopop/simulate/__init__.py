"""photopop.simulate: mock surveys (the IFU spaxel survey of Liew-Cain et al. 2021; mock imaging).

`simulate_ifu_survey(IFUSurveyConfig()) -> SEDTable` is the embedded default data set (docs/mock-ifu.md).
Names are imported lazily so that importing one simulator does not load the others' dependencies.
The Set A / Set B diagnostic of a table is an evaluation: `photopop.evaluation.galaxy_gap`.
"""

from __future__ import annotations

from typing import Any

_IFU_NAMES = ("IFUSurveyConfig", "NoiseConfig", "PopulationConfig", "SurveyPlan", "galaxy_spectra", "plan_survey",
              "simulate_ifu_survey")
_GEOMETRY_NAMES = ("GalaxySampleConfig", "draw_galaxies", "spaxel_grid")

__all__ = list(_IFU_NAMES + _GEOMETRY_NAMES)


def __getattr__(name: str) -> Any:
    if name in _IFU_NAMES:
        from . import ifu

        return getattr(ifu, name)
    if name in _GEOMETRY_NAMES:
        from . import geometry

        return getattr(geometry, name)
    raise AttributeError(f"module 'photopop.simulate' has no attribute {name!r}")
