"""The top-level API (lazy names), astropy Table/QTable inputs, and `PhotometryResult.to_table` units."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import astropy.units as u
import numpy as np
import pandas as pd
import pytest
from astropy.table import MaskedColumn, QTable, Table

import photopop
from photopop.datasets.frames import as_frame
from photopop.errors import InputError

IMAGE_ESTIMATOR_ABSENT = importlib.util.find_spec("photopop.training.image_estimator") is None


# -- the lazy top-level API -----------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n in photopop.__all__ if n != "ImageEstimator"])
def test_every_public_name_resolves(name):
    value = getattr(photopop, name)
    assert value is not None
    if name != "__version__":
        module = importlib.import_module(photopop._API[name])
        assert value is getattr(module, name)  # the object itself, not a copy


@pytest.mark.xfail(IMAGE_ESTIMATOR_ABSENT, reason="photopop.training.image_estimator is written by the training "
                   "refactor (helper r-train); the lead wires it at merge", strict=True)
def test_image_estimator_resolves():
    est = photopop.ImageEstimator
    for method in ("fit", "predict", "save", "load"):
        assert callable(getattr(est, method))


def test_api_lists_the_issue_names_and_dir():
    wanted = {"load_filter_system", "synth_photometry", "SSPGrid", "read_sed_table", "simulate_ifu_survey",
              "SEDRegressor", "ImageEstimator", "load_model", "predict_catalog", "scores", "PhotometryResult",
              "FilterSystem", "InputError"}
    assert wanted <= set(photopop.__all__)
    assert wanted <= set(dir(photopop))


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        photopop.no_such_name  # noqa: B018


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_photopop_does_not_import_torch():
    mods = _modules_after("import photopop")
    assert "torch" not in mods and "pandas" not in mods and "photopop.training" not in mods


def test_cli_parser_does_not_import_torch():
    mods = _modules_after("from photopop.cli.main import build_parser; build_parser()")
    assert "torch" not in mods


# -- astropy Table / QTable inputs ----------------------------------------------------------------

def test_qtable_magnitudes_become_ab_numbers():
    t = QTable({"galaxy_id": [1, 2], "mag_r": [18.5, 19.25] * u.ABmag, "magerr_r": [0.1, 0.2] * u.mag,
                "x_arcsec": [0.5, -1.0] * u.arcsec})
    df = as_frame(t)
    assert list(df.columns) == ["galaxy_id", "mag_r", "magerr_r", "x_arcsec"]
    np.testing.assert_array_equal(df["mag_r"], [18.5, 19.25])
    np.testing.assert_array_equal(df["x_arcsec"], [0.5, -1.0])
    assert df["mag_r"].dtype == np.float64


def test_table_with_unit_strings_and_masks():
    t = Table({"mag_g": MaskedColumn([20.0, 21.0], mask=[False, True], unit="mag(AB)"),
               "magerr_g": MaskedColumn([0.05, 0.07], unit="mag"),
               "spaxel_id": MaskedColumn([3, 4], mask=[False, True])})
    df = as_frame(t)
    assert df["mag_g"].iloc[0] == 20.0 and np.isnan(df["mag_g"].iloc[1])
    assert df["spaxel_id"].iloc[0] == 3 and pd.isna(df["spaxel_id"].iloc[1])


@pytest.mark.parametrize("unit", [u.Jy, u.STmag, u.nanomaggy, u.km])
def test_magnitude_column_with_a_non_ab_unit_is_refused(unit):
    with pytest.raises(InputError, match=r"column 'mag_r' has unit"):
        as_frame(QTable({"mag_r": [1.0, 2.0] * unit}), "catalogue")


def test_multidimensional_column_is_refused():
    with pytest.raises(InputError, match="'mag_r' has shape"):
        as_frame(Table({"mag_r": np.ones((2, 3))}))


def test_other_inputs_pass_through():
    df = pd.DataFrame({"mag_r": [1.0]})
    arr = np.ones((2, 3))
    assert as_frame(df) is df and as_frame(arr) is arr


def _toy_frame(n=240, seed=0):
    rng = np.random.default_rng(seed)
    age = rng.uniform(8.5, 10.1, n)
    bands = [f"b{i}" for i in range(6)]
    lam = np.linspace(0, 1, len(bands))
    mags = 20 + (age[:, None] - 9.3) * 1.5 * lam + rng.normal(0, 0.02, (n, len(bands)))
    df = pd.DataFrame({f"mag_{b}": mags[:, i] for i, b in enumerate(bands)})
    df["log_age"] = age
    df["galaxy_id"] = rng.integers(0, 10, n)
    return df, bands


def _qtable(df: pd.DataFrame) -> QTable:
    t = QTable()
    for c in df.columns:
        t[c] = df[c].to_numpy() * u.ABmag if c.startswith("mag_") else df[c].to_numpy()
    return t


def test_sed_regressor_fits_and_predicts_a_qtable_as_its_dataframe():
    from photopop.models.sed_cnn import SEDCNNConfig
    from photopop.training.fit import TrainConfig
    from photopop.training.sed_regressor import SEDRegressorConfig

    df, _ = _toy_frame()
    cfg = SEDRegressorConfig(targets=("log_age",),
                             architecture=SEDCNNConfig(conv_filters=(2, 4), kernel_sizes=(3, 3), pool_size=2,
                                                       dense_units=(8,)),
                             train=TrainConfig(max_epochs=3, batch_size=64, seed=0, device="cpu"))
    from_df = photopop.SEDRegressor(cfg).fit(df)
    from_qt = photopop.SEDRegressor(cfg).fit(_qtable(df))
    # same rows, same seed: the same training (the table converts to the same numbers)
    assert from_df.result_.history.equals(from_qt.result_.history)
    p_df = from_df.predict(df)
    p_qt = from_df.predict(_qtable(df))
    pd.testing.assert_frame_equal(p_df, p_qt)
    bad = _qtable(df)
    bad["mag_b0"] = df["mag_b0"].to_numpy() * u.Jy
    with pytest.raises(InputError, match="mag_b0"):
        from_df.predict(bad)


def test_scores_take_table_columns():
    t = QTable({"log_age": [9.0, 9.5, 10.0, 8.8], "pred": [9.1, 9.4, 10.0, 8.9]})
    assert photopop.scores(t["log_age"], t["pred"]) == photopop.scores(
        np.array([9.0, 9.5, 10.0, 8.8]), np.array([9.1, 9.4, 10.0, 8.9]))


# -- PhotometryResult.to_table --------------------------------------------------------------------

def _flat_ab_zero():
    from photopop.photometry.curves import filter_curve_from_arrays

    wave_band = np.arange(4990.0, 6011.0, 1.0)
    band = filter_curve_from_arrays("box", wave_band * u.AA, ((wave_band >= 5000) & (wave_band <= 6000)) * 1.0)
    system = photopop.FilterSystem("tophat", (band,))
    wave = np.linspace(3000.0, 9000.0, 6001) * u.AA
    flux = np.full((2, wave.size), 3631.0) * u.Jy
    return photopop.synth_photometry(wave, flux, system, flux_err=0.01 * flux)


def test_to_table_is_a_qtable_with_units():
    res = _flat_ab_zero()
    t = res.to_table()
    assert isinstance(t, QTable) and len(t) == 2
    assert t["mag_box"].unit == u.ABmag and t["magerr_box"].unit == u.mag
    assert t["flux_nmgy_box"].unit == u.nanomaggy and t["flux_err_nmgy_box"].unit == u.nanomaggy
    assert getattr(t["coverage_box"], "unit", None) is None
    # 3631 Jy is the AB zero point: 0 mag, 1e9 nanomaggies, 3631 Jy once converted back
    np.testing.assert_allclose(t["mag_box"].value, 0.0, atol=1e-12)
    np.testing.assert_allclose(t["flux_nmgy_box"].to(u.Jy, u.zero_point_flux(3631 * u.Jy)).value, 3631.0,
                               rtol=1e-12)
    assert t.meta["filter_system"] == "tophat" and t.meta["bands"] == ["box"]
    long = res.to_table("long")
    assert long["pivot_aa"].unit == u.AA and long["flux_jy"].unit == u.Jy and long["mag_ab"].unit == u.ABmag
    np.testing.assert_allclose(long["flux_jy"].value, 3631.0, rtol=1e-12)


def test_to_pandas_keeps_the_plain_frame():
    res = _flat_ab_zero()
    df = res.to_pandas()
    assert isinstance(df, pd.DataFrame)
    t = res.to_table()
    for c in df.columns:
        col = t[c]
        np.testing.assert_array_equal(np.asarray(getattr(col, "value", col)), df[c].to_numpy())
    with pytest.raises(InputError, match="layout"):
        res.to_table("tall")


def test_package_is_marked_typed():
    import importlib.resources
    import tomllib
    from pathlib import Path

    assert importlib.resources.files("photopop").joinpath("py.typed").is_file()
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.exists():  # a source checkout: the marker must be shipped in the wheel too
        data = tomllib.loads(pyproject.read_text())
        assert "py.typed" in data["tool"]["setuptools"]["package-data"]["photopop"]
