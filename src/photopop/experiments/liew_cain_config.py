"""Settings of `photopop reproduce liew-cain-2021`: `LiewCain2021Config` and its presets.

One dataclass drives the whole recipe (saved as DIR/config.toml); `preset_config` gives 'full' (the paper's
settings), 'quick' (minutes on 2 CPU cores) and 'tiny' (a test-sized run); `load_liew_cain_config` layers a
TOML/YAML file and overrides on top of a preset. The stages are in `liew_cain_stages`, the run in
`liew_cain_2021`, metrics.json in `liew_cain_metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..config import deep_update, layered_config, read_config_data, to_dict
from ..errors import InputError
from ..evaluation.galaxy_studies import DEFAULT_PROPERTIES
from ..models.baselines import RandomForestConfig
from ..models.floor import FloorConfig
from ..models.sed_cnn import SEDCNNConfig
from ..models.template_library import TemplateLibraryConfig
from ..simulate.geometry import GalaxySampleConfig
from ..simulate.ifu_config import IFUSurveyConfig, NoiseConfig
from ..training.fit import TrainConfig
from .bagpipes_reference import BagpipesSettings
from .diversity import DiversitySettings
from .sed_cv import SEDCVConfig
from .studies import MismatchSettings, MorphologySettings, TrainingSizeSettings

PRESETS = ("full", "quick", "tiny", "diversity")
SETS = {"set_a": "A", "set_b": "B"}
TARGETS = ("log_age", "zh")
#: prediction methods whose per-spaxel values also get radial gradients
GRADIENT_METHODS = ("cnn", "random_forest", "template_fit")


@dataclass
class GradientSettings:
    """Radial gradients inside r_max R_e (Liew-Cain et al. Sect. 3.3): selection and Monte Carlo subsampling."""

    r_max: float = 1.0
    min_inside: int = 25
    min_outside: int = 1
    n_boot: int = 100
    frac: float = 0.75

    def validate(self) -> None:
        if self.r_max <= 0 or self.min_inside < 2 or self.min_outside < 0 or self.n_boot < 1 or not 0 < self.frac <= 1:
            raise InputError(f"bad gradient settings {to_dict(self)}")


@dataclass
class PropertySettings:
    """Residuals against galaxy properties (Figs. 10-12): bins of `per_bin` galaxies ranked by each property."""

    properties: tuple[str, ...] = DEFAULT_PROPERTIES
    per_bin: int = 16


@dataclass
class MassGradientSettings:
    """Gradient against stellar mass (Fig. 14): binned means of per_bin_early / per_bin_late galaxies."""

    target: str = "log_age"
    per_bin_early: int = 6
    per_bin_late: int = 10


def _paper_noise() -> NoiseConfig:
    # The paper synthesised its J-PAS magnitudes from binned CALIFA spectra (band S/N of hundreds) and
    # took the STECKMAP ages and metallicities as truth: noise-free magnitudes and small (0.02 dex)
    # label errors play those roles. `photopop simulate ifu` keeps the J-PAS survey depth as its default.
    return NoiseConfig(snr_scale=float("inf"), label_noise_age=0.02, label_noise_zh=0.02)


def _full_survey() -> IFUSurveyConfig:
    return IFUSurveyConfig(noise=_paper_noise())


@dataclass
class LiewCain2021Config:
    """Everything `photopop reproduce liew-cain-2021` does (saved as DIR/config.toml).

    seed drives everything: survey.seed, cv.seed, morphology.seed and training_size.seed are set from it.
    cv: the CNN and baseline settings shared by Set A, Set B and the studies (cv.split is ignored: both
    splits run). example_galaxy: galaxy of the Fig. 5 profile (-1: the selected galaxy with most bins
    inside R_e).
    """

    preset: str = "full"
    seed: int = 0
    survey: IFUSurveyConfig = field(default_factory=_full_survey)
    cv: SEDCVConfig = field(default_factory=SEDCVConfig)
    gradients: GradientSettings = field(default_factory=GradientSettings)
    properties: PropertySettings = field(default_factory=PropertySettings)
    morphology: MorphologySettings = field(default_factory=lambda: MorphologySettings(folds_used=4))
    training_size: TrainingSizeSettings = field(default_factory=TrainingSizeSettings)
    mass_gradients: MassGradientSettings = field(default_factory=MassGradientSettings)
    mismatch: MismatchSettings = field(default_factory=MismatchSettings)
    #: bagpipes + nautilus reference fit of a few Set B spaxels (n_spaxels = 0: off; minutes per spaxel)
    bagpipes: BagpipesSettings = field(default_factory=lambda: BagpipesSettings(n_spaxels=20))
    #: Set B robust sigma against the number of training galaxies (the paper's open question)
    diversity: DiversitySettings = field(default_factory=DiversitySettings)
    example_galaxy: int = -1

    def resolve(self) -> "LiewCain2021Config":
        """Propagate the seed, check the settings; returns self."""
        if self.preset not in PRESETS:
            raise InputError(f"unknown preset {self.preset!r}; use one of {list(PRESETS)}")
        self.survey.seed = self.seed
        self.cv.seed = self.seed
        self.morphology.seed = self.seed
        self.training_size.seed = self.seed
        self.survey.check()
        self.cv.validate()
        missing = [t for t in TARGETS if t not in self.cv.targets]
        if missing:
            raise InputError(f"cv.targets must include {list(TARGETS)} (the paper's two labels), missing {missing}")
        self.gradients.validate()
        self.morphology.validate()
        self.training_size.validate()
        self.bagpipes.validate()
        self.diversity.validate()
        bad = [t for t in self.training_size.targets if t not in self.cv.targets]
        if bad:
            raise InputError(f"training_size.targets {bad} are not in cv.targets {list(self.cv.targets)}")
        if self.mass_gradients.target not in self.cv.targets:
            raise InputError(f"mass_gradients.target {self.mass_gradients.target!r} is not in cv.targets")
        if self.properties.per_bin < 1 or self.mass_gradients.per_bin_early < 1 or self.mass_gradients.per_bin_late < 1:
            raise InputError("galaxies per bin must be >= 1")
        return self

def preset_config(name: str = "full", seed: int = 0) -> LiewCain2021Config:
    """The named preset: 'full' (paper settings), 'quick' (a few minutes on 2 CPU cores), 'tiny' (tests)."""
    if name == "full":
        cfg = LiewCain2021Config(preset="full", seed=seed)
    elif name == "quick":
        cfg = LiewCain2021Config(
            preset="quick", seed=seed,
            survey=IFUSurveyConfig(sample=GalaxySampleConfig(n_galaxies=64, spaxels_per_galaxy=70),
                                  noise=_paper_noise()),
            cv=SEDCVConfig(joint_targets=True,
                           train=TrainConfig(max_epochs=80, patience=10, batch_size=128, num_threads=1),
                           random_forest=RandomForestConfig(n_estimators=100),
                           template_fit=TemplateLibraryConfig(n_templates=5000),
                           floor=FloorConfig(n_library=100_000)),  # the issue-14 minimum for a floor
            gradients=GradientSettings(min_inside=20),
            properties=PropertySettings(per_bin=10),
            morphology=MorphologySettings(folds_used=1),
            training_size=TrainingSizeSettings(fractions=(0.05, 0.25, 0.75), repeats=3),
            mass_gradients=MassGradientSettings(per_bin_early=4, per_bin_late=8),
            bagpipes=BagpipesSettings(n_spaxels=0),
            diversity=DiversitySettings(n_galaxies=(10, 30, 100), seeds=2, finetune_galaxies=(10,)),
        )
    elif name == "tiny":
        cfg = LiewCain2021Config(
            preset="tiny", seed=seed,
            survey=IFUSurveyConfig(sample=GalaxySampleConfig(n_galaxies=16, early_fraction=0.375,
                                                             spaxels_per_galaxy=36),
                                  noise=_paper_noise()),
            cv=SEDCVConfig(joint_targets=True, methods=("cnn", "constant", "random", "random_forest"),
                           architecture=SEDCNNConfig(conv_filters=(4, 8), dense_units=(32, 16)),
                           train=TrainConfig(max_epochs=4, patience=2, batch_size=128, num_threads=1),
                           random_forest=RandomForestConfig(n_estimators=10)),
            gradients=GradientSettings(min_inside=6, n_boot=20),
            properties=PropertySettings(per_bin=4),
            morphology=MorphologySettings(folds_used=1),
            training_size=TrainingSizeSettings(fractions=(0.25, 0.75), repeats=1),
            mass_gradients=MassGradientSettings(per_bin_early=2, per_bin_late=3),
            bagpipes=BagpipesSettings(n_spaxels=0),
            diversity=DiversitySettings(n_galaxies=(4, 8), seeds=1, max_spaxels_per_galaxy=6, set_a_test_spaxels=2,
                                        finetune_galaxies=(4,)),
        )
    elif name == "diversity":  # the quick survey and Sets A/B, then the diversity study at full size
        cfg = preset_config("quick", seed)
        cfg.preset = "diversity"
        cfg.morphology.enabled = cfg.training_size.enabled = False
        cfg.cv.methods = ("cnn", "floor")  # the references the study needs; the other baselines are in --quick
        # the quick preset's CNN inputs (colours); `--set cv.input_kind="mag"` runs the study on the paper's
        # magnitudes (both are measured in docs/reproduce-liew-cain-2021.md)
        cfg.diversity = DiversitySettings(seeds=3, pretrain_galaxies=1000)  # 3 repeats at every N, 10^4 included
    else:
        raise InputError(f"unknown preset {name!r}; use one of {list(PRESETS)}")
    return cfg


def load_liew_cain_config(path: str | Path | None = None, preset: str | None = None,
                          overrides: Mapping[str, Any] | None = None) -> LiewCain2021Config:
    """A config from a preset, then the settings of a TOML/YAML file on top, then `overrides` (nested dict).

    The preset is `preset` if given, else the file's `preset` key, else 'full'. Unknown keys raise InputError.
    """
    data = read_config_data(path) if path is not None else {}
    data = deep_update(data, dict(overrides or {}))
    top = data.get("seed")
    for section in ("survey", "cv", "morphology", "training_size"):
        sub = data.get(section)
        if isinstance(sub, Mapping) and "seed" in sub and sub["seed"] != (top if top is not None else 0):
            raise InputError(f"{section}.seed = {sub['seed']} differs from the top-level seed "
                             f"({top if top is not None else 0}); set `seed` at the top level, it drives every part")
    return layered_config(LiewCain2021Config, preset_config, data, preset).resolve()


__all__ = ["GRADIENT_METHODS", "GradientSettings", "LiewCain2021Config", "MassGradientSettings", "PRESETS",
           "PropertySettings", "SETS", "TARGETS", "load_liew_cain_config", "preset_config"]
