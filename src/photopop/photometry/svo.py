"""Filters of the SVO Filter Profile Service (http://svo2.cab.inta-csic.es/theory/fps/) by id.

A curve is fetched once through ``astroquery.svo_fps`` and kept as a VOTable in the user cache
(``$PHOTOPOP_CACHE/filters``, else ``$XDG_CACHE_HOME/photopop/filters``, else
``~/.cache/photopop/filters``); later calls read the cached file and need no network. Offline and
without a cached copy, an InputError names the id and says how to supply the curve as a file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from astropy import units as u

from ..errors import InputError
from ..io import atomic_path
from .curves import FilterCurve, read_filter_curve
from .system import FilterSystem

__all__ = ["filter_cache_dir", "svo_cache_path", "fetch_svo_filter", "load_svo_system"]

SVO_URL = "http://svo2.cab.inta-csic.es/theory/fps/"


def filter_cache_dir() -> Path:
    """Folder for cached filter curves (not created here)."""
    if os.environ.get("PHOTOPOP_CACHE"):
        return Path(os.environ["PHOTOPOP_CACHE"]).expanduser() / "filters"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "photopop" / "filters"


def _check_id(filter_id: str) -> str:
    filter_id = filter_id.strip()
    facility, sep, rest = filter_id.partition("/")
    if not sep or not facility or "." not in rest or any(ch in filter_id for ch in " \\:") or ".." in filter_id:
        raise InputError(f"{filter_id!r} is not an SVO filter id; ids look like 'FACILITY/INSTRUMENT.BAND', "
                         "e.g. 'SLOAN/SDSS.r' or 'OAJ/JPAS.J0378'")
    return filter_id


def svo_cache_path(filter_id: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Cache file of one SVO id ('/' becomes '__')."""
    folder = Path(cache_dir) if cache_dir is not None else filter_cache_dir()
    return folder / (_check_id(filter_id).replace("/", "__") + ".xml")


def _download_from_svo(filter_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Wavelength (A) and transmission from SVO via astroquery (the one function that uses the network)."""
    from astroquery.svo_fps import SvoFps

    tab = SvoFps.get_transmission_data(filter_id, cache=False)
    wave = tab["Wavelength"]
    unit = wave.unit if wave.unit is not None else u.AA
    return (np.asarray(wave, dtype=float) * unit).to_value(u.AA), np.asarray(tab["Transmission"], dtype=float)


def _fetch_errors() -> tuple[type[BaseException], ...]:
    """What a failed SVO request raises: network errors (requests' are OSErrors), astroquery's service
    errors, and a reply that is not a transmission table (ValueError, KeyError)."""
    from astroquery.exceptions import RemoteServiceError, TableParseError, TimeoutError as AQTimeoutError

    return (OSError, ValueError, KeyError, RemoteServiceError, TableParseError, AQTimeoutError)


def _write_cache(path: Path, filter_id: str, wave_aa: np.ndarray, trans: np.ndarray) -> None:
    from astropy.table import Table

    tab = Table([wave_aa * u.AA, trans], names=["Wavelength", "Transmission"])
    tab.meta["filterID"] = filter_id
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)  # 'Angstrom', as SVO itself writes it
        tab.write(tmp, format="votable", overwrite=True)


def fetch_svo_filter(filter_id: str, *, name: str | None = None, cache_dir: str | os.PathLike | None = None,
                     refresh: bool = False) -> FilterCurve:
    """One SVO filter curve by id, from the cache or (first time) from the service."""
    path = svo_cache_path(filter_id, cache_dir)
    filter_id = _check_id(filter_id)
    name = name or filter_id
    if path.is_file() and not refresh:
        curve = read_filter_curve(path, name=name)
        return FilterCurve(name, curve.wavelength, curve.transmission, f"svo:{filter_id} (cached {path})")
    try:
        wave, trans = _download_from_svo(filter_id)
    except IndexError as exc:  # astroquery: the VOTable came back without a table
        raise InputError(f"SVO Filter Profile Service has no filter with id {filter_id!r} "
                         f"(browse {SVO_URL} for ids)") from exc
    except _fetch_errors() as exc:  # offline, timeout, HTTP error, an answer that is not a curve
        raise InputError(
            f"cannot fetch filter {filter_id!r} from the SVO Filter Profile Service "
            f"({type(exc).__name__}: {exc}) and it is not in the cache {path.parent}. Offline, supply the "
            f"curve as a file: download it as a VOTable from {SVO_URL} (or two columns wavelength, "
            f"transmission) and pass the file (or a folder of files) as the filter system, e.g. "
            f"`--filters my_filters/` with `--filter-unit Angstrom` for ASCII files, or copy the VOTable "
            f"to {path}") from exc
    curve = FilterCurve(name, wave, trans, f"svo:{filter_id}")  # validate before caching
    _write_cache(path, filter_id, curve.wavelength, curve.transmission)
    return curve


def _band_names(ids: Sequence[str]) -> list[str]:
    short = [i.rsplit(".", 1)[-1] for i in ids]
    if len(set(short)) == len(short):
        return short
    return [i.split("/", 1)[-1].replace(".", "_") for i in ids]


def load_svo_system(ids: Sequence[str], *, name: str | None = None,
                    cache_dir: str | os.PathLike | None = None) -> FilterSystem:
    """A system of SVO filters; band names are the part after the last '.' of each id
    (``SLOAN/SDSS.r`` -> ``r``), or ``INSTRUMENT_BAND`` when those would clash."""
    ids = [_check_id(i) for i in ids]
    if not ids:
        raise InputError("no SVO filter ids given")
    curves = tuple(fetch_svo_filter(i, name=n, cache_dir=cache_dir) for i, n in zip(ids, _band_names(ids)))
    return FilterSystem(name or "svo:" + ",".join(ids), curves)
