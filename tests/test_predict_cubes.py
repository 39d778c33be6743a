"""Image cubes -> per-pixel maps that keep the celestial WCS; both layouts, units, masks, CLI."""

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from photopop.cli.main import main
from photopop.errors import InputError, MismatchError
from photopop.inference import predict_cube, read_cube_layout
from photopop.inference.run import predict_inputs

from conftest import U32
from test_predict_stream import BANDS, assert_within, make_model, mean_atol

NY, NX = 7, 5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def celestial():
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.1, 2.2]
    w.wcs.crpix = [3.0, 4.0]
    w.wcs.cdelt = [-0.27 / 3600, 0.27 / 3600]
    return w


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    """A (bands, y, x) cube in nanomaggies with a BANDS table, a MASK, a NaN and a negative flux."""
    root = tmp_path_factory.mktemp("cube")
    model = make_model(root / "model")
    rng = np.random.default_rng(7)
    mags = rng.normal(20, 0.7, (len(BANDS), NY, NX))
    nmgy = 10 ** (-0.4 * (mags - 22.5))
    nmgy[4, 2, 3] = np.nan  # missing band -> NaN maps at (y=2, x=3)
    nmgy[1, 1, 1] = -0.5  # non-detection -> NaN at (1, 1)
    mask = np.zeros((NY, NX), dtype=np.int16)
    mask[6, 0] = 1  # masked pixel -> NaN at (6, 0)
    header = celestial().to_header()
    header["BUNIT"] = "nmgy"
    header["FILTSYS"] = "toy"
    header["OBJECT"] = "NGC 0001"
    bands = fits.BinTableHDU(Table({"band": BANDS}), name="BANDS")
    fits.HDUList([fits.PrimaryHDU(nmgy, header=header), fits.ImageHDU(mask, name="MASK"), bands]).writeto(root / "cube.fits")
    return root, model, mags, nmgy


def pixel_prediction(model, mags_pixel):
    return model.predict(pd.DataFrame([mags_pixel], columns=[f"mag_{b}" for b in BANDS])).to_numpy()[0]


def test_cube_to_maps_keeps_wcs_and_values(cube, tmp_path):
    root, model, mags, _ = cube
    rep = predict_cube(root / "model", root / "cube.fits", tmp_path / "maps.fits", chunk_rows=11, device="cpu")
    assert rep.shape == (NY, NX) and rep.n_pixels == NY * NX and rep.n_nan_pixels == 3 and rep.has_wcs
    with fits.open(tmp_path / "maps.fits") as hdul, fits.open(root / "cube.fits") as src:
        assert [h.name for h in hdul[1:]] == ["LOG_AGE", "ZH"]
        assert hdul[0].header["PPMODEL"] == load_hash(root / "model")
        for h in hdul[1:]:
            assert h.data.shape == (NY, NX)
            for key in ("CRVAL1", "CRVAL2", "CDELT1", "CDELT2", "CRPIX1", "CRPIX2", "CTYPE1", "CTYPE2"):
                assert h.header[key] == src[0].header[key], key
            assert h.header["OBJECT"] == "NGC 0001"
            w_in, w_out = WCS(src[0].header).celestial, WCS(h.header)
            assert np.allclose(w_in.pixel_to_world_values(3, 2), w_out.pixel_to_world_values(3, 2))
        age, zh = hdul["LOG_AGE"].data, hdul["ZH"].data
        assert hdul["LOG_AGE"].header["BUNIT"] == "dex(yr)"
        bad = np.zeros((NY, NX), bool)
        bad[2, 3] = bad[1, 1] = bad[6, 0] = True
        assert np.isnan(age[bad]).all() and np.isfinite(age[~bad]).all() and np.isnan(zh[bad]).all()
        # maps are float32: the float32 network paths (one pixel vs chunks of 11) plus rounding to float32
        for y, x in [(0, 0), (3, 4), (6, 1), (2, 2)]:  # a pixel equals the catalogue prediction of its SED
            want = pixel_prediction(model, mags[:, y, x])
            assert_within([age[y, x], zh[y, x]], want, mean_atol(model, mags[None, :, y, x])[0] + U32 * np.abs(want))
        # every valid pixel at once, against one in-memory catalogue prediction
        table = pd.DataFrame(mags.reshape(len(BANDS), -1).T, columns=[f"mag_{b}" for b in BANDS])
        want = model.predict(table).to_numpy().reshape(NY, NX, 2)
        tol = mean_atol(model, table.to_numpy()).reshape(NY, NX, 2)[..., 0] + U32 * np.abs(want[..., 0])
        assert_within(age[~bad], want[..., 0][~bad], tol[~bad])


def load_hash(path):
    from photopop.inference import load_model

    return load_model(path, device="cpu").model_hash


def test_per_band_layout_and_units_agree(cube, tmp_path):
    root, model, mags, nmgy = cube
    w = celestial().to_header()
    hdus = [fits.PrimaryHDU(header=fits.Header({"BUNIT": "mag(AB)"}))]
    for k in reversed(range(len(BANDS))):  # reversed order: bands are matched by name
        h = w.copy()
        h["BAND"] = BANDS[k]
        data = np.where(nmgy[k] > 0, -2.5 * np.log10(np.where(nmgy[k] > 0, nmgy[k], 1.0)) + 22.5, np.nan)
        hdus.append(fits.ImageHDU(data.astype(np.float64), header=h, name=f"IMG{k}"))
    hdus.append(fits.ImageHDU(np.zeros((NY, NX), np.uint8) + (np.arange(NY)[:, None] == 6) * (np.arange(NX) == 0),
                              name="MASK"))
    fits.HDUList(hdus).writeto(tmp_path / "perband.fits")
    lay = read_cube_layout(tmp_path / "perband.fits")
    assert lay.layout == "per-band" and lay.bands == BANDS[::-1] and lay.units[0] == "mag(AB)"
    predict_cube(model, tmp_path / "perband.fits", tmp_path / "a.fits", device="cpu")
    predict_cube(model, root / "cube.fits", tmp_path / "b.fits", device="cpu")
    # the same cube in Jy with BAND1..n keywords instead of a BANDS table
    h = celestial().to_header()
    h["BUNIT"] = "Jy"
    for k, b in enumerate(BANDS):
        h[f"BAND{k + 1}"] = b
    fits.HDUList([fits.PrimaryHDU(nmgy * 3631e-9, header=h),
                  fits.ImageHDU(fits.getdata(root / "cube.fits", "MASK"), name="MASK")]).writeto(tmp_path / "jy.fits")
    predict_cube(model, tmp_path / "jy.fits", tmp_path / "c.fits", device="cpu")
    a, b, c = (fits.getdata(tmp_path / n, "LOG_AGE") for n in ("a.fits", "b.fits", "c.fits"))
    # the same SEDs through float32 network evaluations, each map rounded to float32 (2 half-ulps)
    tol = mean_atol(model, mags.reshape(len(BANDS), -1).T)[:, 0].reshape(a.shape) + 2 * U32 * np.abs(np.nan_to_num(b))
    assert_within(a, b, tol)
    assert_within(c, b, tol)
    assert np.isnan(a).sum() == 3


def test_sigma_maps(cube, tmp_path):
    from photopop.inference import load_model
    from test_predict_stream import SigmaPredictor

    root, _, mags, _ = cube
    predict_cube(SigmaPredictor(load_model(root / "model", device="cpu")), root / "cube.fits", tmp_path / "s.fits")
    with fits.open(tmp_path / "s.fits") as hdul:
        assert [h.name for h in hdul[1:]] == ["LOG_AGE", "ZH", "LOG_AGE_SIGMA", "ZH_SIGMA"]
        assert hdul["ZH_SIGMA"].header["BUNIT"] == "dex" and hdul["ZH_SIGMA"].header["CTYPE1"] == "RA---TAN"
        np.testing.assert_allclose(hdul["ZH_SIGMA"].data[3, 4], 0.1 + 0.01 * mags[0, 3, 4], rtol=1e-6)


def test_cube_refusals(cube, tmp_path):
    root, model, _, nmgy = cube
    h = celestial().to_header()
    h["BUNIT"] = "nmgy"
    for k, b in enumerate(BANDS):
        h[f"BAND{k + 1}"] = b if k != 2 else "u"
    fits.PrimaryHDU(nmgy, header=h).writeto(tmp_path / "wrong.fits")
    with pytest.raises(MismatchError, match=r"missing band\(s\) \['b2'\]"):
        predict_cube(model, tmp_path / "wrong.fits", tmp_path / "x.fits", device="cpu")
    assert not (tmp_path / "x.fits").exists()
    del h["BUNIT"]
    h["BAND3"] = "b2"
    fits.PrimaryHDU(nmgy, header=h).writeto(tmp_path / "nounit.fits")
    with pytest.raises(InputError, match="no BUNIT"):
        predict_cube(model, tmp_path / "nounit.fits", tmp_path / "x.fits", device="cpu")
    h["BUNIT"] = "furlong"
    fits.PrimaryHDU(nmgy, header=h).writeto(tmp_path / "badunit.fits")
    with pytest.raises(InputError, match="furlong"):
        predict_cube(model, tmp_path / "badunit.fits", tmp_path / "x.fits", device="cpu")
    with pytest.raises(InputError, match="catalogues and image cubes"):
        predict_inputs(model, [root / "cube.fits", tmp_path / "t.csv"], tmp_path / "mixed", device="cpu")
    assert not (tmp_path / "x.fits").exists() and not (tmp_path / "mixed").exists()


def test_cli_cubes_resume(cube, tmp_path, capsys):
    root, _, _, _ = cube
    args = ["predict", str(root / "model"), str(root / "cube.fits"), "--out", str(tmp_path / "maps"),
            "--device", "cpu", "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "cube_maps.fits" in out and (tmp_path / "maps" / "_SUCCESS").exists()
    first = (tmp_path / "maps" / "cube_maps.fits").stat().st_mtime_ns
    assert main(args) == 0
    assert "1 already done" in capsys.readouterr().out
    assert (tmp_path / "maps" / "cube_maps.fits").stat().st_mtime_ns == first
