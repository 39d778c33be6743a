"""Figures of the image method, after Wu & Boada (2019) Figs. 1-6 (matplotlib, no pyplot state).

Every function returns a `matplotlib.figure.Figure` built without pyplot (Agg rendering, safe on
headless machines and in threads); `photopop.report.html.HTMLReport.figure` embeds it as PNG.

* `fig_examples`      Fig. 1: galaxies with the lowest/highest predicted and true values, the worst
                      under-/over-predictions and a random set, titled with predicted and true values.
* `fig_distributions` Fig. 2: histograms of true and predicted values, Freedman-Diaconis bins each.
* `fig_truth_vs_pred` Fig. 3 (and Fig. 5's panels): 2-D histogram with the running median and
                      median +- RMSE / NMAD in bins of the truth, the one-to-one line, a residual
                      inset, and an upper panel of binned RMSE / NMAD (marker area ~ counts) with
                      the global values as horizontal lines.
* `fig_resolution`    Fig. 4: global RMSE / NMAD against image size with the baselines.
* `fig_mass_route`    Fig. 5: predicted against true stellar mass, and MZR-converted against true metallicity.
* `fig_mzr`           Fig. 6: predicted metallicity against true stellar mass with the binned MZR
                      of the true and the predicted metallicities, and the binned scatter above.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..evaluation.binning import fd_bin_edges
from ..evaluation.metrics import binned_stats, nmad, rmse

C_RMSE, C_NMAD, C_MED = "tab:blue", "tab:orange", "tab:red"


def example_rows(z_true: np.ndarray, z_pred: np.ndarray, n: int = 5, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Row labels and indices of Fig. 1: (a) lowest predicted ... (g) random; ties broken by index."""
    t = np.asarray(z_true, dtype=float)
    p = np.asarray(z_pred, dtype=float)
    d = p - t
    rng = np.random.default_rng(seed)
    n = min(n, t.size)
    return [
        ("(a) lowest predicted", np.argsort(p, kind="stable")[:n]),
        ("(b) lowest true", np.argsort(t, kind="stable")[:n]),
        ("(c) highest predicted", np.argsort(-p, kind="stable")[:n]),
        ("(d) highest true", np.argsort(-t, kind="stable")[:n]),
        ("(e) most under-predicted", np.argsort(d, kind="stable")[:n]),
        ("(f) most over-predicted", np.argsort(-d, kind="stable")[:n]),
        ("(g) random", np.sort(rng.choice(t.size, n, replace=False))),
    ]


def fig_examples(get_rgb: Callable[[np.ndarray], np.ndarray], z_true: np.ndarray, z_pred: np.ndarray,
                 n: int = 5, seed: int = 0, label: str = "Z") -> Figure:
    """Fig. 1. `get_rgb(idx)` returns uint8 (k, H, W, 3) composites of rows `idx` of z_true/z_pred."""
    rows = example_rows(z_true, z_pred, n, seed)
    ncol = max(len(idx) for _, idx in rows)
    fig = Figure(figsize=(1.9 * ncol + 1.2, 2.05 * len(rows)))
    axes = fig.subplots(len(rows), ncol, squeeze=False)
    for r, (name, idx) in enumerate(rows):
        rgb = get_rgb(np.asarray(idx))
        for c in range(ncol):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(idx):
                ax.axis("off")
                continue
            ax.imshow(rgb[c], origin="lower")
            ax.set_title(f"pred {z_pred[idx[c]]:.2f}\ntrue {z_true[idx[c]]:.2f}", fontsize=7.5)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.suptitle(f"Example galaxies ({label}: predicted / true)", fontsize=10)
    fig.tight_layout()
    return fig


def fig_distributions(z_true: np.ndarray, z_pred: np.ndarray, label: str = "12 + log(O/H)") -> Figure:
    """Fig. 2: true (black) and predicted (red) histograms, each with its own Freedman-Diaconis bins."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    for z, colour, name in ((z_true, "k", "true"), (z_pred, "tab:red", "predicted")):
        z = np.asarray(z, dtype=float)
        z = z[np.isfinite(z)]
        ax.hist(z, bins=fd_bin_edges(z), histtype="step", color=colour, lw=1.5, label=f"{name} (N={z.size})")
    ax.set_xlabel(label)
    ax.set_ylabel("galaxies")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def _truth_pred_axes(fig: Figure, gs: Any, t: np.ndarray, p: np.ndarray, label: str, bins: int, inset: bool) -> None:
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    lo = float(np.percentile(np.concatenate([t, p]), 0.5))
    hi = float(np.percentile(np.concatenate([t, p]), 99.5))
    pad = 0.05 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    edges = np.linspace(lo, hi, bins + 1)
    stats = binned_stats(t, p, bins=edges)
    good = stats["n"].to_numpy() >= 5
    centre = 0.5 * (stats["lo"] + stats["hi"]).to_numpy()
    med = stats["median"].to_numpy()
    ax_top = fig.add_subplot(gs[0])
    ax = fig.add_subplot(gs[1], sharex=ax_top)
    ax.hist2d(t, p, bins=[edges, edges], cmap="Greys", cmin=1)
    ax.plot([lo, hi], [lo, hi], "k-", lw=1)
    ax.plot(centre[good], med[good], "-", color=C_MED, lw=1.5, label="median")
    for col, colour, name in (("rmse", C_RMSE, "RMSE"), ("nmad", C_NMAD, "NMAD")):
        s = stats[col].to_numpy()
        ax.plot(centre[good], (med + s)[good], "--", color=colour, lw=1.2, label=f"median ± {name}")
        ax.plot(centre[good], (med - s)[good], "--", color=colour, lw=1.2)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"true {label}")
    ax.set_ylabel(f"predicted {label}")
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    if inset:
        ins = ax.inset_axes([0.6, 0.08, 0.37, 0.3])
        d = p - t
        ins.hist(d, bins=fd_bin_edges(d), color="0.4", histtype="stepfilled")
        ins.set_xlabel("pred - true", fontsize=7)
        ins.tick_params(labelsize=6)
        ins.set_yticks([])
    n = stats["n"].to_numpy().astype(float)
    size = 60 * n / max(n.max(), 1)
    g_rmse, g_nmad = rmse(p - t), nmad(p - t)
    ax_top.scatter(centre[good], stats["rmse"].to_numpy()[good], s=size[good], color=C_RMSE)
    ax_top.scatter(centre[good], stats["nmad"].to_numpy()[good], s=size[good], color=C_NMAD)
    ax_top.axhline(g_rmse, color=C_RMSE, lw=1, label=f"RMSE = {g_rmse:.3f}")
    ax_top.axhline(g_nmad, color=C_NMAD, lw=1, label=f"NMAD = {g_nmad:.3f}")
    ax_top.set_ylabel("scatter")
    ax_top.set_ylim(bottom=0)
    ax_top.legend(fontsize=7, frameon=False)
    ax_top.tick_params(labelbottom=False)


def fig_truth_vs_pred(z_true: np.ndarray, z_pred: np.ndarray, label: str = "12 + log(O/H)", bins: int = 20,
                      inset: bool = True) -> Figure:
    """Fig. 3: 2-D histogram of truth and prediction with binned statistics (see the module doc)."""
    fig = Figure(figsize=(5.5, 6.5))
    gs = fig.add_gridspec(2, 1, height_ratios=[1, 3], hspace=0.05)
    _truth_pred_axes(fig, gs, np.asarray(z_true, float), np.asarray(z_pred, float), label, bins, inset)
    return fig


def fig_mass_route(m_true: np.ndarray, m_pred: np.ndarray, z_true: np.ndarray, z_mzr: np.ndarray,
                   bins: int = 20) -> Figure:
    """Fig. 5: predicted vs true stellar mass (left) and MZR-converted vs true metallicity (right)."""
    fig = Figure(figsize=(11, 6.5))
    outer = fig.add_gridspec(1, 2, wspace=0.3)
    for k, (t, p, lab) in enumerate(((m_true, m_pred, "log M*/Msun"), (z_true, z_mzr, "12 + log(O/H)"))):
        gs = outer[k].subgridspec(2, 1, height_ratios=[1, 3], hspace=0.05)
        _truth_pred_axes(fig, gs, np.asarray(t, float), np.asarray(p, float), lab, bins, inset=True)
    return fig


def fig_resolution(rows: Sequence[dict[str, Any]], baselines: dict[str, dict[str, float]] | None = None,
                   paper: Sequence[dict[str, Any]] | None = None, floor: float | None = None) -> Figure:
    """Fig. 4: CNN RMSE (blue) and NMAD (orange) against image size; baselines as stars/squares.

    `rows`: [{"pixels", "rmse", "nmad"[, "rmse_std", "nmad_std"]}, ...] (error bars where the stds are given);
    `baselines`: {"rf_gri": {"rmse", "nmad"}, "constant": ...};
    `floor`: the best possible scatter (e.g. a mock's intrinsic scatter), drawn as a dotted line.
    """
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    df = pd.DataFrame(list(rows)).sort_values("pixels")
    for col, colour, name in (("rmse", C_RMSE, "RMSE"), ("nmad", C_NMAD, "NMAD")):
        err = df[f"{col}_std"].astype(float).to_numpy() if f"{col}_std" in df else None
        if err is not None and np.isfinite(err).any():  # mean +- std over network seeds
            ax.errorbar(df["pixels"], df[col], yerr=np.nan_to_num(err), fmt="o-", color=colour, capsize=3,
                        label=f"CNN {name} (mean ± std over seeds)")
        else:
            ax.plot(df["pixels"], df[col], "o-", color=colour, label=f"CNN {name}")
    x_base = 0.6
    markers = {"rf_gri": ("*", "RF gri"), "rf_ugriz": ("P", "RF ugriz"), "constant": ("s", "constant mean")}
    for key, (marker, name) in markers.items():
        b = (baselines or {}).get(key)
        if not b:
            continue
        ax.scatter([x_base], [b["rmse"]], marker=marker, s=80, color=C_RMSE, edgecolor="k", zorder=3)
        ax.scatter([x_base], [b["nmad"]], marker=marker, s=80, color=C_NMAD, edgecolor="k", zorder=3)
        ax.plot([], [], marker, color="0.5", mec="k", label=name)
        x_base *= 0.7
    if paper:
        pp = pd.DataFrame(list(paper))
        ax.plot(pp["pixels"], pp["rmse"], "x:", color=C_RMSE, alpha=0.6, label="paper RMSE")
    if floor:
        ax.axhline(floor, color="0.3", ls=":", lw=1, label=f"intrinsic scatter {floor:.3f}")
    ax.set_xscale("log", base=2)
    px = [int(p) for p in df["pixels"]]
    ax.set_xticks(px, labels=[str(p) for p in px])
    ax.minorticks_off()
    ax.set_xlabel("image size (pixels per side); baselines at left")
    ax.set_ylabel("scatter of residuals (dex)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def fig_mzr(logm: np.ndarray, z_pred: np.ndarray, comparison: dict[str, Any],
            relation: Callable[[np.ndarray], np.ndarray] | None = None) -> Figure:
    """Fig. 6: predicted metallicity vs true stellar mass; `comparison` from
    `photopop.evaluation.mzr_analysis.mzr_comparison` (binned MZR of true and predicted values)."""
    fig = Figure(figsize=(6, 6.5))
    gs = fig.add_gridspec(2, 1, height_ratios=[1, 3], hspace=0.05)
    ax_top = fig.add_subplot(gs[0])
    ax = fig.add_subplot(gs[1], sharex=ax_top)
    m = np.asarray(logm, float)
    z = np.asarray(z_pred, float)
    ok = np.isfinite(m) & np.isfinite(z)
    edges = comparison["edges"]
    ax.hist2d(m[ok], z[ok], bins=[edges, 30], cmap="Greys", cmin=1)
    tt, pp = comparison["true"], comparison["pred"]
    c = tt["centre"].to_numpy()
    if relation is not None:
        xs = np.linspace(edges[0], edges[-1], 200)
        ax.plot(xs, relation(xs), color="tab:green", lw=1, label="reference MZR")
    ax.plot(c, tt["median"], "k-", lw=1.5, label="median, true Z")
    ax.plot(c, tt["median"] + tt["std"], "k--", lw=1)
    ax.plot(c, tt["median"] - tt["std"], "k--", lw=1, label="± std, true Z")
    ax.plot(c, pp["median"], "-", color=C_MED, lw=1.5, label="median, predicted Z")
    for col, colour in (("rmse", C_RMSE), ("nmad", C_NMAD)):
        ax.plot(c, pp["median"] + pp[col], "--", color=colour, lw=1)
        ax.plot(c, pp["median"] - pp[col], "--", color=colour, lw=1, label=f"± {col.upper()}, predicted Z")
    ax.set_xlabel("true log M*/Msun")
    ax.set_ylabel("predicted 12 + log(O/H)")
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    size = 50 * pp["n"].to_numpy(float) / max(pp["n"].max(), 1)
    ax_top.scatter(c, tt["rmse"], s=size, color="k", label="true Z: RMSE")
    ax_top.scatter(c, pp["rmse"], s=size, color=C_RMSE, label="pred Z: RMSE")
    ax_top.scatter(c, pp["nmad"], s=size, color=C_NMAD, label="pred Z: NMAD")
    ax_top.set_ylabel("scatter (dex)")
    ax_top.set_ylim(bottom=0)
    ax_top.legend(fontsize=7, frameon=False)
    ax_top.tick_params(labelbottom=False)
    return fig
