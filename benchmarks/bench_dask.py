"""Dask scale-out of `predict_catalog`: rows/s with 1 and 2 workers against one process.

    python benchmarks/bench_dask.py [--n 1000000] [--chunk-rows 100000] [--workers 1 2]

Uses the catalogue and untrained paper-shaped SED CNN of bench_predict_stream.py (34 bands). For each
worker count a LocalCluster of single-threaded worker processes is started (as ``--dask local:N``), warmed up (workers import
torch and load the model once, on a small file) and then timed on the whole catalogue; the
single-process run uses one torch thread. Cluster start-up is not in the timings. Writes
benchmarks/results/dask.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from bench_predict_stream import make_inputs


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--chunk-rows", type=int, default=100_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workdir", type=Path, help="keep the catalogue and model here (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "dask.json")
    args = ap.parse_args()

    import torch
    from photopop.inference import predict_catalog
    from photopop.inference.distributed import open_client

    root = args.workdir or Path(tempfile.mkdtemp(prefix="photopop-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    model_dir, cat = make_inputs(root, args.n)
    _, warm = make_inputs(root, 2_000, seed=2, name="warmup.parquet")
    kw = dict(chunk_rows=args.chunk_rows, id_columns="galaxy_id,spaxel_id", device="cpu")

    def fresh(name: str) -> Path:
        path = root / name
        shutil.rmtree(path, ignore_errors=True)
        return path

    torch.set_num_threads(1)
    predict_catalog(model_dir, warm, fresh("out-warm"), **kw)
    single = timed(lambda: predict_catalog(model_dir, cat, fresh("out-single"), **kw))
    results = {"single_process": {"seconds": single, "rows_per_s": args.n / single}}
    for n in args.workers:
        with open_client(f"local:{n}") as client:  # what `--dask local:N` starts
            predict_catalog(model_dir, warm, fresh("out-warm"), client=client, **kw)  # import + load once
            client.run(lambda: None)
            sec = timed(lambda: predict_catalog(model_dir, cat, fresh(f"out-dask-{n}"), client=client, **kw))
            results[f"dask_{n}_workers"] = {"seconds": sec, "rows_per_s": args.n / sec}
    first = results[f"dask_{args.workers[0]}_workers"]["rows_per_s"]
    out = {"n_rows": args.n, "chunk_rows": args.chunk_rows, "results": results,
           "speedup_vs_first_worker_count": {k: v["rows_per_s"] / first for k, v in results.items() if k.startswith("dask")},
           "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "load_average_1min": os.getloadavg()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for k, v in results.items():
        print(f"{k:>16}: {v['rows_per_s']:10.0f} rows/s  ({v['seconds']:.1f} s)")
    print(f"{os.cpu_count()} CPUs, load average {out['load_average_1min']:.1f}; wrote {args.out}")
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
