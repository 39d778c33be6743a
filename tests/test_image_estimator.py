"""ImageEstimator: fit / predict / save / load like SEDRegressor, through the one model-folder writer."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from photopop.errors import InputError, MismatchError
from photopop.models.image_regressor import ImageModelConfig, ImageRegressor
from photopop.training.image_estimator import ImageEstimator, ImageEstimatorConfig
from photopop.training.image_fit import ImageFitConfig

MODEL = ImageModelConfig(arch="resnet18", pretrained="none", input_transform="linear")
FIT = ImageFitConfig(epochs=2, freeze_epochs=1, batch_size=8, lr_frozen=1e-2, lrs=(1e-4, 1e-3, 1e-2), seed=2,
                     num_threads=1)


def _toy(n=30, s=8, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(8.9, 0.2, n)
    img = rng.normal(0, 0.05, (n, 3, s, s)) + (y[:, None, None, None] - 8.9)
    return img.astype(np.float32), y


def test_fit_predict_save_load_round_trip(tmp_path):
    x, y = _toy()
    cfg = ImageEstimatorConfig(targets=("oh",), architecture=MODEL, train=FIT)
    est = ImageEstimator(cfg).fit(x, y, bands=["g", "r", "i"], val_idx=np.arange(20, 30))
    assert list(est.history_["epoch"]) == [1, 2]
    assert np.isclose(est.model_.out_mean.item(), y[:20].mean(), atol=1e-5)  # normalised on the fitting rows
    pred = est.predict(x, bands=["g", "r", "i"])
    assert list(pred.columns) == ["oh"] and len(pred) == 30
    np.testing.assert_allclose(pred["oh"], est.model_.predict(x, tta=True)[:, 0], rtol=1e-6)
    path = est.save(tmp_path / "m")
    assert {"history.csv", "history.json", "SHA256SUMS", "model.pt"} <= {p.name for p in path.iterdir()}
    meta = json.loads((path / "meta.json").read_text())
    assert meta["input_kind"] == "image" and meta["best_epoch"] == est.result_.best_epoch
    back = ImageEstimator.load(path)
    assert back.config.train == FIT and back.config.targets == ("oh",)
    assert back.result_.best_epoch == est.result_.best_epoch
    pd.testing.assert_frame_equal(back.history_, est.history_, check_dtype=False)
    np.testing.assert_allclose(back.predict(x[:, ::-1].copy(), bands=["i", "r", "g"])["oh"], pred["oh"], rtol=1e-5)
    with pytest.raises(MismatchError):
        back.predict(np.zeros((2, 3, 16, 16), np.float32))
    with pytest.raises(InputError, match="not fitted"):
        ImageEstimator().predict(x)


def test_folders_written_without_the_estimator_open_and_val_rows_are_carved(tmp_path):
    torch.manual_seed(0)
    m = ImageRegressor(["g", "r", "i"], 8, ["oh"], MODEL)
    m.save(tmp_path / "plain", extra_config={"train": {"epochs": 3}})
    est = ImageEstimator.load(tmp_path / "plain")
    assert est.result_ is None and est.config.train.epochs == 3 and est.config.targets == ("oh",)
    x, y = _toy(25)
    est = ImageEstimator(ImageEstimatorConfig(targets=("oh",), val_fraction=0.2, architecture=MODEL,
                                              train=ImageFitConfig(epochs=1, freeze_epochs=0, batch_size=8,
                                                                   num_threads=1)))
    est.fit(x, pd.DataFrame({"oh": y}), train_idx=np.arange(20))  # rows 20..24 kept out entirely
    assert est.result_.history["epoch"].tolist() == [1]
    from photopop.training.fit import validation_split

    fit_rows, val_rows = validation_split(20, None, None, "random", 0.2, 0)  # 4 of the 20 validate
    assert val_rows.size == 4 and np.isclose(est.model_.out_mean.item(), y[fit_rows].mean(), atol=1e-5)
    with pytest.raises(InputError, match="targets"):
        ImageEstimator(ImageEstimatorConfig(architecture=MODEL)).fit(x)
