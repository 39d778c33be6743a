"""Posterior calibration metrics against known answers: exact Gaussian draws are calibrated, narrow ones are not."""

import numpy as np
import pytest

from photopop.errors import InputError
from photopop.evaluation.posterior_calibration import (
    interval_coverage,
    posterior_calibration,
    posterior_degeneracy,
    width_at_coverage,
)


def gaussian_case(n=600, s=1000, width=1.0, seed=0):
    """Truths y ~ N(m, 1) and draws from N(m, width^2) per object: calibrated for width 1."""
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, 2))
    y = m + rng.normal(size=(n, 2))
    draws = m[None] + width * rng.normal(size=(s, n, 2))
    return y, draws


def test_interval_coverage_counts_inside():
    assert interval_coverage([0.0, 1.0, 2.0, 5.0], [0, 0, 0, 0], [2, 2, 2, 2]) == 0.75


def test_calibrated_draws_pass():
    y, draws = gaussian_case()
    m = posterior_calibration(y, draws, ["log_age", "zh"], groups=np.arange(len(y)) // 10)
    for t in ("log_age", "zh"):
        c = m["per_target"][t]
        # binomial sd of a coverage on 600 rows is <= 0.02: 4 sd
        assert abs(c["coverage_68"] - 0.683) < 0.08 and abs(c["coverage_95"] - 0.954) < 0.04
        assert c["coverage_68_err"] > 0
        assert c["median_width_68"] == pytest.approx(2.0, rel=0.05)  # +-1 sigma of N(., 1)
    assert min(m["sbc"]["ks_pvalue"]) > 1e-3
    assert abs(m["tarp"]["atc"]) < 0.05


def test_too_narrow_draws_fail():
    y, draws = gaussian_case(width=0.5)
    m = posterior_calibration(y, draws, ["log_age", "zh"])
    assert m["per_target"]["zh"]["coverage_68"] < 0.5
    assert max(m["sbc"]["ks_pvalue"]) < 1e-6
    assert m["tarp"]["atc"] < -0.05


def test_width_at_coverage_undoes_a_scale():
    rng = np.random.default_rng(1)
    y = rng.normal(size=4000)
    w, s = width_at_coverage(y, np.zeros_like(y), np.full_like(y, 0.5))
    assert s == pytest.approx(2.0, rel=0.06) and w == pytest.approx(2.0, rel=0.06)


def test_degeneracy_reports_residual_correlation():
    rng = np.random.default_rng(2)
    e = rng.multivariate_normal([0, 0], [[1, -0.6], [-0.6, 1]], size=5000)
    d = posterior_degeneracy(np.zeros((5000, 2)), e, np.full(5000, -0.5))
    assert d["residual_corr"] == pytest.approx(-0.6, abs=0.04) and d["mean_object_corr"] == -0.5


def test_shape_mismatch_is_refused():
    with pytest.raises(InputError, match="samples must be"):
        posterior_calibration(np.zeros((5, 2)), np.zeros((10, 4, 2)), ["a", "b"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_rank_per_galaxy_sees_through_shared_errors(seed):
    """Truths with a per-galaxy error shared by its 80 spaxels, draws of the right total width: calibrated
    across galaxies, yet the all-spaxel KS test rejects (correlated ranks); one rank per galaxy does not.
    A posterior biased by 1.5 sigma in every galaxy is rejected by both."""
    from photopop.evaluation.posterior_calibration import (
        grouped_sbc_pvalue,
        sbc_ranks,
        sbc_summary,
    )

    rng = np.random.default_rng(seed)
    n_gal, per, s = 60, 80, 500
    g = np.repeat(np.arange(n_gal), per)
    m = rng.normal(size=(g.size, 1))
    y = m + rng.normal(size=(n_gal, 1))[g] + 0.3 * rng.normal(size=(g.size, 1))
    draws = m[None] + np.sqrt(1.09) * rng.normal(size=(s, g.size, 1))
    ranks = sbc_ranks(y, draws)
    assert sbc_summary(ranks, s)["ks_pvalue"][0] < 1e-4
    assert grouped_sbc_pvalue(ranks, g, s, seed=seed)["ks_pvalue"][0] > 0.05
    biased = sbc_ranks(y, draws + 1.5 * np.sqrt(1.09))
    assert grouped_sbc_pvalue(biased, g, s, seed=seed)["ks_pvalue"][0] < 1e-3
