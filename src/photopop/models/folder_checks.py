"""Checks every model-folder loader shares: meta.json shape, normalisation consistency, file checksums.

A model folder that was edited by hand, half-copied or bit-flipped must be refused with an
`InputError` naming the file, never loaded into a model that predicts different numbers:

* `read_meta` reads ``meta.json`` with `photopop.io.read_json` and requires a JSON object;
* the keys of meta.json and their types are checked by `photopop.models.meta.ModelMeta.from_dict`;
* `check_normalisation` requires ``normalisation.json`` to name the features of those bands in that
  order (a meta.json whose band order disagrees with the normalisation is refused), and finite
  means and positive scales of the right length;
* `write_checksums` / `verify_checksums`: ``SHA256SUMS`` (sha256 of every other file in the folder,
  ``sha256sum`` format) written on save and verified on load when present, so a flipped byte in
  the weights, the normalisation or the meta data is an error, not a changed prediction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..checksums import CHECKSUM_FILE, verify_checksums, write_checksums
from ..errors import InputError
from ..io import read_json
from .normalise import feature_names

__all__ = ["CHECKSUM_FILE", "check_normalisation", "read_meta", "verify_checksums", "write_checksums"]


def read_meta(folder: str | Path, missing: str = "not a model folder (no meta.json)") -> dict[str, Any]:
    """The ``meta.json`` of a model folder as a dict; InputError if absent, unparsable or not an object."""
    path = Path(folder) / "meta.json"
    meta = read_json(path, missing=missing)
    if not isinstance(meta, dict):
        raise InputError(f"{path}: expected a JSON object, got a JSON {type(meta).__name__}")
    return meta


def check_normalisation(norm: Any, meta: Mapping[str, Any], path: str | Path) -> None:
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
