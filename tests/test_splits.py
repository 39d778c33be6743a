"""Set A / Set B / random / grouped folds, validation carving and training subsamples."""

from __future__ import annotations

import numpy as np
import pytest

from photopop.errors import InputError
from photopop.splits import carve_validation, iter_folds, make_folds, normalise_scheme, subsample_training


@pytest.fixture()
def galaxies() -> np.ndarray:
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 60, size=40)  # some galaxies smaller than the number of folds
    ids = np.repeat(rng.permutation(np.arange(1000, 1040)), sizes)
    return ids[rng.permutation(ids.size)]  # rows in random order


@pytest.mark.parametrize("scheme", ["A", "B", "random", "grouped"])
def test_folds_cover_every_row_once(galaxies, scheme):
    groups = galaxies % 7 if scheme == "grouped" else None
    folds = make_folds(galaxies, scheme, n_folds=4, seed=1, groups=groups)
    assert folds.shape == galaxies.shape and set(np.unique(folds)) == {0, 1, 2, 3}
    seen = np.concatenate([test for _, _, test in iter_folds(folds)])
    assert np.array_equal(np.sort(seen), np.arange(galaxies.size))
    for k, train, test in iter_folds(folds):
        assert np.intersect1d(train, test).size == 0 and train.size + test.size == galaxies.size
        assert np.all(folds[test] == k)


def test_set_b_never_leaks_a_galaxy(galaxies):
    folds = make_folds(galaxies, "B", n_folds=4, seed=3)
    for _, train, test in iter_folds(folds):
        assert np.intersect1d(galaxies[train], galaxies[test]).size == 0
    # galaxy counts per fold as equal as possible: 40 galaxies -> 10 each
    per_fold = [np.unique(galaxies[folds == k]).size for k in range(4)]
    assert per_fold == [10, 10, 10, 10]


def test_grouped_never_leaks_a_group(galaxies):
    groups = galaxies % 5
    folds = make_folds(galaxies, "grouped", n_folds=5, seed=0, groups=groups)
    for _, train, test in iter_folds(folds):
        assert np.intersect1d(groups[train], groups[test]).size == 0
    with pytest.raises(InputError, match="groups"):
        make_folds(galaxies, "grouped")


def test_set_a_balances_every_galaxy(galaxies):
    folds = make_folds(galaxies, "A", n_folds=4, seed=2)
    for gid in np.unique(galaxies):
        sel = galaxies == gid
        counts = np.bincount(folds[sel], minlength=4)
        assert counts.max() - counts.min() <= 1
        if sel.sum() >= 4:
            assert np.all(counts > 0)  # every galaxy with >= 4 spaxels is in every fold


def test_set_a_small_galaxies_do_not_all_fill_fold_zero():
    ids = np.arange(400)  # 400 galaxies with a single spaxel each
    folds = make_folds(ids, "A", n_folds=4, seed=0)
    counts = np.bincount(folds, minlength=4)
    assert counts.min() > 60  # ~100 each, not 400 in fold 0


def test_random_folds_equal_sizes(galaxies):
    folds = make_folds(galaxies, "random", n_folds=4, seed=5)
    counts = np.bincount(folds)
    assert counts.max() - counts.min() <= 1
    assert np.array_equal(make_folds(galaxies.size, "random", 4, seed=5), folds)


@pytest.mark.parametrize("scheme", ["A", "B", "random"])
def test_seed_determinism(galaxies, scheme):
    a = make_folds(galaxies, scheme, seed=11)
    assert np.array_equal(a, make_folds(galaxies, scheme, seed=11))
    assert not np.array_equal(a, make_folds(galaxies, scheme, seed=12))


def test_scheme_names_and_errors(galaxies):
    assert normalise_scheme("set_a") == "A" and normalise_scheme("Set B") == "B" and normalise_scheme("b") == "B"
    with pytest.raises(InputError, match="unknown split scheme"):
        make_folds(galaxies, "C")
    with pytest.raises(InputError, match="galaxies cannot be split"):
        make_folds(np.array([1, 1, 2, 2, 3]), "B", n_folds=4)
    with pytest.raises(InputError):
        make_folds(galaxies, "A", n_folds=1)


def test_carve_validation_set_b_disjoint(galaxies):
    folds = make_folds(galaxies, "B", seed=0)
    _, train, _ = next(iter_folds(folds))
    fit, val = carve_validation(train, galaxies, "B", fraction=0.2, seed=0)
    assert np.intersect1d(galaxies[fit], galaxies[val]).size == 0
    assert np.array_equal(np.sort(np.concatenate([fit, val])), np.sort(train))
    assert np.unique(galaxies[val]).size == round(0.2 * np.unique(galaxies[train]).size)
    fit2, val2 = carve_validation(train, galaxies, "B", fraction=0.2, seed=0)
    assert np.array_equal(val, val2) and np.array_equal(fit, fit2)


def test_carve_validation_set_a_within_galaxies():
    ids = np.repeat(np.arange(30), 100)
    train = np.flatnonzero(make_folds(ids, "A", seed=0) != 0)  # 75 training spaxels per galaxy
    fit, val = carve_validation(train, ids, "A", fraction=0.2, seed=1)
    assert np.intersect1d(fit, val).size == 0 and fit.size + val.size == train.size
    per_gal = np.bincount(ids[val], minlength=30)
    assert np.all((per_gal == 15))  # 0.2 * 75 = 15 exactly, in every galaxy


def test_carve_validation_random_fraction(galaxies):
    train = np.arange(galaxies.size)
    fit, val = carve_validation(train, None, "random", fraction=0.25, seed=0)
    assert val.size == round(0.25 * galaxies.size)
    with pytest.raises(InputError):
        carve_validation(train, galaxies, "B", fraction=1.0)
    with pytest.raises(InputError, match="single training galaxy"):
        carve_validation(np.arange(5), np.zeros(5, int), "B")


def test_subsample_training():
    ids = np.repeat(np.arange(40), 50)
    train = np.arange(ids.size)
    sub_b = subsample_training(train, ids, 0.25, "B", seed=0)
    gals = np.unique(ids[sub_b])
    assert gals.size == 10 and sub_b.size == 10 * 50  # whole galaxies
    sub_a = subsample_training(train, ids, 0.1, "A", seed=0)
    assert np.all(np.bincount(ids[sub_a], minlength=40) == 5)  # 10 % of every galaxy
    sub_r = subsample_training(train, ids, 0.05, "random", seed=0)
    assert sub_r.size == 100
    assert np.array_equal(sub_b, subsample_training(train, ids, 0.25, "B", seed=0))
    assert not np.array_equal(sub_b, subsample_training(train, ids, 0.25, "B", seed=1))
    small = subsample_training(train, ids, 0.001, "B", seed=0)
    assert np.unique(ids[small]).size == 1  # never empty


def test_split_60_20_20_partitions_rows_seeded():
    from photopop.splits import split_60_20_20

    s = split_60_20_20(1003, seed=2)
    sizes = {k: v.size for k, v in s.items()}
    assert sum(sizes.values()) == 1003 and all(abs(sizes[k] - f * 1003) <= 3 for k, f in
                                               (("train", 0.6), ("val", 0.2), ("test", 0.2)))
    assert np.array_equal(np.sort(np.concatenate(list(s.values()))), np.arange(1003))
    assert all(np.array_equal(s[k], split_60_20_20(1003, seed=2)[k]) for k in s)
    assert not np.array_equal(s["test"], split_60_20_20(1003, seed=3)["test"])
    with pytest.raises(InputError, match="at least 5"):
        split_60_20_20(4, seed=0)
