"""ImageRegressor: head layout, pretrained-weight handling (offline), normalisation, model folders."""

import json
import warnings

import numpy as np
import pytest
import torch

from photopop.errors import InputError, MismatchError
from photopop.models.image_regressor import ImageModelConfig, ImageRegressor
from photopop.models.image_source import as_image_source, fit_input_normalisation
from photopop.models.pretrained import load_pretrained_state

CFG = ImageModelConfig(arch="resnet18", pretrained="none")


@pytest.fixture(autouse=True)
def empty_hub(tmp_path, monkeypatch):
    """Point the torch hub cache at an empty folder: nothing cached, and downloads are off in tests."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def _images(n=6, s=8, seed=0):
    return np.random.default_rng(seed).gamma(2.0, 1.0, size=(n, 3, s, s)).astype(np.float32)


def test_head_is_fastai_layout_and_outputs_targets():
    m = ImageRegressor(["g", "r", "i"], 16, ["oh", "log_mstar"], CFG)
    kinds = [type(layer).__name__ for layer in m.head]
    assert kinds == ["AdaptiveConcatPool2d", "BatchNorm1d", "Dropout", "Linear", "ReLU", "BatchNorm1d", "Dropout",
                     "Linear"]
    assert m.head[2].p == 0.25 and m.head[6].p == 0.5
    assert m.head[3].in_features == 2 * 512 and m.head[3].out_features == 512 and m.head[7].out_features == 2
    m.eval()
    assert m(torch.randn(3, 3, 16, 16)).shape == (3, 2)
    assert m.pretrained_source == "random"


def test_resnet50_head_width_and_other_band_counts():
    m = ImageRegressor(["u", "g", "r", "i", "z"], 8, ["oh"], ImageModelConfig(arch="resnet50", pretrained="none"))
    assert m.head[1].num_features == 2 * 2048
    assert m.body.conv1.in_channels == 5


def test_auto_without_weights_warns_and_falls_back_offline():
    cfg = ImageModelConfig(arch="resnet18", pretrained="auto", download=False)
    with pytest.warns(RuntimeWarning, match="RANDOM initialisation"):
        m = ImageRegressor(["g", "r", "i"], 8, ["oh"], cfg)
    assert m.pretrained_source.startswith("random")
    with pytest.raises(InputError, match="ImageNet weights"):
        ImageRegressor(["g", "r", "i"], 8, ["oh"], ImageModelConfig(arch="resnet18", pretrained="imagenet",
                                                                    download=False))
    with pytest.raises(InputError, match="not found"):
        load_pretrained_state("resnet18", "/nonexistent/weights.pth")


def test_weights_file_is_loaded_with_blue_to_red_channel_mapping(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(1)
    ref = resnet18(weights=None)
    path = tmp_path / "w.pth"
    torch.save(ref.state_dict(), path)
    m = ImageRegressor(["g", "r", "i"], 8, ["oh"], ImageModelConfig(arch="resnet18", pretrained=str(path)))
    assert m.pretrained_source == "file:w.pth"
    w_ref = ref.conv1.weight.detach()
    # band 0 (g, bluest) gets the B filter (ImageNet channel 2), band 2 (i) the R filter
    assert torch.equal(m.body.conv1.weight[:, 0], w_ref[:, 2])
    assert torch.equal(m.body.conv1.weight[:, 2], w_ref[:, 0])
    assert torch.equal(m.body.layer3[0].conv1.weight, ref.layer3[0].conv1.weight)
    # a cached torchvision file is used by 'imagenet' without any download
    m5 = ImageRegressor(list("ugriz"), 8, ["oh"], ImageModelConfig(arch="resnet18", pretrained=str(path)))
    assert torch.allclose(m5.body.conv1.weight[:, 1], w_ref.mean(1) * 3 / 5)


def test_imagenet_reads_hub_cache(tmp_path):
    from torchvision.models import resnet18

    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save(resnet18(weights=None).state_dict(), ckpt / "resnet18-f37072fd.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = ImageRegressor(["g", "r", "i"], 8, ["oh"], ImageModelConfig(arch="resnet18", pretrained="imagenet",
                                                                        download=False))
    assert m.pretrained_source == "imagenet:resnet18-f37072fd.pth"


def test_freeze_and_unfreeze_layer_groups():
    m = ImageRegressor(["g", "r", "i"], 8, ["oh"], CFG)
    groups = m.layer_groups()
    assert groups[0][0] is m.body.conv1 and groups[0][-1] is m.body.layer2
    assert groups[1] == [m.body.layer3, m.body.layer4] and groups[2] == [m.head]
    n_total = sum(p.numel() for p in m.parameters())
    assert sum(len(g) for g in m.group_parameters()) == len(list(m.parameters()))
    m.freeze_body(train_bn=True)
    assert not m.body.conv1.weight.requires_grad and not m.body.layer4[1].conv2.weight.requires_grad
    assert m.body.bn1.weight.requires_grad and m.body.layer3[0].bn1.bias.requires_grad
    assert all(p.requires_grad for p in m.head.parameters())
    m.freeze_body(train_bn=False)
    assert not m.body.bn1.weight.requires_grad
    m.unfreeze()
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) == n_total


def test_input_normalisation_uses_training_rows_only():
    x = _images(10, 4)
    x[7:] += 100.0  # not training rows
    src = as_image_source(x)
    soft, mean, std = fit_input_normalisation(src, np.array([4, 0, 2, 1]), chunk=3)
    tr = x[[0, 1, 2, 4]].astype(np.float64)
    assert np.allclose(mean, tr.mean(axis=(0, 2, 3)), rtol=1e-10)
    assert np.allclose(std, tr.std(axis=(0, 2, 3)), rtol=1e-8)
    assert np.all(soft == 1)
    soft, mean, std = fit_input_normalisation(src, np.arange(6), transform="asinh", softening_factor=2.0)
    pix = x[:6].transpose(1, 0, 2, 3).reshape(3, -1).astype(np.float64)
    nm = 1.4826 * np.median(np.abs(pix - np.median(pix, axis=1, keepdims=True)), axis=1)
    assert np.allclose(soft, 2.0 * nm)
    t = np.arcsinh(x[:6] / soft[None, :, None, None])
    assert np.allclose(mean, t.mean(axis=(0, 2, 3)))
    soft, mean, std = fit_input_normalisation(src, np.arange(6), transform="asinh", softening=[0.5, 1.0, 2.0])
    assert np.array_equal(soft, [0.5, 1.0, 2.0])
    assert np.allclose(mean, np.arcsinh(x[:6] / soft[None, :, None, None]).mean(axis=(0, 2, 3)))
    with pytest.raises(InputError, match="softening"):
        fit_input_normalisation(src, np.arange(6), transform="asinh", softening=[1.0, 1.0])
    bad = x.copy()
    bad[1, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fit_input_normalisation(as_image_source(bad), np.arange(3))


def test_transform_inputs_standardises():
    m = ImageRegressor(["g", "r", "i"], 4, ["oh"], ImageModelConfig(arch="resnet18", pretrained="none",
                                                                    input_transform="linear"))
    m.set_normalisation([1.0, 2.0, 3.0], [2.0, 2.0, 4.0], [8.9], [0.2])
    x = torch.full((1, 3, 4, 4), 5.0)
    z = m.transform_inputs(x)
    assert torch.allclose(z[0, :, 0, 0], torch.tensor([2.0, 1.5, 0.5]))
    a = ImageRegressor(["g", "r", "i"], 4, ["oh"], CFG)  # asinh by default
    a.set_normalisation([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0], [1.0], in_soft=[2.0, 2.0, 2.0])
    assert torch.allclose(a.transform_inputs(x)[0, :, 0, 0], torch.full((3,), float(np.arcsinh(2.5))))
    assert torch.allclose(m.to_physical(torch.tensor([[1.0]])), torch.tensor([[9.1]]))
    with pytest.raises(InputError):
        m.set_normalisation([0, 0, 0], [1, 0, 1], [0], [1])


def test_save_load_roundtrip_and_mismatch_refusal(tmp_path):
    torch.manual_seed(0)
    m = ImageRegressor(["g", "r", "i"], 8, ["oh"], CFG)
    m.set_normalisation([1, 2, 3], [1, 1, 2], [8.8], [0.25])
    x = _images(5, 8)
    before = m.predict(x, tta=True)
    path = m.save(tmp_path / "model", extra_config={"train": {"epochs": 3}})
    assert sorted(p.name for p in path.iterdir()) == [".photopop.json", "SHA256SUMS", "config.toml", "meta.json",
                                                      "model.pt", "normalisation.json"]  # marker: photopop.outputs
    meta = json.loads((path / "meta.json").read_text())
    assert meta["bands"] == ["g", "r", "i"] and meta["image_size"] == 8 and meta["targets"] == ["oh"]
    assert meta["photopop_version"] and meta["pixel_kind"] == "flux"
    norm = json.loads((path / "normalisation.json").read_text())
    assert norm["target"]["mean"] == [pytest.approx(8.8)]
    m2 = ImageRegressor.load(path)
    assert np.allclose(m2.predict(x, tta=True), before, atol=1e-6)
    assert m2.extra_config == {"train": {"epochs": 3}}
    # bands given in another order are reordered, not refused
    assert np.allclose(m2.predict(x[:, ::-1].copy(), bands=["i", "r", "g"]), before, atol=1e-5)
    with pytest.raises(MismatchError, match="16x16"):
        m2.predict(_images(2, 16))
    with pytest.raises(MismatchError, match="bands"):
        m2.predict(x, bands=["u", "g", "r"])
    with pytest.raises(MismatchError):
        m2.predict(np.zeros((2, 5, 8, 8), np.float32))
    rgb = as_image_source(x)
    rgb.pixel_kind = "rgb8"
    with pytest.raises(MismatchError, match="rgb8"):
        m2.predict(rgb)
    (path / "meta.json").unlink()
    with pytest.raises(InputError, match="missing"):
        ImageRegressor.load(path)


def test_image_sources_from_image_set_rgb_rebinned_and_in_memory(tmp_path):
    import pandas as pd

    from photopop.datasets.image_set import write_image_set

    x = _images(5, 8)
    rgb = np.random.default_rng(2).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)  # channels (i, r, g)
    s = write_image_set(tmp_path / "set", pd.DataFrame({"id": np.arange(5)}), images=x, rgb=rgb)
    src = as_image_source(s)
    assert src.bands == ("g", "r", "i") and src.pixel_kind == "flux" and src.shape == (5, 3, 8, 8)
    assert np.array_equal(src.take([3, 1, 3]), x[[3, 1, 3]])
    col = as_image_source(s, use="rgb")
    assert col.pixel_kind == "rgb8" and col.bands == ("g", "r", "i")
    got = col.take([2])
    assert np.allclose(got[0, 0], rgb[2, :, :, 2] / 255.0) and np.allclose(got[0, 2], rgb[2, :, :, 0] / 255.0)
    small = src.rebinned(2)
    assert small.shape == (5, 3, 2, 2)
    assert np.allclose(small.take([4])[0, 1, 0, 1], x[4, 1, :4, 4:].mean(), rtol=1e-6)
    mem = small.in_memory()
    assert np.array_equal(mem.take([0, 4]), small.take([0, 4]))
    assert src.in_memory(max_bytes=10) is src
    with pytest.raises(InputError):
        src.rebinned(3)
    with pytest.raises(InputError, match="out of range"):
        src.take([5])


def test_predict_tta_of_d4_symmetric_images_equals_plain_prediction():
    from photopop.models.augment import N_D4, d4_transform

    torch.manual_seed(0)
    m = ImageRegressor(["g", "r", "i"], 8, ["oh", "log_mstar"], CFG)
    m.set_normalisation([1, 1, 1], [1, 1, 1], [8.9, 10.0], [0.2, 0.5], in_soft=[0.5, 0.5, 0.5])
    d = np.abs(2 * np.arange(8) - 7) // 2  # a pixel's value depends only on its D4 orbit: exactly symmetric
    sym = np.ascontiguousarray(_images(3, 8)[:, :, np.minimum.outer(d, d), np.maximum.outer(d, d)])
    assert all(torch.equal(d4_transform(torch.from_numpy(sym), k), torch.from_numpy(sym)) for k in range(N_D4))
    # the same image 8 times in one batch vs once: float32 ResNet paths differ only in batch size. Measured
    # difference 0 (OMP 1/2, ATEN_CPU_CAPABILITY default/avx2, oneDNN SSE41/AVX2) against the allowed ~1e-4
    # (atol 1e-5 + rtol 1e-5 x 8.9); TTA of non-symmetric images differs by 4e-4-2.7e-3 (next assertion).
    assert np.allclose(m.predict(sym, tta=True), m.predict(sym, tta=False), atol=1e-5)
    x = _images(3, 8)
    assert not np.allclose(m.predict(x, tta=True), m.predict(x, tta=False), atol=1e-5)
