"""Issue 14 §3: does the SED CNN beat a random forest on unseen galaxies, and which settings get it there?

    python benchmarks/bench_sed_cnn_vs_rf.py --train DIR --test DIR [--best best_params.toml] [--seeds 3]

Trains on every galaxy of --train (an `photopop simulate ifu` table; validation carved by galaxy) and
scores robust sigma on every spaxel of --test (other galaxies: Set B), for
 - `preset`: the CNN as the quick / demo presets train it (max_epochs 80, patience 10, batch 128),
 - `preset_colour`: the same with colours as inputs (`input_kind = "colour"`),
 - `library_default`: `TrainConfig()` as shipped (max_epochs 5000, patience 25, batch 256: converged),
 - `tuned`: the [architecture] / [train] / input_kind of an Optuna `best_params.toml` (`photopop sed tune`),
 - `random_forest`: `RandomForestBaseline` on the magnitudes (as `photopop sed cv` ran it before issue 14; 100 trees),
 - `random_forest_colour`: the same forest on colours (the CNN's best input given to the forest too),
each with --seeds seeds (CNN weights / forest draws). Writes benchmarks/results/sed_cnn_vs_rf.json with
per-seed values, means and standard deviations, and the best epochs reached.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
import tomllib
from pathlib import Path

import numpy as np

from photopop.config import from_dict
from photopop.datasets.sed_table import read_sed_table
from photopop.evaluation.metrics import robust_sigma
from photopop.models.normalise import make_features
from photopop.models.baselines import RandomForestBaseline, RandomForestConfig
from photopop.models.sed_cnn import SEDCNNConfig
from photopop.training.fit import SEDRegressor, SEDRegressorConfig, TrainConfig

TARGETS = ("log_age", "zh")


def _cnn(train, test, arch: SEDCNNConfig, tcfg: TrainConfig, kind: str, seed: int) -> tuple[dict[str, float], int]:
    reg = SEDRegressor(SEDRegressorConfig(targets=TARGETS, input_kind=kind, val_scheme="B", architecture=arch,
                                          train=dataclasses.replace(tcfg, seed=seed, num_threads=1)))
    reg.fit(train, quiet=True)
    pred = reg.predict(test.spaxels, bands=test.bands, filter_system=test.filter_system)
    return ({t: robust_sigma(pred[t].to_numpy() - test.spaxels[t].to_numpy()) for t in TARGETS},
            int(reg.result_.best_epoch))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--best", type=Path)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--methods", default="preset,library_default,tuned,random_forest")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sed_cnn_vs_rf.json")
    args = ap.parse_args()
    train, test = read_sed_table(args.train), read_sed_table(args.test)
    configs = {"preset": (SEDCNNConfig(), TrainConfig(max_epochs=80, patience=10, batch_size=128), "mag"),
               "preset_colour": (SEDCNNConfig(), TrainConfig(max_epochs=80, patience=10, batch_size=128), "colour"),
               "library_default": (SEDCNNConfig(), TrainConfig(), "mag")}
    if args.best:
        best = tomllib.loads(args.best.read_text())
        configs["tuned"] = (from_dict(SEDCNNConfig, best["architecture"]), from_dict(TrainConfig, best["train"]),
                            best.get("input_kind", "mag"))
    res: dict[str, dict] = {}
    mags_tr, mags_te = train.magnitudes("mag"), test.magnitudes("mag")
    y_tr = train.spaxels[list(TARGETS)].to_numpy(dtype=np.float64)
    for meth in args.methods.split(","):
        if meth not in configs and meth not in ("random_forest", "random_forest_colour"):
            continue
        per: dict[str, list[float]] = {t: [] for t in TARGETS}
        epochs, t0 = [], time.perf_counter()
        for k in range(args.seeds):
            if meth.startswith("random_forest"):
                kind = "colour" if meth.endswith("colour") else "mag"
                f_tr, f_te = (make_features(m, train.bands, kind) for m in (mags_tr, mags_te))
                rf = RandomForestBaseline(RandomForestConfig(n_estimators=100), seed=k).fit(f_tr, y_tr)
                p = rf.predict(f_te).reshape(len(mags_te), len(TARGETS))
                s = {t: robust_sigma(p[:, j] - test.spaxels[t].to_numpy()) for j, t in enumerate(TARGETS)}
            else:
                arch, tcfg, kind = configs[meth]
                s, ep = _cnn(train, test, arch, tcfg, kind, seed=k)
                epochs.append(ep)
            for t in TARGETS:
                per[t].append(s[t])
            print(meth, k, {t: round(v, 4) for t, v in s.items()}, epochs[-1:] , flush=True)
        res[meth] = {t: {"per_seed": v, "mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else None}
                     for t, v in per.items()}
        res[meth]["best_epochs"] = epochs
        res[meth]["seconds"] = time.perf_counter() - t0
    res["setup"] = {"train": str(args.train), "test": str(args.test), "best": str(args.best) if args.best else None,
                    "n_train_galaxies": int(train.spaxels["galaxy_id"].nunique()), "n_train_spaxels": len(train.spaxels),
                    "n_test_galaxies": int(test.spaxels["galaxy_id"].nunique()), "n_test_spaxels": len(test.spaxels),
                    "seeds": args.seeds, "load_average": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({m: {t: round(v[t]["mean"], 4) for t in TARGETS} for m, v in res.items() if m != "setup"}))


if __name__ == "__main__":
    main()
