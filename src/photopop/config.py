"""Plain-dataclass configs serialised to TOML (or YAML), saved with every run and model.

A config is any (nested) dataclass whose fields are TOML-representable: numbers, strings, bools,
lists, dicts, or other dataclasses. `None` is not representable in TOML, so optional fields are
omitted when None and restored to the dataclass default on load.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from .errors import InputError
from .hashing import json_hash
from .io import write_text_atomic

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> nested dict without None values (TOML has no null)."""

    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if v is not None}
        if isinstance(obj, (list, tuple)):
            return [strip(v) for v in obj]
        return obj

    return strip(dataclasses.asdict(cfg))


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Nested dict -> dataclass `cls`, refusing unknown keys with a message that names them."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"unknown setting(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        hint = hints.get(key)
        sub = _dataclass_in(hint)
        if sub is not None and isinstance(value, dict):
            kwargs[key] = from_dict(sub, value)
        elif isinstance(value, list) and _is_tuple(hint):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = _checked(cls, key, hint, value)
    return cls(**kwargs)


def _checked(cls: type, key: str, hint: Any, value: Any) -> Any:
    """`value` if it has the scalar type the field declares (int, float, bool, str, optionally None);
    InputError naming the setting otherwise. Seeds must be integers in [0, 2**63 - 1]."""
    from . import validate

    if key == "seed" or key.endswith("_seed"):
        if value is None and type(None) in typing.get_args(hint):
            return value
        return validate.seed(value, f"{cls.__name__}.{key}")
    args = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_args(hint) else [hint]
    if value is None or len(args) != 1 or args[0] not in (int, float, bool, str):
        return value
    want = args[0]
    ok = (isinstance(value, bool) if want is bool
          else isinstance(value, int) and not isinstance(value, bool) if want is int
          else isinstance(value, (int, float)) and not isinstance(value, bool) if want is float
          else isinstance(value, str))
    if not ok:
        names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
        raise InputError(f"setting {key!r} of {cls.__name__} must be {names[want]}, got {value!r}")
    return value


def _dataclass_in(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    for arg in typing.get_args(hint):
        if dataclasses.is_dataclass(arg):
            return arg  # type: ignore[return-value]
    return None


def _is_tuple(hint: Any) -> bool:
    return hint is tuple or typing.get_origin(hint) is tuple or any(
        typing.get_origin(a) is tuple for a in typing.get_args(hint))


def dumps_toml(cfg: Any) -> str:
    """TOML text of a dataclass config."""
    return tomli_w.dumps(to_dict(cfg))


def save_config(cfg: Any, path: str | Path) -> None:
    """Write a config as TOML (or YAML if the suffix is .yaml/.yml), atomically."""
    path = Path(path)
    if path.suffix in {".yaml", ".yml"}:
        import yaml

        write_text_atomic(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
    else:
        write_text_atomic(path, dumps_toml(cfg))


def read_config_data(path: str | Path) -> dict[str, Any]:
    """The nested dict of a TOML or YAML config file; InputError naming the file if absent or unparsable."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: config file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:  # a folder, no permission, not text
        raise InputError(f"{path}: cannot read config ({exc})") from exc
    if path.suffix in {".yaml", ".yml"}:
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: cannot parse config ({exc})") from exc
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: cannot parse config ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: a config file must hold a table of settings")
    return data


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a TOML or YAML file into dataclass `cls`."""
    return from_dict(cls, read_config_data(path))


def deep_update(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`base` with `new` merged in, recursively for nested tables (neither input is modified)."""
    out = dict(base)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


def layered_config(cls: type[T], preset_config: Any, data: dict[str, Any], preset: str | None = None,
                   default: str = "full") -> T:
    """A preset's config with `data` (from a file and/or overrides) merged on top; unknown keys refused.

    The preset is `preset` if given, else ``data['preset']``, else `default`; `preset_config(name)`
    builds it. The result's ``preset`` field names it.
    """
    name = str(preset or data.get("preset") or default)
    merged = deep_update(to_dict(preset_config(name)), data)
    merged["preset"] = name
    return from_dict(cls, merged)


def config_hash(cfg: Any, length: int = 12) -> str:
    """Stable short hash of a config's content (for caching stages by their settings): `hashing.json_hash`
    of the config's `to_dict` (or of plain data)."""
    return json_hash(to_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg, length)
