"""Pixel mask bits of SDSS/BOSS spectra (SPPIXMASK) and MaNGA cubes (MANGA_DRP3PIXMASK): which mean bad data.

Definitions from ``idlutils/data/sdss/sdssMaskbits.par`` (SDSS DR8+; bits 0-15 are per fibre, 16-31 per
pixel) and the MaNGA DRP data model. A pixel is *missing* when its mask has any bit of the ``*_BAD`` set;
`synth_photometry` then interpolates over it when the run is short enough (<= 10% of a band's weight by
default), as the SDSS pipeline does for its own synthetic fluxes. The other bits are informational or
describe data that are still measured (their noise is in ivar) and leave the pixel in.

SDSS SPPIXMASK, missing (bad data):

* fibre: NOPLUG (0), BADTRACE (1), BADFLAT (2), BADARC (3), MANYBADCOLUMNS (4), MANYREJECTED (5),
  LARGESHIFT (6), BADSKYFIBER (7), WHOPPER (9): no trustworthy extraction, flat, wavelength solution,
  position or sky for the fibre, or saturated by a very bright source;
* pixel: FULLREJECT (18), NOSKY (22), NODATA (24) (all imply ivar = 0 in the frame), COMBINEREJ (25,
  rejected when combining exposures), BADFLUXFACTOR (26, flux calibration unreliable), BRIGHTSKY (23,
  sky brighter than the object by 10 sigma: sky-line residuals), BADSKYCHI (27) and REDMONSTER (28)
  (sky-subtraction residuals): the sky-line flags are the ones interpolated over in practice.

Kept (data measured, flag informational): NEARWHOPPER (8, a neighbour is bright), SMEARIMAGE (10),
SMEARHIGHSN (11), SMEARMEDSN (12) (smear exposures available), NEARBADPIXEL (16), LOWFLAT (17),
PARTIALREJECT (19), SCATTEREDLIGHT (20), CROSSTALK (21).

MaNGA MANGA_DRP3PIXMASK, missing: NOCOV (0, no coverage), DEADFIBER (2, major contributing fibre dead),
FORESTAR (3, foreground star), DONOTUSE (10). Kept: LOWCOV (1, low coverage depth: measured, noisier).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..errors import InputError

__all__ = ["SDSS_SPPIXMASK", "SDSS_BAD", "MANGA_DRP3PIXMASK", "MANGA_BAD", "bits_value", "bad_pixels", "decode"]

#: SDSS SPPIXMASK bit numbers (sdssMaskbits.par)
SDSS_SPPIXMASK = {
    "NOPLUG": 0, "BADTRACE": 1, "BADFLAT": 2, "BADARC": 3, "MANYBADCOLUMNS": 4, "MANYREJECTED": 5,
    "LARGESHIFT": 6, "BADSKYFIBER": 7, "NEARWHOPPER": 8, "WHOPPER": 9, "SMEARIMAGE": 10, "SMEARHIGHSN": 11,
    "SMEARMEDSN": 12, "NEARBADPIXEL": 16, "LOWFLAT": 17, "FULLREJECT": 18, "PARTIALREJECT": 19,
    "SCATTEREDLIGHT": 20, "CROSSTALK": 21, "NOSKY": 22, "BRIGHTSKY": 23, "NODATA": 24, "COMBINEREJ": 25,
    "BADFLUXFACTOR": 26, "BADSKYCHI": 27, "REDMONSTER": 28,
}
#: SPPIXMASK bits that make a pixel missing (see the module docstring)
SDSS_BAD = ("NOPLUG", "BADTRACE", "BADFLAT", "BADARC", "MANYBADCOLUMNS", "MANYREJECTED", "LARGESHIFT",
            "BADSKYFIBER", "WHOPPER", "FULLREJECT", "NOSKY", "BRIGHTSKY", "NODATA", "COMBINEREJ",
            "BADFLUXFACTOR", "BADSKYCHI", "REDMONSTER")
#: MaNGA MANGA_DRP3PIXMASK bit numbers
MANGA_DRP3PIXMASK = {"NOCOV": 0, "LOWCOV": 1, "DEADFIBER": 2, "FORESTAR": 3, "DONOTUSE": 10}
MANGA_BAD = ("NOCOV", "DEADFIBER", "FORESTAR", "DONOTUSE")

_SCHEMES = {"sdss": (SDSS_SPPIXMASK, SDSS_BAD), "manga": (MANGA_DRP3PIXMASK, MANGA_BAD)}


def bits_value(names: Iterable[str], scheme: str = "sdss") -> int:
    """The integer with the named bits of `scheme` ('sdss' or 'manga') set; InputError for unknown names."""
    table = _SCHEMES[scheme][0]
    unknown = [n for n in names if n.upper() not in table]
    if unknown:
        raise InputError(f"unknown {scheme} mask bit(s) {unknown}; known: {sorted(table)}")
    return int(sum(1 << table[n.upper()] for n in names))


def bad_pixels(mask: Any, scheme: str = "sdss", bad: Iterable[str] | None = None) -> np.ndarray:
    """Boolean array: pixels whose mask has a bit of the bad set (default `SDSS_BAD` / `MANGA_BAD`)."""
    if scheme not in _SCHEMES:
        raise InputError(f"mask scheme must be one of {sorted(_SCHEMES)}, got {scheme!r}")
    value = bits_value(_SCHEMES[scheme][1] if bad is None else list(bad), scheme)
    arr = np.asarray(mask)
    if arr.dtype.kind not in "iub":
        raise InputError(f"{scheme} pixel mask must be an integer array, got dtype {arr.dtype}")
    return (arr.astype(np.int64) & value) != 0


def decode(value: int, scheme: str = "sdss") -> list[str]:
    """Names of the bits set in `value` (unknown bits as 'BIT<n>')."""
    table = {v: k for k, v in _SCHEMES[scheme][0].items()}
    return [table.get(b, f"BIT{b}") for b in range(64) if int(value) >> b & 1]
