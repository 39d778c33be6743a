"""Does Set B reach Set A with more galaxies? (Liew-Cain et al. 2021, Sects. 4.5 and 5, tested on the mock.)

The paper conjectured that with enough galaxies the CNN's accuracy on unseen galaxies (Set B) would
approach that on unseen spaxels of seen galaxies (Set A), and that training on simulated galaxies plus
transfer learning could get there. photopop can simulate the galaxies, so it tests both:

- For each training-set size N and each repeat k, one joint CNN is trained on the capped spaxels of the
  first N galaxies of repeat k's pool (`diversity_pool`: same priors as the reproduction's survey, unseen
  galaxies, `max_spaxels_per_galaxy` spaxels each; validation carved by galaxy).
- **Set B** at N: that network predicts every spaxel of the reproduction's survey (other galaxies):
  robust sigma per target, and the gradient sigma (robust sigma over galaxies of predicted minus label
  radial gradients, `evaluation.gradients` with the run's gradient settings).
- **Set A** at N: the same network predicts held-out spaxels of its own N training galaxies
  (`set_a_test_spaxels` each): the same training set, only the test changes, so Set B - Set A is the
  cost of unseen galaxies at that N.
- **Floor**: the Bayes estimate under the simulator's prior (the `floor` method of the reproduction's
  Set B), per spaxel and per gradient; the held-out Set A spaxels are drawn from the same prior, so the
  same floor is their reference. Ratios to the floor are given per N.
- **Pre-training + fine-tuning** (the paper's remedy): the network of N = `pretrain_galaxies` (repeat 0)
  is fine-tuned (`experiments.robustness.finetune`) on m labelled galaxies of the reproduction's survey
  and tested on its other galaxies, beside the same network as is and one trained from scratch on the m.

Every (N, k) point and every fine-tuning point is a JSON file written atomically in the stage's work
folder, and pool chunks are cached, so a killed study resumes where it stopped; `summarise_points`
builds the rows from whatever points exist.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..datasets.sed_table import read_sed_table
from ..errors import InputError
from ..evaluation.gradients import compare_gradients, radial_gradients
from ..evaluation.metrics import bias, robust_sigma
from ..io import read_json, read_table, write_json_atomic
from ..models.saved import SavedSEDModel
from ..simulate.ifu import IFUSurveyConfig
from ..training.fit import TrainConfig
from ..training.sed_regressor import SEDRegressor, SEDRegressorConfig
from .diversity_pool import ROLE, TrainingPool
from .robustness import FinetuneConfig, finetune
from .sed_cv import SEDCVConfig, derived_seed


@dataclass
class DiversitySettings:
    """Settings of the diversity study; enabled=False skips it.

    n_galaxies: training-set sizes N. seeds: repeats per N; seeds_per_point (one entry per N, optional)
    overrides it per N (the largest N are the costly ones). max_spaxels_per_galaxy: training spaxels per
    galaxy (0: all). set_a_test_spaxels: held-out spaxels per training galaxy for Set A (0: no Set A).
    chunk_galaxies: galaxies simulated per cached pool chunk. pretrain_galaxies: N of the network that is
    fine-tuned (0: the largest N); finetune_galaxies: labelled survey galaxies it is fine-tuned on
    (empty: no fine-tuning study), each repeated `seeds` times; finetune_lr: its learning rate.
    """

    enabled: bool = True
    n_galaxies: tuple[int, ...] = (10, 30, 100, 300, 1000, 3000, 10000)
    seeds: int = 3
    seeds_per_point: tuple[int, ...] = ()
    max_spaxels_per_galaxy: int = 5
    set_a_test_spaxels: int = 4
    chunk_galaxies: int = 500
    pretrain_galaxies: int = 0
    finetune_galaxies: tuple[int, ...] = (10, 30)
    finetune_lr: float = 2e-4

    def repeats(self) -> dict[int, int]:
        """N -> number of repeats."""
        per = self.seeds_per_point or (self.seeds,) * len(self.n_galaxies)
        return {int(n): int(k) for n, k in zip(self.n_galaxies, per)}

    def pretrain_n(self) -> int:
        return int(self.pretrain_galaxies or max(self.n_galaxies))

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.n_galaxies or min(self.n_galaxies) < 2 or self.seeds < 1:
            raise InputError("diversity: n_galaxies must be non-empty with every value >= 2, seeds >= 1")
        if len(set(self.n_galaxies)) != len(self.n_galaxies):
            raise InputError(f"diversity.n_galaxies has repeated values: {list(self.n_galaxies)}")
        if self.seeds_per_point and (len(self.seeds_per_point) != len(self.n_galaxies)
                                     or min(self.seeds_per_point) < 1):
            raise InputError(f"diversity.seeds_per_point needs one value >= 1 per n_galaxies entry "
                             f"({len(self.n_galaxies)}), got {list(self.seeds_per_point)}")
        if self.max_spaxels_per_galaxy < 0 or self.set_a_test_spaxels < 0 or self.chunk_galaxies < 1:
            raise InputError("diversity: max_spaxels_per_galaxy and set_a_test_spaxels must be >= 0, "
                             "chunk_galaxies >= 1")
        if self.finetune_galaxies and self.pretrain_n() not in self.repeats():
            raise InputError(f"diversity.pretrain_galaxies = {self.pretrain_galaxies} is not one of n_galaxies "
                             f"{list(self.n_galaxies)}")
        if self.finetune_galaxies and (min(self.finetune_galaxies) < 2 or self.finetune_lr <= 0):
            raise InputError("diversity.finetune_galaxies must be >= 2 and finetune_lr > 0")


@dataclass
class DiversityTest:
    """The reproduction's survey as the Set B test set: spaxels, bands, label gradients and the floor."""

    spaxels: pd.DataFrame
    bands: list[str]
    filter_system: str | None
    targets: tuple[str, ...]
    gradient_kw: dict[str, Any]
    label_gradients: dict[str, pd.DataFrame]
    floor: dict[str, float] | None = None
    floor_gradient: dict[str, float] | None = None

    @classmethod
    def build(cls, table: Any, targets: Sequence[str], gradient_kw: Mapping[str, Any],
              floor_pred: pd.DataFrame | None = None) -> "DiversityTest":
        """From an SEDTable; `floor_pred`: the floor's out-of-fold predictions (columns <target>_floor)."""
        spx = table.spaxels.reset_index(drop=True)
        missing = [c for c in ("galaxy_id", "r_re", *targets) if c not in spx.columns]
        if missing:
            raise InputError(f"the diversity test table lacks column(s) {missing}")
        kw = dict(gradient_kw)
        r, gid = spx["r_re"].to_numpy(), spx["galaxy_id"].to_numpy()
        labels = {t: radial_gradients(r, spx[t].to_numpy(), gid, **kw) for t in targets}
        test = cls(spx, list(table.bands), table.filter_system, tuple(targets), kw, labels)
        if floor_pred is not None and all(f"{t}_floor" in floor_pred.columns for t in targets):
            f = spx[["galaxy_id", "spaxel_id", *targets]].merge(
                floor_pred[["galaxy_id", "spaxel_id", *[f"{t}_floor" for t in targets]]],
                on=["galaxy_id", "spaxel_id"], how="left", validate="1:1")
            test.floor = {t: robust_sigma((f[f"{t}_floor"] - f[t]).to_numpy()) for t in targets}
            test.floor_gradient = {t: test.gradient_sigma(f[f"{t}_floor"].to_numpy(), t) for t in targets}
        return test

    def gradient_sigma(self, pred: np.ndarray, target: str) -> float | None:
        """Robust sigma over galaxies of predicted minus label gradients (same subsamples)."""
        g = radial_gradients(self.spaxels["r_re"].to_numpy(), np.asarray(pred, dtype=np.float64),
                             self.spaxels["galaxy_id"].to_numpy(), **self.gradient_kw)
        c = compare_gradients(self.label_gradients[target], g)
        return c["robust_sigma"] if c["n"] > 0 else None


def _scores(y: np.ndarray, pred: pd.DataFrame, targets: Sequence[str]) -> dict[str, dict[str, float]]:
    return {t: {"robust_sigma": robust_sigma(pred[t].to_numpy() - y[:, j]), "bias": bias(pred[t].to_numpy() - y[:, j]),
                "n": int(y.shape[0])} for j, t in enumerate(targets)}


def _regressor(cv: SEDCVConfig, targets: Sequence[str], seed: int) -> SEDRegressor:
    tcfg = TrainConfig(**{**dataclasses.asdict(cv.train), "seed": seed})
    return SEDRegressor(SEDRegressorConfig(targets=tuple(targets), input_kind=cv.input_kind, ref_band=cv.ref_band,
                                           val_fraction=cv.val_fraction, val_scheme="B",
                                           architecture=cv.architecture, train=tcfg))


def run_point(pool: TrainingPool, n: int, test: DiversityTest, cv: SEDCVConfig, seed: int,
              model_dir: Path | None = None) -> dict[str, Any]:
    """Train on the first n galaxies of `pool`; score Set B (the test survey) and Set A (held-out spaxels)."""
    t0 = time.perf_counter()
    targets = test.targets
    rows = pool.galaxies(n)
    train = rows[rows[ROLE] == "train"].reset_index(drop=True)
    held = rows[rows[ROLE] == "test_a"].reset_index(drop=True)
    reg = _regressor(cv, targets, derived_seed(seed, "diversity-cnn", n, pool.repeat))
    reg.fit(train, bands=test.bands, filter_system=test.filter_system, quiet=True)
    pred_b = reg.predict(test.spaxels, bands=test.bands, filter_system=test.filter_system)
    y_b = test.spaxels[list(targets)].to_numpy(dtype=np.float64)
    point: dict[str, Any] = {"n_galaxies": int(n), "repeat": int(pool.repeat),
                             "n_train_spaxels": int(len(train)), "n_set_a_test_spaxels": int(len(held)),
                             "best_epoch": int(reg.result_.best_epoch) if reg.result_ is not None else None,
                             "set_b": _scores(y_b, pred_b, targets)}
    for t in targets:
        point["set_b"][t]["gradient_robust_sigma"] = test.gradient_sigma(pred_b[t].to_numpy(), t)
    if len(held):
        pred_a = reg.predict(held, bands=test.bands, filter_system=test.filter_system)
        point["set_a"] = _scores(held[list(targets)].to_numpy(dtype=np.float64), pred_a, targets)
    if model_dir is not None:
        reg.model_.save(model_dir, overwrite=True)
    point["seconds"] = time.perf_counter() - t0
    return point


def run_finetune_point(pretrained: SavedSEDModel, m: int, k: int, test: DiversityTest, cv: SEDCVConfig,
                       settings: DiversitySettings, seed: int) -> dict[str, Any]:
    """Fine-tune `pretrained` on m labelled survey galaxies (repeat k); score it, the network as is and one
    trained from scratch on the same m galaxies, on the survey's other galaxies."""
    t0 = time.perf_counter()
    targets = test.targets
    spx = test.spaxels
    ids = np.unique(spx["galaxy_id"].to_numpy())
    if m >= ids.size:
        raise InputError(f"diversity.finetune_galaxies {m} must be below the survey's {ids.size} galaxies")
    chosen = np.random.default_rng(derived_seed(seed, "diversity-ft-galaxies", m, k)).choice(ids, m, replace=False)
    small = spx["galaxy_id"].isin(chosen).to_numpy()
    frame, rest = spx[small].reset_index(drop=True), spx[~small].reset_index(drop=True)
    fcfg = FinetuneConfig(targets=tuple(targets), n_finetune_galaxies=m, val_fraction=cv.val_fraction,
                          finetune_lr=settings.finetune_lr, seed=derived_seed(seed, "diversity-ft", m, k),
                          architecture=cv.architecture, train=cv.train)
    tuned = finetune(pretrained, frame, fcfg, test.bands, test.filter_system)
    scratch = _regressor(cv, targets, derived_seed(seed, "diversity-ft-scratch", m, k))
    scratch.fit(frame, bands=test.bands, filter_system=test.filter_system, quiet=True)
    y = rest[list(targets)].to_numpy(dtype=np.float64)
    out: dict[str, Any] = {"finetune_galaxies": int(m), "repeat": int(k), "n_test_galaxies": int(ids.size - m)}
    for name, model in (("pretrained", pretrained), ("finetuned", tuned), ("scratch", scratch.model_)):
        out[name] = _scores(y, model.predict(rest, bands=test.bands, filter_system=test.filter_system), targets)
    out["seconds"] = time.perf_counter() - t0
    return out


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return None, None
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else None)


def summarise_points(points: Sequence[Mapping[str, Any]], targets: Sequence[str], floor: Mapping[str, float] | None,
                     floor_gradient: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """The metrics rows, one per N with at least one point: mean and std (ddof=1) over its repeats."""
    rows = []
    for n in sorted({int(p["n_galaxies"]) for p in points}):
        ps = [p for p in points if int(p["n_galaxies"]) == n]
        row: dict[str, Any] = {"n_galaxies": n, "seeds": len(ps),
                               "n_train_spaxels": float(np.mean([p["n_train_spaxels"] for p in ps])),
                               "set_b": {}, "set_a": {}}
        for t in targets:
            m, s = _mean_std([p["set_b"][t]["robust_sigma"] for p in ps])
            gm, gs = _mean_std([p["set_b"][t].get("gradient_robust_sigma") for p in ps])
            row["set_b"][t] = {"robust_sigma": m, "robust_sigma_std": s,
                               "gradient_robust_sigma": gm, "gradient_robust_sigma_std": gs}
            if all("set_a" in p for p in ps):
                am, asd = _mean_std([p["set_a"][t]["robust_sigma"] for p in ps])
                row["set_a"][t] = {"robust_sigma": am, "robust_sigma_std": asd}
        if not row["set_a"]:
            del row["set_a"]
        if floor:
            row["floor"] = {t: {"robust_sigma": floor.get(t),
                                "gradient_robust_sigma": (floor_gradient or {}).get(t)} for t in targets}
            ratio: dict[str, Any] = {}
            for s_name in ("set_b", "set_a"):
                if s_name in row:
                    ratio[s_name] = {t: (row[s_name][t]["robust_sigma"] / floor[t])
                                     if floor.get(t) and row[s_name][t]["robust_sigma"] is not None else None
                                     for t in targets}
            row["ratio_to_floor"] = ratio
        rows.append(row)
    return rows


def summarise_finetune(points: Sequence[Mapping[str, Any]], targets: Sequence[str],
                       pretrain_galaxies: int) -> list[dict[str, Any]]:
    """One row per fine-tuning size m: mean and std over repeats of each method's robust sigma."""
    rows = []
    for m in sorted({int(p["finetune_galaxies"]) for p in points}):
        ps = [p for p in points if int(p["finetune_galaxies"]) == m]
        row: dict[str, Any] = {"finetune_galaxies": m, "pretrain_galaxies": int(pretrain_galaxies), "seeds": len(ps),
                               "n_test_galaxies": int(ps[0]["n_test_galaxies"])}
        for meth in ("pretrained", "finetuned", "scratch"):
            row[meth] = {}
            for t in targets:
                mu, sd = _mean_std([p[meth][t]["robust_sigma"] for p in ps])
                row[meth][t] = {"robust_sigma": mu, "robust_sigma_std": sd}
        rows.append(row)
    return rows


def read_points(work_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The (N, repeat) points and fine-tuning points found in a (possibly unfinished) study folder."""
    work = Path(work_dir)
    pts = [read_json(p) for p in sorted(work.glob("point-n*-r*.json"))]
    fts = [read_json(p) for p in sorted(work.glob("finetune-m*-r*.json"))]
    return pts, fts


def run_diversity(test: DiversityTest, survey: IFUSurveyConfig, cv: SEDCVConfig, settings: DiversitySettings,
                  seed: int, work_dir: str | Path, progress: Callable[[str], None] | None = None,
                  only_repeats: Sequence[int] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run (or resume) every point in `work_dir`; returns (rows, fine-tuning rows) of the points found there.

    only_repeats: compute only these repeats (processes working on different repeats of the same study
    can share `work_dir`: each repeat has its own pool files and point files)."""
    settings.validate()
    say = progress or (lambda msg: None)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    targets = test.targets
    reps = settings.repeats()
    chunk = min(settings.chunk_galaxies, max(reps))
    pools = {k: TrainingPool(survey, work, seed, k, chunk, settings.max_spaxels_per_galaxy,
                             settings.set_a_test_spaxels) for k in range(max(reps.values()))}
    n_pre = settings.pretrain_n()
    model_dir = work / f"pretrained-n{n_pre}"

    def finetune_all() -> None:
        pretrained = None
        for m in settings.finetune_galaxies:
            for k in range(settings.seeds):
                path = work / f"finetune-m{m}-r{k}.json"
                if path.exists():
                    continue
                pretrained = pretrained or SavedSEDModel.load(model_dir)
                p = run_finetune_point(pretrained, m, k, test, cv, settings, seed)
                write_json_atomic(path, p)
                say(f"diversity: pre-trained on {n_pre} + fine-tuned on {m} galaxies, repeat {k + 1}: "
                    + ", ".join(f"{t} {p['finetuned'][t]['robust_sigma']:.3f} (as is "
                                f"{p['pretrained'][t]['robust_sigma']:.3f}, scratch {p['scratch'][t]['robust_sigma']:.3f})"
                                for t in targets))

    for n in sorted(reps):
        for k in range(reps[n]):
            if only_repeats is not None and k not in only_repeats:
                continue
            path = work / f"point-n{n}-r{k}.json"
            is_pre = n == n_pre and k == 0 and bool(settings.finetune_galaxies)
            if not path.exists() or (is_pre and not (model_dir / "meta.json").exists()):
                p = run_point(pools[k], n, test, cv, seed, model_dir if is_pre else None)
                write_json_atomic(path, p)
                say(f"diversity: {n} galaxies ({p['n_train_spaxels']} spaxels), repeat {k + 1}/{reps[n]}: Set B "
                    + ", ".join(f"{t} {p['set_b'][t]['robust_sigma']:.3f}" for t in targets)
                    + (", Set A " + ", ".join(f"{t} {p['set_a'][t]['robust_sigma']:.3f}" for t in targets)
                       if "set_a" in p else "") + f" [{p['seconds']:.0f} s]")
            if is_pre:
                finetune_all()
    pts, fts = read_points(work)
    want = {(n, k) for n, r in reps.items() for k in range(r)}
    pts = [p for p in pts if (int(p["n_galaxies"]), int(p["repeat"])) in want]
    return (summarise_points(pts, targets, test.floor, test.floor_gradient),
            summarise_finetune(fts, targets, n_pre))


def diversity_stage(survey: IFUSurveyConfig, cv: SEDCVConfig, settings: DiversitySettings, seed: int,
                    targets: Sequence[str], gradient_kw: Mapping[str, Any],
                    say: Callable[[str], None]) -> Callable[[Path, Mapping[str, Any]], None]:
    """The reproduction's `diversity` stage (resumable): needs `survey`, `cv_a` and `cv_b`; writes
    diversity.json (the metrics rows) and finetune.json."""
    def run(out: Path, ups: Mapping[str, Any]) -> None:
        cvb = read_json(ups["cv_b"].file("metrics.json"))
        cva = read_json(ups["cv_a"].file("metrics.json"))
        pred_b = read_table(ups["cv_b"].file("predictions.parquet"))
        test = DiversityTest.build(read_sed_table(ups["survey"].path / "table"), targets, gradient_kw, pred_b)
        if test.floor is None and "floor" in cvb:
            test.floor = {t: cvb["floor"][t]["robust_sigma"] for t in targets}
        rows, ft = run_diversity(test, survey, cv, settings, seed, out / "work", progress=lambda m: say(f"  {m}"))
        for r in rows:
            r["set_a_reference"] = {t: cva["cnn"][t]["robust_sigma"] for t in targets}
            r["set_b_reference"] = {t: cvb["cnn"][t]["robust_sigma"] for t in targets}
        write_json_atomic(out / "diversity.json", rows)
        write_json_atomic(out / "finetune.json", ft)
    return run
