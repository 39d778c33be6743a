"""Command-line settings: ``--set section.key=value`` and help texts whose defaults come from the configs.

One source of truth for every default: the config dataclasses. Options that override a config keep
``default=None`` ("not given": the config's value stands), and their help shows the dataclass field's
default, read when the help is printed (`DefaultHelp`), so that ``photopop --help`` does not import the
modules (and torch) behind every config.

``--set`` (repeatable) reaches any setting of a command's config: ``--set train.max_epochs=50
--set split=A``. The value is read as a TOML value (``3``, ``1e-3``, ``true``, ``"B"``, ``[1, 2]``,
``inf``); anything TOML cannot read is taken as a string (``--set train.device=cuda:0``). The settings
become a nested dict merged on top of the ``--config`` file and checked by the config loader
(`photopop.config.from_dict`: unknown keys and values of the wrong type are refused, naming them); the
command's dedicated options (``--seed``, ``--max-epochs``, ...) are applied last and win.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import tomllib
import typing
from typing import Any, Sequence

from ..errors import InputError

__all__ = ["DefaultHelp", "Parser", "add_set_option", "config_default", "parse_settings", "load_with_settings"]


def _config_class(spec: str) -> type:
    """The dataclass named by ``'module:Class'`` (module relative to photopop, e.g. 'simulate.ifu')."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(f"photopop.{module}"), name)


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass a field annotation names (directly or inside Optional/Union), else None."""
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    return next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), None)


def config_default(spec: str | type, path: str) -> Any:
    """The default of the dataclass field at dotted `path` of config `spec` (a class or 'module:Class')."""
    obj: Any = _config_class(spec) if isinstance(spec, str) else spec
    obj = obj()
    for key in path.split("."):
        obj = getattr(obj, key)
    return obj


def show_value(value: Any) -> str:
    """A default as help texts print it: tuples as comma lists, floats without a trailing .0."""
    if isinstance(value, (tuple, list)):
        return ", ".join(show_value(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class DefaultHelp(str):
    """A help text with ``{default}`` filled in from a config dataclass field when the help is printed.

    As a plain string (before `resolve`) it names the field ("... (default IFUSurveyConfig.seed)"), so it is safe anywhere
    argparse takes a help text; `Parser.format_help` resolves it.
    """

    spec: str
    path: str
    template: str

    def __new__(cls, template: str, spec: str, path: str) -> "DefaultHelp":
        self = super().__new__(cls, template.replace("{default}", f"{spec.partition(':')[2]}.{path}"))
        self.template, self.spec, self.path = template, spec, path
        return self

    def resolve(self) -> str:
        value = show_value(config_default(self.spec, self.path)).replace("%", "%%")
        return self.template.replace("{default}", value)


class Parser(argparse.ArgumentParser):
    """ArgumentParser that fills in `DefaultHelp` texts (once) when its help is printed."""

    def format_help(self) -> str:
        for action in self._actions:
            if isinstance(action.help, DefaultHelp):
                action.help = action.help.resolve()
        return super().format_help()


def add_set_option(parser: argparse.ArgumentParser, config: str) -> None:
    """Add the repeatable ``--set SECTION.KEY=VALUE`` option for settings of `config` ('Class' name)."""
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
        help=f"any {config} setting, e.g. train.max_epochs=50 (repeatable; dotted keys reach nested sections; "
        "values are TOML: 3, 1e-3, true, \"text\", [1, 2]; other words are strings). Applied on top of "
        "--config; the dedicated options win")


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_settings(texts: Sequence[str], cls: type | None = None) -> dict[str, Any]:
    """``['a.b=1', 'c=x']`` -> ``{'a': {'b': 1}, 'c': 'x'}``; with `cls`, each dotted key is checked against
    its fields (InputError naming the key and the settings it could be) before the loader sees it."""
    out: dict[str, Any] = {}
    for text in texts:
        key, eq, raw = text.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not eq or not key or any(not p.strip() for p in parts):
            raise InputError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. train.max_epochs=50")
        parts = [p.strip() for p in parts]
        value = _parse_value(raw.strip())
        if cls is not None:
            _check_key(cls, parts, value, text)
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = node[p] = {}
            node = nxt
        node[parts[-1]] = value
    return out


def _check_key(cls: type, parts: list[str], value: Any, text: str) -> None:
    """InputError unless `parts` walks through dataclass sections of `cls` to one of their fields."""
    here: type = cls
    for i, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(here)]
        if part not in names:
            where = ".".join(parts[:i]) or "the top level"
            raise InputError(f"--set {text}: unknown setting {part!r} in {where} of {cls.__name__} "
                             f"({here.__name__}); known: {', '.join(names)}")
        sub = _dataclass_of(typing.get_type_hints(here).get(part))
        last = i == len(parts) - 1
        if last and sub is not None and not isinstance(value, dict):
            keys = ", ".join(f"{'.'.join(parts)}.{f.name}" for f in dataclasses.fields(sub))
            raise InputError(f"--set {text}: {'.'.join(parts)!r} is a section ({sub.__name__}); set one of its "
                             f"keys: {keys}")
        if not last:
            if sub is None:
                raise InputError(f"--set {text}: {'.'.join(parts[:i + 1])!r} is a setting of {here.__name__}, "
                                 "not a section")
            here = sub


def load_with_settings(cls: type, path: Any, settings: Sequence[str]) -> Any:
    """`cls` from the ``--config`` file `path` (or its defaults) with the ``--set`` `settings` on top."""
    from ..config import deep_update, from_dict, load_config

    if not settings:
        return load_config(cls, path) if path else cls()
    from ..config import read_config_data

    data = read_config_data(path) if path else {}
    return from_dict(cls, deep_update(data, parse_settings(settings, cls)))
