"""Rendering of the mock imaging survey with GalSim: one galaxy -> a g, r, i cutout in nanomaggies.

`render_galaxy(params, entropy, geometry)` draws the bulge + disc + clumps (+ neighbours, stars,
trails, bad columns) convolved with the galaxy's PSF on the native SDSS grid, adds detector noise in
electrons and resamples bilinearly to the cutout grid (see docs/images-data.md). Each galaxy has its own
seed (`galaxy_entropies`), so the images do not depend on the number of workers or the chunk size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..datasets.composite import lupton_rgb
from ..photometry.ab import ab_mag_to_nmgy
from .image_config import RENDER_INDEX as _RB
from .image_config import ImageSurveyConfig
from .image_photometry import electrons_per_nanomaggy, sky_nanomaggies_per_arcsec2


def _bilinear_weights(n_out: int, scale_out: float, n_in: int, scale_in: float) -> tuple[np.ndarray, np.ndarray]:
    """1-d bilinear interpolation between two centred pixel grids: (i0, t) so out = (1-t) x[i0] + t x[i0+1]."""
    u = ((np.arange(n_out) - (n_out - 1) / 2.0) * scale_out) / scale_in + (n_in - 1) / 2.0
    i0 = np.clip(np.floor(u).astype(int), 0, n_in - 2)
    return i0, np.clip(u - i0, 0.0, 1.0)


def resample_bilinear(images: np.ndarray, i0: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Separable bilinear resampling of (..., n_in, n_in) arrays onto the grid given by `_bilinear_weights`."""
    rows = images[..., i0, :] * (1.0 - t)[:, None] + images[..., i0 + 1, :] * t[:, None]
    return rows[..., i0] * (1.0 - t) + rows[..., i0 + 1] * t


def draw_grid(cfg: ImageSurveyConfig) -> tuple[int, float]:
    """(pixels per side, arcsec per pixel) of the grid galaxies are drawn and noised on.

    Output pixels finer than the native 0.396" (the paper's 0.296"): the native grid, covering the cutout plus a
    1-pixel interpolation margin, later resampled. Output pixels as coarse or coarser (e.g. 0.592" for fast
    low-resolution runs): drawn directly on the output grid, each pixel binning (scale / 0.396)^2 native pixels.
    """
    if cfg.pixel_scale_arcsec >= cfg.native_pixel_scale_arcsec:
        return cfg.image_size, cfg.pixel_scale_arcsec
    n = int(np.ceil(cfg.image_size * cfg.pixel_scale_arcsec / cfg.native_pixel_scale_arcsec)) + 2
    return n + (n % 2), cfg.native_pixel_scale_arcsec


def render_geometry(cfg: ImageSurveyConfig) -> dict[str, Any]:
    """The settings every render task needs (grids, photometric scale, sky, detector, composite), as a plain
    dict that pickles cheaply to worker processes."""
    e_per = electrons_per_nanomaggy(cfg)[_RB]
    n_draw, s_draw = draw_grid(cfg)
    binning = (s_draw / cfg.native_pixel_scale_arcsec) ** 2  # native pixels per drawn pixel
    return dict(
        n_out=cfg.image_size, scale_out=cfg.pixel_scale_arcsec, n_nat=n_draw, scale_nat=s_draw, binning=binning,
        e_per=e_per, sky_nat=sky_nanomaggies_per_arcsec2(cfg)[_RB] * s_draw**2,
        dark_e2=np.asarray(cfg.dark_variance_dn)[_RB] * np.asarray(cfg.gain)[_RB] ** 2 * binning,
        sat_e=cfg.saturation_electrons * binning, psf_kind=cfg.psf_kind, beta=cfg.moffat_beta,
        h_over_r=cfg.disc_h_over_r, folding=cfg.folding_threshold, rgb_q=cfg.rgb_q,
        rgb_stretch=cfg.rgb_stretch, rgb_scales=tuple(cfg.rgb_scales), jpeg=cfg.rgb_jpeg_quality,
        noise=cfg.add_noise,
    )


def _psf(geo: dict[str, Any], fwhm: float, gsp: Any) -> Any:
    import galsim

    if geo["psf_kind"] == "moffat":
        return galsim.Moffat(beta=geo["beta"], fwhm=fwhm, gsparams=gsp)
    return galsim.Kolmogorov(fwhm=fwhm, gsparams=gsp)


def _bleed(sig_e: np.ndarray, full_well: float) -> None:
    """Saturate pixels above the full well and bleed the excess charge up and down the column (in place)."""
    for col in np.flatnonzero((sig_e > full_well).any(axis=0)):
        c = sig_e[:, col]
        over = c > full_well
        excess = float((c[over] - full_well).sum())
        rows = np.flatnonzero(over)
        c[over] = full_well
        extra = int(np.ceil(excess / full_well))
        lo, hi = rows.min(), rows.max()
        up = extra // 2
        c[max(lo - (extra - up), 0): lo] = full_well
        c[hi + 1: hi + 1 + up] = full_well


def render_galaxy(p: dict[str, Any], entropy: np.ndarray, geo: dict[str, Any]) -> np.ndarray:
    """Render one galaxy: float32 (3, H, W) g, r, i cutout in nanomaggies per output pixel, row 0 at the top."""
    import galsim

    rng = np.random.default_rng(np.random.SeedSequence(entropy.tolist()))
    gs_rng = galsim.BaseDeviate(int(rng.integers(1, 2**31 - 1)))
    gsp = galsim.GSParams(folding_threshold=geo["folding"], maxk_threshold=2e-3)
    n_nat, s_nat = geo["n_nat"], geo["scale_nat"]
    pa = galsim.Angle(float(p["pa"]), galsim.degrees)
    bulge = galsim.Sersic(n=float(p["sersic_n"]), half_light_radius=float(p["re_bulge"]), gsparams=gsp) \
        .shear(q=float(p["q_bulge"]), beta=pa)
    disc = galsim.InclinedExponential(float(p["incl"]) * galsim.degrees, half_light_radius=float(p["re_disc"]),
                                      scale_h_over_r=geo["h_over_r"], gsparams=gsp).rotate(pa)
    knots = None
    if int(p["n_knots"]) > 0 and float(p["f_knots"][1]) > 0:
        q = float(p["q_proj"])
        knots = galsim.RandomKnots(int(p["n_knots"]), half_light_radius=float(p["re_disc"]), rng=gs_rng,
                                   gsparams=gsp).shear(q=q, beta=pa).dilate(np.sqrt(q))
    offset = rng.uniform(-0.5, 0.5, 2)  # sub-pixel position on the native grid
    extras: list[tuple[Any, np.ndarray]] = []  # (profile of flux 1, flux per band)
    fov = n_nat * s_nat / 2.0
    for _ in range(int(p["n_neigh"])):
        rad, ang = rng.uniform(2.5, fov * 1.2), rng.uniform(0, 2 * np.pi)
        nb = galsim.Sersic(n=float(rng.choice([1.0, 4.0])), half_light_radius=float(rng.uniform(0.3, 2.5)),
                           gsparams=gsp).shear(q=float(rng.uniform(0.3, 1.0)),
                                              beta=rng.uniform(0, 180) * galsim.degrees)
        rmag = rng.uniform(max(float(p["r_mag"]) - 1.0, 15.0), 22.0)
        gr, ri = rng.uniform(0.3, 1.1), rng.uniform(0.15, 0.5)
        fl = ab_mag_to_nmgy(np.array([rmag + gr, rmag, rmag - ri]))
        extras.append((nb.shift(rad * np.cos(ang), rad * np.sin(ang)), fl))
    if bool(p["has_star"]):
        x, y = rng.uniform(-fov * 1.1, fov * 1.1, 2)
        rmag = rng.uniform(12.5, 16.0)
        gr, ri = rng.uniform(0.3, 1.4), rng.uniform(0.1, 0.6)
        fl = ab_mag_to_nmgy(np.array([rmag + gr, rmag, rmag - ri]))
        extras.append((galsim.DeltaFunction(gsparams=gsp).shift(x, y), fl))
    native = np.empty((3, n_nat, n_nat))
    for b in range(3):
        comps = [float(p["f_bulge"][b]) * bulge, float(p["f_disc"][b]) * disc]
        if knots is not None:
            comps.append(float(p["f_knots"][b]) * knots)
        psf = _psf(geo, float(p["fwhm"][b]), gsp)
        img = galsim.ImageD(n_nat, n_nat, scale=s_nat)
        galsim.Convolve(galsim.Sum(comps), psf).drawImage(img, offset=offset)
        for prof, fl in extras:
            galsim.Convolve(float(fl[b]) * prof, psf).drawImage(img, offset=offset, add_to_image=True)
        native[b] = img.array
    # detector: electrons, saturation + bleed, Poisson/sky/dark noise (Gaussian), back to nanomaggies
    e_per, sky = geo["e_per"], geo["sky_nat"]
    for b in range(3):
        sig_e = native[b] * e_per[b]
        if sig_e.max() + sky[b] * e_per[b] > geo["sat_e"]:
            tot = sig_e + sky[b] * e_per[b]
            _bleed(tot, geo["sat_e"])
            sig_e = tot - sky[b] * e_per[b]
        var_e = np.maximum(sig_e, 0.0) + sky[b] * e_per[b] + geo["dark_e2"][b]
        noise = rng.standard_normal(sig_e.shape)  # always drawn: same random stream with or without noise
        native[b] = (sig_e + (np.sqrt(var_e) * noise if geo["noise"] else 0.0)) / e_per[b]
    yy, xx = (np.mgrid[0:n_nat, 0:n_nat] - (n_nat - 1) / 2.0) * s_nat
    if int(p["trail_band"]) >= 0:
        b = int(p["trail_band"])
        theta = rng.uniform(0, np.pi)
        x0, y0 = rng.uniform(-fov / 2, fov / 2, 2)
        d = (xx - x0) * np.sin(theta) - (yy - y0) * np.cos(theta)
        sigma = float(p["fwhm"][b]) / 2.3548
        native[b] += rng.uniform(0.05, 0.6) * geo["binning"] * np.exp(-0.5 * (d / sigma) ** 2)
    if int(p["badcol_band"]) >= 0:
        b = int(p["badcol_band"])
        col = int(rng.integers(0, n_nat))
        native[b][:, col] = -sky[b] if rng.random() < 0.5 else 5.0 * sky[b]  # dead or hot (sky-subtracted)
    # resample to the cutout grid (bilinear), preserving surface brightness -> nanomaggies per output pixel
    if n_nat == geo["n_out"] and s_nat == geo["scale_out"]:
        out = native  # drawn on the output grid
    else:
        i0, t = _bilinear_weights(geo["n_out"], geo["scale_out"], n_nat, s_nat)
        out = resample_bilinear(native, i0, t) * (geo["scale_out"] / s_nat) ** 2
    return np.ascontiguousarray(out[:, ::-1, :], dtype=np.float32)  # row 0 = top (north), as in SDSS JPEGs



def _render_chunk(rows: np.ndarray, params: dict[str, np.ndarray], entropies: np.ndarray,
                  geo: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Worker task: render the galaxies of one chunk; returns (rows, images, rgb)."""
    imgs = np.empty((len(rows), 3, geo["n_out"], geo["n_out"]), dtype=np.float32)
    for k in range(len(rows)):
        p = {name: arr[k] for name, arr in params.items()}
        imgs[k] = render_galaxy(p, entropies[k], geo)
    rgb = lupton_rgb(imgs, geo["rgb_q"], geo["rgb_stretch"], geo["rgb_scales"], geo["jpeg"])
    return rows, imgs, rgb


def galaxy_entropies(seed: int, n: int) -> np.ndarray:
    """(n, 4) uint32 per-galaxy seeds: SeedSequence(seed) -> child 1 -> spawn(n) (child 0 draws the catalogue)."""
    children = np.random.SeedSequence(seed).spawn(2)[1].spawn(n)
    return np.array([c.generate_state(4) for c in children], dtype=np.uint32)



__all__ = ["draw_grid", "galaxy_entropies", "render_galaxy", "render_geometry", "resample_bilinear"]
