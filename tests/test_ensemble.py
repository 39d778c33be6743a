"""Deep ensembles: combination formula, folders, band checks and load dispatch."""

import numpy as np
import pandas as pd
import pytest

from photopop.errors import InputError, MismatchError
from photopop.models.ensemble import SEDEnsemble
from photopop.models.registry import open_model
from photopop.models.sed_cnn import SEDCNNConfig
from photopop.training.fit import TrainConfig
from photopop.training.sed_regressor import SEDRegressor, SEDRegressorConfig

from conftest import float32_forward_bound

BANDS = ["u", "g", "r", "i", "z"]
SMALL = SEDCNNConfig(conv_filters=(2,), kernel_sizes=(3,), pool_size=1, dense_units=(8,))


def _member(seed, loss="gaussian_nll", bands=BANDS):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(bands)))
    y = np.c_[x[:, 0] + 0.1 * rng.normal(size=200), x[:, 1]]
    cfg = SEDRegressorConfig(targets=("log_age", "zh"), architecture=SMALL,
                             train=TrainConfig(loss=loss, max_epochs=3, seed=seed))
    return SEDRegressor(cfg).fit(x, y, bands=bands, filter_system="sdss").model_, x


def _sigma_atol(ens, x) -> np.ndarray:
    """Tolerance on the ensemble sigma for two float32 evaluations (different batches) of the same members.

    Each member's network output is within float32_forward_bound b of exact, so two evaluations differ by
    d = 2 b: the mean by d_mu * scale, log-variance by d_lv, sigma_i^2 = exp(lv) scale^2 by sigma_i^2 d_lv.
    First order, sigma^2 = mean(sigma_i^2) + var(mu_i) moves by mean(sigma_i^2 d_lv + 2 |mu_i - mu| d_mu);
    sigma by that over 2 sigma.
    """
    mus, sigs = ens.member_predictions(x)
    _, sigma = ens.predict_with_sigma(x, calibrated=False)
    k = len(ens.targets)
    d2 = np.zeros_like(sigma)
    for m, mu_i, s_i in zip(ens.members, mus, sigs):
        d = 2 * float32_forward_bound(m.network, m._inputs(x))
        d2 += s_i ** 2 * d[:, k:] + 2 * np.abs(mu_i - mus.mean(0)) * d[:, :k] * m.target_norm.scale
    return d2 / len(ens.members) / (2 * sigma) * ens.sigma_scale


def test_combination_formula_and_folder(tmp_path):
    (m0, x), (m1, _), (m2, _) = _member(0), _member(1), _member(2)
    ens = SEDEnsemble([m0, m1, m2])
    mus, sigs = ens.member_predictions(x)
    mu, sigma = ens.predict_with_sigma(x)
    np.testing.assert_allclose(mu, (mus[0] + mus[1] + mus[2]) / 3)
    manual = np.sqrt((sigs[0] ** 2 + sigs[1] ** 2 + sigs[2] ** 2) / 3
                     + ((mus - mus.mean(0)) ** 2).sum(0) / 3)
    np.testing.assert_allclose(sigma, manual)
    ens.set_sigma_scale({"log_age": 1.5, "zh": 0.5})
    df = pd.DataFrame(x, columns=[f"mag_{b}" for b in BANDS])
    pred = ens.predict(df[df.columns[::-1]], filter_system="sdss")  # reordered bands are fine
    assert list(pred.columns) == ["log_age", "zh", "log_age_sigma", "zh_sigma"]
    np.testing.assert_allclose(pred["zh_sigma"], 0.5 * manual[:, 1])
    ens.save(tmp_path / "ens")
    assert (tmp_path / "ens" / "members" / "2" / "model.pt").exists()
    back = open_model(tmp_path / "ens")
    assert isinstance(back, SEDEnsemble) and back.meta["n_members"] == 3
    np.testing.assert_allclose(back.predict(df)["zh_sigma"], pred["zh_sigma"], rtol=1e-6)
    with pytest.raises(MismatchError):
        back.predict(df, filter_system="jpas")
    with pytest.raises(MismatchError):
        back.predict(df.drop(columns="mag_u"))


def test_mse_members_epistemic_only_and_checks(tmp_path):
    (a, x), (b, _) = _member(0, "mse"), _member(1, "mse")
    ens = SEDEnsemble([a, b])
    mu, sigma = ens.predict_with_sigma(x)
    pa, pb = a.predict_array(x), b.predict_array(x)
    np.testing.assert_allclose(sigma, np.abs(pa - pb) / 2)
    assert SEDEnsemble([a]).predict_with_sigma(x)[1] is None
    other, _ = _member(0, "mse", bands=["u", "g", "r", "i", "y"])
    with pytest.raises(InputError, match="bands"):
        SEDEnsemble([a, other])
    with pytest.raises(InputError):
        SEDEnsemble([])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "meta.json").write_text('{"kind": "sed-ensemble", "n_members": 2}')
    with pytest.raises(InputError, match="missing"):
        open_model(tmp_path / "bad")


def test_ensemble_streams_through_photopop_predict(tmp_path):
    """`photopop predict` loads an ensemble folder and writes its <target>_sigma columns."""
    from photopop.inference import load_model, predict_catalog
    from photopop.inference.fingerprints import saved_model_hash

    (m0, x), (m1, _) = _member(0), _member(1)
    ens = SEDEnsemble([m0, m1])
    ens.save(tmp_path / "ens")
    df = pd.DataFrame(x, columns=[f"mag_{b}" for b in BANDS])
    df.insert(0, "obj", np.arange(len(df)))
    df.to_parquet(tmp_path / "cat.parquet")
    model = load_model(tmp_path / "ens", device="cpu")
    predict_catalog(model, [tmp_path / "cat.parquet"], tmp_path / "out", chunk_rows=64, id_columns=["obj"])
    out = pd.read_parquet(tmp_path / "out").sort_values("obj")
    expected = ens.predict(df, filter_system="sdss")
    # chunks of 64 rows vs one batch: float32 paths may differ. The bound is 2e-6-8e-6 of sigma (rows differ by
    # 2-5%); measured: 0 for 64-row batches, 2e-8 for 1-row batches
    tol = _sigma_atol(ens, x)[:, 1]
    assert np.all(np.abs(out["zh_sigma"].to_numpy() - expected["zh_sigma"].to_numpy()) <= tol)
    h0 = saved_model_hash(ens)
    ens.set_sigma_scale({"log_age": 2.0, "zh": 2.0})
    assert saved_model_hash(ens) != h0  # a recalibrated ensemble is another model for resume purposes
