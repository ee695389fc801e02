"""Executors against a stand-in trainer (tests/sweep/fake_trainer.py) whose loss is
a known function of the run: loss = 1 + 1000/params + 1e4/tokens."""

import json
import tomllib

import pytest
import torch

from scalinglab.cli import main
from scalinglab.sweep import design as design_mod
from scalinglab.sweep import driver, estimate
from scalinglab.sweep.local import LocalExecutor
from scalinglab.sweep.spec import load_spec
from scalinglab.sweep.table import runs_table
from scalinglab.train import checkpoint
from tests.sweep.conftest import FAKE_TRAINER, write_spec

GRID = """kind = "grid"
shapes = [{n_layer = 1, n_embd = 8, n_head = 2}, {n_layer = 1, n_embd = 16, n_head = 4}]
tokens = [640, 1280]
"""


def _sweep(tmp_path, shards, executor, design=GRID, retries=0, **kw):
    spec = load_spec(write_spec(tmp_path, shards, design, **kw))
    events = []
    out = driver.run_sweep(
        spec, tmp_path / "out", executor, threads=1, retries=retries,
        listener=lambda e, p, o: events.append((e, o and o["name"])), command=FAKE_TRAINER,
    )  # fmt: skip
    return out, events


def _attempts(run_dir) -> int:
    return len((run_dir / "attempts.txt").read_text().split())


def test_local_sweep_table_and_idempotent_rerun(tmp_path, shards):
    outcomes, events = _sweep(tmp_path, shards, LocalExecutor(2))
    assert sorted(o["status"] for o in outcomes) == ["completed"] * 4
    assert sum(e == "finished" for e, _ in events) == 4
    rows = runs_table(tmp_path / "out")
    assert [(r["n_embd"], r["tokens"]) for r in rows] == [
        (8, 640),
        (16, 640),
        (8, 1280),
        (16, 1280),
    ]
    for r in rows:
        assert r["status"] == "completed" and r["budget"] == r["tokens"]
        assert r["loss"] == pytest.approx(1 + 1000 / r["params"] + 1e4 / r["tokens"])
        assert r["flops_6nd"] == 6 * r["params"] * r["tokens"]
    # rerun: every run is skipped, no trainer starts again
    outcomes, events = _sweep(tmp_path, shards, LocalExecutor(2))
    assert all(o.get("skipped") for o in outcomes) and len(outcomes) == 4
    assert all(_attempts(tmp_path / "out" / "runs" / r["run_id"]) == 1 for r in rows)
    assert runs_table(tmp_path / "out") == rows


def test_diverged_run_does_not_stop_the_sweep(tmp_path, shards):
    # lr = 1e-2 · (16 / width) ** 20: 1e4 at width 8 (the fake trainer diverges above 1)
    p = write_spec(tmp_path, shards, GRID)
    p.write_text(p.read_text().replace("warmup_frac", "lr_power = 20\nwarmup_frac"))
    spec = load_spec(p)
    outcomes = driver.run_sweep(spec, tmp_path / "out", LocalExecutor(1), 1, command=FAKE_TRAINER)
    rows = runs_table(tmp_path / "out")
    assert [(r["n_embd"], r["status"]) for r in rows] == [
        (8, "diverged"), (16, "completed"), (8, "diverged"), (16, "completed")
    ]  # fmt: skip
    assert all(r["loss"] is None for r in rows if r["status"] == "diverged")
    assert sorted(o["status"] for o in outcomes) == ["completed"] * 2 + ["diverged"] * 2


def test_failed_run_retried_then_listed_failed(tmp_path, shards):
    spec = load_spec(write_spec(tmp_path, shards, GRID))
    _, runs = driver.make_plan(spec)
    out = tmp_path / "out"
    for r in runs[:2]:  # both fail their first attempt
        driver.write_run_folder(r, out, spec, 1)
        (out / "runs" / r.name / "FAIL_ONCE").touch()
    outcomes = driver.run_sweep(spec, out, LocalExecutor(2), 1, retries=1, command=FAKE_TRAINER)
    by = {o["name"]: o for o in outcomes}
    assert [by[r.name]["attempts"] for r in runs] == [2, 2, 1, 1]
    assert (out / "runs" / runs[0].name / "result.failed-1.json").exists()
    assert all(r["status"] == "completed" for r in runs_table(out))
    # without retries, the failure stays and the table keeps the row
    (out / "runs" / runs[3].name / "result.json").unlink()
    (out / "runs" / runs[3].name / "FAIL_ONCE").touch()
    driver.run_sweep(spec, out, LocalExecutor(2), 1, retries=0, command=FAKE_TRAINER)
    rows = {r["run_id"]: r for r in runs_table(out)}
    assert rows[runs[3].name]["status"] == "failed" and rows[runs[3].name]["loss"] is None
    assert rows[runs[3].name]["params"] == runs[3].counts.params
    assert [rows[r.name]["status"] for r in runs[:3]] == ["completed"] * 3


RECENTRED = """kind = "isoflop"
budgets = [6e8, 2.4e9]
sizes = 5
tokens_per_param = 1
spread = 16
recentre = true
"""


def test_recentre_on_previous_budgets_measured_optimum(tmp_path, shards, capsys, monkeypatch):
    # The stand-in's loss 1 + 1000/N + 1e4/D on C = 6ND is lowest at D/N = 10; the spec
    # centres on 1, so the second budget must move to what the first one measured.
    path = write_spec(tmp_path, shards, RECENTRED)
    spec = load_spec(path)
    out = tmp_path / "out"
    driver.run_sweep(spec, out, LocalExecutor(2), 1, command=FAKE_TRAINER)
    rows = runs_table(out)
    first = [r for r in rows if r["budget"] == 6e8]
    centre = design_mod.measured_centre(first)
    assert 5 < centre < 20  # near the true 10, far from the spec's 1
    ctx = driver.open_context(spec)
    expected = design_mod.isoflop_budget(ctx, 1, centre)
    second = sorted(r["run_id"] for r in rows if r["budget"] == 2.4e9)
    assert second == sorted(r.name for r in expected)
    assert second != sorted(r.name for r in design_mod.isoflop_budget(ctx, 1, 1.0))
    # A dry run into the sweep folder plans the second budget as the sweep did: every run
    # is finished. It counted only the runs planned at the spec's centre.
    monkeypatch.setattr(estimate, "load_now", lambda: None)
    monkeypatch.setattr(estimate, "_seconds_per_step", lambda run, threads: 0.01)
    argv = ["sweep", str(path), "--dry-run", "--json", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    io = capsys.readouterr()
    assert sorted(r["name"] for r in json.loads(io.out)) == sorted(r["run_id"] for r in rows)
    assert f"{len(rows)} already finished in {out}, nothing left to run" in io.err
    # one run of the first budget unfinished: the second cannot be known yet
    (out / "runs" / first[0]["run_id"] / "result.json").unlink()
    assert main(argv) == 0
    io = capsys.readouterr()
    names = [r["name"] for r in json.loads(io.out)]
    at_centre = [r.name for r in design_mod.isoflop_budget(ctx, 1, 1.0)]
    assert sorted(names) == sorted([r["run_id"] for r in first] + at_centre)
    done = len(first) - 1 + len(set(at_centre) & set(second))  # a size both centres plan
    assert f"{done} already finished in {out}" in io.err
    assert "budgets from 2.4e+09 on are re-centred" in io.err


def test_recentre_centres_each_architecture_on_its_own_optimum(tmp_path, shards, monkeypatch):
    """With two architectures each budget after the first is centred on each one's own
    measured optimum: the LSTM's (D/N = 100 under this stand-in's law) was replaced by
    the GPT's (10), the architecture of lowest loss."""
    monkeypatch.setenv("FAKE_TRAINER_LOSS", json.dumps({"lstm": [1.5, 1000, 1e5]}))
    design = """kind = "isoflop"
budgets = [6e8, 2.4e9]
sizes = 5
tokens_per_param = 30
spread = 16
recentre = true
"""
    path = write_spec(tmp_path, shards, design)
    path.write_text(path.read_text().replace('archs = ["gpt"]', 'archs = ["gpt", "lstm"]'))
    spec = load_spec(path)
    out = tmp_path / "out"
    driver.run_sweep(spec, out, LocalExecutor(2), 1, command=FAKE_TRAINER)
    rows = runs_table(out)
    centre = {
        a: design_mod.measured_centre([r for r in rows if r["budget"] == 6e8 and r["arch"] == a])
        for a in ("gpt", "lstm")
    }
    assert 5 < centre["gpt"] < 20 and 50 < centre["lstm"] < 200
    expected = design_mod.isoflop_budget(driver.open_context(spec), 1, centre)
    second = sorted(r["run_id"] for r in rows if r["budget"] == 2.4e9)
    assert second == sorted(r.name for r in expected)


@pytest.mark.parametrize(("name", "value"), [("MIN_SIZES_PER_BUDGET", 9), ("MOVE_WARN", 1.1)])
def test_recentred_budgets_are_warned_on_the_sizes_they_run(
    tmp_path, shards, capsys, caplog, monkeypatch, name, value
):
    """A re-centred budget's thin_budgets and moved-target lines name the sizes planned on
    the centre measured before it, once, when it is planned: the sweep warned every budget
    up front on the spec's centre, sizes it never ran. (The thresholds are set here so that
    the budgets are warned about.)"""
    monkeypatch.setattr(design_mod, name, value)
    run_sweep = driver.run_sweep
    monkeypatch.setattr(driver, "run_sweep", lambda *a, **kw: run_sweep(*a, **kw | {
        "command": FAKE_TRAINER}))  # fmt: skip
    path = write_spec(tmp_path, shards, RECENTRED)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--threads", "1", "--workers", "2"]) == 0
    said = capsys.readouterr().err.splitlines() + [f"warning: {m}" for m in caplog.messages]
    warned = [x for x in said if x.startswith("warning: [design] budget")]
    rows = runs_table(out)
    ctx = driver.open_context(load_spec(path))
    centre = design_mod.measured_centre([r for r in rows if r["budget"] == 6e8])
    planned = design_mod.isoflop_budget(ctx, 0, 1.0) + design_mod.isoflop_budget(ctx, 1, centre)
    assert sorted(r.name for r in planned) == sorted(r["run_id"] for r in rows)
    lines = design_mod.thin_budgets(planned) + design_mod.moved_targets(ctx, {0: 1.0, 1: centre})
    assert lines  # the threshold set makes some
    assert sorted(warned) == sorted(f"warning: {x}" for x in lines)
    # A dry run into the finished sweep folder plans budget 1 on the centre measured, and
    # warns of the sizes so planned, not of those the spec's centre would give.
    monkeypatch.setattr(estimate, "load_now", lambda: None)
    monkeypatch.setattr(estimate, "_seconds_per_step", lambda run, threads: 0.01)
    argv = ["sweep", str(path), "--dry-run", "--json", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    said = capsys.readouterr().err.splitlines()
    assert sorted(x for x in said if x.startswith("warning: [design] budget")) == sorted(
        f"warning: {x}" for x in lines
    )


GRID_ONE = 'kind = "grid"\nparams = [2000]\ntokens = [640]\n'


def test_run_toml_records_the_threads_given(tmp_path, shards):
    """each run trains on the threads the executor
    gives it (--threads, or cores // workers)."""
    spec = load_spec(write_spec(tmp_path, shards, GRID_ONE))
    _, runs = driver.make_plan(spec)
    run_dir = driver.write_run_folder(runs[0], tmp_path / "out", spec, threads=3)
    cfg = tomllib.loads((run_dir / "run.toml").read_text())
    assert cfg["train"]["threads"] == 3


def _ckpt(root, step):
    m = torch.nn.Linear(2, 2)
    checkpoint.save(root, step, m, {"step": step}, keep=10)


def test_a_branch_is_seeded_at_its_branch_step_not_before(tmp_path):
    """a WSD branch
    starts from the stable run's checkpoint at its branch step; an older one would
    retrain the steps in between."""
    seed, run = tmp_path / "stable", tmp_path / "branch"
    run.mkdir()
    for s in (4, 8, 12):
        _ckpt(seed / "ckpt", s)
    driver.seed_run(seed, run, 8)
    assert [p.name for p in checkpoint.list_steps(run / "ckpt")] == ["step-00000008"]
    # no checkpoint at 10: the newest before it
    run2 = tmp_path / "branch2"
    run2.mkdir()
    driver.seed_run(seed, run2, 10)
    assert [p.name for p in checkpoint.list_steps(run2 / "ckpt")] == ["step-00000008"]


def test_known_plan_of_a_recentred_sweep_without_out_knows_its_first_budget(tmp_path, shards):
    """With no --out the first budget is still known (at the
    spec's centre), so `sweep --dry-run` says the budgets from the SECOND on are
    re-centred."""
    design = ('kind = "isoflop"\nbudgets = [3e6, 6e6, 1.2e7]\nsizes = 3\n'
              "tokens_per_param = 20\nspread = 4\nrecentre = true\n")  # fmt: skip
    spec = load_spec(write_spec(tmp_path, shards, design))
    _, _runs, known, centres = driver.known_plan(spec, None)
    assert known == 1 and sorted(centres) == [0, 1, 2]


def test_a_rerun_skips_diverged_runs_without_handing_them_to_the_executor(tmp_path, shards):
    """a diverged run is finished; a rerun skips it
    in the driver ('skipped' event) and hands it to no executor (with submitit or Ray,
    each such run was a job that only read its result.json)."""
    p = write_spec(tmp_path, shards, GRID_ONE)
    p.write_text(p.read_text().replace("lr = 1e-2", "lr = 200"))  # lr > 1: diverges
    spec = load_spec(p)
    first = driver.run_sweep(spec, tmp_path / "out", LocalExecutor(1), 1, command=FAKE_TRAINER)
    assert [o["status"] for o in first] == ["diverged"]
    events = []
    again = driver.run_sweep(spec, tmp_path / "out", LocalExecutor(1), 1, command=FAKE_TRAINER,
                             listener=lambda e, p, o: events.append(e))  # fmt: skip
    assert [(o["status"], o.get("skipped")) for o in again] == [("diverged", True)]
    assert events == ["skipped"]


def test_trainer_cmd_steps_and_flops_are_the_planned_budget(tmp_path, shards):
    """{steps} and {flops} of a
    trainer_cmd are the run's planned budget (docs/interfaces.md), not run.toml's unset
    budgets (0): 640 tokens at batch 4 x block 16 are 10 steps."""
    from scalinglab.sweep import worker

    spec = load_spec(write_spec(tmp_path, shards, GRID_ONE))
    _, runs = driver.make_plan(spec)
    r = runs[0]
    v = worker.trainer_values(driver.write_run_folder(r, tmp_path / "out", spec, threads=1))
    assert (v["steps"], v["tokens"]) == (10, 640) == (r.steps, r.tokens)
    assert v["flops"] == r.flops > 0


TRAINER_WRITES_PREEMPTED = """
import sys
from pathlib import Path
from scalinglab import runfolder
out = Path(sys.argv[sys.argv.index("--out") + 1])
with open(out / "calls.txt", "a") as f:
    f.write("x")
runfolder.write_result(out, {"status": "preempted"})
"""


def test_a_result_saying_preempted_is_preempted_whatever_the_exit_code(tmp_path):
    """a trainer that saves its state,
    writes status "preempted" and exits 0 (another trainer's convention) is preempted,
    once: not retried, not failed."""
    import sys

    from scalinglab.sweep import worker

    script = tmp_path / "t.py"
    script.write_text(TRAINER_WRITES_PREEMPTED)
    run = tmp_path / "run"
    run.mkdir()
    o = worker.run_task(run, retries=2, command=[sys.executable, str(script)])
    assert (o["status"], o["attempts"], o["returncode"]) == ("preempted", 1, 0)
    assert (run / "calls.txt").read_text() == "x"


def test_a_lost_job_that_saved_a_preemption_stays_preempted(tmp_path):
    """a SLURM job killed after its
    trainer saved a preemption is preempted (a rerun resumes it), its result kept."""
    from scalinglab import runfolder
    from scalinglab.sweep import worker

    run = tmp_path / "run"
    run.mkdir()
    runfolder.write_result(run, {"status": "preempted"})
    o = worker.lost_outcome(run, "the submitit job ended without a result: oom")
    assert o["status"] == "preempted"
    assert runfolder.read_result(run)["status"] == "preempted"


TRAINER_FAILS = """
import sys
from pathlib import Path
from scalinglab import runfolder
out = Path(sys.argv[sys.argv.index("--out") + 1])
n = len(list(out.glob("result.failed-*.json"))) + 1
runfolder.write_result(out, {"status": "failed", "error": f"try {n}"})
sys.exit(1)
"""


def test_every_failed_try_is_kept(tmp_path):
    """with --retries 2 a run fails three times;
    the first two results are kept as result.failed-1.json and -2.json, the last stays."""
    import json
    import sys

    from scalinglab.sweep import worker

    script = tmp_path / "t.py"
    script.write_text(TRAINER_FAILS)
    run = tmp_path / "run"
    run.mkdir()
    o = worker.run_task(run, retries=2, command=[sys.executable, str(script)])
    assert (o["status"], o["attempts"]) == ("failed", 3)
    kept = {p.name: json.loads(p.read_text())["error"] for p in run.glob("result.failed-*.json")}
    assert kept == {"result.failed-1.json": "try 1", "result.failed-2.json": "try 2"}


def test_a_batch_runs_at_most_workers_runs_at_a_time(tmp_path):
    """2 workers keep at most 2 runs going."""
    from scalinglab.sweep.executor_base import Executor

    class Recording(Executor):
        def __init__(self, workers):
            super().__init__(workers)
            self.most = 0

        def _submit(self, run_dir, threads):
            self.most = max(self.most, self.running + 1)
            return run_dir.name

        def _done(self, handles, timeout):
            return handles[:1]

        def _result(self, handle):
            return {"name": handle, "status": "completed"}

    class Events:
        def queued(self, name): ...
        def started(self, name): ...
        def finished(self, o): ...
        def tick(self): ...

    ex = Recording(2)
    outcomes = ex.run([tmp_path / f"r{i}" for i in range(5)], Events())
    assert ex.most == 2 and len(outcomes) == 5
    # E9 (max(1, workers) dropped): an executor made with 0 workers from Python runs one at
    # a time instead of spinning forever without submitting
    assert Recording(0).workers == 1
    # E2 (todo.pop() for pop(0)): runs start in plan order (one worker: one at a time)
    ex = Recording(1)
    assert [o["name"] for o in ex.run([tmp_path / f"r{i}" for i in range(4)], Events())] == [
        "r0",
        "r1",
        "r2",
        "r3",
    ]


def test_executor_defaults():
    """a failed run is retried once by default (--help says
    so); one worker, threads shared out, a day's SLURM limit."""
    from scalinglab.sweep.executors import ExecutorConfig

    c = ExecutorConfig()
    assert (c.executor, c.workers, c.threads, c.retries, c.timeout_min) == ("local", 1, 0, 1, 1440)
