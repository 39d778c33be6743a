"""photopop: stellar-population measurements from photometric survey data with neural networks.

The public API is importable from the top level; each name is imported on first use (PEP 562), so
``import photopop`` and ``photopop --help`` stay fast and do not load torch::

    import photopop

    system = photopop.load_filter_system("sdss")
    table = photopop.simulate_ifu_survey()             # a mock IFU survey (SEDTable)
    reg = photopop.SEDRegressor().fit(table)           # the Liew-Cain et al. (2021) 1D CNN
    pred = reg.predict(table)
    print(photopop.scores(table.spaxels["log_age"], pred["log_age"])["robust_sigma"])

See docs/api.md for one line on each name.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version as _version
from typing import Any

try:
    __version__ = _version("photopop")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

#: public name -> the module that defines it (the one place to change when a module moves)
_API: dict[str, str] = {
    "load_filter_system": "photopop.photometry.filters",
    "FilterSystem": "photopop.photometry.filters",
    "synth_photometry": "photopop.photometry.synth",
    "PhotometryResult": "photopop.photometry.result",
    "SSPGrid": "photopop.populations.ssp",
    "read_sed_table": "photopop.datasets.sed_table",
    "simulate_ifu_survey": "photopop.simulate.ifu",
    "SEDRegressor": "photopop.training.sed_regressor",
    "ImageEstimator": "photopop.training.image_estimator",
    "load_model": "photopop.inference.predictors",
    "predict_catalog": "photopop.inference.catalog",
    "scores": "photopop.evaluation.metrics",
    "InputError": "photopop.errors",
    "MismatchError": "photopop.errors",
    "as_frame": "photopop.datasets.frames",
}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first access and cache it in this module."""
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise  # a dependency is missing: say which
        raise AttributeError(f"photopop.{name} lives in {module}, which this installation lacks") from exc
    value = getattr(mod, name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
