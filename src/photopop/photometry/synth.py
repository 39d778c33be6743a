"""Synthetic AB photometry of many spectra at once, and the AB magnitude/flux formulas.

Photon-counting AB definition (Fukugita et al. 1996; Bessell & Murphy 2012):

    <f_nu> = int f_lambda T lambda dlambda / int T (c / lambda) dlambda
           = int f_nu T / lambda dlambda / int T / lambda dlambda
    m_AB   = -2.5 log10(<f_nu> / 3631 Jy)

Method. The spectrum is taken as piecewise linear between its pixels (in the quantity it is given
in, f_lambda or f_nu), the filter curve as piecewise linear between its samples. For each band the
integrals run on the union of both grids with the trapezoid rule, which makes every band a fixed
linear combination of the spectrum's pixels: a weight matrix of shape (n_bands, n_wave) built once
per (grid, filter system, redshift) and cached. The photometry of N spectra is then one matrix
product. The denominator uses the same quadrature (the weights applied to the flat-f_nu spectrum),
so a flat f_nu = 3631 Jy spectrum gives m_AB = 0 exactly on any grid.

Coverage. The share of a band's AB weight int T/lambda dlambda outside the spectrum's wavelength
span, plus the share carried by masked pixels, decides the flag: 'full' (< 1e-6), 'partial'
(<= coverage_tolerance; computed over the covered part, flagged) or 'none' (NaN, never extrapolated).

Masked pixels (mask, ivar == 0, non-finite flux or error) are excluded and the band's weights
renormalised over the remaining pixels (exact for flat f_nu; for a sloped spectrum the bias is
at most the masked share times the relative flux change across the band).

Errors. Pixels are taken as independent: var(<f_nu>) = sum_i W_i^2 sigma_i^2 through the same
weights; mag_err = 2.5 / ln 10 * sigma_f / f (first order).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from astropy import units as u

from ..errors import InputError
from .filters import FilterCurve, FilterSystem, load_filter_system

__all__ = [
    "AB_ZERO_POINT_JY",
    "C_AA_PER_S",
    "FLAM_UNIT",
    "PhotometryResult",
    "BandWeights",
    "synth_photometry",
    "band_weights",
    "ab_mag_to_maggies",
    "maggies_to_ab_mag",
    "ab_mag_to_nmgy",
    "nmgy_to_ab_mag",
    "ab_mag_to_jy",
    "jy_to_ab_mag",
    "mag_err_from_flux",
    "flux_err_from_mag",
]

AB_ZERO_POINT_JY = 3631.0
#: speed of light in Angstrom / s
C_AA_PER_S = 2.99792458e18
FLAM_UNIT = u.erg / u.s / u.cm**2 / u.AA
_ERG_PER_JY = 1e-23  # erg s^-1 cm^-2 Hz^-1 per Jy
#: uncovered share below which a band counts as 'full'
FULL_EPS = 1e-6
_LN10_25 = 2.5 / np.log(10.0)


# -- magnitude / flux formulas (the one place for them) ---------------------------------------

def ab_mag_to_maggies(mag: Any) -> np.ndarray:
    """AB magnitude -> flux in maggies (1 maggy = 3631 Jy)."""
    return 10.0 ** (-0.4 * np.asarray(mag, dtype=float))


def maggies_to_ab_mag(maggies: Any) -> np.ndarray:
    """Flux in maggies -> AB magnitude; NaN where the flux is not positive."""
    f = np.asarray(maggies, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, -2.5 * np.log10(np.where(f > 0, f, 1.0)), np.nan)


def ab_mag_to_nmgy(mag: Any) -> np.ndarray:
    """AB magnitude -> flux in nanomaggies (m = 22.5 - 2.5 log10 f_nmgy)."""
    return 1e9 * ab_mag_to_maggies(mag)


def nmgy_to_ab_mag(nmgy: Any) -> np.ndarray:
    """Flux in nanomaggies -> AB magnitude; NaN where the flux is not positive."""
    return maggies_to_ab_mag(np.asarray(nmgy, dtype=float) * 1e-9)


def ab_mag_to_jy(mag: Any) -> np.ndarray:
    """AB magnitude -> f_nu in Jy."""
    return AB_ZERO_POINT_JY * ab_mag_to_maggies(mag)


def jy_to_ab_mag(jy: Any) -> np.ndarray:
    """f_nu in Jy -> AB magnitude; NaN where the flux is not positive."""
    return maggies_to_ab_mag(np.asarray(jy, dtype=float) / AB_ZERO_POINT_JY)


def mag_err_from_flux(flux: Any, flux_err: Any) -> np.ndarray:
    """1-sigma magnitude error 2.5/ln10 * sigma_f / f (first order); NaN where f <= 0."""
    f = np.asarray(flux, dtype=float)
    e = np.asarray(flux_err, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, _LN10_25 * e / np.where(f > 0, f, 1.0), np.nan)


def flux_err_from_mag(flux: Any, mag_err: Any) -> np.ndarray:
    """1-sigma flux error from a magnitude error: sigma_f = f * mag_err * ln10 / 2.5."""
    return np.asarray(flux, dtype=float) * np.asarray(mag_err, dtype=float) / _LN10_25


# -- weight matrices ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class BandWeights:
    """Integration weights of a filter system on one spectrum grid.

    For a spectrum f on the grid, the band-averaged f_nu is ``kernel @ f / norm * to_jy`` (in Jy),
    and with pixels masked ``kernel @ (good * f) / (share @ good) * to_jy``. `share` holds each
    pixel's contribution to a band's AB weight (its rows sum to `norm`); `uncovered` is the share of
    each band's AB weight outside the grid.
    """

    bands: tuple[str, ...]
    flux_kind: str  # 'flambda' (erg/s/cm2/A) or 'fnu' (Jy)
    wavelength_aa: np.ndarray
    kernel: np.ndarray
    share: np.ndarray
    norm: np.ndarray
    uncovered: np.ndarray

    @property
    def to_jy(self) -> float:
        """Factor from the kernel's natural unit to Jy."""
        return 1.0 / _ERG_PER_JY if self.flux_kind == "flambda" else 1.0

    @property
    def columns(self) -> slice:
        """The pixels any band uses (the rest of the spectrum never enters the photometry)."""
        used = np.flatnonzero(np.any(self.kernel != 0, axis=0))
        return slice(int(used[0]), int(used[-1]) + 1) if used.size else slice(0, 0)

    @property
    def matrix(self) -> np.ndarray:
        """(n_bands, n_wave) matrix giving <f_nu> in Jy from an unmasked spectrum (zero rows for
        bands with no overlap)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.norm[:, None] > 0, self.kernel / self.norm[:, None], 0.0) * self.to_jy


def _kernel_row(wave: np.ndarray, curve: FilterCurve, power: int) -> np.ndarray:
    """sum_k q_k T(x_k) x_k^power H_ki on the union grid x (H: linear interpolation onto x)."""
    nw = wave.size
    fw, ft = curve.wavelength, curve.transmission
    lo, hi = max(wave[0], fw[0]), min(wave[-1], fw[-1])
    if hi <= lo:
        return np.zeros(nw)
    x = np.union1d(np.union1d(fw[(fw > lo) & (fw < hi)], wave[(wave > lo) & (wave < hi)]), [lo, hi])
    t = np.interp(x, fw, ft)
    dx = np.diff(x)
    q = np.zeros_like(x)
    q[:-1] += 0.5 * dx
    q[1:] += 0.5 * dx
    g = q * t * x**power
    j = np.clip(np.searchsorted(wave, x, side="right") - 1, 0, nw - 2)
    frac = (x - wave[j]) / (wave[j + 1] - wave[j])
    return np.bincount(j, g * (1.0 - frac), minlength=nw) + np.bincount(j + 1, g * frac, minlength=nw)


_WEIGHT_CACHE: "OrderedDict[tuple, BandWeights]" = OrderedDict()
_WEIGHT_CACHE_SIZE = 8


def band_weights(wavelength_aa: np.ndarray, system: FilterSystem | str, flux_kind: str = "flambda") -> BandWeights:
    """Weights of every band of `system` on the (observed-frame) grid `wavelength_aa` (cached)."""
    system = load_filter_system(system)
    wave = np.ascontiguousarray(wavelength_aa, dtype=float)
    if flux_kind not in {"flambda", "fnu"}:
        raise InputError(f"flux_kind must be 'flambda' or 'fnu', not {flux_kind!r}")
    key = (hashlib.sha1(wave.tobytes()).hexdigest(), wave.size, system.key, flux_kind)
    hit = _WEIGHT_CACHE.get(key)
    if hit is not None:
        _WEIGHT_CACHE.move_to_end(key)
        return hit
    power = 1 if flux_kind == "flambda" else -1
    kernel = np.vstack([_kernel_row(wave, c, power) for c in system.curves])
    share = kernel * (C_AA_PER_S / wave**2) if flux_kind == "flambda" else kernel.copy()
    uncovered = np.array([c.share_outside(wave[0], wave[-1]) for c in system.curves])
    for arr in (wave, kernel, share, uncovered):
        arr.setflags(write=False)
    weights = BandWeights(tuple(system.bands), flux_kind, wave, kernel, share, share.sum(axis=1), uncovered)
    _WEIGHT_CACHE[key] = weights
    while len(_WEIGHT_CACHE) > _WEIGHT_CACHE_SIZE:
        _WEIGHT_CACHE.popitem(last=False)
    return weights


# -- input handling ----------------------------------------------------------------------------

def _wavelength_aa(wavelength: Any, wave_unit: Any) -> np.ndarray:
    if isinstance(wavelength, u.Quantity):
        if not wavelength.unit.is_equivalent(u.AA):
            raise InputError(f"wavelength unit {wavelength.unit} is not a length")
        if wave_unit is not None and u.Unit(wave_unit) != wavelength.unit:
            raise InputError(f"wavelength is a Quantity in {wavelength.unit} but wave_unit={wave_unit!r} was given")
        w = wavelength.to_value(u.AA)
    else:
        if wave_unit is None:
            raise InputError("wavelength has no unit: pass an astropy Quantity or wave_unit='Angstrom' (or 'nm', ...)")
        try:
            unit = u.Unit(wave_unit)
        except (ValueError, TypeError) as exc:
            raise InputError(f"unknown wave_unit {wave_unit!r}") from exc
        if not unit.is_equivalent(u.AA):
            raise InputError(f"wave_unit {unit} is not a length unit")
        w = (np.asarray(wavelength, dtype=float) * unit).to_value(u.AA)
    w = np.asarray(w, dtype=float)
    if w.ndim != 1 or w.size < 2:
        raise InputError(f"wavelength must be one 1-D grid shared by all spectra (got shape {w.shape})")
    if not np.all(np.isfinite(w)):
        raise InputError("wavelength grid contains NaN or inf")
    if np.any(np.diff(w) <= 0):
        i = int(np.flatnonzero(np.diff(w) <= 0)[0])
        raise InputError(f"wavelength grid must be strictly increasing (pixel {i}: {w[i]:g} A, then {w[i + 1]:g} A)")
    if w[0] <= 0:
        raise InputError("wavelengths must be positive")
    return w


def _flux_kind(unit: u.UnitBase) -> tuple[str, u.UnitBase, bool]:
    """('flambda'|'fnu', canonical unit, needs spectral_density conversion) for a flux-density unit."""
    if unit.is_equivalent(FLAM_UNIT):
        return "flambda", FLAM_UNIT, False
    if unit.is_equivalent(u.Jy):
        return "fnu", u.Jy, False
    if unit.is_equivalent(FLAM_UNIT, equivalencies=u.spectral_density(1 * u.AA)):
        return "flambda", FLAM_UNIT, True  # photon flux densities (photlam, photnu)
    raise InputError(f"flux unit {unit} is not a spectral flux density (f_lambda such as erg/s/cm2/A, "
                     "f_nu such as Jy, or a photon flux density)")


def _flux_unit(flux: Any, flux_unit: Any) -> u.UnitBase:
    if isinstance(flux, u.Quantity):
        if flux_unit is not None and u.Unit(flux_unit) != flux.unit:
            raise InputError(f"flux is a Quantity in {flux.unit} but flux_unit={flux_unit!r} was given")
        return flux.unit
    if flux_unit is None:
        raise InputError("flux has no unit: pass an astropy Quantity or flux_unit= (e.g. "
                         "'erg / (s cm2 Angstrom)', '1e-17 erg / (s cm2 Angstrom)' or 'Jy')")
    try:
        return u.Unit(flux_unit)
    except (ValueError, TypeError) as exc:
        raise InputError(f"unknown flux_unit {flux_unit!r}") from exc


def _to_canonical(values: np.ndarray, unit: u.UnitBase, canonical: u.UnitBase, spectral: bool,
                  wave_aa: np.ndarray) -> np.ndarray:
    if unit == canonical:
        return np.asarray(values, dtype=float)
    if spectral:
        return (np.asarray(values, dtype=float) * unit).to_value(canonical, u.spectral_density(wave_aa * u.AA))
    return np.asarray(values, dtype=float) * unit.to(canonical)


def _rows(a: Any, n_wave: int, what: str) -> np.ndarray:
    arr = a.value if isinstance(a, u.Quantity) else np.asarray(a)
    if arr.ndim not in (1, 2) or arr.shape[-1] != n_wave:
        raise InputError(f"{what} must have shape (n_wavelengths,) or (n_spectra, n_wavelengths) with "
                         f"n_wavelengths = {n_wave}; got {arr.shape}")
    return arr


# -- result ------------------------------------------------------------------------------------

@dataclass
class PhotometryResult:
    """AB photometry of one (1-D arrays, one value per band) or many spectra (n_spectra, n_bands).

    flux_jy / flux_maggies / flux_nmgy: band-averaged f_nu in Jy, maggies, nanomaggies.
    coverage: 'full', 'partial' (computed over the covered part) or 'none' (values NaN).
    uncovered_fraction: share of the band's AB weight outside the spectrum or masked.
    Errors (None unless flux_err or ivar was given): flux_err_* and mag_err.
    """

    bands: list[str]
    filter_system: str
    pivot_aa: np.ndarray
    mag_ab: np.ndarray
    flux_maggies: np.ndarray
    flux_nmgy: np.ndarray
    flux_jy: np.ndarray
    coverage: np.ndarray
    uncovered_fraction: np.ndarray
    mag_err: np.ndarray | None = None
    flux_err_maggies: np.ndarray | None = None
    flux_err_nmgy: np.ndarray | None = None
    flux_err_jy: np.ndarray | None = None
    redshift: float = 0.0

    @property
    def n_spectra(self) -> int:
        """Number of spectra (1 for 1-D input)."""
        return 1 if self.mag_ab.ndim == 1 else self.mag_ab.shape[0]

    def to_table(self, layout: str = "wide") -> pd.DataFrame:
        """A DataFrame. ``wide``: one row per spectrum with ``mag_<band>``, ``magerr_<band>``,
        ``flux_nmgy_<band>``, ``flux_err_nmgy_<band>``, ``coverage_<band>``. ``long``: one row per
        (spectrum, band) with spectrum, band, pivot_aa, mag_ab, mag_err, flux_nmgy, flux_err_nmgy,
        flux_jy, coverage, uncovered_fraction."""
        two = lambda a: None if a is None else np.atleast_2d(a)  # noqa: E731
        mag, err, nm, nm_err = two(self.mag_ab), two(self.mag_err), two(self.flux_nmgy), two(self.flux_err_nmgy)
        cov, unc, jy = two(self.coverage), two(self.uncovered_fraction), two(self.flux_jy)
        if layout == "wide":
            cols: dict[str, Any] = {}
            for k, b in enumerate(self.bands):
                cols[f"mag_{b}"] = mag[:, k]
                if err is not None:
                    cols[f"magerr_{b}"] = err[:, k]
                cols[f"flux_nmgy_{b}"] = nm[:, k]
                if nm_err is not None:
                    cols[f"flux_err_nmgy_{b}"] = nm_err[:, k]
                cols[f"coverage_{b}"] = cov[:, k]
            return pd.DataFrame(cols)
        if layout == "long":
            n, nb = mag.shape
            nan = np.full((n, nb), np.nan)
            return pd.DataFrame({
                "spectrum": np.repeat(np.arange(n), nb),
                "band": np.tile(self.bands, n),
                "pivot_aa": np.tile(self.pivot_aa, n),
                "mag_ab": mag.ravel(),
                "mag_err": (err if err is not None else nan).ravel(),
                "flux_nmgy": nm.ravel(),
                "flux_err_nmgy": (nm_err if nm_err is not None else nan).ravel(),
                "flux_jy": jy.ravel(),
                "coverage": cov.ravel(),
                "uncovered_fraction": unc.ravel(),
            })
        raise InputError(f"layout must be 'wide' or 'long', not {layout!r}")


# -- the integration ---------------------------------------------------------------------------

def synth_photometry(wavelength: Any, flux: Any, system: FilterSystem | str, *, flux_unit: Any = None,
                     wave_unit: Any = None, redshift: float = 0.0, flux_err: Any = None, ivar: Any = None,
                     mask: Any = None, coverage_tolerance: float = 0.01,
                     chunk_size: int = 1024) -> PhotometryResult:
    """AB magnitudes and fluxes of one or many spectra on one shared wavelength grid.

    wavelength: length Quantity, or numbers with `wave_unit`. flux: (n_wave,) or (n_spectra, n_wave)
    f_lambda or f_nu (or photon flux density) as a Quantity, or numbers with `flux_unit`; unit-less
    input is refused. flux_err (same unit as flux) or ivar (its inverse square): optional, same
    shape. mask: True marks bad pixels (same shape, or (n_wave,) for all spectra).

    redshift: treat the input as rest frame and observe it at z: lambda_obs = lambda (1 + z),
    f_lambda,obs = f_lambda / (1 + z) (f_nu,obs = f_nu (1 + z)); for an input L_lambda / (4 pi d_L^2)
    this is the observed flux. Distance dimming is the caller's business.

    Spectra are processed in chunks of `chunk_size` rows (bounded memory), each chunk with one
    matrix product.
    """
    system = load_filter_system(system)
    wave_rest = _wavelength_aa(wavelength, wave_unit)
    if not np.isfinite(redshift) or redshift <= -1:
        raise InputError(f"redshift must be finite and > -1, got {redshift}")
    if not 0 <= coverage_tolerance < 1:
        raise InputError(f"coverage_tolerance must be in [0, 1), got {coverage_tolerance}")
    nw = wave_rest.size
    unit = _flux_unit(flux, flux_unit)
    kind, canonical, spectral = _flux_kind(unit)
    values = _rows(flux, nw, "flux")
    one = values.ndim == 1
    values = np.atleast_2d(values)
    n = values.shape[0]

    if flux_err is not None and ivar is not None:
        raise InputError("give flux_err or ivar, not both")
    err_arr = ivar_arr = None
    if flux_err is not None:
        if isinstance(flux_err, u.Quantity):
            try:
                flux_err = flux_err.to_value(unit, u.spectral_density(wave_rest * u.AA))
            except u.UnitConversionError as exc:
                raise InputError(f"flux_err unit {flux_err.unit} does not match the flux unit {unit}") from exc
        err_arr = np.broadcast_to(np.atleast_2d(_rows(flux_err, nw, "flux_err")), values.shape)
    if ivar is not None:
        if isinstance(ivar, u.Quantity):
            ivar = ivar.to_value(unit**-2)
        ivar_arr = np.broadcast_to(np.atleast_2d(_rows(ivar, nw, "ivar")).astype(float, copy=False), values.shape)
        with np.errstate(invalid="ignore"):
            if np.any(ivar_arr < 0):
                raise InputError("ivar has negative values; inverse variances must be >= 0 (0 = masked pixel)")
    mask_arr = None
    if mask is not None:
        mask_arr = np.broadcast_to(np.atleast_2d(_rows(mask, nw, "mask")).astype(bool), values.shape)

    scale = 1.0 / (1.0 + redshift) if kind == "flambda" else (1.0 + redshift)
    wave_obs = wave_rest * (1.0 + redshift)
    weights = band_weights(wave_obs, system, kind)
    cols = weights.columns  # only pixels inside some band are read, converted and checked
    wave_used = wave_rest[cols]
    matrix = weights.matrix[:, cols]
    matrix_sq = matrix**2
    kernel, share = weights.kernel[:, cols], weights.share[:, cols]
    kernel_sq = kernel**2
    nb = len(system)
    has_err = err_arr is not None or ivar_arr is not None

    fnu = np.empty((n, nb))
    var = np.empty((n, nb)) if has_err else None
    bad_share = np.zeros((n, nb))
    no_overlap = weights.norm <= 0
    chunk_size = max(1, int(chunk_size))
    for start in range(0, n, chunk_size):
        sl = slice(start, min(n, start + chunk_size))
        f = _to_canonical(values[sl, cols], unit, canonical, spectral, wave_used)
        if scale != 1.0:
            f = f * scale
        good = np.isfinite(f)
        sig2 = None
        if err_arr is not None:
            e = _to_canonical(err_arr[sl, cols], unit, canonical, spectral, wave_used) * scale
            if np.any(e < 0):
                raise InputError("flux_err has negative values")
            good &= np.isfinite(e)
            sig2 = e**2
        elif ivar_arr is not None:
            iv = ivar_arr[sl, cols]
            good &= np.isfinite(iv) & (iv > 0)
            with np.errstate(divide="ignore"):
                # ivar is in (input unit)^-2: convert sigma = ivar^-1/2 like the flux
                sig2 = (_to_canonical(np.where(good, 1.0 / np.sqrt(np.where(good, iv, 1.0)), 0.0), unit, canonical,
                                      spectral, wave_used) * scale) ** 2
        if mask_arr is not None:
            good &= ~mask_arr[sl, cols]
        if good.all():
            fnu[sl] = f @ matrix.T
            if has_err:
                var[sl] = sig2 @ matrix_sq.T
            continue
        fz = np.where(good, f, 0.0)
        den = good.astype(float) @ share.T
        with np.errstate(divide="ignore", invalid="ignore"):
            fnu[sl] = (fz @ kernel.T) / den * weights.to_jy
            bad_share[sl] = np.where(no_overlap, 1.0, 1.0 - den / np.where(no_overlap, 1.0, weights.norm))
            if has_err:
                var[sl] = (np.where(good, sig2, 0.0) @ kernel_sq.T) / den**2 * weights.to_jy**2

    uncovered = np.clip(weights.uncovered + (1.0 - weights.uncovered) * bad_share, 0.0, 1.0)
    uncovered[:, no_overlap] = 1.0
    coverage = np.where(uncovered > coverage_tolerance, "none", np.where(uncovered > FULL_EPS, "partial", "full"))
    none = coverage == "none"
    fnu[none] = np.nan
    flux_err_jy = None
    if has_err:
        var[none] = np.nan
        flux_err_jy = np.sqrt(np.maximum(var, 0.0))
    maggies = fnu / AB_ZERO_POINT_JY
    pick = (lambda a: a[0]) if one else (lambda a: a)  # noqa: E731
    result = PhotometryResult(
        bands=system.bands,
        filter_system=system.name,
        pivot_aa=system.pivots,
        mag_ab=pick(maggies_to_ab_mag(maggies)),
        flux_maggies=pick(maggies),
        flux_nmgy=pick(maggies * 1e9),
        flux_jy=pick(fnu),
        coverage=pick(coverage),
        uncovered_fraction=pick(uncovered),
        redshift=float(redshift),
    )
    if flux_err_jy is not None:
        err_mgy = flux_err_jy / AB_ZERO_POINT_JY
        result.flux_err_jy = pick(flux_err_jy)
        result.flux_err_maggies = pick(err_mgy)
        result.flux_err_nmgy = pick(err_mgy * 1e9)
        result.mag_err = pick(mag_err_from_flux(maggies, err_mgy))
    return result
