"""Which schedule reaches the lowest loss in S steps, under a fitted curve law.

Each candidate (a `scalinglab.laws.schedules.Schedule`, or its spec) must be
exactly S steps long (a schedule of another length is refused, not padded or cut)
and the law predicts the loss at the last step, S − 1; with bootstrap draws, its percentile interval and the
share of draws in which the candidate is the best of the set.
"""

import numpy as np

from scalinglab.errors import ConfigError
from scalinglab.laws.curvefit import form_of
from scalinglab.laws.curvelaws import CURVE_LAWS
from scalinglab.laws.schedules import MAX_STEPS, Schedule


def _parse(spec):
    """Schedule(spec), its errors naming the flag the candidates come from."""
    try:
        return Schedule(spec)
    except ConfigError as exc:
        raise ConfigError(f"--{exc}") from None  # "schedule 'SPEC': ..." -> "--schedule ..."


def rank_schedules(law, steps, candidates):
    """Rows {schedule, loss, loss_ci, best_share} sorted by predicted loss at step S − 1."""
    law.check_fitted()
    if law.law not in CURVE_LAWS:
        raise ConfigError(
            f"choosing a schedule needs a curve law (multi-power, lr-annealing), not {law.law!r}"
        )
    steps = int(steps)
    if steps < 2:
        raise ConfigError(f"--steps must be >= 2, got {steps}")
    if steps > MAX_STEPS:
        raise ConfigError(f"--steps {steps}: at most {MAX_STEPS:,}")
    scheds = [c if isinstance(c, Schedule) else _parse(c) for c in candidates]
    if not scheds:
        raise ConfigError("no candidate schedules")
    for sch in scheds:
        if len(sch) != steps:
            raise ConfigError(
                f"--schedule {sch.spec!r} is {len(sch)} steps long and --steps is {steps}: "
                "give a schedule of exactly --steps steps"
            )
    at = np.array([steps - 1])
    rows, draws = [], []
    for sch in scheds:
        lr = sch.lr_array(steps)
        if lr.sum() <= 0:  # 'step 9999: the LR summed ... is 0' did not say which candidate
            raise ConfigError(
                f"--schedule {sch.spec!r}: its LR is 0 at every step: nothing to rank"
            )
        if law.samples_ is not None:
            p, lo, hi = law.predict(at, lr, return_ci=True)
            rows.append(
                {"schedule": sch.spec, "loss": float(p[0]), "loss_ci": [float(lo[0]), float(hi[0])]}
            )
            draws.append(_draws(law, at, lr))
        else:
            rows.append({"schedule": sch.spec, "loss": float(law.predict(at, lr)[0])})
    for r, sch in zip(rows, scheds, strict=True):
        if not r["loss"] > 0:  # a peak LR far above the fitted curves' ran the law below 0
            raise ConfigError(
                f"schedule {sch.spec!r}: the law predicts a loss of {r['loss']:.4g} at step "
                f"{steps - 1}, not above 0: its peak LR {float(sch.lr_array(steps).max()):g} "
                "lies beyond what the law can extrapolate to" + _fitted_lrs(law)
            )
        if not np.isfinite(r["loss"]):  # an exponent far out of range ranked 'loss=inf'
            raise ConfigError(
                f"schedule {sch.spec!r}: the law predicts a loss of {r['loss']:.4g} at step "
                f"{steps - 1}: its parameters "
                f"({', '.join(f'{k}={v:.4g}' for k, v in law.params_.items())}) cannot "
                "predict this schedule"
            )
    if draws:
        D = np.stack(draws)  # (candidates, draws)
        # a draw that predicts no candidate picks none (argmin's 0 credited the first)
        D = D[:, np.isfinite(D).any(axis=0)]
        wins = np.bincount(
            np.argmin(np.where(np.isfinite(D), D, np.inf), axis=0), minlength=len(rows)
        )
        for r, w in zip(rows, wins, strict=True):
            r["best_share"] = float(w / D.shape[1]) if D.shape[1] else None
    return sorted(rows, key=lambda r: r["loss"])


LONGER = 3.0  # the longest extrapolation checked: Luo et al.'s 3x cosine (docs/laws.md)


def steps_note(law, steps):
    """Why a ranking at `steps` is an extrapolation (its last step S − 1 before the first
    fitted step, or more than LONGER times the last), or None; None for a fit without
    data.steps_range (a fit.json written before it was recorded)."""
    rng = (getattr(law, "data_", None) or {}).get("steps_range")
    if not rng:
        return None
    lo, hi = rng
    last = int(steps) - 1
    if lo <= last <= LONGER * hi:
        return None
    where = "before the first" if last < lo else f"more than {LONGER:g}x the last"
    return (
        f"--steps {steps}: the loss at step {last} is {where} step the fitted curves "
        f"logged (steps {lo}..{hi}): the ranking is an extrapolation"
    )


def _fitted_lrs(law) -> str:
    rng = (getattr(law, "data_", None) or {}).get("lr_range")
    return f" (the fitted curves ran at LRs up to {rng[1]:g})" if rng else ""


def lr_note(law, steps, candidates):
    """Why a ranking is an extrapolation in LR (a candidate's peak LR above the largest the
    fitted curves ran at, or below the smallest: the law has never seen the loss fall, or
    rise, at such an LR; a peak of 1e-300 ranked at a loss of 3e118 without a word), or
    None; None for a fit without data.lr_range (a fit.json written before it was
    recorded)."""
    rng = (getattr(law, "data_", None) or {}).get("lr_range")
    if not rng:
        return None
    lo, hi = rng
    peaks = [float(Schedule(c).lr_array(steps).max()) if not isinstance(c, Schedule)
             else float(c.lr_array(steps).max()) for c in candidates]  # fmt: skip
    over = [p for p in peaks if p > hi * (1 + 1e-9)]
    under = [p for p in peaks if p < lo * (1 - 1e-9)]
    notes = []
    if over:
        notes.append(
            f"a peak LR of {max(over):g} ({len(over)} of the {len(peaks)} candidates peak above "
            f"{hi:g}) is {max(over) / hi:.3g}x the largest LR the fitted curves ran at"
        )
    if under:
        notes.append(
            f"a peak LR of {min(under):g} ({len(under)} of the {len(peaks)} candidates peak "
            f"below {lo:g}) is {lo / min(under):.3g}x below the smallest LR the fitted curves "
            "ran at"
        )
    return "; ".join(notes) + ": the ranking is an extrapolation" if notes else None


def _draws(law, at, lr):
    form = form_of(law)
    names = form.param_names
    S = np.stack([law.samples_[k] for k in names], axis=1)
    th = np.stack([form.theta(dict(zip(names, row, strict=True))) for row in S])
    ctx = form.prepare([(at, lr, None)])
    with np.errstate(all="ignore"):
        return form.pred(ctx, th, grad=False)[0][:, 0]
