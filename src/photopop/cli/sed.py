"""`photopop sed`: train, apply, tune and cross-validate the SED CNN (Liew-Cain et al. 2021).

    photopop sed cv      --table DIR --split A|B --target both --out DIR   Set A / Set B cross-prediction
    photopop sed train   --table DIR --target log_age --out MODEL_DIR      one model on a whole table
    photopop sed train   --table DIR --target both --estimator posterior --out MODEL_DIR
                                                                        a posterior flow (quantiles, OOD flag)
    photopop sed predict --model MODEL_DIR --table DIR_OR_FILE --out FILE  one table (`photopop predict`'s path)
    photopop sed tune    --table DIR --target log_age --out DIR            Optuna search (minimises val loss)
    photopop sed figures --cv DIR                                          figures of a cv folder
    photopop sed uncertainty --table DIR --out DIR [--members N]           calibrated deep-ensemble sigmas
    photopop sed posterior-study --table DIR --out DIR                     posterior flow vs ensemble, OOD study
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

from ..config import load_config
from ..errors import InputError
from ..io import dumps_json, is_inside, resolved
from ..outputs import check_output, check_output_path
from ..validate import arg, out_path, positive_float, positive_int, seed
from .settings import DefaultHelp, add_set_option, load_with_settings

log = logging.getLogger(__name__)
_CV = "experiments.sed_cv:SEDCVConfig"
_REG = "training.fit:SEDRegressorConfig"

TARGET_CHOICES = {"log_age": ("log_age",), "zh": ("zh",), "both": ("log_age", "zh")}


def register(subparsers: Any) -> None:
    """Add the `sed` command group."""
    p = subparsers.add_parser("sed", help="SED CNN: cross-prediction (Set A/B), training, prediction, tuning",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="sed_command", metavar="SUBCOMMAND")

    cv = sub.add_parser("cv", help="Set A / Set B cross-prediction with the CNN and the baselines",
                        description="Split the spaxels into 4 folds (Set A: within galaxies; Set B: by galaxy), "
                        "train on 3, predict the 4th, for every fold and method; writes predictions.parquet, "
                        "metrics.json, per-fold models and learning curves. Finished folds are reused on rerun.")
    cv.add_argument("--table", required=True, type=Path, help="SED-table folder (e.g. from `photopop simulate ifu`) or file")
    cv.add_argument("--split", default=None, help=DefaultHelp("A or B (default {default}, or the config file's)", _CV, "split"))
    cv.add_argument("--target", choices=sorted(TARGET_CHOICES), default=None,
                    help=DefaultHelp("default: {default}", _CV, "targets"))
    cv.add_argument("--out", required=True, type=arg(out_path, "--out"), help="output folder")
    cv.add_argument("--config", type=Path, help="TOML/YAML with SEDCVConfig settings ([architecture], [train], ...)")
    cv.add_argument("--methods", nargs="+", metavar="M",
                    help="subset of cnn constant random random_forest template_fit template_grid floor "
                         "(default all but template_grid; floor needs a mock table)")
    cv.add_argument("--floor-library", type=arg(positive_int, "--floor-library"), metavar="N",
                    help=DefaultHelp("spaxels in the information floor's prior library (default {default}; 1e6 for a "
                                     "tighter floor)", _CV, "floor.n_library"))
    cv.add_argument("--max-epochs", type=arg(positive_int, "--max-epochs"), metavar="N",
                    help=DefaultHelp("cap on training epochs (default {default}, the paper's)", _CV, "train.max_epochs"))
    cv.add_argument("--patience", type=arg(positive_int, "--patience"), metavar="N",
                    help=DefaultHelp("early-stopping patience (default {default}, the paper's)", _CV, "train.patience"))
    cv.add_argument("--seed", type=arg(seed, "--seed"), metavar="S",
                    help=DefaultHelp("seed of folds, validation sets and networks (default {default})", _CV, "seed"))
    cv.add_argument("--joint", action="store_true", help="one CNN with both outputs instead of one per target")
    cv.add_argument("--input-kind", choices=("mag", "colour", "flux"),
                    help=DefaultHelp("CNN inputs (default {default})", _CV, "input_kind"))
    cv.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    cv.add_argument("--n-jobs", type=int, metavar="N", help="random-forest worker processes")
    cv.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    cv.add_argument("--overwrite", action="store_true", help="replace an output photopop wrote earlier with other settings (never a folder it did not write)")
    cv.add_argument("--quiet", action="store_true", help="no progress output")
    add_set_option(cv, "SEDCVConfig")
    cv.set_defaults(func=run_cv)

    tr = sub.add_parser("train", help="train one SED CNN on a whole table and save the model folder")
    tr.add_argument("--table", required=True, type=Path)
    tr.add_argument("--target", choices=sorted(TARGET_CHOICES), default=None,
                    help=DefaultHelp("default: the config file's, else {default} (with --estimator posterior: "
                                     "SEDPosteriorConfig.targets)", _REG, "targets"))
    tr.add_argument("--out", required=True, type=arg(out_path, "--out"), help="model folder to write")
    tr.add_argument("--estimator", choices=("cnn", "posterior"), default="cnn",
                    help="cnn: point predictions (the paper); posterior: a conditional normalising flow giving "
                    "quantiles, the age-[Z/H] correlation and an out-of-domain flag (docs/posteriors.md)")
    tr.add_argument("--context-columns", nargs="+", metavar="COL",
                    help="posterior only: extra per-row context columns, e.g. redshift")
    tr.add_argument("--config", type=Path, help="TOML/YAML with SEDRegressorConfig (or SEDPosteriorConfig) settings")
    tr.add_argument("--max-epochs", type=arg(positive_int, "--max-epochs"),
                    help=DefaultHelp("cap on training epochs (default {default})", _REG, "train.max_epochs"))
    tr.add_argument("--seed", type=arg(seed, "--seed"), help=DefaultHelp("default {default}", _REG, "train.seed"))
    tr.add_argument("--val-scheme", choices=("auto", "A", "B", "random"), help="how validation rows are carved")
    tr.add_argument("--input-kind", choices=("mag", "colour", "flux"),
                    help=DefaultHelp("CNN inputs (default {default}; 'mag' = the paper's band magnitudes, needed by "
                                     "nan_policy 'mask')", _REG, "input_kind"))
    tr.add_argument("--device")
    tr.add_argument("--checkpoint", type=Path, help="checkpoint file (resumes if it exists)")
    tr.add_argument("--overwrite", action="store_true", help="replace an output photopop wrote earlier with other settings (never a folder it did not write)")
    tr.add_argument("--quiet", action="store_true")
    add_set_option(tr, "SEDRegressorConfig (SEDPosteriorConfig with --estimator posterior)")
    tr.set_defaults(func=run_train)

    pr = sub.add_parser("predict", help="apply a saved model to one table (the path of `photopop predict`, "
                        "one output table instead of a dataset)")
    pr.add_argument("--model", required=True, type=Path, help="model folder")
    pr.add_argument("--table", required=True, type=Path, help="SED-table folder or CSV/Parquet/FITS file")
    pr.add_argument("--out", required=True, type=arg(out_path, "--out"), help="output table (.parquet, .csv or .fits)")
    pr.add_argument("--batch-size", type=arg(positive_int, "--batch-size"), default=4096)
    pr.add_argument("--threads", type=arg(positive_int, "--threads"), metavar="N", help="torch CPU threads (default: torch's; 1 is "
                    "fastest when the cores are shared with other jobs)")
    pr.set_defaults(func=run_predict)

    tu = sub.add_parser("tune", help="Optuna hyperparameter search minimising the grouped validation loss")
    tu.add_argument("--table", required=True, type=Path)
    tu.add_argument("--target", choices=sorted(TARGET_CHOICES), default="log_age")
    tu.add_argument("--out", required=True, type=arg(out_path, "--out"), help="folder for study.db, best_params.toml")
    tu.add_argument("--config", type=Path, help="TOML/YAML with TuneConfig settings ([space], [train])")
    tu.add_argument("--n-trials", type=arg(positive_int, "--n-trials"))
    tu.add_argument("--timeout", type=arg(positive_float, "--timeout"), metavar="S")
    tu.add_argument("--split", help="grouping of the validation set: A, B (default) or random")
    tu.add_argument("--max-epochs", type=arg(positive_int, "--max-epochs"))
    tu.add_argument("--seed", type=arg(seed, "--seed"))
    tu.add_argument("--overwrite", action="store_true", help="replace an output photopop wrote earlier with other settings (never a folder it did not write)")
    tu.add_argument("--quiet", action="store_true")
    tu.set_defaults(func=run_tune)

    fg = sub.add_parser("figures", help="prediction-vs-truth and learning-curve figures of a cv folder")
    fg.add_argument("--cv", required=True, type=Path, help="folder written by `photopop sed cv`")
    fg.add_argument("--out", type=arg(out_path, "--out"), help="figure folder (default CV/figures)")
    fg.set_defaults(func=run_figures)
    un = sub.add_parser("uncertainty", help="heteroscedastic deep ensemble: per-spaxel sigmas, recalibrated "
                        "on held-out galaxies, coverage/PIT on test galaxies",
                        description="Hold out test galaxies and calibration galaxies (Set B style), train N "
                        "Gaussian-NLL networks, fit one sigma factor per target on the calibration galaxies, "
                        "and write predictions with sigma, metrics.json (coverage, PIT, z std), the ensemble "
                        "model folder and figures.")
    un.add_argument("--table", required=True, type=Path, help="SED-table folder or file")
    un.add_argument("--out", required=True, type=arg(out_path, "--out"), help="output folder")
    un.add_argument("--config", type=Path, help="TOML/YAML with UncertaintyConfig settings")
    un.add_argument("--target", choices=sorted(TARGET_CHOICES), default=None, help="default both")
    un.add_argument("--members", type=arg(positive_int, "--members"), metavar="N", help="ensemble members (default 4)")
    un.add_argument("--max-epochs", type=arg(positive_int, "--max-epochs"), metavar="N")
    un.add_argument("--patience", type=arg(positive_int, "--patience"), metavar="N")
    un.add_argument("--seed", type=arg(seed, "--seed"), metavar="S")
    un.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    un.add_argument("--no-figures", action="store_true")
    un.add_argument("--overwrite", action="store_true", help="replace an output photopop wrote earlier with other settings (never a folder it did not write)")
    un.add_argument("--quiet", action="store_true")
    un.set_defaults(func=run_uncertainty)
    ps = sub.add_parser("posterior-study", help="posterior flow on held-out galaxies: coverage, SBC, TARP, widths "
                        "and degeneracy beside the deep ensemble, and OOD flag rates",
                        description="Hold out test and calibration galaxies (Set B style), train an SEDPosterior and "
                        "a recalibrated deep ensemble, and write metrics.json, test_predictions.parquet, the "
                        "posterior model folder and figures (docs/posteriors.md).")
    ps.add_argument("--table", required=True, type=Path, help="SED-table folder or file")
    ps.add_argument("--out", required=True, type=arg(out_path, "--out"), help="output folder")
    ps.add_argument("--config", type=Path, help="TOML/YAML with PosteriorStudyConfig settings")
    ps.add_argument("--target", choices=sorted(TARGET_CHOICES), default=None, help="default both")
    ps.add_argument("--samples", type=arg(positive_int, "--samples"), metavar="N", help="draws per test object (default 1000)")
    ps.add_argument("--max-epochs", type=arg(positive_int, "--max-epochs"), metavar="N", help="cap on the posterior's epochs")
    ps.add_argument("--no-ensemble", action="store_true", help="skip the deep-ensemble comparison")
    ps.add_argument("--folds", type=arg(positive_int, "--folds"), metavar="K",
                    help="grouped cross-prediction: every galaxy a test galaxy once in K folds, pooled "
                    "(default 5, or the --config file's `folds`; 1 = one split with the ensemble comparison)")
    ps.add_argument("--seed", type=arg(seed, "--seed"), metavar="S")
    ps.add_argument("--overwrite", action="store_true", help="replace an output photopop wrote earlier with other settings (never a folder it did not write)")
    ps.add_argument("--quiet", action="store_true")
    ps.set_defaults(func=run_posterior_study_cmd)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def _replace(cfg: Any, **changes: Any) -> Any:
    return dataclasses.replace(cfg, **{k: v for k, v in changes.items() if v is not None})


def _say(quiet: bool):
    """Progress messages through the `photopop.cli.sed` logger (--quiet: none are made)."""
    return None if quiet else log.info


def run_cv(args: argparse.Namespace) -> int:
    from ..experiments.sed_cv import SEDCVConfig, run_sed_cv

    cfg = load_with_settings(SEDCVConfig, args.config, args.settings)
    cfg = _replace(cfg, split=args.split, seed=args.seed, input_kind=args.input_kind,
                   targets=TARGET_CHOICES[args.target] if args.target else None,
                   methods=tuple(args.methods) if args.methods else None,
                   joint_targets=True if args.joint else None)
    cfg.train = _replace(cfg.train, max_epochs=args.max_epochs, patience=args.patience, device=args.device)
    cfg.random_forest = _replace(cfg.random_forest, n_jobs=args.n_jobs)
    cfg.floor = _replace(cfg.floor, n_library=args.floor_library)
    res = run_sed_cv(args.table, cfg, args.out, quiet=args.quiet, progress=_say(args.quiet), overwrite=args.overwrite)
    if not args.no_figures:
        from ..report.sed_figures import make_cv_figures

        make_cv_figures(args.out)
    print(format_metrics(res.metrics, f"Set {cfg.split}"))
    from ..evaluation.comparisons import cnn_vs_forest, describe_cnn_vs_forest
    from ..experiments.sed_cv import method_inputs

    verdict = describe_cnn_vs_forest(cnn_vs_forest(res.metrics, res.predictions, cfg.targets), f"Set {cfg.split}",
                                     method_inputs(cfg))
    if verdict:
        print(verdict)
    return 0


def format_metrics(metrics: dict[str, Any], title: str = "") -> str:
    """A plain-text table: robust sigma / RMSE / bias per method and target."""
    lines = [title] if title else []
    lines.append(f"{'method':<14}{'target':<9}{'robust_sigma':>13}{'rmse':>9}{'bias':>9}{'n':>8}")
    for method, per in metrics.items():
        if method in ("pcc_residuals", "ratio_to_floor"):
            continue
        for t, s in per.items():
            lines.append(f"{method:<14}{t:<9}{s['robust_sigma']:>13.4f}{s['rmse']:>9.4f}{s['bias']:>9.4f}{s['n']:>8d}")
    if metrics.get("pcc_residuals"):
        lines.append("PCC(age, Z residuals): " + ", ".join(f"{m} {r:+.2f}" for m, r in metrics["pcc_residuals"].items()
                                                             if r is not None))
    if metrics.get("ratio_to_floor"):
        lines.append("robust sigma / information floor's: " + "; ".join(
            f"{m} " + ", ".join(f"{t} {r:.2f}" for t, r in per.items() if r is not None)
            for m, per in metrics["ratio_to_floor"].items()))
    return "\n".join(lines)


def run_train(args: argparse.Namespace) -> int:
    from ..datasets.sed_table import load_sed_table
    from ..training.sed_regressor import SEDRegressor, SEDRegressorConfig

    if args.estimator == "posterior":
        if args.input_kind:
            raise InputError("--input-kind applies to --estimator cnn (the posterior flow is fed band magnitudes)")
        return _train_posterior(args)
    if args.context_columns:
        raise InputError("--context-columns applies to --estimator posterior")
    cfg = load_with_settings(SEDRegressorConfig, args.config, args.settings)
    cfg = _replace(cfg, targets=TARGET_CHOICES[args.target] if args.target else None, val_scheme=args.val_scheme,
                   input_kind=args.input_kind)
    cfg.train = _replace(cfg.train, max_epochs=args.max_epochs, seed=args.seed, device=args.device)
    _check_train_outputs(args, "sed-model")
    table = load_sed_table(args.table)
    reg = SEDRegressor(cfg).fit(table, checkpoint_path=args.checkpoint, quiet=args.quiet)
    reg.save(args.out, overwrite=args.overwrite)
    r = reg.result_
    assert r is not None
    print(f"saved {args.out}: best epoch {r.best_epoch} of {r.epochs_run}, validation MSE "
          f"(standardised) {r.best_val_loss:.4g}" + (" (early stop)" if r.stopped_early else ""))
    return 0


def _check_train_outputs(args: argparse.Namespace, kind: str) -> None:
    """Refuse a bad --out or --checkpoint before any training time is spent (`photopop.outputs`)."""
    check_output(args.out, kind, overwrite=args.overwrite, inputs=[args.table, args.config])
    if args.checkpoint is not None:
        check_output_path(args.checkpoint, [args.table], what="checkpoint file", folder=False)
        if is_inside(resolved(args.checkpoint), resolved(args.out)):
            raise InputError(f"--checkpoint {args.checkpoint} lies inside --out {args.out}, which is replaced as a "
                             "whole when the model is saved; put the checkpoint elsewhere")


def _train_posterior(args: argparse.Namespace) -> int:
    from ..datasets.sed_table import load_sed_table
    from ..training.posterior_fit import SEDPosterior, SEDPosteriorConfig

    cfg = load_with_settings(SEDPosteriorConfig, args.config, args.settings)
    cfg = _replace(cfg, targets=TARGET_CHOICES[args.target] if args.target else None, val_scheme=args.val_scheme,
                   extra_columns=tuple(args.context_columns) if args.context_columns else None)
    cfg.train = _replace(cfg.train, max_epochs=args.max_epochs, seed=args.seed, device=args.device)
    _check_train_outputs(args, "sed-posterior")
    post = SEDPosterior(cfg).fit(load_sed_table(args.table), checkpoint_path=args.checkpoint, quiet=args.quiet)
    post.save(args.out, overwrite=args.overwrite)
    r = post.result_
    assert r is not None and post.model_ is not None
    print(f"saved {args.out}: best epoch {r.best_epoch} of {r.epochs_run}, validation -log p (standardised) "
          f"{r.best_val_loss:.4g}" + (" (early stop)" if r.stopped_early else "")
          + f"; OOD threshold {post.model_.ood_threshold:.3g} ({cfg.ood_quantile:g} quantile of held-out galaxies)")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """`sed predict`: `photopop predict`'s model loading, band check and chunk kernel on one validated
    SED table (`photopop.inference.predict_table`), written as one table; point columns get ``_cnn``."""
    import pandas as pd

    from ..datasets.sed_table import load_sed_table
    from ..inference.predictors import load_model
    from ..inference.run import predict_table
    from ..io import write_table_atomic

    check_output_path(args.out, [args.model, args.table], what="output table", folder=False)
    model = load_model(args.model, device="cpu", batch_size=args.batch_size, num_threads=args.threads)
    table = load_sed_table(args.table)
    pred = predict_table(model, table, what=str(args.table))
    ids = [c for c in ("galaxy_id", "spaxel_id") if c in table.spaxels.columns]
    if model.model.meta.get("kind") != "sed-posterior":
        pred = pred.add_suffix("_cnn")
    out = pd.concat([table.spaxels[ids].reset_index(drop=True), pred.reset_index(drop=True)], axis=1)
    write_table_atomic(out, args.out)
    print(f"wrote {len(out)} rows to {args.out}")
    return 0


def run_tune(args: argparse.Namespace) -> int:
    from ..datasets.sed_table import load_sed_table
    from ..training.tune import TuneConfig, tune

    cfg = load_config(TuneConfig, args.config) if args.config else TuneConfig()
    cfg = _replace(cfg, targets=TARGET_CHOICES[args.target], n_trials=args.n_trials, timeout_s=args.timeout,
                   split=args.split, seed=args.seed)
    cfg.train = _replace(cfg.train, max_epochs=args.max_epochs)
    res = tune(load_sed_table(args.table), cfg, args.out, quiet=args.quiet, overwrite=args.overwrite)
    print(f"best validation MSE {res.best_value:.4g} with {dumps_json(res.best_params, indent=None)}")
    print(f"wrote {args.out / 'best_params.toml'}")
    return 0


def run_figures(args: argparse.Namespace) -> int:
    from ..report.sed_figures import make_cv_figures

    if not (args.cv / "predictions.parquet").exists():
        raise InputError(f"{args.cv}: no predictions.parquet; is it a `photopop sed cv` folder?")
    for path in make_cv_figures(args.cv, args.out):
        print(path)
    return 0



def run_uncertainty(args: argparse.Namespace) -> int:
    from ..experiments.uncertainty import UncertaintyConfig, run_uncertainty_study

    cfg = load_config(UncertaintyConfig, args.config) if args.config else UncertaintyConfig()
    cfg = _replace(cfg, n_members=args.members, seed=args.seed,
                   targets=TARGET_CHOICES[args.target] if args.target else None,
                   figures=False if args.no_figures else None)
    cfg.train = _replace(cfg.train, max_epochs=args.max_epochs, patience=args.patience, device=args.device)
    m = run_uncertainty_study(args.table, cfg, args.out, quiet=args.quiet, progress=_say(args.quiet),
                              overwrite=args.overwrite)
    print(f"{'target':<9}{'cov68':>8}{'cov95':>8}{'cov68 raw':>11}{'cov95 raw':>11}{'scale':>8}{'z std':>8}{'n':>8}")
    for t, c in m["calibration"].items():
        print(f"{t:<9}{c['coverage_68']:>8.3f}{c['coverage_95']:>8.3f}{c['coverage_68_raw']:>11.3f}"
              f"{c['coverage_95_raw']:>11.3f}{c['sigma_scale']:>8.3f}{c['z_std']:>8.3f}{c['n']:>8d}")
    print(f"wrote {args.out}")
    return 0


#: folds of `photopop sed posterior-study` without --folds or a config file (the API's default is 1)
DEFAULT_STUDY_FOLDS = 5


def run_posterior_study_cmd(args: argparse.Namespace) -> int:
    from ..experiments.posterior import PosteriorStudyConfig, run_posterior_study

    cfg = load_config(PosteriorStudyConfig, args.config) if args.config else PosteriorStudyConfig()
    cfg = _replace(cfg, seed=args.seed, n_samples=args.samples, compare_ensemble=False if args.no_ensemble else None)
    cfg.folds = args.folds if args.folds is not None else (cfg.folds if args.config else DEFAULT_STUDY_FOLDS)
    cfg.posterior = _replace(cfg.posterior, targets=TARGET_CHOICES[args.target] if args.target else None)
    cfg.posterior.train = _replace(cfg.posterior.train, max_epochs=args.max_epochs)
    m = run_posterior_study(args.table, cfg, args.out, quiet=args.quiet, progress=_say(args.quiet),
                            overwrite=args.overwrite)
    print(format_posterior_metrics(m))
    print(f"wrote {args.out}")
    return 0


def format_posterior_metrics(m: dict[str, Any]) -> str:
    """Plain-text summary of a posterior study: coverage, widths at nominal coverage, degeneracy, OOD rates."""
    lines = [f"{'target':<9}{'cov68':>8}{'cov95':>8}{'SBC KS p':>10}{'width68 post':>14}{'width68 ens':>13}"]
    ens = m.get("width_68_at_nominal", {}).get("ensemble", {})
    for t, c in m["posterior"]["per_target"].items():
        j = list(m["posterior"]["per_target"]).index(t)
        w_e = ens.get(t)
        lines.append(f"{t:<9}{c['coverage_68']:>8.3f}{c['coverage_95']:>8.3f}{m['posterior']['sbc']['ks_pvalue'][j]:>10.2g}"
                     f"{c['width_68_at_nominal']:>14.3f}" + (f"{w_e:>13.3f}" if w_e is not None else f"{'-':>13}"))
    for t, c in m["posterior"]["per_target"].items() if "per_fold" in m else ():
        lines.append(f"{t}: pooled over {m['folds']} folds, cov68 {c['coverage_68']:.3f} +- {c['coverage_68_err']:.3f}, "
                     f"cov95 {c['coverage_95']:.3f} +- {c['coverage_95_err']:.3f} (galaxy bootstrap)"
                     + (f", +- {c['coverage_68_fold_se']:.3f} / {c['coverage_95_fold_se']:.3f} (fold spread / sqrt(K))"
                        if "coverage_68_fold_se" in c else "") + "; cov95 with one "
                     f"factor {c['coverage_95_one_factor']:.3f} +- {c['coverage_95_one_factor_err']:.3f}, with the "
                     f"95 % level's own {c['coverage_95_per_level']:.3f} +- {c['coverage_95_per_level_err']:.3f}")
    for f in m.get("per_fold", []):
        lines.append(f"fold {f['fold']}: " + ", ".join(f"{t} {v['68']:.3f}/{v['95']:.3f}" for t, v in f["coverage"].items())
                     + f", factors {', '.join(f'{x:.2f}' for x in f['spread_factors'])}, best epoch {f['best_epoch']}")
    tarp = m["posterior"]["tarp"]
    lines.append(f"TARP ATC {tarp['atc']:+.3f} (KS p {tarp['ks_pvalue']:.2g})")
    for meth, d in m.get("degeneracy", {}).items():
        lines.append(f"age-[Z/H] degeneracy, {meth}: mean per-object correlation {d['mean_object_corr']:+.2f}, "
                     f"residual correlation {d['residual_corr']:+.2f}")
    ood = m.get("ood", {})
    rates = [f"{k} {v['flag_rate']:.3f}" for k, v in ood.items() if isinstance(v, dict) and "flag_rate" in v]
    other = ood.get("other_library", {})
    if "other_library" in other:
        rates.append(f"other SSP library {other['other_library']['flag_rate']:.3f}")
    elif "skipped" in other:
        rates.append(f"other SSP library skipped ({other['skipped']})")
    lines.append("OOD flag rates: " + ", ".join(rates))
    return "\n".join(lines)
