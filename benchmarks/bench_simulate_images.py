"""Benchmark the mock imaging survey: rendered galaxies per second and the projected time for 20,000.

Usage: python benchmarks/bench_simulate_images.py [--galaxies N] [--workers W] [--size PIX] [--out JSON]
Writes benchmarks/results/simulate_images.json (atomically). The target is 20,000 galaxies (128x128, g r i,
with rgb composites) within 15 minutes on 2 cores. On a shared machine the wall-clock rate depends on the
load, so the CPU time per image (workers included) and the projection for 2 idle cores are recorded too.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from photopop.io import write_json_atomic
from photopop.simulate.colour_table import build_colour_table
from photopop.simulate.images import ImageSurveyConfig, simulate_image_survey

TARGET_N, TARGET_S = 20_000, 900.0


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the worker processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--galaxies", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "simulate_images.json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    build_colour_table()  # one-off per process (BC03 + SFH family + synthetic photometry)
    t_table = time.perf_counter() - t0
    cfg = ImageSurveyConfig(n_galaxies=args.galaxies, seed=args.seed, image_size=args.size)
    tmp = Path(tempfile.mkdtemp(prefix="bench_images_"))
    try:
        cpu0 = _cpu_s()
        t1 = time.perf_counter()
        s = simulate_image_survey(cfg, tmp / "set", n_workers=args.workers)
        wall = time.perf_counter() - t1
        cpu = _cpu_s() - cpu0
        size_mb = sum(p.stat().st_size for p in (tmp / "set").rglob("*") if p.is_file()) / 1e6
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rate = len(s) / wall
    projected = TARGET_N / rate + t_table
    result = {
        "benchmark": "simulate_images", "n_galaxies": len(s), "workers": args.workers,
        "image_size": args.size, "wall_s": round(wall, 2), "colour_table_s": round(t_table, 2),
        "images_per_s": round(rate, 2), "projected_s_for_20000": round(projected, 1),
        "cpu_s": round(cpu, 2), "cpu_ms_per_image": round(1000 * cpu / len(s), 2),
        "projected_s_for_20000_on_2_idle_cores": round(TARGET_N * cpu / len(s) / 2 + t_table, 1),
        "target_s_for_20000": TARGET_S, "meets_target_at_measured_rate": bool(projected <= TARGET_S),
        "meets_target_on_2_idle_cores": bool(TARGET_N * cpu / len(s) / 2 + t_table <= TARGET_S),
        "disk_mb_per_1000": round(size_mb / len(s) * 1000, 1),
        "machine": {"cpu_count": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
                    "python": sys.version.split()[0], "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json_atomic(args.out, result)
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
