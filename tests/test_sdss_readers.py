"""SDSS catalogue reader, the Wu & Boada cuts (counted by hand), and cutout matching/loading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from photopop.datasets.cutouts import cutouts_to_image_set, load_cutouts, match_cutouts, read_cutout
from photopop.datasets.sdss import (REQUIRED_COLUMNS, apply_wu_boada_cuts, read_sdss_catalog,
                                    to_image_catalog)
from photopop.errors import InputError

BIG_ID = 1237648720693755918  # a real-looking 64-bit SDSS objID (loses precision as float64)


def _catalog() -> pd.DataFrame:
    """12 rows; the comment says which cut (first failing) removes each row."""
    n = 12
    df = pd.DataFrame({
        "objID": BIG_ID + np.arange(n, dtype=np.int64),
        "ra": np.linspace(150.0, 151.0, n), "dec": np.linspace(2.0, 2.5, n),
        "z": np.full(n, 0.08), "zErr": np.full(n, 1e-4),
        "modelMag_u": np.full(n, 18.5), "modelMag_g": np.full(n, 17.5), "modelMag_r": np.full(n, 17.0),
        "modelMag_i": np.full(n, 16.7), "modelMag_z": np.full(n, 16.5),
        "petroMag_r": np.full(n, 17.2), "oh_p50": np.full(n, 9.0), "lgm_tot_p50": np.full(n, 10.3),
        "sfr_tot_p50": np.full(n, 0.4), "modelMagErr_r": np.full(n, 0.01),
    })
    df.loc[1, "modelMag_u"] = 26.0            # cut 1 (ugriz range)
    df.loc[2, "modelMag_z"] = 9.5             # cut 1
    df.loc[3, ["modelMag_u", "modelMag_r"]] = [17.0, 17.1]  # cut 2 (u - r = -0.1)
    df.loc[4, ["modelMag_u", "modelMag_r"]] = [23.5, 17.0]  # cut 2 (u - r = 6.5)
    df.loc[5, "zErr"] = 0.02                  # cut 3
    df.loc[6, "z"] = 0.015                    # cut 4
    df.loc[7, "petroMag_r"] = 18.2            # cut 5
    df.loc[8, "oh_p50"] = -9999.0             # cut 6
    df.loc[10, "modelMag_g"] = np.nan         # cut 1 (NaN fails)
    df.loc[11, ["modelMag_i", "petroMag_r"]] = [25.5, 18.5]  # fails cuts 1 and 5: charged to cut 1
    return df  # rows 0 and 9 survive


def test_cuts_counts_by_hand():
    kept, rep = apply_wu_boada_cuts(_catalog())
    assert [s[1] for s in rep.steps] == [4, 2, 1, 1, 1, 1]
    assert [s[2] for s in rep.steps] == [8, 6, 5, 4, 3, 2]
    assert rep.n_in == 12 and rep.n_out == 2 and rep.total_removed == 10
    assert rep.removed("zErr < 0.01") == 1
    assert kept["objID"].tolist() == [BIG_ID, BIG_ID + 9]
    frame = rep.to_frame()
    assert frame["cut"].iloc[-1] == "total" and frame["removed"].iloc[-1] == 10
    assert "petroMag_r < 18" in str(rep)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "fits"])
def test_read_each_format_case_insensitive(tmp_path, fmt):
    df = _catalog()
    # different spellings per format
    if fmt == "fits":
        df.columns = [c.upper() for c in df.columns]
    elif fmt == "csv":
        df.columns = [c.lower() for c in df.columns]
    path = tmp_path / f"cat.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "parquet":
        df.to_parquet(path)
    else:
        from astropy.table import Table

        Table.from_pandas(df).write(path)
    out = read_sdss_catalog(path)
    assert set(REQUIRED_COLUMNS) <= set(out.columns)
    assert out["objID"].dtype == np.int64 and out["objID"].iloc[3] == BIG_ID + 3  # exact 64-bit ids
    assert "modelMagErr_r" in out.columns
    kept, rep = apply_wu_boada_cuts(out)
    assert rep.n_out == 2


def test_missing_and_duplicate_columns(tmp_path):
    df = _catalog().drop(columns=["zErr", "oh_p50"])
    df.to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(InputError) as exc:
        read_sdss_catalog(tmp_path / "a.csv")
    assert "zErr" in str(exc.value) and "oh_p50" in str(exc.value) and "a.csv" in str(exc.value)
    df = _catalog()
    df.loc[5, "objID"] = df.loc[2, "objID"]
    df.to_parquet(tmp_path / "b.parquet")
    with pytest.raises(InputError, match="duplicate objID"):
        read_sdss_catalog(tmp_path / "b.parquet")
    df = _catalog()
    df["objID"] = df["objID"].astype(float)
    df.to_parquet(tmp_path / "c.parquet")
    with pytest.raises(InputError, match="floating point"):
        read_sdss_catalog(tmp_path / "c.parquet")


def test_to_image_catalog():
    out = to_image_catalog(_catalog())
    assert out["id"].iloc[0] == BIG_ID
    assert np.isnan(out["oh"].iloc[8]) and out["oh"].iloc[0] == 9.0
    assert out["log_mstar"].iloc[0] == 10.3 and out["sfr"].iloc[0] == pytest.approx(10**0.4)
    assert out["mag_r"].iloc[0] == 17.0 and out["magerr_r"].iloc[0] == 0.01
    assert out["r_petro"].iloc[7] == 18.2 and out["redshift"].iloc[0] == 0.08


# ------------------------------------------------------------------------------------------- cutouts
def _png(path, value=(200, 100, 50), size=16):
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)


def _cutout_folder(tmp_path):
    folder = tmp_path / "cutouts"
    folder.mkdir()
    ids = [BIG_ID + k for k in range(6)]
    _png(folder / f"{ids[0]}.png")
    Image.fromarray(np.full((16, 16, 3), (10, 120, 240), np.uint8)).save(folder / f"{ids[1]}.jpg", quality=95)
    _png(folder / f"{ids[2]}.png", value=(1, 2, 3))
    # ids[3]: missing; ids[4]: truncated JPEG; ids[5]: wrong size
    full = folder / "tmp.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(full)
    data = full.read_bytes()
    full.unlink()
    (folder / f"{ids[4]}.jpg").write_bytes(data[: len(data) // 2])
    _png(folder / f"{ids[5]}.png", size=20)
    (folder / "notes.txt").write_text("ignored")
    return folder, pd.DataFrame({"objID": ids, "oh": np.linspace(8.5, 9.0, 6)})


def test_match_cutouts_lists_problems(tmp_path):
    folder, cat = _cutout_folder(tmp_path)
    m = match_cutouts(cat, folder, log_path=tmp_path / "missing.csv")
    assert m.kind == "rgb" and m.image_shape == (16, 16)
    assert m.catalog["id"].tolist() == [BIG_ID, BIG_ID + 1, BIG_ID + 2]
    reasons = dict(zip(m.missing["id"], m.missing["reason"]))
    assert set(reasons) == {BIG_ID + 3, BIG_ID + 4, BIG_ID + 5}
    assert reasons[BIG_ID + 3] == "missing file"
    assert reasons[BIG_ID + 4].startswith("unreadable")
    assert "differs" in reasons[BIG_ID + 5]
    logged = pd.read_csv(tmp_path / "missing.csv")
    assert sorted(logged["id"]) == [BIG_ID + 3, BIG_ID + 4, BIG_ID + 5]
    arr = load_cutouts(m.paths)
    assert arr.shape == (3, 16, 16, 3) and arr.dtype == np.uint8
    # channel order: file R, G, B = i, r, g is kept as is
    np.testing.assert_array_equal(arr[0, 0, 0], [200, 100, 50])
    np.testing.assert_allclose(arr[1, 8, 8], [10, 120, 240], atol=6)  # JPEG, lossy


def test_cutouts_to_image_set(tmp_path):
    folder, cat = _cutout_folder(tmp_path)
    s, m = cutouts_to_image_set(cat, folder, tmp_path / "set", chunk=2)
    assert len(s) == 3 and not s.has_images and s.has_rgb
    np.testing.assert_array_equal(s.rgb([2])[0, 0, 0], [1, 2, 3])
    assert s.catalog["oh"].tolist() == pytest.approx([8.5, 8.6, 8.7])
    assert len(pd.read_csv(tmp_path / "set" / "missing.csv")) == 3
    assert s.meta["kind"] == "cutouts" and s.meta["n_missing"] == 3


def test_fits_cutouts_band_order(tmp_path):
    from astropy.io import fits

    folder = tmp_path / "fits"
    folder.mkdir()
    rows = np.arange(8, dtype=np.float32)[:, None] * np.ones((1, 8), np.float32)  # value = FITS row index
    cube = np.stack([rows + v for v in (3.0, 2.0, 1.0)])  # i, r, g
    hdu = fits.PrimaryHDU(cube)
    hdu.header["BANDS"] = "i,r,g"
    hdu.writeto(folder / "5.fits")
    fits.PrimaryHDU(np.zeros((2, 8, 8), np.float32)).writeto(folder / "6.fits")
    kind, arr = read_cutout(folder / "5.fits")
    assert kind == "images"
    np.testing.assert_array_equal(arr[:, -1, 0], [1.0, 2.0, 3.0])  # reordered to g, r, i
    np.testing.assert_array_equal(arr[0, :, 0], 1.0 + np.arange(8)[::-1])  # top row (last FITS row) first
    s, m = cutouts_to_image_set(pd.DataFrame({"id": [5, 6]}), folder, tmp_path / "set")
    assert len(s) == 1 and s.has_images and not s.has_rgb
    assert m.missing["id"].tolist() == [6]
    # a folder mixing kinds is refused
    _png(folder / "7.png")
    with pytest.raises(InputError, match="mixes FITS"):
        match_cutouts(pd.DataFrame({"id": [5, 7]}), folder)


def test_cli_check_and_build(tmp_path, capsys):
    from photopop.cli.main import main

    folder, cat = _cutout_folder(tmp_path)
    full = _catalog().iloc[:6].copy()
    full["objID"] = cat["objID"].to_numpy()
    full.to_csv(tmp_path / "cat.csv", index=False)
    rc = main(["images", "check-cutouts", str(tmp_path / "cat.csv"), str(folder), "--log", str(tmp_path / "m.csv")])
    assert rc == 3 and len(pd.read_csv(tmp_path / "m.csv")) == 3
    rc = main(["images", "build", str(tmp_path / "cat.csv"), str(folder), "--out", str(tmp_path / "set"), "--cuts"])
    assert rc == 0
    from photopop.datasets.image_set import ImageSet

    s = ImageSet.open(tmp_path / "set")
    # rows 0-5 of the catalogue: cuts keep 0 only (1-5 fail a cut); row 0 has a cutout
    assert s.catalog["id"].tolist() == [BIG_ID]
    assert s.catalog["oh"].tolist() == [9.0]
