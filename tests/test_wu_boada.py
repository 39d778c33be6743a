"""Wu & Boada (2019) reproduction: split, intrinsic scatter, MZR analysis, config, tiny end-to-end CLI run."""

import json

import numpy as np
import pandas as pd
import pytest

from photopop.errors import InputError
from photopop.evaluation.mzr_analysis import binned_mzr, mass_bin_edges, mzr_comparison
from photopop.experiments.wu_boada_2019 import PAPER, injected_scatter, load_wu_boada_config, preset_config
from photopop.splits import split_60_20_20
from photopop.simulate.mzr import LabelConfig, fmr_oh, mzr_tremonti04


def test_split_is_60_20_20_disjoint_and_seeded():
    s = split_60_20_20(1000, seed=4)
    assert [s[k].size for k in ("train", "val", "test")] == [600, 200, 200]
    allrows = np.concatenate([s["train"], s["val"], s["test"]])
    assert np.array_equal(np.sort(allrows), np.arange(1000))
    again = split_60_20_20(1000, seed=4)
    assert all(np.array_equal(s[k], again[k]) for k in s)
    assert not np.array_equal(split_60_20_20(1000, seed=5)["test"], s["test"])


def test_injected_scatter_recovers_the_random_and_noise_terms():
    rng = np.random.default_rng(0)
    n = 500
    lab = LabelConfig()
    logm = rng.uniform(9, 11, n)
    dsfr = rng.normal(0, 0.3, n)
    size = rng.normal(0, 0.15, n)
    random = rng.normal(0, 0.07, n)
    noise = rng.normal(0, 0.03, n)
    fibre_offset = rng.normal(0, 0.02, n)  # predictable (geometry): not part of the intrinsic scatter
    oh_true = fmr_oh(logm, dsfr, lab) + lab.size_coupling * size + random
    cat = pd.DataFrame({"oh_true": oh_true, "oh_fibre_true": oh_true + fibre_offset, "log_mstar": logm,
                        "delta_log_sfr": dsfr, "size_residual_dex": size})
    cat["oh"] = cat["oh_fibre_true"] + noise
    expected = np.sqrt(np.mean((random + noise) ** 2))
    assert injected_scatter(cat, lab) == pytest.approx(expected, rel=1e-10)
    rows = np.arange(0, n, 3)
    assert injected_scatter(cat, lab, rows) == pytest.approx(np.sqrt(np.mean((random + noise)[rows] ** 2)))
    assert injected_scatter(cat.drop(columns="oh_true"), lab) is None


def test_binned_mzr_exact_values():
    edges = mass_bin_edges([9.05, 9.61], 0.2)
    assert np.allclose(edges, [9.0, 9.2, 9.4, 9.6, 9.8])
    m = np.array([9.1, 9.1, 9.1, 9.5, 9.5, 9.5, 9.5])
    z = np.array([8.9, 9.0, 9.1, 9.0, 9.0, 9.2, 9.2])
    tab = binned_mzr(m, z, relation=lambda x: np.full_like(x, 9.0), edges=np.array([9.0, 9.2, 9.4, 9.6]))
    assert list(tab["n"]) == [3, 0, 4]
    assert tab["median"][0] == pytest.approx(9.0) and tab["median"][2] == pytest.approx(9.1)
    assert tab["rmse"][0] == pytest.approx(np.sqrt(2 / 3) * 0.1)
    assert tab["rmse"][2] == pytest.approx(np.sqrt(0.08 / 4))  # about the relation (9.0), not the median
    assert tab["std"][0] == pytest.approx(np.std([8.9, 9.0, 9.1]))
    assert tab["nmad"][0] == pytest.approx(1.4826 * 0.1)
    assert np.isnan(tab["median"][1]) and np.isnan(tab["rmse"][1])
    no_rel = binned_mzr(m, z, edges=np.array([9.0, 9.2, 9.4, 9.6]))
    assert no_rel["rmse"][2] == pytest.approx(np.sqrt(np.mean((z[3:] - 9.1) ** 2)))  # about the bin median


def test_mzr_comparison_predictions_on_the_relation_have_zero_scatter():
    rng = np.random.default_rng(1)
    m = rng.uniform(9, 11, 2000)
    z_true = mzr_tremonti04(m) + rng.normal(0, 0.1, m.size)
    comp = mzr_comparison(m, z_true, mzr_tremonti04(m), relation=mzr_tremonti04)
    assert comp["scatter"]["pred"]["rmse"] == pytest.approx(0.0, abs=1e-12)
    assert comp["scatter"]["true"]["rmse"] == pytest.approx(0.1, abs=0.006)
    assert comp["true"]["std"].dropna().between(0.07, 0.13).all()
    with pytest.raises(InputError):
        mzr_comparison(m[:3], z_true[:3], z_true[:3], mass_range=(12, 13))


def test_config_presets_and_unknown_keys(tmp_path):
    assert preset_config("full").model.arch == "resnet34" and preset_config("full").survey.image_size == 128
    assert preset_config("full").fit.lrs == (1e-3, 1e-2, 1e-1) and preset_config("full").fit.epochs == 10
    f = tmp_path / "c.toml"
    f.write_text('preset = "tiny"\nresolutions = [8, 2]\n[fit]\nepochs = 3\n')
    cfg = load_wu_boada_config(f)
    assert cfg.preset == "tiny" and cfg.resolutions == (8, 2) and cfg.fit.epochs == 3
    assert cfg.fit.batch_size == preset_config("tiny").fit.batch_size  # preset values kept underneath
    f.write_text("[fit]\nepochz = 3\n")
    with pytest.raises(InputError, match="epochz"):
        load_wu_boada_config(f)


def _fake_image_set(path, n=60, size=16, seed=0):
    """A small mock-like ImageSet: blobs whose brightness and colour follow the label, plus mock truth columns."""
    from photopop.datasets.image_set import write_image_set
    from photopop.simulate.images import ImageSurveyConfig

    rng = np.random.default_rng(seed)
    lab = LabelConfig()
    logm = rng.uniform(9.0, 11.0, n)
    dsfr = rng.normal(0, 0.3, n)
    size_res = rng.normal(0, 0.15, n)
    oh_true = fmr_oh(logm, dsfr, lab) + lab.size_coupling * size_res + rng.normal(0, 0.05, n)
    oh = oh_true + rng.normal(0, 0.03, n)
    mags = {b: 17.0 - 0.8 * (logm - 10) + off + rng.normal(0, 0.02, n)
            for b, off in zip("ugriz", (1.5, 0.6, 0.0, -0.3, -0.5))}
    cat = pd.DataFrame({"id": np.arange(100, 100 + n), "oh": oh, "oh_true": oh_true, "oh_fibre_true": oh_true,
                        "log_mstar": logm, "delta_log_sfr": dsfr, "size_residual_dex": size_res,
                        **{f"mag_{b}": v for b, v in mags.items()}})
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    flux = 10 ** (-0.4 * (np.stack([mags[b] for b in "gri"], axis=1) - 22.5))  # (n, 3) nanomaggies
    blob = np.exp(-(yy**2 + xx**2) / (2 * 2.0**2))
    images = flux[:, :, None, None] * blob / blob.sum() + rng.normal(0, 0.05, (n, 3, size, size))
    return write_image_set(path, cat, images=images.astype(np.float32), config=ImageSurveyConfig())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from photopop.cli.main import main

    root = tmp_path_factory.mktemp("wb")
    _fake_image_set(root / "data")
    out = root / "run"
    assert main(["reproduce", "wu-boada-2019", "--tiny", "--data", str(root / "data"), "--weights", "none",
                 "--out", str(out), "--quiet"]) == 0
    return out


def test_tiny_run_writes_metrics_in_the_documented_shape(tiny_run):
    m = json.loads((tiny_run / "metrics.json").read_text())
    for key in ("cnn", "rf_gri", "rf_ugriz", "constant", "mass_route"):
        assert {"rmse", "nmad", "n"} <= set(m[key]), key
        assert m[key]["rmse"] > 0 and m[key]["n"] == m["run"]["n_test"]
    assert m["intrinsic_scatter"] > 0
    assert [r["pixels"] for r in m["resolution"]] == [16, 4, 1]
    assert all({"pixels", "rmse", "nmad"} <= set(r) for r in m["resolution"])
    assert m["resolution"][0]["rmse"] == m["cnn"]["rmse"]
    assert m["paper"]["cnn"]["rmse"] == PAPER["cnn"]["rmse"] == 0.085
    pred = pd.read_parquet(tiny_run / "predictions.parquet")
    assert len(pred) == m["run"]["n_test"]
    t = pred["oh_true"].to_numpy()
    assert m["cnn"]["rmse"] == pytest.approx(np.sqrt(np.mean((pred["cnn"] - t) ** 2)))
    assert np.allclose(pred["oh_mzr"], mzr_tremonti04(pred["log_mstar_pred"]))
    assert np.allclose(pred["constant"], pred["constant"].iloc[0])
    model_dirs = list((tiny_run / "stages").glob("cnn-*/model/meta.json"))
    assert len(model_dirs) == 1
    # the paper's inputs by default: 8-bit irg composites (made from this set's calibrated images, JPEG'd)
    assert m["run"]["inputs"] == {"use": "rgb", "composites": "made", "q": 8.0, "stretch": 0.4,
                                  "scales": [1.0, 1.3, 2.2], "jpeg_quality": 75}
    assert json.loads(model_dirs[0].read_text())["pixel_kind"] == "rgb8"
    assert m["floor"]["injected_scatter"] == m["intrinsic_scatter"]
    assert m["floor"]["cnn_over_rf_gri"] == pytest.approx(m["cnn"]["rmse"] / m["rf_gri"]["rmse"])
    assert all(r["seeds"] == 1 and r["rmse_std"] is None for r in m["resolution"])


def test_tiny_run_report_is_self_contained(tiny_run):
    html = (tiny_run / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 6
    assert "src=\"http" not in html and "0.085" in html
    assert {p.name for p in (tiny_run / "figures").glob("*.png")} >= {
        "fig1_examples.png", "fig2_distributions.png", "fig3_truth_vs_pred.png", "fig4_resolution.png",
        "fig5_mass_route.png", "fig6_mzr.png"}


def test_rerun_uses_the_stage_cache_and_gives_the_same_numbers(tiny_run):
    from photopop.cli.main import main

    before = json.loads((tiny_run / "metrics.json").read_text())
    assert main(["reproduce", "wu-boada-2019", "--tiny", "--data", str(tiny_run.parent / "data"), "--weights", "none",
                 "--out", str(tiny_run), "--quiet", "--no-report"]) == 0
    after = json.loads((tiny_run / "metrics.json").read_text())
    assert all(s["cached"] for s in after["run"]["stages"].values())
    assert after["cnn"] == before["cnn"] and after["resolution"] == before["resolution"]


def test_cli_json_output_and_bad_config(tiny_run, capsys, tmp_path):
    from photopop.cli.main import main

    data = str(tiny_run.parent / "data")
    assert main(["reproduce", "wu-boada-2019", "--tiny", "--data", data, "--weights", "none", "--out", str(tiny_run),
                 "--quiet", "--no-report", "--json"]) == 0
    head = json.loads(capsys.readouterr().out)
    assert head["cnn"] == json.loads((tiny_run / "metrics.json").read_text())["cnn"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\narch = 'resnet99'\n")
    assert main(["reproduce", "wu-boada-2019", "--config", str(bad), "--data", data, "--out", str(tmp_path / "o")]) == 2
    assert "resnet99" in capsys.readouterr().err
