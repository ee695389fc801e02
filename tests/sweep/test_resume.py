"""Crash-proof sweeps with the real trainer: SIGKILL the driver mid-sweep, rerun the
same command, and get the table of an uninterrupted sweep (the same losses, bit for bit)."""

import fcntl
import os
import signal
import subprocess
import sys
import time

from scalinglab.sweep.table import runs_table
from tests.sweep.conftest import write_spec

# A short run (finishes first) and a long one (in flight when the driver dies).
GRID = """kind = "grid"
shapes = [{n_layer = 2, n_embd = 16, n_head = 4}]
tokens = [640, 19200]
"""
TRAIN = "ckpt_every = 10\nlog_every = 10"


def _sweep_cmd(spec, out):
    return [sys.executable, "-m", "scalinglab", "sweep", str(spec), "--out", str(out),
            "--workers", "2", "--threads", "1", "--retries", "0"]  # fmt: skip


def _attempts(run_dir) -> int:
    return (run_dir / "train.log").read_text().count("\n=== ")


def _wait_for_mid_sweep(out, proc, timeout=120.0):
    """Until one run has completed and another has a checkpoint but no result."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        runs = list((out / "runs").glob("*")) if (out / "runs").exists() else []
        done = [d for d in runs if (d / "result.json").exists()]
        mid = [d for d in runs if not (d / "result.json").exists() and list(d.glob("ckpt/step-*"))]
        if done and mid:
            return done, mid
        time.sleep(0.02)
    raise AssertionError("no run reached a checkpoint in time")


def test_sigkill_driver_then_rerun_resumes_and_matches(tmp_path, shards):
    spec = write_spec(tmp_path, shards, GRID, train=TRAIN)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ref = tmp_path / "ref"
    r = subprocess.run(_sweep_cmd(spec, ref), capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    # not a terminal: one line per finished run, then the table on stdout
    assert r.stderr.count(" completed loss ") == 2 and "[2/2]" in r.stderr
    assert len(r.stdout.strip().splitlines()) == 3

    out = tmp_path / "out"
    proc = subprocess.Popen(_sweep_cmd(spec, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)  # fmt: skip
    done, mid = _wait_for_mid_sweep(out, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for d in mid:  # its trainer got SIGTERM: wait until it has saved and exited
        with open(d / ".lock") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
    stopped = [d for d in mid if '"completed"' not in (d / "result.json").read_text()]
    assert stopped, "every in-flight run finished before the kill reached it"
    r = subprocess.run(_sweep_cmd(spec, out), capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr

    for d in done:  # finished before the kill: not rerun
        assert _attempts(d) == 1 and "already done" in r.stderr
    for d in stopped:  # in flight: stopped by SIGTERM, then resumed from a checkpoint
        assert _attempts(d) == 2
        assert "resumed" in (d / "train.log").read_text()
    rows, ref_rows = runs_table(out), runs_table(ref)
    assert [x["status"] for x in rows] == ["completed"] * 2
    key = ("run_id", "params", "tokens", "flops", "loss", "bpb")
    assert [[x[k] for k in key] for x in rows] == [[x[k] for k in key] for x in ref_rows]


def test_forced_divergence_is_listed_and_the_sweep_goes_on(tmp_path, shards, capsys):
    from scalinglab.cli import main

    # lr = 1e-2 · (16 / width) ** 100: about 1e28 at width 8, 1e-2 at width 16
    design = GRID.replace("tokens = [640, 19200]", "tokens = [640]").replace(
        "shapes = [", "shapes = [{n_layer = 1, n_embd = 8, n_head = 2}, "
    )
    p = write_spec(tmp_path, shards, design)
    p.write_text(p.read_text().replace("warmup_frac", "lr_power = 100\nwarmup_frac"))
    assert main(["sweep", str(p), "--out", str(tmp_path / "o"), "--workers", "2"]) == 0
    rows = runs_table(tmp_path / "o")
    assert [(x["n_embd"], x["status"]) for x in rows] == [(8, "diverged"), (16, "completed")]
    assert rows[0]["loss"] is None and rows[1]["loss"] > 0
    assert "1 completed, 1 diverged" in capsys.readouterr().err


def test_dry_run_prints_plan_and_total(tmp_path, shards, capsys):
    from scalinglab.cli import main
    from scalinglab.sweep.driver import make_plan
    from scalinglab.sweep.spec import load_spec

    p = write_spec(tmp_path, shards, GRID)
    assert main(["sweep", str(p), "--dry-run", "--workers", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    _, runs = make_plan(load_spec(p))
    for r in runs:
        assert r.name in out
    total = sum(r.flops for r in runs)
    assert f"2 runs, total compute trained {total:.3g} FLOPs (6nd convention)" in out
    assert not (tmp_path / "o").exists()
    assert main(["sweep", str(p), "--dry-run", "--flops-convention", "model"]) == 0
    assert "FLOPs (model convention)" in capsys.readouterr().out


def test_run_folders_of_an_edited_spec_are_warned_of(tmp_path, shards, capsys):
    """An edited spec rerun into the same --out makes new run folders beside the old ones,
    and `scalinglab runs OUT` (and a fit of its table) took both without a word."""
    from scalinglab.cli import main
    from scalinglab.cli.sweep import _warn_unplanned
    from scalinglab.sweep.driver import make_plan
    from scalinglab.sweep.spec import load_spec

    p = write_spec(tmp_path, shards, GRID)
    out = tmp_path / "o"
    spec = load_spec(p)
    _, runs = make_plan(spec)
    for r in runs:  # this spec's own folders: no warning
        (out / "runs" / r.name).mkdir(parents=True)
    _warn_unplanned(out, runs, spec)
    assert capsys.readouterr().err == ""
    (out / "runs" / "gpt-n2k-d640-0badcafe").mkdir()  # an earlier spec's run
    (out / "stable" / "runs" / "gpt-n4k-stable-0ddba11").mkdir(parents=True)
    args = ["sweep", str(p), "--out", str(out), "--dry-run", "--threads", "1"]
    assert main(args) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {out} holds 2 run folder(s) this spec does not plan (gpt-n2k-d640-0badcafe "
        f"and 1 more: an earlier or edited spec's); `scalinglab runs {out}` lists them beside "
        "this spec's runs, and a fit of that table mixes the two: give another --out to keep "
        "this spec's runs apart"
    ]
