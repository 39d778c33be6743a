"""Shared test fixtures (small and generic).

* Every test session uses a temporary PHOTOPOP_CACHE, never the user's cache.
* `shared_data_dir`: the project's shared data folder (env PHOTOPOP_SHARED_DATA, else
  tests/../../shared/data); tests that need it skip with a clear reason when it is absent.
* `rng`: a seeded numpy Generator.
* `shipped_by(dist, version)`: a skip mark for assertions on the exact contents of a data file that a
  package ships (filter curves, SSP tables): the expected values were read from that version's file, so
  another version skips them with a reason instead of failing (version-independent checks stay ungated).
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parent


def find_shared_data() -> Path:
    """The shared data folder (may not exist): $PHOTOPOP_SHARED_DATA or tests/../../shared/data."""
    env = os.environ.get("PHOTOPOP_SHARED_DATA")
    return Path(env) if env else TESTS_DIR.parent.parent / "shared" / "data"


def shipped_by(dist: str, measured: str) -> pytest.MarkDecorator:
    """Skip unless the installed `dist` is `measured`, the version whose data files the expectations were read from."""
    try:
        have = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        have = None
    return pytest.mark.skipif(have != measured, reason=f"expected values were read from the data files of {dist} "
                              f"{measured}; installed: {have or 'none'}")


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
