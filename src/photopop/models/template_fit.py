"""Vectorised chi-square template fitting: the classical SED-fitting baseline for the CNN.

For object fluxes f_b with weights w_b = 1/sigma_b^2 and template fluxes t_kb, the best
(free, analytic) amplitude of template k and its chi-square are

    s_k     = sum_b w f t_k / sum_b w t_k^2
    chi2_k  = sum_b w f^2 - (sum_b w f t_k)^2 / sum_b w t_k^2

evaluated for all objects x all templates as two matrix products per chunk of objects (bounded
memory). With ``nonnegative=True`` a negative best amplitude is clipped to 0 (chi2_k = sum w f^2).
Predicted labels are those of the minimum-chi2 template; optionally also the likelihood-weighted
mean and standard deviation of the labels with weights exp(-(chi2_k - chi2_min)/2) (the profile
likelihood over the amplitude, flat prior over the grid).

Non-finite fluxes or errors get weight 0, so missing bands are simply left out of the fit.
`build_template_grid` makes a grid of composite stellar populations through photopop's
populations and photometry packages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError

LN10_04 = 0.4 * np.log(10.0)


def mag_to_flux(mag: np.ndarray, magerr: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """AB magnitudes -> fluxes in units of 3631 Jy (10^(-0.4 m)) and their 1-sigma errors (linearised)."""
    mag = np.asarray(mag, dtype=np.float64)
    flux = np.power(10.0, -0.4 * mag)
    if magerr is None:
        return flux, None
    return flux, LN10_04 * flux * np.asarray(magerr, dtype=np.float64)


@dataclass
class TemplateFitResult:
    """Per-object fit results: best template, amplitude, chi2, labels (and weighted mean/std)."""

    index: np.ndarray
    scale: np.ndarray
    chi2: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    n_bands_used: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def to_frame(self) -> pd.DataFrame:
        """One row per object: template_index, scale, chi2, <label>, and <label>_mean/_std if computed."""
        cols: dict[str, Any] = {"template_index": self.index, "scale": self.scale, "chi2": self.chi2,
                                "n_bands_used": self.n_bands_used}
        for j, name in enumerate(self.label_names):
            cols[name] = self.labels[:, j]
            if self.mean is not None and self.std is not None:
                cols[f"{name}_mean"] = self.mean[:, j]
                cols[f"{name}_std"] = self.std[:, j]
        return pd.DataFrame(cols)


class TemplateFitter:
    """Chi-square fit of many objects against a fixed template grid (n_templates, n_bands)."""

    def __init__(self, template_fluxes: np.ndarray, template_labels: np.ndarray,
                 label_names: Sequence[str] | None = None, *, nonnegative: bool = True,
                 max_chunk_bytes: int = 64 * 2**20):
        t = np.asarray(template_fluxes, dtype=np.float64)
        lab = np.asarray(template_labels, dtype=np.float64)
        if lab.ndim == 1:
            lab = lab[:, None]
        if t.ndim != 2 or t.shape[0] < 1 or t.shape[1] < 1:
            raise InputError(f"template_fluxes must be (n_templates, n_bands), got shape {t.shape}")
        if lab.shape[0] != t.shape[0]:
            raise InputError(f"{t.shape[0]} templates but {lab.shape[0]} label rows")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(lab))):
            raise InputError("template fluxes and labels must be finite")
        if np.any(np.all(t == 0, axis=1)):
            raise InputError("a template has zero flux in every band")
        names = list(label_names) if label_names is not None else [f"label{j}" for j in range(lab.shape[1])]
        if len(names) != lab.shape[1]:
            raise InputError(f"{lab.shape[1]} label columns but {len(names)} label names")
        self.templates = t
        self.templates_sq = t * t
        self.labels = lab
        self.label_names = names
        self.nonnegative = nonnegative
        self.max_chunk_bytes = int(max_chunk_bytes)

    @property
    def n_templates(self) -> int:
        return self.templates.shape[0]

    @property
    def n_bands(self) -> int:
        return self.templates.shape[1]

    def chunk_rows(self) -> int:
        """Objects per chunk so that the (chunk, n_templates) work arrays stay under max_chunk_bytes."""
        return max(1, self.max_chunk_bytes // (8 * 4 * self.n_templates))

    def chi2(self, fluxes: np.ndarray, errors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Full (n_objects, n_templates) chi2 and scale arrays (for small inputs and checks)."""
        f, w = self._prepare(fluxes, errors)
        a, b, c = self._moments(f, w)
        return self._chi2_scale(a, b, c)

    def fit(self, fluxes: np.ndarray, errors: np.ndarray | None = None, *,
            weighted_stats: bool = False) -> TemplateFitResult:
        """Fit every object; errors None means equal weights. Chunked over objects."""
        f_all, w_all = self._prepare(fluxes, errors)
        n = f_all.shape[0]
        nl = self.labels.shape[1]
        index = np.empty(n, dtype=np.int64)
        scale = np.empty(n)
        chi2min = np.empty(n)
        mean = np.empty((n, nl)) if weighted_stats else None
        std = np.empty((n, nl)) if weighted_stats else None
        step = self.chunk_rows()
        rows = np.arange(step)
        for start in range(0, n, step):
            sl = slice(start, min(n, start + step))
            a, b, c = self._moments(f_all[sl], w_all[sl])
            chi2, s = self._chi2_scale(a, b, c)
            k = np.argmin(chi2, axis=1)
            r = rows[: k.size]
            index[sl] = k
            scale[sl] = s[r, k]
            cmin = chi2[r, k]
            chi2min[sl] = cmin
            if weighted_stats:
                like = np.exp(-0.5 * (chi2 - cmin[:, None]))
                norm = like.sum(axis=1, keepdims=True)
                m1 = like @ self.labels / norm
                m2 = like @ (self.labels ** 2) / norm
                mean[sl] = m1  # type: ignore[index]
                std[sl] = np.sqrt(np.clip(m2 - m1 ** 2, 0.0, None))  # type: ignore[index]
        return TemplateFitResult(index=index, scale=scale, chi2=chi2min, labels=self.labels[index],
                                 label_names=self.label_names, mean=mean, std=std,
                                 n_bands_used=(w_all > 0).sum(axis=1))

    def fit_magnitudes(self, mags: np.ndarray, magerrs: np.ndarray | None = None, **kw: Any) -> TemplateFitResult:
        """Fit AB magnitudes (templates must be fluxes in the same 10^(-0.4 m) convention)."""
        flux, err = mag_to_flux(mags, magerrs)
        return self.fit(flux, err, **kw)

    # -- internals -------------------------------------------------------------------------
    def _prepare(self, fluxes: np.ndarray, errors: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        f = np.asarray(fluxes, dtype=np.float64)
        if f.ndim == 1:
            f = f[None, :]
        if f.ndim != 2 or f.shape[1] != self.n_bands:
            raise InputError(f"fluxes must be (n_objects, {self.n_bands}) to match the templates, got {f.shape}")
        if errors is None:
            w = np.ones_like(f)
        else:
            e = np.asarray(errors, dtype=np.float64)
            if e.ndim == 1:
                e = e[None, :]
            if e.shape != f.shape:
                raise InputError(f"errors shape {e.shape} differs from fluxes shape {f.shape}")
            with np.errstate(divide="ignore", invalid="ignore"):
                w = np.where(np.isfinite(e) & (e > 0), 1.0 / (e * e), 0.0)
        good = np.isfinite(f)
        w = np.where(good, w, 0.0)
        f = np.where(good, f, 0.0)
        empty = ~(w > 0).any(axis=1)
        if empty.any():
            raise InputError(f"{int(empty.sum())} object(s) have no finite flux with a positive error in any band")
        return f, w

    def _moments(self, f: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        wf = w * f
        a = wf @ self.templates.T          # sum w f t
        b = w @ self.templates_sq.T        # sum w t^2
        c = np.einsum("ij,ij->i", wf, f)   # sum w f^2
        return a, b, c

    def _chi2_scale(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(b > 0, a / b, 0.0)
        if self.nonnegative:
            s = np.clip(s, 0.0, None)
        chi2 = c[:, None] - 2.0 * s * a + s * s * b
        return np.clip(chi2, 0.0, None), s



# -- template grids from photopop's populations + photometry ------------------------------------------
@dataclass
class TemplateGridConfig:
    """A grid of delayed-tau composite populations: start ages x tau x [Z/H] x A_V (Calzetti dust).

    redshift_step: templates are observed at redshifts spaced by this step covering the objects'
    redshifts (each object is fitted with the grid nearest its redshift); 0 = rest frame only.
    error_floor_mag: added in quadrature to the magnitude errors before the fit (the usual allowance for
    template mismatch and calibration); it also gives noise-free photometry finite weights.
    """

    ages_gyr: tuple[float, ...] = (0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.5, 7.0, 9.0, 11.0, 13.0)
    taus_gyr: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)
    zh: tuple[float, ...] = (-1.7, -1.2, -0.8, -0.5, -0.3, -0.1, 0.1, 0.3)
    a_v: tuple[float, ...] = (0.0, 0.15, 0.3, 0.5, 0.75, 1.0, 1.5)
    dust: str = "calzetti"
    redshift_step: float = 0.005
    estimate: str = "mean"
    error_floor_mag: float = 0.02


def floored_magerr(magerr: np.ndarray | None, n_rows: int, n_bands: int, floor_mag: float) -> np.ndarray | None:
    """Magnitude errors with `floor_mag` added in quadrature (None errors -> the floor alone, or None if 0)."""
    if floor_mag < 0:
        raise InputError(f"error_floor_mag must be >= 0, got {floor_mag}")
    if magerr is None:
        return np.full((n_rows, n_bands), float(floor_mag)) if floor_mag > 0 else None
    return np.sqrt(np.asarray(magerr, dtype=np.float64) ** 2 + float(floor_mag) ** 2)


@dataclass
class TemplateGrid:
    """Template fluxes (n_redshifts, n_templates, n_bands) in maggies (arbitrary common scale) + labels."""

    fluxes: np.ndarray
    redshifts: np.ndarray
    labels: pd.DataFrame
    params: pd.DataFrame
    bands: list[str]
    filter_system: str

    def nearest(self, z: np.ndarray) -> np.ndarray:
        """Index of the grid redshift nearest each value of `z`."""
        z = np.asarray(z, dtype=np.float64)
        return np.argmin(np.abs(z[..., None] - self.redshifts), axis=-1)

    def fitter(self, iz: int = 0, label_names: Sequence[str] = ("log_age", "zh"), **kw: Any) -> TemplateFitter:
        """A `TemplateFitter` on the templates observed at redshift index `iz`."""
        return TemplateFitter(self.fluxes[iz], self.labels[list(label_names)].to_numpy(), label_names, **kw)

    def fit_magnitudes(self, mags: np.ndarray, magerrs: np.ndarray | None = None, redshift: Any = 0.0,
                       label_names: Sequence[str] = ("log_age", "zh"), weighted_stats: bool = False) -> pd.DataFrame:
        """Fit every object with the grid at its nearest redshift; one row per object (see TemplateFitResult)."""
        mags = np.asarray(mags, dtype=np.float64)
        z = np.broadcast_to(np.asarray(redshift, dtype=np.float64), (mags.shape[0],))
        iz = self.nearest(z)
        parts = []
        for k in np.unique(iz):
            rows = np.flatnonzero(iz == k)
            res = self.fitter(int(k), label_names).fit_magnitudes(
                mags[rows], None if magerrs is None else np.asarray(magerrs)[rows], weighted_stats=weighted_stats)
            parts.append(res.to_frame().set_index(rows))
        return pd.concat(parts).sort_index()


def build_template_grid(system: Any, config: TemplateGridConfig | None = None, *,
                        redshifts: Sequence[float] | None = None, ssp: Any = None) -> TemplateGrid:
    """Delayed-tau composites over the grid of `config`, observed through `system` at `redshifts`.

    Uses `photopop.populations.compose` (BC03 by default, or the SSPGrid `ssp`) and
    `photopop.photometry.synth_photometry`. Labels are those `compose` gives (luminosity-weighted
    log_age and [Z/H], as in the SED tables). Templates whose age start exceeds the oldest SSP are dropped.
    """
    import astropy.units as u

    from ..photometry import load_filter_system, synth_photometry
    from ..populations import DelayedTau, SSPGrid, compose

    cfg = config or TemplateGridConfig()
    fs = load_filter_system(system)
    zs = np.atleast_1d(np.asarray(redshifts if redshifts is not None else [0.0], dtype=np.float64))
    if np.any(~np.isfinite(zs)) or np.any(zs <= -1):
        raise InputError(f"template redshifts must be finite and > -1, got {zs}")
    lo, hi = float(np.min(fs.wavelength_ranges)), float(np.max(fs.wavelength_ranges))
    wave_range = (0.9 * lo / (1 + zs.max()), 1.1 * hi / (1 + min(zs.min(), 0.0)))
    grid = ssp if ssp is not None else SSPGrid.bc03(wave_range=wave_range)
    a, t, zh, av = (m.ravel() for m in np.meshgrid(np.asarray(cfg.ages_gyr, float), np.asarray(cfg.taus_gyr, float),
                                                   np.asarray(cfg.zh, float), np.asarray(cfg.a_v, float), indexing="ij"))
    keep = a * 1e9 <= float(np.max(grid.ages_yr))
    a, t, zh, av = a[keep], t[keep], zh[keep], av[keep]
    if a.size == 0:
        raise InputError("template grid is empty (every start age is older than the SSP grid)")
    comp = compose(grid, DelayedTau(age_start_gyr=a, tau_gyr=t), zh=zh, a_v=av, dust=cfg.dust,
                   wave_range=wave_range, z_outside="clip", outside="clip")
    # luminosity density -> flux at 10 pc (the amplitude is free in the fit; this keeps numbers sane)
    to_flux = (1.0 * comp.unit).to(u.erg / u.s / u.AA).value / (4 * np.pi * (10 * u.pc).to(u.cm).value ** 2)
    flux_unit = u.erg / u.s / u.cm ** 2 / u.AA
    fluxes = np.empty((zs.size, a.size, len(fs.bands)))
    for i, z in enumerate(zs):
        phot = synth_photometry(comp.wavelength_aa * u.AA, np.asarray(comp.flux, dtype=np.float64) * to_flux, fs,
                                flux_unit=flux_unit, redshift=float(z))
        fluxes[i] = phot.flux_maggies
    if not np.all(np.isfinite(fluxes)):
        raise InputError(f"templates do not cover every band of {fs.name} at redshifts {zs.tolist()}")
    labels = comp.labels.to_frame()
    params = pd.DataFrame({"age_start_gyr": a, "tau_gyr": t, "zh_model": zh, "a_v_model": av})
    return TemplateGrid(fluxes, zs, labels, params, list(fs.bands), fs.name)


def redshift_grid(z: np.ndarray, step: float) -> np.ndarray:
    """Grid redshifts spaced by `step` covering the values `z` (one value if step <= 0 or z is constant)."""
    z = np.asarray(z, dtype=np.float64)
    z = z[np.isfinite(z)]
    if z.size == 0:
        return np.array([0.0])
    if step <= 0 or np.ptp(z) < step:
        return np.array([float(np.median(z))])
    n = int(np.ceil(np.ptp(z) / step)) + 1
    return np.linspace(z.min(), z.min() + (n - 1) * step, n)
