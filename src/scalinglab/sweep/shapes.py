"""The sweep's two rules: a shape from a target parameter count, hyperparameters per size.

Stated once here (docs/sweeps.md repeats them):

Shape from a target N (`shape_for`):
- GPT: for every depth L = min_layers..max_layers take the width n_embd (a multiple of
  head_size) whose parameter count is nearest N (in log); keep the depths whose
  count is within 15% of the best achievable; among them take the depth whose
  n_embd / n_layer is nearest `aspect` (in log; ties to the shallower).
  n_head = n_embd / head_size, so the heads always divide the width.
- RNNs: `rnn_layers` layers; the width (a multiple of width_multiple) whose
  parameter count is nearest N.

Hyperparameters per size (`hparams_for`, its lr `lr_for`):
lr = lr_ref × (ref_width / width) ** lr_power × (D / ref_tokens) ** duration_power
(width = n_embd, or the hidden width of an RNN; D = the run's training tokens; the last
factor is 1 at duration_power = 0, the default), warmup = round(warmup_frac × steps);
under [hparams] rule = "mup" the width factor is 1 (GPTs under --param mup, whose
multipliers scale the lr per layer), under "fitted" the lr of an lr-opt fit at the
run's N and D.
"""

import functools
import math

from scalinglab.config import ModelConfig
from scalinglab.errors import SweepError
from scalinglab.models.counting import count
from scalinglab.sweep.spec import HparamRule, ShapeRule

SHAPE_SLACK = math.log(1.15)


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


def shape_for(arch: str, n: float, vocab: int, shared: dict, rule: ShapeRule,
              kind: str = "params") -> ModelConfig:  # fmt: skip
    """The shape whose parameter count is nearest `n` under the stated rule; `kind` names
    the count (`params`, or `params_nonembed` for a fit that counts without embeddings)."""
    base = {k: v for k, v in shared.items()}
    try:
        key = (arch, vocab, tuple(sorted(base.items())), kind)
        hash(key)
    except TypeError:  # a setting that is a list: counted afresh
        key = None

    def params(**shape):
        if key is not None:
            return _params(key, tuple(sorted(shape.items())))
        return getattr(count(ModelConfig(arch=arch, **base, **shape), vocab), kind)

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


@functools.lru_cache(maxsize=1 << 16)
def _params(key: tuple, shape: tuple) -> int:
    """`shape_for`'s count of one candidate shape, kept: a sweep's design asks for the same
    widths and depths thousands of times (each a ModelConfig checked anew: 0.2 ms)."""
    arch, vocab, base, kind = key
    return getattr(count(ModelConfig(arch=arch, **dict(base), **dict(shape)), vocab), kind)


def smallest_params(arch: str, vocab: int, shared: dict, rule: ShapeRule) -> int:
    """The parameter count of the smallest shape the rule can give: the narrowest width at
    the fewest layers (no shape of `shape_for` has fewer)."""
    if arch != "gpt":
        m = ModelConfig(arch=arch, n_layer=rule.rnn_layers, n_embd=rule.width_multiple, **shared)
    else:
        hs = rule.head_size
        m = ModelConfig(arch=arch, n_layer=rule.min_layers, n_embd=hs, n_head=1, **shared)
    return count(m, vocab).params


def lr_for(rule: HparamRule, width: float, tokens: float) -> float:
    """The lr of a run of `width` trained on `tokens` tokens under rule "power" or "mup".

    The duration factor (D / ref_tokens) ** duration_power carries an lr tuned on one
    run length to another: at equal tokens per parameter a wider model also trains
    longer, which μP's width scaling does not carry (docs/sweeps.md)."""
    power = 0.0 if rule.rule == "mup" else rule.lr_power
    lr = rule.lr * (rule.ref_width / width) ** power
    if rule.duration_power:
        lr *= (tokens / rule.ref_tokens) ** rule.duration_power
    return lr


def hparams_for(rule: HparamRule, width: int, steps: int, tokens: int) -> dict:
    """lr and warmup of a run of `steps` steps and `tokens` tokens ("fitted":
    design.make_run replaces lr with the fit's at the run's N and D)."""
    return {
        "lr": lr_for(rule, width, tokens),
        "warmup": round(rule.warmup_frac * steps),
    }
