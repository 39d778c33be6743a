"""Survey-scale prediction: the predictor protocol, model loading, the chunk kernel and `predict_catalog`.

A *predictor* is any object with ``bands`` (ordered band names), ``filter_system`` (name or None),
``targets`` and ``predict_frame(df) -> DataFrame``: given a frame of ``mag_<band>`` columns in the
model's band order it returns one row per input row with one column per target and, where the model
estimates them, ``<target>_sigma`` columns (everything it returns is passed through to the output).
`load_model` turns a model folder into a predictor, dispatching on ``meta.json`` (``kind``, else
``input_kind``) through `MODEL_KINDS`, so ensembles or other model families plug in with
`register_model_kind` without touching the streaming code. A predictor that needs columns besides the
magnitudes (e.g. ``magerr_<band>``, ``redshift``: posterior models) lists them in ``extra_columns``;
they are read, checked and passed to ``predict_frame`` too.

`predict_catalog` streams catalogues chunk by chunk into a partitioned Parquet dataset (see
`photopop.inference.stream` for the readers and the atomic writer, `photopop.inference.distributed`
for the Dask path); `predict_inputs` is what ``photopop predict`` calls (catalogues or image cubes).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np
import pandas as pd

from ..errors import InputError, MismatchError
from ..models.folder_checks import read_meta
from ..photometry.magnitudes import describe_implausible, magnitude_matrix, mask_implausible
from ..validate import positive_int
from . import stream

MAG_PREFIX = "mag_"
ON_NAN = ("nan", "refuse")
DEFAULT_CHUNK_ROWS = 100_000

#: model kind -> "module:callable" (or a callable) taking (path, device=, batch_size=) -> predictor
MODEL_KINDS: dict[str, str | Callable[..., Any]] = {
    "sed": "photopop.inference.predict:load_sed_predictor",
    "sed-ensemble": "photopop.inference.predict:load_sed_predictor",
    "sed-posterior": "photopop.inference.posterior:load_posterior_predictor",
}


@runtime_checkable
class Predictor(Protocol):
    """What the inference code needs from a model (see the module docstring)."""

    @property
    def bands(self) -> Sequence[str]: ...

    @property
    def filter_system(self) -> str | None: ...

    @property
    def targets(self) -> Sequence[str]: ...

    def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame: ...


class SEDPredictor:
    """A `SavedSEDModel` as a `Predictor` bound to one device and batch size."""

    def __init__(self, model: Any, device: str = "auto", batch_size: int = 4096,
                 path: str | Path | None = None, model_hash: str | None = None) -> None:
        from ..training.device import resolve_device

        self.model = model
        self.device_spec = str(device)
        self.device = resolve_device(device)
        self.batch_size = positive_int(batch_size, "batch_size")
        self.path = None if path is None else str(Path(path).resolve())
        self.model_hash = model_hash or saved_model_hash(model)

    @property
    def bands(self) -> list[str]:
        return list(self.model.bands)

    @property
    def filter_system(self) -> str | None:
        return self.model.filter_system

    @property
    def targets(self) -> list[str]:
        return list(self.model.targets)

    @property
    def mag_range(self) -> Any:
        """The magnitude range the model was trained with (values outside are masked before it sees them)."""
        return self.model.mag_range

    @property
    def handles_nan(self) -> bool:
        """True only for models trained to mask missing bands (meta ``nan_policy`` 'mask')."""
        return self.model.meta.get("nan_policy") == "mask"

    def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """Targets for the ``mag_<band>`` columns of `df` (bands already checked by the caller)."""
        return self.model.predict(df, bands=self.bands, batch_size=self.batch_size, device=self.device)


def load_sed_predictor(path: str | Path, device: str = "auto", batch_size: int = 4096) -> SEDPredictor:
    """Load a SED-CNN model folder (`SavedSEDModel`) or a deep ensemble (`SEDEnsemble`) as a predictor."""
    from ..models.registry import open_model

    return SEDPredictor(open_model(path), device=device, batch_size=batch_size, path=path)


def register_model_kind(kind: str, loader: str | Callable[..., Any]) -> None:
    """Make `load_model` build predictors of `kind` (meta.json ``kind``) with `loader(path, device=, batch_size=)`."""
    MODEL_KINDS[str(kind)] = loader


def model_kind(meta: dict[str, Any]) -> str:
    """The kind of a model folder from its meta.json: ``kind`` if present, else from ``input_kind``."""
    if meta.get("kind"):
        return str(meta["kind"])
    return "image" if meta.get("input_kind") == "image" else "sed"


def load_model(path: str | Path, device: str = "auto", batch_size: int = 4096, **options: Any) -> Any:
    """Load a model folder as a `Predictor`, dispatching on its meta.json kind.

    `options` go to the kind's loader (e.g. ``n_samples``, ``seed`` for posterior models).

    Raises InputError for a missing/corrupt folder, an image model (those predict from cutouts, not
    from magnitudes) or a kind nobody registered.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such model folder")
    meta = read_meta(path)
    kind = model_kind(meta)
    if kind == "image":
        raise InputError(f"{path}: an image model (input_kind 'image'); `photopop predict` applies models that "
                         "take band magnitudes (catalogues and image cubes); image models predict from cutouts")
    loader = MODEL_KINDS.get(kind)
    if loader is None:
        raise InputError(f"{path}: unknown model kind {kind!r}; known: {sorted(MODEL_KINDS)}")
    if isinstance(loader, str):
        module, _, name = loader.partition(":")
        loader = getattr(importlib.import_module(module), name)
    predictor = loader(path, device=device, batch_size=batch_size, **options)
    for attr, value in (("path", str(path.resolve())), ("model_hash", None)):
        if getattr(predictor, attr, None) is None:
            try:
                setattr(predictor, attr, value if value is not None else folder_hash(path))
            except AttributeError:
                pass
    return predictor


def as_predictor(model: Any, device: str = "auto", batch_size: int = 4096) -> Any:
    """A `Predictor` from a model folder path, a predictor, a `SavedSEDModel`/`SavedPosterior` or a fitted
    `SEDRegressor`/`SEDPosterior`."""
    if isinstance(model, (str, Path)):
        return load_model(model, device=device, batch_size=batch_size)
    if hasattr(model, "predict_frame"):
        for attr in ("bands", "targets"):
            if not hasattr(model, attr):
                raise InputError(f"model object lacks .{attr}; a predictor needs .bands, .filter_system, "
                                 ".targets and predict_frame(df)")
        return model
    inner = getattr(model, "model_", None)  # a fitted SEDRegressor
    if inner is not None and hasattr(inner, "network"):
        model = inner
    if hasattr(model, "network") and hasattr(model, "meta") and model.meta.get("kind") == "sed-posterior":
        from .posterior import PosteriorPredictor

        return PosteriorPredictor(model, device=device, batch_size=min(int(batch_size), 1024))
    if hasattr(model, "network") and hasattr(model, "predict") and hasattr(model, "meta"):
        return SEDPredictor(model, device=device, batch_size=batch_size)
    raise InputError(f"cannot use a {type(model).__name__} as a model: give a model folder, a SavedSEDModel, "
                     "a fitted SEDRegressor or an object with .bands, .filter_system, .targets and predict_frame(df)")


# -- fingerprints --------------------------------------------------------------------------------------
def folder_hash(path: str | Path) -> str:
    """sha256 over the names and bytes of every non-hidden file in a model folder (recursively)."""
    path = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path)
        if any(part.startswith(".") for part in rel.parts):
            continue
        h.update(str(rel).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


#: meta.json entries that change what a SED model predicts (the rest is provenance)
PREDICTION_META = ("bands", "filter_system", "targets", "input_kind", "ref_band", "nan_policy", "loss", "sigma_scale",
                   "mag_range")


def saved_model_hash(model: Any) -> str:
    """sha256 of what a `SavedSEDModel` predicts with: architecture, weights, normalisation, bands/targets.

    The same for the model in memory and after save/load, so either may resume the other's run. An
    ensemble hashes its members' hashes in order, with its own sigma scale.
    """
    members = getattr(model, "members", None)
    if members is not None:
        h = hashlib.sha256()
        for member in members:
            h.update(saved_model_hash(member).encode())
        h.update(json.dumps(model.meta.get("sigma_scale"), sort_keys=True, default=str).encode())
        return h.hexdigest()
    h = hashlib.sha256()
    h.update(repr(model.network.config).encode())
    for name, tensor in sorted(model.network.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    meta = {k: model.meta.get(k) for k in PREDICTION_META}
    h.update(json.dumps({"in": model.input_norm.to_dict(), "out": model.target_norm.to_dict(), "meta": meta},
                        sort_keys=True, default=str).encode())
    return h.hexdigest()


def predictor_hash(predictor: Any) -> str:
    """The predictor's ``model_hash``; InputError if it has none (the resume fingerprint needs it)."""
    value = getattr(predictor, "model_hash", None)
    if not value:
        raise InputError(f"the {type(predictor).__name__} has no model_hash attribute; resumable output "
                         "needs a fingerprint of the model (set predictor.model_hash)")
    return str(value)


# -- the chunk kernel ----------------------------------------------------------------------------------
def output_columns(predictor: Any) -> list[str]:
    """Columns that `predict_frame` returns (asked from an empty frame unless it declares them)."""
    declared = getattr(predictor, "output_columns", None)
    if declared:
        return list(declared)
    names = [MAG_PREFIX + b for b in predictor.bands] + extra_columns(predictor)
    empty = pd.DataFrame({c: pd.Series(dtype=np.float64) for c in names})
    return [str(c) for c in predictor.predict_frame(empty).columns]


def predict_chunk(predictor: Any, df: pd.DataFrame, on_nan: str = "nan",
                  what: str = "input") -> tuple[pd.DataFrame, int]:
    """Predictions (RangeIndex, one row per row of `df`) and the number of rows with a missing band.

    A band is missing when its magnitude is NaN or implausible (inf, a sentinel such as 99, or
    outside the model's ``mag_range``, default -10 .. 40 AB; see `photopop.photometry.magnitudes`):
    implausible values are masked to NaN first, so they are counted with the NaN rows. Rows with a
    missing band get NaN predictions (``on_nan='nan'``) or raise InputError (``'refuse'``), unless
    the predictor ``handles_nan`` itself (then it sees NaN for the masked bands). Non-numeric
    magnitude columns raise InputError. Vectorised: the model sees all complete rows in one call.
    """
    if on_nan not in ON_NAN:
        raise InputError(f"on_nan must be one of {list(ON_NAN)}, got {on_nan!r}")
    cols = [MAG_PREFIX + b for b in predictor.bands]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"{what}: missing magnitude column(s) {missing}")
    extra = [c for c in extra_columns(predictor) if c not in cols]
    absent = [c for c in extra if c not in df.columns]
    if absent:
        raise InputError(f"{what}: missing column(s) {absent[:6]} the model is conditioned on")
    raw = magnitude_matrix(df, cols, what)
    mags, n_implausible = mask_implausible(raw, getattr(predictor, "mag_range", None))
    frame = pd.DataFrame(mags, columns=cols)
    for c in extra:
        frame[c] = df[c].to_numpy()
    n = len(frame)
    ok = np.isfinite(mags).all(axis=1)
    n_bad = int(n - ok.sum())
    if n_bad == 0 or getattr(predictor, "handles_nan", False):
        pred = predictor.predict_frame(frame)
        _check_output(predictor, pred, n, what)
        return pred.reset_index(drop=True), n_bad
    if on_nan == "refuse":
        bad_bands = [b for j, b in enumerate(predictor.bands) if not np.isfinite(mags[:, j]).all()]
        why = (f" ({describe_implausible(raw, cols, getattr(predictor, 'mag_range', None))})"
               if n_implausible else "")
        raise InputError(f"{what}: {n_bad} row(s) have NaN/inf or implausible magnitudes (band(s) {bad_bands})"
                         f"{why}; use on_nan='nan' (--on-nan nan) to write NaN predictions for them")
    sub = predictor.predict_frame(frame.loc[ok].reset_index(drop=True))
    _check_output(predictor, sub, int(ok.sum()), what)
    values = np.full((n, sub.shape[1]), np.nan, dtype=np.float64)
    values[ok] = sub.to_numpy(dtype=np.float64)
    return pd.DataFrame(values, columns=[str(c) for c in sub.columns]), n_bad


def extra_columns(predictor: Any) -> list[str]:
    """Input columns the predictor needs besides ``mag_<band>`` (its ``extra_columns``, default none)."""
    return [str(c) for c in (getattr(predictor, "extra_columns", None) or ())]


def _check_output(predictor: Any, pred: pd.DataFrame, n: int, what: str) -> None:
    if not isinstance(pred, pd.DataFrame) or len(pred) != n:
        raise InputError(f"{what}: the model returned {type(pred).__name__} of length "
                         f"{len(pred) if hasattr(pred, '__len__') else '?'} for {n} rows")
    missing = [t for t in predictor.targets if t not in pred.columns]
    if missing:
        raise InputError(f"{what}: the model's output lacks target column(s) {missing}")


def check_input_bands(predictor: Any, bands: Sequence[str], filter_system: str | None, what: str,
                      ignore_extra_bands: bool = False) -> None:
    """MismatchError naming `what` if its bands or filter system differ from the model's."""
    from ..models.saved import check_bands

    given = [b for b in bands if b in set(predictor.bands)] if ignore_extra_bands else list(bands)
    try:
        check_bands(predictor.bands, given, predictor.filter_system, filter_system)
    except MismatchError as exc:
        raise MismatchError(f"{what}: {exc}") from exc


# -- catalogue prediction --------------------------------------------------------------------------------
@dataclass
class PredictReport:
    """What a prediction run did: rows, parts written and skipped (resume), NaN rows, speed."""

    out_dir: Path
    kind: str  # 'catalog' or 'cubes'
    inputs: list[str]
    columns: list[str]
    n_rows: int = 0
    n_parts: int = 0
    n_parts_written: int = 0
    n_parts_skipped: int = 0
    n_rows_predicted: int = 0
    n_nan_rows: int = 0
    seconds: float = 0.0
    maps: list[Path] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        """Rows predicted in this run per second of wall time."""
        return self.n_rows_predicted / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        """One line for the command line."""
        what = "maps" if self.kind == "cubes" else "parts"
        speed = (f"{self.rows_per_s:,.0f} rows/s" if self.n_rows_predicted else "nothing left to predict")
        return (f"{self.n_rows} rows in {self.n_parts} {what} ({self.n_parts_written} written, "
                f"{self.n_parts_skipped} already done), {self.n_nan_rows} rows with missing or implausible "
                f"magnitudes -> NaN predictions; "
                f"{speed}")


@dataclass(frozen=True)
class ChunkJob:
    """Everything a worker needs to predict one chunk and write its part file (picklable)."""

    source: stream.CatalogInput
    chunk: int
    start: int
    stop: int | None  # None: rows come with the job (CSV)
    out_dir: str
    read_columns: tuple[str, ...]
    id_columns: tuple[str, ...]
    on_nan: str
    model_hash: str

    @property
    def name(self) -> str:
        return stream.part_name(self.source.index, self.chunk)


def process_chunk(predictor: Any, job: ChunkJob, frame: pd.DataFrame | None = None) -> dict[str, Any]:
    """Read (unless `frame` is given), predict and atomically write one part; returns its manifest record."""
    if frame is None:
        frame = stream.read_rows(job.source, job.start, int(job.stop), job.read_columns)
    what = f"{job.source.path} rows {job.start}-{job.start + len(frame)}"
    ids = stream.check_chunk_ids(frame, job.id_columns, what, job.start)
    pred, n_nan = predict_chunk(predictor, frame, job.on_nan, what)
    out = pd.concat([ids, stream.row_columns(job.source.index, job.start, len(frame)), pred], axis=1)
    digest = stream.write_part(out, Path(job.out_dir) / job.name, {"photopop_model_hash": job.model_hash,
                                                                    "photopop_input": job.source.path})
    return {"name": job.name, "input": job.source.index, "chunk": job.chunk, "start": job.start,
            "rows": len(frame), "nan_rows": n_nan, "sha256": digest}


def predict_catalog(model: Any, inputs: str | Path | Iterable[str | Path], out_dir: str | Path, *,
                    chunk_rows: int = DEFAULT_CHUNK_ROWS, id_columns: Sequence[str] | str | None = None,
                    client: Any = None, device: str = "auto", batch_size: int = 4096,
                    filter_system: str | None = None, on_nan: str = "nan", ignore_extra_bands: bool = False,
                    overwrite: bool = False, progress: bool = False,
                    max_ids_in_memory: int = stream.MAX_IDS_IN_MEMORY) -> PredictReport:
    """Predict every row of catalogues (Parquet file/dataset folder, FITS table, CSV) into a Parquet dataset.

    Streams `chunk_rows` rows at a time; each chunk becomes ``out_dir/part-<input>-<chunk>.parquet``
    (written atomically), recorded in ``_manifest.json``; ``_SUCCESS`` marks a complete dataset. A
    rerun with the same model, inputs and settings skips finished parts. Bands, filter systems and
    id columns of every input are checked before anything is written. With `id_columns`, ids must
    be unique over all inputs (checked per chunk and in a final memory-bounded pass). With a Dask
    `client`, chunks run on its workers (the model is loaded once per worker); the client is not closed.
    """
    t0 = time.perf_counter()
    batch_size = positive_int(batch_size, "batch_size")
    predictor = as_predictor(model, device=device, batch_size=batch_size)
    chunk_rows = positive_int(chunk_rows, "chunk_rows")
    batch_size = positive_int(batch_size, "batch_size")
    if on_nan not in ON_NAN:
        raise InputError(f"on_nan must be one of {list(ON_NAN)}, got {on_nan!r}")
    ids = parse_id_columns(id_columns)
    sources = stream.inspect_inputs(inputs, filter_system=filter_system)
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
    clash = sorted(set(ids) & (set(cols) | set(stream.ROW_COLUMNS)))
    if clash:
        raise InputError(f"id column(s) {clash} clash with output columns {stream.ROW_COLUMNS + tuple(cols)}")
    model_hash = predictor_hash(predictor)
    run = {"kind": "catalog", "model_hash": model_hash, "chunk_rows": chunk_rows, "id_columns": list(ids),
           "on_nan": on_nan, "columns": list(ids) + list(stream.ROW_COLUMNS) + cols,
           "inputs": [s.fingerprint() for s in sources]}
    read_columns = tuple(dict.fromkeys([*ids, *(MAG_PREFIX + b for b in predictor.bands),
                                        *extra_columns(predictor)]))
    report = PredictReport(Path(out_dir), "catalog", [s.path for s in sources], run["columns"])

    def jobs_for(src: stream.CatalogInput) -> ChunkJob:  # the template of src's chunk jobs
        return ChunkJob(src, 0, 0, None, str(out_dir), read_columns, ids, on_nan, model_hash)

    with _client_context(client) as dask_client, \
            claim_prediction_output(out_dir, model, [s.path for s in sources]):  # connect first: a bad address writes nothing
        manifest = stream.Manifest.open(out_dir, run, overwrite=overwrite)
        try:
            if dask_client is None:
                _run_local(predictor, sources, chunk_rows, jobs_for, manifest, report, progress)
            else:
                from .distributed import run_distributed

                run_distributed(dask_client, predictor, sources, chunk_rows, jobs_for, manifest, report, progress)
            manifest.check_complete(sources, chunk_rows)
            if ids and (report.n_parts_written or not manifest.was_complete):
                stream.check_unique_ids(Path(out_dir), manifest.part_names(), ids, max_ids_in_memory)
            manifest.finish()
        finally:
            manifest.save(force=True)
    report.n_parts = len(manifest.parts)
    report.n_rows = int(sum(p["rows"] for p in manifest.parts.values()))
    report.n_nan_rows = int(sum(p.get("nan_rows", 0) for p in manifest.parts.values()))
    report.seconds = time.perf_counter() - t0
    return report


def _run_local(predictor: Any, sources: list[stream.CatalogInput], chunk_rows: int,
               jobs_for: Callable[[stream.CatalogInput], ChunkJob], manifest: "stream.Manifest",
               report: PredictReport, progress: bool) -> None:
    """Single-process loop: read each input sequentially, skip finished chunks, write the rest."""
    from dataclasses import replace

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
            for chunk in stream.iter_chunks(src, chunk_rows, base.read_columns, skip=done):
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


def _progress_bar(sources: list[stream.CatalogInput], chunk_rows: int, progress: bool) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    known = [s.n_rows for s in sources]
    total = None if any(n is None for n in known) else sum(stream.n_chunks(int(n), chunk_rows) for n in known)
    return tqdm(total=total, unit="part", desc="predict")


def parse_id_columns(id_columns: Sequence[str] | str | None) -> tuple[str, ...]:
    """('galaxy_id', 'spaxel_id') from 'galaxy_id,spaxel_id', a list or None; refuses repeats."""
    if id_columns is None:
        return ()
    if isinstance(id_columns, str):
        id_columns = [c.strip() for c in id_columns.split(",") if c.strip()]
    ids = tuple(str(c) for c in id_columns)
    if len(set(ids)) != len(ids):
        raise InputError(f"id columns repeat: {list(ids)}")
    return ids


def claim_prediction_output(out_dir: str | Path, model: Any, inputs: Sequence[str | Path]) -> Any:
    """Claim and lock `out_dir` for a prediction run (`photopop.outputs`): a second run on the same
    folder is refused naming the first; a file, a foreign folder or an input in the way is refused.
    The run's fingerprint is compared by the manifest (`stream.Manifest.open`)."""
    from ..outputs import claim_output

    sources = list(inputs) + ([model] if isinstance(model, (str, Path)) else [])
    return claim_output(out_dir, "predict", None, inputs=sources, in_place=True)


# -- catalogues or cubes (the command line) ------------------------------------------------------------
def predict_inputs(model: Any, inputs: Iterable[str | Path], out_dir: str | Path, **kw: Any) -> PredictReport:
    """`predict_catalog` for catalogues, `predict_cubes` for image cubes (one kind per run)."""
    inputs = [Path(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)]
    if not inputs:
        raise InputError("no inputs given")
    kinds = {p: stream.input_kind(p) for p in inputs}
    if len(set(kinds.values())) > 1:
        cubes = [str(p) for p, k in kinds.items() if k == "cube"]
        raise InputError(f"catalogues and image cubes in one run: {cubes} are cubes; run them separately "
                         "(the output is either a Parquet dataset or a folder of maps)")
    if set(kinds.values()) == {"cube"}:
        from .cubes import predict_cubes

        kw.pop("id_columns", None)
        client = kw.pop("client", None)
        if client is not None:
            raise InputError("--dask applies to catalogues; cubes are predicted block by block in this process")
        return predict_cubes(model, inputs, out_dir, **kw)
    return predict_catalog(model, inputs, out_dir, **kw)

