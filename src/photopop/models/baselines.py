"""Reference predictors the CNN must beat, all with the same fit(X, y) / predict(X) interface.

* `ConstantBaseline`: the training mean of each target (the score of knowing nothing per object).
* `RandomDrawBaseline`: a label drawn at random from the training labels (seeded), the "random
  prediction" line of Liew-Cain et al. (2021, Figs. 4 and 13); its scatter is ~sqrt(2) times the
  label spread.
* `RandomForestBaseline`: scikit-learn's RandomForestRegressor (as Acquaviva 2016), seeded, `n_jobs`
  configurable. Which features it sees is `RandomForestConfig.features` (`forest_features`): band
  magnitudes, colours (magnitudes minus a reference band), both, or whatever the CNN is fed ("same").
  The default is the kind measured best for the forest on the default mock (docs/sed-cnn.md), so a
  comparison with the CNN never hands the forest weaker inputs than the network.

X is (n_rows, n_features), y is (n_rows,) or (n_rows, n_targets); predictions keep y's shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from .normalise import make_features


def _xy(x: Any, y: Any | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise InputError(f"inputs must be (n_rows, n_features), got shape {x.shape}")
    if y is None:
        return x, None
    y = np.asarray(y, dtype=np.float64)
    if y.shape[0] != x.shape[0]:
        raise InputError(f"{x.shape[0]} input rows but {y.shape[0]} target rows")
    if y.shape[0] < 1:
        raise InputError("no training rows")
    if not np.all(np.isfinite(y)):
        raise InputError("training targets contain NaN/inf")
    return x, y


class ConstantBaseline:
    """Predicts the training mean of every target."""

    def fit(self, x: Any, y: Any) -> "ConstantBaseline":
        _, y = _xy(x, y)
        self.value_ = np.mean(y, axis=0)
        return self

    def predict(self, x: Any) -> np.ndarray:
        x, _ = _xy(x)
        return np.broadcast_to(self.value_, (x.shape[0],) + np.shape(self.value_)).copy()


class RandomDrawBaseline:
    """Predicts labels drawn at random (with replacement, whole rows) from the training labels."""

    def __init__(self, seed: int | np.random.Generator = 0):
        self.seed = seed

    def fit(self, x: Any, y: Any) -> "RandomDrawBaseline":
        _, y = _xy(x, y)
        self.pool_ = y.copy()
        self.rng_ = np.random.default_rng(self.seed)
        return self

    def predict(self, x: Any) -> np.ndarray:
        x, _ = _xy(x)
        return self.pool_[self.rng_.integers(0, self.pool_.shape[0], size=x.shape[0])]


#: feature kinds of the random forest: magnitudes, colours, both side by side, or the CNN's input kind
FOREST_FEATURES = ("mag", "colour", "mag+colour", "same")


@dataclass
class RandomForestConfig:
    """Settings of the random-forest baseline (scikit-learn names, plus its features).

    features: 'mag' (band magnitudes), 'colour' (m_b - m_ref, the reference band that of the CNN's
    colours), 'mag+colour' (both, side by side) or 'same' (the CNN's input kind). The default,
    'colour', is the kind that gave the forest its lowest Set B scatter on the default mock
    (docs/sed-cnn.md, "Features of the random forest").
    """

    n_estimators: int = 100
    max_depth: int = 0          # 0 = unlimited
    min_samples_leaf: int = 2
    max_features: float = 0.5   # fraction of features tried per split
    max_samples: float = 0.0    # fraction of rows per tree (0 = all, bootstrap)
    n_jobs: int = 1
    features: str = "colour"

    def check(self) -> None:
        """Raise InputError for an unknown feature kind."""
        if self.features not in FOREST_FEATURES:
            raise InputError(f"unknown random_forest.features {self.features!r}; use one of {list(FOREST_FEATURES)}")


def resolve_forest_features(features: str, cnn_input_kind: str) -> str:
    """The feature kind the forest gets: `features`, with 'same' replaced by the CNN's input kind."""
    if features not in FOREST_FEATURES:
        raise InputError(f"unknown random_forest.features {features!r}; use one of {list(FOREST_FEATURES)}")
    return cnn_input_kind if features == "same" else features


def forest_features(mags: Any, bands: Sequence[str], features: str, cnn_input_kind: str = "mag",
                    ref_band: str | None = None) -> np.ndarray:
    """The forest's inputs (n_rows, n_features) from magnitudes (n_rows, n_bands).

    'mag': the magnitudes; 'colour' and 'flux': `photopop.models.normalise.make_features` of that kind
    (colours against `ref_band`, '' or None = the middle band, as the CNN's); 'mag+colour': magnitudes
    then colours; 'same': the CNN's input kind `cnn_input_kind`.
    """
    kind = resolve_forest_features(features, cnn_input_kind)
    mags = np.asarray(mags, dtype=np.float64)
    ref = ref_band or None
    if kind == "mag+colour":
        return np.hstack([make_features(mags, bands, "mag"), make_features(mags, bands, "colour", ref)])
    return make_features(mags, bands, kind, ref)


class RandomForestBaseline:
    """scikit-learn RandomForestRegressor on the features it is given (`forest_features` builds them);
    deterministic for a given seed."""

    def __init__(self, config: RandomForestConfig | None = None, seed: int = 0):
        self.config = config or RandomForestConfig()
        self.seed = seed

    def fit(self, x: Any, y: Any) -> "RandomForestBaseline":
        from sklearn.ensemble import RandomForestRegressor

        x, y = _xy(x, y)
        if not np.all(np.isfinite(x)):
            raise InputError("random forest inputs contain NaN/inf")
        c = self.config
        self.ndim_ = y.ndim
        self.model_ = RandomForestRegressor(
            n_estimators=c.n_estimators, max_depth=c.max_depth or None, min_samples_leaf=c.min_samples_leaf,
            max_features=c.max_features, max_samples=c.max_samples or None, n_jobs=c.n_jobs,
            random_state=self.seed)
        self.model_.fit(x, y)
        return self

    def predict(self, x: Any) -> np.ndarray:
        x, _ = _xy(x)
        pred = np.asarray(self.model_.predict(x), dtype=np.float64)
        if self.ndim_ == 2 and pred.ndim == 1:
            pred = pred[:, None]
        return pred
