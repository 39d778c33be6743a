"""`photopop reproduce wu-boada-2019`: Wu & Boada (2019), metallicity from three-colour images, end to end.

Stages (each cached in ``DIR/stages/<name>-<hash>/`` by the hash of its settings and upstream stages,
see `photopop.experiments.stages`):

    survey ─┬─ cnn (12+log(O/H) at full resolution; the model folder is kept)
            ├─ baselines (random forests on gri and ugriz magnitudes, constant mean)
            ├─ mass (CNN on stellar mass; converted with the Tremonti et al. 2004 MZR)
            └─ res<N> (CNN on images block-averaged to N x N pixels), one per resolution

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
metallicity). It is None for real data.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..config import deep_update, layered_config, read_config_data, save_config, to_dict
from ..datasets.image_set import ImageSet
from ..errors import InputError
from ..evaluation.metrics import scores
from ..evaluation.mzr_analysis import mzr_comparison
from ..io import read_table, write_json_atomic, write_table_atomic
from ..models.baselines import ConstantBaseline, RandomForestBaseline, RandomForestConfig
from ..models.image_regressor import ImageModelConfig
from ..models.image_source import ImageSource, as_image_source, fit_input_normalisation
from ..simulate.images import ImageSurveyConfig, simulate_image_survey
from ..simulate.mzr import LabelConfig, fmr_oh, mzr_tremonti04
from ..splits import split_60_20_20
from ..training.image_fit import ImageFitConfig, fit_image_regressor
from .stages import StageResult, StageRunner

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
    use: str = "images"  # 'images' (calibrated g, r, i) or 'rgb' (8-bit irg composites, as the paper's JPEGs)
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
    mass_route: bool = True
    random_forest: RandomForestConfig = field(default_factory=lambda: RandomForestConfig(
        n_estimators=200, max_depth=0, min_samples_leaf=5, max_features=1.0))
    rf_leaf_grid: tuple[int, ...] = (1, 2, 5, 10, 20)  # min_samples_leaf tried on the validation split
    mzr_bin_width: float = 0.2
    mzr_min_count: int = 5
    n_examples: int = 5

    def validate(self) -> "WuBoada2019Config":
        if self.preset not in PRESETS:
            raise InputError(f"unknown preset {self.preset!r}; use one of {list(PRESETS)}")
        if self.use not in ("images", "rgb"):
            raise InputError(f"use must be 'images' or 'rgb', got {self.use!r}")
        if any(int(p) != p or p < 1 for p in self.resolutions):
            raise InputError(f"resolutions must be positive pixel counts, got {self.resolutions}")
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
            resolutions=(16, 8, 4, 2, 1), rf_leaf_grid=(2, 5, 10, 20))
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


# ------------------------------------------------------------------------------------------ pieces
def injected_scatter(catalog: pd.DataFrame, labels: LabelConfig, rows: np.ndarray | None = None) -> float | None:
    """RMS of the unpredictable part of the mock ``oh`` (see the module doc); None without mock columns."""
    need = ("oh", "oh_true", "oh_fibre_true", "log_mstar", "delta_log_sfr", "size_residual_dex")
    if any(c not in catalog.columns for c in need):
        return None
    c = catalog if rows is None else catalog.iloc[rows]
    random_term = (c["oh_true"].to_numpy() - fmr_oh(c["log_mstar"].to_numpy(), c["delta_log_sfr"].to_numpy(), labels)
                   - labels.size_coupling * c["size_residual_dex"].to_numpy())
    noise = c["oh"].to_numpy() - c["oh_fibre_true"].to_numpy()
    e = random_term + noise
    return float(np.sqrt(np.mean(e**2)))


def _mock_labels(folder: Path) -> LabelConfig | None:
    """The label model of a mock image set (from its config.toml), or None for real data."""
    path = folder / "config.toml"
    if not path.exists():
        return None
    try:
        from ..config import load_config

        return load_config(ImageSurveyConfig, path).labels
    except InputError:
        return None


def _fit_settings(fit: ImageFitConfig) -> dict[str, Any]:
    """Training settings that change the numbers (not the device or thread count)."""
    d = to_dict(fit)
    for k in ("device", "num_threads", "eval_batch_size"):
        d.pop(k, None)
    return d


def _train_cnn(out: Path, source: ImageSource, y: np.ndarray, names: list[str], split: dict[str, np.ndarray],
               cfg: WuBoada2019Config, model_cfg: ImageModelConfig, fit: ImageFitConfig, say: Callable[[str], None],
               save_model: bool) -> None:
    res = fit_image_regressor(source, y, split["train"], split["val"], names, model_config=model_cfg, config=fit,
                              log=say)
    t0 = time.perf_counter()
    test = split["test"]
    pred = res.model.predict(source, tta=cfg.tta, batch_size=max(8, fit.eval_batch_size // 8 if cfg.tta else
                                                                    fit.eval_batch_size),
                             device=next(res.model.parameters()).device, indices=test)
    predict_s = time.perf_counter() - t0
    df = pd.DataFrame({"row": test})
    for j, name in enumerate(names):
        df[f"{name}_true"] = y[test, j]
        df[f"{name}_pred"] = pred[:, j]
    write_table_atomic(df, out / "predictions.parquet")
    res.history.to_csv(out / "history.csv", index=False)
    info = {"best_epoch": res.best_epoch, "best_val_loss": res.best_val_loss, "train_seconds": res.train_seconds,
            "predict_seconds": predict_s, "n_test": int(test.size), "image_size": source.image_size,
            "pretrained_source": res.model.pretrained_source}
    write_json_atomic(out / "result.json", info)
    if save_model:
        res.model.save(out / "model", extra_config=res.model.extra_config)


def _read_pred(stage: StageResult, name: str) -> tuple[np.ndarray, np.ndarray]:
    df = read_table(stage.file("predictions.parquet"))
    return df["row"].to_numpy(), df[f"{name}_pred"].to_numpy()


def _rf_stage(out: Path, catalog: pd.DataFrame, target: str, split: dict[str, np.ndarray], cfg: WuBoada2019Config,
              say: Callable[[str], None]) -> None:
    y = catalog[target].to_numpy(dtype=float)
    tr, va, te = split["train"], split["val"], split["test"]
    rows: dict[str, Any] = {"row": te, f"{target}_true": y[te]}
    info: dict[str, Any] = {}
    for name, bands in (("rf_gri", "gri"), ("rf_ugriz", "ugriz")):
        cols = [f"mag_{b}" for b in bands]
        missing = [c for c in cols if c not in catalog.columns]
        if missing:
            say(f"{name}: catalogue lacks {missing}; skipped")
            continue
        x = catalog[cols].to_numpy(dtype=float)
        best = (np.inf, None)
        for leaf in cfg.rf_leaf_grid:  # choose min_samples_leaf on the validation galaxies
            rf_cfg = dataclasses.replace(cfg.random_forest, min_samples_leaf=int(leaf))
            model = RandomForestBaseline(rf_cfg, seed=cfg.seed).fit(x[tr], y[tr])
            val_rmse = float(np.sqrt(np.mean((model.predict(x[va]) - y[va]) ** 2)))
            if val_rmse < best[0]:
                best = (val_rmse, (int(leaf), model))
        leaf, model = best[1]  # type: ignore[misc]
        rows[f"{name}_pred"] = model.predict(x[te])
        info[name] = {"min_samples_leaf": leaf, "val_rmse": best[0], "features": cols}
        say(f"{name}: min_samples_leaf={leaf} (validation RMSE {best[0]:.4f})")
    const = ConstantBaseline().fit(np.zeros((tr.size, 1)), y[tr])
    rows["constant_pred"] = const.predict(np.zeros((te.size, 1)))
    info["constant"] = {"value": float(const.value_)}
    write_table_atomic(pd.DataFrame(rows), out / "predictions.parquet")
    write_json_atomic(out / "result.json", info)


def _score(truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    s = scores(truth, pred)
    return {"rmse": s["rmse"], "nmad": s["nmad"], "bias": s["bias"], "n": s["n"]}


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
        labels = _mock_labels(Path(cfg.data))
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
    source = as_image_source(iset, use=cfg.use).in_memory()
    native = source.image_size
    split = split_60_20_20(len(iset), cfg.seed)
    say(f"data: {len(iset)} galaxies of {native}x{native} px; train/val/test = "
        f"{split['train'].size}/{split['val'].size}/{split['test'].size}")
    model_cfg = cfg.model
    if model_cfg.input_transform == "asinh" and not model_cfg.softening:
        # one stretch for every resolution: fitted on the native training images (block averages keep
        # surface brightness, so the same softening means the same stretch at every pixel size)
        soft, _, _ = fit_input_normalisation(source, split["train"][:512], "asinh", model_cfg.softening_factor)
        model_cfg = dataclasses.replace(model_cfg, softening=tuple(float(b) for b in soft))
    common = {"seed": cfg.seed, "target": cfg.target, "use": cfg.use, "model": to_dict(model_cfg), "tta": cfg.tta}

    # -- CNN on metallicity -----------------------------------------------------------------------
    y = catalog[[cfg.target]].to_numpy(dtype=float)
    cnn = runner.run("cnn", {**common, "fit": _fit_settings(cfg.fit)},
                     lambda d, u: _train_cnn(d, source, y, [cfg.target], split, cfg, model_cfg, cfg.fit, say, True),
                     upstream=[survey_stage], version=STAGE_VERSION)

    # -- baselines ----------------------------------------------------------------------------------
    base = runner.run("baselines", {"seed": cfg.seed, "target": cfg.target, "rf": to_dict(cfg.random_forest),
                                    "leaf_grid": list(cfg.rf_leaf_grid)},
                      lambda d, u: _rf_stage(d, catalog, cfg.target, split, cfg, say),
                      upstream=[survey_stage], version=STAGE_VERSION)

    # -- stellar-mass route ---------------------------------------------------------------------------
    mass = None
    if cfg.mass_route:
        ym = catalog[[cfg.mass_column]].to_numpy(dtype=float)
        if not np.all(np.isfinite(ym)):
            raise InputError(f"stellar masses ({cfg.mass_column!r}) contain NaN/inf")
        mass = runner.run("mass", {**common, "mass_column": cfg.mass_column, "fit": _fit_settings(cfg.fit)},
                          lambda d, u: _train_cnn(d, source, ym, [cfg.mass_column], split, cfg, model_cfg, cfg.fit,
                                                  say, False),
                          upstream=[survey_stage], version=STAGE_VERSION)

    # -- resolution study ------------------------------------------------------------------------------
    res_fit = cfg.fit if not cfg.resolution_epochs else dataclasses.replace(
        cfg.fit, epochs=cfg.resolution_epochs, freeze_epochs=min(cfg.fit.freeze_epochs, cfg.resolution_epochs))
    res_stages: dict[int, StageResult] = {}
    for p in sorted({int(p) for p in cfg.resolutions if p < native}, reverse=True):
        if native % p:
            say(f"resolution {p}: {native} is not a multiple of {p}; skipped")
            continue
        src_p = source.rebinned(p)
        res_stages[p] = runner.run(
            f"res{p}", {**common, "pixels": p, "fit": _fit_settings(res_fit)},
            lambda d, u, s=src_p: _train_cnn(d, s, y, [cfg.target], split, cfg, model_cfg, res_fit, say, False),
            upstream=[survey_stage], version=STAGE_VERSION)

    # -- assemble ---------------------------------------------------------------------------------------
    test = split["test"]
    t = catalog[cfg.target].to_numpy(dtype=float)[test]
    rows, cnn_pred = _read_pred(cnn, cfg.target)
    if not np.array_equal(rows, test):
        raise InputError(f"cached stage {cnn.path} was made for another split; rerun with --force cnn")
    bdf = read_table(base.file("predictions.parquet"))
    pred = pd.DataFrame({"id": catalog["id"].to_numpy()[test], "row": test, f"{cfg.target}_true": t,
                         "log_mstar_true": catalog[cfg.mass_column].to_numpy(dtype=float)[test], "cnn": cnn_pred})
    metrics: dict[str, Any] = {"cnn": _score(t, cnn_pred)}
    for name in ("rf_gri", "rf_ugriz", "constant"):
        if f"{name}_pred" in bdf.columns:
            pred[name] = bdf[f"{name}_pred"].to_numpy()
            metrics[name] = _score(t, pred[name].to_numpy())
    base_info = json.loads(base.file("result.json").read_text())
    if mass is not None:
        _, m_pred = _read_pred(mass, cfg.mass_column)
        z_mzr = mzr_tremonti04(m_pred)
        pred["log_mstar_pred"] = m_pred
        pred["oh_mzr"] = z_mzr
        ms = _score(pred["log_mstar_true"].to_numpy(), m_pred)
        metrics["mass_route"] = {**_score(t, z_mzr), "mass_rmse": ms["rmse"], "mass_nmad": ms["nmad"],
                                 "mass_bias": ms["bias"],
                                 "mzr_of_true_mass": _score(t, mzr_tremonti04(pred["log_mstar_true"].to_numpy()))}
    intrinsic = injected_scatter(catalog, labels, test) if labels is not None else None
    metrics["intrinsic_scatter"] = intrinsic
    metrics["cnn_over_intrinsic"] = (metrics["cnn"]["rmse"] / intrinsic) if intrinsic else None
    resolution = [{"pixels": native, **{k: metrics["cnn"][k] for k in ("rmse", "nmad")}}]
    for p, st in res_stages.items():
        _, rp = _read_pred(st, cfg.target)
        pred[f"cnn_{p}px"] = rp
        s = _score(t, rp)
        resolution.append({"pixels": p, "rmse": s["rmse"], "nmad": s["nmad"]})
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
        "rf": {k: base_info.get(k) for k in ("rf_gri", "rf_ugriz")},
        "stages": {name: {"hash": r.hash, "cached": r.cached, "seconds": round(r.seconds, 2)}
                   for name, r in runner.results.items()},
        "seconds": round(time.perf_counter() - t_start, 2), "photopop_version": __version__, "data": str(iset.path),
    }
    metrics["checks"] = _checks(metrics)
    metrics["paper"] = PAPER
    write_table_atomic(pred, out / "predictions.parquet")
    write_json_atomic(out / "metrics.json", metrics)
    if report:
        write_report(out, cfg, metrics, pred, iset, mzr, cnn)
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
        r = np.array([x["rmse"] for x in res])
        p = np.log2([x["pixels"] for x in res])
        out["rmse_vs_log_pixels_slope"] = float(np.polyfit(p, r, 1)[0])
    if "mass_route" in m:
        out["direct_beats_mass_route"] = bool(m["cnn"]["rmse"] < m["mass_route"]["rmse"])
    return out


# ------------------------------------------------------------------------------------------ report
def _fmt(v: Any, digits: int = 3) -> Any:
    return None if v is None else round(float(v), digits)


def write_report(out: Path, cfg: WuBoada2019Config, metrics: dict[str, Any], pred: pd.DataFrame, iset: ImageSet,
                 mzr: dict[str, Any], cnn: StageResult) -> Path:
    """Figures (DIR/figures/*.png) and the self-contained DIR/report.html with the paper's numbers beside ours."""
    from ..report import image_figures as figs
    from ..report.html import HTMLReport, figure_to_data_uri

    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    t = pred[f"{cfg.target}_true"].to_numpy()
    p = pred["cnn"].to_numpy()
    rows = pred["row"].to_numpy()

    def get_rgb(idx: np.ndarray) -> np.ndarray:
        r = rows[np.asarray(idx)]
        if iset.has_rgb:
            return iset.rgb(r)
        return figs.lupton_rgb(iset.images(r))

    baselines = {k: metrics[k] for k in ("rf_gri", "rf_ugriz", "constant") if k in metrics}
    figures: list[tuple[str, Any, str]] = [
        ("fig1_examples", figs.fig_examples(get_rgb, t, p, n=cfg.n_examples, seed=cfg.seed),
         "Fig. 1: test galaxies with the lowest/highest predicted and true metallicity, the most under- and "
         "over-predicted, and a random set (irg composites)."),
        ("fig2_distributions", figs.fig_distributions(t, p),
         "Fig. 2: distributions of the true (black) and predicted (red) metallicity; Freedman-Diaconis bins."),
        ("fig3_truth_vs_pred", figs.fig_truth_vs_pred(t, p),
         "Fig. 3: predicted against true metallicity with the running median and median ± RMSE / NMAD in bins of "
         "the truth; upper panel: binned scatter (marker area ∝ galaxies) and the global values."),
        ("fig4_resolution", figs.fig_resolution(metrics["resolution"], baselines, floor=metrics["intrinsic_scatter"]),
         "Fig. 4: scatter of the CNN residuals against image size (block-averaged), with the random forests "
         "(stars: gri, crosses: ugriz) and the constant mean (squares)."),
    ]
    if "log_mstar_pred" in pred.columns:
        figures.append(("fig5_mass_route", figs.fig_mass_route(pred["log_mstar_true"], pred["log_mstar_pred"], t,
                                                                pred["oh_mzr"]),
                        "Fig. 5: CNN stellar mass against the truth (left) and its MZR conversion against the true "
                        "metallicity (right)."))
    figures.append(("fig6_mzr", figs.fig_mzr(pred["log_mstar_true"], p, mzr, relation=mzr_tremonti04),
                    f"Fig. 6: predicted metallicity against true stellar mass; running medians and scatter in "
                    f"{cfg.mzr_bin_width} dex bins for the true (black) and predicted (colours) metallicities; green: "
                    "Tremonti et al. (2004)."))
    rep = HTMLReport(f"Wu & Boada (2019) reproduced with photopop ({cfg.preset} preset)")
    run = metrics["run"]
    rep.paragraph(f"{run['n_galaxies']} galaxies ({'mock survey' if not cfg.data else run['data']}), "
                  f"{run['image_size']}x{run['image_size']} pixel g,r,i images; 60/20/20 split "
                  f"({run['n_train']}/{run['n_val']}/{run['n_test']}); {cfg.model.arch} "
                  f"({run['pretrained_source']}), {cfg.fit.epochs} epochs ({cfg.fit.freeze_epochs} frozen), "
                  f"{'8-fold D4 test-time augmentation' if cfg.tta else 'no TTA'}. Scores on the test galaxies.")
    rep.heading("Headline numbers")
    table = []
    names = {"cnn": "CNN (images)", "rf_gri": "random forest, gri", "rf_ugriz": "random forest, ugriz",
             "constant": "constant mean", "mass_route": "CNN stellar mass → MZR"}
    for key, label in names.items():
        if key not in metrics:
            continue
        m, pp = metrics[key], PAPER.get(key, {})
        table.append({"method": label, "RMSE": _fmt(m["rmse"]), "paper RMSE": pp.get("rmse"),
                      "NMAD": _fmt(m["nmad"]), "paper NMAD": pp.get("nmad"), "bias": _fmt(m["bias"]), "n": m["n"]})
    rep.table(table, caption="Residual scatter of 12+log(O/H) (dex); paper values from its text")
    rep.paragraph(f"The paper's ugriz value is {PAPER['rf_ugriz']['note']}, as Wu & Boada quote it; its CNN used "
                  f"{PAPER['image_size']} px SDSS JPEG cutouts of {PAPER['cnn']['n']} test galaxies with ImageNet "
                  "weights. A mock survey tests the method, not the paper's claims about real galaxies.", note=True)
    extra = [{"quantity": "intrinsic scatter injected by the mock", "photopop": _fmt(metrics["intrinsic_scatter"]),
              "paper": "–"},
             {"quantity": "CNN RMSE / intrinsic scatter", "photopop": _fmt(metrics["cnn_over_intrinsic"]),
              "paper": "–"},
             {"quantity": "MZR scatter of true Z (RMS about Tremonti)",
              "photopop": _fmt(metrics["mzr"]["true"]["rmse"]),
              "paper": PAPER["mzr_scatter_true"]},
             {"quantity": "MZR scatter of predicted Z", "photopop": _fmt(metrics["mzr"]["pred"]["rmse"]),
              "paper": "≤ 0.10"}]
    if "mass_route" in metrics:
        extra += [{"quantity": "stellar-mass RMSE (dex)", "photopop": _fmt(metrics["mass_route"]["mass_rmse"]),
                   "paper": PAPER["mass_route"]["mass_rmse"]},
                  {"quantity": "stellar-mass NMAD (dex)", "photopop": _fmt(metrics["mass_route"]["mass_nmad"]),
                   "paper": PAPER["mass_route"]["mass_nmad"]}]
    rep.table(extra, caption="Intrinsic scatter, MZR and stellar mass")
    rep.table([{"check": k, "value": v} for k, v in metrics["checks"].items()], caption="Checks")
    rep.heading("Resolution")
    rep.table([{"pixels": r["pixels"], "RMSE": _fmt(r["rmse"]), "NMAD": _fmt(r["nmad"])}
               for r in metrics["resolution"]],
              caption=f"CNN scatter against image size; paper: {PAPER['resolution']}")
    rep.heading("Figures")
    for name, fig, caption in figures:
        uri = figure_to_data_uri(fig)
        import base64

        (fig_dir / f"{name}.png").write_bytes(base64.b64decode(uri.split(",", 1)[1]))
        rep.figure(uri, caption)
    hist = read_table(cnn.file("history.csv")) if (cnn.path / "history.csv").exists() else None
    if hist is not None:
        rep.heading("Training history (metallicity CNN)")
        rep.table(hist.to_dict(orient="records"), digits=4)
    rep.heading("Settings")
    rep.paragraph(f"Random forests: scikit-learn RandomForestRegressor, {cfg.random_forest.n_estimators} trees, "
                  f"max_features={cfg.random_forest.max_features}, min_samples_leaf chosen on the validation galaxies "
                  f"from {list(cfg.rf_leaf_grid)} (chosen: " + ", ".join(
                      f"{k}: {v['min_samples_leaf']}" for k, v in (run.get('rf') or {}).items() if v) + ").", note=True)
    stage_text = [f"{k} ({'cached' if v['cached'] else str(v['seconds']) + ' s'})" for k, v in run["stages"].items()]
    rep.paragraph("Stage cache: " + ", ".join(stage_text), note=True)
    return rep.write(out / "report.html")
