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
    if block_size:
        out["batch_size"] = max(1, round(p["batch"] / block_size))
    return out


def with_hparams(law: LrOptLaw, rows: list[dict], form: str = "step", block_size: int = 0):
    """Each plan row with `params` and `tokens`, with the proposed lr and batch added."""
    for row in rows:
        if isinstance(row.get("params"), int | float) and isinstance(
            row.get("tokens"), int | float
        ):
            row.update(propose_hparams(law, row["params"], row["tokens"], form, block_size))
    return rows
