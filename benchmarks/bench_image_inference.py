"""Inference throughput of the image regressor (images per second), with and without 8-fold TTA.

    python benchmarks/bench_image_inference.py [--archs resnet18 resnet34] [--sizes 32 64 128]
                                               [--n 256] [--batch 64] [--threads 0] [--device auto]

Random weights (speed does not depend on them) and random g, r, i images; prediction goes through
`ImageRegressor.predict` (normalisation, batching, D4 test-time augmentation, autocast on CUDA), so the
numbers are what a user gets. CPU is always measured; CUDA too when present (or with --device cuda).
Writes benchmarks/results/image_inference.json and prints images/s per configuration. The paper quotes
~6 ms per 128 px image with TTA and ~1 ms without on a P100 (ResNet-34).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from photopop.models.image_regressor import ImageModelConfig, ImageRegressor


def best_of(fn, repeats: int = 2) -> float:
    """Shortest wall time of `repeats` calls (the least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(arch: str, size: int, n: int, batch: int, device: torch.device, repeats: int) -> dict:
    model = ImageRegressor(["g", "r", "i"], size, ["oh"], ImageModelConfig(arch=arch, pretrained="none"))
    model.set_normalisation([0.0] * 3, [1.0] * 3, [8.9], [0.2], in_soft=[0.05] * 3)
    model.to(device).eval()
    images = np.random.default_rng(0).normal(0, 0.1, (n, 3, size, size)).astype(np.float32)
    row = {"arch": arch, "image_size": size, "device": str(device), "n": n, "batch": batch}
    model.predict(images[: min(n, batch)], tta=False, batch_size=batch, device=device)  # warm-up
    for tta in (False, True):
        b = max(1, batch // 8) if tta else batch
        if device.type == "cuda":
            torch.cuda.synchronize()
        sec = best_of(lambda: model.predict(images, tta=tta, batch_size=b, device=device), repeats)
        key = "tta" if tta else "plain"
        row[f"{key}_images_per_s"] = n / sec
        row[f"{key}_ms_per_image"] = 1e3 * sec / n
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=["resnet18", "resnet34"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[32, 64, 128])
    ap.add_argument("--n", type=int, default=256, help="images per measurement")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="auto", help="auto (CPU, plus CUDA if present), cpu or cuda")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "image_inference.json")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] if args.device in ("auto", "cpu") else []
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    rows = []
    for device in devices:
        for arch in args.archs:
            for size in args.sizes:
                row = measure(arch, size, args.n, args.batch, device, args.repeats)
                rows.append(row)
                print(f"{device.type:5s} {arch:9s} {size:4d}px: {row['plain_images_per_s']:9.1f} img/s plain, "
                      f"{row['tta_images_per_s']:9.1f} img/s with TTA ({row['tta_ms_per_image']:.2f} ms/img)",
                      flush=True)
    result = {
        "benchmark": "image_inference", "photopop_version": __import__("photopop").__version__,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "machine": platform.machine(), "processor": platform.processor(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "note": "random weights and images; wall time best of repeats; CPU shared with other processes may be slower",
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
