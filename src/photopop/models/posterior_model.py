"""A trained posterior flow with its normalisation, OOD statistics and metadata: sampling and summaries.

`SavedPosterior` is to `PosteriorNet` what `SavedSEDModel` is to `SEDCNN`: it turns magnitudes,
magnitude errors and (optionally) redshifts into standardised network rows, draws posterior samples in
label units, summarises them (quantiles, the age-[Z/H] correlation) and scores how unlike the training
inputs each object is.

Out-of-domain score (`fit_ood`, `ood_score_parts`): the Mahalanobis distance of an object's OOD
features (its standardised input row: magnitudes, log errors, redshift; and its CNN embedding,
`PosteriorNet.ood_features`) from the training rows' mean, with the Ledoit-Wolf shrunk covariance
(`sklearn.covariance.LedoitWolf`) of the training rows, split into its two orthogonal parts as in
PCA process monitoring (Hotelling's T^2 and the residual statistic): the distance within the principal
subspace (the leading eigenvectors holding `OOD_PRINCIPAL_VARIANCE` of the variance) and the distance
in the remaining directions. Each part is divided by its own ``ood_quantile`` quantile over held-out
training galaxies and the score is the larger ratio, so an SED far along a dominant direction
(a constant magnitude shift) and one inconsistent in a minor direction (a band replaced by noise) are
both seen; the full distance alone is dominated by the many minor directions, whose heavy in-domain
tails hid a +5 mag shift. The threshold is an ``ood_quantile`` (default 0.99) quantile of the scores of
the held-out training galaxies (validation and calibration galaxies, which the network did not fit),
taken at the leave-one-galaxy-out level (`posterior_grouped`), so that about 1 % of a new in-domain
galaxy's objects are flagged although the score's tail is set by a few galaxies.

Folder (written by `photopop.models.folder.write_model_folder`, the one model-folder writer):
``model.pt``, ``config.toml`` (``[architecture]`` = `PosteriorNetConfig`, ``n_bands``, ``n_targets``,
``n_err``, ``n_extra``, ``in_channels`` and the trainer's settings), ``normalisation.json`` (``input``,
``target``, ``magerr`` (log10 errors), ``extra``: each fitted on the training rows only; ``ood``: mean
and precision), ``meta.json`` (``kind`` 'sed-posterior', ``bands``, ``filter_system``, ``targets``,
``input_kind``, ``nan_policy``, ``use_magerr``, ``extra_columns``, ``ood_threshold``, ``ood_quantile``,
``n_samples``, ``photopop_version``, ``train_table_hash``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..config import from_dict, to_dict
from ..photometry.columns import MAGERR_PREFIX
from ..errors import InputError
from .folder import load_weights, read_model_folder, write_model_folder
from .meta import POSTERIOR_KIND, ModelMeta
from .normalise import Standardiser, make_features
from .posterior import PosteriorNet, PosteriorNetConfig
from .posterior_grouped import MIN_GROUPS, grouped_quantile
from .sed_base import SigmaScaled, check_bands, check_finite, extract_magnitudes

#: central-interval quantiles written per target: suffix -> probability
QUANTILES = {"p025": 0.025, "p16": 0.16, "p50": 0.5, "p84": 0.84, "p975": 0.975}
#: smallest magnitude error the log transform accepts (0 mag errors happen in noise-free mocks)
MIN_MAGERR = 1e-4
#: share of the OOD features' variance held by the principal subspace of the out-of-domain score
OOD_PRINCIPAL_VARIANCE = 0.99


def corr_column(targets: Sequence[str]) -> str | None:
    """Name of the age-[Z/H] correlation column when both are targets."""
    return "corr_log_age_zh" if "log_age" in targets and "zh" in targets else None


class SavedPosterior(SigmaScaled):
    """A trained `PosteriorNet` that samples p(labels | SED) in label units and flags unfamiliar SEDs."""

    def __init__(self, network: PosteriorNet, norms: dict[str, Standardiser | None], ood: dict[str, Any],
                 meta: dict[str, Any], extra_config: dict[str, Any] | None = None) -> None:
        self.network = network.eval()
        self.input_norm = norms["input"]
        self.target_norm = norms["target"]
        self.magerr_norm = norms.get("magerr")
        self.extra_norm = norms.get("extra")
        self.ood_mean = np.asarray(ood["mean"], dtype=np.float64)
        self.ood_precision = np.asarray(ood["precision"], dtype=np.float64)
        # folders before the two-part score carry neither: their score is the full distance
        self.ood_principal = None if ood.get("principal") is None else np.asarray(ood["principal"], dtype=np.float64)
        self.ood_scales = None if ood.get("scales") is None else np.asarray(ood["scales"], dtype=np.float64)
        self.meta = ModelMeta.from_dict({**dict(meta), "kind": POSTERIOR_KIND})
        self.extra_config = dict(extra_config or {})
        for key in ("bands", "targets", "ood_threshold"):
            if key not in self.meta:
                raise InputError(f"posterior model meta lacks {key!r}")
        if (self.magerr_norm is not None) != bool(self.meta.get("use_magerr")):
            raise InputError("posterior model: use_magerr and the magerr normalisation disagree")

    # -- what the model needs ------------------------------------------------------------------------
    @property
    def use_magerr(self) -> bool:
        return bool(self.meta.get("use_magerr"))

    @property
    def extra_columns(self) -> list[str]:
        """Context columns besides the magnitudes: magerr_<band> (if used), then e.g. redshift."""
        errs = [MAGERR_PREFIX + b for b in self.bands] if self.use_magerr else []
        return errs + list(self.meta.get("extra_columns") or [])

    @property
    def handles_nan(self) -> bool:
        return self.meta.get("nan_policy") == "mask"

    @property
    def ood_threshold(self) -> float:
        return float(self.meta["ood_threshold"])

    @property
    def spread_factors(self) -> np.ndarray:
        """Per-target factors (meta ``spread_factors``, fitted on the calibration galaxies by
        `fit_spread_factors`) that scale each object's draws about its median; 1 for older folders."""
        f = self.meta.get("spread_factors") or {}
        out = np.array([float(f.get(t, 1.0)) for t in self.targets], dtype=np.float64)
        if not np.all(np.isfinite(out) & (out > 0)):
            raise InputError(f"posterior model meta: spread_factors must be finite and > 0, got {f}")
        return out

    @property
    def spread_factors_95(self) -> np.ndarray:
        """Per-target factors of the central 95.45 % interval (meta ``spread_factors_95``, the 95 % level's own
        calibration-galaxy fit, `fit_spread_factors` ``factor_95``); `spread_factors` for older folders."""
        f = self.meta.get("spread_factors_95")
        if not f:
            return self.spread_factors
        out = np.array([float(f.get(t, 1.0)) for t in self.targets], dtype=np.float64)
        if not np.all(np.isfinite(out) & (out > 0)):
            raise InputError(f"posterior model meta: spread_factors_95 must be finite and > 0, got {f}")
        return out

    def inputs(self, mags: np.ndarray, magerr: np.ndarray | None = None, extra: np.ndarray | None = None) -> np.ndarray:
        """Network rows (n, width), or (n, 2, width) with the presence mask for 'mask' models."""
        mags = np.asarray(mags, dtype=np.float64)
        n = mags.shape[0]
        if self.handles_nan:
            if np.isinf(mags).any():
                raise InputError("input: infinite magnitudes; use NaN for missing bands")
        else:
            check_finite(mags, self.bands)
        parts = [self.input_norm.transform(make_features(mags, self.bands, self.meta.get("input_kind", "mag")))]
        if self.use_magerr:
            if magerr is None:
                raise InputError(f"this posterior model needs magnitude errors (columns {MAGERR_PREFIX}<band>)")
            parts.append(self.magerr_norm.transform(log_magerr(magerr, mags, self.bands)))
        names = list(self.meta.get("extra_columns") or [])
        if names:
            ex = None if extra is None else np.asarray(extra, dtype=np.float64).reshape(n, -1)
            if ex is None or ex.shape[1] != len(names) or not np.all(np.isfinite(ex)):
                raise InputError(f"this posterior model needs finite values of {names} for every row")
            parts.append(self.extra_norm.transform(ex))
        x = np.concatenate(parts, axis=1)
        if self.handles_nan:  # the layout of photopop.training.fit.mask_channels
            present = np.isfinite(x)
            return np.stack([np.where(present, x, 0.0), present.astype(np.float64)], axis=1)
        return x

    # -- sampling and summaries ------------------------------------------------------------------------
    def sample_inputs(self, x: np.ndarray, n_samples: int, seed: int = 0, batch_size: int = 1024,
                      device: str | torch.device = "cpu", with_context: bool = False, raw: bool = False):
        """Samples (n_samples, n, n_targets) in label units for network rows `x`; optionally (with_context)
        also the OOD feature vectors (`PosteriorNet.ood_features`) for `ood_scores`.

        The draws are recalibrated (`spread_about_median` with `spread_factors`) unless `raw`; raw draws
        summarised with ``summarise(..., raw=True)`` give the same quantiles without the extra median pass.

        Objects are processed `batch_size` at a time with draws from one ``torch.Generator`` seeded with
        `seed`, so the same rows, seed and batch size give the same draws (no global RNG is touched).
        """
        n_samples = int(n_samples)
        if n_samples < 1:
            raise InputError(f"n_samples must be >= 1, got {n_samples}")
        dev = torch.device(device)
        net = self.network.to(dev)
        n = x.shape[0]
        k = len(self.targets)
        out = np.empty((n_samples, n, k), dtype=np.float32)
        ctx = np.empty((n, self.ood_mean.size), dtype=np.float64) if with_context else None
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        scale = torch.as_tensor(self.target_norm.scale, dtype=torch.float32, device=dev)
        mean = torch.as_tensor(self.target_norm.mean, dtype=torch.float32, device=dev)
        gen = torch.Generator(device=dev).manual_seed(int(seed))
        factors, f95 = self.spread_factors, self.spread_factors_95
        spread = None if raw or np.all((factors == 1.0) & (f95 == 1.0)) else \
            torch.as_tensor(factors, dtype=torch.float32, device=dev)
        spread95 = None if spread is None or np.array_equal(f95, factors) else \
            torch.as_tensor(f95, dtype=torch.float32, device=dev)
        with torch.inference_mode():
            for start in range(0, n, int(batch_size)):
                xb = xt[start:start + batch_size].to(dev)
                c = net.context(xb)
                s = net.sample(xb, n_samples, gen, context=c)
                if spread95 is not None:
                    s = spread_by_level(s, spread, spread95)
                elif spread is not None:
                    s = spread_about_median(s, spread)
                out[:, start:start + xb.shape[0]] = (s * scale + mean).cpu().numpy()
                if ctx is not None:
                    ctx[start:start + xb.shape[0]] = net.ood_features(xb, c).double().cpu().numpy()
        return (out, ctx) if with_context else out

    def ood_stats(self) -> dict[str, Any]:
        """The OOD statistics as `fit_ood` returns them (mean, precision, principal, scales)."""
        return {"mean": self.ood_mean, "precision": self.ood_precision, "principal": self.ood_principal,
                "scales": self.ood_scales}

    def ood_scores(self, context: np.ndarray) -> np.ndarray:
        """Out-of-domain scores of OOD feature vectors (see the module docstring and `ood_score`)."""
        return ood_score(self.ood_stats(), context)

    def summarise(self, samples: np.ndarray, context: np.ndarray | None = None, raw: bool = False) -> pd.DataFrame:
        """Per object: ``<t>_<q>`` quantiles, ``corr_log_age_zh`` and (with context) ``ood_score``/``ood_flag``.

        raw: `samples` are unrecalibrated (``sample_inputs(..., raw=True)``); the spread factors are then
        applied to the quantiles, q -> p50 + f (q - p50), which is exactly the quantile of the recalibrated
        draws (linear interpolation commutes with an increasing affine map). The correlation is unchanged.
        """
        s = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
        probs = torch.tensor(list(QUANTILES.values()), dtype=torch.float32)
        q = torch.quantile(s, probs, dim=0).double().numpy()  # (n_q, n, k)
        if raw:
            med = q[list(QUANTILES).index("p50")]
            f68, f95 = self.spread_factors, self.spread_factors_95
            if np.array_equal(f68, f95):
                q = med + f68 * (q - med)
            else:  # the factor of each quantile's central level, as `spread_by_level` maps the draws
                lev = np.abs(2.0 * np.asarray(list(QUANTILES.values())) - 1.0)
                q = med + level_factors(lev[:, None, None], f68, f95) * (q - med)
        out: dict[str, np.ndarray] = {}
        for j, t in enumerate(self.targets):
            for i, name in enumerate(QUANTILES):
                out[f"{t}_{name}"] = q[i, :, j]
        corr = corr_column(self.targets)
        if corr is not None:
            out[corr] = sample_correlation(samples[..., self.targets.index("log_age")],
                                           samples[..., self.targets.index("zh")])
        if context is not None:
            score = self.ood_scores(context)
            out["ood_score"] = score
            out["ood_flag"] = (score > self.ood_threshold).astype(np.float64)
        return pd.DataFrame(out)

    def output_columns(self) -> list[str]:
        """Columns of `summarise` with context, in order."""
        cols = [f"{t}_{q}" for t in self.targets for q in QUANTILES]
        corr = corr_column(self.targets)
        return cols + ([corr] if corr else []) + ["ood_score", "ood_flag"]

    def predict(self, data: Any, bands: Sequence[str] | None = None, filter_system: str | None = None,
                n_samples: int | None = None, seed: int = 0, batch_size: int = 1024,
                device: str | torch.device = "cpu", **_: Any) -> pd.DataFrame:
        """Quantiles, correlation and OOD columns for an SEDTable or a DataFrame (bands checked by name)."""
        x = self.frame_inputs(data, bands, filter_system)
        samples, ctx = self.sample_inputs(x, n_samples or int(self.meta.get("n_samples", 1000)), seed, batch_size,
                                          device, with_context=True, raw=True)
        return self.summarise(samples, ctx, raw=True)

    def frame_inputs(self, data: Any, bands: Sequence[str] | None = None,
                     filter_system: str | None = None) -> np.ndarray:
        """Network rows from an SEDTable or DataFrame holding mag_<band> (+ magerr_<band>, extra) columns."""
        mags, given, system, _ = extract_magnitudes(data, bands, filter_system)
        order = check_bands(self.bands, given, self.filter_system, system)
        frame = data.spaxels if hasattr(data, "spaxels") else data
        if not isinstance(frame, pd.DataFrame):
            raise InputError("posterior prediction needs a table (magnitudes with their errors), not a bare array")
        missing = [c for c in self.extra_columns if c not in frame.columns]
        if missing:
            raise InputError(f"input lacks column(s) {missing[:6]} this posterior model is conditioned on")
        errs = frame[[MAGERR_PREFIX + b for b in self.bands]].to_numpy(np.float64) if self.use_magerr else None
        names = list(self.meta.get("extra_columns") or [])
        extra = frame[names].to_numpy(np.float64) if names else None
        return self.inputs(mags[:, order], errs, extra)

    # -- folders -----------------------------------------------------------------------------------------
    def save(self, path: str | Path, extra_files: dict[str, str] | None = None, *, overwrite: bool = False) -> Path:
        """Write the model folder (see the module docstring) atomically; an existing folder is replaced
        only under the output-folder contract of `photopop.outputs` (same settings, or `overwrite`)."""
        net = self.network
        config = {"architecture": to_dict(net.config), "n_bands": net.n_bands, "n_targets": net.n_targets,
                  "n_err": net.n_err, "n_extra": net.n_extra, "in_channels": net.in_channels, **self.extra_config}
        norm = {"input": self.input_norm.to_dict(), "target": self.target_norm.to_dict(),
                "magerr": self.magerr_norm.to_dict() if self.magerr_norm is not None else None,
                "extra": self.extra_norm.to_dict() if self.extra_norm is not None else None,
                "ood": {"mean": self.ood_mean.tolist(), "precision": self.ood_precision.tolist(),
                        "principal": None if self.ood_principal is None else self.ood_principal.tolist(),
                        "scales": None if self.ood_scales is None else self.ood_scales.tolist()}}
        return write_model_folder(path, net.state_dict(), config, norm, self.meta, extra_files,
                                  kind=POSTERIOR_KIND, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> "SavedPosterior":
        """Read a folder written by `save`; InputError naming what is missing or inconsistent."""
        path = Path(path)
        config, norm, meta, state = read_model_folder(path)
        meta.require_kind(POSTERIOR_KIND, path / "meta.json")
        try:
            arch = from_dict(PosteriorNetConfig, config.pop("architecture", {}))
            net = PosteriorNet(int(config.pop("n_bands")), int(config.pop("n_targets")), int(config.pop("n_err")),
                               int(config.pop("n_extra")), arch, in_channels=int(config.pop("in_channels")))
            norms = {k: Standardiser.from_dict(norm[k]) if norm.get(k) else None
                     for k in ("input", "target", "magerr", "extra")}
            ood = norm["ood"]
        except KeyError as exc:
            raise InputError(f"{path}: posterior model files lack {exc}") from exc
        load_weights(net, state, path)
        return cls(net, norms, ood, meta, config)


def log_magerr(magerr: Any, mags: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """log10 of magnitude errors (floored at MIN_MAGERR); NaN where the magnitude is missing.

    InputError for negative or NaN errors of measured bands.
    """
    err = np.asarray(magerr, dtype=np.float64)
    if err.shape != mags.shape:
        raise InputError(f"magnitude errors must have shape {mags.shape}, got {err.shape}")
    present = np.isfinite(mags)
    bad = present & ~(np.isfinite(err) & (err >= 0))
    if bad.any():
        cols = [bands[i] for i in np.flatnonzero(bad.any(axis=0))]
        raise InputError(f"{int(bad.any(axis=1).sum())} row(s) have NaN, infinite or negative magnitude errors "
                         f"in band(s) {cols[:6]}")
    out = np.log10(np.maximum(np.where(present, err, 1.0), MIN_MAGERR))
    return np.where(present, out, np.nan)


def sample_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation over the sample axis (axis 0) per object; NaN where a coordinate is constant."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    da = a - a.mean(axis=0)
    db = b - b.mean(axis=0)
    den = np.sqrt((da * da).sum(axis=0) * (db * db).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (da * db).sum(axis=0) / den, np.nan)


def spread_about_median(samples: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Draws (S, n, k) scaled per target about each object's median: m + f (s - m).

    An increasing affine map per coordinate: the median, the joint shape and every correlation are
    kept; the widths of all intervals scale by f.
    """
    med = torch.quantile(samples, 0.5, dim=0, keepdim=True)
    return med + (samples - med) * factors


def level_factors(level: Any, f68: Any, f95: Any) -> Any:
    """Spread factor at central level c: f68 up to 68.27 %, f95 from 95.45 %, linear in c between.

    Works on numpy arrays and torch tensors (broadcasting c against the per-target factors).
    """
    w = (level - 0.6827) / (0.9545 - 0.6827)
    w = w.clamp(0.0, 1.0) if isinstance(w, torch.Tensor) else np.clip(w, 0.0, 1.0)
    return f68 + w * (f95 - f68)


def spread_by_level(samples: torch.Tensor, f68: torch.Tensor, f95: torch.Tensor) -> torch.Tensor:
    """Draws (S, n, k) scaled about each object's median by a factor that depends on the draw's level.

    A draw of rank r among the S draws of its object and target lies at quantile u = r / (S - 1) (the
    position `torch.quantile` interpolates at), central level c = |2u - 1|, and moves to
    m + f(c) (s - m) with f = `level_factors` (f68 inside the 68 % interval, f95 at and beyond 95 %).
    So the central 68.27 % and 95.45 % intervals are scaled by their own calibration factors. The map
    is made non-decreasing in s (a running maximum over the sorted draws; a no-op unless f falls
    steeply), so every draw keeps its rank: the median and the rank correlations are kept.
    With f68 == f95 it is `spread_about_median`.
    """
    n_s = samples.shape[0]
    med = torch.quantile(samples, 0.5, dim=0, keepdim=True)
    srt, order = torch.sort(samples, dim=0)
    u = torch.arange(n_s, dtype=samples.dtype, device=samples.device) / max(n_s - 1, 1)
    f = level_factors(torch.abs(2.0 * u - 1.0)[:, None, None], f68, f95)
    mapped = torch.cummax(med + (srt - med) * f, dim=0).values
    return torch.empty_like(samples).scatter_(0, order, mapped)


def fit_spread_factors(y: np.ndarray, samples: np.ndarray, level: float = 0.6827,
                       groups: Any = None) -> tuple[list[float], dict[str, Any]]:
    """Per-target spread factors that make the central `level` intervals cover `level` of new galaxies.

    For each object and target, r = (y - median) / (upper - median) above the median, (median - y) /
    (median - lower) below, with (lower, upper) the central 68.27 % quantiles of the draws (S, n, k).
    The interval scaled by f about the median covers y iff r <= f, so f = a `level` quantile of r over
    the calibration objects. With `groups` (the objects' galaxies, the exchangeable unit) that quantile is
    taken at the leave-one-galaxy-out level (`posterior_grouped.grouped_quantile`), the level at which the
    other galaxies' quantile covers `level` of a left-out galaxy's objects; without, the plain quantile
    (coverage `level` on the calibration objects themselves). ``factor_95`` is fitted the same way at
    95.45 % against the raw 95.45 % interval (the per-level factor). The report gives both factors, the
    levels used, and the 68.27 % / 95.45 % coverage of the calibration objects before and after.
    """
    y = np.asarray(y, dtype=np.float64)
    s = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    if y.ndim != 2 or s.dim() != 3 or tuple(s.shape[1:]) != y.shape or y.shape[0] < 2:
        raise InputError(f"fit_spread_factors needs y (n >= 2, k) and draws (S, n, k); got {y.shape}, {tuple(s.shape)}")

    def ratios(lev: float) -> np.ndarray:
        a = (1.0 - lev) / 2.0
        lo, med, hi = torch.quantile(s, torch.tensor([a, 0.5, 1.0 - a]), dim=0).double().numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(y >= med, (y - med) / (hi - med), (med - y) / (med - lo))
        return np.where(np.isfinite(r), r, np.inf)  # a zero-width side covers nothing off the median

    r68, r95 = ratios(0.6827), ratios(0.9545)
    if groups is not None and np.asarray(groups).size != y.shape[0]:
        raise InputError(f"groups must have one entry per calibration object ({y.shape[0]}), got {np.asarray(groups).size}")
    fits68 = [grouped_quantile(r68[:, j], groups, level) for j in range(y.shape[1])]  # inf ratios are legitimate
    fits95 = [grouped_quantile(r95[:, j], groups, 0.9545) for j in range(y.shape[1])]
    f = np.array([q for q, _ in fits68])
    f95 = np.array([q for q, _ in fits95])
    if not np.all(np.isfinite(f) & (f > 0)):
        raise InputError(f"cannot fit spread factors: degenerate calibration draws (factors {f})")
    n_groups = 0 if groups is None else int(np.unique(np.asarray(groups)).size)
    report = {"n_objects": int(y.shape[0]), "n_groups": n_groups, "factor": f.tolist(), "factor_95": f95.tolist(),
              "quantile_level_68": [lv for _, lv in fits68], "quantile_level_95": [lv for _, lv in fits95],
              "grouping": "leave-one-galaxy-out" if n_groups >= MIN_GROUPS else "none",
              "coverage68_raw": (r68 <= 1).mean(axis=0).tolist(), "coverage95_raw": (r95 <= 1).mean(axis=0).tolist(),
              "coverage68_recalibrated": (r68 <= f).mean(axis=0).tolist(),
              "coverage95_recalibrated": (r95 <= f).mean(axis=0).tolist(),
              "coverage95_per_level": (r95 <= f95).mean(axis=0).tolist()}
    return f.tolist(), report


def ood_score_parts(stats: dict[str, Any], context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(principal, residual) Mahalanobis distances of feature rows: sqrt(T^2), sqrt(d^2 - T^2).

    d^2 is the full squared distance with the stored precision; T^2 that within the principal subspace
    (``principal``: eigenvectors / sqrt(eigenvalues), (n_features, k)). Without ``principal`` (older
    folders) the residual part is the full distance and the principal part 0.
    """
    d = np.asarray(context, dtype=np.float64) - np.asarray(stats["mean"], dtype=np.float64)
    full = np.maximum(np.einsum("ij,jk,ik->i", d, np.asarray(stats["precision"], dtype=np.float64), d), 0.0)
    if stats.get("principal") is None:
        return np.zeros(len(d)), np.sqrt(full)
    t2 = ((d @ np.asarray(stats["principal"], dtype=np.float64)) ** 2).sum(axis=1)
    return np.sqrt(t2), np.sqrt(np.maximum(full - t2, 0.0))


def ood_score(stats: dict[str, Any], context: np.ndarray) -> np.ndarray:
    """The out-of-domain score: max(principal / scale_0, residual / scale_1) (`ood_score_parts`); the full
    Mahalanobis distance for statistics without ``scales`` (folders written before the two-part score)."""
    main, res = ood_score_parts(stats, context)
    if stats.get("scales") is None:
        return np.sqrt(main ** 2 + res ** 2)
    s0, s1 = (float(v) for v in stats["scales"])
    return np.maximum(main / s0, res / s1)


def fit_ood(context_fit: np.ndarray, context_val: np.ndarray, quantile: float = 0.99,
            principal_variance: float = OOD_PRINCIPAL_VARIANCE, groups_val: Any = None) -> tuple[dict[str, Any], float]:
    """(OOD statistics, threshold) from the fitting rows' and held-out rows' feature vectors.

    Mean and Ledoit-Wolf covariance from the fitting rows; its leading eigenvectors holding
    `principal_variance` of the variance span the principal subspace. Each part of the distance
    (`ood_score_parts`) is scaled by its `quantile` quantile over the held-out rows, and the threshold
    is a `quantile` quantile of the resulting score (`ood_score`) over the same rows, so a share
    1 - `quantile` of rows like the held-out ones is flagged. With `groups_val` (the held-out rows'
    galaxies) it is taken at the leave-one-galaxy-out level (`posterior_grouped.grouped_quantile`): the
    score's tail is set by a few galaxies, and the plain spaxel quantile flagged more than 1 - `quantile` of
    new galaxies' spaxels. The level used is ``stats["threshold_level"]``.
    """
    from sklearn.covariance import LedoitWolf

    if not 0.0 < quantile < 1.0:
        raise InputError(f"ood_quantile must be in (0, 1), got {quantile}")
    if not 0.0 < principal_variance < 1.0:
        raise InputError(f"principal_variance must be in (0, 1), got {principal_variance}")
    held = np.asarray(context_val, dtype=np.float64)
    if held.ndim != 2 or held.shape[0] < 2:
        raise InputError(f"the OOD threshold needs at least 2 held-out rows, got {held.shape[0] if held.ndim else 0}")
    lw = LedoitWolf().fit(np.asarray(context_fit, dtype=np.float64))
    w, vec = np.linalg.eigh(lw.covariance_)
    w, vec = w[::-1], vec[:, ::-1]
    k = int(np.searchsorted(np.cumsum(w) / w.sum(), principal_variance) + 1)
    k = min(k, w.size - 1) if w.size > 1 else 1  # keep a residual subspace when there is one
    stats: dict[str, Any] = {"mean": lw.location_, "precision": lw.precision_,
                             "principal": vec[:, :k] / np.sqrt(w[:k]), "scales": None}
    main, res = ood_score_parts(stats, held)
    scales = np.quantile(np.c_[main, res], quantile, axis=0)
    stats["scales"] = np.where(scales > 0, scales, 1.0)  # an empty residual subspace scores 0 anyway
    if groups_val is not None and np.asarray(groups_val).size != held.shape[0]:
        raise InputError(f"groups_val must have one entry per held-out row ({held.shape[0]})")
    threshold, stats["threshold_level"] = grouped_quantile(ood_score(stats, held), groups_val, quantile)
    return stats, threshold
