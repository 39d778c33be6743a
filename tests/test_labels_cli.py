"""`photopop labels`: table spectra in, labels table out; refusal to overwrite, resume from parts, statuses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

import photopop.fitting.labels as labels_mod
from photopop.cli.main import main
from photopop.errors import InputError
from photopop.fitting import LabelFitConfig
from photopop.fitting.run import MANIFEST, parts_dir, run_labels
from test_fitting_labels import FAST, full_grid, mass_weights, observe  # noqa: E402

FAST_TOML = """fit_window_aa = [4000.0, 5800.0]
age_step_dex = 0.25
zh_range = [-0.8, 0.5]
mdegree = 4
min_good_pixels = 100
"""


@pytest.fixture(scope="module")
def spectra_files(tmp_path_factory):
    from photopop.populations.compose import compose

    d = tmp_path_factory.mktemp("spec")
    full = full_grid()
    grid = labels_mod.load_ssp("bc03", FAST)
    paths = []
    for k, (ia, iz) in enumerate([(16, 2), (19, 3), (18, 1)]):
        c = compose(full, mass_weights(full, [grid.log_ages[ia]], [1.0]), zh=grid.zh[iz], dtype="float64")
        s = observe(full.wavelength_aa, c.flux[0], snr=60, seed=k, z=0.0)
        t = Table({"wavelength": s.wavelength_aa, "flux": s.flux, "ivar": s.ivar})
        t["wavelength"].unit = "Angstrom"
        t["flux"].unit = "erg / (s cm2 Angstrom)"
        p = d / f"gal{k}.fits"
        t.write(p)
        paths.append((p, grid.log_ages[ia], grid.zh[iz]))
    (d / "fit.toml").write_text(FAST_TOML)
    return d, paths


def test_cli_table_spectra(spectra_files, tmp_path, capsys):
    d, paths = spectra_files
    out = tmp_path / "labels.csv"
    args = ["labels", *[str(p) for p, _, _ in paths], "--config", str(d / "fit.toml"), "--ivar-column", "ivar",
            "--fwhm", "2.51", "--redshift", "0", "--out", str(out), "--chunk-size", "2", "--quiet"]
    assert main(args) == 0
    df = pd.read_csv(out)
    for c in ("id", "log_age", "zh", "log_age_mw", "zh_mw", "sigma_kms", "chi2_red", "snr", "status", "chi2_flag"):
        assert c in df.columns
    assert list(df["id"]) == ["gal0", "gal1", "gal2"] and (df["status"] == "ok").all()
    np.testing.assert_allclose(df["log_age"], [a for _, a, _ in paths], atol=0.1)
    assert not parts_dir(out).exists()  # work folder removed at the end
    # an existing table is never replaced without --overwrite; nothing else is written
    before = out.read_bytes()
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == before
    # a table without a resolution cannot be fitted: said up front
    assert main(["labels", str(paths[0][0]), "--out", str(tmp_path / "x.parquet"), "--redshift", "0"]) == 2
    assert "resolution is unknown" in capsys.readouterr().err


def test_resume_after_interruption(spectra_files, tmp_path, monkeypatch):
    d, paths = spectra_files
    files = [p for p, _, _ in paths]
    out = tmp_path / "labels.parquet"
    kw = dict(fwhm_aa=2.51, redshift=0.0, chunk_size=1, table_options={"ivar_column": "ivar"})

    def stop_after_first(done, total):
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_labels(files, out, "bc03", FAST, progress=stop_after_first, **kw)
    assert not out.exists() and (parts_dir(out) / MANIFEST).is_file()
    calls = []
    real = labels_mod.fit_spectrum
    monkeypatch.setattr(labels_mod, "fit_spectrum", lambda s, g, c: calls.append(s.id) or real(s, g, c))
    table = run_labels(files, out, "bc03", FAST, **kw)
    assert calls == ["gal1", "gal2"]  # the finished chunk was not fitted again
    assert list(table["id"]) == ["gal0", "gal1", "gal2"] and pd.read_parquet(out).equals(table)
    # parts of another run (other settings) are refused, not mixed in
    with pytest.raises(KeyboardInterrupt):
        run_labels(files, tmp_path / "b.parquet", "bc03", FAST, progress=stop_after_first, **kw)
    other = LabelFitConfig(**{**FAST.to_dict(), "mdegree": 6})
    with pytest.raises(InputError, match="other settings; pass --overwrite"):
        run_labels(files, tmp_path / "b.parquet", "bc03", other, **kw)
    # a folder of someone else's files at the parts path is never touched
    (tmp_path / "c.parquet.parts").mkdir()
    (tmp_path / "c.parquet.parts" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"did not write \(notes\.txt\)"):
        run_labels(files, tmp_path / "c.parquet", "bc03", FAST, **kw)
    assert (tmp_path / "c.parquet.parts" / "notes.txt").read_text() == "mine"


@pytest.mark.slow  # two worker processes start (~30 s on a loaded 2-core machine)
def test_parallel_gives_the_same_numbers(spectra_files):
    from photopop.fitting import fit_labels
    from photopop.fitting.spectra import read_many

    d, paths = spectra_files
    spectra = read_many([p for p, _, _ in paths[:2]], fwhm_aa=2.51, redshift=0.0,
                        table_options={"ivar_column": "ivar"})
    one = fit_labels(spectra, "bc03", FAST, n_jobs=1, chunk_size=1)
    two = fit_labels(spectra, "bc03", FAST, n_jobs=2, chunk_size=1)
    pd.testing.assert_frame_equal(one, two)
