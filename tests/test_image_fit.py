"""Training recipe: one-cycle schedules, frozen/unfrozen parameter groups, a tiny end-to-end fit."""

import numpy as np
import pytest
import torch

from photopop.errors import InputError, MismatchError
from photopop.models.image_regressor import ImageModelConfig, ImageRegressor
from photopop.training.image_fit import ImageFitConfig, fit_image_regressor, make_optimizer

MODEL = ImageModelConfig(arch="resnet18", pretrained="none")
ONE = ImageFitConfig(epochs=1, freeze_epochs=0)


def _toy(n=96, s=8, seed=0):
    """Images whose total brightness and size encode the target (learnable from pixels)."""
    rng = np.random.default_rng(seed)
    y = rng.normal(8.9, 0.2, n)
    yy, xx = np.mgrid[:s, :s] - (s - 1) / 2
    width = 1.0 + 2.0 * (y - 8.5)
    img = np.exp(-(yy**2 + xx**2)[None] / (2 * width[:, None, None] ** 2))
    img = img[:, None] * np.array([1.0, 1.5, 2.0])[None, :, None, None] * (1 + (y[:, None, None, None] - 8.9))
    img = img + rng.normal(0, 0.02, img.shape)
    return img.astype(np.float32), y


def test_one_cycle_schedule_per_stage_and_group():
    m = ImageRegressor(["g", "r", "i"], 8, ["oh"], MODEL)
    cfg = ImageFitConfig(lr_frozen=0.1, lrs=(1e-3, 1e-2, 1e-1), pct_start=0.25, div_factor=25, final_div_factor=1e4)
    for stage, peak in (("frozen", [0.1, 0.1, 0.1]), ("unfrozen", [1e-3, 1e-2, 1e-1])):
        opt, sched = make_optimizer(m, cfg, stage, steps=40)
        assert isinstance(sched, torch.optim.lr_scheduler.OneCycleLR)
        trace = []
        for _ in range(40):
            trace.append([g["lr"] for g in opt.param_groups])
            opt.step()
            sched.step()
        trace = np.array(trace)
        assert np.allclose(trace[0], np.array(peak) / 25)
        assert np.allclose(trace.max(axis=0), peak)
        assert np.all(trace.argmax(axis=0) == 9)  # peak at pct_start * steps - 1
        assert np.allclose(trace[-1], np.array(peak) / 25 / 1e4, rtol=0.05)
        assert np.all(np.diff(trace[9:], axis=0) <= 1e-15)  # annealed monotonically after the peak


def test_frozen_stage_trains_head_and_batchnorm_only():
    torch.manual_seed(0)
    m = ImageRegressor(["g", "r", "i"], 8, ["oh"], MODEL)
    opt, _ = make_optimizer(m, ImageFitConfig(), "frozen", steps=5)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(m.body.conv1.weight) not in in_opt and id(m.body.layer4[0].conv1.weight) not in in_opt
    assert id(m.body.bn1.weight) in in_opt and all(id(p) in in_opt for p in m.head.parameters())
    conv_before = m.body.layer2[0].conv1.weight.detach().clone()
    head_before = m.head[3].weight.detach().clone()
    m.train()
    loss = m(torch.randn(4, 3, 8, 8)).pow(2).mean()
    loss.backward()
    opt.step()
    assert torch.equal(m.body.layer2[0].conv1.weight, conv_before)
    assert not torch.equal(m.head[3].weight, head_before)
    opt, _ = make_optimizer(m, ImageFitConfig(), "unfrozen", steps=5)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(m.parameters()))
    assert [len(g["params"]) for g in opt.param_groups] == [len(ps) for ps in m.group_parameters()]


def test_tiny_end_to_end_training_is_seeded_and_keeps_best_epoch():
    x, y = _toy(64, 8)
    tr, va = np.arange(40), np.arange(40, 64)
    cfg = ImageFitConfig(epochs=3, freeze_epochs=1, batch_size=16, lr_frozen=0.01, lrs=(1e-4, 1e-3, 1e-2), seed=3,
                         num_threads=1)
    res = fit_image_regressor(x, y, tr, va, ["oh"], ["g", "r", "i"], MODEL, cfg)
    h = res.history
    assert list(h["stage"]) == ["frozen", "unfrozen", "unfrozen"] and list(h["epoch"]) == [1, 2, 3]
    assert res.best_epoch == int(h["epoch"][h["val_loss"].idxmin()])
    assert res.best_val_loss == pytest.approx(h["val_loss"].min())
    assert res.lr_trace.shape == (3 * 3, 3)  # 40 rows / 16 -> 2 full batches + one of 8
    # the kept weights are the best epoch's: re-evaluating gives its validation RMSE
    pred = res.model.predict(x, tta=False, indices=va)
    assert np.sqrt(np.mean((pred[:, 0] - y[va]) ** 2)) == pytest.approx(h["val_rmse_oh"].min(), rel=1e-4)
    assert np.isclose(res.model.out_mean.item(), y[tr].mean(), atol=1e-5)  # fitted on training rows
    again = fit_image_regressor(x, y, tr, va, ["oh"], ["g", "r", "i"], MODEL, cfg)
    assert np.allclose(again.model.predict(x[:8]), res.model.predict(x[:8]), atol=1e-6)
    assert np.allclose(again.history["val_loss"], h["val_loss"])


def test_bad_inputs_are_refused():
    x, y = _toy(20, 8)
    with pytest.raises(InputError, match="overlap"):
        fit_image_regressor(x, y, np.arange(10), np.arange(8, 20), ["oh"], config=ONE)
    with pytest.raises(MismatchError):
        fit_image_regressor(x, y[:10], np.arange(5), np.arange(5, 10), ["oh"], config=ONE)
    y2 = y.copy()
    y2[3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fit_image_regressor(x, y2, np.arange(10), np.arange(10, 20), ["oh"], config=ONE)
    with pytest.raises(InputError):
        ImageFitConfig(epochs=2, freeze_epochs=3).validate()
    with pytest.raises(InputError):
        ImageFitConfig(amp="fp8").validate()


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("freeze,every,crash_at,last_ckpt", [(1, 2, 3, 2),   # resumed inside the unfrozen stage
                                                            (2, 1, 3, 3)])  # ... and at the stage boundary
def test_killed_image_fit_resumes_to_the_same_weights(tmp_path, freeze, every, crash_at, last_ckpt):
    from photopop.training.checkpoint import load_checkpoint

    x, y = _toy(40, 8)
    tr, va = np.arange(28), np.arange(28, 40)
    cfg = ImageFitConfig(epochs=4, freeze_epochs=freeze, batch_size=8, lr_frozen=0.01, lrs=(1e-4, 1e-3, 1e-2),
                         seed=5, num_threads=1)  # augmentation and head dropout on: every RNG stream matters
    args = (x, y, tr, va, ["oh"], ["g", "r", "i"], MODEL, cfg)
    straight = fit_image_regressor(*args)
    ck = tmp_path / "fit.ckpt"

    def crash(epoch, rec):
        if epoch == crash_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_image_regressor(*args, checkpoint_path=ck, checkpoint_every=every, callback=crash)
    assert load_checkpoint(ck)["epoch"] == last_ckpt
    resumed = fit_image_regressor(*args, checkpoint_path=ck, checkpoint_every=every)
    a, b = _state(straight.model), _state(resumed.model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.best_epoch == straight.best_epoch and resumed.best_val_loss == straight.best_val_loss
    cols = [c for c in straight.history.columns if c != "seconds"]
    assert resumed.history[cols].equals(straight.history[cols])
    assert np.array_equal(resumed.lr_trace, straight.lr_trace)
    # a checkpoint of other settings is not resumed: it trains from scratch (with a warning)
    other = ImageFitConfig(epochs=1, freeze_epochs=0, batch_size=8, seed=6, num_threads=1)
    with pytest.warns(UserWarning, match="other settings"):
        fit_image_regressor(x, y, tr, va, ["oh"], ["g", "r", "i"], MODEL, other, checkpoint_path=ck)
