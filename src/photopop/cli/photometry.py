"""`photopop photometry`: synthetic AB magnitudes and fluxes of spectrum files through a filter system.

``photopop photometry FILE... --filters SYSTEM`` prints per band the magnitude, flux and coverage;
``--out CAT`` (.parquet, .fits, .csv) writes one row per spectrum instead (`photopop.photometry.catalogue`)
with the filter system in the file's metadata, ready for ``photopop predict MODEL CAT``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import dumps_json
from ..photometry.filters import load_filter_system
from ..photometry.spectra import read_spectrum
from ..photometry.result import PhotometryResult


def register(subparsers: Any) -> None:
    """Add the `photometry` command."""
    p = subparsers.add_parser(
        "photometry",
        help="synthetic AB photometry of spectra (SDSS spec files or tables)",
        description="Per spectrum and band: AB magnitude, flux in nanomaggies, coverage flag "
        "(full / partial / interpolated / none). Spectra: SDSS/BOSS spec-*.fits files, or FITS/CSV/Parquet tables "
        "with wavelength and flux columns. --out CAT writes a catalogue (one row per spectrum) for photopop predict.",
    )
    p.add_argument("spectra", nargs="+", type=Path, metavar="SPECTRUM_FILE")
    p.add_argument("--filters", required=True, metavar="SYSTEM",
                   help="sdss, jpas, jplus, jpas-califa, milespy:<PREFIX>, svo:<ID>[,<ID>...], or a filter "
                   "curve file / folder of files")
    p.add_argument("--filter-unit", metavar="UNIT", help="wavelength unit of ASCII filter files (e.g. Angstrom, nm)")
    p.add_argument("--redshift", type=float, default=0.0, metavar="Z",
                   help="treat the spectra as rest frame and observe them at redshift Z "
                   "(lambda*(1+Z), f_lambda/(1+Z)); default 0 = use as given")
    p.add_argument("--coverage-tolerance", type=float, default=0.01, metavar="F",
                   help="largest uncovered or masked share of a band's response that is still computed "
                   "(flagged 'partial'); default 0.01")
    p.add_argument("--max-interpolated", type=float, default=0.10, metavar="F",
                   help="largest share of a band's response that may be interpolated over masked pixels "
                   "(flagged 'interpolated'); default 0.10")
    p.add_argument("--out", type=Path, metavar="CAT",
                   help="write a catalogue (.parquet, .fits or .csv) with id, mag_<band>, magerr_<band>, "
                   "flux_nmgy_<band>, coverage_<band>, ... and the filter system in its metadata")
    p.add_argument("--id", default="stem", metavar="KEY[,KEY...]",
                   help="catalogue ids: stem (file name without suffix, default), name, path, or metadata keys of "
                   "the spectra joined by '-' (e.g. plate,mjd,fiberid)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing catalogue photopop wrote")
    p.add_argument("--wavelength-column", metavar="COL", help="wavelength column of table spectra")
    p.add_argument("--flux-column", metavar="COL", help="flux column of table spectra")
    p.add_argument("--ivar-column", metavar="COL", help="inverse-variance column of table spectra")
    p.add_argument("--error-column", metavar="COL", help="1-sigma flux error column of table spectra")
    p.add_argument("--wave-unit", metavar="UNIT", help="wavelength unit of table spectra without TUNIT (CSV)")
    p.add_argument("--flux-unit", metavar="UNIT",
                   help="flux unit of table spectra without TUNIT, e.g. 'erg / (s cm2 Angstrom)' or Jy")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.set_defaults(func=run)


def _entry(res: PhotometryResult, k: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "pivot_aa": float(res.pivot_aa[k]),
        "mag_ab": float(res.mag_ab[k]),
        "flux_nmgy": float(res.flux_nmgy[k]),
        "mag_err": None if res.mag_err is None else float(res.mag_err[k]),
        "flux_err_nmgy": None if res.flux_err_nmgy is None else float(res.flux_err_nmgy[k]),
        "coverage": str(res.coverage[k]),
        "uncovered_fraction": float(res.uncovered_fraction[k]),
        "interpolated_fraction": float(res.interpolated_fraction[k]) if res.interpolated_fraction is not None else 0.0,
    }
    return out


def _fmt(v: float | None, spec: str) -> str:
    return "nan" if v is None or not math.isfinite(v) else format(v, spec)


def spectrum_ids(spectra: list[Any], how: str) -> list[str]:
    """Catalogue ids from --id: stem / name / path of the file, or metadata keys joined by '-'."""
    out = []
    keys = [k.strip() for k in str(how).split(",") if k.strip()]
    if not keys:
        raise InputError("--id is empty")
    for spec in spectra:
        path = Path(str(spec.meta.get("file", "")))
        if keys == ["stem"]:
            out.append(path.stem)
        elif keys == ["name"]:
            out.append(path.name)
        elif keys == ["path"]:
            out.append(str(path))
        else:
            missing = [k for k in keys if spec.meta.get(k.lower()) is None]
            if missing:
                raise InputError(f"{path}: --id key(s) {missing} not in the spectrum's metadata "
                                 f"(has {sorted(k for k, v in spec.meta.items() if v is not None)})")
            out.append("-".join(str(spec.meta[k.lower()]) for k in keys))
    return out


def run(args: argparse.Namespace) -> int:
    """Compute and print the photometry of every file (all files are read before anything is printed),
    or write the catalogue (--out)."""
    if not 0 <= args.coverage_tolerance < 1:
        raise InputError(f"--coverage-tolerance must be in [0, 1), got {args.coverage_tolerance}")
    if not 0 <= args.max_interpolated < 1:
        raise InputError(f"--max-interpolated must be in [0, 1), got {args.max_interpolated}")
    system = load_filter_system(args.filters, unit=args.filter_unit)
    spectra = [read_spectrum(path, wavelength_column=args.wavelength_column, flux_column=args.flux_column,
                             ivar_column=args.ivar_column, error_column=args.error_column,
                             wave_unit=args.wave_unit, flux_unit=args.flux_unit) for path in args.spectra]
    if args.out is not None:
        from ..photometry.catalogue import photometry_catalogue, write_catalogue

        cat = photometry_catalogue(spectra, system, ids=spectrum_ids(spectra, args.id), redshift=args.redshift,
                                   coverage_tolerance=args.coverage_tolerance, max_interpolated=args.max_interpolated)
        none = (cat[[f"coverage_{b}" for b in system.bands]] == "none").all(axis=1).to_numpy()
        if none.any():  # a row of NaN magnitudes only would look like a catalogue entry
            raise InputError(f"{', '.join(cat.loc[none, 'file'].astype(str).tolist()[:3])}: cover(s) none of the "
                             f"{len(system)} {system.name} bands; choose another --filters (see photopop bands "
                             "--covered-by FILE)")
        write_catalogue(cat, args.out, system, overwrite=args.overwrite, inputs=args.spectra)
        flags = cat[[f"coverage_{b}" for b in system.bands]].to_numpy()
        print(f"wrote {args.out}: {len(cat)} spectra x {len(system)} {system.name} bands "
              f"({int((flags == 'interpolated').sum())} interpolated, {int((flags == 'none').sum())} not covered)")
        return 0
    docs = []
    for path, spec in zip(args.spectra, spectra):
        res = spec.photometry(system, redshift=args.redshift, coverage_tolerance=args.coverage_tolerance,
                              max_interpolated=args.max_interpolated)
        doc: dict[str, Any] = {"file": str(path), "redshift_in_file": spec.redshift,
                               "bands": {b: _entry(res, k) for k, b in enumerate(res.bands)}}
        docs.append(doc)
    if args.json:
        sys.stdout.write(dumps_json({"filter_system": system.name, "redshift_applied": args.redshift,
                                     "coverage_tolerance": args.coverage_tolerance,
                                     "max_interpolated": args.max_interpolated, "spectra": docs}) + "\n")
        return 0
    lines = []
    for doc in docs:
        z = doc["redshift_in_file"]
        lines.append(f"# {doc['file']}  filter system: {system.name}"
                     + (f"  (z in file: {z:.5f})" if z is not None else "")
                     + (f"  redshifted to z = {args.redshift:g}" if args.redshift else ""))
        lines.append(f"{'band':<10} {'pivot_A':>9} {'mag_ab':>9} {'mag_err':>8} {'flux_nmgy':>13} "
                     f"{'err_nmgy':>11} coverage")
        for band, e in doc["bands"].items():
            lines.append(f"{band:<10} {e['pivot_aa']:9.1f} {_fmt(e['mag_ab'], '9.4f'):>9} "
                         f"{_fmt(e['mag_err'], '8.4f'):>8} {_fmt(e['flux_nmgy'], '13.5g'):>13} "
                         f"{_fmt(e['flux_err_nmgy'], '11.4g'):>11} {e['coverage']}")
        lines.append("")
    sys.stdout.write("\n".join(lines))
    return 0
