"""`photopop photometry`: text and --json output, errors as one line with exit status 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from photopop.cli.main import main
from test_spectra import write_sdss_spec


@pytest.fixture
def sdss_file(tmp_path):
    return write_sdss_spec(tmp_path / "spec-0266-51602-0001.fits", bad=slice(100, 110))


def test_text_output(sdss_file, capsys):
    assert main(["photometry", str(sdss_file), "--filters", "sdss"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"# {sdss_file}") and "z in file: 0.08310" in lines[0]
    assert lines[1].split() == ["band", "pivot_A", "mag_ab", "mag_err", "flux_nmgy", "err_nmgy", "coverage"]
    rows = {ln.split()[0]: ln.split() for ln in lines[2:7]}
    assert list(rows) == ["u", "g", "r", "i", "z"]
    assert rows["u"][2] == "nan" and rows["u"][-1] == "none"
    assert float(rows["r"][2]) == pytest.approx(22.5, abs=1e-4) and rows["r"][-1] == "full"
    assert float(rows["r"][4]) == pytest.approx(1.0, rel=1e-4) and rows["g"][-1] == "interpolated"


def test_json_output_two_files(sdss_file, tmp_path, capsys):
    wave = np.linspace(3000, 11000, 4001)
    csv = tmp_path / "flat.csv"
    pd.DataFrame({"wavelength": wave, "flux": np.full(wave.size, 3631e-6)}).to_csv(csv, index=False)
    code = main(["photometry", str(sdss_file), str(csv), "--filters", "jpas-califa", "--json",
                 "--wave-unit", "Angstrom", "--flux-unit", "Jy"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)  # strict JSON: NaN became null
    assert doc["filter_system"] == "jpas-califa" and len(doc["spectra"]) == 2
    first, second = doc["spectra"]
    assert first["file"] == str(sdss_file) and len(first["bands"]) == 37 and "uJPAS" not in first["bands"]
    assert first["bands"]["J0378"]["mag_ab"] is None and first["bands"]["J0378"]["coverage"] == "none"
    entry = first["bands"]["J0500"]
    assert set(entry) >= {"mag_ab", "flux_nmgy", "mag_err", "coverage"}
    assert entry["mag_ab"] == pytest.approx(22.5, abs=1e-4) and entry["coverage"] == "full"
    assert second["bands"]["J0500"]["mag_ab"] == pytest.approx(15.0, abs=1e-9)
    assert second["bands"]["J0500"]["mag_err"] is None and second["redshift_in_file"] is None


def test_redshift_option(tmp_path, capsys):
    wave = np.linspace(2000, 12000, 5001)
    csv = tmp_path / "flat.csv"
    pd.DataFrame({"wavelength": wave, "flux": np.full(wave.size, 3631.0)}).to_csv(csv, index=False)
    assert main(["photometry", str(csv), "--filters", "sdss", "--json", "--redshift", "0.2",
                 "--wave-unit", "AA", "--flux-unit", "Jy"]) == 0
    bands = json.loads(capsys.readouterr().out)["spectra"][0]["bands"]
    assert bands["r"]["mag_ab"] == pytest.approx(-2.5 * np.log10(1.2), abs=1e-6)


def test_errors_are_one_line(tmp_path, sdss_file, capsys):
    assert main(["photometry", str(tmp_path / "missing.fits"), "--filters", "sdss"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("photopop: error: ") and "missing.fits: no such spectrum file" in err
    assert main(["photometry", str(sdss_file), "--filters", "hsc"]) == 2
    assert "unknown filter system 'hsc'" in capsys.readouterr().err
    csv = tmp_path / "nounits.csv"
    pd.DataFrame({"wavelength": [4000.0, 5000.0], "flux": [1.0, 1.0]}).to_csv(csv, index=False)
    assert main(["photometry", str(csv), "--filters", "sdss"]) == 2
    assert "CSV spectrum needs explicit units" in capsys.readouterr().err
