"""A real Bayesian SED fit for reference: bagpipes + nautilus on a seeded random subset of mock spaxels.

    python benchmarks/bench_bagpipes.py [--table MOCK] [--n 20] [--galaxies 20] [--n-live 200] [--seed 0]
                                        [--cv CV_FOLDER]

Model (as close to the mock's family as bagpipes allows): bagpipes' own BC03 grid (the same MILES-based
BC03 SSPs the mock uses), a delayed-tau SFH (age 0.1-13.5 Gyr, tau 0.1-10 Gyr, log-uniform tau), one
metallicity 0.03-2.5 Z_sun (log-uniform), Calzetti dust A_V 0-2.5 with birth clouds ("eta" 1-4, stars
< 10 Myr, as the mock), nebular lines (log U -3.8 to -2.2), the redshift fixed at the galaxy's. No chemical
evolution, no bulge + burst components (more components make nautilus much slower). The photometry is the
table's (mag, magerr -> micro-Jy), the band curves photopop's own (written to a temporary folder).

Labels are made comparable by computing them with photopop: every posterior sample (age, tau, Z, A_V, eta)
is composed by `photopop.populations.compose` with the mock's label definition (luminosity-weighted at
5500 A with the table's light weighting), and the posterior mean of those labels is the estimate.
Writes benchmarks/results/bagpipes.json: robust sigma and bias per target against the (noisy) labels and
the true ones, seconds per SED, and -- when `--cv` names a `photopop sed cv` folder of the same table --
the CNN's, template fit's and floor's robust sigma on the same spaxels.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from photopop.datasets.sed_table import read_sed_table
from photopop.evaluation.metrics import robust_sigma
from photopop.io import read_table, write_json_atomic
from photopop.photometry import load_filter_system


def write_curves(system, folder: Path) -> list[str]:
    """Each band's curve as a two-column text file (Angstrom, transmission); the paths in band order."""
    paths = []
    for c in system.curves:
        p = folder / f"{c.name}.txt"
        np.savetxt(p, np.column_stack([c.wavelength, c.transmission]))
        paths.append(str(p))
    return paths


def fit_instructions(z: float) -> dict:
    delayed = {"age": (0.1, 13.5), "tau": (0.1, 10.0), "tau_prior": "log_10", "massformed": (1.0, 13.0),
               "metallicity": (0.03, 2.5), "metallicity_prior": "log_10"}
    return {"redshift": float(z), "delayed": delayed,
            "dust": {"type": "Calzetti", "Av": (0.0, 2.5), "eta": (1.0, 4.0)}, "t_bc": 0.01,
            "nebular": {"logU": (-3.8, -2.2)}}


def photopop_labels(samples: dict, light: str) -> dict[str, np.ndarray]:
    """log_age and zh (photopop's definitions) of each posterior sample of the bagpipes model."""
    from photopop.populations import SSPGrid, compose
    from photopop.populations.sfh import DelayedTau
    from photopop.simulate.ifu import SlopedCalzetti

    grid = SSPGrid.bc03(wave_range=(5300.0, 5700.0))
    age = np.asarray(samples["delayed:age"], float)
    tau = np.asarray(samples["delayed:tau"], float)
    zh = np.log10(np.asarray(samples["delayed:metallicity"], float))
    a_v = np.asarray(samples["dust:Av"], float)
    eta = np.asarray(samples["dust:eta"], float)
    out = {"log_age": np.empty(age.size), "zh": np.empty(age.size)}
    for k in range(age.size):  # one dust model (eta) per sample
        lab = compose(grid, DelayedTau(age_start_gyr=age[k:k + 1], tau_gyr=tau[k:k + 1]), zh=zh[k], a_v=a_v[k],
                      dust=SlopedCalzetti(birth_factor=float(eta[k])), light=light, outside="clip",
                      z_outside="clip").labels
        out["log_age"][k] = lab.log_age[0]
        out["zh"][k] = lab.zh[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", type=Path, help="mock SED table (default: simulate --galaxies of the default mock)")
    ap.add_argument("--galaxies", type=int, default=20)
    ap.add_argument("--n", type=int, default=20, help="spaxels fitted (seeded random subset)")
    ap.add_argument("--n-live", type=int, default=200)
    ap.add_argument("--n-label-samples", type=int, default=100, help="posterior samples turned into labels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cv", type=Path, help="a `photopop sed cv` folder of the same table (CNN etc. beside)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bagpipes.json")
    args = ap.parse_args()
    if args.table:
        tab = read_sed_table(args.table)
    else:
        from photopop.simulate.geometry import GalaxySampleConfig
        from photopop.simulate.ifu import IFUSurveyConfig, simulate_ifu_survey

        tab = simulate_ifu_survey(IFUSurveyConfig(sample=GalaxySampleConfig(n_galaxies=args.galaxies)))
    light = (tab.config.get("light_weighting") if isinstance(tab.config, dict)
             else getattr(tab.config, "light_weighting", "attenuated"))
    system = load_filter_system(tab.filter_system).select(list(tab.bands))
    rng = np.random.default_rng(args.seed)
    rows = np.sort(rng.choice(len(tab.spaxels), size=min(args.n, len(tab.spaxels)), replace=False))
    spx = tab.spaxels.iloc[rows].reset_index(drop=True)
    zmap = tab.galaxies.set_index("galaxy_id")["redshift"]
    mags = tab.magnitudes("mag")[rows]
    errs = spx[[f"magerr_{b}" for b in tab.bands]].to_numpy()
    ujy = 3631e6 * 10 ** (-0.4 * mags)
    ujy_err = ujy * errs * 0.4 * np.log(10.0)
    est = {"log_age": [], "zh": []}
    seconds = []
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        filt = write_curves(system, tmpd)
        os.chdir(tmpd)  # bagpipes writes its pipes/ folder into the working directory at import time
        try:
            import bagpipes

            for i in range(len(rows)):
                phot = np.column_stack([ujy[i], ujy_err[i]])
                gal = bagpipes.galaxy(f"s{i}", lambda _id, p=phot: p, spectrum_exists=False, filt_list=filt)
                t0 = time.perf_counter()
                fit = bagpipes.fit(gal, fit_instructions(zmap.loc[spx["galaxy_id"].iloc[i]]), run=f"r{args.seed}")
                fit.fit(verbose=False, sampler="nautilus", n_live=args.n_live, pool=1)
                seconds.append(time.perf_counter() - t0)
                fit.posterior.get_basic_quantities()
                samp = fit.posterior.samples
                n_s = len(samp["delayed:age"])
                pick = np.random.default_rng(args.seed + i).choice(n_s, min(args.n_label_samples, n_s), replace=False)
                labs = photopop_labels({k: np.asarray(samp[k])[pick] for k in
                                        ("delayed:age", "delayed:tau", "delayed:metallicity", "dust:Av", "dust:eta")},
                                       light)
                for t in est:
                    est[t].append(float(np.mean(labs[t])))
                print(f"spaxel {i}: {seconds[-1]:.1f} s, log_age {est['log_age'][-1]:.3f} "
                      f"(label {spx['log_age'].iloc[i]:.3f}), zh {est['zh'][-1]:.3f} (label {spx['zh'].iloc[i]:.3f})",
                      flush=True)
        finally:
            os.chdir(cwd)
    res: dict = {"n_spaxels": len(rows), "n_live": args.n_live, "seed": args.seed, "light_weighting": light,
                 "seconds_per_sed": float(np.mean(seconds)), "seconds_per_sed_median": float(np.median(seconds)),
                 "bagpipes": {}, "machine": {"cpu": platform.processor() or platform.machine(),
                                             "load_avg_1min": os.getloadavg()[0]}}
    for t in est:
        e = np.asarray(est[t])
        res["bagpipes"][t] = {"robust_sigma": robust_sigma(e - spx[t].to_numpy()),
                              "robust_sigma_vs_true": robust_sigma(e - spx[f"{t}_true"].to_numpy()),
                              "bias": float(np.median(e - spx[t].to_numpy()))}
    if args.cv:
        pred = read_table(args.cv / "predictions.parquet").iloc[rows]
        for col in pred.columns:
            for t in est:
                if col.startswith(f"{t}_") and col not in (f"{t}_true",) and not col.endswith(("_std", "_p16",
                                                                                             "_p50", "_p84")):
                    meth = col[len(t) + 1:]
                    res.setdefault(meth, {})[t] = {"robust_sigma": robust_sigma(pred[col].to_numpy()
                                                                                - spx[t].to_numpy())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, res)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
