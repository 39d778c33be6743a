"""Atomic writes, strict JSON, table reading and dataclass config round trips."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from photopop.config import config_hash, from_dict, load_config, save_config, to_dict
from photopop.errors import InputError
from photopop.io import atomic_dir, atomic_path, dumps_json, read_table, write_table_atomic


@dataclasses.dataclass
class Inner:
    width: int = 3
    rate: float = 0.1


@dataclasses.dataclass
class Outer:
    name: str = "x"
    bands: tuple[str, ...] = ("a", "b")
    inner: Inner = dataclasses.field(default_factory=Inner)
    optional: float | None = None


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_whole_folder(tmp_path):
    target = tmp_path / "run"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    with pytest.raises(ValueError):
        with atomic_dir(target) as tmp:
            (tmp / "c.txt").write_text("3")
            raise ValueError
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_json_nan_is_null():
    text = dumps_json({"a": np.nan, "b": np.float32(1.5), "c": np.arange(2), "d": float("inf")})
    assert json.loads(text) == {"a": None, "b": 1.5, "c": [0, 1], "d": None}


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".fits"])
def test_table_round_trip(tmp_path, suffix):
    df = pd.DataFrame({"x": [1.0, 2.0, np.nan], "n": [1, 2, 3]})
    path = tmp_path / f"t{suffix}"
    write_table_atomic(df, path)
    back = read_table(path)
    np.testing.assert_allclose(back["x"].to_numpy(), df["x"].to_numpy())
    assert list(back["n"]) == [1, 2, 3]
    with pytest.raises(InputError, match="missing column"):
        read_table(path, columns=["x", "nope"])


def test_read_table_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "none.csv")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="cannot read"):
        read_table(bad)
    with pytest.raises(InputError, match="unknown table format"):
        (tmp_path / "t.xyz").write_text("1")
        read_table(tmp_path / "t.xyz")


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_config_round_trip(tmp_path, suffix):
    cfg = Outer(name="y", bands=("u", "g"), inner=Inner(width=5))
    save_config(cfg, tmp_path / f"c{suffix}")
    back = load_config(Outer, tmp_path / f"c{suffix}")
    assert back == cfg
    assert config_hash(back) == config_hash(cfg)
    assert config_hash(Outer(name="z")) != config_hash(cfg)


def test_config_unknown_key_is_refused():
    with pytest.raises(InputError, match="unknown setting"):
        from_dict(Outer, {"nmae": "typo"})
    assert "optional" not in to_dict(Outer())


def test_atomic_writes_follow_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "a").write_text("y")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_layered_config_merges_file_onto_preset(tmp_path):
    from photopop.config import layered_config, read_config_data

    @dataclasses.dataclass
    class P:
        preset: str = "full"
        inner: Inner = dataclasses.field(default_factory=Inner)
        name: str = "x"

    def presets(name):
        return P(inner=Inner(width=9)) if name == "big" else P()

    (tmp_path / "c.toml").write_text('preset = "big"\n[inner]\nrate = 0.5\n')
    cfg = layered_config(P, presets, read_config_data(tmp_path / "c.toml"))
    assert cfg == P(preset="big", inner=Inner(width=9, rate=0.5))  # the file's keys only override
    assert layered_config(P, presets, {"name": "y"}).inner.width == 3
    with pytest.raises(InputError, match="unknown setting"):
        layered_config(P, presets, {"inner": {"widht": 1}})
    with pytest.raises(InputError, match="cannot parse"):
        (tmp_path / "bad.toml").write_text("this is = = not toml")
        read_config_data(tmp_path / "bad.toml")


def test_read_json_names_the_file(tmp_path):
    from photopop.io import read_json

    (tmp_path / "ok.json").write_text('{"a": 1}')
    assert read_json(tmp_path / "ok.json") == {"a": 1}
    with pytest.raises(InputError, match="not a model folder"):
        read_json(tmp_path / "none.json", missing="not a model folder (no meta.json)")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(InputError, match="bad.json: cannot read"):
        read_json(tmp_path / "bad.json")
