"""photopop.hashing: the one JSON hash and the one array hash, and the hashers built on them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from photopop.config import config_hash
from photopop.hashing import array_hash, json_hash
from photopop.outputs import settings_hash


@dataclass
class _Cfg:
    seed: int = 3
    scale: float = float("inf")
    bands: tuple[str, ...] = ("g", "r")
    nested: dict[str, float] = field(default_factory=lambda: {"b": 1.0, "a": 2.5})


def test_json_hash_is_sorted_json_sha256():
    data = {"b": [1, 2.5, "x"], "a": {"z": None, "y": True}}
    want = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    assert json_hash(data) == want and json_hash(data, 12) == want[:12]
    assert json_hash({"a": {"y": True, "z": None}, "b": [1, 2.5, "x"]}) == want  # key order does not matter
    assert json_hash({"a": 1}) != json_hash({"a": 2})


def test_config_and_settings_hash_keep_their_values():
    # the cache keys of existing stage folders and output markers must not move
    cfg = _Cfg()
    plain = {"seed": 3, "scale": float("inf"), "bands": ["g", "r"], "nested": {"b": 1.0, "a": 2.5}}
    text = json.dumps(plain, sort_keys=True, default=str)
    assert config_hash(cfg) == hashlib.sha256(text.encode()).hexdigest()[:12]
    cleaned = {"seed": 3, "scale": None, "bands": ["g", "r"], "nested": {"b": 1.0, "a": 2.5}}
    assert settings_hash(plain) == hashlib.sha256(json.dumps(cleaned, sort_keys=True).encode()).hexdigest()


def test_array_hash_values_not_dtype():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert array_hash(x) == array_hash(x.astype(np.float64)) == array_hash(x.tolist())
    assert array_hash(x) == array_hash(np.asfortranarray(x))  # memory order does not matter
    assert array_hash(x) != array_hash(x.reshape(4, 3))  # the shape does
    assert array_hash(x, x[:1]) != array_hash(x[:1], x)  # and the order of the arrays
    y = x.copy()
    y[2, 3] = np.nextafter(y[2, 3], np.float32(100))
    assert array_hash(y) != array_hash(x)


def test_model_and_checkpoint_hashers_agree():
    import torch

    from photopop.models.saved import table_hash
    from photopop.training.checkpoint import data_fingerprint

    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    y = np.linspace(0, 1, 5)[:, None]
    assert table_hash(x, y) == array_hash(x, y) == data_fingerprint(torch.from_numpy(x), y)
