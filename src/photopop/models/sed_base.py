"""What single SED networks, ensembles and posterior flows share when they predict from magnitudes.

The layer below `photopop.models.saved`, `photopop.models.ensemble` and
`photopop.models.posterior_model` (none of which imports another's base): reading magnitudes from an
SEDTable, a DataFrame of ``mag_<band>`` columns or an array (`extract_magnitudes`), matching the input
bands and filter system against the model's (`check_bands`: `MismatchError` naming the difference;
bands in another order are reordered), refusing NaN magnitudes for models not trained to mask them
(`check_finite`), batched network evaluation (`run_network`), the prediction frame with
``<target>_sigma`` columns (`prediction_frame`) and the meta properties with sigma recalibration
(`SigmaScaled`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..errors import InputError, MismatchError
from ..photometry.columns import MAG_PREFIX, bands_from_columns
from ..photometry.magnitudes import magnitude_matrix
from .meta import ModelMeta
from .sed_cnn import SEDCNN

SIGMA_SUFFIX = "_sigma"


def check_finite(mags: np.ndarray, bands: Sequence[str], what: str = "input") -> None:
    """Refuse NaN/inf magnitudes with an InputError naming the bands and the number of rows."""
    bad = ~np.isfinite(mags)
    if bad.any():
        cols = np.flatnonzero(bad.any(axis=0))
        nrows = int(bad.any(axis=1).sum())
        names = [bands[i] for i in cols]
        raise InputError(f"{what}: {nrows} row(s) have NaN/inf magnitudes in band(s) {names}; this model "
                         "was not trained to mask missing bands: drop or fill those rows first")


def check_bands(expected: Sequence[str], given: Sequence[str], expected_system: str | None,
                given_system: str | None) -> np.ndarray:
    """Column order that maps `given` bands onto `expected`; MismatchError naming any difference.

    Filter systems of one family are the same system (`photopop.photometry.filters.same_filter_family`:
    'jpas-califa' is a subset of 'jpas'). When both systems are declared and agree, bands of the input
    the model does not use are ignored (the model's bands must be a subset of the input's); otherwise
    extra bands are refused, as they may mean a different filter system.
    """
    from ..photometry.filters import same_filter_family

    expected, given = list(expected), list(given)
    if not same_filter_family(expected_system, given_system):
        raise MismatchError(f"filter system differs: the model was trained on {expected_system!r}, "
                            f"the input is {given_system!r}")
    missing = [b for b in expected if b not in given]
    declared = bool(expected_system) and bool(given_system)
    extra = [] if declared else [b for b in given if b not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing band(s) {missing}")
        if extra:
            parts.append(f"extra band(s) {extra} the model was not trained on")
        raise MismatchError("input bands differ from the model's: " + "; ".join(parts)
                            + f" (model bands: {expected})")
    if len(set(given)) != len(given):
        dup = sorted({b for b in given if given.count(b) > 1})
        raise MismatchError(f"duplicate band(s) {dup} in the input")
    return np.array([given.index(b) for b in expected], dtype=np.int64)


def extract_magnitudes(data: Any, bands: Sequence[str] | None = None,
                       filter_system: str | None = None) -> tuple[np.ndarray, list[str], str | None, pd.Index | None]:
    """(mags (n, n_bands), band names, filter system, row index) from an SEDTable, DataFrame or array.

    An SEDTable (anything with ``.spaxels`` and ``.meta``) gives its meta bands and filter system;
    a DataFrame gives its ``mag_<band>`` columns; an array needs `bands`.
    """
    if hasattr(data, "spaxels") and hasattr(data, "meta"):
        meta = data.meta if isinstance(data.meta, dict) else {}
        df = data.spaxels
        bands = list(bands or meta.get("bands") or bands_from_columns(df.columns))
        filter_system = filter_system or meta.get("filter_system")
        data = df
    if isinstance(data, pd.DataFrame):
        if bands is None:
            bands = bands_from_columns(data.columns)
        bands = list(bands)
        if not bands:
            raise InputError(f"no magnitude columns ('{MAG_PREFIX}<band>') in the table; columns: {list(data.columns)}")
        cols = [MAG_PREFIX + b for b in bands]
        missing = [c for c in cols if c not in data.columns]
        if missing:
            raise InputError(f"table lacks magnitude column(s) {missing}")
        return magnitude_matrix(data, cols, "table"), bands, filter_system, data.index
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"magnitudes must be numbers ({exc})") from exc
    if bands is None:
        raise InputError("an array of magnitudes needs `bands=` naming its columns")
    bands = list(bands)
    if arr.ndim != 2 or arr.shape[1] != len(bands):
        raise InputError(f"magnitude array must be (n_rows, {len(bands)}), got shape {arr.shape}")
    return arr, bands, filter_system, None


class SigmaScaled:
    """What single models and ensembles read from their ``meta``: bands, targets, filter system, and the
    per-target recalibration factors on predicted sigmas (``meta['sigma_scale']``)."""

    meta: ModelMeta

    @property
    def bands(self) -> list[str]:
        return list(self.meta["bands"])

    @property
    def targets(self) -> list[str]:
        return list(self.meta["targets"])

    @property
    def filter_system(self) -> str | None:
        return self.meta.get("filter_system")

    @property
    def mag_range(self) -> Any:
        """The (lo, hi) magnitude range the model was trained with (meta ``mag_range``; None: the default)."""
        members = getattr(self, "members", None)
        meta = members[0].meta if members else self.meta
        return meta.get("mag_range")

    @property
    def sigma_scale(self) -> np.ndarray:
        """Recalibration factor per target applied to predicted sigmas (1 = none)."""
        s = self.meta.get("sigma_scale") or {}
        return np.array([float(s.get(t, 1.0)) for t in self.targets], dtype=np.float64)

    def set_sigma_scale(self, scale: dict[str, float] | None) -> None:
        """Store per-target sigma factors (from held-out calibration rows); None removes them."""
        if scale is None:
            self.meta.pop("sigma_scale", None)
            return
        targets = self.targets
        bad = [t for t in scale if t not in targets]
        if bad:
            raise InputError(f"sigma_scale names unknown target(s) {bad}; model targets {targets}")
        vals = {t: float(v) for t, v in scale.items()}
        if not all(np.isfinite(v) and v > 0 for v in vals.values()):
            raise InputError(f"sigma_scale factors must be finite and > 0, got {vals}")
        self.meta["sigma_scale"] = vals



def run_network(network: SEDCNN, x: np.ndarray, batch_size: int = 4096,
                device: str | torch.device = "cpu", num_threads: int | None = None) -> np.ndarray:
    """Evaluate `network` on standardised features in large batches under inference_mode."""
    from ..validate import positive_int

    batch_size = positive_int(batch_size, "batch_size")  # 0 or < 0 would leave the output uninitialised
    if not num_threads or int(num_threads) == torch.get_num_threads():
        return _run_network(network, x, batch_size, torch.device(device))
    threads = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        return _run_network(network, x, batch_size, torch.device(device))
    finally:
        torch.set_num_threads(threads)


def _run_network(network: SEDCNN, x: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    network = network.to(device)
    was_training = network.training
    network.eval()
    n = x.shape[0]
    out = np.empty((n, network.n_outputs), dtype=np.float64)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            xb = xt[start:start + batch_size].to(device, non_blocking=True)
            out[start:start + batch_size] = network(xb).double().cpu().numpy()
    network.train(was_training)
    return out


def prediction_frame(mu: np.ndarray, sigma: np.ndarray | None, targets: Sequence[str],
                     index: pd.Index | None = None) -> pd.DataFrame:
    """DataFrame with ``<target>`` columns, then ``<target>_sigma`` columns when sigmas are given."""
    out = pd.DataFrame(mu, columns=list(targets), index=index)
    if sigma is not None:
        for j, t in enumerate(targets):
            out[t + SIGMA_SUFFIX] = sigma[:, j]
    return out


