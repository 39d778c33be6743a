"""Stellar-population labels of composite populations, as the paper's spectroscopic fits report them.

Given the mass per grid SSP, W[s, z, a] (M_sun formed), the labels of spaxel s are:

* luminosity-weighted ``log_age`` = sum(W L log10(age)) / sum(W L) and ``zh`` = sum(W L [Z/H]) / sum(W L), where
  L[z, a] is each SSP's mean f_lambda over the reference window (default 5450-5550 A, i.e. light at 5500 A);
  ``light="intrinsic"`` (default) uses dust-free light, ``light="attenuated"`` multiplies by the spaxel's
  transmission at the window centre (young stars also by their birth-cloud transmission) -- the paper's
  STECKMAP weights are of the observed spectrum;
* mass-weighted ``log_age_mw`` / ``zh_mw`` with weights W * mass_fraction (surviving stellar mass, default) or
  W (``mass="formed"``);
* ``mass_formed`` = sum(W); ``stellar_mass`` = sum(W * mass_fraction) (surviving stars + remnants; NaN if the
  grid has no mass fractions);
* ``sfr_10`` / ``sfr_100``: SFR averaged over the last 10 / 100 Myr (M_sun/yr; exact from the SFH object);
* ``a_v`` (the model parameter) and ``a_v_eff`` = -2.5 log10(attenuated / intrinsic light in the window).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import pandas as pd

from ..errors import InputError

LightWeighting = Literal["intrinsic", "attenuated"]
MassWeighting = Literal["surviving", "formed"]


@dataclass
class Labels:
    """Per-spaxel labels (each an (n_spaxels,) float64 array); see the module docstring for definitions."""

    log_age: np.ndarray
    zh: np.ndarray
    log_age_mw: np.ndarray
    zh_mw: np.ndarray
    mass_formed: np.ndarray
    stellar_mass: np.ndarray
    sfr_10: np.ndarray
    sfr_100: np.ndarray
    a_v: np.ndarray
    a_v_eff: np.ndarray

    @property
    def log_ssfr(self) -> np.ndarray:
        """log10(SFR_100 / stellar mass / yr^-1); -inf when no recent star formation."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log10(self.sfr_100 / self.stellar_mass)

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame with the SEDTable label columns (log_age, zh, log_age_mw, zh_mw, a_v, log_ssfr) and extras."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["log_ssfr"] = self.log_ssfr
        data["log_mstar"] = np.log10(self.stellar_mass)
        return pd.DataFrame(data)

    def __len__(self) -> int:
        return int(np.size(self.log_age))

    @staticmethod
    def concatenate(parts: list["Labels"]) -> "Labels":
        return Labels(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Labels)})


def weighted_means(weights: np.ndarray, grid_log_age: np.ndarray, grid_zh: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Mean log age and [Z/H] of (n, nZ, nAge) non-negative weights; NaN where all weights are 0."""
    w = np.asarray(weights, dtype=np.float64)
    tot = w.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        la = np.einsum("sza,a->s", w, grid_log_age) / tot
        zh = np.einsum("sza,z->s", w, grid_zh) / tot
    return la, zh


def population_labels(grid, weights: np.ndarray, *, light_ref: np.ndarray, young: np.ndarray,
                      t_ref_all: np.ndarray | None = None, t_ref_bc: np.ndarray | None = None,
                      light: LightWeighting = "intrinsic", mass: MassWeighting = "surviving",
                      sfr_10: np.ndarray, sfr_100: np.ndarray, a_v: np.ndarray) -> Labels:
    """Labels of spaxels with mass per grid SSP `weights` (n, nZ, nAge).

    light_ref : (nZ, nAge) intrinsic reference-window light of each SSP per unit mass formed.
    young : (nAge,) bool, SSPs inside birth clouds. t_ref_all / t_ref_bc : (n,) transmissions at the reference
    wavelength (None = no dust / no birth clouds).
    """
    w = np.asarray(weights, dtype=np.float64)
    n = w.shape[0]
    lw = w * light_ref[None]
    intrinsic = lw.sum(axis=(1, 2))
    att = lw
    if t_ref_all is not None:
        fac = np.broadcast_to(np.asarray(t_ref_all, dtype=np.float64)[:, None], (n, young.size)).copy()
        if t_ref_bc is not None:
            fac[:, young] *= np.asarray(t_ref_bc, dtype=np.float64)[:, None]
        att = lw * fac[:, None, :]
    observed = att.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        a_v_eff = -2.5 * np.log10(observed / intrinsic)
    if light == "intrinsic":
        light_w = lw
    elif light == "attenuated":
        light_w = att
    else:
        raise InputError(f"light weighting must be 'intrinsic' or 'attenuated', got {light!r}")
    log_age, zh = weighted_means(light_w, grid.log_ages, grid.zh)
    if grid.mass_fraction is not None:
        surviving = w * grid.mass_fraction[None]
        stellar_mass = surviving.sum(axis=(1, 2))
    else:
        surviving = None
        stellar_mass = np.full(n, np.nan)
    if mass == "surviving":
        if surviving is None:
            raise InputError(f"SSP grid {grid.name} has no surviving-mass fractions; use mass weighting "
                             f"'formed' or give the grid a mass_fraction")
        mass_w = surviving
    elif mass == "formed":
        mass_w = w
    else:
        raise InputError(f"mass weighting must be 'surviving' or 'formed', got {mass!r}")
    log_age_mw, zh_mw = weighted_means(mass_w, grid.log_ages, grid.zh)
    return Labels(log_age=log_age, zh=zh, log_age_mw=log_age_mw, zh_mw=zh_mw, mass_formed=w.sum(axis=(1, 2)),
                  stellar_mass=stellar_mass, sfr_10=np.asarray(sfr_10, dtype=np.float64),
                  sfr_100=np.asarray(sfr_100, dtype=np.float64),
                  a_v=np.broadcast_to(np.asarray(a_v, dtype=np.float64), (n,)).copy(), a_v_eff=a_v_eff)
