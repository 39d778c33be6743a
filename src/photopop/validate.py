"""Validators for sizes, counts, seeds, finite numbers and paths, shared by the API and the CLI.

API functions call them where an option enters (`positive_int(batch_size, "batch_size")`); the
command line reuses the same functions as argparse ``type=`` callables through `arg`, so a bad value
gets the same message either way (argparse prefixes the option and exits with status 2).
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
from pathlib import Path
from typing import Any, Callable

from .errors import InputError

#: largest seed accepted: numpy takes any non-negative int, torch.manual_seed needs < 2**64
MAX_SEED = 2**63 - 1
#: most bins `photopop evaluate` (and `binned_stats`) will make: a table of that many rows is already
#: unreadable, and each bin costs memory (100,000,000 bins used to exhaust it)
MAX_BINS = 10_000


def _integer(value: Any, name: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise InputError(f"{name} must be {what}, got {value!r}")
    return int(value)


def positive_int(value: Any, name: str = "value", maximum: int | None = None) -> int:
    """`value` as an int >= 1 (and <= `maximum`), else InputError naming `name` and the value."""
    out = _integer(value, name, "a positive integer")
    if out < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    if maximum is not None and out > maximum:
        raise InputError(f"{name} must be at most {maximum}, got {value!r}")
    return out


def non_negative_int(value: Any, name: str = "value", maximum: int | None = None) -> int:
    """`value` as an int >= 0 (and <= `maximum`)."""
    out = _integer(value, name, "an integer >= 0")
    if out < 0:
        raise InputError(f"{name} must be an integer >= 0, got {value!r}")
    if maximum is not None and out > maximum:
        raise InputError(f"{name} must be at most {maximum}, got {value!r}")
    return out


def seed(value: Any, name: str = "seed") -> int:
    """A random seed: an integer in [0, 2**63 - 1] (numpy and torch both accept it)."""
    out = _integer(value, name, f"an integer in [0, {MAX_SEED}]")
    if not 0 <= out <= MAX_SEED:
        raise InputError(f"{name} must be an integer in [0, {MAX_SEED}], got {value!r}")
    return out


def finite_float(value: Any, name: str = "value", minimum: float | None = None, maximum: float | None = None,
                 strict_minimum: bool = False) -> float:
    """`value` as a finite float within [minimum, maximum] (open at `minimum` with `strict_minimum`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and (out <= minimum if strict_minimum else out < minimum):
        raise InputError(f"{name} must be {'>' if strict_minimum else '>='} {minimum:g}, got {value!r}")
    if maximum is not None and out > maximum:
        raise InputError(f"{name} must be <= {maximum:g}, got {value!r}")
    return out


def positive_float(value: Any, name: str = "value") -> float:
    """`value` as a finite float > 0."""
    return finite_float(value, name, minimum=0.0, strict_minimum=True)


def out_path(value: Any, name: str = "output path") -> Path:
    """A non-empty path (an empty ``--out ""`` would write into the current folder)."""
    if value is None or str(value).strip() == "":
        raise InputError(f"{name} is empty; give a file or folder name")
    return Path(os.fspath(value))


def arg(validator: Callable[..., Any], option: str, **kw: Any) -> Callable[[str], Any]:
    """An argparse ``type=`` callable: parse the text, then apply `validator(value, option, **kw)`.

    Integers are parsed for int validators, numbers (``nan``/``inf`` included, so that they are
    refused with the validator's message) for float validators, paths are passed through.
    """
    parse: Callable[[str], Any]
    if validator in (positive_int, non_negative_int, seed):
        parse = _parse_int
    elif validator in (finite_float, positive_float):
        parse = _parse_float
    else:
        parse = str

    def convert(text: str) -> Any:
        try:
            return validator(parse(text), option, **kw)
        except (InputError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = validator.__name__  # argparse names the type in some messages
    return convert


def _parse_int(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text  # the validator says what is wrong with it


def _parse_float(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text
