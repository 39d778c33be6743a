"""Dask scale-out of catalogue prediction: one task per chunk, the model loaded once per worker.

Each task reads its own row range (Parquet, FITS) or receives its rows from the client (CSV, which
cannot seek by row), predicts, and writes its part file atomically on the shared output folder; the
client records finished parts in the manifest as tasks complete. At most two tasks per worker
thread are in flight, so neither the client nor the cluster holds more than a bounded number of
chunks. Workers must see the inputs and the output folder at the same paths (a shared file system).

`open_client` turns ``--dask`` into a client: ``local`` / ``local:N`` starts a LocalCluster (N
single-threaded worker processes) that is closed afterwards; an address connects to the user's
scheduler (only our connection is closed); a `distributed.Client` is used as given and never closed.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Sequence

from ..errors import InputError, MismatchError
from .chunks import ChunkJob, process_chunk
from .inputs import CatalogInput
from .manifest import Manifest, n_chunks
from .predictors import load_model
from .readers import iter_chunks
from .reports import PredictReport

_LOCK = threading.Lock()
TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
_models: dict[tuple[Any, ...], Any] = {}  # cache outside a worker (module level, per process)
_model_loads = 0


@dataclass(frozen=True)
class ModelRef:
    """How a worker finds the model: its folder, the hash it must have, device and batch size."""

    path: str
    model_hash: str
    device: str
    batch_size: int


def parse_local(spec: str) -> int | None:
    """Workers of a ``local`` / ``local:N`` spec (None for a scheduler address)."""
    if spec != "local" and not spec.startswith("local:"):
        return None
    if spec == "local":
        return max(1, min(4, os.cpu_count() or 1))
    try:
        n = int(spec.split(":", 1)[1])
    except ValueError as exc:
        raise InputError(f"--dask {spec!r}: use local, local:N or a scheduler address") from exc
    if n < 1:
        raise InputError(f"--dask {spec!r}: need at least one worker")
    return n


@contextmanager
def open_client(spec: Any) -> Iterator[Any]:
    """A `distributed.Client` for a spec (see the module docstring); closes only what it opened."""
    if not isinstance(spec, str):
        yield spec  # the user's client: never closed here
        return
    from distributed import Client, LocalCluster

    n = parse_local(spec)
    if n is not None:
        import dask

        # Dask's default MALLOC_TRIM_THRESHOLD_ in worker processes turns off glibc's adaptive mmap
        # threshold: every batch tensor is then mmap'ed afresh and CPU inference runs ~3x slower
        with dask.config.set({TRIM_KEY: None}):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR)
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    try:
        client = Client(spec, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot connect to the Dask scheduler at {spec!r} ({exc})") from exc
    try:
        yield client
    finally:
        client.close()  # our connection only: the scheduler and workers belong to the user


def _current_worker() -> Any:
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def worker_predictor(ref: ModelRef) -> Any:
    """The predictor for `ref`, loaded once per worker (cached on the Worker object) and reused."""
    global _model_loads
    worker = _current_worker()
    key = (ref.path, ref.model_hash, ref.device, ref.batch_size)
    with _LOCK:
        if worker is not None:
            if not hasattr(worker, "_photopop_models"):
                worker._photopop_models = {}
                worker._photopop_model_loads = 0
            cache = worker._photopop_models
        else:
            cache = _models
        if key not in cache:
            _limit_torch_threads(worker)
            predictor = load_model(ref.path, device=ref.device, batch_size=ref.batch_size)
            if getattr(predictor, "model_hash", None) != ref.model_hash:
                raise MismatchError(f"{ref.path}: the model folder changed since the run started")
            cache[key] = predictor
            if worker is not None:
                worker._photopop_model_loads += 1
            else:
                _model_loads += 1
        return cache[key]


def _limit_torch_threads(worker: Any) -> None:
    """In a worker process of its own, let torch use only the worker's threads (no oversubscription)."""
    if worker is None or multiprocessing.current_process().name == "MainProcess":
        return
    import torch

    nthreads = getattr(getattr(worker, "state", worker), "nthreads", None) or getattr(worker, "nthreads", 1)
    torch.set_num_threads(max(1, int(nthreads)))


def _task(model: Any, job: ChunkJob, frame: Any = None) -> dict[str, Any]:
    predictor = worker_predictor(model) if isinstance(model, ModelRef) else model
    return process_chunk(predictor, job, frame)


def _warn_malloc_trim(client: Any) -> None:
    """Warn once if worker processes run with MALLOC_TRIM_THRESHOLD_ set (slow torch on CPU)."""
    try:
        values = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    except (OSError, RuntimeError, TimeoutError):  # pragma: no cover - a lost connection, a scheduler error
        return
    if any(v is not None for v in values.values()):
        warnings.warn("Dask workers run with MALLOC_TRIM_THRESHOLD_ set (Dask's default), which makes torch "
                      f"inference on CPU about 3x slower; start the workers with {TRIM_KEY}: null in the Dask "
                      "config (see docs/inference.md)", RuntimeWarning, stacklevel=3)


def model_loads(client: Any) -> dict[str, int]:
    """How many times each worker loaded a model (for checks: once per worker and model)."""
    return client.run(lambda dask_worker: getattr(dask_worker, "_photopop_model_loads", 0))


def run_distributed(client: Any, predictor: Any, sources: Sequence[CatalogInput], chunk_rows: int,
                    jobs_for: Callable[[CatalogInput], ChunkJob], manifest: Manifest,
                    report: PredictReport, progress: bool = False) -> None:
    """Run every unfinished chunk as a Dask task, recording parts in `manifest` as they complete."""
    from distributed import as_completed

    path = getattr(predictor, "path", None)
    if path:
        model: Any = ModelRef(str(path), str(predictor.model_hash), getattr(predictor, "device_spec", "cpu"),
                              int(getattr(predictor, "batch_size", 4096)))
    else:  # an in-memory model: shipped once to every worker
        model = client.scatter(predictor, broadcast=True, hash=False)
    window = max(2, 2 * sum(client.nthreads().values()))
    _warn_malloc_trim(client)

    def submissions() -> Iterator[Any]:
        for src in sources:
            base = jobs_for(src)
            done = manifest.finished_chunks(src.index)
            known = manifest.all_done(src.index)
            if known is not None:
                report.n_parts_skipped += known
                continue
            if src.fmt == "csv":
                count = 0
                for chunk in iter_chunks(src, chunk_rows, base.read_columns, skip=done):
                    count += 1
                    if chunk.frame is None:
                        report.n_parts_skipped += 1
                        continue
                    job = replace(base, chunk=chunk.index, start=chunk.start, stop=None)
                    yield client.submit(_task, model, job, chunk.frame, pure=False)
                manifest.set_chunks(src.index, count)
                continue
            n = n_chunks(int(src.n_rows or 0), chunk_rows)
            for k in range(n):
                if k in done:
                    report.n_parts_skipped += 1
                    continue
                job = replace(base, chunk=k, start=k * chunk_rows, stop=min(int(src.n_rows or 0), (k + 1) * chunk_rows))
                yield client.submit(_task, model, job, pure=False)
            manifest.set_chunks(src.index, n)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(unit="part", desc="predict (dask)")
    todo = submissions()
    pending = set(itertools.islice(todo, window))
    queue = as_completed(list(pending))
    try:
        for fut in queue:
            pending.discard(fut)
            rec = fut.result()  # re-raises the task's error (e.g. an InputError) here
            manifest.add(rec)
            report.n_parts_written += 1
            report.n_rows_predicted += int(rec["rows"])
            if bar is not None:
                bar.update(1)
            nxt = next(todo, None)
            if nxt is not None:
                pending.add(nxt)
                queue.add(nxt)
    except BaseException:
        if pending:
            client.cancel(list(pending))
        raise
    finally:
        if bar is not None:
            bar.close()
