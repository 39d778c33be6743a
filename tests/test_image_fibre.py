"""The fibre-aperture physics of the mock imaging survey (photopop.simulate.fibre): each effect is present,
points the way the literature says, is vectorised and deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from photopop.errors import InputError
from photopop.simulate.fibre import (GRADIENT_FRACTIONS, GRADIENT_LOGM_NODES, fibre_mean_radius, fibre_offset,
                                     fibre_tau_centre, gradient_dex_per_re)
from photopop.simulate.images import ImageSurveyConfig, draw_catalog
from photopop.simulate.mzr import LabelConfig


def test_gradient_follows_belfiore17_nodes_and_constant_option():
    lab = LabelConfig()
    g = gradient_dex_per_re(np.array([8.5, 9.0, 9.75, 10.5, 11.0, 11.5, 12.0]), lab)
    # flat at log M* <= 9, the steepest -0.14 dex/R_e at 10.5, half of it at 11.5, linear in between
    np.testing.assert_allclose(g, [0.0, 0.0, -0.07, -0.14, -0.105, -0.07, -0.07], atol=1e-12)
    assert GRADIENT_LOGM_NODES[int(np.argmax(GRADIENT_FRACTIONS))] == 10.5
    const = LabelConfig(gradient_shape="constant", gradient_dex_per_re=-0.1)
    np.testing.assert_array_equal(gradient_dex_per_re(np.array([9.0, 11.0]), const), [-0.1, -0.1])
    with pytest.raises(InputError, match="gradient_shape"):
        LabelConfig(gradient_shape="steep").validate()


def test_dust_moves_the_fibre_light_outwards_more_when_edge_on():
    re = np.full(4, 3.0)
    inc = np.array([0.0, 0.0, 80.0, 80.0])
    tau = np.array([0.0, 2.0, 0.0, 2.0])
    r = fibre_mean_radius(re, inc, 1.5, 0.1, 1.4, tau_centre=tau)
    # tau = 0 is the unweighted mean exactly
    np.testing.assert_array_equal(r[[0, 2]], fibre_mean_radius(re[[0, 2]], inc[[0, 2]], 1.5, 0.1, 1.4))
    face_shift, edge_shift = r[1] - r[0], r[3] - r[2]
    assert face_shift > 0 and edge_shift > face_shift  # central dust hides the inner disc, more so edge-on
    # more dust, further out (monotonic)
    rr = fibre_mean_radius(np.full(3, 3.0), np.full(3, 60.0), 1.5, 0.1, 1.4, tau_centre=np.array([0.5, 2.0, 8.0]))
    assert np.all(np.diff(rr) > 0)
    with pytest.raises(InputError, match="tau_centre"):
        fibre_mean_radius(re, inc, tau_centre=np.array([0.0, -1.0, 0.0, 0.0]))


def test_fibre_radius_is_vectorised_and_deterministic():
    rng = np.random.default_rng(5)
    re, inc, tau = rng.uniform(0.5, 6, 37), rng.uniform(0, 90, 37), rng.uniform(0, 4, 37)
    batch = fibre_mean_radius(re, inc, 1.5, 0.1, 1.4, chunk=8, tau_centre=tau)
    one = np.array([fibre_mean_radius(re[[k]], inc[[k]], 1.5, 0.1, 1.4, tau_centre=tau[[k]])[0] for k in range(37)])
    np.testing.assert_allclose(batch, one, rtol=1e-12)
    np.testing.assert_array_equal(batch, fibre_mean_radius(re, inc, 1.5, 0.1, 1.4, chunk=8, tau_centre=tau))


def test_tau_centre_arithmetic():
    lab = LabelConfig()
    from photopop.populations.dust import calzetti_k

    k = calzetti_k(np.array([6562.8, 5500.0]))
    rho = lab.dust_scale_ratio
    # A_V(stars) = 0.44 mag -> A_V(gas) = 1 mag -> mean tau_V = 1/1.0857 -> centre / (rho/(1+rho))^2, x k(Ha)/k(V)
    want = 2.27 * 0.44 / (2.5 / np.log(10)) / (rho / (1 + rho)) ** 2 * k[0] / k[1]
    np.testing.assert_allclose(fibre_tau_centre(np.array([0.44]), lab), [want])
    off, rbar = fibre_offset(np.array([3.0]), np.array([0.0]), np.array([9.0]), np.array([0.5]), lab)
    assert off[0] == 0.0 and rbar[0] > 0  # flat gradient at log M* = 9: no fibre offset


@pytest.fixture(scope="module")
def catalogues():
    out = {}
    for name, lab in {"dust": LabelConfig(), "no_dust": LabelConfig(fibre_dust=False)}.items():
        cat, _ = draw_catalog(ImageSurveyConfig(n_galaxies=2000, seed=3, labels=lab), np.random.default_rng(3))
        out[name] = cat
    return out


def test_catalogue_fibre_effects_point_the_right_way(catalogues):
    for cat in catalogues.values():
        d = (cat["oh_fibre_true"] - cat["oh_true"]).to_numpy()
        inc, z = cat["inclination_deg"].to_numpy(), cat["redshift"].to_numpy()
        massive = cat["log_mstar"].to_numpy() > 10.0
        # edge-on and distant galaxies: the fibre reaches the metal-poor outer disc
        assert np.corrcoef(d[massive], inc[massive])[0, 1] < -0.2
        assert np.corrcoef(d[massive], z[massive])[0, 1] < -0.1
        # galaxies at log M* <= 9 have a flat gradient: no fibre offset
        low = cat["log_mstar"].to_numpy() <= 9.0
        assert np.all(d[low] == 0.0)
    # the same seed gives the same galaxies; dust only moves the fibre light outwards, most for edge-on discs
    a, b = catalogues["dust"], catalogues["no_dust"]
    np.testing.assert_array_equal(a["oh_true"], b["oh_true"])
    shift = (a["fibre_mean_r_re"] - b["fibre_mean_r_re"]).to_numpy()
    inc = a["inclination_deg"].to_numpy()
    assert shift[inc < 30].mean() > 0
    assert shift[inc > 70].mean() > 2 * shift[inc < 30].mean()
    assert {"a_v_faceon", "fibre_gradient_dex_per_re"} <= set(a.columns)


def test_catalogue_is_seeded(catalogues):
    cat, _ = draw_catalog(ImageSurveyConfig(n_galaxies=2000, seed=3), np.random.default_rng(3))
    np.testing.assert_array_equal(cat["oh"], catalogues["dust"]["oh"])


def test_fmr_residual_scatter_model():
    from photopop.simulate.mzr import random_oh_sigma

    lab = LabelConfig(oh_scatter_model="fmr_residual", fmr_residual_scatter=0.06)
    size_sigma = np.array([0.1, 0.25])
    got = random_oh_sigma(np.array([9.5, 10.5]), size_sigma, lab)
    want = np.sqrt(np.maximum(0.06**2 - (0.25 * size_sigma) ** 2 - 0.03**2, 0.0))
    np.testing.assert_allclose(got, want)
    assert got[1] == 0.0 and got[0] > 0  # a wide size distribution leaves no room for a random term
    with pytest.raises(InputError, match="oh_scatter_model"):
        LabelConfig(oh_scatter_model="x").validate()
