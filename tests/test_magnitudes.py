"""The one magnitude plausibility check (photometry/magnitudes.py), where it is used in training and
prediction, and the range a model carries from its training table to its predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from photopop.datasets.sed_table import SEDTable
from photopop.errors import InputError
from photopop.inference.chunks import predict_chunk
from photopop.inference.predictors import SEDPredictor
from photopop.models.normalise import make_features
from photopop.photometry.magnitudes import (DEFAULT_RANGE, MagnitudeRange, check_magnitude_errors,
                                            check_magnitudes, implausible, magnitude_matrix, mask_implausible)
from photopop.training.fit import TrainConfig
from photopop.training.sed_regressor import SEDRegressor, SEDRegressorConfig
from photopop.models.sed_cnn import SEDCNNConfig

BANDS = ["g", "r", "i"]


def test_range_and_sentinels():
    assert (DEFAULT_RANGE.lo, DEFAULT_RANGE.hi) == (-10.0, 40.0)
    x = np.array([[21.0, 99.0, np.nan], [-99.0, 1e30, np.inf], [40.0, -10.0, 1e39]])
    np.testing.assert_array_equal(implausible(x), [[False, True, False], [True, True, True],
                                                   [False, False, True]])
    masked, n = mask_implausible(x)
    assert n == 3 and np.isnan(masked[0, 1]) and masked[2, 0] == 40.0 and x[0, 1] == 99.0  # a copy
    with pytest.raises(InputError, match=r"mag_r.*99\.0.*sentinel"):
        check_magnitudes(x[:1], ["mag_g", "mag_r", "mag_i"], "t.csv")
    check_magnitudes(np.array([[45.0]]), ["m"], mag_range=(-30, 50))  # a wider range accepts it
    with pytest.raises(InputError, match="lo < hi"):
        MagnitudeRange(40, -10)


def test_non_numeric_columns_are_named():
    df = pd.DataFrame({"mag_g": [20.0, 21.0], "mag_r": ["20.1", "x"], "mag_i": [True, False]})
    assert magnitude_matrix(df, ["mag_g"]).tolist() == [[20.0], [21.0]]
    with pytest.raises(InputError, match=r"cat.parquet: magnitude column 'mag_r' is not numeric.*'20.1'"):
        magnitude_matrix(df, ["mag_g", "mag_r"], "cat.parquet")
    with pytest.raises(InputError, match="'mag_i' is not numeric"):
        magnitude_matrix(df, ["mag_i"])


def test_errors_must_be_positive():
    check_magnitude_errors(np.array([[0.1, 0.2]]), ["a", "b"])
    with pytest.raises(InputError, match=r"\['b'\].*zero"):
        check_magnitude_errors(np.array([[0.1, 0.0]]), ["a", "b"])
    check_magnitude_errors(np.array([[0.1, 0.0]]), ["a", "b"], allow_zero=True)  # noise-free mock
    with pytest.raises(InputError, match="negative"):
        check_magnitude_errors(np.array([[-0.1, 0.1]]), ["a", "b"], allow_zero=True)


def test_make_features_refuses_for_every_input_kind():
    x = np.array([[20.0, 21.0, 99.0]])
    for kind in ("mag", "colour", "flux"):
        with pytest.raises(InputError, match="implausible"):
            make_features(x, BANDS, kind)
    assert make_features(np.array([[20.0, 21.0, np.nan]]), BANDS, "mag").shape == (1, 3)  # NaN = missing


def _table(n=48, seed=0, hi=40.0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"galaxy_id": np.arange(n) // 4, "spaxel_id": np.arange(n) % 4})
    for b in BANDS:
        df[f"mag_{b}"] = rng.normal(38.0, 1.0, n)  # faint: some beyond 40
        df[f"magerr_{b}"] = 0.1
    df["log_age"] = rng.normal(9.5, 0.3, n)
    return SEDTable(df, meta={"bands": BANDS, "mag_range": [-10.0, hi]})


def test_training_refuses_and_the_model_carries_its_range():
    with pytest.raises(InputError, match="implausible"):
        _table().validate()
    table = _table(hi=45.0).validate()  # this table declares a wider range
    torch.manual_seed(0)
    cfg = SEDRegressorConfig(architecture=SEDCNNConfig(conv_filters=(2,), kernel_sizes=(3,), pool_size=1,
                                                       dense_units=(4,)),
                             train=TrainConfig(max_epochs=1, batch_size=16, num_threads=1, device="cpu"))
    model = SEDRegressor(cfg).fit(table).model_
    assert model.meta["mag_range"] == [-10.0, 45.0]
    predictor = SEDPredictor(model, device="cpu")
    frame = pd.DataFrame({"mag_g": [42.0, 46.0, 20.0], "mag_r": [38.0, 38.0, 99.0], "mag_i": [38.0] * 3})
    pred, n_masked = predict_chunk(predictor, frame)
    assert n_masked == 2  # 46 > 45 and 99 are masked; 42 is inside this model's range
    assert np.isfinite(pred["log_age"].iloc[0]) and pred["log_age"].iloc[1:].isna().all()
