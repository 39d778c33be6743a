"""Training loop: learning, early stopping, best weights, checkpoints and bit-exact resume."""

import warnings

import numpy as np
import pytest
import torch

from photopop.errors import InputError
from photopop.models.sed_cnn import SEDCNNConfig
from photopop.training.checkpoint import load_checkpoint
from photopop.training.device import resolve_device
from photopop.training.fit import TrainConfig, _evaluate, build_network, train_network

SMALL = SEDCNNConfig(conv_filters=(2, 4), kernel_sizes=(3, 3), pool_size=2, dense_units=(16, 8))


def _data(n=400, nb=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, nb))
    w = np.linspace(-1, 1, nb)
    y = (x @ w)[:, None] / np.sqrt(np.sum(w * w)) + 0.05 * rng.normal(size=(n, 1))
    return x[: n * 3 // 4], y[: n * 3 // 4], x[n * 3 // 4:], y[n * 3 // 4:]


def _weights(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def _equal(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def _cfg(**kw):
    base = dict(max_epochs=20, batch_size=32, seed=3, device="cpu", checkpoint_every=5)
    base.update(kw)
    return TrainConfig(**base)


def test_learns_and_history_layout():
    xt, yt, xv, yv = _data()
    net = build_network(8, 1, SMALL, 0)
    res = train_network(net, xt, yt, xv, yv, _cfg(max_epochs=40), target_names=["a"], target_scale=[2.0], quiet=True)
    h = res.history
    assert list(h.epoch) == list(range(0, res.epochs_run + 1))
    assert {"train_loss", "val_loss", "lr", "train_mse_a", "val_mse_a"} <= set(h.columns)
    # learning: the best validation MSE is a small fraction of the random-label MSE of epoch 0. Measured over
    # 5 data/weight seeds, OMP_NUM_THREADS=1 and =2 and other CPU kernels: 0.024-0.10 (limit 0.2); a net that
    # learns nothing stays at ~0.5 (the MSE of the mean is half the random-label MSE).
    assert h.val_loss.iloc[1:].min() < 0.2 * h.val_loss.iloc[0]
    # physical MSE = standardised MSE * scale^2
    assert np.allclose(h.val_mse_a, h.val_loss * 4.0)


def test_epoch0_is_random_label_mse():
    xt, yt, xv, yv = _data()
    net = build_network(8, 1, SMALL, 0)
    res = train_network(net, xt, yt, xv, yv, _cfg(max_epochs=1), quiet=True)
    rng = np.random.default_rng(3)
    tr = np.mean((yt - yt[rng.integers(0, len(yt), len(yt))]) ** 2)
    va = np.mean((yv - yt[rng.integers(0, len(yt), len(yv))]) ** 2)
    assert res.history.train_loss.iloc[0] == pytest.approx(tr)
    assert res.history.val_loss.iloc[0] == pytest.approx(va)


def test_early_stopping_restores_best_weights():
    xt, yt, xv, yv = _data()
    # validation targets are pure noise: the val loss stops improving quickly
    rng = np.random.default_rng(9)
    yv_noise = rng.normal(size=yv.shape)
    net = build_network(8, 1, SMALL, 0)
    res = train_network(net, xt, yt, xv, yv_noise, _cfg(max_epochs=500, patience=4), quiet=True)
    assert res.stopped_early
    assert res.epochs_run == res.best_epoch + 4
    best_row = res.history[res.history.epoch == res.best_epoch].val_loss.iloc[0]
    assert best_row == pytest.approx(res.history.val_loss.iloc[1:].min())
    now = _evaluate(net, torch.tensor(xv, dtype=torch.float32), torch.tensor(yv_noise, dtype=torch.float32))
    assert float(now.mean()) == pytest.approx(res.best_val_loss, rel=1e-6)


def test_same_seed_same_weights_and_caller_rng_untouched():
    xt, yt, xv, yv = _data()
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a = build_network(8, 1, SEDCNNConfig(conv_filters=(2, 4), kernel_sizes=(3, 3), pool_size=2,
                                         dense_units=(16, 8), dropout=0.2), 0)
    b = build_network(8, 1, a.config, 0)
    train_network(a, xt, yt, xv, yv, _cfg(max_epochs=5), quiet=True)
    train_network(b, xt, yt, xv, yv, _cfg(max_epochs=5), quiet=True)
    assert torch.equal(torch.get_rng_state(), before)
    assert _equal(_weights(a), _weights(b))
    c = build_network(8, 1, a.config, 0)
    train_network(c, xt, yt, xv, yv, _cfg(max_epochs=5, seed=4), quiet=True)
    assert not _equal(_weights(a), _weights(c))


@pytest.mark.parametrize("opt,sched", [("adam", "none"), ("rmsprop", "plateau")])
def test_resume_equals_straight_run(tmp_path, opt, sched):
    xt, yt, xv, yv = _data()
    arch = SEDCNNConfig(conv_filters=(2, 4), kernel_sizes=(3, 3), pool_size=2, dense_units=(16, 8), dropout=0.1)
    kw = dict(optimizer=opt, lr_schedule=sched, lr_patience=2)
    straight = build_network(8, 1, arch, 1)
    r20 = train_network(straight, xt, yt, xv, yv, _cfg(max_epochs=20, **kw), quiet=True)

    ck = tmp_path / "ck.pt"
    first = build_network(8, 1, arch, 1)
    train_network(first, xt, yt, xv, yv, _cfg(max_epochs=10, **kw), checkpoint_path=ck, quiet=True)
    assert load_checkpoint(ck)["epoch"] == 10
    resumed = build_network(8, 1, arch, 1)
    r = train_network(resumed, xt, yt, xv, yv, _cfg(max_epochs=20, **kw), checkpoint_path=ck, quiet=True)
    assert r.resumed_from_epoch == 10
    assert _equal(_weights(straight), _weights(resumed))
    assert r.history.equals(r20.history)


def test_interrupted_run_resumes(tmp_path):
    xt, yt, xv, yv = _data()
    ck = tmp_path / "ck.pt"
    straight = build_network(8, 1, SMALL, 2)
    train_network(straight, xt, yt, xv, yv, _cfg(max_epochs=17), quiet=True)

    def crash(epoch, rec):
        if epoch == 13:
            raise KeyboardInterrupt

    net = build_network(8, 1, SMALL, 2)
    with pytest.raises(KeyboardInterrupt):
        train_network(net, xt, yt, xv, yv, _cfg(max_epochs=17), checkpoint_path=ck, quiet=True, callback=crash)
    assert load_checkpoint(ck)["epoch"] == 10  # last checkpoint before the crash
    net2 = build_network(8, 1, SMALL, 2)
    r = train_network(net2, xt, yt, xv, yv, _cfg(max_epochs=17), checkpoint_path=ck, quiet=True)
    assert r.resumed_from_epoch == 10
    assert _equal(_weights(straight), _weights(net2))
    # a finished run resumes to the same result without training further
    net3 = build_network(8, 1, SMALL, 2)
    r3 = train_network(net3, xt, yt, xv, yv, _cfg(max_epochs=17), checkpoint_path=ck, quiet=True)
    assert r3.resumed_from_epoch == 17 and _equal(_weights(net3), _weights(straight))


def test_checkpoint_from_other_settings_is_not_resumed(tmp_path):
    xt, yt, xv, yv = _data()
    ck = tmp_path / "ck.pt"
    train_network(build_network(8, 1, SMALL, 0), xt, yt, xv, yv, _cfg(max_epochs=5), checkpoint_path=ck, quiet=True)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        r = train_network(build_network(8, 1, SMALL, 0), xt, yt, xv, yv, _cfg(max_epochs=5, learning_rate=3e-3),
                          checkpoint_path=ck, quiet=True)
    assert r.resumed_from_epoch == 0
    assert any("other settings" in str(w.message) for w in rec)


def test_corrupt_checkpoint_and_bad_inputs(tmp_path):
    ck = tmp_path / "ck.pt"
    ck.write_bytes(b"not a checkpoint")
    xt, yt, xv, yv = _data()
    with pytest.raises(InputError, match="corrupt checkpoint"):
        train_network(build_network(8, 1, SMALL, 0), xt, yt, xv, yv, _cfg(), checkpoint_path=ck, quiet=True)
    xv[0, 0] = np.nan
    with pytest.raises(InputError, match="validation inputs"):
        train_network(build_network(8, 1, SMALL, 0), xt, yt, xv, yv, _cfg(), quiet=True)
    with pytest.raises(InputError, match="optimizer"):
        TrainConfig(optimizer="sgdx").validate()


def test_plateau_schedule_reduces_lr():
    xt, yt, xv, yv = _data()
    rng = np.random.default_rng(1)
    net = build_network(8, 1, SMALL, 0)
    res = train_network(net, xt, yt, xv, rng.normal(size=yv.shape),
                        _cfg(max_epochs=30, patience=30, lr_schedule="plateau", lr_patience=1, lr_factor=0.5),
                        quiet=True)
    assert res.history.lr.iloc[-1] < 1e-3


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda")


def test_optuna_minimises_validation_loss_and_resumes(tmp_path):
    import tomllib

    import optuna
    import pandas as pd

    from photopop.training.tune import SearchSpace, TuneConfig, tune

    rng = np.random.default_rng(0)
    n, nb = 160, 8
    x = rng.normal(size=(n, nb))
    df = pd.DataFrame({f"mag_b{i}": 20 + x[:, i] for i in range(nb)})
    df["log_age"] = x @ np.linspace(-1, 1, nb) * 0.1 + 9.0
    df["galaxy_id"] = np.repeat(np.arange(16), n // 16)
    space = SearchSpace(conv1_filters=(1, 3), conv2_filters=(2, 4), dense1_units=(8, 16), dense2_units=(4, 8),
                        batch_size=(32, 64))
    cfg = TuneConfig(n_trials=3, seed=1, space=space, prune=False,
                     train=TrainConfig(max_epochs=3, device="cpu", num_threads=1))
    res = tune(df, cfg, tmp_path / "t")
    assert res.study.direction == optuna.study.StudyDirection.MINIMIZE
    values = [t.value for t in res.study.trials if t.value is not None]
    assert len(values) == 3 and res.best_value == min(values)
    best = tomllib.loads((tmp_path / "t" / "best_params.toml").read_text())
    assert best["train"]["learning_rate"] == pytest.approx(res.best_params["learning_rate"])
    assert best["architecture"]["dense_units"][0] == res.best_params["dense1_units"]
    # the SQLite study resumes: asking for 5 trials runs 2 more
    cfg.n_trials = 5
    res2 = tune(df, cfg, tmp_path / "t")
    assert len(res2.study.trials) == 5 and res2.best_value <= res.best_value


def test_damaged_checkpoint_is_refused_naming_the_file(tmp_path):
    from photopop.training.checkpoint import save_checkpoint

    ck = tmp_path / "ck.pt"
    save_checkpoint(ck, {"epoch": 3, "x": torch.zeros(64)})
    raw = ck.read_bytes()
    for damaged in (raw[: len(raw) // 2], b"not a checkpoint" * 4):
        ck.write_bytes(damaged)
        with pytest.raises(InputError, match="ck.pt: corrupt checkpoint"):
            load_checkpoint(ck)
    ck.unlink()
    assert load_checkpoint(ck) is None
