"""Throughput of posterior prediction: 1000 draws per object, quantiles, correlation and OOD score.

    python benchmarks/bench_posterior.py [--n 4000] [--samples 1000] [--threads N] [--batch-size 1024]

What is timed is `SavedPosterior.predict` on a DataFrame of magnitudes and errors, i.e. everything
`photopop predict` does per chunk: features and normalisation, the CNN embedding, the flow's per-object
parameters, `--samples` draws per object, the five quantiles and the age-[Z/H] correlation per target,
the recalibration (spread factors applied to the quantiles) and the Mahalanobis OOD score. The network has the default `PosteriorNetConfig` (34 J-PAS bands, 2
targets) with random weights (the speed does not depend on them). Timed on 1 thread and on `--threads`
(default: all cores), best of three runs; CUDA as well when a GPU is present. The machine may be
shared with other jobs, so the load average is recorded with the numbers. Writes
benchmarks/results/posterior.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from photopop.models.normalise import Standardiser
from photopop.models.posterior import PosteriorNet
from photopop.models.posterior_model import SavedPosterior


def best_of(fn, repeats: int = 3) -> tuple[float, float]:
    """(shortest wall time, shortest CPU time of this process) of `repeats` calls.

    On a machine shared with other jobs the wall time includes waiting for a core; the CPU time is
    what the work costs when it has one (with one thread, objects per CPU-second = objects per second
    on a free core).
    """
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def make_model(bands: list[str], rng: np.random.Generator) -> tuple[SavedPosterior, pd.DataFrame]:
    nb = len(bands)
    torch.manual_seed(0)
    net = PosteriorNet(nb, 2, nb, 0).eval()
    mags = 21.0 + rng.normal(0, 1, (1, nb)) + rng.normal(0, 0.8, (1, 1)) + rng.normal(0, 0.05, (20000, nb))
    err = np.full_like(mags, 0.05) * 10 ** rng.normal(0, 0.1, mags.shape)
    norms = {"input": Standardiser.fit(mags, bands), "target": Standardiser(["log_age", "zh"], np.array([9.5, -0.2]),
                                                                             np.array([0.4, 0.3])),
             "magerr": Standardiser.fit(np.log10(err), [f"log_magerr_{b}" for b in bands]), "extra": None}
    width = 2 * nb + 32
    meta = {"bands": bands, "targets": ["log_age", "zh"], "filter_system": "jpas", "use_magerr": True,
            "nan_policy": "refuse", "input_kind": "mag", "ood_threshold": 10.0, "ood_quantile": 0.99, "n_samples": 1000,
            "spread_factors": {"log_age": 1.2, "zh": 1.1}}  # recalibration applied as for a trained model
    ood = {"mean": np.zeros(width), "precision": np.eye(width), "principal": np.eye(width)[:, :4], "scales": [1.0, 1.0]}
    model = SavedPosterior(net, norms, ood, meta)  # the two-part OOD score, as a trained model has
    df = pd.DataFrame({**{f"mag_{b}": mags[:, j] for j, b in enumerate(bands)},
                       **{f"magerr_{b}": err[:, j] for j, b in enumerate(bands)}})
    return model, df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4000, help="objects per timed call")
    ap.add_argument("--samples", type=int, default=1000, help="draws per object")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of the all-threads run")
    ap.add_argument("--batch-size", type=int, default=1024, help="objects per flow call")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "posterior.json")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    from photopop.photometry.filters import load_filter_system

    bands = list(load_filter_system("jpas-califa").bands)
    model, df = make_model(bands, rng)
    frame = df.iloc[: args.n]
    result: dict[str, object] = {"samples_per_object": args.samples, "n_objects": args.n, "batch_size": args.batch_size,
                                 "n_bands": len(bands), "n_parameters": model.network.n_parameters(),
                                 "load_average_before": list(os.getloadavg()), "cpu_count": os.cpu_count(),
                                 "torch": torch.__version__, "platform": platform.platform(),
                                 "processor": platform.processor() or platform.machine()}
    per_thread: dict[int, float] = {}
    per_cpu: dict[int, float] = {}
    for threads in sorted({1, int(args.threads)}):
        torch.set_num_threads(threads)
        model.predict(frame.iloc[:256], n_samples=args.samples, batch_size=args.batch_size)  # warm-up
        t, cpu = best_of(lambda: model.predict(frame, n_samples=args.samples, batch_size=args.batch_size))
        per_thread[threads] = args.n / t
        per_cpu[threads] = args.n / cpu
        print(f"{threads} thread(s): {args.n / t:,.0f} objects/s wall ({args.n / t / threads:,.0f} per thread), "
              f"{args.n / cpu:,.0f} objects per CPU-second")
    result["objects_per_s_1thread"] = per_thread[1]
    result["objects_per_cpu_s_1thread"] = per_cpu[1]
    result["objects_per_cpu_s_all_threads"] = per_cpu[int(args.threads)]
    result["threads_all"] = int(args.threads)
    result["objects_per_s_all_threads"] = per_thread[int(args.threads)]
    result["objects_per_s_per_thread_all_threads"] = per_thread[int(args.threads)] / int(args.threads)
    if torch.cuda.is_available():
        dev = "cuda"
        big = pd.concat([df] * 5, ignore_index=True)
        model.predict(big.iloc[:1024], n_samples=args.samples, batch_size=4096, device=dev)
        torch.cuda.synchronize()
        t, _ = best_of(lambda: model.predict(big, n_samples=args.samples, batch_size=4096, device=dev))
        result["objects_per_s_cuda"] = len(big) / t
        result["cuda_device"] = torch.cuda.get_device_name(0)
        print(f"CUDA ({result['cuda_device']}): {len(big) / t:,.0f} objects/s")
    else:
        result["objects_per_s_cuda"] = None
        result["cuda_skipped"] = "no CUDA device"
    result["load_average_after"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
