"""`photopop reproduce`: rerun a paper's experiments end to end and report them beside its numbers.

    photopop reproduce liew-cain-2021 [--config FILE] [--quick|--tiny|--diversity] --out DIR
    photopop reproduce wu-boada-2019 ...        (when the image helper's module is installed)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from ..io import dumps_json
from ..config import deep_update
from ..validate import arg, out_path, seed
from .settings import DefaultHelp, add_set_option, parse_settings

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the `reproduce` command group."""
    p = subparsers.add_parser("reproduce",
                              help="reproduce a paper's experiments (mock data, training, figures, report)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="reproduce_command", metavar="PAPER")
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])
    lc = sub.add_parser(
        "liew-cain-2021",
        help="Liew-Cain et al. 2021 (J-PAS SED CNN): Sets A/B, gradients, galaxy studies, model mismatch",
        description="Simulate the mock IFU survey, cross-predict ages and metallicities (Set A and Set B, CNN and "
        "baselines), measure radial gradients, run the galaxy-level studies (galaxy properties, morphology "
        "cross-training, training-set size, gradient against mass, SSP-library mismatch) and write "
        "DIR/metrics.json, DIR/figures/ and a self-contained DIR/report.html with the paper's numbers beside "
        "photopop's. Stages are cached in DIR/stages/ by the hash of their settings: a rerun skips finished "
        "stages and a changed setting reruns only what depends on it.")
    preset = lc.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true",
                        help="small survey, few epochs and repeats: minutes on 2 CPU cores")
    preset.add_argument("--tiny", action="store_true",
                        help="test-sized run (well under a minute); checks the pipeline only")
    preset.add_argument("--diversity", action="store_true",
                        help="the quick survey and Sets A/B, then the full diversity study (10 to 10^4 training "
                             "galaxies, Set B vs Set A vs the floor, fine-tuning): about half an hour on 2 "
                             "idle CPU cores, "
                             "resumable (rerun the same command)")
    lc.add_argument("--config", type=Path, metavar="FILE",
                    help="TOML/YAML with LiewCain2021Config settings; applied on top of the preset")
    lc.add_argument("--out", required=True, type=arg(out_path, "--out"), metavar="DIR", help="output folder")
    lc.add_argument("--seed", type=arg(seed, "--seed"),
                    help=DefaultHelp("seed of everything (survey, folds, networks, bootstrap; default {default})",
                                     "experiments.liew_cain_2021:LiewCain2021Config", "seed"))
    lc.add_argument("--mismatch-ssp", type=Path, metavar="FOLDER",
                    help="MILES-format SSP folder (e.g. MIUSCAT) for the model-mismatch study")
    lc.add_argument("--device", help="torch device for the CNNs: auto, cpu, cuda, cuda:N")
    lc.add_argument("--force", nargs="+", default=(), metavar="STAGE",
                    help="redo these stages even if cached (survey, cv_a, cv_b, gradients, properties, "
                    "mass_gradients, morphology, training_size, survey_alt, mismatch)")
    lc.add_argument("--no-report", action="store_true", help="write metrics.json only (no figures or HTML)")
    lc.add_argument("--overwrite", action="store_true", help="replace an output photopop wrote earlier with other settings (never a folder it did not write)")
    lc.add_argument("--quiet", action="store_true", help="no progress output")
    lc.add_argument("--json", action="store_true", help="print metrics.json's headline numbers as JSON")
    add_set_option(lc, "LiewCain2021Config")
    lc.set_defaults(func=run_liew_cain)
    try:
        from .reproduce_images import register_wu_boada
    except ModuleNotFoundError as exc:
        if exc.name != "photopop.cli.reproduce_images":
            raise
    else:
        register_wu_boada(sub)


def run_liew_cain(args: argparse.Namespace) -> int:
    """Command body of `photopop reproduce liew-cain-2021`."""
    from ..experiments.liew_cain_2021 import LiewCain2021Config, load_liew_cain_config, run_liew_cain_2021

    preset = "quick" if args.quick else "tiny" if args.tiny else "diversity" if args.diversity else None
    overrides: dict[str, Any] = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.mismatch_ssp is not None:
        overrides["mismatch"] = {"ssp_folder": str(args.mismatch_ssp)}
    if args.device:
        overrides["cv"] = {"train": {"device": args.device}}
    if args.settings:  # --set on top of --config; the dedicated options above win
        overrides = deep_update(parse_settings(args.settings, LiewCain2021Config), overrides)
    cfg = load_liew_cain_config(args.config, preset=preset, overrides=overrides)
    res = run_liew_cain_2021(cfg, args.out, progress=log.info, force=tuple(args.force), report=not args.no_report,
                             overwrite=args.overwrite)
    m = res.metrics
    if args.json:
        head = {s: m[s] for s in ("set_a", "set_b")}
        paper = {s: m["paper"][s] for s in ("set_a", "set_b")}
        sys.stdout.write(dumps_json({"out": str(args.out), **head, "paper": paper}) + "\n")
        return 0
    lines = [f"wrote {args.out}/metrics.json" + ("" if args.no_report else f" and {args.out}/report.html"),
             f"{'':8s}{'target':8s}{'robust σ':>18s}{'gradient σ':>18s}{'PCC':>16s}{'σ/floor':>9s}   (photopop / paper)"]
    for s, name in (("set_a", "Set A"), ("set_b", "Set B")):
        for t in ("log_age", "zh"):
            mine, pub = m[s][t], m["paper"][s][t]
            lines.append(f"{name:8s}{t:8s}{_pair(mine['robust_sigma'], pub['robust_sigma']):>18s}"
                         f"{_pair(mine['gradient_robust_sigma'], pub['gradient_robust_sigma']):>18s}"
                         f"{_pair(mine['pcc_residuals'], pub['pcc_residuals']):>16s}"
                         f"{_ratio(mine.get('ratio_to_floor')):>9s}")
    mm = m.get("model_mismatch", {})
    if "skipped" in mm:
        lines.append(f"model mismatch: {mm['skipped']}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _ratio(r: Any) -> str:
    return "n/a" if r is None else f"{r:.2f}"


def _pair(a: Any, b: Any) -> str:
    fa = "n/a" if a is None else f"{a:.3f}"
    return f"{fa} / {b:.2f}"
