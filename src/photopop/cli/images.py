"""`photopop images ...` (download, check-cutouts, build) and `photopop simulate images`.

`register(subparsers)` adds the `images` group. `register_simulate_images(simulate_subparsers)` adds the
`images` sub-command to the `simulate` group (called from `photopop.cli.simulate`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..validate import arg, finite_float, non_negative_int, out_path, positive_float, positive_int, seed

#: exit status of `photopop images download` when some cutouts could not be fetched (2 is bad input)
DOWNLOAD_INCOMPLETE_EXIT = 3
#: failures printed on stderr (all of them are in download_failures.csv)
DOWNLOAD_FAILURES_SHOWN = 10


# ------------------------------------------------------------------------------- photopop simulate images
def register_simulate_images(simulate_subparsers: Any) -> None:
    """Add `images` under `photopop simulate`."""
    p = simulate_subparsers.add_parser(
        "images", help="mock SDSS-like g, r, i imaging survey (GalSim) written as an image set",
        description="Render a flux-limited mock survey of bulge+disc galaxies with metallicity labels "
        "(Wu & Boada 2019 setting): 128x128 cutouts at 0.296\"/pixel, float32 g,r,i images in nanomaggies, "
        "irg colour composites and a catalogue. See docs/images-data.md.")
    _add_simulate_args(p)
    p.set_defaults(func=run_simulate_images)


def _add_simulate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--galaxies", type=arg(positive_int, "--galaxies"), default=None, metavar="N", help="number of galaxies (default 1000)")
    p.add_argument("--seed", type=arg(seed, "--seed"), default=None, metavar="S", help="random seed (default 0)")
    p.add_argument("--out", type=arg(out_path, "--out"), required=True, metavar="DIR", help="output image-set folder")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="ImageSurveyConfig as TOML/YAML (command-line options override it)")
    p.add_argument("--workers", type=arg(positive_int, "--workers"), default=None, metavar="N",
                   help="worker processes (default: all CPUs); results do not depend on it")
    p.add_argument("--size", type=arg(positive_int, "--size"), default=None, metavar="PIX", help="cutout size in pixels (default 128)")
    p.add_argument("--png", action="store_true", help="also write cutouts/<id>.png colour composites")
    p.add_argument("--jpeg-quality", type=int, default=None, metavar="Q",
                   help="JPEG quality of the irg composites (default 75, as SDSS JPEG cutouts; 0 = no JPEG step)")
    p.add_argument("--overwrite", action="store_true", help="replace an output photopop wrote earlier with other settings (never a folder it did not write)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_simulate_images(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..simulate.images import ImageSurveyConfig, simulate_image_survey

    cfg = load_config(ImageSurveyConfig, args.config) if args.config else ImageSurveyConfig()
    if args.galaxies is not None:
        cfg.n_galaxies = args.galaxies
    if args.seed is not None:
        cfg.seed = args.seed
    if args.size is not None:
        cfg.image_size = args.size
    if args.png:
        cfg.png = True
    if args.jpeg_quality is not None:
        cfg.rgb_jpeg_quality = args.jpeg_quality
    if args.workers is not None and args.workers < 1:
        raise InputError("--workers must be >= 1")
    s = simulate_image_survey(cfg, args.out, n_workers=args.workers, progress=not args.no_progress,
                              overwrite=args.overwrite)
    print(f"wrote {s!r}; elapsed {s.meta.get('elapsed_s')} s")
    return 0


# ------------------------------------------------------------------------------- photopop images ...
def register(subparsers: Any) -> None:
    """Add the `images` command group."""
    p = subparsers.add_parser("images", help="image data: SDSS cutout download, checks, image sets",
                              description="Image data for the image (CNN) method: download SDSS cutouts, "
                              "check a cutout folder against a catalogue, build an image set.")
    sub = p.add_subparsers(dest="images_command", metavar="SUBCOMMAND")

    d = sub.add_parser("download", help="download SDSS irg JPEG cutouts for a catalogue (resumable)",
                       description="One cutout per catalogue row (objID, ra, dec), named <objID>.jpg, the paper's "
                       "geometry (128x128 at 0.296\"/pix). Parallel, retried with exponential backoff, atomic "
                       "per file, skips files already complete; failures go to DIR/download_failures.csv.")
    d.add_argument("catalog", type=Path, metavar="CATALOG", help="FITS/CSV/Parquet table with objID, ra, dec")
    d.add_argument("--out", type=arg(out_path, "--out"), required=True, metavar="DIR")
    d.add_argument("--workers", type=arg(positive_int, "--workers"), default=8, metavar="N", help="parallel downloads (default 8)")
    d.add_argument("--retries", type=arg(non_negative_int, "--retries"), default=4, metavar="N", help="retries per image (default 4)")
    d.add_argument("--backoff", type=arg(finite_float, "--backoff", minimum=0.0), default=1.0, metavar="S",
                   help="first retry wait in seconds, doubled each retry (default 1)")
    d.add_argument("--timeout", type=arg(positive_float, "--timeout"), default=30.0, metavar="S", help="per-request timeout (default 30)")
    d.add_argument("--base-url", default=None, metavar="URL", help="cutout service URL (default SDSS DR14)")
    d.add_argument("--scale", type=arg(positive_float, "--scale"), default=0.296, help="arcsec per pixel (default 0.296)")
    d.add_argument("--size", type=arg(positive_int, "--size"), default=128, help="width = height in pixels (default 128)")
    d.add_argument("--limit", type=arg(positive_int, "--limit"), default=None, metavar="N", help="only the first N rows")
    d.add_argument("--no-progress", action="store_true")
    d.add_argument("--overwrite", action="store_true", help="replace an output photopop wrote earlier with other settings (never a folder it did not write)")
    d.set_defaults(func=run_download)

    c = sub.add_parser("check-cutouts", help="match a cutout folder to a catalogue; list missing/unreadable files",
                       description="Decodes every <objID>.jpg/.png/.fits in FOLDER, matches it to the catalogue "
                       "and writes the ids without a usable cutout (with the reason) to --log.")
    c.add_argument("catalog", type=Path, metavar="CATALOG")
    c.add_argument("folder", type=Path, metavar="FOLDER")
    c.add_argument("--log", type=Path, default=None, metavar="CSV",
                   help="where to write the missing list (default FOLDER/missing_cutouts.csv)")
    c.add_argument("--id-column", default=None, help="catalogue id column (default objID or id)")
    c.set_defaults(func=run_check)

    b = sub.add_parser("build", help="build an image set from an SDSS catalogue and a cutout folder",
                       description="Reads the catalogue (MPA-JHU columns), optionally applies the Wu & Boada "
                       "cuts, matches cutouts and writes an image set (catalogue labels: id, oh, log_mstar, ...).")
    b.add_argument("catalog", type=Path, metavar="CATALOG")
    b.add_argument("folder", type=Path, metavar="FOLDER")
    b.add_argument("--out", type=arg(out_path, "--out"), required=True, metavar="DIR")
    b.add_argument("--cuts", action="store_true", help="apply the Wu & Boada (2019) sample cuts first")
    b.add_argument("--pixel-scale", type=arg(positive_float, "--pixel-scale"), default=0.296, help="arcsec per pixel (default 0.296)")
    b.add_argument("--overwrite", action="store_true", help="replace an output photopop wrote earlier with other settings (never a folder it did not write)")
    b.set_defaults(func=run_build)

    if "simulate" not in subparsers.choices:  # until `photopop simulate` exists, offer it here too
        s = sub.add_parser("simulate", help="same as `photopop simulate images`")
        _add_simulate_args(s)
        s.set_defaults(func=run_simulate_images)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def run_download(args: argparse.Namespace) -> int:
    from ..datasets.download import DEFAULT_BASE_URL, DownloadConfig, download_cutouts
    from ..io import read_table

    cat = read_table(args.catalog)
    if args.limit is not None:
        cat = cat.head(args.limit)
    cfg = DownloadConfig(base_url=args.base_url or DEFAULT_BASE_URL, scale=args.scale, width=args.size,
                         height=args.size, workers=args.workers, retries=args.retries, backoff_s=args.backoff,
                         timeout_s=args.timeout)
    rep = download_cutouts(cat, args.out, cfg, progress=not args.no_progress, overwrite=args.overwrite)
    print(rep)
    if rep.n_failed:  # exit 3 (not 0) so that scripts notice an incomplete download; the list goes to stderr
        for row in rep.failures.head(DOWNLOAD_FAILURES_SHOWN).itertuples():
            print(f"photopop: failed: objID {row.objID}: {row.error}", file=sys.stderr)
        more = rep.n_failed - DOWNLOAD_FAILURES_SHOWN
        print(f"photopop: {rep.n_failed} download(s) failed{f' ({more} more not shown)' if more > 0 else ''}; "
              f"all listed in {args.out / 'download_failures.csv'}; rerun to retry them", file=sys.stderr)
    return 0 if rep.n_failed == 0 else DOWNLOAD_INCOMPLETE_EXIT


def run_check(args: argparse.Namespace) -> int:
    from ..datasets.cutouts import match_cutouts
    from ..io import read_table

    cat = read_table(args.catalog)
    log = args.log or (args.folder / "missing_cutouts.csv")
    m = match_cutouts(cat, args.folder, id_column=args.id_column, decode=True, log_path=log)
    shape = "x".join(map(str, m.image_shape)) if m.image_shape else "-"
    print(f"{len(m.catalog)} of {len(cat)} catalogue rows have a usable {m.kind} cutout ({shape} pixels); "
          f"{len(m.missing)} missing or unreadable -> {log}")
    if len(m.missing):
        print(m.missing["reason"].str.split(":").str[0].value_counts().to_string())
    return 0 if not len(m.missing) else 3


def run_build(args: argparse.Namespace) -> int:
    from ..datasets.cutouts import cutouts_to_image_set
    from ..datasets.sdss import apply_wu_boada_cuts, read_sdss_catalog, to_image_catalog

    cat = read_sdss_catalog(args.catalog)
    meta: dict[str, Any] = {"catalog_file": str(args.catalog)}
    if args.cuts:
        cat, rep = apply_wu_boada_cuts(cat)
        print(rep)
        meta["cuts"] = rep.to_frame().to_dict(orient="records")
    s, m = cutouts_to_image_set(to_image_catalog(cat), args.folder, args.out, id_column="id",
                                pixel_scale_arcsec=args.pixel_scale, meta=meta, overwrite=args.overwrite)
    print(f"wrote {s!r}; {len(m.missing)} catalogue rows without a usable cutout listed in {args.out / 'missing.csv'}")
    return 0
