"""Dust attenuation of composite stellar populations.

Each model gives two curves per unit A_V (mag of V-band attenuation at 5500 A):

* ``diffuse(wave)`` = A_lambda / A_V applied to all stars (the diffuse ISM, or a Calzetti screen);
* ``birth(wave)`` = extra A_lambda / A_V applied only to stars younger than ``t_bc_yr`` (birth clouds).

A spaxel with attenuation ``a_v`` then transmits ``10**(-0.4 * a_v * diffuse)`` for old stars and
``10**(-0.4 * a_v * (diffuse + birth))`` for young ones. Models:

* `Calzetti` (Calzetti et al. 2000, eq. 4, R_V = 4.05): k(lambda) for 0.12-2.2 micron; ``young_extra`` gives
  young stars A_V,young = A_V * (1 + young_extra) (0 = plain Calzetti).
* `CharlotFall` (Charlot & Fall 2000): ISM (lambda/5500)^-0.7 for all stars, birth clouds
  (lambda/5500)^index_bc for stars < 10 Myr with A_V^BC = a_v * (1 - mu) / mu (mu = 0.3: A_V^BC = 2.33 a_v).
  Here ``a_v`` is the ISM (old-star) A_V.
* `Extinction` -- any R_V-parameterised Milky-Way-type extinction curve from `dust_extinction`
  (default G23, R_V = 3.1) as a foreground screen.
* `NoDust`.

Calzetti is an attenuation law that the installed `dust_extinction` does not provide (it ships extinction
curves only), so its published formula is coded here and tested against its defining values.
Outside a curve's valid range the curve is continued as a power law in wavelength that matches the value and
the logarithmic slope at the nearest edge (keeps A_lambda positive and smooth; for Calzetti beyond 2.2 micron
the attenuation keeps falling, in the far UV below 0.12 micron it keeps rising).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import InputError

V_AA = 5500.0


def _with_powerlaw_tails(func: Callable[[np.ndarray], np.ndarray], wave_aa: np.ndarray,
                         lo_aa: float, hi_aa: float) -> np.ndarray:
    """Evaluate `func` inside [lo, hi]; outside, continue it as a power law matched at the edge."""
    w = np.asarray(wave_aa, dtype=np.float64)
    out = np.empty_like(w)
    inside = (w >= lo_aa) & (w <= hi_aa)
    if np.any(inside):
        out[inside] = func(w[inside])
    for edge, mask, step in ((lo_aa, w < lo_aa, 1.001), (hi_aa, w > hi_aa, 1 / 1.001)):
        if np.any(mask):
            k0, k1 = func(np.array([edge, edge * step]))
            slope = np.log(k1 / k0) / np.log(step)
            out[mask] = k0 * (w[mask] / edge) ** slope
    return out


def calzetti_k(wave_aa, r_v: float = 4.05) -> np.ndarray:
    """Calzetti et al. (2000) k(lambda) = A_lambda / E(B-V)_star, with power-law tails outside 0.12-2.2 micron.

    Inside its range the curve comes from the maintained `extinction` package (``calzetti00``, which
    returns A_lambda for A_V = 1, so k = R_V A_lambda / A_V); `dust_extinction` ships no Calzetti law.
    """
    import extinction

    def k(w: np.ndarray) -> np.ndarray:
        return r_v * extinction.calzetti00(np.ascontiguousarray(w, dtype=np.float64), 1.0, r_v)

    return _with_powerlaw_tails(k, wave_aa, 1200.0, 22000.0)


class DustModel:
    """Base: subclasses give `diffuse(wave)` and `birth(wave)` (A_lambda / A_V) and `t_bc_yr`."""

    t_bc_yr: float = 1e7
    name: str = "dust"

    def diffuse(self, wave_aa) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def birth(self, wave_aa) -> np.ndarray:
        return np.zeros(np.shape(wave_aa))

    @property
    def has_birth_clouds(self) -> bool:
        return False

    def transmission(self, wave_aa, a_v) -> tuple[np.ndarray, np.ndarray | None]:
        """(T_all, T_birth_extra), each (n_spaxels, n_wave); T_birth_extra None when there are no birth clouds.

        Old stars get T_all, young stars (age < t_bc_yr) get T_all * T_birth_extra.
        """
        a_v = np.atleast_1d(np.asarray(a_v, dtype=np.float64))
        w = np.asarray(wave_aa, dtype=np.float64)
        t_all = 10.0 ** (-0.4 * a_v[:, None] * self.diffuse(w)[None, :])
        t_bc = 10.0 ** (-0.4 * a_v[:, None] * self.birth(w)[None, :]) if self.has_birth_clouds else None
        return t_all, t_bc


@dataclass(frozen=True)
class NoDust(DustModel):
    name: str = "none"

    def diffuse(self, wave_aa):
        return np.zeros(np.shape(wave_aa))


@dataclass(frozen=True)
class Calzetti(DustModel):
    """Calzetti (2000) starburst attenuation, A_lambda / A_V = k(lambda) / R_V; optional extra for young stars."""

    r_v: float = 4.05
    young_extra: float = 0.0
    t_bc_yr: float = 1e7
    name: str = "calzetti"

    def diffuse(self, wave_aa):
        return calzetti_k(wave_aa, self.r_v) / self.r_v

    def birth(self, wave_aa):
        return self.young_extra * self.diffuse(wave_aa)

    @property
    def has_birth_clouds(self) -> bool:
        return self.young_extra != 0.0


@dataclass(frozen=True)
class CharlotFall(DustModel):
    """Charlot & Fall (2000) two-component power laws; `a_v` is the ISM A_V (all stars).

    index_bc = -0.7 is CF00; -1.3 is the da Cunha et al. (2008) variant.
    """

    mu: float = 0.3
    index_ism: float = -0.7
    index_bc: float = -0.7
    t_bc_yr: float = 1e7
    name: str = "cf00"

    def __post_init__(self):
        if not 0 < self.mu <= 1:
            raise InputError("CharlotFall: mu must be in (0, 1]")

    def diffuse(self, wave_aa):
        return (np.asarray(wave_aa, dtype=np.float64) / V_AA) ** self.index_ism

    def birth(self, wave_aa):
        return (1 - self.mu) / self.mu * (np.asarray(wave_aa, dtype=np.float64) / V_AA) ** self.index_bc

    @property
    def has_birth_clouds(self) -> bool:
        return self.mu < 1


@dataclass(frozen=True)
class Extinction(DustModel):
    """A `dust_extinction` R_V-parameterised curve (e.g. 'G23', 'F99', 'CCM89') as a screen on all stars."""

    model: str = "G23"
    r_v: float = 3.1
    t_bc_yr: float = 1e7
    name: str = "extinction"

    def _curve(self):
        from dust_extinction import parameter_averages as pa

        cls = getattr(pa, self.model, None)
        if cls is None:
            raise InputError(f"dust_extinction has no R_V-parameterised model {self.model!r}")
        return cls(Rv=self.r_v)

    def diffuse(self, wave_aa):
        import astropy.units as u

        ext = self._curve()
        lo_aa, hi_aa = sorted(1e4 / np.asarray(ext.x_range, dtype=np.float64))
        lo_aa, hi_aa = lo_aa * 1.0001, hi_aa / 1.0001

        def f(w):
            return np.asarray(ext(w * u.AA), dtype=np.float64)

        return _with_powerlaw_tails(f, wave_aa, lo_aa, hi_aa) / f(np.array([V_AA]))[0]


def get_dust(dust) -> DustModel:
    """A DustModel from a name ('calzetti', 'cf00', 'none', or a dust_extinction model name) or an instance."""
    if isinstance(dust, DustModel):
        return dust
    if dust is None:
        return NoDust()
    if not isinstance(dust, str):
        raise InputError(f"dust must be a name or a DustModel, got {type(dust).__name__}")
    key = dust.lower()
    if key in {"none", "no", "off"}:
        return NoDust()
    if key in {"calzetti", "c00", "calzetti2000"}:
        return Calzetti()
    if key in {"cf00", "charlot_fall", "charlotfall"}:
        return CharlotFall()
    try:
        ext = Extinction(model=dust)
        ext._curve()
        return ext
    except InputError:
        raise InputError(f"unknown dust model {dust!r}; use 'calzetti', 'cf00', 'none' or a dust_extinction "
                         f"R_V model name (e.g. 'G23')") from None
