"""Composite spectra: matrix composition, chunking, labels, band-space composition."""

from __future__ import annotations

import numpy as np
import pytest

from photopop.errors import InputError
from photopop.populations import (SSPGrid, Burst, Combined, Constant, DelayedTau, LinearLogAgeZ, compose,
                                  compose_bands, iter_compose)
from photopop.populations.chemistry import component_weights, zh_per_age


@pytest.fixture(scope="module")
def grid() -> SSPGrid:
    return SSPGrid.bc03(wave_range=(3000, 10000))


def test_single_burst_returns_its_own_age_and_metallicity(grid):
    ia, iz = [30, 120, 200], [0, 4, 6]
    comp = compose(grid, Burst(age_gyr=grid.ages_yr[ia] / 1e9), zh=grid.zh[iz], a_v=0.5)
    lab = comp.labels
    np.testing.assert_allclose(lab.log_age, grid.log_ages[ia], rtol=0, atol=1e-12)
    np.testing.assert_allclose(lab.zh, grid.zh[iz], atol=1e-12)
    np.testing.assert_allclose(lab.log_age_mw, grid.log_ages[ia], atol=1e-12)
    np.testing.assert_allclose(lab.zh_mw, grid.zh[iz], atol=1e-12)
    np.testing.assert_allclose(lab.stellar_mass, grid.mass_fraction[iz, ia])
    # one SSP term per spaxel: float32 casts, product, transmission cast and multiply = 5 roundings (<= 3e-7)
    np.testing.assert_allclose(comp.flux, grid.spectra[iz, ia] * 10 ** (-0.4 * 0.5 * _k(grid)), rtol=_f32_rtol(1, 5))


def _k(grid):
    from photopop.populations import calzetti_k

    return calzetti_k(grid.wavelength_aa) / 4.05


def test_two_equal_light_bursts_give_the_mean(grid):
    i1, i2, iz = 100, 180, 4
    light = grid.mean_flux()
    # masses inversely proportional to the SSPs' 5500 A light -> equal light
    m1, m2 = 1.0 / light[iz, i1], 1.0 / light[iz, i2]
    sfh = Combined([Burst(age_gyr=grid.ages_yr[i1] / 1e9, mass=m1), Burst(age_gyr=grid.ages_yr[i2] / 1e9, mass=m2)])
    lab = compose(grid, sfh, zh=grid.zh[iz], dust="none").labels
    assert lab.log_age[0] == pytest.approx(0.5 * (grid.log_ages[i1] + grid.log_ages[i2]), abs=1e-12)
    mf = grid.mass_fraction[iz]
    mw = (m1 * mf[i1] * grid.log_ages[i1] + m2 * mf[i2] * grid.log_ages[i2]) / (m1 * mf[i1] + m2 * mf[i2])
    assert lab.log_age_mw[0] == pytest.approx(mw, abs=1e-12)
    # same age, two metallicities with equal light
    ia = 150
    wz = np.zeros((1, 7, grid.ages_yr.size))
    wz[0, 2, ia], wz[0, 5, ia] = 1 / light[2, ia], 1 / light[5, ia]
    from photopop.populations.labels import weighted_means

    _, zl = weighted_means(wz * light[None], grid.log_ages, grid.zh)
    assert zl[0] == pytest.approx(0.5 * (grid.zh[2] + grid.zh[5]), abs=1e-12)


def test_compose_equals_explicit_sum_over_ssps(grid):
    rng = np.random.default_rng(7)
    n = 5
    sfh = DelayedTau(age_start_gyr=rng.uniform(2, 12, n), tau_gyr=rng.uniform(0.3, 4, n), mass=rng.uniform(1, 3, n))
    chem = LinearLogAgeZ(zh_ref=rng.uniform(-1, 0.2, n), slope=-0.2)
    a_v = rng.uniform(0, 1.2, n)
    comp = compose(grid, sfh, zh=chem, a_v=a_v, dust="cf00", dtype="float64", z_outside="clip")
    w = component_weights(sfh.weights(grid), grid.zh, zh_per_age(chem, grid.log_ages), z_outside="clip")
    from photopop.populations import CharlotFall

    cf = CharlotFall()
    wave = grid.wavelength_aa
    for s in range(n):  # reference: an explicit loop over SSPs
        ref = np.zeros(wave.size)
        for iz in range(7):
            for ia in range(grid.ages_yr.size):
                if w[s, iz, ia] == 0:
                    continue
                a_lam = a_v[s] * (cf.diffuse(wave) + (cf.birth(wave) if grid.ages_yr[ia] < 1e7 else 0))
                ref += w[s, iz, ia] * grid.spectra[iz, ia] * 10 ** (-0.4 * a_lam)
        np.testing.assert_allclose(comp.flux[s], ref, rtol=1e-5)
    np.testing.assert_allclose(comp.labels.mass_formed, sfh.total_mass, rtol=1e-12)
    np.testing.assert_allclose(comp.labels.sfr_100, sfh.mean_sfr(1e8))
    np.testing.assert_allclose(comp.labels.stellar_mass, np.einsum("sza,za->s", w, grid.mass_fraction))


U32 = 2.0 ** -24  # unit roundoff of float32


def _f32_rtol(n_terms: int, extra_ops: int = 6) -> float:
    """Relative error bound gamma_k = k u / (1 - k u) of a float32 sum of `n_terms` non-negative products.

    Every term is w * F >= 0, so |error| <= gamma_k * |sum| (Higham, Accuracy and Stability, eq. 3.5) whatever
    order the BLAS kernel adds in: k = n_terms - 1 additions + `extra_ops` roundings (casting w and F to
    float32, the product, casting and applying the dust transmission, a normalising division).
    """
    k = n_terms + extra_ops
    return k * U32 / (1 - k * U32)


def test_chunks_order_ranges_and_normalisation(grid):
    rng = np.random.default_rng(11)
    n = 37
    sfh = DelayedTau(age_start_gyr=rng.uniform(1, 12, n), tau_gyr=rng.uniform(0.3, 5, n))
    zh = rng.uniform(-2, 0.6, n)
    a_v = rng.uniform(0, 2, n)
    # float32 results depend on the BLAS kernel's summation order (chunk size, wave range, CPU), so each is
    # compared with a float64 reference at the float32 accumulation bound: each spaxel sums at most
    # 2 metallicities x (non-zero age bins) SSP terms. Measured (OPENBLAS_CORETYPE unset/Haswell/Sandybridge/
    # Prescott): max error 44 u against the bound of ~380 u (margin ~8x); a wrong row, range or
    # normalisation is off by >= 1e-3.
    rtol = _f32_rtol(2 * int(np.count_nonzero(sfh.weights(grid), axis=1).max()))
    assert rtol < 5e-5  # the bound stays tight enough to catch a wrong row, range or normalisation
    ref = compose(grid, sfh, zh=zh, a_v=a_v, dtype="float64")
    full = compose(grid, sfh, zh=zh, a_v=a_v, chunk_size=1000)
    small = compose(grid, sfh, zh=zh, a_v=a_v, chunk_size=4)
    np.testing.assert_allclose(full.flux, ref.flux, rtol=rtol)
    np.testing.assert_allclose(small.flux, ref.flux, rtol=rtol)
    np.testing.assert_array_equal(small.labels.log_age, full.labels.log_age)
    # rows stay in input order: spaxel 3 alone gives the same row
    one = compose(grid, DelayedTau(age_start_gyr=sfh.age_start_gyr[3], tau_gyr=sfh.tau_gyr[3]), zh=zh[3],
                  a_v=a_v[3])
    np.testing.assert_allclose(one.flux[0], ref.flux[3], rtol=rtol)
    part = compose(grid, sfh, zh=zh, a_v=a_v, wave_range=(4000, 5000))
    sel = (grid.wavelength_aa >= 4000) & (grid.wavelength_aa <= 5000)
    np.testing.assert_allclose(part.flux, ref.flux[:, sel], rtol=rtol)
    norm = compose(grid, sfh, zh=zh, a_v=a_v, per_unit_mass="surviving")
    np.testing.assert_allclose(norm.flux, ref.flux / ref.labels.stellar_mass[:, None], rtol=rtol)
    rows = np.concatenate([idx for idx, _, _ in iter_compose(grid, sfh, zh=zh, a_v=a_v, chunk_size=10)])
    assert sorted(rows) == list(range(n))
    # an (n, nAge) weights array gives the same spectra as the SFH object
    arr = compose(grid, sfh.weights(grid), zh=zh, a_v=a_v)
    np.testing.assert_allclose(arr.flux, ref.flux, rtol=rtol)
    assert full.flux_quantity.unit.to_string() == "solLum / Angstrom"


def test_compose_bad_inputs(grid):
    sfh = Constant(age_start_gyr=[1.0, 2.0])
    with pytest.raises(InputError, match="inconsistent"):
        compose(grid, sfh, zh=[0.0, 0.0, 0.0])
    with pytest.raises(InputError, match="outside the SSP grid"):
        compose(grid, sfh, zh=1.5)
    assert compose(grid, sfh, zh=1.5, z_outside="clip").labels.zh[0] == pytest.approx(grid.zh[-1])
    with pytest.raises(InputError, match="a_v"):
        compose(grid, sfh, a_v=-1.0)
    with pytest.raises(InputError, match="SFH weights"):
        compose(grid, np.ones((2, 5)))
    with pytest.raises(InputError, match="reference window"):
        compose(SSPGrid.bc03(wave_range=(6000, 7000)), sfh)


def test_constant_sfh_labels(grid):
    sfh = Constant(age_start_gyr=[10.0, 0.5], mass=[1e10, 1e9])
    lab = compose(grid, sfh, zh=0.0, a_v=0.2).labels
    np.testing.assert_allclose(lab.sfr_100, sfh.rate)
    np.testing.assert_allclose(lab.sfr_10, sfh.rate)
    np.testing.assert_allclose(lab.log_ssfr, np.log10(sfh.rate / lab.stellar_mass))
    assert lab.log_age[0] < lab.log_age_mw[0]  # young stars dominate the light of a constant SFH
    df = lab.to_frame()
    assert {"log_age", "zh", "log_age_mw", "zh_mw", "a_v", "log_ssfr"} <= set(df.columns)


def _bands(grid) -> np.ndarray:
    w = grid.wavelength_aa
    centres = [3500.0, 4500.0, 6500.0, 8500.0]
    widths = [400.0, 1000.0, 70.0, 1200.0]  # from a narrow J-PAS-like to broad u/g/i-like
    B = np.stack([np.exp(-0.5 * ((w - c) / (s / 2.355)) ** 2) for c, s in zip(centres, widths)])
    B[B < 1e-6] = 0.0
    return B * np.gradient(w)[None] / B.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("dust", ["calzetti", "cf00"])
def test_band_space_composition_matches_spectra(grid, dust):
    rng = np.random.default_rng(5)
    n = 40
    sfh = DelayedTau(age_start_gyr=rng.uniform(0.5, 12, n), tau_gyr=rng.uniform(0.1, 5, n))
    zh = rng.uniform(-2, 0.6, n)
    a_v = rng.uniform(0, 3, n)
    B = _bands(grid)
    ref = compose(grid, sfh, zh=zh, a_v=a_v, dust=dust, dtype="float64").flux @ B.T
    exact = compose_bands(grid, sfh, zh=zh, a_v=a_v, dust=dust, band_matrix=B)
    np.testing.assert_allclose(exact.values, ref, rtol=1e-10)
    mom = compose_bands(grid, sfh, zh=zh, a_v=a_v, dust=dust, band_matrix=B, method="moments")
    rel = np.abs(mom.values / ref - 1)
    assert rel.max() < 1e-6
    np.testing.assert_array_equal(mom.labels.log_age, exact.labels.log_age)
    low = compose_bands(grid, sfh, zh=zh, a_v=a_v, dust=dust, band_matrix=B, method="moments", n_moments=1)
    assert np.abs(low.values / ref - 1).max() > rel.max()  # truncation error shrinks with the order
    with pytest.raises(InputError, match="band_matrix"):
        compose_bands(grid, sfh, zh=zh, band_matrix=B[:, :10])


def test_nebular_lines_land_at_their_wavelengths_and_scale_with_young_mass(grid):
    from photopop.populations import NebularLines, nebular_line_luminosities

    neb = NebularLines(log_u=-3.0, sigma_kms=20.0)
    sfh = Combined([Burst(age_gyr=0.002, mass=[1.0, 3.0]), Burst(age_gyr=5.0, mass=100.0)])
    bare = compose(grid, sfh, zh=0.0, dust="none", dtype="float64")
    lined = compose(grid, sfh, zh=0.0, dust="none", dtype="float64", nebular=neb)
    extra = lined.flux - bare.flux
    w = grid.wavelength_aa
    near = (w > 6540) & (w < 6590)
    assert w[near][np.argmax(extra[0, near])] == pytest.approx(6562.8, abs=1.0)
    assert np.all(extra >= -1e-12)
    # integrated line flux = the young stars' H-alpha luminosity, proportional to the young mass
    from photopop.populations.chemistry import component_weights

    wts = component_weights(sfh.weights(grid), grid.zh, np.zeros((2, grid.ages_yr.size)))
    ha = nebular_line_luminosities(grid, wts, neb)["H 1 6562.80A"]
    assert ha[1] == pytest.approx(3 * ha[0], rel=1e-12) and 5 < ha[0] < 50  # ~20 L_sun per M_sun at 2 Myr
    win = (w > 6553) & (w < 6573)  # between the [N II] lines at 6548 and 6583 A, +-23 sigma of H-alpha
    dw = np.gradient(w)
    np.testing.assert_allclose((extra[:, win] * dw[win]).sum(axis=1), ha, rtol=1e-3)
    # old stars have no lines; dust dims the lines with the birth-cloud curve
    old = compose(grid, Burst(age_gyr=5.0), zh=0.0, dust="none", nebular=neb, dtype="float64")
    np.testing.assert_array_equal(old.flux, compose(grid, Burst(age_gyr=5.0), zh=0.0, dust="none",
                                                    dtype="float64").flux)
    with pytest.raises(InputError, match="BC03"):
        compose(SSPGrid(grid.ages_yr, [0.0], grid.wavelength_aa, grid.spectra[4:5], name="x"), sfh, nebular=neb,
                mass="formed")
