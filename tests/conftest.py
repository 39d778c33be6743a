"""Shared test fixtures (small and generic).

* Every test session uses a temporary PHOTOPOP_CACHE, never the user's cache.
* `shared_data_dir`: the project's shared data folder (env PHOTOPOP_SHARED_DATA, else
  tests/../../shared/data); tests that need it skip with a clear reason when it is absent.
* `rng`: a seeded numpy Generator.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parent


def find_shared_data() -> Path:
    """The shared data folder (may not exist): $PHOTOPOP_SHARED_DATA or tests/../../shared/data."""
    env = os.environ.get("PHOTOPOP_SHARED_DATA")
    return Path(env) if env else TESTS_DIR.parent.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Point PHOTOPOP_CACHE at a fresh temporary folder for the whole session."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PHOTOPOP_CACHE", str(tmp_path_factory.mktemp("photopop-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The shared data folder, or skip the test saying how to provide it."""
    path = find_shared_data()
    if not path.is_dir():
        pytest.skip(f"shared data folder not found at {path} (set PHOTOPOP_SHARED_DATA to the folder "
                    "holding filters/ and ssp/)")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator (same numbers every run)."""
    return np.random.default_rng(12345)
