"""`photopop evaluate`: scatter, bias and outlier figures of a prediction column against a truth column."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..evaluation.metrics import binned_stats, scores
from ..io import dumps_json, read_table
from ..validate import MAX_BINS, arg, positive_float, positive_int


def register(subparsers: Any) -> None:
    """Add the `evaluate` command."""
    p = subparsers.add_parser(
        "evaluate",
        help="metrics (RMSE, NMAD/robust sigma, bias, outliers) of predictions against truth",
        description="Compare a prediction column with a truth column of a CSV, Parquet or FITS table. "
        "Residuals are pred - truth; rows with NaN in either column are excluded and counted.",
    )
    p.add_argument("table", type=Path, help="CSV, Parquet or FITS table")
    p.add_argument("--truth", required=True, metavar="COL", help="column with the true values")
    p.add_argument("--pred", required=True, metavar="COL", help="column with the predicted values")
    p.add_argument("--bins-by", metavar="COL", help="also give statistics in bins of this column "
                   "(default when --bins/--bin-edges is given: the truth column)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--bins", type=arg(positive_int, "--bins", maximum=MAX_BINS), metavar="N", help="N equal-width bins (default: Freedman-Diaconis rule)")
    group.add_argument("--bin-edges", metavar="A,B,C", help="explicit bin edges, comma separated")
    p.add_argument("--outlier-k", type=arg(positive_float, "--outlier-k"), default=3.0, metavar="K",
                   help="outliers are |residual| > K x NMAD (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def numeric_column(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    """Column as float64, or InputError naming the column and a value that is not a number."""
    s = df[col]
    if pd.api.types.is_bool_dtype(s) or not (pd.api.types.is_numeric_dtype(s) or s.dtype == object
                                              or pd.api.types.is_string_dtype(s)):
        raise InputError(f"{path}: column {col!r} is not numeric (dtype {s.dtype})")
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=float, na_value=np.nan)
    conv = pd.to_numeric(s, errors="coerce")
    bad = conv.isna() & s.notna() & (s.astype(str).str.strip() != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{path}: column {col!r} is not numeric (row {row} holds {s.iloc[row]!r})")
    return conv.to_numpy(dtype=float, na_value=np.nan)


def _parse_edges(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise InputError(f"--bin-edges must be comma-separated numbers, got {text!r}") from exc


def evaluate_table(
    path: Path, truth: str, pred: str, bins_by: str | None = None, bins: int | list[float] | None = None,
    binned: bool = False, outlier_k: float = 3.0,
) -> dict[str, Any]:
    """Figures the command prints, as a dict (the --json output)."""
    cols = list(dict.fromkeys([truth, pred] + ([bins_by] if bins_by else [])))
    df = read_table(path, columns=cols)
    t = numeric_column(df, truth, path)
    p = numeric_column(df, pred, path)
    if t.size == 0:
        raise InputError(f"{path}: table has no rows")
    if not (np.isfinite(t) & np.isfinite(p)).any():
        raise InputError(f"{path}: no row has finite values in both {truth!r} and {pred!r} "
                         f"(all {t.size} rows are NaN/inf in one of them)")
    out: dict[str, Any] = {"table": str(path), "truth": truth, "pred": pred, "residual": "pred - truth"}
    out.update(scores(t, p, outlier_k=outlier_k))
    out["bins_by"] = None
    out["bins"] = []
    if binned or bins_by:
        by_col = bins_by or truth
        by = t if by_col == truth else numeric_column(df, by_col, path)
        if not (np.isfinite(by) & np.isfinite(t) & np.isfinite(p)).any():
            raise InputError(f"{path}: no row has finite {by_col!r} together with finite truth and prediction")
        table = binned_stats(t, p, by=by, bins=bins)
        out["bins_by"] = by_col
        out["bins_rule"] = ("freedman-diaconis" if bins is None else "equal-width" if isinstance(bins, int)
                            else "edges")
        out["n_outside_bins"] = table.attrs["n_excluded"] - out["n_nan_excluded"]
        out["bins"] = table[["lo", "hi", "n", "median", "rmse", "nmad", "bias"]].to_dict(orient="records")
    return out


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "nan"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def format_text(res: dict[str, Any]) -> str:
    """Human-readable report of `evaluate_table` output."""
    lines = [
        f"table            {res['table']}",
        f"residual         {res['pred']} - {res['truth']}",
        f"n                {res['n']}" + (f"  ({res['n_nan_excluded']} rows with NaN excluded)"
                                          if res["n_nan_excluded"] else ""),
        f"rmse             {_fmt(res['rmse'])}",
        f"nmad             {_fmt(res['nmad'])}  (= robust sigma, 1.4826 x MAD)",
        f"bias (median)    {_fmt(res['bias'])}",
        f"bias (mean)      {_fmt(res['mean_bias'])}",
        f"outlier fraction {_fmt(res['outlier_fraction'])}  (|residual| > {res['outlier_k']:g} x NMAD)",
    ]
    if res["bins_by"]:
        extra = f", {res['n_outside_bins']} rows outside the bins or with NaN" if res["n_outside_bins"] else ""
        lines.append("")
        lines.append(f"in bins of {res['bins_by']} ({res['bins_rule']}, {len(res['bins'])} bins{extra}); "
                     f"median = running median of {res['pred']}")
        head = ("lo", "hi", "n", "median", "bias", "rmse", "nmad")
        lines.append("".join(f"{h:>11}" for h in head))
        for b in res["bins"]:
            lines.append("".join(f"{_fmt(b[h]):>11}" for h in head))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Command body."""
    bins: int | list[float] | None = None
    if args.bins is not None:
        if args.bins < 1:
            raise InputError(f"--bins must be >= 1, got {args.bins}")
        bins = args.bins
    elif args.bin_edges is not None:
        bins = _parse_edges(args.bin_edges)
    res = evaluate_table(args.table, args.truth, args.pred, bins_by=args.bins_by, bins=bins,
                         binned=bins is not None, outlier_k=args.outlier_k)
    sys.stdout.write((dumps_json(res) if args.json else format_text(res)) + "\n")
    return 0
