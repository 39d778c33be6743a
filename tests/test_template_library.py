"""The library template fit: the mock's model family under broad uniform priors, fitted at each redshift."""

import numpy as np
import pytest

from photopop.errors import InputError
from photopop.models.template_library import (
    TemplateLibraryConfig,
    build_template_library,
    fit_template_library,
)
from photopop.photometry import load_filter_system
from photopop.simulate.library import UniformPriorConfig


@pytest.fixture(scope="module")
def setup():
    system = load_filter_system("jpas-califa")
    cfg = TemplateLibraryConfig(n_templates=120, seed=3, error_floor_mag=0.0, prior=UniformPriorConfig(chunk=40))
    lib = build_template_library(system, np.array([0.01, 0.02]), cfg)
    return system, cfg, lib


def test_library_shape_ranges_and_seed(setup):
    system, cfg, lib = setup
    assert lib.fluxes.shape == (lib.redshifts.size, 120, len(system.bands))
    assert np.all(lib.fluxes > 0)
    assert lib.labels["zh"].max() <= np.log10(0.05 / 0.019) + 1e-9  # BC03 top Z = 0.05 and lib.labels["a_v"].max() <= 2.5
    again = build_template_library(system, np.array([0.01, 0.02]), cfg)
    assert np.array_equal(again.fluxes, lib.fluxes)
    other = build_template_library(system, np.array([0.01, 0.02]),
                                   TemplateLibraryConfig(n_templates=120, seed=4, prior=UniformPriorConfig(chunk=40)))
    assert not np.allclose(other.fluxes, lib.fluxes)
    # a redshifted template is not the rest-frame one (the band shift is seen)
    assert not np.allclose(lib.fluxes[0], lib.fluxes[-1])


@pytest.mark.parametrize("estimate", ["best", "mean"])
def test_noise_free_template_is_recovered(setup, estimate):
    system, cfg, lib = setup
    k = [5, 77]
    iz = lib.redshifts.size - 1
    mags = -2.5 * np.log10(lib.fluxes[iz, k] * 1e-3)
    cfg = TemplateLibraryConfig(n_templates=120, seed=3, error_floor_mag=0.0, estimate=estimate)
    res = fit_template_library(lib, mags, np.full_like(mags, 1e-6), lib.redshifts[iz], ["log_age", "zh"], cfg)
    assert np.allclose(res["log_age"], lib.labels["log_age"].to_numpy()[k], atol=1e-9)
    assert np.allclose(res["zh"], lib.labels["zh"].to_numpy()[k], atol=1e-9)


def test_bad_settings_raise(setup):
    _, _, lib = setup
    with pytest.raises(InputError, match="estimate"):
        TemplateLibraryConfig(estimate="median").check()
    with pytest.raises(InputError, match="low <= high"):
        UniformPriorConfig(a_v=(2.0, 1.0)).check()
    with pytest.raises(InputError, match="template labels"):
        fit_template_library(lib, np.zeros((1, lib.fluxes.shape[2])), None, 0.01, ["nope"], TemplateLibraryConfig())
