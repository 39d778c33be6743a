"""Shared test fixtures (small and generic).

* Every test session uses a temporary PHOTOPOP_CACHE, never the user's cache.
* `shared_data_dir`: the project's shared data folder (env PHOTOPOP_SHARED_DATA, else
  tests/../../shared/data); tests that need it skip with a clear reason when it is absent.
* `rng`: a seeded numpy Generator.
* `shipped_by(dist, version)`: a skip mark for assertions on the exact contents of a data file that a
  package ships (filter curves, SSP tables): the expected values were read from that version's file, so
  another version skips them with a reason instead of failing (version-independent checks stay ungated).
* `one_torch_thread`: torch limited to one thread for a test module (``pytestmark =
  pytest.mark.usefixtures("one_torch_thread")``), so that tests of thread-independent numbers run the same
  on a 2-core CI runner as here, and parallel test processes do not oversubscribe the cores.
* `float32_forward_bound(network, x)`: how far a float32 evaluation of a small ReLU network may be from the
  exact result, whatever the kernel's summation order; the tolerance for comparing two evaluations of one
  model through different paths (batch sizes, chunks, thread counts, CPUs).
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


U32 = 2.0 ** -24  # unit roundoff of float32


def float32_forward_bound(network, x: np.ndarray) -> np.ndarray:
    """First-order bound (n, n_outputs) on |float32 output - exact output| of a Conv/Linear/ReLU/MaxPool network.

    Each layer computes W a + b with a fan-in of K terms: its float32 result is off by at most gamma_(K+1) times
    |W| |a| + |b| (Higham, Accuracy and Stability, 3.5), in any summation order; ReLU and max-pooling do not
    amplify errors. Summed over the layers, |error| <= gamma_k * N(|x|) with k = sum of (K + 1) + 1 (the cast
    of the inputs) and N the same network with |W| and |b| evaluated in float64.
    """
    import copy

    import torch
    from torch import nn

    net = copy.deepcopy(network).double().eval()
    k = 1
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                m.weight.abs_()
                if m.bias is not None:
                    m.bias.abs_()
                k += m.weight[0].numel() + 1
            elif any(True for _ in m.parameters(recurse=False)):
                raise TypeError(f"float32_forward_bound does not handle {type(m).__name__} layers")
        out = net(torch.from_numpy(np.abs(np.asarray(x, dtype=np.float64)))).numpy()
    return k * U32 / (1 - k * U32) * out


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


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch.set_num_threads(1) for the module that uses it; the previous count restored afterwards."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


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
