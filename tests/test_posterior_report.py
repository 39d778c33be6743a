"""The posterior section of the demo report shows the OOD flag rates per input and the one-per-galaxy SBC."""

from photopop.report.html import HTMLReport
from photopop.report.posterior_report import add_posterior_section


def test_flag_rates_and_grouped_sbc_are_in_the_report():
    m = {"posterior": {"per_target": {"log_age": {"coverage_68": 0.70, "coverage_95": 0.95}},
                       "sbc": {"ks_pvalue": [1e-9], "one_per_group": {"ks_pvalue": [0.432]}},
                       "tarp": {"atc": 0.01, "ks_pvalue": 0.9}, "n": 100},
         "ood": {"threshold": 1.05, "quantile": 0.99, "test": {"flag_rate": 0.013, "median_score": 0.3, "n": 100},
                 "shift_+5mag": {"flag_rate": 0.987, "median_score": 3.1, "n": 100},
                 "other_library": {"skipped": "no SSP folder at ''"}}}
    rep = HTMLReport("t")
    add_posterior_section(rep, m, lambda v: v if v is None else round(float(v), 4))
    html = rep.render()
    for text in ("shift_+5mag", "0.987", "0.013", "0.432", "ood_flag = 1", "skipped (no SSP folder"):
        assert text in html, text
