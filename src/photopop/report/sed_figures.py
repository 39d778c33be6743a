"""Figures of the SED cross-prediction: predicted vs true labels (Liew-Cain et al. 2021 Figs. 6 and 8)
and learning curves (their Fig. 4).

All functions take plain arrays/DataFrames, draw on a given matplotlib Axes (or make one), and
`make_cv_figures` writes PNG files for a `photopop sed cv` output folder atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..evaluation.metrics import robust_sigma
from ..io import atomic_path, read_table

LABEL_TEXT = {"log_age": r"$\log_{10}$(age / yr)", "zh": "[Z/H]"}


def _axes(ax: Any = None) -> Any:
    if ax is None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(4.5, 4.5))
    return ax


def density_levels(h: np.ndarray, fractions: Sequence[float] = (0.9, 0.68, 0.38)) -> list[float]:
    """Density thresholds enclosing the given fractions of the points (highest-density regions)."""
    flat = np.sort(h.ravel())[::-1]
    cum = np.cumsum(flat)
    if cum[-1] <= 0:
        return []
    cum /= cum[-1]
    levels = sorted({float(flat[min(np.searchsorted(cum, f), flat.size - 1)]) for f in fractions})
    return [lv for lv in levels if lv > 0]


def plot_prediction_vs_truth(truth: Any, pred: Any, ax: Any = None, *, label: str = "", bins: int = 60,
                             max_points: int = 20000, seed: int = 0, smooth: float = 1.5) -> Any:
    """Grey points, normalised-density contours (38/68/90 per cent) and the 1:1 line; robust sigma in a corner.

    The density is a 2D histogram smoothed with a Gaussian of `smooth` bins.
    """
    ax = _axes(ax)
    t = np.asarray(truth, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    if t.size == 0:
        raise InputError("no finite (truth, prediction) pairs to plot")
    lo = float(min(t.min(), p.min()))
    hi = float(max(t.max(), p.max()))
    pad = 0.03 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    show = np.random.default_rng(seed).permutation(t.size)[:max_points]
    ax.scatter(t[show], p[show], s=2, c="0.6", alpha=0.4, lw=0, rasterized=True)
    h, xe, ye = np.histogram2d(t, p, bins=bins, range=[[lo, hi], [lo, hi]])
    if smooth > 0:
        from scipy.ndimage import gaussian_filter

        h = gaussian_filter(h, smooth)
    levels = density_levels(h)
    if len(levels) >= 1 and t.size >= 50:
        xc, yc = 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1])
        ax.contour(xc, yc, (h / h.max()).T, levels=[lv / h.max() for lv in levels], colors="C0", linewidths=1)
    ax.plot([lo, hi], [lo, hi], "k-", lw=1)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.text(0.04, 0.96, rf"$\sigma_{{\rm rob}}$ = {robust_sigma(p - t):.3f}  (n = {t.size})",
            transform=ax.transAxes, va="top", fontsize=9)
    if label:
        ax.set_title(label, fontsize=10)
    return ax


def plot_learning_curves(history: pd.DataFrame, ax: Any = None, *, target: str | None = None, label: str = "") -> Any:
    """Training (black) and validation (red) MSE per epoch; epoch 0 = random draws from the training labels."""
    ax = _axes(ax)
    if target and f"val_mse_{target}" in history.columns:
        tr, va, ylab = history[f"train_mse_{target}"], history[f"val_mse_{target}"], f"MSE {target}"
    else:
        tr, va, ylab = history["train_loss"], history["val_loss"], "MSE (standardised)"
    ax.plot(history["epoch"], tr, "k-", lw=1, label="training")
    ax.plot(history["epoch"], va, "r-", lw=1, label="validation")
    best = int(history["val_loss"].iloc[1:].idxmin()) if len(history) > 1 else 0
    ax.axvline(history["epoch"].iloc[best], color="0.5", ls=":", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylab)
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    if label:
        ax.set_title(label, fontsize=10)
    return ax


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def make_cv_figures(cv_dir: str | Path, out_dir: str | Path | None = None,
                    methods: Sequence[str] | None = None) -> list[Path]:
    """PNG figures of a `photopop sed cv` folder: pred_vs_true_<method>.png and learning_curves.png."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cv_dir = Path(cv_dir)
    out = Path(out_dir) if out_dir else cv_dir / "figures"
    pred = read_table(cv_dir / "predictions.parquet")
    targets = [c[: -len("_true")] for c in pred.columns if c.endswith("_true")]
    all_methods = sorted({c[len(t) + 1:] for t in targets for c in pred.columns
                          if c.startswith(t + "_") and not c.endswith("_true")})
    methods = list(methods) if methods else all_methods
    split = ""
    if (cv_dir / "meta.json").exists():
        split = json.loads((cv_dir / "meta.json").read_text()).get("split", "")
    paths = []
    for m in methods:
        fig, axes = plt.subplots(1, len(targets), figsize=(4.5 * len(targets), 4.5), squeeze=False)
        for ax, t in zip(axes[0], targets):
            if f"{t}_{m}" not in pred.columns:
                raise InputError(f"{cv_dir}: no predictions for method {m!r}")
            plot_prediction_vs_truth(pred[f"{t}_true"], pred[f"{t}_{m}"], ax,
                                     label=f"{m}, Set {split}" if split else m)
            ax.set_xlabel(f"true {LABEL_TEXT.get(t, t)}")
            ax.set_ylabel(f"predicted {LABEL_TEXT.get(t, t)}")
        paths.append(_save(fig, out / f"pred_vs_true_{m}.png"))
    hists = sorted((cv_dir / "folds").glob("fold_*/cnn*/history.csv"))
    if hists:
        folds = sorted({h.parent.parent.name for h in hists})
        models = sorted({h.parent.name for h in hists})
        fig, axes = plt.subplots(len(models), len(folds), figsize=(3.6 * len(folds), 3.0 * len(models)),
                                 squeeze=False)
        for h in hists:
            name = h.parent.name
            ax = axes[models.index(name)][folds.index(h.parent.parent.name)]
            target = name[4:] if name.startswith("cnn_") else None
            plot_learning_curves(pd.read_csv(h), ax, target=target, label=f"{h.parent.parent.name} {name}")
        fig.tight_layout()
        paths.append(_save(fig, out / "learning_curves.png"))
    return paths
