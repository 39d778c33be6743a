"""The HTML page and figures of `photopop reproduce liew-cain-2021`.

`write_liew_cain_report(out_dir, metrics, data)` writes ``out_dir/figures/*.png`` and a self-contained
``out_dir/report.html`` (figures embedded) whose tables put the paper's published numbers beside
photopop's. `metrics` is the content of ``metrics.json`` (with the paper's values under "paper"); `data`
holds the tables the figures need (see `photopop.experiments.liew_cain_metrics.load_report_data`).
Besides the gradient figures (`report.gradient_figures`) this module draws Figs. 6/8 (prediction against
label), 10-12 (residuals against galaxy properties), 13 (training-set size) and the model-mismatch panel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..evaluation.comparisons import describe_cnn_vs_forest
from ..evaluation.galaxy_studies import gradient_differences
from ..evaluation.metrics import nmad
from ..io import atomic_path
from .diversity_figures import add_diversity_section
from .gradient_figures import TARGET_LABELS, plot_gradient_differences, plot_gradient_mass, plot_radial_profile
from .html import HTMLReport

SET_TITLES = {"set_a": "Set A", "set_b": "Set B"}
PROPERTY_LABELS = {"log_ssfr": "log sSFR / yr$^{-1}$", "inclination_deg": "inclination (deg)", "a_v": "$A_V$ (mag)",
                   "bulge_fraction": "bulge fraction"}
PROPERTY_FIGS = {"log_ssfr": "Fig. 10", "inclination_deg": "Fig. 11", "a_v": "Fig. 12", "bulge_fraction": "Sect. 4.4"}


# -- figures ----------------------------------------------------------------------------------------------------
def plot_prediction_density(truth: Mapping[str, Any], pred: Mapping[str, Any], title: str = "") -> Figure:
    """Figs. 6 / 8: prediction against label per target, as a 2D histogram with the one-to-one line."""
    targets = list(truth)
    fig = Figure(figsize=(4.2 * len(targets), 4.0))
    axes = fig.subplots(1, len(targets), squeeze=False)[0]
    for ax, t in zip(axes, targets):
        x, y = np.asarray(truth[t], float), np.asarray(pred[t], float)
        ok = np.isfinite(x) & np.isfinite(y)
        lo, hi = np.percentile(np.r_[x[ok], y[ok]], [0.5, 99.5]) if ok.any() else (0, 1)
        pad = 0.05 * (hi - lo + 1e-9)
        ax.hist2d(x[ok], y[ok], bins=50, range=[[lo - pad, hi + pad]] * 2, cmap="Greys", cmin=1)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="black", lw=1)
        ax.set_xlabel(f"{TARGET_LABELS.get(t, t)} (label)")
        ax.set_ylabel(f"{TARGET_LABELS.get(t, t)} (CNN)")
        ax.set_title(f"robust σ = {nmad(y[ok] - x[ok]):.3f} dex")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_property_dependence(points: pd.DataFrame, bins: pd.DataFrame, prop: str,
                             targets: tuple[str, ...] = ("zh", "log_age")) -> Figure:
    """Figs. 10-12: per-galaxy median residual (left) and robust sigma (right) against a galaxy property.

    Rows: Set A then Set B, each with one row per target (metallicity first, as the paper). Grey dots per
    galaxy; red: median of each bin of galaxies with the bin's robust sigma as error bar.
    """
    sets = [s for s in SET_TITLES if (points["set"] == s).any()]
    rows = [(s, t) for s in sets for t in targets]
    fig = Figure(figsize=(8.0, 2.2 * len(rows)))
    axes = fig.subplots(len(rows), 2, squeeze=False, sharex=True)
    for i, (s, t) in enumerate(rows):
        p = points[(points["set"] == s) & (points["target"] == t)]
        for j, stat in enumerate(("median_residual", "robust_sigma")):
            ax = axes[i, j]
            ax.plot(p[prop], p[stat], ".", color="0.6", ms=4)
            b = bins[(bins["set"] == s) & (bins["target"] == t) & (bins["property"] == prop)
                     & (bins["statistic"] == stat)]
            ax.errorbar(b["x_centre"], b["y_centre"], yerr=b["y_spread"], fmt="o", color="tab:red", ms=5, capsize=2)
            if stat == "median_residual":
                ax.axhline(0, color="0.4", lw=0.6)
            name = "median Δ" if stat == "median_residual" else "robust σ of Δ"
            ax.set_ylabel(f"{SET_TITLES[s]}: {name}\n{TARGET_LABELS.get(t, t)}", fontsize=8)
            if i == len(rows) - 1:
                ax.set_xlabel(PROPERTY_LABELS.get(prop, prop))
    fig.tight_layout()
    return fig


def plot_training_size(summary: pd.DataFrame, random_line: Mapping[str, float], target: str = "log_age",
                       paper: Mapping[str, Any] | None = None) -> Figure:
    """Fig. 13: mean robust sigma (error bars: standard deviation over repeats) against training fraction."""
    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.subplots()
    styles = {"A": dict(ls="-", color="black", label="Set A"), "B": dict(ls="--", color="tab:blue", label="Set B")}
    for scheme, st in styles.items():
        s = summary[(summary["scheme"] == scheme) & (summary["target"] == target)].sort_values("fraction")
        if s.empty:
            continue
        ax.errorbar(100 * s["fraction"], s["mean"], yerr=s["std"].fillna(0.0), marker="o", capsize=3, **st)
    if target in random_line and np.isfinite(random_line[target]):
        ax.axhline(random_line[target], color="tab:red", ls=":", label="random prediction")
    ax.set_xlabel("training set (% of all spaxels)")
    ax.set_ylabel(f"robust σ of Δ{TARGET_LABELS.get(target, target)} (dex)")
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False)
    n = int(summary["n_repeats"].max()) if len(summary) else 0
    ax.set_title(f"{n} repeat(s) per point" + (" (paper: 100)" if paper else ""))
    fig.tight_layout()
    return fig


def plot_mismatch(df: pd.DataFrame, targets: tuple[str, ...] = ("log_age", "zh"), library: str = "") -> Figure:
    """Residual distributions of the same fold models on the training library's mock and on the other one."""
    sets = [s for s in SET_TITLES if (df["set"] == s).any()]
    fig = Figure(figsize=(4.2 * len(targets), 3.0 * len(sets)))
    axes = fig.subplots(len(sets), len(targets), squeeze=False)
    for i, s in enumerate(sets):
        d = df[df["set"] == s]
        for j, t in enumerate(targets):
            ax = axes[i, j]
            r_ref = (d[f"{t}_cnn_ref"] - d[f"{t}_true_ref"]).to_numpy()
            r_alt = (d[f"{t}_cnn_alt"] - d[f"{t}_true_alt"]).to_numpy()
            lim = np.nanpercentile(np.abs(np.r_[r_ref, r_alt]), 99) if len(d) else 1.0
            edges = np.linspace(-lim, lim, 41)
            ax.hist(r_ref, bins=edges, histtype="step", color="black", label="same library")
            ax.hist(r_alt, bins=edges, histtype="step", color="tab:red", label=library or "other library")
            ax.axvline(0, color="0.5", lw=0.6)
            ax.set_xlabel(f"Δ {TARGET_LABELS.get(t, t)} (CNN - label)")
            ax.set_title(SET_TITLES[s], fontsize=9)
            if i == 0 and j == 0:
                ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


# -- the page ---------------------------------------------------------------------------------------------------
def _save(fig: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def _num(x: Any) -> Any:
    return None if x is None else float(x)


def _example_galaxy(grads: pd.DataFrame, requested: int) -> int | None:
    lab = grads[(grads["source"] == "label")]
    sel = lab[lab["selected"].astype(bool)]
    if requested >= 0:
        return requested if requested in set(lab["galaxy_id"]) else None
    if sel.empty:
        return None
    agg = sel.groupby("galaxy_id")["n_inside"].max()
    return int(agg.idxmax())


def write_liew_cain_report(out_dir: str | Path, metrics: Mapping[str, Any], data: Mapping[str, Any]) -> Path:
    """Write out_dir/figures/*.png and the self-contained out_dir/report.html; returns the page's path."""
    out = Path(out_dir)
    figdir = out / "figures"
    paper = metrics["paper"]
    rep = HTMLReport("Liew-Cain et al. (2021) reproduced with photopop")
    sv = metrics.get("survey", {})
    rep.paragraph(
        f"Preset '{metrics.get('preset')}', seed {metrics.get('seed')}, config hash {metrics.get('config_hash')}. "
        f"Mock IFU survey: {sv.get('n_galaxies')} galaxies ({sv.get('n_early')} early types), {sv.get('n_spaxels')} "
        f"spaxels, {sv.get('n_bands')} {sv.get('filter_system')} bands, SSP grid {sv.get('ssp_grid')}. The paper used "
        "190 CALIFA galaxies and 19 727 spectra with STECKMAP labels; photopop's numbers come from a mock whose labels "
        "are known, so they test the method, not CALIFA. Residuals are CNN - label; robust σ = 1.4826 MAD.")
    if metrics.get("preset") != "full":
        rep.paragraph("This is a reduced preset (smaller survey, fewer epochs and repeats): expect larger scatter "
                      "than the full run; use it to check the pipeline, not to quote numbers.", note=True)
    targets = [t for t in ("log_age", "zh") if t in metrics.get("set_a", {})]

    # headline table
    rep.heading("Headline numbers (Sects. 4.1-4.3)")
    rows = []
    for s in SET_TITLES:
        for t in targets:
            mine, pub = metrics[s][t], paper[s][t]
            rows.append({"set": SET_TITLES[s], "target": t,
                         "robust σ paper": pub["robust_sigma"], "robust σ photopop": _num(mine["robust_sigma"]),
                         "gradient σ paper": pub["gradient_robust_sigma"],
                         "gradient σ photopop": _num(mine["gradient_robust_sigma"]),
                         "PCC paper": pub["pcc_residuals"], "PCC photopop": _num(mine["pcc_residuals"]),
                         "galaxies (gradients)": mine.get("gradient_n"),
                         "robust σ vs noise-free labels": _num(mine.get("robust_sigma_vs_noisefree")),
                         "label noise σ": _num(mine.get("label_noise_robust_sigma")),
                         "σ / floor": _num(mine.get("ratio_to_floor"))})
    rep.table(rows, caption="Robust σ of CNN - label (dex), of gradient differences (dex/R_e), and the Pearson "
                            "correlation of the age and [Z/H] residuals. On the mock, the labels carry independent "
                            "noise per spaxel (last column), a floor for the robust σ against them; the column "
                            "before it compares with the noise-free labels. σ / floor: the CNN's robust σ over the "
                            "information floor's (the Bayes estimate under the simulator's own prior; 1 = as good "
                            "as any method can be on average).")
    lw = metrics.get("survey", {}).get("light_weighting")
    if lw:
        rep.paragraph(f"Labels: luminosity-weighted by the {lw} light at 5500 A"
                      + (" (dust-attenuated, as fits to observed spectra weight them)." if lw == "attenuated"
                         else " (dust-free light; the paper's labels weight the observed light)."), note=True)
    rep.paragraph(paper["notes"]["set_b_age"], note=True)

    # baselines
    rep.heading("Baselines (same folds)")
    rows = []
    for s in SET_TITLES:
        for meth, vals in metrics.get("baselines", {}).get(s, {}).items():
            if meth in ("pcc_residuals", "ratio_to_floor"):
                continue
            ratio = metrics["baselines"][s].get("ratio_to_floor", {}).get(meth, {})
            rows.append({"set": SET_TITLES[s], "method": meth,
                         **{f"σ/floor {t}": _num(ratio.get(t)) for t in targets},
                         **{f"robust σ {t}": _num(vals.get(t, {}).get("robust_sigma")) for t in targets},
                         **{f"rmse {t}": _num(vals.get(t, {}).get("rmse")) for t in targets}})
        rows.append({"set": SET_TITLES[s], "method": "cnn",
                     **{f"σ/floor {t}": _num(metrics[s][t].get("ratio_to_floor")) for t in targets},
                     **{f"robust σ {t}": _num(metrics[s][t]["robust_sigma"]) for t in targets},
                     **{f"rmse {t}": _num(metrics[s][t]["rmse"]) for t in targets}})
    inputs = metrics.get("inputs") or {}
    rf_in = (f"{inputs['random_forest']} features (the CNN's inputs: {inputs.get('cnn', '?')})"
             if inputs.get("random_forest") else "the same magnitudes")
    rep.table(rows, caption="constant: training mean; random: a random training label (the paper's random-prediction "
                            f"line); random_forest: scikit-learn on {rf_in}; "
                            "template_fit: chi-square fit "
                            "over a library of the mock's model family (lines, birth clouds, chemical evolution, "
                            "bulge + disc + burst) under broad uniform priors (no training); template_grid: the "
                            "classic delayed-tau grid; floor: the Bayes estimate under the simulator's own prior "
                            "(likelihood weighting of a >= 1e5-spaxel library drawn with its own seed). "
                            "σ/floor: robust σ over the floor's.")

    for s in SET_TITLES:
        verdict = describe_cnn_vs_forest((metrics.get("cnn_vs_forest") or {}).get(s) or {}, SET_TITLES[s], inputs)
        if verdict:
            rep.paragraph(verdict)

    add_diversity_section(rep, metrics, figdir, targets, _save)

    bp = metrics.get("bagpipes")
    if bp:
        rows = [{"method": "bagpipes (nautilus)", **{f"robust σ {t}": _num(bp["bagpipes"][t]["robust_sigma"])
                                                     for t in targets}, "s per SED": _num(bp["seconds_per_sed"])}]
        for meth, vals in bp.get("same_spaxels", {}).items():
            rows.append({"method": f"{meth} (Set B, out of fold)",
                         **{f"robust σ {t}": _num(vals.get(t, {}).get("robust_sigma")) for t in targets}})
        rep.table(rows, caption=f"A real Bayesian SED fit on {bp['n_spaxels']} random spaxels (bagpipes, BC03, "
                                "delayed-tau, Calzetti + birth clouds, nebular lines, nautilus with "
                                f"{bp['n_live']} live points; labels of its posterior samples computed with "
                                "photopop's definitions) beside the other methods on the same spaxels.")

    spx = data["spaxels"]
    for s in SET_TITLES:
        fig_no = "Fig. 6" if s == "set_a" else "Fig. 8"
        fig = plot_prediction_density({t: spx[t] for t in targets}, {t: spx[f"{s}_{t}_cnn"] for t in targets},
                                      title=f"{SET_TITLES[s]}: CNN against label ({fig_no})")
        rep.figure(_save(fig, figdir / f"pred_vs_label_{s}.png"),
                   f"{SET_TITLES[s]}: out-of-fold CNN predictions against the labels.")

    # gradients
    rep.heading("Radial gradients (Sects. 3.3, 4.2, 4.3)")
    gm = metrics.get("gradients", {})
    gs = gm.get("settings", {})
    rep.paragraph(f"Galaxies with at least {gs.get('min_inside')} spaxels inside {gs.get('r_max')} R_e and at least "
                  f"{gs.get('min_outside')} beyond; slope of a straight line inside R_e, mean of {gs.get('n_boot')} "
                  f"fits to random {gs.get('frac'):.0%} subsets. Differences: other - reference, over galaxies "
                  "selected in both. 'true' is the gradient the simulator put in (noise-free labels, all spaxels "
                  "inside R_e).")
    rows = []
    for t in targets:
        e = gm.get(t, {})
        if "label_vs_true" in e:
            rows.append({"target": t, "gradients of": "labels", "against": "true", **_cmp(e["label_vs_true"])})
        for s in SET_TITLES:
            for meth in ("cnn", "random_forest", "template_fit"):
                key = f"{s}_{meth}"
                if key in e:
                    rows.append({"target": t, "gradients of": f"{SET_TITLES[s]} {meth}", "against": "labels",
                                 **_cmp(e[key]["vs_label"])})
                    if "vs_true" in e[key]:
                        rows.append({"target": t, "gradients of": f"{SET_TITLES[s]} {meth}", "against": "true",
                                     **_cmp(e[key]["vs_true"])})
    rep.table(rows, caption="Gradient differences (dex/R_e): number of galaxies, robust σ, median, rmse.")

    grads = data["gradients"]
    gal = _example_galaxy(grads, int(data.get("example_galaxy", -1)))
    if gal is not None:
        sub = spx[spx["galaxy_id"] == gal]
        panels = {"label": {t: sub[t].to_numpy() for t in ("zh", "log_age")},
                  "CNN (Set A)": {t: sub[f"set_a_{t}_cnn"].to_numpy() for t in ("zh", "log_age")}}
        fig = plot_radial_profile(sub["r_re"].to_numpy(), panels, r_max=gs.get("r_max", 1.0),
                                  n_boot=gs.get("n_boot", 100), frac=gs.get("frac", 0.75),
                                  seed=int(data.get("gradient_seed", 0)), title=f"galaxy {gal}")
        rep.figure(_save(fig, figdir / "radial_profile_example.png"),
                   f"Fig. 5: galaxy {gal}, labels (left) and Set A CNN (right) against deprojected radius; red: "
                   "Monte Carlo fits, black: their mean.")
    for s, fig_no in (("set_a", "Fig. 7"), ("set_b", "Fig. 9")):
        diffs = {t: gradient_differences(_gtab(grads, "label", t), _gtab(grads, f"{s}_cnn", t)) for t in targets}
        fig = plot_gradient_differences(diffs, title=f"{SET_TITLES[s]}: CNN - label gradients")
        rep.figure(_save(fig, figdir / f"gradient_differences_{s}.png"),
                   f"{fig_no}: differences of CNN and label gradients; error bars combine both Monte Carlo errors; "
                   "histogram bins of 0.05 dex/R_e.")

    # property dependence
    rep.heading("Dependence on galaxy properties (Sect. 4.4, Figs. 10-12)")
    pd_m = metrics.get("property_dependence", {})
    rows = []
    for s in SET_TITLES:
        for t in targets:
            for prop, stats in pd_m.get(s, {}).get(t, {}).items():
                rows.append({"set": SET_TITLES[s], "target": t, "property": prop,
                             "Spearman r (median Δ)": _num(stats.get("median_residual", {}).get("spearman_r")),
                             "p (median Δ)": _num(stats.get("median_residual", {}).get("spearman_p")),
                             "Spearman r (robust σ)": _num(stats.get("robust_sigma", {}).get("spearman_r")),
                             "p (robust σ)": _num(stats.get("robust_sigma", {}).get("spearman_p"))})
    rep.table(rows, caption=f"Rank correlation of each galaxy's median residual and robust σ with its properties "
                            f"(bins of {pd_m.get('per_bin')} galaxies in the figures). "
                            f"Paper: {paper['property_dependence']}")
    points, bins = data["property_points"], data["property_bins"]
    for prop in bins["property"].unique():
        fig = plot_property_dependence(points, bins, prop)
        rep.figure(_save(fig, figdir / f"residuals_vs_{prop}.png"),
                   f"{PROPERTY_FIGS.get(prop, '')}: per-galaxy median (left) and robust σ (right) of CNN - label "
                   f"against {prop}; red: bins of {pd_m.get('per_bin')} galaxies (median, robust σ).")

    # morphology
    rep.heading("Morphology cross-training (Table 1)")
    morph = metrics.get("morphology", {})
    if "skipped" in morph:
        rep.paragraph(f"Morphology study {morph['skipped']}.", note=True)
    else:
        rows = []
        for t in targets:
            for appl in ("early", "late", "all"):
                mine = morph.get(t, {}).get(appl, {})
                pub = paper["morphology"][t].get(appl, {})
                row = {"target": t, "applied to": appl}
                for tr in ("early", "late", "all"):
                    row[f"trained {tr}: paper"] = pub.get(tr)
                    row[f"trained {tr}: photopop"] = _num(mine.get(tr))
                rows.append(row)
        rep.table(rows, caption=f"Robust σ (dex) of CNN - label; galaxies of each type split Set-B style into "
                                f"{morph.get('n_folds')} folds, {morph.get('folds_used')} used as held-out set(s). The "
                                "paper's 'full set' entry is its Set B cross-prediction.")

    # training size
    rep.heading("Training-set size (Sect. 4.5, Fig. 13)")
    ts = metrics.get("training_size", {})
    if "skipped" in ts:
        rep.paragraph(f"Training-size study {ts['skipped']}.", note=True)
    else:
        summ = pd.DataFrame(ts["rows"])
        rows = [{"set": f"Set {r['scheme']}", "target": r["target"], "fraction": r["fraction"],
                 "mean robust σ": r["mean"], "std": r["std"], "repeats": r["n_repeats"],
                 "training spaxels": r["n_train"], "training galaxies": r["n_train_galaxies"]}
                for r in ts["rows"]]
        rep.table(rows, caption=f"{ts.get('note')}. Random-prediction line: "
                                + ", ".join(f"{t} {v:.3f}" for t, v in ts.get("random_line", {}).items()))
        if "set_a_smallest_minus_set_b_largest" in ts:
            quantity = f"Set A at {ts['smallest_fraction']:.0%} - Set B at {ts['largest_fraction']:.0%} (age)"
            rep.table([{"quantity": quantity,
                        "paper": paper["training_size"]["set_a_5pc_minus_set_b_75pc"],
                        "photopop": ts["set_a_smallest_minus_set_b_largest"]}])
        rep.paragraph(f"Paper: {paper['training_size']['description']}", note=True)
        for t in summ["target"].unique():
            fig = plot_training_size(summ, ts.get("random_line", {}), target=t, paper=paper)
            rep.figure(_save(fig, figdir / f"training_size_{t}.png"),
                       "Fig. 13: mean robust σ over repeats (error bars: their standard deviation) against the "
                       "training-set share; red dotted: random prediction.")

    # mass gradients
    rep.heading("Gradient against stellar mass (Sect. 4.6, Fig. 14)")
    mg = metrics.get("mass_gradients", {})
    fig = plot_gradient_mass(data["mass_points"], data["mass_bins"], titles=("labels", "Set A CNN", "Set B CNN"),
                             target=mg.get("target", "log_age"))
    rep.figure(_save(fig, figdir / "gradient_vs_mass.png"),
               f"Fig. 14: {mg.get('target')} gradient against stellar mass; open symbols: galaxies (red circles early, "
               f"black squares late); filled: means of bins of {mg.get('per_bin', {}).get('early')} early / "
               f"{mg.get('per_bin', {}).get('late')} late galaxies with their standard deviation. "
               f"{paper['mass_gradients']}")

    # mismatch
    rep.heading("Model mismatch: another SSP library (beyond the paper)")
    mm = metrics.get("model_mismatch", {})
    if "skipped" in mm:
        rep.paragraph(f"Model-mismatch study {mm['skipped']}.", note=True)
    else:
        rows = []
        for s in SET_TITLES:
            for t in targets:
                e = mm.get(s, {}).get(t, {})
                rows.append({"set": SET_TITLES[s], "target": t, "n": e.get("n"),
                             "bias same library": _num(e.get("bias_ref")), "bias other": _num(e.get("bias_alt")),
                             "robust σ same": _num(e.get("robust_sigma_ref")),
                             "robust σ other": _num(e.get("robust_sigma_alt")),
                             "added bias": _num(e.get("added_bias")), "added scatter": _num(e.get("added_scatter"))})
        rep.table(rows, caption=f"The Set A / Set B fold models (trained on the {sv.get('ssp_grid')} mock) predict the "
                                f"same spaxels of the mock built from {mm.get('library')} ({mm.get('ssp_grid')}), "
                                "against "
                                "that mock's own labels. Added scatter = sqrt(σ_other² - σ_same²).")
        if mm.get("bands_dropped"):
            rep.paragraph(f"The other library does not cover band(s) {', '.join(mm['bands_dropped'])}: both mocks use "
                          f"the {len(mm.get('bands', []))} common bands and the Set A / Set B CNNs were retrained on "
                          "them with the same folds, so 'same library' here is that retrained network.", note=True)
        if mm.get("nebular_ref") and not mm.get("nebular_alt"):
            rep.paragraph("The training mock has nebular emission lines (CLOUDY grids exist for BC03 only) and the "
                          "other library's mock has none: the added bias and scatter include the lines' absence. Set "
                          "survey.nebular = false for a comparison of the stellar libraries alone.", note=True)
        if "mismatch" in data:
            fig = plot_mismatch(data["mismatch"], tuple(targets), library=str(mm.get("library", "")))
            rep.figure(_save(fig, figdir / "model_mismatch.png"),
                       "Residuals on the same and on the other library's mock.")

    rep.heading("Run")
    timing = metrics.get("timing_s", {})
    rep.table([{"stage": n, "hash": h, "seconds": _num(timing.get(n))} for n, h in metrics.get("stages", {}).items()],
              caption="Stage folders under stages/<name>-<hash>/ (cached by settings). "
                      f"Total {timing.get('total', 0):.0f} s. "
                      "Settings: config.toml; all numbers: metrics.json.")
    return rep.write(out / "report.html")


def _cmp(d: Mapping[str, Any]) -> dict[str, Any]:
    return {"n": d.get("n"), "robust σ": _num(d.get("robust_sigma")), "median": _num(d.get("bias")),
            "rmse": _num(d.get("rmse"))}


def _gtab(grads: pd.DataFrame, source: str, target: str) -> pd.DataFrame:
    return grads[(grads["source"] == source) & (grads["target"] == target)].set_index("galaxy_id")
