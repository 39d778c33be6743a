"""Composite stellar populations: SFH x chemistry x dust over an SSP grid, vectorised over many spaxels.

For spaxel s with mass W[s, z, a] in grid SSP (z, a) (from `SFH.weights` and the metallicity split), the
composite spectrum is

    f_s(lambda) = T_s(lambda) * [ sum_{old} W F(lambda) + T^BC_s(lambda) * sum_{young} W F(lambda) ]

with F the SSP spectra (L_sun/A per M_sun formed), T = 10**(-0.4 a_v A_lambda/A_V) the diffuse transmission and
T^BC the extra birth-cloud transmission of SSPs younger than the dust model's t_bc (10 Myr). Each sum is one
matrix product over the flattened (Z, age) axis; spaxels are processed in chunks (bounded memory) sorted by
metallicity so that each chunk only multiplies the grid columns it uses.

`compose` returns spectra; `compose_bands` returns band-integrated values (any linear functional of f_lambda,
e.g. synthetic-photometry fluxes) without keeping the spectra, either exactly from chunked spectra
(``method="spectrum"``) or from a dust-moment expansion (``method="moments"``, faster for many spaxels; see
its docstring for the accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import factorial
from typing import Iterator, Literal

import astropy.units as u
import numpy as np

from ..errors import InputError
from .chemistry import ZOutside, component_weights, metallicity_split, zh_per_age
from .dust import DustModel, get_dust
from .labels import Labels, LightWeighting, MassWeighting, population_labels
from .sfh import SFH, Outside, weights_mean_sfr
from .ssp import REF_WINDOW_AA, SSP_UNIT, SSPGrid

PerUnitMass = Literal["formed", "surviving"] | None
LN10_04 = 0.4 * np.log(10.0)  # A (mag) -> optical depth: T = exp(-LN10_04 * A)


@dataclass
class Composite:
    """Composite spectra and their labels.

    flux : (n_spaxels, n_wave) f_lambda in L_sun/A for the SFH's mass (or per M_sun formed / surviving when
    composed with ``per_unit_mass``); wavelength_aa : (n_wave,) rest frame, Angstrom.
    """

    wavelength_aa: np.ndarray
    flux: np.ndarray
    labels: Labels
    per_unit_mass: str | None = None

    @property
    def unit(self) -> u.UnitBase:
        return SSP_UNIT if self.per_unit_mass else u.L_sun / u.AA

    @property
    def wavelength(self) -> u.Quantity:
        return self.wavelength_aa * u.AA

    @property
    def flux_quantity(self) -> u.Quantity:
        return u.Quantity(self.flux, self.unit, copy=False)


@dataclass
class BandComposite:
    """Band values (n_spaxels, n_bands) = composite f_lambda @ band_matrix.T, and the labels."""

    values: np.ndarray
    labels: Labels
    per_unit_mass: str | None = None


def _sfh_weights(grid: SSPGrid, sfh, outside: Outside) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights (n, nAge), sfr_10, sfr_100) from an SFH object or an (n, nAge) weights array."""
    if isinstance(sfh, SFH):
        w = sfh.weights(grid, outside=outside)
        return w, sfh.mean_sfr(1e7), sfh.mean_sfr(1e8)
    w = np.atleast_2d(np.asarray(sfh, dtype=np.float64))
    if w.ndim != 2 or w.shape[1] != grid.ages_yr.size:
        raise InputError(f"SFH weights must be (n_spaxels, {grid.ages_yr.size}) for grid {grid.name}, got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InputError("SFH weights must be finite and >= 0")
    edges = grid.age_bin_edges()
    return w, weights_mean_sfr(w, edges, 1e7), weights_mean_sfr(w, edges, 1e8)


def _a_v(a_v, n: int) -> np.ndarray:
    a = np.atleast_1d(np.asarray(a_v, dtype=np.float64))
    if a.ndim != 1 or a.size not in (1, n):
        raise InputError(f"a_v must be a scalar or have one value per spaxel ({n}), got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise InputError("a_v must be finite and >= 0")
    return np.broadcast_to(a, (n,)).copy()


@dataclass
class _Prepared:
    grid: SSPGrid
    age_w: np.ndarray
    zh_age: np.ndarray
    sfr_10: np.ndarray
    sfr_100: np.ndarray
    a_v: np.ndarray
    dust: DustModel
    young: np.ndarray
    light_ref: np.ndarray
    t_ref: tuple[np.ndarray | None, np.ndarray | None]
    order: np.ndarray


def _prepare(grid, sfh, zh, a_v, dust, outside, z_outside, light_window) -> _Prepared:
    if not isinstance(grid, SSPGrid):
        raise InputError(f"grid must be an SSPGrid, got {type(grid).__name__}")
    age_w, sfr_10, sfr_100 = _sfh_weights(grid, sfh, outside)
    zh_age = zh_per_age(zh, grid.log_ages)
    a = np.atleast_1d(np.asarray(a_v, dtype=np.float64))
    sizes = {"sfh": age_w.shape[0], "zh": zh_age.shape[0], "a_v": a.size}
    n = max(sizes.values())
    if any(v not in (1, n) for v in sizes.values()):
        raise InputError(f"inconsistent numbers of spaxels {sizes}: each must be 1 or n_spaxels")
    age_w = np.broadcast_to(age_w, (n, age_w.shape[1]))
    zh_age = np.broadcast_to(zh_age, (n, zh_age.shape[1]))
    sfr_10, sfr_100 = (np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)) for x in (sfr_10, sfr_100))
    # only bins that hold mass must lie inside the grid's [Z/H] range; validate once, up front
    zh_age = np.where(age_w > 0, zh_age, np.clip(zh_age, grid.zh[0], grid.zh[-1]))
    metallicity_split(grid.zh, zh_age, z_outside)
    a = _a_v(a, n)
    dm = get_dust(dust)
    young = grid.ages_yr < dm.t_bc_yr
    light_ref = grid.mean_flux(light_window)
    centre = np.array([0.5 * (light_window[0] + light_window[1])])
    t_all, t_bc = dm.transmission(centre, a)
    order = np.argsort(zh_age.mean(axis=1), kind="stable")
    return _Prepared(grid, age_w, zh_age, sfr_10, sfr_100, a, dm, young, light_ref,
                     (t_all[:, 0], None if t_bc is None else t_bc[:, 0]), order)


def _chunk_labels(prep: _Prepared, grid: SSPGrid, idx: np.ndarray, w: np.ndarray, light, mass) -> Labels:
    return population_labels(grid, w, light_ref=prep.light_ref, young=prep.young, t_ref_all=prep.t_ref[0][idx],
                             t_ref_bc=None if prep.t_ref[1] is None else prep.t_ref[1][idx], light=light,
                             mass=mass, sfr_10=prep.sfr_10[idx], sfr_100=prep.sfr_100[idx], a_v=prep.a_v[idx])


def iter_compose(grid: SSPGrid, sfh, zh=0.0, a_v=0.0, dust="calzetti", *, wave_range=None,
                 outside: Outside = "error", z_outside: ZOutside = "error",
                 light_window: tuple[float, float] = REF_WINDOW_AA, light: LightWeighting = "intrinsic",
                 mass: MassWeighting = "surviving", chunk_size: int = 2048, dtype="float32", nebular=None
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, Labels]]:
    """Yield (spaxel indices, flux (len(idx), n_wave), labels) chunk by chunk; memory ~ chunk_size x n_wave.

    Arguments as `compose`; the chunks come in metallicity order, the indices say where each row belongs.
    """
    prep = _prepare(grid, sfh, zh, a_v, dust, outside, z_outside, light_window)
    yield from _iter_prepared(prep, wave_range, z_outside, light, mass, chunk_size, dtype, nebular)


def _line_setup(prep: _Prepared, g: SSPGrid, nebular):
    """(line table (nLine, nZ*nAge), profiles (nLine, nWave)) of the lines inside g's range, or None."""
    if nebular is None:
        return None
    from .nebular import NebularLines

    if not isinstance(nebular, NebularLines):
        raise InputError(f"nebular must be a NebularLines or None, got {type(nebular).__name__}")
    waves, table = nebular.luminosity_table(g)
    inside = (waves > g.wavelength_aa[0]) & (waves < g.wavelength_aa[-1])
    nz, na, _ = g.shape
    return table[inside].reshape(int(inside.sum()), nz * na), nebular.profiles(g.wavelength_aa, waves[inside])


def _iter_prepared(prep: _Prepared, wave_range, z_outside, light, mass, chunk_size, dtype, nebular=None):
    grid = prep.grid
    g = grid if wave_range is None else grid.restrict(wave_range)
    dt = np.dtype(dtype)
    nz, na, nw = g.shape
    flat = g.flat_spectra()
    young_cols = np.tile(prep.young, nz)
    wave = g.wavelength_aa
    lines = _line_setup(prep, g, nebular)
    if chunk_size < 1:
        raise InputError("chunk_size must be >= 1")
    for start in range(0, prep.order.size, chunk_size):
        idx = prep.order[start:start + chunk_size]
        w = component_weights(prep.age_w[idx], g.zh, prep.zh_age[idx], z_outside)  # (c, nZ, nAge) float64
        labels = _chunk_labels(prep, g, idx, w, light, mass)
        wf = w.reshape(idx.size, nz * na)
        used = wf.any(axis=0)
        t_all, t_bc = prep.dust.transmission(wave, prep.a_v[idx])
        split = t_bc is not None and np.any(used & young_cols)
        old_cols = used & ~young_cols if split else used
        flux = wf[:, old_cols].astype(dt) @ flat[old_cols].astype(dt, copy=False)
        if lines is not None:
            table, prof = lines
            flux += ((wf[:, old_cols] @ table[:, old_cols].T) @ prof).astype(dt)
        if split:
            yng_cols = used & young_cols
            young = wf[:, yng_cols].astype(dt) @ flat[yng_cols].astype(dt, copy=False)
            if lines is not None:
                young += ((wf[:, yng_cols] @ table[:, yng_cols].T) @ prof).astype(dt)
            flux += young * t_bc.astype(dt)
        if np.any(prep.a_v[idx] > 0):
            flux *= t_all.astype(dt)
        yield idx, flux, labels


def _normalise(values: np.ndarray, labels: Labels, per_unit_mass: PerUnitMass) -> None:
    if per_unit_mass is None:
        return
    if per_unit_mass == "formed":
        m = labels.mass_formed
    elif per_unit_mass == "surviving":
        m = labels.stellar_mass
        if np.any(~np.isfinite(m)):
            raise InputError("per_unit_mass='surviving' needs a grid with surviving-mass fractions")
    else:
        raise InputError(f"per_unit_mass must be None, 'formed' or 'surviving', got {per_unit_mass!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        values /= m[:, None].astype(values.dtype)


def _scatter_labels(parts: list[tuple[np.ndarray, Labels]], n: int) -> Labels:
    order = np.concatenate([p[0] for p in parts])
    lab = Labels.concatenate([p[1] for p in parts])
    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.arange(n)
    return Labels(**{k: v[inv] for k, v in vars(lab).items()})


def compose(grid: SSPGrid, sfh, zh=0.0, a_v=0.0, dust="calzetti", *, wave_range=None,
            per_unit_mass: PerUnitMass = None, outside: Outside = "error", z_outside: ZOutside = "error",
            light_window: tuple[float, float] = REF_WINDOW_AA, light: LightWeighting = "intrinsic",
            mass: MassWeighting = "surviving", chunk_size: int = 2048, dtype="float32",
            nebular=None) -> Composite:
    """Composite spectra (n_spaxels, n_wave) and labels of many spaxels at once.

    grid : SSPGrid. sfh : an SFH (n spaxels) or an (n, nAge) array of mass per SSP age.
    zh : [Z/H] -- scalar, (n,), (n, nAge) or a ChemicalHistory. a_v : V-band attenuation (mag), scalar or (n,).
    dust : 'calzetti' (default), 'cf00', 'none', a dust_extinction model name, or a DustModel.
    wave_range : (min, max) Angstrom to compose only part of the spectrum (memory: n x n_wave x 4 bytes).
    per_unit_mass : None (flux for the SFH's mass), 'formed' or 'surviving' (divide by that mass).
    outside / z_outside : 'error' (default) or 'clip' for mass at ages / [Z/H] beyond the grid.
    light_window, light, mass : label weighting (see `photopop.populations.labels`).
    nebular : a `NebularLines` to add emission lines of stars < 10 Myr (BC03 grid only); labels stay stellar.
    """
    prep = _prepare(grid, sfh, zh, a_v, dust, outside, z_outside, light_window)
    n = prep.order.size
    wave = (grid if wave_range is None else grid.restrict(wave_range)).wavelength_aa
    fluxes = np.empty((n, wave.size), dtype=np.dtype(dtype))
    parts = []
    for idx, flux, labels in _iter_prepared(prep, wave_range, z_outside, light, mass, chunk_size, dtype, nebular):
        fluxes[idx] = flux
        parts.append((idx, labels))
    labels = _scatter_labels(parts, n)
    _normalise(fluxes, labels, per_unit_mass)
    return Composite(wave, fluxes, labels, per_unit_mass)


def compose_bands(grid: SSPGrid, sfh, zh=0.0, a_v=0.0, dust="calzetti", *, band_matrix: np.ndarray,
                  method: Literal["spectrum", "moments"] = "spectrum", n_moments: int | None = None,
                  per_unit_mass: PerUnitMass = None, outside: Outside = "error", z_outside: ZOutside = "error",
                  light_window: tuple[float, float] = REF_WINDOW_AA, light: LightWeighting = "intrinsic",
                  mass: MassWeighting = "surviving", chunk_size: int = 2048, nebular=None) -> BandComposite:
    """Band values (n_spaxels, n_bands) = composite f_lambda @ band_matrix.T without keeping the spectra.

    band_matrix : (n_bands, n_wave) on ``grid.wavelength_aa`` (any linear functional of f_lambda, e.g. the
    photometry weight matrix; zero outside each band). Computed in float64.
    method="spectrum": exact -- compose each chunk's spectra, then project.
    method="moments": the attenuated band value of each SSP is expanded around the band's mean attenuation,
    exp(-tau a k(lambda)) = exp(-tau a k_b) * sum_n (-tau a (k - k_b))^n / n!, so
    value = exp(-tau a k_b) * sum_n (-tau a)^n / n! * (W @ M_n) with M_n = F (k - k_b)^n @ B.T precomputed per SSP.
    Exact in the limit; `n_moments` (default: enough for a relative truncation error < 1e-7 at the largest
    a_v) sets the order. Cost ~ n_moments small products instead of one product over all wavelengths.
    """
    B = np.asarray(band_matrix, dtype=np.float64)
    if B.ndim != 2 or B.shape[1] != grid.wavelength_aa.size:
        raise InputError(f"band_matrix must be (n_bands, {grid.wavelength_aa.size}) on the grid wavelengths, "
                         f"got {B.shape}")
    if method == "spectrum":
        support = np.flatnonzero(np.any(B != 0, axis=0))
        if support.size == 0:
            raise InputError("band_matrix is all zeros")
        lo, hi = grid.wavelength_aa[support[0]], grid.wavelength_aa[support[-1]]
        sl = slice(support[0], support[-1] + 1)
        prep = _prepare(grid, sfh, zh, a_v, dust, outside, z_outside, light_window)
        n = prep.order.size
        vals = np.empty((n, B.shape[0]))
        parts = []
        for idx, flux, labels in _iter_prepared(prep, (lo, hi), z_outside, light, mass, chunk_size, "float64",
                                                nebular):
            vals[idx] = flux @ B[:, sl].T
            parts.append((idx, labels))
        labels = _scatter_labels(parts, n)
        _normalise(vals, labels, per_unit_mass)
        return BandComposite(vals, labels, per_unit_mass)
    if method != "moments":
        raise InputError(f"method must be 'spectrum' or 'moments', got {method!r}")
    if nebular is not None:
        raise InputError("nebular lines need method='spectrum'")
    return _compose_bands_moments(grid, sfh, zh, a_v, dust, B, n_moments, per_unit_mass, outside, z_outside,
                                  light_window, light, mass, chunk_size)


def _compose_bands_moments(grid, sfh, zh, a_v, dust, B, n_moments, per_unit_mass, outside, z_outside,
                           light_window, light, mass, chunk_size) -> BandComposite:
    prep = _prepare(grid, sfh, zh, a_v, dust, outside, z_outside, light_window)
    nz, na, nw = grid.shape
    support = np.flatnonzero(np.any(B != 0, axis=0))
    sl = slice(support[0], support[-1] + 1)
    wave = grid.wavelength_aa[sl]
    Bs = B[:, sl]
    F = grid.flat_spectra()[:, sl].astype(np.float64)  # (nZ*nAge, nw')
    young_cols = np.tile(prep.young, nz)
    dm = prep.dust
    k_old = dm.diffuse(wave)
    curves = [("old", k_old, ~young_cols)]
    if dm.has_birth_clouds:
        curves.append(("young", k_old + dm.birth(wave), young_cols))
    else:
        curves[0] = ("all", k_old, np.ones(nz * na, dtype=bool))
    a_max = float(prep.a_v.max()) if prep.a_v.size else 0.0
    tables = []
    for _, k, cols in curves:
        # expansion point per band: the band-weighted mean of k for a flat spectrum
        absB = np.abs(Bs)
        k_b = (absB @ k) / absB.sum(axis=1)
        dk_max = float(np.max(np.where(absB > 0, np.abs(k[None, :] - k_b[:, None]), 0.0)))
        x = LN10_04 * a_max * dk_max
        if n_moments is None:
            order, term = 0, 1.0
            while term * np.exp(2 * x) > 1e-7 and order < 60:  # Lagrange remainder bound, relative
                order += 1
                term = x ** (order + 1) / factorial(order + 1)
            n_mom = order
        else:
            n_mom = int(n_moments)
        dk = k[None, :] - k_b[:, None]  # (n_bands, nw')
        Fc = F[cols]
        # M[n][ssp, band] = sum_lambda F (k - k_b)^n B
        M = np.concatenate([Fc @ (Bs * dk**m).T for m in range(n_mom + 1)], axis=1)  # (n_cols, (n_mom+1)*nb)
        tables.append((cols, k_b, M, n_mom))
    n = prep.age_w.shape[0]
    vals = np.zeros((n, B.shape[0]))
    parts = []
    for start in range(0, n, chunk_size):
        idx = prep.order[start:start + chunk_size]
        w = component_weights(prep.age_w[idx], grid.zh, prep.zh_age[idx], z_outside)
        labels = _chunk_labels(prep, grid, idx, w, light, mass)
        wf = w.reshape(idx.size, nz * na)
        av = prep.a_v[idx]
        out = np.zeros((idx.size, B.shape[0]))
        nb = B.shape[0]
        for cols, k_b, M, n_mom in tables:
            wm = (wf[:, cols] @ M).reshape(idx.size, n_mom + 1, nb)  # one pass over the weights
            y = -LN10_04 * av[:, None]
            series = wm[:, n_mom]
            for m in range(n_mom - 1, -1, -1):  # Horner: sum_m y^m / m! * (W @ M_m)
                series = wm[:, m] + series * (y / (m + 1))
            out += np.exp(-LN10_04 * av[:, None] * k_b[None, :]) * series
        vals[idx] = out
        parts.append((idx, labels))
    labels = _scatter_labels(parts, n)
    _normalise(vals, labels, per_unit_mass)
    return BandComposite(vals, labels, per_unit_mass)
