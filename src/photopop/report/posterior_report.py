"""The posterior section of the demo report: coverage, widths at equal coverage, degeneracy, OOD rates.

Reads the metrics of `photopop.experiments.posterior.run_posterior_study` and adds tables beside the
deep ensemble's numbers; rows with a raised OOD flag are counted in their own table so a reader sees
how often a number should not be trusted.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .html import HTMLReport


def add_posterior_section(rep: HTMLReport, m: Mapping[str, Any], num: Callable[[Any], Any]) -> None:
    """Append the posterior tables to `rep`."""
    post = m.get("posterior", {})
    ens = m.get("ensemble", {}).get("calibration", {})
    widths = m.get("width_68_at_nominal", {})
    rep.heading("Posteriors: a conditional normalising flow beside the deep ensemble (unseen galaxies)")
    rows = []
    for j, (t, c) in enumerate(post.get("per_target", {}).items()):
        e = ens.get(t, {})
        rows.append({"target": t, "68% flow": num(c.get("coverage_68")), "95% flow": num(c.get("coverage_95")),
                     "68% ensemble": num(e.get("coverage_68")), "95% ensemble": num(e.get("coverage_95")),
                     "68% width flow": num(widths.get("posterior", {}).get(t)),
                     "68% width ensemble": num(widths.get("ensemble", {}).get(t)),
                     "SBC KS p": num(post.get("sbc", {}).get("ks_pvalue", [None] * (j + 1))[j]),
                     "SBC KS p, 1 spaxel/galaxy": num(post.get("sbc", {}).get("one_per_group", {})
                                                      .get("ks_pvalue", [None] * (j + 1))[j]),
                     "n": post.get("n")})
    rep.table(rows, caption="Coverage of the central 68% / 95% intervals (nominal 0.683 / 0.954) and the median "
                            "68% interval width (dex) after scaling each method's intervals to cover exactly 68.3% "
                            "of the test spaxels (width at equal coverage); SBC uniformity p-values over all "
                            "spaxels (correlated within a galaxy) and with one random spaxel per galaxy")
    tarp = post.get("tarp", {})
    if tarp:
        rep.paragraph(f"TARP (joint coverage test): ATC {num(tarp.get('atc'))} (0 = calibrated, < 0 too narrow, "
                      f"> 0 too wide), KS p = {num(tarp.get('ks_pvalue'))}.")
    deg = m.get("degeneracy", {})
    if deg:
        rep.table([{"method": k, "mean per-object age-[Z/H] correlation": num(v.get("mean_object_corr")),
                    "residual correlation over spaxels": num(v.get("residual_corr"))} for k, v in deg.items()],
                  caption="The age-metallicity degeneracy: what each method assigns every spaxel (the flow: the "
                          "correlation of its draws; the ensemble: of its members' spread) against the "
                          "correlation of the point-estimate residuals (Liew-Cain et al.: -0.24)")
    ood = m.get("ood", {})
    if ood:
        rows = [{"input": k, "flagged fraction": num(v.get("flag_rate")), "median score": num(v.get("median_score")),
                 "n": v.get("n")} for k, v in ood.items() if isinstance(v, Mapping) and "flag_rate" in v]
        other = ood.get("other_library", {})
        if "other_library" in other:
            o = other["other_library"]
            rows.append({"input": "another SSP library (MIUSCAT)", "flagged fraction": num(o.get("flag_rate")),
                         "median score": num(o.get("median_score")), "n": o.get("n")})
        rep.table(rows, caption=f"Out-of-domain flag (score above {num(ood.get('threshold'))}, the "
                                f"{ood.get('quantile')} quantile of held-out training galaxies): flagged rows carry "
                                "ood_flag = 1 in every prediction table and an OOD_FLAG plane in maps")
        if "skipped" in other:
            rep.paragraph(f"Other SSP library: skipped ({other['skipped']}).", note=True)
        elif other.get("bands"):
            rep.paragraph(f"Other SSP library: {other['bands']}.", note=True)
