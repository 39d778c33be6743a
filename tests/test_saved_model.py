"""SEDRegressor fit/predict/save/load, band and filter-system checks, normalisation on training rows."""

import json

import numpy as np
import pandas as pd
import pytest

from photopop.datasets.sed_table import SEDTable
from photopop.errors import InputError, MismatchError
from photopop.models.normalise import make_features
from photopop.models.saved import SavedSEDModel, table_hash
from photopop.models.sed_cnn import SEDCNNConfig
from photopop.training.fit import TrainConfig
from photopop.training.sed_regressor import SEDRegressor, SEDRegressorConfig

from test_predict_stream import mean_atol

BANDS = [f"b{i}" for i in range(10)]
SMALL = SEDCNNConfig(conv_filters=(2, 4), kernel_sizes=(3, 3), pool_size=2, dense_units=(16, 8))


def _frame(n=300, seed=0):
    rng = np.random.default_rng(seed)
    age = rng.uniform(8.5, 10.1, n)
    zh = rng.uniform(-1.0, 0.3, n)
    lam = np.linspace(0, 1, len(BANDS))
    mags = 20 + (age[:, None] - 9.3) * 1.5 * lam + zh[:, None] * 0.8 * lam ** 2 + rng.normal(0, 0.02, (n, len(BANDS)))
    df = pd.DataFrame({f"mag_{b}": mags[:, i] for i, b in enumerate(BANDS)})
    df["log_age"], df["zh"] = age, zh
    df["galaxy_id"] = rng.integers(0, 12, n)
    df["spaxel_id"] = np.arange(n)
    return df


def _reg(**kw):
    train = TrainConfig(max_epochs=kw.pop("max_epochs", 8), batch_size=64, seed=0, device="cpu")
    return SEDRegressor(SEDRegressorConfig(targets=kw.pop("targets", ("log_age", "zh")), architecture=SMALL,
                                           train=train, **kw))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    df = _frame()
    table = SEDTable(df, meta={"bands": BANDS, "filter_system": "toy"})
    reg = _reg().fit(table)
    path = reg.save(tmp_path_factory.mktemp("m") / "model")
    return df, reg, path


def test_folder_layout_and_meta(fitted):
    df, reg, path = fitted
    for name in ("model.pt", "config.toml", "normalisation.json", "meta.json", "history.csv", "history.json"):
        assert (path / name).exists(), name
    hist = json.loads((path / "history.json").read_text())
    assert [r["epoch"] for r in hist] == list(range(9))
    meta = json.loads((path / "meta.json").read_text())
    assert meta["bands"] == BANDS and meta["filter_system"] == "toy"
    assert meta["targets"] == ["log_age", "zh"] and meta["input_kind"] == "colour"  # the default inputs
    assert meta["ref_band"] == BANDS[len(BANDS) // 2]
    assert meta["photopop_version"]
    mags = df[[f"mag_{b}" for b in BANDS]].to_numpy()
    assert meta["train_table_hash"] == table_hash(mags, df[["log_age", "zh"]].to_numpy())
    norm = json.loads((path / "normalisation.json").read_text())
    assert norm["target"]["names"] == ["log_age", "zh"] and len(norm["input"]["mean"]) == len(BANDS) - 1


def test_roundtrip_predictions_identical(fitted):
    df, reg, path = fitted
    p1 = reg.predict(df)
    loaded = SEDRegressor.load(path)
    p2 = loaded.predict(df)
    assert list(p1.columns) == ["log_age", "zh"]
    assert np.array_equal(p1.to_numpy(), p2.to_numpy())
    assert loaded.config.targets == ("log_age", "zh") and loaded.config.train.max_epochs == 8
    assert loaded.history_ is not None and len(loaded.history_) == 9


def test_thread_count_is_restored_and_does_not_change_results(fitted):
    import torch

    df, reg, _ = fitted
    before = torch.get_num_threads()
    p1 = reg.model_.predict(df, num_threads=1)
    assert torch.get_num_threads() == before
    # thread counts may change the float32 summation order: within twice the forward-error bound
    tol = mean_atol(reg.model_, df[[f"mag_{b}" for b in BANDS]])
    assert np.all(np.abs(p1.to_numpy() - reg.predict(df).to_numpy()) <= tol)


def test_reordered_bands_give_same_predictions(fitted):
    df, reg, _ = fitted
    cols = [f"mag_{b}" for b in BANDS]
    shuffled = df[cols[::-1] + ["galaxy_id"]]
    assert np.array_equal(reg.predict(shuffled).to_numpy(), reg.predict(df).to_numpy())


def test_mismatches_are_refused(fitted):
    df, reg, path = fitted
    model = SavedSEDModel.load(path)
    with pytest.raises(MismatchError, match=r"missing band\(s\) \['b3'\]"):
        model.predict(df.drop(columns=["mag_b3"]))
    extra = df.assign(mag_b99=1.0)
    with pytest.raises(MismatchError, match=r"extra band\(s\) \['b99'\]"):
        model.predict(extra)
    other = SEDTable(df, meta={"bands": BANDS, "filter_system": "sdss"})
    with pytest.raises(MismatchError, match="filter system differs.*'toy'.*'sdss'"):
        model.predict(other)
    with pytest.raises(MismatchError):
        model.predict(df, filter_system="jpas")


def test_nan_bands_refused_with_names_and_counts(fitted):
    df, reg, _ = fitted
    bad = df.copy()
    bad.loc[[0, 5], "mag_b2"] = np.nan
    bad.loc[5, "mag_b7"] = np.inf
    with pytest.raises(InputError, match=r"2 row\(s\).*\['b2', 'b7'\]"):
        reg.predict(bad)


def test_normalisation_uses_only_fitting_rows():
    df = _frame()
    val = np.arange(0, len(df), 3)
    reg = _reg(max_epochs=2).fit(df, val_idx=val, bands=BANDS)
    fit_rows = np.setdiff1d(np.arange(len(df)), val)
    mags = make_features(df[[f"mag_{b}" for b in BANDS]].to_numpy(), BANDS, "colour")  # the default inputs
    assert np.allclose(reg.model_.input_norm.mean, mags[fit_rows].mean(0))
    assert np.allclose(reg.model_.input_norm.scale, mags[fit_rows].std(0))
    assert np.allclose(reg.model_.target_norm.mean, df[["log_age", "zh"]].to_numpy()[fit_rows].mean(0))
    assert not np.allclose(reg.model_.input_norm.mean, mags.mean(0))


def test_validation_is_carved_by_galaxy_by_default():
    df = _frame()
    reg = _reg(max_epochs=1)
    fit_idx, val_idx = reg._split(len(df), df.galaxy_id.to_numpy(), None)
    assert set(df.galaxy_id.iloc[fit_idx]).isdisjoint(df.galaxy_id.iloc[val_idx])
    assert np.union1d(fit_idx, val_idx).size == len(df)


def test_colour_inputs_and_array_fit(tmp_path):
    df = _frame()
    mags = df[[f"mag_{b}" for b in BANDS]].to_numpy()
    reg = _reg(targets=("log_age",), input_kind="colour", ref_band="b4", max_epochs=3)
    reg.fit(mags, df["log_age"].to_numpy(), bands=BANDS, filter_system="toy")
    assert reg.model_.meta["ref_band"] == "b4"
    assert len(reg.model_.input_norm.names) == len(BANDS) - 1
    # colours are brightness-free: shifting every band by 1 mag changes nothing
    p = reg.predict(mags, bands=BANDS)
    # the colours agree to float64 rounding, their float32 casts to one ulp: within the forward-error bound
    shifted = reg.predict(mags + 1.0, bands=BANDS).to_numpy()
    assert np.all(np.abs(p.to_numpy() - shifted) <= mean_atol(reg.model_, mags))
    loaded = SEDRegressor.load(reg.save(tmp_path / "colour"))
    assert np.array_equal(loaded.predict(mags, bands=BANDS).to_numpy(), p.to_numpy())
    assert np.allclose(make_features(mags, BANDS, "colour", "b4")[:, 0], mags[:, 0] - mags[:, 4])


def test_bad_inputs():
    df = _frame()
    with pytest.raises(InputError, match="target column"):
        _reg(targets=("log_mass",)).fit(df)
    bad = df.copy()
    bad.loc[3, "log_age"] = np.nan
    with pytest.raises(InputError, match="NaN/inf targets"):
        _reg().fit(bad)
    with pytest.raises(InputError, match="not fitted"):
        _reg().predict(df)
    with pytest.raises(InputError, match="not a complete model folder"):
        SavedSEDModel.load(__import__("pathlib").Path(__file__).parent)


def test_save_replaces_only_its_own_folder(fitted, tmp_path):
    from photopop.errors import OutputError

    _, reg, _ = fitted
    target = tmp_path / "m"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    with pytest.raises(OutputError, match="did not write"):  # a user's folder is never replaced
        reg.save(target)
    assert (target / "stale.txt").read_text() == "old" and not (target / "model.pt").exists()
    (target / "stale.txt").unlink()
    reg.save(target)  # an empty folder is claimed; the same model again is an idempotent rewrite
    reg.save(target)
    assert (target / "model.pt").exists()
