"""`photopop simulate ...`: mock surveys.

* ``photopop simulate ifu --galaxies N --seed S --out DIR [--config FILE] [--all-bands | --bands LIST|SYSTEM]
  [--snr X] [--figures]``
  writes the mock IFU spaxel table (docs/mock-ifu.md) as an SED-table folder.
* ``photopop simulate images ...`` (registered by `photopop.cli.images`) writes a mock imaging survey.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

from ..validate import arg, finite_float, out_path, positive_int, seed
from .settings import DefaultHelp, add_set_option, load_with_settings

_IFU = "simulate.ifu:IFUSurveyConfig"


def register(subparsers: Any) -> None:
    """Add the `simulate` command group."""
    p = subparsers.add_parser("simulate", help="mock surveys (IFU spaxel table, imaging)",
                              description="Simulate mock surveys with known truth.")
    sub = p.add_subparsers(dest="simulate_command", metavar="KIND")
    ifu = sub.add_parser(
        "ifu", help="mock CALIFA-like IFU survey with J-PAS-like photometry per spaxel",
        description="Simulate the mock IFU survey of docs/mock-ifu.md (default: 190 galaxies, ~20,000 spaxels, "
                    "the 37 J-PAS bands of jpas-califa) and write an SED-table folder: spaxels.parquet, "
                    "galaxies.parquet, meta.json, config.toml.")
    ifu.add_argument("--galaxies", type=arg(positive_int, "--galaxies"), default=None, metavar="N",
                     help=DefaultHelp("number of galaxies (default {default})", _IFU, "sample.n_galaxies"))
    ifu.add_argument("--seed", type=arg(seed, "--seed"), default=None, metavar="S",
                     help=DefaultHelp("random seed (default {default})", _IFU, "seed"))
    ifu.add_argument("--out", type=arg(out_path, "--out"), required=True, metavar="DIR", help="output folder (written atomically; see --overwrite)")
    ifu.add_argument("--config", type=Path, default=None, metavar="FILE",
                     help="IFUSurveyConfig as TOML/YAML (e.g. a run's config.toml); options given here override it")
    ifu.add_argument("--all-bands", action="store_true", help="all 60 J-PAS bands instead of jpas-califa's 37")
    ifu.add_argument("--bands", metavar="LIST|SYSTEM",
                     help="comma-separated band names (e.g. the list `photopop bands --covered-by FILE` prints) or a "
                     "filter system (jpas-califa, sdss, ...) whose bands to simulate")
    ifu.add_argument("--snr", type=float, default=None, metavar="X",
                     help="multiply the photometric S/N of the J-PAS depth model by X ('inf' = no photometric noise)")
    ifu.add_argument("--label-noise", type=arg(finite_float, "--label-noise", minimum=0.0), default=None, metavar="DEX",
                     help=DefaultHelp("1-sigma noise of the log_age and zh labels (default {default}; 0 = exact)",
                                      _IFU, "noise.label_noise_age"))
    ifu.add_argument("--overwrite", action="store_true", help="replace an output photopop wrote earlier with other settings (never a folder it did not write)")
    ifu.add_argument("--figures", action="store_true",
                     help="also write figures/ (one spaxel's spectrum with its J-PAS SED; age and [Z/H] maps)")
    add_set_option(ifu, "IFUSurveyConfig")
    ifu.set_defaults(func=run_ifu)
    try:
        from .images import register_simulate_images
    except ImportError:  # the imaging simulator is optional
        pass
    else:
        register_simulate_images(sub)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def ifu_config_from_args(args: argparse.Namespace) -> Any:
    """The IFUSurveyConfig given by --config, --set and the command-line overrides (in that order)."""
    from ..simulate.ifu import IFUSurveyConfig

    cfg = load_with_settings(IFUSurveyConfig, args.config, getattr(args, "settings", ()))
    if args.seed is not None:
        cfg.seed = int(args.seed)
    if args.galaxies is not None:
        cfg.sample = dataclasses.replace(cfg.sample, n_galaxies=int(args.galaxies))
    if args.all_bands and getattr(args, "bands", None):
        from ..errors import InputError

        raise InputError("give --all-bands or --bands, not both")
    if args.all_bands:
        cfg.all_bands = True
        cfg.bands = ()
    if getattr(args, "bands", None):
        from ..photometry.bandlist import resolve_band_list

        cfg.filter_system, cfg.bands = resolve_band_list(args.bands, cfg.filter_system)
        cfg.all_bands = False
    if args.snr is not None:
        cfg.noise = dataclasses.replace(cfg.noise, snr_scale=float(args.snr))
    if args.label_noise is not None:
        cfg.noise = dataclasses.replace(cfg.noise, label_noise_age=float(args.label_noise),
                                        label_noise_zh=float(args.label_noise))
    cfg.check()
    return cfg


def run_ifu(args: argparse.Namespace) -> int:
    from ..datasets.sed_table import write_sed_table
    from ..simulate.ifu import simulate_ifu_survey

    from ..outputs import check_output

    cfg = ifu_config_from_args(args)
    check_output(args.out, "sed-table", overwrite=args.overwrite, inputs=[args.config])  # before simulating
    t0 = time.perf_counter()
    table = simulate_ifu_survey(cfg)
    write_sed_table(table, args.out, overwrite=args.overwrite)
    n_gal = len(table.galaxies) if table.galaxies is not None else 0
    print(f"wrote {args.out}: {len(table)} spaxels of {n_gal} galaxies, {len(table.bands)} bands "
          f"({time.perf_counter() - t0:.1f} s)")
    if args.figures:
        from ..report.ifu_figures import write_ifu_figures

        paths = write_ifu_figures(cfg, table, Path(args.out) / "figures")
        from ..outputs import record_files

        record_files(args.out, ["figures"])
        print("figures: " + ", ".join(str(p) for p in paths))
    return 0
