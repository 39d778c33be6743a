"""The output-folder contract (photopop.outputs): markers, --overwrite, inputs, leftovers, locking."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from photopop.datasets.sed_table import SEDTable, read_sed_table, write_sed_table
from photopop.errors import InputError, MismatchError, OutputError
from photopop.outputs import MARKER, check_output, claim_output, lock_path_for, read_marker, replace_output

SRC = Path(__file__).resolve().parents[1] / "src"


def _table(seed: int = 0, n: int = 30) -> SEDTable:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"galaxy_id": np.repeat([1, 2, 3], n // 3), "spaxel_id": np.tile(np.arange(n // 3), 3)})
    for b in ("b0", "b1", "b2"):
        df[f"mag_{b}"] = 20 + rng.normal(0, 0.1, n)
        df[f"magerr_{b}"] = 0.01
    df["log_age"], df["zh"] = rng.uniform(8.5, 10, n), rng.uniform(-1, 0.2, n)
    return SEDTable(df, meta={"bands": ["b0", "b1", "b2"], "filter_system": "toy", "kind": "user", "seed": seed})


def test_states_new_same_replace_and_refusals(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert check_output(out, "k", {"a": 1}).state == "new"
    out.mkdir()
    assert check_output(out, "k", {"a": 1}).state == "new"  # an empty folder is claimed
    with replace_output(out, "k", {"a": 1}) as tmp:
        (tmp / "f.txt").write_text("1")
    marker = read_marker(out)
    assert marker is not None and marker["kind"] == "k" and marker["files"] == ["f.txt"]
    assert check_output(out, "k", {"a": 1}).state == "same"
    with pytest.raises(OutputError, match="other settings; pass --overwrite"):
        check_output(out, "k", {"a": 2})
    assert check_output(out, "k", {"a": 2}, overwrite=True).state == "replace"
    with pytest.raises(OutputError, match="another kind"):
        check_output(out, "other", {"a": 1}, overwrite=True)  # --overwrite never crosses kinds
    (out / "mine.txt").write_text("user")
    with pytest.raises(OutputError, match=r"did not write \(mine\.txt\)"):
        check_output(out, "k", {"a": 2}, overwrite=True)  # nor deletes a user's file
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "x").write_text("")
    with pytest.raises(OutputError, match="did not write"):
        check_output(tmp_path / "u", "k", overwrite=True)
    with pytest.raises(OutputError, match="empty"):
        check_output("", "k")
    with pytest.raises(OutputError, match="is a file"):
        check_output(tmp_path / "u" / "x", "k")


def test_inputs_may_not_overlap_the_output(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    for out, msg in ((inp, "own input"), (tmp_path, "contains the input"), (inp / "sub", "inside the input")):
        with pytest.raises(OutputError, match=msg):
            check_output(out, "k", inputs=[inp])
    assert check_output(tmp_path / "elsewhere", "k", inputs=[inp]).state == "new"


def test_replacing_keeps_the_old_folder_until_the_new_one_is_complete(tmp_path: Path) -> None:
    out = tmp_path / "t"
    write_sed_table(_table(0), out)
    with pytest.raises(OutputError, match="other settings"):
        write_sed_table(_table(1), out)
    assert read_sed_table(out).meta["seed"] == 0
    with pytest.raises(RuntimeError):
        with replace_output(out, "sed-table", {"x": 1}, overwrite=True):
            raise RuntimeError("killed half-way")
    assert read_sed_table(out).meta["seed"] == 0  # nothing touched
    write_sed_table(_table(1), out, overwrite=True)
    assert read_sed_table(out).meta["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]  # no temporary or lock files left


def test_leftovers_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "t"
    write_sed_table(_table(0), out)
    (tmp_path / ".t.ab12cd34.tmp").mkdir()  # atomic_dir's build folder of a killed run
    (tmp_path / ".t.ab12cd34.tmp" / "spaxels.parquet").write_text("half")
    (tmp_path / ".t.old").mkdir()  # the previous folder, moved aside just before the kill
    (tmp_path / ".t.lock").write_text('{"pid": 1}')  # a lock file of a killed run (no longer locked)
    (tmp_path / ".tt.ab12cd34.tmp").mkdir()  # another output's: not ours to remove
    (tmp_path / ".t.notes.tmp").write_text("user")  # not the atomic writers' pattern
    write_sed_table(_table(0), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".t.notes.tmp", ".tt.ab12cd34.tmp", "t"]


def test_in_place_replace_removes_only_what_the_kind_writes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with claim_output(out, "k", {"a": 1}, in_place=True, clear=("*.db",)):
        (out / "study.db").write_text("old trials")
    (out / "notes.txt").write_text("user")
    with claim_output(out, "k", {"a": 1}, in_place=True, clear=("*.db",)) as claim:  # resume
        assert claim.state == "same" and (out / "study.db").exists()
    with claim_output(out, "k", {"a": 2}, overwrite=True, in_place=True, clear=("*.db",)) as claim:
        assert claim.state == "replace"
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "notes.txt"]
    assert check_output(out, "k", {"a": 2}).state == "same"


def test_lock_refuses_a_second_process_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "o"
    holder = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(SRC)!r})
        from photopop.outputs import claim_output
        with claim_output({str(out)!r}, "k", in_place=True):
            print("held", flush=True)
            sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(OutputError, match=rf"in use by process {proc.pid} on "):
            with claim_output(out, "k", in_place=True):
                pass
    finally:
        proc.communicate("\n", timeout=60)
    assert proc.returncode == 0
    with claim_output(out, "k", in_place=True) as claim:  # free again once the holder is gone
        assert claim.state == "same"
    assert not lock_path_for(out).exists()


def test_two_predict_runs_on_one_folder_never_both_succeed(tmp_path: Path) -> None:
    """Different chunk sizes at the same time: the lock refuses one (or, if they do not overlap in
    time, the manifest refuses the second); never two 'successful' runs over mixed rows."""
    from photopop.inference.catalog import predict_catalog
    from photopop.models.saved import SavedSEDModel
    from photopop.models.normalise import Standardiser
    from photopop.models.sed_cnn import SEDCNN, SEDCNNConfig

    net = SEDCNN(3, 1, SEDCNNConfig(conv_filters=(2,), kernel_sizes=(3,), pool_size=1, dense_units=(4,)))
    model = SavedSEDModel(net, Standardiser(["b0", "b1", "b2"], np.zeros(3), np.ones(3)),
                          Standardiser(["log_age"], np.zeros(1), np.ones(1)),
                          {"bands": ["b0", "b1", "b2"], "targets": ["log_age"], "input_kind": "mag",
                           "filter_system": "toy"})
    rng = np.random.default_rng(1)
    cat = pd.DataFrame({f"mag_{b}": 20 + rng.normal(0, 1, 30_000) for b in ("b0", "b1", "b2")})
    cat.to_parquet(tmp_path / "cat.parquet")
    out = tmp_path / "pred"
    start = threading.Barrier(2)
    results: dict[int, object] = {}

    def run(chunk: int) -> None:
        start.wait()
        try:
            results[chunk] = predict_catalog(model, tmp_path / "cat.parquet", out, chunk_rows=chunk, device="cpu")
        except (OutputError, MismatchError, InputError) as exc:
            results[chunk] = exc

    threads = [threading.Thread(target=run, args=(c,)) for c in (1000, 1500)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = [c for c, r in results.items() if isinstance(r, Exception)]
    assert len(failed) == 1, results
    ok = next(c for c in results if c not in failed)
    parts = pd.read_parquet(out)
    assert len(parts) == 30_000 and parts["row_index"].is_unique  # one run's rows, once each
    assert len(list(out.glob("part-*.parquet"))) == -(-30_000 // ok)
