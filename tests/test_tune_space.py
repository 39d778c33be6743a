"""training.tune: the optional search dimensions (lr schedule, input scaling, epoch budget, patience)."""

from __future__ import annotations

import tomllib

import numpy as np
import pandas as pd

from photopop.training.fit import TrainConfig
from photopop.training.tune import SearchSpace, TuneConfig, suggest, suggest_input_kind, tune


class _Trial:
    """Takes the first choice / the low end of every range, and records the names asked for."""

    def __init__(self):
        self.names: list[str] = []

    def suggest_int(self, name, low, high, log=False):
        self.names.append(name)
        return low

    def suggest_float(self, name, low, high, log=False):
        self.names.append(name)
        return low

    def suggest_categorical(self, name, choices):
        self.names.append(name)
        return choices[-1]


def test_optional_dimensions_are_searched_only_when_given():
    base = TrainConfig(max_epochs=7, patience=3)
    t = _Trial()
    _, train = suggest(t, SearchSpace(), base)
    assert "lr_schedule" not in t.names and train.max_epochs == 7 and train.patience == 3  # unchanged study
    assert suggest_input_kind(t, SearchSpace(), "mag") == "mag" and "input_kind" not in t.names
    t = _Trial()
    space = SearchSpace(lr_schedule=("none", "plateau"), input_kind=("mag", "colour"), max_epochs=(20, 40),
                        patience=(5, 9))
    _, train = suggest(t, space, base)
    assert (train.lr_schedule, train.max_epochs, train.patience) == ("plateau", 40, 9)
    assert suggest_input_kind(t, space, "mag") == "colour"
    assert t.names[-4:] == ["lr_schedule", "max_epochs", "patience", "input_kind"]


def test_tune_writes_the_searched_input_kind_and_epochs(tmp_path):
    rng = np.random.default_rng(0)
    n, nb = 160, 8
    x = rng.normal(size=(n, nb))
    df = pd.DataFrame({f"mag_b{i}": 20 + x[:, i] for i in range(nb)})
    df["log_age"] = x @ np.linspace(-1, 1, nb) * 0.1 + 9.0
    df["galaxy_id"] = np.repeat(np.arange(16), n // 16)
    space = SearchSpace(conv1_filters=(1, 2), conv2_filters=(2, 3), dense1_units=(8, 16), dense2_units=(4, 8),
                        batch_size=(32,), lr_schedule=("none", "plateau"), input_kind=("mag", "colour"),
                        max_epochs=(2, 3), patience=(1, 2))
    cfg = TuneConfig(n_trials=3, seed=1, space=space, prune=False, train=TrainConfig(max_epochs=3, num_threads=1))
    res = tune(df, cfg, tmp_path / "t")
    best = tomllib.loads((tmp_path / "t" / "best_params.toml").read_text())
    assert best["input_kind"] == res.best_params["input_kind"]
    assert best["train"]["max_epochs"] == res.best_params["max_epochs"]
    assert best["train"]["lr_schedule"] == res.best_params["lr_schedule"]
    assert best["train"]["patience"] == res.best_params["patience"]
