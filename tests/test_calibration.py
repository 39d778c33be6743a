"""Calibration metrics against draws with known answers."""

import math

import numpy as np
import pytest

from photopop.errors import InputError
from photopop.evaluation.calibration import (P68, P95, calibration_summary, coverage, coverage_curve,
                                             coverage_error, fit_sigma_scale, pit, pit_histogram, z_std)


def _draws(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=n)
    sigma = rng.uniform(0.1, 2.0, size=n)
    y = mu + sigma * rng.normal(size=n)
    return y, mu, sigma


def test_constants():
    assert P68 == pytest.approx(0.682689, abs=1e-6)
    assert P95 == pytest.approx(0.954500, abs=1e-6)


# The statistical bounds in this file hold over 40 seeds of _draws, at worst at 81% of their width
# (numpy float64 on seeded draws: no dependence on threads or BLAS kernels).
def test_calibrated_gaussians():
    y, mu, sigma = _draws()
    n = y.size
    assert abs(coverage(y, mu, sigma, 1) - P68) < 3 * coverage_error(P68, n)
    assert abs(coverage(y, mu, sigma, 2) - P95) < 3 * coverage_error(P95, n)
    assert z_std(y, mu, sigma) == pytest.approx(1.0, abs=0.02)
    dens, edges = pit_histogram(pit(y, mu, sigma), 10)
    assert edges[0] == 0 and edges[-1] == 1 and dens.mean() == pytest.approx(1.0)
    # each bin holds 10% +- binomial error
    assert np.all(np.abs(dens / 10 - 0.1) < 4 * math.sqrt(0.09 / n))
    lv, emp = coverage_curve(y, mu, sigma)
    assert np.all(np.abs(emp - lv) < 0.02)


def test_recalibration_recovers_factor_two():
    y, mu, sigma = _draws(seed=1)
    small = sigma / 2.0  # sigmas 2x too small
    assert coverage(y, mu, small) < 0.45
    s = fit_sigma_scale(y, mu, small)
    assert s == pytest.approx(2.0, rel=0.03)
    y2, mu2, sigma2 = _draws(seed=2)  # apply to fresh rows
    summ = calibration_summary(y2, mu2, sigma2 / 2.0, scale=s)
    assert abs(summ["coverage_68"] - P68) < 0.015 and abs(summ["coverage_95"] - P95) < 0.01
    assert summ["coverage_68_raw"] < 0.45 and summ["n"] == y2.size
    assert summ["z_std"] == pytest.approx(1.0, abs=0.04)


def test_pit_shapes_and_errors():
    y, mu, sigma = _draws(seed=3)
    d_small, _ = pit_histogram(pit(y, mu, sigma / 3), 10)
    assert d_small[0] > 2 and d_small[-1] > 2 and d_small[5] < 0.6  # U shape: sigmas too small
    with pytest.raises(InputError):
        coverage([1.0, 2.0], [1.0], [1.0, 1.0])
    with pytest.raises(InputError):
        coverage([1.0], [1.0], [0.0])
    with pytest.raises(InputError):
        fit_sigma_scale([1.0], [1.0], [1.0])
    # NaN rows are ignored
    assert coverage([0.0, np.nan], [0.0, 0.0], [1.0, 1.0]) == 1.0
