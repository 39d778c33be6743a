"""Robustness of the SED CNN: accuracy against photometric S/N and missing bands, and fine-tuning.

`run_robustness_study` (galaxies held out, Set B style) trains three networks on the same fitting
galaxies and tests them on held-out galaxies:

* ``baseline``    the plain network (MSE, no augmentation);
* ``noise_aware`` the same with ``noise_augment``: every batch re-noises the inputs with each row's
  own magnitude errors (so the network sees ~sqrt(2) x the catalogue noise and learns to average);
* ``masked``      a presence-mask channel trained with random band dropout (``nan_policy='mask'``),
  which accepts NaN for missing bands.

S/N test: test magnitudes are redrawn as magtrue + f * magerr * N(0, 1) for each noise factor f
(needs the mock's ``magtrue_<band>`` columns; f = 1 is the catalogue's noise level, S/N / f).
Missing-band test: k random bands per row set missing; the masked model gets NaN, the others get the
training mean of that band (mean imputation, the simplest fallback a plain network allows).

`run_finetune_study` pre-trains on one (large) table, then fine-tunes all weights at a lower learning
rate on a few galaxies of another table (different hidden factors), and compares with training from
scratch on those galaxies and with the pre-trained network applied as is.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..config import dumps_toml, to_dict
from ..datasets.sed_table import load_sed_table
from ..errors import InputError
from ..evaluation.metrics import bias, rmse, robust_sigma
from ..io import dumps_json
from ..outputs import replace_output
from ..models.saved import SavedSEDModel
from ..models.sed_base import extract_magnitudes
from ..models.sed_cnn import SEDCNNConfig
from ..splits import carve_validation
from ..training.fit import TrainConfig, train_network
from ..training.sed_regressor import SEDRegressor, SEDRegressorConfig
from .sed_cv import derived_seed

MODELS = ("baseline", "noise_aware", "masked")


def _default_train() -> TrainConfig:
    return TrainConfig(max_epochs=200, patience=20)


@dataclass
class RobustnessConfig:
    """Settings of `run_robustness_study` (saved as config.toml with the run)."""

    targets: tuple[str, ...] = ("log_age", "zh")
    models: tuple[str, ...] = MODELS
    test_fraction: float = 0.25
    val_fraction: float = 0.2
    noise_factors: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    missing_counts: tuple[int, ...] = (0, 2, 5, 10)
    band_dropout: float = 0.4
    seed: int = 0
    architecture: SEDCNNConfig = field(default_factory=SEDCNNConfig)
    train: TrainConfig = field(default_factory=_default_train)

    def validate(self) -> None:
        """Raise InputError for bad settings."""
        bad = [m for m in self.models if m not in MODELS]
        if bad or not self.models:
            raise InputError(f"unknown model(s) {bad}; choose from {list(MODELS)}")
        if any(f <= 0 for f in self.noise_factors):
            raise InputError(f"noise factors must be > 0, got {self.noise_factors}")
        if any(k < 0 for k in self.missing_counts):
            raise InputError(f"missing-band counts must be >= 0, got {self.missing_counts}")
        if not 0 <= self.band_dropout < 1:
            raise InputError(f"band_dropout must be in [0, 1), got {self.band_dropout}")
        self.train.validate()
        self.architecture.validate()


def _scores(y: np.ndarray, mu: np.ndarray, targets: Sequence[str]) -> dict[str, dict[str, float]]:
    out = {}
    for j, t in enumerate(targets):
        r = mu[:, j] - y[:, j]
        out[t] = {"robust_sigma": robust_sigma(r), "rmse": rmse(r), "bias": bias(r), "n": int(np.isfinite(r).sum())}
    return out


def drop_bands(mags: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Copy of `mags` with k distinct random bands per row set to NaN (vectorised: argsort of uniforms)."""
    n, nb = mags.shape
    if k > nb:
        raise InputError(f"cannot drop {k} of {nb} bands")
    out = mags.copy()
    if k == 0:
        return out
    cols = np.argsort(rng.random((n, nb)), axis=1)[:, :k]
    out[np.arange(n)[:, None], cols] = np.nan
    return out


def renoise(magtrue: np.ndarray, magerr: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """magtrue + factor * magerr * N(0, 1): the catalogue's noise scaled by `factor` (S/N / factor)."""
    return magtrue + factor * magerr * rng.standard_normal(magtrue.shape)


def _train_model(name: str, frame: pd.DataFrame, bands: list[str], system: str | None,
                 cfg: RobustnessConfig, quiet: bool) -> SavedSEDModel:
    train = dataclasses.replace(cfg.train, seed=derived_seed(cfg.seed, "robustness", name),
                                noise_augment=name == "noise_aware",
                                band_dropout=cfg.band_dropout if name == "masked" else 0.0)
    rcfg = SEDRegressorConfig(targets=tuple(cfg.targets), input_kind="mag", val_fraction=cfg.val_fraction,
                              nan_policy="mask" if name == "masked" else "refuse",
                              architecture=cfg.architecture, train=train)
    return SEDRegressor(rcfg).fit(frame, bands=bands, filter_system=system, quiet=quiet).model_


def _predict_missing(model: SavedSEDModel, mags: np.ndarray) -> np.ndarray:
    """Predict with NaN bands: masked models take NaN, others get the training mean of the band."""
    if model.meta.get("nan_policy") == "mask":
        return model.predict_array(mags)
    fill = np.broadcast_to(model.input_norm.mean, mags.shape)
    return model.predict_array(np.where(np.isfinite(mags), mags, fill))


def run_robustness_study(table: Any, config: RobustnessConfig | None = None, out_dir: str | Path = "robustness",
                         *, quiet: bool = True, progress: Any = None, overwrite: bool = False) -> dict[str, Any]:
    """Accuracy of baseline / noise-aware / masked networks against noise factor and missing bands.

    Returns ``{"snr": {model: {factor: {target: scores}}}, "missing": {model: {k: {target: scores}}},
    "n_galaxies": ...}``; writes metrics.json, results.csv, config.toml, meta.json to `out_dir`.
    """
    cfg = config or RobustnessConfig()
    cfg.validate()
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    tab = load_sed_table(table)
    df = tab.spaxels.reset_index(drop=True)
    targets = list(cfg.targets)
    mags, bands, system, _ = extract_magnitudes(tab)
    for prefix in ("magtrue_", "magerr_"):
        miss = [prefix + b for b in bands if prefix + b not in df.columns]
        if miss:
            raise InputError(f"the robustness study needs {prefix}<band> columns (a mock table); missing {miss[:3]}")
    magtrue = df[["magtrue_" + b for b in bands]].to_numpy(dtype=np.float64)
    magerr = df[["magerr_" + b for b in bands]].to_numpy(dtype=np.float64)
    y = df[targets].to_numpy(dtype=np.float64)
    gal = df["galaxy_id"].to_numpy()
    train, test = carve_validation(np.arange(len(df)), gal, "B", cfg.test_fraction, seed=derived_seed(cfg.seed, "test"))
    models = {}
    for name in cfg.models:
        t1 = time.perf_counter()
        models[name] = _train_model(name, df.iloc[train].reset_index(drop=True), bands, system, cfg, quiet)
        say(f"{name}: trained in {time.perf_counter() - t1:.1f} s (best epoch {models[name].meta['best_epoch']})")
    res: dict[str, Any] = {"snr": {m: {} for m in models}, "missing": {m: {} for m in models}}
    rows = []
    for f in cfg.noise_factors:
        x = renoise(magtrue[test], magerr[test], f, np.random.default_rng(derived_seed(cfg.seed, "noise", f)))
        for name, model in models.items():
            sc = _scores(y[test], model.predict_array(x), targets)
            res["snr"][name][str(f)] = sc
            rows += [{"study": "snr", "value": f, "model": name, "target": t, **s} for t, s in sc.items()]
    for k in cfg.missing_counts:
        x = drop_bands(mags[test], int(k), np.random.default_rng(derived_seed(cfg.seed, "missing", k)))
        for name, model in models.items():
            sc = _scores(y[test], _predict_missing(model, x), targets)
            res["missing"][name][str(k)] = sc
            rows += [{"study": "missing", "value": k, "model": name, "target": t, **s} for t, s in sc.items()]
    res["n_galaxies"] = {"train": int(np.unique(gal[train]).size), "test": int(np.unique(gal[test]).size)}
    res["timing_s"] = time.perf_counter() - t0
    meta = {"photopop_version": __version__, "seed": cfg.seed, "kind": "sed-robustness", "bands": bands,
            "filter_system": system}
    with replace_output(out_dir, "sed-robustness", {"config": to_dict(cfg)}, overwrite=overwrite) as tmp:
        (tmp / "metrics.json").write_text(dumps_json(res) + "\n")
        pd.DataFrame(rows).to_csv(tmp / "results.csv", index=False)
        (tmp / "config.toml").write_text(dumps_toml(cfg))
        (tmp / "meta.json").write_text(dumps_json(meta) + "\n")
    return res


# -- pre-training and fine-tuning -------------------------------------------------------------
@dataclass
class FinetuneConfig:
    """Settings of `run_finetune_study`.

    n_finetune_galaxies: labelled galaxies of the target table used for fine-tuning / scratch
    training (the rest of the target table is the test set). finetune_lr: learning rate of the
    fine-tuning (all weights, initialised from the pre-trained network; normalisation kept from
    pre-training so the weights see inputs on the scale they learnt).
    """

    targets: tuple[str, ...] = ("log_age", "zh")
    n_finetune_galaxies: int = 15
    val_fraction: float = 0.2
    finetune_lr: float = 2e-4
    seed: int = 0
    architecture: SEDCNNConfig = field(default_factory=SEDCNNConfig)
    train: TrainConfig = field(default_factory=_default_train)


def finetune(model: SavedSEDModel, frame: pd.DataFrame, config: FinetuneConfig,
             bands: Sequence[str], filter_system: str | None, quiet: bool = True) -> SavedSEDModel:
    """A copy of `model` with all weights trained further on `frame` (galaxy-grouped validation)."""
    mags, given, system, _ = extract_magnitudes(frame, list(bands), filter_system)
    if list(given) != model.bands:
        raise InputError(f"fine-tuning bands {given} differ from the pre-trained model's {model.bands}")
    targets = list(config.targets)
    if targets != model.targets:
        raise InputError(f"fine-tuning targets {targets} differ from the model's {model.targets}")
    y = frame[targets].to_numpy(dtype=np.float64)
    gal = frame["galaxy_id"].to_numpy()
    fit, val = carve_validation(np.arange(len(frame)), gal, "B", config.val_fraction,
                                seed=derived_seed(config.seed, "finetune-val"))
    x = model._inputs(mags)
    z = model.target_norm.transform(y)
    net = copy.deepcopy(model.network)
    tcfg = dataclasses.replace(config.train, learning_rate=config.finetune_lr,
                               seed=derived_seed(config.seed, "finetune"))
    res = train_network(net, x[fit], z[fit], x[val], z[val], tcfg, target_names=targets,
                        target_scale=model.target_norm.scale, quiet=quiet)
    net.to("cpu")
    meta = dict(model.meta, finetuned_on_rows=int(len(frame)), finetune_best_epoch=res.best_epoch)
    return SavedSEDModel(net, model.input_norm, model.target_norm, meta, model.extra_config)


def run_finetune_study(pretrain_table: Any, target_table: Any, config: FinetuneConfig | None = None,
                       out_dir: str | Path | None = None, *, quiet: bool = True,
                       progress: Any = None, overwrite: bool = False) -> dict[str, Any]:
    """Compare pre-trained (as is), pre-trained + fine-tuned, and from-scratch networks on the
    held-out galaxies of `target_table`; returns ``{method: {target: scores}}`` plus sizes."""
    cfg = config or FinetuneConfig()
    say = progress or (lambda msg: None)
    pre, tgt = load_sed_table(pretrain_table), load_sed_table(target_table)
    if list(pre.bands) != list(tgt.bands):
        raise InputError(f"pre-training and target tables have different bands: {pre.bands} vs {tgt.bands}")
    targets = list(cfg.targets)
    t0 = time.perf_counter()
    base_train = dataclasses.replace(cfg.train, seed=derived_seed(cfg.seed, "pretrain"))
    rcfg = SEDRegressorConfig(targets=tuple(targets), val_fraction=cfg.val_fraction,
                              architecture=cfg.architecture, train=base_train)
    pretrained = SEDRegressor(rcfg).fit(pre, quiet=quiet).model_
    say(f"pre-trained in {time.perf_counter() - t0:.1f} s")
    df = tgt.spaxels.reset_index(drop=True)
    gal = df["galaxy_id"].to_numpy()
    ids = np.unique(gal)
    if cfg.n_finetune_galaxies < 2 or cfg.n_finetune_galaxies >= ids.size:
        raise InputError(f"n_finetune_galaxies must be in [2, {ids.size - 1}], got {cfg.n_finetune_galaxies}")
    rng = np.random.default_rng(derived_seed(cfg.seed, "finetune-galaxies"))
    chosen = rng.choice(ids, size=cfg.n_finetune_galaxies, replace=False)
    small = np.isin(gal, chosen)
    small_frame = df[small].reset_index(drop=True)
    test = np.flatnonzero(~small)
    t1 = time.perf_counter()
    tuned = finetune(pretrained, small_frame, cfg, tgt.bands, tgt.filter_system, quiet)
    say(f"fine-tuned in {time.perf_counter() - t1:.1f} s")
    scratch_cfg = dataclasses.replace(rcfg, val_scheme="B",
                                      train=dataclasses.replace(cfg.train, seed=derived_seed(cfg.seed, "scratch")))
    scratch = SEDRegressor(scratch_cfg).fit(small_frame, bands=tgt.bands, filter_system=tgt.filter_system,
                                            quiet=quiet).model_
    mags = tgt.magnitudes("mag")[test]
    y = df[targets].to_numpy(dtype=np.float64)[test]
    res: dict[str, Any] = {name: _scores(y, m.predict_array(mags), targets)
                           for name, m in (("pretrained", pretrained), ("finetuned", tuned), ("scratch", scratch))}
    res["n_galaxies"] = {"pretrain": int(pre.spaxels["galaxy_id"].nunique()), "finetune": int(cfg.n_finetune_galaxies),
                         "test": int(np.unique(gal[test]).size)}
    res["timing_s"] = time.perf_counter() - t0
    if out_dir is not None:
        with replace_output(out_dir, "sed-finetune", {"config": to_dict(cfg)}, overwrite=overwrite) as tmp:
            (tmp / "metrics.json").write_text(dumps_json(res) + "\n")
            (tmp / "config.toml").write_text(dumps_toml(cfg))
            (tmp / "meta.json").write_text(dumps_json({"photopop_version": __version__, "seed": cfg.seed,
                                                       "kind": "sed-finetune"}) + "\n")
    return res
