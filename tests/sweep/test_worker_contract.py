"""The worker holds another trainer to the result.json contract (docs/interfaces.md), and
a stopping executor stops its runs instead of retrying them (found by two audits: an
external trainer's malformed result.json was overwritten by "exited without a result",
a NaN loss was accepted as completed, and Ctrl-C just after a run started retried it,
so the sweep waited for a whole run to train after the interrupt)."""

import json
import sys
import threading
import time

import pytest

from scalinglab import runfolder
from scalinglab.cli.sweep import finished_line
from scalinglab.sweep import worker
from scalinglab.sweep.worker import run_task

TRAINER = """
import json, os, signal, sys, time
mode, out = sys.argv[1], sys.argv[2]
def write(text):
    with open(os.path.join(out, "result.json"), "w") as f:
        f.write(text)
ok = {"status": "completed", "val_loss": 2.5}
if mode == "truncated":
    write(json.dumps(ok)[:20])
elif mode == "list":
    write("[1, 2]")
elif mode == "badstatus":
    write(json.dumps({**ok, "status": "complete"}))
elif mode == "nan":
    write(json.dumps({**ok, "val_loss": float("nan")}))
elif mode == "string":
    write(json.dumps({**ok, "val_loss": "2.5"}))
elif mode == "negtokens":
    write(json.dumps({**ok, "tokens": -5}))
elif mode == "zeroparams":
    write(json.dumps({**ok, "params": 0}))
elif mode == "negloss":
    write(json.dumps({**ok, "val_loss": -1.0}))
elif mode == "infflops":
    write(json.dumps({**ok, "flops": float("inf")}))
elif mode == "nanparams":
    write(json.dumps({**ok, "params": float("nan")}))
elif mode.startswith("n="):  # N and D as given
    n, d = (float(x) for x in mode[2:].split(","))
    write(json.dumps({**ok, "params": n, "tokens": d}))
elif mode == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
elif mode == "exit1":
    sys.exit(1)
elif mode == "sigterm":  # killed by SIGTERM before any handler: exit -15, no result
    os.kill(os.getpid(), signal.SIGTERM)
elif mode == "sleep":
    time.sleep(60)
    write(json.dumps(ok))
"""


@pytest.fixture
def trainer(tmp_path):
    path = tmp_path / "trainer.py"
    path.write_text(TRAINER)

    def run(mode, retries=0, name="run"):
        run_dir = tmp_path / name
        run_dir.mkdir()
        return run_dir, run_task(run_dir, retries, f"{sys.executable} {path} {mode} {{out}}")

    return run


@pytest.mark.parametrize(
    ("mode", "why", "kept"),
    [
        ("truncated", "not JSON", '{"status": "complete'),
        ("list", "not a JSON object", "[1, 2]"),
        ("badstatus", 'status "complete" is not one of completed, diverged, preempted, failed',
         '"complete"'),
        ("nan", "status completed with val_loss NaN: a completed run has a finite loss", "NaN"),
        ("string", 'val_loss is "2.5", not a number', '"2.5"'),
        ("negtokens", "tokens is -5, not a positive number", '"tokens": -5'),
        ("zeroparams", "params is 0, not a positive number", '"params": 0'),
        ("negloss", "val_loss is -1.0, not a number >= 0", '"val_loss": -1.0'),
        ("infflops", "flops is Infinity, not a finite number", '"flops": Infinity'),
        ("nanparams", "params is NaN, not a finite number", '"params": NaN'),
    ],
)  # fmt: skip
def test_a_result_that_breaks_the_contract_is_kept_and_the_run_fails_saying_why(
    trainer, mode, why, kept
):
    run_dir, outcome = trainer(mode)
    assert outcome["status"] == "failed" and outcome["attempts"] == 1
    error = runfolder.read_result(run_dir)["error"]
    assert error.startswith(f"{run_dir / 'result.json'}: ") and why in error, error
    assert error.endswith("kept as result.invalid-1.json")
    assert kept in (run_dir / "result.invalid-1.json").read_text()  # the trainer's own file
    assert finished_line(runfolder.read_result(run_dir), "failed") == f"loss -: {error}"


def test_a_result_ten_times_off_its_plan_is_no_result_of_the_run(tmp_path):
    """An N 100x the planned one put C = 9e12 in a 9e10 budget: the IsoFLOP fit dropped
    that budget ('no minimum') without naming the run (an audit)."""
    path = tmp_path / "trainer.py"
    path.write_text(TRAINER)
    planned = {"params": 5000, "tokens": 1_000_000, "flops": 3e10}
    for name, n, d, why in [
        ("near", 9000, 1.2e6, None),  # another trainer's count of N: 1.8x, fine
        ("bign", 500_000, 1e6, "params is 500000, 100x the 5000 planned for this run (N): "
         "more than 10x off its plan, it is no result of this run (did the trainer ignore "
         "its placeholders, or write another run's result?)"),
        ("fewd", 5000, 1e3, "tokens is 1000, 0.001x the 1e+06 planned for this run (D)"),
    ]:  # fmt: skip
        run_dir = tmp_path / name
        run_dir.mkdir()
        (run_dir / "sweep.json").write_text(json.dumps({"planned": planned}))
        out = run_task(run_dir, 0, f"{sys.executable} {path} n={n},{d} {{out}}")
        result = runfolder.read_result(run_dir)
        if why is None:
            assert out["status"] == "completed" and result["params"] == n
        else:
            assert out["status"] == "failed" and why in result["error"], result["error"]
            assert (run_dir / "result.invalid-1.json").exists()


def test_a_trainer_that_left_no_result_is_said_to_have_exited_or_been_killed(trainer):
    """'exited with code -9' named no signal."""
    for mode, how in (
        ("sigkill", "was killed by signal 9 (SIGKILL)"),
        ("exit1", "exited with code 1"),
    ):
        run_dir, outcome = trainer(mode, name=mode)
        assert outcome["status"] == "failed"
        assert runfolder.read_result(run_dir)["error"] == (
            f"the trainer {how} without a result (see {run_dir / 'train.log'})"
        )


def test_a_trainer_killed_by_sigterm_is_preempted_not_retried(trainer):
    run_dir, outcome = trainer("sigterm", retries=2)
    assert outcome == {"name": "run", "status": "preempted", "attempts": 1, "returncode": -15}
    assert not (run_dir / "result.json").exists()  # a rerun resumes it


def test_stopping_the_executor_stops_the_run_and_starts_no_retry(trainer):
    outcome = {}
    t = threading.Thread(target=lambda: outcome.update(trainer("sleep", retries=3)[1]))
    t.start()
    try:
        deadline = time.monotonic() + 60
        while not worker._LIVE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker._LIVE, "the trainer never started"
        worker.stop_all()
        t.join(60)
        assert outcome["status"] == "preempted" and outcome["attempts"] == 1
        # and a run that comes to start while stopping does not start at all
        _, late = trainer("sleep", retries=3, name="late")
        assert late["status"] == "preempted" and late["attempts"] == 0
    finally:
        worker.allow_starts()
        t.join(60)


def test_a_finished_line_reads_an_integer_loss():
    assert finished_line({"val_loss": 3}, "completed") == "loss 3.0000"
    assert finished_line({"val_loss": None}, "diverged") == "loss -"
    assert finished_line({"error": "x\n  y"}, "failed") == "loss -: x y"


def test_results_of_the_contract_pass_unchanged(trainer, tmp_path):
    path = tmp_path / "ok.py"
    path.write_text(
        "import json, sys\n"
        "open(sys.argv[1] + '/result.json', 'w').write(json.dumps("
        "{'status': 'diverged', 'val_loss': None}))\n"
    )
    run_dir = tmp_path / "d"
    run_dir.mkdir()
    outcome = run_task(run_dir, 0, f"{sys.executable} {path} {{out}}")
    assert outcome["status"] == "diverged"
    assert json.loads((run_dir / "result.json").read_text())["status"] == "diverged"
    assert not list(run_dir.glob("result.invalid-*"))


def test_an_interrupt_raised_in_the_waiting_thread_stops_the_trainer_at_once(trainer):
    """Ray's cancel raises KeyboardInterrupt in the thread that runs the task, as
    `_thread.interrupt_main` does here; a blocking wait() never saw it, so the trainer
    trained on until Ray's shutdown killed it without a checkpoint."""
    import _thread

    threading.Timer(1.0, _thread.interrupt_main).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        trainer("sleep")  # 60 s unless stopped
    assert time.monotonic() - start < 30
    assert not worker._LIVE  # it was stopped (SIGTERM) and waited for


def test_a_run_another_sweep_finished_while_this_one_waited_is_already_done(trainer, tmp_path):
    """Two sweeps into one folder: the second waits on the run's lock; when it gets it,
    the run is done. It does not train it again, and says it was already done, not
    that it trained it (its summary counted it as trained: '0 already done')."""
    path = tmp_path / "trainer.py"
    path.write_text(TRAINER)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    held = runfolder.hold_lock(run_dir)  # the other sweep's worker
    got = {}
    cmd = f"{sys.executable} {path} exit1 {{out}}"  # would fail, were it run
    waiting = threading.Thread(target=lambda: got.update(run_task(run_dir, 0, cmd)))
    waiting.start()
    time.sleep(0.3)
    assert waiting.is_alive()  # waiting for the lock
    runfolder.write_result(run_dir, {"status": "completed", "val_loss": 2.5})
    runfolder.release_lock(held)
    waiting.join(10)
    assert got == {"name": "run", "status": "completed", "attempts": 0, "returncode": None,
                   "skipped": True}  # fmt: skip
    assert not (run_dir / runfolder.TRAIN_LOG).exists()


def test_the_sweep_summary_counts_blocked_runs_apart_from_done_ones(tmp_path, capsys):
    from scalinglab.cli.sweep import _summary

    outcomes = [
        {"name": "a", "status": "completed", "attempts": 0, "skipped": True},
        {"name": "b", "status": "completed", "attempts": 1},
        {"name": "c", "status": "blocked", "attempts": 0, "skipped": True},
    ]
    assert _summary(tmp_path, outcomes, 1.0) == 1
    captured = capsys.readouterr()
    assert "1 blocked, 2 completed (1 already done, skipped)" in captured.err
    assert [line.split()[:3] for line in captured.out.splitlines()[1:]] == [
        ["a", "-", "pending"], ["b", "-", "pending"], ["c", "-", "blocked"]]  # fmt: skip
