"""The pieces of `photopop reproduce wu-boada-2019`: the 60/20/20 split, the mock's injected scatter, and the
bodies of the CNN and baseline stages (each writes predictions.parquet and result.json into its stage folder).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import to_dict
from ..datasets.composite import lupton_rgb
from ..datasets.image_set import RGB_CHANNELS, ImageSet
from ..errors import InputError
from ..evaluation.metrics import scores
from ..io import read_table, write_json_atomic, write_table_atomic
from ..models.baselines import ConstantBaseline, RandomForestBaseline
from ..models.image_regressor import ImageModelConfig
from ..models.image_source import ImageSource, as_image_source
from ..simulate.images import ImageSurveyConfig
from ..simulate.mzr import LabelConfig, fmr_oh
from ..training.image_fit import ImageFitConfig, fit_image_regressor
from .stages import StageResult
from .wu_boada_config import PAPER, WuBoada2019Config


def image_inputs(iset: ImageSet, cfg: WuBoada2019Config,
                 say: Callable[[str], None]) -> tuple[ImageSource, dict[str, Any]]:
    """The CNN's inputs (`cfg.use`) and a description of them for the stage hashes.

    'rgb' (the paper's): the set's 8-bit irg composites, read as SDSS JPEG cutouts are
    (`photopop.datasets.cutouts`); a set with calibrated images only gets composites made on the fly with
    the survey's Lupton and JPEG settings (`cfg.survey.rgb_*`, `photopop.datasets.composite.lupton_rgb`).
    'images': the calibrated linear g, r, i fluxes.
    """
    if cfg.use == "images":
        if not iset.has_images:
            raise InputError(f"{iset.path}: has no calibrated images (only 8-bit composites); set use = 'rgb'")
        return as_image_source(iset, use="images"), {"use": "images"}
    if iset.has_rgb:
        return as_image_source(iset, use="rgb"), {"use": "rgb", "composites": "stored"}
    s = cfg.survey
    info = {"use": "rgb", "composites": "made", "q": s.rgb_q, "stretch": s.rgb_stretch,
            "scales": list(s.rgb_scales), "jpeg_quality": s.rgb_jpeg_quality}
    say(f"{iset.path} has no colour composites: made from its calibrated images (Lupton Q={s.rgb_q}, "
        f"stretch={s.rgb_stretch}, scales={tuple(s.rgb_scales)}, JPEG quality {s.rgb_jpeg_quality})")
    flux = as_image_source(iset, use="images")

    def read(idx: np.ndarray) -> np.ndarray:
        rgb = lupton_rgb(flux.take(idx), s.rgb_q, s.rgb_stretch, tuple(s.rgb_scales), s.rgb_jpeg_quality)
        # (i, r, g) display order -> (g, r, i) channels in [0, 1], as `as_image_source(..., use="rgb")`
        return np.ascontiguousarray(rgb[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0

    return ImageSource(read, flux.shape, tuple(reversed(RGB_CHANNELS)), "rgb8"), info


def injected_scatter(catalog: pd.DataFrame, labels: LabelConfig, rows: np.ndarray | None = None) -> float | None:
    """RMS of the unpredictable part of the mock ``oh`` (see the module doc); None without mock columns."""
    need = ("oh", "oh_true", "oh_fibre_true", "log_mstar", "delta_log_sfr", "size_residual_dex")
    if any(c not in catalog.columns for c in need):
        return None
    c = catalog if rows is None else catalog.iloc[rows]
    random_term = (c["oh_true"].to_numpy() - fmr_oh(c["log_mstar"].to_numpy(), c["delta_log_sfr"].to_numpy(), labels)
                   - labels.size_coupling * c["size_residual_dex"].to_numpy())
    noise = c["oh"].to_numpy() - c["oh_fibre_true"].to_numpy()
    e = random_term + noise
    return float(np.sqrt(np.mean(e**2)))


def mock_labels(folder: Path) -> LabelConfig | None:
    """The label model of a mock image set (from its config.toml), or None for real data."""
    path = folder / "config.toml"
    if not path.exists():
        return None
    try:
        from ..config import load_config

        return load_config(ImageSurveyConfig, path).labels
    except InputError:
        return None


def fit_settings(fit: ImageFitConfig) -> dict[str, Any]:
    """Training settings that change the numbers (not the device or thread count)."""
    d = to_dict(fit)
    for k in ("device", "num_threads", "eval_batch_size"):
        d.pop(k, None)
    return d


def train_cnn(out: Path, source: ImageSource, y: np.ndarray, names: list[str], split: dict[str, np.ndarray],
               cfg: WuBoada2019Config, model_cfg: ImageModelConfig, fit: ImageFitConfig, say: Callable[[str], None],
               save_model: bool) -> None:
    res = fit_image_regressor(source, y, split["train"], split["val"], names, model_config=model_cfg, config=fit,
                              log=say)
    t0 = time.perf_counter()
    test = split["test"]
    pred = res.model.predict(source, tta=cfg.tta, batch_size=max(8, fit.eval_batch_size // 8 if cfg.tta else
                                                                    fit.eval_batch_size),
                             device=next(res.model.parameters()).device, indices=test)
    predict_s = time.perf_counter() - t0
    df = pd.DataFrame({"row": test})
    for j, name in enumerate(names):
        df[f"{name}_true"] = y[test, j]
        df[f"{name}_pred"] = pred[:, j]
    write_table_atomic(df, out / "predictions.parquet")
    res.history.to_csv(out / "history.csv", index=False)
    info = {"best_epoch": res.best_epoch, "best_val_loss": res.best_val_loss, "train_seconds": res.train_seconds,
            "predict_seconds": predict_s, "n_test": int(test.size), "image_size": source.image_size,
            "pretrained_source": res.model.pretrained_source}
    write_json_atomic(out / "result.json", info)
    if save_model:
        res.model.save(out / "model", extra_config=res.model.extra_config)


def read_pred(stage: StageResult, name: str) -> tuple[np.ndarray, np.ndarray]:
    df = read_table(stage.file("predictions.parquet"))
    return df["row"].to_numpy(), df[f"{name}_pred"].to_numpy()


#: the mock's true galaxy parameters that fix its fibre metallicity up to the injected scatter: the FMR (mass,
#: SFR offset), the size term, and the fibre aperture (disc size on the sky, inclination, face-on dust)
LATENT_COLUMNS = ("log_mstar", "delta_log_sfr", "size_residual_dex", "re_disc_arcsec", "inclination_deg",
                  "a_v_faceon")


def rf_stage(out: Path, catalog: pd.DataFrame, target: str, split: dict[str, np.ndarray], cfg: WuBoada2019Config,
              say: Callable[[str], None]) -> None:
    y = catalog[target].to_numpy(dtype=float)
    tr, va, te = split["train"], split["val"], split["test"]
    rows: dict[str, Any] = {"row": te, f"{target}_true": y[te]}
    info: dict[str, Any] = {}
    feature_sets = [("rf_gri", [f"mag_{b}" for b in "gri"]), ("rf_ugriz", [f"mag_{b}" for b in "ugriz"])]
    if all(c in catalog.columns for c in LATENT_COLUMNS):  # a mock: the floor regressor
        feature_sets.append(("rf_latent", list(LATENT_COLUMNS)))
    for name, cols in feature_sets:
        missing = [c for c in cols if c not in catalog.columns]
        if missing:
            say(f"{name}: catalogue lacks {missing}; skipped")
            continue
        x = catalog[cols].to_numpy(dtype=float)
        best = (np.inf, None)
        for leaf in cfg.rf_leaf_grid:  # choose min_samples_leaf on the validation galaxies
            rf_cfg = dataclasses.replace(cfg.random_forest, min_samples_leaf=int(leaf))
            model = RandomForestBaseline(rf_cfg, seed=cfg.seed).fit(x[tr], y[tr])
            val_rmse = float(np.sqrt(np.mean((model.predict(x[va]) - y[va]) ** 2)))
            if val_rmse < best[0]:
                best = (val_rmse, (int(leaf), model))
        leaf, model = best[1]  # type: ignore[misc]
        rows[f"{name}_pred"] = model.predict(x[te])
        info[name] = {"min_samples_leaf": leaf, "val_rmse": best[0], "features": cols}
        say(f"{name}: min_samples_leaf={leaf} (validation RMSE {best[0]:.4f})")
    const = ConstantBaseline().fit(np.zeros((tr.size, 1)), y[tr])
    rows["constant_pred"] = const.predict(np.zeros((te.size, 1)))
    info["constant"] = {"value": float(const.value_)}
    write_table_atomic(pd.DataFrame(rows), out / "predictions.parquet")
    write_json_atomic(out / "result.json", info)


def score(truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """RMSE, NMAD, bias and count of the residuals pred - truth (`photopop.evaluation.metrics.scores`)."""
    s = scores(truth, pred)
    return {"rmse": s["rmse"], "nmad": s["nmad"], "bias": s["bias"], "n": s["n"]}


def resolution_row(pixels: int, per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """One row of the resolution study: mean RMSE / NMAD over the network seeds, their standard deviations
    (ddof = 1; None with one seed) and the per-seed values."""
    r = np.array([s["rmse"] for s in per_seed], dtype=float)
    m = np.array([s["nmad"] for s in per_seed], dtype=float)
    k = len(per_seed)
    return {"pixels": int(pixels), "rmse": float(r.mean()), "nmad": float(m.mean()),
            "rmse_std": float(r.std(ddof=1)) if k > 1 else None, "nmad_std": float(m.std(ddof=1)) if k > 1 else None,
            "seeds": k, "rmse_per_seed": r.tolist(), "nmad_per_seed": m.tolist()}


def floor_summary(metrics: dict[str, Any], injected: float | None) -> dict[str, Any]:
    """The information floor of a mock beside the CNN and the forest on gri.

    `injected`: RMS of the scatter the label model adds that no image can see (`injected_scatter`); `rf_latent`:
    a random forest on the true parameters that fix the rest (`LATENT_COLUMNS`), i.e. what a regressor that
    knew them would reach on this training set. Ratios: CNN / RF(gri) (the paper: 0.085 / 0.130 = 0.65), and
    the CNN's and the forest's RMSE over the injected floor.
    """
    cnn, rf = metrics["cnn"]["rmse"], metrics.get("rf_gri", {}).get("rmse")
    out: dict[str, Any] = {"injected_scatter": injected,
                           "rf_latent": metrics.get("rf_latent"),
                           "cnn_over_rf_gri": (cnn / rf) if rf else None,
                           "paper_cnn_over_rf_gri": PAPER["cnn"]["rmse"] / PAPER["rf_gri"]["rmse"],
                           "cnn_over_floor": (cnn / injected) if injected else None,
                           "rf_gri_over_floor": (rf / injected) if (rf and injected) else None}
    return out



__all__ = [
    "LATENT_COLUMNS",
    "fit_settings",
    "floor_summary",
    "image_inputs",
    "injected_scatter",
    "mock_labels",
    "read_pred",
    "resolution_row",
    "rf_stage",
    "score",
    "train_cnn",
]
