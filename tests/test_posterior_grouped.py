"""Leave-one-galaxy-out quantile levels (`models.posterior_grouped`) for the spread factors and the OOD threshold.

Scores of one galaxy share a galaxy offset (heavy-tailed between galaxies, as the mock's OOD scores and
normalised residuals are): the plain spaxel quantile over a few dozen galaxies then covers fewer of a new
galaxy's spaxels than its level says, and the grouped quantile corrects much of that. Margins are Monte
Carlo standard errors (4 of them), computed in the test from the repetitions themselves.
"""

import numpy as np
import pytest

from photopop.errors import InputError
from photopop.models.posterior_grouped import grouped_level, grouped_quantile, logo_coverage
from photopop.models.posterior_model import fit_ood, fit_spread_factors


def clustered(rng, n_groups, per_group, tau=1.0):
    """Scores with a Student-t(3) offset per group (scale tau) plus unit Gaussian noise per object."""
    off = tau * rng.standard_t(3, size=n_groups)
    return (off[:, None] + rng.normal(size=(n_groups, per_group))).ravel(), np.repeat(np.arange(n_groups), per_group)


def test_grouped_threshold_flags_new_galaxies_closer_to_nominal():
    rng = np.random.default_rng(11)
    fresh, _ = clustered(rng, 4000, 50)  # the population of new galaxies
    fresh = np.sort(fresh)
    plain, grouped = [], []
    for _ in range(150):
        s, g = clustered(rng, 40, 50)
        t_plain = np.quantile(s, 0.99)
        t_grouped, _ = grouped_quantile(s, g, 0.99)
        plain.append(1.0 - np.searchsorted(fresh, t_plain, side="right") / fresh.size)
        grouped.append(1.0 - np.searchsorted(fresh, t_grouped, side="right") / fresh.size)
    plain, grouped = np.array(plain), np.array(grouped)
    se = lambda v: v.std(ddof=1) / np.sqrt(v.size)  # noqa: E731
    # the plain quantile really over-flags new galaxies (the bias the grouped level exists for) ...
    assert plain.mean() - 0.01 > 4 * se(plain)
    # ... and the grouped one flags fewer of them (paired), ending closer to the nominal 1 %
    assert (plain - grouped).mean() > 4 * se(plain - grouped)
    assert abs(grouped.mean() - 0.01) < abs(plain.mean() - 0.01)


def test_independent_objects_keep_the_level():
    """One object per group: leave-one-out changes a quantile by about one object, so lambda ~ level."""
    rng = np.random.default_rng(3)
    s = rng.normal(size=3000)
    for level in (0.6827, 0.9545, 0.99):
        lam = grouped_level(s, np.arange(s.size), level)
        assert abs(lam - level) < 3.0 / s.size
        # the LOGO coverage at lambda is the level (what lambda is defined by)
        cov = logo_coverage(s, np.arange(s.size), np.array([lam]))[0]
        assert abs(cov - level) < 2.0 / s.size


def test_without_groups_it_is_the_plain_quantile():
    rng = np.random.default_rng(4)
    s = rng.normal(size=500)
    q, lam = grouped_quantile(s, None, 0.9)
    assert lam == 0.9 and q == np.quantile(s, 0.9)
    q2, lam2 = grouped_quantile(s, np.repeat([0, 1], 250), 0.9)  # 2 groups: too few to leave one out
    assert lam2 == 0.9 and q2 == q


def test_bad_input_is_refused():
    with pytest.raises(InputError, match="level"):
        grouped_level(np.ones(10), None, 1.0)
    with pytest.raises(InputError, match="NaN"):
        grouped_level(np.array([1.0, np.nan]), None, 0.5)
    with pytest.raises(InputError, match="one entry per score"):
        grouped_level(np.ones(10), np.arange(9), 0.5)


def test_fit_ood_takes_the_threshold_at_the_grouped_level():
    rng = np.random.default_rng(5)
    fit = rng.normal(size=(3000, 4))
    held, g = clustered(rng, 30, 40)
    ctx = rng.normal(size=(held.size, 4)) * (1.0 + 0.5 * np.abs(held))[:, None]  # galaxy-clustered spread
    stats, thr = fit_ood(fit, ctx, 0.99, groups_val=g)
    stats0, thr0 = fit_ood(fit, ctx, 0.99)
    assert stats0["threshold_level"] == 0.99
    assert stats["threshold_level"] != 0.99
    from photopop.models.posterior_model import ood_score

    score = ood_score(stats, ctx)
    assert thr == pytest.approx(np.quantile(score, stats["threshold_level"]))
    assert thr0 == pytest.approx(np.quantile(score, 0.99))
    with pytest.raises(InputError, match="groups_val"):
        fit_ood(fit, ctx, 0.99, groups_val=g[:-1])


def test_fit_spread_factors_uses_galaxies_as_the_unit():
    """Galaxies with a shared error: the factors are the r quantiles at the reported LOGO levels."""
    rng = np.random.default_rng(6)
    n_gal, per, s = 40, 30, 400
    bias = np.repeat(0.8 * rng.standard_t(3, size=n_gal), per)
    y = (bias + rng.normal(size=n_gal * per))[:, None]
    draws = rng.normal(size=(s, n_gal * per, 1))
    g = np.repeat(np.arange(n_gal), per)
    f_plain, rep_plain = fit_spread_factors(y, draws)
    f, rep = fit_spread_factors(y, draws, groups=g)
    assert rep_plain["grouping"] == "none" and rep["grouping"] == "leave-one-galaxy-out" and rep["n_groups"] == n_gal
    assert rep_plain["quantile_level_68"] == [0.6827]
    lo, med, hi = np.quantile(draws[:, :, 0], [(1 - 0.6827) / 2, 0.5, 1 - (1 - 0.6827) / 2], axis=0)
    r = np.where(y[:, 0] >= med, (y[:, 0] - med) / (hi - med), (med - y[:, 0]) / (med - lo))
    assert f[0] == pytest.approx(np.quantile(r, rep["quantile_level_68"][0]), rel=1e-6)
    assert f_plain[0] == pytest.approx(np.quantile(r, 0.6827), rel=1e-6)
    with pytest.raises(InputError, match="groups"):
        fit_spread_factors(y, draws, groups=g[:-1])


def test_resplit_coverage_sees_the_clustered_tail_bias():
    """Re-splitting one set of clustered scores: the plain 99 % quantile covers less than 99 % of the held-back
    galaxies' objects on average, the grouped one more nearly 99 %; sd is the scatter of one split."""
    from photopop.models.posterior_grouped import resplit_coverage

    rng = np.random.default_rng(8)
    s, g = clustered(rng, 100, 40)
    plain, sd_plain = resplit_coverage(s, g, 50, 0.99, n_rep=60, seed=1, grouped=False)
    grouped, _ = resplit_coverage(s, g, 50, 0.99, n_rep=60, seed=1)
    assert plain < 0.99 and grouped > plain and sd_plain > 0
    with pytest.raises(InputError, match="n_calib_groups"):
        resplit_coverage(s, g, 100, 0.99)
