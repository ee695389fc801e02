"""Executors against a stand-in trainer (tests/sweep/fake_trainer.py) whose loss is
a known function of the run: loss = 1 + 1000/params + 1e4/tokens."""

import json

import pytest

from scalinglab.cli import main
from scalinglab.sweep import design as design_mod
from scalinglab.sweep import driver, estimate
from scalinglab.sweep.local import LocalExecutor
from scalinglab.sweep.spec import load_spec
from scalinglab.sweep.table import runs_table
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
