"""How much of the image mock's metallicity information integrated magnitudes and galaxy structure carry.

Usage: python benchmarks/bench_image_information.py [--galaxies N] [--seeds 0 1 2] [--out JSON]
Draws the mock imaging survey's catalogue (no rendering) and scores random forests (the reproduction's
forest settings, min_samples_leaf chosen on a validation split) trained on 60 % and tested on 20 % of the
galaxies, for the fibre physics of `photopop.simulate.fibre`, for the older model (constant -0.10 dex/R_e,
no dust weighting) and for the random term sized by the FMR residual (Mannucci et al. 2010), with inputs: gri; ugriz; gri + the structure an image shows (half-light radius, axis
ratio, bulge fraction); that + redshift; the true stellar mass; the true latent parameters (the floor
regressor). Also the injected scatter (the floor). Writes benchmarks/results/image_information.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from photopop.experiments.wu_boada_2019 import injected_scatter, preset_config, split_60_20_20
from photopop.experiments.wu_boada_stages import LATENT_COLUMNS
from photopop.io import write_json_atomic
from photopop.models.baselines import RandomForestBaseline
from photopop.simulate.images import ImageSurveyConfig, draw_catalog
from photopop.simulate.mzr import LabelConfig

FEATURES = {
    "gri": ["mag_g", "mag_r", "mag_i"],
    "ugriz": [f"mag_{b}" for b in "ugriz"],
    "gri+structure": ["mag_g", "mag_r", "mag_i", "r50_arcsec", "axis_ratio", "bulge_fraction"],
    "gri+structure+z": ["mag_g", "mag_r", "mag_i", "r50_arcsec", "axis_ratio", "bulge_fraction", "redshift"],
    "true_mass": ["log_mstar"],
    "latent": list(LATENT_COLUMNS),
}
PHYSICS = {"fibre17_dust": LabelConfig(),
           "constant_gradient_no_dust": LabelConfig(gradient_shape="constant", gradient_dex_per_re=-0.10,
                                                    fibre_dust=False),
           "fibre17_dust_fmr_residual": LabelConfig(oh_scatter_model="fmr_residual")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--galaxies", type=int, default=8000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "image_information.json")
    args = ap.parse_args(argv)
    wb = preset_config("quick")
    out: dict = {"benchmark": "image_information", "n_galaxies": args.galaxies, "seeds": args.seeds, "results": {}}
    for name, labels in PHYSICS.items():
        rows: dict[str, list[float]] = {k: [] for k in [*FEATURES, "injected_scatter", "oh_std"]}
        for seed in args.seeds:
            cfg = ImageSurveyConfig(n_galaxies=args.galaxies, seed=seed, labels=labels)
            cat, _ = draw_catalog(cfg, np.random.default_rng(seed))
            y = cat["oh"].to_numpy()
            split = split_60_20_20(len(cat), seed)
            tr, va, te = split["train"], split["val"], split["test"]
            for feat, cols in FEATURES.items():
                x = cat[cols].to_numpy(dtype=float)
                best = np.inf, None
                for leaf in wb.rf_leaf_grid:
                    rf = RandomForestBaseline(dataclasses.replace(wb.random_forest, min_samples_leaf=leaf),
                                              seed=seed).fit(x[tr], y[tr])
                    v = float(np.sqrt(np.mean((rf.predict(x[va]) - y[va]) ** 2)))
                    if v < best[0]:
                        best = v, rf
                rows[feat].append(float(np.sqrt(np.mean((best[1].predict(x[te]) - y[te]) ** 2))))
            rows["injected_scatter"].append(injected_scatter(cat, labels, te))
            rows["oh_std"].append(float(y[te].std()))
            print(name, seed, {k: round(v[-1], 4) for k, v in rows.items()}, file=sys.stderr, flush=True)
        out["results"][name] = {k: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else None}
                                for k, v in rows.items()}
    write_json_atomic(args.out, out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
