"""Killed and preempted trainers resume to the uninterrupted run, bit for bit: weights,
optimizer, schedule, loader and RNG state, and metrics.jsonl with every step once.

tests/train/test_resume.py already kills one run once and compares weights and
metrics; here the same run is killed twice (the second time while it resumes from
the first), and a SIGTERMed run is resumed, with the whole saved state compared."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from scalinglab.train import checkpoint, train
from tests.reliability.helpers import ROOT, argv, assert_same_run, assert_steps_once, cfg
from tests.train.helpers import tiny_shards

STEPS = 60
EXTRA = ("--dropout", "0.1")  # dropout draws from the RNG: a resume must restore it


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    data = tiny_shards(d / "shards")
    train(cfg(data, STEPS, dropout=0.1), d / "run")
    assert_steps_once(d / "run", STEPS)
    return data, d / "run"


def _start(data, run):
    return subprocess.Popen(
        [sys.executable, "-m", "scalinglab", *argv(data, run, *EXTRA, steps=STEPS)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _lines(run) -> int:
    try:
        return (run / "metrics.jsonl").read_text().count("\n")
    except FileNotFoundError:
        return 0


def _signal_at(proc, run, lines: int, sig) -> None:
    """Send `sig` once metrics.jsonl holds `lines` lines (one per step: log_every 1)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and _lines(run) < lines:
        time.sleep(0.002)
    assert proc.poll() is None, f"the run ended before step {lines}: {proc.stderr.read()}"
    proc.send_signal(sig)


def test_sigkill_twice_then_resume_is_the_uninterrupted_run(ref, tmp_path):
    data, ref_run = ref
    seed = int.from_bytes(os.urandom(4))
    rng = random.Random(seed)
    k1 = rng.randrange(3, 25)
    k2 = rng.randrange(k1 + 8, 45)  # past anything the first process wrote before it died
    print(f"random seed {seed}: SIGKILL at steps {k1} and {k2}")  # shown if the test fails
    run = tmp_path / "run"
    for k in (k1, k2):
        proc = _start(data, run)
        _signal_at(proc, run, k, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        assert not (run / "result.json").exists()
    ckpt = checkpoint.latest(run / "ckpt")
    assert ckpt is not None and checkpoint.load_state(ckpt)["counters"]["step"] >= k1 - 4
    assert train(cfg(data, STEPS, dropout=0.1), run)["status"] == "completed"
    assert_steps_once(run, STEPS)
    assert_same_run(run, ref_run)


def test_sigterm_checkpoints_at_the_step_then_resume_is_the_uninterrupted_run(ref, tmp_path):
    data, ref_run = ref
    seed = int.from_bytes(os.urandom(4))
    k = random.Random(seed).randrange(3, 40)
    print(f"random seed {seed}: SIGTERM at step {k}")  # shown if the test fails
    run = tmp_path / "run"
    proc = _start(data, run)
    _signal_at(proc, run, k, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "preempted" and out.startswith("preempted:")
    s = result["steps"]
    assert s >= k
    last = checkpoint.latest(run / "ckpt", strict=True)  # saved at the step it stopped at
    assert last.name == f"step-{s:08d}" and checkpoint.load_state(last)["counters"]["step"] == s
    assert [
        json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()
    ] == list(range(1, s + 1))
    assert train(cfg(data, STEPS, dropout=0.1), run)["status"] == "completed"
    assert_steps_once(run, STEPS)
    assert_same_run(run, ref_run)
