"""`prepare_ifu_bins`: IFU cubes -> Voronoi-binned spectra with propagated errors (`photopop ifu prepare`).

Per cube (CALIFA V500/V1200/COMB or MaNGA LOGCUBE, read by `datasets.ifu.load_cube`):

1. signal and noise per spaxel: mean flux and sqrt(mean variance) over the good pixels of the rest-frame S/N
   window (default 5590-5680 A), i.e. the S/N per pixel. Spaxels with S/N < `min_spaxel_snr`, more than
   `bad_pixel_max` bad pixels overall, or no data are left out (bin id -1).
2. Voronoi binning of the kept spaxels to `target_sn` (Cappellari & Copin 2003, `vorbin.voronoi_2d_binning`, the
   method of CALIFA's and MaNGA's analyses). The bin S/N includes the survey's covariance correction (below).
   A cube whose spaxels all reach the target keeps them unbinned.
3. Binned spectra: at each wavelength the mean of the good member spectra times the number of members (a pixel
   is bad when fewer than half the members are good), variance = sum of the good members' variances scaled the
   same way, times the covariance correction beta(N)^2 with beta = 1 + alpha log10(min(N, N_max)) -- CALIFA
   (Garcia-Benito et al. 2015): alpha = 1.07 (V500, COMB), 1.06 (V1200), N_max = 80; MaNGA (Westfall et al.
   2019): alpha = 1.62, N_max = 100. `covariance_alpha = 0` switches it off.
4. Geometry: x/y (arcsec east/north of the centre, from the cube's celestial WCS) and the deprojected radius
   r_re of each bin's luminosity-unweighted centroid (`photopop.geometry.deprojected_radius`).

Instrumental resolution (FWHM, A, observed): CALIFA V500 and COMB 6.0, V1200 2.3 (Sanchez et al. 2016); the
setup comes from the file name (V500/V1200/COMB) or the sampling (CDELT3 < 1 A: V1200). MaNGA: lambda / SPECRES
(the LOGCUBE's median resolution vector). `fwhm_aa` overrides both.

Output folder (written atomically): ``bins.parquet`` (galaxy_id, spaxel_id = bin id, x_arcsec, y_arcsec, r_re,
pix_x, pix_y, n_spaxels, snr_bin = the bin's S/N per pixel in the S/N window, covariance-corrected, redshift),
``galaxies.parquet`` (galaxy_id, re_arcsec, pa_deg, inclination_deg, centre_x_pix, centre_y_pix, redshift,
source, layout, setup, fwhm_aa, covariance_alpha, n_spaxels_used), ``spectra/<galaxy_id>.fits`` (spectrum sets,
`fitting.spectra`, with the bin map and WCS) and ``meta.json`` (kind 'ifu-bins', config, version).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import InputError
from ..geometry import deprojected_radius
from ..fitting.spectra import BINS_KIND, BINS_META, BINS_SPECTRA_DIR, SpectrumSet, write_spectrum_set
from ..io import dumps_json, read_table, write_table_atomic
from ..outputs import check_output, replace_output, source_id
from .ifu import CubeData, load_cube

#: instrumental FWHM (A) of the CALIFA setups (Sanchez et al. 2016, CALIFA DR3)
CALIFA_FWHM_AA = {"V500": 6.0, "V1200": 2.3, "COMB": 6.0}
#: covariance correction beta(N) = 1 + alpha log10(min(N, N_max)) per survey setup
COVARIANCE = {"V500": (1.07, 80), "COMB": (1.07, 80), "V1200": (1.06, 80), "MaNGA": (1.62, 100)}


@dataclass
class GalaxyGeometry:
    """Where a galaxy is in its cube and how it is inclined; centre in 0-based pixels (None = cube middle)."""

    galaxy_id: int
    re_arcsec: float
    redshift: float
    pa_deg: float = 0.0
    inclination_deg: float = 0.0
    centre_x_pix: float | None = None
    centre_y_pix: float | None = None


@dataclass
class BinningConfig:
    """Settings of `prepare_ifu_bins` (module docstring)."""

    target_sn: float = 20.0
    min_spaxel_snr: float = 3.0
    sn_window_aa: tuple[float, float] = (5590.0, 5680.0)
    bad_pixel_max: float = 0.5
    covariance_alpha: float | None = None
    fwhm_aa: float | None = None
    pixel_scale_arcsec: float | None = None

    def __post_init__(self) -> None:
        self.sn_window_aa = tuple(float(v) for v in self.sn_window_aa)  # type: ignore[assignment]
        if not self.target_sn > 0 or self.min_spaxel_snr < 0:
            raise InputError("target_sn must be > 0 and min_spaxel_snr >= 0")
        if not 0 <= self.bad_pixel_max <= 1:
            raise InputError(f"bad_pixel_max must be in [0, 1], got {self.bad_pixel_max}")


def geometry_from_table(path: str | os.PathLike, cubes: Sequence[str | os.PathLike]) -> list[GalaxyGeometry]:
    """One GalaxyGeometry per cube from a table with columns cube (file name, with or without extension),
    galaxy_id, re_arcsec, redshift and optional pa_deg, inclination_deg, centre_x_pix, centre_y_pix."""
    df = read_table(path, None)
    need = ["cube", "galaxy_id", "re_arcsec", "redshift"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(f"{path}: geometry table lacks column(s) {missing}")
    keys = {str(v): i for i, v in enumerate(df["cube"].astype(str))}
    out = []
    for c in cubes:
        name = Path(c).name
        hit = next((keys[k] for k in (name, name.split(".")[0], str(c)) if k in keys), None)
        if hit is None:
            raise InputError(f"{path}: no row with cube = {name!r}")
        r = df.iloc[hit]
        opt = {k: float(r[k]) for k in ("pa_deg", "inclination_deg", "centre_x_pix", "centre_y_pix")
               if k in df.columns and pd.notna(r[k])}
        out.append(GalaxyGeometry(int(r["galaxy_id"]), float(r["re_arcsec"]), float(r["redshift"]), **opt))
    return out


def _setup(cube: CubeData, path: Path) -> str:
    if cube.layout == "manga":
        return "MaNGA"
    name = path.name.upper()
    for s in ("V1200", "V500", "COMB"):
        if s in name:
            return s
    return "V1200" if np.median(np.diff(cube.wave)) < 1.0 else ("COMB" if cube.wave[0] < 3720 else "V500")


def _resolution(cube: CubeData, setup: str, cfg: BinningConfig, path: Path) -> np.ndarray:
    if cfg.fwhm_aa is not None:
        return np.full(cube.wave.size, float(cfg.fwhm_aa))
    if setup in CALIFA_FWHM_AA:
        return np.full(cube.wave.size, CALIFA_FWHM_AA[setup])
    res = cube.extensions.get("SPECRES")
    if res is None or np.shape(res) != cube.wave.shape or not np.all(np.asarray(res) > 0):
        raise InputError(f"{path}: MaNGA cube without a usable SPECRES extension; give the FWHM (--fwhm)")
    return cube.wave / np.asarray(res, np.float64)


def _variance(cube: CubeData, path: Path) -> np.ndarray:
    if cube.err is not None:
        return cube.err**2
    if cube.ivar is not None:
        with np.errstate(divide="ignore"):
            return np.where(cube.ivar > 0, 1.0 / np.where(cube.ivar > 0, cube.ivar, 1.0), np.inf)
    raise InputError(f"{path}: the cube has no error extension (CALIFA ERROR / MaNGA IVAR); binning needs errors")


def _beta(n: np.ndarray, alpha: float, n_max: int) -> np.ndarray:
    return 1.0 + alpha * np.log10(np.clip(n, 1, n_max))


def voronoi_bins(x: np.ndarray, y: np.ndarray, signal: np.ndarray, noise: np.ndarray, target_sn: float,
                 alpha: float, n_max: int) -> np.ndarray:
    """Bin number of each point (vorbin, covariance-corrected S/N); every point its own bin if all reach it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # vorbin's deprecation notice on import
        from vorbin.voronoi_2d_binning import voronoi_2d_binning

    def sn_func(index: np.ndarray, signal: np.ndarray, noise: np.ndarray) -> float:
        n = np.size(index)
        return float(np.sum(signal[index]) / np.sqrt(np.sum(noise[index] ** 2)) / _beta(np.array(n), alpha, n_max))

    if np.min(signal / noise) >= target_sn:
        return np.arange(x.size)
    if sn_func(np.arange(x.size), signal, noise) < target_sn:
        raise InputError(f"the whole cube reaches S/N {sn_func(np.arange(x.size), signal, noise):.1f} < target "
                         f"{target_sn}; lower --target-sn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # vorbin's deprecation notice
        bin_num = voronoi_2d_binning(x, y, signal, noise, target_sn, plot=False, quiet=True, pixelsize=1.0,
                                     sn_func=sn_func)[0]
    return np.asarray(bin_num, np.int64)


def bin_cube(path: str | os.PathLike, geom: GalaxyGeometry, cfg: BinningConfig) -> tuple[SpectrumSet, pd.DataFrame,
                                                                                         dict[str, Any]]:
    """Bin one cube: (spectrum set, bins table rows, galaxy row)."""
    path = Path(path)
    cube = load_cube(path, pixel_scale_arcsec=cfg.pixel_scale_arcsec, extra_extensions=("SPECRES",))
    setup = _setup(cube, path)
    fwhm = _resolution(cube, setup, cfg, path)
    var = _variance(cube, path)
    flux, bad = cube.flux, cube.bad | ~np.isfinite(var)
    nw, ny, nx = flux.shape
    alpha, n_max = COVARIANCE[setup]
    if cfg.covariance_alpha is not None:
        alpha = float(cfg.covariance_alpha)
    lo, hi = (w * (1 + geom.redshift) for w in cfg.sn_window_aa)
    win = (cube.wave >= lo) & (cube.wave <= hi)
    if win.sum() < 3:
        raise InputError(f"{path}: the S/N window {cfg.sn_window_aa} A (rest) at z = {geom.redshift} is not "
                         f"inside the cube's {cube.wave[0]:.0f}-{cube.wave[-1]:.0f} A")
    good = ~bad
    gw = good[win]
    n_gw = gw.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        signal = np.where(gw, flux[win], 0.0).sum(axis=0) / n_gw
        noise = np.sqrt(np.where(gw, var[win], 0.0).sum(axis=0) / n_gw)
        sn = signal / noise
    use = (n_gw >= 0.5 * win.sum()) & np.isfinite(sn) & (sn >= cfg.min_spaxel_snr) & (signal > 0) & \
        (bad.mean(axis=0) <= cfg.bad_pixel_max)
    if not use.any():
        raise InputError(f"{path}: no spaxel with S/N >= {cfg.min_spaxel_snr} in the S/N window")
    yy, xx = np.mgrid[0:ny, 0:nx]
    try:
        bins = voronoi_bins(xx[use].astype(float), yy[use].astype(float), signal[use], noise[use], cfg.target_sn,
                            alpha, n_max)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc
    bin_map = np.full((ny, nx), -1, np.int64)
    bin_map[use] = bins
    ids, inv = np.unique(bins, return_inverse=True)
    nb = ids.size
    rows_f = flux[:, use].T  # (n_used, nw)
    rows_v = np.where(good[:, use], var[:, use], 0.0).T
    rows_g = good[:, use].T
    members = np.bincount(inv, minlength=nb).astype(np.float64)

    def bsum(a: np.ndarray) -> np.ndarray:
        out = np.zeros((nb,) + a.shape[1:])
        np.add.at(out, inv, a)
        return out

    n_good = bsum(rows_g.astype(float))
    scale = members[:, None] / np.maximum(n_good, 1.0)
    bflux = bsum(np.where(rows_g, rows_f, 0.0)) * scale
    bvar = bsum(rows_v) * scale**2 * _beta(members, alpha, n_max)[:, None] ** 2
    bbad = n_good < 0.5 * members[:, None]
    ivar = np.where(bbad | ~(bvar > 0), 0.0, 1.0 / np.where(bvar > 0, bvar, 1.0))
    bflux = np.where(bbad, 0.0, bflux)
    px, py = bsum(xx[use].astype(float)) / members, bsum(yy[use].astype(float)) / members
    x0 = geom.centre_x_pix if geom.centre_x_pix is not None else (nx - 1) / 2.0
    y0 = geom.centre_y_pix if geom.centre_y_pix is not None else (ny - 1) / 2.0
    sky = cube.sky
    xa = sky[0, 0] * (px - x0) + sky[0, 1] * (py - y0)
    ya = sky[1, 0] * (px - x0) + sky[1, 1] * (py - y0)
    r_re = deprojected_radius(xa, ya, geom.pa_deg, geom.inclination_deg, geom.re_arcsec)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr_bin = bsum(signal[use][:, None])[:, 0] / np.sqrt(bsum(noise[use][:, None] ** 2)[:, 0]) \
            / _beta(members, alpha, n_max)
    gid = int(geom.galaxy_id)
    sset = SpectrumSet(cube.wave, bflux, ivar, bbad, fwhm, np.array([f"{gid}:{i}" for i in ids]),
                       np.full(nb, gid), ids, np.full(nb, geom.redshift), cube.medium, cube.flux_unit,
                       bin_map=bin_map, wcs_header=cube.celestial_header)
    table = pd.DataFrame({"galaxy_id": np.full(nb, gid, np.int64), "spaxel_id": ids.astype(np.int64),
                          "x_arcsec": xa, "y_arcsec": ya, "r_re": r_re, "pix_x": px, "pix_y": py,
                          "n_spaxels": members.astype(np.int64), "snr_bin": snr_bin,
                          "redshift": np.full(nb, geom.redshift)})
    galaxy = {"galaxy_id": gid, "re_arcsec": float(geom.re_arcsec), "pa_deg": float(geom.pa_deg),
              "inclination_deg": float(geom.inclination_deg), "centre_x_pix": float(x0), "centre_y_pix": float(y0),
              "redshift": float(geom.redshift), "source": str(path), "layout": cube.layout, "setup": setup,
              "fwhm_aa": float(np.median(fwhm)), "covariance_alpha": alpha, "n_spaxels_used": int(use.sum())}
    return sset, table, galaxy


def prepare_ifu_bins(cubes: Sequence[str | os.PathLike], geometry: Sequence[GalaxyGeometry], out: str | os.PathLike,
                     config: BinningConfig | None = None, *, overwrite: bool = False) -> Path:
    """Bin every cube and write the `ifu prepare` folder `out` (layout in the module docstring)."""
    cfg = config or BinningConfig()
    out = Path(out)
    if len(cubes) != len(geometry):
        raise InputError(f"{len(cubes)} cube(s) but {len(geometry)} geometry record(s)")
    gids = [g.galaxy_id for g in geometry]
    if len(set(gids)) != len(gids):
        raise InputError(f"duplicate galaxy_id(s) in the geometry: {sorted(gids)}")
    settings = {"config": asdict(cfg), "cubes": [source_id(c) for c in cubes], "geometry": [asdict(g) for g in geometry]}
    check_output(out, BINS_KIND, settings, overwrite=overwrite, inputs=cubes)  # a bad --out fails before binning
    results = [bin_cube(c, g, cfg) for c, g in zip(cubes, geometry)]
    with replace_output(out, BINS_KIND, settings, overwrite=overwrite, inputs=cubes) as tmp:
        (tmp / BINS_SPECTRA_DIR).mkdir()
        for sset, _, gal in results:
            write_spectrum_set(tmp / BINS_SPECTRA_DIR / f"{gal['galaxy_id']:06d}.fits", sset)
        write_table_atomic(pd.concat([r[1] for r in results], ignore_index=True), tmp / "bins.parquet")
        write_table_atomic(pd.DataFrame([r[2] for r in results]), tmp / "galaxies.parquet")
        (tmp / BINS_META).write_text(dumps_json({"kind": BINS_KIND, "photopop_version": __version__,
                                                 "config": asdict(cfg), "cubes": [str(c) for c in cubes],
                                                 "n_bins": int(sum(len(r[1]) for r in results))}) + "\n")
    return out
