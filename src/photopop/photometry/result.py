"""`PhotometryResult`: what `synth_photometry` returns (magnitudes, fluxes, errors, coverage flags)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["PhotometryResult", "COVERAGE_FLAGS"]

#: coverage flags, best first
COVERAGE_FLAGS = ("full", "partial", "interpolated", "none")


@dataclass
class PhotometryResult:
    """AB photometry of one (1-D arrays, one value per band) or many spectra (n_spectra, n_bands).

    flux_jy / flux_maggies / flux_nmgy: band-averaged f_nu in Jy, maggies, nanomaggies.
    coverage: 'full'; 'partial' (part of the band's AB weight outside the spectrum, in a grid gap or in
    masked pixels at its ends: computed over the covered part); 'interpolated' (masked runs inside the
    spectrum filled by linear interpolation, at most `max_interpolated` of the weight); 'none' (NaN).
    uncovered_fraction: share of the band's AB weight outside the spectrum, in grid gaps, or masked
    beyond the first/last good pixel. interpolated_fraction: share carried by interpolated pixels.
    Errors (None unless flux_err or ivar was given): flux_err_* and mag_err.
    """

    bands: list[str]
    filter_system: str
    pivot_aa: np.ndarray
    mag_ab: np.ndarray
    flux_maggies: np.ndarray
    flux_nmgy: np.ndarray
    flux_jy: np.ndarray
    coverage: np.ndarray
    uncovered_fraction: np.ndarray
    mag_err: np.ndarray | None = None
    flux_err_maggies: np.ndarray | None = None
    flux_err_nmgy: np.ndarray | None = None
    flux_err_jy: np.ndarray | None = None
    redshift: float = 0.0
    interpolated_fraction: np.ndarray | None = None

    @property
    def n_spectra(self) -> int:
        """Number of spectra (1 for 1-D input)."""
        return 1 if self.mag_ab.ndim == 1 else self.mag_ab.shape[0]

    def to_table(self, layout: str = "wide") -> Any:
        """The photometry as an astropy `QTable` whose columns carry their units.

        Parameters
        ----------
        layout
            ``"wide"`` (one row per spectrum) or ``"long"`` (one row per spectrum and band); the columns
            are those of `to_pandas`.

        Returns
        -------
        astropy.table.QTable
            Magnitudes in ``u.ABmag``, magnitude errors in ``u.mag``, ``flux_nmgy*`` in ``u.nanomaggy``
            (convert to Jy with ``equivalencies=u.zero_point_flux(3631 * u.Jy)``), ``flux_jy`` in
            ``u.Jy``, ``pivot_aa`` in Angstrom; coverage flags and shares without unit. ``meta`` holds
            ``filter_system``, ``bands`` and ``redshift``.
        """
        from astropy.table import QTable

        frame = self.to_pandas(layout)
        table = QTable(meta={"filter_system": self.filter_system, "bands": list(self.bands),
                             "redshift": float(self.redshift)})
        for name in frame.columns:
            unit = _unit_of(str(name))
            values = frame[name].to_numpy()
            table[name] = values if unit is None else values * unit
        return table

    def to_pandas(self, layout: str = "wide") -> pd.DataFrame:
        """A DataFrame (plain numbers: AB magnitudes, nanomaggies, Jy). ``wide``: one row per spectrum
        with ``mag_<band>``, ``magerr_<band>``, ``flux_nmgy_<band>``, ``flux_err_nmgy_<band>``,
        ``coverage_<band>``, ``uncovered_<band>``, ``interpolated_<band>``. ``long``: one row per
        (spectrum, band) with spectrum, band, pivot_aa, mag_ab, mag_err, flux_nmgy, flux_err_nmgy,
        flux_jy, coverage, uncovered_fraction, interpolated_fraction."""
        two = lambda a: None if a is None else np.atleast_2d(a)  # noqa: E731
        mag, err, nm, nm_err = two(self.mag_ab), two(self.mag_err), two(self.flux_nmgy), two(self.flux_err_nmgy)
        cov, unc, jy = two(self.coverage), two(self.uncovered_fraction), two(self.flux_jy)
        itp = two(self.interpolated_fraction) if self.interpolated_fraction is not None else np.zeros_like(unc)
        if layout == "wide":
            cols: dict[str, Any] = {}
            for k, b in enumerate(self.bands):
                cols[f"mag_{b}"] = mag[:, k]
                if err is not None:
                    cols[f"magerr_{b}"] = err[:, k]
                cols[f"flux_nmgy_{b}"] = nm[:, k]
                if nm_err is not None:
                    cols[f"flux_err_nmgy_{b}"] = nm_err[:, k]
                cols[f"coverage_{b}"] = cov[:, k]
                cols[f"uncovered_{b}"] = unc[:, k]
                cols[f"interpolated_{b}"] = itp[:, k]
            return pd.DataFrame(cols)
        if layout == "long":
            n, nb = mag.shape
            nan = np.full((n, nb), np.nan)
            return pd.DataFrame({
                "spectrum": np.repeat(np.arange(n), nb),
                "band": np.tile(self.bands, n),
                "pivot_aa": np.tile(self.pivot_aa, n),
                "mag_ab": mag.ravel(),
                "mag_err": (err if err is not None else nan).ravel(),
                "flux_nmgy": nm.ravel(),
                "flux_err_nmgy": (nm_err if nm_err is not None else nan).ravel(),
                "flux_jy": jy.ravel(),
                "coverage": cov.ravel(),
                "uncovered_fraction": unc.ravel(),
                "interpolated_fraction": itp.ravel(),
            })
        raise InputError(f"layout must be 'wide' or 'long', not {layout!r}")


#: units of the long layout's columns; wide columns go by prefix (see `_unit_of`)
_LONG_UNITS = {"pivot_aa": "AA", "mag_ab": "ABmag", "mag_err": "mag", "flux_nmgy": "nanomaggy",
               "flux_err_nmgy": "nanomaggy", "flux_jy": "Jy"}
_WIDE_UNITS = (("magerr_", "mag"), ("mag_", "ABmag"), ("flux_err_nmgy_", "nanomaggy"),
               ("flux_nmgy_", "nanomaggy"))


def _unit_of(column: str) -> Any:
    """The astropy unit of a `to_pandas` column, or None for flags, shares and identifiers."""
    import astropy.units as u

    name = _LONG_UNITS.get(column)
    if name is None:
        name = next((unit for prefix, unit in _WIDE_UNITS if column.startswith(prefix)), None)
    return None if name is None else getattr(u, name)
