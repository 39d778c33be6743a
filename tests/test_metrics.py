"""Metrics against hand-computed values and reference implementations (scipy, pandas)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from photopop.errors import InputError, MismatchError
from photopop.evaluation import metrics as m
from photopop.evaluation.binning import assign_bins, bin_edges, fd_bin_edges, group_median


def test_alternating_residuals_by_hand():
    x = np.array([1.0, -1.0, 1.0, -1.0])
    assert m.rmse(x) == pytest.approx(1.0)
    assert m.bias(x) == 0.0 and m.mean_bias(x) == 0.0
    # median 0, |x - 0| = 1 everywhere -> NMAD = 1.4826
    assert m.nmad(x) == pytest.approx(1.4826)
    assert m.robust_sigma(x) == m.nmad(x)


def test_nmad_small_array_with_outlier():
    # median 3, |x - 3| = [2, 1, 0, 1, 97] -> median 1
    x = [1.0, 2.0, 3.0, 4.0, 100.0]
    assert m.nmad(x) == pytest.approx(1.4826)
    assert m.rmse(x) == pytest.approx(np.sqrt((1 + 4 + 9 + 16 + 10000) / 5))
    assert m.bias(x) == 3.0 and m.mean_bias(x) == pytest.approx(22.0)


def test_nmad_matches_scipy_normal_scale():
    x = np.random.default_rng(3).standard_t(3, size=501)
    ref = stats.median_abs_deviation(x, scale="normal")  # 1 / Phi^-1(3/4) = 1.482602...
    assert m.nmad(x) == pytest.approx(ref, rel=2e-6)


def test_nmad_of_gaussian_is_sigma():
    rng = np.random.default_rng(42)
    for sigma in (0.03, 0.5):
        x = rng.normal(0.2, sigma, size=100_000)
        assert m.nmad(x) == pytest.approx(sigma, rel=0.02)
        assert m.rmse(x - 0.2) == pytest.approx(sigma, rel=0.02)


def test_nan_values_are_ignored_and_empty_gives_nan_without_warning():
    x = np.array([1.0, np.nan, -1.0, np.inf, 1.0, -1.0])
    assert m.rmse(x) == pytest.approx(1.0)
    assert m.nmad(x) == pytest.approx(1.4826)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for f in (m.rmse, m.nmad, m.bias, m.mean_bias, m.outlier_fraction):
            assert np.isnan(f([np.nan, np.nan]))


def test_outlier_fraction_by_hand():
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 10.0])
    # median 0.25; |x - 0.25| sorted = .25 .25 .75 .75 1.25 9.75 -> MAD 0.75 -> NMAD 1.11195
    assert m.nmad(x) == pytest.approx(1.4826 * 0.75)
    assert m.outlier_fraction(x, k=3) == pytest.approx(1 / 6)  # threshold 3.34: only 10
    assert m.outlier_fraction(x, k=0.5) == pytest.approx(3 / 6)  # threshold 0.556: -1, 1, 10
    assert m.outlier_fraction(x, k=1, sigma=1.0) == pytest.approx(1 / 6)  # strict: |1| is not > 1
    with pytest.raises(InputError):
        m.outlier_fraction(x, k=0)


def test_outliers_are_measured_from_zero_not_the_median():
    x = np.array([5.0, 5.1, 4.9, 5.0, 5.02])  # a pure bias: all residuals far from the truth
    assert m.outlier_fraction(x) == 1.0


def test_pearson_matches_scipy_and_drops_nan_pairs():
    rng = np.random.default_rng(7)
    a = rng.normal(size=300)
    b = -0.24 * a + rng.normal(size=300)
    assert m.pearson_r(a, b) == pytest.approx(stats.pearsonr(a, b).statistic, rel=1e-12)
    a2, b2 = a.copy(), b.copy()
    a2[:10] = np.nan
    b2[-5:] = np.nan
    assert m.pearson_r(a2, b2) == pytest.approx(stats.pearsonr(a[10:-5], b[10:-5]).statistic, rel=1e-12)
    assert np.isnan(m.pearson_r([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    with pytest.raises(MismatchError):
        m.pearson_r([1.0, 2.0], [1.0])


def test_fd_rule_matches_formula():
    x = np.random.default_rng(1).normal(size=1000)
    edges = fd_bin_edges(np.append(x, np.nan))
    q75, q25 = np.percentile(x, [75, 25])
    h = 2 * (q75 - q25) * x.size ** (-1 / 3)
    n_bins = int(np.ceil((x.max() - x.min()) / h))
    assert edges.size - 1 == n_bins
    assert edges[0] == x.min() and edges[-1] == pytest.approx(x.max())
    assert np.diff(edges).max() <= h * (1 + 1e-12)


def test_bin_edges_options_and_errors():
    x = np.arange(11.0)
    np.testing.assert_allclose(bin_edges(x, 5), [0, 2, 4, 6, 8, 10])
    np.testing.assert_allclose(bin_edges(x, [0, 3, 10]), [0, 3, 10])
    for bad in ([1.0], [0, 2, 1], [0, np.nan, 1]):
        with pytest.raises(InputError):
            bin_edges(x, bad)
    with pytest.raises(InputError):
        bin_edges(x, 0)
    with pytest.raises(InputError):
        bin_edges([np.nan], None)


def test_assign_bins_edges_and_outside():
    edges = np.array([0.0, 1.0, 2.0])
    idx = assign_bins(np.array([-0.1, 0.0, 0.99, 1.0, 2.0, 2.1, np.nan]), edges)
    np.testing.assert_array_equal(idx, [-1, 0, 0, 1, 1, -1, -1])


def test_group_median_matches_pandas():
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 7, size=200)
    codes[codes == 3] = 4  # group 3 empty
    v = rng.normal(size=200)
    got = group_median(v, codes, 8)
    ref = pd.Series(v).groupby(codes).median().reindex(range(8)).to_numpy()
    np.testing.assert_allclose(got, ref, equal_nan=True)
    assert np.isnan(got[3]) and np.isnan(got[7])


def test_binned_stats_by_hand():
    truth = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, -1.0, np.nan])
    pred = truth + np.array([1.0, -1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    df = m.binned_stats(truth, pred, bins=[0, 1, 2, 3])
    np.testing.assert_array_equal(df["n"], [2, 2, 3])  # 3.0 is in the last (closed) bin
    np.testing.assert_allclose(df["rmse"], [1.0, np.sqrt(2.0), 0.0])
    np.testing.assert_allclose(df["bias"], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(df["nmad"], [1.4826, 1.4826, 0.0])
    np.testing.assert_allclose(df["median"], [0.25, 2.25, 2.5])  # running median of pred
    assert df.attrs["n_excluded"] == 2  # the NaN row and truth = -1 outside the edges


def test_binned_stats_empty_bin_and_other_variable():
    truth = np.array([0.0, 0.1, 0.2, 0.3])
    pred = truth + np.array([0.1, -0.1, 0.1, -0.1])
    by = np.array([0.5, 0.5, 2.5, 2.5])
    df = m.binned_stats(truth, pred, by=by, bins=[0, 1, 2, 3])
    np.testing.assert_array_equal(df["n"], [2, 0, 2])
    assert np.isnan(df.loc[1, "rmse"]) and np.isnan(df.loc[1, "median"])
    np.testing.assert_allclose(df.loc[[0, 2], "rmse"], [0.1, 0.1])


def test_binned_stats_matches_per_bin_functions():
    rng = np.random.default_rng(11)
    t = rng.normal(size=2000)
    p = t + rng.normal(0, 0.2, size=2000) + 0.1 * t
    df = m.binned_stats(t, p)  # Freedman-Diaconis edges
    edges = np.append(df["lo"].to_numpy(), df["hi"].iloc[-1])
    np.testing.assert_allclose(edges, fd_bin_edges(t))
    code = assign_bins(t, edges)
    for k, row in df.iterrows():
        sel = code == k
        assert row["n"] == sel.sum()
        if sel.sum():
            assert row["rmse"] == pytest.approx(m.rmse(p[sel] - t[sel]))
            assert row["nmad"] == pytest.approx(m.nmad(p[sel] - t[sel]))
            assert row["bias"] == pytest.approx(m.bias(p[sel] - t[sel]))
            assert row["median"] == pytest.approx(np.median(p[sel]))


def test_grouped_stats_matches_per_group_functions():
    rng = np.random.default_rng(2)
    g = rng.choice(np.array([10, 20, 30]), size=90)
    t = rng.normal(size=90)
    p = t + rng.normal(0, 0.1, size=90)
    p[0] = np.nan
    df = m.grouped_stats(t, p, g)
    assert list(df.index) == [10, 20, 30]
    for gid in (10, 20, 30):
        sel = (g == gid) & np.isfinite(p)
        assert df.loc[gid, "n"] == sel.sum()
        assert df.loc[gid, "nmad"] == pytest.approx(m.nmad(p[sel] - t[sel]))
        assert df.loc[gid, "rmse"] == pytest.approx(m.rmse(p[sel] - t[sel]))


def test_scores_dict_and_errors():
    truth = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.0, 0.0, 3.0, 2.0, np.nan])
    s = m.scores(truth, pred)
    assert s["n"] == 4 and s["n_nan_excluded"] == 1
    assert s["rmse"] == pytest.approx(1.0)
    assert s["nmad"] == pytest.approx(1.4826) and s["robust_sigma"] == s["nmad"]
    assert s["bias"] == 0.0 and s["outlier_fraction"] == 0.0
    assert set(s) >= {"n", "rmse", "nmad", "robust_sigma", "bias", "outlier_fraction", "n_nan_excluded"}
    with pytest.raises(InputError, match="no rows"):
        m.scores([np.nan, 1.0], [1.0, np.nan])
    with pytest.raises(MismatchError):
        m.scores([1.0, 2.0], [1.0])
    with pytest.raises(InputError):
        m.rmse(["a", "b"])
