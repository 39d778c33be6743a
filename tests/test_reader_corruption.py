"""Property-based corruption tests for every reader (hypothesis).

Each reader gets a small valid file written the way photopop (or the survey pipeline, for SDSS spectra
and IFU cubes, whose products carry FITS checksums) writes it, then random byte flips or a
truncation. The property: reading the damaged file raises photopop's own error (`PhotopopError`) or
returns exactly the clean result -- never another exception type, never a changed number.

CSV has no checksum: a flipped digit is a different valid number, so CSV readers are tested with
truncation only (cut mid-line -> refused; cut at a line boundary -> the complete rows before it).

Examples are derandomized (the same on every run and machine) and few, so the file stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from photopop.errors import PhotopopError
from photopop.io import read_table, write_table_atomic

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

flips = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=3)
damage = st.one_of(st.tuples(st.just("flip"), flips),
                   st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)))
truncation = st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True))


def corrupt(data: bytes, how: tuple) -> bytes:
    kind, arg = how
    if kind == "truncate":
        return data[: int(arg * len(data))]
    out = bytearray(data)
    for frac, xor in arg:
        out[int(frac * len(out))] ^= xor
    return bytes(out)


def outcome(read, path: Path, clean: bytes, how: tuple):
    """(None, error) for a PhotopopError, (result, None) otherwise; any other exception propagates."""
    path.write_bytes(corrupt(clean, how))
    try:
        return read(path), None
    except PhotopopError as exc:
        return None, exc


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _frame(n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"galaxy_id": np.arange(n) // 4, "mag_g": rng.normal(21, 1, n),
                         "mag_r": rng.normal(20, 1, n), "label": rng.choice(["a", "bb"], n)})


# -- catalogues (io.read_table) ------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["parquet", "fits"])
@SETTINGS
@given(how=damage)
def test_binary_catalogues(tmp_path_factory, fmt, how):
    root = tmp_path_factory.getbasetemp() / f"cat-{fmt}"
    root.mkdir(exist_ok=True)
    src = root / f"clean.{fmt}"
    if not src.exists():
        write_table_atomic(_frame(), src)
    clean = read_table(src)
    got, err = outcome(read_table, root / f"bad.{fmt}", src.read_bytes(), how)
    if err is None:
        pd.testing.assert_frame_equal(got, clean)


@SETTINGS
@given(how=truncation)
def test_csv_catalogue_truncation(tmp_path_factory, how):
    root = tmp_path_factory.getbasetemp() / "cat-csv"
    root.mkdir(exist_ok=True)
    src = root / "clean.csv"
    if not src.exists():
        write_table_atomic(_frame(), src)
    clean = read_table(src)
    got, err = outcome(read_table, root / "bad.csv", src.read_bytes(), how)
    if err is None:  # cut at a line boundary: the rows before it, unchanged
        assert len(got) <= len(clean)
        pd.testing.assert_frame_equal(got, clean.head(len(got)), check_dtype=len(got) > 0)


# -- spectra (photometry.spectra.read_spectrum) --------------------------------------------------------
LOGLAM = np.arange(3.5800, 3.5800 + 1e-4 * 300, 1e-4)


def _write_sdss(path: Path) -> None:
    flux = np.linspace(1.0, 2.0, LOGLAM.size).astype(np.float32)
    ivar = np.full(LOGLAM.size, 4.0, np.float32)
    mask = np.zeros(LOGLAM.size, np.int32)
    mask[10:12] = 1 << 24
    primary = fits.PrimaryHDU()
    primary.header.update(PLATEID=266, MJD=51602, FIBERID=1)
    coadd = fits.BinTableHDU.from_columns([
        fits.Column(name="flux", format="E", array=flux),
        fits.Column(name="loglam", format="E", array=LOGLAM.astype(np.float32)),
        fits.Column(name="ivar", format="E", array=ivar),
        fits.Column(name="and_mask", format="J", array=mask)], name="COADD")
    specobj = fits.BinTableHDU.from_columns([fits.Column(name="Z", format="E", array=[0.08]),
                                             fits.Column(name="CLASS", format="6A", array=["GALAXY"])],
                                            name="SPECOBJ")
    fits.HDUList([primary, coadd, specobj]).writeto(path, checksum=True)  # as SDSS spec files carry


def _same_spectrum(a, b) -> None:
    np.testing.assert_array_equal(a.wavelength.value, b.wavelength.value)
    assert a.wavelength.unit == b.wavelength.unit and a.flux.unit == b.flux.unit
    np.testing.assert_array_equal(a.flux.value, b.flux.value)
    np.testing.assert_array_equal(a.mask, b.mask)
    if a.ivar is None:
        assert b.ivar is None
    else:
        np.testing.assert_array_equal(a.ivar, b.ivar)
    assert {k: v for k, v in a.meta.items() if k != "file"} == {k: v for k, v in b.meta.items() if k != "file"}


def _spectrum_source(root: Path, kind: str) -> tuple[Path, dict]:
    from astropy.table import Table

    wave = np.linspace(4000.0, 7000.0, 200)
    flux = np.linspace(1.0, 3.0, 200)
    if kind == "sdss":
        path = root / "spec-0266-51602-0001.fits"
        if not path.exists():
            _write_sdss(path)
        return path, {}
    if kind == "fits-table":
        path = root / "spectrum.fits"
        t = Table({"wave": wave, "flux": flux, "err": np.full(200, 0.1)})
        t["wave"].unit, t["flux"].unit, t["err"].unit = "Angstrom", "erg / (s cm2 Angstrom)", "erg / (s cm2 Angstrom)"
        fits.HDUList([fits.PrimaryHDU(), fits.table_to_hdu(t)]).writeto(path, checksum=True, overwrite=True)
        return path, {"error_column": "err"}
    if kind == "parquet-table":
        path = root / "spectrum.parquet"
        write_table_atomic(pd.DataFrame({"wave": wave, "flux": flux, "ivar": np.full(200, 25.0)}), path)
        return path, {"ivar_column": "ivar", "wave_unit": "Angstrom", "flux_unit": "erg / (s cm2 Angstrom)"}
    path = root / "spectrum.csv"
    write_table_atomic(pd.DataFrame({"wave": wave, "flux": flux}), path)
    return path, {"wave_unit": "Angstrom", "flux_unit": "erg / (s cm2 Angstrom)"}


@pytest.mark.parametrize("kind", ["sdss", "fits-table", "parquet-table", "csv-table"])
@SETTINGS
@given(how=damage, cut=truncation)
def test_spectra(tmp_path_factory, kind, how, cut):
    from photopop.photometry.spectra import read_spectrum

    root = tmp_path_factory.getbasetemp() / f"spec-{kind}"
    root.mkdir(exist_ok=True)
    src, kw = _spectrum_source(root, kind)
    clean = read_spectrum(src, **kw)
    bad = root / ("bad-" + src.name if kind != "sdss" else "spec-0266-51602-0002.fits")
    got, err = outcome(lambda p: read_spectrum(p, **kw), bad, src.read_bytes(), cut if kind == "csv-table" else how)
    if err is None:
        if kind == "csv-table":  # cut at a line boundary: a prefix of the rows
            n = got.wavelength.size
            np.testing.assert_array_equal(got.flux.value, clean.flux.value[:n])
        else:
            _same_spectrum(got, clean)


# -- IFU cubes (datasets.ifu.read_ifu_cube) --------------------------------------------------------------
def _write_manga(path: Path) -> None:
    wave = np.geomspace(3600.0, 10300.0, 300)
    mags = 17.0 + 0.1 * np.arange(12).reshape(3, 4)
    fnu = 10.0 ** (-0.4 * (mags + 48.6))
    flux = fnu[None] * 2.99792458e18 / wave[:, None, None] ** 2 / 1e-17
    hdr = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CUNIT1": "deg", "CUNIT2": "deg",
                       "CRVAL1": 150.0, "CRVAL2": 2.0, "CRPIX1": 2.0, "CRPIX2": 2.0,
                       "CDELT1": -0.5 / 3600, "CDELT2": 0.5 / 3600})
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(flux, header=hdr, name="FLUX"),
                  fits.ImageHDU(1.0 / (0.02 * flux) ** 2, name="IVAR"),
                  fits.ImageHDU(np.zeros(flux.shape, np.int32), name="MASK"),
                  fits.ImageHDU(wave, name="WAVE")]).writeto(path, checksum=True)  # as MaNGA cubes carry


@SETTINGS
@given(how=damage)
def test_ifu_cubes(tmp_path_factory, how):
    from photopop.datasets.ifu import read_ifu_cube

    root = tmp_path_factory.getbasetemp() / "ifu"
    root.mkdir(exist_ok=True)
    src = root / "manga-LOGCUBE.fits"
    if not src.exists():
        _write_manga(src)

    def read(p):
        return read_ifu_cube(p, None, re_arcsec=2.0, system="jpas", bands=["J0400", "J0500", "J0600"]).spaxels

    clean = read(src)
    got, err = outcome(read, root / "bad-LOGCUBE.fits", src.read_bytes(), how)
    if err is None:
        pd.testing.assert_frame_equal(got, clean)


# -- model folders (models.registry.open_model, inference.load_model) -------------------------------------
MODEL_FILES = ["model.pt", "normalisation.json", "meta.json", "config.toml", "SHA256SUMS"]


@SETTINGS
@given(name=st.sampled_from(MODEL_FILES), how=damage)
def test_model_folders(tmp_path_factory, name, how):
    from photopop.inference import load_model
    from photopop.models.normalise import Standardiser
    from photopop.models.registry import open_model
    from photopop.models.saved import SavedSEDModel
    from photopop.models.sed_cnn import SEDCNN, SEDCNNConfig

    root = tmp_path_factory.getbasetemp() / "models"
    src = root / "clean"
    bands = ["g", "r", "i"]
    if not src.exists():
        torch.manual_seed(0)
        net = SEDCNN(3, 1, SEDCNNConfig(conv_filters=(2,), kernel_sizes=(3,), pool_size=1, dense_units=(4,)))
        x = np.random.default_rng(0).normal(20, 1, (30, 3))
        SavedSEDModel(net, Standardiser.fit(x, bands), Standardiser(["zh"], np.array([0.0]), np.array([0.3])),
                      {"bands": bands, "filter_system": None, "targets": ["zh"], "input_kind": "mag"}).save(src)
    mags = pd.DataFrame(np.random.default_rng(1).normal(20, 1, (5, 3)), columns=[f"mag_{b}" for b in bands])
    clean = open_model(src).predict(mags)
    bad = root / "bad"
    if bad.exists():
        for f in bad.iterdir():
            f.unlink()
    bad.mkdir(exist_ok=True)
    for f in src.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    for loader in (lambda p: open_model(p).predict(mags),
                   lambda p: load_model(p, device="cpu").predict_frame(mags)):
        got, err = outcome(loader, bad / name, (src / name).read_bytes(), how)
        if err is None:
            pd.testing.assert_frame_equal(got.reset_index(drop=True), clean.reset_index(drop=True))


# -- image sets (datasets.image_set.ImageSet) ---------------------------------------------------------------
IMAGE_SET_FILES = ["images.h5", "catalog.parquet", "meta.json", "SHA256SUMS"]


@SETTINGS
@given(name=st.sampled_from(IMAGE_SET_FILES), how=damage)
def test_image_sets(tmp_path_factory, name, how):
    from photopop.datasets.image_set import ImageSet, write_image_set

    root = tmp_path_factory.getbasetemp() / "imagesets"
    src = root / "clean"
    if not src.exists():
        rng = np.random.default_rng(0)
        cat = pd.DataFrame({"id": np.arange(10, 14, dtype=np.int64), "oh": rng.normal(9, 0.1, 4)})
        write_image_set(src, cat, rng.normal(size=(4, 3, 6, 6)).astype(np.float32),
                        rng.integers(0, 256, (4, 6, 6, 3), dtype=np.uint8), meta={"seed": 3})

    def read(folder):
        with ImageSet.open(folder) as s:
            return (s.catalog, s.images(slice(None)), s.rgb(slice(None)), s.image_shape, s.pixel_scale_arcsec,
                    json.dumps(s.meta, sort_keys=True))

    clean = read(src)
    bad = root / "bad"
    bad.mkdir(exist_ok=True)
    for f in src.iterdir():
        if f.is_file():
            (bad / f.name).write_bytes(f.read_bytes())
    path = bad / name

    def read_damaged(p):
        return read(p.parent)

    got, err = outcome(read_damaged, path, (src / name).read_bytes(), how)
    if err is None:
        pd.testing.assert_frame_equal(got[0], clean[0])
        np.testing.assert_array_equal(got[1], clean[1])
        np.testing.assert_array_equal(got[2], clean[2])
        assert got[3:] == clean[3:]
