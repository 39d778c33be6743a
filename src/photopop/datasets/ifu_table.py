"""`build_ifu_table`: an `ifu prepare` folder + its labels -> an `SEDTable` (`photopop ifu table`).

Each binned spectrum gets synthetic photometry in the chosen filter system (observed frame, as the paper made
J-PAS magnitudes from CALIFA spectra; `photometry.catalogue.photometry_catalogue`, as `photopop photometry
--out`, with the propagated errors and bad pixels: short masked runs interpolated, counted in
``meta['interpolated_band_values']``) and the labels of its pPXF fit (joined on galaxy_id, spaxel_id).
Rows are left out -- and counted in ``meta['dropped']`` -- when the fit did not succeed (status != 'ok'), when chi2_red > 2 (the paper's cut;
`keep_flagged` keeps them), or when a band has no magnitude. The table (kind 'ifu-cube') has the documented
schema: galaxy_id, spaxel_id, x_arcsec, y_arcsec, r_re, mag_/magerr_<band>, log_age, zh, log_age_mw, zh_mw,
plus sigma_kms, chi2_red, snr, n_spaxels; the galaxy table holds the geometry and redshift.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import InputError, MismatchError
from ..fitting.spectra import BINS_META, SpectrumSet, bins_spectrum_files, is_bins_folder, read_spectrum_set
from ..io import read_json, read_table
from ..photometry.masking import DEFAULT_MAX_INTERPOLATED
from .sed_table import SEDTable

LABEL_KEEP = ("log_age", "zh", "log_age_mw", "zh_mw", "sigma_kms", "chi2_red", "snr")


@dataclass
class _BinSpectrum:
    """One binned spectrum in the form `photometry_catalogue` reads (as `read_spectrum` gives)."""

    wavelength: Any
    flux: Any
    ivar: np.ndarray
    mask: np.ndarray
    meta: dict[str, Any]


def bins_photometry(sset: SpectrumSet, system: Any, bands: Sequence[str] | None = None, *,
                    max_interpolated: float = DEFAULT_MAX_INTERPOLATED, source: str = ""
                    ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(bands, mag (n, nb), magerr (n, nb), coverage (n, nb)) of the binned spectra.

    The one place this module calls synthetic photometry, through `photometry_catalogue` exactly as
    `photopop photometry --out` does: bad pixels (BADPIX, ivar <= 0, non-finite) are missing, masked runs
    carrying at most `max_interpolated` of a band's AB weight are interpolated (coverage 'interpolated'),
    and the band is NaN beyond that share or where the spectra do not reach (coverage 'none'). Bands
    outside the cube's wavelength range are left out when `bands` is None and raise InputError when asked for.
    """
    import astropy.units as u

    from ..photometry.catalogue import photometry_catalogue
    from ..photometry.filters import load_filter_system

    fsys = load_filter_system(system)
    if bands is not None:
        fsys = fsys.select(list(bands))
    covered = fsys.inside((sset.wavelength_aa[0], sset.wavelength_aa[-1]))
    if not covered.any():
        raise InputError(f"no band of {fsys.name} lies inside the spectra's {sset.wavelength_aa[0]:.0f}-"
                         f"{sset.wavelength_aa[-1]:.0f} A")
    if not covered.all():
        missing = [b for b, c in zip(fsys.bands, covered) if not c]
        if bands is not None:
            raise InputError(f"band(s) {missing} lie outside the spectra's {sset.wavelength_aa[0]:.0f}-"
                             f"{sset.wavelength_aa[-1]:.0f} A")
        fsys = fsys.select([b for b, c in zip(fsys.bands, covered) if c], name=fsys.name)
    wave = np.asarray(sset.wavelength_aa, float) * u.AA
    unit = u.Unit(sset.flux_unit)
    rows = [_BinSpectrum(wave, np.asarray(sset.flux[i], float) * unit, np.asarray(sset.ivar[i], float),
                         np.asarray(sset.bad[i], bool), {"file": source}) for i in range(sset.flux.shape[0])]
    cat = photometry_catalogue(rows, fsys, ids=[str(i) for i in sset.ids], max_interpolated=max_interpolated)
    b = list(fsys.bands)
    mag = cat[[f"mag_{x}" for x in b]].to_numpy(np.float64)
    err = cat[[f"magerr_{x}" for x in b]].to_numpy(np.float64)
    cov = cat[[f"coverage_{x}" for x in b]].to_numpy(str)
    return b, mag, err, cov


def build_ifu_table(bins: str | os.PathLike, labels: str | os.PathLike | pd.DataFrame, system: Any, *,
                    bands: Sequence[str] | None = None, keep_flagged: bool = False,
                    max_interpolated: float = DEFAULT_MAX_INTERPOLATED) -> SEDTable:
    """The SED table of an `ifu prepare` folder and its labels table (module docstring)."""
    bins = Path(bins)
    if not is_bins_folder(bins):
        raise InputError(f"{bins}: not an `ifu prepare` folder (meta.json kind 'ifu-bins')")
    lab = labels if isinstance(labels, pd.DataFrame) else read_table(labels)
    need = ["galaxy_id", "spaxel_id", "status", "chi2_flag", *LABEL_KEEP]
    missing = [c for c in need if c not in lab.columns]
    if missing:
        raise InputError(f"{labels if not isinstance(labels, pd.DataFrame) else 'labels'}: missing column(s) "
                         f"{missing}; make it with `photopop labels {bins}`")
    table = read_table(bins / "bins.parquet")
    galaxies = read_table(bins / "galaxies.parquet")
    per_cube, band_sets = [], []
    interpolated = 0
    for f in bins_spectrum_files(bins):
        sset = read_spectrum_set(f)
        b, mag, err, cov = bins_photometry(sset, system, bands, max_interpolated=max_interpolated, source=str(f))
        band_sets.append(b)
        interpolated += int((cov == "interpolated").sum())
        frame = pd.DataFrame({"galaxy_id": sset.galaxy_id, "spaxel_id": sset.spaxel_id})
        per_cube.append((frame, b, mag, err))
    common = [b for b in band_sets[0] if all(b in s for s in band_sets)]
    if not common:
        raise MismatchError(f"{bins}: the cubes share no band of {system}")
    phot_frames = []
    for frame, b, mag, err in per_cube:
        idx = [b.index(x) for x in common]
        for j, band in zip(idx, common):
            frame[f"mag_{band}"] = mag[:, j]
            frame[f"magerr_{band}"] = err[:, j]
        phot_frames.append(frame)
    phot = pd.concat(phot_frames, ignore_index=True)
    df = table.merge(phot, on=["galaxy_id", "spaxel_id"], how="left", validate="one_to_one")
    lab = lab[need].copy()
    lab["galaxy_id"] = lab["galaxy_id"].astype(np.int64)
    lab["spaxel_id"] = lab["spaxel_id"].astype(np.int64)
    df = df.merge(lab, on=["galaxy_id", "spaxel_id"], how="left", validate="one_to_one")
    no_fit = df["status"].isna()
    failed = ~no_fit & (df["status"] != "ok")
    flagged = ~no_fit & ~failed & df["chi2_flag"].astype(bool) & (not keep_flagged)
    mags = df[[f"mag_{b}" for b in common] + [f"magerr_{b}" for b in common]].to_numpy(np.float64)
    no_mag = ~np.all(np.isfinite(mags), axis=1) & ~(no_fit | failed | flagged)
    keep = ~(no_fit | failed | flagged | no_mag)
    dropped = {"no_labels": int(no_fit.sum()), "fit_failed": int(failed.sum()), "chi2_red_gt_2": int(flagged.sum()),
               "no_magnitude": int(no_mag.sum())}
    if not keep.any():
        raise InputError(f"{bins}: no binned spectrum has both labels and magnitudes (dropped: {dropped})")
    cols = ["galaxy_id", "spaxel_id", "x_arcsec", "y_arcsec", "r_re"] + \
        [c for b in common for c in (f"mag_{b}", f"magerr_{b}")] + list(LABEL_KEEP) + ["n_spaxels", "pix_x", "pix_y"]
    spaxels = df.loc[keep, cols].reset_index(drop=True)
    meta = {"kind": "ifu-cube", "filter_system": getattr(system, "name", str(system)), "bands": common,
            "seed": None, "photopop_version": __version__, "source": str(bins), "dropped": dropped,
            "interpolated_band_values": interpolated, "max_interpolated": float(max_interpolated),
            "labels_from": "pPXF (photopop labels)", "bins_meta": read_json(bins / BINS_META).get("config")}
    return SEDTable(spaxels, galaxies, meta).validate(source=str(bins))
