"""`SEDRegressor`: the scikit-learn-like SED CNN estimator (fit / predict / save / load).

``fit`` extracts magnitudes and targets from an SEDTable, a DataFrame or arrays, carves the validation
rows (`photopop.training.fit.validation_split`, grouped by galaxy), fits the input and target
standardisation on the remaining rows only, builds the network from the seed and trains it with
`photopop.training.fit.train_network`; the result is a `photopop.models.saved.SavedSEDModel`, written
and read as a model folder (plus history.csv / history.json).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..config import from_dict, to_dict
from ..datasets.frames import as_frame
from ..errors import InputError
from ..models.normalise import Standardiser, check_kind, feature_names, make_features, resolve_ref_band
from ..models.saved import SavedSEDModel, table_hash
from ..models.sed_base import check_finite, extract_magnitudes
from ..models.sed_cnn import SEDCNNConfig
from ..photometry.magnitudes import as_range
from .fit import (TrainConfig, TrainResult, _fit_nan_standardiser, build_network, history_files, load_history,
                  train_network, validation_split)


@dataclass
class SEDRegressorConfig:
    """Everything that defines a trained SED model.

    targets: label columns to predict with one multi-output network (train one regressor per target
    for the paper's one-model-per-target setup). input_kind: 'colour' (default; magnitudes minus the
    reference band, the inputs `photopop sed cv` measures best, docs/sed-cnn.md) | 'mag' (the paper's
    literal inputs) | 'flux' (see photopop.models.normalise); ref_band: colour reference ('' = middle band).
    val_fraction / val_scheme: validation carved from the training rows by
    `photopop.splits.carve_validation`; scheme 'auto' = by galaxy ('B') when galaxy ids are known,
    else random rows. nan_policy: 'refuse' (NaN magnitudes are an error) or 'mask' (needs input_kind 'mag',
    set it explicitly: a colour of a missing band is undefined; the network gets a presence-mask channel, is trained with ``train.band_dropout`` and then
    accepts NaN for missing bands). With ``train.loss = 'gaussian_nll'`` the model also predicts a
    per-object sigma (``<target>_sigma`` columns).
    """

    targets: tuple[str, ...] = ("log_age",)
    input_kind: str = "colour"
    ref_band: str = ""
    val_fraction: float = 0.2
    val_scheme: str = "auto"
    nan_policy: str = "refuse"
    architecture: SEDCNNConfig = field(default_factory=SEDCNNConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class SEDRegressor:
    """scikit-learn-like estimator: ``SEDRegressor(config).fit(table).predict(df)``, ``.save``/``.load``."""

    def __init__(self, config: SEDRegressorConfig | None = None):
        self.config = config or SEDRegressorConfig()
        self.model_: SavedSEDModel | None = None
        self.result_: TrainResult | None = None

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, data: Any, y: Any = None, *, bands: Sequence[str] | None = None,
            filter_system: str | None = None, galaxy_ids: Any = None,
            val_idx: Any = None, checkpoint_path: str | Path | None = None,
            quiet: bool = True, callback: Callable[[int, dict[str, float]], None] | None = None,
            magerr: Any = None) -> "SEDRegressor":
        """Train on an SEDTable, a DataFrame (mag_<band> + target columns) or an array (+ `y`, `bands`).

        Validation rows: `val_idx` (row positions) if given, else carved with `val_scheme`, grouped
        by `galaxy_ids` (default: the table's galaxy_id column). Normalisation is fitted on the
        remaining (fitting) rows only. `magerr` (n, n_bands) gives the magnitude errors for
        ``train.noise_augment`` when `data` is an array (tables give their magerr_<band> columns).

        Parameters
        ----------
        data : SEDTable, DataFrame, astropy Table/QTable or array
            Training rows: ``mag_<band>`` columns (AB) and the target columns, or an (n, n_bands) array.
        y : array_like, optional
            (n, n_targets) targets when `data` is an array.
        bands, filter_system : optional
            Band names of an array's columns and their filter system (tables give their own).
        galaxy_ids : array_like, optional
            Groups for the validation split (default: the table's ``galaxy_id``).
        val_idx : array_like of int, optional
            Validation rows (default: carved by ``val_scheme``).
        checkpoint_path : str or path, optional
            Atomic checkpoints; an existing one of the same settings and data is resumed exactly.
        quiet : bool
            No progress bar.

        Returns
        -------
        SEDRegressor
            `self`, fitted: ``model_`` (the network with its normalisation) and ``result_`` (history).
        """
        data = as_frame(data, "training table")  # astropy Table/QTable -> DataFrame
        cfg = self.config
        check_kind(cfg.input_kind)
        if cfg.nan_policy not in ("refuse", "mask"):
            raise InputError(f"unknown nan_policy {cfg.nan_policy!r}; use 'refuse' or 'mask'")
        mask_mode = cfg.nan_policy == "mask"
        if mask_mode and cfg.input_kind != "mag":
            raise InputError(f"nan_policy 'mask' needs input_kind 'mag', got {cfg.input_kind!r} (the default is "
                             "'colour'; colours/fluxes of missing bands are undefined): set input_kind = \"mag\" "
                             "(`--input-kind mag` or `--set input_kind=mag`)")
        targets = list(cfg.targets)
        if not targets:
            raise InputError("no targets configured")
        mags, bands_l, system, _ = extract_magnitudes(data, bands, filter_system)
        frame = data.spaxels if hasattr(data, "spaxels") else data if isinstance(data, pd.DataFrame) else None
        if y is None:
            if frame is None:
                raise InputError("an array of magnitudes needs targets `y`")
            missing = [t for t in targets if t not in frame.columns]
            if missing:
                raise InputError(f"table lacks target column(s) {missing}")
            yarr = frame[targets].to_numpy(dtype=np.float64)
        else:
            yarr = np.asarray(y, dtype=np.float64).reshape(len(mags), -1)
            if yarr.shape[1] != len(targets):
                raise InputError(f"y has {yarr.shape[1]} column(s) but {len(targets)} target(s) are configured")
        if galaxy_ids is None and frame is not None and "galaxy_id" in frame.columns:
            galaxy_ids = frame["galaxy_id"].to_numpy()
        if mask_mode:
            if np.isinf(mags).any():
                raise InputError("training table: infinite magnitudes (use NaN for missing bands)")
        else:
            check_finite(mags, bands_l, "training table")
        bad_y = ~np.isfinite(yarr)
        if bad_y.any():
            raise InputError(f"{int(bad_y.any(axis=1).sum())} training row(s) have NaN/inf targets "
                             f"{[t for j, t in enumerate(targets) if bad_y[:, j].any()]}")
        fit_idx, vidx = self._split(len(mags), galaxy_ids, val_idx)

        ref = cfg.ref_band or None
        # the magnitude range of an SED table (meta 'mag_range', default -10..40 AB) travels with the model
        table_meta = getattr(data, "meta", None)
        mag_range = as_range(table_meta.get("mag_range") if isinstance(table_meta, dict) else None)
        feats = make_features(mags, bands_l, cfg.input_kind, ref, mag_range)
        fnames = feature_names(bands_l, cfg.input_kind, ref)
        in_norm = _fit_nan_standardiser(feats[fit_idx], fnames) if mask_mode else Standardiser.fit(feats[fit_idx], fnames)
        tg_norm = Standardiser.fit(yarr[fit_idx], targets)
        x = in_norm.transform(feats)
        z = tg_norm.transform(yarr)
        x_sd = None
        if cfg.train.noise_augment:
            err = _magerr_array(data, frame, magerr, bands_l, mags.shape)
            x_sd = feature_noise(mags, err, bands_l, cfg.input_kind, ref) / in_norm.scale
        hetero = cfg.train.loss == "gaussian_nll"
        arch = cfg.architecture
        if mask_mode and int(arch.in_channels) != 2:
            from dataclasses import replace

            arch = replace(arch, in_channels=2)
        n_out = 2 * len(targets) if hetero else len(targets)
        net = build_network(x.shape[1], n_out, arch, cfg.train.seed)
        self.result_ = train_network(net, x[fit_idx], z[fit_idx], x[vidx], z[vidx], cfg.train,
                                     checkpoint_path=checkpoint_path, target_names=targets,
                                     target_scale=tg_norm.scale, quiet=quiet, callback=callback,
                                     x_train_sd=x_sd[fit_idx] if x_sd is not None else None)
        net.to("cpu")
        meta = {"bands": bands_l, "filter_system": system, "targets": targets, "input_kind": cfg.input_kind,
                "ref_band": resolve_ref_band(bands_l, ref) if cfg.input_kind == "colour" else None,
                "nan_policy": cfg.nan_policy, "loss": cfg.train.loss, "photopop_version": __version__,
                "mag_range": [mag_range.lo, mag_range.hi],
                "train_table_hash": table_hash(mags, yarr),
                "n_fit_rows": int(fit_idx.size), "n_val_rows": int(vidx.size),
                "best_epoch": self.result_.best_epoch, "best_val_loss": self.result_.best_val_loss,
                "epochs_run": self.result_.epochs_run, "stopped_early": self.result_.stopped_early}
        extra = {"regressor": {k: v for k, v in to_dict(cfg).items() if k not in ("architecture", "train")},
                 "train": to_dict(cfg.train)}
        self.model_ = SavedSEDModel(net, in_norm, tg_norm, meta, extra)
        return self

    def _split(self, n: int, galaxy_ids: Any, val_idx: Any) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        return validation_split(n, galaxy_ids, val_idx, cfg.val_scheme, cfg.val_fraction, cfg.train.seed)

    # -- prediction and folders ---------------------------------------------------------------------
    def _fitted(self) -> SavedSEDModel:
        if self.model_ is None:
            raise InputError("this SEDRegressor is not fitted yet: call fit() or load()")
        return self.model_

    def predict(self, data: Any, **kw: Any) -> pd.DataFrame:
        """One column per target; see `SavedSEDModel.predict` for band and filter-system checks.

        Parameters
        ----------
        data : SEDTable, DataFrame, astropy Table/QTable or array
            Rows with the model's ``mag_<band>`` columns (other columns are ignored).
        **kw
            ``bands``, ``filter_system`` (for arrays), ``batch_size``, ``device``, ``num_threads``.

        Returns
        -------
        DataFrame
            One column per target (and ``<target>_sigma`` for Gaussian-NLL models), the input's index.
        """
        return self._fitted().predict(as_frame(data), **kw)

    @property
    def history_(self) -> pd.DataFrame | None:
        return self.result_.history if self.result_ is not None else None

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the model folder (model.pt, config.toml, normalisation.json, meta.json, history.csv/.json);
        `overwrite` as in `SavedSEDModel.save`."""
        return self._fitted().save(path, extra_files=history_files(self.result_), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> "SEDRegressor":
        """Read a model folder; the config is rebuilt from its config.toml."""
        model = SavedSEDModel.load(path)
        extra = dict(model.extra_config)
        reg = dict(extra.get("regressor", {}))
        try:
            cfg = from_dict(SEDRegressorConfig, {**reg, "architecture": to_dict(model.network.config),
                                                 "train": extra.get("train", {})})
        except InputError:
            cfg = SEDRegressorConfig(targets=tuple(model.targets), input_kind=model.meta["input_kind"],
                                     architecture=model.network.config)
        out = cls(cfg)
        out.model_ = model
        out.result_ = load_history(path, model.meta)
        return out



def _magerr_array(data: Any, frame: pd.DataFrame | None, magerr: Any, bands: Sequence[str],
                  shape: tuple[int, ...]) -> np.ndarray:
    """Magnitude errors (n, n_bands) for noise augmentation, from `magerr` or the magerr_<band> columns."""
    if magerr is not None:
        err = np.asarray(magerr, dtype=np.float64)
    else:
        if frame is None:
            raise InputError("noise_augment with an array of magnitudes needs `magerr=`")
        cols = [f"magerr_{b}" for b in bands]
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise InputError(f"noise_augment needs magnitude errors; table lacks column(s) {missing[:5]}")
        err = frame[cols].to_numpy(dtype=np.float64)
    if err.shape != tuple(shape):
        raise InputError(f"magnitude errors must have shape {tuple(shape)}, got {err.shape}")
    finite = np.isfinite(err)
    if np.any(err[finite] < 0):
        raise InputError("magnitude errors must be >= 0")
    return np.where(finite, err, 0.0)


def feature_noise(mags: np.ndarray, magerr: np.ndarray, bands: Sequence[str], kind: str,
                  ref_band: str | None = None) -> np.ndarray:
    """1-sigma noise of each input feature (physical units) from magnitude errors, to first order.

    mag: sigma_m. colour m_b - m_ref: sqrt(sigma_b^2 + sigma_ref^2). flux f_b / median f:
    0.4 ln10 f_b/med sigma_b (the median's own jitter is neglected).
    """
    if kind == "mag":
        return np.asarray(magerr, dtype=np.float64).copy()
    if kind == "colour":
        ref = resolve_ref_band(bands, ref_band)
        j = list(bands).index(ref)
        keep = [i for i in range(len(bands)) if i != j]
        return np.sqrt(magerr[:, keep] ** 2 + magerr[:, [j]] ** 2)
    return 0.4 * math.log(10.0) * make_features(mags, bands, "flux") * magerr
