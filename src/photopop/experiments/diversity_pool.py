"""The training pool of the diversity study: simulated galaxies in cached chunks, spaxels capped per galaxy.

A repeat k of the study draws its training galaxies from one pool: chunks of `chunk` galaxies, each
simulated with the reproduction's survey config (the same priors) and its own seed
(`derived_seed(seed, "diversity-pool", k, c)`, never the survey's own seed, so every galaxy is unseen).
The training set of N galaxies is the first N galaxies of the pool. Galaxies of a chunk are independent
draws from the priors and their order is random (the simulator spreads early types over random
positions), so any prefix is a random sample of N; the points N of one repeat are nested (a learning
curve), repeats are independent.

Each galaxy's spaxels are shuffled with a seeded generator: the first `max_spaxels` are its training
spaxels (role "train"; galaxy diversity, not spaxel count, is the variable of the study, and the cap
keeps 10^4 galaxies affordable on a CPU), the next `set_a_test` are held out (role "test_a": Set A of the
same size, i.e. unseen spaxels of the training galaxies); the rest are dropped. A chunk is simulated once
and written atomically (parquet), so a killed study resumes without resimulating.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import read_table, write_table_atomic
from ..simulate.ifu import IFUSurveyConfig, simulate_ifu_survey
from .sed_cv import derived_seed

ROLE = "diversity_role"


def chunk_seed(seed: int, repeat: int, chunk: int, avoid: int) -> int:
    """Seed of pool chunk `chunk` of repeat `repeat`; never equal to `avoid` (the survey's own seed)."""
    s = derived_seed(seed, "diversity-pool", repeat, chunk)
    return s if s != avoid else derived_seed(seed, "diversity-pool", repeat, chunk, "again")


def cap_spaxels(spaxels: pd.DataFrame, max_spaxels: int, set_a_test: int, seed: int) -> pd.DataFrame:
    """Rows kept per galaxy with their role: the first `max_spaxels` of a seeded shuffle are "train", the
    next `set_a_test` "test_a" (max_spaxels = 0: all but `set_a_test` are "train"). Order: by galaxy, then
    shuffled order."""
    rng = np.random.default_rng(seed)
    parts = []
    for _, rows in spaxels.groupby("galaxy_id", sort=True):
        idx = rng.permutation(len(rows))
        n_test = min(set_a_test, max(len(rows) - 1, 0))
        n_train = len(rows) - n_test if max_spaxels <= 0 else min(max_spaxels, len(rows) - n_test)
        take = rows.iloc[idx[:n_train + n_test]].copy()
        take[ROLE] = ["train"] * n_train + ["test_a"] * n_test
        parts.append(take)
    return pd.concat(parts, ignore_index=True)


class TrainingPool:
    """Lazily simulated, cached chunks of training galaxies for one repeat of the study."""

    def __init__(self, survey: IFUSurveyConfig, work_dir: str | Path, seed: int, repeat: int, chunk: int,
                 max_spaxels: int, set_a_test: int):
        self.survey, self.work, self.seed, self.repeat = survey, Path(work_dir), int(seed), int(repeat)
        self.chunk, self.max_spaxels, self.set_a_test = int(chunk), int(max_spaxels), int(set_a_test)
        self._cache: dict[int, pd.DataFrame] = {}

    def _chunk(self, c: int) -> pd.DataFrame:
        if c in self._cache:
            return self._cache[c]
        path = self.work / f"pool-r{self.repeat}-c{c}.parquet"
        if path.exists():
            df = read_table(path)
        else:
            cfg = copy.deepcopy(self.survey)
            cfg.seed = chunk_seed(self.seed, self.repeat, c, self.survey.seed)
            cfg.sample = dataclasses.replace(cfg.sample, n_galaxies=self.chunk)
            spx = simulate_ifu_survey(cfg).spaxels.copy()
            spx["galaxy_id"] = spx["galaxy_id"].astype(np.int64) + c * self.chunk
            df = cap_spaxels(spx, self.max_spaxels, self.set_a_test,
                             derived_seed(self.seed, "diversity-cap", self.repeat, c))
            write_table_atomic(df, path)
        self._cache[c] = df
        return df

    def galaxies(self, n: int) -> pd.DataFrame:
        """Kept rows (with their role) of the first `n` galaxies of the pool."""
        n_chunks = -(-int(n) // self.chunk)
        df = pd.concat([self._chunk(c) for c in range(n_chunks)], ignore_index=True)
        ids = np.unique(df["galaxy_id"].to_numpy())[:n]
        return df[df["galaxy_id"].isin(ids)].reset_index(drop=True)
