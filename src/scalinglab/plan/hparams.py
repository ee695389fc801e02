"""The learning rate and batch size a planned run should use, from an lr-opt fit
(`fit --law lr-opt`, scalinglab.laws.lropt): Step Law's lr*(N, D) and B*(D) by default,
DeepSeek's lr*(C) and B*(C) with form="deepseek"."""

from scalinglab.errors import ConfigError
from scalinglab.laws.lropt import LrOptLaw


def propose_hparams(
    law: LrOptLaw, n: float, d: float, form: str = "step", block_size: int = 0
) -> dict:
    """{'lr', 'lr_ci', 'batch_tokens', 'batch_tokens_ci'} (and 'batch_size' in sequences of
    `block_size` tokens, when given) for a run of N parameters on D tokens."""
    if form not in law.params:
        raise ConfigError(f"form {form!r} is not one of {', '.join(law.params)}")
    p = law.predict(n, d, form)
    out = {"lr": p["lr"], "lr_ci": p.get("lr_interval"), "batch_tokens": p["batch"],
           "batch_tokens_ci": p.get("batch_interval"), "hparams_form": form}  # fmt: skip
    where = f"at N={n:g}, D={d:g}"
    if not p["batch"] >= 1:  # 0.78 tokens a step was printed as a plan
        raise ConfigError(
            f"the lr-opt fit proposes {p['batch']:.3g} tokens a step {where}, less than one: "
            f"it is far outside the cells it was fitted on ({cells_range(law)})"
        )
    if block_size:
        if p["batch"] < block_size / 2:  # it was clamped to 1 sequence without a word
            raise ConfigError(
                f"--block-size {block_size:g}: the lr-opt fit proposes {p['batch']:.4g} tokens a "
                f"step {where}, less than half a sequence; give the block size the runs use"
            )
        out["batch_size"] = max(1, round(p["batch"] / block_size))
    return out


def cells_range(law: LrOptLaw) -> str:
    ns, ds = [c.N for c in law.cells], [c.D for c in law.cells]
    return f"N {min(ns):.3g}..{max(ns):.3g}, D {min(ds):.3g}..{max(ds):.3g}"


OUTSIDE = 10.0  # a decade beyond the fitted cells, as plan's compute warning


def extrapolations(law: LrOptLaw, rows: list[dict]) -> list[str]:
    """What plan says of a proposal whose N or D lies more than OUTSIDE beyond the cells
    the lr-opt fit was fitted on (an lr of 2.3e84 at --flops 1e300 came without a word)."""
    notes = []
    for r in rows:
        for var, key in (("N", "params"), ("D", "tokens")):
            x = r.get(key)
            vals = [getattr(c, var) for c in law.cells]
            if not isinstance(x, int | float) or not vals:
                continue
            lo, hi = min(vals), max(vals)
            if x > hi * OUTSIDE:
                notes.append(f"{var}={x:.4g} is {x / hi:.2g}x above the largest {var} of the "
                             f"lr-opt fit's cells ({hi:.4g})")  # fmt: skip
            elif x < lo / OUTSIDE:
                notes.append(f"{var}={x:.4g} is {lo / x:.2g}x below the smallest {var} of the "
                             f"lr-opt fit's cells ({lo:.4g})")  # fmt: skip
    return notes


def with_hparams(law: LrOptLaw, rows: list[dict], form: str = "step", block_size: int = 0):
    """Each plan row with `params` and `tokens`, with the proposed lr and batch added."""
    for row in rows:
        if isinstance(row.get("params"), int | float) and isinstance(
            row.get("tokens"), int | float
        ):
            row.update(propose_hparams(law, row["params"], row["tokens"], form, block_size))
    return rows
