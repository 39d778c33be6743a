"""`photopop reproduce wu-boada-2019`: the image method of Wu & Boada (2019), end to end.

    photopop reproduce wu-boada-2019 [--quick|--tiny] [--config FILE] [--data DIR] --out DIR

`register_wu_boada(reproduce_subparsers)` adds the sub-command to the `reproduce` group
(`photopop.cli.reproduce`).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import dumps_json
from ..validate import arg, out_path, positive_int, seed

STAGES = ("survey", "cnn", "baselines", "mass", "res<N>")


def register_wu_boada(subparsers: Any) -> argparse.ArgumentParser:
    """Add `wu-boada-2019` to a `reproduce` sub-parser group; returns its parser."""
    p = subparsers.add_parser(
        "wu-boada-2019",
        help="Wu & Boada 2019 (metallicity from gri images with a ResNet): baselines, resolution, MZR",
        description="Simulate the mock imaging survey (or read --data), train the ResNet regressor on 12+log(O/H) "
        "with the paper's recipe (frozen body, discriminative learning rates, one-cycle, D4 augmentation and "
        "test-time augmentation), compare with random forests on gri and ugriz magnitudes and the constant mean, "
        "retrain at 64..1 pixel resolution, train on stellar mass and convert with the Tremonti et al. (2004) "
        "MZR, and measure the MZR of the predictions. Writes DIR/metrics.json, DIR/predictions.parquet, "
        "DIR/figures/ and a self-contained DIR/report.html beside the paper's numbers. Stages are cached in "
        "DIR/stages/ by the hash of their settings; a rerun skips finished stages.")
    preset = p.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true",
                        help="2000 galaxies, 32 px, ResNet-18, 8 epochs: minutes on 2 CPU cores")
    preset.add_argument("--tiny", action="store_true", help="test-sized run; checks the pipeline only")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="TOML/YAML with WuBoada2019Config settings, applied on top of the preset")
    p.add_argument("--out", required=True, type=arg(out_path, "--out"), metavar="DIR", help="output folder")
    p.add_argument("--data", type=Path, metavar="DIR", help="use this ImageSet folder instead of simulating one")
    p.add_argument("--use", choices=("rgb", "images"),
                   help="CNN inputs: 'rgb' = 8-bit asinh-stretched irg JPEG composites, the paper's inputs (default); "
                   "'images' = linear calibrated g, r, i fluxes")
    p.add_argument("--seed", type=arg(seed, "--seed"), help="seed of the survey, the split and the networks")
    p.add_argument("--arch", choices=("resnet18", "resnet34", "resnet50"), help="ResNet depth")
    p.add_argument("--weights", metavar="PATH",
                   help="pretrained weights: 'auto' (ImageNet if cached/downloadable, else random), 'imagenet', "
                   "'none', or a torchvision ResNet state-dict file")
    p.add_argument("--epochs", type=arg(positive_int, "--epochs"), help="training epochs (all stages)")
    p.add_argument("--device", help="torch device: auto, cpu, cuda, cuda:N")
    p.add_argument("--force", nargs="+", default=(), metavar="STAGE",
                   help=f"redo these stages even if cached ({', '.join(STAGES)})")
    p.add_argument("--no-report", action="store_true", help="write metrics.json only (no figures or HTML)")
    p.add_argument("--overwrite", action="store_true", help="replace an output photopop wrote earlier with other settings (never a folder it did not write)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print the headline numbers as JSON")
    p.set_defaults(func=run_wu_boada)
    return p


def run_wu_boada(args: argparse.Namespace) -> int:
    """Command body of `photopop reproduce wu-boada-2019`."""
    from ..experiments.wu_boada_2019 import load_wu_boada_config, run_wu_boada_2019

    preset = "quick" if args.quick else "tiny" if args.tiny else None
    overrides: dict[str, Any] = {}
    if args.data is not None:
        overrides["data"] = str(args.data)
    if args.use is not None:
        overrides["use"] = args.use
    if args.seed is not None:
        overrides.update({"seed": args.seed, "survey": {"seed": args.seed}, "fit": {"seed": args.seed}})
    model: dict[str, Any] = {}
    if args.arch:
        model["arch"] = args.arch
    if args.weights:
        model["pretrained"] = args.weights
    if model:
        overrides["model"] = model
    fit = dict(overrides.get("fit", {}))
    if args.device:
        fit["device"] = args.device
    if args.epochs is not None:
        if args.epochs < 1:
            raise InputError(f"--epochs must be >= 1, got {args.epochs}")
        base = load_wu_boada_config(args.config, preset=preset, overrides=overrides)
        fit["epochs"] = args.epochs
        fit["freeze_epochs"] = min(base.fit.freeze_epochs, args.epochs)
    if fit:
        overrides["fit"] = fit
    cfg = load_wu_boada_config(args.config, preset=preset, overrides=overrides)
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    old_format = warnings.formatwarning
    warnings.formatwarning = lambda message, category, *a, **k: f"photopop: warning: {message}\n"  # one line
    try:
        res = run_wu_boada_2019(cfg, args.out, progress=say, force=tuple(args.force), report=not args.no_report,
                                overwrite=args.overwrite)
    finally:
        warnings.formatwarning = old_format
    m = res.metrics
    keys = ("cnn", "rf_gri", "rf_ugriz", "constant", "mass_route", "rf_latent")
    if args.json:
        head = {"out": str(args.out), **{k: m[k] for k in keys if k in m},
                "intrinsic_scatter": m["intrinsic_scatter"], "floor": m.get("floor"), "resolution": m["resolution"]}
        sys.stdout.write(dumps_json(head) + "\n")
        return 0
    paper = m["paper"]
    lines = [f"wrote {args.out}/metrics.json" + ("" if args.no_report else f" and {args.out}/report.html"),
             f"{'method':12s}{'RMSE':>8s}{'NMAD':>8s}{'paper RMSE':>12s}"]
    for k in keys:
        if k in m:
            pr = paper.get(k, {}).get("rmse")
            lines.append(f"{k:12s}{m[k]['rmse']:8.3f}{m[k]['nmad']:8.3f}{'' if pr is None else f'{pr:.3f}':>12s}")
    if m.get("intrinsic_scatter"):
        lines.append(f"intrinsic scatter of the mock {m['intrinsic_scatter']:.3f} dex; "
                     f"CNN RMSE / intrinsic = {m['cnn_over_intrinsic']:.2f}")
    fl = m.get("floor") or {}
    if fl.get("cnn_over_rf_gri") is not None:
        lines.append(f"CNN RMSE / RF(gri) RMSE = {fl['cnn_over_rf_gri']:.2f} (paper {fl['paper_cnn_over_rf_gri']:.2f})")
    lines.append("resolution (px: RMSE/NMAD" + (", ± std over seeds" if any(r.get("rmse_std") for r in m["resolution"])
                                                else "") + "): " + ", ".join(
        f"{r['pixels']}: {r['rmse']:.3f}/{r['nmad']:.3f}"
        + (f" ± {r['rmse_std']:.3f}" if r.get("rmse_std") is not None else "") for r in m["resolution"]))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
