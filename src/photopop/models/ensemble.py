"""Deep ensembles of SED networks (Lakshminarayanan et al. 2017): mean and total sigma from K members.

Members are `SavedSEDModel`s trained on the same bands with different seeds (or the fold models of a
cross-validation). For member means mu_i and (heteroscedastic) sigmas s_i:

    mu      = mean_i mu_i
    sigma^2 = mean_i s_i^2  (aleatoric: noise the members predict)  +  var_i mu_i  (epistemic: spread)

with var over members (ddof 0, the mixture variance). Plain MSE members contribute only the spread.
An optional per-target ``sigma_scale`` (fitted on held-out calibration rows, see
`photopop.evaluation.calibration.fit_sigma_scale`) multiplies the total sigma.

Folder: ``meta.json`` (``kind`` 'sed-ensemble', ``bands``, ``filter_system``, ``targets``,
``n_members``, ``sigma_scale``, ``photopop_version``) and ``members/<k>/`` model folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .. import __version__
from ..datasets.frames import as_frame
from ..errors import InputError
from ..outputs import replace_output
from .folder import write_meta
from .folder_checks import read_meta, verify_checksums, write_checksums
from .meta import ENSEMBLE_KIND, ModelMeta
from .saved import SavedSEDModel
from .sed_base import SigmaScaled, check_bands, extract_magnitudes, prediction_frame

__all__ = ["ENSEMBLE_KIND", "SEDEnsemble"]


class SEDEnsemble(SigmaScaled):
    """K SED models predicting jointly: mean of member means, sigma from aleatoric + epistemic parts."""

    def __init__(self, members: Sequence[SavedSEDModel], meta: Mapping[str, Any] | None = None):
        members = list(members)
        if not members:
            raise InputError("an ensemble needs at least one member model")
        first = members[0]
        for k, m in enumerate(members[1:], start=1):
            for key in ("bands", "targets", "filter_system", "nan_policy"):
                if m.meta.get(key) != first.meta.get(key):
                    raise InputError(f"ensemble member {k} differs from member 0 in {key!r}: "
                                     f"{m.meta.get(key)!r} vs {first.meta.get(key)!r}")
        self.members = members
        merged = {"kind": ENSEMBLE_KIND, "bands": first.bands, "filter_system": first.filter_system,
                  "targets": first.targets, "input_kind": first.meta.get("input_kind"),
                  "nan_policy": first.meta.get("nan_policy", "refuse"),
                  "member_losses": [m.meta.get("loss", "mse") for m in members],
                  "n_members": len(members), **dict(meta or {})}
        merged["kind"] = ENSEMBLE_KIND
        merged["n_members"] = len(members)
        self.meta = ModelMeta.from_dict(merged)

    @property
    def has_sigma(self) -> bool:
        """True when the ensemble gives a sigma (any heteroscedastic member, or >= 2 members)."""
        return len(self.members) > 1 or any(m.heteroscedastic for m in self.members)

    # -- prediction ------------------------------------------------------------------------
    def member_predictions(self, mags: np.ndarray, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
        """(means, sigmas) of shape (K, n, n_targets); sigmas 0 for plain MSE members (uncalibrated)."""
        mus, sigs = [], []
        for m in self.members:
            mu, s = m.predict_with_sigma(mags, calibrated=False, **kw)
            mus.append(mu)
            sigs.append(np.zeros_like(mu) if s is None else s)
        return np.stack(mus), np.stack(sigs)

    def predict_with_sigma(self, mags: np.ndarray, batch_size: int = 4096, device: str | torch.device = "cpu",
                           num_threads: int | None = None, calibrated: bool = True
                           ) -> tuple[np.ndarray, np.ndarray | None]:
        """(mean, total sigma) (n, n_targets) from magnitudes in the ensemble's band order."""
        mus, sigs = self.member_predictions(mags, batch_size=batch_size, device=device, num_threads=num_threads)
        mu = mus.mean(axis=0)
        if not self.has_sigma:
            return mu, None
        sigma = np.sqrt((sigs ** 2).mean(axis=0) + mus.var(axis=0))
        if calibrated:
            sigma = sigma * self.sigma_scale
        return mu, sigma

    def predict_array(self, mags: np.ndarray, batch_size: int = 4096, device: str | torch.device = "cpu",
                      num_threads: int | None = None) -> np.ndarray:
        """Ensemble means (n, n_targets) from magnitudes in the ensemble's band order."""
        return self.predict_with_sigma(mags, batch_size, device, num_threads)[0]

    def predict(self, data: Any, bands: Sequence[str] | None = None, filter_system: str | None = None,
                batch_size: int = 4096, device: str | torch.device = "cpu",
                num_threads: int | None = None) -> pd.DataFrame:
        """``<target>`` and ``<target>_sigma`` columns for an SEDTable, DataFrame or array (bands checked)."""
        mags, given, system, index = extract_magnitudes(as_frame(data), bands, filter_system)
        order = check_bands(self.bands, given, self.filter_system, system)
        mu, sigma = self.predict_with_sigma(mags[:, order], batch_size=batch_size, device=device,
                                            num_threads=num_threads)
        return prediction_frame(mu, sigma, self.targets, index)

    # -- folders ---------------------------------------------------------------------------
    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``meta.json`` and ``members/<k>/`` atomically; returns the path (an existing ensemble
        folder is replaced only if it holds the same ensemble, or with `overwrite`)."""
        path = Path(path)
        meta = self.meta.to_dict()
        meta.setdefault("photopop_version", __version__)
        with replace_output(path, ENSEMBLE_KIND, meta, overwrite=overwrite) as tmp:
            for k, m in enumerate(self.members):
                m.save(tmp / "members" / str(k))
            write_meta(tmp, meta)
            write_checksums(tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SEDEnsemble":
        """Read an ensemble folder; InputError naming what is missing or inconsistent."""
        path = Path(path)
        meta_file = path / "meta.json"
        verify_checksums(path, ["meta.json"])
        # kind, n_members (an integer) and the types of bands and targets (when given) are checked here
        meta = ModelMeta.from_dict(read_meta(path, missing="not an ensemble folder (no meta.json)"), meta_file,
                                   kind=ENSEMBLE_KIND)
        n = meta.get("n_members", 0)
        dirs = [path / "members" / str(k) for k in range(n)]
        missing = [str(d) for d in dirs if not d.is_dir()]
        if n < 1 or missing:
            raise InputError(f"{path}: ensemble lists {n} member(s); missing folders {missing}")
        members = [SavedSEDModel.load(d) for d in dirs]
        ens = cls(members, meta)
        for key in ("bands", "targets"):
            if meta.get(key) is not None and list(meta[key]) != list(ens.members[0].meta[key]):
                raise InputError(f"{meta_file}: {key} {meta[key]} differ from the members' {ens.members[0].meta[key]}")
        return ens
