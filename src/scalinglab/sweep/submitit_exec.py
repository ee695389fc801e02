"""The submitit executor (extra `[slurm]`): SLURM through submitit.

On SLURM the sweep is one array job (`map_array`, at most `workers` tasks at
once); each task is a `Checkpointable`. Near its time limit (or on preemption
with a signal) submitit's handler in the task requeues it and exits; the exit
stops the trainer with SIGTERM (worker.run_task), which saves a checkpoint, and
the requeued task resumes from it. A preemption that SIGTERMs the whole job
makes the trainer checkpoint directly, and SLURM's requeue resumes it. With
cluster="local" (submitit's LocalExecutor, used by the tests) every job is a local process; since that executor starts all
jobs at once, the runs are submitted `workers` at a time instead (as a study
always does: it chooses which run goes next). Ctrl-C reaches every process of the
terminal's group: a local job stops its trainer, which saves a checkpoint and ends
preempted, as under the local executor; its controller (submitit's, which would print a
KeyboardInterrupt traceback) is started with SIGINT blocked and waits for the job. A
SIGINT (or SIGTERM) sent to the driver alone reaches none of them, so the driver, when
interrupted, sends each local job's processes the SIGINT a Ctrl-C would have sent them
(a job given both stops once).
"""

import contextlib
import os
import signal
import tempfile
import time
from pathlib import Path

from scalinglab.errors import ConfigError, require
from scalinglab.sweep.executor_base import Executor
from scalinglab.sweep.worker import STOP_SECONDS, run_task

POLL_SECONDS = 0.5


def _task_class():
    submitit = require("submitit", "slurm", "the submitit executor (--executor submitit)")

    class SweepRun(submitit.helpers.Checkpointable):
        """One run; on preemption submitit requeues it with the same arguments."""

        def __call__(self, run_dir: str, retries: int, command) -> dict:
            # a local job inherits its controller's blocked SIGINT: Ctrl-C stops it again,
            # once (the terminal's and the driver's SIGINT must not cut its trainer's save)
            signal.signal(signal.SIGINT, _interrupt_once)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            return run_task(run_dir, retries=retries, command=command)

    return submitit, SweepRun


def _interrupt_once(signum, frame) -> None:
    """A job's SIGINT handler: KeyboardInterrupt (run_task stops its trainer, which saves
    a checkpoint), and any later SIGINT ignored while that trainer saves."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _descendants(pids: set[int]) -> set[int]:
    """The processes below `pids` (their children, theirs, ...), from Linux's /proc;
    none where there is no /proc."""
    parent = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = Path(entry.path, "stat").read_text()
                    parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = set(), set(pids)
    while todo:
        todo = {p for p, pp in parent.items() if pp in todo and p not in found}
        found |= todo
    return found


class SubmititExecutor(Executor):
    name = "submitit"

    def __init__(
        self,
        folder: Path,
        workers: int = 1,
        threads: int = 1,
        gpus: int = 0,
        cluster: str | None = None,
        timeout_min: int = 60 * 24,
        partition: str | None = None,
        params: dict | None = None,
        options: dict | None = None,
    ):
        """`params` go to `update_parameters` (e.g. slurm_account, slurm_mem_gb);
        `options` to the AutoExecutor (e.g. slurm_max_num_timeout)."""
        super().__init__(workers)
        self.submitit, self.task = _task_class()
        errors = self.submitit.core.utils
        self.lost = (errors.UncompletedJobError, errors.FailedJobError)
        self.folder = Path(folder)
        self.threads, self.gpus = threads, gpus
        self.cluster, self.timeout_min, self.partition = cluster, timeout_min, partition
        self.params, self.options = dict(params or {}), dict(options or {})
        self.ex = self.job = None
        # submitit checks the parameters as they are set: have it do so now, before any run
        # folder is written (its executor makes the folder it is given)
        with tempfile.TemporaryDirectory() as tmp:
            self._executor(Path(tmp))

    def _executor(self, folder: Path | None = None):
        ex = self.submitit.AutoExecutor(
            folder=(folder or self.folder) / "%j", cluster=self.cluster, **self.options
        )
        params = {"timeout_min": self.timeout_min, "cpus_per_task": self.threads}
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        if ex.cluster == "slurm":
            params["slurm_array_parallelism"] = self.workers
            if self.partition:
                params["slurm_partition"] = self.partition
        try:
            ex.update_parameters(**{**params, **self.params})
        except (NameError, AssertionError) as exc:  # submitit's own checks, on one line
            why = " ".join(str(exc).split())
            raise ConfigError(f"--submitit-param: {why}") from None
        return ex

    @property
    def self_limiting(self) -> bool:
        # on SLURM a batch is one array job, `workers` tasks at a time (set in _executor)
        return self.ex is not None and self.ex.cluster == "slurm"

    def _open(self) -> None:
        self.ex = self._executor()
        self.job = self.task()

    @contextlib.contextmanager
    def _deaf_controllers(self):
        """Start local jobs' controllers with SIGINT blocked (the mask is inherited): on
        Ctrl-C each printed a KeyboardInterrupt traceback to the sweep's terminal and
        killed its job a second later, before the job's trainer had saved."""
        if self.ex.cluster != "local":
            yield
            return
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _submit(self, run_dir: Path, threads: int | None):
        with self._deaf_controllers():
            if threads in (None, self.threads):
                return self.ex.submit(self.job, str(run_dir), self.retries, self.command)
            self.ex.update_parameters(cpus_per_task=threads)  # this job only
            try:
                return self.ex.submit(self.job, str(run_dir), self.retries, self.command)
            finally:
                self.ex.update_parameters(cpus_per_task=self.threads)

    def _submit_all(self, run_dirs: list[Path]) -> list:
        todo = [str(d) for d in run_dirs]
        n = len(todo)
        return self.ex.map_array(self.job, todo, [self.retries] * n, [self.command] * n)

    def _done(self, handles: list, timeout: float) -> list:
        deadline = time.monotonic() + timeout
        while True:  # submitit has no wait-for-any: poll the jobs' state
            done = [j for j in handles if j.done()]
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))

    def _result(self, handle) -> dict:
        return handle.result()

    def _interrupt(self) -> None:
        # Ctrl-C: each local job stops its trainer, which saves a checkpoint and ends
        # preempted; wait for them, as the local executor does. A terminal's Ctrl-C reached
        # the jobs already; a SIGINT or SIGTERM sent to the driver alone did not, so each
        # job's processes get SIGINT here, again as jobs start (a job stops once). SLURM's
        # jobs are the scheduler's (scancel ends them).
        if self.ex.cluster != "local":
            return
        jobs = [h for h, _ in self._running.values()]
        deadline = time.monotonic() + STOP_SECONDS + 10
        told: set[int] = set()
        while jobs and time.monotonic() < deadline:
            jobs = [j for j in jobs if not j.done()]
            controllers = {int(j.job_id) for j in jobs}  # a local job's id: its pid
            for pid in sorted(_descendants(controllers) - told):  # a controller blocks it
                told.add(pid)
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGINT)
            time.sleep(POLL_SECONDS)

    def _close(self) -> None:
        # submitit makes the folder pattern's literal "%j" too; an empty one is clutter
        with contextlib.suppress(OSError):
            (self.folder / "%j").rmdir()
