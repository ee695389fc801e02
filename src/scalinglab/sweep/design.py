"""Designs: from a sweep spec to a list of planned runs (shape, N, D, C, lr, name).

The rules, stated once (docs/sweeps.md repeats them):

Shape from a target N (`shape_for`):
- GPT: for every depth L = min_layers..max_layers take the width n_embd (a multiple of
  head_size) whose parameter count is nearest N (in log); keep the depths whose
  count is within 15% of the best achievable; among them take the depth whose
  n_embd / n_layer is nearest `aspect` (in log; ties to the shallower).
  n_head = n_embd / head_size, so the heads always divide the width.
- RNNs: `rnn_layers` layers; the width (a multiple of width_multiple) whose
  parameter count is nearest N.

Hyperparameters per size (`hparams_for`): lr = lr_ref × (ref_width / width) ** lr_power
(width = n_embd, or the hidden width of an RNN), warmup = round(warmup_frac × steps).

Tokens: D = C / (6N) with flops_convention "6nd", or C / flops_per_token with
"model" (the model's own forward+backward count). D is rounded to a whole
number of optimizer steps; a run that would not see one batch is an error.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from scalinglab.config import ModelConfig, RunConfig, TrainConfig, run_identity
from scalinglab.errors import ConfigError, SweepError
from scalinglab.models.counting import Counts, count
from scalinglab.sweep.spec import HparamRule, ShapeRule, SweepSpec

SHAPE_SLACK = math.log(1.15)


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


# --- shapes ------------------------------------------------------------------


def _nearest_width(make, n: float, multiple: int) -> tuple[int, int]:
    """(width, params) with width a multiple of `multiple` and params nearest n in log."""
    lo, hi = 1, 1
    while make(hi * multiple) < n:
        hi *= 2
        if hi > 1 << 20:
            raise SweepError(f"no shape reaches {n:.3g} parameters")
    while lo < hi:  # smallest k with params(k) >= n
        mid = (lo + hi) // 2
        if make(mid * multiple) < n:
            lo = mid + 1
        else:
            hi = mid
    best = min({max(1, lo - 1), lo}, key=lambda k: (abs(math.log(make(k * multiple) / n)), k))
    return best * multiple, make(best * multiple)


def shape_for(arch: str, n: float, vocab: int, shared: dict, rule: ShapeRule) -> ModelConfig:
    """The shape whose parameter count is nearest `n` under the stated rule."""
    base = {k: v for k, v in shared.items()}

    def params(**shape):
        return count(ModelConfig(arch=arch, **base, **shape), vocab).params

    if arch != "gpt":
        width, _ = _nearest_width(
            lambda w: params(n_layer=rule.rnn_layers, n_embd=w), n, rule.width_multiple
        )
        return ModelConfig(arch=arch, n_layer=rule.rnn_layers, n_embd=width, **base)
    hs = rule.head_size
    cands = []
    for depth in range(rule.min_layers, rule.max_layers + 1):
        width, p = _nearest_width(
            lambda w, d=depth: params(n_layer=d, n_embd=w, n_head=w // hs), n, hs
        )
        cands.append((abs(math.log(p / n)), depth, width))
    best_err = min(c[0] for c in cands)
    ok = [c for c in cands if c[0] <= best_err + SHAPE_SLACK]
    _, depth, width = min(ok, key=lambda c: (abs(math.log(c[2] / c[1] / rule.aspect)), c[1]))
    return ModelConfig(arch=arch, n_layer=depth, n_embd=width, n_head=width // hs, **base)


def hparams_for(rule: HparamRule, width: int, steps: int) -> dict:
    return {
        "lr": rule.lr * (rule.ref_width / width) ** rule.lr_power,
        "warmup": round(rule.warmup_frac * steps),
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


def _make_run(ctx: Context, model: ModelConfig, tokens: float, group: dict, tag: str, stage=0):
    spec = ctx.spec
    model.vocab_size = ctx.vocab
    counts = count(model, ctx.vocab)
    tps = ctx.tokens_per_step
    steps = max(1, round(tokens / tps))
    if tokens < tps:
        where = ", ".join(f"{k} {v:.3g}" for k, v in group.items())
        raise SweepError(
            f"{spec.source or 'spec'} [design]: {where}: the {model.arch} of "
            f"{counts.params} parameters gets {tokens:.0f} tokens, less than one batch "
            f"({tps} tokens: batch_size × grad_accum × block_size); raise the budget "
            "or lower batch_size"
        )
    rule = spec.hparams[model.arch]
    train = TrainConfig(**spec.train, data=str(spec.data), tokens=steps * tps)
    for k, v in hparams_for(rule, model.hidden if model.recurrent else model.n_embd, steps).items():
        setattr(train, k, v)
    if train.min_lr > train.lr:  # the per-size lr may fall below a fixed min_lr
        train.min_lr = train.lr
    cfg = RunConfig(model=model, train=train)
    RunConfig.from_dict(cfg.to_dict())  # validates the combination
    h = run_hash(cfg, ctx.data_id)
    flops_pt = (
        6 * counts.params if spec.design["flops_convention"] == "6nd" else counts.flops_per_token
    )
    return PlannedRun(
        name=f"{model.arch}-n{human(counts.params)}-{tag}-{h[:8]}",
        run_hash=h,
        config=cfg,
        counts=counts,
        steps=steps,
        tokens=steps * tps,
        flops=float(flops_pt) * steps * tps,
        group=group,
        stage=stage,
    )


def _shape(ctx: Context, arch: str, n: float) -> ModelConfig:
    return shape_for(arch, n, ctx.vocab, ctx.spec.model, ctx.spec.shape)


def _tokens_for(ctx: Context, model: ModelConfig, flops: float) -> float:
    c = count(model, ctx.vocab)
    per_token = 6 * c.params if ctx.spec.design["flops_convention"] == "6nd" else c.flops_per_token
    return flops / per_token


def isoflop_budget(ctx: Context, stage: int, centre: float) -> list[PlannedRun]:
    """The M sizes of one budget, log-uniform around N_c = sqrt(C / (6 · centre))."""
    d = ctx.spec.design
    c = d["budgets"][stage]
    n_centre = math.sqrt(c / (6.0 * centre))
    m = d["sizes"]
    offsets = np.linspace(-0.5, 0.5, m) if m > 1 else np.zeros(1)
    runs, seen = [], set()
    for arch in ctx.spec.archs:
        for off in offsets:
            model = _shape(ctx, arch, n_centre * d["spread"] ** off)
            key = (arch, model.n_layer, model.n_embd)
            if key in seen:  # two targets rounded to one shape: run it once
                continue
            seen.add(key)
            tokens = _tokens_for(ctx, model, c)
            runs.append(_make_run(ctx, model, tokens, {"budget": c}, f"c{sci(c)}", stage))
    return runs


def plan(ctx: Context, centres: dict[int, float] | None = None) -> list[PlannedRun]:
    """Every planned run. For a re-centred IsoFLOP design, stage k > 0 uses centres[k]
    when given (the measured optimum of stage k-1), else the spec's centre."""
    d = ctx.spec.design
    kind = d["kind"]
    runs: list[PlannedRun] = []
    if kind == "isoflop":
        for k in range(len(d["budgets"])):
            runs += isoflop_budget(ctx, k, (centres or {}).get(k, d["tokens_per_param"]))
    elif kind == "ladder":
        for arch in ctx.spec.archs:
            for n in d["params"]:
                model = _shape(ctx, arch, n)
                params = count(model, ctx.vocab).params
                for r in d["tokens_per_param"]:
                    group = {"target_params": n, "tokens_per_param": r}
                    runs.append(_make_run(ctx, model, r * params, group, f"r{r:g}"))
    elif kind == "wsd":
        from scalinglab.sweep import wsd  # it builds on this module

        runs = wsd.plan(ctx)
    else:
        runs = _grid(ctx)
    names = [r.name for r in runs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SweepError(f"the design plans the same run twice: {', '.join(dup)}")
    return runs


def _grid(ctx: Context) -> list[PlannedRun]:
    d = ctx.spec.design
    models = []
    for arch in ctx.spec.archs:
        if "params" in d:
            models += [_shape(ctx, arch, n) for n in d["params"]]
        else:
            for i, s in enumerate(d["shapes"]):
                try:
                    models.append(ModelConfig(arch=arch, **ctx.spec.model, **s))
                except (ConfigError, TypeError) as exc:
                    raise SweepError(f"[design] shapes[{i}] for {arch}: {exc}") from None
    runs = []
    kind = "tokens" if "tokens" in d else "flops"
    for model in models:
        for b in d[kind]:
            tokens = b if kind == "tokens" else _tokens_for(ctx, model, b)
            tag = f"d{human(b)}" if kind == "tokens" else f"c{sci(b)}"
            runs.append(_make_run(ctx, model, tokens, {"budget": b, "budget_kind": kind}, tag))
    return runs


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
