"""Every CLI subcommand over a table of bad inputs: exit 2, a one-line message naming the problem, no
traceback, and nothing touched (the files under the test folders are byte-for-byte as before, so no
output is left that looks complete).

To add a case, append a `Case` to `CASES`: `argv` may use the placeholders below, `setup(tmp, mp)`
prepares the bad input (files under `tmp`, or a monkeypatched OS failure through `mp`), and `expect`
is a regular expression the error line must match.

    {tmp}    a fresh folder for this case           {table}  an SED-table folder (tiny, trainable)
    {model}  a model folder trained on {table}      {cat}    a Parquet catalogue of {table}'s rows
    {cfg}    a small SEDRegressorConfig TOML (1 epoch, tiny network)
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

from photopop.cli.main import main
from photopop.datasets.sed_table import SEDTable, write_sed_table

BANDS = [f"b{i}" for i in range(6)]
SMALL_CONFIG = """targets = ["log_age"]
[architecture]
conv_filters = [2, 4]
kernel_sizes = [3, 3]
pool_size = 2
dense_units = [8]
[train]
max_epochs = 1
batch_size = 64
device = "cpu"
num_threads = 1
"""


def _table(seed: int = 0) -> SEDTable:
    rng = np.random.default_rng(seed)
    n_gal, per = 6, 20
    gid = np.repeat(np.arange(n_gal) + 1, per)
    age = rng.uniform(8.8, 9.8, n_gal)[gid - 1] + rng.normal(0, 0.1, gid.size)
    zh = rng.uniform(-0.6, 0.1, n_gal)[gid - 1] + rng.normal(0, 0.1, gid.size)
    lam = np.linspace(0, 1, len(BANDS))
    mags = 19 + (age[:, None] - 9.3) * lam + zh[:, None] * 0.5 * lam ** 2
    df = pd.DataFrame({"galaxy_id": gid, "spaxel_id": np.tile(np.arange(per), n_gal)})
    for i, b in enumerate(BANDS):
        df[f"mag_{b}"] = mags[:, i]
        df[f"magerr_{b}"] = 0.01
    df["log_age"], df["zh"] = age, zh
    df["const"] = 1e17  # a constant column far from 0 (binning it used to fail with "Too many bins")
    return SEDTable(df, meta={"bands": BANDS, "filter_system": "toy", "kind": "user", "seed": seed})


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from photopop.training.sed_regressor import SEDRegressor, SEDRegressorConfig
    from photopop.config import load_config

    root = tmp_path_factory.mktemp("bad-inputs")
    table = _table()
    write_sed_table(table, root / "table")
    (root / "small.toml").write_text(SMALL_CONFIG)
    reg = SEDRegressor(load_config(SEDRegressorConfig, root / "small.toml")).fit(table, quiet=True)
    reg.save(root / "model")
    table.spaxels.to_parquet(root / "cat.parquet")
    table.spaxels.to_csv(root / "cat.csv", index=False)
    return {"root": root, "table": root / "table", "model": root / "model", "cat": root / "cat.parquet",
            "cfg": root / "small.toml"}


def _snapshot(*roots: Path) -> dict[str, str]:
    """Every file and folder under `roots` (hidden ones included) with a hash of its bytes."""
    out: dict[str, str] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for d in dirnames:
                out[os.path.join(dirpath, d)] = "dir"
            for f in filenames:
                p = os.path.join(dirpath, f)
                out[p] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def _os_failure(err: int, where: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """A setup that makes the existing folder `{tmp}/<where>` refuse new entries with `err`, as a
    read-only folder or a full disk does (tests run as root, where chmod does not stop writes, so the
    OS refusal is simulated on os.mkdir, os.open(O_CREAT), mkstemp and mkdtemp)."""

    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> None:
        target = str((tmp / where).resolve())
        (tmp / where).mkdir()
        real_mkstemp, real_mkdtemp, real_mkdir, real_open = tempfile.mkstemp, tempfile.mkdtemp, os.mkdir, os.open

        def under(path: Any) -> bool:
            return os.path.abspath(os.fspath(path)).startswith(target)

        def refuse(path: Any) -> None:
            raise OSError(err, os.strerror(err), os.fspath(path))

        def mkstemp(*args: Any, **kw: Any) -> Any:
            if under(kw.get("dir") or "."):
                refuse(kw["dir"])
            return real_mkstemp(*args, **kw)

        def mkdtemp(*args: Any, **kw: Any) -> Any:
            if under(kw.get("dir") or "."):
                refuse(kw["dir"])
            return real_mkdtemp(*args, **kw)

        def mkdir(path: Any, *args: Any, **kw: Any) -> None:
            if under(path):
                refuse(path)
            real_mkdir(path, *args, **kw)

        def open_(path: Any, flags: int, *args: Any, **kw: Any) -> int:
            if flags & os.O_CREAT and under(path):
                refuse(path)
            return real_open(path, flags, *args, **kw)

        mp.setattr(tempfile, "mkstemp", mkstemp)
        mp.setattr(tempfile, "mkdtemp", mkdtemp)
        mp.setattr(os, "mkdir", mkdir)
        mp.setattr(os, "open", open_)
    return setup


def _mkdir_with(name: str, files: dict[str, str]) -> Callable[[Path, pytest.MonkeyPatch], None]:
    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> None:
        (tmp / name).mkdir(parents=True)
        for f, text in files.items():
            (tmp / name / f).write_text(text)
    return setup


def _file(name: str, text: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> None:
        (tmp / name).write_text(text)
    return setup


def _copy_model(name: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """A photopop model folder (marker of kind 'sed-model', settings of the shared model) at {tmp}/name."""
    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> None:
        import shutil

        shutil.copytree(_SHARED["model"], tmp / name)
    return setup


def _full_disk_on_model_save(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    import photopop.models.folder as saved

    def no_space(obj: Any, path: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    mp.setattr(saved, "torch_save", no_space)


def _hold_lock(name: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """Another holder of {tmp}/name's lock (a second open file description, as another process has)."""
    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> None:
        from filelock import FileLock

        from photopop.outputs import lock_path_for

        lock_file = lock_path_for(tmp / name)
        lock = FileLock(lock_file, timeout=0)
        lock.acquire()
        lock_file.write_text('{"pid": 4242, "host": "elsewhere", "command": "photopop predict ...", '
                             '"started": "earlier"}\n')
        _HELD.append(lock)
    return setup


FLAM = "1e-17 erg/(s cm2 Angstrom)"
SPEC_UNITS = ("--wave-unit", "Angstrom", "--flux-unit", FLAM)


def _spectrum(name: str, lo: float = 3700.0, hi: float = 7500.0) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """A flat CSV table spectrum {tmp}/name over lo-hi A (units given on the command line)."""
    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> None:
        w = np.arange(lo, hi, 2.0)
        pd.DataFrame({"wavelength": w, "flux": np.ones_like(w), "ivar": np.full_like(w, 100.0)}).to_csv(
            tmp / name, index=False)
    return setup


def _cube(name: str, wcs: bool = True, error: bool = True) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """A tiny CALIFA-layout cube {tmp}/name (3x3 spaxels, 3750-7000 A), optionally without its celestial WCS
    or its ERROR extension."""
    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> None:
        from astropy.io import fits

        nw = 1626
        hdr = fits.Header()
        if wcs:
            hdr.update({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CUNIT1": "deg", "CUNIT2": "deg",
                        "CRVAL1": 150.0, "CRVAL2": 2.0, "CRPIX1": 2.0, "CRPIX2": 2.0,
                        "CDELT1": -1.0 / 3600.0, "CDELT2": 1.0 / 3600.0})
        hdr.update({"CTYPE3": "AWAV", "CUNIT3": "Angstrom", "CRVAL3": 3750.0, "CDELT3": 2.0, "CRPIX3": 1.0})
        cube = np.ones((nw, 3, 3), np.float32)
        hdus = [fits.PrimaryHDU(cube, header=hdr)]
        if error:
            hdus.append(fits.ImageHDU(np.full_like(cube, 0.05), name="ERROR"))
        hdus.append(fits.ImageHDU(np.zeros(cube.shape, np.uint8), name="BADPIX"))
        fits.HDUList(hdus).writeto(tmp / name)
    return setup


def _both(*setups: Callable[[Path, pytest.MonkeyPatch], None]) -> Callable[[Path, pytest.MonkeyPatch], None]:
    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> None:
        for f in setups:
            f(tmp, mp)
    return setup


_SHARED: dict[str, Path] = {}
_HELD: list[Any] = []


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    expect: str
    setup: Callable[[Path, pytest.MonkeyPatch], None] | None = None


CASES = [
    # -- output folders: never replace what photopop did not write, nor the command's own input
    Case("train-out-is-its-table", ("sed", "train", "--table", "{table}", "--out", "{table}", "--config", "{cfg}"),
         r"own input"),
    Case("train-out-inside-its-table", ("sed", "train", "--table", "{table}", "--out", "{table}/model",
                                        "--config", "{cfg}"), r"inside the input folder"),
    Case("train-out-is-a-file", ("sed", "train", "--table", "{table}", "--out", "{tmp}/flat.csv", "--config", "{cfg}"),
         r"flat\.csv: output folder path exists and is a file", _file("flat.csv", "a,b\n1,2\n")),
    Case("train-out-holds-user-files", ("sed", "train", "--table", "{table}", "--out", "{tmp}/p", "--config", "{cfg}"),
         r"did not write \(thesis\.tex\)", _mkdir_with("p", {"thesis.tex": "x"})),
    Case("train-out-is-another-kind", ("sed", "train", "--table", "{table}", "--out", "{tmp}/t", "--config", "{cfg}",
                                       "--max-epochs", "2"), r"another kind \('sed-table'",
         lambda tmp, mp: write_sed_table(_table(), tmp / "t")),
    Case("train-out-other-settings", ("sed", "train", "--table", "{table}", "--out", "{tmp}/m", "--config", "{cfg}",
                                      "--max-epochs", "2"), r"other settings; pass --overwrite", _copy_model("m")),
    Case("train-model-added-file", ("sed", "train", "--table", "{table}", "--out", "{tmp}/m", "--config", "{cfg}"),
         r"did not write \(notes\.txt\)",
         lambda tmp, mp: (_copy_model("m")(tmp, mp), (tmp / "m" / "notes.txt").write_text("mine"))),
    Case("train-out-empty", ("sed", "train", "--table", "{table}", "--out", "", "--config", "{cfg}"), r"--out is empty"),
    Case("simulate-out-holds-user-files", ("simulate", "ifu", "--galaxies", "2", "--out", "{tmp}/p"),
         r"did not write \(thesis\.tex\)", _mkdir_with("p", {"thesis.tex": "x"})),
    Case("simulate-out-is-a-file", ("simulate", "ifu", "--galaxies", "2", "--out", "{tmp}/x.csv"),
         r"exists and is a file", _file("x.csv", "1\n")),
    Case("sed-cv-out-is-its-table", ("sed", "cv", "--table", "{table}", "--out", "{table}", "--max-epochs", "1"),
         r"own input"),
    Case("sed-cv-out-contains-its-table", ("sed", "cv", "--table", "{table}", "--out", "{root}", "--max-epochs", "1"),
         r"contains the input"),
    Case("sed-tune-out-user-files", ("sed", "tune", "--table", "{table}", "--out", "{tmp}/p", "--n-trials", "1"),
         r"did not write", _mkdir_with("p", {"thesis.tex": "x"})),
    Case("uncertainty-out-user-files", ("sed", "uncertainty", "--table", "{table}", "--out", "{tmp}/p",
                                        "--members", "1"), r"did not write", _mkdir_with("p", {"a.txt": "x"})),
    Case("reproduce-out-user-files", ("reproduce", "liew-cain-2021", "--tiny", "--out", "{tmp}/p", "--quiet"),
         r"did not write", _mkdir_with("p", {"a.txt": "x"})),
    Case("demo-out-user-files", ("demo", "--tiny", "--out", "{tmp}/p", "--quiet"),
         r"did not write", _mkdir_with("p", {"a.txt": "x"})),
    Case("images-download-out-user-files", ("images", "download", "{cat}", "--out", "{tmp}/p"),
         r"did not write", _mkdir_with("p", {"a.txt": "x"})),
    Case("predict-out-is-the-model", ("predict", "{model}", "{cat}", "--out", "{model}", "--quiet"), r"own input"),
    Case("predict-out-holds-user-files", ("predict", "{model}", "{cat}", "--out", "{tmp}/p", "--quiet"),
         r"did not write", _mkdir_with("p", {"thesis.tex": "x"})),
    Case("sed-predict-out-is-its-table", ("sed", "predict", "--model", "{model}", "--table", "{tmp}/c.csv",
                                          "--out", "{tmp}/c.csv"), r"own input",
         lambda tmp, mp: (tmp / "c.csv").write_bytes(_SHARED["cat"].with_suffix(".csv").read_bytes())),
    Case("train-checkpoint-inside-out", ("sed", "train", "--table", "{table}", "--out", "{tmp}/m", "--config", "{cfg}",
                                         "--checkpoint", "{tmp}/m/ck.pt"), r"--checkpoint .* lies inside --out"),
    Case("gradients-out-is-its-table", ("gradients", "{cat}", "--value", "log_age", "--out", "{cat}"), r"own input"),
    # -- locking: a second writer of the same folder is refused, naming the first
    Case("predict-out-locked", ("predict", "{model}", "{cat}", "--out", "{tmp}/pred", "--quiet"),
         r"in use by process 4242 on elsewhere", _hold_lock("pred")),
    # -- sizes, counts, bins, thresholds, seeds, paths
    Case("predict-batch-size-negative", ("predict", "{model}", "{cat}", "--out", "{tmp}/pred", "--batch-size", "-1"),
         r"--batch-size must be a positive integer, got -1"),
    Case("predict-batch-size-zero", ("predict", "{model}", "{cat}", "--out", "{tmp}/pred", "--batch-size", "0"),
         r"--batch-size must be a positive integer, got 0"),
    Case("predict-chunk-rows-zero", ("predict", "{model}", "{cat}", "--out", "{tmp}/pred", "--chunk-rows", "0"),
         r"--chunk-rows must be a positive integer"),
    Case("sed-predict-batch-size-negative", ("sed", "predict", "--model", "{model}", "--table", "{table}",
                                             "--out", "{tmp}/p.parquet", "--batch-size", "-1"),
         r"--batch-size must be a positive integer, got -1"),
    Case("evaluate-huge-bins", ("evaluate", "{cat}", "--truth", "log_age", "--pred", "zh", "--bins", "100000000"),
         r"--bins must be at most 10000"),
    Case("evaluate-outlier-k-nan", ("evaluate", "{cat}", "--truth", "log_age", "--pred", "zh", "--outlier-k", "nan"),
         r"--outlier-k must be a finite number"),
    Case("evaluate-fd-bins-explode", ("evaluate", "{tmp}/tail.csv", "--truth", "t", "--pred", "p", "--bins-by", "r"),
         r"Freedman-Diaconis rule gives [\d,]+ bins",
         lambda tmp, mp: pd.DataFrame({"t": np.arange(100.0), "p": np.arange(100.0),
                                       "r": np.r_[np.arange(99) * 1e-3, 1e9]}).to_csv(tmp / "tail.csv", index=False)),
    Case("simulate-seed-negative", ("simulate", "ifu", "--galaxies", "2", "--seed", "-1", "--out", "{tmp}/s"),
         r"--seed must be an integer in \[0, "),
    Case("simulate-galaxies-zero", ("simulate", "ifu", "--galaxies", "0", "--out", "{tmp}/s"),
         r"--galaxies must be a positive integer"),
    Case("simulate-config-seed-string", ("simulate", "ifu", "--config", "{tmp}/bad.toml", "--out", "{tmp}/s"),
         r"IFUSurveyConfig\.seed must be an integer.*'x'", _file("bad.toml", 'seed = "x"\n')),
    Case("train-config-wrong-type", ("sed", "train", "--table", "{table}", "--out", "{tmp}/m", "--config",
                                     "{tmp}/bad.toml"), r"setting 'max_epochs' of TrainConfig must be an integer",
         _file("bad.toml", '[train]\nmax_epochs = "ten"\n')),
    Case("simulate-out-empty", ("simulate", "ifu", "--out", ""), r"--out is empty"),
    Case("train-max-epochs-zero", ("sed", "train", "--table", "{table}", "--out", "{tmp}/m", "--max-epochs", "0"),
         r"--max-epochs must be a positive integer"),
    Case("gradients-n-boot-zero", ("gradients", "{cat}", "--value", "log_age", "--n-boot", "0", "--out", "{tmp}/g.csv"),
         r"--n-boot must be a positive integer"),
    Case("gradients-frac-nan", ("gradients", "{cat}", "--value", "log_age", "--frac", "nan", "--out", "{tmp}/g.csv"),
         r"--frac must be a finite number"),
    # -- OS refusals: one line naming the path and the reason
    Case("train-out-read-only", ("sed", "train", "--table", "{table}", "--out", "{tmp}/ro/m", "--config", "{cfg}"),
         r"ro/m: cannot write: Permission denied", _os_failure(errno.EACCES, "ro")),
    Case("train-checkpoint-read-only", ("sed", "train", "--table", "{table}", "--out", "{tmp}/m", "--config", "{cfg}",
                                        "--checkpoint", "{tmp}/ro/ckpt.pt"), r"ckpt\.pt: cannot write: Permission denied",
         _os_failure(errno.EACCES, "ro")),
    Case("train-disk-full", ("sed", "train", "--table", "{table}", "--out", "{tmp}/m", "--config", "{cfg}"),
         r"No space left on device", _full_disk_on_model_save),
    Case("simulate-out-read-only", ("simulate", "ifu", "--galaxies", "2", "--out", "{tmp}/ro/s"),
         r"ro/s: cannot write: Permission denied", _os_failure(errno.EACCES, "ro")),
    Case("predict-out-read-only", ("predict", "{model}", "{cat}", "--out", "{tmp}/ro/pred", "--quiet"),
         r"Permission denied", _os_failure(errno.EACCES, "ro")),
    Case("predict-out-disk-full", ("predict", "{model}", "{cat}", "--out", "{tmp}/ro/pred", "--quiet"),
         r"No space left on device", _os_failure(errno.ENOSPC, "ro")),
    # -- real data: cubes, spectra, labels, catalogues
    Case("ifu-prepare-cube-without-wcs", ("ifu", "prepare", "{tmp}/g.V500.rscube.fits", "--re", "2", "--redshift",
                                          "0.015", "--out", "{tmp}/bins"), r"g\.V500\.rscube\.fits.*celestial WCS",
         _cube("g.V500.rscube.fits", wcs=False)),
    Case("ifu-prepare-cube-without-errors", ("ifu", "prepare", "{tmp}/g.V500.rscube.fits", "--re", "2",
                                             "--redshift", "0.015", "--out", "{tmp}/bins"),
         r"g\.V500\.rscube\.fits.*no error extension", _cube("g.V500.rscube.fits", error=False)),
    Case("ifu-prepare-out-holds-user-files", ("ifu", "prepare", "{tmp}/g.V500.rscube.fits", "--re", "2",
                                              "--redshift", "0.015", "--out", "{tmp}/p"), r"did not write \(a\.txt\)",
         _both(_cube("g.V500.rscube.fits"), _mkdir_with("p", {"a.txt": "x"}))),
    Case("ifu-table-not-a-bins-folder", ("ifu", "table", "{table}", "--labels", "{cat}", "--filters", "jpas",
                                         "--out", "{tmp}/sed"), r"not an `ifu prepare` folder"),
    Case("ifu-table-out-holds-user-files", ("ifu", "table", "{table}", "--labels", "{cat}", "--filters", "jpas",
                                            "--out", "{tmp}/p"), r"did not write \(a\.txt\)",
         _mkdir_with("p", {"a.txt": "x"})),
    Case("ifu-maps-out-holds-user-files", ("ifu", "maps", "{table}", "--values", "{cat}", "--out", "{tmp}/p"),
         r"did not write \(a\.txt\)", _mkdir_with("p", {"a.txt": "x"})),
    Case("labels-unknown-ssp", ("labels", "{tmp}/s.csv", *SPEC_UNITS, "--fwhm", "2.5", "--redshift", "0",
                                "--ssp", "nosuchlib", "--out", "{tmp}/l.parquet"), r"--ssp nosuchlib: not 'bc03'",
         _spectrum("s.csv")),
    Case("labels-out-over-user-file", ("labels", "{tmp}/s.csv", *SPEC_UNITS, "--fwhm", "2.5", "--redshift", "0",
                                       "--out", "{tmp}/mine.parquet"), r"mine\.parquet: exists and is not a labels table",
         _both(_spectrum("s.csv"), lambda tmp, mp: pd.DataFrame({"a": [1]}).to_parquet(tmp / "mine.parquet"))),
    Case("labels-out-is-its-input", ("labels", "{tmp}/s.csv", *SPEC_UNITS, "--fwhm", "2.5", "--redshift", "0",
                                     "--out", "{tmp}/s.csv"), r"own input", _spectrum("s.csv")),
    Case("bands-spectrum-covers-none", ("bands", "--covered-by", "{tmp}/s.csv", *SPEC_UNITS, "--filters", "sdss"),
         r"s\.csv: covers none of the 5 sdss bands", _spectrum("s.csv", 5000.0, 6000.0)),
    Case("photometry-spectrum-covers-none", ("photometry", "{tmp}/s.csv", *SPEC_UNITS, "--filters", "sdss", "--out",
                                             "{tmp}/c.parquet"), r"s\.csv: cover\(s\) none of the 5 sdss bands",
         _spectrum("s.csv", 5000.0, 6000.0)),
    Case("photometry-out-over-user-file", ("photometry", "{tmp}/s.csv", *SPEC_UNITS, "--filters", "jpas-califa",
                                           "--out", "{tmp}/mine.parquet"),
         r"mine\.parquet: exists and is not a photometry catalogue",
         _both(_spectrum("s.csv"), lambda tmp, mp: pd.DataFrame({"a": [1]}).to_parquet(tmp / "mine.parquet"))),
    Case("photometry-out-over-user-csv-sidecar", ("photometry", "{tmp}/s.csv", *SPEC_UNITS, "--filters",
                                                  "jpas-califa", "--out", "{tmp}/c.csv"),
         r"c\.csv\.meta\.json: exists and is not photopop's", _both(_spectrum("s.csv"), _file("c.csv.meta.json", "{}"))),
]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """main(argv) in this process; argparse's own errors (SystemExit) count as their exit status."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_2_with_one_line_and_touches_nothing(case: Case, shared: dict[str, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _SHARED.update(shared)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        if case.setup is not None:
            case.setup(tmp_path, monkeypatch)
        before = _snapshot(shared["root"], tmp_path)
        subs = {"tmp": str(tmp_path), **{k: str(v) for k, v in shared.items()}}
        argv = [a.format(**subs) for a in case.argv]
        rc, out, err = run_cli(argv, capsys)
        after = _snapshot(shared["root"], tmp_path)
    finally:
        monkeypatch.undo()
        while _HELD:
            _HELD.pop().release()
    assert rc == 2, f"exit {rc}; stderr: {err}; stdout: {out}"
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert re.search(case.expect, errors[0]), errors[0]
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert not changed, f"files changed: {changed[:6]}"


def test_constant_column_bins_into_one_bin(shared: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """`evaluate --bins-by` a constant column gives the whole-table statistics in one bin."""
    rc, out, err = run_cli(["evaluate", str(shared["cat"]), "--truth", "log_age", "--pred", "zh",
                            "--bins-by", "const", "--json"], capsys)
    assert rc == 0, err
    import json

    res = json.loads(out)
    assert len(res["bins"]) == 1 and res["bins"][0]["n"] == res["n"] == 120
    assert res["bins"][0]["lo"] < 1e17 < res["bins"][0]["hi"]
