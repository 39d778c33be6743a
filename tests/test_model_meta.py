"""The model-folder abstraction: `ModelMeta` round trips, folders in the on-disk format photopop has written
so far still open (through the one kind registry), and a wrong-typed meta.json entry is an InputError
naming the folder and the key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from photopop.errors import InputError
from photopop.io import dumps_json
from photopop.models.ensemble import SEDEnsemble
from photopop.models.meta import ModelMeta, model_kind
from photopop.models.normalise import Standardiser
from photopop.models.registry import MODEL_KINDS, model_class, open_model, register_model_kind
from photopop.models.saved import SavedSEDModel
from photopop.models.sed_cnn import SEDCNN, SEDCNNConfig

from conftest import float32_forward_bound

BANDS = ["g", "r", "i", "z"]
SMALL = SEDCNNConfig(conv_filters=(2,), kernel_sizes=(3,), pool_size=1, dense_units=(4,))

#: meta.json of a single SED network as `SEDRegressor.fit` writes it (keys in its order)
SED_META = {"bands": BANDS, "filter_system": "sdss", "targets": ["log_age", "zh"], "input_kind": "mag",
            "ref_band": None, "nan_policy": "refuse", "loss": "mse", "photopop_version": "0.9.0",
            "mag_range": [-10.0, 40.0], "train_table_hash": "ab" * 32, "n_fit_rows": 80, "n_val_rows": 20,
            "best_epoch": 3, "best_val_loss": 0.25, "epochs_run": 5, "stopped_early": False}
ENSEMBLE_META = {"kind": "sed-ensemble", "bands": BANDS, "filter_system": "sdss", "targets": ["log_age", "zh"],
                 "input_kind": "mag", "nan_policy": "refuse", "member_losses": ["mse", "mse"], "n_members": 2,
                 "sigma_scale": {"log_age": 1.5, "zh": 0.8}, "photopop_version": "0.9.0"}
POSTERIOR_META = {"kind": "sed-posterior", "bands": BANDS, "filter_system": None, "targets": ["log_age", "zh"],
                  "input_kind": "mag", "nan_policy": "refuse", "use_magerr": True, "extra_columns": [],
                  "ood_threshold": 7.5, "ood_quantile": 0.99, "n_samples": 200, "loss": "flow_nll",
                  "photopop_version": "0.9.0", "train_table_hash": "cd" * 32}
IMAGE_META = {"bands": ["g", "r", "i"], "image_size": 8, "targets": ["oh"], "input_kind": "image",
              "pixel_kind": "flux", "pretrained_source": "", "loss": "rmse", "photopop_version": "0.9.0"}


# -- ModelMeta on its own -------------------------------------------------------------------------------------
@pytest.mark.parametrize("d, kind", [(SED_META, "sed"), (ENSEMBLE_META, "sed-ensemble"),
                                     (POSTERIOR_META, "sed-posterior"), (IMAGE_META, "image")])
def test_round_trip_keeps_keys_order_and_values(d, kind):
    meta = ModelMeta.from_dict(json.loads(json.dumps(d)), "m/meta.json")
    assert meta.model_kind == model_kind(d) == kind
    assert list(meta.to_dict()) == list(d) and meta.to_dict() == d
    assert dumps_json(meta.to_dict()) == dumps_json(d)  # the same meta.json bytes
    assert ModelMeta.from_dict(meta.to_dict()).to_dict() == d
    # typed fields read the shared keys; everything else is an extra
    assert meta.bands == d["bands"] and meta.targets == d["targets"] and meta.input_kind == d["input_kind"]
    assert meta.data_hash == d.get("train_table_hash") and meta.kind == d.get("kind")
    assert set(meta.extras) == set(d) - {"kind", "bands", "filter_system", "targets", "input_kind", "nan_policy",
                                         "loss", "sigma_scale", "photopop_version", "train_table_hash"}


def test_mapping_view_follows_dict_semantics():
    meta = ModelMeta.from_dict(dict(SED_META))
    plain = dict(SED_META)
    for m in (meta, plain):
        m["sigma_scale"] = {"log_age": 2.0}  # a typed key set later goes last, as in a dict
        m.setdefault("loss", "gaussian_nll")  # present: kept
        m.pop("ref_band")
        m["note"] = "x"
    assert list(meta) == list(plain) and meta.to_dict() == plain and meta == plain
    assert meta.sigma_scale == {"log_age": 2.0} and meta.loss == "mse" and "ref_band" not in meta
    meta.filter_system = None  # attribute writes are the key's value (null is kept, as a dict keeps None)
    assert meta.to_dict()["filter_system"] is None and "filter_system" in meta
    bare = ModelMeta(bands=["a"], targets=["t"], input_kind="mag")
    bare.loss = "mse"  # setting a typed attribute adds its key
    assert bare.to_dict() == {"bands": ["a"], "targets": ["t"], "input_kind": "mag", "loss": "mse"}
    copy = meta.copy()
    copy["extra"] = 1
    assert "extra" not in meta
    with pytest.raises(KeyError):
        meta["absent"]


_names = st.lists(st.text("abcxyz", min_size=1, max_size=3), min_size=1, max_size=5, unique=True)
_extra_keys = st.text("qrstuvw_", min_size=1, max_size=6).filter(lambda k: k not in SED_META)


@settings(max_examples=25, deadline=None)
@given(bands=_names, targets=_names, system=st.none() | st.text("jpas", min_size=1, max_size=4),
       nan=st.sampled_from(["refuse", "mask"]), drop=st.sets(st.sampled_from(["loss", "photopop_version",
                                                                                "train_table_hash"])),
       extras=st.dictionaries(_extra_keys, st.none() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
                              max_size=4), seed=st.integers(0, 10_000))
def test_any_valid_meta_round_trips(bands, targets, system, nan, drop, extras, seed):
    d = {"bands": bands, "filter_system": system, "targets": targets, "input_kind": "mag", "nan_policy": nan,
         "loss": "mse", "photopop_version": "1", "train_table_hash": "0" * 64, **extras}
    for k in drop:
        d.pop(k)
    keys = list(d)
    np.random.default_rng(seed).shuffle(keys)  # any key order is kept
    d = {k: d[k] for k in keys}
    meta = ModelMeta.from_dict(d)
    assert list(meta.to_dict()) == keys and meta.to_dict() == d


@pytest.mark.parametrize("key, value", [
    ("bands", "g,r,i"), ("bands", []), ("bands", ["g", "g"]), ("targets", [1, 2]), ("targets", None),
    ("input_kind", "magnitudes"), ("filter_system", 3), ("nan_policy", "drop"), ("loss", ["mse"]),
    ("kind", 7), ("sigma_scale", {"zh": "big"}), ("sigma_scale", [1.0]), ("mag_range", [10]),
    ("mag_range", [True, 30.0]), ("ref_band", "y"), ("photopop_version", 1.0), ("train_table_hash", 12),
])
def test_wrong_typed_field_names_the_key(key, value):
    d = {**SED_META, key: value}
    with pytest.raises(InputError, match=rf"^runs/m/meta\.json: .*'?{key}'?"):
        ModelMeta.from_dict(d, "runs/m/meta.json")


@pytest.mark.parametrize("d, key, value", [(ENSEMBLE_META, "n_members", "2"), (ENSEMBLE_META, "bands", "g"),
                                           (IMAGE_META, "image_size", 8.5), (POSTERIOR_META, "targets", {})])
def test_kind_specific_checks(d, key, value):
    with pytest.raises(InputError, match=f"'{key}'"):
        ModelMeta.from_dict({**d, key: value}, "m/meta.json")


def test_ensemble_meta_may_leave_bands_to_its_members():
    d = {"kind": "sed-ensemble", "n_members": 2}
    assert ModelMeta.from_dict(d).to_dict() == d
    with pytest.raises(InputError, match="'bands' must be a non-empty list"):
        ModelMeta.from_dict({"targets": ["zh"], "input_kind": "mag"})  # a single network needs them


def test_require_kind():
    meta = ModelMeta.from_dict(POSTERIOR_META)
    meta.require_kind("sed-posterior")
    with pytest.raises(InputError, match=r"m/meta.json: kind is 'sed-posterior', not 'sed'"):
        meta.require_kind("sed", "m/meta.json")
    with pytest.raises(InputError, match="kind is 'sed', not 'sed-ensemble'"):
        ModelMeta.from_dict(SED_META, kind="sed-ensemble")


# -- folders in the format photopop has written so far ----------------------------------------------------------
def _write_folder_by_hand(folder: Path, net: SEDCNN, in_norm: Standardiser, tg_norm: Standardiser,
                          meta: dict, checksums: bool) -> None:
    """A single-network folder written file by file, without photopop's writer: the format every earlier
    release wrote (SHA256SUMS optional: folders from before checksums lack it)."""
    import hashlib

    import tomli_w

    folder.mkdir(parents=True)
    torch.save(net.state_dict(), folder / "model.pt")
    arch = {"conv_filters": [2], "kernel_sizes": [3], "pool_size": 1, "dense_units": [4]}
    (folder / "config.toml").write_text(tomli_w.dumps({"architecture": arch, "n_inputs": net.n_inputs,
                                                       "n_outputs": net.n_outputs,
                                                       "train": {"max_epochs": 5, "seed": 0}}))
    (folder / "normalisation.json").write_text(json.dumps({"input": in_norm.to_dict(),
                                                           "target": tg_norm.to_dict()}, indent=2) + "\n")
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    if checksums:
        lines = [f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}"
                 for n in sorted(p.name for p in folder.iterdir())]
        (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def _network(seed: int) -> tuple[SEDCNN, Standardiser, Standardiser]:
    torch.manual_seed(seed)
    net = SEDCNN(len(BANDS), 2, SMALL).eval()
    x = np.random.default_rng(seed).normal(20, 1, (50, len(BANDS)))
    return net, Standardiser.fit(x, BANDS), Standardiser(["log_age", "zh"], np.array([9.5, -0.3]), np.array([0.5, 0.3]))


def _expected(net: SEDCNN, in_norm: Standardiser, tg_norm: Standardiser, mags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The network applied by hand: standardise, forward in float32, undo the target standardisation;
    with the float32 bound on the difference of two evaluations (conftest.float32_forward_bound)."""
    x = in_norm.transform(mags)
    with torch.no_grad():
        z = net(torch.from_numpy(x.astype(np.float32))).double().numpy()
    return tg_norm.inverse(z), 2 * float32_forward_bound(net, x) * tg_norm.scale


@pytest.mark.parametrize("checksums", [True, False])
def test_folder_written_before_opens_and_rewrites_the_same_meta(tmp_path, checksums):
    net, in_norm, tg_norm = _network(0)
    old = tmp_path / "old"
    _write_folder_by_hand(old, net, in_norm, tg_norm, SED_META, checksums)
    model = open_model(old)
    assert isinstance(model, SavedSEDModel) and isinstance(model.meta, ModelMeta)
    assert model.meta.to_dict() == SED_META and model.extra_config == {"train": {"max_epochs": 5, "seed": 0}}
    mags = np.random.default_rng(5).normal(20, 1, (7, len(BANDS)))
    want, tol = _expected(net, in_norm, tg_norm, mags)
    got = model.predict(pd.DataFrame(mags, columns=[f"mag_{b}" for b in BANDS]))
    assert list(got.columns) == ["log_age", "zh"]
    assert np.all(np.abs(got.to_numpy() - want) <= tol)
    model.save(tmp_path / "new")  # the one writer keeps every key, in order
    assert json.loads((tmp_path / "new" / "meta.json").read_text()) == SED_META
    assert list(json.loads((tmp_path / "new" / "meta.json").read_text())) == list(SED_META)
    assert open_model(tmp_path / "new").predict(mags, bands=BANDS).equals(model.predict(mags, bands=BANDS))


def test_ensemble_folder_written_before_opens(tmp_path):
    old = tmp_path / "ens"
    nets = [_network(s) for s in (0, 1)]
    for k, (net, in_norm, tg_norm) in enumerate(nets):
        _write_folder_by_hand(old / "members" / str(k), net, in_norm, tg_norm, SED_META, checksums=False)
    (old / "meta.json").write_text(json.dumps(ENSEMBLE_META, indent=2) + "\n")
    ens = open_model(old)
    assert isinstance(ens, SEDEnsemble) and ens.meta.to_dict() == ENSEMBLE_META
    np.testing.assert_array_equal(ens.sigma_scale, [1.5, 0.8])
    mags = np.random.default_rng(6).normal(20, 1, (6, len(BANDS)))
    (m0, t0), (m1, t1) = (_expected(*n, mags) for n in nets)
    mu, sigma = ens.predict_with_sigma(mags)
    assert np.all(np.abs(mu - (m0 + m1) / 2) <= (t0 + t1) / 2)
    # two plain members: sigma = |m0 - m1| / 2 (the spread), times the stored factors
    assert np.all(np.abs(sigma - np.abs(m0 - m1) / 2 * [1.5, 0.8]) <= (t0 + t1) / 2 * np.array([1.5, 0.8]))
    ens.save(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "meta.json").read_text()) == ENSEMBLE_META


def test_posterior_folder_round_trips_through_the_registry(tmp_path):
    from photopop.models.posterior import PosteriorNet
    from photopop.models.posterior_model import SavedPosterior

    torch.manual_seed(0)
    nb = len(BANDS)
    net = PosteriorNet(nb, 2, nb, 0).eval()
    rng = np.random.default_rng(0)
    mags = rng.normal(20, 1, (40, nb))
    err = np.full_like(mags, 0.05)
    norms = {"input": Standardiser.fit(mags, BANDS),
             "target": Standardiser(["log_age", "zh"], np.array([9.5, -0.2]), np.array([0.4, 0.3])),
             "magerr": Standardiser(["e"] * nb, np.full(nb, -1.3), np.ones(nb)), "extra": None}
    width = 2 * nb + 32
    model = SavedPosterior(net, norms, {"mean": np.zeros(width), "precision": np.eye(width)}, POSTERIOR_META)
    model.save(tmp_path / "post")
    back = open_model(tmp_path / "post")
    assert isinstance(back, SavedPosterior) and back.meta.to_dict() == POSTERIOR_META
    df = pd.DataFrame({**{f"mag_{b}": mags[:5, j] for j, b in enumerate(BANDS)},
                       **{f"magerr_{b}": err[:5, j] for j, b in enumerate(BANDS)}})
    pd.testing.assert_frame_equal(back.predict(df, n_samples=50, seed=3), model.predict(df, n_samples=50, seed=3))
    with pytest.raises(InputError, match="kind is 'sed-posterior', not 'sed'"):
        SavedSEDModel.load(tmp_path / "post")


def test_image_model_opens_through_the_registry(tmp_path):
    from photopop.models.image_regressor import ImageModelConfig

    cls = model_class("image")
    model = cls(["g", "r", "i"], 8, ["oh"], ImageModelConfig(arch="resnet18", pretrained="none"))
    model.save(tmp_path / "img")
    back = open_model(tmp_path / "img")
    assert isinstance(back, cls) and back.targets == ["oh"] and back.bands == ["g", "r", "i"]
    meta = json.loads((tmp_path / "img" / "meta.json").read_text())
    assert ModelMeta.from_dict(meta).to_dict() == meta and model_kind(meta) == "image"


def test_bad_meta_in_a_folder_names_the_folder_and_key(tmp_path):
    net, in_norm, tg_norm = _network(0)
    _write_folder_by_hand(tmp_path / "m", net, in_norm, tg_norm, {**SED_META, "targets": "log_age"}, checksums=False)
    with pytest.raises(InputError, match=r"m/meta\.json: 'targets' must be a non-empty list"):
        open_model(tmp_path / "m")
    shutil.rmtree(tmp_path / "m")
    _write_folder_by_hand(tmp_path / "m", net, in_norm, tg_norm, {**SED_META, "sigma_scale": {"zh": True}},
                          checksums=True)
    with pytest.raises(InputError, match=r"m/meta\.json: 'sigma_scale' must map targets to numbers"):
        SavedSEDModel.load(tmp_path / "m")
    with pytest.raises(InputError, match="'nan_policy'|nan_policy"):
        SavedSEDModel(net, in_norm, tg_norm, {**SED_META, "nan_policy": "zero"})  # checked in memory too


def test_registry_kinds(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "meta.json").write_text('{"kind": "nobody-knows"}')
    with pytest.raises(InputError, match=r"unknown model kind 'nobody-knows'; known: \[.*'image'.*'sed'"):
        open_model(tmp_path / "x")
    with pytest.raises(InputError, match="no such model folder"):
        open_model(tmp_path / "absent")

    class Toy:
        @classmethod
        def load(cls, path):
            return ("toy", Path(path).name)

    register_model_kind("nobody-knows", Toy)
    try:
        assert open_model(tmp_path / "x") == ("toy", "x")
    finally:
        MODEL_KINDS.pop("nobody-knows")
