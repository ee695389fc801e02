import json
import os
import time

import pytest

from scalinglab.sweep import status
from scalinglab.sweep.driver import make_plan
from scalinglab.sweep.spec import load_spec
from scalinglab.sweep.status import SweepProgress
from tests.sweep.conftest import write_spec


def test_progress_counts_rows_and_eta(tmp_path, shards, monkeypatch):
    design = 'kind = "grid"\nparams = [2000]\ntokens = [640, 1280]\n'
    _, runs = make_plan(load_spec(write_spec(tmp_path, shards, design)))
    events = []
    clock = [1000.0]  # a clock the test moves: eta and elapsed read it at different calls
    monkeypatch.setattr(status.time, "monotonic", lambda: clock[0])
    prog = SweepProgress(runs, tmp_path, lambda e, p, o: events.append(e))
    clock[0] += 100.0
    a, b = runs
    (tmp_path / b.name).mkdir()
    (tmp_path / b.name / "metrics.jsonl").write_text(
        json.dumps({"tokens": 320, "train_loss": 2.0}) + "\n"
    )
    prog.finished({"name": a.name, "status": "completed"})
    prog.tick()  # b's metrics appeared after the sweep began: it is running
    assert prog.counts() == {"done": 1, "running": 1, "queued": 0}
    rows = {r["name"]: r for r in prog.rows()}
    assert rows[b.name]["done"] == 0.25 and rows[b.name]["train_loss"] == 2.0
    # done: all of a (C_a) and a quarter of b (C_b / 4); the rest of b remains
    frac_left = (0.75 * b.flops) / (a.flops + 0.25 * b.flops)
    assert prog.elapsed == 100.0
    assert prog.eta_seconds() == pytest.approx(100.0 * frac_left, rel=1e-12)
    assert events == ["finished", "tick"]


GRID_ONE = 'kind = "grid"\nparams = [2000]\ntokens = [640]\n'


def _progress(tmp_path, shards, monkeypatch, skipped=()):
    spec = load_spec(write_spec(tmp_path, shards, 'kind = "grid"\nparams = [2000]\n'
                                                  "tokens = [640, 1280]\n"))  # fmt: skip
    _, runs = make_plan(spec)
    clock = [1000.0]
    monkeypatch.setattr(status.time, "monotonic", lambda: clock[0])
    root = tmp_path / "runs"
    prog = SweepProgress(runs, root, skipped=[(runs[0].name, "completed")][: len(skipped)])
    clock[0] += 100.0
    return prog, runs, root


def _metrics(root, name, tokens):
    (root / name).mkdir(parents=True, exist_ok=True)
    row = {"tokens": tokens, "train_loss": 2.0}
    (root / name / "metrics.jsonl").write_text(json.dumps(row) + "\n")


def test_eta_leaves_out_runs_done_before_this_invocation(tmp_path, shards, monkeypatch):
    """run a skipped, run b a
    quarter done in 100 s: 300 s remain, whatever a's compute."""
    prog, (_a, b), root = _progress(tmp_path, shards, monkeypatch, skipped=[0])
    _metrics(root, b.name, b.tokens / 4)
    prog.tick()
    assert prog.eta_seconds() == pytest.approx(300.0, rel=1e-12)


def test_a_run_past_its_plan_is_at_most_all_done(tmp_path, shards, monkeypatch):
    """a trainer that counts tokens past the plan shows 100%, and
    the ETA is not negative."""
    prog, (_a, b), root = _progress(tmp_path, shards, monkeypatch)
    _metrics(root, b.name, 2 * b.tokens)
    prog.tick()
    rows = {r["name"]: r for r in prog.rows()}
    assert rows[b.name]["done"] == 1.0
    assert prog.eta_seconds() >= 0


def test_metrics_written_just_before_the_clock_started_mean_running(tmp_path, shards):
    """a file time up to a second behind the sweep's start
    (coarse file times) still counts as written by this sweep."""
    spec = load_spec(write_spec(tmp_path, shards, GRID_ONE))
    _, runs = make_plan(spec)
    root = tmp_path / "runs"
    prog = SweepProgress(runs, root)
    _metrics(root, runs[0].name, 10)
    t = time.time() - 0.5
    os.utime(root / runs[0].name / "metrics.jsonl", (t, t))
    prog.tick()
    assert prog.state[runs[0].name] == "running"
