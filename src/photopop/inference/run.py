"""What the command line calls: `predict_inputs` (catalogues or image cubes) and `predict_table`.

`predict_inputs` is the one dispatcher above `predict_catalog` and `predict_cubes` (neither imports
it): catalogues become a Parquet dataset, image cubes a folder of maps, one kind per run.
`predict_table` is the in-memory form of the same path for one table (``photopop sed predict``):
the same predictor (`as_predictor` / `load_model`), band check and chunk kernel (`predict_chunk`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..errors import InputError
from ..photometry.columns import bands_from_columns
from .catalog import predict_catalog
from .chunks import check_input_bands, predict_chunk
from .cubes import predict_cubes
from .inputs import input_kind
from .predictors import as_predictor
from .reports import PredictReport


def predict_inputs(model: Any, inputs: Iterable[str | Path], out_dir: str | Path, **kw: Any) -> PredictReport:
    """`predict_catalog` for catalogues, `predict_cubes` for image cubes (one kind per run)."""
    inputs = [Path(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)]
    if not inputs:
        raise InputError("no inputs given")
    kinds = {p: input_kind(p) for p in inputs}
    if len(set(kinds.values())) > 1:
        cubes = [str(p) for p, k in kinds.items() if k == "cube"]
        raise InputError(f"catalogues and image cubes in one run: {cubes} are cubes; run them separately "
                         "(the output is either a Parquet dataset or a folder of maps)")
    if set(kinds.values()) == {"cube"}:
        kw.pop("id_columns", None)
        client = kw.pop("client", None)
        if client is not None:
            raise InputError("--dask applies to catalogues; cubes are predicted block by block in this process")
        return predict_cubes(model, inputs, out_dir, **kw)
    return predict_catalog(model, inputs, out_dir, **kw)


def predict_table(model: Any, table: Any, *, device: str = "cpu", batch_size: int = 4096,
                  num_threads: int | None = None, on_nan: str = "refuse", what: str = "table") -> pd.DataFrame:
    """Predictions for every row of an in-memory table (an `SEDTable` or a DataFrame of ``mag_<band>``
    columns), one row per row in order (RangeIndex).

    The model (folder path, model object or predictor) is wrapped as for `predict_catalog`; bands and
    the filter system (an SEDTable's meta ``filter_system``) are checked the same way, and the rows go
    through `predict_chunk` in one call, so a table gives what its catalogue gives.
    """
    predictor = as_predictor(model, device=device, batch_size=batch_size, num_threads=num_threads)
    system = None
    if hasattr(table, "spaxels") and hasattr(table, "meta"):  # an SEDTable: its meta names bands and system
        meta = table.meta if isinstance(table.meta, dict) else {}
        frame, bands, system = table.spaxels, meta.get("bands"), meta.get("filter_system")
    else:
        frame, bands = table, None
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"{what}: expected an SEDTable or a DataFrame, got {type(table).__name__}")
    check_input_bands(predictor, list(bands or bands_from_columns(frame.columns)), system, what)
    pred, _ = predict_chunk(predictor, frame.reset_index(drop=True), on_nan, what)
    return pred
