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
span or in gaps of its grid, plus the share of masked pixels before the first / after the last good
pixel, is the band's *uncovered* share; masked pixels between good pixels are filled by linear
interpolation and give its *interpolated* share (`photopop.photometry.masking`). Flags: 'full'
(both < 1e-6), 'interpolated' (interpolated share <= max_interpolated, default 10%), 'partial'
(uncovered share <= coverage_tolerance, default 1%: computed over the covered part) or 'none' (NaN,
never extrapolated).

Missing pixels: mask True, ivar <= 0 or NaN, non-finite flux or error. Refused: ivar = +inf or
flux_err = 0 (no uncertainty) and pixels brighter than MAX_PLAUSIBLE_JY (wrong units).

Errors. Pixels are taken as independent: var(<f_nu>) = sum_i W_i^2 sigma_i^2 through the same
weights, with each interpolated pixel's weight moved onto its two good neighbours (exact for the
interpolation); mag_err = 2.5 / ln 10 * sigma_f / f (first order). The magnitude/flux formulas live in
`photopop.photometry.ab` (import them from there), the result class in `photopop.photometry.result`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy import units as u

from ..errors import InputError
from .ab import AB_ZERO_POINT_JY, C_AA_PER_S, ERG_PER_JY, FLAM_UNIT, mag_err_from_flux, maggies_to_ab_mag
from .curves import FilterCurve
from .filters import load_filter_system
from .masking import DEFAULT_MAX_INTERPOLATED, FULL_EPS, fill_masked, gap_shares, interpolation_variance
from .result import PhotometryResult
from .system import FilterSystem

__all__ = ["BandWeights", "MAX_PLAUSIBLE_JY", "band_weights", "synth_photometry"]

_ERG_PER_JY = ERG_PER_JY
#: brightest plausible band-averaged f_nu (Jy): AB -29.5, five times the Sun's V band; brighter pixels
#: mean wrong flux units or corrupt values
MAX_PLAUSIBLE_JY = 1e15
#: pixels on either side of the bands' range that are read as neighbours for interpolation
_NEIGHBOUR_MARGIN = 64


# -- weight matrices ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class BandWeights:
    """Integration weights of a filter system on one spectrum grid.

    For a spectrum f on the grid, the band-averaged f_nu is ``kernel @ f / norm * to_jy`` (in Jy),
    and with pixels masked ``kernel @ (good * f) / (share @ good) * to_jy``. `share` holds each
    pixel's contribution to a band's AB weight (its rows sum to `norm`); `uncovered` is the share of
    each band's AB weight outside the grid or in gaps of it (see `photopop.photometry.masking`).
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
        """The pixels any band uses, plus `_NEIGHBOUR_MARGIN` pixels on each side (neighbours for the
        interpolation over masked runs); the rest of the spectrum never enters the photometry."""
        used = np.flatnonzero(np.any(self.kernel != 0, axis=0))
        if not used.size:
            return slice(0, 0)
        return slice(max(0, int(used[0]) - _NEIGHBOUR_MARGIN), min(self.kernel.shape[1], int(used[-1]) + 1 + _NEIGHBOUR_MARGIN))

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
    uncovered = np.clip(uncovered + gap_shares(wave, system), 0.0, 1.0)
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


# -- the integration ---------------------------------------------------------------------------

def _prefix(source: str | None) -> str:
    return f"{source}: " if source else ""


def _check_plausible(f: np.ndarray, good: np.ndarray, to_jy_pix: np.ndarray, start: int, source: str | None) -> None:
    """InputError if a good pixel is brighter than MAX_PLAUSIBLE_JY (wrong units or corrupt values)."""
    with np.errstate(invalid="ignore", over="ignore"):
        jy = np.where(good, np.abs(f), 0.0) * to_jy_pix
    if np.any(jy > MAX_PLAUSIBLE_JY):
        r, i = np.argwhere(jy > MAX_PLAUSIBLE_JY)[0]
        raise InputError(f"{_prefix(source)}spectrum {start + int(r)}: flux {f[r, i]:.3g} at pixel {int(i)} is "
                         f"{jy[r, i]:.2g} Jy (AB {-2.5 * np.log10(jy[r, i] / AB_ZERO_POINT_JY):.1f}), brighter than "
                         f"any astronomical source ({MAX_PLAUSIBLE_JY:.0e} Jy): wrong flux unit or corrupt values")


def synth_photometry(wavelength: Any, flux: Any, system: FilterSystem | str, *, flux_unit: Any = None,
                     wave_unit: Any = None, redshift: float = 0.0, flux_err: Any = None, ivar: Any = None,
                     mask: Any = None, coverage_tolerance: float = 0.01,
                     max_interpolated: float = DEFAULT_MAX_INTERPOLATED, chunk_size: int = 1024,
                     source: str | None = None) -> PhotometryResult:
    """AB magnitudes and fluxes of one or many spectra on one shared wavelength grid.

    wavelength: length Quantity, or numbers with `wave_unit`. flux: (n_wave,) or (n_spectra, n_wave)
    f_lambda or f_nu (or photon flux density) as a Quantity, or numbers with `flux_unit`; unit-less
    input is refused. flux_err (same unit as flux) or ivar (its inverse square): optional, same
    shape. mask: True marks bad pixels (same shape, or (n_wave,) for all spectra).

    Missing pixels (mask, ivar <= 0 or NaN, non-finite flux or error) between good pixels are filled by
    linear interpolation; a band whose interpolated share of its AB weight exceeds `max_interpolated`
    (default 10%), or whose uncovered share (outside the grid, in grid gaps, masked at the spectrum's
    ends) exceeds `coverage_tolerance` (default 1%), is NaN with coverage 'none'. Refused with
    InputError: ivar = +inf or flux_err = 0 (zero uncertainty) and pixels brighter than
    `MAX_PLAUSIBLE_JY` (wrong units); `source` (a file name) prefixes these messages.

    redshift: treat the input as rest frame and observe it at z: lambda_obs = lambda (1 + z),
    f_lambda,obs = f_lambda / (1 + z) (f_nu,obs = f_nu (1 + z)); for an input L_lambda / (4 pi d_L^2)
    this is the observed flux. Distance dimming is the caller's business.

    Spectra are processed in chunks of `chunk_size` rows (bounded memory), each chunk with one
    matrix product.

    Parameters
    ----------
    wavelength : Quantity or array_like
        (n_wave,) wavelengths, strictly increasing.
    flux : Quantity or array_like
        (n_wave,) or (n_spectra, n_wave) flux densities (f_lambda, f_nu or photon flux density).
    system : FilterSystem or str
        The bands (anything `load_filter_system` takes).
    flux_unit, wave_unit : astropy unit or str, optional
        Units of plain-number `flux` / `wavelength`.
    redshift : float
        Observe a rest-frame input at this redshift (0: the input is observed).
    flux_err, ivar : array_like, optional
        Per-pixel 1-sigma errors or inverse variances (one of them), same shape as `flux`.
    mask : array_like of bool, optional
        True for bad pixels.
    coverage_tolerance, max_interpolated : float
        Largest uncovered / interpolated share of a band's AB weight before it is NaN ('none').
    chunk_size : int
        Spectra per matrix product.
    source : str, optional
        A file name prefixed to error messages.

    Returns
    -------
    PhotometryResult
        AB magnitudes, fluxes (maggies, nanomaggies, Jy), errors and coverage flags per band
        (1-D for one spectrum, (n_spectra, n_bands) for many); `PhotometryResult.to_table` gives a QTable.
    """
    system = load_filter_system(system)
    wave_rest = _wavelength_aa(wavelength, wave_unit)
    where = _prefix(source)
    if not np.isfinite(redshift) or redshift <= -1:
        raise InputError(f"redshift must be finite and > -1, got {redshift}")
    if not 0 <= coverage_tolerance < 1:
        raise InputError(f"coverage_tolerance must be in [0, 1), got {coverage_tolerance}")
    if not 0 <= max_interpolated < 1:
        raise InputError(f"max_interpolated must be in [0, 1), got {max_interpolated}")
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
                raise InputError(f"{where}ivar has negative values; inverse variances must be >= 0 (0 = masked pixel)")
        if np.any(np.isposinf(ivar_arr)):
            raise InputError(f"{where}ivar is +inf at {int(np.isposinf(ivar_arr).sum())} pixel(s): zero uncertainty "
                             "is not a measurement (use 0 to mark missing pixels)")
    mask_arr = None
    if mask is not None:
        mask_arr = np.broadcast_to(np.atleast_2d(_rows(mask, nw, "mask")).astype(bool), values.shape)

    scale = 1.0 / (1.0 + redshift) if kind == "flambda" else (1.0 + redshift)
    wave_obs = wave_rest * (1.0 + redshift)
    weights = band_weights(wave_obs, system, kind)
    cols = weights.columns  # only pixels inside some band (and their neighbours) are read and checked
    wave_used = wave_rest[cols]
    to_jy_pix = (wave_obs[cols] ** 2 / C_AA_PER_S / _ERG_PER_JY) if kind == "flambda" else np.ones(wave_used.size)
    matrix = weights.matrix[:, cols]
    matrix_sq = matrix**2
    kernel, share = weights.kernel[:, cols], weights.share[:, cols]
    kernel_sq = kernel**2
    nb = len(system)
    has_err = err_arr is not None or ivar_arr is not None

    fnu = np.empty((n, nb))
    var = np.empty((n, nb)) if has_err else None
    edge_share = np.zeros((n, nb))
    interp_share = np.zeros((n, nb))
    no_overlap = weights.norm <= 0
    norm = np.where(no_overlap, 1.0, weights.norm)
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
                raise InputError(f"{where}flux_err has negative values")
            if np.any(e == 0):
                raise InputError(f"{where}flux_err is 0 at {int((e == 0).sum())} pixel(s): zero uncertainty is not "
                                 "a measurement (use NaN or inf to mark missing pixels)")
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
        _check_plausible(f, good, to_jy_pix, start, source)
        if good.all():
            fnu[sl] = f @ matrix.T
            if has_err:
                var[sl] = sig2 @ matrix_sq.T
            continue
        fill = fill_masked(np.where(good, f, 0.0), good, wave_used)
        usable = good | fill["interior"]
        den = usable.astype(float) @ share.T
        edge_share[sl] = np.where(no_overlap, 0.0, (fill["edge"].astype(float) @ share.T) / norm)
        interp_share[sl] = np.where(no_overlap, 0.0, (fill["interior"].astype(float) @ share.T) / norm)
        with np.errstate(divide="ignore", invalid="ignore"):
            fnu[sl] = (fill["filled"] @ kernel.T) / den * weights.to_jy
            if has_err:
                s2 = np.where(good, sig2, 0.0)
                extra = interpolation_variance(kernel, s2, fill)
                var[sl] = (s2 @ kernel_sq.T + extra) / den**2 * weights.to_jy**2

    uncovered = np.clip(weights.uncovered + (1.0 - weights.uncovered) * edge_share, 0.0, 1.0)
    uncovered[:, no_overlap] = 1.0
    none = (uncovered > coverage_tolerance) | (interp_share > max_interpolated)
    coverage = np.where(none, "none", np.where(interp_share > FULL_EPS, "interpolated",
                                               np.where(uncovered > FULL_EPS, "partial", "full")))
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
        interpolated_fraction=pick(interp_share),
    )
    if flux_err_jy is not None:
        err_mgy = flux_err_jy / AB_ZERO_POINT_JY
        result.flux_err_jy = pick(flux_err_jy)
        result.flux_err_maggies = pick(err_mgy)
        result.flux_err_nmgy = pick(err_mgy * 1e9)
        result.mag_err = pick(mag_err_from_flux(maggies, err_mgy))
    return result
