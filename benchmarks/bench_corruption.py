"""How often does a randomly damaged Parquet catalogue give complete predictions with wrong values?

Writes one catalogue with photopop's own writer (`photopop.io.write_table_atomic`), predicts it once
(the reference), then damages copies of it -- 1-3 random byte flips (75 %) or a truncation (25 %),
seeded -- and runs `predict_catalog` on each. Every run ends one of three ways:

* refused: a PhotopopError (the CLI: one line, exit 2) and no ``_SUCCESS``;
* correct: ``_SUCCESS`` and predictions identical to the reference (the damage hit bytes that do not
  change the data, e.g. column statistics);
* wrong: ``_SUCCESS`` but some prediction differs from the reference -- the failure this measures.

Run with the source tree to measure on PYTHONPATH (before/after a change):
    PYTHONPATH=src python benchmarks/bench_corruption.py --n 200 --seed 0
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from photopop.errors import PhotopopError
from photopop.inference import predict_catalog
from photopop.io import write_table_atomic
from photopop.models.normalise import Standardiser
from photopop.models.saved import SavedSEDModel
from photopop.models.sed_cnn import SEDCNN, SEDCNNConfig

BANDS = [f"b{i}" for i in range(8)]


def damage(data: bytes, rng: np.random.Generator) -> bytes:
    if rng.random() < 0.25:
        return data[: int(rng.integers(0, len(data)))]
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        out[int(rng.integers(0, len(out)))] ^= int(rng.integers(1, 256))
    return bytes(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="damaged catalogues")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="photopop-corruption-"))
    try:
        torch.manual_seed(0)
        rng = np.random.default_rng(args.seed)
        net = SEDCNN(len(BANDS), 2, SEDCNNConfig(conv_filters=(2, 4), kernel_sizes=(3, 3), pool_size=2,
                                                 dense_units=(16, 8)))
        x = rng.normal(20, 1, (200, len(BANDS)))
        SavedSEDModel(net, Standardiser.fit(x, BANDS),
                      Standardiser(["log_age", "zh"], np.array([9.5, -0.3]), np.array([0.5, 0.3])),
                      {"bands": BANDS, "filter_system": None, "targets": ["log_age", "zh"],
                       "input_kind": "mag"}).save(root / "model")
        df = pd.DataFrame(rng.normal(20, 1, (args.rows, len(BANDS))), columns=[f"mag_{b}" for b in BANDS])
        df.insert(0, "galaxy_id", np.arange(args.rows) // 10)
        df.insert(1, "spaxel_id", np.arange(args.rows) % 10)
        write_table_atomic(df, root / "cat.parquet")
        clean = root / "cat.parquet"
        ref = predict_catalog(root / "model", clean, root / "ref", id_columns=["galaxy_id", "spaxel_id"],
                              chunk_rows=500, device="cpu")
        expected = pd.read_parquet(root / "ref").sort_values("row_index").reset_index(drop=True)
        data = clean.read_bytes()
        counts = {"refused": 0, "correct": 0, "wrong": 0}
        worst = 0.0
        for i in range(args.n):
            bad = root / f"bad-{i}.parquet"
            bad.write_bytes(damage(data, rng))
            out = root / f"out-{i}"
            try:
                predict_catalog(root / "model", bad, out, id_columns=["galaxy_id", "spaxel_id"], chunk_rows=500,
                                device="cpu")
            except PhotopopError:
                counts["refused"] += 1
                assert not (out / "_SUCCESS").exists()
                continue
            finally:
                bad.unlink()
            got = pd.read_parquet(out).sort_values("row_index").reset_index(drop=True)
            shutil.rmtree(out)
            same = got.shape == expected.shape and all(
                np.array_equal(got[c].to_numpy(), expected[c].to_numpy(), equal_nan=True) for c in expected.columns)
            if same:
                counts["correct"] += 1
            else:
                counts["wrong"] += 1
                if got.shape == expected.shape:
                    diff = np.abs(got[["log_age", "zh"]].to_numpy() - expected[["log_age", "zh"]].to_numpy())
                    worst = max(worst, float(np.nanmax(diff)) if np.isfinite(diff).any() else np.inf)
        print(f"{args.n} damaged catalogues ({ref.n_rows} rows each): refused {counts['refused']}, "
              f"correct {counts['correct']}, complete predictions with wrong values {counts['wrong']}"
              f"{f' (largest shift {worst:.3g} dex)' if counts['wrong'] else ''}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
