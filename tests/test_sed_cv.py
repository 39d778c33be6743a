"""Set A / Set B cross-prediction: fold use, leakage, training-only normalisation, reuse, outputs, CLI."""

import json

import numpy as np
import pandas as pd
import pytest

from photopop.cli.main import main
from photopop.datasets.sed_table import SEDTable
from photopop.errors import InputError, OutputError
from photopop.experiments.sed_cv import SEDCVConfig, derived_seed, run_sed_cv
from photopop.models.baselines import RandomForestConfig
from photopop.models.normalise import make_features
from photopop.models.saved import table_hash
from photopop.models.sed_cnn import SEDCNNConfig
from photopop.models.floor import FloorConfig
from photopop.models.template_fit import TemplateGridConfig
from photopop.models.template_library import TemplateLibraryConfig
from photopop.simulate.library import UniformPriorConfig
from photopop.splits import carve_validation, make_folds
from photopop.training.fit import TrainConfig

BANDS = [f"b{i}" for i in range(8)]
SMALL = SEDCNNConfig(conv_filters=(2, 4), kernel_sizes=(3, 3), pool_size=2, dense_units=(16, 8))


def _table(n_gal=12, per=15, seed=0):
    """Galaxies with their own label offsets; magnitudes a smooth function of the labels."""
    rng = np.random.default_rng(seed)
    gid = np.repeat(np.arange(n_gal) + 100, per)
    age = rng.uniform(8.8, 9.8, n_gal)[gid - 100] + rng.normal(0, 0.15, gid.size)
    zh = rng.uniform(-0.6, 0.1, n_gal)[gid - 100] + rng.normal(0, 0.1, gid.size)
    lam = np.linspace(0, 1, len(BANDS))
    mags = 19 + (age[:, None] - 9.3) * 1.2 * lam + zh[:, None] * 0.7 * lam ** 2 + rng.normal(0, 0.01, (gid.size, len(BANDS)))
    df = pd.DataFrame({"galaxy_id": gid, "spaxel_id": np.tile(np.arange(per), n_gal)})
    for i, b in enumerate(BANDS):
        df[f"mag_{b}"] = mags[:, i]
        df[f"magerr_{b}"] = 0.01
    df["log_age"], df["zh"] = age, zh
    return SEDTable(df, meta={"bands": BANDS, "filter_system": "toy", "kind": "user", "seed": seed})


def _cfg(split="B", **kw):
    return SEDCVConfig(split=split, methods=kw.pop("methods", ("cnn", "constant", "random", "random_forest")),
                       architecture=SMALL, train=TrainConfig(max_epochs=kw.pop("max_epochs", 3), batch_size=64,
                                                             device="cpu", num_threads=1),
                       random_forest=RandomForestConfig(n_estimators=10), **kw)


@pytest.fixture(scope="module")
def set_b(tmp_path_factory):
    tab = _table()
    out = tmp_path_factory.mktemp("cv") / "B"
    return tab, out, run_sed_cv(tab, _cfg("B"), out)


def test_outputs_layout_and_metrics_shape(set_b):
    tab, out, res = set_b
    for name in ("predictions.parquet", "metrics.json", "config.toml", "meta.json"):
        assert (out / name).exists(), name
    pred = pd.read_parquet(out / "predictions.parquet")
    assert len(pred) == len(tab.spaxels)
    cols = {"galaxy_id", "spaxel_id", "fold", "log_age_true", "zh_true"}
    cols |= {f"{t}_{m}" for t in ("log_age", "zh") for m in ("cnn", "constant", "random", "random_forest")}
    assert cols <= set(pred.columns)
    assert np.all(np.isfinite(pred[sorted(cols - {"galaxy_id", "spaxel_id", "fold"})].to_numpy()))
    assert np.array_equal(pred.log_age_true, tab.spaxels.log_age)
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) == {"cnn", "constant", "random", "random_forest", "pcc_residuals"}
    assert set(m["cnn"]["zh"]) == {"robust_sigma", "rmse", "bias", "n"} and m["cnn"]["zh"]["n"] == len(pred)
    resid = pred.log_age_constant - pred.log_age_true
    assert m["constant"]["log_age"]["rmse"] == pytest.approx(np.sqrt(np.mean(resid ** 2)))
    assert set(m["pcc_residuals"]) == {"cnn", "constant", "random", "random_forest"}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 0 and meta["split"] == "B" and meta["photopop_version"]
    for k in range(4):
        assert (out / "folds" / f"fold_{k}" / "cnn_log_age" / "history.csv").exists()
        assert (out / "folds" / f"fold_{k}" / "cnn_zh" / "model.pt").exists()


def test_set_b_folds_never_share_a_galaxy(set_b):
    tab, out, res = set_b
    gid = tab.spaxels.galaxy_id.to_numpy()
    assert np.array_equal(res.folds, make_folds(gid, "B", 4, seed=0))
    per_gal = pd.Series(res.folds).groupby(gid).nunique()
    assert (per_gal == 1).all()
    # each fold's model was trained on exactly the other folds' rows (hash of its training rows)
    mags = tab.magnitudes()
    for k in range(4):
        meta = json.loads((out / "folds" / f"fold_{k}" / "cnn_zh" / "meta.json").read_text())
        train = np.flatnonzero(res.folds != k)
        assert meta["train_table_hash"] == table_hash(mags[train], tab.spaxels[["zh"]].to_numpy()[train])


def test_normalisation_from_fit_rows_and_grouped_validation(set_b):
    tab, out, res = set_b
    gid = tab.spaxels.galaxy_id.to_numpy()
    mags = tab.magnitudes()
    for k in range(4):
        train = np.flatnonzero(res.folds != k)
        fit_idx, val_idx = carve_validation(train, gid, scheme="B", fraction=0.2, seed=derived_seed(0, "val", k))
        assert set(gid[fit_idx]).isdisjoint(gid[val_idx])
        norm = json.loads((out / "folds" / f"fold_{k}" / "cnn_log_age" / "normalisation.json").read_text())
        # the default CNN inputs are colours against the middle band (b4)
        assert norm["input"]["names"] == [f"{b}-b4" for b in BANDS if b != "b4"]
        assert np.allclose(norm["input"]["mean"], make_features(mags, BANDS, "colour")[fit_idx].mean(0))
        assert np.allclose(norm["target"]["mean"], tab.spaxels.log_age.to_numpy()[fit_idx].mean())
        meta = json.loads((out / "folds" / f"fold_{k}" / "cnn_log_age" / "meta.json").read_text())
        assert meta["n_fit_rows"] == fit_idx.size and meta["n_val_rows"] == val_idx.size


def test_constant_baseline_uses_training_folds_only(set_b):
    tab, _, res = set_b
    p = res.predictions
    for k in range(4):
        expect = tab.spaxels.log_age[res.folds != k].mean()
        assert np.allclose(p.log_age_constant[p.fold == k], expect)


def test_rerun_reuses_finished_work(set_b):
    tab, out, res = set_b
    again = run_sed_cv(tab, _cfg("B"), out)
    assert again.timings == {}
    pd.testing.assert_frame_equal(again.predictions, res.predictions)
    # another max_epochs needs overwrite (the folder holds a run of other settings) and only redoes the CNN
    with pytest.raises(OutputError, match="other settings"):
        run_sed_cv(tab, _cfg("B", max_epochs=4), out)
    more = run_sed_cv(tab, _cfg("B", max_epochs=4), out, overwrite=True)
    assert set(more.timings) == {f"fold{k}_cnn_s" for k in range(4)}
    assert np.array_equal(more.predictions.zh_random_forest, res.predictions.zh_random_forest)


def test_set_a_spreads_galaxies_and_joint_model(tmp_path):
    tab = _table()
    res = run_sed_cv(tab, _cfg("A", methods=("cnn", "constant"), joint_targets=True), tmp_path / "A")
    gid = tab.spaxels.galaxy_id.to_numpy()
    assert (pd.Series(res.folds).groupby(gid).nunique() == 4).all()
    assert (tmp_path / "A" / "folds" / "fold_0" / "cnn" / "model.pt").exists()
    assert np.all(np.isfinite(res.predictions.zh_cnn))


def test_bad_input(tmp_path):
    tab = _table()
    tab.spaxels.loc[3, "mag_b2"] = np.nan
    with pytest.raises(InputError, match="NaN"):
        run_sed_cv(tab, _cfg(), tmp_path / "x")
    with pytest.raises(InputError, match="method"):
        run_sed_cv(_table(), _cfg(methods=("cnn", "xgboost")), tmp_path / "y")


def test_cli_end_to_end_on_mock_with_template_fit(tmp_path):
    """Tiny mock survey -> `photopop sed cv` with every method, figures and a printed table."""
    from photopop.config import save_config
    from photopop.simulate.geometry import GalaxySampleConfig
    from photopop.simulate.ifu import IFUSurveyConfig, simulate_ifu_survey

    mock = simulate_ifu_survey(IFUSurveyConfig(sample=GalaxySampleConfig(n_galaxies=8, spaxels_per_galaxy=30)))
    mock.write(tmp_path / "mock")
    cfg = _cfg("B", methods=("cnn", "constant", "random", "random_forest", "template_fit", "template_grid", "floor"))
    cfg.template_grid = TemplateGridConfig(ages_gyr=(0.5, 2.0, 8.0), taus_gyr=(0.3, 3.0), zh=(-0.8, -0.3, 0.1),
                                           a_v=(0.0, 0.5, 1.0))
    cfg.template_fit = TemplateLibraryConfig(n_templates=300, prior=UniformPriorConfig(chunk=100))
    cfg.floor = FloorConfig(batch_galaxies=10)
    save_config(cfg, tmp_path / "cfg.toml")
    rc = main(["sed", "cv", "--table", str(tmp_path / "mock"), "--split", "B", "--target", "both",
               "--out", str(tmp_path / "cv"), "--config", str(tmp_path / "cfg.toml"), "--max-epochs", "2",
               "--seed", "1", "--quiet", "--floor-library", "400"])
    assert rc == 0
    m = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    for meth in ("template_fit", "template_grid", "floor"):
        assert m[meth]["log_age"]["n"] == len(mock.spaxels)
    # ratio_to_floor: robust sigma of each other method over the floor's, per target
    assert set(m["ratio_to_floor"]) == {"cnn", "constant", "random", "random_forest", "template_fit", "template_grid"}
    for meth, per in m["ratio_to_floor"].items():
        for t in ("log_age", "zh"):
            assert per[t] == pytest.approx(m[meth][t]["robust_sigma"] / m["floor"][t]["robust_sigma"])
    pred = pd.read_parquet(tmp_path / "cv" / "folds" / "fold_0" / "pred_floor.parquet")
    assert {"log_age_floor", "log_age_floor_p16", "log_age_floor_p84", "floor_ess"} <= set(pred.columns)
    assert np.all(pred["log_age_floor_p16"] <= pred["log_age_floor_p84"])
    assert (tmp_path / "cv" / "figures" / "pred_vs_true_cnn.png").stat().st_size > 1000
    assert (tmp_path / "cv" / "figures" / "learning_curves.png").exists()
    assert json.loads((tmp_path / "cv" / "meta.json").read_text())["seed"] == 1
    # predict with a fold model through the CLI
    rc = main(["sed", "predict", "--model", str(tmp_path / "cv" / "folds" / "fold_0" / "cnn_zh"),
               "--table", str(tmp_path / "mock"), "--out", str(tmp_path / "p.parquet")])
    assert rc == 0 and len(pd.read_parquet(tmp_path / "p.parquet")) == len(mock.spaxels)


def test_cli_reports_mismatch(tmp_path, capsys):
    tab = _table()
    tab.write(tmp_path / "t")
    assert main(["sed", "train", "--table", str(tmp_path / "t"), "--target", "zh", "--out", str(tmp_path / "m"),
                 "--max-epochs", "2", "--quiet"]) == 0
    other = _table()
    other.meta["filter_system"] = "sdss"
    other.write(tmp_path / "o")
    rc = main(["sed", "predict", "--model", str(tmp_path / "m"), "--table", str(tmp_path / "o"),
               "--out", str(tmp_path / "p.csv")])
    assert rc == 2 and "filter system differs" in capsys.readouterr().err


def test_floor_refused_upfront_for_a_table_without_a_simulator(tmp_path):
    with pytest.raises(InputError, match="mock IFU"):
        run_sed_cv(_table(), _cfg(methods=("cnn", "floor")), tmp_path / "f")
    assert not (tmp_path / "f" / "folds").exists()


def test_template_fit_refused_upfront_without_a_known_filter_system(tmp_path):
    tab = _table()  # filter system 'toy' is not a real one
    with pytest.raises(InputError):
        run_sed_cv(tab, _cfg(methods=("cnn", "template_fit")), tmp_path / "z")
    assert not (tmp_path / "z" / "folds").exists()  # nothing trained before the refusal


def test_default_inputs_are_colours_and_the_forest_gets_its_features(set_b):
    """Issue 14 §3: the CNN defaults to colours; the forest is fed `random_forest.features` (colours by
    default), recorded in meta.json, and its out-of-fold predictions are those of a forest on those features."""
    from photopop.experiments.liew_cain_config import preset_config
    from photopop.models.baselines import RandomForestBaseline, forest_features
    from photopop.training.sed_regressor import SEDRegressorConfig
    from photopop.training.tune import TuneConfig

    assert SEDCVConfig().input_kind == "colour" and SEDRegressorConfig().input_kind == "colour"
    assert TuneConfig().input_kind == "colour" and RandomForestConfig().features == "colour"
    for preset in ("tiny", "quick", "full", "diversity"):
        assert preset_config(preset, 0).cv.input_kind == "colour", preset
    tab, out, res = set_b
    meta = json.loads((out / "meta.json").read_text())
    assert meta["inputs"] == {"cnn": "colour", "random_forest": "colour"}
    mags = tab.magnitudes()
    y = tab.spaxels[["log_age", "zh"]].to_numpy()
    train, test = np.flatnonzero(res.folds != 0), np.flatnonzero(res.folds == 0)
    x = forest_features(mags, BANDS, "colour")
    rf = RandomForestBaseline(RandomForestConfig(n_estimators=10), seed=derived_seed(0, "fold", 0, "random_forest"))
    expect = rf.fit(x[train], y[train]).predict(x[test])
    p = res.predictions
    assert np.allclose(p.loc[p.fold == 0, "log_age_random_forest"], expect[:, 0])
    assert np.allclose(p.loc[p.fold == 0, "zh_random_forest"], expect[:, 1])
    rf_mag = RandomForestBaseline(RandomForestConfig(n_estimators=10), seed=derived_seed(0, "fold", 0, "random_forest"))
    assert not np.allclose(rf_mag.fit(mags[train], y[train]).predict(mags[test])[:, 0], expect[:, 0])


def test_forest_features_setting_reruns_only_the_forest(tmp_path):
    tab = _table()
    cfg = _cfg("B", methods=("cnn", "random_forest"), input_kind="mag")
    first = run_sed_cv(tab, cfg, tmp_path / "cv")
    assert json.loads((tmp_path / "cv" / "meta.json").read_text())["inputs"] == {"cnn": "mag",
                                                                                   "random_forest": "colour"}
    cfg.random_forest.features = "same"  # the CNN's kind: magnitudes here
    again = run_sed_cv(tab, cfg, tmp_path / "cv", overwrite=True)
    assert set(again.timings) == {f"fold{k}_random_forest_s" for k in range(4)}
    assert json.loads((tmp_path / "cv" / "meta.json").read_text())["inputs"]["random_forest"] == "mag"
    assert not np.allclose(again.predictions.zh_random_forest, first.predictions.zh_random_forest)
    np.testing.assert_array_equal(again.predictions.zh_cnn, first.predictions.zh_cnn)
    bad = _cfg("B")
    bad.random_forest.features = "pixels"
    with pytest.raises(InputError, match="random_forest.features"):
        run_sed_cv(tab, bad, tmp_path / "bad")
    with pytest.raises(InputError, match="input kind"):
        run_sed_cv(tab, _cfg("B", input_kind="jpeg"), tmp_path / "bad2")


def test_cli_prints_the_cnn_forest_verdict(tmp_path, capsys):
    tab = _table()
    tab.write(tmp_path / "t")
    rc = main(["sed", "cv", "--table", str(tmp_path / "t"), "--out", str(tmp_path / "cv"), "--methods", "cnn",
               "random_forest", "--max-epochs", "2", "--no-figures", "--quiet", "--set", "random_forest.n_estimators=5",
               "--set", "architecture.conv_filters=[2, 4]", "--set", "architecture.dense_units=[16, 8]"])
    assert rc == 0
    text = capsys.readouterr().out
    m = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    line = next(ln for ln in text.splitlines() if ln.startswith("CNN against random forest on Set B"))
    assert "(CNN on colour, forest on colour)" in line and "of 4 folds" in line
    assert f"{m['cnn']['zh']['robust_sigma']:.3f} vs {m['random_forest']['zh']['robust_sigma']:.3f}" in line


def test_mask_policy_needs_magnitudes_said_plainly(tmp_path, capsys):
    from photopop.training.sed_regressor import SEDRegressor, SEDRegressorConfig

    tab = _table()
    with pytest.raises(InputError, match="needs input_kind 'mag'.*input_kind = \"mag\""):
        SEDRegressor(SEDRegressorConfig(targets=("zh",), nan_policy="mask")).fit(tab)
    tab.write(tmp_path / "t")
    args = ["sed", "train", "--table", str(tmp_path / "t"), "--target", "zh", "--max-epochs", "1", "--quiet",
            "--set", "nan_policy=mask", "--set", "architecture.conv_filters=[2, 4]"]
    assert main([*args, "--out", str(tmp_path / "m0")]) == 2
    assert "--input-kind mag" in capsys.readouterr().err
    assert main([*args, "--input-kind", "mag", "--out", str(tmp_path / "m1")]) == 0
    assert json.loads((tmp_path / "m1" / "meta.json").read_text())["input_kind"] == "mag"
    assert main(["sed", "train", "--table", str(tmp_path / "t"), "--target", "zh", "--max-epochs", "1", "--quiet",
                 "--out", str(tmp_path / "m2")]) == 0
    assert json.loads((tmp_path / "m2" / "meta.json").read_text())["input_kind"] == "colour"
