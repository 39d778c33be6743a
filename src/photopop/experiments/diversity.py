"""Does Set B reach Set A with more galaxies? (Liew-Cain et al. 2021, Sects. 4.5 and 5, tested on the mock.)

For each training-set size N (galaxies) and each of `seeds` repeats, a training survey of N galaxies is drawn
from the same priors as the reproduction's survey (the same config, a seed derived from the run's seed, N and
the repeat, so its galaxies are all unseen), one joint CNN is trained on all its spaxels (validation carved by
galaxy, as Set B), and it predicts every spaxel of the reproduction's survey. The robust sigma against the
labels, averaged over the repeats (with their standard deviation), is Set B performance at N training
galaxies; the reproduction's own Set A and the information floor (`floor` of its Set B cross-prediction,
when it ran) are the references it is compared with.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..datasets.sed_table import read_sed_table
from ..errors import InputError
from ..evaluation.metrics import robust_sigma
from ..io import write_json_atomic
from ..simulate.ifu import IFUSurveyConfig, simulate_ifu_survey
from ..training.fit import TrainConfig
from ..training.sed_regressor import SEDRegressor, SEDRegressorConfig
from .sed_cv import SEDCVConfig, derived_seed


@dataclass
class DiversitySettings:
    """Training-set sizes (galaxies) and repeats of the diversity study; enabled=False skips it."""

    enabled: bool = True
    n_galaxies: tuple[int, ...] = (10, 30, 100, 300, 1000)
    seeds: int = 3

    def validate(self) -> None:
        if self.enabled and (not self.n_galaxies or min(self.n_galaxies) < 2 or self.seeds < 1):
            raise InputError("diversity: n_galaxies must be non-empty with every value >= 2, seeds >= 1")


def run_diversity(test_table: Any, survey: IFUSurveyConfig, cv: SEDCVConfig, settings: DiversitySettings,
                  seed: int, targets: Sequence[str], floor: dict[str, float] | None = None,
                  progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The study's rows: [{n_galaxies, seeds, set_b: {target: {robust_sigma, robust_sigma_std}}, floor, ...}]."""
    settings.validate()
    say = progress or (lambda msg: None)
    bands = list(test_table.bands)
    y_test = test_table.spaxels[list(targets)].to_numpy(dtype=np.float64)
    rows = []
    for n in settings.n_galaxies:
        sig: dict[str, list[float]] = {t: [] for t in targets}
        for k in range(settings.seeds):
            s = derived_seed(seed, "diversity", n, k)
            if s == survey.seed:
                s = derived_seed(seed, "diversity", n, k, "again")
            cfg = copy.deepcopy(survey)
            cfg.seed = s
            cfg.sample = dataclasses.replace(cfg.sample, n_galaxies=int(n))
            train = simulate_ifu_survey(cfg)
            tcfg = TrainConfig(**{**dataclasses.asdict(cv.train), "seed": derived_seed(seed, "diversity-cnn", n, k)})
            reg = SEDRegressor(SEDRegressorConfig(targets=tuple(targets), input_kind=cv.input_kind,
                                                  ref_band=cv.ref_band, val_fraction=cv.val_fraction,
                                                  architecture=cv.architecture, train=tcfg))
            reg.fit(train, quiet=True)
            pred = reg.predict(test_table.spaxels, bands=bands, filter_system=test_table.filter_system)
            for j, t in enumerate(targets):
                sig[t].append(robust_sigma(pred[t].to_numpy() - y_test[:, j]))
            say(f"diversity: {n} galaxies, repeat {k + 1}/{settings.seeds}: "
                + ", ".join(f"{t} {sig[t][-1]:.3f}" for t in targets))
        row: dict[str, Any] = {"n_galaxies": int(n), "seeds": int(settings.seeds), "set_b": {}}
        for t in targets:
            v = np.asarray(sig[t])
            row["set_b"][t] = {"robust_sigma": float(v.mean()),
                               "robust_sigma_std": float(v.std(ddof=1)) if v.size > 1 else None}
        if floor:
            row["floor"] = {t: {"robust_sigma": floor.get(t)} for t in targets}
            row["ratio_to_floor"] = {t: (row["set_b"][t]["robust_sigma"] / floor[t]) if floor.get(t) else None
                                     for t in targets}
        rows.append(row)
    return rows


def diversity_stage(survey: IFUSurveyConfig, cv: SEDCVConfig, settings: DiversitySettings, seed: int,
                    targets: Sequence[str], say: Callable[[str], None]) -> Callable[[Path, Mapping[str, Any]], None]:
    """The reproduction's `diversity` stage: needs the `survey`, `cv_a` and `cv_b` stages; writes diversity.json."""
    def run(out: Path, ups: Mapping[str, Any]) -> None:
        cvb = json.loads(ups["cv_b"].file("metrics.json").read_text())
        cva = json.loads(ups["cv_a"].file("metrics.json").read_text())
        floor = {t: cvb["floor"][t]["robust_sigma"] for t in targets} if "floor" in cvb else None
        rows = run_diversity(read_sed_table(ups["survey"].path / "table"), survey, cv, settings, seed, targets,
                             floor, progress=lambda m: say(f"  {m}"))
        for r in rows:
            r["set_a_reference"] = {t: cva["cnn"][t]["robust_sigma"] for t in targets}
            r["set_b_reference"] = {t: cvb["cnn"][t]["robust_sigma"] for t in targets}
        write_json_atomic(out / "diversity.json", rows)
    return run
