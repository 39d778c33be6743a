"""`photopop reproduce liew-cain-2021`: the whole of Liew-Cain et al. (2021) on the mock IFU survey.

Stages (each cached by the hash of its settings and its upstream stages, see `experiments.stages`):

    survey ─┬─ cv_a ─┬─ gradients ── mass_gradients
            ├─ cv_b ─┼─ properties
            │        └─ mismatch ── survey_alt (another SSP library; optional)
            ├─ morphology
            └─ training_size

then `metrics.json`, the figures and `report.html` are written from the stage outputs (cheap, always
redone). Everything is driven by one `LiewCain2021Config` (saved as DIR/config.toml); presets
'full' (the paper's settings), 'quick' (minutes on 2 CPU cores) and 'tiny' (a test-sized run).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from .. import __version__
from ..config import config_hash, deep_update, layered_config, read_config_data, save_config, to_dict
from ..datasets.sed_table import SEDTable, read_sed_table
from ..errors import InputError
from ..evaluation.galaxy_studies import (
    DEFAULT_PROPERTIES,
    gradient_mass_bins,
    mismatch_summary,
    morphology_table,
    per_galaxy_residuals,
    property_dependence,
    training_size_summary,
)
from ..evaluation.gradients import compare_gradients, radial_gradients
from ..evaluation.metrics import scores
from ..io import read_table, write_json_atomic, write_table_atomic
from ..models.baselines import RandomForestConfig
from ..models.floor import FloorConfig
from ..models.template_library import TemplateLibraryConfig
from ..models.sed_cnn import SEDCNNConfig
from ..simulate.geometry import GalaxySampleConfig
from ..simulate.ifu import IFUSurveyConfig, NoiseConfig, simulate_ifu_survey
from ..training.fit import TrainConfig
from .bagpipes_reference import BagpipesSettings, bagpipes_stage
from .diversity import DiversitySettings, diversity_stage
from .sed_cv import SEDCVConfig, derived_seed, run_sed_cv
from .stages import StageResult, StageRunner
from .studies import (
    MismatchSettings,
    MorphologySettings,
    TrainingSizeSettings,
    apply_cv_models,
    library_bands,
    run_morphology_study,
    run_training_size_study,
)

PRESETS = ("full", "quick", "tiny", "diversity")
SETS = {"set_a": "A", "set_b": "B"}
TARGETS = ("log_age", "zh")
#: prediction methods whose per-spaxel values also get radial gradients
GRADIENT_METHODS = ("cnn", "random_forest", "template_fit")

#: the published numbers (Liew-Cain et al. 2021, MNRAS 506, 1972), as quoted in the text, tables and figures
PAPER: dict[str, Any] = {
    "reference": "Liew-Cain, Kawata, Sanchez-Blazquez, Ferreras & Symeonidis 2021, MNRAS 506, 1972",
    "set_a": {
        "log_age": {"robust_sigma": 0.03, "gradient_robust_sigma": 0.02, "pcc_residuals": -0.24},
        "zh": {"robust_sigma": 0.03, "gradient_robust_sigma": 0.02, "pcc_residuals": -0.24},
    },
    "set_b": {
        "log_age": {"robust_sigma": 0.14, "robust_sigma_text": 0.16, "gradient_robust_sigma": 0.15,
                    "pcc_residuals": -0.24},
        "zh": {"robust_sigma": 0.16, "gradient_robust_sigma": 0.16, "pcc_residuals": -0.24},
    },
    "notes": {
        "set_b_age": "Fig. 8 caption and Table 1 give 0.14 dex for age in Set B; the text of Sect. 4.3 says 0.16.",
        "data": "190 CALIFA galaxies (44 early, 146 late), 19 727 spectra, 34 J-PAS bands (photopop: 37, see docs/photometry.md); labels from STECKMAP fits.",
    },
    # Table 1: robust sigma (dex); morphology[target][application set][training set]
    "morphology": {
        "log_age": {"early": {"early": 0.10, "late": 0.14}, "late": {"early": 0.16, "late": 0.15},
                    "all": {"all": 0.14}},
        "zh": {"early": {"early": 0.12, "late": 0.13}, "late": {"early": 0.19, "late": 0.17},
               "all": {"all": 0.16}},
    },
    "training_size": {
        "fractions": [0.05, 0.75],
        "n_train_set_a": {"0.05": 986, "0.75": 14795},
        "n_train_galaxies_set_b": {"0.05": 10, "0.75": 157},
        "repeats": 100,
        "set_a_5pc_minus_set_b_75pc": -0.07,
        "description": ("Age only. Set B's robust sigma rises as the training set shrinks and its spread grows; "
                        "Set A changes by only ~1 sigma between 5 and 75 per cent; Set A at 5 per cent is ~0.07 dex "
                        "below Set B at 75 per cent; both lie below the random-prediction line."),
    },
    "property_dependence": ("Sect. 4.4: the per-galaxy robust sigma rises slightly with specific SFR; no trend of "
                            "the median or the robust sigma with inclination, A_V or bulge fraction."),
    "mass_gradients": ("Sect. 4.6, Fig. 14: Set A gradients follow the spectroscopic ones against stellar mass; "
                       "Set B differs markedly, for individual galaxies and bin means."),
}


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


def _light_weighting(table: Any) -> str | None:
    """Which light the table's luminosity-weighted labels are weighted by (a mock's config), else None."""
    cfg = getattr(table, "config", None)
    if isinstance(cfg, dict):
        return cfg.get("light_weighting")
    return getattr(cfg, "light_weighting", None)


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
                           floor=FloorConfig(n_library=30_000)),
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
        cfg.diversity = DiversitySettings(seeds_per_point=(3, 3, 3, 3, 3, 2, 1), pretrain_galaxies=1000)
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


# -- stage settings (what each stage's output depends on) ---------------------------------------------------
def _cv_settings(cv: SEDCVConfig, split: str | None = None) -> dict[str, Any]:
    """cv config without run-time knobs (device, threads, checkpoint cadence, RF jobs)."""
    d = to_dict(cv)
    for k in ("device", "num_threads", "checkpoint_every"):
        d.get("train", {}).pop(k, None)
    d.get("random_forest", {}).pop("n_jobs", None)
    if split is not None:
        d["split"] = split
    else:
        d.pop("split", None)
    return d


def _cv_config(cv: SEDCVConfig, split: str) -> SEDCVConfig:
    c = copy.deepcopy(cv)
    c.split = split
    return c


def _folder_fingerprint(folder: Path, pattern: str) -> dict[str, Any]:
    files = sorted(folder.glob(pattern))
    if not files:
        raise InputError(f"{folder}: no SSP files matching {pattern!r}")
    return {"folder": str(folder.resolve()), "pattern": pattern,
            "files": config_hash([[f.name, f.stat().st_size] for f in files], 16), "n_files": len(files)}


def alt_library_survey_config(survey: IFUSurveyConfig, folder: str | Path, pattern: str = "*.fits",
                              bands: list[str] | tuple[str, ...] | None = None) -> IFUSurveyConfig:
    """The same survey (same seed: same galaxies, bins, histories and noise draws) built from another SSP library.

    Sets the simulator's `ssp_folder` / `ssp_pattern` (a MILES-format folder, `SSPGrid.from_miles_folder`) and
    clears `ssp_file`; `bands`, if given, replaces the band selection (for a library that misses some bands).
    """
    c = copy.deepcopy(survey)
    c.ssp_folder = str(folder)
    c.ssp_pattern = str(pattern)
    c.ssp_file = ""
    if bands is not None:
        c.bands = tuple(bands)
        c.all_bands = False
    c.check()
    return c


# -- stage bodies ---------------------------------------------------------------------------------------------
def _table_of(stage: StageResult) -> SEDTable:
    return read_sed_table(stage.path / "table")


def stage_survey(cfg: IFUSurveyConfig) -> Callable[[Path, Mapping[str, StageResult]], None]:
    def run(out: Path, ups: Mapping[str, StageResult]) -> None:
        simulate_ifu_survey(copy.deepcopy(cfg)).write(out / "table")
    return run


def _stage_cv(cfg: SEDCVConfig, say: Callable[[str], None],
              bands: list[str] | None = None) -> Callable[[Path, Mapping[str, StageResult]], None]:
    def run(out: Path, ups: Mapping[str, StageResult]) -> None:
        table: Any = ups["survey"].path / "table"
        if bands is not None:
            table = _table_of(ups["survey"]).select_bands(bands)
        run_sed_cv(table, cfg, out, progress=lambda m: say(f"  cv {cfg.split}: {m}"))
    return run


def _spaxel_frame(table: SEDTable, targets: tuple[str, ...]) -> pd.DataFrame:
    cols = ["galaxy_id", "spaxel_id", "r_re", *targets] + [f"{t}_true" for t in targets
                                                            if f"{t}_true" in table.spaxels.columns]
    missing = [c for c in ("r_re", *targets) if c not in table.spaxels.columns]
    if missing:
        raise InputError(f"the SED table lacks column(s) {missing} needed for gradients")
    return table.spaxels[cols].rename(columns={f"{t}_true": f"{t}_noisefree" for t in targets})


def _joined_predictions(table: SEDTable, ups: Mapping[str, StageResult], targets: tuple[str, ...]) -> pd.DataFrame:
    """Spaxels with r_re, labels and every set's predictions (columns <set>_<target>_<method>)."""
    spx = _spaxel_frame(table, targets)
    for set_name in SETS:
        pred = read_table(ups[f"cv_{set_name[-1]}"].file("predictions.parquet"))
        keep = [c for c in pred.columns if any(c.startswith(f"{t}_") for t in targets) and not c.endswith("_true")]
        pred = pred[["galaxy_id", "spaxel_id", *keep]].rename(columns={c: f"{set_name}_{c}" for c in keep})
        spx = spx.merge(pred, on=["galaxy_id", "spaxel_id"], how="inner", validate="1:1")
    return spx


def _stage_gradients(gs: GradientSettings, targets: tuple[str, ...], seed: int):
    def run(out: Path, ups: Mapping[str, StageResult]) -> None:
        table = _table_of(ups["survey"])
        df = _joined_predictions(table, ups, targets)
        r = df["r_re"].to_numpy()
        gid = df["galaxy_id"].to_numpy()
        kw = dict(r_max=gs.r_max, min_inside=gs.min_inside, min_outside=gs.min_outside, n_boot=gs.n_boot,
                  frac=gs.frac, seed=derived_seed(seed, "gradients"))
        parts = []
        for t in targets:
            sources = {"label": t}
            if f"{t}_noisefree" in df.columns:
                sources["noisefree"] = f"{t}_noisefree"
            for set_name in SETS:
                for m in GRADIENT_METHODS:
                    col = f"{set_name}_{t}_{m}"
                    if col in df.columns:
                        sources[f"{set_name}_{m}"] = col
            for src, col in sources.items():
                g = radial_gradients(r, df[col].to_numpy(), gid, **kw)  # same r and seed: same subsamples
                parts.append(g.reset_index().assign(source=src, target=t))
        write_table_atomic(pd.concat(parts, ignore_index=True), out / "gradients.parquet")
    return run


def _gradient_kw(cfg: LiewCain2021Config) -> dict[str, Any]:
    """`radial_gradients` keywords of the run (the diversity study uses the gradients stage's settings)."""
    gs = cfg.gradients
    return dict(r_max=gs.r_max, min_inside=gs.min_inside, min_outside=gs.min_outside, n_boot=gs.n_boot,
                frac=gs.frac, seed=derived_seed(cfg.seed, "gradients"))


def _gradient_table(grads: pd.DataFrame, source: str, target: str) -> pd.DataFrame:
    g = grads[(grads["source"] == source) & (grads["target"] == target)]
    return g.set_index("galaxy_id")


def _gradient_metrics(grads: pd.DataFrame, galaxies: pd.DataFrame | None, targets: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in targets:
        label = _gradient_table(grads, "label", t)
        entry: dict[str, Any] = {"n_galaxies": int(len(label)), "n_selected": int(label["selected"].sum())}
        true = None
        if galaxies is not None and f"grad_{t}" in galaxies.columns:
            true = galaxies.set_index("galaxy_id")[f"grad_{t}"].astype(float)
            entry["label_vs_true"] = compare_gradients(true, label)
        if (grads["source"] == "noisefree").any():
            nf = _gradient_table(grads, "noisefree", t)
            entry["label_vs_noisefree"] = compare_gradients(nf, label)
        for src in sorted(set(grads.loc[grads["target"] == t, "source"]) - {"label", "noisefree"}):
            g = _gradient_table(grads, src, t)
            e = {"vs_label": compare_gradients(label, g)}
            if true is not None:
                e["vs_true"] = compare_gradients(true, g)
            entry[src] = e
        out[t] = entry
    return out


def _stage_properties(ps: PropertySettings, targets: tuple[str, ...]):
    def run(out: Path, ups: Mapping[str, StageResult]) -> None:
        table = _table_of(ups["survey"])
        if table.galaxies is None:
            raise InputError("the property study needs the galaxy table")
        df = _joined_predictions(table, ups, targets)
        pts, bins = [], []
        for set_name in SETS:
            for t in targets:
                stats = per_galaxy_residuals(df["galaxy_id"], df[t], df[f"{set_name}_{t}_cnn"])
                p, b = property_dependence(stats, table.galaxies, ps.properties, ps.per_bin)
                pts.append(p.assign(set=set_name, target=t))
                bins.append(b.assign(set=set_name, target=t))
        write_table_atomic(pd.concat(pts, ignore_index=True), out / "points.parquet")
        write_table_atomic(pd.concat(bins, ignore_index=True), out / "bins.parquet")
    return run


def _stage_mass(ms: MassGradientSettings):
    def run(out: Path, ups: Mapping[str, StageResult]) -> None:
        table = _table_of(ups["survey"])
        if table.galaxies is None:
            raise InputError("the mass-gradient study needs the galaxy table")
        grads = read_table(ups["gradients"].file("gradients.parquet"))
        pts, bins = [], []
        for src in ("label", "set_a_cnn", "set_b_cnn"):
            g = _gradient_table(grads, src, ms.target)
            s = g["slope_mean"].where(g["selected"].astype(bool))
            p, b = gradient_mass_bins(s, table.galaxies, {"early": ms.per_bin_early, "late": ms.per_bin_late})
            pts.append(p.assign(source=src))
            bins.append(b.assign(source=src))
        write_table_atomic(pd.concat(pts, ignore_index=True), out / "points.parquet")
        write_table_atomic(pd.concat(bins, ignore_index=True), out / "bins.parquet")
    return run


def _stage_morphology(cfg: LiewCain2021Config, say: Callable[[str], None]):
    def run(out: Path, ups: Mapping[str, StageResult]) -> None:
        table = _table_of(ups["survey"])
        long = run_morphology_study(table, cfg.cv, cfg.morphology, out, progress=say)
        write_table_atomic(long, out / "predictions.parquet")
    return run


def _stage_training_size(cfg: LiewCain2021Config, say: Callable[[str], None]):
    def run(out: Path, ups: Mapping[str, StageResult]) -> None:
        table = _table_of(ups["survey"])
        rec = run_training_size_study(table, cfg.cv, cfg.training_size, out, progress=say)
        write_table_atomic(rec, out / "records.parquet")
    return run


def _stage_mismatch(cfg: LiewCain2021Config, model_stages: Mapping[str, str], retrained: bool):
    def run(out: Path, ups: Mapping[str, StageResult]) -> None:
        alt = _table_of(ups["survey_alt"])
        ref_meta = _table_of(ups["survey"]).meta
        targets = tuple(cfg.cv.targets)
        summary: dict[str, Any] = {"ssp_grid": alt.meta.get("ssp_grid"), "n_spaxels_alt": int(len(alt.spaxels)),
                                   "ssp_grid_ref": ref_meta.get("ssp_grid"),
                                   "nebular_ref": ref_meta.get("nebular"), "nebular_alt": alt.meta.get("nebular"),
                                   "bands": list(alt.bands),
                                   "bands_dropped": [b for b in ref_meta.get("bands", []) if b not in alt.bands],
                                   "retrained_on_common_bands": retrained}
        parts = []
        for set_name in SETS:
            cv_dir = ups[model_stages[set_name]].path
            alt_pred = apply_cv_models(cv_dir, alt, targets, cfg.cv.joint_targets)
            ref = read_table(cv_dir / "predictions.parquet")
            ref = ref[["galaxy_id", "spaxel_id", *[c for t in targets for c in (f"{t}_true", f"{t}_cnn")]]]
            m = ref.merge(alt_pred.drop(columns=["fold"]), on=["galaxy_id", "spaxel_id"], suffixes=("_ref", "_alt"))
            summary[set_name] = {t: mismatch_summary(m[f"{t}_true_ref"], m[f"{t}_cnn_ref"], m[f"{t}_true_alt"],
                                                     m[f"{t}_cnn_alt"]) for t in targets}
            parts.append(m.assign(set=set_name))
        write_table_atomic(pd.concat(parts, ignore_index=True), out / "predictions.parquet")
        write_json_atomic(out / "summary.json", summary)
    return run


# -- the run ----------------------------------------------------------------------------------------------------
@dataclass
class LiewCainResult:
    """What a run produced: the metrics dict, the output folder and the stage results."""

    metrics: dict[str, Any]
    out_dir: Path
    stages: dict[str, StageResult]


def run_liew_cain_2021(config: LiewCain2021Config | None = None, out_dir: str | Path = "liew-cain-2021", *,
                       progress: Callable[[str], None] | None = None, force: tuple[str, ...] = (),
                       report: bool = True, overwrite: bool = False) -> LiewCainResult:
    """Run every stage (reusing cached ones) and write DIR/metrics.json, DIR/figures/ and DIR/report.html.

    `out_dir` follows the output-folder contract (`photopop.outputs`): a run folder of another config
    is reused only with `overwrite`; its stage cache stays (stages are keyed by their own settings).
    """
    from ..outputs import claim_output

    cfg = copy.deepcopy(config) if config is not None else preset_config("full")
    cfg.resolve()
    inputs = [cfg.mismatch.ssp_folder] if cfg.mismatch.ssp_folder else []
    with claim_output(out_dir, "reproduce-liew-cain-2021", {"config": to_dict(cfg)}, overwrite=overwrite,
                      inputs=inputs, in_place=True):
        return _run_liew_cain_2021(cfg, Path(out_dir), progress=progress, force=force, report=report)


def _run_liew_cain_2021(config: LiewCain2021Config, out_dir: Path, *, progress: Callable[[str], None] | None,
                        force: tuple[str, ...], report: bool) -> LiewCainResult:
    cfg = copy.deepcopy(config) if config is not None else preset_config("full")
    cfg.resolve()
    say = progress or (lambda msg: None)
    out = Path(out_dir)
    save_config(cfg, out / "config.toml")
    t0 = time.perf_counter()
    runner = StageRunner(out / "stages", log=say, force=force)
    targets = tuple(cfg.cv.targets)
    alt_cfg = None
    if cfg.mismatch.ssp_folder:  # checked before any long stage runs
        folder = Path(cfg.mismatch.ssp_folder).expanduser()
        if not folder.is_dir():
            raise InputError(f"mismatch.ssp_folder {folder}: no such folder")
        library = _folder_fingerprint(folder, cfg.mismatch.ssp_pattern)
        alt_cfg = alt_library_survey_config(cfg.survey, folder, cfg.mismatch.ssp_pattern)

    survey = runner.run("survey", cfg.survey, stage_survey(cfg.survey))
    cv = {s: runner.run(f"cv_{s[-1]}", _cv_settings(cfg.cv, split), _stage_cv(_cv_config(cfg.cv, split), say),
                        [survey], resumable=True) for s, split in SETS.items()}
    grads = runner.run("gradients", {"gradients": to_dict(cfg.gradients), "seed": cfg.seed, "targets": list(targets)},
                       _stage_gradients(cfg.gradients, targets, cfg.seed), [survey, cv["set_a"], cv["set_b"]])
    runner.run("properties", {"properties": to_dict(cfg.properties), "targets": list(targets)},
               _stage_properties(cfg.properties, targets), [survey, cv["set_a"], cv["set_b"]], version="2")
    runner.run("mass_gradients", cfg.mass_gradients, _stage_mass(cfg.mass_gradients), [survey, grads])
    if cfg.morphology.enabled:
        runner.run("morphology", {"morphology": to_dict(cfg.morphology), "cv": _cv_settings(cfg.cv)},
                   _stage_morphology(cfg, say), [survey], resumable=True)
    if cfg.training_size.enabled:
        runner.run("training_size", {"training_size": to_dict(cfg.training_size), "cv": _cv_settings(cfg.cv)},
                   _stage_training_size(cfg, say), [survey], resumable=True)
    mismatch_note = ""
    if alt_cfg is not None:
        main_bands = _table_of(survey).bands
        bands = library_bands(_table_of(survey), folder, cfg.mismatch.ssp_pattern)
        if len(bands) < 2:
            raise InputError(f"the SSP library in {folder} covers {len(bands)} of the survey's bands; the "
                             "model-mismatch study needs at least two")
        retrained = bands != main_bands
        alt_cfg = alt_library_survey_config(cfg.survey, folder, cfg.mismatch.ssp_pattern,
                                            bands if retrained else None)
        alt = runner.run("survey_alt", {"survey": to_dict(alt_cfg), "library": library}, stage_survey(alt_cfg))
        if retrained:
            say(f"model mismatch: {folder.name} misses band(s) {[b for b in main_bands if b not in bands]}; "
                "retraining the Set A / Set B CNNs on the common bands")
            models = {}
            for s, split in SETS.items():
                c = _cv_config(cfg.cv, split)
                c.methods = ("cnn",)
                models[s] = runner.run(f"cv_{s[-1]}_common", {**_cv_settings(c, split), "bands": bands},
                                       _stage_cv(c, say, bands), [survey], resumable=True)
        else:
            models = cv
        runner.run("mismatch", {"targets": list(targets)},
                   _stage_mismatch(cfg, {s: r.name for s, r in models.items()}, retrained),
                   [survey, alt, models["set_a"], models["set_b"]], version="2")
    else:
        mismatch_note = ("skipped: no second SSP library given (set mismatch.ssp_folder or --mismatch-ssp to a "
                         "MILES-format folder such as MIUSCAT)")
    if cfg.diversity.enabled:
        runner.run("diversity", {"diversity": to_dict(cfg.diversity), "cv": _cv_settings(cfg.cv),
                                 "survey": to_dict(cfg.survey), "gradients": to_dict(cfg.gradients)},
                   diversity_stage(cfg.survey, cfg.cv, cfg.diversity, cfg.seed, targets, _gradient_kw(cfg), say),
                   [survey, cv["set_a"], cv["set_b"]], version="2", resumable=True)
    if cfg.bagpipes.n_spaxels > 0:
        runner.run("bagpipes", {"bagpipes": to_dict(cfg.bagpipes)}, bagpipes_stage(cfg.bagpipes, say),
                   [survey, cv["set_b"]])
    metrics = collect_metrics(cfg, runner.results, mismatch_note)
    if "diversity" in runner.results:
        metrics["diversity"] = json.loads(runner.results["diversity"].file("diversity.json").read_text())
        metrics["diversity_finetune"] = json.loads(runner.results["diversity"].file("finetune.json").read_text())
        metrics["diversity_settings"] = to_dict(cfg.diversity)
    if "bagpipes" in runner.results:
        metrics["bagpipes"] = json.loads(runner.results["bagpipes"].file("bagpipes.json").read_text())
    metrics["timing_s"] = {"total": time.perf_counter() - t0,
                           **{n: r.seconds for n, r in runner.results.items()}}
    write_json_atomic(out / "metrics.json", metrics)
    if report:
        from ..report.liew_cain_report import write_liew_cain_report

        write_liew_cain_report(out, metrics, load_report_data(cfg, runner.results))
        say(f"wrote {out / 'report.html'}")
    return LiewCainResult(metrics, out, dict(runner.results))


# -- metrics ---------------------------------------------------------------------------------------------------
def collect_metrics(cfg: LiewCain2021Config, stages: Mapping[str, StageResult],
                    mismatch_note: str = "") -> dict[str, Any]:
    """metrics.json: per set and target the paper's three figures, the baselines, every study, the paper's values."""
    targets = tuple(cfg.cv.targets)
    table = _table_of(stages["survey"])
    grads = read_table(stages["gradients"].file("gradients.parquet"))
    gm = _gradient_metrics(grads, table.galaxies, targets)
    m: dict[str, Any] = {"preset": cfg.preset, "seed": cfg.seed, "photopop_version": __version__,
                         "config_hash": config_hash(cfg)}
    baselines: dict[str, Any] = {}
    spx = _joined_predictions(table, stages, targets)
    for set_name in SETS:
        cvm = json.loads(stages[f"cv_{set_name[-1]}"].file("metrics.json").read_text())
        pcc = cvm.get("pcc_residuals", {}).get("cnn")
        m[set_name] = {}
        for t in targets:
            cnn = cvm["cnn"][t]
            g = gm[t].get(f"{set_name}_cnn", {})
            m[set_name][t] = {"robust_sigma": cnn["robust_sigma"],
                              "gradient_robust_sigma": g.get("vs_label", {}).get("robust_sigma"),
                              "pcc_residuals": pcc, "bias": cnn["bias"], "rmse": cnn["rmse"], "n": cnn["n"],
                              "gradient_bias": g.get("vs_label", {}).get("bias"),
                              "gradient_n": g.get("vs_label", {}).get("n"),
                              "gradient_vs_true_robust_sigma": g.get("vs_true", {}).get("robust_sigma"),
                              "ratio_to_floor": cvm.get("ratio_to_floor", {}).get("cnn", {}).get(t)}
            if f"{t}_noisefree" in spx.columns:  # mock: against the labels before label noise
                nf = scores(spx[f"{t}_noisefree"], spx[f"{set_name}_{t}_cnn"])
                m[set_name][t]["robust_sigma_vs_noisefree"] = nf["robust_sigma"]
                m[set_name][t]["label_noise_robust_sigma"] = scores(spx[f"{t}_noisefree"], spx[t])["robust_sigma"]
        baselines[set_name] = {meth: {t: v for t, v in vals.items()} for meth, vals in cvm.items()
                               if meth not in ("cnn", "pcc_residuals", "ratio_to_floor")}
        baselines[set_name]["pcc_residuals"] = cvm.get("pcc_residuals", {})
        baselines[set_name]["ratio_to_floor"] = cvm.get("ratio_to_floor", {})
    m["baselines"] = baselines
    m["survey"] = {"n_galaxies": int(table.spaxels["galaxy_id"].nunique()), "n_spaxels": int(len(table.spaxels)),
                   "n_early": int((table.galaxies["type"] == "early").sum()) if table.galaxies is not None else None,
                   "n_bands": len(table.bands), "filter_system": table.filter_system,
                   "ssp_grid": table.meta.get("ssp_grid"),
                   "light_weighting": _light_weighting(table)}
    m["gradients"] = {"settings": to_dict(cfg.gradients), **gm}

    pb = read_table(stages["properties"].file("bins.parquet"))
    prop: dict[str, Any] = {"per_bin": cfg.properties.per_bin}
    for (set_name, t, p, stat), b in pb.groupby(["set", "target", "property", "statistic"], sort=False):
        prop.setdefault(set_name, {}).setdefault(t, {}).setdefault(p, {})[stat] = {
            "spearman_r": float(b["spearman_r"].iloc[0]), "spearman_p": float(b["spearman_p"].iloc[0]),
            "bins": b[["n", "x_centre", "y_centre", "y_spread"]].to_dict("records")}
    m["property_dependence"] = prop

    if "morphology" in stages:
        long = read_table(stages["morphology"].file("predictions.parquet"))
        tab = morphology_table(long, targets)
        morph: dict[str, Any] = {"n_folds": cfg.morphology.n_folds, "folds_used": cfg.morphology.folds_used}
        for (t, appl), row in tab.iterrows():
            morph.setdefault(t, {})[appl] = {tr: row[tr] for tr in tab.columns}
        morph["n"] = {f"{t}/{a}": {tr: int(v) for tr, v in row.items()} for (t, a), row in tab.attrs["n"].iterrows()}
        m["morphology"] = morph
    else:
        m["morphology"] = {"skipped": "disabled (morphology.enabled = false)"}

    if "training_size" in stages:
        rec = read_table(stages["training_size"].file("records.parquet"))
        summ = training_size_summary(rec)
        ts: dict[str, Any] = {"repeats": cfg.training_size.repeats,
                              "note": f"{cfg.training_size.repeats} repeats per point (the paper: 100)",
                              "rows": summ.to_dict("records"),
                              "random_line": {t: float(rec.loc[rec["target"] == t, "random_robust_sigma"].mean())
                                              for t in cfg.training_size.targets}}
        fr = summ["fraction"].to_numpy()
        a_small = summ[(summ["scheme"] == "A") & (summ["target"] == "log_age") & (fr == fr.min())]
        b_large = summ[(summ["scheme"] == "B") & (summ["target"] == "log_age") & (fr == fr.max())]
        if len(a_small) and len(b_large):
            ts["set_a_smallest_minus_set_b_largest"] = float(a_small["mean"].iloc[0] - b_large["mean"].iloc[0])
            ts["smallest_fraction"], ts["largest_fraction"] = float(fr.min()), float(fr.max())
        m["training_size"] = ts
    else:
        m["training_size"] = {"skipped": "disabled (training_size.enabled = false)"}

    mp = read_table(stages["mass_gradients"].file("bins.parquet"))
    mass: dict[str, Any] = {"target": cfg.mass_gradients.target,
                            "per_bin": {"early": cfg.mass_gradients.per_bin_early,
                                        "late": cfg.mass_gradients.per_bin_late}}
    for (src, typ), b in mp.groupby(["source", "type"], sort=False):
        mass.setdefault(src, {})[typ] = b[["n", "x_centre", "y_centre", "y_spread"]].to_dict("records")
    m["mass_gradients"] = mass

    if "mismatch" in stages:
        mm = json.loads(stages["mismatch"].file("summary.json").read_text())
        mm["library"] = cfg.mismatch.label or Path(cfg.mismatch.ssp_folder).name
        m["model_mismatch"] = mm
    else:
        m["model_mismatch"] = {"skipped": mismatch_note or "skipped"}
    m["stages"] = {n: r.hash for n, r in stages.items()}
    m["paper"] = PAPER
    return m


def load_report_data(cfg: LiewCain2021Config, stages: Mapping[str, StageResult]) -> dict[str, Any]:
    """The tables the report draws (plain DataFrames keyed by name), read from the stage folders."""
    table = _table_of(stages["survey"])
    targets = tuple(cfg.cv.targets)
    data: dict[str, Any] = {
        "spaxels": _joined_predictions(table, stages, targets),
        "galaxies": table.galaxies,
        "gradients": read_table(stages["gradients"].file("gradients.parquet")),
        "property_points": read_table(stages["properties"].file("points.parquet")),
        "property_bins": read_table(stages["properties"].file("bins.parquet")),
        "mass_points": read_table(stages["mass_gradients"].file("points.parquet")),
        "mass_bins": read_table(stages["mass_gradients"].file("bins.parquet")),
        "gradient_settings": to_dict(cfg.gradients),
        "gradient_seed": derived_seed(cfg.seed, "gradients"),
        "example_galaxy": cfg.example_galaxy,
    }
    if "training_size" in stages:
        data["training_size"] = read_table(stages["training_size"].file("records.parquet"))
    if "morphology" in stages:
        data["morphology"] = read_table(stages["morphology"].file("predictions.parquet"))
    if "mismatch" in stages:
        data["mismatch"] = read_table(stages["mismatch"].file("predictions.parquet"))
    return data


__all__ = [
    "GradientSettings", "LiewCain2021Config", "LiewCainResult", "MassGradientSettings", "PAPER", "PRESETS",
    "PropertySettings", "alt_library_survey_config", "collect_metrics", "load_liew_cain_config",
    "preset_config", "run_liew_cain_2021",
]
