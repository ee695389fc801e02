"""The local executor: a trainer process per run, `workers` at a time.

Needs nothing beyond the standard library. Each worker is a thread that runs
`worker.run_task` (which starts and waits for the trainer process), so at most
`workers` trainers run at once; torch threads per trainer are set in each
run.toml by the driver (cores // workers by default).
"""

import concurrent.futures as cf
from pathlib import Path

from scalinglab.sweep.worker import run_task, stop_all


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int = 1):
        self.workers = max(1, workers)

    def run(self, run_dirs: list[Path], events, retries: int = 0, command=None) -> list[dict]:
        """Run every run folder to a final state; report to `events` as they go."""
        outcomes = []

        def one(d: Path) -> dict:
            events.started(d.name)
            return run_task(d, retries=retries, command=command)

        pool = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="sweep-worker")
        try:
            pending = {pool.submit(one, d) for d in run_dirs}
            while pending:
                done, pending = cf.wait(pending, timeout=1.0, return_when=cf.FIRST_COMPLETED)
                for f in done:
                    outcomes.append(f.result())
                    events.finished(outcomes[-1])
                events.tick()
        except BaseException:
            # Ctrl-C: queued runs are not started; running trainers get SIGTERM, save a
            # checkpoint and end `preempted`; a rerun resumes them.
            pool.shutdown(wait=False, cancel_futures=True)
            stop_all()
            raise
        finally:
            pool.shutdown(wait=True)
        return outcomes
