"""Star-formation histories (mass-conserving binning) and chemical histories (metallicity split)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from photopop.errors import InputError
from photopop.populations import (SSPGrid, Burst, Combined, Constant, ConstantZ, DelayedTau, Exponential,
                                  LinearLogAgeZ, Tabulated, TabulatedZ, component_weights, metallicity_split,
                                  with_burst)
from photopop.populations.chemistry import zh_per_age
from photopop.populations.sfh import weights_mean_sfr

GYR = 1e9


def toy_grid(ages=None) -> SSPGrid:
    ages = np.logspace(6, 10.2, 43) if ages is None else ages
    return SSPGrid(ages, [-1.0, 0.0, 0.3], [4000.0, 5000.0, 6000.0], np.ones((3, ages.size, 3)), name="toy",
                   age_lower_edge_yr=0.0)


def sfr_delayed(t, a, tau):  # lookback t (yr): T = a - t
    T = a - t
    return np.where((T >= 0) & (t >= 0), T * np.exp(-T / tau), 0.0)


def sfr_exp(t, a, tau):
    T = a - t
    return np.where((T >= 0) & (t >= 0), np.exp(-T / tau), 0.0)


@pytest.mark.parametrize("cls, sfr", [(DelayedTau, sfr_delayed), (Exponential, sfr_exp)])
def test_parametric_cumulative_mass_matches_quadrature(cls, sfr):
    a, tau = np.array([10.0, 3.0, 0.5]), np.array([1.0, 4.0, 0.05])
    sfh = cls(age_start_gyr=a, tau_gyr=tau, mass=[1.0, 2.0, 5e9])
    t = np.array([1e6, 1e7, 1e8, 4e8, 2e9, 5e9, 2e10])
    got = sfh.cumulative_mass(t)
    for i in range(3):
        total = quad(sfr, 0, a[i] * GYR, args=(a[i] * GYR, tau[i] * GYR), limit=200)[0]
        for j, tj in enumerate(t):
            part = quad(sfr, 0, min(tj, a[i] * GYR), args=(a[i] * GYR, tau[i] * GYR), limit=200,
                        points=[a[i] * GYR - 10 * tau[i] * GYR] if tau[i] < 0.1 else None)[0]
            assert got[i, j] == pytest.approx(sfh.mass[i] * part / total, rel=1e-6, abs=1e-12 * sfh.mass[i])


@pytest.mark.parametrize("sfh", [
    DelayedTau(age_start_gyr=[12.0, 1.0, 0.2], tau_gyr=[2.0, 0.1, 10.0], mass=[1.0, 3.0, 1e10]),
    Exponential(age_start_gyr=[12.0, 1.0], tau_gyr=[0.5, 100.0]),
    Constant(age_start_gyr=[5.0, 0.05], mass=[2.0, 1.0]),
    Constant(age_start_gyr=8.0, age_end_gyr=2.0),
])
def test_weights_conserve_mass_on_any_grid(sfh):
    coarse = toy_grid()
    fine = toy_grid(np.logspace(6, 10.2, 421))
    wc, wf = sfh.weights(coarse), sfh.weights(fine)
    np.testing.assert_allclose(wc.sum(axis=1), sfh.total_mass, rtol=1e-10)
    np.testing.assert_allclose(wf.sum(axis=1), sfh.total_mass, rtol=1e-10)
    assert np.all(wc >= 0)
    # each coarse bin holds exactly what the fine bins inside it hold
    ec, ef = coarse.age_bin_edges(), fine.age_bin_edges()
    cf = sfh.cumulative_mass(ef)
    np.testing.assert_allclose(np.diff(sfh.cumulative_mass(ec), axis=1), wc, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(np.diff(cf, axis=1), wf, rtol=1e-9, atol=1e-15)


def test_constant_sfr_averages_equal_its_rate():
    sfh = Constant(age_start_gyr=[10.0, 2.0], mass=[1e10, 4e8])
    rate = np.array([1e10 / 1e10, 4e8 / 2e9])
    np.testing.assert_allclose(sfh.rate, rate)
    np.testing.assert_allclose(sfh.mean_sfr(1e8), rate)
    np.testing.assert_allclose(sfh.mean_sfr(1e7), rate)
    ended = Constant(age_start_gyr=1.0, age_end_gyr=0.05)
    assert ended.mean_sfr(1e7)[0] == 0.0
    assert ended.mean_sfr(1e8)[0] == pytest.approx(0.05e9 / 0.95e9 / 1e8)
    # binned weights give the same SFR_100 when bin edges fall on 100 Myr (constant within bins anyway)
    g = toy_grid()
    np.testing.assert_allclose(weights_mean_sfr(sfh.weights(g), g.age_bin_edges(), 1e8), rate, rtol=1e-9)


def test_burst_at_grid_age_and_between():
    g = toy_grid()
    b = Burst(age_gyr=[g.ages_yr[20] / GYR, 3.3], mass=[2.0, 1.0])
    w = b.weights(g)
    assert w[0, 20] == pytest.approx(2.0) and np.count_nonzero(w[0]) == 1
    assert np.count_nonzero(w[1]) == 2 and w[1].sum() == pytest.approx(1.0)
    assert (w[1] @ g.log_ages) == pytest.approx(np.log10(3.3e9))  # mass-weighted log age is exact
    with pytest.raises(InputError, match="outside"):
        Burst(age_gyr=30.0).weights(g)
    wc = Burst(age_gyr=30.0).weights(g, outside="clip")
    assert wc[0, -1] == pytest.approx(1.0)


def test_mass_outside_grid_is_an_error_or_an_explicit_clip():
    g = SSPGrid(np.logspace(7.8, 10.25, 50), [0.0], [5000.0, 6000.0], np.ones((1, 50, 2)), name="old-only")
    sfh = Constant(age_start_gyr=1.0)
    with pytest.raises(InputError, match="younger than old-only"):
        sfh.weights(g)
    lo = g.age_bin_edges()[0]
    w = sfh.weights(g, outside="clip")
    assert w.sum() == pytest.approx(1.0)
    assert w[0, 0] == pytest.approx(sfh.cumulative_mass([g.age_bin_edges()[1]])[0, 0])
    assert lo == pytest.approx(10 ** (7.8 - 0.025), rel=1e-3)
    with pytest.raises(InputError, match="outside must"):
        sfh.weights(g, outside="extrapolate")


def test_tabulated_sfh_integrates_exactly():
    t = np.array([0.0, 1e8, 1e9, 5e9])
    sfr = np.array([[1.0, 1.0, 3.0, 0.0], [0.0, 2.0, 2.0, 2.0]])
    sfh = Tabulated(lookback_yr=t, sfr=sfr)
    for i in range(2):
        f = lambda x, i=i: np.interp(x, t, sfr[i])  # noqa: E731
        assert sfh.total_mass[i] == pytest.approx(quad(f, 0, 5e9, points=t[1:-1])[0], rel=1e-10)
        for tj in (5e7, 3e8, 2e9):
            assert sfh.cumulative_mass([tj])[i, 0] == pytest.approx(quad(f, 0, tj, points=t[1:-1])[0], rel=1e-10)
    assert sfh.weights(toy_grid()).sum() == pytest.approx(sfh.total_mass.sum())
    with pytest.raises(InputError):
        Tabulated(lookback_yr=[1.0, 0.5], sfr=[1.0, 1.0])


def test_burst_on_top_and_combined():
    base = DelayedTau(age_start_gyr=[10.0, 8.0], tau_gyr=2.0, mass=[1.0, 5.0])
    sfh = with_burst(base, burst_age_gyr=0.1, burst_fraction=[0.1, 0.5])
    np.testing.assert_allclose(sfh.total_mass, [1.0, 5.0])
    g = toy_grid()
    w = sfh.weights(g)
    np.testing.assert_allclose(w.sum(axis=1), [1.0, 5.0])
    expected = base.weights(g) * np.array([[0.9], [0.5]]) + Burst(age_gyr=0.1, mass=[0.1, 2.5]).weights(g)
    np.testing.assert_allclose(w, expected, rtol=1e-12)
    c = Combined([Constant(age_start_gyr=1.0, mass=1.0), Burst(age_gyr=[2.0, 3.0])])
    assert c.n == 2 and np.allclose(c.total_mass, 2.0)


def test_sfh_parameter_errors():
    with pytest.raises(InputError, match="inconsistent"):
        DelayedTau(age_start_gyr=[1.0, 2.0], tau_gyr=[1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="> 0"):
        DelayedTau(age_start_gyr=1.0, tau_gyr=0.0)
    with pytest.raises(InputError, match="non-finite"):
        Exponential(age_start_gyr=np.nan, tau_gyr=1.0)


# ------------------------------------------------------------------ chemistry
def test_metallicity_split_is_linear_in_zh():
    gz = np.array([-2.3, -1.0, 0.0, 0.4])
    j, f = metallicity_split(gz, np.array([-1.0, -0.5, 0.4, -2.3, 0.1]))
    np.testing.assert_array_equal(j, [1, 1, 2, 0, 2])
    np.testing.assert_allclose(f, [0.0, 0.5, 1.0, 0.0, 0.25])
    with pytest.raises(InputError, match="outside the SSP grid"):
        metallicity_split(gz, np.array([0.5]))
    j, f = metallicity_split(gz, np.array([0.5, -3.0]), z_outside="clip")
    np.testing.assert_allclose(gz[j] * (1 - f) + gz[j + 1] * f, [0.4, -2.3])


def test_component_weights_conserve_mass_and_mean_zh():
    g = toy_grid()
    sfh = DelayedTau(age_start_gyr=[9.0, 4.0], tau_gyr=[1.0, 2.0])
    aw = sfh.weights(g)
    chem = LinearLogAgeZ(zh_ref=[0.0, -0.2], slope=[-0.3, 0.0], log_age_ref=9.0)
    zh = zh_per_age(chem, g.log_ages)
    np.testing.assert_allclose(zh[0], -0.3 * (g.log_ages - 9.0))
    w = component_weights(aw, g.zh, np.clip(zh, -1, 0.3))
    np.testing.assert_allclose(w.sum(axis=1), aw)
    pos = aw > 0
    mean_zh = np.einsum("sza,z->sa", w, g.zh)[pos] / aw[pos]
    np.testing.assert_allclose(mean_zh, np.clip(zh, -1, 0.3)[pos], atol=1e-12)
    t = TabulatedZ(log_age_yr=[8.0, 10.0], zh=[0.2, -0.8])
    np.testing.assert_allclose(t.zh_at([7.0, 9.0, 11.0])[0], [0.2, -0.3, -0.8])
    np.testing.assert_allclose(ConstantZ([0.1, 0.2]).zh_at([8.0, 9.0]), [[0.1, 0.1], [0.2, 0.2]])
