"""Is the CNN ahead of the random forest? A verdict drawn from `photopop sed cv` metrics, never typed in.

`cnn_vs_forest` compares the two methods' robust sigma per target from a sed cv metrics dict
({method: {target: {"robust_sigma": ...}}}); given the out-of-fold predictions (with their ``fold``
column) it also counts the folds in which the CNN has the lower robust sigma, so a reader sees whether
the lead holds fold by fold or rests on one, and (with ``galaxy_id``) gives a 95 % interval of the
difference from a bootstrap over galaxies (the unit that Set B holds out; seeded), so a lead smaller
than the galaxy-to-galaxy noise reads as "level", not as a win. `describe_cnn_vs_forest` turns that into the sentence the
reports print (`photopop sed cv`, the Liew-Cain and demo reports), naming the inputs each method saw.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from .metrics import robust_sigma

CNN, FOREST = "cnn", "random_forest"


def cnn_vs_forest(metrics: Mapping[str, Any], predictions: pd.DataFrame | None = None,
                  targets: Any = None, n_boot: int = 200, seed: int = 0) -> dict[str, dict[str, Any]]:
    """{target: {cnn, random_forest, difference (cnn - forest), ratio (cnn / forest), cnn_ahead,
    [folds, folds_cnn_ahead], [difference_ci95]}} of robust sigma; {} when either method is missing.

    `predictions`: the cv's predictions (columns fold, <target>_true, <target>_cnn,
    <target>_random_forest); with it, ``folds_cnn_ahead`` counts the folds where the CNN's robust
    sigma is lower than the forest's, out of ``folds``; with a ``galaxy_id`` column and `n_boot` > 0,
    ``difference_ci95`` is the 2.5-97.5 % range of the difference over `n_boot` resamplings of whole
    galaxies (seeded by `seed`).
    """
    cnn, rf = metrics.get(CNN), metrics.get(FOREST)
    if not isinstance(cnn, Mapping) or not isinstance(rf, Mapping):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for t in targets if targets is not None else [t for t in cnn if t in rf]:
        if t not in cnn or t not in rf:
            continue
        a, b = float(cnn[t]["robust_sigma"]), float(rf[t]["robust_sigma"])
        row: dict[str, Any] = {CNN: a, FOREST: b, "difference": a - b, "ratio": a / b if b else None,
                               "cnn_ahead": bool(a < b)}
        cols = ["fold", f"{t}_true", f"{t}_{CNN}", f"{t}_{FOREST}"]
        if predictions is not None and all(c in predictions.columns for c in cols):
            wins = []
            for _, g in predictions.groupby("fold", sort=True):
                truth = g[f"{t}_true"].to_numpy()
                wins.append(robust_sigma(g[f"{t}_{CNN}"].to_numpy() - truth)
                            < robust_sigma(g[f"{t}_{FOREST}"].to_numpy() - truth))
            row["folds"] = len(wins)
            row["folds_cnn_ahead"] = int(np.sum(wins))
        if predictions is not None and n_boot > 0 and all(c in predictions.columns for c in cols[1:] + ["galaxy_id"]):
            row["difference_ci95"] = _galaxy_bootstrap(predictions, t, n_boot, seed)
        out[t] = row
    return out


def _galaxy_bootstrap(predictions: pd.DataFrame, target: str, n_boot: int, seed: int) -> list[float]:
    """2.5 and 97.5 percentiles of robust_sigma(cnn) - robust_sigma(forest) over galaxy resamplings."""
    truth = predictions[f"{target}_true"].to_numpy(dtype=np.float64)
    r_cnn = predictions[f"{target}_{CNN}"].to_numpy(dtype=np.float64) - truth
    r_rf = predictions[f"{target}_{FOREST}"].to_numpy(dtype=np.float64) - truth
    codes, _ = pd.factorize(predictions["galaxy_id"])
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(codes.max() + 1))
    rows = np.split(order, starts[1:])
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        pick = np.concatenate([rows[g] for g in rng.integers(0, len(rows), size=len(rows))])
        diffs[i] = robust_sigma(r_cnn[pick]) - robust_sigma(r_rf[pick])
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return [float(lo), float(hi)]


def describe_cnn_vs_forest(comparison: Mapping[str, Mapping[str, Any]], where: str = "",
                           inputs: Mapping[str, str] | None = None) -> str:
    """One sentence: per target, which of the two has the lower robust sigma, both values, the folds won.

    With a galaxy-bootstrap interval of the difference, "CNN ahead" / "forest ahead" need the interval to
    exclude 0; otherwise the two are called level within the galaxy-to-galaxy noise.

    `where`: e.g. 'Set B'; `inputs`: {'cnn': kind, 'random_forest': kind} as sed cv's meta.json records.
    """
    if not comparison:
        return ""
    parts = []
    for t, c in comparison.items():
        ci = c.get("difference_ci95")
        if ci is None:
            verdict = "CNN ahead" if c["cnn_ahead"] else "forest ahead or level"
        else:
            verdict = ("CNN ahead" if ci[1] < 0 else "forest ahead" if ci[0] > 0
                       else "level within the galaxy-bootstrap interval")
        text = f"{t}: {verdict} ({c[CNN]:.3f} vs {c[FOREST]:.3f} dex"
        if ci is not None:
            text += f", difference {c['difference']:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}] (95 %, galaxies resampled)"
        if c.get("folds"):
            text += f"; CNN lower in {c['folds_cnn_ahead']} of {c['folds']} folds"
        parts.append(text + ")")
    feats = ""
    if inputs:
        feats = (f" (CNN on {inputs.get(CNN, '?')}, forest on {inputs.get(FOREST, '?')})")
    head = f"CNN against random forest{' on ' + where if where else ''}{feats}, robust σ: "
    return head + "; ".join(parts) + "."
