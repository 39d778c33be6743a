"""`ImageEstimator`: the image regressor with the estimator interface of `SEDRegressor`.

``ImageEstimator(config).fit(images, y).predict(images)``, ``.save(path)`` / ``ImageEstimator.load(path)``:
the Wu & Boada (2019) recipe (`photopop.training.image_fit.fit_image_regressor`) behind the same four
methods as the SED side. ``fit`` takes an `photopop.datasets.image_set.ImageSet` (targets from its
catalogue columns) or an (n, C, H, W) array / `photopop.models.image_source.ImageSource` with targets
`y`; it trains on rows `train_idx` (default all) but the validation rows `val_idx`, else a seeded random
``val_fraction`` of them (one image per galaxy, so random rows are whole galaxies). The model folder is the `ImageRegressor` folder
(`photopop.models.folder.write_model_folder`: meta.json keys unchanged, so folders written by
``photopop reproduce wu-boada-2019`` open too), with the training settings as ``[train]`` and
``[estimator]`` in config.toml and history.csv / history.json beside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..config import from_dict, to_dict
from ..errors import InputError
from ..models.folder_checks import read_meta
from ..models.image_regressor import ImageModelConfig, ImageRegressor
from ..models.image_source import as_image_source
from ..models.sed_base import prediction_frame
from .fit import history_files, load_history, validation_split
from .image_fit import ImageFitConfig, ImageFitResult, fit_image_regressor
from .loop import Callback


@dataclass
class ImageEstimatorConfig:
    """Everything that defines a trained image model.

    targets: catalogue columns to predict (one network, one output per target). use: which pixels of
    an ImageSet, 'images' (calibrated fluxes) or 'rgb' (8-bit colour composites). val_fraction: share
    of the images held out for epoch selection when ``fit`` gets no `val_idx` (seeded by ``train.seed``).
    """

    targets: tuple[str, ...] = ("oh",)
    use: str = "images"
    val_fraction: float = 0.2
    architecture: ImageModelConfig = field(default_factory=ImageModelConfig)
    train: ImageFitConfig = field(default_factory=ImageFitConfig)


class ImageEstimator:
    """scikit-learn-like image estimator: ``ImageEstimator(config).fit(images, y).predict(images)``,
    ``.save`` / ``.load``; the fitted network is ``model_`` (an `ImageRegressor`)."""

    def __init__(self, config: ImageEstimatorConfig | None = None) -> None:
        self.config = config or ImageEstimatorConfig()
        self.model_: ImageRegressor | None = None
        self.result_: ImageFitResult | None = None

    def fit(self, images: Any, y: Any = None, *, bands: Sequence[str] | None = None, train_idx: Any = None,
            val_idx: Any = None, checkpoint_path: str | Path | None = None, checkpoint_every: int = 1,
            callback: Callback | None = None, log: Callable[[str], None] | None = None) -> "ImageEstimator":
        """Train on the rows `train_idx` (default: all) but the validation rows `val_idx` (default: a
        seeded random ``val_fraction`` of them); input and target normalisation use the fitting rows only. `y`: (n, n_targets) array or a DataFrame with the target columns (default:
        the ImageSet's catalogue). `checkpoint_path` makes the fit resumable (see `fit_image_regressor`)."""
        cfg = self.config
        targets = list(cfg.targets)
        if not targets:
            raise InputError("no targets configured")
        if y is None:
            catalog = getattr(images, "catalog", None)
            if not isinstance(catalog, pd.DataFrame):
                raise InputError("images without a catalogue need targets `y`")
            y = catalog
        source = as_image_source(images, bands, use=cfg.use)
        n = len(source)
        base = np.arange(n) if train_idx is None else np.unique(np.asarray(train_idx, dtype=np.int64))
        if train_idx is not None and val_idx is not None:
            vidx = np.unique(np.asarray(val_idx, dtype=np.int64))
            fit_idx = np.setdiff1d(base, vidx)
        else:
            f, v = validation_split(base.size, None, val_idx, "random", cfg.val_fraction, cfg.train.seed)
            fit_idx, vidx = base[f], base[v]
        self.result_ = fit_image_regressor(source, y, fit_idx, vidx, targets, model_config=cfg.architecture,
                                           config=cfg.train, log=log, checkpoint_path=checkpoint_path,
                                           checkpoint_every=checkpoint_every, callback=callback)
        self.model_ = self.result_.model
        return self

    def _fitted(self) -> ImageRegressor:
        if self.model_ is None:
            raise InputError("this ImageEstimator is not fitted yet: call fit() or load()")
        return self.model_

    def predict(self, images: Any, *, bands: Sequence[str] | None = None, tta: bool = True, batch_size: int = 64,
                device: str | None = None, indices: Any = None) -> pd.DataFrame:
        """One column per target, plus ``<target>_sigma`` for a Gaussian-NLL model (label units); `tta`
        averages over the eight D4 views. Bands, pixel kind and size are checked as `ImageRegressor.predict`."""
        model = self._fitted()
        source = as_image_source(images, bands, use=self.config.use)
        mu, sigma = model.predict_with_sigma(source, tta=tta, batch_size=batch_size, device=device,
                                             indices=indices)
        index = None if indices is None else pd.Index(np.asarray(indices, dtype=np.int64).ravel())
        return prediction_frame(mu, sigma, model.targets, index)

    @property
    def history_(self) -> pd.DataFrame | None:
        return self.result_.history if self.result_ is not None else None

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the model folder (the `ImageRegressor` files, [train] and [estimator] settings,
        history.csv / history.json); `overwrite` as in `photopop.models.folder.write_model_folder`."""
        model = self._fitted()
        cfg = self.config
        extra_config = {"train": to_dict(cfg.train),
                        "estimator": {"targets": list(cfg.targets), "use": cfg.use, "val_fraction": cfg.val_fraction}}
        res = self.result_
        extra_meta = ({"best_epoch": int(res.best_epoch), "best_val_loss": float(res.best_val_loss),
                       "epochs_run": int(len(res.history))} if res is not None else {})
        return model.save(path, extra_config, extra_meta, overwrite=overwrite, extra_files=history_files(res))

    @classmethod
    def load(cls, path: str | Path) -> "ImageEstimator":
        """Read an image model folder (also one written without the estimator, e.g. by the Wu & Boada
        recipe); the config is rebuilt from its config.toml, defaults where a section is absent."""
        model = ImageRegressor.load(path)
        extra = dict(model.extra_config)
        est = dict(extra.get("estimator", {}))
        try:
            train = from_dict(ImageFitConfig, extra.get("train", {}))
            cfg = ImageEstimatorConfig(targets=tuple(model.targets), use=str(est.get("use", "images")),
                                       val_fraction=float(est.get("val_fraction", 0.2)),
                                       architecture=model.config, train=train)
        except (InputError, TypeError, ValueError):
            cfg = ImageEstimatorConfig(targets=tuple(model.targets), architecture=model.config)
        out = cls(cfg)
        out.model_ = model
        saved = load_history(path, read_meta(Path(path)))
        if saved is not None:
            out.result_ = ImageFitResult(model, saved.history, saved.best_epoch, saved.best_val_loss)
        return out
