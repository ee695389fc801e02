"""The sweep driver: plan, write each run's folder, hand the runs to an executor.

The driver owns no results. Before a run starts it writes, into OUT/runs/NAME/:
`run.toml` (the trainer's input: the resolved RunConfig) and `sweep.json`
(the sweep's name, the design's columns for the runs table, the planned N, D,
C). Everything after that is written by the trainer into the same folder, so
a driver killed at any moment loses nothing: rerunning the same command skips
completed (and diverged) runs, resumes interrupted ones from their checkpoints
and retries failed ones.
"""

import logging
import os
from pathlib import Path

from scalinglab.config import dumps_toml
from scalinglab.data.shards import content_id, read_manifest
from scalinglab.errors import DataError, SweepError
from scalinglab.fsio import atomic_write_json, atomic_write_text
from scalinglab.sweep import design
from scalinglab.sweep.design import Context, PlannedRun
from scalinglab.sweep.spec import SweepSpec
from scalinglab.sweep.status import SweepProgress
from scalinglab.sweep.table import SWEEP_JSON, run_row
from scalinglab.sweep.worker import FINAL, RUN_TOML, read_result

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


def open_context(spec: SweepSpec) -> Context:
    """Check the shards folder and take its vocabulary and identity (manifest hash)."""
    try:
        manifest = read_manifest(spec.data)
    except DataError as exc:
        raise DataError(
            f"{spec.source or 'spec'}: data = {str(spec.data)!r}: {exc} (make it with e.g. "
            f"`scalinglab prepare stdlib --tokenizer byte --out {spec.data}`)"
        ) from None
    data_id = content_id(manifest)[:16]
    return Context(spec=spec, vocab=int(manifest["vocab_size"]), data_id=data_id)


def make_plan(spec: SweepSpec) -> tuple[Context, list[PlannedRun]]:
    ctx = open_context(spec)
    return ctx, design.plan(ctx)


def default_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def write_run_folder(run: PlannedRun, out: Path, spec: SweepSpec, threads: int) -> Path:
    """Create OUT/runs/NAME with run.toml and sweep.json (idempotent)."""
    run_dir = out / "runs" / run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = run.config.to_dict()
    # Runs execute elsewhere (Ray workers, SLURM nodes): give them an absolute path.
    cfg["train"]["data"] = str(Path(spec.data).resolve())
    cfg["train"]["threads"] = threads
    atomic_write_text(run_dir / RUN_TOML, dumps_toml(cfg))
    if not (run_dir / SWEEP_JSON).exists():
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": "scalinglab.sweep_run",
            "sweep": spec.name,
            "design": spec.kind,
            "run_hash": run.run_hash,
            "group": run.group,
            "planned": run.describe(),
        }
        atomic_write_json(run_dir / SWEEP_JSON, meta)
    return run_dir


def _write_sweep_files(spec: SweepSpec, out: Path, runs: list[PlannedRun]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "sweep.toml", dumps_toml(spec.raw))
    plan = {
        "format_version": FORMAT_VERSION,
        "sweep": spec.name,
        "design": spec.kind,
        "runs": [r.describe() for r in runs],
    }
    atomic_write_json(out / "plan.json", plan)


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    executor,
    threads: int,
    retries: int = 0,
    listener=None,
    command: list[str] | None = None,
) -> list[dict]:
    """Run the sweep to the end; return every run's outcome (skipped runs included).

    An IsoFLOP design with `recentre = true` runs budget by budget: each budget after
    the first is centred on the tokens per parameter measured at the previous
    budget's loss minimum."""
    out = Path(out)
    if spec.kind == "wsd":  # stable runs, then cooldown branches seeded from them
        from scalinglab.sweep import wsd

        return wsd.run_sweep(spec, out, executor, threads, retries, listener, command)
    ctx = open_context(spec)
    d = spec.design
    staged = d["kind"] == "isoflop" and d["recentre"]
    if not staged:
        stages = [design.plan(ctx)]
    else:
        stages = [design.isoflop_budget(ctx, 0, d["tokens_per_param"])]
    outcomes: list[dict] = []
    k = 0
    all_runs: list[PlannedRun] = []
    while True:
        runs = stages[k]
        all_runs += runs
        _write_sweep_files(spec, out, all_runs)
        outcomes += _run_stage(spec, out, runs, executor, threads, retries, listener, command)
        k += 1
        if not staged or k >= len(d["budgets"]):
            return outcomes
        rows = [run_row(out / "runs" / r.name) for r in runs]
        centre = design.measured_centre(rows) or d["tokens_per_param"]
        log.info("budget %.3g: re-centred on %.4g tokens/parameter", d["budgets"][k], centre)
        stages.append(design.isoflop_budget(ctx, k, centre))


def _run_stage(spec, out, runs, executor, threads, retries, listener, command) -> list[dict]:
    dirs, skipped = [], []
    for r in runs:
        run_dir = write_run_folder(r, out, spec, threads)
        res = read_result(run_dir)
        if res and res.get("status") in FINAL:
            skipped.append((r.name, res["status"]))
        else:
            dirs.append(run_dir)
    progress = SweepProgress(runs, out / "runs", listener, skipped=skipped)
    outcomes = [
        {"name": n, "status": s, "attempts": 0, "returncode": None, "skipped": True}
        for n, s in skipped
    ]
    for o in outcomes:
        progress.skipped_run(o)
    if dirs:
        outcomes += executor.run(dirs, progress, retries=retries, command=command)
    return outcomes


def make_executor(name: str, out: Path, workers: int, threads: int, **opts):
    """The executor called `name`; an absent optional package names its pip install."""
    if name == "local":
        from scalinglab.sweep.local import LocalExecutor

        return LocalExecutor(workers)
    if name == "ray":
        from scalinglab.sweep.ray_exec import RayExecutor

        return RayExecutor(workers, threads, opts.get("gpus", 0), opts.get("ray_address"))
    if name == "submitit":
        from scalinglab.sweep.submitit_exec import SubmititExecutor

        return SubmititExecutor(
            out / "submitit",
            workers,
            threads,
            gpus=int(opts.get("gpus", 0)),
            cluster=opts.get("cluster"),
            timeout_min=opts.get("timeout_min", 60 * 24),
            partition=opts.get("partition"),
            params=opts.get("submitit_params"),
        )
    raise SweepError(f"--executor {name!r} is not one of local, ray, submitit")
