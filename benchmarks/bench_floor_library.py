"""How the information floor of a noise-free mock depends on the prior library's size and on the kernel.

Usage: python benchmarks/bench_floor_library.py --table SED_TABLE [--sizes 100000 300000 1000000]
       [--kernels 0.01 0.003] [--out JSON]
SED_TABLE is a mock IFU table (e.g. `stages/survey-*/table` of a `reproduce liew-cain-2021 --quick` run).
Draws one prior library of max(--sizes) spaxels with the floor's own seed (`draw_prior_library`, as
`photopop sed cv` does) and scores the floor built on its first n entries (the library of size n: its
batches are drawn in the same order) with each `noise_free_error_mag` kernel, against the table's labels:
robust sigma per target and the median effective sample size of the likelihood weights. If the floor
still falls as n grows, a library of that size is not yet the Bayes estimate, and a method below it has
beaten the library's Monte-Carlo error, not the information limit. Writes
benchmarks/results/floor_library.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from photopop.datasets.sed_table import read_sed_table
from photopop.evaluation.metrics import robust_sigma
from photopop.io import write_json_atomic
from photopop.models.floor import FloorConfig, InformationFloor, survey_config_of
from photopop.simulate.library import SpaxelLibrary, draw_prior_library


def first_entries(lib: SpaxelLibrary, n: int) -> SpaxelLibrary:
    """The library's first n entries (a prior library of size n)."""
    z = lib.redshifts[:n] if np.ndim(lib.redshifts) else lib.redshifts
    return dataclasses.replace(lib, fluxes=lib.fluxes[:n], labels=lib.labels.iloc[:n].reset_index(drop=True),
                               redshifts=z)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, required=True, help="a mock IFU SED table folder")
    ap.add_argument("--targets", nargs="+", default=["log_age", "zh"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--kernels", type=float, nargs="+", default=[0.01, 0.003],
                    help="noise_free_error_mag values (mag) for bands with zero error")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "floor_library.json")
    args = ap.parse_args(argv)
    tab = read_sed_table(args.table)
    df = tab.spaxels.reset_index(drop=True)
    mags = tab.magnitudes("mag")
    errs = tab.magnitudes("magerr")
    survey = survey_config_of(tab)
    t0 = time.perf_counter()
    lib = draw_prior_library(survey, max(args.sizes), seed=FloorConfig().seed)
    t_draw = time.perf_counter() - t0
    print(f"library: {len(lib)} spaxels in {t_draw:.0f} s", flush=True)
    rows = []
    for n in sorted(args.sizes):
        sub = first_entries(lib, n)
        for kernel in args.kernels:
            t0 = time.perf_counter()
            floor = InformationFloor(FloorConfig(n_library=n, noise_free_error_mag=kernel), args.targets)
            res = floor.fit(sub, bands=tab.bands).predict(mags, errs)
            row = {"n_library": n, "noise_free_error_mag": kernel, "seconds_predict": time.perf_counter() - t0,
                   "median_ess": float(np.median(res["ess"]))}
            for t in args.targets:
                row[t] = robust_sigma(res[f"{t}_mean"].to_numpy() - df[t].to_numpy())
            rows.append(row)
            print(row, flush=True)
    write_json_atomic(args.out, {"benchmark": "floor_library", "table": str(args.table), "n_spaxels": len(df),
                                 "n_bands": len(tab.bands), "zero_error_fraction": float(np.mean(errs == 0)),
                                 "library_draw_seconds": t_draw, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
