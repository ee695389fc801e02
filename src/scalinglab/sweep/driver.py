"""The sweep driver: plan, write each run's folder, hand the runs to an executor,
stage by stage (design.stages).

The driver owns no results. Before a run starts it writes, into OUT/runs/NAME/:
`run.toml` (the trainer's input: the resolved RunConfig) and `sweep.json`
(the sweep's name, the design's columns for the runs table, the planned N, D,
C). Everything after that is written by the trainer into the same folder, so
a driver killed at any moment loses nothing: rerunning the same command skips
completed (and diverged) runs, resumes interrupted ones from their checkpoints
and retries failed ones.
"""

import logging
import shutil
from pathlib import Path

from scalinglab import runfolder
from scalinglab.config import RunConfig, dumps_toml, load_toml
from scalinglab.data.shards import content_id, read_manifest
from scalinglab.errors import ConfigError, DataError, ScalingLabError
from scalinglab.fsio import atomic_write_json, atomic_write_text
from scalinglab.runfolder import CKPT, METRICS, RESULT, RUN_TOML, SWEEP_JSON, read_result
from scalinglab.sweep import design
from scalinglab.sweep.design import Context, PlannedRun
from scalinglab.sweep.spec import SweepSpec
from scalinglab.sweep.status import SweepProgress
from scalinglab.sweep.table import run_row
from scalinglab.train import checkpoint
from scalinglab.train.trackers import check_loggers

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
STUDY_MARK = "study.json"
"""A study folder's manifest (report.collect.STUDY_JSON, a layer above this one)."""


def check_out(out: Path | str) -> None:
    """Refuse, before anything is planned or written, a sweep folder `out` that is a
    file, or a study's folder: the sweep would write its sweep.toml, plan.json and runs/
    into the study, whose run table then omits the sweep's runs."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a sweep folder: give a folder")
    if (out / STUDY_MARK).exists():
        raise ConfigError(
            f"--out {out} is a study's folder ({STUDY_MARK}), not a sweep's: give the sweep "
            "a folder of its own"
        )
    if runfolder.is_run_folder(out):  # its runs/ went inside one run's folder
        raise ConfigError(
            f"--out {out} is a run's folder, not a sweep's: give the sweep a folder of its own"
        )


def open_context(spec: SweepSpec) -> Context:
    """Check the shards folder and take its vocabulary and identity (manifest hash)."""
    try:
        manifest = read_manifest(spec.data)
    except DataError as exc:
        hint = (
            ""  # the shards' own message already says to prepare them: not a second hint
            if "scalinglab prepare" in exc.message
            else f" (make it with e.g. `scalinglab prepare stdlib --tokenizer byte --out "
            f"{spec.data}`)"
        )
        raise DataError(
            f"{spec.source or 'spec'}: data = {str(spec.data)!r}: {exc.message}{hint}"
        ) from None
    data_id = content_id(manifest)[:16]
    return Context(spec=spec, vocab=int(manifest["vocab_size"]), data_id=data_id)


def make_plan(spec: SweepSpec) -> tuple[Context, list[PlannedRun]]:
    ctx = open_context(spec)
    return ctx, design.plan(ctx)


def known_plan(
    spec: SweepSpec, out: Path | str | None
) -> tuple[Context, list[PlannedRun], int, dict[int, float | dict] | None]:
    """(context, the runs a sweep into `out` would run, the number of budgets of them
    planned as the sweep plans them, each IsoFLOP budget's centre by index or None for
    other designs). Every design's plan is known before it runs but a re-centred IsoFLOP
    design's: its budget k + 1 is centred on the results of budget k, known here only
    once every run of budget k has ended in `out` (the sweep then skips them and centres
    on those same results). The budgets after the first not known are planned at the
    spec's centre."""
    ctx = open_context(spec)
    d = spec.design
    if not (d.kind == "isoflop" and d.recentre):
        return ctx, design.plan(ctx), len(getattr(d, "budgets", ())), None
    budgets: list[list[PlannedRun]] = []
    centres: dict[int, float | dict] = {}
    if out is not None:
        for stage in _recentred_stages(ctx, Path(out)):  # logs each budget's centre
            budgets.append(stage.runs)
            k, centres[k] = stage.centre
            if not all(runfolder.is_finished(Path(out) / "runs" / r.name) for r in stage.runs):
                break
    runs = [r for b in budgets for r in b]
    for k in range(len(budgets), len(d.budgets)):
        runs += design.isoflop_budget(ctx, k, d.tokens_per_param)
        centres[k] = d.tokens_per_param
    known = max(len(budgets), 1)
    return ctx, runs, known, centres


def write_run_folder(run: PlannedRun, out: Path, spec: SweepSpec, threads: int) -> Path:
    """Create OUT/runs/NAME with run.toml and sweep.json (idempotent)."""
    run_dir = out / "runs" / run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = run.config.to_dict()
    # Runs execute elsewhere (Ray workers, SLURM nodes): give them an absolute path.
    cfg["train"]["data"] = str(Path(spec.data).resolve())
    cfg["train"]["threads"] = threads
    runfolder.write_config(run_dir, RunConfig.from_dict(cfg), name=RUN_TOML)
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


def check_same_trainer(spec: SweepSpec, out: Path) -> None:
    """Refuse a rerun into OUT under another trainer command than its finished runs were
    trained by (OUT/sweep.toml records it): a run's name hashes its config, not the
    program that trains it, so every finished run was reused as if the new one had
    trained it ('15 already done'); a study refuses the same change."""
    prev = out / "sweep.toml"
    try:
        old = load_toml(prev).get("trainer_cmd") if prev.is_file() else None
    except ScalingLabError:
        return  # unreadable: the runs' own folders say what they are
    if not prev.is_file() or (old or None) == (spec.trainer_cmd or None):
        return
    runs = out / "runs"
    done = (
        [d for d in runs.iterdir() if d.is_dir() and runfolder.is_finished(d)]
        if runs.is_dir()
        else []
    )
    if done:

        def name(cmd):
            return repr(cmd) if cmd else "scalinglab's trainer"

        raise ConfigError(
            f"{out}: its {len(done)} finished run(s) were trained by {name(old)} ({prev}); "
            f"this sweep gives {name(spec.trainer_cmd)}: they would be reused as if trained by "
            "it; give another --out, or the same trainer command"
        )


def write_sweep_files(spec: SweepSpec, out: Path, runs: list[PlannedRun]) -> None:
    """OUT/sweep.toml (the spec as given, with the trainer command the runs are given:
    --trainer-cmd's where it overrode the spec's) and OUT/plan.json (the planned runs)."""
    out.mkdir(parents=True, exist_ok=True)
    raw = {k: v for k, v in spec.raw.items() if k != "trainer_cmd"}
    if spec.trainer_cmd:
        raw["trainer_cmd"] = spec.trainer_cmd
    atomic_write_text(out / "sweep.toml", dumps_toml(raw))
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
    """Run the sweep to the end, stage by stage; return every run's outcome (skipped
    and blocked runs included).

    A WSD design has two stages: the stable runs, then the branches, each seeded
    from its stable run's checkpoint (a branch whose stable run did not complete is
    `blocked`). An IsoFLOP design with `recentre = true` has a stage per budget, each
    after the first centred on the tokens per parameter measured at the previous
    budget's loss minimum. Every other design is one stage."""
    out = Path(out)
    check_out(out)  # called from Python: `out` is named as such
    check_same_trainer(spec, out)
    if command is None:  # scalinglab's trainer: its trackers must work before a run starts
        check_loggers(spec.train.get("loggers"), probe=True)
    ctx = open_context(spec)
    d = spec.design
    recentre = d.kind == "isoflop" and d.recentre
    # A re-centred budget is planned from the results of the one before it.
    planned = [] if recentre else design.plan(ctx)
    stages = _recentred_stages(ctx, out) if recentre else design.stages(planned)
    outcomes: list[dict] = []
    run_dirs: dict[str, Path] = {}
    for stage in stages:
        if recentre:  # its sizes are known only now: warned here, not by the spec's centre
            planned += stage.runs
            k, centre = stage.centre
            for line in design.thin_budgets(stage.runs) + design.moved_targets(ctx, {k: centre}):
                log.warning("%s", line)
        write_sweep_files(spec, out, planned)
        root = out / stage.folder
        ready, blocked = _unblocked(stage.runs, run_dirs)
        outcomes += _run_stage(spec, root, ready, run_dirs, executor, threads, retries,
                               listener, command)  # fmt: skip
        outcomes += blocked
        run_dirs |= {r.name: root / "runs" / r.name for r in stage.runs}
    return outcomes


def _recentred_stages(ctx: Context, out: Path):
    """The budgets of a re-centred IsoFLOP design, one stage each, planned after the
    runs of the stage before have ended (a generator: the driver runs each first)."""
    d = ctx.spec.design
    centre = dict.fromkeys(ctx.spec.archs, d.tokens_per_param)  # each architecture its own
    for k in range(len(d.budgets)):
        for arch in ctx.spec.archs if k else ():
            log.info("budget %.3g: %s re-centred on %.4g tokens/parameter", d.budgets[k], arch,
                     centre[arch])  # fmt: skip
        runs = design.isoflop_budget(ctx, k, centre)
        yield design.Stage(runs, centre=(k, centre))
        rows = [run_row(out / "runs" / r.name) | {"arch": r.config.model.arch} for r in runs]
        centre = {
            a: design.measured_centre([r for r in rows if r["arch"] == a]) or d.tokens_per_param
            for a in ctx.spec.archs
        }


def _unblocked(runs: list[PlannedRun], run_dirs: dict[str, Path]):
    """(the runs that can start, the outcomes of those whose seed run did not complete)."""
    ready, blocked, warned = [], [], set()
    for r in runs:
        res = (read_result(run_dirs[r.seed.run]) or {}) if r.seed else {}
        if not r.seed or res.get("status") == "completed":
            ready.append(r)
            continue
        if r.seed.run not in warned:
            warned.add(r.seed.run)
            log.warning("%s ended %s: the runs seeded from it are not run", r.seed.run,
                        res.get("status"))  # fmt: skip
        blocked.append({"name": r.name, "status": "blocked", "attempts": 0, "skipped": True})
    return ready, blocked


def seed_run(seed_dir: Path, run_dir: Path, step: int) -> None:
    """Give a run another run's checkpoint at `step` and its metrics up to there; the
    trainer resumes from it (a WSD branch from its stable run).

    Idempotent: a run that already holds checkpoints or a result is left alone
    (it resumes from its own)."""
    ckpt = run_dir / CKPT
    if step == 0 or (ckpt.is_dir() and checkpoint.list_steps(ckpt)):
        return
    if (run_dir / RESULT).exists():
        return
    # The stable run's checkpoint at `step`, or its newest valid one before it: a design
    # changed after the stable run ended (a budget added, other `checkpoints`) branches
    # where that run kept no checkpoint, and the steps before the branch point are the
    # same constant-lr steps from any of them.
    wanted = step
    steps = [int(p.name.removeprefix("step-")) for p in checkpoint.list_steps(seed_dir / CKPT)]
    step = next((s for s in steps if s <= wanted
                 and checkpoint.verify(checkpoint.step_dir(seed_dir / CKPT, s)) is None), 0)  # fmt: skip
    if step != wanted:
        log.info("%s: no checkpoint of %s at step %d; starting from step %d", run_dir.name,
                 seed_dir.name, wanted, step)  # fmt: skip
    if step == 0:
        return  # it trains from the start: the same steps, only more of them
    src = checkpoint.step_dir(seed_dir / CKPT, step)
    ckpt.mkdir(parents=True, exist_ok=True)
    tmp = ckpt / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    tmp.rename(checkpoint.step_dir(ckpt, step))  # the folder counts once it is complete
    if (seed_dir / METRICS).exists():
        # The trainer drops the lines after the checkpoint's step when it resumes.
        shutil.copyfile(seed_dir / METRICS, run_dir / METRICS)


def _run_stage(spec, out, runs, run_dirs, executor, threads, retries, listener, command):
    """Write the runs' folders (seeded where planned so) and run the unfinished ones."""
    dirs, skipped = [], []
    for r in runs:
        run_dir = write_run_folder(r, out, spec, threads)
        if r.seed:
            seed_run(run_dirs[r.seed.run], run_dir, r.seed.step)
        res = read_result(run_dir)
        if runfolder.run_state(res) == "finished":
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
