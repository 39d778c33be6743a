"""SEDCNN architecture and input features/normalisation."""

import numpy as np
import pytest
import torch

from photopop.errors import InputError
from photopop.models.normalise import Standardiser, feature_names, make_features, resolve_ref_band
from photopop.models.sed_cnn import SEDCNN, SEDCNNConfig
from photopop.training.fit import build_network


def test_default_shape_and_parameter_count():
    net = SEDCNN(36, 1)
    out = net(torch.zeros(5, 36))
    assert out.shape == (5, 1)
    # conv1: 1*4*8+4, conv2: 4*16*8+16, pooled 16*9=144 -> 256 -> 128 -> 1
    expected = (1 * 4 * 8 + 4) + (4 * 16 * 8 + 16) + (144 * 256 + 256) + (256 * 128 + 128) + (128 + 1)
    assert net.n_parameters() == expected


def test_same_padding_keeps_length_and_pool_ceil():
    net = SEDCNN(54, 2, SEDCNNConfig(conv_filters=(3, 5), kernel_sizes=(8, 5), pool_size=4))
    feats = net.features(torch.zeros(2, 1, 54))
    assert feats.shape == (2, 5, 14)  # ceil(54 / 4)
    assert net(torch.zeros(2, 54)).shape == (2, 2)
    # fewer bands than the pool window still works (5 SDSS bands)
    assert SEDCNN(5, 1, SEDCNNConfig(pool_size=8))(torch.zeros(3, 5)).shape == (3, 1)


def test_same_padding_is_keras_like():
    # kernel 2 with weights [0, 1] and 'same' padding (extra zero on the right) returns the next value
    net = SEDCNN(4, 1, SEDCNNConfig(conv_filters=(1,), kernel_sizes=(2,), pool_size=1, dense_units=(1,)))
    conv = net.features[1]
    with torch.no_grad():
        conv.weight[:] = torch.tensor([[[0.0, 1.0]]])
        conv.bias.zero_()
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    out = net.features[1](net.features[0](x.unsqueeze(1)))
    assert torch.equal(out[0, 0], torch.tensor([2.0, 3.0, 4.0, 0.0]))


def test_config_validation():
    with pytest.raises(InputError, match="equal length"):
        SEDCNN(10, 1, SEDCNNConfig(conv_filters=(4, 16), kernel_sizes=(8,)))
    with pytest.raises(InputError, match="activation"):
        SEDCNN(10, 1, SEDCNNConfig(activation="sigmoidish"))
    with pytest.raises(InputError, match="dropout"):
        SEDCNN(10, 1, SEDCNNConfig(dropout=1.0))


def test_dropout_and_activation_layers_present():
    net = SEDCNN(12, 1, SEDCNNConfig(dropout=0.3, activation="elu"))
    kinds = [type(m).__name__ for m in net.modules()]
    assert kinds.count("Dropout") == 2 and "ELU" in kinds and "ReLU" not in kinds


def test_seeded_initialisation_and_caller_rng_untouched():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = build_network(12, 1, SEDCNNConfig(), seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    b = build_network(12, 1, SEDCNNConfig(), seed=7)
    c = build_network(12, 1, SEDCNNConfig(), seed=8)
    for (ka, va), (_, vb), (_, vc) in zip(a.state_dict().items(), b.state_dict().items(), c.state_dict().items()):
        assert torch.equal(va, vb), ka
    assert not all(torch.equal(va, vc) for va, vc in zip(a.state_dict().values(), c.state_dict().values()))


def test_features_kinds():
    bands = ["u", "g", "r", "i"]
    m = np.array([[20.0, 19.0, 18.5, 18.0], [22.0, 21.0, 20.5, 20.0]])
    assert np.array_equal(make_features(m, bands, "mag"), m)
    col = make_features(m, bands, "colour", "r")
    assert feature_names(bands, "colour", "r") == ["u-r", "g-r", "i-r"]
    assert np.allclose(col, [[1.5, 0.5, -0.5], [1.5, 0.5, -0.5]])
    flux = make_features(m, bands, "flux")
    # brightness-free: both rows differ by 2 mag overall -> same normalised fluxes
    assert np.allclose(flux[0], flux[1])
    assert np.allclose(flux[0, 0] / flux[0, 1], 10 ** (-0.4 * 1.0))
    assert resolve_ref_band(bands, None) == "r"
    with pytest.raises(InputError, match="reference band"):
        make_features(m, bands, "colour", "z")
    with pytest.raises(InputError, match="input kind"):
        make_features(m, bands, "counts")


def test_standardiser_roundtrip_and_constant_column():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(100, 3))
    x[:, 2] = 5.0
    s = Standardiser.fit(x, ["a", "b", "c"])
    z = s.transform(x)
    assert np.allclose(z[:, :2].mean(0), 0) and np.allclose(z[:, :2].std(0), 1)
    assert s.scale[2] == 1.0 and np.allclose(z[:, 2], 0)
    assert np.allclose(s.inverse(z), x)
    s2 = Standardiser.from_dict(s.to_dict())
    assert np.array_equal(s2.mean, s.mean) and np.array_equal(s2.scale, s.scale)
    with pytest.raises(InputError, match="non-finite"):
        Standardiser.fit(np.array([[1.0], [np.nan]]), ["a"])
