"""The one registry of model-folder kinds: meta.json ``kind`` -> the class that opens such a folder.

Every model folder photopop writes names its kind in meta.json (``kind``; single SED networks and image
models, which have none, are 'sed' and 'image' by their ``input_kind``: `model_kind`). `open_model` reads
it and calls the registered class's ``load(path)``. Targets are ``"module:Class"`` strings resolved on first use (the
plug-in pattern of entry points): the registry imports no model module, so a base module never imports
its own specialisations and loading one kind does not import the others (torchvision, zuko, ...).

A new kind: write its folders with `photopop.models.folder.write_model_folder` and a meta.json ``kind``,
give its class a ``load(path)`` classmethod, and call ``register_model_kind("my-kind", "pkg.mod:MyModel")``
(or add it to `MODEL_KINDS` here for a kind photopop ships).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError
from .folder_checks import read_meta
from .meta import ENSEMBLE_KIND, IMAGE_KIND, POSTERIOR_KIND, SED_KIND, model_kind

__all__ = ["MODEL_KINDS", "model_class", "model_kind", "open_model", "register_model_kind"]

#: meta.json kind -> "module:Class" (or a class/callable) whose ``load(path)`` opens the folder
MODEL_KINDS: dict[str, str | Any] = {
    SED_KIND: "photopop.models.saved:SavedSEDModel",
    ENSEMBLE_KIND: "photopop.models.ensemble:SEDEnsemble",
    POSTERIOR_KIND: "photopop.models.posterior_model:SavedPosterior",
    IMAGE_KIND: "photopop.models.image_regressor:ImageRegressor",
}


def register_model_kind(kind: str, target: str | Any) -> None:
    """Make `open_model` open folders of `kind` with ``target.load(path)`` (target: "module:Class" or a class)."""
    MODEL_KINDS[str(kind)] = target


def model_class(kind: str) -> Any:
    """The registered class (or loader object) for `kind`; InputError naming the known kinds otherwise."""
    target = MODEL_KINDS.get(kind)
    if target is None:
        raise InputError(f"unknown model kind {kind!r}; known: {sorted(MODEL_KINDS)}")
    if isinstance(target, str):
        module, _, name = target.partition(":")
        target = getattr(importlib.import_module(module), name)
    return target


def open_model(path: str | Path) -> Any:
    """Open a model folder of any registered kind (meta.json ``kind``, `model_kind`) with its class's ``load``.

    Single SED networks give a `SavedSEDModel`, 'sed-ensemble' an `SEDEnsemble`, 'sed-posterior' a
    `SavedPosterior` (quantile columns, not point values), 'image' an `ImageRegressor`. The SED kinds
    share ``predict(data, bands=, filter_system=, batch_size=, device=, num_threads=)``, ``bands``,
    ``targets``, ``filter_system`` and ``meta`` (a `photopop.models.meta.ModelMeta`).
    InputError for a missing folder, an unreadable meta.json or a kind nobody registered.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such model folder")
    loader: Callable[..., Any] = model_class(model_kind(read_meta(path))).load
    return loader(path)
