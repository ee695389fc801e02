"""The Ray executor (extra `[ray]`): each run a Ray task with its CPU/GPU resources.

With `address` it joins an existing cluster (`ray.init(address=...)`); if Ray
is already initialised in this process it uses that; otherwise it starts a
local instance with `workers × threads` CPUs and shuts it down at the end.
A task runs `worker.run_task`, which starts the trainer as a child process, so
a run that Ray retries after a lost node resumes from its checkpoints. A batch
of runs (a sweep) is handed over at once and Ray runs as many as the cluster's
resources allow; a study hands runs over `workers` at a time.
"""

import contextlib
import signal
import socket
import threading
from pathlib import Path

from scalinglab.errors import ConfigError, require
from scalinglab.sweep.executor_base import Executor
from scalinglab.sweep.worker import STOP_SECONDS, run_task

CONNECT_SECONDS = 10


def check_address_form(address: str) -> tuple[str, str] | None:
    """Refuse a --ray-address that is no address (ray.init raised a traceback for it);
    the (host, port) of a HOST:PORT or ray://HOST:PORT, None for auto and local."""
    if address in ("auto", "local"):
        return None  # ray.init's own: it says so at once when there is no cluster
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:6379, IPv6 as Ray writes it
    if not sep or not host.strip() or not port.isdigit():
        raise ConfigError(
            f"--ray-address {address!r}: expected HOST:PORT (a cluster's head), "
            "ray://HOST:PORT (Ray Client) or auto"
        )
    return host, port


@contextlib.contextmanager
def _signal_handlers_kept():
    """Restore the SIGTERM and SIGINT handlers on the way out. ray.init installs a SIGTERM
    handler that exits at once: a SIGTERM to the driver (`kill PID`, `timeout`, a
    scheduler) then ended a Ray sweep or study in Ray's crash dump and SIGABRT, without the
    runs' orderly stop, `error: terminated` and exit 143 (found by an audit of signals)."""
    main = threading.current_thread() is threading.main_thread()
    kept = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
    try:
        yield
    finally:
        for signum, handler in kept.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(signum, handler)


def check_address(address: str) -> None:
    """Refuse a --ray-address that is no address, or where nothing answers: ray.init
    raised a traceback for the one and retried the other for minutes, silently."""
    where = check_address_form(address)
    if where is None:
        return
    host, port = where
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise ConfigError(f"--ray-address {address}: nothing answers there ({why})") from None


def gpus_here() -> int | None:
    """The GPUs a local Ray instance started here would have, found as Ray finds them (its
    accelerator manager for "GPU": the devices, no more than CUDA_VISIBLE_DEVICES names),
    without starting Ray; None where this version of Ray cannot be asked."""
    try:
        from ray._private import accelerators

        manager = accelerators.get_accelerator_manager_for_resource("GPU")
        count = manager.get_current_node_num_accelerators()
        visible = manager.get_current_process_visible_accelerator_ids()
    except Exception:  # a private API of Ray's: the check when Ray starts remains
        return None
    return count if visible is None else min(count, len(visible))


def check_gpus(gpus: float, have: float) -> None:
    """Refuse more GPUs per run than a local Ray instance has: Ray would wait for them
    forever, silently."""
    if gpus > have:
        raise ConfigError(
            f"--gpus-per-run {gpus:g}: this machine has {have:g} GPU(s) for Ray; no run could start"
        )


class RayExecutor(Executor):
    name = "ray"
    self_limiting = True  # by the cluster's resources, as Ray schedules tasks

    def __init__(self, workers: int = 1, threads: int = 1, gpus: float = 0, address=None):
        super().__init__(workers)
        self.threads = max(1, threads)
        self.gpus = gpus
        self.address = address
        self.ray = require("ray", "ray", "the ray executor (--executor ray)")
        self.lost = (self.ray.exceptions.RayError,)  # a worker or its node died
        self.started_here = False
        self.task = None
        if address:
            check_address(address)

    def _open(self) -> None:
        with _signal_handlers_kept():  # ray.init puts its own SIGTERM handler in the sweep's
            self._init()
        self.task = self.ray.remote(num_cpus=self.threads, num_gpus=self.gpus)(run_task)

    def _init(self) -> None:
        ray = self.ray
        self.started_here = not ray.is_initialized()
        if self.started_here and self.address:
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
                self.started_here = False
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ConfigError(f"--ray-address {self.address}: {first}") from None
        elif self.started_here:
            ray.init(
                address="local",  # not RAY_ADDRESS's cluster, which refuses num_cpus
                num_cpus=self.workers * self.threads,
                include_dashboard=False,
                log_to_driver=False,
            )
            try:  # ExecutorConfig.check_here refused it already, where gpus_here could tell
                check_gpus(self.gpus, ray.cluster_resources().get("GPU", 0))
            except ConfigError:
                self._close()
                raise

    def _submit(self, run_dir: Path, threads: int | None):
        task = self.task if threads in (None, self.threads) else self.task.options(num_cpus=threads)
        return task.remote(str(run_dir), self.retries, self.command)

    def _done(self, handles: list, timeout: float) -> list:
        done, rest = self.ray.wait(handles, num_returns=1, timeout=timeout)
        if done and rest:  # and any others already finished, without waiting
            done += self.ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        return done

    def _result(self, handle) -> dict:
        return self.ray.get(handle)

    def _interrupt(self) -> None:
        # Ctrl-C: a cancelled task gets KeyboardInterrupt inside run_task, which stops its
        # trainer with SIGTERM (a checkpoint, status `preempted`); a rerun resumes it.
        # Wait for that before _close: ray.shutdown() kills the workers, and Ray kills a
        # dead worker's children with SIGKILL (the trainers lost up to ckpt_every steps).
        handles = [h for h, _ in self._running.values()]
        for h in handles:
            self.ray.cancel(h)
        with contextlib.suppress(Exception):
            self.ray.wait(handles, num_returns=len(handles), timeout=STOP_SECONDS)

    def _close(self) -> None:
        if self.started_here:
            self.ray.shutdown()
            self.started_here = False
