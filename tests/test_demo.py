"""The main job: `photopop demo` end to end (test-sized), its metrics contract, and its report in a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from photopop.cli.main import main

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["demo", "--tiny", "--out", str(out), "--quiet"]) == 0
    return out


def test_demo_metrics_contract(demo_dir):
    m = json.loads((demo_dir / "metrics.json").read_text())
    for s in ("set_a", "set_b"):
        for t in ("log_age", "zh"):
            v = m["sed"][s][t]
            assert {"robust_sigma", "gradient_robust_sigma", "pcc_residuals"} <= set(v)
            assert v["robust_sigma"] > 0
    assert m["sed"]["paper"]["set_a"]["log_age"]["robust_sigma"] == 0.03
    for k in ("cnn", "rf_gri", "rf_ugriz", "constant", "mass_route"):
        assert {"rmse", "nmad", "n"} <= set(m["images"][k])
    assert isinstance(m["images"]["resolution"], list) and m["images"]["resolution"]
    for t, v in m["calibration"].items():
        assert 0.0 <= v["coverage_68"] <= 1.0 and 0.0 <= v["coverage_95"] <= 1.0
        assert v["coverage_95"] >= v["coverage_68"]
    assert (demo_dir / "config.toml").exists()


def test_demo_rerun_reuses_stages(demo_dir, capsys):
    before = (demo_dir / "metrics.json").read_text()
    assert main(["demo", "--tiny", "--out", str(demo_dir)]) == 0
    err = capsys.readouterr().err
    assert "running" not in err  # every stage came from the cache
    after = json.loads((demo_dir / "metrics.json").read_text())
    old = json.loads(before)
    assert after["sed"]["set_a"] == old["sed"]["set_a"]
    assert after["images"]["cnn"] == old["images"]["cnn"]


def test_report_is_self_contained(demo_dir):
    html = (demo_dir / "report.html").read_text()
    assert "<table" in html
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) >= 6
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    # the SED part says whether the CNN is ahead of the random forest, from the metrics
    m = json.loads((demo_dir / "metrics.json").read_text())["sed"]
    c = m["cnn_vs_forest"]["set_b"]["log_age"]
    assert m["inputs"] == {"cnn": "colour", "random_forest": "colour"}
    assert "CNN against random forest on Set B (CNN on colour, forest on colour)" in html
    assert f"{c['cnn']:.3f} vs {c['random_forest']:.3f}" in html
    assert not re.search(r'(src|href)="(?!data:)[^"#]+"', html)  # nothing loaded from elsewhere


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (.ci/run installs Debian's chromium)")
def test_report_renders_in_headless_chromium(demo_dir, tmp_path):
    """Load the page in a real browser; a script counts the tables and the images that decoded."""
    page = tmp_path / "page.html"
    probe = ("<script>window.addEventListener('load',()=>{const imgs=[...document.images];"
             "document.body.setAttribute('data-images',imgs.length);"
             "document.body.setAttribute('data-decoded',imgs.filter(i=>i.complete&&i.naturalWidth>0).length);"
             "document.body.setAttribute('data-tables',document.querySelectorAll('table').length);});</script>")
    page.write_text((demo_dir / "report.html").read_text().replace("</body>", probe + "</body>"))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body, "Chromium returned no DOM"
    attrs = dict(re.findall(r'data-(\w+)="(\d+)"', body.group(0)))
    assert int(attrs["images"]) >= 6
    assert int(attrs["decoded"]) == int(attrs["images"])  # every embedded figure decoded
    assert int(attrs["tables"]) >= 3
