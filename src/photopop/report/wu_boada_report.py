"""The HTML page and figures of `photopop reproduce wu-boada-2019` (Wu & Boada 2019, Figs. 1-6).

`write_wu_boada_report(out, settings, metrics, pred, iset, mzr, history)` writes ``out/figures/*.png``
and a self-contained ``out/report.html`` whose tables put the paper's published numbers (``metrics["paper"]``)
beside photopop's. `settings` is the run's config as a plain mapping (`photopop.config.to_dict` of a
`WuBoada2019Config`), so this layer needs nothing from `photopop.experiments`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..datasets.composite import lupton_rgb
from ..datasets.image_set import ImageSet
from ..simulate.mzr import mzr_tremonti04
from . import image_figures as figs
from .html import HTMLReport, figure_to_data_uri


def _fmt(v: Any, digits: int = 3) -> Any:
    return None if v is None else round(float(v), digits)



def write_wu_boada_report(out: Path, settings: Mapping[str, Any], metrics: dict[str, Any], pred: pd.DataFrame,
                          iset: ImageSet, mzr: dict[str, Any], history: pd.DataFrame | None = None) -> Path:
    """Figures (DIR/figures/*.png) and the self-contained DIR/report.html with the paper's numbers beside ours.

    `history`: the metallicity CNN's training history (one row per epoch), shown as a table when given.
    """
    cfg = settings
    PAPER = metrics["paper"]
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    t = pred[f"{cfg['target']}_true"].to_numpy()
    p = pred["cnn"].to_numpy()
    rows = pred["row"].to_numpy()

    def get_rgb(idx: np.ndarray) -> np.ndarray:
        r = rows[np.asarray(idx)]
        if iset.has_rgb:
            return iset.rgb(r)
        return lupton_rgb(iset.images(r))

    baselines = {k: metrics[k] for k in ("rf_gri", "rf_ugriz", "constant") if k in metrics}
    figures: list[tuple[str, Any, str]] = [
        ("fig1_examples", figs.fig_examples(get_rgb, t, p, n=cfg['n_examples'], seed=cfg['seed']),
         "Fig. 1: test galaxies with the lowest/highest predicted and true metallicity, the most under- and "
         "over-predicted, and a random set (irg composites)."),
        ("fig2_distributions", figs.fig_distributions(t, p),
         "Fig. 2: distributions of the true (black) and predicted (red) metallicity; Freedman-Diaconis bins."),
        ("fig3_truth_vs_pred", figs.fig_truth_vs_pred(t, p),
         "Fig. 3: predicted against true metallicity with the running median and median ± RMSE / NMAD in bins of "
         "the truth; upper panel: binned scatter (marker area ∝ galaxies) and the global values."),
        ("fig4_resolution", figs.fig_resolution(metrics["resolution"], baselines, floor=metrics["intrinsic_scatter"]),
         "Fig. 4: scatter of the CNN residuals against image size (block-averaged), with the random forests "
         "(stars: gri, crosses: ugriz) and the constant mean (squares)."),
    ]
    if "log_mstar_pred" in pred.columns:
        figures.append(("fig5_mass_route", figs.fig_mass_route(pred["log_mstar_true"], pred["log_mstar_pred"], t,
                                                                pred["oh_mzr"]),
                        "Fig. 5: CNN stellar mass against the truth (left) and its MZR conversion against the true "
                        "metallicity (right)."))
    figures.append(("fig6_mzr", figs.fig_mzr(pred["log_mstar_true"], p, mzr, relation=mzr_tremonti04),
                    f"Fig. 6: predicted metallicity against true stellar mass; running medians and scatter in "
                    f"{cfg['mzr_bin_width']} dex bins for the true (black) and predicted (colours) metallicities; green: "
                    "Tremonti et al. (2004)."))
    rep = HTMLReport(f"Wu & Boada (2019) reproduced with photopop ({cfg['preset']} preset)")
    run = metrics["run"]
    rep.paragraph(f"{run['n_galaxies']} galaxies ({'mock survey' if not cfg['data'] else run['data']}), "
                  f"{run['image_size']}x{run['image_size']} pixel g,r,i images; 60/20/20 split "
                  f"({run['n_train']}/{run['n_val']}/{run['n_test']}); {cfg['model']['arch']} "
                  f"({run['pretrained_source']}), {cfg['fit']['epochs']} epochs ({cfg['fit']['freeze_epochs']} frozen), "
                  f"{'8-fold D4 test-time augmentation' if cfg['tta'] else 'no TTA'}. Scores on the test galaxies. "
                  "CNN inputs: " + ("8-bit asinh-stretched irg JPEG-like composites (the paper's inputs)"
                                    if cfg["use"] == "rgb" else "linear calibrated g, r, i fluxes") + ".")
    rep.heading("Headline numbers")
    table = []
    names = {"cnn": "CNN (images)", "rf_gri": "random forest, gri", "rf_ugriz": "random forest, ugriz",
             "constant": "constant mean", "mass_route": "CNN stellar mass → MZR",
             "rf_latent": "random forest on the true latent parameters (mock floor)"}
    for key, label in names.items():
        if key not in metrics:
            continue
        m, pp = metrics[key], PAPER.get(key, {})
        table.append({"method": label, "RMSE": _fmt(m["rmse"]), "paper RMSE": pp.get("rmse"),
                      "NMAD": _fmt(m["nmad"]), "paper NMAD": pp.get("nmad"), "bias": _fmt(m["bias"]), "n": m["n"]})
    rep.table(table, caption="Residual scatter of 12+log(O/H) (dex); paper values from its text")
    rep.paragraph(f"The paper's ugriz value is {PAPER['rf_ugriz']['note']}, as Wu & Boada quote it; its CNN used "
                  f"{PAPER['image_size']} px SDSS JPEG cutouts of {PAPER['cnn']['n']} test galaxies with ImageNet "
                  "weights. A mock survey tests the method, not the paper's claims about real galaxies.", note=True)
    extra = [{"quantity": "intrinsic scatter injected by the mock", "photopop": _fmt(metrics["intrinsic_scatter"]),
              "paper": "–"},
             {"quantity": "CNN RMSE / intrinsic scatter", "photopop": _fmt(metrics["cnn_over_intrinsic"]),
              "paper": "–"},
             {"quantity": "MZR scatter of true Z (RMS about Tremonti)",
              "photopop": _fmt(metrics["mzr"]["true"]["rmse"]),
              "paper": PAPER["mzr_scatter_true"]},
             {"quantity": "MZR scatter of predicted Z", "photopop": _fmt(metrics["mzr"]["pred"]["rmse"]),
              "paper": "≤ 0.10"}]
    if "mass_route" in metrics:
        extra += [{"quantity": "stellar-mass RMSE (dex)", "photopop": _fmt(metrics["mass_route"]["mass_rmse"]),
                   "paper": PAPER["mass_route"]["mass_rmse"]},
                  {"quantity": "stellar-mass NMAD (dex)", "photopop": _fmt(metrics["mass_route"]["mass_nmad"]),
                   "paper": PAPER["mass_route"]["mass_nmad"]}]
    rep.table(extra, caption="Intrinsic scatter, MZR and stellar mass")
    fl = metrics.get("floor") or {}
    if fl.get("injected_scatter") is not None or fl.get("cnn_over_rf_gri") is not None:
        lat = fl.get("rf_latent") or {}
        rep.table([{"quantity": "floor: scatter the mock injects that no image shows (RMS)",
                    "photopop": _fmt(fl.get("injected_scatter")), "paper": "–"},
                   {"quantity": "floor: random forest on the true latent parameters (RMSE)",
                    "photopop": _fmt(lat.get("rmse")), "paper": "–"},
                   {"quantity": "CNN RMSE / random forest gri RMSE", "photopop": _fmt(fl.get("cnn_over_rf_gri")),
                    "paper": _fmt(fl.get("paper_cnn_over_rf_gri"))},
                   {"quantity": "CNN RMSE / injected floor", "photopop": _fmt(fl.get("cnn_over_floor")), "paper": "–"},
                   {"quantity": "random forest gri RMSE / injected floor", "photopop": _fmt(fl.get("rf_gri_over_floor")),
                    "paper": "–"}],
                  caption="The information floor of the mock beside the CNN and the forest on gri: how much of what "
                          "images can tell the CNN finds, and how much morphology adds to integrated colours")
    rep.table([{"check": k, "value": v} for k, v in metrics["checks"].items()], caption="Checks")
    rep.heading("Resolution")
    rep.table([{"pixels": r["pixels"], "RMSE": _fmt(r["rmse"]), "± std": _fmt(r.get("rmse_std")),
                "NMAD": _fmt(r["nmad"]), "NMAD ± std": _fmt(r.get("nmad_std")), "seeds": r.get("seeds", 1)}
               for r in metrics["resolution"]],
              caption=f"CNN scatter against image size, mean and standard deviation over network seeds; paper: "
                      f"{PAPER['resolution']}")
    rep.heading("Figures")
    for name, fig, caption in figures:
        uri = figure_to_data_uri(fig)
        (fig_dir / f"{name}.png").write_bytes(base64.b64decode(uri.split(",", 1)[1]))
        rep.figure(uri, caption)
    hist = history
    if hist is not None:
        rep.heading("Training history (metallicity CNN)")
        rep.table(hist.to_dict(orient="records"), digits=4)
    rep.heading("Settings")
    rep.paragraph(f"Random forests: scikit-learn RandomForestRegressor, {cfg['random_forest']['n_estimators']} trees, "
                  f"max_features={cfg['random_forest']['max_features']}, min_samples_leaf chosen on the validation galaxies "
                  f"from {list(cfg['rf_leaf_grid'])} (chosen: " + ", ".join(
                      f"{k}: {v['min_samples_leaf']}" for k, v in (run.get('rf') or {}).items() if v) + ").", note=True)
    stage_text = [f"{k} ({'cached' if v['cached'] else str(v['seconds']) + ' s'})" for k, v in run["stages"].items()]
    rep.paragraph("Stage cache: " + ", ".join(stage_text), note=True)
    return rep.write(out / "report.html")


__all__ = ["write_wu_boada_report"]
