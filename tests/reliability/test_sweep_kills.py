"""A sweep driver SIGKILLed twice at random moments, and one trainer killed while
writing its result: the final runs table is the uninterrupted sweep's, one row per
run, and no run that had finished was started again.

tests/sweep/test_resume.py kills the driver once, at a chosen moment, with the real
trainer (and checks its resumed runs' losses bit for bit); here the moments are
random and the stand-in trainer of tests/sweep makes each sweep take seconds."""

import fcntl
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from scalinglab.sweep.driver import make_plan
from scalinglab.sweep.spec import load_spec
from scalinglab.sweep.table import runs_table
from tests.sweep.conftest import shards, write_spec  # noqa: F401 -- shards is a fixture

DRIVER = [sys.executable, str(Path(__file__).with_name("sweep_driver.py"))]
GRID = """kind = "grid"
shapes = [{n_layer = 1, n_embd = 8, n_head = 2}, {n_layer = 1, n_embd = 16, n_head = 4},
          {n_layer = 2, n_embd = 16, n_head = 4}]
tokens = [640, 1280, 2560]
"""
KEY = ("run_id", "status", "n_layer", "n_embd", "params", "tokens", "flops", "flops_6nd", "loss")


def _wait_for_trainers(out: Path) -> None:
    """Until every trainer the dead driver started has exited (each holds its run's lock)."""
    for lock in (out / "runs").glob("*/.lock") if (out / "runs").exists() else ():
        with open(lock) as f:
            fcntl.flock(f, fcntl.LOCK_EX)


def _finished(out: Path) -> dict[str, str]:
    """Runs with a completed result -> the pids of the trainers that ever ran them."""
    runs = (out / "runs").glob("*") if (out / "runs").exists() else ()
    return {
        d.name: (d / "attempts.txt").read_text()
        for d in runs
        if (d / "result.json").exists() and '"completed"' in (d / "result.json").read_text()
    }


def test_driver_killed_twice_and_a_trainer_killed_writing_its_result(tmp_path, shards):  # noqa: F811
    spec = write_spec(tmp_path, shards, GRID)
    n_runs = len(make_plan(load_spec(spec))[1])
    env = {k: v for k, v in os.environ.items() if k != "RELIABILITY_DIE_MARKER"}
    t0 = time.monotonic()
    subprocess.run([*DRIVER, str(spec), str(tmp_path / "ref")], env=env, check=True)
    uninterrupted = time.monotonic() - t0

    seed = int.from_bytes(os.urandom(4))
    print(f"random seed {seed}; an uninterrupted sweep took {uninterrupted:.2f} s")
    rng = random.Random(seed)
    out = tmp_path / "out"
    marker = tmp_path / "died-writing-result"
    env["RELIABILITY_DIE_MARKER"] = str(marker)
    finished: dict[str, str] = {}
    for _ in range(2):
        proc = subprocess.Popen([*DRIVER, str(spec), str(out)], env=env)
        time.sleep(rng.uniform(0.05, 0.4) * uninterrupted)  # two kills leave work for the third
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, "the sweep ended before the kill"
        _wait_for_trainers(out)
        finished |= _finished(out)
    subprocess.run([*DRIVER, str(spec), str(out)], env=env, check=True)

    assert marker.exists()  # a trainer was killed while writing its result.json
    # The run was tried again, and the retry's write removed the temporary file the
    # killed trainer left (fsio.remove_stale_temps).
    died = Path(marker.read_text())
    assert len((died / "attempts.txt").read_text().split()) >= 2
    assert not list(died.glob(".result.json.*.tmp"))
    rows, ref = runs_table(out), runs_table(tmp_path / "ref")
    assert len(rows) == len({r["run_id"] for r in rows}) == n_runs == len(ref)
    assert [[r[k] for k in KEY] for r in rows] == [[r[k] for k in KEY] for r in ref]
    after = _finished(out)
    for name, pids in finished.items():  # finished before a kill: never started again
        assert after[name] == pids, name
