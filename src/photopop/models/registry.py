"""The one registry of model-folder kinds: meta.json ``kind`` -> the class that opens such a folder.

Every model folder photopop writes names its kind in meta.json. `open_model` reads it and calls the
registered class's ``load(path)``. Targets are ``"module:Class"`` strings resolved on first use (the
plug-in pattern of entry points): the registry imports no model module, so a base module never imports
its own specialisations and loading one kind does not import the others (torchvision, zuko, ...).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError
from .folder_checks import read_meta

#: meta.json kind -> "module:Class" (or a class/callable) whose ``load(path)`` opens the folder
MODEL_KINDS: dict[str, str | Any] = {
    "sed": "photopop.models.saved:SavedSEDModel",
    "sed-ensemble": "photopop.models.ensemble:SEDEnsemble",
    "sed-posterior": "photopop.models.posterior_model:SavedPosterior",
}


def register_model_kind(kind: str, target: str | Any) -> None:
    """Make `open_model` open folders of `kind` with ``target.load(path)`` (target: "module:Class" or a class)."""
    MODEL_KINDS[str(kind)] = target


def model_kind(meta: dict[str, Any]) -> str:
    """The kind of a model folder from its meta.json: ``kind`` if present, else from ``input_kind``."""
    if meta.get("kind"):
        return str(meta["kind"])
    return "image" if meta.get("input_kind") == "image" else "sed"


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
    """Open a model folder of any registered kind (meta.json ``kind``) with its class's ``load``."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such model folder")
    loader: Callable[..., Any] = model_class(model_kind(read_meta(path))).load
    return loader(path)
