"""The image pipeline's inputs (issue 14 §5): 8-bit asinh irg JPEG composites by default, linear fluxes as an
option; the information floor and the resolution rows of `photopop reproduce wu-boada-2019`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from photopop.datasets.composite import lupton_rgb
from photopop.datasets.image_set import ImageSet, write_image_set
from photopop.errors import InputError
from photopop.experiments.wu_boada_2019 import WuBoada2019Config, preset_config
from photopop.experiments.wu_boada_stages import floor_summary, image_inputs, resolution_row
from photopop.simulate.images import ImageSurveyConfig, simulate_image_survey


def test_defaults_are_the_papers_inputs():
    assert WuBoada2019Config().use == "rgb"
    assert ImageSurveyConfig().rgb_jpeg_quality == 75
    assert preset_config("quick").use == "rgb" and preset_config("tiny").use == "rgb"
    with pytest.raises(InputError, match="rgb_jpeg_quality"):
        ImageSurveyConfig(rgb_jpeg_quality=101).validate()
    with pytest.raises(InputError, match="use"):
        WuBoada2019Config(use="jpeg").validate()


def test_mock_composites_are_jpeg_compressed_lupton_images(tmp_path):
    cfg = ImageSurveyConfig(n_galaxies=3, image_size=16, pixel_scale_arcsec=1.184, neighbour_rate=0.0, seed=2)
    s = simulate_image_survey(cfg, tmp_path / "jpeg")
    imgs = s.images(np.arange(3))
    args = (cfg.rgb_q, cfg.rgb_stretch, tuple(cfg.rgb_scales))
    np.testing.assert_array_equal(s.rgb(np.arange(3)), lupton_rgb(imgs, *args, jpeg_quality=75))
    assert not np.array_equal(s.rgb(np.arange(3)), lupton_rgb(imgs, *args, jpeg_quality=0))
    assert ImageSet.open(tmp_path / "jpeg").has_rgb


def _images_only_set(path, n=6, size=8):
    rng = np.random.default_rng(0)
    cat = pd.DataFrame({"id": np.arange(n), "oh": rng.normal(8.9, 0.1, n)})
    return write_image_set(path, cat, images=rng.gamma(2.0, 0.2, (n, 3, size, size)).astype(np.float32))


def test_image_inputs_rgb_and_flux(tmp_path):
    iset = _images_only_set(tmp_path / "s")
    msgs: list[str] = []
    cfg = WuBoada2019Config()
    src, info = image_inputs(iset, cfg, msgs.append)
    assert src.pixel_kind == "rgb8" and src.bands == ("g", "r", "i") and info["composites"] == "made"
    assert info["jpeg_quality"] == cfg.survey.rgb_jpeg_quality and msgs  # says that it made them
    want = lupton_rgb(iset.images(np.arange(6)), cfg.survey.rgb_q, cfg.survey.rgb_stretch,
                      tuple(cfg.survey.rgb_scales), cfg.survey.rgb_jpeg_quality)
    got = src.take(np.arange(6))
    # channels blue to red: g <- the composite's B, i <- its R; scaled to [0, 1]
    np.testing.assert_array_equal(got[:, 0], want[..., 2] / np.float32(255.0))
    np.testing.assert_array_equal(got[:, 2], want[..., 0] / np.float32(255.0))
    flux, info = image_inputs(iset, WuBoada2019Config(use="images"), msgs.append)
    assert flux.pixel_kind == "flux" and info == {"use": "images"}
    np.testing.assert_array_equal(flux.take(np.arange(6)), iset.images(np.arange(6)))


def test_rgb_only_set_refuses_linear_fluxes(tmp_path):
    rng = np.random.default_rng(1)
    cat = pd.DataFrame({"id": np.arange(4), "oh": rng.normal(8.9, 0.1, 4)})
    iset = write_image_set(tmp_path / "jpg", cat, rgb=rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8))
    src, info = image_inputs(iset, WuBoada2019Config(), print)
    assert info["composites"] == "stored" and src.pixel_kind == "rgb8"
    with pytest.raises(InputError, match="no calibrated images"):
        image_inputs(iset, WuBoada2019Config(use="images"), print)


def test_resolution_row_mean_and_std():
    row = resolution_row(8, [{"rmse": 0.10, "nmad": 0.08}, {"rmse": 0.12, "nmad": 0.09}, {"rmse": 0.14, "nmad": 0.07}])
    assert row["pixels"] == 8 and row["seeds"] == 3
    assert row["rmse"] == pytest.approx(0.12) and row["rmse_std"] == pytest.approx(0.02)
    assert row["nmad"] == pytest.approx(0.08) and row["nmad_std"] == pytest.approx(0.01)
    one = resolution_row(4, [{"rmse": 0.1, "nmad": 0.2}])
    assert one["rmse_std"] is None and one["rmse"] == 0.1


def test_floor_summary_ratios():
    m = {"cnn": {"rmse": 0.10}, "rf_gri": {"rmse": 0.125}, "rf_latent": {"rmse": 0.09}}
    f = floor_summary(m, 0.08)
    assert f["cnn_over_rf_gri"] == pytest.approx(0.8) and f["paper_cnn_over_rf_gri"] == pytest.approx(0.085 / 0.130)
    assert f["cnn_over_floor"] == pytest.approx(1.25) and f["rf_gri_over_floor"] == pytest.approx(1.5625)
    assert f["rf_latent"] == {"rmse": 0.09}
    real = floor_summary({"cnn": {"rmse": 0.1}}, None)
    assert real["cnn_over_floor"] is None and real["cnn_over_rf_gri"] is None


def test_resolution_study_with_seeds(tmp_path):
    from photopop.experiments.wu_boada_2019 import run_wu_boada_2019

    rng = np.random.default_rng(4)
    n = 30
    cat = pd.DataFrame({"id": np.arange(n), "oh": rng.normal(8.9, 0.1, n), "log_mstar": rng.normal(10, 0.5, n)})
    write_image_set(tmp_path / "d", cat, images=rng.gamma(2.0, 0.2, (n, 3, 8, 8)).astype(np.float32))
    cfg = preset_config("tiny")
    cfg.data, cfg.resolutions, cfg.resolution_seeds, cfg.mass_route, cfg.tta = str(tmp_path / "d"), (2,), 2, False, False
    cfg.fit.epochs, cfg.fit.freeze_epochs = 1, 1
    res = run_wu_boada_2019(cfg, tmp_path / "run", report=False)
    rows = {r["pixels"]: r for r in res.metrics["resolution"]}
    assert set(rows) == {8, 2} and all(r["seeds"] == 2 for r in rows.values())
    for r in rows.values():
        assert r["rmse"] == pytest.approx(np.mean(r["rmse_per_seed"]))
        assert r["rmse_std"] == pytest.approx(np.std(r["rmse_per_seed"], ddof=1))
    assert rows[8]["rmse_per_seed"][0] == res.metrics["cnn"]["rmse"]  # seed 0 of the native size is the main CNN
    assert {"cnn-seed1", "res2", "res2-seed1"} <= set(res.metrics["run"]["stages"])
    assert "lowest_minus_highest_resolution_in_se" in res.metrics["checks"]
