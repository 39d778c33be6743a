"""Uncertainties of the image model: Gaussian-NLL head, TTA mixture, seed ensembles, folders."""

import json

import numpy as np
import pytest
import torch

from photopop.errors import InputError, MismatchError
from photopop.evaluation.calibration import coverage, fit_sigma_scale
from photopop.models.augment import N_D4, d4_transform
from photopop.models.image_ensemble import image_ensemble_predict
from photopop.models.image_regressor import ImageModelConfig, ImageRegressor, mixture_moments
from photopop.models.sed_cnn import LOGVAR_MAX
from photopop.training.image_fit import ImageFitConfig, fit_image_regressor

BANDS = ["g", "r", "i"]
MODEL = ImageModelConfig(arch="resnet18", pretrained="none", input_transform="linear")


def _toy(n=48, s=8, seed=0):
    """Images whose brightness encodes two targets."""
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0, 1.0, (n, 2)) * [0.2, 0.5] + [8.9, 10.0]
    img = rng.normal(0, 0.05, (n, 3, s, s)) + (y[:, :1, None, None] - 8.9) + 0.1 * (y[:, 1:, None, None] - 10)
    return img.astype(np.float32), y


def _model(loss, seed, targets=("oh", "mass")):
    torch.manual_seed(seed)
    m = ImageRegressor(BANDS, 8, list(targets), MODEL, loss=loss)
    rng = np.random.default_rng(seed)
    m.set_normalisation(rng.normal(0, 0.1, 3), [1.0, 1.2, 0.8], [8.9, 10.0][:len(targets)],
                        [0.2, 0.5][:len(targets)])
    with torch.no_grad():  # non-trivial running statistics so eval mode is not the identity
        m.train()
        m(torch.randn(16, 3, 8, 8))
    return m.eval()


def test_nll_training_gives_finite_positive_sigmas():
    x, y = _toy()
    cfg = ImageFitConfig(epochs=2, freeze_epochs=1, loss="gaussian_nll", batch_size=16, lr_frozen=1e-2,
                         lrs=(1e-4, 1e-3, 1e-2), num_threads=1, seed=3)
    res = fit_image_regressor(x, y, np.arange(32), np.arange(32, 48), ["oh", "mass"], BANDS, MODEL, cfg)
    m = res.model
    assert m.heteroscedastic and m.head[-1].out_features == 4 and m.meta()["loss"] == "gaussian_nll"
    assert np.isfinite(res.history["val_loss"]).all()
    mu, sigma = m.predict_with_sigma(x, tta=True)
    assert mu.shape == sigma.shape == (48, 2)
    assert np.all(np.isfinite(sigma)) and np.all(sigma > 0)
    np.testing.assert_allclose(mu, m.predict(x, tta=True), rtol=1e-6, atol=1e-9)  # predict = the means
    # the validation loss is the NLL of the selected epoch
    mu_v, s_v = m.predict_with_sigma(x, tta=False, indices=np.arange(32, 48))
    z_s = s_v / y[:32].std(axis=0)
    nll = np.mean(np.log(z_s) + 0.5 * ((y[32:] - mu_v) / s_v) ** 2)
    assert res.best_val_loss == pytest.approx(nll, rel=1e-4, abs=1e-5)


def test_tta_combines_views_as_a_mixture():
    m = _model("gaussian_nll", 0)
    x = torch.from_numpy(_toy(n=5)[0])
    mu, sigma = m.predict_with_sigma(x.numpy(), tta=True)
    with torch.no_grad():
        z = torch.stack([m(d4_transform(x, k)) for k in range(N_D4)]).double().numpy()  # (8, n, 4)
    std, mean = m.out_std.double().numpy(), m.out_mean.double().numpy()
    mu_v, var_v = z[..., :2] * std + mean, np.exp(z[..., 2:]) * std**2
    np.testing.assert_allclose(mu, mu_v.mean(0), rtol=1e-5, atol=1e-6)
    want = np.sqrt(var_v.mean(0) + mu_v.var(0))
    np.testing.assert_allclose(sigma, want, rtol=1e-4)
    assert np.all(sigma > np.sqrt(var_v.mean(0)))  # the view spread adds to the sigma
    mu1, s1 = m.predict_with_sigma(x.numpy(), tta=False)
    np.testing.assert_allclose(mu1, mu_v[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s1, np.sqrt(var_v[0]), rtol=1e-4)


def test_log_variance_is_clamped():
    m = _model("gaussian_nll", 1)
    with torch.no_grad():
        m.head[-1].weight[2:].zero_()
        m.head[-1].bias[2:] = 50.0  # exp(50) would be absurd
    _, sigma = m.predict_with_sigma(_toy(n=3)[0], tta=False)
    np.testing.assert_allclose(sigma, np.exp(LOGVAR_MAX / 2) * np.array([[0.2, 0.5]] * 3), rtol=1e-6)


def test_mixture_moments_known_answer():
    mu, sigma = mixture_moments([[0.0], [2.0]], [[1.0], [1.0]])
    assert mu[0] == pytest.approx(1.0) and sigma[0] == pytest.approx(np.sqrt(2.0))
    with pytest.raises(InputError):
        mixture_moments([[0.0]], [[1.0], [2.0]])


def test_ensemble_matches_manual_formula():
    x = _toy(n=6)[0]
    members = [_model("gaussian_nll", 10), _model("gaussian_nll", 11), _model("rmse", 12)]
    mu, sigma = image_ensemble_predict(members, x, BANDS, tta=True)
    mus, vars_ = [], []
    for m in members:
        mu_i, s_i = m.predict_with_sigma(x, tta=True, calibrated=False)
        mus.append(mu_i)
        vars_.append(np.zeros_like(mu_i) if s_i is None else s_i**2)
    mus, vars_ = np.array(mus), np.array(vars_)
    np.testing.assert_allclose(mu, (mus[0] + mus[1] + mus[2]) / 3)
    spread = ((mus - mus.mean(0)) ** 2).sum(0) / 3
    np.testing.assert_allclose(sigma, np.sqrt((vars_[0] + vars_[1] + vars_[2]) / 3 + spread))
    _, scaled = image_ensemble_predict(members, x, BANDS, tta=True, sigma_scale=[2.0, 0.5])
    np.testing.assert_allclose(scaled, sigma * [2.0, 0.5])
    with pytest.raises(InputError, match="no sigma"):
        image_ensemble_predict(members[2:], x, BANDS)
    with pytest.raises(MismatchError):
        image_ensemble_predict([members[0], _model("gaussian_nll", 13, targets=("oh",))], x, BANDS)


def test_heteroscedastic_folder_round_trip(tmp_path):
    m = _model("gaussian_nll", 4)
    x, y = _toy(n=20)
    mu, sigma = m.predict_with_sigma(x)
    scale = {t: fit_sigma_scale(y[:, j], mu[:, j], sigma[:, j]) for j, t in enumerate(m.targets)}
    m.set_sigma_scale(scale)
    m.save(tmp_path / "het")
    meta = json.loads((tmp_path / "het" / "meta.json").read_text())
    assert meta["loss"] == "gaussian_nll" and set(meta["sigma_scale"]) == {"oh", "mass"}
    back = ImageRegressor.load(tmp_path / "het")
    assert back.heteroscedastic
    mu2, sigma2 = back.predict_with_sigma(x)
    np.testing.assert_allclose(mu2, mu, rtol=1e-6)
    np.testing.assert_allclose(sigma2, sigma * [scale["oh"], scale["mass"]], rtol=1e-6)
    np.testing.assert_allclose(back.predict_with_sigma(x, calibrated=False)[1], sigma, rtol=1e-6)
    for j in range(2):  # recalibrated on these rows: 68 % coverage by construction
        assert coverage(y[:, j], mu2[:, j], sigma2[:, j]) == pytest.approx(0.7, abs=0.051)


def test_plain_models_unchanged_and_old_folders_load(tmp_path):
    m = _model("rmse", 5)
    assert not m.heteroscedastic and m.head[-1].out_features == 2
    x = _toy(n=4)[0]
    pred = m.predict(x)
    mu, sigma = m.predict_with_sigma(x)
    assert sigma is None and np.array_equal(mu, pred)
    m.save(tmp_path / "old")
    meta_file = tmp_path / "old" / "meta.json"
    meta = json.loads(meta_file.read_text())
    assert meta["loss"] == "rmse"
    del meta["loss"]  # a folder written before losses were recorded
    meta_file.write_text(json.dumps(meta))
    (tmp_path / "old" / "SHA256SUMS").unlink()  # nor checksums
    back = ImageRegressor.load(tmp_path / "old")
    assert back.loss == "rmse"
    np.testing.assert_allclose(back.predict(x), pred, rtol=1e-6)
    with pytest.raises(InputError, match="loss"):
        ImageFitConfig(loss="mse").validate()
    with pytest.raises(InputError, match="loss"):
        ImageRegressor(BANDS, 8, ["oh"], MODEL, loss="l1")
    assert ImageFitConfig().loss == "rmse"
