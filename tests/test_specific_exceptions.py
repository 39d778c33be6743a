"""Read errors become InputError naming the file; a programming error propagates as itself (no blanket except)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from photopop.config import read_config_data
from photopop.datasets import download
from photopop.datasets.cutouts import read_cutout
from photopop.datasets.download import DownloadConfig, download_cutouts, is_valid_image
from photopop.errors import InputError
from photopop.io import read_json
from photopop.populations.ssp import SSPGrid


@pytest.mark.parametrize("name, body", [("bad.toml", b"a = = 1"), ("bad.yaml", b"a: [1, 2"),
                                        ("latin1.toml", b"a = '\xe9'")])
def test_unparsable_config_files_name_the_file(tmp_path, name, body):
    (tmp_path / name).write_bytes(body)
    with pytest.raises(InputError, match=rf"{name}: cannot (parse|read) config"):
        read_config_data(tmp_path / name)


def test_config_path_that_is_a_folder_is_input_error(tmp_path):
    (tmp_path / "cfg.toml").mkdir()
    with pytest.raises(InputError, match="cfg.toml"):
        read_config_data(tmp_path / "cfg.toml")


def test_bad_json_names_the_file(tmp_path):
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(InputError, match=r"meta.json: cannot read"):
        read_json(tmp_path / "meta.json")


@pytest.mark.parametrize("name", ["grid.npz", "grid.fits"])
def test_corrupt_ssp_grid_files_are_input_errors(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x00garbage" * 50)
    with pytest.raises(InputError, match=rf"{name}: cannot read SSP grid"):
        SSPGrid.from_file(tmp_path / name)


def test_corrupt_fits_cutout_is_input_error(tmp_path):
    (tmp_path / "1.fits").write_bytes(b"SIMPLE  =" + b" " * 100)
    with pytest.raises(InputError, match=r"1.fits: cannot read as a FITS cutout"):
        read_cutout(tmp_path / "1.fits")


def test_truncated_image_is_not_valid(tmp_path):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, format="PNG")
    (tmp_path / "t.png").write_bytes(buf.getvalue()[:40])
    (tmp_path / "ok.png").write_bytes(buf.getvalue())
    assert not is_valid_image(tmp_path / "t.png") and is_valid_image(tmp_path / "ok.png")


def _catalogue():
    return pd.DataFrame({"objID": [1, 2], "ra": [1.0, 2.0], "dec": [0.0, 0.0]})


def test_download_records_os_errors_but_lets_bugs_propagate(tmp_path, monkeypatch):
    cfg = DownloadConfig(base_url="http://127.0.0.1:9/cut", workers=1, retries=0)

    def disk_full(oid, url, dest, cfg):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(download, "_download_one", disk_full)
    rep = download_cutouts(_catalogue(), tmp_path / "a", cfg)
    assert rep.n_failed == 2 and rep.failures["error"].str.contains("No space left").all()

    def bug(oid, url, dest, cfg):
        raise ZeroDivisionError("a bug, not bad input")

    monkeypatch.setattr(download, "_download_one", bug)
    with pytest.raises(ZeroDivisionError):
        download_cutouts(_catalogue(), tmp_path / "b", cfg)
