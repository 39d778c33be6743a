"""Mock SDSS-like imaging survey rendered with GalSim: g, r, i cutouts of bulge + disc (+ clumps) galaxies.

`simulate_image_survey(config, out_dir)` draws a flux-limited (petroMag_r < 17.77) catalogue at 0.02 < z < 0.2,
renders 128 x 128 cutouts at 0.296"/pixel with SDSS-like PSF, sky noise and artefacts, and writes an `ImageSet`
(see docs/images-data.md, which also lists the physics and which image features carry the metallicity signal).

Pipeline (everything up to rendering is vectorised over galaxies in the main process):

1. labels (`mzr.py`): log M* (Baldry et al. 2012 double Schechter), z (uniform in comoving volume), SFR (main
   sequence + quenched), sizes (Shen et al. 2003), 12+log(O/H) (MZR + FMR + size term + scatter);
2. stellar populations (`colour_table.py`): ugriz magnitudes of bulge, disc and young clumps from BC03 for their
   SFHs and a metallicity tied to the gas, Calzetti attenuation that grows with inclination;
3. selection on the noise-free petroMag_r, then fibre metallicity, catalogue noise;
4. rendering (GalSim; parallel worker processes, one seed per galaxy from SeedSequence.spawn so the images do
   not depend on the number of workers or the chunk size): Sersic bulge + InclinedExponential disc +
   RandomKnots clumps, each with its own colour, convolved with a per-galaxy, per-band Kolmogorov (or Moffat)
   PSF, drawn on the native 0.396"/pixel SDSS grid with Poisson + sky + dark noise in electrons (53.9 s
   exposure, SDSS collecting area and filter curves), neighbours / bright stars (with saturation bleed) /
   satellite trails / bad columns at low rates, then bilinearly resampled to 0.296"/pixel as the SDSS cutout
   service does (so the output noise is correlated between neighbouring pixels exactly as in real cutouts);
5. an irg colour composite (astropy make_lupton_rgb, Lupton et al. 2004 asinh stretch) per galaxy.

The jobs live in their own modules: `image_config` (`ImageSurveyConfig`), `image_photometry` (electrons
per nanomaggy, sky, Petrosian and half-light radii), `image_catalog` (`draw_catalog`), `image_render`
(`render_galaxy`, resampling), `photopop.datasets.composite` (`lupton_rgb`); this module runs the survey
(`simulate_image_survey`: catalogue, worker processes, the image-set writer) and re-exports their names.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from .colour_table import BANDS_UGRIZ
from .image_catalog import draw_catalog
from .image_config import RENDER_BANDS, ImageSurveyConfig
from .image_photometry import (
    electrons_per_nanomaggy,
    half_light_radius,
    petrosian_fraction,
    sky_nanomaggies_per_arcsec2,
)
from .image_render import (
    _bilinear_weights,
    _render_chunk,
    draw_grid,
    galaxy_entropies,
    render_galaxy,
    render_geometry,
    resample_bilinear,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..datasets.image_set import ImageSet


def _mp_context() -> Any:
    """'fork' on Linux (no `if __name__ == "__main__"` guard needed in user scripts, no re-import cost);
    'spawn' elsewhere (macOS/Windows scripts then need the usual main guard)."""
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")



def simulate_image_survey(config: ImageSurveyConfig, out_dir: str | os.PathLike, *, n_workers: int | None = 1,
                          progress: bool = False, overwrite: bool = False) -> ImageSet:
    """Draw, render and write a mock imaging survey; returns the opened `ImageSet`.

    `out_dir` follows the output-folder contract (`photopop.outputs`): a folder photopop wrote as an
    image set with the same config is rewritten, another one only with `overwrite`.

    n_workers: worker processes (None = all CPUs; 1 = in this process). The images do not depend on it.
    """
    from ..datasets.image_set import ImageSet, ImageSetWriter

    config.validate()
    from ..config import to_dict
    from ..outputs import check_output

    settings = {"config": to_dict(config)}
    check_output(out_dir, "image-set", settings, overwrite=overwrite)  # before rendering
    t0 = time.perf_counter()
    cat_rng = np.random.default_rng(np.random.SeedSequence(config.seed).spawn(2)[0])
    catalog, render = draw_catalog(config, cat_rng)
    n = len(catalog)
    entropies = galaxy_entropies(config.seed, n)
    geo = render_geometry(config)
    chunks = [np.arange(s, min(s + config.chunk_size, n)) for s in range(0, n, config.chunk_size)]
    workers = (os.cpu_count() or 1) if n_workers is None else max(int(n_workers), 1)
    meta = {"kind": "mock-images", "seed": config.seed, "n_workers": workers,
            "photopop_version": __version__, "render_bands": list(RENDER_BANDS),
            "catalog_bands": list(BANDS_UGRIZ), "native_pixel_scale_arcsec": config.native_pixel_scale_arcsec,
            "electrons_per_nanomaggy_gri": geo["e_per"].tolist()}
    rgb_attrs = {"Q": config.rgb_q, "stretch": config.rgb_stretch, "scales_irg": list(config.rgb_scales),
                 "jpeg_quality": config.rgb_jpeg_quality, "method": "astropy.visualization.make_lupton_rgb"}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="gal", desc="rendering")

    def task(rows: np.ndarray) -> tuple:
        return rows, {k: v[rows] for k, v in render.items()}, entropies[rows], geo

    with ImageSetWriter(out_dir, catalog, image_shape=(config.image_size, config.image_size),
                        pixel_scale_arcsec=config.pixel_scale_arcsec, meta=meta, config=config,
                        png=config.png, compression=config.compression or None, rgb_attrs=rgb_attrs,
                        settings=settings, overwrite=overwrite) as writer:
        def store(result: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
            rows, imgs, rgb = result
            writer.write(rows, images=imgs, rgb=rgb)
            if bar is not None:
                bar.update(len(rows))

        if workers == 1:
            for rows in chunks:
                store(_render_chunk(*task(rows)))
        else:
            ctx = _mp_context()
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                pending: set[cf.Future] = set()
                for rows in chunks:  # bounded number of chunks in flight: bounded memory
                    if len(pending) >= 2 * workers:
                        done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                        for fut in done:
                            store(fut.result())
                    pending.add(pool.submit(_render_chunk, *task(rows)))
                for fut in cf.as_completed(pending):
                    store(fut.result())
        writer.meta["elapsed_s"] = round(time.perf_counter() - t0, 2)
    if bar is not None:
        bar.close()
    return ImageSet.open(out_dir)



__all__ = [
    "RENDER_BANDS",
    "ImageSurveyConfig",
    "_bilinear_weights",
    "draw_catalog",
    "draw_grid",
    "electrons_per_nanomaggy",
    "galaxy_entropies",
    "half_light_radius",
    "petrosian_fraction",
    "render_galaxy",
    "render_geometry",
    "resample_bilinear",
    "simulate_image_survey",
    "sky_nanomaggies_per_arcsec2",
]
