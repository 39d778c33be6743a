"""`SEDPosterior`: amortised neural posterior estimation for SEDs, trained with the one training loop.

``SEDPosterior(config).fit(table)`` trains a `photopop.models.posterior.PosteriorNet` (CNN embedding +
conditional flow) by minimising -log p(theta | SED, errors, redshift) with `train_network` (the same
early stopping on the grouped validation carve, checkpoints and exact resume as `SEDRegressor`); the
normalisation of inputs, log errors, redshift and labels is fitted on the fitting rows only. A share of
the fitting galaxies (``calib_fraction``, or the caller's ``calib_idx``) is held out from both fitting and
early stopping; on them per-target spread factors are fitted (`fit_spread_factors`, galaxies as the unit:
leave-one-galaxy-out quantile levels) that widen or narrow every object's draws about its median so that
the central 68 % (and, per level, 95 %) intervals cover their share of new galaxies' objects.
After training, the out-of-domain statistics are fitted on the fitting rows' context vectors and the flag
threshold on the validation and calibration galaxies' (both held out from the fit). ``sample``, ``predict_quantiles``,
``save`` and ``load`` mirror `SEDRegressor`.

Training on a mock whose magnitudes were drawn with the listed errors is neural posterior estimation
proper: each (SED, labels) pair is a draw from the joint distribution, so the flow learns the
posterior under the mock's prior. Do not add ``noise_augment`` here: it would re-noise SEDs beyond
their stated errors and widen the posteriors.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..config import from_dict, to_dict
from ..errors import InputError
from ..models.normalise import Standardiser, feature_names, make_features
from ..models.posterior import PosteriorNet, PosteriorNetConfig
from ..photometry.columns import MAGERR_PREFIX
from ..models.posterior_model import SavedPosterior, fit_ood, fit_spread_factors, log_magerr
from ..models.saved import table_hash
from ..models.sed_base import check_finite, extract_magnitudes
from .fit import (TrainConfig, TrainResult, _fit_nan_standardiser, history_files, load_history, train_network,
                  validation_split)


def _default_train() -> TrainConfig:
    # the validation NLL of a flow is noisy: a patience of 30 epochs, at most 400
    return TrainConfig(max_epochs=400, patience=30, batch_size=256, learning_rate=1e-3)


@dataclass
class SEDPosteriorConfig:
    """Everything that defines a trained posterior model.

    targets: label columns of the joint posterior (log_age, zh, optionally a_v, ...).
    use_magerr: condition on the log10 magnitude errors (the ``magerr_<band>`` columns; prediction
    inputs must have them too). extra_columns: further per-row context columns (e.g. 'redshift'; a
    spaxel table without it takes it from its galaxy table). nan_policy 'mask': a presence-mask channel
    and ``train.band_dropout``, so bands may be missing (NaN). val_fraction / val_scheme: validation
    carve as `SEDRegressorConfig`. calib_fraction: share of the remaining fitting galaxies (same grouping)
    held out for recalibration only -- neither fitted nor used for early stopping: the per-target spread
    factors come from them (0 disables: factors 1). per_level_spread: also fit the central 95 % interval's
    own factor on them (meta ``spread_factors_95``; `models.posterior_model.spread_by_level`), since the
    flow's tails are too light for one factor to serve both levels (docs/posteriors.md).
    ood_quantile: flag threshold as a quantile of held-out galaxies'
    scores. n_samples: draws per object behind the quantiles (>= 1000 by default).
    """

    targets: tuple[str, ...] = ("log_age", "zh")
    use_magerr: bool = True
    extra_columns: tuple[str, ...] = ()
    nan_policy: str = "refuse"
    val_fraction: float = 0.2
    val_scheme: str = "auto"
    calib_fraction: float = 0.15
    per_level_spread: bool = True
    ood_quantile: float = 0.99
    n_samples: int = 1000
    architecture: PosteriorNetConfig = field(default_factory=PosteriorNetConfig)
    train: TrainConfig = field(default_factory=_default_train)

    def validate(self) -> None:
        """Raise InputError for bad settings."""
        if not self.targets or len(set(self.targets)) != len(self.targets):
            raise InputError(f"targets must be distinct and non-empty, got {self.targets}")
        if self.nan_policy not in ("refuse", "mask"):
            raise InputError(f"unknown nan_policy {self.nan_policy!r}; use 'refuse' or 'mask'")
        if not 0.0 < float(self.ood_quantile) < 1.0:
            raise InputError(f"ood_quantile must be in (0, 1), got {self.ood_quantile}")
        if not 0.0 <= float(self.calib_fraction) < 1.0:
            raise InputError(f"calib_fraction must be in [0, 1), got {self.calib_fraction}")
        if int(self.n_samples) < 1:
            raise InputError(f"n_samples must be >= 1, got {self.n_samples}")
        if self.train.noise_augment:
            raise InputError("noise_augment would widen the posteriors beyond the stated errors; leave it off")
        self.architecture.validate()
        self.train.validate()


def table_columns(data: Any, names: Sequence[str]) -> np.ndarray | None:
    """(n, len(names)) values of per-row context columns; from the galaxy table when the spaxels lack them."""
    names = list(names)
    if not names:
        return None
    frame = data.spaxels if hasattr(data, "spaxels") else data
    out = []
    for name in names:
        if name in frame.columns:
            out.append(frame[name].to_numpy(np.float64))
            continue
        gal = getattr(data, "galaxies", None)
        if gal is not None and name in gal.columns and "galaxy_id" in frame.columns:
            values = frame[["galaxy_id"]].merge(gal[["galaxy_id", name]], on="galaxy_id", how="left")[name]
            out.append(values.to_numpy(np.float64))
            continue
        raise InputError(f"table lacks context column {name!r} (neither in the spaxels nor in the galaxy table)")
    arr = np.stack(out, axis=1)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"context column(s) {names} have NaN/inf values")
    return arr


class SEDPosterior:
    """scikit-learn-like: ``SEDPosterior(config).fit(table)``, ``.sample``, ``.predict_quantiles``, ``.save``/``.load``."""

    def __init__(self, config: SEDPosteriorConfig | None = None) -> None:
        self.config = config or SEDPosteriorConfig()
        self.model_: SavedPosterior | None = None
        self.result_: TrainResult | None = None

    def fit(self, data: Any, *, bands: Sequence[str] | None = None, filter_system: str | None = None,
            galaxy_ids: Any = None, val_idx: Any = None, calib_idx: Any = None,
            checkpoint_path: str | Path | None = None,
            quiet: bool = True, callback: Callable[[int, dict[str, float]], None] | None = None) -> "SEDPosterior":
        """Train on an SEDTable or DataFrame with mag_<band>, magerr_<band> (if used) and target columns.

        calib_idx: rows held out for recalibration only (whole galaxies, e.g. a study's calibration
        galaxies); without it ``calib_fraction`` of the fitting galaxies are carved (grouped) for it.
        """
        cfg = self.config
        cfg.validate()
        mask = cfg.nan_policy == "mask"
        targets = list(cfg.targets)
        mags, bands_l, system, _ = extract_magnitudes(data, bands, filter_system)
        frame = data.spaxels if hasattr(data, "spaxels") else data
        if not isinstance(frame, pd.DataFrame):
            raise InputError("SEDPosterior.fit needs an SEDTable or a DataFrame")
        missing = [t for t in targets if t not in frame.columns]
        if missing:
            raise InputError(f"table lacks target column(s) {missing}")
        y = frame[targets].to_numpy(np.float64)
        if not np.all(np.isfinite(y)):
            raise InputError(f"{int((~np.isfinite(y)).any(axis=1).sum())} training row(s) have NaN/inf targets")
        if mask:
            if np.isinf(mags).any():
                raise InputError("training table: infinite magnitudes (use NaN for missing bands)")
        else:
            check_finite(mags, bands_l, "training table")
        if galaxy_ids is None and "galaxy_id" in frame.columns:
            galaxy_ids = frame["galaxy_id"].to_numpy()
        fit_idx, vidx, cal_idx = _carve(len(mags), galaxy_ids, val_idx, calib_idx, cfg)
        feats = make_features(mags, bands_l, "mag")
        fnames = feature_names(bands_l, "mag")
        fit_std = _fit_nan_standardiser if mask else Standardiser.fit
        norms: dict[str, Standardiser | None] = {"input": fit_std(feats[fit_idx], fnames),
                                                 "target": Standardiser.fit(y[fit_idx], targets),
                                                 "magerr": None, "extra": None}
        parts = [norms["input"].transform(feats)]
        if cfg.use_magerr:
            cols = [MAGERR_PREFIX + b for b in bands_l]
            absent = [c for c in cols if c not in frame.columns]
            if absent:
                raise InputError(f"use_magerr needs the magnitude errors; table lacks {absent[:5]}")
            lerr = log_magerr(frame[cols].to_numpy(np.float64), mags, bands_l)
            norms["magerr"] = fit_std(lerr[fit_idx], [f"log_{c}" for c in cols])
            parts.append(norms["magerr"].transform(lerr))
        extra = table_columns(data, cfg.extra_columns)
        if extra is not None:
            norms["extra"] = Standardiser.fit(extra[fit_idx], list(cfg.extra_columns))
            parts.append(norms["extra"].transform(extra))
        x = np.concatenate(parts, axis=1)
        z = norms["target"].transform(y)

        net = build_posterior_network(len(bands_l), len(targets), len(bands_l) if cfg.use_magerr else 0,
                                      0 if extra is None else extra.shape[1], cfg.architecture,
                                      2 if mask else 1, cfg.train.seed)
        self.result_ = train_network(net, x[fit_idx], z[fit_idx], x[vidx], z[vidx], cfg.train,
                                     checkpoint_path=checkpoint_path, target_names=targets,
                                     target_scale=norms["target"].scale, quiet=quiet, callback=callback)
        net.to("cpu").eval()
        meta = {"kind": "sed-posterior", "bands": bands_l, "filter_system": system, "targets": targets,
                "input_kind": "mag", "nan_policy": cfg.nan_policy, "use_magerr": bool(cfg.use_magerr),
                "extra_columns": list(cfg.extra_columns), "ood_quantile": float(cfg.ood_quantile),
                "ood_threshold": math.nan, "n_samples": int(cfg.n_samples), "loss": "flow_nll",
                "photopop_version": __version__, "train_table_hash": table_hash(mags, y),
                "n_fit_rows": int(fit_idx.size), "n_val_rows": int(vidx.size), "n_calib_rows": int(cal_idx.size),
                "best_epoch": self.result_.best_epoch, "best_val_loss": self.result_.best_val_loss,
                "epochs_run": self.result_.epochs_run, "stopped_early": self.result_.stopped_early}
        extra_cfg = {"posterior": {k: v for k, v in to_dict(cfg).items() if k not in ("architecture", "train")},
                     "train": to_dict(cfg.train)}
        model = SavedPosterior(net, norms, {"mean": [0.0], "precision": [[1.0]]}, meta, extra_cfg)
        # OOD statistics from the fitting rows; scales and threshold from every held-out galaxy (validation
        # and calibration: neither was fitted), since the in-domain tail is set by a few unusual galaxies
        # and a quantile over 20 validation galaxies alone moved by 3x between carves (posteriors.md)
        ctx = _contexts(model, x)
        held = np.union1d(vidx, cal_idx)
        gal = None if galaxy_ids is None else np.asarray(galaxy_ids)
        stats, threshold = fit_ood(ctx[fit_idx], ctx[held], cfg.ood_quantile,
                                   groups_val=None if gal is None else gal[held])
        model.ood_mean, model.ood_precision = stats["mean"], stats["precision"]
        model.ood_principal, model.ood_scales = stats["principal"], stats["scales"]
        model.meta["ood_threshold"] = threshold
        model.meta["ood_threshold_level"] = float(stats["threshold_level"])
        model.meta["n_ood_rows"] = int(held.size)
        if cal_idx.size:
            raw = model.sample_inputs(x[cal_idx], cfg.n_samples, seed=cfg.train.seed, raw=True)
            factors, report = fit_spread_factors(y[cal_idx], raw, groups=None if gal is None else gal[cal_idx])
            model.meta["spread_factors"] = dict(zip(targets, factors))
            if cfg.per_level_spread:
                model.meta["spread_factors_95"] = dict(zip(targets, report["factor_95"]))
            model.meta["recalibration"] = {"targets": targets, **report}
        self.model_ = model
        return self

    # -- prediction ------------------------------------------------------------------------------------
    def _fitted(self) -> SavedPosterior:
        if self.model_ is None:
            raise InputError("this SEDPosterior is not fitted yet: call fit() or load()")
        return self.model_

    def sample(self, data: Any, n_samples: int | None = None, seed: int = 0, **kw: Any) -> np.ndarray:
        """(n_samples, n_objects, n_targets) posterior draws in label units."""
        model = self._fitted()
        x = model.frame_inputs(data, kw.pop("bands", None), kw.pop("filter_system", None))
        return model.sample_inputs(x, n_samples or self.config.n_samples, seed, **kw)

    def predict_quantiles(self, data: Any, n_samples: int | None = None, seed: int = 0, **kw: Any) -> pd.DataFrame:
        """Per object ``<t>_p025/p16/p50/p84/p975``, ``corr_log_age_zh``, ``ood_score``, ``ood_flag``."""
        return self._fitted().predict(data, n_samples=n_samples or self.config.n_samples, seed=seed, **kw)

    predict = predict_quantiles

    @property
    def history_(self) -> pd.DataFrame | None:
        return self.result_.history if self.result_ is not None else None

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the model folder (plus history.csv/json); `overwrite` as in `SavedSEDModel.save`."""
        return self._fitted().save(path, extra_files=history_files(self.result_), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> "SEDPosterior":
        """Read a posterior model folder; the config is rebuilt from its config.toml."""
        model = SavedPosterior.load(path)
        extra = dict(model.extra_config)
        cfg = from_dict(SEDPosteriorConfig, {**dict(extra.get("posterior", {})),
                                             "architecture": to_dict(model.network.config),
                                             "train": extra.get("train", {})})
        out = cls(cfg)
        out.model_ = model
        out.result_ = load_history(path, model.meta)
        return out


def _carve(n: int, galaxy_ids: Any, val_idx: Any, calib_idx: Any,
           cfg: SEDPosteriorConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fitting, validation, calibration) rows, disjoint; grouped by galaxy as `validation_split`."""
    gal = None if galaxy_ids is None else np.asarray(galaxy_ids)
    if calib_idx is not None:
        cal = np.unique(np.asarray(calib_idx, dtype=np.int64))
        if cal.size < 2 or cal.min() < 0 or cal.max() >= n:
            raise InputError(f"calib_idx must select at least 2 of the {n} rows (valid row numbers)")
        rest = np.setdiff1d(np.arange(n), cal)
        if val_idx is not None:
            vidx = np.unique(np.asarray(val_idx, dtype=np.int64))
            if np.intersect1d(vidx, cal).size:
                raise InputError("val_idx and calib_idx share rows")
            if vidx.size == 0 or vidx.min() < 0 or vidx.max() >= n or vidx.size >= rest.size:
                raise InputError(f"val_idx must select between 1 and {rest.size - 1} of the non-calibration rows")
            return np.setdiff1d(rest, vidx), vidx, cal
        f, v = validation_split(rest.size, None if gal is None else gal[rest], None, cfg.val_scheme,
                                cfg.val_fraction, cfg.train.seed)
        return rest[f], rest[v], cal
    fit_idx, vidx = validation_split(n, gal, val_idx, cfg.val_scheme, cfg.val_fraction, cfg.train.seed)
    cal = np.empty(0, dtype=np.int64)
    if cfg.calib_fraction > 0:  # recalibration galaxies: carved from the fitting rows, used for nothing else
        keep, c = validation_split(fit_idx.size, None if gal is None else gal[fit_idx], None, cfg.val_scheme,
                                   cfg.calib_fraction, cfg.train.seed + 1)
        fit_idx, cal = fit_idx[keep], fit_idx[c]
    return fit_idx, vidx, cal


def build_posterior_network(n_bands: int, n_targets: int, n_err: int, n_extra: int, config: PosteriorNetConfig,
                            in_channels: int, seed: int) -> PosteriorNet:
    """A `PosteriorNet` with weights initialised from `seed` (the caller's RNG state is untouched)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PosteriorNet(n_bands, n_targets, n_err, n_extra, dataclasses.replace(config), in_channels)


def _contexts(model: SavedPosterior, x: np.ndarray, batch: int = 8192) -> np.ndarray:
    """OOD feature vectors of network rows (`PosteriorNet.ood_features`; x before the mask channels)."""
    import torch

    if model.handles_nan:
        present = np.isfinite(x)
        x = np.stack([np.where(present, x, 0.0), present.astype(np.float64)], axis=1)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    out = []
    with torch.inference_mode():
        for s in range(0, len(xt), batch):
            out.append(model.network.ood_features(xt[s:s + batch]).double().numpy())
    return np.concatenate(out)
