"""Saved SED models: one folder per trained network, and prediction from it.

Folder layout (written atomically with `photopop.outputs.replace_output`, marker ``.photopop.json``):

``model.pt``            PyTorch state dict of the `SEDCNN`
``config.toml``         ``[architecture]`` (SEDCNNConfig), ``n_inputs``, ``n_outputs`` and any
                        extra settings the trainer stores (e.g. ``[train]``)
``normalisation.json``  input and target mean/scale, fitted on the training rows only
``meta.json``           ``bands`` (ordered), ``filter_system``, ``targets``, ``input_kind``,
                        ``ref_band``, ``nan_policy``, ``photopop_version``, ``train_table_hash``;
                        for heteroscedastic models ``loss`` = 'gaussian_nll' (the network outputs
                        means then log-variances) and optionally ``sigma_scale`` {target: factor}
                        from `photopop.evaluation.calibration.fit_sigma_scale`

Heteroscedastic models predict ``<target>`` and ``<target>_sigma`` (label units, recalibrated by
``sigma_scale`` when present). `load_sed_model` opens a single model or a deep ensemble
(`photopop.models.ensemble.SEDEnsemble`, meta kind 'sed-ensemble') from its folder.

Prediction checks the input bands and filter system against ``meta.json`` and raises
`MismatchError` naming the difference; bands in another order are reordered.
"""

from __future__ import annotations

import pickle
import tomllib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from .. import __version__
from ..config import from_dict, to_dict
from ..errors import InputError, MismatchError
from ..hashing import array_hash
from ..io import dumps_json, read_json, torch_save
from ..outputs import replace_output
from ..photometry.magnitudes import magnitude_matrix
from .folder_checks import check_normalisation, check_sed_meta, read_meta, verify_checksums, write_checksums
from .normalise import Standardiser, make_features
from .sed_cnn import LOGVAR_MAX, LOGVAR_MIN, SEDCNN, SEDCNNConfig

MAG_PREFIX = "mag_"
NAN_POLICIES = ("refuse", "mask")  # 'mask': trained with a presence-mask channel, accepts NaN bands
SIGMA_SUFFIX = "_sigma"


def bands_in_frame(df: pd.DataFrame) -> list[str]:
    """Band names from the ``mag_<band>`` columns of a spaxel table, in column order."""
    return [str(c)[len(MAG_PREFIX):] for c in df.columns if str(c).startswith(MAG_PREFIX)]


def table_hash(inputs: np.ndarray, targets: np.ndarray) -> str:
    """sha256 of the training rows' inputs and targets (float64, C order), to identify the data."""
    return array_hash(inputs, targets)


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
        bands = list(bands or meta.get("bands") or bands_in_frame(df))
        filter_system = filter_system or meta.get("filter_system")
        data = df
    if isinstance(data, pd.DataFrame):
        if bands is None:
            bands = bands_in_frame(data)
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

    meta: dict[str, Any]

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


class SavedSEDModel(SigmaScaled):
    """A trained `SEDCNN` with its normalisation and metadata; predicts from magnitudes."""

    def __init__(self, network: SEDCNN, input_norm: Standardiser, target_norm: Standardiser,
                 meta: dict[str, Any], extra_config: dict[str, Any] | None = None):
        self.network = network
        self.input_norm = input_norm
        self.target_norm = target_norm
        self.meta = dict(meta)
        self.extra_config = dict(extra_config or {})
        for key in ("bands", "targets", "input_kind"):
            if key not in self.meta:
                raise InputError(f"model meta lacks {key!r}")
        self.meta.setdefault("nan_policy", "refuse")
        if self.meta["nan_policy"] not in NAN_POLICIES:
            raise InputError(f"unsupported nan_policy {self.meta['nan_policy']!r}; known: {list(NAN_POLICIES)}")
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
        mags, given, system, index = extract_magnitudes(data, bands, filter_system)
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
        config, norm, meta, state = read_model_folder(path)
        check_sed_meta(meta, path / "meta.json")
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


MODEL_FILES = ("model.pt", "config.toml", "normalisation.json", "meta.json")


def write_model_folder(path: str | Path, state_dict: dict[str, torch.Tensor], config: dict[str, Any],
                       norm: dict[str, Any], meta: dict[str, Any],
                       extra_files: dict[str, str] | None = None, *, kind: str = "sed-model",
                       overwrite: bool = False) -> Path:
    """Write model.pt, config.toml, normalisation.json, meta.json (+ extra text files) atomically.

    The one writer of model folders (single networks, posterior flows): the folder is claimed as an
    output of `kind` (`photopop.outputs`: an existing folder is replaced only when photopop wrote it
    with the same settings, or with `overwrite`), ``photopop_version`` is added to meta when absent,
    and a ``SHA256SUMS`` file covers every file.
    """
    import tomli_w

    path = Path(path)
    meta = dict(meta)
    meta.setdefault("photopop_version", __version__)
    settings = {"config": config, "meta": meta, "extra_files": sorted(extra_files or {})}
    with replace_output(path, kind, settings, overwrite=overwrite) as tmp:
        torch_save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp / "model.pt")
        (tmp / "config.toml").write_text(tomli_w.dumps(_strip_none(config)))
        (tmp / "normalisation.json").write_text(dumps_json(norm) + "\n")
        (tmp / "meta.json").write_text(dumps_json(meta) + "\n")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        write_checksums(tmp)
    return path


def read_model_folder(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(config, normalisation, meta, weights state dict) of a folder written by `write_model_folder`.

    Checksums are verified where the folder has them; meta.json must be a JSON object. Kind-specific
    checks of meta and normalisation are the loader's (`SavedSEDModel.load`, `SEDPosterior.load`).
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such model folder")
    files = {name: path / name for name in MODEL_FILES}
    missing = [n for n, p in files.items() if not p.exists()]
    if missing:
        raise InputError(f"{path}: not a complete model folder, missing {missing}")
    verify_checksums(path, list(files))
    try:
        config = tomllib.loads(files["config.toml"].read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{files['config.toml']}: cannot read ({exc})") from exc
    meta = read_meta(path)
    norm = read_json(files["normalisation.json"])
    if not isinstance(norm, dict):
        raise InputError(f"{files['normalisation.json']}: must hold a JSON object, got {type(norm).__name__}")
    try:
        state = torch.load(files["model.pt"], map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, KeyError, TypeError, pickle.UnpicklingError) as exc:
        raise InputError(f"{files['model.pt']}: cannot load weights ({type(exc).__name__}: {exc})") from exc
    return config, norm, meta, state


def load_weights(network: torch.nn.Module, state: dict[str, Any], path: str | Path) -> None:
    """Load a state dict into `network` (eval mode); InputError naming the folder if it does not fit."""
    try:
        network.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise InputError(f"{Path(path) / 'model.pt'}: weights do not fit the architecture ({exc})") from exc
    network.eval()


def _strip_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_strip_none(v) for v in obj]
    return obj


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


def load_sed_model(path: str | Path) -> Any:
    """Open a model folder: a single `SavedSEDModel`, for meta kind 'sed-ensemble' an `SEDEnsemble`, for
    'sed-posterior' a `photopop.models.posterior_model.SavedPosterior` (quantile columns, not point values).

    Both have ``predict(data, bands=, filter_system=, batch_size=, device=, num_threads=)``,
    ``predict_array``, ``bands``, ``targets``, ``filter_system`` and ``meta``.
    """
    path = Path(path)
    kind = read_meta(path).get("kind") if (path / "meta.json").exists() else None
    if kind == "sed-ensemble":
        from .ensemble import SEDEnsemble

        return SEDEnsemble.load(path)
    if kind == "sed-posterior":
        from .posterior_model import SavedPosterior

        return SavedPosterior.load(path)
    return SavedSEDModel.load(path)
