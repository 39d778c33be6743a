"""The CNN-against-forest verdict of the reports: computed from the metrics, never typed in."""

import numpy as np
import pandas as pd
import pytest

from photopop.evaluation.comparisons import cnn_vs_forest, describe_cnn_vs_forest
from photopop.evaluation.metrics import robust_sigma


def _pred(cnn_sd=(0.1, 0.1, 0.1, 0.4), rf_sd=0.2, seed=0, n_gal=40, per=20):
    """Spaxels of `n_gal` galaxies in 4 folds (whole galaxies); residual scatter per fold for the CNN."""
    rng = np.random.default_rng(seed)
    gid = np.repeat(np.arange(n_gal), per)
    fold = gid % 4
    truth = rng.normal(9.5, 0.4, gid.size)
    cnn = truth + rng.normal(0, 1, gid.size) * np.asarray(cnn_sd)[fold]
    rf = truth + rng.normal(0, rf_sd, gid.size)
    return pd.DataFrame({"galaxy_id": gid, "fold": fold, "log_age_true": truth, "log_age_cnn": cnn,
                         "log_age_random_forest": rf})


def _metrics(p):
    return {m: {"log_age": {"robust_sigma": robust_sigma(p[f"log_age_{m}"] - p.log_age_true)}}
            for m in ("cnn", "random_forest")} | {"pcc_residuals": {"cnn": 0.1}}


def test_verdict_from_metrics_and_folds():
    p = _pred()
    m = _metrics(p)
    row = cnn_vs_forest(m, p)["log_age"]
    assert row["cnn"] == pytest.approx(m["cnn"]["log_age"]["robust_sigma"])
    assert row["difference"] == pytest.approx(row["cnn"] - row["random_forest"])
    assert row["cnn_ahead"] is bool(row["cnn"] < row["random_forest"])
    assert row["folds"] == 4 and row["folds_cnn_ahead"] == 3  # fold 3 is the forest's
    lo, hi = row["difference_ci95"]
    assert lo <= row["difference"] <= hi
    assert row == cnn_vs_forest(m, p)["log_age"]  # seeded: the same interval again
    text = describe_cnn_vs_forest({"log_age": row}, "Set B", {"cnn": "colour", "random_forest": "mag"})
    assert text.startswith("CNN against random forest on Set B (CNN on colour, forest on mag)")
    assert "3 of 4 folds" in text and f"{row['cnn']:.3f} vs {row['random_forest']:.3f}" in text


def test_verdict_needs_the_galaxy_interval_to_exclude_zero():
    clear = _pred(cnn_sd=(0.1,) * 4, rf_sd=0.2)  # half / 1.5x the forest's scatter: decided in 20 of 20 seeds
    c = cnn_vs_forest(_metrics(clear), clear)["log_age"]
    assert c["difference_ci95"][1] < 0 and "log_age: CNN ahead" in describe_cnn_vs_forest({"log_age": c})
    level = _pred(cnn_sd=(0.2,) * 4, rf_sd=0.2)  # equal scatter: over data seeds 0-19 the interval holds 0 in 19
    c = cnn_vs_forest(_metrics(level), level)["log_age"]
    lo, hi = c["difference_ci95"]
    assert lo < 0 < hi and "level within the galaxy-bootstrap interval" in describe_cnn_vs_forest({"log_age": c})
    behind = _pred(cnn_sd=(0.3,) * 4, rf_sd=0.2)
    c = cnn_vs_forest(_metrics(behind), behind)["log_age"]
    assert c["difference_ci95"][0] > 0 and "forest ahead" in describe_cnn_vs_forest({"log_age": c})
    # metrics alone: the sign decides, and no interval is claimed
    worse = {"cnn": {"zh": {"robust_sigma": 0.2}}, "random_forest": {"zh": {"robust_sigma": 0.15}}}
    text = describe_cnn_vs_forest(cnn_vs_forest(worse))
    assert "forest ahead or level (0.200 vs 0.150 dex)" in text and "galaxies resampled" not in text
    assert cnn_vs_forest({"cnn": {}}) == {} and describe_cnn_vs_forest({}) == ""
