"""Checks every model-folder loader shares: meta.json shape, normalisation consistency, file checksums.

A model folder that was edited by hand, half-copied or bit-flipped must be refused with an
`InputError` naming the file, never loaded into a model that predicts different numbers:

* `read_meta` reads ``meta.json`` with `photopop.io.read_json` and requires a JSON object;
* `check_sed_meta` checks the keys and their types (``bands``, ``targets``, ``input_kind``, ...);
* `check_normalisation` requires ``normalisation.json`` to name the features of those bands in that
  order (a meta.json whose band order disagrees with the normalisation is refused), and finite
  means and positive scales of the right length;
* `write_checksums` / `verify_checksums`: ``SHA256SUMS`` (sha256 of every other file in the folder,
  ``sha256sum`` format) written on save and verified on load when present, so a flipped byte in
  the weights, the normalisation or the meta data is an error, not a changed prediction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..checksums import CHECKSUM_FILE, verify_checksums, write_checksums
from ..errors import InputError
from ..io import read_json
from .normalise import INPUT_KINDS, feature_names

__all__ = ["CHECKSUM_FILE", "check_normalisation", "check_sed_meta", "read_meta", "verify_checksums",
           "write_checksums"]


def read_meta(folder: str | Path, missing: str = "not a model folder (no meta.json)") -> dict[str, Any]:
    """The ``meta.json`` of a model folder as a dict; InputError if absent, unparsable or not an object."""
    path = Path(folder) / "meta.json"
    meta = read_json(path, missing=missing)
    if not isinstance(meta, dict):
        raise InputError(f"{path}: expected a JSON object, got a JSON {type(meta).__name__}")
    return meta


def _str_list(meta: dict[str, Any], key: str, path: Path, unique: bool = True) -> list[str]:
    value = meta.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise InputError(f"{path}: {key!r} must be a non-empty list of names, got {value!r}")
    if unique and len(set(value)) != len(value):
        raise InputError(f"{path}: {key!r} repeats names: {sorted({v for v in value if value.count(v) > 1})}")
    return value


def check_sed_meta(meta: dict[str, Any], path: str | Path) -> None:
    """InputError naming the key if a SED model's meta.json lacks a key or has one of the wrong type."""
    path = Path(path)
    bands = _str_list(meta, "bands", path)
    _str_list(meta, "targets", path)
    if meta.get("input_kind") not in INPUT_KINDS:
        raise InputError(f"{path}: 'input_kind' must be one of {list(INPUT_KINDS)}, got {meta.get('input_kind')!r}")
    for key in ("filter_system", "ref_band", "nan_policy", "loss", "kind"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise InputError(f"{path}: {key!r} must be a string, got {meta[key]!r}")
    if meta.get("ref_band") and meta["ref_band"] not in bands:
        raise InputError(f"{path}: 'ref_band' {meta['ref_band']!r} is not one of the bands")
    scale = meta.get("sigma_scale")
    if scale is not None and not (isinstance(scale, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in scale.values())):
        raise InputError(f"{path}: 'sigma_scale' must map targets to numbers, got {scale!r}")
    rng = meta.get("mag_range")
    if rng is not None and not (isinstance(rng, list) and len(rng) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in rng)):
        raise InputError(f"{path}: 'mag_range' must be [lo, hi], got {rng!r}")


def check_normalisation(norm: Any, meta: dict[str, Any], path: str | Path) -> None:
    """InputError if ``normalisation.json`` does not match the meta's features and targets, in order."""
    path = Path(path)
    if not isinstance(norm, dict) or not isinstance(norm.get("input"), dict) or not isinstance(norm.get("target"), dict):
        raise InputError(f"{path}: expected an object with 'input' and 'target' entries")
    ref = meta.get("ref_band") or None
    want = {"input": feature_names(meta["bands"], meta["input_kind"], ref), "target": list(meta["targets"])}
    for part, names in want.items():
        entry = norm[part]
        got = entry.get("names")
        if got != names:
            raise InputError(f"{path}: {part} names {got} disagree with meta.json ({names}); the band or "
                             "target order of the folder is inconsistent")
        for key in ("mean", "scale"):
            values = entry.get(key)
            if not isinstance(values, list) or len(values) != len(names) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise InputError(f"{path}: {part} {key!r} must be {len(names)} numbers, got {values!r}")
            arr = np.asarray(values, dtype=np.float64)
            if not np.all(np.isfinite(arr)) or (key == "scale" and np.any(arr <= 0)):
                raise InputError(f"{path}: {part} {key!r} must be finite{' and > 0' if key == 'scale' else ''}")
