"""Designs: from a sweep spec to the planned runs (shape, N, D, C, lr, name), in stages.

The shape and hyperparameter rules are in sweep/shapes.py.

Tokens: D = C / (6N) with flops_convention "6nd", or C / flops_per_token with
"model" (the model's own forward+backward count). D is rounded to a whole
number of optimizer steps; a run that would not see one batch is an error.

WSD (`wsd_sizes`, Hägele et al. 2024): before its cooldown starts at step b(S), a
warmup-stable-decay run of S steps is the same run as a constant-LR one (same
weights, batches, optimizer state). So per size one *stable* run (constant LR, in
OUT/stable, out of the runs table) trains to the largest branch point, and each
budget is a *branch*: a WSD run seeded with the stable run's last checkpoint at or
before its b(S), equal step for step to an independent WSD run. All runs of a size
share one warmup: round(warmup_frac × the shortest branch's steps), and one lr (the
longest branch's, where the [hparams] rule makes the lr depend on D: duration_power, or
rule "fitted"; its weight decay with it).

Everything here is pure: from a spec (and the shards' vocabulary and identity) to
planned runs. The driver writes and runs them.
"""

import dataclasses
import functools
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from scalinglab.config import ModelConfig, RunConfig, TrainConfig, run_identity
from scalinglab.errors import ConfigError, SweepError, python_spelling
from scalinglab.laws.lropt import load_lr_opt
from scalinglab.models.counting import Counts, count
from scalinglab.sweep.shapes import hparams_for, shape_for, smallest_params
from scalinglab.sweep.spec import IsoflopDesign, SweepSpec, WsdDesign

STABLE_DIR = "stable"
"""The folder under OUT of a WSD design's stable runs (kept out of OUT/runs)."""

MIN_SIZES_PER_BUDGET = 3
"""An IsoFLOP budget's distinct model sizes: its parabola needs 3."""


@dataclass
class Seed:
    """Where a run starts: another run's checkpoint at `step` (a WSD branch's stable run)."""

    run: str
    step: int


@dataclass
class PlannedRun:
    name: str
    """Folder name: readable part + the identity hash."""
    run_hash: str
    config: RunConfig
    counts: Counts
    steps: int
    tokens: int
    flops: float
    """Planned compute in the design's convention."""
    group: dict = field(default_factory=dict)
    """Design columns of the runs table (e.g. budget)."""
    stage: int = 0
    seed: Seed | None = None
    """Start from another run's checkpoint (WSD branches); None: from scratch."""

    @property
    def arch(self) -> str:
        return self.config.model.arch

    @property
    def lr(self) -> float:
        return self.config.train.lr

    def describe(self) -> dict:
        m = self.config.model
        return {
            "name": self.name,
            "arch": m.arch,
            "n_layer": m.n_layer,
            "n_embd": m.n_embd,
            "n_head": m.n_head if m.arch == "gpt" else 0,
            "params": self.counts.params,
            "params_nonembed": self.counts.params_nonembed,
            "tokens": self.tokens,
            "steps": self.steps,
            "flops": self.flops,
            "flops_6nd": 6.0 * self.counts.params * self.tokens,
            "lr": self.lr,
            "warmup": self.config.train.warmup,
            **self.group,
        }


# --- identity and names ------------------------------------------------------


def run_hash(cfg: RunConfig, data_id: str) -> str:
    """What a run computes (config.run_identity): the trainer's run_id is its prefix."""
    return run_identity(cfg, data_id)


def human(x: float) -> str:
    """48000 -> '48k', 1.5e6 -> '1.5M'."""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def sci(x: float) -> str:
    """1e12 -> '1e12', 2.5e11 -> '2.5e11'."""
    mant, exp = f"{x:.2e}".split("e")
    return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"


# --- the designs -------------------------------------------------------------


@dataclass
class Context:
    spec: SweepSpec
    vocab: int
    data_id: str

    @property
    def tokens_per_step(self) -> int:
        m = ModelConfig(**self.spec.model)
        t = TrainConfig(**self.spec.train)
        return t.batch_size * t.grad_accum * m.block_size


def _flops_per_token(ctx: Context, counts: Counts) -> float:
    return (
        6 * counts.params if ctx.spec.design.flops_convention == "6nd" else counts.flops_per_token
    )


class TooFewTokens(SweepError):
    """A planned run would not see one batch (`arch`, `params`, `tokens`, `tokens_per_step`
    say which): a study scaled by `--minutes` names the flag instead of the spec."""

    def __init__(self, message: str, *, arch: str, params: int, tokens: float, tokens_per_step):
        super().__init__(message)
        self.arch, self.params, self.tokens = arch, params, tokens
        self.tokens_per_step = tokens_per_step


@functools.cache
def fitted_law(path: str):
    """The lr-opt fit of an [hparams] rule = "fitted" (read once per sweep)."""
    return load_lr_opt(path)


def make_run(ctx: Context, model: ModelConfig, tokens: float, group: dict, tag: str, stage=0):
    """The planned run of `model` on `tokens` (rounded to whole steps), named by `tag`."""
    spec = ctx.spec
    model.vocab_size = ctx.vocab
    counts = count(model, ctx.vocab)
    tps = ctx.tokens_per_step
    steps = max(1, round(tokens / tps))
    if tokens < tps:
        where = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in group.items())  # fmt: skip
        raise TooFewTokens(
            f"{spec.source or 'spec'} [design]: {where}: the {model.arch} of "
            f"{counts.params} parameters gets {tokens:.0f} tokens, less than one batch "
            f"({tps} tokens: batch_size × grad_accum × block_size); raise the budget "
            "or lower batch_size",
            arch=model.arch,
            params=counts.params,
            tokens=tokens,
            tokens_per_step=tps,
        )
    rule = spec.hparams[model.arch]
    # AdamW unless the spec's [train] or this arch's [hparams] names another: the hparams
    # rules' lr are that optimizer's
    own = {"optimizer": rule.optimizer} if rule.optimizer else {}
    own |= {"grad_clip": rule.grad_clip} if rule.grad_clip >= 0 else {}
    train = TrainConfig(**{"optimizer": "adamw"} | spec.train | own, data=str(spec.data),
                        tokens=steps * tps)  # fmt: skip
    width = model.hidden if model.recurrent else model.n_embd
    for k, v in hparams_for(rule, width, steps, steps * tps).items():
        if k not in spec.train:  # only a study's own repeat of a run gives them (parse_spec)
            setattr(train, k, v)
    if rule.rule == "mup" and model.arch == "gpt" and "param" not in spec.model:
        model.param, model.base_width = "mup", int(rule.ref_width)
        model.base_head_dim = model.n_embd // model.n_head  # the shape rule's fixed head size
        counts = count(model, ctx.vocab)
    elif rule.rule == "fitted":
        train.lr = fitted_law(rule.fit).predict(counts.params, steps * tps)["lr"]
    # a fixed [train] min_lr is capped at this size's lr (docs/sweeps.md), which may fall
    # below it; the lr is known only once the optimizer's defaults are resolved
    floor, train.min_lr = train.min_lr, 0.0
    train = train.with_optimizer_defaults(model.recurrent, model.arch)  # as the trainer does
    train.min_lr = min(floor, train.lr)
    if rule.decay_tokens_per_param:
        given = "weight_decay" in spec.train
        train.weight_decay = decay_for(rule.decay_tokens_per_param, train, counts.params, tps,
                                       given, spec.source)  # fmt: skip
    cfg = RunConfig(model=model, train=train)
    RunConfig.from_dict(cfg.to_dict())  # validates the combination
    h = run_hash(cfg, ctx.data_id)
    return PlannedRun(
        name=f"{model.arch}-n{human(counts.params)}-{tag}-{h[:8]}",
        run_hash=h,
        config=cfg,
        counts=counts,
        steps=steps,
        tokens=steps * tps,
        flops=float(_flops_per_token(ctx, counts)) * steps * tps,
        group=group,
        stage=stage,
    )


def decay_for(tau: float, train: TrainConfig, params: int, tokens_per_step: int,
              given: bool = False, source: str | None = None) -> float:  # fmt: skip
    """AdamW's weight decay of a run of `params` parameters at `train.lr` under [hparams]
    decay_tokens_per_param τ: tokens_per_step / (lr · τ · N), the decay's timescale
    1/(lr · wd) steps being τ·N tokens at every size (Wang & Aitchison 2024: a decay whose
    timescale is a fixed number of steps weighs more on longer runs)."""
    where = f"{source or 'spec'} [hparams] decay_tokens_per_param"
    if train.optimizer != "adamw":
        raise SweepError(f"{where} sets AdamW's weight decay, but the runs train with "
                         f"optimizer {train.optimizer!r}: leave it out")  # fmt: skip
    if given:
        raise SweepError(f"{where} sets each run's weight_decay: leave [train] weight_decay "
                         f"({train.weight_decay:g}) out")  # fmt: skip
    return tokens_per_step / (train.lr * tau * params)


def model_for(ctx: Context, arch: str, n: float) -> ModelConfig:
    """The sweep's shape for a target N (shape_for with the spec's rule and vocabulary)."""
    return shape_for(arch, n, ctx.vocab, ctx.spec.model, ctx.spec.shape)


def _tokens_for(ctx: Context, model: ModelConfig, flops: float) -> float:
    return flops / _flops_per_token(ctx, count(model, ctx.vocab))


def isoflop_budget(ctx: Context, stage: int, centre: float | dict) -> list[PlannedRun]:
    """The M sizes of one budget, log-uniform around N_c = sqrt(C / (6 · centre)), each
    the grid's shape nearest its target, kept distinct (`distinct_shapes`). `centre`:
    tokens per parameter, one for every architecture or one per architecture."""
    c = ctx.spec.design.budgets[stage]
    runs, seen = [], set()
    for arch in ctx.spec.archs:
        for model in distinct_shapes(ctx, arch, budget_targets(ctx, stage, centre, arch)):
            key = (arch, model.n_layer, model.n_embd)
            if key in seen:  # two targets rounded to one shape: run it once
                continue
            seen.add(key)
            tokens = _tokens_for(ctx, model, c)
            runs.append(make_run(ctx, model, tokens, {"budget": c}, f"c{sci(c)}", stage))
    return runs


def budget_targets(ctx: Context, stage: int, centre: float | dict, arch: str) -> list[float]:
    """The target sizes of one budget (`isoflop_budget`), ascending."""
    d = ctx.spec.design
    offsets = np.linspace(-0.5, 0.5, d.sizes) if d.sizes > 1 else np.zeros(1)
    ratio = centre[arch] if isinstance(centre, dict) else centre
    n_centre = math.sqrt(d.budgets[stage] / (6.0 * ratio))
    return [n_centre * d.spread**off for off in offsets]


def distinct_shapes(ctx: Context, arch: str, targets: list[float]) -> list[ModelConfig]:
    """The grid's shape nearest each of the ascending `targets`; where two round to one
    shape (a coarse grid: the 2-layer GPT's widths 16 and 24 are 1.9x apart in N), the
    one farther from the middle target takes the next shape outward, so a budget keeps
    its `sizes` distinct shapes where the grid has them. The smallest shape has none
    below it: a budget whose sizes all sit there stays short (and is refused)."""
    models = [model_for(ctx, arch, n) for n in targets]
    n = [count(m, ctx.vocab).params for m in models]
    mid = len(models) // 2
    for i in range(mid + 1, len(models)):  # upward from the middle
        if n[i] <= n[i - 1]:
            models[i], n[i] = _next_shape(ctx, arch, n[i - 1], up=True)
    for i in range(mid - 1, -1, -1):  # downward
        if n[i] >= n[i + 1]:
            below = _next_shape(ctx, arch, n[i + 1], up=False)
            if below is not None:
                models[i], n[i] = below
    return models


def ladder_shapes(ctx: Context, arch: str, params: list[float]) -> list[tuple]:
    """(target, shape) for a ladder's target sizes, in their order, the shapes kept
    distinct as `distinct_shapes` keeps a budget's."""
    order = sorted(range(len(params)), key=lambda i: params[i])
    shapes = distinct_shapes(ctx, arch, [params[i] for i in order])
    for (i, a), (j, b) in itertools.pairwise(zip(order, shapes, strict=True)):
        if a == b:  # below the grid's smallest shape: nothing left to move one to
            n = count(a, ctx.vocab).params
            raise SweepError(
                f"[design] params {params[i]:g} and {params[j]:g} ({arch}) round to one shape "
                f"({n:,} parameters, the smallest shape of the [shape] grid): raise "
                f"the smaller target, or make [shape] {width_step_key(arch)} smaller"
            )
    by_index = dict(zip(order, shapes, strict=True))
    return [(params[i], by_index[i]) for i in range(len(params))]


MOVE_WARN = 1.25
"""A planned size this many times off its target size (either way) is warned about."""


def moved_targets(ctx: Context, centres: dict[int, float | dict] | None = None) -> list[str]:
    """Warning lines for target sizes that the [shape] grid does not honour: targets of a
    grid or hparams design that round to one shape (it is planned once), and a target
    planned more than MOVE_WARN times away from its size by `distinct_shapes` moving it
    outward off a shape another target took, or below the grid's smallest shape. An
    IsoFLOP design's budgets at the spec's centre, as its plan; with `centres` only the
    budgets it names (by index), each on its centre (a re-centred budget's)."""
    d = ctx.spec.design
    if d.kind == "isoflop" and centres is None:
        centres = dict.fromkeys(range(len(d.budgets)), d.tokens_per_param)
    out = []

    move = "raise spread" if d.kind == "isoflop" else "move the target"

    def far(where: str, arch: str, target: float, model: ModelConfig) -> None:
        """Warned where the shape is more than MOVE_WARN off its target: moved outward off
        the grid's nearest, the grid's smallest above the target, or the nearest of a grid
        whose shapes step coarsely there."""
        n = count(model, ctx.vocab).params
        if max(n / target, target / n) <= MOVE_WARN * (1 + 1e-9):
            return
        if model != model_for(ctx, arch, target):
            why = f"moved outward off a shape another size took: {move}, or"
        elif target < n and n <= smallest_params(arch, ctx.vocab, ctx.spec.model, ctx.spec.shape):
            why = "the [shape] grid's smallest: raise the target, or"
        else:
            why = "the [shape] grid's nearest (its shapes step coarsely there):"
        out.append(
            f"[design] {where}target N {target:.3g} ({arch}) is planned as {n:,} parameters "
            f"({n / target:.2g}x), {why} make [shape] {width_step_key(arch)} smaller"
        )

    for arch in ctx.spec.archs:
        if d.kind in ("ladder", "wsd"):
            for n, model in ladder_shapes(ctx, arch, d.params):
                far("", arch, n, model)
        elif d.kind == "isoflop":
            for k, centre in sorted(centres.items()):
                c = d.budgets[k]
                targets = budget_targets(ctx, k, centre, arch)
                shapes = distinct_shapes(ctx, arch, targets)
                if len({count(m, ctx.vocab).params for m in shapes}) < MIN_SIZES_PER_BUDGET:
                    continue  # thin_budgets' line names the whole budget: not each size
                for n, model in zip(targets, shapes, strict=True):
                    far(f"budget {c:.3g}: ", arch, n, model)
        elif getattr(d, "params", None) is not None:
            by_shape: list[tuple[ModelConfig, list[float]]] = []
            for n in d.params:
                model = model_for(ctx, arch, n)
                same = [ns for m, ns in by_shape if m == model]
                same[0].append(n) if same else by_shape.append((model, [n]))
                far("", arch, n, model)
            for model, ns in by_shape:
                if len(ns) > 1:
                    out.append(
                        f"[design] params {' and '.join(f'{n:g}' for n in ns)} ({arch}) round "
                        f"to one shape ({count(model, ctx.vocab).params:,} parameters): it is "
                        f"planned once; spread the targets, or make [shape] "
                        f"{width_step_key(arch)} smaller"
                    )
    return out


def _next_shape(ctx: Context, arch: str, params: int, up: bool):
    """The grid's next shape above (or below) one of `params` parameters, and its count:
    the first shape beyond `params` that the shape rule gives as the target moves outward
    from `params` (None below the smallest). The target moves 2% at a time, and where the
    shape changes within a step every shape met there is found in turn (bisection to the
    point where the current one ends): a shape whose targets span less than 2% was
    stepped over (the 4-layer width 8 between the 2-layer widths 8 and 12), and the
    sizes below it were pushed down one shape each."""
    if not up and params <= smallest_params(arch, ctx.vocab, ctx.spec.model, ctx.spec.shape):
        return None  # no shape below: not 400 steps down to learn it
    t = float(params)
    cur = model_for(ctx, arch, t)
    for _ in range(400):  # 1.02^400: 2,750x
        far = t * 1.02 if up else t / 1.02
        far_model = model_for(ctx, arch, far)
        while cur != far_model:  # the shapes met between t and far, in turn
            near, beyond = t, far  # cur at `near`, not at `beyond`
            while abs(math.log(beyond / near)) > 1e-9:
                mid = math.sqrt(near * beyond)
                if model_for(ctx, arch, mid) == cur:
                    near = mid
                else:
                    beyond = mid
            cur, t = model_for(ctx, arch, beyond), beyond
            k = count(cur, ctx.vocab).params
            if (k > params) if up else (k < params):
                return cur, k
        t = far
    if up:
        raise SweepError(f"[shape]: no {arch} shape above {params:,} parameters")
    return None


def plan(ctx: Context) -> list[PlannedRun]:
    """Every planned run, an IsoFLOP design's at the spec's centre (a re-centred design
    plans its later budgets from measured results: the driver calls isoflop_budget)."""
    d = ctx.spec.design
    runs: list[PlannedRun] = []
    if d.kind == "isoflop" and d.trunks:
        runs = [r for s in wsd_sizes(ctx) for r in (s.stable, *s.branches)]
    elif d.kind == "isoflop":
        for k in range(len(d.budgets)):
            runs += isoflop_budget(ctx, k, d.tokens_per_param)
    elif d.kind == "ladder":
        for arch in ctx.spec.archs:
            for n, model in ladder_shapes(ctx, arch, d.params):
                runs += _ladder(ctx, model, n, d.tokens_per_param)
    elif d.kind == "wsd":
        runs = [r for s in wsd_sizes(ctx) for r in (s.stable, *s.branches)]
    elif d.kind == "hparams":
        runs = _hparams(ctx)
    else:
        runs = _grid(ctx)
    names = [r.name for r in runs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SweepError(f"the design plans the same run twice: {', '.join(dup)}")
    return runs


def sizes_per_budget(runs: list[PlannedRun]) -> dict[tuple[str, float], set[int]]:
    """The distinct parameter counts planned at each (arch, IsoFLOP budget)."""
    sizes: dict[tuple[str, float], set[int]] = {}
    for r in runs:
        if "budget" in r.group:
            sizes.setdefault((r.arch, r.group["budget"]), set()).add(r.counts.params)
    return sizes


def width_step_key(arch: str) -> str:
    """The [shape] key that spaces an architecture's widths (shapes.shape_for): a GPT's
    are multiples of head_size, an RNN's of width_multiple (which no GPT reads)."""
    return "head_size" if arch == "gpt" else "width_multiple"


def thin_budgets(runs: list[PlannedRun]) -> list[str]:
    """One line per (arch, budget) of an IsoFLOP plan whose sizes round to fewer than
    MIN_SIZES_PER_BUDGET distinct shapes: the fit cannot draw its parabola there."""
    out = []
    for (arch, b), ns in sorted(sizes_per_budget(runs).items()):
        if len(ns) < MIN_SIZES_PER_BUDGET:
            shown = ", ".join(f"{n:,}" for n in sorted(ns))
            out.append(
                f"[design] budget {b:.3g} ({arch}): its sizes round to {len(ns)} distinct "
                f"shape(s) ({shown} parameters); the IsoFLOP fit needs {MIN_SIZES_PER_BUDGET} "
                f"per budget: raise that budget or sizes, or make [shape] {width_step_key(arch)} "
                "smaller"
            )
    return out


@dataclass
class Stage:
    """Runs that may all run at once; a later stage starts when this one has ended."""

    runs: list[PlannedRun]
    folder: str = "."
    """Under the sweep folder: where runs/NAME go."""
    centre: tuple[int, dict] | None = None
    """A re-centred IsoFLOP budget's: (its index, its tokens per parameter by arch)."""


def stages(runs: list[PlannedRun]) -> list[Stage]:
    """Split a plan into stages: the runs others are seeded from (WSD's stable runs) run
    first, in their own folder (STABLE_DIR), out of the runs table; then the rest."""
    seeds = {r.seed.run for r in runs if r.seed}
    first = [r for r in runs if r.name in seeds]
    rest = [r for r in runs if r.name not in seeds]
    return [Stage(first, STABLE_DIR), Stage(rest)] if first else [Stage(rest)]


def _ladder(ctx: Context, model: ModelConfig, n: float, ratios: list[float]) -> list[PlannedRun]:
    """One run per ratio r of D = r · N, N the shape's parameter count."""
    params = count(model, ctx.vocab).params
    return [
        make_run(ctx, dataclasses.replace(model), r * params,
                 {"target_params": n, "tokens_per_param": r}, f"r{r:g}")
        for r in ratios
    ]  # fmt: skip


def _models(ctx: Context) -> list[ModelConfig]:
    """The shapes of a grid or hparams design: its explicit shapes or its target sizes."""
    d = ctx.spec.design
    models = []
    for arch in ctx.spec.archs:
        if d.params is not None:  # two targets that round to one shape: run once
            for m in (model_for(ctx, arch, n) for n in d.params):
                if m not in models:
                    models.append(m)
        else:
            for i, s in enumerate(d.shapes):
                try:
                    models.append(ModelConfig(arch=arch, **ctx.spec.model, **s))
                except (ConfigError, TypeError) as exc:
                    where = f"{ctx.spec.source} " if ctx.spec.source else ""  # as the spec's
                    # the spec's keys (n_embd), not the flags the command line would show
                    why = python_spelling(exc.message) if isinstance(exc, ConfigError) else exc
                    raise SweepError(f"{where}[design] shapes[{i}] for {arch}: {why}") from None
    return models


def _grid(ctx: Context) -> list[PlannedRun]:
    d = ctx.spec.design
    models = _models(ctx)
    runs = []
    kind = d.budget_kind
    for model in models:
        for b in getattr(d, kind):
            tokens = b if kind == "tokens" else _tokens_for(ctx, model, b)
            tag = f"d{human(b)}" if kind == "tokens" else f"c{sci(b)}"
            runs.append(make_run(ctx, model, tokens, {"budget": b, "budget_kind": kind}, tag))
    return runs


def _hparams(ctx: Context) -> list[PlannedRun]:
    """Each size × D × lr factor × batch size (HparamsDesign)."""
    d = ctx.spec.design
    models = _models(ctx)
    batches = d.batch_sizes or [TrainConfig(**ctx.spec.train).batch_size]
    # D in whole steps of every batch size, so a cell's batch sizes train the same tokens
    step = math.lcm(*(int(b) * ctx.tokens_per_step // TrainConfig(**ctx.spec.train).batch_size
                      for b in batches))  # fmt: skip
    runs = []
    for b in batches:
        spec = dataclasses.replace(ctx.spec, train={**ctx.spec.train, "batch_size": int(b)})
        bctx = dataclasses.replace(ctx, spec=spec)
        for model in models:
            n = count(model, ctx.vocab).params
            budgets = d.tokens or [r * n for r in d.tokens_per_param]
            for i, target in enumerate(budgets):
                if target < step:  # as make_run's one batch: refused, not rounded up to it
                    given = f"tokens {target:g}" if d.tokens else (
                        f"tokens_per_param {d.tokens_per_param[i]:g}")  # fmt: skip
                    raise TooFewTokens(
                        f"{ctx.spec.source or 'spec'} [design]: {given}: the "
                        f"{model.arch} of {n} parameters gets {target:.0f} tokens, less than "
                        f"one step of every batch size ({step} tokens: the least common "
                        "multiple of batch_sizes × grad_accum × block_size); raise the budget "
                        f"to D = {step} tokens or more",
                        arch=model.arch, params=n, tokens=target, tokens_per_step=step,
                    )  # fmt: skip
                tokens = round(target / step) * step
                group = {"budget": target, "budget_kind": "tokens", "batch_size": int(b)}
                base = make_run(bctx, dataclasses.replace(model), tokens, group, "")
                for f in d.lr_factors:
                    tag = f"d{human(target)}-b{int(b)}-lr{f:g}"
                    run = _retarget(base, bctx, tag, lr=base.config.train.lr * f,
                                    min_lr=base.config.train.min_lr * f)  # fmt: skip
                    runs.append(dataclasses.replace(run, group=group | {"lr_factor": f}))
    return runs


# --- WSD: stable runs and their branches ---------------------------------------------


def branch_point(steps: int, warmup: int, cooldown_frac: float) -> int:
    """The first step at which a WSD schedule of `steps` steps leaves the peak LR.

    The same arithmetic as train.optim.Schedule (not imported: planning stays
    free of torch); tests check the two agree."""
    span = max(1, steps - 1 - warmup)
    s = max(warmup, warmup + math.floor((1 - cooldown_frac) * span) - 2)
    while s < steps and (s - warmup) / span < 1 - cooldown_frac:
        s += 1
    return s


@dataclass
class WsdSize:
    """One size of a WSD design: the stable run and its branches (each with its Seed)."""

    stable: PlannedRun
    branches: list[PlannedRun]


def _retarget(run: PlannedRun, ctx: Context, tag: str, **train) -> PlannedRun:
    """`run` with train fields changed, its identity hash and name recomputed."""
    cfg = dataclasses.replace(run.config, train=dataclasses.replace(run.config.train, **train))
    h = run_hash(cfg, ctx.data_id)
    name = f"{cfg.model.arch}-n{human(run.counts.params)}-{tag}-{h[:8]}"
    return dataclasses.replace(run, config=cfg, run_hash=h, name=name)


def wsd_sizes(ctx: Context) -> list[WsdSize]:
    """Per arch and size of a WSD design (or an IsoFLOP one with trunks = true): the
    stable run and its branches. An IsoFLOP design's sizes are its budgets' shapes, each
    branched at every budget it is one of the sizes of."""
    d = ctx.spec.design
    if d.kind == "isoflop":
        shapes: dict[tuple, list[PlannedRun]] = {}
        for k in range(len(d.budgets)):
            for r in isoflop_budget(ctx, k, d.tokens_per_param):
                m = r.config.model
                shapes.setdefault((r.arch, m.n_layer, m.n_embd, m.n_head), []).append(r)
        return [_wsd_size(ctx, runs) for runs in shapes.values()]
    return [
        _wsd_size(ctx, _ladder(ctx, model, n, d.tokens_per_param))
        for arch in ctx.spec.archs
        for n, model in ladder_shapes(ctx, arch, d.params)
    ]


def _branch_tag(group: dict) -> str:
    """A branch's name tag, as its design names the run: its budget C or its ratio D/N."""
    if "budget" in group:
        return f"c{sci(group['budget'])}"
    return f"r{group['tokens_per_param']:g}"


def _wsd_size(ctx: Context, runs: list[PlannedRun]) -> WsdSize:
    d: WsdDesign | IsoflopDesign = ctx.spec.design
    f = d.cooldown_frac
    rule = ctx.spec.hparams[runs[0].arch]
    shortest = min(r.steps for r in runs)
    warmup = min(round(rule.warmup_frac * shortest), max(0, (shortest - 1) // 2))
    points = [branch_point(r.steps, warmup, f) for r in runs]
    last = max(points)
    what = f"[design] {d.kind}: the {runs[0].arch} of {runs[0].counts.params} parameters"
    if last < 1:
        raise SweepError(f"{what} has no stable phase ({shortest} steps); raise its budgets")
    if warmup > (last - 1) // 2:
        raise SweepError(
            f"{what}: its warmup ({warmup} steps) does not fit the stable run ({last} steps)"
        )
    unit = math.gcd(*points) or 1
    if unit < last / d.checkpoints:
        unit = math.ceil(last / d.checkpoints)
    tps = ctx.tokens_per_step
    # A branch is its stable run until its cooldown, so a size has one lr: where the rule's
    # lr depends on D (duration_power, "fitted"), the longest branch's (the run a ladder's
    # backtest is like)
    longest = max(runs, key=lambda r: r.tokens).config.train
    lr = {"lr": longest.lr, "min_lr": longest.min_lr, "weight_decay": longest.weight_decay}
    stable = _retarget(
        runs[0], ctx, "stable", schedule="constant", warmup=warmup, tokens=last * tps,
        ckpt_every=unit, keep_ckpts=last // unit + 1, **lr,
    )  # fmt: skip
    per_token = runs[0].flops / runs[0].tokens
    stable = dataclasses.replace(
        stable, steps=last, tokens=last * tps, flops=per_token * last * tps,
        group={k: v for k, v in runs[0].group.items() if k == "target_params"}
        | {"wsd": "stable"},
    )  # fmt: skip
    branches = []
    for r, p in zip(runs, points, strict=True):
        b = _retarget(r, ctx, _branch_tag(r.group), schedule="wsd", cooldown_frac=f,
                      warmup=warmup, **lr)  # fmt: skip
        b.group |= {"stable_run": stable.name, "branch_step": p}
        b.seed = Seed(stable.name, (p // unit) * unit)  # the last checkpoint at or before p
        branches.append(b)
    return WsdSize(stable=stable, branches=branches)


def trained_flops(sizes: list[WsdSize]) -> tuple[float, float]:
    """(FLOPs a WSD design trains, FLOPs of the same branches trained independently)."""
    spent = independent = 0.0
    for s in sizes:
        per_step = s.stable.flops / s.stable.steps
        spent += s.stable.flops
        for b in s.branches:
            spent += per_step * (b.steps - b.seed.step)
            independent += b.flops
    return spent, independent


def measured_centre(rows: list[dict]) -> float | None:
    """Tokens per parameter at the loss minimum of one IsoFLOP budget: the vertex of a
    parabola in log N fitted to the completed runs, or the best run when the parabola
    opens downward or its vertex lies outside the sizes tried. None without data."""
    pts = [
        (math.log(r["params"]), r["loss"], r["tokens"] / r["params"])
        for r in rows
        if r.get("status") == "completed" and r.get("loss") is not None
    ]
    if not pts:
        return None
    logn, loss, ratio = (np.array(x, dtype=float) for x in zip(*pts, strict=True))
    best = int(np.argmin(loss))
    if len(pts) >= 3:
        a, b, _ = np.polyfit(logn, loss, 2)
        if a > 0 and logn.min() <= -b / (2 * a) <= logn.max():
            n_opt = math.exp(-b / (2 * a))
            # On one budget D ∝ 1/N, so tokens/param ∝ 1/N²: scale from the nearest run.
            i = int(np.argmin(abs(logn - math.log(n_opt))))
            return float(ratio[i] * (math.exp(logn[i]) / n_opt) ** 2)
    return float(ratio[best])
