"""The `--quick` preset of `photopop reproduce liew-cain-2021`, end to end, as CI runs it (a few minutes).

Beyond the pipeline running, it checks the paper's central findings hold on the mock: the CNN beats the
constant and random baselines by a wide margin, and Set B (unseen galaxies) is worse than Set A.
"""

from __future__ import annotations

import json

import pytest

from photopop.cli.main import main


@pytest.mark.slow
def test_quick_preset_reproduces_the_central_findings(tmp_path):
    out = tmp_path / "lc21"
    assert main(["reproduce", "liew-cain-2021", "--quick", "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (out / "report.html").stat().st_size > 10_000
    # Measured (robust sigma ratios), seed 0 (docs/reproduce-liew-cain-2021.md) and seed 1 (--seed 1):
    # Set B / Set A 1.52 / 1.87 (log_age), 1.40 / 1.87 (zh); CNN / constant <= 0.27 (log_age), Set A zh
    # 0.45 / 0.33, Set B zh 0.63 / 0.62; CNN / random <= 0.24 (log_age), zh 0.44 / 0.44 (Set B). The zh Set B
    # margins (~10%) are the tightest, but the two seeds agree to 0.01. A CNN no better than the constant
    # baseline gives 1 (random draws: 1.2-1.5 x constant). A full run takes ~4 min on 2 cores: only 2 seeds.
    for t in ("log_age", "zh"):
        a, b = m["set_a"][t]["robust_sigma"], m["set_b"][t]["robust_sigma"]
        assert b > 1.2 * a, f"{t}: Set B {b:.3f} should be clearly worse than Set A {a:.3f}"
        for s in ("set_a", "set_b"):
            cnn = m[s][t]["robust_sigma"]
            assert cnn < 0.7 * m["baselines"][s]["constant"][t]["robust_sigma"]
            assert cnn < 0.5 * m["baselines"][s]["random"][t]["robust_sigma"]
            assert m[s][t]["gradient_robust_sigma"] > 0
    assert m["paper"]["set_b"]["zh"]["robust_sigma"] == 0.16
    assert m["training_size"]["rows"]
