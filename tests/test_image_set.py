"""ImageSet: round trip, lazy indexed reads, validation, atomic writes."""

from __future__ import annotations

import json
import pickle

import h5py
import numpy as np
import pandas as pd
import pytest

from photopop.datasets.image_set import ImageSet, ImageSetWriter, write_image_set
from photopop.errors import InputError


def _data(n=6, h=8, w=10, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, 3, h, w)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)
    cat = pd.DataFrame({"id": np.arange(100, 100 + n, dtype=np.int64), "oh": rng.normal(9, 0.1, n)})
    return cat, images, rgb


def test_round_trip_and_indexing(tmp_path):
    cat, images, rgb = _data()
    s = write_image_set(tmp_path / "set", cat, images, rgb, meta={"kind": "test", "seed": 3}, png=True)
    assert len(s) == 6
    assert s.bands == ("g", "r", "i") and s.rgb_channels == ("i", "r", "g")
    assert s.image_shape == (8, 10) and s.pixel_scale_arcsec == pytest.approx(0.296)
    assert s.has_images and s.has_rgb
    pd.testing.assert_frame_equal(s.catalog, cat)
    idx = np.array([4, 1, 1, 5, 0])  # unsorted, repeated
    np.testing.assert_array_equal(s.images(idx), images[idx])
    np.testing.assert_array_equal(s.rgb(idx), rgb[idx])
    np.testing.assert_array_equal(s.images(2), images[2])
    assert s.images(2).shape == (3, 8, 10)
    np.testing.assert_array_equal(s.images(slice(1, 4)), images[1:4])
    np.testing.assert_array_equal(s.images([-1]), images[[5]])
    assert s.images([]).shape == (0, 3, 8, 10)
    meta = json.loads((tmp_path / "set" / "meta.json").read_text())
    assert meta["kind"] == "test" and meta["seed"] == 3 and meta["n"] == 6
    with h5py.File(tmp_path / "set" / "images.h5") as h5:
        assert h5["images"].chunks == (1, 3, 8, 10)
        assert h5["images"].attrs["units"] == "nanomaggies per pixel"
        assert list(h5["images"].attrs["bands"]) == ["g", "r", "i"]
    pngs = sorted(p.name for p in (tmp_path / "set" / "cutouts").iterdir())
    assert pngs == [f"{i}.png" for i in range(100, 106)]
    from PIL import Image

    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "set" / "cutouts" / "103.png")), rgb[3])


def test_pickle_reopens(tmp_path):
    cat, images, rgb = _data()
    s = write_image_set(tmp_path / "set", cat, images, rgb)
    s.images([0])  # opens the file
    s2 = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(s2.images([3]), images[[3]])
    s.close()
    s2.close()


def test_bad_indices(tmp_path):
    cat, images, rgb = _data()
    s = write_image_set(tmp_path / "set", cat, images, rgb)
    with pytest.raises(InputError, match="out of range"):
        s.images([6])
    with pytest.raises(InputError, match="boolean"):
        s.images(np.ones(6, dtype=bool))
    with pytest.raises(InputError, match="integers"):
        s.images([0.5])


def test_rgb_only_set(tmp_path):
    cat, _, rgb = _data()
    s = write_image_set(tmp_path / "set", cat, rgb=rgb)
    assert not s.has_images
    with pytest.raises(InputError, match="no calibrated"):
        s.images([0])
    np.testing.assert_array_equal(s.rgb([2]), rgb[[2]])


def test_validation_errors(tmp_path):
    cat, images, rgb = _data()
    path = tmp_path / "set"
    write_image_set(path, cat, images, rgb)
    with pytest.raises(InputError, match="no such directory"):
        ImageSet.open(tmp_path / "nope")
    # ids out of order
    cat.iloc[::-1].reset_index(drop=True).to_parquet(path / "catalog.parquet")
    with pytest.raises(InputError, match="catalog.parquet: checksum mismatch"):  # changed after writing
        ImageSet.open(path)
    (path / "SHA256SUMS").unlink()  # a folder assembled by hand (no checksums): checked on its contents
    with pytest.raises(InputError, match="'ids' does not match"):
        ImageSet.open(path)
    # fewer catalogue rows than images
    cat.head(4).to_parquet(path / "catalog.parquet")
    with pytest.raises(InputError, match="has 6 rows but the catalogue has 4"):
        ImageSet.open(path)
    cat.to_parquet(path / "catalog.parquet")
    ImageSet.open(path)
    # wrong dtype
    with h5py.File(path / "images.h5", "a") as h5:
        del h5["images"]
        h5.create_dataset("images", data=images.astype(np.float64))
    with pytest.raises(InputError, match="float32"):
        ImageSet.open(path)
    # wrong band order
    with h5py.File(path / "images.h5", "a") as h5:
        del h5["images"]
        d = h5.create_dataset("images", data=images)
        d.attrs["bands"] = ["i", "r", "g"]
    with pytest.raises(InputError, match="bands must be"):
        ImageSet.open(path)
    (path / "meta.json").unlink()
    with pytest.raises(InputError, match="missing meta.json"):
        ImageSet.open(path)


def test_writer_refuses_bad_input(tmp_path):
    cat, images, rgb = _data()
    dup = cat.copy()
    dup.loc[1, "id"] = dup.loc[0, "id"]
    with pytest.raises(InputError, match="duplicate"):
        write_image_set(tmp_path / "a", dup, images, rgb)
    with pytest.raises(InputError, match="images block"):
        write_image_set(tmp_path / "b", cat, images[:, :2], rgb)
    with pytest.raises(InputError, match="rgb block"):
        write_image_set(tmp_path / "c", cat, images, rgb.astype(np.int16))
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_atomic_on_failure(tmp_path):
    cat, images, rgb = _data()
    path = tmp_path / "set"
    write_image_set(path, cat, images, rgb)
    # an incomplete second write must leave the first set intact
    with pytest.raises(InputError, match="never written"):
        with ImageSetWriter(path, cat, image_shape=(8, 10)) as w:
            w.write([0, 1], images=images[:2], rgb=rgb[:2])
    np.testing.assert_array_equal(ImageSet.open(path).images([5]), images[[5]])
    with pytest.raises(RuntimeError):
        with ImageSetWriter(tmp_path / "other", cat, image_shape=(8, 10)) as w:
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_streaming_writer_out_of_order(tmp_path):
    cat, images, rgb = _data(n=7)
    with ImageSetWriter(tmp_path / "s", cat, image_shape=(8, 10), meta={"kind": "x"}) as w:
        w.write([6, 2], images=images[[6, 2]], rgb=rgb[[6, 2]])
        w.write(np.arange(0, 2), images=images[:2], rgb=rgb[:2])
        w.write([3, 4, 5], images=images[3:6], rgb=rgb[3:6])
    s = ImageSet.open(tmp_path / "s")
    np.testing.assert_array_equal(s.images(np.arange(7)), images)
    np.testing.assert_array_equal(s.rgb(np.arange(7)), rgb)
