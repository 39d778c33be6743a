"""Cross-validation folds for spaxel tables: Set A, Set B, random and user-grouped splits.

Liew-Cain et al. (2021), Sect. 3.2 and Fig. 3:

* ``"A"``: the spaxels of every galaxy are split at random into n_folds near-equal parts, so each
  galaxy appears in every fold (fold sizes within a galaxy differ by at most one). Training and test
  spaxels of the same galaxy are correlated: the idealised case.
* ``"B"``: galaxies are split at random into n_folds groups (galaxy counts differ by at most one);
  a test galaxy is never seen in training: the realistic case.
* ``"random"``: plain random rows (equal fold sizes), ignoring galaxies.
* ``"grouped"``: like B but over a user-given `groups` array (e.g. fields, surveys, morphologies).

`split_60_20_20`: the 60/20/20 train/validation/test split of Wu & Boada (2019) from five random folds.

Everything is vectorised (one sort per call) and deterministic for a given seed.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .errors import InputError, MismatchError

SCHEMES = ("A", "B", "random", "grouped")


def normalise_scheme(scheme: str) -> str:
    """Canonical scheme name ('A', 'B', 'random', 'grouped'); accepts 'a', 'set_a', 'Set B', ..."""
    s = str(scheme).strip().lower().replace(" ", "").replace("_", "").replace("-", "")
    s = s[3:] if s.startswith("set") and len(s) == 4 else s
    table = {"a": "A", "b": "B", "random": "random", "grouped": "grouped", "group": "grouped"}
    if s not in table:
        raise InputError(f"unknown split scheme {scheme!r}; choose one of {list(SCHEMES)}")
    return table[s]


def _grouping(galaxy_ids: Any, scheme: str, groups: Any, n: int | None = None) -> np.ndarray:
    """Integer codes of the unit the scheme groups by (galaxies, or user groups for 'grouped')."""
    if scheme == "grouped":
        if groups is None:
            raise InputError("scheme 'grouped' needs a groups array (one group label per row)")
        labels = np.asarray(groups).ravel()
    else:
        if galaxy_ids is None:
            raise InputError(f"scheme {scheme!r} needs galaxy_ids")
        labels = np.asarray(galaxy_ids).ravel()
    if n is not None and labels.size != n:
        raise MismatchError(f"grouping has {labels.size} labels but there are {n} rows")
    if labels.dtype.kind == "f" and np.any(~np.isfinite(labels)):
        raise InputError("galaxy/group ids contain NaN")
    return np.unique(labels, return_inverse=True)[1].ravel()


def _rank_within(codes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random rank of each row within its group (0..count-1) and the group sizes."""
    n_groups = int(codes.max()) + 1 if codes.size else 0
    order = np.lexsort((rng.random(codes.size), codes))
    counts = np.bincount(codes, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    rank = np.empty(codes.size, dtype=np.int64)
    rank[order] = np.arange(codes.size) - starts[codes[order]]
    return rank, counts


def make_folds(
    galaxy_ids: Any,
    scheme: str = "B",
    n_folds: int = 4,
    seed: int | np.random.Generator = 0,
    groups: Any = None,
) -> np.ndarray:
    """Fold index (0..n_folds-1) of every row for the given scheme; see the module docstring.

    `galaxy_ids`: one id per row (any dtype); for scheme 'random' it only sets the row count (an int
    is accepted too). Scheme 'A' gives each galaxy a random fold offset so that galaxies with fewer
    spaxels than folds do not all fill fold 0 first.
    """
    scheme = normalise_scheme(scheme)
    if int(n_folds) != n_folds or n_folds < 2:
        raise InputError(f"n_folds must be an integer >= 2, got {n_folds}")
    n_folds = int(n_folds)
    rng = np.random.default_rng(seed)
    if scheme == "random":
        n = int(galaxy_ids) if np.isscalar(galaxy_ids) else np.asarray(galaxy_ids).size
        if n < n_folds:
            raise InputError(f"{n} rows cannot fill {n_folds} folds")
        folds = np.empty(n, dtype=np.int64)
        folds[rng.permutation(n)] = np.arange(n) % n_folds
        return folds
    n = None if galaxy_ids is None else np.asarray(galaxy_ids).size
    codes = _grouping(galaxy_ids, scheme, groups, n)
    n_groups = int(codes.max()) + 1 if codes.size else 0
    if scheme == "A":
        if codes.size < n_folds:
            raise InputError(f"{codes.size} rows cannot fill {n_folds} folds")
        rank, _ = _rank_within(codes, rng)
        offset = rng.integers(n_folds, size=n_groups)
        return (rank + offset[codes]) % n_folds
    unit = "galaxies" if scheme == "B" else "groups"
    if n_groups < n_folds:
        raise InputError(f"{n_groups} {unit} cannot be split into {n_folds} folds")
    group_fold = np.empty(n_groups, dtype=np.int64)
    group_fold[rng.permutation(n_groups)] = np.arange(n_groups) % n_folds
    return group_fold[codes]


def iter_folds(folds: Any) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (k, train_idx, test_idx) for every fold k present, in increasing order of k."""
    folds = np.asarray(folds).ravel()
    for k in np.unique(folds):
        test = folds == k
        yield int(k), np.flatnonzero(~test), np.flatnonzero(test)


def _codes_of(idx: np.ndarray, galaxy_ids: Any, scheme: str, groups: Any) -> np.ndarray:
    """Integer galaxy (or group, for 'grouped') codes of the rows `idx`."""
    labels = groups if scheme == "grouped" else galaxy_ids
    if labels is None:
        raise InputError(f"scheme {scheme!r} needs {'groups' if scheme == 'grouped' else 'galaxy_ids'}")
    labels = np.asarray(labels).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= labels.size):
        raise MismatchError(f"row indices run past the {labels.size} galaxy/group ids")
    return np.unique(labels[idx], return_inverse=True)[1].ravel()


def _pick_groups(codes: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Mask of the rows of k groups chosen at random."""
    n_groups = int(codes.max()) + 1
    chosen = np.zeros(n_groups, dtype=bool)
    chosen[rng.permutation(n_groups)[:k]] = True
    return chosen[codes]


def _pick_rows(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Mask of round(fraction * n) random rows."""
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[: int(np.rint(fraction * n))]] = True
    return mask


def _pick_within(codes: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Mask of floor(fraction * n_g + u) random rows of every group g, u ~ U(0, 1) (unbiased rounding)."""
    rank, counts = _rank_within(codes, rng)
    k = np.floor(fraction * counts + rng.random(counts.size)).astype(np.int64)
    return rank < k[codes]


def _check_fraction(fraction: float, name: str) -> float:
    if not 0 < fraction <= 1:
        raise InputError(f"{name} must be in (0, 1], got {fraction}")
    return float(fraction)


def carve_validation(
    train_idx: Any,
    galaxy_ids: Any,
    scheme: str = "B",
    fraction: float = 0.2,
    seed: int | np.random.Generator = 0,
    groups: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split training rows into (fit_idx, val_idx) with the same grouping as the outer split.

    B/grouped: whole galaxies/groups go to validation (round(fraction * n_galaxies), at least one,
    leaving at least one for fitting), so fit and validation share no galaxy. A: within every galaxy
    a random floor(fraction * n_g + u) of its training spaxels (u uniform: unbiased rounding).
    random: round(fraction * n) random rows. `fraction` defaults to 0.2; 1 / n_folds mirrors the
    outer split. Both outputs are sorted row indices into the full table (subsets of `train_idx`).
    """
    scheme = normalise_scheme(scheme)
    fraction = _check_fraction(fraction, "validation fraction")
    if fraction >= 1:
        raise InputError("validation fraction must be < 1 (some rows must remain for fitting)")
    idx = np.sort(np.asarray(train_idx, dtype=np.int64).ravel())
    if idx.size < 2:
        raise InputError(f"cannot carve a validation set from {idx.size} training rows")
    rng = np.random.default_rng(seed)
    if scheme == "random":
        val = _pick_rows(idx.size, fraction, rng)
        if not val.any():
            val[rng.integers(idx.size)] = True
    else:
        codes = _codes_of(idx, galaxy_ids, scheme, groups)
        if scheme == "A":
            val = _pick_within(codes, fraction, rng)
        else:
            n_groups = int(codes.max()) + 1
            if n_groups < 2:
                raise InputError("cannot carve a galaxy-disjoint validation set from a single training galaxy")
            val = _pick_groups(codes, min(max(int(np.rint(fraction * n_groups)), 1), n_groups - 1), rng)
    if val.all() or not val.any():
        raise InputError(f"validation fraction {fraction} leaves an empty fit or validation set")
    return idx[~val], idx[val]


def subsample_training(
    train_idx: Any,
    galaxy_ids: Any,
    fraction: float,
    scheme: str = "B",
    seed: int | np.random.Generator = 0,
    groups: Any = None,
) -> np.ndarray:
    """A random `fraction` of the training rows, for training-set-size curves (Liew-Cain Fig. 13).

    A: that fraction of the spaxels of every galaxy (unbiased rounding per galaxy); B/grouped: that
    fraction of the galaxies/groups (at least one), all their rows; random: that fraction of rows.
    Returns sorted row indices (a subset of `train_idx`).
    """
    scheme = normalise_scheme(scheme)
    fraction = _check_fraction(fraction, "training fraction")
    idx = np.sort(np.asarray(train_idx, dtype=np.int64).ravel())
    if idx.size == 0:
        raise InputError("no training rows to subsample")
    rng = np.random.default_rng(seed)
    if scheme == "random":
        keep = _pick_rows(idx.size, fraction, rng)
    else:
        codes = _codes_of(idx, galaxy_ids, scheme, groups)
        if scheme == "A":
            keep = _pick_within(codes, fraction, rng)
        else:
            keep = _pick_groups(codes, max(int(np.rint(fraction * (int(codes.max()) + 1))), 1), rng)
    if not keep.any():
        keep[rng.integers(idx.size)] = True
    return idx[keep]


def split_60_20_20(n: int, seed: int | np.random.Generator) -> dict[str, np.ndarray]:
    """Seeded random 60/20/20 split of n rows (Wu & Boada 2019): `make_folds` with five equal random folds,
    folds 0-2 train, 3 validation, 4 test; returns {"train", "val", "test"} row indices."""
    if n < 5:
        raise InputError(f"need at least 5 galaxies for a 60/20/20 split, got {n}")
    folds = make_folds(n, scheme="random", n_folds=5, seed=seed)
    return {"train": np.flatnonzero(folds <= 2), "val": np.flatnonzero(folds == 3), "test": np.flatnonzero(folds == 4)}
