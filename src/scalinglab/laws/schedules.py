"""A small syntax for learning-rate schedules: phases joined by '+'.

    warmup(2160, 3e-4) + constant(17840) + linear(4000, 3e-5)      # WSD, linear decay
    warmup(2160, 3e-4) + cosine(21840, 3e-5)                       # cosine
    constant(8000, 3e-4) + drop(8000, 9e-5)                        # a step drop

Each phase runs for its number of steps, starting from the LR where the last
one ended (0 before the first):

- `warmup(N, PEAK)`: linear from 0 to PEAK (step 0 has LR 0);
- `constant(N[, LR])`: LR (default: the current one) held;
- `drop(N, LR)`: an instant change to LR, held (a step schedule);
- `linear(N, TO)`, `cosine(N, TO)`: linear / half-cosine decay to TO;
- `exp(N, TO)`: geometric decay (linear in log LR) to TO;
- `sqrt(N, TO)`: 1−sqrt decay, LR = TO + (start − TO)·(1 − sqrt(i/N)).

A decay phase starts at the current LR and moves towards TO, which the step
after it would reach (Luo et al.'s convention: `warmup(2160, 3e-4) +
cosine(21840, 3e-5)` is their cosine_24000 step for step). The schedule's
length is the sum of the phases' steps; `lr_array(n)` gives the LR at steps
0..n−1 (the last phase's end value held beyond it).
"""

import re

import numpy as np

from scalinglab.errors import ConfigError

PHASES = ("warmup", "constant", "drop", "linear", "cosine", "exp", "sqrt")
_PART = re.compile(r"^\s*([a-z]+)\s*\(([^()]*)\)\s*$")


class Schedule:
    """A parsed schedule: `phases` [(kind, steps, value or None)], `spec` its text."""

    def __init__(self, spec: str):
        self.spec = str(spec)
        self.phases = []
        for part in self.spec.split("+"):
            m = _PART.match(part)
            if not m or m.group(1) not in PHASES:
                raise ConfigError(
                    f"schedule {self.spec!r}: {part.strip()!r} is not PHASE(STEPS[, LR]) "
                    f"with PHASE one of {', '.join(PHASES)}"
                )
            kind, args = m.group(1), [a.strip() for a in m.group(2).split(",") if a.strip()]
            try:
                steps = int(float(args[0]))
                value = float(args[1]) if len(args) > 1 else None
            except (IndexError, ValueError):
                raise ConfigError(
                    f"schedule {self.spec!r}: {part.strip()!r}: bad numbers"
                ) from None
            if steps < 1 or len(args) > 2 or (value is not None and not value >= 0):
                raise ConfigError(f"schedule {self.spec!r}: {part.strip()!r}: steps >= 1, LR >= 0")
            if value is None and kind not in ("constant",):
                raise ConfigError(f"schedule {self.spec!r}: {kind} needs an LR: {kind}(STEPS, LR)")
            self.phases.append((kind, steps, value))

    def __len__(self):
        return sum(s for _, s, _ in self.phases)

    def __repr__(self):
        return f"Schedule({self.spec!r})"

    def lr_array(self, n=None) -> np.ndarray:
        """The LR at steps 0..n−1 (n defaults to the schedule's length)."""
        parts, cur = [], 0.0
        for kind, steps, v in self.phases:
            i = np.arange(steps) / steps  # fraction of the phase done before each step
            if kind == "warmup":
                seg = v * np.arange(steps) / max(steps - 1, 1)
            elif kind in ("constant", "drop"):
                seg = np.full(steps, cur if v is None else v)
            elif kind == "linear":
                seg = cur + (v - cur) * i
            elif kind == "cosine":
                seg = v + 0.5 * (cur - v) * (1 + np.cos(np.pi * i))
            elif kind == "exp":
                if cur <= 0 or v <= 0:
                    raise ConfigError(f"schedule {self.spec!r}: exp needs LRs > 0")
                seg = cur * (v / cur) ** i
            else:  # sqrt
                seg = v + (cur - v) * (1 - np.sqrt(i))
            parts.append(seg)
            cur = float(seg[-1]) if kind in ("warmup", "constant", "drop") else v
        lr = np.concatenate(parts)
        n = len(lr) if n is None else int(n)
        if n > len(lr):
            lr = np.concatenate([lr, np.full(n - len(lr), cur)])
        return lr[:n]


def family(steps, peak, final, warmup=0, fractions=(0.1, 0.2, 0.3, 0.5)):
    """Common schedules of `steps` steps from `peak` to `final`: cosine, linear, constant,
    and WSD with linear, exponential and 1−sqrt decays over each fraction of the run."""
    steps, warmup = int(steps), int(warmup)
    if not 0 <= warmup < steps:
        raise ConfigError(f"--warmup {warmup} must be in [0, --steps {steps})")
    head = f"warmup({warmup}, {peak:g}) + " if warmup else ""
    rest = steps - warmup
    first = "" if warmup else f"constant(1, {peak:g}) + "
    body = rest - (0 if warmup else 1)
    out = [
        head + first + f"cosine({body}, {final:g})",
        head + first + f"linear({body}, {final:g})",
        head + first + f"constant({body})",
    ]
    for f in fractions:
        decay = max(1, round(f * steps))
        stable = body - decay
        if stable < 1:
            continue
        for kind in ("linear", "exp", "sqrt"):
            out.append(head + first + f"constant({stable}) + {kind}({decay}, {final:g})")
    return [Schedule(s) for s in out]
