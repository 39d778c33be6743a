"""What the posterior study's out-of-domain and library tests share between the single split
(`experiments.posterior`) and the grouped cross-prediction (`experiments.posterior_folds`):
perturbed copies of test SEDs, flag rates, the other-SSP-library mock and a simulated library added
to the fitting galaxies.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..datasets.sed_table import load_sed_table
from ..errors import InputError
from ..models.posterior_model import SavedPosterior
from ..photometry.columns import mag_columns


def load_study_table(table: Any, targets: Sequence[str]) -> tuple[Any, pd.DataFrame]:
    """(SEDTable, its spaxels with a fresh 0..n-1 index) for a posterior study; InputError naming the first
    missing column when the spaxels lack ``galaxy_id`` (the studies split by galaxy) or a target."""
    tab = load_sed_table(table)
    df = tab.spaxels.reset_index(drop=True)
    for col in ("galaxy_id", *targets):
        if col not in df.columns:
            raise InputError(f"SED table lacks column {col!r}")
    return tab, df


def ood_perturbations(frame: pd.DataFrame, bands: Sequence[str], train_frame: pd.DataFrame,
                      shifts: Sequence[float], noise_band: str, seed: int) -> dict[str, pd.DataFrame]:
    """Named copies of `frame`: each magnitude shift, and `noise_band` replaced by noise (see the config)."""
    out: dict[str, pd.DataFrame] = {}
    cols = mag_columns(bands)
    for s in shifts:
        f = frame.copy()
        f[cols] = f[cols] + float(s)
        out[f"shift_{s:+g}mag"] = f
    band = noise_band or list(bands)[len(bands) // 2]
    if band not in bands:
        raise InputError(f"noise_band {band!r} is not one of the model's bands")
    col = f"mag_{band}"
    rng = np.random.default_rng(seed)
    ref = train_frame[col].to_numpy(np.float64)
    f = frame.copy()
    f[col] = rng.normal(ref.mean(), ref.std(), size=len(f))
    out[f"noise_{band}"] = f
    return out


def flag_rate(model: SavedPosterior, frame: pd.DataFrame, seed: int = 0) -> dict[str, float]:
    """Fraction of rows flagged and the median OOD score (only the context is computed, no draws)."""
    import torch

    x = model.frame_inputs(frame)
    with torch.inference_mode():
        ctx = model.network.ood_features(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    score = model.ood_scores(ctx)
    return {"flag_rate": float(np.mean(score > model.ood_threshold)), "median_score": float(np.median(score)),
            "n": int(len(score))}


def covered_bands(folder: str, filter_system: str, bands: Sequence[str], redshifts: np.ndarray) -> list[str]:
    """The `bands` that SSPs in `folder` cover at every one of `redshifts` (the simulator's own test)."""
    from ..photometry.filters import load_filter_system
    from ..populations.ssp import SSPGrid

    grid = SSPGrid.from_miles_folder(folder)
    w0, w1 = float(grid.wavelength_aa[0]), float(grid.wavelength_aa[-1])
    system = load_filter_system(filter_system).select(list(bands))
    z = np.asarray(redshifts, dtype=np.float64)
    inside = system.inside((w0 * (1 + z.max()), w1 * (1 + z.min())))
    return [b for b, ok in zip(system.bands, inside) if ok]


def other_library_table(model: SavedPosterior, survey: Any, folder: str, n_galaxies: int, seed: int) -> tuple[Any, str]:
    """(SEDTable of a mock built from the SSPs in `folder` with the model's bands, '') or (None, reason)."""
    from ..simulate.ifu import simulate_ifu_survey

    if not folder or not Path(folder).is_dir():
        return None, f"no SSP folder at {folder!r}"
    cfg = _survey_config(survey)
    cfg.seed = seed
    cfg.sample.n_galaxies = int(n_galaxies)
    cfg.ssp_folder, cfg.ssp_file = str(folder), ""
    cfg.bands, cfg.all_bands = tuple(model.bands), False
    cfg.filter_system = model.filter_system or cfg.filter_system
    try:
        return simulate_ifu_survey(cfg), ""
    except InputError as exc:  # e.g. the library does not cover every band of the model
        return None, str(exc)


def _survey_config(survey: Any) -> Any:
    from ..config import from_dict
    from ..simulate.ifu import IFUSurveyConfig

    if isinstance(survey, IFUSurveyConfig):
        return copy.deepcopy(survey)
    if isinstance(survey, dict):
        try:
            return from_dict(IFUSurveyConfig, survey)
        except InputError:
            pass
    return IFUSurveyConfig()


def with_library(train: Any, library: Any, name: str = "library") -> Any:
    """`train` with the spaxels (and galaxies) of a simulated `library` table appended after its rows.

    The library's galaxy ids are offset past the table's so that grouping (validation carve) keeps
    them apart; it must carry the same bands and filter system and every column `train` needs.
    InputError naming the difference otherwise.
    """
    if list(library.bands) != list(train.bands):
        raise InputError(f"library {name}: bands {library.bands[:5]}... differ from the table's {train.bands[:5]}...")
    sys_l, sys_t = library.meta.get("filter_system"), train.meta.get("filter_system")
    if sys_l and sys_t and sys_l != sys_t:
        raise InputError(f"library {name}: filter system {sys_l!r}, the table's is {sys_t!r}")
    seed_l, seed_t = library.meta.get("seed"), train.meta.get("seed")
    if library.meta.get("kind") == train.meta.get("kind") == "mock-ifu" and seed_l is not None and seed_l == seed_t:
        raise InputError(f"library {name} was simulated with the table's seed ({seed_t}): it would replay the "
                         "table's galaxies, the test galaxies among them; simulate it with another --seed")
    lib = library.spaxels.reset_index(drop=True).copy()
    missing = [c for c in train.spaxels.columns if c not in lib.columns]
    if missing:
        raise InputError(f"library {name} lacks column(s) {missing[:6]}")
    gal_t = train.galaxies
    top = max(int(train.spaxels["galaxy_id"].max()), int(gal_t["galaxy_id"].max()) if gal_t is not None else -1) + 1
    lib["galaxy_id"] = lib["galaxy_id"].to_numpy() + top
    spax = pd.concat([train.spaxels, lib[list(train.spaxels.columns)]], ignore_index=True)
    gals = gal_t
    if gal_t is not None and library.galaxies is not None:
        lg = library.galaxies.copy()
        lg["galaxy_id"] = lg["galaxy_id"].to_numpy() + top
        gals = pd.concat([gal_t, lg[[c for c in gal_t.columns if c in lg.columns]]], ignore_index=True)
    return dataclasses.replace(train, spaxels=spax, galaxies=gals)

