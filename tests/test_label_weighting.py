"""Attenuated vs intrinsic light weighting of the labels: known answers and the sign birth clouds give."""

import numpy as np

from photopop.populations import SSPGrid, compose
from photopop.populations.sfh import Burst, Constant
from photopop.simulate.ifu import IFUSurveyConfig, SlopedCalzetti


def _grid():
    return SSPGrid.bc03(wave_range=(5300.0, 5700.0))


def test_single_age_population_has_its_age_in_both_weightings():
    g = _grid()
    age = g.ages_yr[120]
    dust = SlopedCalzetti(slope=0.2, birth_factor=3.0)
    sfh = Burst(age_gyr=np.full(2, age / 1e9))
    out = {lw: compose(g, sfh, zh=0.0, a_v=np.array([0.0, 1.5]), dust=dust, light=lw).labels
           for lw in ("intrinsic", "attenuated")}
    for lab in out.values():
        assert np.allclose(lab.log_age, np.log10(age), atol=1e-12)
        assert np.allclose(lab.zh, 0.0, atol=1e-12)


def test_birth_clouds_make_the_attenuated_age_older():
    """Young stars behind birth clouds lose more light than old ones: the attenuated weights favour old stars."""
    g = _grid()
    sfh = Constant(age_start_gyr=np.full(3, 10.0))
    a_v = np.array([0.3, 1.0, 2.0])
    kw = dict(zh=0.0, a_v=a_v, dust=SlopedCalzetti(birth_factor=2.5))
    intr = compose(g, sfh, light="intrinsic", **kw).labels.log_age
    att = compose(g, sfh, light="attenuated", **kw).labels.log_age
    assert np.all(att > intr)
    assert np.all(np.diff(att - intr) > 0)  # more dust, bigger difference
    # with one attenuation for all ages (no birth clouds) the weights only rescale: equal ages
    same = compose(g, sfh, light="attenuated", zh=0.0, a_v=a_v, dust=SlopedCalzetti(birth_factor=1.0)).labels.log_age
    assert np.allclose(same, intr, atol=1e-12)


def test_mock_default_is_attenuated():
    assert IFUSurveyConfig().light_weighting == "attenuated"
