"""Figure, tables and verdict of the diversity study (does Set B reach Set A with more galaxies?).

`plot_diversity` draws, per target, the robust sigma of Set B (unseen galaxies) and Set A (unseen spaxels
of the training galaxies) against the number of training galaxies with the information floor and the
reproduction's own Set A / Set B, the fine-tuning points, and (lower row) Set B's gradient sigma.
`meeting_point` says where Set B meets Set A; `add_diversity_section` puts it all in the reproduce report.
The rows are metrics.json "diversity" (see `experiments.diversity.summarise_points`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .gradient_figures import TARGET_LABELS


def _get(row: Mapping[str, Any], set_name: str, target: str, key: str = "robust_sigma") -> float:
    v = (row.get(set_name) or {}).get(target, {}).get(key)
    return np.nan if v is None else float(v)


def meeting_point(rows: Sequence[Mapping[str, Any]], target: str) -> int | None:
    """Smallest N from which on Set B's mean robust sigma stays within the combined repeat spread
    (sqrt(std_B^2 + std_A^2); 0 for a single repeat) of Set A's at the same N; None if it never does."""
    hit = None
    for r in sorted(rows, key=lambda r: r["n_galaxies"]):
        b, a = _get(r, "set_b", target), _get(r, "set_a", target)
        if not (np.isfinite(a) and np.isfinite(b)):
            continue
        sb = _get(r, "set_b", target, "robust_sigma_std")
        sa = _get(r, "set_a", target, "robust_sigma_std")
        spread = float(np.hypot(np.nan_to_num(sb), np.nan_to_num(sa)))
        if b - a <= spread:
            hit = hit if hit is not None else int(r["n_galaxies"])
        else:
            hit = None
    return hit


def plot_diversity(rows: Sequence[Mapping[str, Any]], targets: Sequence[str],
                   finetune: Sequence[Mapping[str, Any]] = ()) -> Figure:
    """Robust sigma (top) and Set B gradient sigma (bottom) against training galaxies, per target."""
    rows = sorted(rows, key=lambda r: r["n_galaxies"])
    n = np.array([r["n_galaxies"] for r in rows], dtype=float)
    fig = Figure(figsize=(4.6 * len(targets), 7.2))
    axes = fig.subplots(2, len(targets), squeeze=False)
    for j, t in enumerate(targets):
        ax, gax = axes[0, j], axes[1, j]
        for s_name, label, style in (("set_b", "Set B (unseen galaxies)", "o-"),
                                     ("set_a", "Set A (unseen spaxels, same N)", "s--")):
            y = np.array([_get(r, s_name, t) for r in rows])
            if np.isfinite(y).any():
                e = np.nan_to_num(np.array([_get(r, s_name, t, "robust_sigma_std") for r in rows]))
                ax.errorbar(n, y, yerr=e, fmt=style, capsize=3, label=label)
        ref = rows[0] if rows else {}
        fl = (ref.get("floor") or {}).get(t, {})
        if fl.get("robust_sigma") is not None:
            ax.axhline(fl["robust_sigma"], color="k", lw=1, label="information floor")
        for key, label, col in (("set_b_reference", "this run's Set B", "C3"),
                                ("set_a_reference", "this run's Set A", "C2")):
            if (ref.get(key) or {}).get(t) is not None:
                ax.axhline(ref[key][t], color=col, ls=":", lw=1, label=label)
        for k, (meth, mk) in enumerate((("finetuned", "*"), ("scratch", "x"))):
            pts = [(f["finetune_galaxies"], f[meth][t]["robust_sigma"], f[meth][t].get("robust_sigma_std"))
                   for f in finetune if f.get(meth, {}).get(t, {}).get("robust_sigma") is not None]
            if pts:
                x, y, e = zip(*pts)
                lab = (f"pre-trained on {finetune[0]['pretrain_galaxies']} + fine-tuned on m survey galaxies"
                       if meth == "finetuned" else "from scratch on the m survey galaxies")
                ax.errorbar(x, y, yerr=[v or 0.0 for v in e], fmt=mk, ms=9, color=f"C{4 + k}", label=lab)
        ax.set_xscale("log")
        ax.set_ylabel(f"robust σ {TARGET_LABELS.get(t, t)}")
        ax.set_title(TARGET_LABELS.get(t, t))
        g = np.array([_get(r, "set_b", t, "gradient_robust_sigma") for r in rows])
        ge = np.nan_to_num(np.array([_get(r, "set_b", t, "gradient_robust_sigma_std") for r in rows]))
        gax.errorbar(n, g, yerr=ge, fmt="o-", capsize=3, label="Set B gradient σ")
        if fl.get("gradient_robust_sigma") is not None:
            gax.axhline(fl["gradient_robust_sigma"], color="k", lw=1, label="floor gradient σ")
        gax.set_xscale("log")
        gax.set_xlabel("training galaxies N")
        gax.set_ylabel("gradient robust σ (dex / R_e)")
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


def add_diversity_section(rep: Any, metrics: Mapping[str, Any], figdir: Path, targets: Sequence[str],
                          save: Callable[[Figure, Path], Path]) -> None:
    """The report's section: verdict, table of rows, fine-tuning table and the figure."""
    div = metrics.get("diversity")
    if not div:
        return
    ft = metrics.get("diversity_finetune") or []
    rep.heading("Does Set B reach Set A with more galaxies? (Sects. 4.5, 5)")
    verdict = []
    for t in targets:
        m = meeting_point(div, t)
        last = max(div, key=lambda r: r["n_galaxies"])
        rb = (last.get("ratio_to_floor") or {}).get("set_b", {}).get(t)
        ra = (last.get("ratio_to_floor") or {}).get("set_a", {}).get(t)
        text = f"{t}: Set B meets Set A (within the repeats' spread) " + (
            f"from N = {m}" if m is not None else "at no N tried")
        if rb is not None and ra is not None:
            text += f"; at N = {last['n_galaxies']} Set B is {rb:.2f}× and Set A {ra:.2f}× the floor"
        verdict.append(text)
    cap = metrics.get("diversity_settings", {})
    rep.paragraph("; ".join(verdict) + ". Each network is trained on the capped spaxels of N simulated galaxies "
                  "(same priors, unseen by the test); Set B: it predicts every spaxel of this survey; Set A: it "
                  "predicts held-out spaxels of its own N training galaxies (the same network, so only the test "
                  "changes). Spaxels per training galaxy are capped (the variable is galaxy diversity, and the cap "
                  "makes 10^4 galaxies affordable)" + (f": {cap.get('max_spaxels_per_galaxy')} per galaxy" if cap else "")
                  + ", so small-N Set B rows train on fewer spaxels than this run's own Set B.")
    rows = []
    for r in sorted(div, key=lambda r: r["n_galaxies"]):
        row: dict[str, Any] = {"N": r["n_galaxies"], "repeats": r["seeds"]}
        for t in targets:
            b = r["set_b"][t]
            row[f"B σ {t}"] = _num(b["robust_sigma"])
            row[f"± {t}"] = _num(b.get("robust_sigma_std"))
            row[f"A σ {t}"] = _num((r.get("set_a") or {}).get(t, {}).get("robust_sigma"))
            row[f"B/floor {t}"] = _num((r.get("ratio_to_floor") or {}).get("set_b", {}).get(t))
            row[f"A/floor {t}"] = _num((r.get("ratio_to_floor") or {}).get("set_a", {}).get(t))
            row[f"B grad σ {t}"] = _num(b.get("gradient_robust_sigma"))
        rows.append(row)
    ref = div[0]
    fl = ref.get("floor") or {}
    rep.table(rows, caption="Robust σ (dex) against training galaxies N: mean and ± standard deviation over repeats; "
                            "grad σ in dex / R_e. Floor " + (", ".join(
                                f"{t} {_num(fl[t]['robust_sigma']):.3f} (gradients "
                                f"{_num(fl[t].get('gradient_robust_sigma')) or float('nan'):.3f})" for t in targets)
                                if fl else "n/a") + "; this run's Set A "
                            + ", ".join(f"{t} {ref['set_a_reference'][t]:.3f}" for t in targets if
                                        ref.get("set_a_reference")) + ", Set B "
                            + ", ".join(f"{t} {ref['set_b_reference'][t]:.3f}" for t in targets if
                                        ref.get("set_b_reference")) + ".")
    if ft:
        frows = [{"labelled galaxies m": f["finetune_galaxies"], "repeats": f["seeds"],
                  **{f"{meth} {t}": _num(f[meth][t]["robust_sigma"]) for meth in ("pretrained", "finetuned", "scratch")
                     for t in targets}} for f in ft]
        rep.table(frows, caption=f"Pre-training on {ft[0]['pretrain_galaxies']} simulated galaxies, then fine-tuning on "
                                 "m labelled galaxies of this survey (the paper's suggested transfer learning), tested "
                                 "on the survey's other galaxies; 'pretrained' is the network as is, 'scratch' one "
                                 "trained on the m galaxies only. Robust σ (dex), mean over repeats.")
    fig = plot_diversity(div, targets, ft)
    rep.figure(save(fig, figdir / "diversity.png"),
               "Set B and Set A robust σ against training galaxies (error bars: spread over repeats), the information "
               "floor (black), this run's Set A / Set B (dotted) and fine-tuning (stars); lower row: Set B gradient σ.")
