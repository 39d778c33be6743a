"""Posteriors on held-out galaxies beside the deep ensemble, and the out-of-domain flag study.

`run_posterior_study` (``photopop sed posterior-study``, the demo's posterior part):

1. galaxies -> test, calibration and fitting-pool galaxies (`experiments.uncertainty.split_for_calibration`,
   Set B style: no galaxy in two of them);
2. an `SEDPosterior` fitted on the pool (its own validation galaxies, carved from it, drive early
   stopping and the OOD threshold) and recalibrated (spread factors) on the calibration galaxies;
   a heteroscedastic deep ensemble trained on
   the pool and recalibrated on the calibration galaxies, as `experiments.uncertainty` does;
3. on the test galaxies: 68 %/95 % coverage, SBC ranks and TARP of the posterior draws
   (`evaluation.posterior_calibration`), both methods' interval widths at equal (nominal) coverage, and
   the age-[Z/H] degeneracy each captures;
4. OOD flag rates: test galaxies as they are (about 1 - ood_quantile by construction), magnitudes
   shifted by constants, one band replaced by noise, and SEDs of another SSP library (MIUSCAT, when its
   folder exists and covers the model's bands; else the reason it was skipped is recorded).
"""

from __future__ import annotations

import copy
import dataclasses
import os
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
from ..evaluation.calibration import calibration_summary
from ..evaluation.posterior_calibration import posterior_calibration, posterior_degeneracy, width_at_coverage
from ..io import dumps_json
from ..models.posterior_model import SavedPosterior
from ..models.sed_base import extract_magnitudes
from ..outputs import check_output, replace_output, source_id
from ..training.fit import TrainConfig
from ..training.posterior_fit import SEDPosterior, SEDPosteriorConfig
from .posterior_folds import run_posterior_folds
from .posterior_ood import (covered_bands, flag_rate, load_study_table, ood_perturbations, other_library_table,
                            with_library)
from .sed_cv import derived_seed
from .uncertainty import UncertaintyConfig, calibrate, split_for_calibration, train_ensemble

#: where `photopop` finds the second SSP library (MIUSCAT, MILES format); see its README


def default_ood_ssp() -> str:
    """The other-library test's SSP folder: $PHOTOPOP_OOD_SSP, else ssp/miuscat under $PHOTOPOP_SHARED_DATA
    (the MILES-format SSPs a user holds), else '' (the test is skipped with that reason in the metrics)."""
    if os.environ.get("PHOTOPOP_OOD_SSP"):
        return os.environ["PHOTOPOP_OOD_SSP"]
    shared = os.environ.get("PHOTOPOP_SHARED_DATA")
    return str(Path(shared) / "ssp" / "miuscat") if shared else ""


@dataclass
class PosteriorStudyConfig:
    """Settings of `run_posterior_study` (saved as config.toml with the run).

    test_fraction / calib_fraction: shares of galaxies held out (as `UncertaintyConfig`). compare_ensemble:
    also train the deep ensemble (settings in ``ensemble``). mag_shifts: constants added to every
    magnitude for the OOD study; noise_band: the band replaced by noise ('' = the middle band), drawn from
    a Gaussian with the band's mean and standard deviation over the training rows (plausible values, but
    unrelated to the rest of the SED). ood_ssp_folder: MILES-format SSP folder for the other-library test
    ('' = skip; default `default_ood_ssp`). n_ood_galaxies: galaxies of that mock. n_samples: draws per test object.
    library: an SED table of further simulated galaxies from the same simulator and priors (e.g.
    ``photopop simulate ifu --seed 1 --galaxies 600``; '' = none) added to the posterior's fitting pool,
    so the flow and its early stopping see many more galaxies (neural posterior estimation on
    simulations); the calibration and test galaxies stay the table's own, and the ensemble is unchanged.
    folds: 1 = one test/calibration/pool split (above); K > 1 = grouped cross-prediction
    (`experiments.posterior_folds`): every galaxy is a test galaxy in one of K folds, the rest of each fold
    split into pool and calibration galaxies as above, results pooled over all galaxies (no ensemble).
    """

    seed: int = 0
    test_fraction: float = 0.25
    calib_fraction: float = 0.3
    n_samples: int = 1000
    compare_ensemble: bool = True
    mag_shifts: tuple[float, ...] = (0.1, 0.5, 2.0, 5.0)
    noise_band: str = ""
    ood_ssp_folder: str = field(default_factory=default_ood_ssp)
    n_ood_galaxies: int = 20
    library: str = ""
    folds: int = 1
    posterior: SEDPosteriorConfig = field(default_factory=SEDPosteriorConfig)
    ensemble: UncertaintyConfig = field(default_factory=lambda: UncertaintyConfig(
        n_members=3, train=TrainConfig(loss="gaussian_nll", max_epochs=150, patience=40, num_threads=1)))


def _ensemble_arrays(ens: Any, mags: np.ndarray, targets: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, calibrated sigma, per-object age-[Z/H] correlation of the member spread) of an ensemble."""
    mu, sigma = ens.predict_with_sigma(mags)
    mus, _ = ens.member_predictions(mags)
    corr = np.full(mu.shape[0], np.nan)
    if "log_age" in targets and "zh" in targets and mus.shape[0] > 1:
        a, z = list(targets).index("log_age"), list(targets).index("zh")
        cov = ((mus[:, :, a] - mus[:, :, a].mean(0)) * (mus[:, :, z] - mus[:, :, z].mean(0))).mean(0)
        corr = cov * ens.sigma_scale[a] * ens.sigma_scale[z] / (sigma[:, a] * sigma[:, z])
    return mu, sigma, corr


def other_library_study(tab: Any, train_rows: np.ndarray, test: np.ndarray, model: SavedPosterior,
                        cfg: PosteriorStudyConfig, survey: Any, quiet: bool = True) -> dict[str, Any]:
    """OOD flag rates on a mock from another SSP library (see `run_posterior_study`).

    If the library does not cover all of the model's bands at the table's redshifts, a second posterior
    with the same settings is trained on the covered bands (same training rows), and its flag rates on
    the test galaxies and on the other library are reported.
    """
    folder = cfg.ood_ssp_folder
    if not folder or not Path(folder).is_dir():
        return {"skipped": f"no SSP folder at {folder!r}"}
    gal = getattr(tab, "galaxies", None)
    if gal is None or "redshift" not in gal.columns:
        return {"skipped": "the table has no galaxy redshifts to build the other-library mock at"}
    bands = list(model.bands)
    cov = covered_bands(folder, model.filter_system or "jpas", bands, gal["redshift"].to_numpy())
    out: dict[str, Any] = {"folder": str(folder)}
    if cov != bands:
        if len(cov) < 3:
            return {"skipped": f"{folder} covers only {cov} of the model's bands"}
        out["bands"] = f"a second posterior on the {len(cov)} bands the library covers (without {sorted(set(bands) - set(cov))})"
        sub = tab.select_bands(cov)
        df = sub.spaxels.reset_index(drop=True)
        post = SEDPosterior(cfg.posterior).fit(dataclasses.replace(sub, spaxels=df.iloc[train_rows].reset_index(drop=True)),
                                               quiet=quiet)
        model = post.model_
        out["test"] = flag_rate(model, dataclasses.replace(sub, spaxels=df.iloc[test].reset_index(drop=True)))
    other, reason = other_library_table(model, survey or tab.config, folder, cfg.n_ood_galaxies,
                                        derived_seed(cfg.seed, "other-library"))
    if other is None:
        return {"skipped": reason}
    out["other_library"] = flag_rate(model, other)
    return out


def run_posterior_study(table: Any, config: PosteriorStudyConfig | None = None, out_dir: str | Path = "posterior",
                        *, quiet: bool = True, progress: Any = None, survey_config: Any = None,
                        overwrite: bool = False) -> dict[str, Any]:
    """Train, test and compare (see the module docstring); writes `out_dir` atomically; returns the metrics.

    `out_dir` gets metrics.json, config.toml, meta.json, test_predictions.parquet (truth, posterior
    quantiles, ood columns, ensemble mean/sigma), model/ (the posterior folder) and figures/.
    `survey_config`: the mock's IFUSurveyConfig (for the other-library mock; default: the table's).
    """
    cfg = copy.deepcopy(config) if config is not None else PosteriorStudyConfig()
    if int(cfg.folds) != cfg.folds or cfg.folds < 1:
        raise InputError(f"folds must be an integer >= 1, got {cfg.folds}")
    if cfg.folds > 1:
        return run_posterior_folds(table, cfg, out_dir, quiet=quiet, progress=progress,
                                   survey_config=survey_config, overwrite=overwrite)
    settings = {"config": to_dict(cfg), "table": source_id(table)}
    if cfg.library:
        settings["library"] = source_id(cfg.library)
    inputs = [table] if isinstance(table, (str, Path)) else []
    check_output(out_dir, "sed-posterior-study", settings, overwrite=overwrite, inputs=inputs)  # before training
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    targets = list(cfg.posterior.targets)
    tab, df = load_study_table(table, targets)
    mags, bands, system, _ = extract_magnitudes(tab)
    gal = df["galaxy_id"].to_numpy()
    pool, calib, test = split_for_calibration(gal, cfg.test_fraction, cfg.calib_fraction, cfg.seed)
    train_rows = np.sort(np.r_[pool, calib])
    y = df[targets].to_numpy(np.float64)

    pcfg = dataclasses.replace(cfg.posterior, n_samples=cfg.n_samples)
    pcfg.train = dataclasses.replace(pcfg.train, seed=derived_seed(cfg.seed, "posterior"))
    t = time.perf_counter()
    train_tab = dataclasses.replace(tab, spaxels=df.iloc[train_rows].reset_index(drop=True))
    if cfg.library:
        train_tab = with_library(train_tab, load_sed_table(cfg.library), cfg.library)
    # the study's calibration galaxies recalibrate the posterior too (its spread factors, OOD threshold)
    post = SEDPosterior(pcfg).fit(train_tab, calib_idx=np.searchsorted(train_rows, calib), quiet=quiet)
    model = post.model_
    assert model is not None and post.result_ is not None
    t_train = time.perf_counter() - t
    say(f"posterior: best epoch {post.result_.best_epoch} of {post.result_.epochs_run} ({t_train:.0f} s)")
    test_frame = df.iloc[test].reset_index(drop=True)
    t = time.perf_counter()
    x = model.frame_inputs(dataclasses.replace(tab, spaxels=test_frame))
    samples, ctx = model.sample_inputs(x, cfg.n_samples, derived_seed(cfg.seed, "draws"), with_context=True)
    t_pred = time.perf_counter() - t
    summary = model.summarise(samples, ctx)
    metrics: dict[str, Any] = {"posterior": posterior_calibration(y[test], samples, targets, gal[test],
                                                                  seed=derived_seed(cfg.seed, "boot"))}
    metrics["posterior"]["predict_objects_per_s"] = float(len(test) / t_pred) if t_pred > 0 else None
    metrics["posterior"]["train_s"] = t_train
    pred = pd.DataFrame({"galaxy_id": gal[test], "spaxel_id": df["spaxel_id"].to_numpy()[test]
                         if "spaxel_id" in df.columns else np.arange(len(test))})
    for j, tname in enumerate(targets):
        pred[f"{tname}_true"] = y[test, j]
    pred = pd.concat([pred, summary], axis=1)
    degen: dict[str, Any] = {}
    if "log_age" in targets and "zh" in targets:
        a, z = targets.index("log_age"), targets.index("zh")
        yy = y[test][:, [a, z]]
        p50 = summary[["log_age_p50", "zh_p50"]].to_numpy()
        degen["posterior"] = posterior_degeneracy(yy, p50, summary["corr_log_age_zh"].to_numpy())

    widths: dict[str, Any] = {"posterior": {tn: metrics["posterior"]["per_target"][tn]["width_68_at_nominal"]
                                            for tn in targets}}
    if cfg.compare_ensemble:
        t = time.perf_counter()
        ecfg = dataclasses.replace(cfg.ensemble, targets=tuple(targets), seed=derived_seed(cfg.seed, "ensemble"))
        ens = train_ensemble(df.iloc[pool].reset_index(drop=True), bands, system, ecfg, quiet=quiet, progress=say)
        calibrate(ens, mags[calib], y[calib], targets)
        mu, sigma, ecorr = _ensemble_arrays(ens, mags[test], targets)
        metrics["ensemble"] = {"calibration": {tn: calibration_summary(y[test, j], mu[:, j], sigma[:, j])
                                               for j, tn in enumerate(targets)},
                               "train_s": time.perf_counter() - t, "n_members": ecfg.n_members}
        widths["ensemble"] = {tn: width_at_coverage(y[test, j], mu[:, j], sigma[:, j])[0] for j, tn in enumerate(targets)}
        for j, tn in enumerate(targets):
            pred[f"{tn}_ensemble"] = mu[:, j]
            pred[f"{tn}_ensemble_sigma"] = sigma[:, j]
        if degen:
            degen["ensemble"] = posterior_degeneracy(y[test][:, [a, z]], mu[:, [a, z]], ecorr)
    metrics["width_68_at_nominal"] = widths
    metrics["degeneracy"] = degen

    say("OOD study: held-out galaxies, shifted magnitudes, a band replaced by noise, another SSP library")
    ood: dict[str, Any] = {"threshold": model.ood_threshold, "quantile": float(model.meta["ood_quantile"]),
                           "test": {"flag_rate": float(summary["ood_flag"].mean()),
                                    "median_score": float(summary["ood_score"].median()), "n": int(len(test))}}
    for name, frame in ood_perturbations(test_frame, bands, df.iloc[train_rows], cfg.mag_shifts, cfg.noise_band,
                                         derived_seed(cfg.seed, "noise")).items():
        ood[name] = flag_rate(model, dataclasses.replace(tab, spaxels=frame))
    ood["other_library"] = other_library_study(tab, train_rows, test, model, cfg, survey_config, quiet)
    metrics["ood"] = ood
    metrics["n_galaxies"] = {"pool": int(np.unique(gal[pool]).size), "calibration": int(np.unique(gal[calib]).size),
                             "test": int(np.unique(gal[test]).size)}
    if cfg.library:
        metrics["n_galaxies"]["library"] = int(train_tab.spaxels["galaxy_id"].nunique() - np.unique(gal[train_rows]).size)
    metrics["posterior"]["training"] = {k: model.meta.get(k) for k in ("best_epoch", "epochs_run", "n_fit_rows",
                                                                       "n_val_rows", "n_calib_rows", "n_ood_rows",
                                                                       "spread_factors", "recalibration")}
    metrics["timing_s"] = time.perf_counter() - t0
    meta = {"photopop_version": __version__, "seed": cfg.seed, "kind": "sed-posterior-study", "bands": bands,
            "filter_system": system, "n_spaxels": int(len(df))}
    with replace_output(out_dir, "sed-posterior-study", settings, overwrite=overwrite, inputs=inputs) as tmp:
        pred.to_parquet(tmp / "test_predictions.parquet", index=False)
        (tmp / "metrics.json").write_text(dumps_json(metrics) + "\n")
        (tmp / "config.toml").write_text(dumps_toml(cfg))
        (tmp / "meta.json").write_text(dumps_json(meta) + "\n")
        post.save(tmp / "model")
        from ..report.posterior_figures import write_posterior_figures

        write_posterior_figures(metrics, targets, tmp / "figures")
    say(f"posterior study done in {metrics['timing_s']:.0f} s")
    return metrics
