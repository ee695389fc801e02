"""Where runs execute: the executor settings (one typed config) and `make_executor`.

`ExecutorConfig` is the one description of an executor, shared by `scalinglab
sweep`, `scalinglab study` and `scalinglab quickstart` (their flags are made
from its fields by `config.add_flags`) and by Python callers:

    cfg = ExecutorConfig(executor="ray", workers=2)
    with make_executor(cfg, out).open(retries=cfg.retries) as ex: ...

The executors themselves (sweep/local.py, ray_exec.py, submitit_exec.py) share
the interface of sweep/executor_base.py.
"""

import math
import os
import re
import shutil
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from scalinglab.config import setting
from scalinglab.errors import ConfigError, require
from scalinglab.sweep.executor_base import Executor
from scalinglab.sweep.local import LocalExecutor
from scalinglab.sweep.ray_exec import RayExecutor, check_address_form, check_gpus, gpus_here
from scalinglab.sweep.submitit_exec import SubmititExecutor

EXECUTORS = ("local", "ray", "submitit")
CLUSTERS = ("auto", "local", "slurm", "debug")
# The executors that read each setting: any other one would ignore it without a word.
READ_BY = {
    "ray_address": ("ray",),
    "gpus_per_run": ("ray", "submitit"),
    "cluster": ("submitit",),
    "slurm_partition": ("submitit",),
    "timeout_min": ("submitit",),
    "submitit_params": ("submitit",),
}

# submitit parameters that a flag of ours sets: given as --submitit-param too, the
# parameter would win over the flag (and its check) without a word
OWN_FLAG = {
    **dict.fromkeys(("timeout_min", "slurm_time", "local_timeout_min"), "--timeout-min"),
    **dict.fromkeys(("cpus_per_task", "slurm_cpus_per_task"), "--threads"),
    **dict.fromkeys(
        ("gpus_per_node", "slurm_gpus_per_node", "local_gpus_per_node"), "--gpus-per-run"
    ),
    "slurm_partition": "--slurm-partition",
    "slurm_array_parallelism": "--workers",
}

# submitit parameters that would make a job several tasks, each starting the run's trainer
# into the same folder (and its result one per task, which a sweep does not read)
ONE_TASK = ("nodes", "tasks_per_node", "slurm_nodes", "slurm_ntasks_per_node")


def _flag(name: str) -> str:
    return "--submitit-param" if name == "submitit_params" else "--" + name.replace("_", "-")


def slurm_here() -> bool:
    """Whether SLURM takes jobs from this machine (submitit's own test: `srun` on PATH)."""
    return shutil.which("srun") is not None


@dataclass
class ExecutorConfig:
    """Where and how many runs execute at a time (the flags of `sweep` and `study`)."""

    executor: str = setting("local", "where runs execute", choices=EXECUTORS)
    workers: int = setting(1, "runs at a time; for submitit on SLURM, the array's parallelism")
    threads: int = setting(0, "torch threads per run", shown="cores // workers")
    retries: int = setting(1, "retries of a failed run within one invocation")
    ray_address: str = setting(
        "", "ray: join the cluster at this address", shown="start a local one"
    )
    gpus_per_run: float = setting(0.0, "ray/submitit: GPUs per run")
    cluster: str = setting(
        "auto",
        "submitit: where jobs go (auto: SLURM when available, else local processes)",
        choices=CLUSTERS,
    )
    slurm_partition: str = setting("", "submitit: SLURM partition", shown="the cluster's")
    timeout_min: int = setting(24 * 60, "submitit: job time limit in minutes")
    submitit_params: dict = field(
        default_factory=dict,
        metadata={"help": "submitit: executor parameters (slurm_account, slurm_mem_gb, ...)"},
    )

    def __post_init__(self):
        for name, choices in (("executor", EXECUTORS), ("cluster", CLUSTERS)):
            if getattr(self, name) not in choices:
                raise ConfigError(
                    f"--{name} {getattr(self, name)!r} is not one of {', '.join(choices)}"
                )
        for name, low in (("workers", 1), ("threads", 0), ("retries", 0), ("timeout_min", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be an integer >= {low}, got {v!r}"
                )
        if isinstance(self.gpus_per_run, bool) or not isinstance(self.gpus_per_run, int | float):
            raise ConfigError(f"--gpus-per-run must be a number, got {self.gpus_per_run!r}")
        if not self.gpus_per_run >= 0 or math.isinf(self.gpus_per_run):  # nan: int() raised
            raise ConfigError(
                f"--gpus-per-run must be a finite number >= 0, got {self.gpus_per_run!r}"
            )
        if self.executor == "submitit" and self.gpus_per_run != int(self.gpus_per_run):
            raise ConfigError(  # submitit would ask SLURM for int(0.5) = 0 GPUs, silently
                f"--gpus-per-run {self.gpus_per_run:g}: submitit asks for whole GPUs per job "
                "(a fraction of a GPU is Ray's)"
            )
        if not isinstance(self.submitit_params, dict):
            raise ConfigError("submitit_params must be a table of submitit parameters")
        for key in self.submitit_params:
            if key in OWN_FLAG:
                raise ConfigError(
                    f"--submitit-param {key}: set it with {OWN_FLAG[key]}, which checks it"
                )
            if key in ONE_TASK and self.submitit_params[key] != 1:
                raise ConfigError(
                    f"--submitit-param {key}={self.submitit_params[key]}: a run is one task "
                    "on one node (its trainer is started once)"
                )
        self._check_read()
        if self.executor == "ray" and self.ray_address:
            check_address_form(self.ray_address)  # a --dry-run's too
        if self.slurm_partition and not re.fullmatch(r"[^\s,]+(,[^\s,]+)*", self.slurm_partition):
            raise ConfigError(
                f"--slurm-partition {self.slurm_partition!r}: expected a SLURM partition's "
                "name, or several joined by commas (gpu,cpu), with no spaces"
            )

    def _check_read(self) -> None:
        """Refuse a setting that the chosen executor (or submitit's chosen cluster) does
        not read: it would be ignored without a word."""
        for f in fields(self):
            readers = READ_BY.get(f.name, EXECUTORS)
            default = f.default_factory() if f.default is MISSING else f.default
            if self.executor not in readers and getattr(self, f.name) != default:
                raise ConfigError(
                    f"{_flag(f.name)} is read by --executor {' or '.join(readers)} only, "
                    f"not {self.executor}: drop it, or choose that executor"
                )
        if self.executor == "submitit" and self.cluster in ("local", "debug"):
            unused = self._slurm_only()
            if unused:
                raise ConfigError(
                    f"{unused[0]} is SLURM's: --cluster {self.cluster} runs the jobs as local "
                    "processes and would not use it"
                )

    def _slurm_only(self) -> list[str]:
        """The settings given that only SLURM reads (submitit ignores them elsewhere)."""
        given = ["--slurm-partition"] if self.slurm_partition else []
        return given + [
            f"--submitit-param {k}" for k in self.submitit_params if k.startswith("slurm_")
        ]

    def check_here(self) -> None:
        """Refuse an executor this machine cannot start (its package absent, --cluster
        slurm without SLURM) before anything is planned or written: a --dry-run passed
        such a command, and the run that followed failed."""
        if self.executor == "ray":
            ray = require("ray", "ray", "the ray executor (--executor ray)")
            if self.ray_address in ("", "local") and self.gpus_per_run and not ray.is_initialized():
                have = gpus_here()  # the Ray started here has these (the check when it starts)
                if have is not None:
                    check_gpus(self.gpus_per_run, have)
        if self.executor == "submitit":
            require("submitit", "slurm", "the submitit executor (--executor submitit)")
        if self.executor == "submitit" and self.cluster == "slurm" and not slurm_here():
            raise ConfigError(  # submitit's traceback, after the run folders were written
                "--cluster slurm: no SLURM here (no 'srun' on PATH); --cluster local runs the "
                "jobs as local processes"
            )
        cores = os.cpu_count() or 1
        if self.runs_here and self.threads > cores:  # --threads 100000: torch crashed
            raise ConfigError(
                f"--threads {self.threads}: this machine has {cores} cores, which its runs "
                f"share; a run's threads beyond them only slow it (give at most {cores}, or "
                "leave --threads out to share the cores among the workers)"
            )

    @property
    def threads_per_run(self) -> int:
        """`threads`, or this machine's cores shared among the workers."""
        return self.threads or max(1, (os.cpu_count() or 1) // self.workers)

    @property
    def submitit_cluster(self) -> str:
        """--cluster with auto resolved as submitit resolves it: SLURM where `srun` is on
        PATH, else local processes."""
        if self.cluster != "auto":
            return self.cluster
        return "slurm" if slurm_here() else "local"

    def notes(self) -> list[str]:
        """Warnings about where the runs will go, for the terminal before they start."""
        notes = []
        env = os.environ.get("RAY_ADDRESS")
        if self.executor == "ray" and not self.ray_address and env:  # Ray's own would join it
            notes.append(
                f"RAY_ADDRESS is set ({env}) but --ray-address is not: the runs go to a local "
                f"Ray started here, not that cluster (give --ray-address {env} to join it)"
            )
        cores, threads = os.cpu_count() or 1, self.threads_per_run
        if self.runs_here and self.workers * threads > cores:
            notes.append(
                f"--workers {self.workers} at {threads} thread(s) each can take "
                f"{self.workers * threads} threads on this machine's {cores} cores: runs at "
                "the same time slow each other"
            )
        if self.executor != "submitit" or self.cluster != "auto" or slurm_here():
            return notes
        slurm = self._slurm_only()
        unused = f"; {', '.join(slurm)} {'is' if len(slurm) == 1 else 'are'} not used"
        unused = unused if slurm else ""
        return [*notes, f"--cluster auto: no SLURM here (no 'srun' on PATH): the jobs run "
                        f"as local processes{unused}"]  # fmt: skip

    @property
    def runs_here(self) -> bool:
        """Whether the runs share this machine's cores: the local executor, a local Ray
        instance, submitit's local cluster."""
        return (
            self.executor == "local"
            or (self.executor == "ray" and self.ray_address in ("", "local"))
            or (self.executor == "submitit" and self.submitit_cluster in ("local", "debug"))
        )

    @property
    def cores_here(self) -> int | None:
        """This machine's cores where the runs share them (`runs_here`) and `threads` was
        left to them: the most threads one run alone should take. None where runs go to
        other machines, or `--threads` was given."""
        return (os.cpu_count() or 1) if self.runs_here and not self.threads else None


def make_executor(cfg: ExecutorConfig, out: str | Path) -> Executor:
    """The executor `cfg` describes, for a sweep or study folder `out` (submitit keeps its
    job files in OUT/submitit); an absent optional package names its pip install."""
    cfg.check_here()
    threads = cfg.threads_per_run
    if cfg.executor == "local":
        return LocalExecutor(cfg.workers)
    if cfg.executor == "ray":
        return RayExecutor(cfg.workers, threads, cfg.gpus_per_run, cfg.ray_address or None)
    return SubmititExecutor(
        Path(out) / "submitit",
        cfg.workers,
        threads,
        gpus=int(cfg.gpus_per_run),
        cluster=cfg.submitit_cluster,
        timeout_min=cfg.timeout_min,
        partition=cfg.slurm_partition or None,
        params=cfg.submitit_params,
    )
