"""Figures of the mock IFU survey: one spaxel's spectrum with its J-PAS SED (Liew-Cain et al. 2021, Fig. 1)
and maps of one galaxy's luminosity-weighted age and metallicity.

`plot_spaxel_sed` and `plot_label_maps` draw on given matplotlib Axes (or make a figure); `write_ifu_figures`
recomposes one galaxy's noise-free spectra from the survey config (same seed, same galaxy) and writes PNG
files atomically (Agg backend).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import atomic_path

C_AA_PER_S = 2.99792458e18
LABEL_TEXT = {"log_age_true": r"$\log_{10}$(age / yr), luminosity-weighted", "zh_true": "[Z/H], luminosity-weighted",
              "log_age": r"$\log_{10}$(age / yr)", "zh": "[Z/H]"}


def _figure(ncols: int = 1, size: tuple[float, float] = (7.0, 4.0)) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=size, constrained_layout=True)
    return fig, axes


def mag_to_flambda(mag_ab: np.ndarray, pivot_aa: np.ndarray) -> np.ndarray:
    """Band-averaged f_lambda (erg/s/cm^2/A) at the pivot wavelength from an AB magnitude."""
    f_nu = 10.0 ** (-0.4 * (np.asarray(mag_ab, dtype=float) + 48.6))  # erg/s/cm^2/Hz
    return f_nu * C_AA_PER_S / np.asarray(pivot_aa, dtype=float) ** 2


def plot_spaxel_sed(wave_aa: np.ndarray, flux: np.ndarray, pivot_aa: np.ndarray, mag: np.ndarray,
                    magerr: np.ndarray | None = None, ax: Any = None, title: str = "") -> Any:
    """Spectrum (black) and its synthetic photometry (red points at the band pivots), both in f_lambda."""
    if ax is None:
        _, ax = _figure()
    scale = 1e-16
    ax.plot(wave_aa, np.asarray(flux) / scale, color="k", lw=0.6, label="spectrum (noise-free)")
    f = mag_to_flambda(mag, pivot_aa) / scale
    if magerr is not None:
        err = f * np.asarray(magerr) * np.log(10.0) / 2.5
        ax.errorbar(pivot_aa, f, yerr=err, fmt="o", color="tab:red", ms=4, lw=1, label="J-PAS-like SED")
    else:
        ax.plot(pivot_aa, f, "o", color="tab:red", ms=4, label="J-PAS-like SED")
    # emission lines can be 20x the continuum: scale the axis to the continuum and the SED
    top = max(np.nanpercentile(np.asarray(flux) / scale, 95), np.nanmax(f)) * 1.4
    ax.set_ylim(0, top)
    ax.set_xlabel(r"observed wavelength ($\AA$)")
    ax.set_ylabel(r"$f_\lambda$ ($10^{-16}$ erg s$^{-1}$ cm$^{-2}$ $\AA^{-1}$)")
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_label_maps(spaxels: pd.DataFrame, columns: Sequence[str] = ("log_age_true", "zh_true"),
                    axes: Any = None, title: str = "") -> Any:
    """Sky maps (x east, y north, arcsec) of label columns, one square per bin (side `bin_size_arcsec`)."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    missing = [c for c in ("x_arcsec", "y_arcsec", *columns) if c not in spaxels]
    if missing:
        raise InputError(f"label maps need column(s) {missing}")
    if axes is None:
        fig, axes = _figure(len(columns), (4.2 * len(columns), 3.8))
    axes = np.atleast_1d(axes)
    x = spaxels["x_arcsec"].to_numpy()
    y = spaxels["y_arcsec"].to_numpy()
    side = spaxels["bin_size_arcsec"].to_numpy() if "bin_size_arcsec" in spaxels else np.full(x.size, 1.0)
    for ax, col in zip(axes, columns):
        patches = [Rectangle((xi - s / 2, yi - s / 2), s, s) for xi, yi, s in zip(x, y, side)]
        pc = PatchCollection(patches, cmap="viridis" if "age" in col else "plasma")
        pc.set_array(spaxels[col].to_numpy())
        ax.add_collection(pc)
        pad = side.max()
        ax.set_xlim(x.max() + pad, x.min() - pad)  # east to the left, as on the sky
        ax.set_ylim(y.min() - pad, y.max() + pad)
        ax.set_aspect("equal")
        ax.set_xlabel(r"$\Delta$RA (arcsec, east left)")
        ax.set_ylabel(r"$\Delta$Dec (arcsec)")
        plt.colorbar(pc, ax=ax, label=LABEL_TEXT.get(col, col), shrink=0.85)
    if title:
        axes[0].figure.suptitle(title, fontsize=10)
    return axes


def _save(fig: Any, path: Path, dpi: int = 120) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path


def pick_example(table: Any, galaxy_id: int | None = None) -> int:
    """A typical late-type galaxy (median spaxel count) unless `galaxy_id` is given."""
    ids = table.spaxels["galaxy_id"].unique()
    if galaxy_id is not None:
        if galaxy_id not in ids:
            raise InputError(f"galaxy_id {galaxy_id} is not in the table")
        return int(galaxy_id)
    counts = table.spaxels.groupby("galaxy_id").size()
    if table.galaxies is not None and "type" in table.galaxies:
        late = table.galaxies.loc[table.galaxies["type"] == "late", "galaxy_id"]
        if late.isin(counts.index).any():
            counts = counts[counts.index.isin(late)]
    return int((counts - counts.median()).abs().idxmin())


def write_ifu_figures(config: Any, table: Any, out_dir: str | Path, galaxy_id: int | None = None) -> list[Path]:
    """Write ``spaxel_sed.png`` (a spaxel near R_e: spectrum + SED) and ``label_maps.png`` for one galaxy.

    `config` is the IFUSurveyConfig that produced `table`; the galaxy's noise-free spectra are recomposed
    from it (the same seed gives the same galaxy).
    """
    from ..simulate.ifu import galaxy_spectra, plan_survey

    out = Path(out_dir)
    gid = pick_example(table, galaxy_id)
    plan = plan_survey(config)
    wave, flux, rows = galaxy_spectra(plan, gid)
    mine = table.spaxels[table.spaxels["galaxy_id"] == gid]
    # the kept spaxel closest to 1 R_e
    pick = mine.iloc[int(np.argmin(np.abs(mine["r_re"].to_numpy() - 1.0)))]
    k = int(np.flatnonzero(rows["spaxel_id"].to_numpy() == pick["spaxel_id"])[0])
    bands = table.bands
    pivots = plan.system.pivots
    fig, ax = _figure(size=(8.0, 4.0))
    ranges = plan.system.wavelength_ranges
    sel = (wave > 0.97 * ranges[:, 0].min()) & (wave < 1.01 * ranges[:, 1].max())
    plot_spaxel_sed(wave[sel], flux[k, sel], pivots, pick[[f"mag_{b}" for b in bands]].to_numpy(float),
                    pick[[f"magerr_{b}" for b in bands]].to_numpy(float), ax=ax,
                    title=(f"galaxy {gid}, spaxel {int(pick['spaxel_id'])} at r = {pick['r_re']:.2f} R_e: "
                           f"log age = {pick['log_age_true']:.2f}, [Z/H] = {pick['zh_true']:.2f}"))
    paths = [_save(fig, out / "spaxel_sed.png")]
    g = table.galaxies.set_index("galaxy_id").loc[gid] if table.galaxies is not None else None
    title = f"galaxy {gid}" + (f" ({g['type']}, log M* = {g['log_mstar']:.2f}, i = {g['inclination_deg']:.0f} deg)"
                               if g is not None else "")
    axes = plot_label_maps(mine, title=title)
    paths.append(_save(axes[0].figure, out / "label_maps.png"))
    return paths
