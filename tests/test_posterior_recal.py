"""Posterior recalibration: spread factors fitted on calibration galaxies restore nominal coverage.

Bounds are binomial: a factor fitted as the 68.27 % quantile of n_cal ratios gives a true coverage
with sd sqrt(p (1 - p) / n_cal); measuring it on n_test fresh objects adds sqrt(p (1 - p) / n_test).
Every test allows four of those combined standard deviations.
"""

import json

import numpy as np
import pytest
import torch

from photopop.errors import InputError
from photopop.models.posterior_model import SavedPosterior, fit_spread_factors, spread_about_median
from photopop.training.posterior_fit import SEDPosterior

from posterior_toy import small_config, toy_frame

P68, P95 = 0.6827, 0.9545


def bound(p: float, n_cal: int, n_test: int) -> float:
    return 4.0 * np.sqrt(p * (1 - p) * (1.0 / n_cal + 1.0 / n_test))


def coverage(y: np.ndarray, draws: np.ndarray, level: float) -> np.ndarray:
    a = (1 - level) / 2
    lo, hi = np.quantile(draws, [a, 1 - a], axis=0)
    return ((y >= lo) & (y <= hi)).mean(axis=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_overconfident_gaussian_draws_are_recalibrated(seed):
    """Draws 0.6 x (target 1) and 1.5 x (target 2) as wide as the truth's spread: factors ~ 1/0.6, 1/1.5."""
    rng = np.random.default_rng(seed)
    n_cal, n_test, s = 800, 2000, 1000
    width = np.array([0.6, 1.5])

    def make(n):
        mu = rng.normal(size=(n, 2))
        y = mu + rng.normal(size=(n, 2))
        return y, mu + width * rng.normal(size=(s, n, 2))

    y_cal, d_cal = make(n_cal)
    factors, report = fit_spread_factors(y_cal, d_cal)
    assert np.all(np.abs(np.array(report["coverage68_recalibrated"]) - P68) <= 1.0 / n_cal + 1e-12)
    assert report["coverage68_raw"][0] < P68 - bound(P68, n_cal, n_cal)  # it really was over-confident
    y_t, d_t = make(n_test)
    fixed = spread_about_median(torch.from_numpy(d_t.astype(np.float32)), torch.tensor(factors)).numpy()
    assert np.all(np.abs(coverage(y_t, fixed, P68) - P68) <= bound(P68, n_cal, n_test))
    # Gaussian shape is right, so the one factor also fixes the 95 % intervals
    assert np.all(np.abs(coverage(y_t, fixed, P95) - P95) <= bound(P95, n_cal, n_test))


def test_spread_keeps_median_and_correlation():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(500, 20, 2))
    z[..., 1] += 0.7 * z[..., 0]
    t = torch.from_numpy(z.astype(np.float32))
    out = spread_about_median(t, torch.tensor([2.0, 0.5])).numpy()
    np.testing.assert_allclose(np.median(out, axis=0), np.median(z, axis=0), atol=1e-5)
    r_in = [np.corrcoef(z[:, i, 0], z[:, i, 1])[0, 1] for i in range(20)]
    r_out = [np.corrcoef(out[:, i, 0], out[:, i, 1])[0, 1] for i in range(20)]
    np.testing.assert_allclose(r_out, r_in, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0) / z.std(axis=0), np.broadcast_to([2.0, 0.5], (20, 2)), rtol=1e-4)


def test_degenerate_draws_are_refused():
    with pytest.raises(InputError, match="spread factors"):
        fit_spread_factors(np.ones((10, 1)), np.ones((50, 10, 1)))


@pytest.fixture(scope="module")
def brief():
    """A briefly trained toy posterior (3 epochs: raw spreads are wrong) with a large calibration carve."""
    torch.set_num_threads(1)
    post = SEDPosterior(small_config(seed=0, max_epochs=3, calib_fraction=0.4)).fit(toy_frame(2000, seed=0))
    return post, toy_frame(1000, seed=77)


def test_fit_recalibrates_on_held_out_groups(brief):
    post, test = brief
    meta = post.model_.meta
    n_cal = meta["n_calib_rows"]
    assert n_cal >= 500 and meta["n_fit_rows"] + meta["n_val_rows"] + n_cal == 2000
    y = test[["log_age", "zh"]].to_numpy()
    raw = post.model_.sample_inputs(post.model_.frame_inputs(test), 1000, seed=1, raw=True)
    cal = post.sample(test, 1000, seed=1)
    assert not np.allclose(raw, cal)
    cov = coverage(y, cal, P68)
    assert np.all(np.abs(cov - P68) <= bound(P68, n_cal, len(test))), (cov, meta["recalibration"])
    # quantiles from raw draws + factors equal quantiles of recalibrated draws
    q = post.predict_quantiles(test, 1000, seed=1)
    np.testing.assert_allclose(q["log_age_p16"], np.quantile(cal[..., 0], 0.16, axis=0), atol=2e-5)
    np.testing.assert_allclose(q["zh_p975"], np.quantile(cal[..., 1], 0.975, axis=0), atol=2e-5)
    np.testing.assert_allclose(q["log_age_p50"], np.quantile(raw[..., 0], 0.5, axis=0), atol=2e-5)


def test_folder_round_trip_keeps_factors(brief, tmp_path):
    post, test = brief
    post.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["spread_factors"] == post.model_.meta["spread_factors"]
    back = SEDPosterior.load(tmp_path / "m")
    np.testing.assert_array_equal(back.model_.spread_factors, post.model_.spread_factors)
    np.testing.assert_array_equal(back.sample(test.iloc[:50], 200, seed=2), post.sample(test.iloc[:50], 200, seed=2))
    # a folder without factors (older photopop) samples unscaled
    old = SavedPosterior(back.model_.network, {"input": back.model_.input_norm, "target": back.model_.target_norm,
                                               "magerr": back.model_.magerr_norm},
                         {"mean": back.model_.ood_mean, "precision": back.model_.ood_precision},
                         {k: v for k, v in back.model_.meta.items() if k != "spread_factors"})
    np.testing.assert_array_equal(old.spread_factors, [1.0, 1.0])


def test_no_calibration_carve_means_unit_factors():
    post = SEDPosterior(small_config(seed=1, max_epochs=1, calib_fraction=0.0)).fit(toy_frame(400, seed=1))
    assert "spread_factors" not in post.model_.meta and post.model_.meta["n_calib_rows"] == 0
    with pytest.raises(InputError, match="calib_fraction"):
        small_config(calib_fraction=1.0).validate()


def test_given_calibration_rows_are_used_for_nothing_else():
    df = toy_frame(600, seed=2)
    cal = np.flatnonzero(df["galaxy_id"].isin([0, 1, 2, 3, 4]))
    post = SEDPosterior(small_config(seed=2, max_epochs=1)).fit(df, calib_idx=cal)
    meta = post.model_.meta
    assert meta["n_calib_rows"] == cal.size == meta["recalibration"]["n_objects"]
    assert meta["n_fit_rows"] + meta["n_val_rows"] == len(df) - cal.size
    with pytest.raises(InputError, match="share rows"):
        SEDPosterior(small_config(seed=2, max_epochs=1)).fit(df, calib_idx=cal, val_idx=cal[:10])


def test_spread_by_level_scales_each_interval_by_its_own_factor():
    from photopop.models.posterior_model import spread_about_median, spread_by_level

    gen = torch.Generator().manual_seed(4)
    s = torch.randn(2001, 50, 2, generator=gen, dtype=torch.float64) * torch.tensor([0.3, 0.5]) + 2.0
    f68, f95 = torch.tensor([1.2, 0.9], dtype=torch.float64), torch.tensor([1.6, 0.8], dtype=torch.float64)
    out = spread_by_level(s, f68, f95)
    med = torch.quantile(s, 0.5, dim=0)
    torch.testing.assert_close(torch.quantile(out, 0.5, dim=0), med)
    for lev, f in ((0.6827, f68), (0.9545, f95)):
        a = (1 - lev) / 2
        for p in (a, 1 - a):
            torch.testing.assert_close(torch.quantile(out, p, dim=0) - med, f * (torch.quantile(s, p, dim=0) - med),
                                       rtol=2e-3, atol=1e-6)
    # non-decreasing in the draw: no draw overtakes another (ranks, hence rank correlations, kept up to ties)
    assert bool((torch.diff(torch.gather(out, 0, torch.argsort(s, dim=0)), dim=0) >= 0).all())
    torch.testing.assert_close(spread_by_level(s, f68, f68), spread_about_median(s, f68))


def test_fit_stores_the_95_factor(brief):
    post = brief[0]
    meta = post.model_.meta
    assert meta["spread_factors_95"] == dict(zip(("log_age", "zh"), meta["recalibration"]["factor_95"]))
    rec = meta["recalibration"]
    # galaxies are the unit: the factors are quantiles at the leave-one-galaxy-out levels, which cover
    # their own level of the calibration rows
    assert rec["grouping"] == "leave-one-galaxy-out" and rec["n_groups"] >= 3
    assert np.allclose(rec["coverage95_per_level"], rec["quantile_level_95"], atol=2.0 / meta["n_calib_rows"])
    assert np.allclose(rec["coverage68_recalibrated"], rec["quantile_level_68"], atol=2.0 / meta["n_calib_rows"])
    # the toy's rows are independent, so the grouped levels stay near nominal
    assert np.allclose(rec["quantile_level_95"], 0.9545, atol=0.02)
    assert 0.9 < meta["ood_threshold_level"] <= 1.0
