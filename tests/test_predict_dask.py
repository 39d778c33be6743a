"""Dask scale-out: same output as one process, the model loaded once per worker, the user's client left open."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

distributed = pytest.importorskip("distributed")

from photopop.errors import InputError  # noqa: E402
from photopop.inference import predict_catalog  # noqa: E402
from photopop.inference.distributed import model_loads, parse_local  # noqa: E402

from test_predict_stream import make_catalog, make_model  # noqa: E402


@pytest.fixture(scope="module")
def client():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask")
    model = make_model(root / "model")
    a = make_catalog(300, seed=11)
    a.loc[17, "mag_b1"] = np.nan
    pq.write_table(pa.Table.from_pandas(a, preserve_index=False), root / "a.parquet", row_group_size=45)
    make_catalog(130, seed=12, id_offset=10_000).to_csv(root / "b.csv", index=False)
    from astropy.table import Table

    Table.from_pandas(make_catalog(90, seed=13, id_offset=20_000)).write(root / "c.fits")
    return root, model, [root / "a.parquet", root / "b.csv", root / "c.fits"]


def test_dask_equals_single_process(client, data, tmp_path):
    root, _, inputs = data
    kw = dict(chunk_rows=40, id_columns="galaxy_id,spaxel_id", device="cpu")
    single = predict_catalog(root / "model", inputs, tmp_path / "single", **kw)
    before = sum(model_loads(client).values())
    rep = predict_catalog(root / "model", inputs, tmp_path / "dask", client=client, **kw)
    assert rep.n_rows == single.n_rows == 520 and rep.n_parts == single.n_parts == 8 + 4 + 3
    assert rep.n_nan_rows == 1
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "dask"), pd.read_parquet(tmp_path / "single"))
    m1 = json.loads((tmp_path / "single" / "_manifest.json").read_text())
    m2 = json.loads((tmp_path / "dask" / "_manifest.json").read_text())
    assert m1["parts"] == m2["parts"] and m2["complete"] and (tmp_path / "dask" / "_SUCCESS").exists()
    loads = model_loads(client)
    assert set(loads.values()) <= {0, 1} and sum(loads.values()) - before <= 2  # once per worker, not per task
    # a second run reuses the workers' cached models; the user's client stays open
    predict_catalog(root / "model", inputs, tmp_path / "dask2", client=client, **kw)
    assert model_loads(client) == loads
    assert client.status == "running"


def test_dask_resume_and_in_memory_model(client, data, tmp_path):
    root, model, inputs = data
    kw = dict(chunk_rows=40, device="cpu")
    predict_catalog(root / "model", inputs[0], tmp_path / "ref", **kw)
    out = tmp_path / "out"
    predict_catalog(root / "model", inputs[0], out, **kw)
    manifest = json.loads((out / "_manifest.json").read_text())
    for name in ["part-00000-000002.parquet", "part-00000-000005.parquet"]:  # as if lost in a crash
        (out / name).unlink()
    (out / "_SUCCESS").unlink()
    rep = predict_catalog(model, inputs[0], out, client=client, **kw)  # scattered in-memory model
    assert rep.n_parts_written == 2 and rep.n_parts_skipped == 6
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(tmp_path / "ref"))
    assert json.loads((out / "_manifest.json").read_text())["parts"] == manifest["parts"]


def test_dask_task_errors_reach_the_caller(client, data, tmp_path):
    root, _, _ = data
    df = make_catalog(100, seed=3)
    df.loc[60, ["galaxy_id", "spaxel_id"]] = df.loc[61, ["galaxy_id", "spaxel_id"]].to_numpy()
    df.to_parquet(tmp_path / "dup.parquet")
    with pytest.raises(InputError, match="duplicate ids"):
        predict_catalog(root / "model", tmp_path / "dup.parquet", tmp_path / "o", chunk_rows=40,
                        id_columns="galaxy_id,spaxel_id", client=client, device="cpu")
    assert not (tmp_path / "o" / "_SUCCESS").exists()
    assert client.status == "running"


def test_parse_local():
    assert parse_local("local:3") == 3 and parse_local("tcp://10.0.0.1:8786") is None
    assert parse_local("local") >= 1
    with pytest.raises(InputError):
        parse_local("local:x")
