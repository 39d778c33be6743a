"""Constant, random-draw and random-forest baselines."""

import numpy as np
import pytest

from photopop.errors import InputError
from photopop.models.baselines import (ConstantBaseline, RandomDrawBaseline, RandomForestBaseline,
                                       RandomForestConfig)


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    y = np.column_stack([x[:, 0] + 0.5 * x[:, 1], np.sin(x[:, 2])]) + 0.01 * rng.normal(size=(n, 2))
    return x, y


def test_constant_is_training_mean():
    x, y = _data()
    p = ConstantBaseline().fit(x, y).predict(x[:7])
    assert p.shape == (7, 2) and np.allclose(p, y.mean(0))
    p1 = ConstantBaseline().fit(x, y[:, 0]).predict(x[:3])
    assert p1.shape == (3,) and np.allclose(p1, y[:, 0].mean())


def test_random_draw_is_seeded_and_from_the_pool():
    x, y = _data()
    a = RandomDrawBaseline(seed=4).fit(x, y).predict(x)
    b = RandomDrawBaseline(seed=4).fit(x, y).predict(x)
    c = RandomDrawBaseline(seed=5).fit(x, y).predict(x)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    rows = {tuple(r) for r in y}
    assert all(tuple(r) in rows for r in a)  # whole label rows are drawn (age and Z together)
    # scatter of random draws ~ sqrt(2) x label spread
    big = np.random.default_rng(0).normal(size=(20000, 1))
    d = RandomDrawBaseline(seed=1).fit(big, big).predict(big) - big
    assert np.std(d) == pytest.approx(np.sqrt(2), rel=0.03)  # over 10 seeds |std / sqrt 2 - 1| <= 0.011


def test_random_forest_learns_and_is_deterministic():
    x, y = _data()
    xt, yt = _data(200, seed=1)
    cfg = RandomForestConfig(n_estimators=30, n_jobs=1)
    rf = RandomForestBaseline(cfg, seed=3).fit(x, y)
    p = rf.predict(xt)
    assert p.shape == yt.shape
    const = ConstantBaseline().fit(x, y).predict(xt)
    # over 10 data / forest seeds the ratio is 0.26-0.34 (limit 0.6); a forest that learns nothing gives ~1
    assert np.sqrt(np.mean((p - yt) ** 2)) < 0.6 * np.sqrt(np.mean((const - yt) ** 2))
    assert np.array_equal(p, RandomForestBaseline(cfg, seed=3).fit(x, y).predict(xt))
    p1 = RandomForestBaseline(cfg, seed=3).fit(x, y[:, 0]).predict(xt)
    assert p1.shape == (200,)


def test_bad_inputs():
    x, y = _data()
    with pytest.raises(InputError, match="rows"):
        ConstantBaseline().fit(x, y[:10])
    y[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        RandomDrawBaseline().fit(x, y)
    x[0, 0] = np.inf
    with pytest.raises(InputError, match="NaN"):
        RandomForestBaseline().fit(x, np.zeros(len(x)))


def test_forest_features_kinds():
    """'mag', 'colour' (against the middle band, as the CNN's), both side by side, or the CNN's kind."""
    from photopop.models.baselines import FOREST_FEATURES, forest_features, resolve_forest_features

    bands = ["a", "b", "c", "d"]
    mags = np.array([[20.0, 19.5, 19.0, 18.0], [22.0, 21.0, 21.5, 20.0]])
    np.testing.assert_array_equal(forest_features(mags, bands, "mag"), mags)
    col = forest_features(mags, bands, "colour")  # reference: bands[2] = "c"
    np.testing.assert_allclose(col, [[1.0, 0.5, -1.0], [0.5, -0.5, -1.5]])
    np.testing.assert_allclose(forest_features(mags, bands, "colour", ref_band="a")[0], [-0.5, -1.0, -2.0])
    both = forest_features(mags, bands, "mag+colour")
    assert both.shape == (2, 7) and np.array_equal(both[:, :4], mags) and np.allclose(both[:, 4:], col)
    np.testing.assert_allclose(forest_features(mags, bands, "same", "colour"), col)
    np.testing.assert_array_equal(forest_features(mags, bands, "same", "mag"), mags)
    assert resolve_forest_features("same", "flux") == "flux" and "same" in FOREST_FEATURES
    # colours remove a common brightness offset; magnitudes keep it
    assert np.allclose(forest_features(mags + 3.0, bands, "colour"), col)
    with pytest.raises(InputError, match="random_forest.features"):
        forest_features(mags, bands, "pixels")
    with pytest.raises(InputError, match="random_forest.features"):
        RandomForestConfig(features="magnitudes").check()
