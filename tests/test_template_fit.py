"""Vectorised chi-square template fitting against brute-force answers."""

import numpy as np
import pytest

from photopop.errors import InputError
from photopop.models.template_fit import TemplateFitter, mag_to_flux


def _grid(k=20, nb=9, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.2, 2.0, size=(k, nb))
    labels = np.column_stack([np.linspace(8, 10, k), np.linspace(-1, 0.3, k)])
    return t, labels


def test_scaled_template_is_recovered():
    t, lab = _grid()
    fitter = TemplateFitter(t, lab, ["log_age", "zh"])
    f = np.vstack([3.0 * t[7], 0.5 * t[12]])
    res = fitter.fit(f, np.full_like(f, 0.1))
    assert list(res.index) == [7, 12]
    assert np.allclose(res.scale, [3.0, 0.5])
    assert np.allclose(res.chi2, 0.0, atol=1e-9)
    assert np.allclose(res.labels, lab[[7, 12]])
    df = res.to_frame()
    assert list(df.template_index) == [7, 12] and np.allclose(df.log_age, lab[[7, 12], 0])


def test_chi2_matches_brute_force():
    t, lab = _grid(k=6, nb=5)
    rng = np.random.default_rng(2)
    f = rng.uniform(0.5, 3, size=(4, 5))
    e = rng.uniform(0.05, 0.3, size=(4, 5))
    chi2, scale = TemplateFitter(t, lab).chi2(f, e)
    for i in range(4):
        for k in range(6):
            w = 1 / e[i] ** 2
            s = np.sum(w * f[i] * t[k]) / np.sum(w * t[k] ** 2)
            assert scale[i, k] == pytest.approx(s)
            assert chi2[i, k] == pytest.approx(np.sum(w * (f[i] - s * t[k]) ** 2), rel=1e-9, abs=1e-9)
            # and s minimises chi2 (perturbing it only raises chi2)
            assert np.sum(w * (f[i] - 1.01 * s * t[k]) ** 2) > chi2[i, k]


def test_weighted_stats_and_chunking():
    t, lab = _grid(k=15, nb=7)
    rng = np.random.default_rng(3)
    f = t[rng.integers(0, 15, 50)] * rng.uniform(0.5, 2, (50, 1)) * (1 + 0.05 * rng.normal(size=(50, 7)))
    e = 0.05 * np.abs(f)
    fitter = TemplateFitter(t, lab, max_chunk_bytes=8 * 4 * 15 * 3)  # 3 objects per chunk
    assert fitter.chunk_rows() == 3
    res = fitter.fit(f, e, weighted_stats=True)
    one = TemplateFitter(t, lab).fit(f, e, weighted_stats=True)
    assert np.array_equal(res.index, one.index) and np.allclose(res.mean, one.mean)
    chi2, _ = fitter.chi2(f, e)
    wts = np.exp(-0.5 * (chi2 - chi2.min(1, keepdims=True)))
    mean = wts @ lab / wts.sum(1, keepdims=True)
    var = wts @ lab ** 2 / wts.sum(1, keepdims=True) - mean ** 2
    assert np.allclose(res.mean, mean) and np.allclose(res.std, np.sqrt(np.clip(var, 0, None)))
    assert np.array_equal(res.index, np.argmin(chi2, axis=1))


def test_missing_band_is_left_out():
    t, lab = _grid()
    f = 2.0 * t[4].copy()
    f[3] = np.nan  # missing band
    e = np.full_like(f, 0.1)
    res = TemplateFitter(t, lab).fit(f, e)
    assert res.index[0] == 4 and res.scale[0] == pytest.approx(2.0) and res.n_bands_used[0] == t.shape[1] - 1
    with pytest.raises(InputError, match="no finite flux"):
        TemplateFitter(t, lab).fit(np.full_like(f, np.nan), e)


def test_nonnegative_scale():
    t = np.array([[1.0, 1.0], [1.0, -0.5]])
    lab = np.array([0.0, 1.0])
    f = np.array([[-1.0, -1.0]])
    chi2, s = TemplateFitter(t, lab).chi2(f)
    assert s[0, 0] == 0.0 and chi2[0, 0] == pytest.approx(2.0)
    chi2_free, s_free = TemplateFitter(t, lab, nonnegative=False).chi2(f)
    assert s_free[0, 0] == pytest.approx(-1.0) and chi2_free[0, 0] == pytest.approx(0.0)


def test_magnitudes_and_errors():
    flux, err = mag_to_flux(np.array([0.0, 2.5]), np.array([0.1, 0.1]))
    assert np.allclose(flux, [1.0, 0.1])
    assert np.allclose(err, 0.4 * np.log(10) * flux * 0.1)
    t, lab = _grid()
    mags = -2.5 * np.log10(4.0 * t[[2, 9]])
    res = TemplateFitter(t, lab).fit_magnitudes(mags, np.full_like(mags, 0.05))
    assert list(res.index) == [2, 9] and np.allclose(res.scale, 4.0)


def test_bad_templates():
    with pytest.raises(InputError, match="label rows"):
        TemplateFitter(np.ones((3, 4)), np.ones(2))
    with pytest.raises(InputError, match="zero flux"):
        TemplateFitter(np.zeros((2, 4)), np.ones(2))
    with pytest.raises(InputError, match="to match the templates"):
        TemplateFitter(np.ones((3, 4)), np.ones(3)).fit(np.ones((2, 5)))


def test_error_floor_is_added_in_quadrature_and_weights_noise_free_photometry():
    from photopop.models.template_fit import floored_magerr

    e = floored_magerr(np.array([[0.0, 0.03]]), 1, 2, 0.04)
    np.testing.assert_allclose(e, [[0.04, 0.05]])
    assert floored_magerr(None, 3, 2, 0.0) is None
    np.testing.assert_allclose(floored_magerr(None, 3, 2, 0.02), np.full((3, 2), 0.02))
    with pytest.raises(InputError):
        floored_magerr(None, 1, 1, -0.1)
