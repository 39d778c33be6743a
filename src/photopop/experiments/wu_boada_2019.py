"""`photopop reproduce wu-boada-2019`: Wu & Boada (2019), metallicity from three-colour images, end to end.

Stages (each cached in ``DIR/stages/<name>-<hash>/`` by the hash of its settings and upstream stages,
see `photopop.experiments.stages`):

    survey ─┬─ cnn (12+log(O/H) at full resolution; the model folder is kept)
            ├─ baselines (random forests on gri and ugriz magnitudes, constant mean)
            ├─ mass (CNN on stellar mass; converted with the Tremonti et al. 2004 MZR)
            ├─ cnn-seed<k> (the native-size CNN with network seed k, for the resolution study's spread)
            └─ res<N>[-seed<k>] (CNN on images block-averaged to N x N pixels), per resolution and seed

The CNN's inputs are the paper's by default, 8-bit asinh irg JPEG composites (``use = "rgb"``); linear
calibrated fluxes with ``use = "images"`` (`wu_boada_stages.image_inputs`).

then ``DIR/metrics.json``, ``DIR/predictions.parquet``, ``DIR/figures/*.png`` and a self-contained
``DIR/report.html`` are rebuilt from the stage outputs (cheap, always redone).

Split: 60/20/20 random train/validation/test (`photopop.splits.make_folds` with five random folds:
folds 0-2 train, 3 validation, 4 test), the same galaxies for every method. Scores are on the
test galaxies only, with `photopop.evaluation.metrics` (RMSE about zero, NMAD about the median).

The *intrinsic scatter* of a mock survey is the part of the fibre metallicity ``oh`` that no
property of the galaxy determines: the Gaussian random term of the label model (``oh_true`` minus
the FMR and size terms, `photopop.simulate.mzr`) plus the fibre measurement noise (``oh`` minus
``oh_fibre_true``), RMS over the test galaxies. It is the floor a perfect image model would reach
(up to the faint imprint the random term leaves on stellar colours through the stellar
metallicity). It is None for real data. Beside it ``metrics["floor"]`` holds a random forest on the mock's
true latent parameters and the ratio CNN / RF(gri) (`wu_boada_stages.floor_summary`).
"""


from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..config import save_config, to_dict
from ..datasets.image_set import ImageSet
from ..errors import InputError
from ..evaluation.mzr_analysis import mzr_comparison
from ..io import read_table, write_json_atomic, write_table_atomic
from ..models.image_source import fit_input_normalisation
from ..simulate.images import simulate_image_survey
from ..simulate.mzr import mzr_tremonti04
from .stages import StageResult, StageRunner
from ..splits import split_60_20_20
from .wu_boada_config import (
    PAPER,
    PRESETS,
    STAGE_VERSION,
    WuBoada2019Config,
    load_wu_boada_config,
    preset_config,
)
from .wu_boada_stages import (
    fit_settings,
    floor_summary,
    image_inputs,
    injected_scatter,
    mock_labels,
    read_pred,
    resolution_row,
    rf_stage,
    score,
    train_cnn,
)


@dataclass
class WuBoadaResult:
    """What a run produced: metrics (as in metrics.json), the test-set predictions and stage results."""

    metrics: dict[str, Any]
    predictions: pd.DataFrame
    stages: dict[str, StageResult]
    out: Path


def run_wu_boada_2019(cfg: WuBoada2019Config, out: str | Path, progress: Callable[[str], None] | None = None,
                      force: Sequence[str] = (), report: bool = True, overwrite: bool = False) -> WuBoadaResult:
    """Run every study (cached stages), then write metrics.json, predictions.parquet, figures and report.html.

    `out` follows the output-folder contract (`photopop.outputs`): a run folder of another config is
    reused only with `overwrite`; its stage cache stays (stages are keyed by their own settings).
    """
    from ..outputs import claim_output

    cfg.validate()
    with claim_output(out, "reproduce-wu-boada-2019", {"config": to_dict(cfg)}, overwrite=overwrite,
                      inputs=[cfg.data] if cfg.data else [], in_place=True):
        return _run_wu_boada_2019(cfg, Path(out), progress=progress, force=force, report=report)


def _run_wu_boada_2019(cfg: WuBoada2019Config, out: Path, progress: Callable[[str], None] | None,
                       force: Sequence[str], report: bool) -> WuBoadaResult:
    say = progress or (lambda msg: None)
    save_config(cfg, out / "config.toml")
    runner = StageRunner(out / "stages", log=say, force=force)
    t_start = time.perf_counter()

    # -- data ----------------------------------------------------------------------------------
    if cfg.data:
        iset = ImageSet.open(cfg.data)
        ids = iset.ids
        data_key = {"data": str(Path(cfg.data).resolve()), "n": len(iset),
                    "ids_hash": str(pd.util.hash_array(ids).sum()),
                    "mtime": (Path(cfg.data) / "images.h5").stat().st_mtime}
        survey_stage = runner.run("survey", {"external": data_key}, lambda d, u: None, version=STAGE_VERSION)
        labels = mock_labels(Path(cfg.data))
    else:
        workers = cfg.simulate_workers if cfg.simulate_workers > 0 else None

        def simulate(d: Path, _: Mapping[str, StageResult]) -> None:
            simulate_image_survey(cfg.survey, d / "images", n_workers=workers, progress=False)

        survey_stage = runner.run("survey", cfg.survey, simulate, version=STAGE_VERSION)
        iset = ImageSet.open(survey_stage.path / "images")
        labels = cfg.survey.labels
    catalog = iset.catalog
    for col in (cfg.target, cfg.mass_column):
        if col not in catalog.columns:
            raise InputError(f"{iset.path}/catalog.parquet has no column {col!r}")
    finite = np.isfinite(catalog[cfg.target].to_numpy(dtype=float))
    if not finite.all():
        raise InputError(f"{int((~finite).sum())} galaxies have no finite {cfg.target!r}; drop them from the image set")
    source, inputs = image_inputs(iset, cfg, say)
    source = source.in_memory()
    native = source.image_size
    split = split_60_20_20(len(iset), cfg.seed)
    say(f"data: {len(iset)} galaxies of {native}x{native} px; train/val/test = "
        f"{split['train'].size}/{split['val'].size}/{split['test'].size}")
    model_cfg = cfg.model
    if source.pixel_kind == "rgb8" and model_cfg.input_transform == "asinh":
        # the composites are asinh-stretched already (Lupton et al. 2004): the network sees them linearly
        model_cfg = dataclasses.replace(model_cfg, input_transform="linear")
    if model_cfg.input_transform == "asinh" and not model_cfg.softening:
        # one stretch for every resolution: fitted on the native training images (block averages keep
        # surface brightness, so the same softening means the same stretch at every pixel size)
        soft, _, _ = fit_input_normalisation(source, split["train"][:512], "asinh", model_cfg.softening_factor)
        model_cfg = dataclasses.replace(model_cfg, softening=tuple(float(b) for b in soft))
    common = {"seed": cfg.seed, "target": cfg.target, "use": cfg.use, "model": to_dict(model_cfg), "tta": cfg.tta}
    if inputs.get("composites") == "made":
        common["inputs"] = inputs

    # -- CNN on metallicity -----------------------------------------------------------------------
    y = catalog[[cfg.target]].to_numpy(dtype=float)
    cnn = runner.run("cnn", {**common, "fit": fit_settings(cfg.fit)},
                     lambda d, u: train_cnn(d, source, y, [cfg.target], split, cfg, model_cfg, cfg.fit, say, True),
                     upstream=[survey_stage], version=STAGE_VERSION)

    # -- baselines ----------------------------------------------------------------------------------
    base = runner.run("baselines", {"seed": cfg.seed, "target": cfg.target, "rf": to_dict(cfg.random_forest),
                                    "leaf_grid": list(cfg.rf_leaf_grid)},
                      lambda d, u: rf_stage(d, catalog, cfg.target, split, cfg, say),
                      upstream=[survey_stage], version=STAGE_VERSION)

    # -- stellar-mass route ---------------------------------------------------------------------------
    mass = None
    if cfg.mass_route:
        ym = catalog[[cfg.mass_column]].to_numpy(dtype=float)
        if not np.all(np.isfinite(ym)):
            raise InputError(f"stellar masses ({cfg.mass_column!r}) contain NaN/inf")
        mass = runner.run("mass", {**common, "mass_column": cfg.mass_column, "fit": fit_settings(cfg.fit)},
                          lambda d, u: train_cnn(d, source, ym, [cfg.mass_column], split, cfg, model_cfg, cfg.fit,
                                                  say, False),
                          upstream=[survey_stage], version=STAGE_VERSION)

    # -- resolution study ------------------------------------------------------------------------------
    res_fit = cfg.fit if not cfg.resolution_epochs else dataclasses.replace(
        cfg.fit, epochs=cfg.resolution_epochs, freeze_epochs=min(cfg.fit.freeze_epochs, cfg.resolution_epochs))
    # every size (the native one too, beside the main CNN) is trained with `resolution_seeds` network seeds
    res_stages: dict[int, list[StageResult]] = {native: [cnn]}
    for k in range(1, cfg.resolution_seeds):
        fit_k = dataclasses.replace(cfg.fit, seed=cfg.fit.seed + k)
        res_stages[native].append(runner.run(
            f"cnn-seed{k}", {**common, "fit": fit_settings(fit_k)},
            lambda d, u, f=fit_k: train_cnn(d, source, y, [cfg.target], split, cfg, model_cfg, f, say, False),
            upstream=[survey_stage], version=STAGE_VERSION))
    for p in sorted({int(p) for p in cfg.resolutions if p < native}, reverse=True):
        if native % p:
            say(f"resolution {p}: {native} is not a multiple of {p}; skipped")
            continue
        src_p = source.rebinned(p)
        res_stages[p] = []
        for k in range(cfg.resolution_seeds):
            fit_k = res_fit if k == 0 else dataclasses.replace(res_fit, seed=res_fit.seed + k)
            res_stages[p].append(runner.run(
                f"res{p}" if k == 0 else f"res{p}-seed{k}", {**common, "pixels": p, "fit": fit_settings(fit_k)},
                lambda d, u, s=src_p, f=fit_k: train_cnn(d, s, y, [cfg.target], split, cfg, model_cfg, f, say, False),
                upstream=[survey_stage], version=STAGE_VERSION))

    # -- assemble ---------------------------------------------------------------------------------------
    test = split["test"]
    t = catalog[cfg.target].to_numpy(dtype=float)[test]
    rows, cnn_pred = read_pred(cnn, cfg.target)
    if not np.array_equal(rows, test):
        raise InputError(f"cached stage {cnn.path} was made for another split; rerun with --force cnn")
    bdf = read_table(base.file("predictions.parquet"))
    pred = pd.DataFrame({"id": catalog["id"].to_numpy()[test], "row": test, f"{cfg.target}_true": t,
                         "log_mstar_true": catalog[cfg.mass_column].to_numpy(dtype=float)[test], "cnn": cnn_pred})
    metrics: dict[str, Any] = {"cnn": score(t, cnn_pred)}
    for name in ("rf_gri", "rf_ugriz", "constant", "rf_latent"):
        if f"{name}_pred" in bdf.columns:
            pred[name] = bdf[f"{name}_pred"].to_numpy()
            metrics[name] = score(t, pred[name].to_numpy())
    base_info = json.loads(base.file("result.json").read_text())
    if mass is not None:
        _, m_pred = read_pred(mass, cfg.mass_column)
        z_mzr = mzr_tremonti04(m_pred)
        pred["log_mstar_pred"] = m_pred
        pred["oh_mzr"] = z_mzr
        ms = score(pred["log_mstar_true"].to_numpy(), m_pred)
        metrics["mass_route"] = {**score(t, z_mzr), "mass_rmse": ms["rmse"], "mass_nmad": ms["nmad"],
                                 "mass_bias": ms["bias"],
                                 "mzr_of_true_mass": score(t, mzr_tremonti04(pred["log_mstar_true"].to_numpy()))}
    intrinsic = injected_scatter(catalog, labels, test) if labels is not None else None
    metrics["intrinsic_scatter"] = intrinsic
    metrics["cnn_over_intrinsic"] = (metrics["cnn"]["rmse"] / intrinsic) if intrinsic else None
    metrics["floor"] = floor_summary(metrics, intrinsic)
    resolution = []
    for p, stages in res_stages.items():
        per_seed = []
        for k, st in enumerate(stages):
            _, rp = read_pred(st, cfg.target)
            if k == 0 and p != native:
                pred[f"cnn_{p}px"] = rp
            per_seed.append(score(t, rp))
        resolution.append(resolution_row(p, per_seed))
    metrics["resolution"] = sorted(resolution, key=lambda r: -r["pixels"])
    mzr = mzr_comparison(pred["log_mstar_true"], t, cnn_pred, relation=mzr_tremonti04, width=cfg.mzr_bin_width,
                         min_count=cfg.mzr_min_count)
    metrics["mzr"] = {"true": mzr["scatter"]["true"], "pred": mzr["scatter"]["pred"],
                      "bins": _records(mzr["pred"].assign(true_median=mzr["true"]["median"],
                                                          true_rmse=mzr["true"]["rmse"], true_std=mzr["true"]["std"]))}
    cnn_info = json.loads(cnn.file("result.json").read_text())
    metrics["run"] = {
        "preset": cfg.preset, "n_galaxies": len(iset), "image_size": native, "n_train": int(split["train"].size),
        "n_val": int(split["val"].size), "n_test": int(test.size), "arch": cfg.model.arch,
        "pretrained_source": cnn_info.get("pretrained_source"), "tta": cfg.tta,
        "cnn_best_epoch": cnn_info.get("best_epoch"), "cnn_train_seconds": cnn_info.get("train_seconds"),
        "cnn_predict_seconds": cnn_info.get("predict_seconds"),
        "rf": {k: base_info.get(k) for k in ("rf_gri", "rf_ugriz", "rf_latent")}, "inputs": inputs,
        "stages": {name: {"hash": r.hash, "cached": r.cached, "seconds": round(r.seconds, 2)}
                   for name, r in runner.results.items()},
        "seconds": round(time.perf_counter() - t_start, 2), "photopop_version": __version__, "data": str(iset.path),
    }
    metrics["checks"] = _checks(metrics)
    metrics["paper"] = PAPER
    write_table_atomic(pred, out / "predictions.parquet")
    write_json_atomic(out / "metrics.json", metrics)
    if report:
        from ..report.wu_boada_report import write_wu_boada_report

        hist = read_table(cnn.file("history.csv")) if (cnn.path / "history.csv").exists() else None
        write_wu_boada_report(out, to_dict(cfg), metrics, pred, iset, mzr, hist)
    return WuBoadaResult(metrics, pred, dict(runner.results), out)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
            for r in df.to_dict(orient="records")]


def _checks(m: dict[str, Any]) -> dict[str, Any]:
    """The 'done means' statements, evaluated on this run."""
    out: dict[str, Any] = {}
    if "rf_gri" in m:
        out["cnn_beats_rf_gri"] = bool(m["cnn"]["rmse"] < m["rf_gri"]["rmse"])
    if "constant" in m:
        out["cnn_beats_constant"] = bool(m["cnn"]["rmse"] < m["constant"]["rmse"])
    res = sorted(m.get("resolution", []), key=lambda r: r["pixels"])
    if len(res) >= 2:
        out["highest_resolution_beats_lowest"] = bool(res[-1]["rmse"] < res[0]["rmse"])
        lo, hi = res[0], res[-1]
        if lo.get("rmse_std") is not None and hi.get("rmse_std") is not None:
            # difference of the seed means in units of its standard error
            se = np.sqrt(lo["rmse_std"] ** 2 / lo["seeds"] + hi["rmse_std"] ** 2 / hi["seeds"])
            out["lowest_minus_highest_resolution_in_se"] = float((lo["rmse"] - hi["rmse"]) / se) if se > 0 else None
        r = np.array([x["rmse"] for x in res])
        p = np.log2([x["pixels"] for x in res])
        out["rmse_vs_log_pixels_slope"] = float(np.polyfit(p, r, 1)[0])
    if "mass_route" in m:
        out["direct_beats_mass_route"] = bool(m["cnn"]["rmse"] < m["mass_route"]["rmse"])
    return out



__all__ = ["PAPER", "PRESETS", "WuBoada2019Config", "WuBoadaResult", "injected_scatter", "load_wu_boada_config",
           "preset_config", "run_wu_boada_2019"]
