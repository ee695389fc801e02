"""A small syntax for learning-rate schedules: phases joined by '+'.

    warmup(2160, 3e-4) + constant(17840) + linear(4000, 3e-5)      # WSD, linear decay
    warmup(2160, 3e-4) + cosine(21840, 3e-5)                       # cosine
    constant(8000, 3e-4) + drop(8000, 9e-5)                        # a step drop

Each phase runs for its number of steps, starting from the LR where the last
one ended (0 before the first):

- `warmup(N, PEAK)`: linear from 0 to PEAK (step 0 has LR 0; the next phase
  starts from PEAK, also after `warmup(1, PEAK)`, whose one step has LR 0);
- `constant(N[, LR])`: LR (default: the current one; the first phase needs one) held;
- `drop(N, LR)`: an instant change to LR, held (a step schedule);
- `linear(N, TO)`, `cosine(N, TO)`: linear / half-cosine decay to TO;
- `exp(N, TO)`: geometric decay (linear in log LR) to TO;
- `sqrt(N, TO)`: 1−sqrt decay, LR = TO + (start − TO)·(1 − sqrt(i/N)).

The four decay phases take an optional third number, the LR they start from
(`cosine(N, TO, FROM)`; default: the current LR), for schedules whose next
phase does not start where the last one ended (`trainer_spec`).

A decay phase starts at the current LR and moves towards TO, which the step
after it would reach (Luo et al.'s convention: `warmup(2160, 3e-4) +
cosine(21840, 3e-5)` is their cosine_24000 step for step). The schedule's
length is the sum of the phases' steps, at most `MAX_STEPS`; `lr_array(n)`
gives the LR at steps 0..n−1 (the last phase's end value held beyond it).
Step counts are whole numbers; LRs are finite and >= 0.
"""

import re

import numpy as np

from scalinglab.errors import ConfigError

PHASES = ("warmup", "constant", "drop", "linear", "cosine", "exp", "sqrt")
# A curve law sums the LR of every step (8 bytes each): 1e8 steps is 800 MB per array,
# and two orders of magnitude beyond the longest published training runs.
MAX_STEPS = 100_000_000
_PART = re.compile(r"^\s*([a-z]+)\s*\(([^()]*)\)\s*$")


class Schedule:
    """A parsed schedule: `phases` [(kind, steps, value or None)], `spec` its text."""

    def __init__(self, spec: str):
        self.spec = str(spec)
        self.phases = []
        self.starts = {}  # phase index -> the LR it starts from, when given
        for part in self.spec.split("+"):
            m = _PART.match(part)
            if not m or m.group(1) not in PHASES:
                raise ConfigError(
                    f"schedule {self.spec!r}: {part.strip()!r} is not PHASE(STEPS[, LR]) "
                    f"with PHASE one of {', '.join(PHASES)}"
                )
            kind, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
            if "" in args[:-1] or (args[-1] == "" and len(args) > 1):
                # dropped, it moved the next number into its slot: 'cosine(1900, , 5e-4)'
                # was read as cosine(1900, 5e-4), the start LR taken for the target
                raise ConfigError(
                    f"schedule {self.spec!r}: {part.strip()!r}: an empty number between commas"
                )
            args = [a for a in args if a]
            try:
                count = float(args[0])
                value = float(args[1]) if len(args) > 1 else None
                start = float(args[2]) if len(args) > 2 else None
            except (IndexError, ValueError):
                raise ConfigError(
                    f"schedule {self.spec!r}: {part.strip()!r}: bad numbers"
                ) from None
            decay = kind in ("linear", "cosine", "exp", "sqrt")
            form = f"{kind}(STEPS, TO[, FROM])" if decay else f"{kind}(STEPS, LR)"
            if len(args) > (3 if decay else 2):  # was blamed on the steps or the LRs
                raise ConfigError(
                    f"schedule {self.spec!r}: {part.strip()!r}: {len(args)} numbers, "
                    f"{kind} takes at most {3 if decay else 2}: {form}"
                )
            # which number, read as what: 'constant(3e-4)' said "'constant(3e-4)':
            # 'constant(3e-4)': a whole number of steps >= 1, LRs finite and >= 0"
            at = f"schedule {self.spec!r}" + (f": {part.strip()!r}" if "+" in self.spec else "")
            if not count.is_integer() or count < 1:
                raise ConfigError(
                    f"{at}: STEPS {args[0]} is not a whole number of steps >= 1 ({form})"
                )
            for text, v in zip(args[1:], (value, start), strict=False):
                if not 0 <= v < np.inf:
                    raise ConfigError(f"{at}: LR {text} is not finite and >= 0 ({form})")
            steps = int(count)
            if value is None and kind not in ("constant",):
                raise ConfigError(f"schedule {self.spec!r}: {kind} needs an LR: {kind}(STEPS, LR)")
            if start is not None:
                self.starts[len(self.phases)] = start
            if not self.phases and value is None:  # it held the LR of 0 before the schedule
                raise ConfigError(
                    f"schedule {self.spec!r}: the first phase {part.strip()!r} has no LR to "
                    f"hold: {kind}({steps}, LR)"
                )
            if not self.phases and decay and start is None:  # it rose from 0 to its target
                raise ConfigError(
                    f"schedule {self.spec!r}: the first phase {part.strip()!r} decays from an "
                    f"LR no phase before it sets: give it, {kind}({steps}, TO, FROM), or begin "
                    "with warmup(STEPS, LR) or constant(STEPS, LR)"
                )
            self.phases.append((kind, steps, value))
        if len(self) > MAX_STEPS:
            raise ConfigError(f"schedule {self.spec!r}: {len(self)} steps, more than {MAX_STEPS:,}")
        cur = 0.0  # the LR each phase starts from: an exp phase needs it > 0
        for j, (kind, _, v) in enumerate(self.phases):
            cur = self.starts.get(j, cur)
            if kind == "exp" and (cur <= 0 or v <= 0):
                raise ConfigError(f"schedule {self.spec!r}: exp needs LRs > 0")
            cur = cur if v is None else v

    def __len__(self):
        return sum(s for _, s, _ in self.phases)

    def __repr__(self):
        return f"Schedule({self.spec!r})"

    def lr_array(self, n=None) -> np.ndarray:
        """The LR at steps 0..n−1 (n defaults to the schedule's length)."""
        parts, cur, done = [], 0.0, 0
        for j, (kind, steps, v) in enumerate(self.phases):
            if n is not None and done >= n:  # the steps asked for are built
                break
            done += steps
            cur = self.starts.get(j, cur)
            i = np.arange(steps) / steps  # fraction of the phase done before each step
            if kind == "warmup":
                seg = v * np.arange(steps) / max(steps - 1, 1)
            elif kind in ("constant", "drop"):
                seg = np.full(steps, cur if v is None else v)
            elif kind == "linear":
                seg = cur + (v - cur) * i
            elif kind == "cosine":
                seg = v + 0.5 * (cur - v) * (1 + np.cos(np.pi * i))
            elif kind == "exp":  # both LRs > 0: checked when parsed
                seg = cur * (v / cur) ** i
            else:  # sqrt
                seg = v + (cur - v) * (1 - np.sqrt(i))
            parts.append(seg)
            cur = float(seg[-1]) if kind in ("constant", "drop") else v
        lr = np.concatenate(parts) if parts else np.zeros(0)
        n = len(lr) if n is None else int(n)
        if n > len(lr):
            lr = np.concatenate([lr, np.full(n - len(lr), cur)])
        return lr[:n]


def family(steps, peak, final, warmup=0, fractions=(0.1, 0.2, 0.3, 0.5)):
    """Common schedules of `steps` steps from `peak` to `final`: cosine, linear, constant,
    and WSD with linear, exponential and 1−sqrt decays over each fraction of the run
    (no exponential decay to a final LR of 0: it never gets there)."""
    steps, warmup = int(steps), int(warmup)
    if steps > MAX_STEPS:
        raise ConfigError(f"--steps {steps}: at most {MAX_STEPS:,}")
    if not 0 <= warmup < steps:
        raise ConfigError(f"--warmup {warmup} must be in [0, --steps {steps})")
    if final >= peak:  # its "decays" rose (or were constants, one named the best), ranked
        raise ConfigError(
            f"--final-lr {final:g} must be below --peak-lr {peak:g}: a decay ends lower"
        )
    head = f"warmup({warmup}, {peak:g}) + " if warmup else ""
    rest = steps - warmup
    first = "" if warmup else f"constant(1, {peak:g}) + "
    body = rest - (0 if warmup else 1)
    out = [
        head + first + f"cosine({body}, {final:g})",
        head + first + f"linear({body}, {final:g})",
        head + first + f"constant({body})",
    ]
    kinds = ("linear", "exp", "sqrt") if final > 0 else ("linear", "sqrt")
    for f in fractions:
        decay = max(1, round(f * steps))
        stable = body - decay
        if stable < 1:
            continue
        for kind in kinds:
            out.append(head + first + f"constant({stable}) + {kind}({decay}, {final:g})")
    return [Schedule(s) for s in out]


def trainer_spec(kind, lr, min_lr, warmup, total, cooldown_frac=0.2):
    """The LR of a scalinglab training run in this syntax, step for step, or None.

    Arguments as in the run's config (`--schedule`, `--lr`, the final LR, `--warmup`,
    its total optimizer steps, `--cooldown-frac`); None for a time budget (total None:
    the schedule follows the clock). Index t of `lr_array()` is the LR of the t-th
    update, so that a loss logged after t updates has seen indices 0..t: index 0 is 0
    (no update yet) and index t ≥ 1 is the trainer's LR of step t − 1.
    """
    if total is None or total < 1:
        return None
    total = int(total)
    warmup = min(int(warmup), max(0, (total - 1) // 2))  # as the trainer caps it
    lr, min_lr = float(lr), float(min_lr)
    # indices 0..warmup: 0, then lr·s/(warmup+1) for the warmup's steps s = 1..warmup
    head = f"warmup({warmup + 1}, {lr * warmup / (warmup + 1)!r})" if warmup else "constant(1, 0)"
    rest = total - warmup  # indices warmup+1..total: the trainer's steps warmup..total-1
    if kind == "constant" or (kind == "wsd" and cooldown_frac <= 0):
        return f"{head} + constant({rest}, {lr!r})"
    span = max(1, total - 1 - warmup)
    if kind == "cosine":
        if rest == 1:
            return f"{head} + constant(1, {lr!r})"
        return f"{head} + cosine({rest - 1}, {min_lr!r}, {lr!r}) + constant(1, {min_lr!r})"
    if kind != "wsd":
        raise ConfigError(f"schedule {kind!r} is not one of cosine, constant, wsd")
    # stable while (s − warmup)/span < 1 − cooldown_frac, then linear to min_lr at total − 1
    s0 = warmup + (1 - cooldown_frac) * span
    s1 = min(total - 1, max(warmup, int(np.ceil(s0 - 1e-9))))
    q = ((s1 - warmup) / span - (1 - cooldown_frac)) / cooldown_frac
    v1 = lr + min(max(q, 0.0), 1.0) * (min_lr - lr)
    parts = [head]
    if s1 > warmup:
        parts.append(f"constant({s1 - warmup}, {lr!r})")
    if total - 1 > s1:
        parts.append(f"linear({total - 1 - s1}, {min_lr!r}, {v1!r})")
        parts.append(f"constant(1, {min_lr!r})")
    else:
        parts.append(f"constant(1, {v1!r})")
    return " + ".join(parts)
