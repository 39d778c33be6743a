"""Benchmark the mock IFU survey (the embedded default data): time to simulate ~20,000 spaxels.

    python benchmarks/bench_simulate_ifu.py [--galaxies 190] [--threads 2] [--out JSON] [--gap]

Target: the default survey (190 galaxies, ~20,000 spaxels, 34 J-PAS bands) in under a minute on 2 cores.
Records wall time, CPU time of this process (BLAS threads included; on a shared machine the wall time
depends on the load, the CPU time much less), spaxels per second and peak memory, plus (with --gap) the
Set A / Set B figure of `photopop.evaluation.galaxy_gap` for the noisy and the noise-free magnitudes.
Writes benchmarks/results/simulate_ifu.json atomically.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from dataclasses import replace
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--galaxies", type=int, default=190)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="BLAS threads (set before numpy loads)")
    ap.add_argument("--gap", action="store_true", help="also compute the between/within-galaxy figures")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "simulate_ifu.json")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np

    from photopop import __version__
    from photopop.io import write_json_atomic
    from photopop.evaluation.galaxy_gap import galaxy_gap
    from photopop.simulate.ifu import IFUSurveyConfig, simulate_ifu_survey

    cfg = IFUSurveyConfig(seed=args.seed)
    cfg.sample = replace(cfg.sample, n_galaxies=args.galaxies)
    # warm-up: imports, cosmology tables, the SSP grid read (cached per process), nebular grids
    warm = replace(cfg, sample=replace(cfg.sample, n_galaxies=1))
    simulate_ifu_survey(warm)
    w0, c0 = time.perf_counter(), time.process_time()
    table = simulate_ifu_survey(cfg)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    n = len(table)
    result = {
        "benchmark": "simulate_ifu",
        "photopop_version": __version__,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "threads": args.threads,
                    "load_average_1min": os.getloadavg()[0], "numpy": np.__version__},
        "galaxies": int(len(table.galaxies)),
        "spaxels": n,
        "bands": len(table.bands),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "spaxels_per_s_wall": round(n / wall, 1),
        "spaxels_per_s_cpu": round(n / cpu, 1),
        # on idle cores the wall time is at most the CPU time (less where BLAS runs threads in parallel)
        "projected_wall_s_for_20000_idle_upper_bound": round(20000 / n * cpu, 1),
        "target_s": 60,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "n_fluxes_below_1sigma": table.meta["n_fluxes_below_1sigma"],
    }
    if args.gap:
        noise_free = simulate_ifu_survey(replace(cfg, noise=replace(cfg.noise, snr_scale=float("inf"))))
        result["galaxy_gap"] = {
            f"{which}/{target}": {k: round(v, 4) for k, v in galaxy_gap(t, target).items()}
            for which, t in (("default_noise", table), ("noise_free", noise_free))
            for target in ("log_age_true", "zh_true")
        }
    write_json_atomic(args.out, result)
    print(f"{n} spaxels of {result['galaxies']} galaxies: {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"({result['spaxels_per_s_wall']:.0f} spaxels/s wall); wrote {args.out}")


if __name__ == "__main__":
    main()
