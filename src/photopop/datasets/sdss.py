"""SDSS spectroscopic catalogues (MPA-JHU columns) and the sample cuts of Wu & Boada (2019).

`read_sdss_catalog(path)` reads a FITS, CSV or Parquet table, matches the required columns case-insensitively
(``OBJID`` / ``objid`` / ``objID`` all work) and renames them to the canonical spelling below; a missing column
or a duplicate objID raises InputError. `apply_wu_boada_cuts(df)` applies the paper's cuts in order and
reports how many rows each removed. `to_image_catalog(df)` maps the columns onto the `ImageSet` label names
(`id`, `oh`, `log_mstar`, `log_sfr`, `sfr`, `mag_<band>`, `r_petro`, `redshift`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import read_table

SDSS_BANDS: tuple[str, ...] = ("u", "g", "r", "i", "z")
#: canonical column names a catalogue must provide (MPA-JHU DR7 + DR14 photometry, as in the paper)
REQUIRED_COLUMNS: tuple[str, ...] = (
    "objID", "ra", "dec", "z", "zErr",
    *(f"modelMag_{b}" for b in SDSS_BANDS),
    "petroMag_r", "oh_p50", "lgm_tot_p50", "sfr_tot_p50",
)
#: optional columns carried along when present (errors of the model magnitudes)
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(f"modelMagErr_{b}" for b in SDSS_BANDS)
#: MPA-JHU marks missing values with -9999 (and -99.9 for some masses)
MPA_MISSING = -9999.0


def _canonicalise(df: pd.DataFrame, path: str) -> pd.DataFrame:
    lower: dict[str, list[str]] = {}
    for col in df.columns:
        lower.setdefault(str(col).lower(), []).append(col)
    rename: dict[str, str] = {}
    missing: list[str] = []
    for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
        hits = lower.get(name.lower(), [])
        if len(hits) > 1:
            raise InputError(f"{path}: column {name!r} appears more than once ignoring case: {hits}")
        if hits:
            rename[hits[0]] = name
        elif name in REQUIRED_COLUMNS:
            missing.append(name)
    if missing:
        raise InputError(f"{path}: missing column(s) {missing} (matched case-insensitively); "
                         f"available: {list(map(str, df.columns))}")
    return df.rename(columns=rename)


def read_sdss_catalog(path: str | os.PathLike) -> pd.DataFrame:
    """Read an SDSS/MPA-JHU catalogue (FITS, CSV or Parquet) with canonical column names.

    Raises InputError for missing columns (listing all of them), a non-integer or duplicate objID.
    """
    df = read_table(path)
    df = _canonicalise(df, str(path))
    obj = df["objID"]
    if obj.dtype.kind not in "iu":
        try:
            as_int = pd.to_numeric(obj, errors="raise")
        except (ValueError, TypeError) as exc:
            raise InputError(f"{path}: objID must be an integer column, got {obj.dtype}") from exc
        if as_int.dtype.kind == "f":
            raise InputError(f"{path}: objID is floating point; SDSS objIDs (~1e18) lose precision as floats -- "
                             "write them as 64-bit integers or strings")
        df["objID"] = as_int
    df["objID"] = df["objID"].astype(np.int64)
    dup = df["objID"][df["objID"].duplicated(keep=False)]
    if len(dup):
        raise InputError(f"{path}: {dup.nunique()} duplicate objID value(s), e.g. {sorted(dup.unique())[:5]}")
    for col in REQUIRED_COLUMNS[1:] + tuple(c for c in OPTIONAL_COLUMNS if c in df.columns):
        if df[col].dtype.kind not in "iuf":
            raise InputError(f"{path}: column {col!r} must be numeric, got {df[col].dtype}")
    return df.reset_index(drop=True)


@dataclass
class CutReport:
    """Row counts through a sequence of cuts: `steps` holds (cut, removed, remaining) in order."""

    n_in: int
    steps: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def n_out(self) -> int:
        return self.steps[-1][2] if self.steps else self.n_in

    @property
    def total_removed(self) -> int:
        return self.n_in - self.n_out

    def removed(self, cut: str) -> int:
        """Rows removed by the named cut."""
        for name, rem, _ in self.steps:
            if name == cut:
                return rem
        raise KeyError(cut)

    def to_frame(self) -> pd.DataFrame:
        rows = [{"cut": n, "removed": r, "remaining": k} for n, r, k in self.steps]
        rows.append({"cut": "total", "removed": self.total_removed, "remaining": self.n_out})
        return pd.DataFrame(rows)

    def __str__(self) -> str:
        lines = [f"{self.n_in} rows in"]
        lines += [f"  {name:<28s} removed {rem:>8d}  remaining {left:>8d}" for name, rem, left in self.steps]
        lines.append(f"  {'total':<28s} removed {self.total_removed:>8d}  remaining {self.n_out:>8d}")
        return "\n".join(lines)


#: the cuts of Wu & Boada (2019) section 2, applied in this order (NaN fails every cut)
WU_BOADA_CUTS: tuple[str, ...] = (
    "10 < ugriz < 25", "0 < u - r < 6", "zErr < 0.01", "z > 0.02", "petroMag_r < 18", "oh_p50 != -9999",
)


def apply_wu_boada_cuts(df: pd.DataFrame) -> tuple[pd.DataFrame, CutReport]:
    """Apply the paper's sample cuts in order; returns (kept rows, report of rows removed per cut).

    Cuts (section 2): 10 < modelMag < 25 in all of u, g, r, i, z; 0 < u - r < 6; zErr < 0.01; z > 0.02;
    petroMag_r < 18; oh_p50 != -9999. Counts are sequential (a row is charged to the first cut it fails).
    Expects canonical column names (see `read_sdss_catalog`).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"catalogue lacks column(s) {missing} needed for the Wu & Boada cuts")
    mags = df[[f"modelMag_{b}" for b in SDSS_BANDS]].to_numpy(dtype=np.float64)
    ur = df["modelMag_u"].to_numpy(np.float64) - df["modelMag_r"].to_numpy(np.float64)
    masks = [
        np.all((mags > 10.0) & (mags < 25.0), axis=1),
        (ur > 0.0) & (ur < 6.0),
        df["zErr"].to_numpy(np.float64) < 0.01,
        df["z"].to_numpy(np.float64) > 0.02,
        df["petroMag_r"].to_numpy(np.float64) < 18.0,
        np.isfinite(df["oh_p50"].to_numpy(np.float64)) & (df["oh_p50"].to_numpy(np.float64) != MPA_MISSING),
    ]
    report = CutReport(n_in=len(df))
    keep = np.ones(len(df), dtype=bool)
    for name, mask in zip(WU_BOADA_CUTS, masks):
        new = keep & mask
        report.steps.append((name, int(keep.sum() - new.sum()), int(new.sum())))
        keep = new
    return df.loc[keep].reset_index(drop=True), report


def to_image_catalog(df: pd.DataFrame) -> pd.DataFrame:
    """Map canonical SDSS columns onto the ImageSet label names (keeps the original columns too).

    id = objID, oh = oh_p50, log_mstar = lgm_tot_p50, log_sfr = sfr_tot_p50, sfr = 10**log_sfr,
    mag_<b> = modelMag_<b>, magerr_<b> = modelMagErr_<b> (if present), r_petro = petroMag_r, redshift = z.
    MPA-JHU missing values (-9999, and -99 or below for masses/SFRs) become NaN.
    """
    out = df.copy()
    out.insert(0, "id", df["objID"].astype(np.int64))
    oh = df["oh_p50"].astype(np.float64)
    out["oh"] = oh.where(oh != MPA_MISSING)
    lm = df["lgm_tot_p50"].astype(np.float64)
    out["log_mstar"] = lm.where(lm > -99.0)
    ls = df["sfr_tot_p50"].astype(np.float64)
    out["log_sfr"] = ls.where(ls > -99.0)
    out["sfr"] = 10.0 ** out["log_sfr"]
    for b in SDSS_BANDS:
        out[f"mag_{b}"] = df[f"modelMag_{b}"].astype(np.float64)
        if f"modelMagErr_{b}" in df.columns:
            out[f"magerr_{b}"] = df[f"modelMagErr_{b}"].astype(np.float64)
    out["r_petro"] = df["petroMag_r"].astype(np.float64)
    out["redshift"] = df["z"].astype(np.float64)
    return out
