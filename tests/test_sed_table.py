"""SEDTable schema: validated read/write, clear errors naming the problem."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from photopop.datasets.sed_table import (
    GALAXY_COLUMNS,
    SEDTable,
    bands_from_columns,
    read_sed_table,
    write_sed_table,
)
from photopop.errors import InputError, MismatchError, OutputError

BANDS = ["J0400", "J0410", "J0420"]


def _spaxels(n_gal: int = 2, n_spx: int = 3, kind: str = "mock-ifu", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_gal * n_spx
    df = pd.DataFrame({
        "galaxy_id": np.repeat(np.arange(n_gal), n_spx).astype(np.int64),
        "spaxel_id": np.tile(np.arange(n_spx), n_gal).astype(np.int64),
        "x_arcsec": rng.normal(size=n), "y_arcsec": rng.normal(size=n), "r_re": rng.random(n),
    })
    for b in BANDS:
        df[f"mag_{b}"] = 18 + rng.random(n)
        df[f"magerr_{b}"] = 0.05 + 0.01 * rng.random(n)
        if kind == "mock-ifu":
            df[f"magtrue_{b}"] = df[f"mag_{b}"] + 0.01
    df["log_age"] = 9 + rng.random(n)
    df["zh"] = -0.5 + rng.random(n)
    if kind == "mock-ifu":
        for c in ("log_age_true", "zh_true", "log_age_mw", "zh_mw", "a_v", "log_ssfr"):
            df[c] = rng.random(n)
    return df


def _galaxies(n_gal: int = 2) -> pd.DataFrame:
    data = {c: np.linspace(0.1, 1.0, n_gal) for c in GALAXY_COLUMNS}
    data["galaxy_id"] = np.arange(n_gal, dtype=np.int64)
    data["type"] = ["early", "late"][:n_gal] + ["late"] * max(0, n_gal - 2)
    return pd.DataFrame(data)


def _table(**kw) -> SEDTable:
    meta = {"filter_system": "jpas", "bands": BANDS, "kind": "mock-ifu", "seed": 1}
    return SEDTable(_spaxels(**kw), _galaxies(), meta)


def test_roundtrip_preserves_everything(tmp_path):
    t = _table()
    write_sed_table(t, tmp_path / "sed")
    files = sorted(p.name for p in (tmp_path / "sed").iterdir())
    assert files == [".photopop.json", "galaxies.parquet", "meta.json", "spaxels.parquet"]  # marker: photopop.outputs
    back = read_sed_table(tmp_path / "sed")
    pd.testing.assert_frame_equal(back.spaxels, t.spaxels)
    pd.testing.assert_frame_equal(back.galaxies, t.galaxies)
    assert back.bands == BANDS and back.kind == "mock-ifu" and back.meta["seed"] == 1
    assert back.magnitudes().shape == (6, 3)
    np.testing.assert_array_equal(back.magnitudes("magerr"), t.spaxels[[f"magerr_{b}" for b in BANDS]].to_numpy())


def test_write_is_deterministic_and_replaces(tmp_path):
    t = _table()
    write_sed_table(t, tmp_path / "a")
    write_sed_table(t, tmp_path / "b")
    assert (tmp_path / "a" / "spaxels.parquet").read_bytes() == (tmp_path / "b" / "spaxels.parquet").read_bytes()
    # a second write of the same table replaces the folder as a whole; a file photopop did not write
    # in it is never deleted: the write is refused and the folder left as it was
    before = (tmp_path / "a" / "spaxels.parquet").stat().st_mtime_ns
    write_sed_table(t, tmp_path / "a")
    (tmp_path / "a" / "stale.txt").write_text("x")
    with pytest.raises(OutputError, match="stale.txt"):
        write_sed_table(t, tmp_path / "a")
    assert (tmp_path / "a" / "stale.txt").read_text() == "x"
    assert (tmp_path / "a" / "spaxels.parquet").stat().st_mtime_ns >= before


def test_config_dataclass_and_dict_roundtrip(tmp_path):
    from dataclasses import dataclass

    @dataclass
    class Cfg:
        seed: int = 3
        name: str = "x"

    t = _table()
    t.config = Cfg()
    write_sed_table(t, tmp_path / "s")
    back = read_sed_table(tmp_path / "s")
    assert back.config == {"seed": 3, "name": "x"}
    write_sed_table(back, tmp_path / "s2")  # dict config written back as TOML
    assert (tmp_path / "s2" / "config.toml").read_text() == (tmp_path / "s" / "config.toml").read_text()


def test_missing_column_is_named(tmp_path):
    t = _table()
    t.spaxels = t.spaxels.drop(columns=["magerr_J0410"])
    with pytest.raises(InputError, match="magerr_J0410"):
        t.validate()
    t = _table()
    t.spaxels = t.spaxels.drop(columns=["zh_true"])
    with pytest.raises(InputError, match="zh_true"):
        write_sed_table(t, tmp_path / "x")
    assert not (tmp_path / "x").exists()  # nothing half-written


def test_duplicate_ids_rejected():
    t = _table()
    t.spaxels.loc[4, "spaxel_id"] = 0  # galaxy 1 now has spaxel 0 twice
    with pytest.raises(InputError, match=r"duplicate \(galaxy_id, spaxel_id\).*\(1, 0\)"):
        t.validate()


def test_nan_in_magnitude_is_named(tmp_path):
    t = _table()
    t.spaxels.loc[2, "mag_J0420"] = np.nan
    with pytest.raises(InputError, match="'mag_J0420'.*1 NaN.*row 2"):
        t.validate()
    # the same problem is caught when reading a table written by someone else
    (tmp_path / "s").mkdir()
    t.spaxels.to_parquet(tmp_path / "s" / "spaxels.parquet")
    (tmp_path / "s" / "meta.json").write_text(json.dumps({"bands": BANDS, "kind": "mock-ifu"}))
    with pytest.raises(InputError, match="mag_J0420"):
        read_sed_table(tmp_path / "s")


def test_other_schema_errors():
    t = _table()
    t.spaxels["galaxy_id"] = t.spaxels["galaxy_id"].astype(float)
    with pytest.raises(InputError, match="galaxy_id.*integer"):
        t.validate()
    t = _table()
    t.spaxels.loc[0, "magerr_J0400"] = -0.1
    with pytest.raises(InputError, match="magerr_J0400.*negative"):
        t.validate()
    t = _table()
    t.galaxies = t.galaxies.iloc[:1]
    with pytest.raises(InputError, match=r"galaxy_id\(s\) \[1\].*missing from the galaxy table"):
        t.validate()
    t = _table()
    t.galaxies.loc[0, "type"] = "spiral"
    with pytest.raises(InputError, match="spiral"):
        t.validate()
    with pytest.raises(InputError, match="unknown table kind"):
        SEDTable(_spaxels(), meta={"kind": "bogus", "bands": BANDS}).validate()


def test_user_table_from_single_file(tmp_path):
    df = _spaxels(kind="user")[["galaxy_id", "spaxel_id"] + [f"{p}_{b}" for b in BANDS for p in ("mag", "magerr")]]
    df.to_csv(tmp_path / "mine.csv", index=False)
    t = read_sed_table(tmp_path / "mine.csv", filter_system="jpas")
    assert t.kind == "user" and t.bands == BANDS and t.filter_system == "jpas" and t.galaxies is None
    assert bands_from_columns(df.columns) == BANDS
    with pytest.raises(InputError, match="missing column"):
        read_sed_table(tmp_path / "mine.csv", kind="ifu-cube")  # a cube table needs the geometry columns


def test_select_bands():
    t = _table()
    s = t.select_bands(["J0420", "J0400"])
    assert s.bands == ["J0420", "J0400"]
    assert "mag_J0410" not in s.spaxels and "magtrue_J0410" not in s.spaxels
    s.validate()
    with pytest.raises(MismatchError, match="J9999"):
        t.select_bands(["J9999"])


def test_not_a_table(tmp_path):
    with pytest.raises(InputError, match="no such"):
        read_sed_table(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="spaxels.parquet"):
        read_sed_table(tmp_path / "empty")
