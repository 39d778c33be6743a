"""One spectrum -> pPXF fit -> labels (or the reason it was not fitted).

Steps (Cappellari 2017, 2023): the spectrum is moved to the templates' medium (air/vacuum) and rest frame
(lambda / (1 + z)), cut to the fit window, log-rebinned when it is not log-sampled already (variance and mask
rebinned with it; the resolution then includes the old pixels' box, FWHM^2 += 8 ln2 dlambda^2 / 12, since
`log_rebin` integrates the spectrum as a step function), normalised by its median; pixels that are bad, lie in
an emission-line mask (`ppxf_util.determine_mask`) or near the template edges are left out. Stage 1 fits V
and sigma with an additive polynomial (`degree`); stage 2 keeps V and sigma fixed and fits the population weights with a
multiplicative polynomial (`mdegree`; optional regularisation). Weights -> labels as `templates` explains.

Reported per spectrum: labels, sigma (km/s, with its formal error scaled by sqrt(chi2_red)), the velocity
relative to the given redshift, reduced chi2 of the population fit over the good pixels, S/N (median of
flux / error per pixel over the good pixels), the number of good pixels, the rest-frame range fitted
(fit_lo_aa, fit_hi_aa: the window clipped to the data and to the templates' range -- for bc03_miles the MILES
range 3540-7350 A where its 2.51 A resolution holds), and `status` = 'ok' or why not.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..populations.labels import weighted_means
from ..populations.ssp import SSPGrid
from .config import LabelFitConfig
from .spectra import FitSpectrum
from .templates import C_KMS, MILES_RANGE_AA, TemplateSet, build_templates

#: exceptions pPXF raises on inputs it cannot fit (its checks are assertions) or a failed linear algebra step
PPXF_ERRORS = (AssertionError, ValueError, np.linalg.LinAlgError, FloatingPointError)
NAN = float("nan")


def _empty_row(spec: FitSpectrum, status: str) -> dict[str, Any]:
    row: dict[str, Any] = {"id": spec.id, "log_age": NAN, "zh": NAN, "log_age_mw": NAN, "zh_mw": NAN,
                           "sigma_kms": NAN, "sigma_err_kms": NAN, "v_kms": NAN, "chi2_red": NAN,
                           "chi2_flag": False, "snr": NAN, "n_good": 0, "fit_lo_aa": NAN, "fit_hi_aa": NAN,
                           "noise_source": "", "status": status}
    for k in ("galaxy_id", "spaxel_id"):
        if k in spec.extra:
            row[k] = spec.extra[k]
    row["redshift"] = NAN if spec.redshift is None else float(spec.redshift)
    return row


def _log_sampled(lam: np.ndarray) -> bool:
    d = np.diff(np.log(lam))
    return bool(d.min() > 0 and (d.max() - d.min()) < 1e-3 * d.mean())


def _prepare_galaxy(spec: FitSpectrum, cfg: LabelFitConfig, grid: SSPGrid):
    """(lam_rest, flux, var, bad, fwhm_rest, window) on a log grid, or a status string."""
    from ppxf import ppxf_util

    if spec.redshift is None or not np.isfinite(spec.redshift):
        return "no redshift (give one: --redshift)"
    z = float(spec.redshift)
    lam = np.asarray(spec.wavelength_aa, np.float64)
    if spec.medium != cfg.template_medium:
        lam = ppxf_util.vac_to_air(lam) if spec.medium == "vacuum" else ppxf_util.air_to_vac(lam)
    lam = lam / (1 + z)
    flux = np.asarray(spec.flux, np.float64)
    bad = np.asarray(spec.bad, bool) | ~np.isfinite(flux)
    if spec.ivar is not None:
        iv = np.asarray(spec.ivar, np.float64)
        bad |= ~(np.isfinite(iv) & (iv > 0))
        var = np.where(bad, 0.0, 1.0 / np.where(bad, 1.0, iv))
    else:
        var = None
    fwhm = None if spec.fwhm_aa is None else np.asarray(spec.fwhm_aa, np.float64) / (1 + z)
    g_lo, g_hi = float(grid.wavelength_aa[0]), float(grid.wavelength_aa[-1])
    if grid.name == "bc03_miles":  # MILES resolution (the assumed template FWHM) only over MILES's range
        g_lo, g_hi = max(g_lo, MILES_RANGE_AA[0]), min(g_hi, MILES_RANGE_AA[1])
    tlo, thi = g_lo + cfg.margin_aa, g_hi - cfg.margin_aa
    w0, w1 = cfg.fit_window_aa
    lo, hi = max(w0, tlo, lam[0]), min(w1, thi, lam[-1])
    if not hi > lo or (hi - lo) < cfg.min_window_coverage * (w1 - w0):
        return (f"does not cover the fit window (rest {w0:.0f}-{w1:.0f} A; data {lam[0]:.0f}-{lam[-1]:.0f} A, "
                f"templates {tlo:.0f}-{thi:.0f} A)")
    sel = (lam >= lo) & (lam <= hi)
    if sel.sum() < cfg.min_good_pixels:
        return f"too few good pixels ({int(sel.sum())} in the fit window, need {cfg.min_good_pixels})"
    lam, flux, bad = lam[sel], flux[sel], bad[sel]
    var = None if var is None else var[sel]
    fwhm = None if fwhm is None else fwhm[sel]
    flux = np.where(bad, 0.0, flux)
    if not _log_sampled(lam):
        dlam_old = np.gradient(lam)
        flux, ln_lam, _ = ppxf_util.log_rebin(lam, flux)
        lam_new = np.exp(ln_lam)
        badf = ppxf_util.log_rebin(lam, bad.astype(np.float64))[0]
        dln = np.diff(ln_lam).mean()
        ratio = np.interp(lam_new, lam, dlam_old) / (lam_new * dln)  # old / new pixel width
        if var is not None:
            var = ppxf_util.log_rebin(lam, var)[0] * ratio
        if fwhm is not None:  # rebinning a step function adds the old pixel's box, sigma = dlam / sqrt(12)
            fwhm = np.sqrt(np.interp(lam_new, lam, fwhm) ** 2
                           + 8 * np.log(2) * np.interp(lam_new, lam, dlam_old) ** 2 / 12)
        bad = badf > 1e-6
        lam = lam_new
    return lam, flux, var, bad, fwhm


_TEMPLATE_CACHE: dict[str, TemplateSet] = {}


def templates_for(grid: SSPGrid, velscale: float, wave_range: tuple[float, float], fwhm_lam: np.ndarray,
                  fwhm: np.ndarray, cfg: LabelFitConfig) -> TemplateSet:
    """`build_templates`, cached per (grid, velscale, range, resolution) within the process."""
    key = hashlib.sha1(np.asarray([velscale, *wave_range], np.float64).round(6).tobytes()
                       + np.round(fwhm, 3).tobytes() + np.round(fwhm_lam[[0, -1]], 2).tobytes()
                       + np.asarray([*grid.shape, *grid.log_ages[[0, -1]], *grid.zh[[0, -1]],
                                     *grid.wavelength_aa[[0, -1]]], np.float64).tobytes()
                       + f"{grid.name}{cfg.template_fwhm_aa}{cfg.light_window_aa}".encode()).hexdigest()
    hit = _TEMPLATE_CACHE.get(key)
    if hit is None:
        if len(_TEMPLATE_CACHE) > 16:
            _TEMPLATE_CACHE.clear()
        hit = build_templates(grid, velscale, wave_range, (fwhm_lam, fwhm), template_fwhm_aa=cfg.template_fwhm_aa,
                              light_window_aa=cfg.light_window_aa)
        _TEMPLATE_CACHE[key] = hit
    return hit


def weights_to_labels(weights: np.ndarray, tpl: TemplateSet, mass: str = "surviving") -> dict[str, float]:
    """Luminosity- and mass-weighted log age and [Z/H] from pPXF weights on `tpl` (photopop's definitions)."""
    nz, na = tpl.reg_dim
    w = np.clip(np.asarray(weights, np.float64), 0.0, None)
    ages = tpl.log_age[:na]
    zhs = tpl.zh[::na]
    la, zh = weighted_means(w.reshape(1, nz, na), ages, zhs)
    m = w / tpl.light
    if mass == "surviving":
        if tpl.mass_fraction is None:
            la_m, zh_m = np.array([NAN]), np.array([NAN])
        else:
            la_m, zh_m = weighted_means((m * tpl.mass_fraction).reshape(1, nz, na), ages, zhs)
    else:
        la_m, zh_m = weighted_means(m.reshape(1, nz, na), ages, zhs)
    return {"log_age": float(la[0]), "zh": float(zh[0]), "log_age_mw": float(la_m[0]), "zh_mw": float(zh_m[0])}


def fit_spectrum(spec: FitSpectrum, grid: SSPGrid, cfg: LabelFitConfig) -> dict[str, Any]:
    """Fit one spectrum with pPXF on templates from `grid` (already subset); returns one labels row."""
    from ppxf import ppxf_util
    from ppxf.ppxf import ppxf

    prep = _prepare_galaxy(spec, cfg, grid)
    if isinstance(prep, str):
        return _empty_row(spec, prep)
    lam, flux, var, bad, fwhm = prep
    if fwhm is None:
        return _empty_row(spec, "unknown instrumental resolution")
    ln_lam = np.log(lam)
    velscale = float(C_KMS * np.diff(ln_lam).mean())
    tpl = templates_for(grid, velscale, (lam[0] - cfg.margin_aa, lam[-1] + cfg.margin_aa), lam, fwhm, cfg)
    good = ~bad & ppxf_util.determine_mask(ln_lam, (tpl.lam_aa[0], tpl.lam_aa[-1]), 0.0, cfg.line_mask_kms)
    if good.sum() < cfg.min_good_pixels:
        return _empty_row(spec, f"too few good pixels ({int(good.sum())}, need {cfg.min_good_pixels})")
    norm = float(np.median(flux[good]))
    if not norm > 0:
        return _empty_row(spec, "non-positive median flux in the fit window")
    gal = flux / norm
    if var is not None:
        noise = np.sqrt(np.where(good, var, 0.0)) / norm
        noise_source = "ivar"
        fill = np.median(noise[good])
        noise = np.where(good & (noise > 0), noise, fill)
    else:
        noise = np.ones_like(gal)
        noise_source = "residuals"
    row = _empty_row(spec, "ok")
    common = dict(moments=2, lam=lam, lam_temp=tpl.lam_aa, quiet=True)
    start = [0.0, cfg.sigma_start_kms]
    try:
        pp1 = ppxf(tpl.templates, gal, noise, velscale, start, degree=cfg.degree, mdegree=0, mask=good,
                   clean=cfg.clean, **common)
        if noise_source == "residuals":  # no errors given: take the stage-1 residual scatter as the noise
            resid = (gal - pp1.bestfit)[pp1.goodpixels]
            noise = noise * float(np.std(resid))
            pp1.chi2 = 1.0
        good1 = np.zeros(gal.size, bool)
        good1[pp1.goodpixels] = True
        sol = np.asarray(pp1.sol[:2], np.float64)
        if not np.all(np.isfinite(sol)):
            return _empty_row(spec, "fit failed: non-finite kinematics")
        pp2 = ppxf(tpl.templates, gal, noise, velscale, sol, degree=-1, mdegree=cfg.mdegree, mask=good1,
                   fixed=[1, 1], **common)
        pp_final, chi2 = pp2, float(pp2.chi2)
        if cfg.regul > 0:
            scale = np.sqrt(pp2.chi2)
            pp3 = ppxf(tpl.templates, gal, noise * scale, velscale, sol, degree=-1, mdegree=cfg.mdegree,
                       mask=good1, fixed=[1, 1], regul=cfg.regul, reg_dim=tpl.reg_dim, **common)
            pp_final, chi2 = pp3, float(pp3.chi2) * scale**2
    except PPXF_ERRORS as exc:
        msg = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        return _empty_row(spec, f"fit failed: {msg}")
    weights = np.asarray(pp_final.weights, np.float64)
    if not np.all(np.isfinite(weights)) or not weights.sum() > 0:
        return _empty_row(spec, "fit failed: no positive template weights")
    row.update(weights_to_labels(weights, tpl, cfg.mass))
    err = np.asarray(pp1.error, np.float64) * np.sqrt(pp1.chi2)
    row.update({"sigma_kms": float(sol[1]), "sigma_err_kms": float(err[1]), "v_kms": float(sol[0]),
                "chi2_red": chi2 if noise_source == "ivar" else NAN,
                "chi2_flag": bool(noise_source == "ivar" and chi2 > cfg.chi2_flag_max),
                "snr": float(np.median(gal[good1] / noise[good1])), "n_good": int(good1.sum()),
                "fit_lo_aa": float(lam[0]), "fit_hi_aa": float(lam[-1]),
                "noise_source": noise_source})
    return row
