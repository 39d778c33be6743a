"""Single saved SED networks: `SavedSEDModel` (an `SEDCNN` with its normalisation and `ModelMeta`).

The folder is the one model-folder layout of `photopop.models.folder` (``model.pt``, ``config.toml`` with
``[architecture]`` (SEDCNNConfig), ``n_inputs``, ``n_outputs`` and any extra settings the trainer stores
(e.g. ``[train]``), ``normalisation.json``, ``meta.json``, ``SHA256SUMS``). Its meta.json has no
``kind`` (the registry kind 'sed'): ``bands`` (ordered), ``filter_system``, ``targets``, ``input_kind``,
``ref_band``, ``nan_policy``, ``mag_range``, ``photopop_version``, ``train_table_hash``; for
heteroscedastic models ``loss`` = 'gaussian_nll' (the network outputs means then log-variances) and
optionally ``sigma_scale`` {target: factor} from `photopop.evaluation.calibration.fit_sigma_scale`.

Heteroscedastic models predict ``<target>`` and ``<target>_sigma`` (label units, recalibrated by
``sigma_scale`` when present). Any model folder (single model, ensemble, posterior, image model) is
opened by kind with `photopop.models.registry.open_model`.

Prediction checks the input bands and filter system against ``meta.json`` and raises
`MismatchError` naming the difference; bands in another order are reordered
(`photopop.models.sed_base.check_bands`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..config import from_dict, to_dict
from ..datasets.frames import as_frame
from ..errors import InputError
from ..hashing import array_hash
from .folder import load_weights, read_model_folder, write_model_folder
from .folder_checks import check_normalisation
from .meta import SED_KIND, ModelMeta
from .normalise import Standardiser, make_features
from .sed_base import SigmaScaled, check_bands, check_finite, extract_magnitudes, prediction_frame, run_network
from .sed_cnn import LOGVAR_MAX, LOGVAR_MIN, SEDCNN, SEDCNNConfig

def table_hash(inputs: np.ndarray, targets: np.ndarray) -> str:
    """sha256 of the training rows' inputs and targets (float64, C order), to identify the data."""
    return array_hash(inputs, targets)


class SavedSEDModel(SigmaScaled):
    """A trained `SEDCNN` with its normalisation and metadata; predicts from magnitudes."""

    def __init__(self, network: SEDCNN, input_norm: Standardiser, target_norm: Standardiser,
                 meta: Mapping[str, Any], extra_config: dict[str, Any] | None = None):
        self.network = network
        self.input_norm = input_norm
        self.target_norm = target_norm
        self.meta = ModelMeta.from_dict(meta, kind=SED_KIND)  # a copy: bands, targets, input_kind checked
        self.extra_config = dict(extra_config or {})
        self.meta.setdefault("nan_policy", "refuse")
        self.meta.setdefault("loss", "mse")
        want = len(self.meta["targets"]) * (2 if self.heteroscedastic else 1)
        if int(getattr(network, "n_outputs", want)) != want:
            raise InputError(f"network has {network.n_outputs} outputs but {want} are needed for targets "
                             f"{self.meta['targets']} with loss {self.meta['loss']!r}")

    @property
    def heteroscedastic(self) -> bool:
        """True if the network predicts a per-object sigma (trained with the Gaussian NLL)."""
        return self.meta.get("loss") == "gaussian_nll"

    def _inputs(self, mags: np.ndarray) -> np.ndarray:
        """Standardised network inputs (n, L), or (n, 2, L) with a presence mask for 'mask' models."""
        mags = np.asarray(mags, dtype=np.float64)
        if self.meta["nan_policy"] == "mask":
            if np.isinf(mags).any():
                raise InputError("input: infinite magnitudes; use NaN for missing bands")
            x = self.input_norm.transform(make_features(mags, self.bands, self.meta["input_kind"],
                                                        self.meta.get("ref_band"), self.mag_range))
            present = np.isfinite(x)
            return np.stack([np.where(present, x, 0.0), present.astype(np.float64)], axis=1)
        check_finite(mags, self.bands)
        return self.input_norm.transform(make_features(mags, self.bands, self.meta["input_kind"],
                                                       self.meta.get("ref_band"), self.mag_range))

    def predict_with_sigma(self, mags: np.ndarray, batch_size: int = 4096, device: str | torch.device = "cpu",
                           num_threads: int | None = None, calibrated: bool = True
                           ) -> tuple[np.ndarray, np.ndarray | None]:
        """(means, sigmas) (n, n_targets) in label units; sigmas None for a plain MSE model.

        sigma = exp(log_var / 2) * target scale (undoing the standardisation), times the stored
        recalibration factor unless `calibrated` is False.
        """
        z = run_network(self.network, self._inputs(mags), batch_size=batch_size, device=device,
                        num_threads=num_threads)
        k = len(self.targets)
        mu = self.target_norm.inverse(z[:, :k])
        if not self.heteroscedastic:
            return mu, None
        sigma = np.exp(0.5 * np.clip(z[:, k:], LOGVAR_MIN, LOGVAR_MAX)) * self.target_norm.scale
        if calibrated:
            sigma = sigma * self.sigma_scale
        return mu, sigma

    # -- prediction ------------------------------------------------------------------------
    def predict_array(self, mags: np.ndarray, batch_size: int = 4096, device: str | torch.device = "cpu",
                      num_threads: int | None = None) -> np.ndarray:
        """Targets (n, n_targets) in physical units from magnitudes (n, n_bands) in the model's band order.

        num_threads: torch CPU threads for this call (None = leave torch's setting); 1 is fastest on
        machines whose cores are shared with other jobs.
        """
        mu, _ = self.predict_with_sigma(mags, batch_size=batch_size, device=device, num_threads=num_threads)
        return mu

    def predict(self, data: Any, bands: Sequence[str] | None = None, filter_system: str | None = None,
                batch_size: int = 4096, device: str | torch.device = "cpu",
                num_threads: int | None = None) -> pd.DataFrame:
        """Predict every target for an SEDTable, a DataFrame with mag_<band> columns, or an array.

        Bands are matched by name (reordered if needed); other bands or another filter system
        raise MismatchError. Returns a DataFrame with one column per target (index kept), and
        ``<target>_sigma`` columns for heteroscedastic models.
        """
        mags, given, system, index = extract_magnitudes(as_frame(data), bands, filter_system)
        order = check_bands(self.bands, given, self.filter_system, system)
        mu, sigma = self.predict_with_sigma(mags[:, order], batch_size=batch_size, device=device,
                                            num_threads=num_threads)
        return prediction_frame(mu, sigma, self.targets, index)

    # -- folders ---------------------------------------------------------------------------
    def save(self, path: str | Path, extra_files: dict[str, str] | None = None, *, overwrite: bool = False) -> Path:
        """Write the model folder atomically (plus any `extra_files` name -> text); returns its path.

        An existing model folder is replaced only when it holds the same model, or with `overwrite`
        (`photopop.outputs`); other folders raise `OutputError`."""
        config = {"architecture": to_dict(self.network.config), "n_inputs": self.network.n_inputs,
                  "n_outputs": self.network.n_outputs, **self.extra_config}
        norm = {"input": self.input_norm.to_dict(), "target": self.target_norm.to_dict()}
        return write_model_folder(path, self.network.state_dict(), config, norm, self.meta, extra_files,
                                  kind="sed-model", overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> "SavedSEDModel":
        """Read a model folder written by `save`; InputError naming the file if anything is missing."""
        path = Path(path)
        config, norm, meta, state = read_model_folder(path)  # meta.json checked by ModelMeta.from_dict
        meta.require_kind(SED_KIND, path / "meta.json")
        check_normalisation(norm, meta, path / "normalisation.json")
        if not isinstance(config.get("architecture", {}), dict):
            raise InputError(f"{path / 'config.toml'}: [architecture] must be a table")
        arch = from_dict(SEDCNNConfig, config.pop("architecture", {}))
        try:
            n_inputs = int(config.pop("n_inputs"))
            n_outputs = int(config.pop("n_outputs"))
        except KeyError as exc:
            raise InputError(f"{path / 'config.toml'}: lacks {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path / 'config.toml'}: n_inputs/n_outputs must be integers ({exc})") from exc
        n_features = len(norm["input"]["names"])
        if n_inputs != n_features:
            raise InputError(f"{path / 'config.toml'}: n_inputs = {n_inputs}, but the normalisation has "
                             f"{n_features} features")
        try:
            network = SEDCNN(n_inputs, n_outputs, arch)
        except (InputError, ValueError, RuntimeError) as exc:
            raise InputError(f"{path / 'config.toml'}: cannot build the network ({exc})") from exc
        load_weights(network, state, path)
        return cls(network, Standardiser.from_dict(norm["input"]), Standardiser.from_dict(norm["target"]),
                   meta, config)

