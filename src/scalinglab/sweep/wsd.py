"""WSD branching (Hägele et al. 2024): one stable run per size, short cooldowns branched off it.

::

    [design]
    kind = "wsd"
    params = [2e4, 6e4]                 # target N of each size (shapes by [shape])
    tokens_per_param = [25, 50, 100]    # each size's token budgets: D = r × N
    cooldown_frac = 0.2                 # a branch decays linearly to min_lr over its last 20%
    checkpoints = 20                    # the stable run checkpoints about this many times

A warmup-stable-decay run of S steps holds the peak learning rate until its
cooldown starts at step b(S) and then decays to min_lr. Before b(S) it is the
same run as a constant-LR run with the same warmup: same weights, same batches
(the loader's batch is a function of the step), same optimizer state. So per
size the sweep trains one *stable* run (constant LR) to the largest branch
point, checkpointing every `u` steps, and each budget D_k becomes a *branch*:
an ordinary run folder (schedule wsd, its own run.toml and result.json) seeded
with the stable run's last checkpoint at or before b(S_k), from which the
trainer resumes. Every branch therefore equals, step for step, an independent
WSD run of D_k tokens (a test checks the losses are bitwise equal), while the
compute spent is the stable run plus the cooldowns (and at most u-1 repeated
stable steps per branch).

Stable runs live in OUT/stable/runs/NAME, outside OUT/runs, so the runs table
and the fitter see only the branches. All runs of a size share one warmup:
round(warmup_frac × the shortest branch's steps).
"""

import dataclasses
import logging
import math
import shutil
from pathlib import Path

from scalinglab.errors import SweepError
from scalinglab.models.counting import count
from scalinglab.sweep import design
from scalinglab.sweep.design import Context, PlannedRun, human

log = logging.getLogger(__name__)

KEYS = ("kind", "params", "tokens_per_param", "cooldown_frac", "checkpoints", "flops_convention")
STABLE_DIR = "stable"


def check_design(d: dict, where: str, positive_list) -> dict:
    """The [design] table of kind wsd, checked, with defaults filled in."""
    out = {}
    for key in ("params", "tokens_per_param"):
        if key not in d:
            raise SweepError(f"{where}: wsd needs {key} = [...]")
        out[key] = positive_list(d, key, where)
    out["tokens_per_param"] = sorted(out["tokens_per_param"])
    f = d.get("cooldown_frac", 0.2)
    if isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f < 1:
        raise SweepError(f"{where}: cooldown_frac must be a number in (0, 1), got {f!r}")
    k = d.get("checkpoints", 20)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SweepError(f"{where}: checkpoints must be a positive integer, got {k!r}")
    out["cooldown_frac"], out["checkpoints"] = float(f), k
    return out


def branch_point(steps: int, warmup: int, cooldown_frac: float) -> int:
    """The first step at which a WSD schedule of `steps` steps leaves the peak LR.

    The same arithmetic as train.optim.Schedule (not imported: planning stays
    free of torch); tests check the two agree."""
    span = max(1, steps - 1 - warmup)
    s = max(warmup, warmup + math.floor((1 - cooldown_frac) * span) - 2)
    while s < steps and (s - warmup) / span < 1 - cooldown_frac:
        s += 1
    return s


@dataclasses.dataclass
class Size:
    """One size of a WSD design: the stable run, its branches and their resume points."""

    stable: PlannedRun
    branches: list[PlannedRun]
    resume_from: list[int]
    """Per branch: the stable checkpoint step it starts from (0: from scratch)."""


def _retarget(run: PlannedRun, ctx: Context, tag: str, **train) -> PlannedRun:
    """`run` with train fields changed, its identity hash and name recomputed."""
    cfg = dataclasses.replace(run.config, train=dataclasses.replace(run.config.train, **train))
    h = design.run_hash(cfg, ctx.data_id)
    name = f"{cfg.model.arch}-n{human(run.counts.params)}-{tag}-{h[:8]}"
    return dataclasses.replace(run, config=cfg, run_hash=h, name=name)


def plan_sizes(ctx: Context) -> list[Size]:
    d = ctx.spec.design
    f, out = d["cooldown_frac"], []
    for arch in ctx.spec.archs:
        for n in d["params"]:
            model = design._shape(ctx, arch, n)
            params = count(model, ctx.vocab).params
            runs = [
                design._make_run(
                    ctx,
                    dataclasses.replace(model),
                    r * params,
                    {"target_params": n, "tokens_per_param": r},
                    f"r{r:g}",
                )
                for r in d["tokens_per_param"]
            ]
            out.append(_size(ctx, runs, f))
    return out


def _size(ctx: Context, runs: list[PlannedRun], f: float) -> Size:
    rule = ctx.spec.hparams[runs[0].arch]
    shortest = min(r.steps for r in runs)
    warmup = min(round(rule.warmup_frac * shortest), max(0, (shortest - 1) // 2))
    points = [branch_point(r.steps, warmup, f) for r in runs]
    last = max(points)
    if last < 1:
        raise SweepError(
            f"[design] wsd: the {runs[0].arch} of {runs[0].counts.params} parameters has "
            f"no stable phase ({shortest} steps); raise tokens_per_param"
        )
    if warmup > (last - 1) // 2:
        raise SweepError(
            f"[design] wsd: the {runs[0].arch} of {runs[0].counts.params} parameters: its "
            f"warmup ({warmup} steps) does not fit the stable run ({last} steps)"
        )
    unit = math.gcd(*points) or 1
    if unit < last / ctx.spec.design["checkpoints"]:
        unit = math.ceil(last / ctx.spec.design["checkpoints"])
    branches = [
        _retarget(r, ctx, f"r{r.group['tokens_per_param']:g}", schedule="wsd",
                  cooldown_frac=f, warmup=warmup)
        for r in runs
    ]  # fmt: skip
    tps = ctx.tokens_per_step
    stable = _retarget(
        runs[0], ctx, "stable", schedule="constant", warmup=warmup, tokens=last * tps,
        ckpt_every=unit, keep_ckpts=last // unit + 1,
    )  # fmt: skip
    per_token = runs[0].flops / runs[0].tokens
    stable = dataclasses.replace(
        stable, steps=last, tokens=last * tps, flops=per_token * last * tps,
        group={"target_params": runs[0].group["target_params"], "wsd": "stable"},
    )  # fmt: skip
    resume = [(p // unit) * unit for p in points]
    for b, p in zip(branches, points, strict=True):
        b.group |= {"stable_run": stable.name, "branch_step": p}
    return Size(stable=stable, branches=branches, resume_from=resume)


def plan(ctx: Context) -> list[PlannedRun]:
    """Every run a WSD design trains: per size, the stable run and then its branches."""
    return [r for s in plan_sizes(ctx) for r in (s.stable, *s.branches)]


def trained_flops(sizes: list[Size]) -> tuple[float, float]:
    """(FLOPs this design trains, FLOPs of the same runs trained independently)."""
    spent = independent = 0.0
    for s in sizes:
        per_step = s.stable.flops / s.stable.steps
        spent += s.stable.flops
        for b, c in zip(s.branches, s.resume_from, strict=True):
            spent += per_step * (b.steps - c)
            independent += b.flops
    return spent, independent


def seed_branch(stable_dir: Path, branch_dir: Path, step: int) -> None:
    """Give a branch the stable run's checkpoint at `step` and its metrics up to there.

    Idempotent: a branch that already holds checkpoints or a result is left alone
    (it resumes from its own)."""
    from scalinglab.train import checkpoint  # torch: only when runs are trained

    ckpt = branch_dir / "ckpt"
    if step == 0 or (ckpt.is_dir() and checkpoint.list_steps(ckpt)):
        return
    if (branch_dir / "result.json").exists():
        return
    src = checkpoint.step_dir(stable_dir / "ckpt", step)
    if checkpoint.verify(src) is not None:
        raise SweepError(f"{src}: the stable run's checkpoint is missing or damaged; rerun")
    ckpt.mkdir(parents=True, exist_ok=True)
    tmp = ckpt / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    tmp.rename(checkpoint.step_dir(ckpt, step))  # the folder counts once it is complete
    if (stable_dir / "metrics.jsonl").exists():
        # The trainer drops the lines after the checkpoint's step when it resumes.
        shutil.copyfile(stable_dir / "metrics.jsonl", branch_dir / "metrics.jsonl")


def run_sweep(spec, out, executor, threads, retries=0, listener=None, command=None) -> list[dict]:
    """Stable runs first (OUT/stable/runs), then every branch seeded from its stable run."""
    from scalinglab.sweep import driver
    from scalinglab.sweep.worker import read_result

    out = Path(out)
    ctx = driver.open_context(spec)
    sizes = plan_sizes(ctx)
    driver._write_sweep_files(spec, out, [r for s in sizes for r in (s.stable, *s.branches)])
    stable_out = out / STABLE_DIR
    stables = [s.stable for s in sizes]
    outcomes = driver._run_stage(
        spec, stable_out, stables, executor, threads, retries, listener, command
    )
    ready, blocked = [], []
    for s in sizes:
        sdir = stable_out / "runs" / s.stable.name
        res = read_result(sdir) or {}
        if res.get("status") != "completed":
            log.warning("%s ended %s: its branches are not run", s.stable.name, res.get("status"))
            blocked += [
                {"name": b.name, "status": "blocked", "attempts": 0, "skipped": True}
                for b in s.branches
            ]
            continue
        for b, step in zip(s.branches, s.resume_from, strict=True):
            bdir = driver.write_run_folder(b, out, spec, threads)
            seed_branch(sdir, bdir, step)
            ready.append(b)
    outcomes += driver._run_stage(spec, out, ready, executor, threads, retries, listener, command)
    return outcomes + blocked
