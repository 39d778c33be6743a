"""Throughput of the SED CNN against the chi-square template fit on the same SEDs, plus one training epoch.

    python benchmarks/bench_sed_inference.py [--n 200000] [--n-chi2 20000] [--threads 2]

SEDs are the default template grid (delayed-tau composites, J-PAS bands of Liew-Cain et al. 2021,
BC03) with 2 per cent noise, so both methods see identical inputs. The CNN has the paper's shape
(random weights: speed does not depend on them) and predicts through `SavedSEDModel.predict_array`
(feature making, normalisation, batched inference_mode). Both are timed with `--threads` and with
1 thread (torch threads and BLAS threads alike; best of several runs): on a machine whose cores are
shared with other jobs, multi-threaded small kernels can collapse, so both are recorded with the load
average. Writes benchmarks/results/sed_inference.json and prints SEDs/s of both and their ratio
(each at its best thread count).
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

from photopop.models.normalise import Standardiser, make_features
from photopop.models.saved import SavedSEDModel
from photopop.models.sed_cnn import SEDCNN, SEDCNNConfig
from photopop.models.template_fit import build_template_grid
from photopop.training.fit import TrainConfig, build_network, train_network


def best_of(fn, repeats: int = 3) -> float:
    """Shortest wall time of `repeats` calls (the least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000, help="SEDs for the CNN")
    ap.add_argument("--n-chi2", type=int, default=20_000, help="SEDs for the chi-square fit")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for the main numbers (also 1 is timed)")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sed_inference.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    grid = build_template_grid("jpas-califa", redshifts=[0.0])
    bands = grid.bands
    n_t = grid.fluxes.shape[1]
    pick = rng.integers(0, n_t, args.n)
    flux = grid.fluxes[0][pick] * 10 ** rng.uniform(-1, 1, (args.n, 1)) * (1 + 0.02 * rng.normal(size=(args.n, len(bands))))
    mags = -2.5 * np.log10(np.clip(flux, 1e-30, None))
    magerr = np.full_like(mags, 0.02)

    # CNN: the paper's shape, normalisation fitted on the SEDs themselves
    net = SEDCNN(len(bands), 1, SEDCNNConfig()).eval()
    model = SavedSEDModel(net, Standardiser.fit(make_features(mags[:10000], bands), bands),
                          Standardiser(["log_age"], np.array([9.0]), np.array([1.0])),
                          {"bands": bands, "targets": ["log_age"], "input_kind": "mag", "filter_system": "jpas"})
    x = torch.from_numpy(model.input_norm.transform(mags).astype(np.float32))

    def raw() -> None:
        with torch.inference_mode():
            for s in range(0, args.n, args.batch_size):
                net(x[s:s + args.batch_size])

    cnn: dict[int, tuple[float, float]] = {}
    for threads in sorted({args.threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        model.predict_array(mags[: args.batch_size], batch_size=args.batch_size)  # warm-up
        cnn[threads] = (best_of(lambda: model.predict_array(mags, batch_size=args.batch_size)), best_of(raw))
    torch.set_num_threads(args.threads)
    best_threads = min(cnn, key=lambda k: cnn[k][0])
    t_cnn, t_raw = cnn[best_threads]

    # chi-square template fit on the first n_chi2 of the same SEDs (BLAS threads limited alike)
    from threadpoolctl import threadpool_limits

    fitter = grid.fitter(0)
    m2, e2 = mags[: args.n_chi2], magerr[: args.n_chi2]
    chi2: dict[int, float] = {}
    for threads in sorted({args.threads, 1}, reverse=True):
        with threadpool_limits(limits=threads):
            fitter.fit_magnitudes(m2[:1000], e2[:1000])
            chi2[threads] = best_of(lambda: fitter.fit_magnitudes(m2, e2), repeats=2)
    res = fitter.fit_magnitudes(m2[:2000], e2[:2000])
    recovered = float(np.mean(res.index == pick[:2000]))

    # one training epoch on 20 000 spaxels (batch 256)
    xt = rng.normal(size=(20000, len(bands)))
    yt = rng.normal(size=(20000, 1))
    netw = build_network(len(bands), 1, SEDCNNConfig(), 0)
    epoch_s = {}
    for threads in sorted({args.threads, 1}, reverse=True):
        cfg = TrainConfig(max_epochs=3, device="cpu", batch_size=256, num_threads=threads)
        t0 = time.perf_counter()
        hist = train_network(netw, xt, yt, xt[:2000], yt[:2000], cfg, quiet=True)
        epoch_s[threads] = (time.perf_counter() - t0) / hist.epochs_run
    t_epoch = min(epoch_s.values())

    out = {
        "n_bands": len(bands), "n_templates": int(n_t), "threads": args.threads,
        "cnn_parameters": net.n_parameters(), "batch_size": args.batch_size,
        "cnn_seds_per_s": args.n / t_cnn, "cnn_network_only_seds_per_s": args.n / t_raw,
        "cnn_best_threads": best_threads,
        "chi2_seds_per_s": args.n_chi2 / min(chi2.values()),
        "chi2_seds_per_s_by_threads": {str(k): args.n_chi2 / v for k, v in chi2.items()},
        "cnn_over_chi2": (args.n / t_cnn) / (args.n_chi2 / min(chi2.values())),
        "chi2_noisy_template_recovered_fraction": recovered,
        "cnn_seds_per_s_by_threads": {str(k): args.n / v[0] for k, v in cnn.items()},
        "train_epoch_s_20000_spaxels": t_epoch,
        "train_epoch_s_by_threads": {str(k): v for k, v in epoch_s.items()},
        "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "load_average_1min": os.getloadavg()[0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"CNN            {out['cnn_seds_per_s']:12.0f} SEDs/s  (network only {out['cnn_network_only_seds_per_s']:.0f}; "
          "by threads: " + ", ".join(f"{k}: {args.n / v[0]:.0f}" for k, v in cnn.items()) + ")")
    print(f"chi-square fit {out['chi2_seds_per_s']:12.0f} SEDs/s  ({n_t} templates x {len(bands)} bands; by threads: "
          + ", ".join(f"{k}: {args.n_chi2 / v:.0f}" for k, v in chi2.items()) + ")")
    print(f"ratio CNN / chi-square: {out['cnn_over_chi2']:.1f}")
    print(f"training epoch on 20000 spaxels: {t_epoch:.2f} s (by threads: "
          + ", ".join(f"{k}: {v:.2f} s" for k, v in epoch_s.items()) + f")   load average {out['load_average_1min']:.1f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
