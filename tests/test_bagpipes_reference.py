"""The bagpipes reference fit: per-spaxel checkpoints (a killed run resumes), scores against the labels.

bagpipes itself takes minutes per SED, so `fit_spaxel` is replaced by a stand-in that returns each
spaxel's label plus a known offset and counts its calls; the real fit runs in benchmarks/bench_bagpipes.py.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from photopop.experiments import bagpipes_reference as bp
from photopop.simulate.geometry import GalaxySampleConfig
from photopop.simulate.ifu import IFUSurveyConfig, simulate_ifu_survey

OFFSET = {"log_age": 0.1, "zh": -0.05}


@pytest.fixture(scope="module")
def table():
    return simulate_ifu_survey(IFUSurveyConfig(sample=GalaxySampleConfig(n_galaxies=3, spaxels_per_galaxy=12)))


@pytest.fixture
def fake_fit(monkeypatch, table):
    """Replace the bagpipes fit by the label + OFFSET of the spaxel whose photometry it is given."""
    mags = table.magnitudes("mag")
    calls: list[int] = []

    def fit(phot, filt, z, settings, light, index):
        assert len(filt) == len(table.bands) and phot.shape == (len(table.bands), 2)
        m = -2.5 * np.log10(phot[:, 0] / 3631e6)
        row = int(np.argmin(np.abs(mags - m).sum(axis=1)))
        calls.append(row)
        return {"seconds": 1.0 + index, **{t: float(table.spaxels[t].iloc[row] + OFFSET[t]) for t in OFFSET}}

    monkeypatch.setattr(bp, "fit_spaxel", fit)
    return calls


def test_scores_against_labels_and_resumes(table, fake_fit, tmp_path):
    settings = bp.BagpipesSettings(n_spaxels=6, seed=3)
    first = bp.run_bagpipes_reference(table, settings, work_dir=tmp_path / "work")
    assert len(fake_fit) == 6 and first["n_reused_checkpoints"] == 0
    assert sorted(fake_fit) == first["rows"]  # the stand-in was handed each chosen spaxel's photometry
    for t, off in OFFSET.items():  # a constant offset: zero scatter, bias = the offset
        assert first["bagpipes"][t]["robust_sigma"] == pytest.approx(0.0, abs=1e-9)
        assert first["bagpipes"][t]["bias"] == pytest.approx(off, abs=1e-9)
    assert first["seconds_per_sed"] == pytest.approx(np.mean(1.0 + np.arange(6)))
    assert len(list((tmp_path / "work").glob("spaxel_*.json"))) == 6

    fake_fit.clear()
    again = bp.run_bagpipes_reference(table, settings, work_dir=tmp_path / "work")
    assert fake_fit == [] and again["n_reused_checkpoints"] == 6
    assert again["bagpipes"] == first["bagpipes"] and again["seconds_per_sed"] == first["seconds_per_sed"]


def test_partial_and_foreign_checkpoints_are_refitted(table, fake_fit, tmp_path):
    settings = bp.BagpipesSettings(n_spaxels=5, seed=1)
    work = tmp_path / "work"
    done = bp.run_bagpipes_reference(table, settings, work_dir=work)
    files = sorted(work.glob("spaxel_*.json"))
    files[0].unlink()                      # killed before this spaxel was written
    files[1].write_text("{not json")       # a corrupt file is refitted, not trusted
    data = json.loads(files[2].read_text())
    data["key"] = "another-table"          # a checkpoint of other data is refitted
    files[2].write_text(json.dumps(data))
    fake_fit.clear()
    res = bp.run_bagpipes_reference(table, settings, work_dir=work)
    assert len(fake_fit) == 3 and res["n_reused_checkpoints"] == 2
    assert res["bagpipes"] == done["bagpipes"]

    fake_fit.clear()  # other sampler settings: nothing reused
    other = bp.run_bagpipes_reference(table, dataclasses.replace(settings, n_live=50), work_dir=work)
    assert len(fake_fit) == 5 and other["n_reused_checkpoints"] == 0


def test_off_is_an_error(table):
    with pytest.raises(bp.InputError, match="n_spaxels is 0"):
        bp.run_bagpipes_reference(table, bp.BagpipesSettings(n_spaxels=0))
