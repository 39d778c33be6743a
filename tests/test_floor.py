"""The information floor: likelihood weighting against known answers, the prior library, and the floor bound."""

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from photopop.errors import InputError
from photopop.models.floor import FloorConfig, InformationFloor, survey_config_of
from photopop.models.likelihood import LikelihoodWeighting


def _lib(n=400, nb=8, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.uniform(0.2, 2.0, size=(n, nb))
    y = np.column_stack([rng.uniform(8, 10, n), rng.uniform(-1, 0.4, n)])
    return m, y


def test_noise_free_truth_in_library_is_returned():
    m, y = _lib()
    lw = LikelihoodWeighting(m, y, ["log_age", "zh"])
    d = np.vstack([3.7 * m[42], 0.01 * m[7]])
    res = lw.predict(d, 1e-7 * d)
    assert np.allclose(res[["log_age_mean", "zh_mean"]].to_numpy(), y[[42, 7]], atol=1e-9)
    assert np.allclose(res["ess"], 1.0)
    assert np.allclose(res["log_age_std"], 0.0, atol=1e-6)
    # the median lies in the histogram bin of the true value
    width = (y[:, 0].max() - y[:, 0].min()) / 512
    assert np.all(np.abs(res["log_age_p50"] - y[[42, 7], 0]) <= width)


def test_zero_errors_get_the_noise_free_kernel_and_measured_errors_are_kept():
    """Noise-free photometry (magerr 0, the paper's setting) is weighed with the 0.01 mag kernel, not refused."""
    from photopop.simulate.library import SpaxelLibrary

    m, y = _lib()
    mags = -2.5 * np.log10(m)
    lib = SpaxelLibrary(fluxes=m, labels=pd.DataFrame({"log_age": y[:, 0], "zh": y[:, 1]}),
                        bands=[f"b{i}" for i in range(m.shape[1])], redshifts=np.zeros(len(m)), meta={})
    floor = InformationFloor(FloorConfig(n_library=len(m))).fit(lib)
    exact = floor.predict(mags[[42, 7]], np.zeros((2, m.shape[1])))
    kernel = floor.predict(mags[[42, 7]], np.full((2, m.shape[1]), 0.01))
    np.testing.assert_allclose(exact.to_numpy(), kernel.to_numpy())
    assert np.allclose(exact["log_age_mean"], y[[42, 7], 0], atol=0.05)
    wide = floor.predict(mags[[42, 7]], np.full((2, m.shape[1]), 0.3))
    assert not np.allclose(wide["log_age_std"], exact["log_age_std"])  # measured errors are used as given
    with pytest.raises(InputError, match="noise_free_error_mag"):
        FloorConfig(noise_free_error_mag=0.0).check()


def test_toy_gaussian_posterior_mean_matches_analytic():
    """1-D: theta ~ N(mu0, tau^2), d = theta + N(0, s^2): posterior mean and sd are known in closed form."""
    rng = np.random.default_rng(1)
    mu0, tau, s = 0.3, 1.0, 0.5
    theta = mu0 + tau * rng.standard_normal(200_000)
    lw = LikelihoodWeighting(theta[:, None], theta, ["theta"], scale="fixed", max_block_pairs=2**20)
    d = np.array([[-1.0], [0.3], [1.2], [2.5]])
    res = lw.predict(d, np.full_like(d, s))
    prec = 1 / tau**2 + 1 / s**2
    mean = (mu0 / tau**2 + d[:, 0] / s**2) / prec
    sd = prec ** -0.5
    mc_err = sd / np.sqrt(res["ess"].to_numpy())  # Monte-Carlo error of a self-normalised weighted mean
    assert np.all(np.abs(res["theta_mean"] - mean) < 5 * mc_err)
    assert np.allclose(res["theta_std"], sd, rtol=0.05)
    # percentiles of a Gaussian posterior: mean -/+ sd at 16/84 per cent
    assert np.allclose(res["theta_p16"], mean - 0.9945 * sd, atol=0.03)
    assert np.allclose(res["theta_p84"], mean + 0.9945 * sd, atol=0.03)


def test_free_scale_marginal_matches_numerical_integral():
    """L_i = int N(d | s m_i, C) ds / s over s > 0, up to a constant common to all entries (Laplace, S/N >> 1)."""
    m, y = _lib(n=5, nb=10, seed=3)
    rng = np.random.default_rng(4)
    m = m[0] * (1 + 0.03 * rng.standard_normal((5, 10))) * np.array([1, 2, 5, 0.3, 1])[:, None]
    lw = LikelihoodWeighting(m, y, ["a", "b"])
    d = 2.0 * m[1] * (1 + 0.05 * rng.standard_normal(10))
    e = 0.02 * np.ones(10)
    ll = lw.log_likelihood(d[None], e[None])[0]
    exact = []
    for k in range(5):
        a = np.sum(m[k] ** 2 / e**2)
        b = np.sum(d * m[k] / e**2)
        sh, ss = b / a, a ** -0.5
        chi2_min = np.sum(((d - sh * m[k]) / e) ** 2)  # brute force, to keep the integrand near 1

        def f(s, k=k, c=chi2_min):
            return np.exp(-0.5 * np.sum(((d - s * m[k]) / e) ** 2) + 0.5 * c) / s

        val, _ = integrate.quad(f, max(sh - 12 * ss, 1e-9), sh + 12 * ss, points=[sh], limit=200)
        exact.append(np.log(val) - 0.5 * chi2_min)
    exact = np.array(exact)
    good = np.isfinite(exact)
    diff = (ll - exact)[good]
    # one constant offset for every entry; the Laplace error is O((sigma_s / s_hat)^2) ~ 1e-4 here
    assert good.sum() == 5
    assert np.ptp(diff) < 1e-2


def test_kernel_on_brightness_prefers_the_right_amplitude():
    m, y = _lib(n=2, nb=6)
    m[1] = m[0] * 10.0  # same shape, ten times brighter: only the brightness tells them apart
    y[1] = y[0] + 1.0
    d = m[1][None] * 1.0
    e = 0.01 * d
    free = LikelihoodWeighting(m, y, ["a", "b"]).predict(d, e)
    kern = LikelihoodWeighting(m, y, ["a", "b"], scale_kernel_dex=0.1).predict(d, e)
    assert free["a_mean"].iloc[0] == pytest.approx(0.5 * (y[0, 0] + y[1, 0]))  # shape alone: a tie
    assert kern["a_mean"].iloc[0] == pytest.approx(y[1, 0], abs=1e-6)


def test_bad_inputs_raise():
    m, y = _lib()
    with pytest.raises(InputError, match="scale"):
        LikelihoodWeighting(m, y, ["a", "b"], scale="nope")
    lw = LikelihoodWeighting(m, y, ["a", "b"])
    with pytest.raises(InputError, match="match the library"):
        lw.predict(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(InputError, match="no band"):
        lw.predict(np.ones((1, 8)), np.full((1, 8), np.nan))
    with pytest.raises(InputError, match="mock IFU"):
        survey_config_of(type("T", (), {"meta": {"kind": "real"}, "config": None})())
    with pytest.raises(InputError, match="before fit"):
        InformationFloor().predict(np.ones((1, 8)), np.ones((1, 8)))
    with pytest.raises(InputError, match="n_library"):
        FloorConfig(n_library=0).check()
