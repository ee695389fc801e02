import json

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
