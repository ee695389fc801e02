"""What every executor is: runs handed over one at a time, outcomes collected as they end.

A scheduler (the sweep driver, the study) opens an executor, `submit`s run
folders when it chooses, and `wait`s for outcomes; it decides what runs next,
the executor only where and how (a thread, a Ray task, a submitit job). Each
run is one call of `worker.run_task`, wherever it executes. The batch
`run(run_dirs, events, ...)` the sweep driver uses is written here once, on top
of that interface.

    with executor.open(retries=1):
        executor.submit(run_dir)             # when executor.running < executor.workers
        executor.submit(big, threads=8)      # a run that needs more than one worker's threads
        for outcome in executor.wait(1.0):   # finished runs: {"name", "status", ...}
            ...

Leaving the `with` block by an exception (Ctrl-C) interrupts the runs still
going: their trainers get SIGTERM, save a checkpoint and end `preempted`, so a
rerun resumes them.
"""

from pathlib import Path

from scalinglab.sweep.worker import lost_outcome


class Executor:
    """The base: subclasses implement `_submit`, `_done`, `_result` (and maybe the hooks)."""

    name = ""
    # True where the backend itself keeps at most `workers` runs going (a SLURM array, a
    # Ray cluster's resources): a batch then hands it every run at once.
    self_limiting = False
    # True where a submitted run starts at once (a local thread); elsewhere the
    # progress display learns that it started from its run folder.
    starts_at_once = False
    # What `_result` raises for a job that ended without returning an outcome (killed for
    # memory, its node lost): the run is then failed, not the whole scheduler.
    lost: tuple[type[BaseException], ...] = ()

    def __init__(self, workers: int = 1):
        self.workers = max(1, workers)
        self.retries, self.command = 0, None
        self._running: dict[int, tuple[object, Path]] = {}  # id(handle) -> (handle, dir)

    # --- what a backend implements ------------------------------------------

    def _open(self) -> None:
        """Start the backend (a thread pool, a Ray instance, a submitit executor)."""

    def _submit(self, run_dir: Path, threads: int | None):
        """Start `worker.run_task(run_dir, self.retries, self.command)`, reserving `threads`
        CPUs for it where the backend reserves them (None: one worker's); return a handle."""
        raise NotImplementedError

    def _submit_all(self, run_dirs: list[Path]) -> list:
        return [self._submit(d, None) for d in run_dirs]

    def _done(self, handles: list, timeout: float) -> list:
        """The handles that have finished, waiting up to `timeout` s for the first one."""
        raise NotImplementedError

    def _result(self, handle) -> dict:
        """The outcome of a finished handle (run_task's return value)."""
        raise NotImplementedError

    def _interrupt(self) -> None:
        """Stop what still runs so that its trainers checkpoint (Ctrl-C)."""

    def _close(self) -> None:
        """Release the backend; called after every run has returned or been interrupted."""

    # --- the interface a scheduler uses ---------------------------------------

    def open(self, retries: int = 0, command: list[str] | None = None) -> "Executor":
        """Get ready to run; use as `with executor.open(...):`. `retries` and `command`
        are run_task's (a failed run's retries; the trainer command, for tests)."""
        self.retries, self.command = retries, command
        self._running = {}
        self._open()
        return self

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None and self._running:
                self._interrupt()
        finally:
            self._close()

    @property
    def running(self) -> int:
        """Runs submitted whose outcome `wait` has not returned yet."""
        return len(self._running)

    def submit(self, run_dir: Path, threads: int | None = None) -> object:
        """Start a run. `threads`: the CPUs it needs where they differ from one worker's
        (the run's own run.toml sets its torch threads; Ray and SLURM reserve these)."""
        h = self._submit(Path(run_dir), threads)
        self._running[id(h)] = (h, Path(run_dir))
        return h

    def submit_all(self, run_dirs: list[Path]) -> None:
        """Submit every run at once (one SLURM array job where the backend has them)."""
        dirs = [Path(d) for d in run_dirs]
        for h, d in zip(self._submit_all(dirs), dirs, strict=True):
            self._running[id(h)] = (h, d)

    def wait(self, timeout: float = 1.0) -> list[dict]:
        """Outcomes of the runs that finished, waiting up to `timeout` s for one."""
        if not self._running:
            return []
        done = self._done([h for h, _ in self._running.values()], timeout)
        outcomes = []
        for h in done:
            _, run_dir = self._running.pop(id(h))
            try:
                outcomes.append(self._result(h))
            except self.lost as exc:
                why = " ".join(" ".join(str(exc).strip().splitlines()[:2]).split())
                why = f"the {self.name} job ended without a result: {why or type(exc).__name__}"
                outcomes.append(lost_outcome(run_dir, why))
        return outcomes

    def run(self, run_dirs: list[Path], events, retries: int = 0, command=None) -> list[dict]:
        """Run every run folder to a final state, `workers` at a time; report to `events`
        (queued / started / finished / tick, as sweep.status.SweepProgress hears them)."""
        todo = [Path(d) for d in run_dirs]
        for d in todo:
            events.queued(d.name)
        outcomes: list[dict] = []
        with self.open(retries, command):
            if self.self_limiting:
                self.submit_all(todo)
                todo = []
            while todo or self.running:
                while todo and self.running < self.workers:
                    d = todo.pop(0)
                    self.submit(d)
                    if self.starts_at_once:
                        events.started(d.name)
                for o in self.wait(1.0):
                    outcomes.append(o)
                    events.finished(o)
                events.tick()
        return outcomes
