"""`photopop reproduce liew-cain-2021`: config presets, the end-to-end tiny run, caching and the report."""

from __future__ import annotations

import json
import re

import pytest

from photopop.cli.main import main
from photopop.config import load_config
from photopop.errors import InputError, OutputError
from photopop.experiments import liew_cain_2021 as lc

#: a test-sized run on top of the 'tiny' preset (a couple of CNN epochs; checks the pipeline, not the science)
SMALL = """
preset = "tiny"
seed = 3
[survey.sample]
n_galaxies = 12
early_fraction = 0.34
spaxels_per_galaxy = 30
[training_size]
fractions = [0.75]
[gradients]
min_inside = 5
n_boot = 10
"""


def test_presets_and_overrides(tmp_path):
    full = lc.preset_config("full")
    assert full.training_size.repeats >= 1 and full.cv.train.patience == 25 and full.cv.train.max_epochs == 5000
    assert full.gradients.min_inside == 25 and full.gradients.n_boot == 100 and full.gradients.frac == 0.75
    assert full.properties.per_bin == 16
    assert (full.mass_gradients.per_bin_early, full.mass_gradients.per_bin_late) == (6, 10)
    quick = lc.preset_config("quick")
    assert quick.survey.sample.n_galaxies < full.survey.sample.n_galaxies
    path = tmp_path / "c.toml"
    path.write_text(SMALL)
    cfg = lc.load_liew_cain_config(path, overrides={"gradients": {"n_boot": 7}})
    assert cfg.preset == "tiny" and cfg.survey.sample.n_galaxies == 12 and cfg.gradients.n_boot == 7
    assert cfg.cv.train.max_epochs == lc.preset_config("tiny").cv.train.max_epochs  # from the preset
    # the seed drives every part
    assert cfg.survey.seed == cfg.cv.seed == cfg.morphology.seed == cfg.training_size.seed == 3
    # --quick on the command line wins over the file's preset
    assert lc.load_liew_cain_config(path, preset="quick").cv.train.max_epochs == 80
    bad = tmp_path / "bad.toml"
    bad.write_text("[gradients]\nnot_a_setting = 1\n")
    with pytest.raises(InputError, match="not_a_setting"):
        lc.load_liew_cain_config(bad)
    with pytest.raises(InputError, match="preset"):
        lc.preset_config("huge")
    with pytest.raises(InputError, match="top-level seed"):
        lc.load_liew_cain_config(overrides={"seed": 1, "survey": {"seed": 2}})
    with pytest.raises(InputError, match="training_size.fractions"):
        lc.load_liew_cain_config(overrides={"training_size": {"fractions": [0.9]}})


def test_alt_library_config_changes_only_the_library():
    from photopop.config import to_dict
    from photopop.simulate.ifu import IFUSurveyConfig

    base = IFUSurveyConfig(seed=5)
    alt = lc.alt_library_survey_config(base, "/some/folder", "Iun*.fits")
    assert (alt.ssp_folder, alt.ssp_pattern, alt.ssp_file) == ("/some/folder", "Iun*.fits", "")
    a, b = to_dict(base), to_dict(alt)
    assert {k for k in a if a[k] != b.get(k)} == {"ssp_folder", "ssp_pattern"} and base.ssp_folder == ""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lc") / "run"
    cfg_path = out.parent / "small.toml"
    cfg_path.write_text(SMALL)
    rc = main(["reproduce", "liew-cain-2021", "--config", str(cfg_path), "--out", str(out), "--quiet"])
    assert rc == 0
    return out, cfg_path


def test_tiny_run_writes_metrics_report_and_config(tiny_run):
    out, _ = tiny_run
    m = json.loads((out / "metrics.json").read_text())
    for s in ("set_a", "set_b"):
        for t in ("log_age", "zh"):
            e = m[s][t]
            assert set(e) >= {"robust_sigma", "gradient_robust_sigma", "pcc_residuals"}
            assert 0 < e["robust_sigma"] < 2
            assert e["gradient_robust_sigma"] is None or e["gradient_robust_sigma"] >= 0
            assert -1 <= e["pcc_residuals"] <= 1
            assert m["paper"][s][t]["robust_sigma"] in (0.03, 0.14, 0.16)
        assert m["set_a"]["log_age"]["pcc_residuals"] == m["set_a"]["zh"]["pcc_residuals"]
    assert m["paper"]["morphology"]["log_age"]["early"]["early"] == 0.10
    assert m["paper"]["set_b"]["zh"]["gradient_robust_sigma"] == 0.16
    # baselines beside the CNN; the random draw must be worse than the CNN trained with labels
    assert set(m["baselines"]["set_b"]) >= {"constant", "random", "random_forest"}
    assert m["baselines"]["set_a"]["random"]["log_age"]["robust_sigma"] > 0
    # studies
    assert set(m["morphology"]["log_age"]) == {"early", "late", "all"}
    assert set(m["morphology"]["log_age"]["early"]) == {"early", "late", "all"}
    rows = m["training_size"]["rows"]
    assert {(r["scheme"], r["fraction"]) for r in rows} == {("A", 0.75), ("B", 0.75)}
    assert m["training_size"]["random_line"]["log_age"] > 0
    assert set(m["property_dependence"]["set_a"]["log_age"]) == {"log_ssfr", "inclination_deg", "a_v", "bulge_fraction"}
    assert "label" in m["mass_gradients"] and "set_b_cnn" in m["mass_gradients"]
    assert "skipped" in m["model_mismatch"]
    # the diversity study (Set B robust sigma against training galaxies): the contract's shape
    assert [r["n_galaxies"] for r in m["diversity"]] == [4, 8]
    for r in m["diversity"]:
        assert r["seeds"] == 1 and set(r["set_b"]) == {"log_age", "zh"}
        assert 0 < r["set_b"]["zh"]["robust_sigma"] < 2 and r["set_b"]["zh"]["robust_sigma_std"] is None
        assert r["set_a_reference"]["log_age"] == m["set_a"]["log_age"]["robust_sigma"]
    assert m["survey"]["light_weighting"] == "attenuated"
    # issue 14 §3: the inputs each method saw, and the CNN-against-forest verdict taken from the cv metrics
    assert m["inputs"] == {"cnn": "colour", "random_forest": "colour"}
    for s in ("set_a", "set_b"):
        for t in ("log_age", "zh"):
            c = m["cnn_vs_forest"][s][t]
            assert c["cnn"] == m[s][t]["robust_sigma"]
            assert c["random_forest"] == m["baselines"][s]["random_forest"][t]["robust_sigma"]
            assert c["cnn_ahead"] == (c["cnn"] < c["random_forest"]) and c["folds"] == 4
            assert 0 <= c["folds_cnn_ahead"] <= 4
    g = m["gradients"]["log_age"]
    assert g["n_selected"] >= 1 and "label_vs_true" in g and "set_a_cnn" in g
    # the report: one self-contained file with embedded figures and the paper's numbers
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 8
    assert not re.search(r'src="(?!data:)', html) and "<link" not in html
    assert "Table 1" in html and "0.140" in html
    c = m["cnn_vs_forest"]["set_b"]["zh"]
    assert "CNN against random forest on Set B (CNN on colour, forest on colour)" in html
    assert f"{c['cnn']:.3f} vs {c['random_forest']:.3f}" in html
    assert (out / "figures" / "gradient_differences_set_b.png").stat().st_size > 1000
    # the config is saved and reads back into the same dataclass
    cfg = load_config(lc.LiewCain2021Config, out / "config.toml")
    assert cfg.survey.sample.n_galaxies == 12 and cfg.seed == 3


def test_rerun_is_cached_and_a_changed_setting_reruns_only_its_stages(tiny_run, capsys):
    out, cfg_path = tiny_run
    before = json.loads((out / "metrics.json").read_text())["stages"]
    log: list[str] = []
    cfg = lc.load_liew_cain_config(cfg_path)
    res = lc.run_liew_cain_2021(cfg, out, progress=log.append, report=False)
    assert all(r.cached for r in res.stages.values()), log
    assert res.metrics["set_a"] == json.loads((out / "metrics.json").read_text())["set_a"]
    # a gradient setting changes gradients and what depends on them (mass_gradients), nothing else
    cfg2 = lc.load_liew_cain_config(cfg_path, overrides={"gradients": {"n_boot": 12}})
    with pytest.raises(OutputError, match="other settings; pass --overwrite"):  # the folder holds another config's run
        lc.run_liew_cain_2021(cfg2, out, report=False)
    res2 = lc.run_liew_cain_2021(cfg2, out, report=False, overwrite=True)  # the stage cache stays valid
    ran = {n for n, r in res2.stages.items() if not r.cached}
    assert ran == {"gradients", "mass_gradients", "diversity"}  # diversity reports gradient sigma with these settings
    after = res2.metrics["stages"]
    assert after["survey"] == before["survey"] and after["cv_a"] == before["cv_a"]
    assert after["gradients"] != before["gradients"]


def test_cli_reports_bad_config(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[survey]\nunknown_key = 3\n")
    rc = main(["reproduce", "liew-cain-2021", "--config", str(bad), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "unknown_key" in capsys.readouterr().err
    rc = main(["reproduce", "liew-cain-2021", "--tiny", "--mismatch-ssp", str(tmp_path / "nope"),
               "--out", str(tmp_path / "o2"), "--quiet", "--no-report"])
    assert rc == 2  # checked before any stage runs
    assert not (tmp_path / "o2" / "stages").exists() or not any((tmp_path / "o2" / "stages").iterdir())
    assert "nope" in capsys.readouterr().err


def test_model_mismatch_with_miuscat(tiny_run, shared_data_dir):
    folder = shared_data_dir / "ssp" / "miuscat"
    if not folder.is_dir():
        pytest.skip(f"no MIUSCAT folder at {folder}")
    out, cfg_path = tiny_run
    cfg = lc.load_liew_cain_config(cfg_path, overrides={"mismatch": {"ssp_folder": str(folder)}})
    res = lc.run_liew_cain_2021(cfg, out, report=False, overwrite=True)  # other settings; stage cache kept
    ran = {n for n, r in res.stages.items() if not r.cached}
    assert {"survey_alt", "mismatch"} <= ran and not ran & {"survey", "cv_a", "cv_b", "gradients"}
    mm = res.metrics["model_mismatch"]
    assert mm["library"] == "miuscat" and "skipped" not in mm and mm["ssp_grid"] == "miuscat"
    # MIUSCAT (3465-9469 A) covers all 37 jpas-califa bands at z = 0.005-0.03: nothing dropped or retrained
    assert mm["bands_dropped"] == [] and not mm["retrained_on_common_bands"]
    assert ran == {"survey_alt", "mismatch"}
    for s in ("set_a", "set_b"):
        for t in ("log_age", "zh"):
            e = mm[s][t]
            assert e["n"] > 0 and e["robust_sigma_alt"] > 0 and e["added_scatter"] >= 0
            assert e["robust_sigma_ref"] == pytest.approx(res.metrics[s][t]["robust_sigma"], abs=0.1)


def test_saved_fold_models_reproduce_the_cross_prediction(tiny_run):
    """The mismatch study re-applies the fold models: on the same table they give the cv predictions again."""
    import numpy as np
    import pandas as pd

    from photopop.datasets.sed_table import read_sed_table
    from photopop.experiments.studies import apply_cv_models

    out, _ = tiny_run
    stages = json.loads((out / "metrics.json").read_text())["stages"]
    table = read_sed_table(out / "stages" / f"survey-{stages['survey']}" / "table")
    cv_dir = out / "stages" / f"cv_b-{stages['cv_b']}"
    again = apply_cv_models(cv_dir, table, ("log_age", "zh"), joint=True)
    ref = pd.read_parquet(cv_dir / "predictions.parquet")
    m = ref.merge(again, on=["galaxy_id", "spaxel_id"], suffixes=("", "_again"))
    assert len(m) == len(ref) == len(table.spaxels)
    for t in ("log_age", "zh"):
        np.testing.assert_allclose(m[f"{t}_cnn_again"], m[f"{t}_cnn"], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(m[f"{t}_true_again"], m[f"{t}_true"])
    # the models see colours (the default inputs): a brighter copy of the mock (all bands 0.3 mag brighter) is
    # predicted the same, a change of SED shape (one band brighter) is not
    shifted = table.spaxels.copy()
    for b in table.bands:
        shifted[f"mag_{b}"] -= 0.3
    alt = type(table)(shifted, table.galaxies, table.meta)
    moved = apply_cv_models(cv_dir, alt, ("log_age", "zh"), joint=True)
    np.testing.assert_allclose(moved["log_age_cnn"], again["log_age_cnn"], rtol=0, atol=1e-5)
    reshaped = table.spaxels.copy()
    reshaped[f"mag_{table.bands[0]}"] -= 0.3
    moved = apply_cv_models(cv_dir, type(table)(reshaped, table.galaxies, table.meta), ("log_age", "zh"), joint=True)
    assert not np.allclose(moved["log_age_cnn"], again["log_age_cnn"])
