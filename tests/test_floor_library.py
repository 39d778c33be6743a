"""The prior library is the mock's own generative model (same photometry, own seed); the floor beats a forest."""

import dataclasses

import numpy as np
import pytest

from photopop.errors import InputError
from photopop.evaluation.metrics import rmse
from photopop.models.baselines import RandomForestBaseline
from photopop.models.floor import FloorConfig, InformationFloor
from photopop.simulate.ifu import IFUSurveyConfig, simulate_ifu_survey
from photopop.simulate.library import draw_prior_library, library_seed


def _cfg(seed, n):
    cfg = IFUSurveyConfig(seed=seed)
    return dataclasses.replace(cfg, sample=dataclasses.replace(cfg.sample, n_galaxies=n))


@pytest.fixture(scope="module")
def library():
    return draw_prior_library(_cfg(1, 5), n_spaxels=2000, batch_galaxies=20)


def test_library_seed_is_own_and_reproducible(library):
    assert library.meta["seed"] != 1 and library.meta["seed"] == library_seed(1)
    with pytest.raises(InputError, match="differ"):
        library_seed(7, 7)
    again = draw_prior_library(_cfg(1, 5), n_spaxels=200, batch_galaxies=20)
    assert np.array_equal(again.fluxes, library.fluxes[: len(again)])
    assert len(library) >= 2000 and library.fluxes.shape == (len(library), len(library.bands))


def test_library_reproduces_the_survey_photometry():
    """A library whose batch seed is the survey's would replay its spaxels: the same code path, no noise."""
    cfg = _cfg(5, 3)
    tab = simulate_ifu_survey(dataclasses.replace(cfg, noise=dataclasses.replace(cfg.noise, snr_scale=np.inf)))
    from photopop.simulate.ifu import _galaxy_photometry, plan_survey

    plan = plan_survey(cfg)
    gid = int(plan.galaxies["galaxy_id"].iloc[0])
    maggies, lab = _galaxy_photometry(plan, gid)
    rows = tab.spaxels["galaxy_id"].to_numpy() == gid
    assert np.allclose(-2.5 * np.log10(maggies[: rows.sum()]), tab.magnitudes("magtrue")[rows], atol=1e-9)
    assert np.allclose(lab.log_age[: rows.sum()], tab.spaxels["log_age_true"].to_numpy()[rows])


def test_floor_beats_a_random_forest_on_a_held_out_mock(library):
    """Under the simulator's prior the Bayes estimate has the lower error; the margin is large (factor ~2)."""
    train = simulate_ifu_survey(_cfg(11, 12))
    test = simulate_ifu_survey(_cfg(12, 5))
    bands = list(test.bands)
    targets = ["log_age", "zh"]
    y_tr = train.spaxels[targets].to_numpy()
    y_te = test.spaxels[[f"{t}_true" for t in targets]].to_numpy()
    rf = RandomForestBaseline(seed=0).fit(train.magnitudes("mag"), y_tr).predict(test.magnitudes("mag"))
    floor = InformationFloor(FloorConfig(n_library=len(library)), targets).fit(library, bands=bands)
    errs = test.spaxels[[f"magerr_{b}" for b in bands]].to_numpy()
    pred = floor.predict(test.magnitudes("mag"), errs)
    for j, t in enumerate(targets):
        e_floor = rmse(pred[f"{t}_mean"].to_numpy() - y_te[:, j])
        e_rf = rmse(rf[:, j] - y_te[:, j])
        assert e_floor < 0.85 * e_rf, (t, e_floor, e_rf)
