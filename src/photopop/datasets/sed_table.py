"""The spaxel (SED) table: one row per spaxel / binned spectrum, plus an optional galaxy table.

`SEDTable` is the data contract between the data sources (mock IFU survey, IFU cube readers, user
tables) and everything downstream (splits, models, evaluation). On disk it is a folder with
``spaxels.parquet``, ``galaxies.parquet`` (optional), ``meta.json`` and ``config.toml`` (simulated
data); see docs/architecture.md for the columns. Every read and write validates the schema, so a
broken table fails early with an `InputError` that names the column, instead of deep inside a fit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..photometry.columns import bands_from_columns, mag_columns  # noqa: F401  (the table schema)
from ..errors import InputError, MismatchError
from ..io import dumps_json, read_json, read_table, table_format, write_table_atomic
from ..outputs import replace_output
from ..photometry.magnitudes import (MagnitudeRange, as_range, check_magnitude_errors, check_magnitudes,
                                     magnitude_matrix)

SPAXELS_FILE = "spaxels.parquet"
GALAXIES_FILE = "galaxies.parquet"
META_FILE = "meta.json"
CONFIG_FILE = "config.toml"

KINDS = ("mock-ifu", "ifu-cube", "user")

#: integer identifier columns of the spaxel table (always required)
ID_COLUMNS = ("galaxy_id", "spaxel_id")
#: geometry columns (required for mock and IFU-cube tables, optional for user tables)
GEOMETRY_COLUMNS = ("x_arcsec", "y_arcsec", "r_re")
#: label columns as a spectroscopic fit gives them
LABEL_COLUMNS = ("log_age", "zh")
#: mock-only truth columns
TRUTH_COLUMNS = ("log_age_true", "zh_true", "log_age_mw", "zh_mw", "a_v", "log_ssfr")

GALAXY_COLUMNS = ("galaxy_id", "type", "log_mstar", "re_arcsec", "re_kpc", "inclination_deg", "pa_deg",
                  "redshift", "log_ssfr", "a_v", "bulge_fraction", "grad_log_age", "grad_zh")
GALAXY_TYPES = ("early", "late")

#: columns each kind must have beyond ids and per-band magnitudes/errors
_REQUIRED_BY_KIND: dict[str, tuple[str, ...]] = {
    "mock-ifu": GEOMETRY_COLUMNS + LABEL_COLUMNS + TRUTH_COLUMNS,
    "ifu-cube": GEOMETRY_COLUMNS,
    "user": (),
}


@dataclass
class SEDTable:
    """Spaxel table + optional galaxy table + metadata (a validated, in-memory `SEDTable` folder).

    `meta` holds at least ``filter_system``, ``bands`` (ordered), ``kind``, ``seed`` and
    ``photopop_version``. `config` is the run's config (a dataclass, or the plain dict read back
    from ``config.toml``), saved as ``config.toml`` on write.
    """

    spaxels: pd.DataFrame
    galaxies: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    config: Any = None

    def __post_init__(self) -> None:
        self.meta = dict(self.meta)
        if "bands" not in self.meta or self.meta["bands"] is None:
            self.meta["bands"] = bands_from_columns(self.spaxels.columns)
        self.meta["bands"] = [str(b) for b in self.meta["bands"]]
        self.meta.setdefault("kind", "user")
        self.meta.setdefault("filter_system", None)
        self.meta.setdefault("seed", None)
        self.meta.setdefault("photopop_version", __version__)

    # -- convenient views -------------------------------------------------------------------------
    @property
    def bands(self) -> list[str]:
        """Ordered band names."""
        return list(self.meta["bands"])

    @property
    def kind(self) -> str:
        return str(self.meta["kind"])

    @property
    def filter_system(self) -> str | None:
        return self.meta.get("filter_system")

    def __len__(self) -> int:
        return len(self.spaxels)

    def magnitudes(self, which: str = "mag") -> np.ndarray:
        """(n_spaxels, n_bands) array of ``mag``, ``magerr`` or ``magtrue`` columns in band order."""
        if which not in ("mag", "magerr", "magtrue"):
            raise InputError(f"unknown magnitude kind {which!r}; use 'mag', 'magerr' or 'magtrue'")
        cols = mag_columns(self.bands, which)
        missing = [c for c in cols if c not in self.spaxels.columns]
        if missing:
            raise InputError(f"SED table has no column(s) {missing}")
        return self.spaxels[cols].to_numpy(dtype=np.float64)

    def labels(self, names: Sequence[str] = LABEL_COLUMNS) -> np.ndarray:
        """(n_spaxels, len(names)) array of label columns."""
        missing = [c for c in names if c not in self.spaxels.columns]
        if missing:
            raise InputError(f"SED table has no label column(s) {missing}")
        return self.spaxels[list(names)].to_numpy(dtype=np.float64)

    def select_bands(self, bands: Sequence[str]) -> "SEDTable":
        """A copy keeping only `bands` (in the given order) of the per-band columns."""
        bands = [str(b) for b in bands]
        unknown = [b for b in bands if b not in self.bands]
        if unknown:
            raise MismatchError(f"band(s) {unknown} not in this table; it has {self.bands}")
        drop = [c for b in self.bands if b not in bands
                for c in (f"mag_{b}", f"magerr_{b}", f"magtrue_{b}") if c in self.spaxels.columns]
        meta = dict(self.meta, bands=bands)
        return SEDTable(self.spaxels.drop(columns=drop), self.galaxies, meta, self.config)

    def validate(self, source: str = "SED table") -> "SEDTable":
        """Check the schema; raise `InputError` naming the first problem. Returns self."""
        validate_spaxels(self.spaxels, self.bands, kind=self.kind, source=source,
                         mag_range=self.meta.get("mag_range"))
        if self.galaxies is not None:
            validate_galaxies(self.galaxies, source=source, strict=self.kind == "mock-ifu")
            missing = np.setdiff1d(self.spaxels["galaxy_id"].unique(), self.galaxies["galaxy_id"].to_numpy())
            if missing.size:
                raise InputError(f"{source}: galaxy_id(s) {missing[:10].tolist()} of the spaxel table are "
                                 "missing from the galaxy table")
        return self

    def write(self, path: str | os.PathLike) -> Path:
        """Validate and write the folder atomically (replacing an existing one as a whole)."""
        return write_sed_table(self, path)


# -- validation ----------------------------------------------------------------------------------
def _check_finite(df: pd.DataFrame, columns: Iterable[str], source: str) -> None:
    for col in columns:
        values = df[col]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise InputError(f"{source}: column {col!r} must be numeric, got dtype {values.dtype}")
        arr = values.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(arr)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise InputError(f"{source}: column {col!r} has {bad.sum()} NaN/inf value(s) "
                             f"(first at row {int(rows[0])})")


def _check_int(df: pd.DataFrame, col: str, source: str) -> None:
    if not pd.api.types.is_integer_dtype(df[col]):
        raise InputError(f"{source}: column {col!r} must be integer (int64), got dtype {df[col].dtype}")


def validate_spaxels(df: pd.DataFrame, bands: Sequence[str], kind: str = "user",
                     source: str = "spaxel table", mag_range: MagnitudeRange | Sequence[float] | None = None) -> None:
    """Check a spaxel DataFrame against the schema for `kind` and `bands`.

    Required: ``galaxy_id``/``spaxel_id`` (integers, unique pairs), ``mag_<band>`` and
    ``magerr_<band>`` for every band (numeric, finite; magnitudes inside `mag_range`, default
    `photopop.photometry.magnitudes.DEFAULT_RANGE`, so sentinels such as 99 are refused; errors
    > 0, or >= 0 for mock tables, whose noise-free variant has zero errors), plus the
    geometry/label/truth columns that `kind` requires. Any of the known numeric columns that are
    present must be finite.
    """
    if kind not in KINDS:
        raise InputError(f"{source}: unknown table kind {kind!r}; expected one of {KINDS}")
    if not bands:
        raise InputError(f"{source}: no bands (no mag_<band> columns and no 'bands' in meta.json)")
    dup_bands = sorted({b for b in bands if list(bands).count(b) > 1})
    if dup_bands:
        raise InputError(f"{source}: duplicate band(s) {dup_bands}")
    required = list(ID_COLUMNS) + mag_columns(bands) + mag_columns(bands, "magerr") + list(_REQUIRED_BY_KIND[kind])
    if kind == "mock-ifu":
        required += mag_columns(bands, "magtrue")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {missing}")
    dup_cols = df.columns[df.columns.duplicated()].tolist()
    if dup_cols:
        raise InputError(f"{source}: duplicate column name(s) {dup_cols}")
    for col in ID_COLUMNS:
        _check_int(df, col, source)
    dup = df.duplicated(subset=list(ID_COLUMNS))
    if dup.any():
        first = df.loc[dup, list(ID_COLUMNS)].iloc[0]
        raise InputError(f"{source}: {int(dup.sum())} duplicate (galaxy_id, spaxel_id) pair(s), first "
                         f"({int(first['galaxy_id'])}, {int(first['spaxel_id'])})")
    known = (mag_columns(bands) + mag_columns(bands, "magerr") + mag_columns(bands, "magtrue")
             + list(GEOMETRY_COLUMNS) + list(LABEL_COLUMNS) + list(TRUTH_COLUMNS))
    for prefix in ("mag", "magerr", "magtrue"):
        cols = [c for c in mag_columns(bands, prefix) if c in df.columns]
        magnitude_matrix(df, cols, source)  # numeric, not boolean
    _check_finite(df, [c for c in known if c in df.columns], source)
    for prefix in ("mag", "magtrue"):
        cols = [c for c in mag_columns(bands, prefix) if c in df.columns]
        check_magnitudes(magnitude_matrix(df, cols, source), cols, source, mag_range)
    errs = mag_columns(bands, "magerr")
    check_magnitude_errors(magnitude_matrix(df, errs, source), errs, source, allow_zero=kind == "mock-ifu")
    if "r_re" in df.columns and (df["r_re"].to_numpy(dtype=np.float64) < 0).any():
        raise InputError(f"{source}: column 'r_re' has negative radii")


def validate_galaxies(df: pd.DataFrame, source: str = "galaxy table", strict: bool = True) -> None:
    """Check a galaxy DataFrame: unique integer ``galaxy_id``; with `strict`, every documented column."""
    required = list(GALAXY_COLUMNS) if strict else ["galaxy_id"]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{source}: galaxy table is missing column(s) {missing}")
    _check_int(df, "galaxy_id", source)
    dup = df["galaxy_id"].duplicated()
    if dup.any():
        raise InputError(f"{source}: galaxy table has duplicate galaxy_id(s) "
                         f"{df.loc[dup, 'galaxy_id'].unique()[:10].tolist()}")
    if "type" in df.columns:
        bad = sorted(set(df["type"].astype(str)) - set(GALAXY_TYPES))
        if bad:
            raise InputError(f"{source}: galaxy column 'type' has value(s) {bad}; expected {GALAXY_TYPES}")
    # gradients may be NaN (a galaxy with fewer than 2 spaxels inside R_e has none); nothing may be inf
    numeric = [c for c in GALAXY_COLUMNS if c not in ("galaxy_id", "type", "grad_log_age", "grad_zh")
               and c in df.columns]
    _check_finite(df, numeric, source + " (galaxies)")
    for col in ("grad_log_age", "grad_zh"):
        if col in df.columns and np.isinf(df[col].to_numpy(dtype=np.float64)).any():
            raise InputError(f"{source} (galaxies): column {col!r} has inf values")


# -- reading and writing -------------------------------------------------------------------------
def write_sed_table(table: SEDTable, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Validate `table` and write it as a folder (atomically). An existing folder is replaced only if
    photopop wrote it as an SED table: with the same meta and config, or with `overwrite`
    (`photopop.outputs`; anything else raises `OutputError`).

    Writes ``spaxels.parquet``, ``galaxies.parquet`` (if any), ``meta.json`` and ``config.toml``
    (if `table.config` is set). Parquet output is deterministic: the same table gives the same bytes.
    """
    from ..config import save_config, to_dict

    path = Path(path)
    table.validate(source=str(path))
    config = table.config if isinstance(table.config, dict) or table.config is None else to_dict(table.config)
    with replace_output(path, "sed-table", {"meta": table.meta, "config": config},
                        overwrite=overwrite) as tmp:
        write_table_atomic(table.spaxels.reset_index(drop=True), tmp / SPAXELS_FILE)
        if table.galaxies is not None:
            write_table_atomic(table.galaxies.reset_index(drop=True), tmp / GALAXIES_FILE)
        (tmp / META_FILE).write_text(dumps_json(table.meta) + "\n")
        if isinstance(table.config, dict):
            import tomli_w

            (tmp / CONFIG_FILE).write_text(tomli_w.dumps(table.config))
        elif table.config is not None:
            save_config(table.config, tmp / CONFIG_FILE)
    return path


def read_sed_table(path: str | os.PathLike, kind: str | None = None, bands: Sequence[str] | None = None,
                   filter_system: str | None = None,
                   mag_range: MagnitudeRange | Sequence[float] | None = None) -> SEDTable:
    """Read and validate an SED table.

    `path` is either a folder written by `write_sed_table` (or by hand: ``spaxels.parquet`` plus
    optional ``galaxies.parquet`` and ``meta.json``), or a single CSV/Parquet/FITS file holding the
    spaxel rows of user data (bands then come from its ``mag_<band>`` columns unless given).
    `kind`, `bands`, `filter_system` override what ``meta.json`` says (e.g. to read a subset of bands);
    `mag_range` (lo, hi) overrides its ``mag_range``, the accepted magnitudes (default -10 .. 40 AB):
    models trained on the table record it and mask values outside it when they predict.

    Parameters
    ----------
    path : str or path
        An SED-table folder or a CSV/Parquet/FITS file of spaxel rows.
    kind : {'mock-ifu', 'ifu-cube', 'user'}, optional
        The table kind (sets the required columns); default from meta.json, else 'user'.
    bands : sequence of str, optional
        The bands to read, in order (default: all of the table's).
    filter_system : str, optional
        The filter system the magnitudes are in (default: meta.json's).
    mag_range : (float, float), optional
        Accepted AB magnitudes (default meta.json's, else -10 .. 40).

    Returns
    -------
    SEDTable
        The validated spaxel table, galaxy table (or None) and metadata.

    Raises
    ------
    InputError
        A missing file or column, a corrupt file, magnitudes outside `mag_range`, non-positive errors.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such SED table (file or folder)")
    meta: dict[str, Any] = {}
    galaxies = None
    config: dict[str, Any] | None = None
    if path.is_dir() and (path / SPAXELS_FILE).exists():
        spaxels = read_table(path / SPAXELS_FILE)
        if (path / GALAXIES_FILE).exists():
            galaxies = read_table(path / GALAXIES_FILE)
        if (path / META_FILE).exists():
            meta = read_json(path / META_FILE)
            if not isinstance(meta, dict):
                raise InputError(f"{path / META_FILE}: expected a JSON object")
        if (path / CONFIG_FILE).exists():
            import tomllib

            try:
                config = tomllib.loads((path / CONFIG_FILE).read_text())
            except tomllib.TOMLDecodeError as exc:
                raise InputError(f"{path / CONFIG_FILE}: not valid TOML ({exc})") from exc
    elif path.is_dir():
        raise InputError(f"{path}: folder has no {SPAXELS_FILE}; not an SED table")
    else:
        table_format(path)  # raises for unknown suffixes
        spaxels = read_table(path)
    meta.setdefault("kind", "user")
    if kind is not None:
        meta["kind"] = kind
    if filter_system is not None:
        meta["filter_system"] = filter_system
    if mag_range is not None:
        rng = as_range(mag_range)
        meta["mag_range"] = [rng.lo, rng.hi]
    if bands is not None:
        meta["bands"] = list(bands)
    elif not meta.get("bands"):
        meta["bands"] = bands_from_columns(spaxels.columns)
    table = SEDTable(spaxels, galaxies, meta, config)
    return table.validate(source=str(path))


def load_sed_table(table: "SEDTable | str | os.PathLike") -> SEDTable:
    """An `SEDTable` given either an `SEDTable` (returned as it is) or the path of an SED-table folder or
    file (read with `read_sed_table`, e.g. what `photopop simulate ifu` wrote): what every command and
    study that takes "a table" accepts."""
    if hasattr(table, "spaxels") and hasattr(table, "meta"):
        return table  # type: ignore[return-value]
    return read_sed_table(table)

