"""AdamW or SGD, learning-rate schedules, and turning a budget into a number of steps.

Every schedule ends exactly where the run ends: a cosine that is still high
when the budget runs out leaves the loss above what the run could reach, and
that bias grows with the run's length (which scaling fits then misread).
"""

import inspect
import math
from dataclasses import dataclass

import torch

from scalinglab.config import MAX_STEPS, TrainConfig
from scalinglab.errors import ConfigError


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Parameter groups: weight decay on weights of 2+ dimensions only (matmuls and
    embeddings); a model with `lr_multipliers()` ({name: (lr factor, decay factor)}, the
    GPT under --param mup/completep) gets a group per factor pair, its factor as `lr_mult`
    (the loop sets lr = schedule x lr_mult). The first two groups are always the factor-1
    decay and no-decay groups, as before multipliers existed (checkpoints load)."""
    mults = model.lr_multipliers() if hasattr(model, "lr_multipliers") else {}
    groups: dict[tuple, list] = {(True, 1.0, 1.0): [], (False, 1.0, 1.0): []}
    for name, p in model.named_parameters():
        if p.requires_grad:
            lr_f, wd_f = mults.get(name, (1.0, 1.0))
            groups.setdefault((p.dim() >= 2, lr_f, wd_f), []).append(p)
    return [
        {"params": ps, "weight_decay": weight_decay * wd_f if decay else 0.0, "lr_mult": lr_f}
        for (decay, lr_f, wd_f), ps in groups.items()
    ]


def make_optimizer(model: torch.nn.Module, tc: TrainConfig, device_type: str):
    """AdamW over `param_groups` (weight decay on weights of 2+ dimensions only); or, with
    `--optimizer sgd`, plain SGD (p -= lr * grad: no momentum, no weight decay)."""
    recurrent, arch = getattr(model, "recurrent", False), getattr(model, "arch", "")
    tc = tc.with_optimizer_defaults(recurrent, arch)  # auto, lr 0: resolved
    if tc.optimizer == "sgd":
        mults = model.lr_multipliers() if hasattr(model, "lr_multipliers") else {}
        if any(m != (1.0, 1.0) for m in mults.values()):
            raise ConfigError(
                "--optimizer sgd with --param mup/completep: the parametrisation's "
                "learning-rate multipliers are Adam's; use --optimizer adamw"
            )
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.SGD([{"params": params}], lr=tc.lr)
    groups = param_groups(model, tc.weight_decay)
    kw = {}
    # The fused kernel is the fastest where it exists (CUDA; CPU since torch 2.4).
    if "fused" in inspect.signature(torch.optim.AdamW).parameters and device_type in (
        "cuda",
        "cpu",
    ):
        kw["fused"] = True
    return torch.optim.AdamW(groups, lr=tc.lr, betas=(tc.beta1, tc.beta2), **kw)


def plan_steps(tc: TrainConfig, tokens_per_step: int, flops_per_token: int) -> int | None:
    """Optimizer steps of a steps/tokens/flops budget (rounded up); None for a time budget."""
    kind, amount = tc.budget
    if kind == "steps":
        return int(amount)
    if kind == "time":
        return None
    per_step = tokens_per_step * (flops_per_token if kind == "flops" else 1)
    if amount < per_step:  # one step would train many times the budget: a wrong number
        block = tokens_per_step // (tc.batch_size * tc.grad_accum)
        flops = f", {per_step:.4g} FLOPs" if kind == "flops" else ""
        raise ConfigError(
            f"--{kind} {amount:g} is less than one optimizer step (--batch-size {tc.batch_size}"
            f" x --grad-accum {tc.grad_accum} x --block-size {block} = {tokens_per_step} tokens"
            f"{flops}); give a larger budget or a smaller batch"
        )
    steps = math.ceil(amount / per_step)
    if steps > MAX_STEPS:  # --flops 1e40 started a run that would train until killed
        raise ConfigError(
            f"--{kind} {amount:g} is {steps:.3g} optimizer steps of {per_step:.4g} "
            f"{'FLOPs' if kind == 'flops' else 'tokens'} each, more than {MAX_STEPS:.0e} (a "
            "typo?); give a smaller budget"
        )
    return steps


TIME_WARMUP_MAX = 0.5  # a time budget's warmup ends by this fraction of it at the latest


@dataclass
class Schedule:
    """Learning rate as a function of the step and of the fraction of the budget spent.

    With a known number of steps (`total`), progress is counted in steps as in
    nanoGPT. With a time budget (`total` None) it is the fraction of the time
    budget spent, so the schedule still ends when the budget does: the warmup ends
    after `warmup` steps or half the budget, whichever comes first (its LR rises
    with whichever is further along), and the decay runs over the rest of the budget.
    `warmup_frac` is the budget fraction at which the decay began (None before): a
    resumed time run restores it from its checkpoint.
    """

    kind: str
    lr: float
    min_lr: float
    warmup: int
    total: int | None
    cooldown_frac: float = 0.2
    warmup_frac: float | None = None

    def __post_init__(self):
        if self.kind not in ("cosine", "constant", "wsd"):
            raise ConfigError(f"--schedule {self.kind!r} is not one of cosine, constant, wsd")
        if self.total is not None:
            # A warmup as long as the run would leave no room to decay: at most half of it.
            self.warmup = min(self.warmup, max(0, (self.total - 1) // 2))

    def __call__(self, step: int, frac: float | None = None) -> float:
        """LR of optimizer step `step` (0-based); `frac` = budget fraction spent (time budgets)."""
        if self.total is None:
            frac = frac or 0.0
            if self.warmup_frac is None:
                if step < self.warmup and frac < TIME_WARMUP_MAX:
                    return self.lr * max((step + 1) / (self.warmup + 1), frac / TIME_WARMUP_MAX)
                self.warmup_frac = frac  # the decay starts here
            w = self.warmup_frac
            p = (frac - w) / (1 - w) if w < 1 else 1.0
        elif step < self.warmup:
            return self.lr * (step + 1) / (self.warmup + 1)
        else:
            span = max(1, self.total - 1 - self.warmup)
            p = (step - self.warmup) / span
        if self.kind == "constant":
            return self.lr
        p = min(max(p, 0.0), 1.0)
        if self.kind == "wsd":
            # Stable at the peak, then a linear cooldown over the last cooldown_frac.
            if self.cooldown_frac <= 0 or p < 1 - self.cooldown_frac:
                return self.lr
            # at the last step q is 1, but (1 - (1 - f)) / f rounds to 1 + 2e-16 for some f
            # (0.15, 0.3): a hair past min_lr, below 0 where min_lr is 0
            q = min(1.0, (p - (1 - self.cooldown_frac)) / self.cooldown_frac)
            return self.lr + q * (self.min_lr - self.lr)
        return self.min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (self.lr - self.min_lr)

    def state_dict(self) -> dict:
        return {
            "kind": self.kind,
            "lr": self.lr,
            "min_lr": self.min_lr,
            "warmup": self.warmup,
            "total": self.total,
            "cooldown_frac": self.cooldown_frac,
            "warmup_frac": self.warmup_frac,
        }
