"""Peak memory and speed of streamed catalogue prediction (`photopop predict`) on 10^6 rows.

    python benchmarks/bench_predict_stream.py [--n 1000000] [--chunks 25000 100000] [--threads 1]

Writes a 10^6-row Parquet catalogue of the 34 J-PAS bands of Liew-Cain et al. (2021) in 100 000-row
row groups (generated block by block), saves an untrained SED CNN of the paper's shape with its
normalisation (speed and memory do not depend on the weights), then runs each mode in a fresh child
process and reads its peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``):

* ``baseline``  imports, loads the model, predicts 10 rows: the fixed cost of the process;
* ``stream``    `predict_catalog` with ``chunk_rows`` = each of ``--chunks`` (ids checked unique),
                and once more on a quarter of the rows (the peak should not depend on the rows);
* ``in-memory`` `pandas.read_parquet` of the whole file and one `SavedSEDModel.predict` call.

Streaming memory above the baseline should follow the chunk size, not the catalogue size. Writes
benchmarks/results/predict_stream.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_BANDS = 34


def make_inputs(root: Path, n: int, seed: int = 0, block: int = 100_000,
                name: str = "catalog.parquet") -> tuple[Path, Path]:
    """An untrained paper-shaped SED CNN folder and an n-row Parquet catalogue (memory-bounded writer)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from photopop.models.normalise import Standardiser
    from photopop.models.saved import SavedSEDModel
    from photopop.models.sed_cnn import SEDCNN, SEDCNNConfig

    bands = [f"J{i:04d}" for i in range(N_BANDS)]
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    slope = np.linspace(-1.0, 1.0, N_BANDS)
    model_dir, cat = root / "model", root / name
    if not model_dir.exists():
        sample = 20 + rng.normal(0, 1, (10_000, 1)) + rng.normal(0, 0.3, (10_000, 1)) * slope
        SavedSEDModel(SEDCNN(N_BANDS, 2, SEDCNNConfig()).eval(), Standardiser.fit(sample, bands),
                      Standardiser(["log_age", "zh"], np.array([9.5, -0.3]), np.array([0.5, 0.3])),
                      {"bands": bands, "filter_system": "bench", "targets": ["log_age", "zh"],
                       "input_kind": "mag"}).save(model_dir)
    if not cat.exists():
        writer = None
        for start in range(0, n, block):
            m = min(block, n - start)
            mags = 20 + rng.normal(0, 1, (m, 1)) + rng.normal(0, 0.3, (m, 1)) * slope + rng.normal(0, 0.03, (m, N_BANDS))
            rows = np.arange(start, start + m)
            cols = {"galaxy_id": rows // 1000, "spaxel_id": rows % 1000}
            cols.update({f"mag_{b}": mags[:, i] for i, b in enumerate(bands)})
            table = pa.table(cols)
            if writer is None:
                table = table.replace_schema_metadata({b"filter_system": b"bench"})
                writer = pq.ParquetWriter(cat, table.schema)
            writer.write_table(table.cast(writer.schema), row_group_size=block)
        writer.close()
    return model_dir, cat


def child(mode: str, model_dir: str, cat: str, out: str, chunk: int, threads: int) -> dict:
    """One measured run (in its own process)."""
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    if mode == "baseline":
        from photopop.inference import load_model

        load_model(model_dir, device="cpu").predict_frame(_ten_rows(cat))
        rows = 10
    elif mode == "stream":
        from photopop.inference import predict_catalog

        rep = predict_catalog(model_dir, cat, out, chunk_rows=chunk, id_columns="galaxy_id,spaxel_id", device="cpu")
        rows = rep.n_rows_predicted
    else:
        import pandas as pd

        from photopop.models.saved import SavedSEDModel

        df = pd.read_parquet(cat)
        pred = SavedSEDModel.load(model_dir).predict(df)
        rows = len(pred)
    seconds = time.perf_counter() - t0
    return {"mode": mode, "chunk_rows": chunk, "rows": rows, "seconds": seconds, "rows_per_s": rows / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _ten_rows(cat: str):
    import pyarrow.parquet as pq

    return next(pq.ParquetFile(cat).iter_batches(batch_size=10)).to_pandas()


def run_child(args: list[str]) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--chunks", type=int, nargs="+", default=[25_000, 100_000])
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the measured process")
    ap.add_argument("--workdir", type=Path, help="keep the catalogue and model here (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "predict_stream.json")
    ap.add_argument("--child", nargs=6, metavar=("MODE", "MODEL", "CAT", "OUT", "CHUNK", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, model_dir, cat, out, chunk, threads = args.child
        print(json.dumps(child(mode, model_dir, cat, out, int(chunk), int(threads))))
        return
    root = args.workdir or Path(tempfile.mkdtemp(prefix="photopop-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model_dir, cat = make_inputs(root, args.n)
    gen_s = time.perf_counter() - t0
    _, small = make_inputs(root, args.n // 4, seed=1, name="catalog-quarter.parquet")
    common = [str(model_dir), str(cat)]
    runs = [run_child(["baseline", *common, "-", "0", str(args.threads)])]
    for chunk in args.chunks:
        out = root / f"out-{chunk}"
        shutil.rmtree(out, ignore_errors=True)
        runs.append(run_child(["stream", *common, str(out), str(chunk), str(args.threads)]))
    out = root / "out-quarter"
    shutil.rmtree(out, ignore_errors=True)  # same chunk, a quarter of the rows: the peak should not change
    runs.append(run_child(["stream", str(model_dir), str(small), str(out), str(args.chunks[-1]), str(args.threads)]))
    runs.append(run_child(["in-memory", *common, "-", "0", str(args.threads)]))
    base = runs[0]["peak_rss_mb"]
    for r in runs:
        r["above_baseline_mb"] = r["peak_rss_mb"] - base
    result = {"n_rows": args.n, "n_bands": N_BANDS, "catalog_mb": cat.stat().st_size / 2**20,
              "mag_columns_in_memory_mb": args.n * N_BANDS * 8 / 2**20, "generate_s": gen_s, "threads": args.threads,
              "runs": runs, "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "load_average_1min": os.getloadavg()[0], "python": platform.python_version()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.n} rows x {N_BANDS} bands ({result['catalog_mb']:.0f} MB Parquet; "
          f"{result['mag_columns_in_memory_mb']:.0f} MB of magnitudes as float64)")
    for r in runs:
        print(f"{r['mode']:>9} rows={r['rows']:>8} chunk={r['chunk_rows']:>7}  peak RSS {r['peak_rss_mb']:7.0f} MB "
              f"(+{r['above_baseline_mb']:5.0f} MB)  {r['rows_per_s']:10.0f} rows/s")
    print(f"load average {result['load_average_1min']:.1f}; wrote {args.out}")
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
