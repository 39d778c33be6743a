"""The documented examples run: docs/api.md (AB zero point, a top-hat band, a metrics call) and the
doctests of the modules listed here."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

#: modules whose docstrings hold examples
MODULES = ("photopop.evaluation.metrics", "photopop.datasets.frames", "photopop.photometry.columns")


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=FLAGS, verbose=False)
    assert result.attempted > 0, f"{name} has no doctests"
    assert result.failed == 0


@pytest.mark.skipif(not (DOCS / "api.md").exists(), reason="docs/ is not shipped with an installed package")
def test_api_page_examples():
    result = doctest.testfile(str(DOCS / "api.md"), module_relative=False, optionflags=FLAGS, verbose=False)
    assert result.attempted >= 10
    assert result.failed == 0
