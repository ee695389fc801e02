"""The Ray executor (extra `[ray]`): each run a Ray task with its CPU/GPU resources.

With `address` it joins an existing cluster (`ray.init(address=...)`); if Ray
is already initialised in this process it uses that; otherwise it starts a
local instance with `workers × threads` CPUs and shuts it down at the end.
A task runs `worker.run_task`, which starts the trainer as a child process, so
a run that Ray retries after a lost node resumes from its checkpoints.
"""

from pathlib import Path

from scalinglab.errors import require
from scalinglab.sweep.worker import run_task


class RayExecutor:
    name = "ray"

    def __init__(self, workers: int = 1, threads: int = 1, gpus: float = 0, address=None):
        self.workers = max(1, workers)
        self.threads = max(1, threads)
        self.gpus = gpus
        self.address = address
        self.ray = require("ray", "ray", "the ray executor (--executor ray)")

    def run(self, run_dirs: list[Path], events, retries: int = 0, command=None) -> list[dict]:
        ray = self.ray
        started_here = False
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(
                    num_cpus=self.workers * self.threads,
                    include_dashboard=False,
                    log_to_driver=False,
                )
            started_here = True
        try:
            task = ray.remote(num_cpus=self.threads, num_gpus=self.gpus)(run_task)
            refs = {task.remote(str(d), retries, command): d for d in run_dirs}
            for d in run_dirs:
                events.queued(d.name)
            outcomes, pending = [], list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                for ref in done:
                    outcomes.append(ray.get(ref))
                    events.finished(outcomes[-1])
                events.tick()
            return outcomes
        finally:
            if started_here:
                ray.shutdown()
