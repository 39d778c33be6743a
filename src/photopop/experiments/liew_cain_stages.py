"""The stages of `photopop reproduce liew-cain-2021` and the settings each one's cache key holds.

    survey ─┬─ cv_a ─┬─ gradients ── mass_gradients
            ├─ cv_b ─┼─ properties
            │        └─ mismatch ── survey_alt (another SSP library; optional)
            ├─ morphology
            └─ training_size

Each `_stage_*` / `stage_survey` returns the function `experiments.stages.StageRunner.run` calls with the
stage's folder and its upstream results; `_cv_settings` is what a cross-prediction stage depends on. The
graph is wired in `liew_cain_2021._run_liew_cain_2021`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from ..config import config_hash, to_dict
from ..datasets.sed_table import SEDTable, read_sed_table
from ..errors import InputError
from ..evaluation.galaxy_studies import gradient_mass_bins, mismatch_summary, per_galaxy_residuals, property_dependence
from ..evaluation.gradients import radial_gradients
from ..io import read_table, write_json_atomic, write_table_atomic
from ..simulate.ifu import simulate_ifu_survey
from ..simulate.ifu_config import IFUSurveyConfig
from .liew_cain_config import (GRADIENT_METHODS, SETS, GradientSettings, LiewCain2021Config, MassGradientSettings,
                               PropertySettings)
from .sed_cv import SEDCVConfig, derived_seed, run_sed_cv
from .stages import StageResult
from .studies import apply_cv_models, run_morphology_study, run_training_size_study


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


def _gradient_kw(cfg: Any) -> dict[str, Any]:
    """`radial_gradients` keywords of the run (the diversity study uses the gradients stage's settings)."""
    gs = cfg.gradients
    return dict(r_max=gs.r_max, min_inside=gs.min_inside, min_outside=gs.min_outside, n_boot=gs.n_boot,
                frac=gs.frac, seed=derived_seed(cfg.seed, "gradients"))


def _gradient_table(grads: pd.DataFrame, source: str, target: str) -> pd.DataFrame:
    g = grads[(grads["source"] == source) & (grads["target"] == target)]
    return g.set_index("galaxy_id")


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


__all__ = ["alt_library_survey_config", "stage_survey"]
