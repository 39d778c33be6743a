"""metrics.json of `photopop reproduce liew-cain-2021` (`collect_metrics`) and the report's tables
(`load_report_data`), both read from the finished stage folders; the figures and report.html are drawn by
`photopop.report.liew_cain_report`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from .. import __version__
from ..config import config_hash, to_dict
from ..evaluation.comparisons import cnn_vs_forest
from ..evaluation.galaxy_studies import morphology_table, training_size_summary
from ..evaluation.gradients import compare_gradients
from ..evaluation.metrics import scores
from ..io import read_table
from .liew_cain_config import SETS, LiewCain2021Config
from .liew_cain_paper import PAPER
from .liew_cain_stages import _gradient_table, _joined_predictions, _table_of
from .sed_cv import derived_seed, method_inputs
from .stages import StageResult


def _light_weighting(table: Any) -> str | None:
    """Which light the table's luminosity-weighted labels are weighted by (a mock's config), else None."""
    cfg = getattr(table, "config", None)
    if isinstance(cfg, dict):
        return cfg.get("light_weighting")
    return getattr(cfg, "light_weighting", None)

def _gradient_metrics(grads: pd.DataFrame, galaxies: pd.DataFrame | None, targets: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in targets:
        label = _gradient_table(grads, "label", t)
        entry: dict[str, Any] = {"n_galaxies": int(len(label)), "n_selected": int(label["selected"].sum())}
        true = None
        if galaxies is not None and f"grad_{t}" in galaxies.columns:
            true = galaxies.set_index("galaxy_id")[f"grad_{t}"].astype(float)
            entry["label_vs_true"] = compare_gradients(true, label)
        if (grads["source"] == "noisefree").any():
            nf = _gradient_table(grads, "noisefree", t)
            entry["label_vs_noisefree"] = compare_gradients(nf, label)
        for src in sorted(set(grads.loc[grads["target"] == t, "source"]) - {"label", "noisefree"}):
            g = _gradient_table(grads, src, t)
            e = {"vs_label": compare_gradients(label, g)}
            if true is not None:
                e["vs_true"] = compare_gradients(true, g)
            entry[src] = e
        out[t] = entry
    return out

def collect_metrics(cfg: LiewCain2021Config, stages: Mapping[str, StageResult],
                    mismatch_note: str = "") -> dict[str, Any]:
    """metrics.json: per set and target the paper's three figures, the baselines, every study, the paper's values."""
    targets = tuple(cfg.cv.targets)
    table = _table_of(stages["survey"])
    grads = read_table(stages["gradients"].file("gradients.parquet"))
    gm = _gradient_metrics(grads, table.galaxies, targets)
    m: dict[str, Any] = {"preset": cfg.preset, "seed": cfg.seed, "photopop_version": __version__,
                         "config_hash": config_hash(cfg)}
    baselines: dict[str, Any] = {}
    spx = _joined_predictions(table, stages, targets)
    for set_name in SETS:
        cvm = json.loads(stages[f"cv_{set_name[-1]}"].file("metrics.json").read_text())
        pcc = cvm.get("pcc_residuals", {}).get("cnn")
        m[set_name] = {}
        for t in targets:
            cnn = cvm["cnn"][t]
            g = gm[t].get(f"{set_name}_cnn", {})
            m[set_name][t] = {"robust_sigma": cnn["robust_sigma"],
                              "gradient_robust_sigma": g.get("vs_label", {}).get("robust_sigma"),
                              "pcc_residuals": pcc, "bias": cnn["bias"], "rmse": cnn["rmse"], "n": cnn["n"],
                              "gradient_bias": g.get("vs_label", {}).get("bias"),
                              "gradient_n": g.get("vs_label", {}).get("n"),
                              "gradient_vs_true_robust_sigma": g.get("vs_true", {}).get("robust_sigma"),
                              "ratio_to_floor": cvm.get("ratio_to_floor", {}).get("cnn", {}).get(t)}
            if f"{t}_noisefree" in spx.columns:  # mock: against the labels before label noise
                nf = scores(spx[f"{t}_noisefree"], spx[f"{set_name}_{t}_cnn"])
                m[set_name][t]["robust_sigma_vs_noisefree"] = nf["robust_sigma"]
                m[set_name][t]["label_noise_robust_sigma"] = scores(spx[f"{t}_noisefree"], spx[t])["robust_sigma"]
        baselines[set_name] = {meth: {t: v for t, v in vals.items()} for meth, vals in cvm.items()
                               if meth not in ("cnn", "pcc_residuals", "ratio_to_floor")}
        baselines[set_name]["pcc_residuals"] = cvm.get("pcc_residuals", {})
        baselines[set_name]["ratio_to_floor"] = cvm.get("ratio_to_floor", {})
    m["baselines"] = baselines
    # issue 14 §3: is the CNN ahead of the forest? (per set, from the cv metrics and out-of-fold predictions)
    m["inputs"] = method_inputs(cfg.cv)
    m["cnn_vs_forest"] = {}
    for set_name in SETS:
        stage = stages[f"cv_{set_name[-1]}"]
        cvm = json.loads(stage.file("metrics.json").read_text())
        m["cnn_vs_forest"][set_name] = cnn_vs_forest(cvm, read_table(stage.file("predictions.parquet")), targets)
    m["survey"] = {"n_galaxies": int(table.spaxels["galaxy_id"].nunique()), "n_spaxels": int(len(table.spaxels)),
                   "n_early": int((table.galaxies["type"] == "early").sum()) if table.galaxies is not None else None,
                   "n_bands": len(table.bands), "filter_system": table.filter_system,
                   "ssp_grid": table.meta.get("ssp_grid"),
                   "light_weighting": _light_weighting(table)}
    m["gradients"] = {"settings": to_dict(cfg.gradients), **gm}

    pb = read_table(stages["properties"].file("bins.parquet"))
    prop: dict[str, Any] = {"per_bin": cfg.properties.per_bin}
    for (set_name, t, p, stat), b in pb.groupby(["set", "target", "property", "statistic"], sort=False):
        prop.setdefault(set_name, {}).setdefault(t, {}).setdefault(p, {})[stat] = {
            "spearman_r": float(b["spearman_r"].iloc[0]), "spearman_p": float(b["spearman_p"].iloc[0]),
            "bins": b[["n", "x_centre", "y_centre", "y_spread"]].to_dict("records")}
    m["property_dependence"] = prop

    if "morphology" in stages:
        long = read_table(stages["morphology"].file("predictions.parquet"))
        tab = morphology_table(long, targets)
        morph: dict[str, Any] = {"n_folds": cfg.morphology.n_folds, "folds_used": cfg.morphology.folds_used}
        for (t, appl), row in tab.iterrows():
            morph.setdefault(t, {})[appl] = {tr: row[tr] for tr in tab.columns}
        morph["n"] = {f"{t}/{a}": {tr: int(v) for tr, v in row.items()} for (t, a), row in tab.attrs["n"].iterrows()}
        m["morphology"] = morph
    else:
        m["morphology"] = {"skipped": "disabled (morphology.enabled = false)"}

    if "training_size" in stages:
        rec = read_table(stages["training_size"].file("records.parquet"))
        summ = training_size_summary(rec)
        ts: dict[str, Any] = {"repeats": cfg.training_size.repeats,
                              "note": f"{cfg.training_size.repeats} repeats per point (the paper: 100)",
                              "rows": summ.to_dict("records"),
                              "random_line": {t: float(rec.loc[rec["target"] == t, "random_robust_sigma"].mean())
                                              for t in cfg.training_size.targets}}
        fr = summ["fraction"].to_numpy()
        a_small = summ[(summ["scheme"] == "A") & (summ["target"] == "log_age") & (fr == fr.min())]
        b_large = summ[(summ["scheme"] == "B") & (summ["target"] == "log_age") & (fr == fr.max())]
        if len(a_small) and len(b_large):
            ts["set_a_smallest_minus_set_b_largest"] = float(a_small["mean"].iloc[0] - b_large["mean"].iloc[0])
            ts["smallest_fraction"], ts["largest_fraction"] = float(fr.min()), float(fr.max())
        m["training_size"] = ts
    else:
        m["training_size"] = {"skipped": "disabled (training_size.enabled = false)"}

    mp = read_table(stages["mass_gradients"].file("bins.parquet"))
    mass: dict[str, Any] = {"target": cfg.mass_gradients.target,
                            "per_bin": {"early": cfg.mass_gradients.per_bin_early,
                                        "late": cfg.mass_gradients.per_bin_late}}
    for (src, typ), b in mp.groupby(["source", "type"], sort=False):
        mass.setdefault(src, {})[typ] = b[["n", "x_centre", "y_centre", "y_spread"]].to_dict("records")
    m["mass_gradients"] = mass

    if "mismatch" in stages:
        mm = json.loads(stages["mismatch"].file("summary.json").read_text())
        mm["library"] = cfg.mismatch.label or Path(cfg.mismatch.ssp_folder).name
        m["model_mismatch"] = mm
    else:
        m["model_mismatch"] = {"skipped": mismatch_note or "skipped"}
    m["stages"] = {n: r.hash for n, r in stages.items()}
    m["paper"] = PAPER
    return m


def load_report_data(cfg: LiewCain2021Config, stages: Mapping[str, StageResult]) -> dict[str, Any]:
    """The tables the report draws (plain DataFrames keyed by name), read from the stage folders."""
    table = _table_of(stages["survey"])
    targets = tuple(cfg.cv.targets)
    data: dict[str, Any] = {
        "spaxels": _joined_predictions(table, stages, targets),
        "galaxies": table.galaxies,
        "gradients": read_table(stages["gradients"].file("gradients.parquet")),
        "property_points": read_table(stages["properties"].file("points.parquet")),
        "property_bins": read_table(stages["properties"].file("bins.parquet")),
        "mass_points": read_table(stages["mass_gradients"].file("points.parquet")),
        "mass_bins": read_table(stages["mass_gradients"].file("bins.parquet")),
        "gradient_settings": to_dict(cfg.gradients),
        "gradient_seed": derived_seed(cfg.seed, "gradients"),
        "example_galaxy": cfg.example_galaxy,
    }
    if "training_size" in stages:
        data["training_size"] = read_table(stages["training_size"].file("records.parquet"))
    if "morphology" in stages:
        data["morphology"] = read_table(stages["morphology"].file("predictions.parquet"))
    if "mismatch" in stages:
        data["mismatch"] = read_table(stages["mismatch"].file("predictions.parquet"))
    return data


__all__ = ["collect_metrics", "load_report_data"]
