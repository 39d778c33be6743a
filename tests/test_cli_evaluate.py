"""`photopop evaluate` on CSV, Parquet and FITS tables: figures, bins, NaN handling and error messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from photopop.cli.main import main


def _table() -> pd.DataFrame:
    truth = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.0, 0.0, 3.0, 2.0, np.nan])  # residuals +1 -1 +1 -1, one NaN row
    return pd.DataFrame({"z_true": truth, "z_cnn": pred, "mass": [9.0, 9.5, 10.5, 11.0, 10.0]})


def _write(df: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        df.to_parquet(path)
    else:
        Table.from_pandas(df).write(path, format="fits")
    return path


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["evaluate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".fits"])
def test_json_figures_every_format(tmp_path, capsys, suffix):
    path = _write(_table(), tmp_path / f"pred{suffix}")
    code, out, _ = _run(capsys, str(path), "--truth", "z_true", "--pred", "z_cnn", "--json")
    assert code == 0
    res = json.loads(out)
    assert res["n"] == 4 and res["n_nan_excluded"] == 1
    assert res["rmse"] == pytest.approx(1.0)
    assert res["nmad"] == pytest.approx(1.4826) and res["robust_sigma"] == res["nmad"]
    assert res["bias"] == 0.0 and res["outlier_fraction"] == 0.0
    assert res["bins"] == []


def test_bins_with_edges_by_other_column(tmp_path, capsys):
    path = _write(_table(), tmp_path / "pred.parquet")
    code, out, _ = _run(capsys, str(path), "--truth", "z_true", "--pred", "z_cnn", "--bins-by", "mass",
                        "--bin-edges", "9,10,11", "--json")
    assert code == 0
    bins = json.loads(out)["bins"]
    assert [(b["lo"], b["hi"], b["n"]) for b in bins] == [(9.0, 10.0, 2), (10.0, 11.0, 2)]
    assert set(bins[0]) == {"lo", "hi", "n", "median", "rmse", "nmad", "bias"}
    # bin 1: truth 0, 1 / pred 1, 0 -> residuals +1, -1; bin 2: truth 2, 3 / pred 3, 2
    assert bins[0]["rmse"] == pytest.approx(1.0) and bins[0]["median"] == pytest.approx(0.5)
    assert bins[1]["bias"] == pytest.approx(0.0) and bins[1]["nmad"] == pytest.approx(1.4826)


def test_equal_width_bins_by_truth_and_text_output(tmp_path, capsys):
    rng = np.random.default_rng(0)
    t = rng.normal(size=500)
    df = pd.DataFrame({"t": t, "p": t + rng.normal(0, 0.1, size=500)})
    df.loc[[3, 7], "p"] = np.nan
    path = _write(df, tmp_path / "big.csv")
    code, out, _ = _run(capsys, str(path), "--truth", "t", "--pred", "p", "--bins", "4", "--json")
    res = json.loads(out)
    assert code == 0 and res["bins_by"] == "t" and len(res["bins"]) == 4
    assert sum(b["n"] for b in res["bins"]) == 498
    code, out, _ = _run(capsys, str(path), "--truth", "t", "--pred", "p", "--bins-by", "t", "--outlier-k", "2")
    assert code == 0
    assert "2 rows with NaN excluded" in out and "rmse" in out and "freedman-diaconis" in out
    assert "|residual| > 2 x NMAD" in out


def test_missing_column_message(tmp_path, capsys):
    path = _write(_table(), tmp_path / "pred.csv")
    code, _, err = _run(capsys, str(path), "--truth", "z_true", "--pred", "zh_cnn")
    assert code == 2 and "zh_cnn" in err and "missing column" in err


def test_non_numeric_column_message(tmp_path, capsys):
    df = _table().assign(label=["a", "b", "c", "d", "e"])
    path = _write(df, tmp_path / "pred.csv")
    code, _, err = _run(capsys, str(path), "--truth", "z_true", "--pred", "label")
    assert code == 2 and "'label' is not numeric" in err and "'a'" in err


def test_numbers_stored_as_text_are_accepted(tmp_path, capsys):
    df = pd.DataFrame({"t": [1.0, 2.0, 3.0], "p": ["2.0", "1.0", None]})  # a string column in Parquet
    path = _write(df, tmp_path / "text.parquet")
    assert not pd.api.types.is_numeric_dtype(pd.read_parquet(path)["p"])
    code, out, _ = _run(capsys, str(path), "--truth", "t", "--pred", "p", "--json")
    res = json.loads(out)
    assert code == 0 and res["n"] == 2 and res["n_nan_excluded"] == 1 and res["rmse"] == pytest.approx(1.0)


def test_all_nan_is_an_error(tmp_path, capsys):
    df = pd.DataFrame({"t": [1.0, 2.0], "p": [np.nan, np.nan]})
    path = _write(df, tmp_path / "nan.parquet")
    code, _, err = _run(capsys, str(path), "--truth", "t", "--pred", "p")
    assert code == 2 and "no row has finite values" in err


def test_bad_bin_edges(tmp_path, capsys):
    path = _write(_table(), tmp_path / "pred.csv")
    code, _, err = _run(capsys, str(path), "--truth", "z_true", "--pred", "z_cnn", "--bin-edges", "1,x")
    assert code == 2 and "--bin-edges" in err
    code, _, err = _run(capsys, str(path), "--truth", "z_true", "--pred", "z_cnn", "--bin-edges", "3,1")
    assert code == 2 and "increasing" in err
