"""Run one planned run to its end, in whatever process an executor gives it.

`run_task` is the one unit of work every executor calls (a thread of the
local executor, a Ray task, a submitit job). It starts the trainer as a child
process (`python -m scalinglab train --config run.toml --out RUNDIR --resume auto`),
so a crash of the model code never takes the executor down, and it holds the run's
lock (runfolder.hold_lock, RUNDIR/.lock) for as long as that child lives: a rerun of a
sweep whose old trainer is still saving its checkpoint waits for it instead of
writing into the same folder. The child works under that lock (runfolder.held_for_children
tells it so), so it does not refuse itself, while any other `scalinglab train` on the
folder does.

Outcomes, read from RUNDIR/result.json (the trainer writes it), by the run folder's
one rule (`runfolder.run_state`):
- completed / diverged: finished; a rerun skips the run.
- preempted (the trainer got SIGTERM): returned as is; a rerun resumes it.
- failed, or the child died without a result: retried up to `retries` times
  (the failed result is kept as result.failed-K.json); after the last try a
  result.json with status "failed" stays, so the runs table lists the run.
- a result.json that breaks the contract (not JSON, an unknown status, status
  completed without a finite val_loss, or with a NaN, negative or zero N, D or C, as
  another trainer may write): kept as
  result.invalid-K.json and recorded as failed, saying why.
- a trainer that cannot be started (no such program, not executable): failed at once,
  saying why, not retried.
- a trainer ended by SIGTERM (exit 143, or killed by the signal before its handler
  was set) or stopped because the executor is stopping (Ctrl-C: `stop_all`):
  preempted, never retried; a rerun resumes it.
"""

import contextlib
import ctypes
import json
import logging
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from scalinglab import runfolder
from scalinglab.errors import DataError, ScalingLabError
from scalinglab.runfolder import RESULT, RUN_TOML, read_result

log = logging.getLogger(__name__)

EXIT_PREEMPTED = 143
# how a trainer stopped by SIGTERM ends: its handler's exit code, or the signal itself
# when it came before the handler was set (a trainer still starting, or another trainer)
PREEMPTED_CODES = (EXIT_PREEMPTED, -signal.SIGTERM)
STATUSES = (*runfolder.FINISHED, "preempted", "failed")


def default_command() -> list[str]:
    return [sys.executable, "-m", "scalinglab", "train"]


def _load_prctl():
    try:  # loaded once in the parent: dlopen is not safe in a child forked from threads
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl() if sys.platform == "linux" else None


def _child_setup() -> None:
    """In the child, before exec. Ctrl-C reaches the whole process group, and SLURM
    sends its time-limit signal (USR2, whose default action kills) to every process
    of a job step; the trainer ignores both and is stopped by its executor with
    SIGTERM instead, which makes it checkpoint. On Linux it also gets SIGTERM when
    the thread that started it dies, so a SIGKILLed sweep driver leaves no orphans."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


STOP_SECONDS = 60
"""How long a stopped trainer is given to save its checkpoint before it is left behind."""

_LIVE: set[subprocess.Popen] = set()
_STARTS = threading.Lock()  # a trainer starts, or the executor stops: one at a time
_STOPPING = threading.Event()


def stop_all() -> None:
    """SIGTERM every trainer this process started and still runs (they checkpoint), and
    start no other: a run whose trainer was stopped, or was about to start, ends
    preempted, not retried (a retry started after Ctrl-C trained to its end)."""
    with _STARTS:
        _STOPPING.set()
        for proc in list(_LIVE):
            with contextlib.suppress(OSError):
                proc.terminate()


def allow_starts() -> None:
    """Let trainers start again (an executor opening, after an earlier one stopped)."""
    _STOPPING.clear()


def _attempt(cmd: list[str], run_dir: Path, lock_fd: int, env: dict) -> int | None:
    """The trainer's exit code; None when the executor is stopping (nothing started)."""
    with open(run_dir / runfolder.TRAIN_LOG, "ab") as logf:
        with _STARTS:
            if _STOPPING.is_set():
                return None
            logf.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
            logf.flush()
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                pass_fds=(lock_fd,),  # the child holds the lock too, until it exits
                preexec_fn=_child_setup,
                env=env,
            )
            _LIVE.add(proc)
        try:
            while True:  # in steps: a blocking wait() never sees a KeyboardInterrupt that
                # Ray's cancel raises in this thread (it is only checked between steps)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    return proc.wait(timeout=1.0)
        except BaseException:
            # The executor is stopping (Ctrl-C, SIGTERM): let the trainer checkpoint.
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_SECONDS)
            raise
        finally:
            _LIVE.discard(proc)


def trainer_values(run_dir: Path) -> dict:
    """The values of a trainer_cmd's placeholders for one run folder: its run.toml's
    [model] and [train] fields, the planned N, D, C and steps, the design's columns, and
    `out`, `config`, `name` (docs/interfaces.md)."""
    cfg = runfolder.read_config_dict(run_dir) or {}
    planned = runfolder.read_sweep_meta(run_dir).get("planned", {})
    return {
        **cfg.get("model", {}),
        **cfg.get("train", {}),
        **planned,
        "out": str(run_dir.resolve()),
        "config": str((run_dir / RUN_TOML).resolve()),
        "name": run_dir.name,
    }


def trainer_command(template: str, run_dir: Path) -> list[str]:
    """A trainer_cmd template as the argv of one run: split as a shell would, each word's
    {placeholders} filled (a value with spaces stays one argument)."""
    values = trainer_values(run_dir)
    return [word.format_map(values) for word in shlex.split(template)]


def run_task(
    run_dir: str | os.PathLike,
    retries: int = 0,
    command: list[str] | str | None = None,
) -> dict:
    """Run or resume the run in `run_dir` (which holds run.toml) to a final state.

    `command`: None runs scalinglab's trainer; a list is a trainer that takes
    scalinglab's arguments (`--config RUN.toml --out RUNDIR --resume auto` are
    appended); a string is a trainer_cmd template, filled from the run's values and
    run as it is (docs/interfaces.md).

    Returns {"name", "status", "attempts", "returncode"}, with "skipped": True where the
    run was finished when its lock was got (another sweep trained it); never raises for a
    failed run.
    """
    run_dir = Path(run_dir)
    if isinstance(command, str):
        try:
            cmd = trainer_command(command, run_dir)
        except (KeyError, ValueError, IndexError) as exc:
            error = f"trainer_cmd {command!r}: cannot fill it for this run ({exc!r})"
            runfolder.write_result(run_dir, {"status": "failed", "error": error})
            return _outcome(run_dir, "failed", 0, None)
    else:
        base = list(command or default_command())
        cmd = [*base, "--config", str(run_dir / RUN_TOML), "--out", str(run_dir)]
        cmd += ["--resume", "auto"]
    lock_fd = runfolder.hold_lock(run_dir, wait=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **runfolder.held_for_children(lock_fd)}
    try:
        attempts, rc = 0, None
        while True:
            r = _checked_result(run_dir)
            if runfolder.run_state(r) == "finished":
                done = _outcome(run_dir, r["status"], attempts, rc)
                if attempts == 0:  # another sweep trained it while this one waited to lock it
                    done["skipped"] = True
                return done
            if attempts > retries:  # the last failed result.json stays, for the table
                return _outcome(run_dir, "failed", attempts, rc)
            if _STOPPING.is_set():
                return _outcome(run_dir, "preempted", attempts, rc)
            _set_aside(run_dir, r)
            attempts += 1
            try:
                rc = _attempt(cmd, run_dir, lock_fd, env)
            except OSError as exc:  # no such program, not executable: no retry mends it
                error = f"cannot start the trainer {cmd[0]!r}: {exc.strerror or exc}"
                with open(run_dir / runfolder.TRAIN_LOG, "a") as logf:
                    logf.write(f"{error}\n")
                runfolder.write_result(run_dir, {"status": "failed", "error": error})
                return _outcome(run_dir, "failed", attempts, None)
            r = _checked_result(run_dir)
            if runfolder.run_state(r) == "finished":
                continue
            stopped = rc is None or rc in PREEMPTED_CODES or _STOPPING.is_set()
            if stopped or (r and r.get("status") == "preempted"):
                return _outcome(run_dir, "preempted", attempts, rc)
            if r is None:
                error = (
                    f"the trainer {_how_it_ended(rc)} without a result "
                    f"(see {run_dir / runfolder.TRAIN_LOG})"
                )
                runfolder.write_result(run_dir, {"status": "failed", "error": error})
    finally:
        runfolder.release_lock(lock_fd)


def lost_outcome(run_dir: str | os.PathLike, why: str) -> dict:
    """The outcome of a run whose job ended without returning one (killed for memory, its
    node lost): what its folder says where the trainer finished or saved a preemption;
    else `failed`, with `why` written as its result.json's error (a rerun retries it,
    from its last checkpoint). A folder still locked by a trainer is left as it is."""
    run_dir = Path(run_dir)
    try:
        lock_fd = runfolder.hold_lock(run_dir)
    except ScalingLabError:  # its trainer lives on: what it writes is the run's
        return _outcome(run_dir, "failed", 1, None)
    try:
        r = _checked_result(run_dir)
        if runfolder.run_state(r) == "finished" or (r or {}).get("status") == "preempted":
            return _outcome(run_dir, r["status"], 1, None)
        runfolder.write_result(run_dir, {"status": "failed", "error": why})
        return _outcome(run_dir, "failed", 1, None)
    finally:
        runfolder.release_lock(lock_fd)


def _how_it_ended(rc: int) -> str:
    """'exited with code 1', or 'was killed by signal 9 (SIGKILL)' for a negative code
    ('exited with code -9' named no signal)."""
    if rc is not None and rc < 0:
        try:
            return f"was killed by signal {-rc} ({signal.Signals(-rc).name})"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with code {rc}"


def _invalid(r: dict) -> str | None:
    """Why a readable result.json breaks the contract (docs/interfaces.md), or None."""
    status = r.get("status")
    if status not in STATUSES:
        return f"status {json.dumps(status)} is not one of {', '.join(STATUSES)}"
    loss = r.get("val_loss")
    if status == "completed" and not (isinstance(loss, int | float) and math.isfinite(loss)):
        return (
            f"status completed with val_loss {json.dumps(loss)}: a completed run has a finite "
            "loss (one whose loss is not finite is diverged)"
        )
    if status == "completed":
        return _bad_number(r)
    return None


# N, D and C: the runs table's columns the fitter reads; a count of nothing is no count
POSITIVE = runfolder.RESULT_POSITIVE


def _bad_number(r: dict) -> str | None:
    """Why a completed result's number is no value of its field: NaN or Infinity (not
    JSON numbers, though Python writes them), a negative count, loss or time (none of
    runfolder.RESULT_NUMBERS is below 0), or N, D or C of 0; None when all are."""
    for k in runfolder.RESULT_NUMBERS:
        v = r.get(k)  # a number or None (read_result)
        if v is None:
            continue
        if not math.isfinite(v):
            return f"{k} is {json.dumps(v)}, not a finite number (write null for none)"
        if v < 0 or (v == 0 and k in POSITIVE):
            least = "a positive number" if k in POSITIVE else "a number >= 0"
            return f"{k} is {json.dumps(v)}, not {least}"
    return None


OFF_PLAN = 10.0
"""A completed run whose N or D is more than this factor from its plan is no result of the
run planned: a trainer that ignored its {n_embd} or {tokens} (or wrote another run's
result), fitted at another budget (an N 100x its plan put C = 9e12 in a 9e10 budget, and
the IsoFLOP fit dropped that budget without naming the run). Other trainers count N in
their own way, but not ten times apart."""


def _off_plan(run_dir: Path, r: dict) -> str | None:
    """Why a completed result is too far from the run's plan (sweep.json's), or None."""
    if r.get("status") != "completed":
        return None
    planned = runfolder.read_sweep_meta(run_dir).get("planned", {})
    for k, what in (("params", "N"), ("tokens", "D")):
        p, v = planned.get(k), r.get(k)
        if not all(isinstance(x, int | float) and x > 0 for x in (p, v)):
            continue
        if max(v / p, p / v) > OFF_PLAN:
            return (
                f"{k} is {v:g}, {v / p:.3g}x the {p:g} planned for this run ({what}): "
                f"more than {OFF_PLAN:g}x off its plan, it is no result of this run (did the "
                "trainer ignore its placeholders, or write another run's result?)"
            )
    return None


def _checked_result(run_dir: Path) -> dict | None:
    """RUN/result.json; one that cannot be read or breaks the contract is kept as
    result.invalid-K.json and replaced by a failed result saying why."""
    try:
        r = read_result(run_dir)
        why = (
            runfolder.result_problem(run_dir) if r is None else _invalid(r) or _off_plan(run_dir, r)
        )
    except DataError as exc:  # a value of another type, another format_version
        r, why = None, str(exc)
    if why is None:
        return r
    kept = _keep(run_dir, "invalid")
    error = f"{run_dir / RESULT}: {why.removeprefix(str(run_dir / RESULT) + ': ')}; kept as {kept}"
    runfolder.write_result(run_dir, {"status": "failed", "error": error})
    return read_result(run_dir)


def _keep(run_dir: Path, kind: str) -> str:
    """Move RUN/result.json to result.KIND-K.json (the first K free); returns the name."""
    k = 1
    while (run_dir / f"result.{kind}-{k}.json").exists():
        k += 1
    os.replace(run_dir / RESULT, run_dir / f"result.{kind}-{k}.json")
    return f"result.{kind}-{k}.json"


def _set_aside(run_dir: Path, r: dict | None) -> None:
    """Move a non-final result out of the way, so the trainer resumes instead of stopping."""
    if r is not None:
        _keep(run_dir, r["status"])  # a status of STATUSES (_checked_result)


def _outcome(run_dir: Path, status: str, attempts: int, rc) -> dict:
    return {"name": run_dir.name, "status": status, "attempts": attempts, "returncode": rc}
