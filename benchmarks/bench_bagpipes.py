"""A real Bayesian SED fit for reference: bagpipes + nautilus on a seeded random subset of mock spaxels.

    python benchmarks/bench_bagpipes.py [--table MOCK] [--galaxies 20] [--n 20] [--n-live 200] [--seed 0]
                                        [--cv CV_FOLDER] [--work runs/bench-bagpipes]

The model, the label computation and the numbers are those of
`photopop.experiments.bagpipes_reference.run_bagpipes_reference` (see its docstring). Without --table a
default mock of --galaxies galaxies is simulated. With --cv (a `photopop sed cv` folder of the same table)
the CNN's, forest's, template fits' and floor's robust sigma on the same spaxels are written beside.
Every fitted spaxel is checkpointed in --work, so a killed run resumes (rerun the same command).
Writes benchmarks/results/bagpipes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

from photopop.datasets.sed_table import read_sed_table
from photopop.experiments.bagpipes_reference import (
    BagpipesSettings,
    run_bagpipes_reference,
)
from photopop.io import read_table, write_json_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", type=Path, help="mock SED table (default: a fresh default mock of --galaxies)")
    ap.add_argument("--galaxies", type=int, default=20)
    ap.add_argument("--n", type=int, default=20, help="spaxels fitted (seeded random subset)")
    ap.add_argument("--n-live", type=int, default=200)
    ap.add_argument("--n-networks", type=int, default=2)
    ap.add_argument("--n-label-samples", type=int, default=100, help="posterior samples turned into labels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cv", type=Path, help="a `photopop sed cv` folder of the same table")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bagpipes.json")
    ap.add_argument("--work", type=Path, default=Path("runs") / "bench-bagpipes",
                    help="per-spaxel checkpoints: a killed run resumes there (default runs/bench-bagpipes)")
    args = ap.parse_args()
    if args.table:
        tab = read_sed_table(args.table)
    else:
        from photopop.simulate.geometry import GalaxySampleConfig
        from photopop.simulate.ifu import IFUSurveyConfig, simulate_ifu_survey

        tab = simulate_ifu_survey(IFUSurveyConfig(sample=GalaxySampleConfig(n_galaxies=args.galaxies)))
    pred, methods = None, ()
    if args.cv:
        pred = read_table(args.cv / "predictions.parquet")
        methods = tuple(k for k in json.loads((args.cv / "metrics.json").read_text())
                        if k not in ("pcc_residuals", "ratio_to_floor"))
    settings = BagpipesSettings(n_spaxels=args.n, n_live=args.n_live, n_networks=args.n_networks,
                                n_label_samples=args.n_label_samples, seed=args.seed)
    res = run_bagpipes_reference(tab, settings, pred, methods, progress=print, work_dir=args.work)
    res["machine"] = {"cpu": platform.processor() or platform.machine(), "load_avg_1min": os.getloadavg()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, res)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
