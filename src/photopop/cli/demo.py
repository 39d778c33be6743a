"""`photopop demo`: the main job on the embedded default (what `make demo` runs)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from ..io import dumps_json
from ..validate import arg, out_path, seed
from .settings import DefaultHelp, add_set_option, parse_settings

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the `demo` command."""
    p = subparsers.add_parser(
        "demo", help="run both methods end to end on small mock surveys and write a report",
        description="Simulate a small mock IFU survey and a small mock imaging survey, run the SED "
        "cross-prediction in Sets A and B with baselines and gradients, a small image model with its "
        "baselines, per-spaxel uncertainties with calibration, and write DIR/report.html and DIR/metrics.json. "
        "Stages are cached: a rerun reuses finished work.")
    p.add_argument("--out", type=arg(out_path, "--out"), default=Path("runs/demo"), metavar="DIR", help="output folder (default runs/demo)")
    p.add_argument("--config", type=Path, metavar="FILE", help="DemoConfig settings as TOML/YAML, merged onto the preset (e.g. a run's config.toml)")
    p.add_argument("--seed", type=arg(seed, "--seed"),
                   help=DefaultHelp("seed of everything (default {default})", "experiments.demo:DemoConfig", "seed"))
    p.add_argument("--tiny", action="store_true", help="test-sized run (under a minute); checks the pipeline only")
    p.add_argument("--no-images", action="store_true", help="skip the image method")
    p.add_argument("--no-uncertainty", action="store_true", help="skip the uncertainty study")
    p.add_argument("--overwrite", action="store_true", help="replace an output photopop wrote earlier with other settings (never a folder it did not write)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print the headline numbers as JSON")
    add_set_option(p, "DemoConfig")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments.demo import DemoConfig, headline, load_demo_config, run_demo

    cfg = load_demo_config(args.config, tiny=args.tiny, overrides=parse_settings(args.settings, DemoConfig))
    if args.seed is not None:
        cfg.seed = int(args.seed)
    if args.no_images:
        cfg.run_images = False
    if args.no_uncertainty:
        cfg.run_uncertainty = False
    t0 = time.perf_counter()

    def say(msg: str) -> None:  # --quiet raises the log level (cli.main.configure_logging)
        log.info("[%7.1f s] %s", time.perf_counter() - t0, msg)

    result = run_demo(cfg, args.out, progress=say, overwrite=args.overwrite)
    heads = headline(result.metrics)
    if args.json:
        print(dumps_json(heads))
    else:
        for k, v in heads.items():
            print(f"{k:45s} {v if v is None else f'{v:.4f}'}")
        print(f"report: {result.out_dir / 'report.html'}")
    return 0
