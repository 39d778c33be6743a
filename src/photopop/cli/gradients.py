"""`photopop gradients`: per-galaxy radial gradients (bootstrap) of one or more value columns."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from ..evaluation.gradients import compare_gradients, radial_gradients
from ..io import dumps_json, read_table, write_table_atomic
from ..validate import arg, finite_float, non_negative_int, out_path, positive_float, positive_int, seed
from .evaluate import numeric_column


def register(subparsers: Any) -> None:
    """Add the `gradients` command."""
    p = subparsers.add_parser(
        "gradients",
        help="radial gradients per galaxy inside R_e with Monte Carlo subsampling errors",
        description="Fit value = a + b r inside --r-max for every galaxy with enough points "
        "(Liew-Cain et al. 2021, Sect. 3.3) and write one row per galaxy and value column.",
    )
    p.add_argument("table", type=Path, help="CSV, Parquet or FITS table with one row per spaxel")
    p.add_argument("--value", action="append", required=True, metavar="COL",
                   help="column to fit (repeat for several, e.g. log_age_true and log_age_cnn)")
    p.add_argument("--reference", metavar="COL",
                   help="also fit this column and report the scatter of (value - reference) gradients")
    p.add_argument("--radius-col", default="r_re", metavar="COL", help="deprojected radius column (default r_re)")
    p.add_argument("--group-col", default="galaxy_id", metavar="COL", help="galaxy id column (default galaxy_id)")
    p.add_argument("--radius-from", type=Path, metavar="TABLE",
                   help="take the radius column from this table (e.g. spaxels.parquet), joined on --join-on")
    p.add_argument("--join-on", default="galaxy_id,spaxel_id", metavar="A,B",
                   help="key columns for --radius-from (default galaxy_id,spaxel_id)")
    p.add_argument("--r-max", type=arg(positive_float, "--r-max"), default=1.0, help="fit points with r < r_max (default 1, i.e. R_e)")
    p.add_argument("--min-inside", type=arg(positive_int, "--min-inside"), default=25, help="minimum points inside r_max (default 25)")
    p.add_argument("--min-outside", type=arg(non_negative_int, "--min-outside"), default=1, help="minimum points beyond r_max (default 1)")
    p.add_argument("--n-boot", type=arg(positive_int, "--n-boot"), default=100, help="Monte Carlo subsamples (default 100)")
    p.add_argument("--frac", type=arg(finite_float, "--frac", minimum=0.0, maximum=1.0, strict_minimum=True), default=0.75, help="fraction of points per subsample (default 0.75)")
    p.add_argument("--seed", type=arg(seed, "--seed"), default=0, help="random seed (default 0)")
    p.add_argument("--out", type=arg(out_path, "--out"), required=True, help="output table (.parquet, .csv or .fits)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _with_radius(df: pd.DataFrame, args: argparse.Namespace) -> pd.DataFrame:
    keys = [k.strip() for k in args.join_on.split(",") if k.strip()]
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise InputError(f"{args.table}: missing join column(s) {missing}")
    rad = read_table(args.radius_from, columns=list(dict.fromkeys(keys + [args.radius_col])))
    if rad.duplicated(keys).any():
        raise InputError(f"{args.radius_from}: duplicate rows for the join keys {keys}")
    merged = df.drop(columns=[args.radius_col], errors="ignore").merge(rad, on=keys, how="left", validate="m:1")
    n_missing = int(merged[args.radius_col].isna().sum())
    if n_missing:
        raise InputError(f"{n_missing} rows of {args.table} have no {args.radius_col!r} in {args.radius_from} "
                         f"(joined on {keys})")
    return merged


def run(args: argparse.Namespace) -> int:
    """Command body."""
    from ..outputs import check_output_path

    check_output_path(args.out, [args.table, args.radius_from], what="output table", folder=False)
    values = list(dict.fromkeys(args.value + ([args.reference] if args.reference else [])))
    if args.radius_from is not None:
        df = _with_radius(read_table(args.table), args)
        absent = [c for c in values + [args.group_col] if c not in df.columns]
        if absent:
            raise InputError(f"{args.table}: missing column(s) {absent}")
    else:
        df = read_table(args.table, columns=list(dict.fromkeys([args.group_col, args.radius_col] + values)))
    r = numeric_column(df, args.radius_col, args.table)
    groups = df[args.group_col].to_numpy()
    kw = dict(r_max=args.r_max, min_inside=args.min_inside, min_outside=args.min_outside,
              n_boot=args.n_boot, frac=args.frac, seed=args.seed)
    fits = {c: radial_gradients(r, numeric_column(df, c, args.table), groups, **kw) for c in values}
    out = pd.concat([g.assign(column=c).reset_index() for c, g in fits.items()], ignore_index=True)
    out = out.rename(columns={"galaxy_id": args.group_col})
    out = out[[args.group_col, "column"] + [c for c in out.columns if c not in (args.group_col, "column")]]
    write_table_atomic(out, args.out)
    summary: dict[str, Any] = {
        "out": str(args.out),
        "galaxies": int(len(next(iter(fits.values())))),
        "selected": {c: int(g["selected"].sum()) for c, g in fits.items()},
        "median_slope": {c: float(g.loc[g["selected"], "slope_mean"].median()) if g["selected"].any() else None
                         for c, g in fits.items()},
    }
    if args.reference:
        summary["reference"] = args.reference
        summary["vs_reference"] = {c: compare_gradients(fits[args.reference], fits[c])
                                   for c in args.value if c != args.reference}
    if args.json:
        sys.stdout.write(dumps_json(summary) + "\n")
        return 0
    lines = [f"wrote {args.out}: {summary['galaxies']} galaxies x {len(values)} column(s)"]
    for c in values:
        med = summary["median_slope"][c]
        lines.append(f"  {c}: {summary['selected'][c]} galaxies selected, median gradient "
                     + ("n/a" if med is None else f"{med:.4g}"))
    for c, cmp in summary.get("vs_reference", {}).items():
        lines.append(f"  {c} - {args.reference}: robust sigma {cmp['robust_sigma']:.4g}, "
                     f"bias {cmp['bias']:.4g}, rmse {cmp['rmse']:.4g} over {cmp['n']} galaxies")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
