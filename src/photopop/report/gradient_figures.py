"""Figures of radial gradients in the style of Liew-Cain et al. (2021): Figs. 5, 7/9 and 14.

* `plot_radial_profile` -- one galaxy: label and prediction against radius with every Monte Carlo line
  (Fig. 5);
* `plot_gradient_differences` -- gradient differences (prediction - label) of age against metallicity
  with error bars and marginal histograms (Figs. 7 and 9);
* `plot_gradient_mass` -- gradient against stellar mass, per type, with binned means (Fig. 14).

Functions return matplotlib `Figure` objects built without pyplot (no global state, any backend).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import InputError
from ..evaluation.metrics import nmad

TARGET_LABELS = {"log_age": "log(Age / yr)", "zh": "[Z/H]"}
GRAD_LABELS = {"log_age": r"$\Delta$ grad log Age (dex/$R_e$)", "zh": r"$\Delta$ grad [Z/H] (dex/$R_e$)"}
TYPE_STYLE = {"early": dict(color="tab:red", marker="o"), "late": dict(color="black", marker="s")}


def monte_carlo_lines(r: Any, value: Any, r_max: float = 1.0, n_boot: int = 100, frac: float = 0.75,
                      seed: int | np.random.Generator = 0) -> tuple[np.ndarray, np.ndarray]:
    """(slopes, intercepts) of least-squares lines on `n_boot` random subsets of `frac` of the points r < r_max.

    The per-draw lines of one galaxy for plotting (the statistics over many galaxies come from
    `photopop.evaluation.gradients.radial_gradients`). All draws are fitted at once.
    """
    rr, vv = np.asarray(r, float).ravel(), np.asarray(value, float).ravel()
    ok = np.isfinite(rr) & np.isfinite(vv) & (rr < r_max)
    rr, vv = rr[ok], vv[ok]
    n = rr.size
    if n < 3:
        raise InputError(f"need at least 3 points inside r_max to draw Monte Carlo lines, got {n}")
    m = max(int(np.rint(frac * n)), 2)
    rng = np.random.default_rng(seed)
    idx = np.argsort(rng.random((n_boot, n)), axis=1)[:, :m]
    x, y = rr[idx], vv[idx]
    xm, ym = x.mean(1, keepdims=True), y.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = ((x - xm) * (y - ym)).sum(1) / ((x - xm) ** 2).sum(1)
    return slope, ym[:, 0] - slope * xm[:, 0]


def plot_radial_profile(r: Any, panels: Mapping[str, Mapping[str, Any]], r_max: float = 1.0, n_boot: int = 100,
                        frac: float = 0.75, seed: int = 0, title: str = "") -> Figure:
    """Fig. 5: values against radius, one row per target, one column per source (e.g. label, CNN).

    `panels`: {source label: {target: per-spaxel values}}; every source shares `r`. Grey crosses: the
    spaxels; thin red lines: the Monte Carlo fits inside r_max; black line: their mean slope and intercept.
    """
    sources = list(panels)
    if not sources:
        raise InputError("no sources to plot")
    targets = list(panels[sources[0]])
    rr = np.asarray(r, float)
    fig = Figure(figsize=(4.0 * len(sources), 3.0 * len(targets)))
    axes = fig.subplots(len(targets), len(sources), squeeze=False, sharex=True)
    for j, src in enumerate(sources):
        for i, t in enumerate(targets):
            ax = axes[i, j]
            v = np.asarray(panels[src][t], float)
            ax.plot(rr, v, "x", color="0.6", ms=4, lw=0)
            slopes, icpts = monte_carlo_lines(rr, v, r_max, n_boot, frac, seed)
            xs = np.array([0.0, r_max])
            for b, a in zip(slopes, icpts):
                ax.plot(xs, a + b * xs, color="tab:red", lw=0.5, alpha=0.25)
            ax.plot(xs, icpts.mean() + slopes.mean() * xs, color="black", lw=1.8,
                    label=f"{slopes.mean():+.3f} ± {slopes.std(ddof=1):.3f} dex/$R_e$")
            ax.axvline(r_max, color="0.3", ls=":", lw=0.8)
            ax.legend(loc="best", fontsize=8, frameon=False)
            if i == 0:
                ax.set_title(src)
            if j == 0:
                ax.set_ylabel(TARGET_LABELS.get(t, t))
            if i == len(targets) - 1:
                ax.set_xlabel(r"$R / R_e$")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_gradient_differences(diffs: Mapping[str, pd.DataFrame], title: str = "", bin_width: float = 0.05,
                              x_target: str = "zh", y_target: str = "log_age") -> Figure:
    """Figs. 7 / 9: per-galaxy gradient differences of age (y) against metallicity (x), with marginals.

    `diffs`: {target: DataFrame from `evaluation.galaxy_studies.gradient_differences`} (columns diff,
    diff_err, indexed by galaxy). Only galaxies present for both targets are drawn; error bars are the
    combined Monte Carlo errors; the marginal histograms have bins of `bin_width` dex/R_e and quote the
    robust sigma.
    """
    for t in (x_target, y_target):
        if t not in diffs:
            raise InputError(f"no gradient differences for target {t!r}")
    j = diffs[x_target][["diff", "diff_err"]].add_suffix("_x").join(
        diffs[y_target][["diff", "diff_err"]].add_suffix("_y"), how="inner")
    fig = Figure(figsize=(6.0, 6.0))
    gs = fig.add_gridspec(2, 2, width_ratios=(4, 1), height_ratios=(1, 4), wspace=0.05, hspace=0.05)
    ax = fig.add_subplot(gs[1, 0])
    axx = fig.add_subplot(gs[0, 0], sharex=ax)
    axy = fig.add_subplot(gs[1, 1], sharey=ax)
    x, y = j["diff_x"].to_numpy(), j["diff_y"].to_numpy()
    ax.errorbar(x, y, xerr=j["diff_err_x"].to_numpy(), yerr=j["diff_err_y"].to_numpy(), fmt="none",
                ecolor="tab:red", lw=0.6, alpha=0.6)
    ax.plot(x, y, "x", color="black", ms=5)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.axvline(0, color="0.5", lw=0.6)
    ax.set_xlabel(GRAD_LABELS.get(x_target, x_target))
    ax.set_ylabel(GRAD_LABELS.get(y_target, y_target))
    lim = np.nanmax(np.abs(np.r_[x, y, 0.1])) * 1.1 if x.size else 0.5
    edges = np.arange(-np.ceil(lim / bin_width), np.ceil(lim / bin_width) + 1) * bin_width
    axx.hist(x, bins=edges, color="0.4")
    axy.hist(y, bins=edges, color="0.4", orientation="horizontal")
    axx.set_title(f"robust σ = {nmad(x):.3f}", fontsize=9)
    axy.set_title(f"σ = {nmad(y):.3f}", fontsize=9)
    axx.tick_params(labelbottom=False)
    axy.tick_params(labelleft=False)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    if title:
        fig.suptitle(f"{title} ({len(j)} galaxies)")
    return fig


def plot_gradient_mass(points: pd.DataFrame, bins: pd.DataFrame, sources: Sequence[str] = ("label", "set_a_cnn",
                       "set_b_cnn"), titles: Sequence[str] | None = None, target: str = "log_age") -> Figure:
    """Fig. 14: gradient against log stellar mass per source; open symbols per galaxy, filled bin means.

    `points`: columns source, type, log_mstar, gradient; `bins`: columns source, type, x_centre, y_centre,
    y_spread (from `evaluation.galaxy_studies.gradient_mass_bins`, tagged with the source).
    """
    titles = list(titles) if titles is not None else list(sources)
    fig = Figure(figsize=(4.0 * len(sources), 3.6))
    axes = fig.subplots(1, len(sources), sharey=True, squeeze=False)[0]
    for ax, src, ttl in zip(axes, sources, titles):
        for typ, style in TYPE_STYLE.items():
            p = points[(points["source"] == src) & (points["type"] == typ)]
            ax.plot(p["log_mstar"], p["gradient"], style["marker"], mfc="none", mec=style["color"], ms=4, lw=0,
                    alpha=0.7)
            b = bins[(bins["source"] == src) & (bins["type"] == typ)]
            ax.errorbar(b["x_centre"], b["y_centre"], yerr=b["y_spread"], fmt=style["marker"], color=style["color"],
                        ms=7, capsize=2, label=f"{typ} (bin means)")
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_title(ttl)
        ax.set_xlabel(r"log $M_*$ / $M_\odot$")
    axes[0].set_ylabel(f"grad {TARGET_LABELS.get(target, target)} (dex/$R_e$)")
    axes[0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
