"""Posterior flow: known Gaussian answer, held-out coverage, OOD flag, folder round trip, predict columns, CLI."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import zuko

from photopop.cli.main import main
from photopop.errors import InputError
from photopop.inference import load_model, predict_catalog
from photopop.inference.posterior import PosteriorPredictor, predict_samples
from photopop.models.posterior import SortedRQS, TriangularAffine
from photopop.models.posterior_model import QUANTILES, sample_correlation
from photopop.training.posterior_fit import SEDPosterior

from posterior_toy import BANDS, exact_posterior, magnitudes, small_config, toy_frame

TARGETS = ("log_age", "zh")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fitted():
    """One small posterior on the linear-Gaussian toy (shared: a fit is the slow part)."""
    return SEDPosterior(small_config(seed=0)).fit(toy_frame(2000, seed=0))


@pytest.fixture(scope="module")
def test_rows():
    return toy_frame(1000, seed=100)


def test_recovers_known_gaussian_posterior(fitted, test_rows):
    # exact posterior: Gaussian with known mean and covariance; bounds hold for seeds 0-2 with ~2x margin
    s = fitted.sample(test_rows, 1000, seed=1)
    mu, cov = exact_posterior(magnitudes(test_rows))
    sd = np.sqrt(np.diag(cov))
    assert s.shape == (1000, len(test_rows), 2)
    err = np.abs(s.mean(axis=0) - mu) / sd
    assert np.all(np.median(err, axis=0) < 0.35)
    ratio = np.median(s.std(axis=0), axis=0) / sd
    assert np.all((ratio > 0.85) & (ratio < 1.15)), ratio
    corr = np.median(sample_correlation(s[..., 0], s[..., 1]))
    assert abs(corr - cov[0, 1] / sd.prod()) < 0.12


def test_coverage_on_held_out_rows(fitted, test_rows):
    q = fitted.predict_quantiles(test_rows, seed=2)
    for t in TARGETS:
        y = test_rows[t]
        c68 = np.mean((y >= q[f"{t}_p16"]) & (y <= q[f"{t}_p84"]))
        c95 = np.mean((y >= q[f"{t}_p025"]) & (y <= q[f"{t}_p975"]))
        assert abs(c68 - 0.683) < 0.09 and abs(c95 - 0.954) < 0.05, (t, c68, c95)
        assert np.all(q[f"{t}_p025"] <= q[f"{t}_p16"]) and np.all(q[f"{t}_p16"] <= q[f"{t}_p50"])
        assert np.all(q[f"{t}_p50"] <= q[f"{t}_p84"]) and np.all(q[f"{t}_p84"] <= q[f"{t}_p975"])


def test_ood_flag_shifted_magnitudes_and_noise_band(fitted, test_rows):
    base = fitted.predict_quantiles(test_rows, n_samples=50)
    assert base["ood_flag"].mean() < 0.05  # threshold: 0.99 quantile of held-out galaxies
    shifted = test_rows.copy()
    cols = [f"mag_{b}" for b in BANDS]
    shifted[cols] += 3.0
    assert fitted.predict_quantiles(shifted, n_samples=50)["ood_flag"].mean() > 0.9
    noisy = test_rows.copy()
    noisy["mag_b3"] = np.random.default_rng(0).normal(noisy["mag_b3"].mean(), 3.0, len(noisy))  # 10x the noise
    assert fitted.predict_quantiles(noisy, n_samples=50)["ood_flag"].mean() > 0.5


def test_folder_round_trip_and_predictor(fitted, test_rows, tmp_path):
    fitted.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["kind"] == "sed-posterior" and meta["bands"] == BANDS and list(meta["targets"]) == list(TARGETS)
    assert meta["ood_threshold"] > 0 and meta["train_table_hash"]
    for name in ("model.pt", "config.toml", "normalisation.json", "history.csv"):
        assert (tmp_path / "m" / name).exists()
    back = SEDPosterior.load(tmp_path / "m")
    a = fitted.predict_quantiles(test_rows.iloc[:200], seed=5)
    b = back.predict_quantiles(test_rows.iloc[:200], seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(fitted.predict_quantiles(test_rows.iloc[:200], seed=6))
    pred = load_model(tmp_path / "m", device="cpu")
    assert isinstance(pred, PosteriorPredictor) and pred.model_hash
    cols = [f"{t}_{q}" for t in TARGETS for q in ("p50", "p16", "p84", "p025", "p975")]
    assert set(cols + ["corr_log_age_zh", "ood_score", "ood_flag"]) <= set(pred.output_columns)
    assert len(QUANTILES) == 5


def test_predict_catalog_and_samples_resumable(fitted, test_rows, tmp_path):
    cat = tmp_path / "cat.parquet"
    test_rows.iloc[:300].to_parquet(cat)
    fitted.save(tmp_path / "m")
    rep = predict_catalog(load_model(tmp_path / "m", device="cpu", n_samples=200), cat, tmp_path / "out",
                          chunk_rows=128, id_columns="galaxy_id,spaxel_id")
    assert rep.n_parts == 3 and (tmp_path / "out" / "_SUCCESS").exists()
    out = pd.read_parquet(tmp_path / "out").sort_values("row_index")
    assert len(out) == 300 and set(out["ood_flag"].unique()) <= {0.0, 1.0}
    again = predict_catalog(load_model(tmp_path / "m", device="cpu", n_samples=200), cat, tmp_path / "out",
                            chunk_rows=128, id_columns="galaxy_id,spaxel_id")
    assert again.n_parts_written == 0 and again.n_parts_skipped == 3
    srep = predict_samples(tmp_path / "m", cat, tmp_path / "samples", 64, device="cpu", chunk_rows=100)
    s = pd.read_parquet(tmp_path / "samples").sort_values("row_index")
    assert srep.n_parts == 3 and len(s) == 300
    assert [c for c in s.columns if c.startswith("zh_s")][-1] == "zh_s0063"
    draws = s[[f"log_age_s{k:04d}" for k in range(64)]].to_numpy()
    assert np.all(np.isfinite(draws)) and np.all(draws.std(axis=1) > 0)


def test_missing_error_column_is_refused(fitted, test_rows):
    with pytest.raises(InputError, match="magerr_b0"):
        fitted.predict_quantiles(test_rows.drop(columns=["magerr_b0"]))


def test_sorted_spline_matches_zuko():
    g = torch.Generator().manual_seed(0)
    w, h, d = (torch.randn(5, 2, k, generator=g) for k in (6, 6, 5))
    z = 3 * torch.randn(300, 5, 2, generator=g)
    ref = zuko.transforms.MonotonicRQSTransform(w, h, d).inv(z)
    # the same root, rearranged: float32 rounding of values up to |5| is a few 1e-7 x 5 per operation
    assert torch.allclose(SortedRQS(w, h, d).inv(z), ref, atol=1e-5)
    w, h, d, z = (t.double() for t in (w, h, d, z))
    ref = zuko.transforms.MonotonicRQSTransform(w, h, d).inv(z)
    assert torch.allclose(SortedRQS(w, h, d).inv(z), ref, atol=1e-12)


def test_triangular_affine_inverse_matches_solve():
    g = torch.Generator().manual_seed(1)
    for dim in (1, 2, 3, 6):
        L = torch.randn(7, dim, dim, generator=g).tril()
        L.diagonal(dim1=-2, dim2=-1).copy_(torch.rand(7, dim, generator=g) + 0.5)
        b = torch.randn(7, dim, generator=g)
        t = TriangularAffine(L, b, L.diagonal(dim1=-2, dim2=-1).log())
        y = torch.randn(40, 7, dim, generator=g)
        assert torch.allclose(t(t.inv(y)), y, atol=1e-5)


def test_cli_train_and_predict(test_rows, tmp_path):
    table = tmp_path / "toy.parquet"
    toy_frame(600, seed=3).to_parquet(table)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nmax_epochs = 2\nbatch_size = 256\n[architecture]\nembed_dim = 8\n"
                   "[architecture.embedding]\nconv_filters = [2, 4]\nkernel_sizes = [3, 3]\npool_size = 2\n"
                   "dense_units = [16]\n[architecture.flow]\nn_layers = 1\ntrunk_units = 16\nhyper_units = [16]\n")
    assert main(["sed", "train", "--table", str(table), "--target", "both", "--estimator", "posterior",
                 "--out", str(tmp_path / "M"), "--config", str(cfg), "--quiet"]) == 0
    cat = tmp_path / "cat.parquet"
    test_rows.iloc[:50].to_parquet(cat)
    assert main(["predict", str(tmp_path / "M"), str(cat), "--out", str(tmp_path / "P"), "--samples", "10",
                 "--quiet", "--device", "cpu"]) == 0
    out = pd.read_parquet(tmp_path / "P")
    for c in ("log_age_p50", "zh_p975", "corr_log_age_zh", "ood_score", "ood_flag"):
        assert c in out.columns
    assert pd.read_parquet(tmp_path / "P_samples").shape[0] == 50
    assert main(["predict", str(tmp_path / "M"), str(cat), "--out", str(tmp_path / "Q"), "--samples-out",
                 str(tmp_path / "S")]) == 2


def test_cube_maps_get_an_ood_plane(tmp_path):
    from astropy.io import fits

    from photopop.inference import predict_cube

    post = SEDPosterior(small_config(seed=0, max_epochs=3, use_magerr=False)).fit(toy_frame(800, seed=4))
    rows = toy_frame(12, seed=9)
    mags = magnitudes(rows).T.reshape(len(BANDS), 3, 4) + 20.0
    mags[:, 0, 0] += 3.0  # one pixel far outside the training SEDs
    header = fits.Header()
    header["BUNIT"] = "mag"
    for k, b in enumerate(BANDS, start=1):
        header[f"BAND{k}"] = b
    fits.PrimaryHDU(mags, header=header).writeto(tmp_path / "cube.fits")
    predict_cube(post.model_, tmp_path / "cube.fits", tmp_path / "maps.fits", device="cpu")
    with fits.open(tmp_path / "maps.fits") as hdul:
        names = [h.name for h in hdul[1:]]
        assert "OOD_FLAG" in names and "LOG_AGE_P50" in names and "CORR_LOG_AGE_ZH" in names
        flag = hdul["OOD_FLAG"].data
        assert flag[0, 0] == 1.0 and flag.sum() < flag.size / 2


def test_dask_path_equals_single_process(fitted, test_rows, tmp_path):
    import pickle

    import distributed

    fitted.save(tmp_path / "m")
    cat = tmp_path / "cat.parquet"
    test_rows.iloc[:200].to_parquet(cat)
    pred = load_model(tmp_path / "m", device="cpu", n_samples=100)
    back = pickle.loads(pickle.dumps(pred))  # what Dask ships when the predictor has no path
    pd.testing.assert_frame_equal(back.predict_frame(test_rows.iloc[:20]), pred.predict_frame(test_rows.iloc[:20]))
    predict_catalog(pred, cat, tmp_path / "one", chunk_rows=64)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    try:
        with distributed.Client(cluster) as client:
            for name, p in (("by_path", load_model(tmp_path / "m", device="cpu")), ("shipped", pred)):
                predict_catalog(p, cat, tmp_path / name, chunk_rows=64, client=client)
    finally:
        cluster.close()
    one = pd.read_parquet(tmp_path / "one").sort_values("row_index").reset_index(drop=True)
    shipped = pd.read_parquet(tmp_path / "shipped").sort_values("row_index").reset_index(drop=True)
    pd.testing.assert_frame_equal(one, shipped)
    assert len(pd.read_parquet(tmp_path / "by_path")) == 200
