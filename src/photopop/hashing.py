"""The two content hashes of photopop: of JSON-able settings and of numeric arrays.

* `json_hash(data, length)`: sha256 of ``json.dumps(data, sort_keys=True, default=str)`` (hex, cut to
  `length`): config hashes (`config.config_hash`), output-folder markers (`outputs.settings_hash`, which
  passes `io.clean_for_json` data), stage cache keys (`experiments.stages.stage_hash`) and training
  checkpoints (`training.checkpoint.settings_fingerprint`).
* `array_hash(*arrays)`: sha256 over each array's shape and its values as C-ordered float64, so the same
  numbers give the same hash whatever float dtype they arrive in: the training-table hash of model folders
  (`models.saved.table_hash`) and the data fingerprint of checkpoints (`training.checkpoint.data_fingerprint`).

Nothing of photopop is imported here, so every layer can use it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


def json_hash(data: Any, length: int | None = None) -> str:
    """sha256 (hex) of JSON-able `data` with sorted keys (other objects as ``str``), cut to `length`.

    >>> json_hash({"b": 1, "a": [1.5, "x"]}) == json_hash({"a": [1.5, "x"], "b": 1})
    True
    >>> len(json_hash({"a": 1}, 12))
    12
    """
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def array_hash(*arrays: Any) -> str:
    """sha256 (hex) over the shape and the float64 values (C order) of each array, in order.

    >>> array_hash(np.arange(3, dtype=np.float32)) == array_hash([0.0, 1.0, 2.0])
    True
    >>> array_hash(np.zeros((2, 3))) == array_hash(np.zeros((3, 2)))
    False
    """
    h = hashlib.sha256()
    for arr in arrays:
        a = np.ascontiguousarray(np.asarray(arr, dtype=np.float64))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


__all__ = ["array_hash", "json_hash"]
