"""Figures of posterior calibration: SBC rank histograms and the TARP expected-coverage curve.

Built without pyplot (any backend); `write_posterior_figures` saves them as PNG files from the metrics
of `photopop.experiments.posterior.run_posterior_study`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..io import atomic_path


def plot_sbc(sbc: Mapping[str, Any], targets: Sequence[str], n: int) -> Figure:
    """SBC rank histograms per target (density; flat at 1 = calibrated, with the +-2 sigma band of a flat one)."""
    fig = Figure(figsize=(4.0 * len(targets), 3.4))
    nb = int(sbc["n_bins"])
    band = 2.0 * np.sqrt(nb / max(n, 1))  # Poisson spread of a density-normalised flat histogram
    for j, t in enumerate(targets):
        ax = fig.add_subplot(1, len(targets), j + 1)
        dens = np.asarray(sbc["rank_hist"][j])
        ax.bar(np.arange(nb) / nb, dens, width=1.0 / nb, align="edge", alpha=0.7)
        ax.axhspan(1 - band, 1 + band, color="grey", alpha=0.2)
        ax.axhline(1.0, color="k", ls="--", lw=1)
        ax.set_xlabel("rank of the truth among the draws (fraction)")
        ax.set_ylabel("density")
        ax.set_title(f"{t}: SBC, KS p = {sbc['ks_pvalue'][j]:.2g}")
    fig.tight_layout()
    return fig


def plot_tarp(tarp: Mapping[str, Any]) -> Figure:
    """TARP expected coverage against credibility (diagonal = calibrated, below = too narrow)."""
    fig = Figure(figsize=(4.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(tarp["alpha"], tarp["ecp"], lw=2, label=f"posterior (ATC {tarp['atc']:+.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlabel("credibility level")
    ax.set_ylabel("expected coverage")
    ax.set_title("TARP (joint)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_posterior_figures(metrics: Mapping[str, Any], targets: Sequence[str], out_dir: str | Path) -> list[Path]:
    """sbc.png and tarp.png in `out_dir` (atomically); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    post = metrics["posterior"]
    paths = []
    for name, fig in (("sbc", plot_sbc(post["sbc"], targets, int(post["n"]))), ("tarp", plot_tarp(post["tarp"]))):
        path = out / f"posterior_{name}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        paths.append(path)
    return paths
