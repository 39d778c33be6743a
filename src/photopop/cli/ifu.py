"""`photopop ifu prepare` (cubes -> Voronoi-binned spectra) and `photopop ifu table` (bins + labels -> SED table)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import InputError


def register(subparsers: Any) -> None:
    """Add the `ifu` command group."""
    p = subparsers.add_parser("ifu", help="real IFU cubes: Voronoi binning and SED tables",
                              description="The IFU route: `ifu prepare` bins cubes, `photopop labels BINS` fits "
                              "the binned spectra, `ifu table` joins labels and synthetic photometry into an SED "
                              "table for `sed cv`, `sed train` and `gradients`.")
    sub = p.add_subparsers(dest="ifu_command", metavar="SUBCOMMAND")
    pr = sub.add_parser("prepare", help="Voronoi-bin CALIFA / MaNGA cubes to a target S/N",
                        description="Reads CALIFA (V500, V1200, COMB) or MaNGA LOGCUBE cubes, bins them to a "
                        "target S/N with vorbin, and writes binned spectra with propagated errors and masks, "
                        "bin positions and deprojected radii.")
    pr.add_argument("cubes", nargs="+", type=Path, metavar="CUBE")
    pr.add_argument("--out", required=True, type=Path, help="output folder")
    pr.add_argument("--geometry", type=Path, metavar="TABLE", help="table with cube, galaxy_id, re_arcsec, "
                    "redshift[, pa_deg, inclination_deg, centre_x_pix, centre_y_pix] (needed for several cubes)")
    pr.add_argument("--galaxy-id", type=int, default=0)
    pr.add_argument("--re", type=float, metavar="ARCSEC", help="effective radius (arcsec)")
    pr.add_argument("--redshift", type=float, metavar="Z")
    pr.add_argument("--pa", type=float, default=0.0, metavar="DEG", help="position angle of the major axis")
    pr.add_argument("--inclination", type=float, default=0.0, metavar="DEG")
    pr.add_argument("--centre", type=float, nargs=2, metavar=("X", "Y"), help="centre in 0-based pixels")
    pr.add_argument("--target-sn", type=float, default=20.0, help="target S/N per bin (default 20)")
    pr.add_argument("--min-snr", type=float, default=3.0, help="spaxels below this S/N are not used (default 3)")
    pr.add_argument("--fwhm", type=float, metavar="A", help="instrumental FWHM (A) instead of the survey's")
    pr.add_argument("--pixel-scale", type=float, metavar="ARCSEC", help="replace a missing celestial WCS "
                    "(north up, east left)")
    pr.add_argument("--no-covariance", action="store_true", help="no covariance correction of binned errors")
    pr.add_argument("--overwrite", action="store_true")
    pr.set_defaults(func=run_prepare)
    tb = sub.add_parser("table", help="SED table from binned spectra and their labels",
                        description="Synthetic photometry of every binned spectrum joined with its pPXF labels; "
                        "fits with status != ok or chi2_red > 2 are left out (counted in meta.json).")
    tb.add_argument("bins", type=Path, metavar="BINS")
    tb.add_argument("--labels", required=True, type=Path, help="table from `photopop labels BINS`")
    tb.add_argument("--filters", required=True, metavar="SYSTEM")
    tb.add_argument("--bands", nargs="+", metavar="BAND", help="subset of the system's bands")
    tb.add_argument("--keep-flagged", action="store_true", help="keep fits with chi2_red > 2")
    tb.add_argument("--out", required=True, type=Path, help="SED-table folder to write")
    tb.add_argument("--overwrite", action="store_true")
    tb.set_defaults(func=run_table)
    mp = sub.add_parser("maps", help="FITS maps of per-bin values (labels, predictions) with the cube's WCS",
                        description="Paints each bin's value back onto its spaxels: one <galaxy_id>_maps.fits per "
                        "galaxy, one image per column (NaN outside bins).")
    mp.add_argument("bins", type=Path, metavar="BINS")
    mp.add_argument("--values", required=True, type=Path, metavar="TABLE",
                    help="table with galaxy_id, spaxel_id and the columns (labels or `sed predict` output)")
    mp.add_argument("--columns", nargs="+", default=["log_age", "zh"], metavar="COL")
    mp.add_argument("--out", required=True, type=Path, help="folder for the maps")
    mp.add_argument("--overwrite", action="store_true")
    mp.set_defaults(func=run_maps)
    p.set_defaults(func=lambda a: p.print_help() or 1)


def run_prepare(args: argparse.Namespace) -> int:
    from ..datasets.ifu_bins import BinningConfig, GalaxyGeometry, geometry_from_table, prepare_ifu_bins

    if args.geometry is not None:
        geometry = geometry_from_table(args.geometry, args.cubes)
    else:
        if len(args.cubes) > 1:
            raise InputError("several cubes need a --geometry table (one row per cube)")
        if args.re is None or args.redshift is None:
            raise InputError("give --re and --redshift (or a --geometry table)")
        c = args.centre or (None, None)
        geometry = [GalaxyGeometry(args.galaxy_id, args.re, args.redshift, args.pa, args.inclination, c[0], c[1])]
    cfg = BinningConfig(target_sn=args.target_sn, min_spaxel_snr=args.min_snr, fwhm_aa=args.fwhm,
                        pixel_scale_arcsec=args.pixel_scale, covariance_alpha=0.0 if args.no_covariance else None)
    out = prepare_ifu_bins(args.cubes, geometry, args.out, cfg, overwrite=args.overwrite)
    import pandas as pd

    bins = pd.read_parquet(out / "bins.parquet")
    print(f"wrote {out}: {len(bins)} bins from {len(args.cubes)} cube(s); median S/N {bins['snr_bin'].median():.1f}")
    return 0


def run_table(args: argparse.Namespace) -> int:
    from ..datasets.ifu_table import build_ifu_table
    from ..datasets.sed_table import write_sed_table
    from ..outputs import check_output

    # the output-folder contract (docs/architecture.md) before the photometry: user folders, other kinds and
    # the inputs are refused at once; the settings (table meta) are compared by write_sed_table
    check_output(args.out, "sed-table", overwrite=args.overwrite, inputs=[args.bins, args.labels])
    table = build_ifu_table(args.bins, args.labels, args.filters, bands=args.bands, keep_flagged=args.keep_flagged)
    write_sed_table(table, args.out, overwrite=args.overwrite)
    print(f"wrote {args.out}: {len(table)} rows, {len(table.bands)} bands; dropped {table.meta['dropped']}")
    return 0


def run_maps(args: argparse.Namespace) -> int:
    from ..datasets.ifu_maps import write_bin_maps

    for path in write_bin_maps(args.bins, args.values, args.columns, args.out, overwrite=args.overwrite):
        print(path)
    return 0
