"""`photopop bands`: the bands of a filter system, or those a spectrum / table / IFU cube covers.

* ``photopop bands --filters SYSTEM`` lists the bands (pivot, FWHM, response range, kind).
* ``photopop bands --covered-by FILE --filters SYSTEM [--redshift Z|Z1:Z2] [--json]`` prints the bands
  FILE gives with at most ``--max-uncovered`` (1%) of each band's AB weight uncovered and at most
  ``--max-interpolated`` (10%) interpolated over masked pixels (`photopop.photometry.coverage`), and with
  ``--json`` the shares per band. FILE: an SDSS/BOSS spec file or a spectrum table (`read_spectrum`; its
  masked pixels count) or a CALIFA / MaNGA cube (its wavelength axis).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import dumps_json


def register(subparsers: Any) -> None:
    """Add the `bands` command."""
    p = subparsers.add_parser(
        "bands", help="list a filter system's bands, or those a spectrum or IFU cube covers",
        description="Without --covered-by: the bands of SYSTEM. With --covered-by FILE: the bands FILE can give "
        "(<= --max-uncovered of each band's response outside the spectrum or in grid gaps, <= --max-interpolated "
        "over masked pixels), as a comma-separated list for `photopop simulate ifu --bands`.")
    p.add_argument("--filters", required=True, metavar="SYSTEM",
                   help="sdss, jpas, jplus, jpas-califa, milespy:<PREFIX>, svo:<ID>, or a filter curve file / folder")
    p.add_argument("--filter-unit", metavar="UNIT", help="wavelength unit of ASCII filter files")
    p.add_argument("--covered-by", type=Path, metavar="FILE",
                   help="spectrum (SDSS spec file or table) or IFU cube (CALIFA, MaNGA LOGCUBE)")
    p.add_argument("--redshift", default="0", metavar="Z",
                   help="treat FILE as rest frame observed at Z (as `photopop photometry --redshift`); Z1:Z2 = "
                   "covered at every redshift in the interval; default 0 (observed spectra)")
    p.add_argument("--max-uncovered", type=float, default=0.01, metavar="F",
                   help="largest share of a band's response outside the spectrum or in gaps (default 0.01)")
    p.add_argument("--max-interpolated", type=float, default=0.10, metavar="F",
                   help="largest share of a band's response interpolated over masked pixels (default 0.10)")
    p.add_argument("--wave-unit", metavar="UNIT", help="wavelength unit of table spectra without TUNIT (CSV)")
    p.add_argument("--flux-unit", metavar="UNIT", help="flux unit of table spectra without TUNIT (CSV)")
    p.add_argument("--wavelength-column", metavar="COL", help="wavelength column of table spectra")
    p.add_argument("--flux-column", metavar="COL", help="flux column of table spectra")
    p.add_argument("--json", action="store_true", help="one JSON document with the shares per band")
    p.set_defaults(func=run)


def parse_redshift(text: str) -> float | tuple[float, float]:
    """'0.01' -> 0.01; '0.005:0.03' -> (0.005, 0.03); InputError otherwise."""
    try:
        if ":" in str(text):
            lo, hi = (float(v) for v in str(text).split(":", 1))
            if not lo <= hi:
                raise ValueError
            return lo, hi
        return float(text)
    except ValueError:
        raise InputError(f"--redshift must be a number or Z1:Z2 with Z1 <= Z2, got {text!r}") from None


def _source(args: argparse.Namespace) -> tuple[Any, str]:
    """(coverage source, kind) of --covered-by: a Spectrum or a cube's wavelength axis."""
    path = args.covered_by
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    from ..inference.inputs import input_kind

    if input_kind(path) == "cube":
        from ..datasets.ifu import cube_wavelength

        return cube_wavelength(path), "ifu-cube"
    from ..photometry.spectra import read_spectrum

    return read_spectrum(path, wavelength_column=args.wavelength_column, flux_column=args.flux_column,
                         wave_unit=args.wave_unit, flux_unit=args.flux_unit), "spectrum"


def run(args: argparse.Namespace) -> int:
    """Print the system's bands or the covered ones."""
    from ..photometry.coverage import coverage_table
    from ..photometry.filters import load_filter_system

    system = load_filter_system(args.filters, unit=args.filter_unit)
    if args.covered_by is None:
        tab = system.summary()
        if args.json:
            sys.stdout.write(dumps_json({"filter_system": system.name, "bands": tab.to_dict("records")}) + "\n")
        else:
            sys.stdout.write(tab.drop(columns=["source"]).to_string(index=False, float_format="%.1f") + "\n")
        return 0
    z = parse_redshift(args.redshift)
    source, kind = _source(args)
    tab = coverage_table(system, source, redshift=z, max_uncovered=args.max_uncovered,
                         max_interpolated=args.max_interpolated)
    covered = tab["band"][tab["covered"]].tolist()
    if not covered:  # an empty list would read as a valid (empty) --bands for simulate ifu
        raise InputError(f"{args.covered_by}: covers none of the {len(system)} {system.name} bands at redshift "
                         f"{z} (<= {args.max_uncovered:g} of a band's response uncovered); choose another system "
                         "or --redshift")
    if args.json:
        doc = {"file": str(args.covered_by), "kind": kind, "filter_system": system.name, "redshift": z,
               "max_uncovered": args.max_uncovered, "max_interpolated": args.max_interpolated,
               "covered": covered, "bands": tab.drop(columns=["covered"]).to_dict("records")}
        sys.stdout.write(dumps_json(doc) + "\n")
        return 0
    lines = [f"# {args.covered_by} ({kind}), filter system {system.name}: {len(covered)} of {len(system)} bands "
             f"covered (<= {args.max_uncovered:g} uncovered, <= {args.max_interpolated:g} interpolated)"]
    for r in tab.itertuples():
        lines.append(f"{r.band:<10} {r.pivot_aa:9.1f}  uncovered {r.uncovered:7.4f}  interpolated "
                     f"{r.interpolated:7.4f}  {r.coverage}")
    lines.append(",".join(covered))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
