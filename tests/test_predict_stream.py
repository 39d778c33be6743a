"""Streamed catalogue prediction: equality with in-memory prediction, resume after a failure, refusals, CLI."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from photopop.cli.main import main
from photopop.errors import InputError, MismatchError
from photopop.inference import load_model, predict_catalog
from photopop.inference import catalog, chunks, inputs, readers
from photopop.models.normalise import Standardiser
from photopop.models.saved import SavedSEDModel
from photopop.models.sed_cnn import SEDCNN, SEDCNNConfig

from conftest import float32_forward_bound

BANDS = [f"b{i}" for i in range(8)]
MAGS = [f"mag_{b}" for b in BANDS]
N = 500
NAN_ROWS = [7, 123, 499]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_model(path, seed=0):
    """An untrained tiny SED CNN with fitted normalisation, saved as a model folder."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = SEDCNN(len(BANDS), 2, SEDCNNConfig(conv_filters=(2, 4), kernel_sizes=(3, 3), pool_size=2, dense_units=(16, 8)))
    x = rng.normal(20, 1, (200, len(BANDS)))
    model = SavedSEDModel(net, Standardiser.fit(x, BANDS),
                          Standardiser(["log_age", "zh"], np.array([9.5, -0.3]), np.array([0.5, 0.3])),
                          {"bands": BANDS, "filter_system": "toy", "targets": ["log_age", "zh"], "input_kind": "mag"})
    model.save(path)
    return SavedSEDModel.load(path)


def make_catalog(n=N, seed=1, id_offset=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(20, 1, (n, len(BANDS))), columns=MAGS)
    rows = np.arange(n) + id_offset
    df.insert(0, "galaxy_id", rows // 10)
    df.insert(1, "spaxel_id", rows % 10)
    df["r_re"] = rng.uniform(0, 2, n)
    return df


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    model = make_model(root / "model")
    df = make_catalog()
    df.loc[NAN_ROWS[0], "mag_b3"] = np.nan
    df.loc[NAN_ROWS[1], "mag_b0"] = np.inf
    df.loc[NAN_ROWS[2], MAGS] = np.nan
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), root / "cat.parquet", row_group_size=70)
    from astropy.table import Table

    Table.from_pandas(df).write(root / "cat.fits")
    df.to_csv(root / "cat.csv", index=False)
    return root, model, df


def mean_atol(model, mags) -> np.ndarray:
    """Tolerance (n, n_targets) for two float32 evaluations of `model` through different batches or chunks.

    Each is within float32_forward_bound of the exact network output (times the target scale, as the means
    are mean + scale * z in float64), so two differ by at most twice that; NaN rows get 0. For these models
    the bound is 1e-5-5e-5 dex, while rows' predictions differ by ~2e-3 (a row mix-up is caught); the
    measured float32-vs-float64 error is < 0.1% of the bound, a 1-row and a 64-row batch differ by 1.5e-8.
    """
    mags = np.asarray(mags, dtype=np.float64)
    ok = np.isfinite(mags).all(axis=1)
    out = np.zeros((len(mags), len(model.targets)))
    z = float32_forward_bound(model.network, model._inputs(mags[ok]))
    out[ok] = 2 * z[:, :len(model.targets)] * model.target_norm.scale
    return out


def assert_within(actual, desired, atol) -> None:
    """|actual - desired| <= atol elementwise (NaN where both are NaN)."""
    actual, desired = np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(desired))
    diff = np.where(np.isnan(desired), 0.0, np.abs(actual - desired))
    assert np.all(diff <= atol), f"max |difference| {diff.max():.3g}, worst excess {np.max(diff - atol):.3g}"


def expected(model, df):
    """In-memory prediction of the whole table, NaN where a band is missing."""
    ok = np.isfinite(df[MAGS].to_numpy()).all(axis=1)
    out = np.full((len(df), 2), np.nan)
    out[ok] = model.predict(df.loc[ok]).to_numpy()
    return out


@pytest.mark.parametrize("name", ["cat.parquet", "cat.fits", "cat.csv"])
def test_stream_equals_in_memory(setup, tmp_path, name):
    root, model, df = setup
    rep = predict_catalog(root / "model", root / name, tmp_path / "out", chunk_rows=64,
                          id_columns="galaxy_id,spaxel_id", device="cpu")
    out = pd.read_parquet(tmp_path / "out")
    assert list(out.columns) == ["galaxy_id", "spaxel_id", "input_index", "row_index", "log_age", "zh"]
    assert len(out) == N and rep.n_rows == N and rep.n_parts == 8 and rep.n_parts_written == 8
    assert rep.n_nan_rows == len(NAN_ROWS)
    np.testing.assert_array_equal(out["row_index"], np.arange(N))
    np.testing.assert_array_equal(out[["galaxy_id", "spaxel_id"]], df[["galaxy_id", "spaxel_id"]])
    assert_within(out[["log_age", "zh"]].to_numpy(), expected(model, df), mean_atol(model, df[MAGS]))
    assert out.loc[NAN_ROWS, "log_age"].isna().all() and out["log_age"].isna().sum() == len(NAN_ROWS)
    assert (tmp_path / "out" / "_SUCCESS").exists()
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["complete"] and sum(p["rows"] for p in manifest["parts"].values()) == N
    assert sorted(manifest["parts"]) == [f"part-00000-{k:06d}.parquet" for k in range(8)]


def test_parquet_reader_random_ranges_cross_row_groups(setup):
    root, _, df = setup
    src = inputs.inspect_inputs(root / "cat.parquet")[0]
    cols = ["spaxel_id", "mag_b2"]
    with readers.open_reader(src, cols) as reader:
        for start, stop in [(0, 64), (64, 128), (60, 211), (10, 15), (300, 500), (139, 141), (499, 500)]:
            got = reader.read(start, stop)
            pd.testing.assert_frame_equal(got, df[cols].iloc[start:stop].reset_index(drop=True))


def test_dataset_folder_and_several_inputs(setup, tmp_path):
    root, model, _ = setup
    folder = tmp_path / "dataset"
    folder.mkdir()
    a, b, c = make_catalog(120, seed=3), make_catalog(90, seed=4, id_offset=1000), make_catalog(50, seed=5, id_offset=5000)
    a.to_parquet(folder / "x-0.parquet")
    b.to_parquet(folder / "x-1.parquet")
    (folder / "_ignored.parquet").write_bytes(b"not parquet")
    c.to_csv(tmp_path / "c.csv", index=False)
    rep = predict_catalog(model, [folder, tmp_path / "c.csv"], tmp_path / "out", chunk_rows=40,
                          id_columns=["galaxy_id", "spaxel_id"], device="cpu")
    out = pd.read_parquet(tmp_path / "out")
    assert rep.n_rows == 260 and out["input_index"].value_counts().sort_index().tolist() == [120, 90, 50]
    both = pd.concat([a, b, c], ignore_index=True)
    assert_within(out[["log_age", "zh"]].to_numpy(), model.predict(both).to_numpy(), mean_atol(model, both[MAGS]))


@pytest.mark.parametrize("after_write", [False, True])
def test_resume_after_injected_failure(setup, tmp_path, monkeypatch, after_write):
    root, _, _ = setup
    kw = dict(chunk_rows=64, id_columns="galaxy_id,spaxel_id", device="cpu")
    predict_catalog(root / "model", root / "cat.parquet", tmp_path / "full", **kw)
    reference = pd.read_parquet(tmp_path / "full")

    real = chunks.write_part  # process_chunk writes every part through it
    calls = []

    def flaky(df, path, metadata=None):
        calls.append(path.name)
        if len(calls) == 4:  # chunk k = 3
            if after_write:  # crash between the part's rename and the manifest update
                real(df, path, metadata)
            raise RuntimeError("injected failure")
        real(df, path, metadata)

    monkeypatch.setattr(chunks, "write_part", flaky)
    with pytest.raises(RuntimeError, match="injected"):
        predict_catalog(root / "model", root / "cat.parquet", tmp_path / "out", **kw)
    monkeypatch.setattr(chunks, "write_part", real)
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert sorted(manifest["parts"]) == [f"part-00000-{k:06d}.parquet" for k in range(3)]
    assert not (tmp_path / "out" / "_SUCCESS").exists() and not manifest["complete"]
    (tmp_path / "out" / ".part-00000-000003.parquet.abc.tmp").write_bytes(b"half a file")  # a killed writer's leftover

    rep = predict_catalog(root / "model", root / "cat.parquet", tmp_path / "out", **kw)
    assert rep.n_parts_skipped == 3 and rep.n_parts_written == 5 and rep.n_rows == N
    resumed = pd.read_parquet(tmp_path / "out")
    pd.testing.assert_frame_equal(resumed, reference)
    assert not resumed.duplicated(["galaxy_id", "spaxel_id"]).any()
    assert (tmp_path / "out" / "_SUCCESS").exists()
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "out").iterdir())


def test_mismatched_bands_or_system_refused_before_writing(setup, tmp_path):
    root, model, df = setup
    df.drop(columns=["mag_b5"]).to_parquet(tmp_path / "missing.parquet")
    with pytest.raises(MismatchError, match=r"missing band\(s\) \['b5'\]"):
        predict_catalog(model, [root / "cat.parquet", tmp_path / "missing.parquet"], tmp_path / "out1", device="cpu")
    assert not (tmp_path / "out1").exists()
    extra = df.assign(mag_b9=20.0)
    extra.to_csv(tmp_path / "extra.csv", index=False)
    with pytest.raises(MismatchError, match="extra band"):
        predict_catalog(model, tmp_path / "extra.csv", tmp_path / "out2", device="cpu")
    assert not (tmp_path / "out2").exists()
    rep = predict_catalog(model, tmp_path / "extra.csv", tmp_path / "out2", ignore_extra_bands=True, device="cpu")
    assert rep.n_rows == N
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**table.schema.metadata, b"filter_system": b"sdss"})
    pq.write_table(table, tmp_path / "sdss.parquet")
    with pytest.raises(MismatchError, match="filter system"):
        predict_catalog(model, tmp_path / "sdss.parquet", tmp_path / "out3", device="cpu")
    with pytest.raises(MismatchError, match="filter system"):
        predict_catalog(model, root / "cat.csv", tmp_path / "out3", filter_system="jpas", device="cpu")
    assert not (tmp_path / "out3").exists()


def test_duplicate_ids_refused(setup, tmp_path):
    root, model, df = setup
    dup = df.copy()
    dup.loc[30, ["galaxy_id", "spaxel_id"]] = dup.loc[31, ["galaxy_id", "spaxel_id"]].to_numpy()
    dup.to_parquet(tmp_path / "dup_chunk.parquet")
    with pytest.raises(InputError, match="duplicate ids"):
        predict_catalog(model, tmp_path / "dup_chunk.parquet", tmp_path / "o1", chunk_rows=64,
                        id_columns="galaxy_id,spaxel_id", device="cpu")
    # across chunks and inputs: caught by the final pass (also with hash buckets), no _SUCCESS
    for max_ids in (10**6, 150):
        out = tmp_path / f"o2-{max_ids}"
        with pytest.raises(InputError, match=r"duplicate ids .* at input 0 row (\d+), input 1 row \1;"):
            predict_catalog(model, [root / "cat.parquet", root / "cat.csv"], out, chunk_rows=64,
                            id_columns="galaxy_id,spaxel_id", device="cpu", max_ids_in_memory=max_ids)
        assert not (out / "_SUCCESS").exists()
    with pytest.raises(InputError, match="id column"):
        predict_catalog(model, root / "cat.parquet", tmp_path / "o3", id_columns="objid", device="cpu")
    assert not (tmp_path / "o3").exists()


def test_nan_policy_and_rerun_rules(setup, tmp_path):
    root, model, df = setup
    with pytest.raises(InputError, match=r"3 row\(s\) have NaN/inf"):
        predict_catalog(model, root / "cat.parquet", tmp_path / "o", chunk_rows=N, on_nan="refuse", device="cpu")
    ok = df.drop(index=NAN_ROWS)
    ok.to_parquet(tmp_path / "ok.parquet")
    predict_catalog(model, tmp_path / "ok.parquet", tmp_path / "o2", chunk_rows=100, on_nan="refuse", device="cpu")
    rep = predict_catalog(model, tmp_path / "ok.parquet", tmp_path / "o2", chunk_rows=100, on_nan="refuse", device="cpu")
    assert rep.n_parts_written == 0 and rep.n_parts_skipped == 5
    with pytest.raises(MismatchError, match="chunk_rows"):
        predict_catalog(model, tmp_path / "ok.parquet", tmp_path / "o2", chunk_rows=50, on_nan="refuse", device="cpu")
    rep = predict_catalog(model, tmp_path / "ok.parquet", tmp_path / "o2", chunk_rows=50, on_nan="refuse",
                          overwrite=True, device="cpu")
    assert rep.n_parts == 10 and len(list((tmp_path / "o2").glob("part-*.parquet"))) == 10
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="did not write"):
        predict_catalog(model, tmp_path / "ok.parquet", tmp_path / "user", overwrite=True, device="cpu")
    assert (tmp_path / "user" / "notes.txt").exists()


def test_sed_table_folder_declares_filter_system(setup, tmp_path):
    from photopop.datasets.sed_table import SEDTable

    root, model, df = setup
    ok = df.drop(index=NAN_ROWS).reset_index(drop=True)
    ok = ok.assign(**{f"magerr_{b}": 0.02 for b in BANDS})
    SEDTable(ok, meta={"bands": BANDS, "filter_system": "toy"}).write(tmp_path / "toy_table")
    rep = predict_catalog(model, tmp_path / "toy_table", tmp_path / "o", device="cpu")
    assert rep.n_rows == len(ok) and rep.inputs[0].endswith("spaxels.parquet")
    SEDTable(ok, meta={"bands": BANDS, "filter_system": "jpas"}).write(tmp_path / "jpas_table")
    with pytest.raises(MismatchError, match="trained on 'toy', the input is 'jpas'"):
        predict_catalog(model, tmp_path / "jpas_table", tmp_path / "o2", device="cpu")
    assert not (tmp_path / "o2").exists()


def test_finished_run_is_not_read_again(setup, tmp_path, monkeypatch):
    root, model, _ = setup
    first = predict_catalog(model, root / "cat.csv", tmp_path / "o", chunk_rows=64, id_columns="galaxy_id,spaxel_id",
                            device="cpu")

    def boom(*a, **k):
        raise AssertionError("should not be called")

    monkeypatch.setattr(catalog, "iter_chunks", boom)
    monkeypatch.setattr(catalog, "check_unique_ids", boom)
    again = predict_catalog(model, root / "cat.csv", tmp_path / "o", chunk_rows=64, id_columns="galaxy_id,spaxel_id",
                            device="cpu")
    assert again.n_parts_skipped == first.n_parts == 8 and again.n_parts_written == 0 and again.n_rows == N
    assert (tmp_path / "o" / "_SUCCESS").exists()


class SigmaPredictor:
    """A predictor in the protocol's shape that also returns <target>_sigma (as an ensemble would)."""

    def __init__(self, inner):
        self.inner = inner
        self.bands, self.targets, self.filter_system = inner.bands, inner.targets, inner.filter_system
        self.model_hash = "sigma-" + inner.model_hash

    def predict_frame(self, df):
        out = self.inner.predict_frame(df)
        for t in self.targets:
            out[f"{t}_sigma"] = 0.1 + 0.01 * df["mag_b0"].to_numpy()
        return out


def test_sigma_columns_pass_through(setup, tmp_path):
    root, model, df = setup
    pred = SigmaPredictor(load_model(root / "model", device="cpu"))
    rep = predict_catalog(pred, root / "cat.parquet", tmp_path / "o", chunk_rows=128, device="cpu")
    out = pd.read_parquet(tmp_path / "o")
    assert rep.columns[-4:] == ["log_age", "zh", "log_age_sigma", "zh_sigma"]
    ok = np.isfinite(df[MAGS].to_numpy()).all(axis=1)
    np.testing.assert_allclose(out.loc[ok, "zh_sigma"], 0.1 + 0.01 * df.loc[ok, "mag_b0"], rtol=1e-12)
    assert out.loc[~ok, "zh_sigma"].isna().all()


def test_load_model_dispatch(setup, tmp_path):
    root, model, _ = setup
    pred = load_model(root / "model", device="cpu")
    assert pred.bands == BANDS and pred.targets == ["log_age", "zh"] and len(pred.model_hash) == 64
    image = tmp_path / "image_model"
    image.mkdir()
    (image / "meta.json").write_text(json.dumps({"input_kind": "image", "bands": ["g"], "targets": ["zh"]}))
    with pytest.raises(InputError, match="image model"):
        load_model(image)
    (image / "meta.json").write_text(json.dumps({"kind": "mystery", "bands": ["g"], "targets": ["zh"]}))
    with pytest.raises(InputError, match="unknown model kind 'mystery'"):
        load_model(image)


def test_cli_predict_and_corrupt_input(setup, tmp_path, capsys):
    root, model, df = setup
    code = main(["predict", str(root / "model"), str(root / "cat.fits"), "--out", str(tmp_path / "out"),
                 "--chunk-rows", "200", "--id-columns", "galaxy_id,spaxel_id", "--device", "cpu", "--quiet"])
    assert code == 0
    assert "500 rows in 3 parts" in capsys.readouterr().out
    assert len(pd.read_parquet(tmp_path / "out")) == N
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 this is not really parquet")
    code = main(["predict", str(root / "model"), str(bad), "--out", str(tmp_path / "out2"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "broken.parquet" in err and err.startswith("photopop: error:")
    assert not (tmp_path / "out2").exists()
    half = tmp_path / "half.fits"
    half.write_bytes((root / "cat.fits").read_bytes()[:4000])
    code = main(["predict", str(root / "model"), str(half), "--out", str(tmp_path / "out3"), "--quiet"])
    assert code == 2 and "half.fits" in capsys.readouterr().err
