"""Input features from band magnitudes and their standardisation.

The CNN sees one feature per band (or per colour). Features and targets are standardised
(x - mean) / scale with statistics fitted on the training rows alone and stored with the model,
so a saved model applies exactly the transformation it was trained with.

Input kinds
-----------
``mag``     the AB magnitudes themselves (as Liew-Cain et al. 2021).
``colour``  m_b - m_ref for every band b except the reference band: brightness-free SED shape.
``flux``    linear flux 10^(-0.4 m) divided by the object's median flux over bands: also
            brightness-free, but linear (noise-dominated bands keep a bounded weight).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..photometry.magnitudes import MagnitudeRange, check_magnitudes

INPUT_KINDS = ("mag", "colour", "flux")


def feature_names(bands: Sequence[str], kind: str, ref_band: str | None = None) -> list[str]:
    """Names of the features that `make_features` returns, in order."""
    bands = list(bands)
    check_kind(kind)
    if kind == "colour":
        ref = resolve_ref_band(bands, ref_band)
        return [f"{b}-{ref}" for b in bands if b != ref]
    return list(bands)


def check_kind(kind: str) -> None:
    """Raise InputError for an unknown input kind."""
    if kind not in INPUT_KINDS:
        raise InputError(f"unknown input kind {kind!r}; use one of {list(INPUT_KINDS)}")


def resolve_ref_band(bands: Sequence[str], ref_band: str | None) -> str:
    """The colour reference band: `ref_band` if given (must be one of `bands`), else the middle band."""
    bands = list(bands)
    if not bands:
        raise InputError("no bands given")
    if ref_band is None or ref_band == "":
        return bands[len(bands) // 2]
    if ref_band not in bands:
        raise InputError(f"reference band {ref_band!r} is not one of the bands {bands}")
    return ref_band


def make_features(mags: np.ndarray, bands: Sequence[str], kind: str = "mag",
                  ref_band: str | None = None,
                  mag_range: MagnitudeRange | Sequence[float] | None = None) -> np.ndarray:
    """Features (n_rows, n_features) from magnitudes (n_rows, n_bands), vectorised over rows.

    Every magnitude on its way into a network (training and prediction) passes here: values outside
    `mag_range` (default -10 .. 40 AB), +-inf and sentinels such as 99 raise InputError (NaN passes:
    it means a missing band, which only 'mask' models accept; their callers check).
    """
    check_kind(kind)
    mags = np.asarray(mags, dtype=np.float64)
    if mags.ndim != 2 or mags.shape[1] != len(bands):
        raise InputError(f"magnitudes must be (n_rows, {len(bands)}); got shape {mags.shape}")
    check_magnitudes(mags, [f"mag_{b}" for b in bands], "magnitudes", mag_range)
    if kind == "mag":
        return mags.copy()
    if kind == "colour":
        ref = resolve_ref_band(bands, ref_band)
        j = list(bands).index(ref)
        keep = [i for i in range(len(bands)) if i != j]
        return mags[:, keep] - mags[:, [j]]
    # flux: shape-only linear fluxes, 10^(-0.4 (m - median_m)) == f / median(f)
    med = np.median(mags, axis=1, keepdims=True)
    return np.power(10.0, -0.4 * (mags - med))


@dataclass
class Standardiser:
    """Per-column affine scaling (x - mean) / scale, fitted on training rows only."""

    names: list[str]
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, names: Sequence[str]) -> "Standardiser":
        """Fit mean and standard deviation per column; a constant column gets scale 1."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise InputError(f"expected (n_rows, {len(names)}) array, got shape {x.shape}")
        if x.shape[0] < 2:
            raise InputError(f"need at least 2 training rows to fit the normalisation, got {x.shape[0]}")
        if not np.all(np.isfinite(x)):
            raise InputError("cannot fit the normalisation: non-finite values in the training rows")
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        return cls(list(names), mean, scale)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Standardise columns."""
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.scale

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Back to physical units."""
        return np.asarray(z, dtype=np.float64) * self.scale + self.mean

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"names": list(self.names), "mean": [float(v) for v in self.mean],
                "scale": [float(v) for v in self.scale]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Standardiser":
        """Inverse of `to_dict`."""
        try:
            return cls(list(d["names"]), np.asarray(d["mean"], dtype=np.float64),
                       np.asarray(d["scale"], dtype=np.float64))
        except KeyError as exc:
            raise InputError(f"normalisation entry lacks key {exc}") from exc
