"""`FilterSystem`: an ordered set of band curves, and filter families.

A `FilterSystem` is an ordered set of `FilterCurve`s (sorted by pivot wavelength; curves are defined in
`photopop.photometry.curves`) that answers band names, pivots, FWHM, ranges and selections. Filter families
(`filter_family`, `same_filter_family`): a named subset of a system's bands (``jpas-califa`` of ``jpas``, a
``select`` result ``jpas[12]``) belongs to that system's family; the model check
(`photopop.models.sed_base.check_bands`) treats systems of one family as the same system.

Where curves come from is one module per source, each building a `FilterSystem`: `sdss_curves`
(speclite), `milespy_curves` (J-PAS/J-PLUS files of the milespy wheel), `svo` (SVO Filter Profile
Service), `curve_files` (user files); `filters.load_filter_system` dispatches a name to them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from .curves import FilterCurve

#: family of each built-in system name (a subset of a system's bands is the same filter system)
_FAMILIES = {"jpas": "jpas", "milespy:oaj_jpas": "jpas", "jpas-califa": "jpas", "jpas_califa": "jpas",
             "jpas-liew-cain-2021": "jpas", "jplus": "jplus", "milespy:oaj_jplus": "jplus", "sdss": "sdss"}
_SELECTION_SUFFIX = re.compile(r"\[\d+\]$")


def filter_family(name: str | None) -> str | None:
    """The filter system a system name belongs to: 'jpas' for 'jpas', 'jpas-califa', 'milespy:OAJ_JPAS'
    and selections such as 'jpas[12]'; 'jplus', 'sdss' likewise; any other name is its own family
    (compared case-insensitively). None stays None."""
    if name is None:
        return None
    key = str(name).strip()
    while _SELECTION_SUFFIX.search(key):
        key = _SELECTION_SUFFIX.sub("", key)
    return _FAMILIES.get(key.lower(), key.lower())


def same_filter_family(a: str | None, b: str | None) -> bool:
    """True when two filter-system names belong to one family (see `filter_family`); a missing name
    (None or '') matches anything."""
    if not a or not b:
        return True
    return filter_family(a) == filter_family(b)


@dataclass(frozen=True, eq=False)
class FilterSystem:
    """An ordered set of band curves (sorted by pivot wavelength) with a name.

    Band names are unique. `select` returns a new system; nothing is mutated.

    Parameters
    ----------
    name : str
        The system's name (as model folders and catalogue metadata record it).
    curves : tuple of FilterCurve
        The band curves, in any order (sorted by pivot on construction).
    """

    name: str
    curves: tuple[FilterCurve, ...]

    def __post_init__(self) -> None:
        curves = tuple(self.curves)
        if not curves:
            raise InputError(f"filter system {self.name!r} has no bands")
        names = [c.name for c in curves]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputError(f"filter system {self.name!r}: duplicate band name(s) {dupes}")
        object.__setattr__(self, "curves", tuple(sorted(curves, key=lambda c: c.pivot)))

    # -- lookups ---------------------------------------------------------------------------
    @property
    def bands(self) -> list[str]:
        """Band names, bluest first."""
        return [c.name for c in self.curves]

    @property
    def pivots(self) -> np.ndarray:
        """Pivot wavelengths (A), one per band."""
        return np.array([c.pivot for c in self.curves])

    @property
    def fwhms(self) -> np.ndarray:
        """FWHM (A), one per band."""
        return np.array([c.fwhm for c in self.curves])

    @property
    def wavelength_ranges(self) -> np.ndarray:
        """(n_bands, 2) response ranges (A) where T > 1% of the band's peak."""
        return np.array([c.support for c in self.curves])

    @property
    def kinds(self) -> list[str]:
        """'narrow' / 'medium' / 'broad' per band (see `FilterCurve.kind`)."""
        return [c.kind for c in self.curves]

    def __len__(self) -> int:
        return len(self.curves)

    def __iter__(self) -> Iterator[FilterCurve]:
        return iter(self.curves)

    def __contains__(self, band: object) -> bool:
        return band in self.bands

    def __getitem__(self, key: str | int) -> FilterCurve:
        if isinstance(key, (int, np.integer)):
            return self.curves[int(key)]
        for c in self.curves:
            if c.name == key:
                return c
        raise InputError(f"band {key!r} is not in filter system {self.name!r}; bands: {self.bands}")

    @cached_property
    def key(self) -> str:
        """Content hash of names and curves (for caching weight matrices)."""
        h = hashlib.sha1()
        for c in self.curves:
            h.update(c.name.encode())
            h.update(c.wavelength.tobytes())
            h.update(c.transmission.tobytes())
        return h.hexdigest()

    def summary(self) -> pd.DataFrame:
        """One row per band: pivot, FWHM, response range, tabulated extent, peak T, kind, source."""
        return pd.DataFrame({
            "band": self.bands,
            "pivot_aa": self.pivots,
            "fwhm_aa": self.fwhms,
            "range_lo_aa": self.wavelength_ranges[:, 0],
            "range_hi_aa": self.wavelength_ranges[:, 1],
            "extent_lo_aa": [c.extent[0] for c in self.curves],
            "extent_hi_aa": [c.extent[1] for c in self.curves],
            "peak": [c.peak for c in self.curves],
            "kind": self.kinds,
            "source": [c.source for c in self.curves],
        })

    # -- selection -------------------------------------------------------------------------
    def _check_names(self, names: Iterable[str], what: str) -> list[str]:
        names = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in names if n not in self.bands]
        if unknown:
            raise InputError(f"{what}: band(s) {unknown} not in filter system {self.name!r}; bands: {self.bands}")
        return names

    def inside(self, wavelength_range: tuple[float, float], *, criterion: str = "response",
               max_outside: float = 0.01, margin: float = 0.0) -> np.ndarray:
        """Boolean per band: is the band inside `wavelength_range` (A)?

        criterion:
          * ``"response"`` (default): at most `max_outside` of the band's AB weight
            int T/lam dlam lies outside the range, i.e. a spectrum covering exactly the range
            gives the band as 'full' or 'partial' in `synth_photometry` (not NaN).
          * ``"support"``: the range where T > 1% of peak lies inside.
          * ``"pivot"``: the pivot lies inside the range widened by `margin` A on each side.
        """
        lo, hi = (float(v) for v in wavelength_range)
        if not lo < hi:
            raise InputError(f"wavelength_range must be (low, high) with low < high, got {wavelength_range}")
        if criterion == "response":
            return np.array([c.share_outside(lo, hi) <= max_outside for c in self.curves])
        if criterion == "support":
            r = self.wavelength_ranges
            return (r[:, 0] >= lo) & (r[:, 1] <= hi)
        if criterion == "pivot":
            p = self.pivots
            return (p >= lo - margin) & (p <= hi + margin)
        raise InputError(f"unknown selection criterion {criterion!r}; use 'response', 'support' or 'pivot'")

    def select(self, names: Sequence[str] | None = None, *, wavelength_range: tuple[float, float] | None = None,
               exclude: Sequence[str] | None = None, kind: str | Sequence[str] | None = None,
               criterion: str = "response", max_outside: float = 0.01, margin: float = 0.0,
               name: str | None = None) -> "FilterSystem":
        """A subset: bands in `names` (all if None), inside `wavelength_range` (see `inside`),
        of the given `kind`(s), minus `exclude`. Unknown names raise InputError; an empty result too."""
        keep = np.ones(len(self), dtype=bool)
        if names is not None:
            wanted = set(self._check_names(names, "select"))
            keep &= np.array([b in wanted for b in self.bands])
        if wavelength_range is not None:
            keep &= self.inside(wavelength_range, criterion=criterion, max_outside=max_outside, margin=margin)
        if kind is not None:
            kinds = {kind} if isinstance(kind, str) else set(kind)
            bad = kinds - {"narrow", "medium", "broad"}
            if bad:
                raise InputError(f"unknown band kind(s) {sorted(bad)}; use 'narrow', 'medium' or 'broad'")
            keep &= np.array([k in kinds for k in self.kinds])
        if exclude is not None:
            dropped = set(self._check_names(exclude, "exclude"))
            keep &= np.array([b not in dropped for b in self.bands])
        curves = tuple(c for c, k in zip(self.curves, keep) if k)
        if not curves:
            raise InputError(f"selection from {self.name!r} leaves no bands")
        return FilterSystem(name or f"{self.name}[{len(curves)}]", curves)

    def __repr__(self) -> str:
        return f"FilterSystem({self.name!r}, {len(self)} bands: {', '.join(self.bands[:6])}{'...' if len(self) > 6 else ''})"


__all__ = ["FilterSystem", "filter_family", "same_filter_family"]
