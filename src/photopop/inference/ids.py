"""Ids of a catalogue run: parse ``--id-columns``, check them per chunk and over the whole output.

Null or repeated ids inside a chunk stop the run at that chunk (before its part is written); ids
repeated across chunks or inputs are found by a final pass that reads only the id columns of the
parts, in hash buckets of at most `MAX_IDS_IN_MEMORY` rows, so its memory is bounded too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from .manifest import ROW_COLUMNS, SUCCESS

#: ids held in memory at once by the final uniqueness pass (more rows -> several hash-bucket passes)
MAX_IDS_IN_MEMORY = 20_000_000


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


def check_chunk_ids(frame: pd.DataFrame, id_columns: Sequence[str], what: str, start: int) -> pd.DataFrame:
    """The id columns of a chunk (RangeIndex); InputError for missing or duplicated ids in it."""
    ids = list(id_columns)
    if not ids:
        return pd.DataFrame(index=pd.RangeIndex(len(frame)))
    out = frame[ids].reset_index(drop=True)
    null = out.isna().any(axis=1).to_numpy()
    if null.any():
        raise InputError(f"{what}: {int(null.sum())} row(s) without an id in {ids} (first: row {start + int(np.argmax(null))})")
    dup = out.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)[:4] + start
        first = out.iloc[int(np.flatnonzero(dup)[0])].to_dict()
        raise InputError(f"{what}: duplicate ids {ids}: {int(dup.sum())} rows share ids, e.g. {first} "
                         f"(rows {rows.tolist()})")
    return out



def check_unique_ids(out_dir: Path, part_names: Sequence[str], id_columns: Sequence[str],
                     max_ids_in_memory: int = MAX_IDS_IN_MEMORY) -> None:
    """InputError if two output rows share their ids, reading only the id columns.

    Memory stays bounded: with more than `max_ids_in_memory` rows the ids are split into hash
    buckets and checked one bucket per pass over the parts.
    """
    import pyarrow.parquet as pq

    ids = list(id_columns)
    paths = [Path(out_dir) / n for n in sorted(part_names)]
    total = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
    n_buckets = max(1, math.ceil(total / max(1, int(max_ids_in_memory))))
    for bucket in range(n_buckets):
        frames = []
        for p in paths:
            df = pq.read_table(p, columns=ids + list(ROW_COLUMNS), page_checksum_verification=True).to_pandas()
            if n_buckets > 1:
                h = pd.util.hash_pandas_object(df[ids], index=False).to_numpy()
                df = df[h % np.uint64(n_buckets) == bucket]
            frames.append(df)
        if not frames:
            continue
        everything = pd.concat(frames, ignore_index=True)
        dup = everything.duplicated(ids, keep=False).to_numpy()
        if dup.any():
            dups = everything[dup].sort_values(ids + list(ROW_COLUMNS))
            first = dups.iloc[0]
            same = dups[(dups[ids] == first[ids]).all(axis=1)].head(4)
            key = ", ".join(f"{c}={first[c]}" for c in ids)
            where = ", ".join(f"input {int(r.input_index)} row {int(r.row_index)}" for r in same.itertuples())
            raise InputError(f"duplicate ids {ids}: {int(dup.sum())} output rows share ids across chunks or "
                             f"inputs, e.g. {key} at {where}; {out_dir} is left without {SUCCESS}")
