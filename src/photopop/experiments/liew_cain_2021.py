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

This module wires the run; its parts: `liew_cain_config` (the config and presets), `liew_cain_stages` (the
stage bodies), `liew_cain_metrics` (metrics.json and the report's tables), `liew_cain_paper` (the published
numbers), `photopop.report.liew_cain_report` (figures, report.html). Their public names are importable
from here as before.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import save_config, to_dict
from ..errors import InputError
from ..io import write_json_atomic
from .bagpipes_reference import bagpipes_stage
from .diversity import diversity_stage
from .liew_cain_config import (GRADIENT_METHODS, PRESETS, SETS, TARGETS, GradientSettings, LiewCain2021Config,
                               MassGradientSettings, PropertySettings, load_liew_cain_config, preset_config)
from .liew_cain_metrics import collect_metrics, load_report_data
from .liew_cain_paper import PAPER
from .liew_cain_stages import (_cv_config, _cv_settings, _gradient_kw, _folder_fingerprint, _stage_cv, _stage_gradients,
                               _stage_mass, _stage_mismatch, _stage_morphology, _stage_properties,
                               _stage_training_size, _table_of, alt_library_survey_config, stage_survey)
from .stages import StageResult, StageRunner
from .studies import library_bands


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
                   [survey, cv["set_b"]], resumable=True)
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


__all__ = [
    "GRADIENT_METHODS", "GradientSettings", "LiewCain2021Config", "LiewCainResult", "MassGradientSettings", "PAPER",
    "PRESETS", "PropertySettings", "SETS", "TARGETS", "alt_library_survey_config", "collect_metrics",
    "load_liew_cain_config", "load_report_data", "preset_config", "run_liew_cain_2021", "stage_survey",
]
