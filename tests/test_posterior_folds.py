"""Grouped cross-prediction of the posterior study (`experiments.posterior_folds`).

Every galaxy must be a test galaxy exactly once, and no fold's posterior may see (fit, validate or
recalibrate on) one of that fold's test galaxies; the pooled metrics must be the pooled rows' own.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from posterior_toy import BANDS, small_config, toy_frame

from photopop.datasets.sed_table import SEDTable
from photopop.evaluation import posterior_calibration
from photopop.evaluation.calibration import P68
from photopop.evaluation.posterior_calibration import interval_coverage
from photopop.experiments import posterior_folds
from photopop.experiments.posterior import PosteriorStudyConfig, run_posterior_study
from photopop.experiments.posterior_folds import posterior_fold_splits
from photopop.io import read_table
from photopop.training.posterior_fit import SEDPosterior


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fold_splits_partition_galaxies(seed):
    rng = np.random.default_rng(seed)
    gal = np.repeat(rng.permutation(40) + 100, rng.integers(1, 30, size=40))  # uneven galaxy sizes, ids not 0..n
    splits = posterior_fold_splits(gal, 4, 0.3, seed)
    seen = np.concatenate([test for _, _, test in splits])
    assert np.array_equal(np.sort(seen), np.arange(gal.size))  # every row a test row exactly once
    for pool, calib, test in splits:
        g_pool, g_cal, g_test = (set(gal[i]) for i in (pool, calib, test))
        assert not (g_pool & g_cal or g_pool & g_test or g_cal & g_test)  # whole galaxies
        assert np.array_equal(np.sort(np.r_[pool, calib, test]), np.arange(gal.size))
        assert len(g_cal) >= 1 and len(g_pool) >= 1
    again = posterior_fold_splits(gal, 4, 0.3, seed)
    assert all(np.array_equal(a, b) for s, t in zip(splits, again) for a, b in zip(s, t))
    other = posterior_fold_splits(gal, 4, 0.3, seed + 10)
    assert not all(np.array_equal(s[2], t[2]) for s, t in zip(splits, other))


def _study_config(folds: int) -> PosteriorStudyConfig:
    return PosteriorStudyConfig(seed=3, n_samples=100, compare_ensemble=False, mag_shifts=(5.0,), ood_ssp_folder="",
                                folds=folds, posterior=small_config(seed=0, max_epochs=2))


def test_folds_cover_every_galaxy_once_and_never_calibrate_on_test(tmp_path, monkeypatch):
    df = toy_frame(600, seed=5, rows_per_galaxy=20)  # 30 galaxies
    table = SEDTable(spaxels=df, meta={"bands": BANDS})
    seen: list[tuple[set, set]] = []
    fit = SEDPosterior.fit

    def spy(self, data, **kw):
        g = data.spaxels["galaxy_id"].to_numpy()
        seen.append((set(g), set(g[kw["calib_idx"]])))
        return fit(self, data, **kw)

    monkeypatch.setattr(SEDPosterior, "fit", spy)
    # 20 one-spaxel-per-galaxy SBC picks instead of 200 (the KS tests dominate a toy study's time)
    for mod in (posterior_calibration, posterior_folds):
        monkeypatch.setattr(mod, "grouped_sbc_pvalue", functools.partial(posterior_calibration.grouped_sbc_pvalue,
                                                                          n_rep=20))
    out = tmp_path / "study"
    m = run_posterior_study(table, _study_config(3), out)
    pred = read_table(out / "test_predictions.parquet")
    assert np.array_equal(np.sort(pred["row"].to_numpy()), np.arange(len(df)))
    assert len(seen) == 3
    for k, (train_gal, cal_gal) in enumerate(seen):
        test_gal = set(pred.loc[pred["fold"] == k, "galaxy_id"])
        assert test_gal and not (train_gal & test_gal)  # neither fitted, validated nor recalibrated on
        assert cal_gal and cal_gal <= train_gal
        assert train_gal | test_gal == set(df["galaxy_id"])
    # pooled coverage is that of all out-of-fold rows together
    rows = pd_concat_rows(out, 3)
    cov = interval_coverage(rows["log_age_true"], rows["log_age_lo68"], rows["log_age_hi68"])
    assert m["posterior"]["per_target"]["log_age"]["coverage_68"] == pytest.approx(cov, abs=1e-12)
    assert m["posterior"]["n"] == len(df) and len(m["per_fold"]) == 3
    assert abs(cov - P68) < 0.5  # a number, not NaN
    # the fold standard error is the spread of the folds' own coverages / sqrt(K)
    per_fold = [f["coverage"]["log_age"]["68"] for f in m["per_fold"]]
    rec = m["posterior"]["per_target"]["log_age"]
    assert rec["coverage_68_fold_se"] == pytest.approx(np.std(per_fold, ddof=1) / np.sqrt(3), abs=1e-12)
    # the factors and the OOD threshold were fitted with galaxies as the unit
    assert all(len(f["quantile_levels"]["68"]) == 2 for f in m["per_fold"])
    assert all(lv is not None for lv in m["ood"]["threshold_level"])
    # resume: a second run reuses every fold and gives the same numbers
    msgs: list[str] = []
    m2 = run_posterior_study(table, _study_config(3), out, progress=msgs.append)
    assert sum("reused" in s for s in msgs) == 3
    assert json.dumps(m2["posterior"], sort_keys=True) == json.dumps(m["posterior"], sort_keys=True)
    # same config, fresh folder -> same numbers
    monkeypatch.setattr(SEDPosterior, "fit", fit)
    m3 = run_posterior_study(table, _study_config(3), tmp_path / "again")
    assert json.dumps(m3["posterior"], sort_keys=True) == json.dumps(m["posterior"], sort_keys=True)


def pd_concat_rows(out, folds):
    import pandas as pd

    return pd.concat([read_table(out / "folds" / f"fold_{k}" / "rows.parquet") for k in range(folds)])


def test_study_table_must_have_galaxies_and_targets():
    from photopop.errors import InputError
    from photopop.experiments.posterior_ood import load_study_table

    df = toy_frame(60, seed=1)
    tab, frame = load_study_table(SEDTable(spaxels=df.iloc[5:], meta={"bands": BANDS}), ["log_age", "zh"])
    assert list(frame.index) == list(range(55)) and len(tab.spaxels) == 55
    for drop in ("galaxy_id", "zh"):
        with pytest.raises(InputError, match=repr(drop)):
            load_study_table(SEDTable(spaxels=df.drop(columns=[drop]), meta={"bands": BANDS}), ["log_age", "zh"])
