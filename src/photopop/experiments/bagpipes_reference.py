"""A real Bayesian SED fit for reference: bagpipes + the nautilus sampler on a seeded subset of spaxels.

Model (as close to the mock's family as bagpipes allows): bagpipes' own BC03 grid (the MILES-based BC03
SSPs the mock uses), a delayed-tau SFH (age 0.1-13.5 Gyr, tau 0.1-10 Gyr log-uniform, mass formed free),
one metallicity 0.03-2.5 Z_sun (log-uniform), Calzetti dust A_V 0-2.5 with birth clouds (eta 1-4 for stars
< 10 Myr, as the mock), nebular lines (log U -3.8 to -2.2), the redshift fixed at the galaxy's. Chemical
evolution, bulge and burst components are left out (each component multiplies nautilus' cost). The
photometry is the table's (mag, magerr -> micro-Jy), the band curves photopop's own, written to a
temporary folder (bagpipes reads filter files), where bagpipes also writes its pipes/ folder.

Labels are made comparable by computing them with photopop: a seeded subset of each spaxel's posterior
samples (age, tau, Z, A_V, eta) is composed by `photopop.populations.compose` with the mock's label
definitions (luminosity-weighted at 5500 A with the table's light weighting); their mean is the estimate.
`run_bagpipes_reference` returns accuracy (robust sigma, bias) and seconds per SED; with out-of-fold
predictions of `photopop sed cv` on the same table, the other methods' robust sigma on the same spaxels.

One fit takes minutes of CPU, so with a `work_dir` every fitted spaxel is written there at once
(``spaxel_<row>.json``, atomically, keyed by the settings, the spaxel's photometry and redshift and the
label definition): a killed run resumes with the spaxels it has not fitted, and a file of other settings
or another table is refitted, never trusted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..datasets.sed_table import read_sed_table
from ..errors import InputError
from ..evaluation.metrics import robust_sigma
from ..hashing import array_hash, json_hash
from ..io import read_json, read_table, write_json_atomic


@dataclass
class BagpipesSettings:
    """n_spaxels: spaxels fitted (0 = off); n_live: nautilus live points; seed: the subset and label samples."""

    n_spaxels: int = 0
    n_live: int = 200
    n_networks: int = 2
    n_label_samples: int = 100
    seed: int = 0

    def validate(self) -> None:
        if self.n_spaxels < 0 or self.n_live < 10 or self.n_networks < 1 or self.n_label_samples < 1:
            raise InputError("bagpipes: n_spaxels >= 0, n_live >= 10, n_networks >= 1 and n_label_samples >= 1")


def fit_instructions(z: float) -> dict[str, Any]:
    """The bagpipes model (see the module docstring) at redshift z."""
    delayed = {"age": (0.1, 13.5), "tau": (0.1, 10.0), "tau_prior": "log_10", "massformed": (1.0, 13.0),
               "metallicity": (0.03, 2.5), "metallicity_prior": "log_10"}
    return {"redshift": float(z), "delayed": delayed, "t_bc": 0.01,
            "dust": {"type": "Calzetti", "Av": (0.0, 2.5), "eta": (1.0, 4.0)}, "nebular": {"logU": (-3.8, -2.2)}}


def photopop_labels(samples: dict[str, np.ndarray], light: str) -> dict[str, np.ndarray]:
    """log_age and zh (photopop's definitions) of posterior samples of the bagpipes model."""
    from ..populations import SSPGrid, compose
    from ..populations.sfh import DelayedTau
    from ..simulate.ifu import SlopedCalzetti

    grid = SSPGrid.bc03(wave_range=(5300.0, 5700.0))
    age, tau = np.asarray(samples["delayed:age"], float), np.asarray(samples["delayed:tau"], float)
    zh = np.log10(np.asarray(samples["delayed:metallicity"], float))
    a_v, eta = np.asarray(samples["dust:Av"], float), np.asarray(samples["dust:eta"], float)
    out = {"log_age": np.empty(age.size), "zh": np.empty(age.size)}
    for k in range(age.size):  # one dust model (eta) per sample
        lab = compose(grid, DelayedTau(age_start_gyr=age[k:k + 1], tau_gyr=tau[k:k + 1]), zh=zh[k], a_v=a_v[k],
                      dust=SlopedCalzetti(birth_factor=float(eta[k])), light=light, outside="clip",
                      z_outside="clip").labels
        out["log_age"][k], out["zh"][k] = lab.log_age[0], lab.zh[0]
    return out


def fit_spaxel(phot: np.ndarray, filt: Sequence[str], z: float, settings: BagpipesSettings, light: str,
               index: int) -> dict[str, float]:
    """Fit one SED (phot: (n_bands, 2) micro-Jy flux and error) with bagpipes; its labels and seconds.

    Runs in the caller's working directory (bagpipes writes its pipes/ folder there).
    """
    import bagpipes

    gal = bagpipes.galaxy(f"s{index}", lambda _id, p=phot: p, spectrum_exists=False, filt_list=list(filt))
    t0 = time.perf_counter()
    fit = bagpipes.fit(gal, fit_instructions(z), run=f"r{settings.seed}")
    fit.fit(verbose=False, sampler="nautilus", n_live=settings.n_live, n_networks=settings.n_networks, pool=1)
    seconds = time.perf_counter() - t0
    samp = fit.posterior.samples
    n_s = len(samp["delayed:age"])
    pick = np.random.default_rng([settings.seed, index]).choice(n_s, min(settings.n_label_samples, n_s),
                                                                replace=False)
    keys = ("delayed:age", "delayed:tau", "delayed:metallicity", "dust:Av", "dust:eta")
    labs = photopop_labels({k: np.asarray(samp[k])[pick] for k in keys}, light)
    return {"seconds": float(seconds), **{t: float(np.mean(labs[t])) for t in ("log_age", "zh")}}


def _spaxel_key(settings: BagpipesSettings, phot: np.ndarray, z: float, light: str, index: int) -> str:
    """What a checkpointed fit depends on: settings, photometry, redshift, label definition, sample seed."""
    return json_hash({"settings": dataclasses.asdict(settings), "phot": array_hash(phot), "z": float(z),
                      "light": light, "index": int(index), "model": fit_instructions(z)})


def _checkpointed(work: Path | None, row: int, key: str) -> dict[str, float] | None:
    """The saved fit of `row` if it exists with the same key (anything else is refitted)."""
    if work is None or not (work / f"spaxel_{row}.json").is_file():
        return None
    try:
        saved = read_json(work / f"spaxel_{row}.json")
    except InputError:
        return None  # an unreadable checkpoint is refitted
    return saved.get("result") if isinstance(saved, dict) and saved.get("key") == key else None


def run_bagpipes_reference(table: Any, settings: BagpipesSettings, predictions: pd.DataFrame | None = None,
                           methods: Sequence[str] = (), progress: Callable[[str], None] | None = None,
                           work_dir: str | Path | None = None) -> dict[str, Any]:
    """Fit `settings.n_spaxels` random spaxels of a mock `table` with bagpipes; accuracy and seconds per SED.

    `work_dir`: folder of per-spaxel checkpoints (created if absent); fits found there are reused.
    """
    from ..photometry import load_filter_system

    settings.validate()
    if settings.n_spaxels < 1:
        raise InputError("bagpipes reference: n_spaxels is 0 (off)")
    say = progress or (lambda msg: None)
    work = Path(work_dir).resolve() if work_dir is not None else None
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
    cfg = table.config
    light = cfg.get("light_weighting", "attenuated") if isinstance(cfg, dict) else getattr(cfg, "light_weighting",
                                                                                          "attenuated")
    system = load_filter_system(table.filter_system).select(list(table.bands))
    order = [list(system.bands).index(b) for b in table.bands]
    rng = np.random.default_rng(settings.seed)
    rows = np.sort(rng.choice(len(table.spaxels), size=min(settings.n_spaxels, len(table.spaxels)), replace=False))
    spx = table.spaxels.iloc[rows].reset_index(drop=True)
    zmap = table.galaxies.set_index("galaxy_id")["redshift"]
    mags = table.magnitudes("mag")[rows]
    errs = spx[[f"magerr_{b}" for b in table.bands]].to_numpy()
    ujy = 3631e6 * 10 ** (-0.4 * mags)
    ujy_err = ujy * errs * 0.4 * np.log(10.0)
    results: list[dict[str, float]] = []
    n_reused = 0
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        curves = [system.curves[j] for j in order]
        filt = []
        for c in curves:
            p = Path(tmp) / f"{c.name}.txt"
            np.savetxt(p, np.column_stack([c.wavelength, c.transmission]))
            filt.append(str(p))
        os.chdir(tmp)  # bagpipes writes its pipes/ folder into the working directory it saw at import
        try:
            for i, row in enumerate(rows):
                phot = np.column_stack([ujy[i], ujy_err[i]])
                z = float(zmap.loc[spx["galaxy_id"].iloc[i]])
                key = _spaxel_key(settings, phot, z, light, i)
                res = _checkpointed(work, int(row), key)
                if res is not None:
                    n_reused += 1
                    say(f"bagpipes spaxel {i + 1}/{len(rows)}: reused ({res['seconds']:.1f} s when fitted)")
                else:
                    res = fit_spaxel(phot, filt, z, settings, light, i)
                    if work is not None:
                        write_json_atomic(work / f"spaxel_{int(row)}.json", {"row": int(row), "key": key,
                                                                             "result": res})
                    say(f"bagpipes spaxel {i + 1}/{len(rows)}: {res['seconds']:.1f} s")
                results.append(res)
        finally:
            os.chdir(cwd)
    seconds = [r["seconds"] for r in results]
    res_all: dict[str, Any] = {"n_spaxels": int(len(rows)), "rows": rows.tolist(), "n_live": settings.n_live,
                               "n_networks": settings.n_networks, "seed": settings.seed, "light_weighting": light,
                               "seconds_per_sed": float(np.mean(seconds)), "seconds_per_sed_all": seconds,
                               "n_reused_checkpoints": n_reused, "bagpipes": {}}
    for t in ("log_age", "zh"):
        e = np.array([r[t] for r in results])
        res_all["bagpipes"][t] = {"robust_sigma": robust_sigma(e - spx[t].to_numpy()),
                                  "robust_sigma_vs_true": robust_sigma(e - spx[f"{t}_true"].to_numpy()),
                                  "bias": float(np.median(e - spx[t].to_numpy()))}
    if predictions is not None:  # the other methods' out-of-fold predictions on the same spaxels
        pred = predictions.iloc[rows]
        for meth in methods:
            for t in ("log_age", "zh"):
                if f"{t}_{meth}" in pred.columns:
                    res_all.setdefault("same_spaxels", {}).setdefault(meth, {})[t] = {
                        "robust_sigma": robust_sigma(pred[f"{t}_{meth}"].to_numpy() - spx[t].to_numpy())}
    return res_all


def bagpipes_stage(settings: BagpipesSettings, say: Callable[[str], None]) -> Callable[[Path, Mapping[str, Any]], None]:
    """The reproduction's `bagpipes` stage: needs the `survey` and `cv_b` stages; writes bagpipes.json.

    Resumable: its per-spaxel fits are checkpointed in the stage's build folder (``work/``)."""
    def run(out: Path, ups: Mapping[str, Any]) -> None:
        cvm = json.loads(ups["cv_b"].file("metrics.json").read_text())
        methods = [k for k in cvm if k not in ("pcc_residuals", "ratio_to_floor")]
        res = run_bagpipes_reference(read_sed_table(ups["survey"].path / "table"), settings,
                                     read_table(ups["cv_b"].file("predictions.parquet")), methods,
                                     progress=lambda m: say(f"  {m}"), work_dir=out / "work")
        write_json_atomic(out / "bagpipes.json", res)
    return run
