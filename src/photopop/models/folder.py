"""The one writer and reader of model folders: weights, config, normalisation and a typed `ModelMeta`.

Folder layout (written atomically with `photopop.outputs.replace_output`, marker ``.photopop.json``):

``model.pt``            PyTorch state dict of the network
``config.toml``         ``[architecture]`` and the sizes the network is built from, plus any settings the
                        trainer stores (e.g. ``[train]``)
``normalisation.json``  input and target mean/scale (and kind-specific entries), fitted on training rows
``meta.json``           `photopop.models.meta.ModelMeta.to_dict`: ``kind`` (absent for single SED and image
                        networks), ``bands``, ``filter_system``, ``targets``, ``input_kind``, ``nan_policy``,
                        ``loss``, ``sigma_scale``, ``photopop_version``, ``train_table_hash`` and extras
``SHA256SUMS``          sha256 of every other file, verified on read when present

Single SED networks (`photopop.models.saved.SavedSEDModel`) and posterior flows
(`photopop.models.posterior_model.SavedPosterior`) are written and read here; an ensemble folder holds
a ``meta.json`` written by `write_meta` and ``members/<k>/`` folders of this kind. Which class opens a
folder is the registry's business (`photopop.models.registry.open_model`).
"""

from __future__ import annotations

import pickle
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import InputError
from ..io import dumps_json, read_json, torch_save
from ..outputs import replace_output
from .folder_checks import read_meta, verify_checksums, write_checksums
from .meta import ModelMeta

MODEL_FILES = ("model.pt", "config.toml", "normalisation.json", "meta.json")


def write_model_folder(path: str | Path, state_dict: dict[str, torch.Tensor], config: dict[str, Any],
                       norm: dict[str, Any], meta: Mapping[str, Any],
                       extra_files: dict[str, str] | None = None, *, kind: str = "sed-model",
                       overwrite: bool = False) -> Path:
    """Write model.pt, config.toml, normalisation.json, meta.json (+ extra text files) atomically.

    The one writer of model folders (single networks, posterior flows): `meta` (a dict or a `ModelMeta`)
    is validated by `ModelMeta.from_dict` first, the folder is claimed as an output of `kind`
    (`photopop.outputs`: an existing folder is replaced only when photopop wrote it with the same
    settings, or with `overwrite`), ``photopop_version`` is added to meta when absent, and a
    ``SHA256SUMS`` file covers every file.
    """
    import tomli_w

    path = Path(path)
    typed = ModelMeta.from_dict(meta, path / "meta.json")
    typed.setdefault("photopop_version", __version__)
    meta_d = typed.to_dict()
    settings = {"config": config, "meta": meta_d, "extra_files": sorted(extra_files or {})}
    with replace_output(path, kind, settings, overwrite=overwrite) as tmp:
        torch_save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp / "model.pt")
        (tmp / "config.toml").write_text(tomli_w.dumps(_strip_none(config)))
        (tmp / "normalisation.json").write_text(dumps_json(norm) + "\n")
        write_meta(tmp, meta_d)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        write_checksums(tmp)
    return path


def read_model_folder(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], ModelMeta, dict[str, Any]]:
    """(config, normalisation, meta, weights state dict) of a folder written by `write_model_folder`.

    Checksums are verified where the folder has them; meta.json must be an object that
    `ModelMeta.from_dict` accepts (InputError naming the key). Checks of the normalisation against the
    meta and of the kind are the loader's (`SavedSEDModel.load`, `SavedPosterior.load`).
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such model folder")
    files = {name: path / name for name in MODEL_FILES}
    missing = [n for n, p in files.items() if not p.exists()]
    if missing:
        raise InputError(f"{path}: not a complete model folder, missing {missing}")
    verify_checksums(path, list(files))
    try:
        config = tomllib.loads(files["config.toml"].read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{files['config.toml']}: cannot read ({exc})") from exc
    meta = ModelMeta.from_dict(read_meta(path), files["meta.json"])
    norm = read_json(files["normalisation.json"])
    if not isinstance(norm, dict):
        raise InputError(f"{files['normalisation.json']}: must hold a JSON object, got {type(norm).__name__}")
    try:
        state = torch.load(files["model.pt"], map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, KeyError, TypeError, pickle.UnpicklingError) as exc:
        raise InputError(f"{files['model.pt']}: cannot load weights ({type(exc).__name__}: {exc})") from exc
    return config, norm, meta, state


def write_meta(folder: Path, meta: Mapping[str, Any]) -> None:
    """Write ``meta.json`` (strict JSON, NaN as null) into a folder being built."""
    data = meta.to_dict() if isinstance(meta, ModelMeta) else dict(meta)
    (Path(folder) / "meta.json").write_text(dumps_json(data) + "\n")


def load_weights(network: torch.nn.Module, state: dict[str, Any], path: str | Path) -> None:
    """Load a state dict into `network` (eval mode); InputError naming the folder if it does not fit."""
    try:
        network.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise InputError(f"{Path(path) / 'model.pt'}: weights do not fit the architecture ({exc})") from exc
    network.eval()


def _strip_none(obj: Any) -> Any:
    """TOML has no null: drop None values (nested)."""
    if isinstance(obj, dict):
        return {k: _strip_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_strip_none(v) for v in obj]
    return obj
