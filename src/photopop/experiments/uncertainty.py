"""Per-spaxel uncertainties of the SED CNN: a heteroscedastic deep ensemble, recalibrated, tested on
held-out galaxies (Set B style).

Recipe (`run_uncertainty_study`):

1. galaxies -> test (``test_fraction``) and training galaxies (`photopop.splits.carve_validation`,
   scheme 'B');
2. training galaxies -> calibration galaxies (``calib_fraction``) and the fitting pool (again 'B');
3. ``n_members`` networks with the Gaussian-NLL head, each with its own seed (weights, shuffles and
   the validation galaxies carved from the pool for early stopping), form an `SEDEnsemble`;
4. per target one sigma factor s = quantile_0.6827(|z|) on the calibration galaxies, stored in the
   ensemble;
5. coverage of the 68 % / 95 % intervals, PIT and z std on the test galaxies, before and after the
   recalibration, and the same for the first member alone (a single heteroscedastic network).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..config import dumps_toml, to_dict
from ..datasets.sed_table import load_sed_table
from ..errors import InputError
from ..evaluation.calibration import calibration_summary, fit_sigma_scale, grouped_coverage_error
from ..evaluation.metrics import bias, rmse, robust_sigma
from ..io import dumps_json
from ..outputs import check_output, replace_output, source_id
from ..models.ensemble import SEDEnsemble
from ..models.saved import table_hash
from ..models.sed_base import extract_magnitudes
from ..models.sed_cnn import SEDCNNConfig
from ..splits import carve_validation, make_folds
from ..training.fit import TrainConfig
from ..training.sed_regressor import SEDRegressor, SEDRegressorConfig
from .sed_cv import derived_seed


def _default_train() -> TrainConfig:
    # the validation NLL is noisier than the MSE: a longer patience avoids members stopped after a few epochs
    return TrainConfig(loss="gaussian_nll", max_epochs=300, patience=40)


@dataclass
class UncertaintyConfig:
    """Settings of `run_uncertainty_study` (saved as config.toml with the run).

    test_fraction: share of galaxies held out for testing; calib_fraction: share of the remaining
    (training) galaxies held out for the sigma recalibration; val_fraction: share of the fitting
    pool's galaxies each member uses for early stopping. n_folds >= 2: instead of one held-out test
    set, Set B folds (`photopop.splits.make_folds`), each with its own calibration galaxies carved from
    its training galaxies, so every galaxy is tested once (test_fraction is then unused). train.loss should be 'gaussian_nll'
    (with 'mse' the ensemble sigma is the members' spread alone). seed drives all splits and the
    members' seeds (derived per member).
    """

    targets: tuple[str, ...] = ("log_age", "zh")
    n_members: int = 5
    n_folds: int = 1
    test_fraction: float = 0.25
    calib_fraction: float = 0.3
    val_fraction: float = 0.2
    input_kind: str = "mag"
    seed: int = 0
    figures: bool = True
    architecture: SEDCNNConfig = field(default_factory=SEDCNNConfig)
    train: TrainConfig = field(default_factory=_default_train)

    def validate(self) -> None:
        """Raise InputError for bad settings."""
        if self.n_folds < 1:
            raise InputError(f"n_folds must be >= 1, got {self.n_folds}")
        if self.n_members < 1:
            raise InputError(f"n_members must be >= 1, got {self.n_members}")
        for name in ("test_fraction", "calib_fraction", "val_fraction"):
            v = float(getattr(self, name))
            if not 0 < v < 1:
                raise InputError(f"{name} must be in (0, 1), got {v}")
        if not self.targets or len(set(self.targets)) != len(self.targets):
            raise InputError(f"targets must be distinct and non-empty, got {self.targets}")
        self.train.validate()
        self.architecture.validate()


def split_for_calibration(galaxy_ids: np.ndarray, test_fraction: float, calib_fraction: float,
                          seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fit pool, calibration, test) row indices; the three share no galaxy."""
    n = len(galaxy_ids)
    if np.unique(galaxy_ids).size < 3:
        raise InputError("need at least 3 galaxies to hold out test and calibration galaxies")
    train, test = carve_validation(np.arange(n), galaxy_ids, "B", test_fraction, seed=derived_seed(seed, "test"))
    pool, calib = carve_validation(train, galaxy_ids, "B", calib_fraction, seed=derived_seed(seed, "calib"))
    return pool, calib, test


def train_ensemble(frame: pd.DataFrame, bands: Sequence[str], filter_system: str | None,
                   config: UncertaintyConfig, *, quiet: bool = True, progress: Any = None) -> SEDEnsemble:
    """Train ``config.n_members`` SED networks on `frame` (seeds derived per member) into an ensemble."""
    say = progress or (lambda msg: None)
    members = []
    for k in range(config.n_members):
        t0 = time.perf_counter()
        train = dataclasses.replace(config.train, seed=derived_seed(config.seed, "member", k))
        cfg = SEDRegressorConfig(targets=tuple(config.targets), input_kind=config.input_kind,
                                 val_fraction=config.val_fraction, val_scheme="auto",
                                 architecture=config.architecture, train=train)
        reg = SEDRegressor(cfg).fit(frame, bands=list(bands), filter_system=filter_system, quiet=quiet)
        members.append(reg.model_)
        say(f"member {k}: best epoch {reg.result_.best_epoch} of {reg.result_.epochs_run} "
            f"({time.perf_counter() - t0:.1f} s)")
    return SEDEnsemble(members)


def calibrate(model: Any, mags: np.ndarray, y: np.ndarray, targets: Sequence[str]) -> dict[str, float]:
    """Fit and store per-target sigma factors on held-out rows (raw sigmas); returns them."""
    mu, sigma = model.predict_with_sigma(mags, calibrated=False)
    if sigma is None:
        raise InputError("this model predicts no sigma: train with loss 'gaussian_nll' or use >= 2 members")
    scale = {t: fit_sigma_scale(y[:, j], mu[:, j], sigma[:, j]) for j, t in enumerate(targets)}
    model.set_sigma_scale(scale)
    return scale


def _accuracy(y: np.ndarray, mu: np.ndarray) -> dict[str, float]:
    r = mu - y
    return {"robust_sigma": robust_sigma(r), "rmse": rmse(r), "bias": bias(r)}


def run_uncertainty_study(table: Any, config: UncertaintyConfig | None = None, out_dir: str | Path = "uncertainty",
                          *, quiet: bool = True, progress: Any = None, overwrite: bool = False) -> dict[str, Any]:
    """Train, recalibrate and test a heteroscedastic deep ensemble; write the run folder; return metrics.

    Returns ``{"calibration": {t: {coverage_68, coverage_95, coverage_68_raw, coverage_95_raw,
    sigma_scale, z_std, z_std_raw, median_sigma, n, coverage_68_err, coverage_95_err}}, "single_member": {...same...},
    "accuracy": {t: {robust_sigma, rmse, bias}}, "n_galaxies": {...}, "timing_s": ...}``.
    `out_dir` (written atomically) gets predictions.parquet (test and calibration rows, fold, and
    ``<t>_true``, ``<t>``, ``<t>_sigma``, ``<t>_sigma_raw``), metrics.json, config.toml, meta.json,
    model/ (the ensemble folder; with folds, fold 0's) and figures/ (pit, coverage, sigma_vs_error).
    """
    cfg = config or UncertaintyConfig()
    cfg.validate()
    settings = {"config": to_dict(cfg), "table": source_id(table)}
    inputs = [table] if isinstance(table, (str, Path)) else []
    check_output(out_dir, "sed-uncertainty", settings, overwrite=overwrite, inputs=inputs)  # fail before training
    say = progress or (lambda msg: None)
    t_start = time.perf_counter()
    tab = load_sed_table(table)
    df = tab.spaxels.reset_index(drop=True)
    targets = list(cfg.targets)
    for col in ("galaxy_id", "spaxel_id", *targets):
        if col not in df.columns:
            raise InputError(f"SED table lacks column {col!r}")
    mags, bands, system, _ = extract_magnitudes(tab)
    y = df[targets].to_numpy(dtype=np.float64)
    bad = ~(np.all(np.isfinite(mags), axis=1) & np.all(np.isfinite(y), axis=1))
    if bad.any():
        raise InputError(f"{int(bad.sum())} spaxel(s) have NaN/inf magnitudes or targets; drop them first")
    gal = df["galaxy_id"].to_numpy()
    if cfg.n_folds >= 2:
        folds = make_folds(gal, "B", cfg.n_folds, seed=derived_seed(cfg.seed, "folds"))
        splits = []
        for k in range(cfg.n_folds):
            test_k = np.flatnonzero(folds == k)
            pool_k, calib_k = carve_validation(np.flatnonzero(folds != k), gal, "B", cfg.calib_fraction,
                                               seed=derived_seed(cfg.seed, "calib", k))
            splits.append((pool_k, calib_k, test_k))
    else:
        splits = [split_for_calibration(gal, cfg.test_fraction, cfg.calib_fraction, cfg.seed)]

    parts: dict[str, list[np.ndarray]] = {n: [] for n in ("test", "calib", "mu_t", "sig_t", "sc_t", "mu_c", "sig_c",
                                                         "sc_c", "m1", "s1", "sc1", "fold_t", "fold_c")}
    first_ens = None
    for k, (pool, calib, test) in enumerate(splits):
        say(f"split {k}: galaxies {np.unique(gal[pool]).size} fit, {np.unique(gal[calib]).size} calibration, "
            f"{np.unique(gal[test]).size} test")
        fold_cfg = dataclasses.replace(cfg, seed=derived_seed(cfg.seed, "split", k)) if k else cfg
        ens = train_ensemble(df.iloc[pool].reset_index(drop=True), bands, system, fold_cfg, quiet=quiet, progress=say)
        scale = calibrate(ens, mags[calib], y[calib], targets)
        single = SEDEnsemble(ens.members[:1])
        single_scale = calibrate(single, mags[calib], y[calib], targets) if single.has_sigma else None
        mu_t, sig_t = ens.predict_with_sigma(mags[test], calibrated=False)
        mu_c, sig_c = ens.predict_with_sigma(mags[calib], calibrated=False)
        sc = np.array([scale[t] for t in targets])
        parts["test"].append(test)
        parts["calib"].append(calib)
        parts["mu_t"].append(mu_t)
        parts["sig_t"].append(sig_t)
        parts["sc_t"].append(np.broadcast_to(sc, mu_t.shape))
        parts["mu_c"].append(mu_c)
        parts["sig_c"].append(sig_c)
        parts["sc_c"].append(np.broadcast_to(sc, mu_c.shape))
        parts["fold_t"].append(np.full(test.size, k))
        parts["fold_c"].append(np.full(calib.size, k))
        if single_scale is not None:
            m1, s1 = single.predict_with_sigma(mags[test], calibrated=False)
            parts["m1"].append(m1)
            parts["s1"].append(s1)
            parts["sc1"].append(np.broadcast_to(np.array([single_scale[t] for t in targets]), m1.shape))
        if first_ens is None:
            first_ens = ens
    cat = {n: np.concatenate(v) for n, v in parts.items() if v}
    test, calib = cat["test"], cat["calib"]
    mu_t, sig_raw, sc_t = cat["mu_t"], cat["sig_t"], cat["sc_t"]
    metrics: dict[str, Any] = {"calibration": {}, "single_member": {}, "accuracy": {}}
    for j, t in enumerate(targets):
        metrics["calibration"][t] = calibration_summary(y[test, j], mu_t[:, j], sig_raw[:, j], sc_t[:, j])
        for lvl, kk in (("68", 1.0), ("95", 2.0)):
            metrics["calibration"][t][f"coverage_{lvl}_err"] = grouped_coverage_error(
                y[test, j], mu_t[:, j], sig_raw[:, j] * sc_t[:, j], gal[test], k=kk,
                seed=derived_seed(cfg.seed, "boot"))
        metrics["accuracy"][t] = _accuracy(y[test, j], mu_t[:, j])
        if "m1" in cat:
            metrics["single_member"][t] = calibration_summary(y[test, j], cat["m1"][:, j], cat["s1"][:, j],
                                                              cat["sc1"][:, j])
            metrics["single_member"][t].update({f"{key}_accuracy": v for key, v in
                                                _accuracy(y[test, j], cat["m1"][:, j]).items()})
    metrics["sigma_scales"] = {t: [float(p[0, j]) for p in parts["sc_t"]] for j, t in enumerate(targets)}
    metrics["n_galaxies"] = {"calibration": int(np.unique(gal[calib]).size), "test": int(np.unique(gal[test]).size),
                             "total": int(np.unique(gal).size)}
    metrics["n_folds"] = len(splits)
    metrics["n_members"] = cfg.n_members
    metrics["timing_s"] = time.perf_counter() - t_start

    rows = np.r_[test, calib]
    pred = pd.DataFrame({"galaxy_id": gal[rows], "spaxel_id": df["spaxel_id"].to_numpy()[rows],
                         "split": np.r_[np.full(test.size, "test"), np.full(calib.size, "calibration")],
                         "fold": np.r_[cat["fold_t"], cat["fold_c"]].astype(np.int64)})
    mu_all = np.r_[mu_t, cat["mu_c"]]
    sraw_all = np.r_[sig_raw, cat["sig_c"]]
    sc_all = np.r_[sc_t, cat["sc_c"]]
    for j, t in enumerate(targets):
        pred[f"{t}_true"] = y[rows, j]
        pred[t] = mu_all[:, j]
        pred[f"{t}_sigma"] = sraw_all[:, j] * sc_all[:, j]
        pred[f"{t}_sigma_raw"] = sraw_all[:, j]

    meta = {"photopop_version": __version__, "seed": cfg.seed, "kind": "sed-uncertainty",
            "bands": bands, "filter_system": system, "train_table_hash": table_hash(mags, y),
            "n_spaxels": int(len(df))}
    with replace_output(out_dir, "sed-uncertainty", settings, overwrite=overwrite, inputs=inputs) as tmp:
        pred.to_parquet(tmp / "predictions.parquet", index=False)
        (tmp / "metrics.json").write_text(dumps_json(metrics) + "\n")
        (tmp / "config.toml").write_text(dumps_toml(cfg))
        (tmp / "meta.json").write_text(dumps_json(meta) + "\n")
        first_ens.save(tmp / "model")
        if cfg.figures:
            from ..report.uncertainty_figures import write_uncertainty_figures

            write_uncertainty_figures(pred[pred["split"] == "test"], targets, tmp / "figures")
    say(f"done in {metrics['timing_s']:.1f} s")
    return metrics


def config_dict(cfg: UncertaintyConfig) -> dict[str, Any]:
    """The config as a plain dict (for reports)."""
    return to_dict(cfg)
