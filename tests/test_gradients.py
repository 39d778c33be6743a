"""Deprojection geometry, bootstrap radial gradients and the `photopop gradients` command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from astropy import units as u

from photopop.cli.main import main
from photopop.errors import InputError
from photopop import geometry
from photopop.evaluation import gradients as gr


def test_minor_axis_point_at_60_deg_is_twice_as_far():
    # PA = 0: major axis north (+y), minor axis along x
    assert geometry.deprojected_radius(1.0, 0.0, 0.0, 60.0) == pytest.approx(2.0)
    assert geometry.deprojected_radius(0.0, 1.0, 0.0, 60.0) == pytest.approx(1.0)
    # PA = 90: major axis east (+x)
    assert geometry.deprojected_radius(1.0, 0.0, 90.0, 60.0) == pytest.approx(1.0)
    assert geometry.deprojected_radius(0.0, -1.0, 90.0, 60.0) == pytest.approx(2.0)
    # face-on: plain distance
    assert geometry.deprojected_radius(3.0, 4.0, 17.0, 0.0) == pytest.approx(5.0)


def test_rotated_position_angle_and_units():
    pa, d = 30.0, 2.0
    s, c = np.sin(np.deg2rad(pa)), np.cos(np.deg2rad(pa))
    x = np.array([d * s, d * c, 0.5 * d * s + 0.5 * d * c])
    y = np.array([d * c, -d * s, 0.5 * d * c - 0.5 * d * s])
    r = geometry.deprojected_radius(x, y, pa, 60.0, re_arcsec=4.0)
    # major-axis point: d; minor-axis point: d / cos 60 = 2d; mixed: sqrt(d^2/4 + d^2) ; all / R_e
    np.testing.assert_allclose(r, np.array([d, 2 * d, np.sqrt(0.25 * d**2 + d**2)]) / 4.0)
    # centre offsets, broadcasting per spaxel, astropy quantities
    r2 = geometry.deprojected_radius((x + 1.0) / 60 * u.arcmin, y - 2.0, np.full(3, pa) * u.deg,
                               np.full(3, 60.0), re_arcsec=4.0, x0=1.0, y0=-2.0)
    np.testing.assert_allclose(r2, r, rtol=1e-12)
    with pytest.raises(InputError, match="inclination"):
        geometry.deprojected_radius(1.0, 1.0, 0.0, 90.0)
    with pytest.raises(InputError):
        geometry.deprojected_radius(1.0, 1.0, 0.0, 30.0, re_arcsec=0.0)


def test_inclination_from_axis_ratio():
    assert geometry.inclination_from_axis_ratio(0.5, q0=0.0) == pytest.approx(60.0)
    assert geometry.inclination_from_axis_ratio(0.5, q0=0.2) == pytest.approx(62.1144, abs=1e-4)
    np.testing.assert_allclose(geometry.inclination_from_axis_ratio([1.0, 0.2, 0.1], q0=0.2), [0.0, 90.0, 90.0])
    with pytest.raises(InputError):
        geometry.inclination_from_axis_ratio(1.5)


def _survey(n_gal: int, n_in: int, n_out: int, slope, intercept, sigma: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    r = np.concatenate([rng.uniform(0, 1, size=(n_gal, n_in)), rng.uniform(1.01, 1.5, size=(n_gal, n_out))], axis=1)
    gid = np.repeat(np.arange(n_gal) + 100, n_in + n_out)
    slope = np.broadcast_to(np.asarray(slope, float), (n_gal,))[:, None]
    intercept = np.broadcast_to(np.asarray(intercept, float), (n_gal,))[:, None]
    v = intercept + slope * r + rng.normal(0, sigma, size=r.shape)
    return r.ravel(), v.ravel(), gid, r


def test_exact_linear_profile():
    slopes = np.linspace(-0.4, 0.3, 6)
    r, v, gid, _ = _survey(6, 40, 3, slopes, 0.5, sigma=0.0)
    df = gr.radial_gradients(r, v, gid)
    assert df["selected"].all() and list(df.index) == list(range(100, 106))
    np.testing.assert_allclose(df["slope"], slopes, atol=1e-12)
    np.testing.assert_allclose(df["slope_mean"], slopes, atol=1e-12)
    np.testing.assert_allclose(df["intercept"], 0.5, atol=1e-12)
    assert df["slope_std"].max() < 1e-12
    assert (df["n_inside"] == 40).all() and (df["n_outside"] == 3).all()


def test_full_slope_matches_polyfit_per_galaxy():
    rng = np.random.default_rng(4)
    sizes = rng.integers(26, 90, size=12)  # galaxies of different sizes: padding must be invisible
    gid = np.repeat(np.arange(12), sizes)
    r = rng.uniform(0, 1.3, size=gid.size)
    v = rng.normal(size=gid.size)
    df = gr.radial_gradients(r, v, gid, min_inside=5)
    for g in np.flatnonzero(df["selected"]):
        sel = (gid == g) & (r < 1)
        assert df.loc[g, "slope"] == pytest.approx(np.polyfit(r[sel], v[sel], 1)[0], rel=1e-9)


def test_radial_slopes_are_the_gradient_slopes_bit_for_bit():
    # the simulator's true gradients (geometry.radial_slopes) and radial_gradients' slope: one fit
    rng = np.random.default_rng(7)
    sizes = rng.integers(3, 300, size=40)  # widths on both sides of numpy's 128-element summation block
    gid = np.repeat(np.arange(40) * 3 + 1, sizes)
    r = rng.uniform(0, 1.4, size=gid.size)
    v = rng.normal(size=gid.size) + 0.3 * r
    for n_boot in (1, 7):
        df = gr.radial_gradients(r, v, gid, min_inside=2, min_outside=0, n_boot=n_boot, seed=0)
        s = geometry.radial_slopes(r, v, gid, min_inside=2, min_outside=0)
        assert df["selected"].all() and s.index.equals(df.index)
        np.testing.assert_array_equal(s.to_numpy(), df["slope"].to_numpy())
    few = geometry.radial_slopes([0.1, 0.5, 2.0], [1.0, 2.0, 3.0], [5, 5, 6], min_inside=2)
    assert few.loc[5] == pytest.approx(2.5) and np.isnan(few.loc[6])


def test_bootstrap_error_matches_analytic_slope_error():
    sigma, n_in, frac = 0.1, 60, 0.75
    r, v, gid, r2 = _survey(200, n_in, 4, -0.2, 0.3, sigma=sigma, seed=1)
    df = gr.radial_gradients(r, v, gid, n_boot=100, frac=frac, seed=0)
    rin = r2[:, :n_in]
    sigma_b = sigma / np.sqrt(((rin - rin.mean(1, keepdims=True)) ** 2).sum(1))  # OLS slope error
    m = round(frac * n_in)
    # subsamples of m out of n without replacement scatter by sigma_b * sqrt((n - m) / m)
    ratio = df["slope_std"].to_numpy() / (sigma_b * np.sqrt((n_in - m) / m))
    # the four bounds below hold over 20 survey seeds x 2 bootstrap seeds, at worst at 43%, 43%, 63% and 52%
    # of their width (float64 statistics of seeded draws: no dependence on the BLAS kernel beyond 1e-15)
    assert ratio.mean() == pytest.approx(1.0, abs=0.08)
    # the jackknife-rescaled error recovers the analytic slope error ...
    assert (df["slope_err"].to_numpy() / sigma_b).mean() == pytest.approx(1.0, abs=0.08)
    # ... and the true scatter of the fitted slopes around the input slope
    z = (df["slope"].to_numpy() + 0.2) / sigma_b
    assert z.std() == pytest.approx(1.0, abs=0.15)
    assert df["slope_mean"].mean() == pytest.approx(-0.2, abs=0.01)


def test_selection_rules():
    rng = np.random.default_rng(0)
    r = np.concatenate([rng.uniform(0, 0.99, 24), [1.2],  # galaxy 1: 24 inside -> not selected
                        rng.uniform(0, 0.99, 25), [1.2],  # galaxy 2: 25 inside, 1 outside -> selected
                        rng.uniform(0, 0.99, 30),         # galaxy 3: nothing outside -> not selected
                        rng.uniform(0, 0.99, 25), [1.0],  # galaxy 4: r == r_max counts neither
                        rng.uniform(0, 0.99, 26), [1.3]])  # galaxy 5: one NaN value -> 25 inside
    gid = np.repeat([1, 2, 3, 4, 5], [25, 26, 30, 26, 27])
    v = rng.normal(size=r.size)
    v[np.flatnonzero(gid == 5)[0]] = np.nan
    df = gr.radial_gradients(r, v, gid)
    assert df["selected"].to_dict() == {1: False, 2: True, 3: False, 4: False, 5: True}
    assert df.loc[1, "n_inside"] == 24 and df.loc[3, "n_outside"] == 0
    assert df.loc[4, "n_inside"] == 25 and df.loc[4, "n_outside"] == 0
    assert df.loc[5, "n_inside"] == 25
    assert df.loc[[1, 3, 4], ["slope", "slope_mean", "slope_std", "intercept"]].isna().all().all()
    assert df.loc[[2, 5], ["slope", "slope_mean", "slope_std", "intercept"]].notna().all().all()


def test_seeded_and_paired_draws():
    r, v, gid, _ = _survey(20, 40, 2, -0.1, 0.0, sigma=0.05, seed=3)
    a = gr.radial_gradients(r, v, gid, seed=5)
    pd.testing.assert_frame_equal(a, gr.radial_gradients(r, v, gid, seed=5))
    b = gr.radial_gradients(r, v, gid, seed=6)
    np.testing.assert_allclose(a["slope"], b["slope"])
    assert not np.allclose(a["slope_std"], b["slope_std"])
    # same radii and seed -> same subsamples: a constant offset leaves every slope unchanged
    c = gr.radial_gradients(r, v + 0.7, gid, seed=5)
    np.testing.assert_allclose(c["slope_mean"], a["slope_mean"], atol=1e-12)
    np.testing.assert_allclose(c["slope_std"], a["slope_std"], atol=1e-12)
    np.testing.assert_allclose(c["intercept"], a["intercept"] + 0.7, atol=1e-12)


def test_chunking_does_not_change_fits(monkeypatch):
    r, v, gid, _ = _survey(15, 30, 2, np.linspace(-1, 1, 15), 0.0, sigma=0.0)
    ref = gr.radial_gradients(r, v, gid, n_boot=20)
    monkeypatch.setattr(geometry, "CHUNK_CELLS", 1)  # one galaxy per chunk
    small = gr.radial_gradients(r, v, gid, n_boot=20)
    np.testing.assert_allclose(small["slope"], ref["slope"], atol=1e-12)
    np.testing.assert_allclose(small["slope_mean"], np.linspace(-1, 1, 15), atol=1e-12)


def test_compare_gradients_by_hand():
    idx = pd.Index([1, 2, 3, 4, 5], name="galaxy_id")
    a = pd.DataFrame({"selected": [True] * 5, "slope_mean": [0.0, 0.0, 0.0, 0.0, 0.0]}, index=idx)
    b = pd.DataFrame({"selected": [True, True, True, True, False],
                      "slope_mean": [1.0, -1.0, 1.0, -1.0, 50.0]}, index=idx)
    out = gr.compare_gradients(a, b.iloc[::-1])  # aligned on galaxy id, unselected galaxy dropped
    assert out["n"] == 4
    assert out["robust_sigma"] == pytest.approx(1.4826)
    assert out["rmse"] == pytest.approx(1.0) and out["bias"] == 0.0
    with pytest.raises(InputError):
        gr.compare_gradients(a, b, column="nope")


def test_gradients_cli(tmp_path, capsys):
    r, v, gid, _ = _survey(8, 30, 2, -0.2, 0.0, sigma=0.02, seed=2)
    spax = pd.DataFrame({"galaxy_id": gid, "spaxel_id": np.tile(np.arange(32), 8), "r_re": r})
    pred = spax.drop(columns="r_re").assign(zh_true=v, zh_cnn=v + 0.1 * r)
    spax.to_parquet(tmp_path / "spaxels.parquet")
    pred.sample(frac=1.0, random_state=0).to_csv(tmp_path / "pred.csv", index=False)
    out = tmp_path / "grad.csv"
    code = main(["gradients", str(tmp_path / "pred.csv"), "--radius-from", str(tmp_path / "spaxels.parquet"),
                 "--value", "zh_cnn", "--reference", "zh_true", "--out", str(out), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["selected"] == {"zh_cnn": 8, "zh_true": 8}
    assert summary["vs_reference"]["zh_cnn"]["bias"] == pytest.approx(0.1, abs=1e-9)  # exact: +0.1 r
    table = pd.read_csv(out)
    assert len(table) == 16 and set(table["column"]) == {"zh_cnn", "zh_true"}
    code = main(["gradients", str(tmp_path / "pred.csv"), "--value", "zh_cnn", "--out", str(out)])
    assert code == 2 and "r_re" in capsys.readouterr().err
