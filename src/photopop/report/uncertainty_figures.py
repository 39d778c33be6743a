"""Figures of predicted uncertainties: PIT histograms, coverage curves, error against predicted sigma.

Functions return matplotlib `Figure` objects built without pyplot (no global state, any backend);
`write_uncertainty_figures` saves them as PNG files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..evaluation.calibration import coverage_curve, pit, pit_histogram
from ..io import atomic_path


def plot_pit(pred: pd.DataFrame, targets: Sequence[str], n_bins: int = 20, raw: bool = True) -> Figure:
    """PIT histograms per target (recalibrated, and raw as a step line when `raw`); flat = calibrated."""
    fig = Figure(figsize=(4.0 * len(targets), 3.4))
    for j, t in enumerate(targets):
        ax = fig.add_subplot(1, len(targets), j + 1)
        dens, edges = pit_histogram(pit(pred[f"{t}_true"], pred[t], pred[f"{t}_sigma"]), n_bins)
        ax.bar(edges[:-1], dens, width=np.diff(edges), align="edge", alpha=0.6, label="recalibrated")
        if raw and f"{t}_sigma_raw" in pred:
            d0, _ = pit_histogram(pit(pred[f"{t}_true"], pred[t], pred[f"{t}_sigma_raw"]), n_bins)
            ax.step(edges, np.r_[d0, d0[-1]], where="post", color="k", lw=1, label="raw")
        ax.axhline(1.0, color="grey", ls="--", lw=1)
        ax.set_xlabel("PIT = Phi((y - mu) / sigma)")
        ax.set_ylabel("density")
        ax.set_title(t)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_coverage(pred: pd.DataFrame, targets: Sequence[str]) -> Figure:
    """Empirical against nominal coverage of central Gaussian intervals (diagonal = calibrated)."""
    fig = Figure(figsize=(4.2, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    for t in targets:
        lv, emp = coverage_curve(pred[f"{t}_true"], pred[t], pred[f"{t}_sigma"])
        ax.plot(lv, emp, marker="o", ms=3, label=f"{t}")
        if f"{t}_sigma_raw" in pred:
            lv, e0 = coverage_curve(pred[f"{t}_true"], pred[t], pred[f"{t}_sigma_raw"])
            ax.plot(lv, e0, ls=":", label=f"{t} (raw)")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("empirical coverage")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_sigma_vs_error(pred: pd.DataFrame, targets: Sequence[str], n_bins: int = 10) -> Figure:
    """RMS error in bins of predicted sigma (quantile bins) against the bin's RMS sigma: 1:1 if calibrated."""
    fig = Figure(figsize=(4.0 * len(targets), 3.6))
    for j, t in enumerate(targets):
        ax = fig.add_subplot(1, len(targets), j + 1)
        s = pred[f"{t}_sigma"].to_numpy()
        e = (pred[t] - pred[f"{t}_true"]).to_numpy()
        ok = np.isfinite(s) & np.isfinite(e)
        s, e = s[ok], e[ok]
        if s.size:
            edges = np.unique(np.quantile(s, np.linspace(0, 1, n_bins + 1)))
            code = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, max(edges.size - 2, 0))
            cnt = np.bincount(code)
            keep = cnt > 0
            rs = np.sqrt(np.bincount(code, s * s)[keep] / cnt[keep])
            re = np.sqrt(np.bincount(code, e * e)[keep] / cnt[keep])
            ax.plot(rs, re, marker="o")
            hi = float(max(rs.max(), re.max())) * 1.1
            ax.plot([0, hi], [0, hi], color="grey", ls="--", lw=1)
        ax.set_xlabel("RMS predicted sigma (bin)")
        ax.set_ylabel("RMS error (bin)")
        ax.set_title(t)
    fig.tight_layout()
    return fig


def write_uncertainty_figures(pred: pd.DataFrame, targets: Sequence[str], out_dir: str | Path,
                              dpi: int = 110) -> list[Path]:
    """Write pit.png, coverage.png and sigma_vs_error.png (atomically) into `out_dir`; returns paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in (("pit.png", plot_pit(pred, targets)), ("coverage.png", plot_coverage(pred, targets)),
                      ("sigma_vs_error.png", plot_sigma_vs_error(pred, targets))):
        with atomic_path(out / name) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
        written.append(out / name)
    return written
