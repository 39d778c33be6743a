"""Bad data through the command line: implausible magnitudes, non-numeric columns, truncated and
corrupt files, inconsistent model folders, incomplete downloads.

Table-driven like tests/test_cli_bad_inputs.py: each case builds its inputs, runs
`photopop.cli.main.main(argv)` in-process and checks exit 2, a one-line message naming the problem,
no traceback, and no output left that looks complete (no model folder, no ``_SUCCESS``).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from photopop.cli.main import main
from photopop.io import write_table_atomic
from photopop.models.normalise import Standardiser
from photopop.models.saved import SavedSEDModel
from photopop.models.sed_cnn import SEDCNN, SEDCNNConfig

BANDS = ["b0", "b1", "b2", "b3"]
MAGS = [f"mag_{b}" for b in BANDS]
N = 60


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _table(n: int = N, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"galaxy_id": np.arange(n) // 6, "spaxel_id": np.arange(n) % 6})
    for b in BANDS:
        df[f"mag_{b}"] = rng.normal(21, 0.5, n)
        df[f"magerr_{b}"] = 0.05
    df["log_age"] = rng.normal(9.5, 0.3, n)
    df["zh"] = rng.normal(-0.2, 0.2, n)
    return df


def _model(path: Path) -> Path:
    torch.manual_seed(0)
    net = SEDCNN(len(BANDS), 1, SEDCNNConfig(conv_filters=(2,), kernel_sizes=(3,), pool_size=1, dense_units=(4,)))
    x = np.random.default_rng(0).normal(21, 0.5, (50, len(BANDS)))
    SavedSEDModel(net, Standardiser.fit(x, BANDS), Standardiser(["log_age"], np.array([9.5]), np.array([0.3])),
                  {"bands": BANDS, "filter_system": None, "targets": ["log_age"], "input_kind": "mag"}).save(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return _model(tmp_path_factory.mktemp("model") / "m")


# -- training inputs: refused -----------------------------------------------------------------------
def _set(col, value):
    def edit(df):
        df = df.copy()
        if isinstance(value, str) or isinstance(value, (bool, np.bool_)):
            df[col] = df[col].astype(object)
        df.loc[3, col] = value
        return df
    return edit


def _all(col, value):
    def edit(df):
        df = df.copy()
        df[col] = value
        return df
    return edit


TRAIN_CASES = [
    ("sentinel-99", _set("mag_b1", 99.0), "csv", [r"mag_b1", r"99\.0", "sentinel"]),
    ("sentinel-minus-99", _set("mag_b2", -99.0), "parquet", [r"mag_b2", "sentinel"]),
    ("huge-1e30", _set("mag_b0", 1e30), "parquet", [r"mag_b0", "implausible", r"\[-10, 40\]"]),
    ("float32-overflow-1e39", _set("mag_b3", 1e39), "csv", [r"mag_b3", "implausible"]),
    ("magerr-zero", _set("magerr_b1", 0.0), "csv", [r"magerr_b1", "zero"]),
    ("magerr-negative", _set("magerr_b2", -0.1), "parquet", [r"magerr_b2", "negative"]),
    ("string-in-parquet", _all("mag_b1", "n/a"), "parquet", [r"mag_b1", "not numeric"]),
    ("string-in-fits", _all("mag_b2", "21.0"), "fits", [r"mag_b2", "not numeric"]),
    ("boolean-column", _all("mag_b0", True), "parquet", [r"mag_b0", "not numeric"]),
]


def _check_refusal(capsys, argv, patterns, out: Path | None = None) -> str:
    code = main(argv)
    cap = capsys.readouterr()
    assert code == 2, (code, cap.err[-2000:])
    assert "Traceback" not in cap.err and "Traceback" not in cap.out
    line = cap.err.strip()
    assert line.startswith("photopop: error:") and "\n" not in line, line
    import re

    for pat in patterns:
        assert re.search(pat, line), (pat, line)
    if out is not None:
        assert not (out / "_SUCCESS").exists()
        assert not (out / "model.pt").exists()
    return line


@pytest.mark.parametrize("name,edit,fmt,patterns", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_sed_train_refuses_bad_magnitudes(tmp_path, capsys, name, edit, fmt, patterns):
    path = tmp_path / f"table.{fmt}"
    df = edit(_table())
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    elif fmt == "fits":
        from astropy.table import Table

        Table.from_pandas(df).write(path)
    else:
        df.to_csv(path, index=False)
    out = tmp_path / "model"
    _check_refusal(capsys, ["sed", "train", "--table", str(path), "--out", str(out), "--max-epochs", "1",
                            "--quiet"], patterns, out)
    assert not out.exists()


def test_sed_cv_refuses_sentinels(tmp_path, capsys):
    path = tmp_path / "t.csv"
    _set("mag_b1", 99.99)(_table()).to_csv(path, index=False)
    out = tmp_path / "cv"
    _check_refusal(capsys, ["sed", "cv", "--table", str(path), "--out", str(out), "--max-epochs", "1",
                            "--quiet", "--no-figures"], ["mag_b1", "99.99", "sentinel"])
    assert not (out / "metrics.json").exists()


# -- prediction inputs: masked with a true count, or refused ------------------------------------------
def test_predict_masks_implausible_magnitudes_with_a_true_count(tmp_path, capsys, model_dir):
    df = _table()
    bad = {2: ("mag_b0", 1e30), 5: ("mag_b1", 99.0), 9: ("mag_b2", -99.0), 11: ("mag_b3", 1e39),
           17: ("mag_b0", np.inf), 23: ("mag_b1", np.nan)}
    for row, (col, value) in bad.items():
        df.loc[row, col] = value
    path = tmp_path / "cat.parquet"
    write_table_atomic(df, path)
    out = tmp_path / "pred"
    assert main(["predict", str(model_dir), str(path), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    manifest = json.loads((out / "_manifest.json").read_text())
    assert sum(p["nan_rows"] for p in manifest["parts"].values()) == len(bad)
    pred = pd.read_parquet(out).sort_values("row_index")
    masked = pred["log_age"].isna().to_numpy()
    assert sorted(np.flatnonzero(masked)) == sorted(bad)
    assert np.all(np.abs(pred.loc[~masked, "log_age"]) < 100)  # no -1e27 log ages


PREDICT_CASES = [
    ("string-in-parquet", "parquet", _all("mag_b1", "faint"), ["mag_b1", "not numeric"]),
    ("string-in-fits", "fits", _all("mag_b2", "21.0"), ["mag_b2", "not numeric"]),
    ("boolean-in-parquet", "parquet", _all("mag_b0", False), ["mag_b0", "not numeric"]),
]


@pytest.mark.parametrize("name,fmt,edit,patterns", PREDICT_CASES, ids=[c[0] for c in PREDICT_CASES])
def test_predict_refuses_non_numeric_magnitudes(tmp_path, capsys, model_dir, name, fmt, edit, patterns):
    path = tmp_path / f"cat.{fmt}"
    df = edit(_table())
    if fmt == "fits":
        from astropy.table import Table

        Table.from_pandas(df).write(path)
    else:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    out = tmp_path / "pred"
    _check_refusal(capsys, ["predict", str(model_dir), str(path), "--out", str(out), "--quiet"],
                   [str(path).replace("\\", "\\\\")] + patterns, out)


def test_truncated_csv_is_refused(tmp_path, capsys, model_dir):
    full = tmp_path / "full.csv"
    _table(500).to_csv(full, index=False)
    data = full.read_bytes()
    cut = tmp_path / "cut.csv"
    cut.write_bytes(data[: len(data) // 2])
    assert not data[: len(data) // 2].endswith(b"\n")  # really cut mid-line
    out = tmp_path / "pred"
    _check_refusal(capsys, ["predict", str(model_dir), str(cut), "--out", str(out), "--quiet"],
                   ["cut.csv", "truncated"], out)
    _check_refusal(capsys, ["sed", "train", "--table", str(cut), "--out", str(tmp_path / "m"), "--max-epochs", "1",
                            "--quiet"], ["cut.csv", "truncated"])


def test_corrupt_parquet_catalogue_is_refused(tmp_path, capsys, model_dir):
    path = tmp_path / "cat.parquet"
    write_table_atomic(_table(), path)
    col = pq.ParquetFile(path).metadata.row_group(0).column(2)  # mag_b0
    data = bytearray(path.read_bytes())
    data[col.data_page_offset + col.total_compressed_size - 8] ^= 0x20  # inside its data page
    path.write_bytes(bytes(data))
    out = tmp_path / "pred"
    _check_refusal(capsys, ["predict", str(model_dir), str(path), "--out", str(out), "--quiet"],
                   ["cat.parquet"], out)


# -- model folders ---------------------------------------------------------------------------------------
def _meta_list(folder: Path) -> None:
    (folder / "meta.json").write_text(json.dumps([{"bands": BANDS}]))
    (folder / "SHA256SUMS").unlink()


def _meta_band_order(folder: Path) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    meta["bands"] = [BANDS[1], BANDS[0], *BANDS[2:]]
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "SHA256SUMS").unlink()


def _meta_bad_type(folder: Path) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    meta["targets"] = "log_age"
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "SHA256SUMS").unlink()


def _weights_flipped(folder: Path) -> None:
    data = bytearray((folder / "model.pt").read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / "model.pt").write_bytes(bytes(data))


MODEL_CASES = [
    ("meta-is-a-list", _meta_list, ["meta.json", "JSON object"]),
    ("band-order-disagrees", _meta_band_order, ["normalisation.json", "disagree"]),
    ("targets-not-a-list", _meta_bad_type, ["meta.json", "targets"]),
    ("weights-bit-flip", _weights_flipped, ["model.pt", "checksum"]),
]


@pytest.mark.parametrize("name,edit,patterns", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_inconsistent_model_folders_are_refused(tmp_path, capsys, name, edit, patterns):
    folder = _model(tmp_path / "m")
    edit(folder)
    cat = tmp_path / "cat.parquet"
    write_table_atomic(_table(), cat)
    out = tmp_path / "pred"
    _check_refusal(capsys, ["predict", str(folder), str(cat), "--out", str(out), "--quiet"], patterns, out)
    table = tmp_path / "t.csv"
    _table().to_csv(table, index=False)
    _check_refusal(capsys, ["sed", "predict", "--model", str(folder), "--table", str(table), "--out",
                            str(tmp_path / "p.parquet")], patterns)


# -- resume re-verifies listed parts ----------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_resume_recomputes_a_damaged_part(tmp_path, capsys, model_dir, damage):
    cat = tmp_path / "cat.parquet"
    write_table_atomic(_table(), cat)
    out = tmp_path / "pred"
    argv = ["predict", str(model_dir), str(cat), "--out", str(out), "--chunk-rows", "20", "--quiet"]
    assert main(argv) == 0
    first = pd.read_parquet(out).sort_values("row_index").reset_index(drop=True)
    part = sorted(out.glob("part-*.parquet"))[1]
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2] if damage == "truncate" else data[:100] + bytes([data[100] ^ 1]) + data[101:])
    (out / "_SUCCESS").unlink()  # as after a crash; with _SUCCESS kept the part is re-verified all the same
    assert main(argv) == 0
    capsys.readouterr()
    assert (out / "_SUCCESS").exists()
    again = pd.read_parquet(out).sort_values("row_index").reset_index(drop=True)
    pd.testing.assert_frame_equal(first, again)


def test_resume_reverifies_even_a_complete_run(tmp_path, capsys, model_dir):
    cat = tmp_path / "cat.parquet"
    write_table_atomic(_table(), cat)
    out = tmp_path / "pred"
    argv = ["predict", str(model_dir), str(cat), "--out", str(out), "--chunk-rows", "20", "--quiet"]
    assert main(argv) == 0
    first = pd.read_parquet(out).sort_values("row_index").reset_index(drop=True)
    part = sorted(out.glob("part-*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:-40])
    assert main(argv) == 0
    capsys.readouterr()
    pd.testing.assert_frame_equal(first, pd.read_parquet(out).sort_values("row_index").reset_index(drop=True))


# -- downloads that did not get everything ---------------------------------------------------------------
class _NotFound(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_error(404, "no such object")


def test_incomplete_download_lists_failures_and_exits_3(tmp_path, capsys):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        cat = tmp_path / "cat.csv"
        pd.DataFrame({"objID": [11, 12], "ra": [10.0, 11.0], "dec": [1.0, 2.0]}).to_csv(cat, index=False)
        url = f"http://127.0.0.1:{httpd.server_address[1]}/ImgCutout/getjpeg"
        code = main(["images", "download", str(cat), "--out", str(tmp_path / "dl"), "--base-url", url,
                     "--retries", "0", "--workers", "2", "--size", "8", "--no-progress"])
    finally:
        httpd.shutdown()
        httpd.server_close()
    cap = capsys.readouterr()
    assert code == 3
    assert "objID 11" in cap.err and "objID 12" in cap.err and "2 download(s) failed" in cap.err
    assert "Traceback" not in cap.err
    assert not list((tmp_path / "dl").glob("*.jpg"))
