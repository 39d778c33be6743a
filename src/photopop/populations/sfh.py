"""Star-formation histories (SFHs), vectorised over many spaxels, binned onto SSP ages conserving mass.

Every SFH is a function of lookback time t (= the age the stars formed then have today). Parameters are
arrays broadcast to one value per spaxel, e.g. ``DelayedTau(age_start_gyr=np.array([...]), tau_gyr=2.0)``.
Each SFH knows its cumulative mass formed between now and lookback time t, ``cumulative_mass(t_yr)`` (exact,
analytic), from which

* ``weights(grid)`` -- mass formed in each SSP age bin, shape (n_spaxels, n_ages), summing to the total mass
  formed (bins: `SSPGrid.age_bin_edges`, geometric midpoints between SSP ages; a finer grid gives the same
  total), and
* ``mean_sfr(t_yr)`` -- SFR averaged over the last t years (M_sun/yr), e.g. SFR_10 and SFR_100

follow exactly. Mass formed outside the grid's age span is an error by default (``outside="error"``);
``outside="clip"`` assigns it to the youngest/oldest SSP instead (documented choice, never silent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

from ..errors import InputError

GYR = 1e9
Outside = Literal["error", "clip"]


def _as_param(name: str, value, positive: bool = False, nonneg: bool = False) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.ndim != 1:
        raise InputError(f"SFH parameter {name} must be a scalar or 1-d array (one value per spaxel)")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"SFH parameter {name} has non-finite values")
    if positive and np.any(arr <= 0):
        raise InputError(f"SFH parameter {name} must be > 0")
    if nonneg and np.any(arr < 0):
        raise InputError(f"SFH parameter {name} must be >= 0")
    return arr


def _broadcast(**params: np.ndarray) -> tuple[int, dict[str, np.ndarray]]:
    sizes = {k: v.size for k, v in params.items()}
    n = max(sizes.values())
    bad = {k: s for k, s in sizes.items() if s not in (1, n)}
    if bad:
        raise InputError(f"SFH parameters have inconsistent lengths {sizes}; each must be 1 or n_spaxels")
    return n, {k: np.broadcast_to(v, (n,)).copy() for k, v in params.items()}


class SFH:
    """Base class: subclasses implement `_unit_cumulative(t_yr)` (fraction of mass formed at lookback < t)."""

    n: int
    mass: np.ndarray

    def cumulative_mass(self, t_yr) -> np.ndarray:
        """(n_spaxels, n_t) mass formed between now and lookback time t (M_sun); t in yr, shape (n_t,)."""
        t = np.atleast_1d(np.asarray(t_yr, dtype=np.float64))
        return self.mass[:, None] * self._unit_cumulative(np.maximum(t, 0.0)[None, :])

    def _unit_cumulative(self, t: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def total_mass(self) -> np.ndarray:
        """(n_spaxels,) total mass formed, M_sun."""
        return self.mass.copy()

    def mean_sfr(self, t_yr: float) -> np.ndarray:
        """(n_spaxels,) SFR averaged over the last `t_yr` years, M_sun/yr."""
        if not t_yr > 0:
            raise InputError("mean_sfr needs a positive averaging time")
        return self.cumulative_mass([t_yr])[:, 0] / t_yr

    def binned_mass(self, edges_yr) -> np.ndarray:
        """(n_spaxels, n_edges-1) mass formed between consecutive lookback-time edges (yr, increasing)."""
        edges = np.asarray(edges_yr, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise InputError("age-bin edges must be a strictly increasing 1-d array")
        return np.diff(self.cumulative_mass(edges), axis=1)

    def weights(self, grid, outside: Outside = "error", rtol: float = 1e-6) -> np.ndarray:
        """(n_spaxels, n_ages) mass formed per SSP age bin of `grid` (an SSPGrid or its age-bin edges).

        Mass formed younger than the lowest edge or older than the highest edge raises InputError
        (relative tolerance `rtol` of the total) unless ``outside="clip"``, which adds it to the youngest /
        oldest SSP.
        """
        edges = grid.age_bin_edges() if hasattr(grid, "age_bin_edges") else np.asarray(grid, dtype=np.float64)
        w = self.binned_mass(edges)
        below = self.cumulative_mass([edges[0]])[:, 0]
        above = self.mass - self.cumulative_mass([edges[-1]])[:, 0]
        above = np.maximum(above, 0.0)
        if outside == "clip":
            w[:, 0] += below
            w[:, -1] += above
        elif outside == "error":
            tol = rtol * np.maximum(self.mass, 1e-300)
            bad_lo = below > tol
            bad_hi = above > tol
            if np.any(bad_lo) or np.any(bad_hi):
                name = getattr(grid, "name", "SSP grid")
                msg = []
                if np.any(bad_lo):
                    frac = np.max(below / np.maximum(self.mass, 1e-300))
                    msg.append(f"{bad_lo.sum()} spaxel(s) form up to {frac:.3g} of their mass at ages < "
                               f"{edges[0]:.4g} yr, younger than {name}'s youngest age bin")
                if np.any(bad_hi):
                    frac = np.max(above / np.maximum(self.mass, 1e-300))
                    msg.append(f"{bad_hi.sum()} spaxel(s) form up to {frac:.3g} of their mass at ages > "
                               f"{edges[-1]:.4g} yr, older than its oldest bin")
                raise InputError("; ".join(msg) + "; pass outside='clip' to assign that mass to the end SSPs")
        else:
            raise InputError(f"outside must be 'error' or 'clip', got {outside!r}")
        return w


@dataclass(eq=False)
class Constant(SFH):
    """Constant SFR from lookback time `age_start_gyr` until `age_end_gyr` (default 0 = today)."""

    age_start_gyr: np.ndarray
    mass: np.ndarray = field(default_factory=lambda: np.ones(1))
    age_end_gyr: np.ndarray = field(default_factory=lambda: np.zeros(1))

    def __post_init__(self):
        p = dict(a=_as_param("age_start_gyr", self.age_start_gyr, positive=True),
                 m=_as_param("mass", self.mass, nonneg=True),
                 e=_as_param("age_end_gyr", self.age_end_gyr, nonneg=True))
        self.n, p = _broadcast(**p)
        if np.any(p["e"] >= p["a"]):
            raise InputError("Constant SFH: age_end_gyr must be < age_start_gyr")
        self.age_start_gyr, self.mass, self.age_end_gyr = p["a"], p["m"], p["e"]

    def _unit_cumulative(self, t):
        a, e = self.age_start_gyr[:, None] * GYR, self.age_end_gyr[:, None] * GYR
        return np.clip((t - e) / (a - e), 0.0, 1.0)

    @property
    def rate(self) -> np.ndarray:
        """(n_spaxels,) the constant SFR, M_sun/yr."""
        return self.mass / ((self.age_start_gyr - self.age_end_gyr) * GYR)


@dataclass(eq=False)
class _StartTau(SFH):
    """Shared parameters of the tau models: start (lookback, Gyr), timescale tau (Gyr), mass formed."""

    age_start_gyr: np.ndarray
    tau_gyr: np.ndarray
    mass: np.ndarray = field(default_factory=lambda: np.ones(1))

    def __post_init__(self):
        p = dict(a=_as_param("age_start_gyr", self.age_start_gyr, positive=True),
                 tau=_as_param("tau_gyr", self.tau_gyr, positive=True), m=_as_param("mass", self.mass, nonneg=True))
        self.n, p = _broadcast(**p)
        self.age_start_gyr, self.tau_gyr, self.mass = p["a"], p["tau"], p["m"]


@dataclass(eq=False)
class Exponential(_StartTau):
    """SFR ∝ exp(-T/tau), T = time since the start (lookback `age_start_gyr`); tau > 0."""

    def _unit_cumulative(self, t):
        a, tau = self.age_start_gyr[:, None] * GYR, self.tau_gyr[:, None] * GYR
        tc = np.minimum(t, a)
        # mass at lookback < t: ∫_{a-t}^{a} e^{-T/tau} dT = tau e^{-(a-t)/tau} (1 - e^{-t/tau});
        # total: tau (1 - e^{-a/tau})
        num = np.exp(-(a - tc) / tau) * -np.expm1(-tc / tau)
        return num / -np.expm1(-a / tau)


def _g_delayed(y: np.ndarray) -> np.ndarray:
    """∫_0^y x e^{-x} dx = 1 - e^{-y}(1 + y), accurate for small y (series below 1e-3)."""
    y = np.asarray(y, dtype=np.float64)
    e = np.exp(-y)
    out = -np.expm1(-y) - y * e
    small = y < 1e-3
    if np.any(small):
        ys = y[small]
        out[small] = ys**2 / 2 - ys**3 / 3 + ys**4 / 8
    return out


@dataclass(eq=False)
class DelayedTau(_StartTau):
    """Delayed-tau SFR ∝ T exp(-T/tau), T = time since the start (lookback `age_start_gyr`)."""

    def _unit_cumulative(self, t):
        a, tau = self.age_start_gyr[:, None] * GYR, self.tau_gyr[:, None] * GYR
        tc = np.minimum(t, a)
        ga = _g_delayed(a / tau)
        return (ga - _g_delayed((a - tc) / tau)) / ga


@dataclass(eq=False)
class Burst(SFH):
    """Instantaneous burst of `mass` at lookback time `age_gyr`.

    Binned by splitting its mass between the two SSP ages bracketing it, linearly in log age (so the
    mass-weighted mean log age of the weights is exactly log10(age)); at a grid age it falls on that SSP alone.
    Outside the grid's ages the `outside` policy applies.
    """

    age_gyr: np.ndarray
    mass: np.ndarray = field(default_factory=lambda: np.ones(1))

    def __post_init__(self):
        p = dict(a=_as_param("age_gyr", self.age_gyr, positive=True), m=_as_param("mass", self.mass, nonneg=True))
        self.n, p = _broadcast(**p)
        self.age_gyr, self.mass = p["a"], p["m"]

    def _unit_cumulative(self, t):
        return (t >= self.age_gyr[:, None] * GYR).astype(np.float64)

    def weights(self, grid, outside: Outside = "error", rtol: float = 1e-6) -> np.ndarray:
        if not hasattr(grid, "ages_yr"):
            return super().weights(grid, outside, rtol)  # bare edges: mass into the containing bin
        la = np.log10(grid.ages_yr)
        lb = np.log10(self.age_gyr * GYR)
        lo_bad, hi_bad = lb < la[0] - 1e-12, lb > la[-1] + 1e-12
        if (np.any(lo_bad) or np.any(hi_bad)) and outside != "clip":
            if outside != "error":
                raise InputError(f"outside must be 'error' or 'clip', got {outside!r}")
            raise InputError(f"{int(lo_bad.sum() + hi_bad.sum())} burst(s) at ages outside {grid.name}'s "
                             f"{grid.ages_yr[0]:.4g}-{grid.ages_yr[-1]:.4g} yr; pass outside='clip'")
        lb = np.clip(lb, la[0], la[-1])
        j = np.clip(np.searchsorted(la, lb, side="right") - 1, 0, la.size - 2)
        f = (lb - la[j]) / (la[j + 1] - la[j])
        w = np.zeros((self.n, la.size))
        rows = np.arange(self.n)
        np.add.at(w, (rows, j), self.mass * (1 - f))
        np.add.at(w, (rows, j + 1), self.mass * f)
        return w


@dataclass(eq=False)
class Tabulated(SFH):
    """SFR tabulated on lookback times (yr), piecewise linear between samples and zero outside them.

    `sfr` is (n_t,) or (n_spaxels, n_t) in M_sun/yr; the total mass is its exact integral (trapezoid of the
    piecewise-linear SFR). `mass` is derived, not given.
    """

    lookback_yr: np.ndarray
    sfr: np.ndarray

    def __post_init__(self):
        t = np.asarray(self.lookback_yr, dtype=np.float64)
        s = np.atleast_2d(np.asarray(self.sfr, dtype=np.float64))
        if t.ndim != 1 or t.size < 2 or np.any(np.diff(t) <= 0) or t[0] < 0:
            raise InputError("Tabulated SFH: lookback_yr must be increasing, >= 0, with >= 2 samples")
        if s.shape[-1] != t.size or s.ndim != 2:
            raise InputError(f"Tabulated SFH: sfr shape {s.shape} does not end in n_t={t.size}")
        if not np.all(np.isfinite(s)) or np.any(s < 0):
            raise InputError("Tabulated SFH: sfr must be finite and >= 0")
        self.lookback_yr, self.sfr = t, s
        self.n = s.shape[0]
        seg = 0.5 * (s[:, 1:] + s[:, :-1]) * np.diff(t)
        self._cum = np.concatenate([np.zeros((self.n, 1)), np.cumsum(seg, axis=1)], axis=1)
        self.mass = self._cum[:, -1].copy()
        if np.any(self.mass <= 0):
            raise InputError("Tabulated SFH: every spaxel must form some mass")

    def cumulative_mass(self, t_yr) -> np.ndarray:
        t = np.clip(np.atleast_1d(np.asarray(t_yr, dtype=np.float64)), self.lookback_yr[0], self.lookback_yr[-1])
        i = np.clip(np.searchsorted(self.lookback_yr, t, side="right") - 1, 0, self.lookback_yr.size - 2)
        t0 = self.lookback_yr[i]
        dt = t - t0
        s0, s1 = self.sfr[:, i], self.sfr[:, i + 1]
        slope = (s1 - s0) / (self.lookback_yr[i + 1] - t0)
        return self._cum[:, i] + s0 * dt + 0.5 * slope * dt**2

    def _unit_cumulative(self, t):  # pragma: no cover - cumulative_mass is overridden
        return self.cumulative_mass(t[0]) / self.mass[:, None]


@dataclass(eq=False)
class Combined(SFH):
    """Sum of SFH components (each with its own mass), e.g. an old delayed-tau plus a recent burst."""

    components: Sequence[SFH]

    def __post_init__(self):
        comps = list(self.components)
        if not comps:
            raise InputError("Combined SFH needs at least one component")
        sizes = {c.n for c in comps}
        self.n = max(sizes)
        if not sizes <= {1, self.n}:
            raise InputError(f"Combined SFH components have inconsistent spaxel counts {sorted(sizes)}")
        self.components = comps
        self.mass = sum(np.broadcast_to(c.mass, (self.n,)) for c in comps).astype(np.float64)

    def cumulative_mass(self, t_yr) -> np.ndarray:
        return sum(np.broadcast_to(c.cumulative_mass(t_yr), (self.n, np.size(t_yr))) for c in self.components)

    def weights(self, grid, outside: Outside = "error", rtol: float = 1e-6) -> np.ndarray:
        total = None
        for c in self.components:
            w = c.weights(grid, outside, rtol)
            total = w.astype(np.float64) if total is None else total + w  # broadcasts (1, n_age) components
        return np.broadcast_to(total, (self.n, total.shape[1])).copy()


def with_burst(base: SFH, burst_age_gyr, burst_fraction) -> Combined:
    """`base` plus a burst at lookback `burst_age_gyr` holding `burst_fraction` of the total mass formed.

    The total mass is unchanged: the base is rescaled to (1 - f) of it.
    """
    f = _as_param("burst_fraction", burst_fraction, nonneg=True)
    if np.any(f > 1):
        raise InputError("burst_fraction must be in [0, 1]")
    n = max(base.n, f.size, np.size(burst_age_gyr))
    total = np.broadcast_to(base.mass, (n,)).astype(np.float64)
    f = np.broadcast_to(f, (n,))
    scaled = _Scaled(base, 1.0 - f)
    return Combined([scaled, Burst(age_gyr=np.broadcast_to(np.asarray(burst_age_gyr, float), (n,)), mass=total * f)])


class _Scaled(SFH):
    """An SFH multiplied by a per-spaxel factor."""

    def __init__(self, base: SFH, factor: np.ndarray):
        self.base = base
        self.n = max(base.n, np.size(factor))
        self.factor = np.broadcast_to(np.asarray(factor, dtype=np.float64), (self.n,))
        self.mass = np.broadcast_to(base.mass, (self.n,)) * self.factor

    def cumulative_mass(self, t_yr) -> np.ndarray:
        return self.base.cumulative_mass(t_yr) * self.factor[:, None]

    def weights(self, grid, outside: Outside = "error", rtol: float = 1e-6) -> np.ndarray:
        return self.base.weights(grid, outside, rtol) * self.factor[:, None]


def weights_mean_sfr(weights: np.ndarray, edges_yr: np.ndarray, t_yr: float) -> np.ndarray:
    """SFR over the last `t_yr` from binned weights, assuming constant SFR within each bin (approximation).

    Use `SFH.mean_sfr` when the SFH object is at hand: it is exact.
    """
    edges = np.asarray(edges_yr, dtype=np.float64)
    overlap = np.clip(np.minimum(edges[1:], t_yr) - edges[:-1], 0.0, None) / np.diff(edges)
    return np.asarray(weights) @ overlap / t_yr
