"""Grouped cross-prediction of the posterior study: every galaxy is a test galaxy once.

One train/calibration/test split measures coverage on a few dozen test galaxies, whose galaxy-bootstrap
error (3-5 points on the default mock) is as large as the tolerance asked of it. With ``folds = K > 1``
`run_posterior_study` calls `run_posterior_folds`: the galaxies are dealt into K folds
(`splits.make_folds`, scheme B, seeded); for fold k its galaxies are the test galaxies, and the other
galaxies are split (grouped, seeded per fold, `splits.carve_validation`) into the fitting pool and the
calibration galaxies exactly as in the single split. Per fold an `SEDPosterior` is fitted on the pool,
recalibrated on the calibration galaxies (which never include a test galaxy of that fold) and scored on
the test galaxies; the held-out results of all folds are then pooled, so coverage, SBC and the OOD rates
are measured on every galaxy of the table, with galaxy-bootstrap errors over all of them.

Pooled quantities: coverage of the central 68.27 %/95.45 % intervals per target (galaxy bootstrap);
the per-level alternative (`per_level`): the 95 % interval scaled by the 95 % factor fitted on the same
calibration galaxies instead of the 68 % one (meta.json ``recalibration.factor_95``): covered iff
r95 <= f95 / f with r95 the object's normalised residual against its recalibrated 95 % interval; SBC
ranks (all spaxels and one spaxel per galaxy); TARP as the object-weighted mean of the folds' expected
coverage curves (each fold draws its own references; the same credibility grid); OOD flag rates as
object-weighted means. The deep-ensemble comparison is a single-split feature (``folds = 1``).

Output folder (built in place, resumable: a finished fold is reused when its settings and rows match)::

    folds/fold_<k>/rows.parquet    per test row: truth, interval ends, median, SBC rank, quantiles, OOD
    folds/fold_<k>/fold.json       the fold's calibration, TARP curve, OOD rates, training summary
    folds/fold_<k>/model/          the fold's posterior model folder
    folds/fold_<k>/checkpoint.pt   training checkpoint (an interrupted fold resumes its training)
    metrics.json, config.toml, meta.json, test_predictions.parquet (all rows, out of fold), figures/
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..config import save_config, to_dict
from ..errors import InputError
from ..hashing import array_hash
from ..evaluation.calibration import P68, P95, grouped_coverage_error
from ..evaluation.posterior_calibration import (
    central_interval,
    grouped_sbc_pvalue,
    interval_coverage,
    posterior_calibration,
    posterior_degeneracy,
    sbc_ranks,
    sbc_summary,
    tarp_summary,
    width_at_coverage,
)
from ..io import read_json, read_table, write_json_atomic, write_table_atomic
from ..models.saved import extract_magnitudes
from ..outputs import claim_output, settings_hash, source_id
from ..splits import carve_validation, make_folds
from ..datasets.sed_table import load_sed_table
from .posterior_ood import load_study_table
from .sed_cv import derived_seed

#: credibility bins of every fold's TARP curve, so that the curves can be averaged
TARP_BINS = 20
#: stored with each finished fold; bump when the fold's outputs change
FOLD_VERSION = "3"


def posterior_fold_splits(galaxy_ids: Any, folds: int, calib_fraction: float,
                          seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(pool, calibration, test) row indices per fold; test galaxies partition the table.

    Fold k's test rows are whole galaxies (scheme B folds, seeded by `seed`); its calibration galaxies are
    `calib_fraction` of the remaining galaxies (grouped carve, seed derived per fold), its pool the rest.
    """
    gal = np.asarray(galaxy_ids)
    fold = make_folds(gal, "B", int(folds), seed=derived_seed(seed, "folds"))
    out = []
    for k in range(int(folds)):
        test = np.flatnonzero(fold == k)
        rest = np.flatnonzero(fold != k)
        pool, calib = carve_validation(rest, gal, "B", calib_fraction, seed=derived_seed(seed, "calib", k))
        out.append((np.sort(pool), np.sort(calib), test))
    return out


def _ratios(y: np.ndarray, lo: np.ndarray, med: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Normalised residual r = (y - m)/(hi - m) above the median, (m - y)/(m - lo) below (inf: width 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(y >= med, (y - med) / (hi - med), (med - y) / (med - lo))
    return np.where(np.isfinite(r), r, np.inf)


def _fold_rows(model: Any, y: np.ndarray, samples: np.ndarray, ctx: np.ndarray, targets: list[str],
               test: np.ndarray, gal: np.ndarray, k: int) -> pd.DataFrame:
    """Per test row: interval ends, median, SBC rank per target, then the model's summary columns."""
    rows = pd.DataFrame({"row": test, "galaxy_id": gal[test], "fold": np.full(len(test), k, dtype=np.int64)})
    lo68, hi68 = central_interval(samples, P68)
    lo95, hi95 = central_interval(samples, P95)
    med = np.median(samples, axis=0)
    ranks = sbc_ranks(y, samples)
    for j, t in enumerate(targets):
        rows[f"{t}_true"] = y[:, j]
        for name, arr in (("lo95", lo95), ("lo68", lo68), ("med", med), ("hi68", hi68), ("hi95", hi95)):
            rows[f"{t}_{name}"] = arr[:, j]
        rows[f"{t}_rank"] = ranks[:, j]
    return pd.concat([rows, model.summarise(samples, ctx)], axis=1)


def _run_fold(tab: Any, df: pd.DataFrame, cfg: Any, k: int, pool: np.ndarray, calib: np.ndarray,
              test: np.ndarray, fdir: Path, other: Any, quiet: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fit, recalibrate and score fold k (see the module docstring); returns (rows, fold summary)."""
    from ..training.posterior_fit import SEDPosterior
    from .posterior_ood import flag_rate, ood_perturbations, with_library

    t0 = time.perf_counter()
    targets = list(cfg.posterior.targets)
    gal = df["galaxy_id"].to_numpy()
    y = df[targets].to_numpy(np.float64)
    bands = extract_magnitudes(tab)[1]
    train_rows = np.sort(np.r_[pool, calib])
    pcfg = dataclasses.replace(cfg.posterior, n_samples=cfg.n_samples)
    pcfg.train = dataclasses.replace(pcfg.train, seed=derived_seed(cfg.seed, "posterior", k))
    train_tab = dataclasses.replace(tab, spaxels=df.iloc[train_rows].reset_index(drop=True))
    if cfg.library:
        train_tab = with_library(train_tab, load_sed_table(cfg.library), cfg.library)
    fdir.mkdir(parents=True, exist_ok=True)
    post = SEDPosterior(pcfg).fit(train_tab, calib_idx=np.searchsorted(train_rows, calib),
                                  checkpoint_path=fdir / "checkpoint.pt", quiet=quiet)
    model = post.model_
    assert model is not None and post.result_ is not None
    t_train = time.perf_counter() - t0
    test_frame = df.iloc[test].reset_index(drop=True)
    x = model.frame_inputs(dataclasses.replace(tab, spaxels=test_frame))
    samples, ctx = model.sample_inputs(x, cfg.n_samples, derived_seed(cfg.seed, "draws", k), with_context=True)
    rows = _fold_rows(model, y[test], samples, ctx, targets, test, gal, k)
    summary: dict[str, Any] = {
        "fold": k, "posterior": posterior_calibration(y[test], samples, targets, gal[test],
                                                      seed=derived_seed(cfg.seed, "boot", k)),
        "tarp_pooling": tarp_summary(y[test], samples, derived_seed(cfg.seed, "tarp", k), n_bins=TARP_BINS),
        "n_galaxies": {"pool": int(np.unique(gal[pool]).size), "calibration": int(np.unique(gal[calib]).size),
                       "test": int(np.unique(gal[test]).size)},
        "training": {key: model.meta.get(key) for key in ("best_epoch", "epochs_run", "n_fit_rows", "n_val_rows",
                                                          "n_calib_rows", "n_ood_rows", "spread_factors",
                                                          "recalibration")},
        "train_s": t_train}
    summary["training"]["factor_95_applied"] = model.spread_factors_95.tolist()
    ood: dict[str, Any] = {"threshold": model.ood_threshold, "threshold_level": model.meta.get("ood_threshold_level"),
                           "test": {"flag_rate": float(rows["ood_flag"].mean()), "n": len(test)}}
    for name, frame in ood_perturbations(test_frame, bands, df.iloc[train_rows], cfg.mag_shifts, cfg.noise_band,
                                         derived_seed(cfg.seed, "noise", k)).items():
        ood[name] = flag_rate(model, dataclasses.replace(tab, spaxels=frame))
    if other is not None:
        ood["other_library"] = flag_rate(model, other)
    summary["ood"] = ood
    post.save(fdir / "model")
    summary["seconds"] = time.perf_counter() - t0
    return rows, summary


def _other_library(tab: Any, cfg: Any, survey_config: Any) -> tuple[Any, str]:
    """The other-SSP-library mock for the OOD study (built once for all folds) or (None, reason)."""
    from .posterior_ood import covered_bands, other_library_table

    folder = cfg.ood_ssp_folder
    if not folder or not Path(folder).is_dir():
        return None, f"no SSP folder at {folder!r}"
    gal = getattr(tab, "galaxies", None)
    if gal is None or "redshift" not in gal.columns:
        return None, "the table has no galaxy redshifts to build the other-library mock at"
    bands = list(tab.bands)
    system = tab.meta.get("filter_system") or "jpas"
    if covered_bands(folder, system, bands, gal["redshift"].to_numpy()) != bands:
        return None, (f"{folder} does not cover every band at the table's redshifts (run folds = 1 for the "
                      "second-posterior test)")
    model_like = type("Bands", (), {"bands": bands, "filter_system": system})()
    return other_library_table(model_like, survey_config or tab.config, folder, cfg.n_ood_galaxies,
                               derived_seed(cfg.seed, "other-library"))


def pool_folds(rows: pd.DataFrame, fold_summaries: list[dict[str, Any]], targets: list[str], n_samples: int,
               seed: int) -> dict[str, Any]:
    """Pooled metrics over all held-out rows of all folds (module docstring), plus a per-fold table."""
    import torch
    from sbi.diagnostics.tarp import check_tarp

    gal = rows["galaxy_id"].to_numpy()
    boot = derived_seed(seed, "boot-pooled")
    per_target: dict[str, Any] = {}
    factor = {int(s["fold"]): np.asarray(s["training"]["recalibration"]["factor"], dtype=np.float64)
              for s in fold_summaries}
    f95 = {int(s["fold"]): np.asarray(s["training"]["recalibration"]["factor_95"], dtype=np.float64)
           for s in fold_summaries}
    # the factor each fold's model applied at the 95.45 % level (older fold results: the one factor)
    applied = {int(s["fold"]): np.asarray(s["training"].get("factor_95_applied") or factor[int(s["fold"])],
                                          dtype=np.float64) for s in fold_summaries}
    fold_of = rows["fold"].to_numpy()
    for j, t in enumerate(targets):
        yt = rows[f"{t}_true"].to_numpy()
        rec: dict[str, float] = {}
        for name in ("68", "95"):
            lo, hi = rows[f"{t}_lo{name}"].to_numpy(), rows[f"{t}_hi{name}"].to_numpy()
            rec[f"coverage_{name}"] = interval_coverage(yt, lo, hi)
            rec[f"coverage_{name}_err"] = grouped_coverage_error(yt, (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-12),
                                                                 gal, 1.0, 500, boot)
            rec[f"median_width_{name}"] = float(np.median(hi - lo))
        lo, hi = rows[f"{t}_lo68"].to_numpy(), rows[f"{t}_hi68"].to_numpy()
        rec["width_68_at_nominal"], rec["scale_to_nominal"] = width_at_coverage(yt, (lo + hi) / 2, (hi - lo) / 2)
        med = rows[f"{t}_med"].to_numpy()
        rec["bias_median"] = float(np.mean(med - yt))
        # both recalibrations of the 95 % interval: one factor (the 68 % one) and the 95 % level's own,
        # from the normalised residual against the raw interval, r95 * (the factor the model applied)
        r95 = _ratios(yt, rows[f"{t}_lo95"].to_numpy(), med, rows[f"{t}_hi95"].to_numpy())
        r95 = np.minimum(r95 * np.array([applied[f][j] for f in fold_of]), 1e300)
        for name, fac in (("one_factor", factor), ("per_level", f95)):
            thr = np.array([fac[f][j] for f in fold_of])
            rec[f"coverage_95_{name}"] = float(np.mean(r95 <= thr))
            rec[f"coverage_95_{name}_err"] = grouped_coverage_error(r95, np.zeros_like(r95), thr, gal, 1.0, 500, boot)
        covs = [s["posterior"]["per_target"][t] for s in fold_summaries]
        for name in ("68", "95"):
            vals = np.array([c[f"coverage_{name}"] for c in covs])
            rec[f"coverage_{name}_fold_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
            # standard error of the pooled coverage from the folds' spread: unlike the galaxy bootstrap of the
            # test galaxies it includes the noise of each fold's factors (fitted on its own calibration galaxies)
            rec[f"coverage_{name}_fold_se"] = rec[f"coverage_{name}_fold_sd"] / float(np.sqrt(len(vals)))
        per_target[t] = rec
    ranks = rows[[f"{t}_rank" for t in targets]].to_numpy(np.int64)
    sbc = sbc_summary(ranks, n_samples)
    sbc["one_per_group"] = grouped_sbc_pvalue(ranks, gal, n_samples, seed=derived_seed(seed, "sbc-pooled"))
    n = np.array([s["ood"]["test"]["n"] for s in fold_summaries], dtype=np.float64)
    ecp = sum(w * np.asarray(s["tarp_pooling"]["ecp"]) for w, s in zip(n / n.sum(), fold_summaries))
    alpha = np.asarray(fold_summaries[0]["tarp_pooling"]["alpha"])
    atc, ks = check_tarp(torch.as_tensor(ecp, dtype=torch.float32), torch.as_tensor(alpha, dtype=torch.float32))
    post = {"per_target": per_target, "n": len(rows), "n_samples": int(n_samples), "sbc": sbc,
            "tarp": {"atc": float(atc), "ks_pvalue": float(ks), "ecp": ecp.tolist(), "alpha": alpha.tolist(),
                     "pooled_over_folds": True}}
    ood: dict[str, Any] = {"threshold": [s["ood"]["threshold"] for s in fold_summaries],
                           "threshold_level": [s["ood"].get("threshold_level") for s in fold_summaries]}
    for name in fold_summaries[0]["ood"]:
        parts = [s["ood"].get(name) for s in fold_summaries]
        if name in ("threshold", "threshold_level") or not all(isinstance(p, dict) and "flag_rate" in p for p in parts):
            continue
        w = np.array([p["n"] for p in parts], dtype=np.float64)
        ood[name] = {"flag_rate": float(np.dot(w, [p["flag_rate"] for p in parts]) / w.sum()), "n": int(w.sum()),
                     "per_fold": [float(p["flag_rate"]) for p in parts]}
    out: dict[str, Any] = {"posterior": post, "ood": ood}
    if "log_age" in targets and "zh" in targets:
        yy = rows[["log_age_true", "zh_true"]].to_numpy()
        out["degeneracy"] = {"posterior": posterior_degeneracy(yy, rows[["log_age_p50", "zh_p50"]].to_numpy(),
                                                               rows["corr_log_age_zh"].to_numpy())}
    out["per_fold"] = [{"fold": s["fold"], "n_galaxies": s["n_galaxies"],
                        "best_epoch": s["training"]["best_epoch"],
                        "spread_factors": s["training"]["recalibration"]["factor"],
                        "factor_95": s["training"]["recalibration"]["factor_95"],
                        "quantile_levels": {lv: s["training"]["recalibration"].get(f"quantile_level_{lv}")
                                            for lv in ("68", "95")},
                        "coverage": {t: {lv: s["posterior"]["per_target"][t][f"coverage_{lv}"] for lv in ("68", "95")}
                                     for t in targets},
                        "sbc_one_per_galaxy_p": s["posterior"]["sbc"].get("one_per_group", {}).get("ks_pvalue"),
                        "tarp_atc": s["posterior"]["tarp"]["atc"], "ood_test": s["ood"]["test"]["flag_rate"],
                        "train_s": s["train_s"]} for s in fold_summaries]
    return out


def run_posterior_folds(table: Any, cfg: Any, out_dir: str | Path, *, quiet: bool = True, progress: Any = None,
                        survey_config: Any = None, overwrite: bool = False) -> dict[str, Any]:
    """The posterior study with ``cfg.folds`` grouped folds (module docstring); returns the pooled metrics."""
    if int(cfg.folds) < 2:
        raise InputError(f"run_posterior_folds needs folds >= 2, got {cfg.folds}")
    settings = {"config": to_dict(cfg), "table": source_id(table)}
    if cfg.library:
        settings["library"] = source_id(cfg.library)
    inputs = [table] if isinstance(table, (str, Path)) else []
    with claim_output(out_dir, "sed-posterior-study", settings, overwrite=overwrite, inputs=inputs, in_place=True):
        return _run_folds(table, cfg, Path(out_dir), settings, quiet=quiet, progress=progress,
                          survey_config=survey_config)


def _run_folds(table: Any, cfg: Any, out: Path, settings: dict[str, Any], *, quiet: bool, progress: Any,
               survey_config: Any) -> dict[str, Any]:
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    targets = list(cfg.posterior.targets)
    tab, df = load_study_table(table, targets)
    gal = df["galaxy_id"].to_numpy()
    y = df[targets].to_numpy(np.float64)
    data = array_hash(y, gal, extract_magnitudes(tab)[0])  # the fold cache key: labels, groups, magnitudes
    splits = posterior_fold_splits(gal, cfg.folds, cfg.calib_fraction, cfg.seed)
    save_config(cfg, out / "config.toml")
    other, other_reason = None, ""
    all_rows, summaries = [], []
    for k, (pool, calib, test) in enumerate(splits):
        fdir = out / "folds" / f"fold_{k}"
        key = settings_hash({"settings": settings, "data": data, "version": FOLD_VERSION, "fold": k,
                             "test": array_hash(test),
                             "calib": array_hash(calib)})
        done = fdir / "done.json"
        if done.exists() and read_json(done).get("key") == key and (fdir / "rows.parquet").exists():
            rows, summary = read_table(fdir / "rows.parquet"), read_json(fdir / "fold.json")
            say(f"fold {k}: reused")
        else:
            if other is None and not other_reason:
                other, other_reason = _other_library(tab, cfg, survey_config)
            say(f"fold {k}: {summary_line(pool, calib, test, gal)}")
            rows, summary = _run_fold(tab, df, cfg, k, pool, calib, test, fdir, other, quiet)
            if other is None:
                summary["ood"]["other_library"] = {"skipped": other_reason}
            write_table_atomic(rows, fdir / "rows.parquet")
            write_json_atomic(fdir / "fold.json", summary)
            write_json_atomic(done, {"key": key})
            say(f"fold {k}: best epoch {summary['training']['best_epoch']}, {summary['seconds']:.0f} s")
        all_rows.append(rows)
        summaries.append(summary)
    rows = pd.concat(all_rows, ignore_index=True).sort_values("row", kind="stable").reset_index(drop=True)
    if not np.array_equal(rows["row"].to_numpy(), np.arange(len(df))):
        raise InputError("the folds' test rows do not cover the table once each (a fold folder was altered)")
    metrics = pool_folds(rows, summaries, targets, cfg.n_samples, cfg.seed)
    metrics["folds"] = int(cfg.folds)
    metrics["n_galaxies"] = {"test": int(np.unique(gal).size), "per_fold": [s["n_galaxies"] for s in summaries]}
    metrics["ensemble_note"] = "the deep-ensemble comparison runs with folds = 1 (one split)"
    metrics["timing_s"] = time.perf_counter() - t0
    meta = {"photopop_version": __version__, "seed": cfg.seed, "kind": "sed-posterior-study", "folds": int(cfg.folds),
            "bands": list(tab.bands), "n_spaxels": len(df)}
    keep = [c for c in rows.columns if not c.endswith(("_lo95", "_lo68", "_med", "_hi68", "_hi95"))]
    write_table_atomic(rows[keep], out / "test_predictions.parquet")
    write_json_atomic(out / "metrics.json", metrics)
    write_json_atomic(out / "meta.json", meta)
    from ..report.posterior_figures import write_posterior_figures

    write_posterior_figures(metrics, targets, out / "figures")
    say(f"posterior study ({cfg.folds} folds) done in {metrics['timing_s']:.0f} s")
    return metrics


def summary_line(pool: np.ndarray, calib: np.ndarray, test: np.ndarray, gal: np.ndarray) -> str:
    """'P pool / C calibration / T test galaxies' of one fold."""
    n = [int(np.unique(gal[i]).size) for i in (pool, calib, test)]
    return f"{n[0]} pool / {n[1]} calibration / {n[2]} test galaxies"
