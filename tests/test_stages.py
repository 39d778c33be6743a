"""The stage runner: outputs cached by settings hash, reruns only what a changed setting touches."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

import pytest

from photopop.errors import InputError
from photopop.experiments.stages import DONE_FILE, StageRunner, stage_hash


@dataclass
class Sim:
    n: int = 3
    seed: int = 0


def _pipeline(root, calls: Counter, sim: Sim, fit: dict, plot: dict):
    """survey -> fit -> plot, and survey -> stats (stats has no settings of its own)."""
    r = StageRunner(root)

    def survey(out, ups):
        calls["survey"] += 1
        (out / "data.json").write_text(json.dumps(list(range(sim.n))))

    def do_fit(out, ups):
        calls["fit"] += 1
        data = json.loads(ups["survey"].file("data.json").read_text())
        (out / "fit.json").write_text(json.dumps(sum(data) * fit["scale"]))

    def do_plot(out, ups):
        calls["plot"] += 1
        (out / "plot.txt").write_text(f"{plot['title']}: {ups['fit'].file('fit.json').read_text()}")

    def stats(out, ups):
        calls["stats"] += 1
        (out / "n.txt").write_text(str(len(json.loads(ups["survey"].file("data.json").read_text()))))

    s = r.run("survey", sim, survey)
    f = r.run("fit", fit, do_fit, [s])
    p = r.run("plot", plot, do_plot, [f])
    st = r.run("stats", {}, stats, [s])
    return r, {"survey": s, "fit": f, "plot": p, "stats": st}


def test_cached_rerun_and_selective_invalidation(tmp_path):
    calls: Counter = Counter()
    sim, fit, plot = Sim(), {"scale": 2}, {"title": "a"}
    _, res = _pipeline(tmp_path, calls, sim, fit, plot)
    assert calls == Counter(survey=1, fit=1, plot=1, stats=1)
    assert (res["plot"].path / "plot.txt").read_text() == "a: 6"
    assert all((r.path / DONE_FILE).exists() for r in res.values())
    assert res["fit"].path.name == f"fit-{res['fit'].hash}"

    # same settings: nothing runs, every result says cached
    _, res2 = _pipeline(tmp_path, calls, sim, fit, plot)
    assert calls == Counter(survey=1, fit=1, plot=1, stats=1)
    assert all(r.cached for r in res2.values())
    assert {k: r.hash for k, r in res2.items()} == {k: r.hash for k, r in res.items()}

    # a downstream setting: only that stage reruns
    _pipeline(tmp_path, calls, sim, fit, {"title": "b"})
    assert calls == Counter(survey=1, fit=1, plot=2, stats=1)

    # a middle setting: fit and plot rerun, survey and stats (not downstream of fit) do not
    _, res3 = _pipeline(tmp_path, calls, sim, {"scale": 3}, {"title": "b"})
    assert calls == Counter(survey=1, fit=2, plot=3, stats=1)
    assert (res3["plot"].path / "plot.txt").read_text() == "b: 9"

    # an upstream setting: everything downstream reruns
    _pipeline(tmp_path, calls, Sim(n=4), {"scale": 3}, {"title": "b"})
    assert calls == Counter(survey=2, fit=3, plot=4, stats=2)

    # switching back to an earlier setting reuses its folders
    _pipeline(tmp_path, calls, sim, fit, plot)
    assert calls == Counter(survey=2, fit=3, plot=4, stats=2)


def test_hash_depends_on_settings_version_and_upstream(tmp_path):
    h = stage_hash("fit", {"a": 1})
    assert h == stage_hash("fit", {"a": 1}) and len(h) == 12
    assert h != stage_hash("fit", {"a": 2})
    assert h != stage_hash("fit", {"a": 1}, version="2")
    assert h != stage_hash("other", {"a": 1})
    assert stage_hash("fit", Sim()) == stage_hash("fit", {"n": 3, "seed": 0})  # dataclasses hash by content


def test_failed_stage_leaves_nothing_and_reruns(tmp_path):
    r = StageRunner(tmp_path)
    calls = Counter()

    def bad(out, ups):
        calls["bad"] += 1
        (out / "half.txt").write_text("partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        r.run("step", {"x": 1}, bad)
    assert list(tmp_path.iterdir()) == []  # no folder, no marker, no temporary left

    def good(out, ups):
        calls["good"] += 1
        (out / "ok.txt").write_text("ok")

    res = r.run("step", {"x": 1}, good)
    assert not res.cached and (res.path / "ok.txt").read_text() == "ok" and not (res.path / "half.txt").exists()
    assert calls == Counter(bad=1, good=1)


def test_resumable_stage_keeps_partial_work(tmp_path):
    r = StageRunner(tmp_path)
    calls = Counter()

    def work(out, ups, fail_after=None):
        for i in range(4):
            piece = out / f"piece{i}.txt"
            if piece.exists():
                continue
            if fail_after is not None and i == fail_after:
                raise RuntimeError("interrupted")
            calls["piece"] += 1
            piece.write_text(str(i))

    with pytest.raises(RuntimeError):
        r.run("long", {"k": 1}, lambda o, u: work(o, u, fail_after=2), resumable=True)
    assert calls["piece"] == 2
    partial = r.partial_path_for("long", stage_hash("long", {"k": 1}))
    assert partial.is_dir() and not (partial / DONE_FILE).exists()
    res = r.run("long", {"k": 1}, work, resumable=True)
    assert calls["piece"] == 4  # pieces 0 and 1 were reused
    assert not partial.exists() and (res.path / DONE_FILE).exists()
    assert sorted(p.name for p in res.path.glob("piece*")) == [f"piece{i}.txt" for i in range(4)]
    # force redoes a finished stage from scratch
    r2 = StageRunner(tmp_path, force=["long"])
    r2.run("long", {"k": 1}, work, resumable=True)
    assert calls["piece"] == 8  # built again in a fresh partial folder


def test_force_and_bad_names(tmp_path):
    calls = Counter()

    def f(out, ups):
        calls["f"] += 1

    StageRunner(tmp_path).run("s", {}, f)
    StageRunner(tmp_path).run("s", {}, f)
    assert calls["f"] == 1
    StageRunner(tmp_path, force=["s"]).run("s", {}, f)
    assert calls["f"] == 2
    with pytest.raises(InputError):
        StageRunner(tmp_path).run("../x", {}, f)
    res = StageRunner(tmp_path).run("s", {}, f)
    with pytest.raises(InputError, match="no output"):
        res.file("missing.txt")
