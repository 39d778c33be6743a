"""The real-data chain through the CLI, on the SDSS DR18 spectra of NGC 3522 and NGC 3073 shipped in the ppxf wheel:

    photopop bands --covered-by SPEC --filters jpas-califa          -> the 36 bands the spectra give (no J0378)
    photopop simulate ifu --bands <those>                           -> a mock with exactly those bands
    photopop sed train --table MOCK --target both                   -> a CNN (recorded filter system 'jpas')
    photopop photometry SPEC... --filters jpas-califa --out CAT     -> a 37-band catalogue (J0378 NaN)
    photopop predict MODEL CAT --id-columns id --out DIR            -> predictions per galaxy
    photopop labels SPEC... --ssp bc03 --out LABELS                 -> the pPXF labels to compare with

A tiny mock and three epochs: the test checks that every link holds (the model's bands are a subset of the
catalogue's system, ids carried through, finite predictions near the mock's label ranges, fits ok), not the
accuracy; the measured numbers of a fully trained model are in docs/real-data.md. The files are located through
the installed ppxf package; the test skips with a reason when they are absent.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from photopop.cli.main import main
from photopop.photometry.catalogue import read_catalogue_meta

NAMES = ("NGC3522", "NGC3073")
TINY_CNN = """targets = ["log_age", "zh"]
[architecture]
conv_filters = [4, 8]
kernel_sizes = [3, 3]
pool_size = 2
dense_units = [16]
[train]
max_epochs = 3
batch_size = 64
device = "cpu"
num_threads = 1
"""


def _spectra() -> list[Path]:
    if importlib.util.find_spec("ppxf") is None:
        pytest.skip("ppxf is not installed: its wheel ships the real SDSS spectra this test uses")
    folder = importlib.resources.files("ppxf") / "spectra"
    files = [Path(str(folder / f"{n}_SDSS_DR18.fits")) for n in NAMES]
    if not all(f.is_file() for f in files):
        pytest.skip(f"{folder} lacks the NGC 3522 / NGC 3073 SDSS DR18 spectra (another ppxf version)")
    return files


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 0, f"photopop {' '.join(map(str, argv))}: exit {rc}\n{err}"
    return out


def test_real_spectra_through_the_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _spectra()
    # 1. the bands the spectra cover: the last stdout line is the list for --bands
    out = _run(["bands", "--covered-by", files[0], "--filters", "jpas-califa"], capsys)
    bands = out.strip().splitlines()[-1].split(",")
    assert len(bands) == 36 and "J0378" not in bands and {"J0390", "J0740"} <= set(bands)
    out3073 = _run(["bands", "--covered-by", files[1], "--filters", "jpas-califa"], capsys)
    assert out3073.strip().splitlines()[-1].split(",") == bands  # both spectra give the same bands

    # 2. a mock with exactly those bands, and a CNN trained on it
    mock, model = tmp_path / "mock", tmp_path / "cnn"
    _run(["simulate", "ifu", "--galaxies", "4", "--seed", "1", "--bands", ",".join(bands), "--out", mock], capsys)
    meta = json.loads((mock / "meta.json").read_text())
    assert meta["bands"] == bands
    (tmp_path / "cnn.toml").write_text(TINY_CNN)
    _run(["sed", "train", "--table", mock, "--target", "both", "--config", tmp_path / "cnn.toml", "--out", model,
          "--quiet"], capsys)

    # 3. the catalogue of the real spectra in the full 37-band system (J0378 uncovered: NaN, flagged)
    cat = tmp_path / "cat.parquet"
    _run(["photometry", *files, "--filters", "jpas-califa", "--out", cat], capsys)
    assert read_catalogue_meta(cat)["filter_system"] == "jpas-califa"
    c = pd.read_parquet(cat)
    ids = [f.stem for f in files]
    assert list(c["id"]) == ids
    assert (c["coverage_J0378"] == "none").all() and c["mag_J0378"].isna().all()
    assert np.isfinite(c[[f"mag_{b}" for b in bands]].to_numpy()).all()

    # 4. predict accepts it: the model's 36 bands (system 'jpas') are a subset of jpas-califa's 37
    pred_dir = tmp_path / "pred"
    _run(["predict", model, cat, "--id-columns", "id", "--out", pred_dir, "--quiet"], capsys)
    pred = pd.read_parquet(pred_dir).sort_values("row_index")
    assert list(pred["id"]) == ids
    spax = pd.read_parquet(mock / "spaxels.parquet")
    for t in ("log_age", "zh"):
        v = pred[t].to_numpy()
        assert np.isfinite(v).all(), (t, v)
        # inside the mock's label range, give or take one label standard deviation: a linear output head is not
        # bounded (mock seeds 1-4 gave at most 0.02 dex beyond the range); a lost band gives NaN (above), and
        # labels in the wrong column or unit (e.g. age in yr or Gyr) land far outside
        lo, hi, sd = spax[t].min(), spax[t].max(), spax[t].std()
        assert (v >= lo - sd).all() and (v <= hi + sd).all(), (t, v, lo, hi, sd)

    # 5. the pPXF labels of the same spectra, joinable on id
    labels = tmp_path / "labels.parquet"
    _run(["labels", *files, "--ssp", "bc03", "--out", labels], capsys)
    lab = pd.read_parquet(labels)
    assert list(lab["id"]) == ids and (lab["status"] == "ok").all()
    both = pred.merge(lab, on="id", suffixes=("_cnn", "_ppxf"))
    assert len(both) == 2
    assert np.isfinite(both[["log_age_ppxf", "zh_ppxf", "chi2_red", "snr"]].to_numpy()).all()
