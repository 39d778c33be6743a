"""The galaxy-level studies of Liew-Cain et al. (2021) that train extra networks, plus model mismatch.

* `run_morphology_study` -- Table 1: train on early types, late types or all, Set-B style (a share of the
  galaxies of each type held out), and predict the held-out galaxies of both types.
* `run_training_size_study` -- Fig. 13: train on 5-75 per cent of the data (Set A: that share of every
  galaxy's spaxels; Set B: that share of the galaxies) and score a fixed held-out quarter, repeated.
* `apply_cv_models` -- model mismatch: the Set A / Set B fold models of `run_sed_cv` predict the same
  spaxels of a mock built from another SSP library.

Each study writes one small file per trained model into `work_dir` and skips models whose file exists,
so an interrupted study resumes where it stopped (the stage runner gives every setting its own folder).
The CNNs use the settings of the cross-prediction (`SEDCVConfig`: architecture, training, input kind,
one network per target or a joint one), with seeds derived from the study seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..config import to_dict
from ..errors import InputError, MismatchError
from ..evaluation.metrics import nmad, scores
from ..io import read_table, write_json_atomic, write_table_atomic
from ..models.baselines import RandomDrawBaseline
from ..splits import carve_validation, make_folds, normalise_scheme, subsample_training
from ..training.fit import TrainConfig
from ..training.sed_regressor import SEDRegressor, SEDRegressorConfig
from .sed_cv import SEDCVConfig, derived_seed

Progress = Callable[[str], None]


@dataclass
class MorphologySettings:
    """Table 1 of Liew-Cain et al.: train on one morphology, apply to each.

    The galaxies of each type are split into n_folds groups (Set B style; the paper holds out 25 per cent,
    i.e. n_folds = 4, and trains on 33 early / 114 late galaxies). folds_used: how many of the folds serve
    in turn as the held-out set (1 = the paper's single split; n_folds = every galaxy predicted once by
    each training set). train_sets: any of 'early', 'late', 'all'.
    """

    enabled: bool = True
    n_folds: int = 4
    folds_used: int = 1
    train_sets: tuple[str, ...] = ("early", "late", "all")
    seed: int = 0

    def validate(self) -> None:
        if self.n_folds < 2 or not 1 <= self.folds_used <= self.n_folds:
            raise InputError(f"morphology: need n_folds >= 2 and 1 <= folds_used <= n_folds, got "
                             f"{self.n_folds}, {self.folds_used}")
        bad = [t for t in self.train_sets if t not in ("early", "late", "all")]
        if bad or not self.train_sets:
            raise InputError(f"morphology.train_sets must be among early, late, all; got {list(self.train_sets)}")


@dataclass
class TrainingSizeSettings:
    """Fig. 13 of Liew-Cain et al.: accuracy against training-set size.

    fractions: training-set sizes as fractions of the whole table (paper 5-75 per cent); each repeat
    draws a new held-out share `test_fraction` (scheme A: of every galaxy's spaxels; B: of the galaxies)
    and new training subsets. repeats: the paper uses 100 (an expensive default; presets say what they use).
    """

    enabled: bool = True
    fractions: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75)
    repeats: int = 25
    schemes: tuple[str, ...] = ("A", "B")
    targets: tuple[str, ...] = ("log_age",)
    test_fraction: float = 0.25
    seed: int = 0

    def validate(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise InputError(f"training_size.test_fraction must be in (0, 1), got {self.test_fraction}")
        if not self.fractions or any(not 0 < f <= 1 - self.test_fraction + 1e-12 for f in self.fractions):
            raise InputError(f"training_size.fractions must lie in (0, 1 - test_fraction = "
                             f"{1 - self.test_fraction:g}], got {list(self.fractions)}")
        if self.repeats < 1:
            raise InputError(f"training_size.repeats must be >= 1, got {self.repeats}")
        for s in self.schemes:
            if normalise_scheme(s) not in ("A", "B"):
                raise InputError(f"training_size.schemes must be A and/or B, got {s!r}")
        if not self.targets:
            raise InputError("training_size.targets is empty")


# -- one network -------------------------------------------------------------------------------------------
def fit_predict_cnn(train: pd.DataFrame, test: pd.DataFrame, bands: Sequence[str], filter_system: str | None,
                    cv: SEDCVConfig, targets: Sequence[str], seed: int, val_scheme: str = "B",
                    model_dir: Path | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Train CNN(s) on `train` (validation carved with `val_scheme` and cv.val_fraction) and predict `test`.

    One network per target unless cv.joint_targets. Returns (predictions with one column per target and
    the test index, info with the validation scheme actually used and the best epochs). Set-B carving needs
    two training galaxies; with fewer, the validation set is carved within galaxies (scheme A) instead.
    """
    gid = train["galaxy_id"].to_numpy()
    scheme = normalise_scheme(val_scheme)
    if scheme == "B" and np.unique(gid).size < 2:
        scheme = "A"
    rows = np.arange(len(train))
    _, val_idx = carve_validation(rows, gid, scheme=scheme, fraction=cv.val_fraction,
                                  seed=derived_seed(seed, "val"))
    groups = [tuple(targets)] if cv.joint_targets else [(t,) for t in targets]
    out: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {"val_scheme": scheme, "n_fit": int(len(train) - val_idx.size),
                            "n_val": int(val_idx.size), "best_epoch": {}}
    for tg in groups:
        tcfg = TrainConfig(**{**to_dict(cv.train), "seed": derived_seed(seed, "cnn", *tg)})
        reg = SEDRegressor(SEDRegressorConfig(targets=tg, input_kind=cv.input_kind, ref_band=cv.ref_band,
                                              val_fraction=cv.val_fraction, architecture=cv.architecture,
                                              train=tcfg))
        reg.fit(train.reset_index(drop=True), bands=list(bands), filter_system=filter_system, val_idx=val_idx,
                quiet=True)
        if model_dir is not None:
            reg.save(model_dir / ("cnn" if cv.joint_targets else f"cnn_{tg[0]}"))
        pred = reg.predict(test, bands=list(bands), filter_system=filter_system)
        for t in tg:
            out[t] = pred[t].to_numpy()
        info["best_epoch"]["+".join(tg)] = int(reg.result_.best_epoch) if reg.result_ is not None else None
    return pd.DataFrame(out, index=test.index), info


def _check_table(table: Any, targets: Sequence[str]) -> pd.DataFrame:
    df = table.spaxels.reset_index(drop=True)
    missing = [c for c in ("galaxy_id", "spaxel_id", *targets) if c not in df.columns]
    if missing:
        raise InputError(f"SED table lacks column(s) {missing}")
    return df


# -- Table 1 ----------------------------------------------------------------------------------------------
def morphology_folds(galaxies: pd.DataFrame, n_folds: int, seed: int) -> pd.Series:
    """Fold of every galaxy, split Set-B style within each type (so every fold holds both types).

    A type with fewer galaxies than folds is spread over as many folds as it has galaxies.
    """
    if "type" not in galaxies.columns:
        raise InputError("the galaxy table has no 'type' column (early/late) for the morphology study")
    fold = pd.Series(-1, index=galaxies["galaxy_id"].to_numpy(), dtype=np.int64)
    for typ in ("early", "late"):  # two types
        ids = np.sort(galaxies.loc[galaxies["type"].astype(str) == typ, "galaxy_id"].to_numpy())
        if ids.size < 2:
            raise InputError(f"morphology study needs at least 2 {typ}-type galaxies, found {ids.size}")
        k = min(n_folds, ids.size)
        fold[ids] = make_folds(ids, "B", k, seed=derived_seed(seed, "morphology", typ))
    return fold


def run_morphology_study(table: Any, cv: SEDCVConfig, settings: MorphologySettings, work_dir: str | Path,
                         progress: Progress | None = None) -> pd.DataFrame:
    """Cross-train by morphology; returns the long table for `evaluation.galaxy_studies.morphology_table`.

    Columns: galaxy_id, spaxel_id, fold, train_set, appl_type, target, truth, pred.
    """
    settings.validate()
    say = progress or (lambda msg: None)
    targets = list(cv.targets)
    df = _check_table(table, targets)
    if table.galaxies is None:
        raise InputError("the morphology study needs the galaxy table (galaxy types)")
    gal = table.galaxies
    fold_of = morphology_folds(gal, settings.n_folds, settings.seed)
    typ_of = pd.Series(gal["type"].astype(str).to_numpy(), index=gal["galaxy_id"].to_numpy())
    gid = df["galaxy_id"].to_numpy()
    if not np.isin(np.unique(gid), fold_of.index.to_numpy()).all():
        raise MismatchError("some galaxies of the spaxel table are missing from the galaxy table")
    spx_fold = fold_of.reindex(gid).to_numpy()
    spx_type = typ_of.reindex(gid).to_numpy()
    work = Path(work_dir)
    parts = []
    for k in range(settings.folds_used):
        test = df[spx_fold == k]
        if test.empty:
            continue
        for train_set in settings.train_sets:
            path = work / f"morph_fold{k}_{train_set}.parquet"
            if path.exists():
                parts.append(read_table(path))
                say(f"morphology fold {k} train={train_set}: reused")
                continue
            sel = spx_fold != k
            if train_set != "all":
                sel &= spx_type == train_set
            train = df[sel]
            say(f"morphology fold {k} train={train_set}: {train['galaxy_id'].nunique()} galaxies ...")
            pred, _ = fit_predict_cnn(train, test, table.bands, table.filter_system, cv, targets,
                                      seed=derived_seed(settings.seed, "morphology", k, train_set), val_scheme="B")
            long = pd.concat([pd.DataFrame({
                "galaxy_id": test["galaxy_id"].to_numpy(), "spaxel_id": test["spaxel_id"].to_numpy(),
                "fold": k, "train_set": train_set, "appl_type": typ_of.reindex(test["galaxy_id"]).to_numpy(),
                "target": t, "truth": test[t].to_numpy(np.float64), "pred": pred[t].to_numpy(np.float64)})
                for t in targets], ignore_index=True)
            write_table_atomic(long, path)
            parts.append(long)
    if not parts:
        raise InputError("morphology study: no held-out galaxies")
    return pd.concat(parts, ignore_index=True)


# -- Fig. 13 ----------------------------------------------------------------------------------------------
def run_training_size_study(table: Any, cv: SEDCVConfig, settings: TrainingSizeSettings, work_dir: str | Path,
                            progress: Progress | None = None) -> pd.DataFrame:
    """Train on growing shares of the data; returns one record per (scheme, fraction, repeat, target).

    Per repeat and scheme a held-out set (test_fraction of the rows: Set A within every galaxy, Set B
    whole galaxies) is drawn with `splits.make_folds`; every training fraction f of the whole table is a
    subsample (`splits.subsample_training`, share f / (1 - test_fraction) of the remaining rows or
    galaxies). Records: scheme, fraction, repeat, target, robust_sigma, bias, rmse, random_robust_sigma
    (labels drawn at random from the training labels), n_train, n_train_galaxies, n_test, val_scheme.
    """
    settings.validate()
    say = progress or (lambda msg: None)
    targets = list(settings.targets)
    df = _check_table(table, targets)
    gid = df["galaxy_id"].to_numpy()
    y = df[targets].to_numpy(np.float64)
    n_folds = int(round(1.0 / settings.test_fraction))
    if abs(n_folds * settings.test_fraction - 1.0) > 1e-9:
        raise InputError(f"training_size.test_fraction must be 1/k for an integer k (e.g. 0.25), "
                         f"got {settings.test_fraction}")
    work = Path(work_dir)
    records: list[dict[str, Any]] = []
    for rep in range(settings.repeats):
        for scheme in (normalise_scheme(s) for s in settings.schemes):
            folds = make_folds(gid, scheme, n_folds, seed=derived_seed(settings.seed, "size-split", scheme, rep))
            test_idx = np.flatnonzero(folds == 0)
            pool = np.flatnonzero(folds != 0)
            for frac in settings.fractions:
                path = work / f"size_{scheme}_f{frac:.4f}_r{rep:04d}.json"
                if path.exists():
                    records.extend(json.loads(path.read_text()))
                    continue
                seed = derived_seed(settings.seed, "size", scheme, f"{frac:.6f}", rep)
                share = min(frac / (1.0 - settings.test_fraction), 1.0)
                train_idx = subsample_training(pool, gid, share, scheme=scheme, seed=seed)
                say(f"training size {scheme} {frac:.0%} repeat {rep}: {train_idx.size} spaxels ...")
                pred, info = fit_predict_cnn(df.iloc[train_idx], df.iloc[test_idx], table.bands, table.filter_system,
                                             cv, targets, seed=seed, val_scheme=scheme)
                rnd = RandomDrawBaseline(seed=derived_seed(seed, "random")).fit(
                    np.zeros((train_idx.size, 1)), y[train_idx]).predict(np.zeros((test_idx.size, 1)))
                recs = []
                for j, t in enumerate(targets):
                    s = scores(y[test_idx, j], pred[t].to_numpy())
                    recs.append({"scheme": scheme, "fraction": float(frac), "repeat": rep, "target": t,
                                 "robust_sigma": s["robust_sigma"], "bias": s["bias"], "rmse": s["rmse"],
                                 "random_robust_sigma": nmad(rnd[:, j] - y[test_idx, j]),
                                 "n_train": int(train_idx.size),
                                 "n_train_galaxies": int(np.unique(gid[train_idx]).size),
                                 "n_test": int(test_idx.size), "val_scheme": info["val_scheme"]})
                write_json_atomic(path, recs)
                records.extend(recs)
    return pd.DataFrame.from_records(records)


# -- model mismatch ---------------------------------------------------------------------------------------
def apply_cv_models(cv_dir: str | Path, table: Any, targets: Sequence[str], joint: bool) -> pd.DataFrame:
    """Predict `table` with the fold models that `run_sed_cv` saved in `cv_dir`, each on its own test spaxels.

    The spaxels are matched to the cross-prediction on (galaxy_id, spaxel_id); a spaxel absent there (e.g.
    cut by the S/N limit in only one of two mocks) is dropped. Returns galaxy_id, spaxel_id, fold and per
    target <t>_true (this table's labels) and <t>_cnn.
    """
    cv_dir = Path(cv_dir)
    ref = read_table(cv_dir / "predictions.parquet", columns=["galaxy_id", "spaxel_id", "fold"])
    df = table.spaxels.reset_index(drop=True)
    missing = [c for c in ("galaxy_id", "spaxel_id", *targets) if c not in df.columns]
    if missing:
        raise InputError(f"SED table lacks column(s) {missing}")
    m = df.merge(ref, on=["galaxy_id", "spaxel_id"], how="inner", validate="1:1")
    if m.empty:
        raise MismatchError(f"no spaxel of the table matches the cross-prediction in {cv_dir} "
                            "(different galaxies or seed?)")
    out = pd.DataFrame({"galaxy_id": m["galaxy_id"].to_numpy(), "spaxel_id": m["spaxel_id"].to_numpy(),
                        "fold": m["fold"].to_numpy()})
    for t in targets:
        out[f"{t}_true"] = m[t].to_numpy(np.float64)
        out[f"{t}_cnn"] = np.nan
    for k in np.unique(m["fold"].to_numpy()):
        rows = np.flatnonzero(m["fold"].to_numpy() == k)
        fdir = cv_dir / "folds" / f"fold_{int(k)}"
        names = ["cnn"] if joint else [f"cnn_{t}" for t in targets]
        for name in names:
            reg = SEDRegressor.load(fdir / name)
            pred = reg.predict(m.iloc[rows], bands=table.bands, filter_system=table.filter_system)
            for t in pred.columns:
                if t in targets:
                    out.loc[rows, f"{t}_cnn"] = pred[t].to_numpy()
    return out


def library_bands(table: Any, folder: str | Path, pattern: str = "*.fits") -> list[str]:
    """The bands of `table` that an SSP library in a MILES-format folder covers at the table's redshifts.

    A band is covered when at most 1 per cent of its AB weight falls outside the library's rest-frame range
    shifted to the lowest and highest redshift of the galaxy table (the simulator's own rule). E.g. MIUSCAT
    (3465-9469 A) misses J-PAS uJPAS, whose response reaches down to 3230 A (not in jpas-califa).
    """
    from ..photometry.filters import load_filter_system
    from ..populations.ssp import SSPGrid

    if table.galaxies is None or "redshift" not in table.galaxies.columns:
        raise InputError("the galaxy table with redshifts is needed to match bands to an SSP library")
    if not table.filter_system:
        raise InputError("the SED table names no filter system (meta.json 'filter_system')")
    grid = SSPGrid.from_miles_folder(folder, pattern=pattern)
    w0, w1 = float(grid.wavelength_aa[0]), float(grid.wavelength_aa[-1])
    z = table.galaxies["redshift"].to_numpy(np.float64)
    system = load_filter_system(table.filter_system).select(list(table.bands))
    covered = system.inside((w0 * (1 + z.max()), w1 * (1 + z.min())))
    return [b for b, c in zip(table.bands, covered) if c]


@dataclass
class MismatchSettings:
    """Model mismatch beyond the paper: predict a mock built from another SSP library.

    ssp_folder: a folder of SSP spectra in the MILES website's format (e.g. MIUSCAT); empty = study
    skipped (noted in the report). ssp_pattern: file glob inside it. The other mock has the same seed, so
    the same galaxies, spaxels and star-formation histories; only the library differs. When the library
    does not cover every band of the survey (`library_bands`), both mocks use the covered bands and the
    Set A / Set B CNNs are retrained on them (stages cv_a_common, cv_b_common) with the same folds.
    """

    ssp_folder: str = ""
    ssp_pattern: str = "*.fits"
    label: str = ""
