"""Band coverage: covered_by, grid gaps, interpolated errors, refused spectra, filter families, mask bits."""

from __future__ import annotations

import json

import astropy.units as u
import numpy as np
import pandas as pd
import pytest

from photopop.cli.main import main
from photopop.errors import InputError, MismatchError
from photopop.models.sed_base import check_bands
from photopop.photometry import coverage_table, covered_by, load_filter_system, read_spectrum, synth_photometry
from photopop.photometry.bandlist import resolve_band_list
from photopop.photometry.curves import FilterCurve
from photopop.photometry.filters import FilterSystem, filter_family, same_filter_family
from photopop.photometry.pixmask import SDSS_SPPIXMASK, bad_pixels, bits_value, decode
from photopop.photometry.ab import FLAM_UNIT


def box(lo: float, hi: float, name: str) -> FilterCurve:
    inner = np.arange(lo, hi + 0.5, 1.0)
    return FilterCurve(name, np.concatenate([[lo - 1e-3], inner, [hi + 1e-3]]),
                       np.concatenate([[0.0], np.ones(inner.size), [0.0]]))


BOXES = FilterSystem("boxes", (box(4000, 4150, "N"), box(5000, 6500, "W")))


def flat(wave: np.ndarray) -> np.ndarray:
    return (3631e-6 * u.Jy).to_value(FLAM_UNIT, u.spectral_density(wave * u.AA))


def test_covered_by_range_and_redshift():
    jpas = load_filter_system("jpas")
    sel = covered_by(jpas, (3700, 7500))
    assert len(sel) == 39 and sel.name == "jpas" and "uJPAS" not in sel and "J0740" in sel
    assert sel.bands == jpas.select(wavelength_range=(3700, 7500)).bands  # same rule as select's 'response'
    # a rest-frame range observed at z: J0378 drops out once 3700 (1 + z) passes its blue wing
    tab = coverage_table(jpas, (3700, 7500), redshift=(0.005, 0.03))
    assert not tab.set_index("band").loc["J0378", "covered"]
    assert tab.set_index("band").loc["J0378", "uncovered"] == pytest.approx(jpas["J0378"].share_outside(3811, 7725),
                                                                             abs=1e-9)
    with pytest.raises(InputError, match="no band"):
        covered_by(jpas, (20000, 30000))
    with pytest.raises(InputError, match="redshift"):
        coverage_table(jpas, (3700, 7500), redshift=(0.1, 0.2, 0.3))


def test_grid_gap_is_not_covered():
    wave = np.concatenate([np.arange(3500.0, 4050.0, 2.0), np.arange(4300.0, 7000.0, 2.0)])  # jump 4048 -> 4300
    r = synth_photometry(wave * u.AA, flat(wave) * FLAM_UNIT, BOXES)
    assert r.coverage.tolist() == ["none", "full"] and np.isnan(r.mag_ab[0])
    assert r.uncovered_fraction[0] > 0.6 and r.mag_ab[1] == pytest.approx(15.0, abs=1e-9)
    # the same grid without the jump: a number
    fine = np.arange(3500.0, 7000.0, 2.0)
    assert synth_photometry(fine * u.AA, flat(fine) * FLAM_UNIT, BOXES).coverage.tolist() == ["full", "full"]
    # a grid too coarse for a 150-A band (intervals > FWHM/2) is not covered either; the 1500-A band is
    coarse = np.arange(3000.0, 8000.0, 100.0)
    rc = synth_photometry(coarse * u.AA, flat(coarse) * FLAM_UNIT, BOXES)
    assert rc.coverage.tolist() == ["none", "full"]
    tab = coverage_table(BOXES, wave * u.AA)
    assert tab["covered"].tolist() == [False, True]


def test_interpolated_errors_are_exact():
    wave = np.arange(3900.0, 4300.0, 1.0)
    rng = np.random.default_rng(3)
    sigma = 1e-17 * (0.5 + rng.random(wave.size))
    mask = np.zeros(wave.size, bool)
    mask[(wave > 4050) & (wave < 4056)] = True
    res = synth_photometry(wave * u.AA, np.full(wave.size, 1e-16) * FLAM_UNIT, BOXES.select(["N"]),
                           flux_err=sigma * FLAM_UNIT, mask=mask)
    assert res.coverage[0] == "interpolated"
    # explicit linear operator: flux = w . (P f) with P the interpolation matrix; var = sum (P^T w)^2 sigma^2
    good = np.flatnonzero(~mask)
    P = np.zeros((wave.size, good.size))
    for k, i in enumerate(good):
        P[i, k] = 1.0
    for i in np.flatnonzero(mask):
        lo, hi = good[good < i].max(), good[good > i].min()
        a = (wave[i] - wave[lo]) / (wave[hi] - wave[lo])
        P[i, np.searchsorted(good, lo)] = 1 - a
        P[i, np.searchsorted(good, hi)] = a
    w = synth_photometry(wave * u.AA, np.eye(wave.size) * FLAM_UNIT, BOXES.select(["N"])).flux_nmgy[:, 0]
    expect = np.sqrt(np.sum((P.T @ w) ** 2 * sigma[good] ** 2))
    assert res.flux_err_nmgy[0] == pytest.approx(expect, rel=1e-9)


def test_refused_spectra_name_the_file(tmp_path):
    wave = np.arange(3500.0, 7500.0, 2.0)
    absurd = tmp_path / "absurd.csv"
    pd.DataFrame({"wavelength": wave, "flux": np.full(wave.size, 1e30)}).to_csv(absurd, index=False)
    spec = read_spectrum(absurd, wave_unit="AA", flux_unit="1e-17 erg / (s cm2 Angstrom)")
    with pytest.raises(InputError, match=r"absurd\.csv.*brighter than any astronomical source"):
        spec.photometry("sdss")
    inf = tmp_path / "inf.csv"
    pd.DataFrame({"wavelength": wave, "flux": np.ones(wave.size), "ivar": np.full(wave.size, np.inf)}).to_csv(inf, index=False)
    spec = read_spectrum(inf, wave_unit="AA", flux_unit="1e-17 erg / (s cm2 Angstrom)", ivar_column="ivar")
    with pytest.raises(InputError, match=r"inf\.csv: ivar is \+inf"):
        spec.photometry("sdss")
    assert main(["photometry", str(absurd), "--filters", "sdss", "--wave-unit", "AA", "--flux-unit",
                 "1e-17 erg / (s cm2 Angstrom)"]) == 2
    with pytest.raises(InputError, match="flux_err is 0"):
        synth_photometry(wave * u.AA, flat(wave) * FLAM_UNIT, "sdss", flux_err=np.zeros(wave.size) * FLAM_UNIT)


def test_filter_families_and_model_check():
    assert filter_family("jpas-califa") == filter_family("milespy:OAJ_JPAS") == filter_family("jpas[12]") == "jpas"
    assert filter_family("JPLUS") == "jplus" and filter_family("my/curves") == "my/curves"
    assert same_filter_family("jpas", None) and not same_filter_family("jpas", "jplus")
    # subset systems match; extra bands of a declared superset are ignored
    order = check_bands(["J0400", "J0500"], ["J0390", "J0500", "J0400"], "jpas", "jpas-califa")
    assert order.tolist() == [2, 1]
    assert check_bands(["J0400"], ["J0400", "J0410"], "jpas-califa", "jpas").tolist() == [0]
    with pytest.raises(MismatchError, match="extra band"):  # undeclared input: extras still refused
        check_bands(["J0400"], ["J0400", "J0410"], "jpas", None)
    with pytest.raises(MismatchError, match="filter system differs"):
        check_bands(["g"], ["g"], "jpas", "sdss")
    with pytest.raises(MismatchError, match="missing"):
        check_bands(["J0400", "J0378"], ["J0400"], "jpas", "jpas-califa")


def test_band_lists():
    assert resolve_band_list("jpas-califa", "jpas") == ("jpas", tuple(load_filter_system("jpas-califa").bands))
    assert resolve_band_list("J0400, gSDSS", "jpas") == ("jpas", ("J0400", "gSDSS"))
    assert resolve_band_list("sdss", "jpas")[0] == "sdss"
    with pytest.raises(InputError, match="J9999"):
        resolve_band_list("J0400,J9999", "jpas")
    from photopop.cli.main import build_parser
    from photopop.cli.simulate import ifu_config_from_args

    args = build_parser().parse_args(["simulate", "ifu", "--out", "x", "--bands", "J0400,J0410,gSDSS"])
    cfg = ifu_config_from_args(args)
    assert cfg.filter_system == "jpas" and cfg.bands == ("J0400", "J0410", "gSDSS") and not cfg.all_bands
    args = build_parser().parse_args(["simulate", "ifu", "--out", "x", "--bands", "J0400", "--all-bands"])
    with pytest.raises(InputError, match="not both"):
        ifu_config_from_args(args)


def test_pixmask_bits():
    assert SDSS_SPPIXMASK["BRIGHTSKY"] == 23 and SDSS_SPPIXMASK["NODATA"] == 24
    m = np.array([0, 1 << 23, 1 << 16, 1 << 10, (1 << 16) | (1 << 24)])
    assert bad_pixels(m, "sdss").tolist() == [False, True, False, False, True]  # NEARBADPIXEL, SMEARIMAGE kept
    assert bad_pixels(np.array([1 << 1, 1 << 10, 1 << 3]), "manga").tolist() == [False, True, True]  # LOWCOV kept
    assert decode((1 << 23) | (1 << 30)) == ["BRIGHTSKY", "BIT30"]
    assert bits_value(["NOPLUG", "BADTRACE"]) == 3
    with pytest.raises(InputError, match="unknown sdss mask bit"):
        bits_value(["NOPE"])


def test_bands_command(tmp_path, capsys):
    wave = np.arange(3700.0, 7501.0, 2.0)  # a CALIFA COMB range: gives exactly the jpas-califa bands (+ J0660/J0670)
    csv = tmp_path / "s.csv"
    pd.DataFrame({"wavelength": wave, "flux": flat(wave)}).to_csv(csv, index=False)
    assert main(["bands", "--covered-by", str(csv), "--filters", "jpas-califa", "--wave-unit", "AA",
                 "--flux-unit", "erg / (s cm2 Angstrom)", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["covered"] == load_filter_system("jpas-califa").bands and len(doc["bands"]) == 37
    assert {"band", "uncovered", "interpolated", "coverage"} <= set(doc["bands"][0])
    assert main(["bands", "--covered-by", str(csv), "--filters", "jpas", "--wave-unit", "AA",
                 "--flux-unit", "erg / (s cm2 Angstrom)"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1].split(",")
    assert "uJPAS" not in last and "J0660" in last and "J0750" not in last and len(last) == 39
    assert main(["bands", "--filters", "sdss"]) == 0 and "6177" in capsys.readouterr().out
    assert main(["bands", "--covered-by", str(tmp_path / "nope.fits"), "--filters", "sdss"]) == 2
    assert main(["bands", "--covered-by", str(csv), "--filters", "sdss", "--redshift", "x"]) == 2


def test_bands_covered_by_a_cube(tmp_path, capsys):
    from astropy.io import fits

    hdr = fits.Header()
    hdr["CRVAL3"], hdr["CDELT3"], hdr["CRPIX3"] = 3745.0, 2.0, 1.0  # a V500-like cube: 3745-7543 A
    fits.PrimaryHDU(np.ones((1900, 3, 3), np.float32), hdr).writeto(tmp_path / "cube.fits")
    assert main(["bands", "--covered-by", str(tmp_path / "cube.fits"), "--filters", "jpas-califa", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "ifu-cube" and doc["covered"] == load_filter_system("jpas-califa").bands[1:]  # no J0378
