"""Readers turn damaged input into one InputError naming the file, and let programming errors propagate."""

from __future__ import annotations

import numpy as np
import pytest

from photopop.config import read_config_data
from photopop.errors import InputError
from photopop.io import read_json
from photopop.photometry import svo
from photopop.photometry.curves import read_filter_curve
from photopop.populations.ssp import SSPGrid


def test_config_files(tmp_path):
    bad_yaml = tmp_path / "c.yaml"
    bad_yaml.write_text("a: [1, 2\n")
    with pytest.raises(InputError, match="c.yaml: cannot parse config"):
        read_config_data(bad_yaml)
    bad_toml = tmp_path / "c.toml"
    bad_toml.write_text("a = = 1\n")
    with pytest.raises(InputError, match="c.toml: cannot parse config"):
        read_config_data(bad_toml)
    folder = tmp_path / "d.toml"
    folder.mkdir()
    with pytest.raises(InputError, match="d.toml: cannot read config"):
        read_config_data(folder)
    with pytest.raises(InputError, match="not found"):
        read_config_data(tmp_path / "missing.toml")


def test_json_files(tmp_path):
    p = tmp_path / "m.json"
    p.write_bytes(b"\xff\xfe{")
    with pytest.raises(InputError, match="m.json: cannot read"):
        read_json(p)
    p.write_text("{not json")
    with pytest.raises(InputError, match="m.json: cannot read"):
        read_json(p)


def test_ssp_grid_files(tmp_path):
    p = tmp_path / "g.npz"
    p.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(InputError, match="g.npz: cannot read SSP grid"):
        SSPGrid.from_file(p)
    np.savez(p, ages_yr=np.ones(2))
    with pytest.raises(InputError, match=r"missing array\(s\)"):  # its own message, not re-wrapped
        SSPGrid.from_file(p)
    f = tmp_path / "g.fits"
    f.write_bytes(b"SIMPLE = garbage")
    with pytest.raises(InputError, match="g.fits: cannot read SSP grid"):
        SSPGrid.from_file(f)


def test_filter_curve_files(tmp_path):
    v = tmp_path / "f.xml"
    v.write_text('<?xml version="1.0"?><VOTABLE></VOTABLE>')
    with pytest.raises(InputError, match="f.xml: cannot read as VOTable"):
        read_filter_curve(v)
    a = tmp_path / "f.dat"
    a.write_text("4000 0.1\n4100 zero\n")
    with pytest.raises(InputError, match="f.dat: cannot read as two-column ASCII"):
        read_filter_curve(a, unit="Angstrom")


def test_svo_network_errors_become_input_errors_but_bugs_do_not(tmp_path, monkeypatch):
    def offline(filter_id):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(svo, "_download_from_svo", offline)
    with pytest.raises(InputError, match="cannot fetch filter 'SLOAN/SDSS.r'"):
        svo.fetch_svo_filter("SLOAN/SDSS.r", cache_dir=tmp_path)

    def bug(filter_id):
        raise TypeError("a programming error")

    monkeypatch.setattr(svo, "_download_from_svo", bug)
    with pytest.raises(TypeError, match="programming error"):
        svo.fetch_svo_filter("SLOAN/SDSS.r", cache_dir=tmp_path)
