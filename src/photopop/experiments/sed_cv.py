"""Set A / Set B cross-prediction of spaxel ages and metallicities (Liew-Cain et al. 2021, Sect. 3.2).

The spaxels are split into `n_folds` (4) folds with `photopop.splits.make_folds` -- Set A: every
galaxy's spaxels spread over all folds; Set B: whole galaxies per fold. The CNN's inputs are colours
(`input_kind = "colour"`, magnitudes minus the middle band; 'mag' gives the paper's literal inputs,
band magnitudes, whose surface-brightness amplitude the network must learn to ignore: 12 % more Set B
scatter on the default mock, docs/sed-cnn.md). For each fold the CNN (one
network per target as in the paper, or one joint network) is trained on the other folds, with a
validation set carved from them with the same grouping (`splits.carve_validation`), and predicts
the held-out fold, so every spaxel gets an out-of-fold prediction. The same folds drive the
baselines: constant (training mean), random draw from the training labels, a random forest
(`random_forest.features`: by default colours, the features measured best for it; meta.json 'inputs'
records what the CNN and the forest saw), the chi-square template fit (no training; the mock's model family under broad
uniform priors at the galaxies' redshifts, `photopop.models.template_library`), the classic
delayed-tau grid fit (`template_grid`, off by default) and the information floor (`floor`: the
Bayes estimate under the simulator's own prior, `photopop.models.floor`; mock tables only).
metrics.json then also holds ``ratio_to_floor``: robust sigma of each method over the floor's, per target.

Output folder::

    config.toml  meta.json  predictions.parquet  metrics.json
    folds/fold_<k>/{cnn_<target>|cnn}/   model folders with history.csv (learning curves)
    folds/fold_<k>/pred_<method>.parquet out-of-fold predictions of each method
    folds/fold_<k>/done.json             per-method fingerprints (finished work is reused on rerun)
    folds/fold_<k>/checkpoints/          training checkpoints (an interrupted fold resumes)
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..config import save_config, to_dict
from ..datasets.sed_table import load_sed_table
from ..errors import InputError
from ..hashing import json_hash
from ..evaluation.metrics import pearson_r, scores
from ..io import read_table, write_json_atomic, write_table_atomic
from ..models.baselines import (ConstantBaseline, RandomDrawBaseline, RandomForestBaseline, RandomForestConfig,
                               forest_features, resolve_forest_features)
from ..models.floor import FloorConfig, floor_for_table
from ..models.normalise import check_kind
from ..models.saved import table_hash
from ..models.sed_cnn import SEDCNNConfig
from ..models.template_fit import (
    TemplateGridConfig,
    build_template_grid,
    floored_magerr,
    redshift_grid,
)
from ..models.template_library import (
    TemplateLibraryConfig,
    build_template_library,
    fit_template_library,
)
from ..splits import carve_validation, make_folds, normalise_scheme
from ..training.fit import TrainConfig
from ..training.sed_regressor import SEDRegressor, SEDRegressorConfig

METHODS = ("cnn", "constant", "random", "random_forest", "template_fit", "template_grid", "floor")
#: what a run computes unless told otherwise (template_grid, the classic delayed-tau grid, on request)
DEFAULT_METHODS = ("cnn", "constant", "random", "random_forest", "template_fit", "floor")
TARGETS = ("log_age", "zh")


@dataclass
class SEDCVConfig:
    """Settings of a cross-prediction run (saved as config.toml in the output folder).

    split: 'A' (spaxels of each galaxy spread over folds) or 'B' (whole galaxies per fold).
    joint_targets: one CNN with an output per target instead of one CNN per target (the paper).
    val_fraction: share of the training folds carved out (same grouping) for early stopping.
    seed: drives the folds, validation carving, weight initialisation and shuffles (train.seed is
    replaced by seeds derived from it per fold and target).
    input_kind: the CNN's inputs, 'colour' (default: measured best, docs/sed-cnn.md), 'mag' (the
    paper's) or 'flux'; ref_band: the colours' reference band ('' = middle band), also the forest's.
    """

    split: str = "B"
    targets: tuple[str, ...] = TARGETS
    methods: tuple[str, ...] = DEFAULT_METHODS
    n_folds: int = 4
    seed: int = 0
    joint_targets: bool = False
    input_kind: str = "colour"
    ref_band: str = ""
    val_fraction: float = 0.2
    architecture: SEDCNNConfig = field(default_factory=SEDCNNConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    random_forest: RandomForestConfig = field(default_factory=RandomForestConfig)
    template_grid: TemplateGridConfig = field(default_factory=TemplateGridConfig)
    template_fit: TemplateLibraryConfig = field(default_factory=TemplateLibraryConfig)
    floor: FloorConfig = field(default_factory=FloorConfig)

    def validate(self) -> None:
        """Raise InputError for unknown methods/targets or bad settings."""
        self.split = normalise_scheme(self.split)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise InputError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
        if not self.targets or len(set(self.targets)) != len(self.targets):
            raise InputError(f"targets must be distinct and non-empty, got {self.targets}")
        if not 0 < self.val_fraction < 1:
            raise InputError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        check_kind(self.input_kind)
        self.random_forest.check()
        self.train.validate()
        self.architecture.validate()
        self.template_fit.check()
        self.floor.check()


@dataclass
class CVResult:
    """Out-of-fold predictions (one row per spaxel), metrics and where they were written."""

    predictions: pd.DataFrame
    metrics: dict[str, Any]
    out_dir: Path
    folds: np.ndarray
    timings: dict[str, float]


def derived_seed(seed: int, *parts: Any) -> int:
    """A 31-bit seed derived from `seed` and labels (fold, target, method): independent, reproducible."""
    text = json.dumps([int(seed), *[str(p) for p in parts]])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def _fingerprint(obj: Any) -> str:
    return json_hash(obj, 16)


def _method_settings(cfg: SEDCVConfig, method: str) -> dict[str, Any]:
    """The config parts a method's out-of-fold predictions depend on (for reuse on rerun)."""
    base = {"split": cfg.split, "n_folds": cfg.n_folds, "seed": cfg.seed, "targets": list(cfg.targets)}
    if method == "cnn":
        train = to_dict(cfg.train)
        for k in ("device", "num_threads", "checkpoint_every"):
            train.pop(k, None)
        base.update(joint=cfg.joint_targets, input_kind=cfg.input_kind, ref_band=cfg.ref_band,
                    val_fraction=cfg.val_fraction, architecture=to_dict(cfg.architecture), train=train)
    elif method == "random_forest":
        rf = to_dict(cfg.random_forest)
        rf.pop("n_jobs", None)
        rf["features"] = resolve_forest_features(cfg.random_forest.features, cfg.input_kind)
        base.update(random_forest=rf, ref_band=cfg.ref_band)
    elif method == "template_grid":
        base = {"targets": list(cfg.targets), "template_grid": to_dict(cfg.template_grid)}
    elif method == "template_fit":
        base = {"targets": list(cfg.targets), "template_fit": to_dict(cfg.template_fit)}
    elif method == "floor":
        base = {"targets": list(cfg.targets), "floor": to_dict(cfg.floor)}
    return base


def method_inputs(cfg: SEDCVConfig) -> dict[str, str]:
    """What the learned methods see: {'cnn': input kind, 'random_forest': feature kind} (meta.json 'inputs')."""
    out = {}
    if "cnn" in cfg.methods:
        out["cnn"] = cfg.input_kind
    if "random_forest" in cfg.methods:
        out["random_forest"] = resolve_forest_features(cfg.random_forest.features, cfg.input_kind)
    return out


def run_sed_cv(table: Any, config: SEDCVConfig | None = None, out_dir: str | Path = "sed_cv",
               *, quiet: bool = True, progress: Any = None, overwrite: bool = False) -> CVResult:
    """Cross-predict every spaxel with every method; write and return predictions and metrics.

    `table`: an SEDTable or the path of an SED-table folder/file. Finished (fold, method) pieces in
    `out_dir` with the same settings and data are reused. `progress(msg)` receives status lines.
    `out_dir` follows the output-folder contract (`photopop.outputs`): a cv folder of other settings
    or table is reused only with `overwrite` (its per-fold pieces stay keyed by their own settings).
    """
    from ..outputs import claim_output, source_id

    cfg = config or SEDCVConfig()
    cfg.validate()
    inputs = [table] if isinstance(table, (str, Path)) else []
    settings = {"config": to_dict(cfg), "table": source_id(table)}
    with claim_output(out_dir, "sed-cv", settings, overwrite=overwrite, inputs=inputs, in_place=True):
        return _run_sed_cv(table, cfg, Path(out_dir), quiet=quiet, progress=progress)


def _run_sed_cv(table: Any, config: SEDCVConfig, out_dir: Path, *, quiet: bool, progress: Any) -> CVResult:
    cfg = config or SEDCVConfig()
    cfg.validate()
    tab = load_sed_table(table)
    say = progress or (lambda msg: None)
    out = Path(out_dir)
    df = tab.spaxels.reset_index(drop=True)
    bands = list(tab.bands)
    missing = [t for t in cfg.targets if t not in df.columns]
    if missing:
        raise InputError(f"SED table lacks target column(s) {missing}")
    for col in ("galaxy_id", "spaxel_id"):
        if col not in df.columns:
            raise InputError(f"SED table lacks column {col!r}")
    mags = tab.magnitudes("mag")
    y = df[list(cfg.targets)].to_numpy(dtype=np.float64)
    bad = ~(np.all(np.isfinite(mags), axis=1) & np.all(np.isfinite(y), axis=1))
    if bad.any():
        raise InputError(f"{int(bad.sum())} spaxel(s) have NaN/inf magnitudes or targets; drop them first")
    if "template_fit" in cfg.methods or "template_grid" in cfg.methods:
        _check_template_bands(tab)
    if "floor" in cfg.methods:
        from ..models.floor import survey_config_of

        survey_config_of(tab)  # refuse non-mock tables before any training
    galaxy_ids = df["galaxy_id"].to_numpy()
    folds = make_folds(galaxy_ids, cfg.split, cfg.n_folds, seed=cfg.seed)
    data_hash = table_hash(mags, y)

    save_config(cfg, out / "config.toml")
    timings: dict[str, float] = {}
    grid_cache: dict[str, Any] = {}
    fold_preds = []
    for k in range(cfg.n_folds):
        test = np.flatnonzero(folds == k)
        train = np.flatnonzero(folds != k)
        fdir = out / "folds" / f"fold_{k}"
        done_path = fdir / "done.json"
        done = json.loads(done_path.read_text()) if done_path.exists() else {}
        frame = pd.DataFrame({"row": test})
        for method in cfg.methods:
            key = _fingerprint({"settings": _method_settings(cfg, method), "data": data_hash,
                                "test": hashlib.sha256(test.tobytes()).hexdigest()})
            ppath = fdir / f"pred_{method}.parquet"
            if done.get(method) == key and ppath.exists():
                pred = read_table(ppath)
                say(f"fold {k}: {method} reused")
            else:
                t0 = time.perf_counter()
                say(f"fold {k}: {method} ...")
                pred = _run_method(method, cfg, tab, df, mags, y, train, test, galaxy_ids, k, fdir, grid_cache, quiet)
                write_table_atomic(pred, ppath)
                done[method] = key
                write_json_atomic(done_path, done)
                timings[f"fold{k}_{method}_s"] = time.perf_counter() - t0
                say(f"fold {k}: {method} done in {timings[f'fold{k}_{method}_s']:.1f} s")
            frame = frame.join(pred.reset_index(drop=True))
        fold_preds.append(frame.assign(fold=k))

    allp = pd.concat(fold_preds).sort_values("row").reset_index(drop=True)
    predictions = pd.DataFrame({"galaxy_id": df["galaxy_id"].to_numpy(), "spaxel_id": df["spaxel_id"].to_numpy(),
                                "fold": folds.astype(np.int64)})
    for j, t in enumerate(cfg.targets):
        predictions[f"{t}_true"] = y[:, j]
        for method in cfg.methods:
            predictions[f"{t}_{method}"] = allp[f"{t}_{method}"].to_numpy()
    metrics = compute_metrics(predictions, cfg.targets, cfg.methods)
    write_table_atomic(predictions, out / "predictions.parquet")
    write_json_atomic(out / "metrics.json", metrics)
    meta = {"photopop_version": __version__, "seed": cfg.seed, "split": cfg.split, "n_folds": cfg.n_folds,
            "n_spaxels": int(len(df)), "n_galaxies": int(np.unique(galaxy_ids).size), "bands": bands,
            "filter_system": tab.filter_system, "train_table_hash": data_hash,
            "fold_sizes": np.bincount(folds, minlength=cfg.n_folds).tolist(), "inputs": method_inputs(cfg),
            "timings_s": timings}
    write_json_atomic(out / "meta.json", meta)
    return CVResult(predictions, metrics, out, folds, timings)


def _run_method(method: str, cfg: SEDCVConfig, tab: Any, df: pd.DataFrame, mags: np.ndarray, y: np.ndarray,
                train: np.ndarray, test: np.ndarray, galaxy_ids: np.ndarray, k: int, fdir: Path,
                grid_cache: dict[str, Any], quiet: bool) -> pd.DataFrame:
    """Out-of-fold predictions of one method for fold k: columns <target>_<method>, rows = test."""
    targets = list(cfg.targets)
    seed = derived_seed(cfg.seed, "fold", k, method)
    if method == "cnn":
        return _run_cnn(cfg, tab, df, train, test, galaxy_ids, k, fdir, quiet)
    if method == "template_grid":
        return _run_template_grid(cfg, tab, df, mags, test, grid_cache)
    if method == "template_fit":
        return _run_template_library(cfg, tab, df, mags, test, grid_cache)
    if method == "floor":
        return _run_floor(cfg, tab, df, mags, test, grid_cache)
    x = mags
    if method == "constant":
        model: Any = ConstantBaseline()
    elif method == "random":
        model = RandomDrawBaseline(seed=seed)
    else:
        model = RandomForestBaseline(cfg.random_forest, seed=seed)
        x = forest_features(mags, list(tab.bands), cfg.random_forest.features, cfg.input_kind, cfg.ref_band)
    pred = model.fit(x[train], y[train]).predict(x[test]).reshape(len(test), len(targets))
    return pd.DataFrame({f"{t}_{method}": pred[:, j] for j, t in enumerate(targets)})


def _run_cnn(cfg: SEDCVConfig, tab: Any, df: pd.DataFrame, train: np.ndarray, test: np.ndarray,
             galaxy_ids: np.ndarray, k: int, fdir: Path, quiet: bool) -> pd.DataFrame:
    # validation carved from the training folds with the outer split's grouping
    _, val_idx = carve_validation(train, galaxy_ids, scheme=cfg.split, fraction=cfg.val_fraction,
                                        seed=derived_seed(cfg.seed, "val", k))
    pos_val = np.searchsorted(train, val_idx)
    bands = list(tab.bands)
    train_frame = df.iloc[train].reset_index(drop=True)
    test_frame = df.iloc[test]
    groups = [tuple(cfg.targets)] if cfg.joint_targets else [(t,) for t in cfg.targets]
    out = {}
    for targets in groups:
        name = "cnn" if cfg.joint_targets else f"cnn_{targets[0]}"
        train_cfg = TrainConfig(**{**to_dict(cfg.train), "seed": derived_seed(cfg.seed, "cnn", k, *targets)})
        reg = SEDRegressor(SEDRegressorConfig(targets=targets, input_kind=cfg.input_kind, ref_band=cfg.ref_band,
                                              val_fraction=cfg.val_fraction, architecture=cfg.architecture,
                                              train=train_cfg))
        reg.fit(train_frame, bands=bands, filter_system=tab.filter_system, val_idx=pos_val,
                checkpoint_path=fdir / "checkpoints" / f"{name}.pt", quiet=quiet)
        reg.save(fdir / name, overwrite=True)  # a piece of the claimed cv folder, redone for new settings
        pred = reg.predict(test_frame, bands=bands, filter_system=tab.filter_system)
        for t in targets:
            out[f"{t}_cnn"] = pred[t].to_numpy()
    return pd.DataFrame(out)


def _redshifts(tab: Any, df: pd.DataFrame) -> np.ndarray:
    """Per-spaxel redshift from a spaxel 'redshift' column or the galaxy table (0 if unknown)."""
    if "redshift" in df.columns:
        return df["redshift"].to_numpy(dtype=np.float64)
    gal = getattr(tab, "galaxies", None)
    if gal is not None and "redshift" in gal.columns:
        zmap = pd.Series(gal["redshift"].to_numpy(dtype=np.float64), index=gal["galaxy_id"].to_numpy())
        return zmap.reindex(df["galaxy_id"].to_numpy()).to_numpy()
    return np.zeros(len(df))


def _check_template_bands(tab: Any) -> None:
    """Fail before any training if the template fit cannot run on this table."""
    from ..photometry import load_filter_system

    if not tab.filter_system:
        raise InputError("method template_fit needs the table's filter system (meta.json 'filter_system'); "
                         "set it or leave template_fit out of --methods")
    fs = load_filter_system(tab.filter_system)
    unknown = [b for b in tab.bands if b not in fs.bands]
    if unknown:
        raise InputError(f"method template_fit: band(s) {unknown} are not in filter system {fs.name!r}")


def _magerrs(tab: Any, df: pd.DataFrame) -> np.ndarray | None:
    cols = [f"magerr_{b}" for b in tab.bands]
    return df[cols].to_numpy(dtype=np.float64) if all(c in df.columns for c in cols) else None


def _run_floor(cfg: SEDCVConfig, tab: Any, df: pd.DataFrame, mags: np.ndarray, test: np.ndarray,
               grid_cache: dict[str, Any]) -> pd.DataFrame:
    """The information floor: one prior library per run (drawn with its own seed), no training rows."""
    if "floor" not in grid_cache:
        grid_cache["floor"] = floor_for_table(tab, cfg.floor, list(cfg.targets))
    errs = _magerrs(tab, df)
    if errs is None:
        raise InputError("method floor needs the table's magerr_* columns (each spaxel's photometric errors)")
    res = grid_cache["floor"].predict(mags[test], errs[test])
    out = {}
    for t in cfg.targets:
        out[f"{t}_floor"] = res[f"{t}_mean"].to_numpy()
        for q in ("std", "p16", "p50", "p84"):
            out[f"{t}_floor_{q}"] = res[f"{t}_{q}"].to_numpy()
    out["floor_ess"] = res["ess"].to_numpy()
    return pd.DataFrame(out)


def _run_template_library(cfg: SEDCVConfig, tab: Any, df: pd.DataFrame, mags: np.ndarray, test: np.ndarray,
                          grid_cache: dict[str, Any]) -> pd.DataFrame:
    """The library template fit (the mock's model family, broad uniform priors) at each spaxel's redshift."""
    from ..photometry import load_filter_system

    z = _redshifts(tab, df)
    if "library" not in grid_cache:
        system = load_filter_system(tab.filter_system).select(list(tab.bands))
        grid_cache["library"] = build_template_library(system, z, cfg.template_fit).select_bands(list(tab.bands))
    res = fit_template_library(grid_cache["library"], mags[test], None if _magerrs(tab, df) is None
                               else _magerrs(tab, df)[test], z[test], list(cfg.targets), cfg.template_fit)
    return pd.DataFrame({f"{t}_template_fit": res[t].to_numpy() for t in cfg.targets})


def _run_template_grid(cfg: SEDCVConfig, tab: Any, df: pd.DataFrame, mags: np.ndarray, test: np.ndarray,
                       grid_cache: dict[str, Any]) -> pd.DataFrame:
    """The classic grid fit: delayed-tau SFHs, one [Z/H] each, plain Calzetti dust, no lines."""
    if not tab.filter_system:
        raise InputError("template_fit needs the table's filter system (meta.json 'filter_system')")
    z = _redshifts(tab, df)
    if "grid" not in grid_cache:
        zs = redshift_grid(z, cfg.template_grid.redshift_step)
        grid = build_template_grid(tab.filter_system, cfg.template_grid, redshifts=zs)
        if grid.bands != list(tab.bands):
            order = [grid.bands.index(b) for b in tab.bands] if set(tab.bands) <= set(grid.bands) else None
            if order is None:
                raise InputError(f"table bands {tab.bands} are not all in filter system {tab.filter_system!r}")
            grid.fluxes = grid.fluxes[:, :, order]
            grid.bands = list(tab.bands)
        grid_cache["grid"] = grid
    grid = grid_cache["grid"]
    errs = None
    err_cols = [f"magerr_{b}" for b in tab.bands]
    if all(c in df.columns for c in err_cols):
        errs = df[err_cols].to_numpy(dtype=np.float64)[test]
    errs = floored_magerr(errs, mags[test].shape[0], len(tab.bands), cfg.template_grid.error_floor_mag)
    label_names = [t for t in cfg.targets]
    unknown = [t for t in label_names if t not in grid.labels.columns]
    if unknown:
        raise InputError(f"template labels have no {unknown}; available: {list(grid.labels.columns)}")
    est = cfg.template_grid.estimate
    if est not in ("mean", "best"):
        raise InputError(f"template_grid.estimate must be 'mean' or 'best', got {est!r}")
    res = grid.fit_magnitudes(mags[test], errs, redshift=z[test], label_names=label_names,
                              weighted_stats=est == "mean")
    col = "{}_mean" if est == "mean" else "{}"
    return pd.DataFrame({f"{t}_template_grid": res[col.format(t)].to_numpy() for t in label_names})


def compute_metrics(predictions: pd.DataFrame, targets: Any = TARGETS, methods: Any = DEFAULT_METHODS
                    ) -> dict[str, Any]:
    """metrics.json content: {method: {target: {robust_sigma, rmse, bias, n}}, 'pcc_residuals': {method: r}},
    plus 'ratio_to_floor': {method: {target: robust sigma of method / robust sigma of the floor}} when the
    floor is among the methods."""
    out: dict[str, Any] = {}
    pcc: dict[str, Any] = {}
    for method in methods:
        out[method] = {}
        for t in targets:
            s = scores(predictions[f"{t}_true"], predictions[f"{t}_{method}"])
            out[method][t] = {"robust_sigma": s["robust_sigma"], "rmse": s["rmse"], "bias": s["bias"], "n": s["n"]}
        if "log_age" in targets and "zh" in targets:
            pcc[method] = pearson_r(predictions[f"log_age_{method}"] - predictions["log_age_true"],
                                    predictions[f"zh_{method}"] - predictions["zh_true"])
    out["pcc_residuals"] = pcc
    if "floor" in methods:
        out["ratio_to_floor"] = ratio_to_floor(out)
    return out


#: keys of a sed cv metrics dict that are not methods
NON_METHOD_KEYS = ("pcc_residuals", "ratio_to_floor")


def ratio_to_floor(metrics: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """{method: {target: robust_sigma(method) / robust_sigma(floor)}} from a metrics dict with a 'floor' entry."""
    floor = metrics.get("floor")
    if not isinstance(floor, dict):
        return {}
    out: dict[str, dict[str, float | None]] = {}
    for method, per in metrics.items():
        if method in NON_METHOD_KEYS or method == "floor" or not isinstance(per, dict):
            continue
        out[method] = {}
        for t, s in per.items():
            f = floor.get(t, {}).get("robust_sigma")
            out[method][t] = (float(s["robust_sigma"]) / float(f)) if f else None
    return out
