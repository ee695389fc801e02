"""The local executor: a trainer process per run, `workers` at a time.

Needs nothing beyond the standard library. Each run is a thread that calls
`worker.run_task` (which starts and waits for the trainer process), and the
scheduler keeps at most `workers` of them going; torch threads per trainer are
set in each run.toml (cores // workers by default).
"""

import concurrent.futures as cf
from pathlib import Path

from scalinglab.sweep.executor_base import Executor
from scalinglab.sweep.worker import allow_starts, run_task, stop_all


class LocalExecutor(Executor):
    name = "local"
    starts_at_once = True

    def __init__(self, workers: int = 1):
        super().__init__(workers)
        self.pool: cf.ThreadPoolExecutor | None = None

    def _open(self) -> None:
        allow_starts()
        self.pool = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="sweep-worker")

    def _submit(self, run_dir: Path, threads: int | None) -> cf.Future:  # threads: run.toml's
        return self.pool.submit(run_task, run_dir, self.retries, self.command)

    def _done(self, handles: list, timeout: float) -> list:
        done, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def _result(self, handle: cf.Future) -> dict:
        return handle.result()

    def _interrupt(self) -> None:
        # Ctrl-C: queued runs are not started; running trainers get SIGTERM, save a
        # checkpoint and end `preempted`; a rerun resumes them.
        self.pool.shutdown(wait=False, cancel_futures=True)
        stop_all()

    def _close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
