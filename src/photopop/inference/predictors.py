"""Predictors: what the inference code needs from a model, and how a model folder becomes one.

A *predictor* is any object with ``bands`` (ordered band names), ``filter_system`` (name or None),
``targets`` and ``predict_frame(df) -> DataFrame``: given a frame of ``mag_<band>`` columns in the
model's band order it returns one row per input row with one column per target and, where the model
estimates them, ``<target>_sigma`` columns (everything it returns is passed through to the output).
A predictor that needs columns besides the magnitudes (e.g. ``magerr_<band>``, ``redshift``:
posterior models) lists them in ``extra_columns``; they are read, checked and passed to
``predict_frame`` too.

`load_model` opens a model folder through the one kind registry (`photopop.models.registry`:
meta.json ``kind`` -> the model class) and wraps the model object with `as_predictor`, so a new
model kind plugs in with `photopop.models.registry.register_model_kind` without touching the
streaming code. `BasePredictor` binds a model object to a device and batch size and holds what every
predictor reads from its model.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import pandas as pd

from ..errors import InputError
from ..models.folder_checks import read_meta
from ..models.registry import model_class, model_kind
from ..validate import positive_int
from .fingerprints import folder_hash, saved_model_hash

#: the predictor class of posterior models (a string: it is imported only when a posterior is used;
#: `photopop.inference.posterior` builds on this module and on `predict_catalog`)
POSTERIOR_PREDICTOR = "photopop.inference.posterior:PosteriorPredictor"
#: posterior models draw at most this many objects per network call
POSTERIOR_MAX_BATCH = 1024


@runtime_checkable
class Predictor(Protocol):
    """What the inference code needs from a model (see the module docstring)."""

    @property
    def bands(self) -> Sequence[str]: ...

    @property
    def filter_system(self) -> str | None: ...

    @property
    def targets(self) -> Sequence[str]: ...

    def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame: ...


class BasePredictor:
    """A model object (with ``meta``, ``bands``, ``targets``, ``filter_system``) bound to one device and
    batch size; `path` is the model folder a Dask worker reloads (None: the predictor itself is shipped).

    Subclasses set ``model_hash`` (the resume fingerprint) and define ``predict_frame``.
    """

    model_hash: str | None = None
    #: torch CPU threads per call (None: leave torch's setting); used by models that take it
    num_threads: int | None = None

    def __init__(self, model: Any, device: str = "auto", batch_size: int = 4096,
                 path: str | Path | None = None) -> None:
        from ..training.device import resolve_device

        self.model = model
        self.device_spec = str(device)
        self.device = resolve_device(device)
        self.batch_size = positive_int(batch_size, "batch_size")
        self._path = None if path is None else str(Path(path).resolve())

    @property
    def path(self) -> str | None:
        """The model folder a Dask worker reloads (None: the predictor itself is shipped)."""
        return self._path

    @property
    def bands(self) -> list[str]:
        return list(self.model.bands)

    @property
    def filter_system(self) -> str | None:
        return self.model.filter_system

    @property
    def targets(self) -> list[str]:
        return list(self.model.targets)

    @property
    def mag_range(self) -> Any:
        """The magnitude range the model was trained with (values outside are masked before it sees them)."""
        return self.model.mag_range

    @property
    def handles_nan(self) -> bool:
        """True only for models trained to mask missing bands (meta ``nan_policy`` 'mask')."""
        return self.model.meta.get("nan_policy") == "mask"

    def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError


class SEDPredictor(BasePredictor):
    """A `SavedSEDModel` or `SEDEnsemble` as a `Predictor` bound to one device and batch size."""

    def __init__(self, model: Any, device: str = "auto", batch_size: int = 4096,
                 path: str | Path | None = None, model_hash: str | None = None) -> None:
        super().__init__(model, device=device, batch_size=batch_size, path=path)
        self.model_hash = model_hash or saved_model_hash(model)

    def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """Targets for the ``mag_<band>`` columns of `df` (bands already checked by the caller)."""
        return self.model.predict(df, bands=self.bands, batch_size=self.batch_size, device=self.device,
                                  num_threads=self.num_threads)


def load_model(path: str | Path, device: str = "auto", batch_size: int = 4096, *,
               num_threads: int | None = None, **options: Any) -> Any:
    """Open a model folder of any registered kind (`photopop.models.registry`) as a `Predictor`.

    `options` go to the predictor (``n_samples``, ``seed`` for posterior models); `num_threads` caps
    torch's CPU threads per call for models that take it.

    Raises InputError for a missing/corrupt folder, an image model (those predict from cutouts, not
    from magnitudes) or a kind nobody registered.

    Parameters
    ----------
    path : str or path
        A model folder (single SED model, ensemble or posterior).
    device : str
        Torch device: 'auto', 'cpu', 'cuda', 'cuda:N'.
    batch_size : int
        Rows per forward pass.
    num_threads : int, optional
        Cap on torch's CPU threads per call.

    Returns
    -------
    Predictor
        An object with ``bands``, ``filter_system``, ``targets`` and ``predict_frame(df)`` (a DataFrame
        with ``mag_<band>`` columns -> one column per output).
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such model folder")
    meta = read_meta(path)
    kind = model_kind(meta)
    if kind == "image" or meta.get("input_kind") == "image":
        raise InputError(f"{path}: an image model (input_kind 'image'); `photopop predict` applies models that "
                         "take band magnitudes (catalogues and image cubes); image models predict from cutouts")
    try:
        cls = model_class(kind)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc
    predictor = as_predictor(cls.load(path), device=device, batch_size=batch_size, path=path,
                             num_threads=num_threads, **options)
    if not isinstance(predictor, BasePredictor):  # a registered class whose load() gives a predictor
        for attr, value in (("path", str(path.resolve())), ("model_hash", None)):
            if getattr(predictor, attr, None) is None:
                try:
                    setattr(predictor, attr, value if value is not None else folder_hash(path))
                except AttributeError:
                    pass
    return predictor


def as_predictor(model: Any, device: str = "auto", batch_size: int = 4096, *, path: str | Path | None = None,
                 num_threads: int | None = None, **options: Any) -> Any:
    """A `Predictor` from a model folder path, a predictor, a `SavedSEDModel`/`SEDEnsemble`/`SavedPosterior`
    or a fitted `SEDRegressor`/`SEDPosterior`.

    `path`: the folder the model object was opened from (Dask workers then reload it instead of
    receiving the predictor). `options`: ``n_samples`` and ``seed`` of a posterior model's draws; a
    posterior with other draws than its defaults keeps no `path`, so workers get it shipped.
    """
    if isinstance(model, (str, Path)):
        return load_model(model, device=device, batch_size=batch_size, num_threads=num_threads, **options)
    if hasattr(model, "predict_frame"):
        for attr in ("bands", "targets"):
            if not hasattr(model, attr):
                raise InputError(f"model object lacks .{attr}; a predictor needs .bands, .filter_system, "
                                 ".targets and predict_frame(df)")
        return model
    inner = getattr(model, "model_", None)  # a fitted SEDRegressor
    if inner is not None and hasattr(inner, "network"):
        model = inner
    if hasattr(model, "network") and hasattr(model, "meta") and model.meta.get("kind") == "sed-posterior":
        predictor = _posterior_predictor(model, device, batch_size, path, **options)
    elif (hasattr(model, "network") or hasattr(model, "members")) and hasattr(model, "predict") \
            and hasattr(model, "meta"):  # a SavedSEDModel or an SEDEnsemble
        if options:
            raise InputError(f"option(s) {sorted(options)} apply to posterior models (kind 'sed-posterior')")
        predictor = SEDPredictor(model, device=device, batch_size=batch_size, path=path)
    else:
        raise InputError(f"cannot use a {type(model).__name__} as a model: give a model folder, a SavedSEDModel, "
                         "a fitted SEDRegressor or an object with .bands, .filter_system, .targets and "
                         "predict_frame(df)")
    predictor.num_threads = num_threads
    return predictor


def _posterior_predictor(model: Any, device: str, batch_size: int, path: str | Path | None,
                         n_samples: int | None = None, seed: int = 0) -> Any:
    """A `PosteriorPredictor` (at most POSTERIOR_MAX_BATCH objects per call); `path` only for the
    default draws, so that Dask workers reloading the folder draw the same numbers."""
    module, _, name = POSTERIOR_PREDICTOR.partition(":")
    cls = getattr(importlib.import_module(module), name)
    default = n_samples is None and int(seed) == 0
    return cls(model, device=device, batch_size=min(int(batch_size), POSTERIOR_MAX_BATCH), n_samples=n_samples,
               seed=seed, path=path if default else None)
