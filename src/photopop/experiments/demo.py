"""The main job (`photopop demo`, what `make demo` runs): both methods end to end on small mocks.

It chains the two reproduction recipes and the uncertainty study with demo-sized settings:

1. the Liew-Cain et al. (2021) SED pipeline (`experiments.liew_cain_2021`): a mock IFU survey, Set A
   and Set B cross-prediction with the CNN and its baselines, radial gradients and the galaxy studies;
2. the Wu & Boada (2019) image pipeline (`experiments.wu_boada_2019`): a GalSim mock imaging survey, a
   ResNet with its random-forest and constant baselines, the resolution study and the MZR;
3. per-spaxel uncertainties (`experiments.uncertainty`) on the default mock (`photopop simulate ifu`:
   190 galaxies at J-PAS survey depth): heteroscedastic deep ensembles in four galaxy-held-out folds,
   recalibrated on calibration galaxies carved from the training galaxies, with 68%/95% coverage and
   PIT histograms;
4. posteriors (`experiments.posterior`) on the same mock: a conditional normalising flow beside a deep
   ensemble on held-out galaxies (coverage, SBC, TARP, widths at equal coverage, the age-[Z/H]
   degeneracy) and the out-of-domain flag study.

Each part keeps its own cached stages under DIR/<part>/, so a rerun reuses finished work. The demo
writes DIR/metrics.json (``{"sed": ..., "images": ..., "calibration": ..., "posterior": ...}``, the parts in the shapes
of the reproduce commands) and one self-contained DIR/report.html.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .. import __version__
from ..config import config_hash, deep_update, layered_config, read_config_data, save_config, to_dict
from ..errors import InputError
from ..io import write_json_atomic
from ..datasets.sed_table import read_sed_table
from ..models.baselines import RandomForestConfig
from ..simulate.ifu import IFUSurveyConfig
from ..training.fit import TrainConfig
from .liew_cain_2021 import LiewCain2021Config, preset_config as liew_cain_preset, run_liew_cain_2021, stage_survey
from .stages import StageResult, StageRunner
from .sed_cv import SEDCVConfig
from .studies import MorphologySettings, TrainingSizeSettings
from .posterior import PosteriorStudyConfig, run_posterior_study
from .uncertainty import UncertaintyConfig, run_uncertainty_study
from .wu_boada_2019 import WuBoada2019Config, preset_config as wu_boada_preset, run_wu_boada_2019


def _demo_sed() -> LiewCain2021Config:
    cfg = liew_cain_preset("quick")
    cfg.preset = "quick"
    cfg.survey.sample.n_galaxies = 60
    cfg.survey.sample.spaxels_per_galaxy = 70
    cfg.cv = SEDCVConfig(joint_targets=True,
                         train=TrainConfig(max_epochs=60, patience=10, batch_size=128, num_threads=1),
                         random_forest=RandomForestConfig(n_estimators=100))
    cfg.morphology = MorphologySettings(folds_used=1)
    cfg.training_size = TrainingSizeSettings(fractions=(0.05, 0.25, 0.75), repeats=2)
    return cfg


def _demo_images() -> WuBoada2019Config:
    cfg = wu_boada_preset("quick")
    cfg.survey.n_galaxies = 1200
    cfg.fit.epochs = 5
    cfg.resolutions = (8, 2, 1)
    cfg.resolution_seeds = 1  # the demo's time budget: one network per size (the --quick preset trains 3)
    return cfg


def _demo_uncertainty() -> UncertaintyConfig:
    # four galaxy-held-out folds: every galaxy is tested once, so the coverage is measured on all of
    # them (one small held-out split scatters by several points from one split to the next); the
    # validation NLL is noisy, hence the long patience
    return UncertaintyConfig(n_members=3, n_folds=4,
                             train=TrainConfig(loss="gaussian_nll", max_epochs=150, patience=40, batch_size=256,
                                               num_threads=1))


def _demo_posterior() -> PosteriorStudyConfig:
    return PosteriorStudyConfig()


@dataclass
class DemoConfig:
    """Settings of `photopop demo` (saved as DIR/config.toml); each part can be switched off."""

    preset: str = "default"
    seed: int = 0
    sed: LiewCain2021Config = field(default_factory=_demo_sed)
    images: WuBoada2019Config = field(default_factory=_demo_images)
    uncertainty: UncertaintyConfig = field(default_factory=_demo_uncertainty)
    #: the survey the uncertainty study runs on: the default mock of `photopop simulate ifu`
    uncertainty_survey: IFUSurveyConfig = field(default_factory=IFUSurveyConfig)
    #: the posterior flow beside the ensemble on the same survey (`experiments.posterior`)
    posterior: PosteriorStudyConfig = field(default_factory=_demo_posterior)
    run_images: bool = True
    run_uncertainty: bool = True
    run_posterior: bool = True


def tiny_demo_config() -> DemoConfig:
    """A test-sized demo (well under a minute): every part runs, numbers mean nothing."""
    unc = UncertaintyConfig(n_members=2, n_folds=2, figures=True,
                            train=TrainConfig(loss="gaussian_nll", max_epochs=4, patience=2, batch_size=128,
                                              num_threads=1))
    survey = copy.deepcopy(liew_cain_preset("tiny").survey)
    from ..training.posterior_fit import SEDPosteriorConfig

    post = PosteriorStudyConfig(n_samples=200, ood_ssp_folder="", mag_shifts=(0.5, 5.0),
                                posterior=SEDPosteriorConfig(train=TrainConfig(max_epochs=4, patience=2, batch_size=128)),
                                ensemble=copy.deepcopy(unc))
    return DemoConfig(preset="tiny", sed=liew_cain_preset("tiny"), images=wu_boada_preset("tiny"), uncertainty=unc,
                      uncertainty_survey=survey, posterior=post)


def demo_preset(name: str) -> DemoConfig:
    """'default' (what `make demo` runs, under 15 minutes on 2 CPU cores) or 'tiny' (tests)."""
    if name == "default":
        return DemoConfig()
    if name == "tiny":
        return tiny_demo_config()
    raise InputError(f"unknown demo preset {name!r}; use 'default' or 'tiny'")


@dataclass
class DemoResult:
    """What the demo produced."""

    metrics: dict[str, Any]
    out_dir: Path


def run_demo(config: DemoConfig | None = None, out_dir: str | Path = "runs/demo", *,
             progress: Callable[[str], None] | None = None, overwrite: bool = False) -> DemoResult:
    """Run the SED, image and uncertainty parts (reusing cached stages) and write the report.

    `out_dir` follows the output-folder contract (`photopop.outputs`): a demo folder of another config
    is reused only with `overwrite` (cached stages stay valid: they are keyed by their settings).
    """
    from ..outputs import claim_output

    cfg = copy.deepcopy(config) if config is not None else DemoConfig()
    with claim_output(out_dir, "demo", {"config": to_dict(cfg)}, overwrite=overwrite, in_place=True):
        return _run_demo(cfg, Path(out_dir), progress=progress, overwrite=overwrite)


def _run_demo(cfg: DemoConfig, out_dir: Path, *, progress: Callable[[str], None] | None,
              overwrite: bool) -> DemoResult:
    say = progress or (lambda msg: None)
    out = Path(out_dir)
    save_config(cfg, out / "config.toml")
    t0 = time.perf_counter()
    timing: dict[str, float] = {}

    sed_cfg = copy.deepcopy(cfg.sed)
    sed_cfg.seed = cfg.seed
    say("[1/4] SED method (Liew-Cain et al. 2021): mock IFU survey, Set A / Set B, gradients, studies")
    t = time.perf_counter()
    sed = run_liew_cain_2021(sed_cfg, out / "sed", progress=say, overwrite=overwrite)
    timing["sed"] = time.perf_counter() - t
    metrics: dict[str, Any] = {"photopop_version": __version__, "seed": cfg.seed, "config_hash": config_hash(cfg),
                               "sed": sed.metrics}

    if cfg.run_images:
        img_cfg = copy.deepcopy(cfg.images)
        img_cfg.seed = cfg.seed
        img_cfg.survey.seed = cfg.seed
        say("[2/4] image method (Wu & Boada 2019): mock imaging survey, ResNet, baselines, resolution, MZR")
        t = time.perf_counter()
        images = run_wu_boada_2019(img_cfg, out / "images", progress=say, overwrite=overwrite)
        timing["images"] = time.perf_counter() - t
        metrics["images"] = images.metrics

    if cfg.run_uncertainty:
        say("[3/4] uncertainties on the default mock: heteroscedastic ensembles, recalibration, coverage on "
            "unseen galaxies")
        t = time.perf_counter()
        ucfg = copy.deepcopy(cfg.uncertainty)
        ucfg.seed = cfg.seed
        survey_cfg = copy.deepcopy(cfg.uncertainty_survey)
        survey_cfg.seed = cfg.seed
        runner = StageRunner(out / "uncertainty" / "stages", log=say)
        survey = runner.run("survey", survey_cfg, stage_survey(survey_cfg))
        study = runner.run("study", ucfg, _stage_uncertainty(ucfg), [survey])
        unc = json.loads((study.path / "study" / "metrics.json").read_text())
        timing["uncertainty"] = time.perf_counter() - t
        metrics["calibration"] = unc["calibration"]
        metrics["uncertainty"] = {k: v for k, v in unc.items() if k != "calibration"}

    if cfg.run_posterior:
        say("[4/4] posteriors on the default mock: a conditional flow beside the ensemble; SBC, TARP, OOD flag")
        t = time.perf_counter()
        pcfg = copy.deepcopy(cfg.posterior)
        pcfg.seed = cfg.seed
        survey_cfg = copy.deepcopy(cfg.uncertainty_survey)
        survey_cfg.seed = cfg.seed
        runner = StageRunner(out / "uncertainty" / "stages", log=say)  # the survey stage is shared
        survey = runner.run("survey", survey_cfg, stage_survey(survey_cfg))
        study = runner.run("posterior", pcfg, _stage_posterior(pcfg, survey_cfg), [survey])
        metrics["posterior"] = json.loads((study.path / "study" / "metrics.json").read_text())
        timing["posterior"] = time.perf_counter() - t

    timing["total"] = time.perf_counter() - t0
    metrics["timing_s"] = timing
    write_json_atomic(out / "metrics.json", metrics)
    from ..report.demo_report import write_demo_report

    write_demo_report(out, metrics)
    say(f"wrote {out / 'report.html'} and {out / 'metrics.json'} in {timing['total'] / 60:.1f} min")
    return DemoResult(metrics, out)


def _stage_uncertainty(ucfg: UncertaintyConfig) -> Callable[[Path, Mapping[str, StageResult]], None]:
    def run(out: Path, ups: Mapping[str, StageResult]) -> None:
        run_uncertainty_study(read_sed_table(ups["survey"].path / "table"), ucfg, out / "study")

    return run


def _stage_posterior(pcfg: PosteriorStudyConfig,
                     survey_cfg: IFUSurveyConfig) -> Callable[[Path, Mapping[str, StageResult]], None]:
    def run(out: Path, ups: Mapping[str, StageResult]) -> None:
        run_posterior_study(read_sed_table(ups["survey"].path / "table"), pcfg, out / "study", survey_config=survey_cfg)

    return run


def load_demo_config(path: str | Path | None = None, tiny: bool = False,
                     overrides: Mapping[str, Any] | None = None) -> DemoConfig:
    """The demo preset ('tiny' if asked, else the file's ``preset`` key, else 'default') with a
    TOML/YAML file's settings merged on top, then `overrides` (a nested dict, e.g. from ``--set``);
    unknown keys raise InputError."""
    data = read_config_data(path) if path is not None else {}
    if overrides:
        data = deep_update(data, dict(overrides))
    return layered_config(DemoConfig, demo_preset, data, "tiny" if tiny else None, default="default")


def headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The few numbers the CLI prints at the end."""
    out: dict[str, Any] = {}
    sed = metrics.get("sed", {})
    for s in ("set_a", "set_b"):
        for t, v in sed.get(s, {}).items():
            if isinstance(v, Mapping) and "robust_sigma" in v:
                out[f"sed.{s}.{t}.robust_sigma"] = v["robust_sigma"]
    img = metrics.get("images", {})
    for k in ("cnn", "rf_gri", "rf_ugriz", "constant"):
        if isinstance(img.get(k), Mapping):
            out[f"images.{k}.rmse"] = img[k].get("rmse")
    for t, v in metrics.get("calibration", {}).items():
        out[f"calibration.{t}.coverage_68"] = v.get("coverage_68")
        out[f"calibration.{t}.coverage_95"] = v.get("coverage_95")
    for t, v in metrics.get("posterior", {}).get("posterior", {}).get("per_target", {}).items():
        out[f"posterior.{t}.coverage_68"] = v.get("coverage_68")
        out[f"posterior.{t}.coverage_95"] = v.get("coverage_95")
    return out
