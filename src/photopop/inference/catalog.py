"""`predict_catalog`: catalogues (Parquet, FITS, CSV) to a resumable, partitioned Parquet dataset.

Every input is inspected and checked (bands, filter system, id and extra columns) before anything
is written; then each chunk of ``chunk_rows`` rows becomes one atomically written part, recorded in
``_manifest.json`` (`photopop.inference.manifest`). The chunks run in this process
(`run_local`) or as Dask tasks (`photopop.inference.distributed`).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..errors import InputError
from ..photometry.columns import MAG_PREFIX
from ..validate import positive_int
from .chunks import (
    DEFAULT_CHUNK_ROWS,
    ChunkJob,
    check_input_bands,
    check_on_nan,
    extra_columns,
    output_columns,
    process_chunk,
)
from .fingerprints import predictor_hash
from .ids import MAX_IDS_IN_MEMORY, check_unique_ids, parse_id_columns
from .inputs import CatalogInput, inspect_inputs
from .manifest import ROW_COLUMNS, Manifest, claim_prediction_output, n_chunks
from .predictors import as_predictor
from .readers import iter_chunks
from .reports import PredictReport


def predict_catalog(model: Any, inputs: str | Path | Iterable[str | Path], out_dir: str | Path, *,
                    chunk_rows: int = DEFAULT_CHUNK_ROWS, id_columns: Sequence[str] | str | None = None,
                    client: Any = None, device: str = "auto", batch_size: int = 4096,
                    filter_system: str | None = None, on_nan: str = "nan", ignore_extra_bands: bool = False,
                    overwrite: bool = False, progress: bool = False,
                    max_ids_in_memory: int = MAX_IDS_IN_MEMORY) -> PredictReport:
    """Predict every row of catalogues (Parquet file/dataset folder, FITS table, CSV) into a Parquet dataset.

    Streams `chunk_rows` rows at a time; each chunk becomes ``out_dir/part-<input>-<chunk>.parquet``
    (written atomically), recorded in ``_manifest.json``; ``_SUCCESS`` marks a complete dataset. A
    rerun with the same model, inputs and settings skips finished parts. Bands, filter systems and
    id columns of every input are checked before anything is written. With `id_columns`, ids must
    be unique over all inputs (checked per chunk and in a final memory-bounded pass). With a Dask
    `client`, chunks run on its workers (the model is loaded once per worker); the client is not closed.

    Parameters
    ----------
    model : str, path or predictor
        A model folder or a loaded model / predictor.
    inputs : path or iterable of paths
        Catalogues (Parquet files or dataset folders, FITS tables, CSV) or image cubes.
    out_dir : str or path
        The output dataset folder (resumed when it holds a run with the same fingerprint).
    chunk_rows : int
        Rows per part file.
    id_columns : sequence of str, optional
        Columns copied into the output beside the predictions (unique over all inputs).
    on_nan : str
        What rows with NaN magnitudes give (see ``ON_NAN``).
    overwrite : bool
        Replace an output folder photopop wrote with other settings.

    Returns
    -------
    PredictReport
        Rows and parts written or reused, the output folder and timings.
    """
    t0 = time.perf_counter()
    batch_size = positive_int(batch_size, "batch_size")
    predictor = as_predictor(model, device=device, batch_size=batch_size)
    chunk_rows = positive_int(chunk_rows, "chunk_rows")
    check_on_nan(on_nan)
    ids = parse_id_columns(id_columns)
    sources = inspect_inputs(inputs, filter_system=filter_system)
    cubes = [s.path for s in sources if s.fmt == "cube"]
    if cubes:
        raise InputError(f"{cubes[0]}: an image cube, not a catalogue; use predict_cube / predict_inputs")
    cols = output_columns(predictor)
    for src in sources:
        check_input_bands(predictor, src.bands, src.filter_system, src.path, ignore_extra_bands)
        missing = [c for c in ids if c not in src.columns]
        if missing:
            raise InputError(f"{src.path}: id column(s) {missing} not found; columns: {list(src.columns)[:40]}")
        absent = [c for c in extra_columns(predictor) if c not in src.columns]
        if absent:
            raise InputError(f"{src.path}: lacks column(s) {absent[:6]} the model is conditioned on")
    clash = sorted(set(ids) & (set(cols) | set(ROW_COLUMNS)))
    if clash:
        raise InputError(f"id column(s) {clash} clash with output columns {ROW_COLUMNS + tuple(cols)}")
    model_hash = predictor_hash(predictor)
    run = {"kind": "catalog", "model_hash": model_hash, "chunk_rows": chunk_rows, "id_columns": list(ids),
           "on_nan": on_nan, "columns": list(ids) + list(ROW_COLUMNS) + cols,
           "inputs": [s.fingerprint() for s in sources]}
    read_columns = tuple(dict.fromkeys([*ids, *(MAG_PREFIX + b for b in predictor.bands),
                                        *extra_columns(predictor)]))
    report = PredictReport(Path(out_dir), "catalog", [s.path for s in sources], run["columns"])

    def jobs_for(src: CatalogInput) -> ChunkJob:  # the template of src's chunk jobs
        return ChunkJob(src, 0, 0, None, str(out_dir), read_columns, ids, on_nan, model_hash)

    with _client_context(client) as dask_client, \
            claim_prediction_output(out_dir, model, [s.path for s in sources]):  # connect first: a bad address writes nothing
        manifest = Manifest.open(out_dir, run, overwrite=overwrite)
        try:
            if dask_client is None:
                run_local(predictor, sources, chunk_rows, jobs_for, manifest, report, progress)
            else:
                from .distributed import run_distributed

                run_distributed(dask_client, predictor, sources, chunk_rows, jobs_for, manifest, report, progress)
            manifest.check_complete(sources, chunk_rows)
            if ids and (report.n_parts_written or not manifest.was_complete):
                check_unique_ids(Path(out_dir), manifest.part_names(), ids, max_ids_in_memory)
            manifest.finish()
        finally:
            manifest.save(force=True)
    report.n_parts = len(manifest.parts)
    report.n_rows = int(sum(p["rows"] for p in manifest.parts.values()))
    report.n_nan_rows = int(sum(p.get("nan_rows", 0) for p in manifest.parts.values()))
    report.seconds = time.perf_counter() - t0
    return report


def run_local(predictor: Any, sources: list[CatalogInput], chunk_rows: int,
              jobs_for: Callable[[CatalogInput], ChunkJob], manifest: Manifest,
              report: PredictReport, progress: bool) -> None:
    """Single-process loop: read each input sequentially, skip finished chunks, write the rest."""
    bar = _progress_bar(sources, chunk_rows, progress)
    try:
        for src in sources:
            base = jobs_for(src)
            done = manifest.finished_chunks(src.index)
            known = manifest.all_done(src.index)
            if known is not None:  # nothing left in this input: do not even read it (CSV)
                report.n_parts_skipped += known
                if bar is not None:
                    bar.update(known)
                continue
            count = 0
            for chunk in iter_chunks(src, chunk_rows, base.read_columns, skip=done):
                count += 1
                if chunk.frame is None:
                    report.n_parts_skipped += 1
                else:
                    job = replace(base, chunk=chunk.index, start=chunk.start)
                    rec = process_chunk(predictor, job, chunk.frame)
                    manifest.add(rec)
                    report.n_parts_written += 1
                    report.n_rows_predicted += rec["rows"]
                if bar is not None:
                    bar.update(1)
            manifest.set_chunks(src.index, count)
    finally:
        if bar is not None:
            bar.close()


@contextmanager
def _client_context(client: Any) -> Iterator[Any]:
    if client is None:
        yield None
        return
    from .distributed import open_client

    with open_client(client) as dask_client:
        yield dask_client


def _progress_bar(sources: list[CatalogInput], chunk_rows: int, progress: bool) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    known = [s.n_rows for s in sources]
    total = None if any(n is None for n in known) else sum(n_chunks(int(n), chunk_rows) for n in known)
    return tqdm(total=total, unit="part", desc="predict")
