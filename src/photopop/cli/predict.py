"""`photopop predict`: apply a saved model to survey catalogues or image cubes, streaming and resumable.

    photopop predict MODEL INPUT... --out DIR [--chunk-rows N] [--id-columns galaxy_id,spaxel_id]
                     [--dask ADDRESS|local[:N]] [--device D]

Catalogues (Parquet files or dataset folders, SED-table folders, FITS tables, CSV) become a Parquet
dataset in DIR: part-<input>-<chunk>.parquet files, _manifest.json and _SUCCESS when complete.
Image cubes (FITS, see docs/inference.md) become DIR/<cube>_maps.fits with one WCS-carrying map per
target. Rerunning the same command resumes: finished parts are kept, nothing is duplicated.

Posterior models (`photopop sed train --estimator posterior`) give per target <t>_p50, <t>_p16, <t>_p84,
<t>_p025, <t>_p975, plus corr_log_age_zh, ood_score and ood_flag (1 = unlike the training SEDs: do not
trust that row); --samples N also writes N draws per object to a second dataset (--samples-out).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..validate import arg, out_path, positive_int


def register(subparsers: Any) -> None:
    """Add the `predict` command."""
    p = subparsers.add_parser("predict", help="apply a saved model to catalogues or image cubes (streamed, resumable)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, metavar="MODEL", help="model folder (e.g. from `photopop sed train`)")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                   help="catalogue files/folders (.parquet, .fits, .csv) or FITS image cubes")
    p.add_argument("--out", required=True, type=arg(out_path, "--out"), metavar="DIR", help="output folder (Parquet dataset or maps)")
    p.add_argument("--chunk-rows", type=arg(positive_int, "--chunk-rows"), default=100_000, metavar="N",
                   help="rows (catalogues) or pixels (cubes) per chunk: the memory bound (default 100000)")
    p.add_argument("--id-columns", metavar="A,B", help="input columns copied to the output and checked unique")
    p.add_argument("--dask", metavar="ADDRESS", help="scheduler address, or local[:N] for a local cluster of N workers")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--batch-size", type=arg(positive_int, "--batch-size"), default=4096, help="rows per network call")
    p.add_argument("--threads", type=arg(positive_int, "--threads"), metavar="N", help="torch CPU threads per network "
                   "call (default: torch's; 1 is fastest when the cores are shared with other jobs)")
    p.add_argument("--filter-system", metavar="NAME",
                   help="filter system of inputs that do not declare one (checked against the model's)")
    p.add_argument("--on-nan", choices=("nan", "refuse"), default="nan",
                   help="rows/pixels with NaN magnitudes: NaN predictions (default) or an error")
    p.add_argument("--ignore-extra-bands", action="store_true",
                   help="accept inputs with more bands than the model (the extra ones are not used)")
    p.add_argument("--overwrite", action="store_true", help="replace the output of a different earlier run in --out")
    p.add_argument("--draws", type=int, metavar="N", help="posterior models: draws per object behind the "
                   "quantiles (default: the model's, 1000)")
    p.add_argument("--seed", type=int, default=0, help="posterior models: seed of the draws (default 0)")
    p.add_argument("--samples", type=int, metavar="N", help="posterior models: also write N draws per object "
                   "as a separate Parquet dataset (columns <target>_s<k>)")
    p.add_argument("--samples-out", type=Path, metavar="DIR", help="folder of the --samples dataset "
                   "(default: DIR_samples next to --out)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..inference.predictors import load_model
    from ..inference.run import predict_inputs
    from ..models.folder_checks import read_meta
    from ..models.registry import model_kind
    from ..outputs import check_output_path

    check_output_path(args.out, [args.model, *args.inputs])  # before loading anything
    posterior = args.model.is_dir() and model_kind(read_meta(args.model)) == "sed-posterior"
    if not posterior and (args.draws or args.samples or args.samples_out or args.seed):
        raise InputError("--draws, --seed, --samples and --samples-out apply to posterior models "
                         "(kind 'sed-posterior')")
    if args.samples_out and not args.samples:
        raise InputError("--samples-out needs --samples N")
    options = {"n_samples": args.draws, "seed": args.seed} if posterior else {}
    model = load_model(args.model, device=args.device, batch_size=args.batch_size, num_threads=args.threads,
                       **options)
    report = predict_inputs(model, args.inputs, args.out, chunk_rows=args.chunk_rows, id_columns=args.id_columns,
                            client=args.dask, device=args.device, batch_size=args.batch_size,
                            filter_system=args.filter_system, on_nan=args.on_nan,
                            ignore_extra_bands=args.ignore_extra_bands, overwrite=args.overwrite,
                            progress=not args.quiet)
    print(report.summary())
    if report.kind == "cubes":
        for path in report.maps:
            print(path)
    else:
        print(f"wrote {args.out} (Parquet dataset: {', '.join(report.columns)})")
    if args.samples:
        from ..inference.posterior import predict_samples

        out = args.samples_out or args.out.with_name(args.out.name + "_samples")
        rep = predict_samples(model.model, args.inputs, out, args.samples, seed=args.seed, device=args.device,
                              batch_size=args.batch_size, id_columns=args.id_columns, client=args.dask,
                              filter_system=args.filter_system, on_nan=args.on_nan,
                              ignore_extra_bands=args.ignore_extra_bands, overwrite=args.overwrite,
                              progress=not args.quiet)
        print(rep.summary())
        print(f"wrote {out} ({args.samples} draws per object: columns <target>_s0000 ...)")
    return 0
