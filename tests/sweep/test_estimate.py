"""The plan's time estimate: a step's time once the steps have settled, and the note
that says a busy machine slowed it."""

import os
import subprocess
import sys
import time

import pytest

from scalinglab.sweep import estimate
from scalinglab.sweep.estimate import steady_step_time


def _steps(ms):
    it = iter(ms)
    calls = []

    def step():
        calls.append(1)
        return next(it) / 1000

    return step, calls


def test_slow_first_steps_are_waited_out():
    """Step times (ms) of the ladder's backtest model on 2 threads of a loaded 2-core
    machine: the first seven 2-15x the rest. The fastest of the first three after the
    warm-up (102 ms, what the estimate used to take) doubled the estimate; the settled
    step is 50 ms."""
    seen = [423, 302, 114, 102, 775, 334, 155, 50, 52, 52, 52, 54, 53, 53, 55]
    step, calls = _steps(seen)
    assert steady_step_time(step) == 0.050
    assert len(calls) == 10  # the warm-up, then until 50, 52, 52 are within 1.25x of 50


def test_a_quiet_machine_takes_four_steps():
    step, calls = _steps([19, 7, 7, 7, 6, 7])
    assert steady_step_time(step) == 0.007 and len(calls) == 4


def test_steps_that_never_settle_stop_at_the_cap():
    step, calls = _steps([10] + [10, 30] * 100)
    assert steady_step_time(step) == 0.010
    assert len(calls) == estimate.MAX_STEPS + 1
    step, calls = _steps([2000, 1000, 3000, 1000, 3000, 1000])  # 5 s of stepping
    assert steady_step_time(step) == 1.0 and len(calls) == 3


def test_busy_note_only_for_runs_on_several_threads_beside_other_work():
    from scalinglab.sweep.estimate import busy_note

    assert busy_note(2, load=0.2, cores=2) == ""  # idle
    assert busy_note(2, load=None, cores=2) == ""  # a system without a load average
    assert busy_note(1, load=1.9, cores=2) == ""  # one thread: slowed by its share only
    assert busy_note(2, load=1.9, cores=2) == (
        " This machine is busy now (other work kept 1.9 of its 2 cores busy): a run on 2 threads beside "
        "other work can take several times its idle time, and the estimate measured that; "
        "OMP_WAIT_POLICY=PASSIVE limits it (docs/performance.md)."
    )


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="load_now reads Linux's /proc/stat")
def test_load_now_counts_other_work_now_not_the_last_minutes():
    """The load average still counted the `pip install` before a fresh quickstart, which
    printed the busy note on an idle machine; load_now measures the cores busy now."""
    from scalinglab.sweep.estimate import load_now

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert load_now() >= 0.5  # one core kept busy
    finally:
        spinner.kill()
        spinner.wait()
