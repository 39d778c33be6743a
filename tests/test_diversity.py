"""The diversity study (Liew-Cain et al. 2021 Sects. 4.5, 5): pool, spaxel cap, rows, resume, report."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from photopop.errors import InputError
from photopop.io import read_json
from photopop.experiments import diversity as dv
from photopop.experiments import diversity_pool as dp
from photopop.experiments.sed_cv import SEDCVConfig
from photopop.models.sed_cnn import SEDCNNConfig
from photopop.report.diversity_figures import add_diversity_section, meeting_point, plot_diversity
from photopop.report.html import HTMLReport
from photopop.report.liew_cain_report import _save
from photopop.simulate.geometry import GalaxySampleConfig
from photopop.simulate.ifu import IFUSurveyConfig, NoiseConfig, simulate_ifu_survey
from photopop.training.fit import TrainConfig

TARGETS = ("log_age", "zh")
GKW = dict(r_max=1.0, min_inside=4, min_outside=1, n_boot=5, frac=0.75, seed=1)


def _survey(n: int = 6, seed: int = 5) -> IFUSurveyConfig:
    return IFUSurveyConfig(seed=seed, sample=GalaxySampleConfig(n_galaxies=n, early_fraction=0.34, spaxels_per_galaxy=20),
                           noise=NoiseConfig(snr_scale=float("inf"), label_noise_age=0.02, label_noise_zh=0.02))


def _cv() -> SEDCVConfig:
    return SEDCVConfig(joint_targets=True, architecture=SEDCNNConfig(conv_filters=(2, 4), dense_units=(16, 8)),
                       train=TrainConfig(max_epochs=2, patience=1, batch_size=64, num_threads=1))


def test_cap_spaxels_roles_are_disjoint_seeded_and_capped():
    df = pd.DataFrame({"galaxy_id": np.repeat([0, 1, 2], [12, 3, 1]), "spaxel_id": np.arange(16)})
    a = dp.cap_spaxels(df, 5, 2, seed=3)
    b = dp.cap_spaxels(df, 5, 2, seed=3)
    pd.testing.assert_frame_equal(a, b)
    counts = a.groupby(["galaxy_id", dp.ROLE]).size().to_dict()
    # 12 spaxels: 5 train + 2 held out; 3 spaxels: 1 train + 2 held out; 1 spaxel: train only
    assert counts == {(0, "train"): 5, (0, "test_a"): 2, (1, "train"): 1, (1, "test_a"): 2, (2, "train"): 1}
    assert a["spaxel_id"].is_unique
    assert not a.equals(dp.cap_spaxels(df, 5, 2, seed=4))  # another seed picks other spaxels
    assert len(dp.cap_spaxels(df, 0, 2, seed=3)) == 16  # 0: no cap


def test_chunk_seed_never_the_survey_seed():
    s = dp.chunk_seed(0, 1, 2, avoid=-1)
    assert dp.chunk_seed(0, 1, 2, avoid=s) != s


def test_pool_prefixes_are_nested_and_chunks_cached(tmp_path, monkeypatch):
    calls = []
    real = dp.simulate_ifu_survey
    monkeypatch.setattr(dp, "simulate_ifu_survey", lambda cfg: calls.append(cfg.seed) or real(cfg))
    pool = dp.TrainingPool(_survey(), tmp_path, seed=0, repeat=0, chunk=3, max_spaxels=4, set_a_test=2)
    small, big = pool.galaxies(2), pool.galaxies(5)
    assert small["galaxy_id"].nunique() == 2 and big["galaxy_id"].nunique() == 5
    assert set(small["galaxy_id"]) < set(big["galaxy_id"])  # nested learning curve
    pd.testing.assert_frame_equal(small, big[big["galaxy_id"].isin(small["galaxy_id"])].reset_index(drop=True))
    assert len(calls) == 2 and len(set(calls)) == 2 and 5 not in calls  # 2 chunks, own seeds, not the survey's
    assert (big[big[dp.ROLE] == "train"].groupby("galaxy_id").size() <= 4).all()
    again = dp.TrainingPool(_survey(), tmp_path, seed=0, repeat=0, chunk=3, max_spaxels=4, set_a_test=2)
    pd.testing.assert_frame_equal(again.galaxies(5), big)
    assert len(calls) == 2  # read back from the cached chunks, not resimulated
    other = dp.TrainingPool(_survey(), tmp_path, seed=0, repeat=1, chunk=3, max_spaxels=4, set_a_test=2)
    assert not np.allclose(other.galaxies(2)["log_age"].to_numpy()[:4], small["log_age"].to_numpy()[:4])


def test_summarise_points_known_answer():
    def pt(n, k, b, a, g):
        return {"n_galaxies": n, "repeat": k, "n_train_spaxels": 5 * n,
                "set_b": {"log_age": {"robust_sigma": b, "gradient_robust_sigma": g}},
                "set_a": {"log_age": {"robust_sigma": a}}}
    rows = dv.summarise_points([pt(10, 0, 0.3, 0.1, 0.2), pt(10, 1, 0.5, 0.2, None), pt(30, 0, 0.2, 0.15, 0.1)],
                               ["log_age"], {"log_age": 0.1}, {"log_age": 0.05})
    r10, r30 = rows
    assert r10["seeds"] == 2 and r10["set_b"]["log_age"]["robust_sigma"] == pytest.approx(0.4)
    assert r10["set_b"]["log_age"]["robust_sigma_std"] == pytest.approx(np.std([0.3, 0.5], ddof=1))
    assert r10["set_b"]["log_age"]["gradient_robust_sigma"] == pytest.approx(0.2)  # the None is left out
    assert r10["set_a"]["log_age"]["robust_sigma"] == pytest.approx(0.15)
    assert r10["ratio_to_floor"]["set_b"]["log_age"] == pytest.approx(4.0)
    assert r10["ratio_to_floor"]["set_a"]["log_age"] == pytest.approx(1.5)
    assert r10["floor"]["log_age"] == {"robust_sigma": 0.1, "gradient_robust_sigma": 0.05}
    assert r30["seeds"] == 1 and r30["set_b"]["log_age"]["robust_sigma_std"] is None
    # N=10: B - A = 0.25 > hypot(0.141, 0.071) = 0.158: apart; N=30 (one repeat): 0.05 > 0: apart
    assert meeting_point(rows, "log_age") is None
    rows[1]["set_b"]["log_age"]["robust_sigma"] = 0.15
    assert meeting_point(rows, "log_age") == 30


def test_settings_validation():
    with pytest.raises(InputError, match="seeds_per_point"):
        dv.DiversitySettings(n_galaxies=(10, 30), seeds_per_point=(3,)).validate()
    with pytest.raises(InputError, match="pretrain_galaxies"):
        dv.DiversitySettings(n_galaxies=(10, 30), pretrain_galaxies=20).validate()
    with pytest.raises(InputError, match="repeated"):
        dv.DiversitySettings(n_galaxies=(10, 10)).validate()
    s = dv.DiversitySettings(n_galaxies=(10, 30), seeds_per_point=(3, 1))
    s.validate()
    assert s.repeats() == {10: 3, 30: 1} and s.pretrain_n() == 30


def test_run_diversity_end_to_end_and_resume(tmp_path):
    test_table = simulate_ifu_survey(_survey(n=5, seed=5))
    floor_pred = test_table.spaxels[["galaxy_id", "spaxel_id", *TARGETS]].rename(
        columns={t: f"{t}_floor" for t in TARGETS})
    floor_pred["log_age_floor"] += 0.1 * np.sin(np.arange(len(floor_pred)))  # a known residual
    test = dv.DiversityTest.build(test_table, TARGETS, GKW, floor_pred)
    resid = 0.1 * np.sin(np.arange(len(floor_pred)))
    assert test.floor["log_age"] == pytest.approx(1.4826 * np.median(np.abs(resid - np.median(resid))))
    assert test.floor["zh"] == 0.0
    settings = dv.DiversitySettings(n_galaxies=(3, 4), seeds_per_point=(2, 1), max_spaxels_per_galaxy=6,
                                    set_a_test_spaxels=3, chunk_galaxies=4, finetune_galaxies=(2,), seeds=1)
    work = tmp_path / "work"
    rows, ft = dv.run_diversity(test, _survey(n=5, seed=5), _cv(), settings, seed=5, work_dir=work)
    assert [(r["n_galaxies"], r["seeds"]) for r in rows] == [(3, 2), (4, 1)]
    for r in rows:
        assert r["n_train_spaxels"] <= 6 * r["n_galaxies"]
        for t in TARGETS:
            assert r["set_b"][t]["robust_sigma"] > 0 and r["set_a"][t]["robust_sigma"] > 0
        assert r["ratio_to_floor"]["set_b"]["zh"] is None  # a zero floor gives no ratio
    assert ft[0]["finetune_galaxies"] == 2 and ft[0]["n_test_galaxies"] == 3 and ft[0]["pretrain_galaxies"] == 4
    assert set(ft[0]) >= {"pretrained", "finetuned", "scratch"}
    files = sorted(p.name for p in work.glob("*.json"))
    assert files == ["finetune-m2-r0.json", "point-n3-r0.json", "point-n3-r1.json", "point-n4-r0.json"]
    # a killed study resumes: a lost point is redone (same numbers), the others are read back untouched
    kept = {p: (work / p).stat().st_mtime_ns for p in files if p != "point-n3-r1.json"}
    (work / "point-n3-r1.json").unlink()
    rows2, ft2 = dv.run_diversity(test, _survey(n=5, seed=5), _cv(), settings, seed=5, work_dir=work)
    assert rows2 == rows and ft2 == ft
    assert all((work / p).stat().st_mtime_ns == t for p, t in kept.items())
    # a worker doing one repeat in another folder computes the same point (no dependence on the others)
    dv.run_diversity(test, _survey(n=5, seed=5), _cv(), dataclasses.replace(settings, finetune_galaxies=()), seed=5,
                     work_dir=tmp_path / "w1", only_repeats=[1])
    assert sorted(p.name for p in (tmp_path / "w1").glob("*.json")) == ["point-n3-r1.json"]
    one = read_json(tmp_path / "w1" / "point-n3-r1.json")
    ref = read_json(work / "point-n3-r1.json")
    assert {k: v for k, v in one.items() if k != "seconds"} == {k: v for k, v in ref.items() if k != "seconds"}
    # partial folder: rows from whatever points exist
    pts, fts = dv.read_points(work)
    part = dv.summarise_points([p for p in pts if p["n_galaxies"] == 3], TARGETS, test.floor)
    assert len(part) == 1 and part[0]["seeds"] == 2

    # the report section draws the figure and the tables
    metrics = {"diversity": [dict(r, set_a_reference={t: 0.1 for t in TARGETS},
                                  set_b_reference={t: 0.2 for t in TARGETS}) for r in rows],
               "diversity_finetune": ft, "diversity_settings": dataclasses.asdict(settings)}
    rep = HTMLReport("t")
    add_diversity_section(rep, metrics, tmp_path, TARGETS, _save)
    html = "".join(rep.sections)
    assert "Set B meets Set A" in html and "fine-tuning" in html and "data:image/png;base64," in html
    assert (tmp_path / "diversity.png").stat().st_size > 1000
    fig = plot_diversity(rows, TARGETS, ft)
    assert len(fig.axes) == 4
