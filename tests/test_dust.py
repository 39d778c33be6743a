"""Dust attenuation curves and their effect on composite spectra."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from photopop.errors import InputError
from photopop.populations import (SSPGrid, Burst, Calzetti, CharlotFall, Extinction, NoDust, calzetti_k, compose,
                                  get_dust)


@pytest.fixture(scope="module")
def grid() -> SSPGrid:
    return SSPGrid.bc03(wave_range=(3000, 10000))


def test_calzetti_defining_values():
    # k(V) = R_V and k(B) - k(V) = 1 (the definition of R_V = A_V / E(B-V)) within the fit's precision
    kb, kv = calzetti_k(np.array([4400.0, 5500.0]))
    assert kv == pytest.approx(4.05, abs=0.01)
    assert kb - kv == pytest.approx(1.0, abs=0.03)
    # Calzetti (2000) eq. 4 evaluated by hand at 0.15 micron: 2.659 * 2.3630 + 4.05 = 10.33
    assert calzetti_k(np.array([1500.0]))[0] == pytest.approx(10.33, abs=0.02)
    # red branch at 1 micron: 2.659 * (-1.857 + 1.040) + 4.05
    assert calzetti_k(np.array([10000.0]))[0] == pytest.approx(2.659 * (-0.817) + 4.05, rel=1e-9)


def test_calzetti_tails_are_continuous_positive_power_laws():
    w = np.array([1200.0, 1199.9, 22000.0, 22000.1])
    k = calzetti_k(w)
    assert k[1] == pytest.approx(k[0], rel=1e-3) and k[3] == pytest.approx(k[2], rel=1e-3)
    wide = np.logspace(np.log10(500), np.log10(1e5), 400)
    kw = calzetti_k(wide)
    assert np.all(kw > 0) and np.all(np.diff(kw) < 0)
    # a power law outside: constant log slope
    far = calzetti_k(np.array([30000.0, 60000.0, 120000.0]))
    s = np.diff(np.log(far))
    assert s[0] == pytest.approx(s[1], rel=1e-9)


def test_charlot_fall_power_laws():
    d = CharlotFall()
    w = np.array([3000.0, 5500.0, 9000.0])
    np.testing.assert_allclose(d.diffuse(w), (w / 5500) ** -0.7)
    np.testing.assert_allclose(d.birth(w), (0.7 / 0.3) * (w / 5500) ** -0.7)
    dc = CharlotFall(index_bc=-1.3, mu=0.5)
    np.testing.assert_allclose(dc.birth(w), (w / 5500) ** -1.3)
    with pytest.raises(InputError):
        CharlotFall(mu=0.0)


def test_extinction_uses_dust_extinction_inside_its_range():
    from dust_extinction.parameter_averages import G23

    ext = Extinction("G23", r_v=3.1)
    w = np.array([2000.0, 4400.0, 8000.0, 20000.0])
    ref = G23(Rv=3.1)
    expected = ref(w * u.AA) / ref(np.array([5500.0]) * u.AA)[0]
    np.testing.assert_allclose(ext.diffuse(w), expected, rtol=1e-10)
    assert np.all(ext.diffuse(np.array([500.0, 1e6])) > 0)  # beyond x_range: power-law tails


def test_get_dust_names():
    assert isinstance(get_dust("calzetti"), Calzetti)
    assert isinstance(get_dust("cf00"), CharlotFall)
    assert isinstance(get_dust(None), NoDust) and isinstance(get_dust("none"), NoDust)
    assert isinstance(get_dust("F99"), Extinction)
    with pytest.raises(InputError, match="unknown dust model"):
        get_dust("martian")


@pytest.mark.parametrize("a_v", [0.3, 1.7])
def test_attenuated_over_intrinsic_is_ten_to_minus_0p4_a_lambda(grid, a_v):
    old = Burst(age_gyr=[3.0, 8.0])
    bare = compose(grid, old, zh=[0.0, -0.5], dust="none", dtype="float64")
    dusty = compose(grid, old, zh=[0.0, -0.5], a_v=a_v, dust="calzetti", dtype="float64")
    a_lam = a_v * calzetti_k(grid.wavelength_aa) / 4.05
    np.testing.assert_allclose(dusty.flux / bare.flux, np.broadcast_to(10 ** (-0.4 * a_lam), bare.flux.shape),
                               rtol=1e-10)
    # dims and reddens: blue loses more than red
    ratio = dusty.flux / bare.flux
    assert np.all(ratio < 1) and np.all(np.diff(ratio[0][::50]) > 0)
    assert dusty.labels.a_v_eff == pytest.approx(a_v, abs=0.002)
    assert np.all(dusty.labels.a_v == a_v)


def test_birth_clouds_attenuate_only_young_stars(grid):
    young = Burst(age_gyr=0.003)  # 3 Myr
    old = Burst(age_gyr=3.0)
    w = grid.wavelength_aa
    cf = CharlotFall()
    for sfh, extra in ((young, True), (old, False)):
        bare = compose(grid, sfh, zh=0.0, dust="none", dtype="float64").flux[0]
        dusty = compose(grid, sfh, zh=0.0, a_v=0.4, dust=cf, dtype="float64").flux[0]
        a_lam = 0.4 * (cf.diffuse(w) + (cf.birth(w) if extra else 0.0))
        np.testing.assert_allclose(dusty / bare, 10 ** (-0.4 * a_lam), rtol=1e-10)
    # Calzetti with extra young attenuation: A_V,young = A_V (1 + young_extra)
    cz = Calzetti(young_extra=1.0)
    bare = compose(grid, young, zh=0.0, dust="none", dtype="float64").flux[0]
    dusty = compose(grid, young, zh=0.0, a_v=0.5, dust=cz, dtype="float64").flux[0]
    np.testing.assert_allclose(dusty / bare, 10 ** (-0.4 * 1.0 * calzetti_k(w) / 4.05), rtol=1e-10)


def test_attenuated_light_weights_shift_towards_old_stars(grid):
    sfh = Burst(age_gyr=[0.003], mass=1.0)
    from photopop.populations import Combined

    mix = Combined([Burst(age_gyr=0.003, mass=0.01), Burst(age_gyr=5.0, mass=1.0)])
    intr = compose(grid, mix, zh=0.0, a_v=1.0, dust="cf00")
    att = compose(grid, mix, zh=0.0, a_v=1.0, dust="cf00", light="attenuated")
    assert att.labels.log_age[0] > intr.labels.log_age[0]  # young light is hidden in birth clouds
    assert intr.labels.a_v_eff[0] > 1.0  # birth clouds add to the ISM A_V
    assert compose(grid, sfh, zh=0.0, a_v=0.0).labels.a_v_eff[0] == pytest.approx(0.0, abs=1e-12)
