"""`build_ifu_table`: an `ifu prepare` folder + its labels -> an `SEDTable` (`photopop ifu table`).

Each binned spectrum gets synthetic photometry in the chosen filter system (observed frame, as the paper made
J-PAS magnitudes from CALIFA spectra; `photometry.synth.synth_photometry` with the propagated errors and bad
pixels) and the labels of its pPXF fit (joined on galaxy_id, spaxel_id). Rows are left out -- and counted in
``meta['dropped']`` -- when the fit did not succeed (status != 'ok'), when chi2_red > 2 (the paper's cut;
`keep_flagged` keeps them), or when a band has no magnitude. The table (kind 'ifu-cube') has the documented
schema: galaxy_id, spaxel_id, x_arcsec, y_arcsec, r_re, mag_/magerr_<band>, log_age, zh, log_age_mw, zh_mw,
plus sigma_kms, chi2_red, snr, n_spaxels; the galaxy table holds the geometry and redshift.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import InputError, MismatchError
from ..fitting.spectra import BINS_META, SpectrumSet, bins_spectrum_files, is_bins_folder, read_spectrum_set
from ..io import read_json, read_table
from .sed_table import SEDTable

LABEL_KEEP = ("log_age", "zh", "log_age_mw", "zh_mw", "sigma_kms", "chi2_red", "snr")


def bins_photometry(sset: SpectrumSet, system: Any, bands: Sequence[str] | None = None
                    ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(bands, mag (n, nb), magerr (n, nb)) of the binned spectra; NaN where a band cannot be computed.

    The one place this module calls synthetic photometry. Bands outside the cube's wavelength range are
    left out when `bands` is None and raise InputError when asked for.
    """
    from ..photometry.filters import load_filter_system
    from ..photometry.synth import synth_photometry

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
    phot = synth_photometry(sset.wavelength_aa, np.where(sset.bad, np.nan, sset.flux), fsys, wave_unit="Angstrom",
                            flux_unit=sset.flux_unit, ivar=np.where(sset.bad, 0.0, sset.ivar), mask=sset.bad)
    mag = np.atleast_2d(phot.mag_ab)
    err = np.atleast_2d(phot.mag_err) if phot.mag_err is not None else np.full_like(mag, np.nan)
    return list(fsys.bands), mag, err


def build_ifu_table(bins: str | os.PathLike, labels: str | os.PathLike | pd.DataFrame, system: Any, *,
                    bands: Sequence[str] | None = None, keep_flagged: bool = False) -> SEDTable:
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
    for f in bins_spectrum_files(bins):
        sset = read_spectrum_set(f)
        b, mag, err = bins_photometry(sset, system, bands)
        band_sets.append(b)
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
            "labels_from": "pPXF (photopop labels)", "bins_meta": read_json(bins / BINS_META).get("config")}
    return SEDTable(spaxels, galaxies, meta).validate(source=str(bins))
