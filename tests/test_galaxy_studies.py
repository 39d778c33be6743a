"""Galaxy-level statistics of Liew-Cain et al. (2021): rank bins, per-galaxy residuals, Table 1, Fig. 13, Fig. 14."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from photopop.errors import InputError, MismatchError
from photopop.evaluation import galaxy_studies as gs

S = 1.4826  # robust sigma = 1.4826 MAD


def test_rank_bins_sizes_and_merge_of_small_last_bin(rng):
    x = rng.permutation(40).astype(float)
    codes = gs.rank_bins(x, 16)
    assert np.bincount(codes).tolist() == [16, 16, 8]  # 8 = per_bin // 2 is kept
    # bins follow the rank of x
    assert np.all(codes[np.argsort(x)] == np.repeat([0, 1, 2], [16, 16, 8]))
    x36 = rng.permutation(36).astype(float)
    assert np.bincount(gs.rank_bins(x36, 16)).tolist() == [16, 20]  # 4 < 8: merged into the previous bin
    assert np.bincount(gs.rank_bins(x36, 16, min_last=1)).tolist() == [16, 16, 4]
    # non-finite values get -1; fewer values than a bin make one bin
    codes = gs.rank_bins([3.0, np.nan, 1.0, np.inf], 16)
    assert codes.tolist() == [0, -1, 0, -1]
    with pytest.raises(InputError):
        gs.rank_bins(x, 0)


def test_binned_medians_of_16_galaxies_per_bin_known_values(rng):
    # 48 galaxies; bin k holds x = 16k .. 16k+15 and y = 10 k + d with d = -8 .. 7 (in shuffled order)
    n_bins = 3
    x = np.arange(16 * n_bins, dtype=float)
    d = np.tile(np.arange(-8, 8, dtype=float), n_bins)
    k = np.repeat(np.arange(n_bins), 16)
    y = 10.0 * k + rng.permutation(d.reshape(n_bins, 16).T).T.ravel()
    perm = rng.permutation(x.size)
    tab = gs.rank_binned_stats(x[perm], y[perm], per_bin=16)
    assert tab["n"].tolist() == [16, 16, 16]
    # median of -8..7 is -0.5; |d + 0.5| = 0.5, 0.5, 1.5, 1.5, ..., 7.5, 7.5 -> MAD = 4.0
    np.testing.assert_allclose(tab["y_centre"], 10.0 * np.arange(n_bins) - 0.5)
    np.testing.assert_allclose(tab["y_spread"], S * 4.0)
    np.testing.assert_allclose(tab["x_centre"], 16.0 * np.arange(n_bins) + 7.5)
    np.testing.assert_allclose(tab["x_lo"], 16.0 * np.arange(n_bins))
    np.testing.assert_allclose(tab["x_hi"], 16.0 * np.arange(n_bins) + 15)
    # mean / standard deviation (Fig. 14 style): mean of -8..7 is -0.5, sample std of 16 consecutive integers
    tab = gs.rank_binned_stats(x[perm], y[perm], per_bin=16, statistic="mean")
    np.testing.assert_allclose(tab["y_centre"], 10.0 * np.arange(n_bins) - 0.5)
    np.testing.assert_allclose(tab["y_spread"], np.sqrt(16 * 17 / 12), rtol=1e-12)  # var = n(n+1)/12
    with pytest.raises(InputError):
        gs.rank_binned_stats(x, y, statistic="mode")
    with pytest.raises(MismatchError):
        gs.rank_binned_stats(x, y[:-1])


def test_per_galaxy_residuals_and_property_dependence():
    # galaxy g has residuals g * (-1, 0, 1) + g / 10: median g/10, robust sigma 1.4826 g
    g = np.repeat(np.arange(1, 33), 3)
    step = np.tile([-1.0, 0.0, 1.0], 32)
    truth = np.zeros(g.size)
    pred = g * step + g / 10.0
    res = gs.per_galaxy_residuals(g, truth, pred)
    np.testing.assert_allclose(res["median_residual"], np.arange(1, 33) / 10.0)
    np.testing.assert_allclose(res["robust_sigma"], S * np.arange(1, 33))
    assert res["n"].tolist() == [3] * 32
    galaxies = pd.DataFrame({"galaxy_id": np.arange(1, 33), "log_ssfr": -np.arange(1, 33) / 3.0,
                             "inclination_deg": np.linspace(0, 80, 32), "a_v": np.zeros(32) + 0.3,
                             "bulge_fraction": np.linspace(0, 1, 32)})
    pts, bins = gs.property_dependence(res, galaxies, per_bin=16)
    assert len(pts) == 32 and set(bins["property"]) == set(gs.DEFAULT_PROPERTIES)
    b = bins[(bins["property"] == "log_ssfr") & (bins["statistic"] == "robust_sigma")]
    assert b["n"].tolist() == [16, 16]
    # sSFR falls with g, the robust sigma rises: a perfect negative rank correlation
    assert b["spearman_r"].iloc[0] == pytest.approx(-1.0) and b["spearman_p"].iloc[0] < 1e-6
    flat = bins[(bins["property"] == "a_v") & (bins["statistic"] == "robust_sigma")]
    assert np.isnan(flat["spearman_r"].iloc[0])  # a constant property has no rank correlation
    np.testing.assert_allclose(b["y_centre"], S * np.array([24.5, 8.5]))  # medians of g in each half
    with pytest.raises(InputError, match="lacks property"):
        gs.property_dependence(res, galaxies.drop(columns=["a_v"]))


def test_morphology_table_shape_and_values():
    # residuals: trained on X, applied to early -> s * (-1, 0, 1), applied to late -> 3 s * (-1, 0, 1)
    scale = {("early", "log_age"): 0.10, ("late", "log_age"): 0.20, ("all", "log_age"): 0.15,
             ("early", "zh"): 0.05, ("late", "zh"): 0.06, ("all", "zh"): 0.07}
    rows = []
    for (train, target), s in scale.items():
        for appl, f in (("early", 1.0), ("late", 3.0)):
            for step in (-1.0, 0.0, 1.0):
                rows.append({"train_set": train, "appl_type": appl, "target": target, "truth": 9.5,
                             "pred": 9.5 + f * s * step})
    tab = gs.morphology_table(pd.DataFrame(rows), targets=("log_age", "zh"))
    assert list(tab.columns) == ["early", "late", "all"]
    assert tab.index.tolist() == [(t, a) for t in ("log_age", "zh") for a in ("early", "late", "all")]
    for (train, target), s in scale.items():
        assert tab.loc[(target, "early"), train] == pytest.approx(S * s)
        assert tab.loc[(target, "late"), train] == pytest.approx(3 * S * s)
        # pooled (-3s, -s, 0, 0, s, 3s): median 0, MAD = median(0, 0, s, s, 3s, 3s) = s
        assert tab.loc[(target, "all"), train] == pytest.approx(S * s)
    assert tab.attrs["n"].loc[("zh", "all"), "late"] == 6
    with pytest.raises(InputError, match="lack column"):
        gs.morphology_table(pd.DataFrame(rows).drop(columns=["appl_type"]))


def test_training_size_summary_mean_and_spread():
    rec = pd.DataFrame({"scheme": ["A"] * 3 + ["B"] * 3, "fraction": [0.05] * 6, "repeat": [0, 1, 2] * 2,
                        "target": "log_age", "robust_sigma": [0.1, 0.2, 0.3, 0.5, 0.5, 0.8],
                        "random_robust_sigma": [0.6] * 6, "n_train": [10, 12, 14, 5, 5, 5]})
    s = gs.training_size_summary(rec).set_index("scheme")
    assert s.loc["A", "mean"] == pytest.approx(0.2) and s.loc["A", "std"] == pytest.approx(0.1)
    assert s.loc["B", "mean"] == pytest.approx(0.6) and s.loc["B", "std"] == pytest.approx(np.sqrt(0.03))
    assert s.loc["A", "sem"] == pytest.approx(0.1 / np.sqrt(3)) and s.loc["A", "n_train"] == pytest.approx(12)
    assert s.loc["B", "n_repeats"] == 3 and s.loc["B", "random_mean"] == pytest.approx(0.6)


def test_gradient_mass_bins_per_type():
    ids = np.arange(20)
    galaxies = pd.DataFrame({"galaxy_id": ids, "type": ["early"] * 6 + ["late"] * 14,
                             "log_mstar": np.r_[np.linspace(10, 11.5, 6), np.linspace(9, 11, 14)]})
    grad = pd.Series(np.where(ids < 6, 0.1, -0.1), index=ids)
    grad[19] = np.nan  # not selected
    pts, bins = gs.gradient_mass_bins(grad, galaxies, {"early": 3, "late": 10})
    assert len(pts) == 19
    assert bins.loc[bins["type"] == "early", "n"].tolist() == [3, 3]
    assert bins.loc[bins["type"] == "late", "n"].tolist() == [13]  # 3 left over < 5: merged
    np.testing.assert_allclose(bins.loc[bins["type"] == "early", "y_centre"], 0.1)
    np.testing.assert_allclose(bins.loc[bins["type"] == "early", "x_centre"], [10.3, 11.2])


def test_gradient_differences_and_summary():
    a = pd.DataFrame({"selected": [True, True, False, True], "slope_mean": [0.1, -0.2, 0.3, 0.0],
                      "slope_err": [0.03, 0.04, 0.1, 0.0]}, index=pd.Index([1, 2, 3, 4], name="galaxy_id"))
    b = pd.DataFrame({"selected": [True, True, True, False], "slope_mean": [0.15, -0.1, 0.0, 9.0],
                      "slope_err": [0.04, 0.03, 0.1, 0.0]}, index=pd.Index([1, 2, 3, 4], name="galaxy_id"))
    d = gs.gradient_differences(a, b)
    assert d.index.tolist() == [1, 2]  # only galaxies selected in both
    np.testing.assert_allclose(d["diff"], [0.05, 0.1])
    np.testing.assert_allclose(d["diff_err"], [0.05, 0.05])
    s = gs.gradient_summary(a, b)
    assert s["n"] == 2 and s["bias"] == pytest.approx(0.075)


def test_mismatch_summary_added_bias_and_scatter():
    truth = np.zeros(3)
    pred_ref = 0.3 * np.array([-1.0, 0.0, 1.0])
    truth_alt = np.full(3, 0.05)  # the other library's labels shift by 0.05
    pred_alt = truth_alt + 0.5 * np.array([-1.0, 0.0, 1.0]) + 0.2
    m = gs.mismatch_summary(truth, pred_ref, truth_alt, pred_alt)
    assert m["robust_sigma_ref"] == pytest.approx(S * 0.3) and m["robust_sigma_alt"] == pytest.approx(S * 0.5)
    assert m["added_bias"] == pytest.approx(0.2) and m["label_shift"] == pytest.approx(0.05)
    assert m["added_scatter"] == pytest.approx(S * 0.4)  # sqrt(0.5^2 - 0.3^2)
    with pytest.raises(MismatchError):
        gs.mismatch_summary(truth, pred_ref, truth_alt[:2], pred_alt[:2])


def test_residual_correlation_sign():
    t = {"log_age": np.zeros(50), "zh": np.zeros(50)}
    x = np.linspace(-1, 1, 50)
    p = {"log_age": x, "zh": -2 * x + 0.1}
    assert gs.residual_correlation(t, p) == pytest.approx(-1.0)
