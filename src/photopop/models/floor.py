"""The information floor: the Bayes estimate of spaxel labels under the mock simulator's own prior.

A library of >= 10^5 noise-free spaxels is drawn from the very generative model of the mock IFU survey
(`photopop.simulate.library.draw_prior_library`, its own seed), and each observed spaxel's labels are
estimated by likelihood weighting with that spaxel's photometric errors (`LikelihoodWeighting`: Gaussian in
flux, as the mock adds noise; the free amplitude marginalised analytically). Under squared loss the
posterior mean is the Bayes estimate, so when the data come from the same prior no method that sees the
same photometry can have a lower mean squared error on average (up to the library's Monte-Carlo error,
which shrinks as 1/sqrt(effective sample size); `ess` is reported per spaxel). It uses no training rows and
never sees the labels it is scored on.

Brightness: with `scale_kernel_dex = 0` (default) the amplitude has the scale-invariant prior, so the floor
uses the SED shape only (the estimate given colours). The mock's brightness (bin mass x distance) carries
a little more information; `scale_kernel_dex > 0` uses it through a kernel on the library's own absolute
scales (see `photopop.models.likelihood`). Labels: the library's true labels with the survey's light
weighting; the mock's label noise is zero-mean and independent, so the same posterior mean is the Bayes
estimate of the noisy labels too (their percentiles would be wider by the label noise).

Photometry: fluxes 10^(-0.4 mag) and errors magerr * flux / 1.0857, the mock's own definition, recover the
mock's flux errors exactly. A flux the mock reported at its 1-sigma error (below 1 sigma, magerr = 1.0857)
is treated as a Gaussian measurement at that value (an approximation for a censored value; such fluxes
are rare at the survey's S/N cut).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from .likelihood import LikelihoodWeighting
from .template_fit import mag_to_flux

#: SED-table target names that are noisy versions of a library label
_ALIASES = {"log_age_true": "log_age", "zh_true": "zh"}


@dataclass
class FloorConfig:
    """Settings of the information floor (saved with sed cv runs).

    n_library: spaxels drawn from the simulator's prior (>= 1e5 for the reported floor; 1e6 for a tighter
    Monte-Carlo error). seed: the library's own seed (None = derived from the survey's, never equal to it).
    scale_kernel_dex: 0 = brightness-free (scale-invariant amplitude prior); > 0 = use the library's absolute
    brightness through a log-normal kernel of this width.
    """

    n_library: int = 100_000
    seed: int | None = None
    scale_kernel_dex: float = 0.0
    quantiles: tuple[float, ...] = (0.16, 0.5, 0.84)
    n_bins: int = 512
    batch_galaxies: int = 200
    #: error (mag) given to bands whose error is 0, as in noise-free mocks (the paper's setting): the Bayes
    #: estimate of exact photometry is a delta, so a finite library needs a kernel; measured errors are kept
    noise_free_error_mag: float = 0.01

    def check(self) -> None:
        if not self.noise_free_error_mag > 0:
            raise InputError(f"floor noise_free_error_mag must be > 0, got {self.noise_free_error_mag}")
        if self.n_library < 1:
            raise InputError(f"floor n_library must be >= 1, got {self.n_library}")
        if not self.scale_kernel_dex >= 0:
            raise InputError(f"floor scale_kernel_dex must be >= 0, got {self.scale_kernel_dex}")
        if self.n_bins < 2:
            raise InputError(f"floor n_bins must be >= 2, got {self.n_bins}")


def library_label(target: str) -> str:
    """The library label a table target estimates (log_age_true and log_age both -> log_age)."""
    return _ALIASES.get(target, target)


class InformationFloor:
    """fit(library) / predict(mags, magerrs): posterior summaries of each label under the library's prior."""

    def __init__(self, config: FloorConfig | None = None, targets: Sequence[str] = ("log_age", "zh")):
        self.config = config or FloorConfig()
        self.config.check()
        self.targets = list(targets)

    def fit(self, library: Any, bands: Sequence[str] | None = None) -> "InformationFloor":
        """Take a `SpaxelLibrary` (2-d fluxes) drawn from the prior; `bands` reorders it to the table's."""
        lib = library.select_bands(bands) if bands is not None else library
        if lib.fluxes.ndim != 2:
            raise InputError("the floor needs a library of one flux row per entry (the prior library)")
        names = [library_label(t) for t in self.targets]
        missing = [t for t, n in zip(self.targets, names) if n not in lib.labels.columns]
        if missing:
            raise InputError(f"the floor library has no label for target(s) {missing}; it has "
                             f"{list(lib.labels.columns)}")
        y = lib.labels[names].to_numpy(dtype=np.float64)
        ok = np.all(np.isfinite(y), axis=1)
        c = self.config
        self.bands_ = list(lib.bands)
        self.n_library_ = int(ok.sum())
        self.engine_ = LikelihoodWeighting(lib.fluxes[ok], y[ok], self.targets, scale="free",
                                           scale_kernel_dex=c.scale_kernel_dex, quantiles=c.quantiles,
                                           n_bins=c.n_bins)
        return self

    def predict(self, mags: np.ndarray, magerrs: np.ndarray) -> pd.DataFrame:
        """Posterior <target>_mean/_std/_p16/_p50/_p84, ess and chi2_min per spaxel (magnitudes in, AB)."""
        if not hasattr(self, "engine_"):
            raise InputError("InformationFloor.predict called before fit(library)")
        if magerrs is None:
            raise InputError("the floor needs each spaxel's magnitude errors (magerr_* columns)")
        magerrs = np.asarray(magerrs, dtype=np.float64)
        magerrs = np.where(magerrs == 0, self.config.noise_free_error_mag, magerrs)
        flux, err = mag_to_flux(mags, magerrs)
        return self.engine_.predict(flux, err)


def survey_config_of(table: Any) -> Any:
    """The `IFUSurveyConfig` a mock SED table was simulated with (InputError for other tables)."""
    from ..config import from_dict
    from ..simulate.ifu import IFUSurveyConfig

    kind = (getattr(table, "meta", None) or {}).get("kind")
    cfg = getattr(table, "config", None)
    if kind != "mock-ifu" or cfg is None:
        raise InputError("method floor needs a mock IFU table with its simulator config (config.toml): the floor "
                         "is defined by the simulator's prior; leave 'floor' out of --methods for other tables")
    if isinstance(cfg, IFUSurveyConfig):
        return cfg
    if isinstance(cfg, dict):
        return from_dict(IFUSurveyConfig, cfg)
    raise InputError(f"the table's config is a {type(cfg).__name__}, not an IFUSurveyConfig")


def floor_for_table(table: Any, config: FloorConfig | None = None, targets: Sequence[str] = ("log_age", "zh"),
                    progress: Callable[[str], None] | None = None) -> InformationFloor:
    """An `InformationFloor` fitted to a library drawn from the prior of the mock that made `table`."""
    from ..config import config_hash
    from ..simulate.library import draw_prior_library

    cfg = config or FloorConfig()
    cfg.check()
    survey = survey_config_of(table)
    key = (config_hash(survey, 16), cfg.n_library, cfg.seed, cfg.batch_galaxies)
    lib = _LAST_LIBRARY.get(key)
    if lib is None:  # Set A and Set B of one reproduction share the library: draw it once per process
        lib = draw_prior_library(survey, cfg.n_library, seed=cfg.seed,
                                 batch_galaxies=cfg.batch_galaxies, progress=progress)
        _LAST_LIBRARY.clear()
        _LAST_LIBRARY[key] = lib
    return InformationFloor(cfg, targets).fit(lib, bands=list(table.bands))


#: the most recently drawn prior library (one entry: bounded memory)
_LAST_LIBRARY: dict[tuple, Any] = {}
