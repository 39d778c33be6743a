"""Chemical histories and the split of each age bin's mass between grid metallicities.

A spaxel's metallicity is either one [Z/H] (constant in time) or a function of stellar age, [Z/H](age).
Mass formed at a [Z/H] between two grid metallicities is split between the two bracketing SSPs linearly in
[Z/H] (= linear in log Z), so a composite spectrum is always a linear combination of grid SSPs and the
mass-weighted mean [Z/H] of the components equals the requested [Z/H]. Outside the grid's [Z/H] range this
raises InputError by default; ``z_outside="clip"`` uses the nearest end metallicity instead (documented, never
extrapolated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import InputError

ZOutside = Literal["error", "clip"]


class ChemicalHistory:
    """Base class: `zh_at(log_age_yr)` gives [Z/H] per (spaxel, age), shape (n_spaxels, n_ages)."""

    n: int

    def zh_at(self, log_age_yr: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


def _param(name: str, value) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise InputError(f"chemical-history parameter {name} must be a finite scalar or 1-d array")
    return arr


@dataclass(eq=False)
class ConstantZ(ChemicalHistory):
    """One [Z/H] per spaxel for all its stars."""

    zh: np.ndarray

    def __post_init__(self):
        self.zh = _param("zh", self.zh)
        self.n = self.zh.size

    def zh_at(self, log_age_yr):
        la = np.atleast_1d(np.asarray(log_age_yr, dtype=np.float64))
        return np.broadcast_to(self.zh[:, None], (self.n, la.size)).copy()


@dataclass(eq=False)
class LinearLogAgeZ(ChemicalHistory):
    """[Z/H](age) = zh_ref + slope * (log10(age/yr) - log_age_ref): linear in log age.

    A negative `slope` (dex of [Z/H] per dex of age) makes older stars metal-poorer (chemical enrichment).
    """

    zh_ref: np.ndarray
    slope: np.ndarray
    log_age_ref: float = 9.0

    def __post_init__(self):
        self.zh_ref = _param("zh_ref", self.zh_ref)
        self.slope = _param("slope", self.slope)
        n = max(self.zh_ref.size, self.slope.size)
        if {self.zh_ref.size, self.slope.size} - {1, n}:
            raise InputError("LinearLogAgeZ: zh_ref and slope must have length 1 or n_spaxels")
        self.zh_ref = np.broadcast_to(self.zh_ref, (n,)).copy()
        self.slope = np.broadcast_to(self.slope, (n,)).copy()
        self.n = n

    def zh_at(self, log_age_yr):
        la = np.atleast_1d(np.asarray(log_age_yr, dtype=np.float64))
        return self.zh_ref[:, None] + self.slope[:, None] * (la[None, :] - self.log_age_ref)


@dataclass(eq=False)
class TabulatedZ(ChemicalHistory):
    """[Z/H] tabulated against log10(age/yr), linear interpolation, held constant beyond the table ends.

    `zh` is (n_t,) (same history for all spaxels) or (n_spaxels, n_t).
    """

    log_age_yr: np.ndarray
    zh: np.ndarray

    def __post_init__(self):
        self.log_age_yr = np.asarray(self.log_age_yr, dtype=np.float64)
        self.zh = np.atleast_2d(np.asarray(self.zh, dtype=np.float64))
        if self.log_age_yr.ndim != 1 or np.any(np.diff(self.log_age_yr) <= 0):
            raise InputError("TabulatedZ: log_age_yr must be strictly increasing")
        if self.zh.shape[-1] != self.log_age_yr.size or not np.all(np.isfinite(self.zh)):
            raise InputError("TabulatedZ: zh must be finite with last axis matching log_age_yr")
        self.n = self.zh.shape[0]

    def zh_at(self, log_age_yr):
        la = np.atleast_1d(np.asarray(log_age_yr, dtype=np.float64))
        # vectorised piecewise-linear interpolation for all spaxels at once
        i = np.clip(np.searchsorted(self.log_age_yr, la, side="right") - 1, 0, self.log_age_yr.size - 2)
        t = np.clip((la - self.log_age_yr[i]) / (self.log_age_yr[i + 1] - self.log_age_yr[i]), 0.0, 1.0)
        return self.zh[:, i] * (1 - t) + self.zh[:, i + 1] * t


def as_chemistry(zh, n_spaxels: int | None = None) -> ChemicalHistory | np.ndarray:
    """Normalise a `zh` argument: a ChemicalHistory, a scalar/(n,) constant [Z/H], or an (n, n_ages) array."""
    if isinstance(zh, ChemicalHistory):
        return zh
    arr = np.asarray(zh, dtype=np.float64)
    if arr.ndim <= 1:
        return ConstantZ(arr)
    if arr.ndim == 2:
        if not np.all(np.isfinite(arr)):
            raise InputError("zh array has non-finite values")
        return arr
    raise InputError(f"zh must be a scalar, (n_spaxels,), (n_spaxels, n_ages) or a ChemicalHistory; got {arr.shape}")


def zh_per_age(zh, log_ages: np.ndarray) -> np.ndarray:
    """(n_spaxels or 1, n_ages) [Z/H] of the stars in each age bin of a grid with these log ages."""
    chem = as_chemistry(zh)
    vals = chem.zh_at(log_ages) if isinstance(chem, ChemicalHistory) else chem
    if vals.shape[1] != log_ages.size:
        raise InputError(f"zh has {vals.shape[1]} age columns but the SSP grid has {log_ages.size} ages")
    return vals


def metallicity_split(grid_zh: np.ndarray, zh: np.ndarray, z_outside: ZOutside = "error"
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Lower bracketing grid index and the fraction going to index+1, linear in [Z/H].

    Returns (j, f) with the shape of `zh`: weight (1 - f) on grid_zh[j], f on grid_zh[j + 1].
    A one-metallicity grid accepts only that [Z/H] (or any with ``z_outside="clip"``).
    """
    grid_zh = np.asarray(grid_zh, dtype=np.float64)
    zh = np.asarray(zh, dtype=np.float64)
    lo, hi = grid_zh[0], grid_zh[-1]
    eps = 1e-9
    out = (zh < lo - eps) | (zh > hi + eps)
    if np.any(out):
        if z_outside == "error":
            raise InputError(f"{int(out.sum())} [Z/H] value(s) in [{zh.min():.3f}, {zh.max():.3f}] lie outside the "
                             f"SSP grid's [{lo:.3f}, {hi:.3f}]; pass z_outside='clip' to use the end metallicities")
        if z_outside != "clip":
            raise InputError(f"z_outside must be 'error' or 'clip', got {z_outside!r}")
    zc = np.clip(zh, lo, hi)
    if grid_zh.size == 1:
        return np.zeros(zh.shape, dtype=np.int64), np.zeros(zh.shape)
    j = np.clip(np.searchsorted(grid_zh, zc, side="right") - 1, 0, grid_zh.size - 2)
    f = (zc - grid_zh[j]) / (grid_zh[j + 1] - grid_zh[j])
    return j, np.clip(f, 0.0, 1.0)


def component_weights(age_weights: np.ndarray, grid_zh: np.ndarray, zh_age: np.ndarray,
                      z_outside: ZOutside = "error", dtype=np.float64) -> np.ndarray:
    """(n_spaxels, nZ, nAge) mass per grid SSP: each age bin's mass split between bracketing metallicities."""
    w = np.asarray(age_weights, dtype=np.float64)
    n, na = w.shape
    nz = np.size(grid_zh)
    j, f = metallicity_split(grid_zh, zh_age, z_outside)
    out = np.zeros((n, nz, na), dtype=dtype)
    rows = np.arange(n)[:, None]
    cols = np.arange(na)[None, :]
    out[rows, j, cols] = w * (1 - f)
    if nz > 1:
        out[rows, j + 1, cols] += w * f
    return out
