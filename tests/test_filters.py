"""Filter curves and systems: built-ins, selection, user curves, SVO cache, validation on shared data."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import speclite.filters

from photopop.errors import InputError
from photopop.photometry import filters as F
from photopop.photometry import svo
from photopop.photometry.filters import (FilterCurve, FilterSystem, filter_curve_from_arrays, jpas_liew_cain_2021,
                                         list_milespy_systems, load_filter_system, read_filter_curve)
from photopop.photometry.ab import C_AA_PER_S, FLAM_UNIT
from photopop.photometry.synth import synth_photometry

from conftest import shipped_by

# Literal values below (pivots, band counts, selections) were read from the curves these versions ship; with
# another version those tests skip with a reason, and the version-independent checks still run.
SPECLITE_CURVES = shipped_by("speclite", "1.0.0")
MILESPY_CURVES = shipped_by("milespy", "1.0")

NARROW = [f"J0{n}" for n in range(378, 379)] + [f"J0{n}" for n in range(390, 911, 10)]


@pytest.fixture(autouse=True)
def _no_svo_network(monkeypatch):
    """Any attempt to reach SVO in these tests fails loudly instead of touching the network."""
    def refuse(filter_id):
        raise ConnectionError("network disabled in tests")
    monkeypatch.setattr(svo, "_download_from_svo", refuse)


def box(lo: float, hi: float, name: str = "box", step: float = 1.0) -> FilterCurve:
    """Top-hat T = 1 on [lo, hi] with 1e-3 A edges."""
    inner = np.arange(lo, hi + step / 2, step)
    w = np.concatenate([[lo - 1e-3], inner, [hi + 1e-3]])
    t = np.concatenate([[0.0], np.ones(inner.size), [0.0]])
    return FilterCurve(name, w, t)


# -- formulas ------------------------------------------------------------------------------------

def test_pivot_and_fwhm_of_analytic_curves():
    a, b = 4000.0, 5000.0
    curve = box(a, b, step=0.5)
    assert curve.pivot == pytest.approx(np.sqrt((b**2 - a**2) / 2 / np.log(b / a)), rel=1e-6)
    assert curve.fwhm == pytest.approx(b - a + 1e-3, abs=1e-6)  # half-max midway up the 1e-3 A edges
    w = np.linspace(5000, 7000, 4001)
    sigma = 80.0
    g = FilterCurve("gauss", w, 0.4 * np.exp(-0.5 * ((w - 6000) / sigma) ** 2))
    assert g.fwhm == pytest.approx(2 * np.sqrt(2 * np.log(2)) * sigma, rel=1e-4)
    assert g.support == pytest.approx((6000 - sigma * np.sqrt(2 * np.log(100)),
                                       6000 + sigma * np.sqrt(2 * np.log(100))), abs=0.05)
    assert g.kind == "narrow" and box(4000, 4400).kind == "medium" and box(4000, 5400).kind == "broad"
    # share outside: half of the AB weight int T/lam of a box below its log-midpoint
    mid = np.sqrt(a * b)
    assert curve.share_outside(mid, 1e5) == pytest.approx(0.5, abs=1e-6)
    assert curve.share_outside(0, 1e5) == 0.0 and curve.share_outside(6000, 7000) == 1.0


# -- built-in systems ----------------------------------------------------------------------------

def test_sdss_from_speclite():
    sdss = load_filter_system("sdss")
    assert sdss.bands == ["u", "g", "r", "i", "z"]
    for curve, resp in zip(sdss, speclite.filters.load_filters("sdss2010-*")):
        np.testing.assert_array_equal(curve.transmission, resp.response)  # not renormalised
        w, t = resp.wavelength, resp.response
        assert curve.pivot == pytest.approx(np.sqrt(np.trapezoid(t * w, w) / np.trapezoid(t / w, w)), rel=1e-12)
    assert load_filter_system("milespy:SLOAN_SDSS").bands == ["u", "g", "r", "i", "z"]


@SPECLITE_CURVES
@MILESPY_CURVES
def test_sdss_pivots_of_the_shipped_curves():
    sdss = load_filter_system("sdss")
    # sdss2010 (Doi+2010, airmass 1.3) pivots; the SVO SLOAN/SDSS curves give ~3557, 4702, 6175, 7490, 8947
    np.testing.assert_allclose(sdss.pivots, [3589.3, 4701.4, 6177.2, 7496.5, 8904.2], atol=0.2)
    svo_like = load_filter_system("milespy:SLOAN_SDSS")
    np.testing.assert_allclose(svo_like.pivots, [3557, 4702, 6175, 7491, 8946], atol=1.5)


def test_jpas_from_milespy():
    jpas = load_filter_system("jpas")
    assert len(jpas) == len(list_milespy_systems()["OAJ_JPAS"])  # every file of the set, each once
    assert np.all(np.diff(jpas.pivots) > 0)  # ordered by pivot
    path = F.milespy_filter_dir() / "OAJ_JPAS.uJava.dat"
    np.testing.assert_array_equal(jpas["uJAVA"].transmission, np.loadtxt(path)[:, 1])  # read as given
    assert jpas["uJPAS"].source.endswith("OAJ_JPAS.u.dat")


@MILESPY_CURVES
def test_jpas_curves_as_shipped():
    jpas = load_filter_system("jpas")
    assert len(jpas) == 60
    assert jpas.kinds.count("narrow") == 54
    assert [b for b, k in zip(jpas.bands, jpas.kinds) if k == "narrow"] == NARROW
    assert set(jpas.bands) - set(NARROW) == {"J1007", "uJAVA", "uJPAS", "gSDSS", "rSDSS", "iSDSS"}
    # read as given: total-throughput peaks 0.20-0.63, never renormalised to 1
    peaks = np.array([c.peak for c in jpas])
    assert 0.19 < peaks.min() and peaks.max() < 0.64
    narrow = jpas.select(kind="narrow")
    assert 139 < narrow.fwhms.min() and narrow.fwhms.max() < 156
    assert np.mean(np.diff(narrow.pivots)) == pytest.approx(100.0, abs=0.5)


def test_milespy_systems_and_errors():
    sets = list_milespy_systems()
    for prefix in ("OAJ_JPLUS", "GALEX_GALEX"):
        assert len(load_filter_system(f"milespy:{prefix}")) == len(sets[prefix])
    assert load_filter_system("jplus").bands == load_filter_system("milespy:OAJ_JPLUS").bands
    with pytest.raises(InputError, match="no milespy filter set 'NOPE'"):
        load_filter_system("milespy:NOPE")
    with pytest.raises(InputError, match="unknown filter system 'hsc'"):
        load_filter_system("hsc")
    with pytest.raises(InputError, match="no such filter curve file"):
        load_filter_system("curves/missing.dat")  # a path, never taken for an SVO id


@MILESPY_CURVES
def test_milespy_folder_listing_as_shipped():
    sets = list_milespy_systems()
    for prefix in ("OAJ_JPAS", "OAJ_JPLUS", "PAN-STARRS_PS1", "2MASS_2MASS", "GALEX_GALEX", "SLOAN_SDSS"):
        assert prefix in sets
    assert len(sets["OAJ_JPAS"]) == 60
    jplus = load_filter_system("jplus")
    assert len(jplus) == 12 and jplus.bands[0] == "uJAVA" and "J0660" in jplus
    assert load_filter_system("milespy:GALEX_GALEX").bands == ["FUV", "NUV"]


def test_milespy_is_located_without_importing_it():
    code = ("import sys; from photopop.photometry.filters import load_filter_system; "
            "s = load_filter_system('jpas'); assert len(s) == 60; assert 'milespy' not in sys.modules, 'imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_selection_shortcuts_and_errors():
    jpas = load_filter_system("jpas")
    rng = (3700, 7000)
    comb = (3700, 7500)  # the paper's set as a CALIFA COMB spectrum gives it (any curve version)
    paper = [b for b in jpas.bands if jpas[b].share_outside(*comb) <= 0.01 and b not in ("J0660", "J0670")]
    assert "J0660" not in paper and "J0670" not in paper and "uJPAS" not in paper
    for shortcut in (jpas_liew_cain_2021(), load_filter_system("jpas-califa")):
        assert shortcut.bands == paper and shortcut.name == "jpas-califa"
    inside = jpas.select(wavelength_range=rng)  # <= 1% of each band's AB weight outside the range
    assert all(c.share_outside(*rng) <= 0.01 for c in inside)
    assert all(c.share_outside(*rng) > 0.01 for c in jpas if c.name not in inside.bands)
    assert jpas.select(["J0378", "gSDSS"]).bands == ["J0378", "gSDSS"]
    with pytest.raises(InputError, match=r"\['J9999'\] not in filter system"):
        jpas.select(exclude=["J9999"])


@MILESPY_CURVES
def test_selection_counts_and_paper_set():
    jpas = load_filter_system("jpas")
    rng = (3700, 7000)
    # default: <= 1% of the band's AB weight outside the range
    strict = jpas.select(wavelength_range=rng)
    assert strict.bands == NARROW[:32][:10] + ["gSDSS"] + NARROW[10:25] + ["rSDSS"] + NARROW[25:32]
    assert len(strict) == 34
    assert len(jpas.select(wavelength_range=rng, criterion="support")) == 31
    assert len(jpas.select(wavelength_range=rng, criterion="pivot")) == 34
    # the paper's 36: pivot within the range to half a band spacing (50 A)
    thirty_six = jpas.select(wavelength_range=rng, criterion="pivot", margin=50)
    assert len(thirty_six) == 36
    assert set(thirty_six.bands) == set(NARROW[:33]) | {"uJPAS", "gSDSS", "rSDSS"}
    old = jpas.select(wavelength_range=rng, criterion="pivot", margin=50, exclude=["J0660", "J0670"])
    assert len(old) == 34 and "uJPAS" in old  # the old reconstruction: uJPAS cannot come from CALIFA
    # the paper's set as a CALIFA COMB spectrum (3700-7500 A observed) gives it: <= 1% uncovered, no H-alpha bands
    comb = (3700, 7500)
    paper = [b for b in jpas.bands if jpas[b].share_outside(*comb) <= 0.01 and b not in ("J0660", "J0670")]
    assert paper == NARROW[:10] + ["gSDSS"] + NARROW[10:25] + ["rSDSS"] + NARROW[25:28] + NARROW[30:37]
    assert len(paper) == 37 and "uJPAS" not in paper and "J0750" not in paper
    assert jpas["J0378"].share_outside(*comb) < 0.01 and jpas["J0740"].share_outside(*comb) < 0.01
    assert jpas["J0750"].share_outside(*comb) > 0.5
    for shortcut in (jpas_liew_cain_2021(), load_filter_system("jpas-califa")):
        assert shortcut.bands == paper and shortcut.name == "jpas-califa"
    # the two bands that a 3700-7000 A spectrum cannot synthesise, as documented
    assert jpas["uJPAS"].share_outside(*rng) == pytest.approx(0.47, abs=0.01)
    assert jpas["J0700"].share_outside(*rng) == pytest.approx(0.56, abs=0.01)
    assert jpas.select(["J0378", "gSDSS"]).bands == ["J0378", "gSDSS"]
    with pytest.raises(InputError, match=r"\['J9999'\] not in filter system"):
        jpas.select(exclude=["J9999"])
    with pytest.raises(InputError, match="leaves no bands"):
        jpas.select(wavelength_range=(20000, 30000))
    with pytest.raises(InputError, match="unknown selection criterion"):
        jpas.select(wavelength_range=rng, criterion="centre")


# -- user curves ---------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::astropy.units.UnitsWarning")
def test_user_curves_from_arrays_and_files(tmp_path):
    w_nm = np.linspace(400, 500, 101)
    t = np.exp(-0.5 * ((w_nm - 450) / 10) ** 2)
    c1 = filter_curve_from_arrays("b", w_nm * u.nm, t)
    c2 = filter_curve_from_arrays("b", w_nm, t, unit="nm")
    np.testing.assert_allclose(c1.wavelength, w_nm * 10)
    assert c1.pivot == pytest.approx(c2.pivot) == pytest.approx(4500, abs=2)
    ascii_file = tmp_path / "myband.dat"
    np.savetxt(ascii_file, np.column_stack([w_nm / 1000, t]), header="wavelength[micron] T")
    curve = read_filter_curve(ascii_file, unit="micron")
    assert curve.name == "myband" and curve.pivot == pytest.approx(c1.pivot, rel=1e-9)
    with pytest.raises(InputError, match="give the wavelength unit explicitly"):
        read_filter_curve(ascii_file)
    # SVO VOTable: the unit comes from the file
    from astropy.table import Table

    vot = tmp_path / "SLOAN_SDSS.r.xml"
    Table([w_nm * 10 * u.AA, t], names=["Wavelength", "Transmission"]).write(vot, format="votable")
    assert read_filter_curve(vot).pivot == pytest.approx(c1.pivot, rel=1e-9)
    # a folder of curves is a system; a single file too
    folder = tmp_path / "sys"
    folder.mkdir()
    np.savetxt(folder / "a.dat", np.column_stack([w_nm * 10, t]))
    np.savetxt(folder / "b.dat", np.column_stack([w_nm * 10 + 1000, t]))
    system = load_filter_system(folder, unit="Angstrom")
    assert system.bands == ["a", "b"] and len(load_filter_system(vot)) == 1


@pytest.mark.parametrize("w, t, message", [
    ([4000, 4100, 4200], [0.1, -0.2, 0.1], "negative transmission -0.2 at 4100"),
    ([4000, 4100, 4200], [0.5, 0.6, -0.01], "negative transmission -0.01 at 4200"),
    ([4000, 4100, 4200], [0, 0, 0], "zero everywhere"),
    ([4000, 4100, 4200], [0, -1, 0], "zero everywhere or negative"),
    ([4000, 4200, 4100], [0.1, 0.2, 0.1], "not increasing"),
    ([4000, 4100, 4100], [0.1, 0.2, 0.1], "duplicate wavelength 4100"),
    ([4000, 4100, 4200], [0.1, np.nan, 0.1], "NaN"),
    ([np.nan, 4100, 4200], [0.1, 0.2, 0.1], "NaN"),
    ([0.40, 0.41, 0.42], [0.1, 0.2, 0.1], "nm or micron read as Angstrom"),  # microns given as A
    ([400, 410, 420], [0.1, 0.2, 0.1], "nm or micron read as Angstrom"),  # nm given as A
])
def test_nonsense_curves_are_refused(w, t, message):
    with pytest.raises(InputError, match=message):
        filter_curve_from_arrays("bad", w, t, unit="Angstrom")


def test_noise_level_negatives_are_clipped():
    curve = filter_curve_from_arrays("n", [4000, 4100, 4200, 4300], [-1e-5, 0.6, 0.5, -2e-4], unit="AA")
    assert curve.transmission.min() == 0.0 and curve.meta["negative_values_clipped"] == 2


def test_wrong_unit_arguments():
    with pytest.raises(InputError, match="not a wavelength"):
        filter_curve_from_arrays("x", [1, 2, 3], [1, 1, 1], unit="s")
    with pytest.raises(InputError, match="give the wavelength unit"):
        filter_curve_from_arrays("x", [4000, 4100], [1, 1])
    with pytest.raises(InputError, match="duplicate band"):
        FilterSystem("dup", (box(4000, 4500, "a"), box(5000, 5500, "a")))


# -- SVO -----------------------------------------------------------------------------------------

def test_svo_fetch_caches_and_offline_message(tmp_path, monkeypatch):
    calls = []

    def fake(filter_id):
        calls.append(filter_id)
        w = np.linspace(5400, 7000, 200)
        return w, np.clip(1 - np.abs(w - 6200) / 700, 0, None)

    monkeypatch.setattr(svo, "_download_from_svo", fake)
    curve = svo.fetch_svo_filter("SLOAN/SDSS.r", cache_dir=tmp_path)
    cached = tmp_path / "SLOAN__SDSS.r.xml"
    assert calls == ["SLOAN/SDSS.r"] and cached.is_file()

    def offline(filter_id):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(svo, "_download_from_svo", offline)
    again = svo.fetch_svo_filter("SLOAN/SDSS.r", cache_dir=tmp_path)  # cache hit, no network
    np.testing.assert_allclose(again.wavelength, curve.wavelength)
    np.testing.assert_allclose(again.transmission, curve.transmission)
    with pytest.raises(InputError) as info:
        svo.fetch_svo_filter("OAJ/JPAS.J0378", cache_dir=tmp_path)
    text = str(info.value)
    assert "'OAJ/JPAS.J0378'" in text and "supply the curve as a file" in text and "VOTable" in text
    with pytest.raises(InputError, match="not an SVO filter id"):
        svo.fetch_svo_filter("SDSS-r", cache_dir=tmp_path)


def test_svo_ids_through_load_filter_system(monkeypatch):
    def fake(filter_id):
        centre = {"r": 6200.0, "g": 4700.0}[filter_id[-1]]
        w = np.linspace(centre - 800, centre + 800, 100)
        return w, np.clip(1 - np.abs(w - centre) / 700, 0, None)

    monkeypatch.setattr(svo, "_download_from_svo", fake)
    system = load_filter_system("svo:SLOAN/SDSS.r,SLOAN/SDSS.g")
    assert system.bands == ["g", "r"]
    assert (svo.filter_cache_dir() / "SLOAN__SDSS.g.xml").is_file()  # the session's PHOTOPOP_CACHE
    assert load_filter_system("SLOAN/SDSS.r").bands == ["r"]  # a bare id works too
    assert svo.filter_cache_dir().parent == Path(__import__("os").environ["PHOTOPOP_CACHE"])


# -- validation on the shared data folder --------------------------------------------------------

def _section(readme: str, start: str, end: str) -> str:
    return readme.split(start, 1)[1].split(end, 1)[0]


@pytest.fixture(scope="module")
def shared_filters(shared_data_dir) -> Path:
    path = shared_data_dir / "filters"
    if not (path / "README.md").is_file():
        pytest.skip(f"no filters/README.md in the shared data folder {shared_data_dir}")
    return path


@MILESPY_CURVES
def test_jpas_matches_shared_copies_and_readme(shared_filters):
    readme = (shared_filters / "README.md").read_text()
    section = _section(readme, "## jpas/", "## jpas_cefca2017/")
    table = {m[0]: (float(m[1]), float(m[2]))
             for m in re.findall(r"\|\s*(\w+)\s*\|\s*(\d+\.\d)\s*\|\s*(\d+\.\d)\s*\|\s*0\.\d+", section)}
    assert len(table) == 60
    rename = {"uJava": "uJAVA", "u": "uJPAS"}
    jpas = load_filter_system("jpas")
    for file_band, (pivot, width) in table.items():
        curve = jpas[rename.get(file_band, file_band)]
        assert curve.pivot == pytest.approx(pivot, abs=0.06), file_band
        assert curve.fwhm == pytest.approx(width, abs=0.06), file_band
        copy = np.loadtxt(shared_filters / "jpas" / f"OAJ_JPAS.{file_band}.dat")
        np.testing.assert_array_equal(curve.wavelength, copy[:, 0])
        np.testing.assert_array_equal(curve.transmission, copy[:, 1])


@pytest.mark.parametrize("system, folder, prefix", [pytest.param("jplus", "jplus", "OAJ_JPLUS", marks=MILESPY_CURVES),
                                                    (None, "splus", "SPLUS")])
def test_jplus_splus_pivots_and_fwhm(shared_filters, system, folder, prefix):
    readme = (shared_filters / "README.md").read_text()
    section = _section(readme, f"## {folder}/", "##")
    line = re.search(r"Pivot/FWHM \[Å\]/peak:(.*)", section).group(1)
    table = {m[0]: (float(m[1]), float(m[2])) for m in re.findall(r"(\w+) (\d+)/(\d+)/[\d.]+", line)}
    assert len(table) == 12
    # S-PLUS is not built in: read the folder as a user system (ASCII, Angstrom, one # comment line)
    loaded = load_filter_system(system) if system else load_filter_system(shared_filters / folder, unit="AA")
    for band, (pivot, width) in table.items():
        curve = loaded[band if system else f"{prefix}.{band}"]
        assert curve.pivot == pytest.approx(pivot, abs=0.51), band
        assert curve.fwhm == pytest.approx(width, abs=0.51), band


@MILESPY_CURVES
def test_j0910_trimming_quirk(shared_filters):
    full = read_filter_curve(shared_filters / "jpas_cefca2017" / "JPAS_J0910.tab", unit="AA")
    trimmed = load_filter_system("jpas")["J0910"]
    assert full.pivot == pytest.approx(9101.0, abs=0.06)
    assert trimmed.pivot == pytest.approx(9095.9, abs=0.06)
    assert full.pivot - trimmed.pivot == pytest.approx(5.1, abs=0.1)
    assert full.fwhm == pytest.approx(trimmed.fwhm, abs=0.1)  # the core of the band is the same
    lost = 1 - np.trapezoid(trimmed.transmission, trimmed.wavelength) / np.trapezoid(full.transmission,
                                                                                     full.wavelength)
    assert 0.005 < lost < 0.02  # about 1% of the band's area is cut
    for band in ("J0378", "J0660"):  # the other CEFCA files equal the built-in curves on the shared grid
        cefca = read_filter_curve(shared_filters / "jpas_cefca2017" / f"JPAS_{band}.tab", unit="AA")
        ours = load_filter_system("jpas")[band]
        np.testing.assert_allclose(np.interp(ours.wavelength, cefca.wavelength, cefca.transmission),
                                   ours.transmission, atol=1e-12)


def _realistic_spectra(wave: np.ndarray) -> dict[str, np.ndarray]:
    """f_lambda (erg/s/cm2/A) of a power law, a 5800 K blackbody and a BC03-like old population."""
    h, k, c = 6.62607015e-27, 1.380649e-16, 2.99792458e10
    lam_cm = wave * 1e-8
    bb = 2 * h * c**2 / lam_cm**5 / np.expm1(h * c / (lam_cm * k * 5800.0)) * 1e-8  # per A, B_lambda(5800 K)
    old = (wave / 5500.0) ** -0.5 * (1 - 0.45 / (1 + np.exp((wave - 4000.0) / 20.0)))
    for centre, depth, sigma in ((4861, 0.15, 6), (5175, 0.2, 10), (5893, 0.12, 6), (6563, 0.1, 6), (8542, 0.1, 5)):
        old = old * (1 - depth * np.exp(-0.5 * ((wave - centre) / sigma) ** 2))
    return {"power_law": 1e-16 * (wave / 5000.0) ** -1.0, "blackbody": bb * 1e-21, "old_pop": 1e-16 * old}


@MILESPY_CURVES  # integrates the shared copies of the curves, which equal milespy 1.0's
def test_synthetic_magnitudes_match_independent_integration(shared_filters):
    wave = 10 ** np.arange(np.log10(3000.0), np.log10(11000.0), 1e-4)  # SDSS-like log grid (~2 A)
    spectra = _realistic_spectra(wave)
    res = synth_photometry(wave * u.AA, np.vstack(list(spectra.values())) * FLAM_UNIT, "jpas")
    assert np.all(res.coverage == "full")
    worst = 0.0
    for k, band in enumerate(res.bands):
        file_band = {"uJAVA": "uJava", "uJPAS": "u"}.get(band, band)
        w, t = np.loadtxt(shared_filters / "jpas" / f"OAJ_JPAS.{file_band}.dat").T
        exact = _realistic_spectra(w)  # evaluated analytically on the curve's own 1 A grid
        for i, name in enumerate(spectra):
            fnu = np.trapezoid(exact[name] * t * w, w) / np.trapezoid(t * C_AA_PER_S / w, w) * 1e23
            worst = max(worst, abs(res.mag_ab[i, k] - (-2.5 * np.log10(fnu / 3631.0))))
    print(f"worst |dmag| = {worst:.2e}")
    assert worst < 5e-5, worst  # measured: 4.9e-6 mag
