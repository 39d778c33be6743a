"""Hyperparameter search for the SED CNN with Optuna (the paper used Hyperas).

The objective is the best *validation* MSE (standardised targets) reached by a trial, and the study
MINIMISES it. The validation rows are carved once from the training table with the grouping of the
outer split (by galaxy for Set B, via `photopop.splits.carve_validation`), so every trial is judged
on the same unseen galaxies. The study lives in an SQLite file (Optuna RDB storage): rerunning with
the same folder resumes it. The TPE sampler is seeded; unpromising trials can be pruned by the
median rule on their learning curves. The best settings are written as ``best_params.toml``
(``[architecture]`` and ``[train]`` tables, usable as a `photopop sed cv --config` file) and
``best_trial.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import save_config, to_dict
from ..errors import InputError
from ..io import write_json_atomic, write_text_atomic
from ..models.sed_cnn import SEDCNNConfig
from .fit import TrainConfig
from .sed_regressor import SEDRegressor, SEDRegressorConfig


@dataclass
class SearchSpace:
    """Ranges searched: (low, high) for numbers (log-uniform where marked), tuples of choices otherwise."""

    conv1_filters: tuple[int, int] = (2, 16)
    conv2_filters: tuple[int, int] = (4, 32)
    kernel_size: tuple[int, int] = (3, 11)
    pool_size: tuple[int, int] = (2, 4)
    dense1_units: tuple[int, int] = (32, 512)      # log-uniform
    dense2_units: tuple[int, int] = (16, 256)      # log-uniform
    dropout: tuple[float, float] = (0.0, 0.3)
    learning_rate: tuple[float, float] = (1e-4, 1e-2)  # log-uniform
    batch_size: tuple[int, ...] = (128, 256, 512)
    optimizer: tuple[str, ...] = ("adam", "rmsprop")
    #: optional dimensions (empty: not searched, the TuneConfig value is used; existing studies are unchanged)
    lr_schedule: tuple[str, ...] = ()              # e.g. ("none", "plateau")
    input_kind: tuple[str, ...] = ()               # e.g. ("mag", "colour", "flux")
    max_epochs: tuple[int, ...] = ()               # epoch budget, e.g. (80, 300, 1000)
    patience: tuple[int, ...] = ()                 # early-stopping patience, e.g. (10, 25, 50)


@dataclass
class TuneConfig:
    """Search settings; `train` holds the fixed training settings (max_epochs, patience, device)."""

    n_trials: int = 30
    timeout_s: float = 0.0
    seed: int = 0
    study_name: str = "sed_cnn"
    targets: tuple[str, ...] = ("log_age",)
    split: str = "B"
    val_fraction: float = 0.2
    input_kind: str = "colour"    # as SEDRegressorConfig / SEDCVConfig (when the space has no input_kind)
    prune: bool = True
    space: SearchSpace = field(default_factory=SearchSpace)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_epochs=500))


@dataclass
class TuneResult:
    """The finished study and its best trial."""

    study: Any
    best_value: float
    best_params: dict[str, Any]
    architecture: SEDCNNConfig
    train: TrainConfig
    out_dir: Path


def suggest(trial: Any, space: SearchSpace, base: TrainConfig) -> tuple[SEDCNNConfig, TrainConfig]:
    """Architecture and training settings for one Optuna trial."""
    k = trial.suggest_int("kernel_size", *space.kernel_size)
    arch = SEDCNNConfig(
        conv_filters=(trial.suggest_int("conv1_filters", *space.conv1_filters),
                      trial.suggest_int("conv2_filters", *space.conv2_filters)),
        kernel_sizes=(k, k),
        pool_size=trial.suggest_int("pool_size", *space.pool_size),
        dense_units=(trial.suggest_int("dense1_units", *space.dense1_units, log=True),
                     trial.suggest_int("dense2_units", *space.dense2_units, log=True)),
        dropout=trial.suggest_float("dropout", *space.dropout),
    )
    train = TrainConfig(**{**to_dict(base),
                           "learning_rate": trial.suggest_float("learning_rate", *space.learning_rate, log=True),
                           "batch_size": trial.suggest_categorical("batch_size", list(space.batch_size)),
                           "optimizer": trial.suggest_categorical("optimizer", list(space.optimizer))})
    for name in ("lr_schedule", "max_epochs", "patience"):
        if getattr(space, name):
            setattr(train, name, trial.suggest_categorical(name, list(getattr(space, name))))
    return arch, train


def suggest_input_kind(trial: Any, space: SearchSpace, default: str) -> str:
    """The trial's input scaling ('mag', 'colour', 'flux') when searched, else `default`."""
    return trial.suggest_categorical("input_kind", list(space.input_kind)) if space.input_kind else default


def tune(data: Any, config: TuneConfig | None = None, out_dir: str | Path = "sed_tune", *,
         bands: Any = None, quiet: bool = True, overwrite: bool = False) -> TuneResult:
    """Run (or resume) the study on an SEDTable / DataFrame with mag_<band>, target and galaxy_id columns.

    `out_dir` follows the output-folder contract (`photopop.outputs`): the study of the same settings
    resumes; a study of other settings is replaced (study.db emptied) only with `overwrite`.
    """
    from ..outputs import claim_output, source_id

    cfg = config or TuneConfig()
    search = {k: v for k, v in to_dict(cfg).items() if k not in ("n_trials", "timeout_s")}  # budget: may grow on resume
    settings = {"config": search, "data": source_id(data), "bands": None if bands is None else list(bands)}
    inputs = [data] if isinstance(data, (str, Path)) else []
    with claim_output(out_dir, "sed-tune", settings, overwrite=overwrite, inputs=inputs, in_place=True,
                      clear=("study.db*", "tune_config.toml", "best_params.toml", "best_trial.json")):
        return _tune(data, cfg, Path(out_dir), bands=bands, quiet=quiet)


def _tune(data: Any, config: TuneConfig, out_dir: Path, *, bands: Any, quiet: bool) -> TuneResult:
    import optuna

    from ..splits import carve_validation

    cfg = config or TuneConfig()
    out = Path(out_dir)
    frame = data.spaxels if hasattr(data, "spaxels") else data
    if "galaxy_id" not in frame.columns and cfg.split not in ("random",):
        raise InputError("tuning with a galaxy-grouped validation set needs a galaxy_id column")
    gal = frame["galaxy_id"].to_numpy() if "galaxy_id" in frame.columns else None
    _, val_idx = carve_validation(np.arange(len(frame)), gal, scheme=cfg.split, fraction=cfg.val_fraction,
                                  seed=cfg.seed)
    save_config(cfg, out / "tune_config.toml")

    def objective(trial: Any) -> float:
        arch, train = suggest(trial, cfg.space, cfg.train)
        kind = suggest_input_kind(trial, cfg.space, cfg.input_kind)
        reg = SEDRegressor(SEDRegressorConfig(targets=tuple(cfg.targets), input_kind=kind,
                                              architecture=arch, train=train))

        def report(epoch: int, rec: dict[str, float]) -> None:
            trial.report(rec["val_loss"], epoch)
            if cfg.prune and trial.should_prune():
                raise optuna.TrialPruned()

        reg.fit(data, bands=bands, val_idx=val_idx, quiet=quiet, callback=report)
        assert reg.result_ is not None
        trial.set_user_attr("best_epoch", reg.result_.best_epoch)
        return float(reg.result_.best_val_loss)

    storage = f"sqlite:///{(out / 'study.db').resolve()}"
    sampler = optuna.samplers.TPESampler(seed=cfg.seed)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10) if cfg.prune
              else optuna.pruners.NopPruner())
    if quiet:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=cfg.study_name, storage=storage, direction="minimize",
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    if study.direction != optuna.study.StudyDirection.MINIMIZE:
        raise InputError(f"{storage}: study {cfg.study_name!r} exists with direction {study.direction.name}; "
                         "the validation loss must be minimised")
    done = len([t for t in study.trials if t.state.is_finished()])
    remaining = max(0, cfg.n_trials - done)
    if remaining:
        study.optimize(objective, n_trials=remaining, timeout=cfg.timeout_s or None)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise InputError("no trial finished; raise n_trials or timeout_s")
    best = study.best_trial

    class _Fixed:
        """Replays the best parameters through `suggest` to rebuild the configs."""

        def __init__(self, params: dict[str, Any]):
            self.params = params

        def suggest_int(self, name, *a, **k):
            return self.params[name]

        suggest_float = suggest_categorical = suggest_int

    arch, train = suggest(_Fixed(best.params), cfg.space, cfg.train)
    import tomli_w

    best_cfg: dict[str, Any] = {"architecture": to_dict(arch), "train": to_dict(train)}
    if cfg.space.input_kind:
        best_cfg = {"input_kind": suggest_input_kind(_Fixed(best.params), cfg.space, cfg.input_kind), **best_cfg}
    write_text_atomic(out / "best_params.toml", tomli_w.dumps(best_cfg))
    write_json_atomic(out / "best_trial.json", {"number": best.number, "value": best.value, "params": best.params,
                                                "user_attrs": best.user_attrs, "direction": "minimize",
                                                "n_complete": len(complete), "n_trials": len(study.trials)})
    return TuneResult(study, float(best.value), dict(best.params), arch, train, out)
