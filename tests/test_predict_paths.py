"""One prediction path: `sed predict` = `predict`, load_model through the kind registry, bugs propagate."""

import json

import numpy as np
import pandas as pd
import pytest

from photopop.cli.main import main
from photopop.datasets.sed_table import SEDTable
from photopop.errors import InputError
from photopop.inference import BasePredictor, load_model, predict_catalog, predict_table
from photopop.inference import readers
from photopop.models import registry

from test_predict_stream import BANDS, MAGS, make_model


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A saved tiny SED CNN and a valid SED table (magnitudes and errors) of 300 spaxels."""
    root = tmp_path_factory.mktemp("paths")
    model = make_model(root / "model", seed=3)
    rng = np.random.default_rng(7)
    n = 300
    df = pd.DataFrame({"galaxy_id": np.arange(n) // 20, "spaxel_id": np.arange(n) % 20})
    for b, m in zip(BANDS, rng.normal(20, 1, (len(BANDS), n))):
        df[f"mag_{b}"] = m
        df[f"magerr_{b}"] = 0.05
    table = SEDTable(df, meta={"bands": BANDS, "filter_system": "toy", "kind": "user", "seed": 0})
    table.write(root / "table")
    return root, model, table


def test_sed_predict_equals_predict_and_the_model(tiny, tmp_path):
    root, model, table = tiny
    assert main(["sed", "predict", "--model", str(root / "model"), "--table", str(root / "table"),
                 "--out", str(tmp_path / "one.parquet"), "--threads", "1"]) == 0
    one = pd.read_parquet(tmp_path / "one.parquet")
    assert list(one.columns) == ["galaxy_id", "spaxel_id", "log_age_cnn", "zh_cnn"]
    # one chunk holding the whole table: the same network calls, so the same floats to the last bit
    assert main(["predict", str(root / "model"), str(root / "table"), "--out", str(tmp_path / "ds"),
                 "--chunk-rows", "1000", "--device", "cpu", "--id-columns", "galaxy_id,spaxel_id", "--quiet"]) == 0
    ds = pd.read_parquet(tmp_path / "ds")
    np.testing.assert_array_equal(one[["galaxy_id", "spaxel_id"]], ds[["galaxy_id", "spaxel_id"]])
    np.testing.assert_array_equal(one[["log_age_cnn", "zh_cnn"]].to_numpy(), ds[["log_age", "zh"]].to_numpy())
    # ... and what the model object gives for the table (what `sed predict` computed before)
    np.testing.assert_array_equal(one[["log_age_cnn", "zh_cnn"]].to_numpy(), model.predict(table).to_numpy())


def test_predict_table_checks_bands_and_refuses_implausible_rows(tiny):
    root, model, table = tiny
    other = SEDTable(table.spaxels, meta={**table.meta, "filter_system": "sdss"})
    with pytest.raises(InputError, match="filter system differs"):
        predict_table(model, other, what="other")
    bad = table.spaxels.copy()
    bad.loc[5, "mag_b2"] = 99.0  # a sentinel: refused by default, NaN predictions with on_nan='nan'
    with pytest.raises(InputError, match=r"frame: 1 row\(s\) have NaN/inf or implausible"):
        predict_table(model, bad, what="frame")
    pred = predict_table(model, bad, on_nan="nan")
    assert pred.loc[5].isna().all() and pred.drop(index=5).notna().all().all()


class _PluginModel:
    """A registered kind whose load() gives a predictor itself (no device binding, no hash of its own)."""

    model_hash = None
    path = None
    bands, targets, filter_system = BANDS, ["zh"], "toy"

    @classmethod
    def load(cls, path):
        return cls()

    def predict_frame(self, df):
        return pd.DataFrame({"zh": df[MAGS].to_numpy().mean(axis=1) - 20.0})


def test_a_registered_kind_is_loaded_through_the_registry(tiny, tmp_path, monkeypatch):
    root, _, table = tiny
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps({"kind": "test-plugin", "bands": BANDS, "targets": ["zh"]}))
    monkeypatch.setitem(registry.MODEL_KINDS, "test-plugin", _PluginModel)
    pred = load_model(folder)
    assert isinstance(pred, _PluginModel) and pred.path == str(folder.resolve()) and len(pred.model_hash) == 64
    rep = predict_catalog(folder, root / "table", tmp_path / "out", chunk_rows=128)
    out = pd.read_parquet(tmp_path / "out")
    assert rep.n_rows == 300
    np.testing.assert_allclose(out["zh"], table.spaxels[MAGS].mean(axis=1) - 20.0, rtol=0, atol=1e-12)
    # the built-in kinds are wrapped in the shared base class; options of posterior models are refused here
    sed = load_model(root / "model", device="cpu")
    assert isinstance(sed, BasePredictor) and sed.path == str((root / "model").resolve())
    with pytest.raises(InputError, match="apply to posterior models"):
        load_model(root / "model", device="cpu", n_samples=10)


def test_a_bug_in_a_reader_propagates_as_itself(tiny, tmp_path, monkeypatch):
    """Only the errors of a corrupt file become InputError; a programming error keeps its traceback."""
    root, model, _ = tiny

    def broken(self, start, stop):
        raise AttributeError("a bug, not bad input")

    monkeypatch.setattr(readers._ParquetReader, "read", broken)
    with pytest.raises(AttributeError, match="a bug"):
        predict_catalog(model, root / "table", tmp_path / "out", chunk_rows=128, device="cpu")
