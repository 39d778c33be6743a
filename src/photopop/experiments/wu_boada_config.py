"""Settings of `photopop reproduce wu-boada-2019`: `WuBoada2019Config`, its presets and the paper's numbers.

`preset_config(name)` gives the 'full' (the paper), 'quick' and 'tiny' settings; `load_wu_boada_config`
layers a TOML/YAML file and overrides on top. `PAPER` holds the published numbers the report quotes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import deep_update, layered_config, read_config_data
from ..errors import InputError
from ..models.baselines import RandomForestConfig
from ..models.image_regressor import ImageModelConfig
from ..simulate.images import ImageSurveyConfig
from ..training.image_fit import ImageFitConfig

PRESETS = ("full", "quick", "tiny")
STAGE_VERSION = "1"

#: the published numbers (Wu & Boada 2019), as quoted in the text
PAPER: dict[str, Any] = {
    "reference": "Wu & Boada 2019, MNRAS 484, 4683 (arXiv:1810.12913)",
    "cnn": {"rmse": 0.085, "nmad": 0.0668, "n": 20466, "bias": -0.006},
    "rf_gri": {"rmse": 0.130},
    "rf_ugriz": {"rmse": 0.081, "note": "Acquaviva (2016), z~0.1 sample (0.093 at z~0.2)"},
    "mass_route": {"rmse": 0.12, "mass_rmse": 0.22, "mass_nmad": 0.20},
    "mzr_scatter_true": 0.10,
    "image_size": 128,
    "resolution": "scatter falls from 1x1 to 32x32 pixels and flattens beyond; RF(gri) beats the CNN at 1x1 "
                  "and 2x2, the CNN wins from 4x4 on",
}


@dataclass
class WuBoada2019Config:
    """Every setting of the reproduction (saved as DIR/config.toml)."""

    preset: str = "full"
    data: str = ""  # an existing ImageSet folder; empty = simulate `survey`
    #: the CNN's inputs: 'rgb' (the paper's: 8-bit asinh-stretched irg JPEG composites; made from the calibrated
    #: images with the survey's rgb_* settings where a set has none) or 'images' (linear calibrated g, r, i fluxes)
    use: str = "rgb"
    survey: ImageSurveyConfig = field(default_factory=ImageSurveyConfig)
    simulate_workers: int = 1
    target: str = "oh"
    mass_column: str = "log_mstar"
    seed: int = 0  # split seed
    model: ImageModelConfig = field(default_factory=ImageModelConfig)
    fit: ImageFitConfig = field(default_factory=ImageFitConfig)
    tta: bool = True
    resolutions: tuple[int, ...] = (64, 32, 16, 8, 4, 2, 1)  # sizes below the native one get their own CNN
    resolution_epochs: int = 0  # epochs of the resolution CNNs (0 = as `fit`)
    resolution_seeds: int = 1  # network seeds per resolution (the native one too): mean and std over them
    mass_route: bool = True
    random_forest: RandomForestConfig = field(default_factory=lambda: RandomForestConfig(
        n_estimators=200, max_depth=0, min_samples_leaf=5, max_features=1.0))
    rf_leaf_grid: tuple[int, ...] = (1, 2, 5, 10, 20)  # min_samples_leaf tried on the validation split
    mzr_bin_width: float = 0.2
    mzr_min_count: int = 5
    n_examples: int = 5

    def validate(self) -> WuBoada2019Config:
        if self.preset not in PRESETS:
            raise InputError(f"unknown preset {self.preset!r}; use one of {list(PRESETS)}")
        if self.use not in ("images", "rgb"):
            raise InputError(f"use must be 'images' or 'rgb', got {self.use!r}")
        if any(int(p) != p or p < 1 for p in self.resolutions):
            raise InputError(f"resolutions must be positive pixel counts, got {self.resolutions}")
        if self.resolution_seeds < 1:
            raise InputError(f"resolution_seeds must be >= 1, got {self.resolution_seeds}")
        if not self.rf_leaf_grid:
            raise InputError("rf_leaf_grid needs at least one value")
        self.model.validate()
        self.fit.validate()
        return self


def preset_config(name: str) -> WuBoada2019Config:
    """'full': the paper (128 px, ResNet-34, ImageNet weights if available, 10 epochs, ~142k galaxies);
    'quick': minutes on 2 CPU cores (2000 galaxies, 32 px, ResNet-18); 'tiny': a pipeline check."""
    if name == "full":
        return WuBoada2019Config(preset="full", survey=ImageSurveyConfig(n_galaxies=142186, image_size=128),
                                 simulate_workers=0, fit=ImageFitConfig(batch_size=256))
    if name == "quick":
        return WuBoada2019Config(
            preset="quick",
            survey=ImageSurveyConfig(n_galaxies=2000, image_size=32, pixel_scale_arcsec=0.592), simulate_workers=0,
            model=ImageModelConfig(arch="resnet18", pretrained="auto"),
            fit=ImageFitConfig(epochs=8, freeze_epochs=1, batch_size=32, optimizer="adamw", lr_frozen=3e-3,
                               lrs=(3e-4, 1e-3, 3e-3), weight_decay=1e-2),
            resolutions=(16, 8, 4, 2, 1), resolution_seeds=3, rf_leaf_grid=(2, 5, 10, 20))
    if name == "tiny":
        return WuBoada2019Config(
            preset="tiny",
            survey=ImageSurveyConfig(n_galaxies=60, image_size=16, pixel_scale_arcsec=1.184, neighbour_rate=0.0),
            model=ImageModelConfig(arch="resnet18", pretrained="none"),
            fit=ImageFitConfig(epochs=2, freeze_epochs=1, batch_size=16, optimizer="adamw", lr_frozen=1e-3,
                               lrs=(1e-4, 3e-4, 1e-3), num_threads=1),
            tta=True, resolutions=(4, 1), rf_leaf_grid=(5,),
            random_forest=RandomForestConfig(n_estimators=20, min_samples_leaf=5, max_features=1.0),
            mzr_min_count=2, n_examples=3)
    raise InputError(f"unknown preset {name!r}; use one of {list(PRESETS)}")


def load_wu_boada_config(path: str | Path | None = None, preset: str | None = None,
                         overrides: Mapping[str, Any] | None = None) -> WuBoada2019Config:
    """A preset, then a TOML/YAML file's settings on top, then `overrides` (nested dict).

    The preset is `preset` if given, else the file's ``preset`` key, else 'full'. Unknown keys raise InputError.
    """
    data = read_config_data(path) if path is not None else {}
    data = deep_update(data, dict(overrides or {}))
    return layered_config(WuBoada2019Config, preset_config, data, preset).validate()



__all__ = ["PAPER", "PRESETS", "STAGE_VERSION", "WuBoada2019Config", "load_wu_boada_config", "preset_config"]
