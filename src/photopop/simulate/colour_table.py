"""Precomputed ugriz magnitudes per unit stellar mass of the mock galaxies' stellar components.

Rendering needs, for every galaxy, the flux of its bulge, disc and star-forming clumps in five bands. Composing
a spectrum per galaxy would be slow, so we tabulate once (a few seconds) and interpolate (vectorised):

* bulge: exponentially declining SFH (tau = 1 Gyr) that started at z_form = 3, metallicity [Z/H];
* disc: a one-parameter family of SFHs that started at z_form = 2, ordered by specific SFR (SFR averaged over
  the last 100 Myr per unit surviving stellar mass): constant SFR over the last A Gyr (youngest discs, highest
  sSFR) and exponentially declining SFRs from z_form with tau from 30 to 0.3 Gyr (older, redder discs);
* young: the part of the disc light from stars younger than 100 Myr (rendered as GalSim RandomKnots clumps).

Every entry is an observed-frame AB magnitude per M_sun of surviving stellar mass (BC03 `mass_fraction`) with
the distance modulus removed, ``k = m - DM(z)``, on a grid of redshift x [Z/H] (x log sSFR for discs); a
galaxy's magnitude is then ``k(z, [Z/H], ...) + DM(z) - 2.5 log10(M)``. The redshift dependence of `k` is the
K-correction plus the aging of the population (formation redshift fixed) and is smooth, so linear
interpolation on 12 redshift nodes is accurate to < 0.01 mag. Spectra come from `populations` (SSPGrid.bc03 and
its SFH classes); AB magnitudes are photon-counting synthetic photometry through the SDSS curves of
`photometry.load_filter_system('sdss')`; the cosmology is astropy's Planck18.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import RegularGridInterpolator

from ..errors import InputError

BANDS_UGRIZ: tuple[str, ...] = ("u", "g", "r", "i", "z")
L_SUN_ERG_S = 3.828e33


def ab_magnitudes(wave_obs_aa: np.ndarray, flam: np.ndarray, system: str = "sdss") -> np.ndarray:
    """AB magnitudes of spectra f_lambda (erg/s/cm^2/A) on `wave_obs_aa`, shape (n, n_bands), bluest band first.

    Thin wrapper over `photometry.synth_photometry` (photon-counting synthetic photometry); a band not fully
    covered by the spectra raises InputError.
    """
    from ..photometry.synth import synth_photometry

    res = synth_photometry(np.asarray(wave_obs_aa, dtype=np.float64), np.atleast_2d(flam), system,
                           flux_unit="erg / (s cm2 Angstrom)", wave_unit="Angstrom", coverage_tolerance=0.0)
    return np.asarray(res.mag_ab, dtype=np.float64).reshape(np.shape(np.atleast_2d(flam))[0], -1)


@dataclass(frozen=True)
class ColourTableSpec:
    """Grid and population settings of the table (hashable, used as the cache key)."""

    z_nodes: tuple[float, ...] = tuple(np.round(np.linspace(0.005, 0.25, 12), 6))
    zh_range: tuple[float, float] = (-0.75, 0.45)
    log_ssfr_nodes: tuple[float, ...] = tuple(np.round(np.linspace(-13.0, -8.5, 19), 6))
    bulge_z_form: float = 3.0
    bulge_tau_gyr: float = 1.0
    disc_z_form: float = 2.0
    young_age_yr: float = 1e8


@dataclass
class ColourTable:
    """Tabulated k = m - DM(z) per M_sun; see module docstring. Query with the `*_mags` methods."""

    spec: ColourTableSpec
    z: np.ndarray
    zh: np.ndarray
    log_ssfr: np.ndarray
    bulge: np.ndarray   # (nz, nzh, 5)
    disc: np.ndarray    # (nz, nzh, nssfr, 5)
    young: np.ndarray   # (nz, nzh, nssfr, 5)

    def __post_init__(self) -> None:
        self._bulge = RegularGridInterpolator((self.z, self.zh), self.bulge)
        self._disc = RegularGridInterpolator((self.z, self.zh, self.log_ssfr), self.disc)
        self._young = RegularGridInterpolator((self.z, self.zh, self.log_ssfr), self.young)

    def _points(self, redshift, zh, log_ssfr=None) -> np.ndarray:
        z = np.asarray(redshift, dtype=np.float64)
        if np.any(z < self.z[0]) or np.any(z > self.z[-1]):
            raise InputError(f"redshift outside the colour table ({self.z[0]:.3f}-{self.z[-1]:.3f})")
        cols = [z, np.clip(zh, self.zh[0], self.zh[-1])]
        if log_ssfr is not None:
            cols.append(np.clip(log_ssfr, self.log_ssfr[0], self.log_ssfr[-1]))
        return np.column_stack([np.broadcast_to(c, z.shape).reshape(-1) for c in cols])

    def bulge_mags(self, redshift, zh, logm) -> np.ndarray:
        """(n, 5) ugriz AB mags of a bulge population of mass 10**logm ([Z/H] clipped to the table)."""
        return self._bulge(self._points(redshift, zh)) + _dm_minus_mass(redshift, logm)

    def disc_mags(self, redshift, zh, log_ssfr, logm) -> np.ndarray:
        """(n, 5) ugriz AB mags of a disc of mass 10**logm and specific SFR 10**log_ssfr (/yr)."""
        return self._disc(self._points(redshift, zh, log_ssfr)) + _dm_minus_mass(redshift, logm)

    def young_mags(self, redshift, zh, log_ssfr, logm) -> np.ndarray:
        """(n, 5) ugriz AB mags of the < young_age_yr part of that disc."""
        return self._young(self._points(redshift, zh, log_ssfr)) + _dm_minus_mass(redshift, logm)


@functools.lru_cache(maxsize=1)
def _cosmology_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Planck18 distance modulus and proper kpc/arcsec on a fine log-z grid (0.001-0.5)."""
    from astropy.cosmology import Planck18

    logz = np.linspace(np.log10(1e-3), np.log10(0.5), 4001)
    z = 10.0**logz
    return logz, Planck18.distmod(z).value, 1.0 / Planck18.arcsec_per_kpc_proper(z).value


def _cosmo_interp(redshift, column: int) -> np.ndarray:
    z = np.asarray(redshift, dtype=np.float64)
    tab = _cosmology_table()
    if np.any(z < 1e-3) or np.any(z > 0.5):
        raise InputError("redshift outside 0.001-0.5 for the tabulated cosmology")
    return np.interp(np.log10(z), tab[0], tab[column])


def distance_modulus(redshift) -> np.ndarray:
    """Planck18 distance modulus 5 log10(d_L / 10 pc) (interpolated from a fine grid; error < 1e-5 mag)."""
    return _cosmo_interp(redshift, 1)


def kpc_per_arcsec(redshift) -> np.ndarray:
    """Planck18 proper kpc per arcsec (angular-diameter distance), interpolated like `distance_modulus`."""
    return _cosmo_interp(redshift, 2)


def _dm_minus_mass(redshift, logm) -> np.ndarray:
    return (distance_modulus(redshift) - 2.5 * np.asarray(logm, dtype=np.float64)).reshape(-1, 1)


def _mags_per_msun(grid, weights: np.ndarray, iz: np.ndarray, redshift: float) -> np.ndarray:
    """k = m - DM per M_sun surviving for SFH mass weights (n, nAge) at SSP metallicity indices iz (n,)."""
    nage = grid.shape[1]
    lum = np.empty((weights.shape[0], grid.shape[2]))
    surv = np.empty(weights.shape[0])
    for j in np.unique(iz):
        sel = iz == j
        lum[sel] = weights[sel] @ grid.spectra[j].astype(np.float64)
        mf = grid.mass_fraction[j] if grid.mass_fraction is not None else np.ones(nage)
        surv[sel] = weights[sel] @ mf
    dm = distance_modulus(redshift)
    dl_cm = 10.0 ** (dm / 5.0 + 1.0) * 3.0856775814913673e18
    flam = lum * L_SUN_ERG_S / (4.0 * np.pi * dl_cm**2 * (1.0 + redshift))
    mags = ab_magnitudes(grid.wavelength_aa * (1.0 + redshift), flam)
    return mags + 2.5 * np.log10(surv)[:, None] - dm


@functools.lru_cache(maxsize=4)
def build_colour_table(spec: ColourTableSpec = ColourTableSpec()) -> ColourTable:
    """Compute the table (cached per process; ~5 s)."""
    from astropy.cosmology import Planck18

    from ..populations.sfh import Constant, Exponential
    from ..populations.ssp import SSPGrid

    grid = SSPGrid.bc03(wave_range=(2000.0, 12000.0))
    zsel = np.flatnonzero((grid.zh >= spec.zh_range[0]) & (grid.zh <= spec.zh_range[1]))
    if zsel.size < 2:
        raise InputError(f"SSP grid has < 2 metallicities inside {spec.zh_range}")
    zh = grid.zh[zsel]
    z_nodes = np.asarray(spec.z_nodes, dtype=np.float64)
    s_nodes = np.asarray(spec.log_ssfr_nodes, dtype=np.float64)
    t_lb = lambda z: float(Planck18.lookback_time(z).to_value("Gyr"))  # noqa: E731
    edges = grid.age_bin_edges()
    young_mask = (edges[1:] <= spec.young_age_yr * 1.0001).astype(float)
    n_zh = zh.size
    bulge = np.empty((z_nodes.size, n_zh, 5))
    disc = np.empty((z_nodes.size, n_zh, s_nodes.size, 5))
    young = np.empty_like(disc)
    for a, z in enumerate(z_nodes):
        # bulge: exponential from z_form
        age_b = t_lb(spec.bulge_z_form) - t_lb(z)
        wb = Exponential(age_start_gyr=age_b, tau_gyr=spec.bulge_tau_gyr).weights(grid, outside="clip")
        bulge[a] = _mags_per_msun(grid, np.repeat(wb, n_zh, axis=0), zsel, z)
        # disc family ordered by sSFR
        age_d = t_lb(spec.disc_z_form) - t_lb(z)
        starts = np.geomspace(0.3, age_d, 8)[:-1]
        taus = np.array([30.0, 10.0, 6.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.7, 0.5, 0.4, 0.3])
        w = np.vstack([Constant(age_start_gyr=starts).weights(grid, outside="clip"),
                       Exponential(age_start_gyr=age_d, tau_gyr=taus).weights(grid, outside="clip")])
        sfr100 = (w * young_mask).sum(axis=1) / spec.young_age_yr
        mf = grid.mass_fraction if grid.mass_fraction is not None else np.ones(grid.shape[:2])
        for b, j in enumerate(zsel):
            surv = w @ mf[j]
            lssfr = np.log10(sfr100 / surv)
            order = np.argsort(lssfr)
            ws = w[order]
            ls = lssfr[order]
            iz = np.full(len(ws), j)
            m_all = _mags_per_msun(grid, ws, iz, z)
            # the young part per unit surviving mass of the whole disc
            m_young = _mags_per_msun(grid, ws * young_mask, iz, z) \
                - 2.5 * np.log10((ws * young_mask) @ mf[j] / (ws @ mf[j]))[:, None]
            for k in range(5):  # interpolate onto the regular sSFR nodes (edge values beyond the family)
                disc[a, b, :, k] = np.interp(s_nodes, ls, m_all[:, k])
                young[a, b, :, k] = np.interp(s_nodes, ls, m_young[:, k])
    return ColourTable(spec, z_nodes, zh, s_nodes, bulge, disc, young)
