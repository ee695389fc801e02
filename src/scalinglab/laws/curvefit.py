"""ScalingLaw's curve laws (multi-power, lr-annealing): fit, held-out runs, predict.

`fit_curve_law(law, table)` reads a curves CSV (or takes a CurveTable), rebuilds
each run's LR at every step, fits the law on the runs that are not held out and
predicts the held-out ones (the backtest of fit.json). Held-out runs are split
off before anything is fitted: the fit sees only `table.fit_runs`.

The bootstrap resamples each fitted run's checkpoints within the run (the
counts per run stay fixed). Checkpoints of one curve are not independent
(the loss is smooth in the step), so these intervals are narrower than the
spread between repeated trainings would be; resampling whole runs would be
the honest unit, but the fits this law is meant for have only 2–3 curves.
Runs of one point each (a table of final losses) are resampled whole: within a
run there is nothing to resample.
"""

from pathlib import Path

import numpy as np

from scalinglab.errors import ConfigError, DataError, FitError
from scalinglab.laws import warn
from scalinglab.laws.constrained import parse_fix
from scalinglab.laws.curvelaws import (
    CHUNK,
    CURVE_LAWS,
    fit_curves,
    make_curve_form,
    predict_curve,
)
from scalinglab.laws.curves import CurveTable, read_curve_table
from scalinglab.laws.intervals import check_level
from scalinglab.laws.schedules import MAX_STEPS, Schedule
from scalinglab.laws.settings import huber_delta
from scalinglab.laws.table import removed_note, short_repr


def held_params(law):
    """{name: value} of `--fix NAME=VALUE` for a curve law (`--tie` was refused before:
    estimator.SETTING_LAWS). Every parameter of both laws is > 0, the exponents too."""
    s = law.settings
    form = CURVE_LAWS[law.law]
    # the exponents are > 0 as the logged parameters are: a held alpha=-1 was fitted (A
    # went to 1e-13), a law whose loss rises with the LR area
    out = parse_fix(s["fix"], form.param_names, (*form.logged, *form.exponents))
    if len(out) == len(form.param_names):
        raise ConfigError(f"--fix: every parameter of --law {law.law} is held; none is left to fit")
    return out


def form_of(law):
    s = law.settings
    return make_curve_form(
        law.law,
        delta=huber_delta(law.law, s),
        decay_factor=s["decay_factor"],
        fixed=held_params(law),
    )


def read_table(law, table):
    s = law.settings
    if isinstance(table, CurveTable):
        return table
    if isinstance(table, (str, Path)):
        return read_curve_table(
            table,
            run_cols=s["run_cols"],
            step_col=s["step_col"],
            lr_col=s["lr_col"],
            loss_col=s["loss_col"],
            where=s["where"],
            holdout_where=s["holdout_where"],
            schedule_col=s["schedule_col"],
        )
    raise DataError(f"--law {law.law} takes a curves CSV (one row per logged step) or a CurveTable")


def fit_curve_law(law, table) -> dict:
    """Fit law (a ScalingLaw of a curve law) to a curves table; returns its learned attributes."""
    s = law.settings
    t = read_table(law, table)
    fit_runs = t.fit_runs
    if not fit_runs:
        raise DataError(f"{t.source}: --holdout-where holds out every run; none is left to fit")
    form = form_of(law)
    check_learned(t, s["lr_fill"])
    data = [(r.steps, r.schedule(s["lr_fill"]), r.loss) for r in fit_runs]
    res = fit_curves(
        form,
        data,
        bootstrap=s["bootstrap"],
        seed=s["seed"],
        boot_starts=s["boot_starts"],
        prune=s["prune"],
        source=t.source,
        note=removed_note(t.rows_read, t.source, t.removed),
    )
    params = {k: float(v[0]) for k, v in form.natural(res["theta"]).items()}
    samples = None if res["samples"] is None else form.natural(res["samples"])
    n = sum(len(r.steps) for r in fit_runs)
    out = {
        "params_": params,
        "derived_": {},
        "objective_": res["objective"],
        "n_points_": n,
        "converged_": res["converged"],
        "conventions_": {
            **t.conventions,
            "lr_fill": s["lr_fill"],
            "huber_delta": form.delta,
            "runs": len(fit_runs),
            **({"fixed": dict(form.fixed)} if getattr(form, "fixed", None) else {}),
        },
        "data_": {
            "source": t.source,
            "sha256": t.sha256,
            "rows": n,
            # the steps the fitted curves were logged at: plan --steps warns outside them
            "steps_range": [
                min(int(r.steps[0]) for r in fit_runs),
                max(int(r.steps[-1]) for r in fit_runs),
            ],
            # the LRs they ran at: plan --steps warns of a candidate's peak above them
            "lr_range": lr_range([lr for _, lr, _ in data]),
        },
        "samples": samples,
        "res": res,
        "form": form,
        "fit_runs": [r.run_id for r in fit_runs],
    }
    return out


def lr_range(schedules) -> list[float]:
    """[smallest LR > 0, largest LR] over the fitted runs' schedules (at every step)."""
    lr = np.concatenate([np.asarray(x, dtype=float) for x in schedules])
    return [float(lr[lr > 0].min()), float(lr.max())]


def check_learned(t, fill) -> None:
    """Refuse, before any fit, a logged point (fitted or held out) where the LR summed
    so far is 0: no update yet (a step-0 row, a run logged at LR 0), S1^(−α) infinite."""
    for r in t.runs:
        bad = np.flatnonzero(np.cumsum(r.schedule(fill))[r.steps] <= 0)
        if bad.size:
            j = bad[0]
            row = f"row {r.rows[j]} (line {r.lines[j]}), " if r.lines else ""
            if bad.size == len(r.steps):  # 'step>0' would not help: the run never learns
                raise DataError(
                    f"{t.source}: {row}run {r.run_id!r}: its LR is 0 at every step up to its "
                    f"last logged step {r.steps[-1]} (no update): leave the run out (--where)"
                )
            raise DataError(
                f"{t.source}: {row}run {r.run_id!r}, step {r.steps[j]}: the LR summed over "
                f"steps 0..{r.steps[j]} is 0 (no update yet); a curve law starts after the "
                "first non-zero LR: leave such rows out (e.g. --where 'step>0')"
            )


def finish(law, out, table_runs):
    """Warnings and the held-out runs' backtest, once the law has its params and samples."""
    form, res = out["form"], out["res"]
    w = []
    n, P = out["n_points_"], len(form.param_names)
    if n < 3 * P:
        w.append(f"only {n} points for {P} parameters (fewer than 3x): the fit is fragile")
    if len(out["fit_runs"]) < 2:
        w.append("one curve only: the schedule-dependent terms are not determined")
    if not res["converged"]:
        w.append(f"the optimiser stopped at its iteration limit ({res['iterations']} iterations)")
    if res.get("boot_converged", 1.0) < 0.99:
        w.append(f"{1 - res['boot_converged']:.1%} of bootstrap refits hit the iteration limit")
    law.warnings_ = w + warn.exponents(law, form.exponents)
    held = [r for r in table_runs if r.held_out]
    law.backtest_ = backtest_runs(law, held) if held else None


def backtest_runs(law, runs) -> dict:
    """Each held-out run predicted from its own schedule; errors pooled and per run."""
    per_run, points, rels = [], [], []
    for r in runs:
        lr = r.schedule(law.settings["lr_fill"])
        if law.samples_ is not None:
            pred, lo, hi = predict(law, r.steps, lr, return_ci=True)
        else:
            pred, lo, hi = predict(law, r.steps, lr), None, None
        rel = (pred - r.loss) / r.loss
        rels.append(rel)
        per_run.append(
            {
                "run": r.run_id,
                "n": len(r.steps),
                "mean_abs_rel_error": float(np.mean(np.abs(rel))),
                "max_abs_rel_error": float(np.max(np.abs(rel))),
            }
        )
        for i in range(len(r.steps)):
            pt = {
                "run": r.run_id,
                "step": int(r.steps[i]),
                "loss": float(r.loss[i]),
                "predicted": float(pred[i]),
                "rel_error": float(rel[i]),
            }
            if lo is not None:
                pt["predicted_ci"] = [float(lo[i]), float(hi[i])]
            points.append(pt)
    allrel = np.abs(np.concatenate(rels))
    out = {
        "holdout": law.conventions_.get("holdout", []),
        "n_train": law.n_points_,
        "n_test": int(allrel.size),
        "runs_test": len(runs),
        "mean_abs_rel_error": float(allrel.mean()),
        "max_abs_rel_error": float(allrel.max()),
        "mean_rel_error": float(np.concatenate(rels).mean()),
        # Luo et al.'s PredE and WorstE: each curve's mean / max, averaged over curves
        "mean_of_run_means": float(np.mean([p["mean_abs_rel_error"] for p in per_run])),
        "mean_of_run_maxes": float(np.mean([p["max_abs_rel_error"] for p in per_run])),
        "per_run": per_run,
        "train_params": dict(law.params_),
        "points": points,
    }
    if law.samples_ is not None:
        inside = [(p["predicted_ci"][0] <= p["loss"] <= p["predicted_ci"][1]) for p in points]
        out["inside_ci"] = float(np.mean(inside))
    return out


def as_schedule(lr_schedule, steps):
    """An LR array over steps 0..max(steps) from an array, a Schedule or its spec string."""
    last = int(np.max(steps))
    if isinstance(lr_schedule, str):
        lr_schedule = Schedule(lr_schedule)
    if isinstance(lr_schedule, Schedule):
        if len(lr_schedule) <= last:  # not padded: its last LR held on is a guess
            raise ConfigError(
                f"schedule {lr_schedule.spec!r} has {len(lr_schedule)} steps; predicting "
                f"step {last} needs the LR at steps 0..{last}"
            )
        lr = lr_schedule.lr_array(last + 1)
    else:
        lr = np.asarray(lr_schedule, dtype=float).ravel()
    if lr.size <= last:
        raise ConfigError(
            f"lr_schedule has {lr.size} steps; predicting step {last} needs the LR at steps 0..{last}"
        )
    if not np.isfinite(lr).all() or (lr < 0).any():
        raise ConfigError("lr_schedule: every LR must be finite and >= 0")
    return lr


def predict(law, steps, lr_schedule, return_ci=False, level=None):
    """Predicted loss at `steps` under `lr_schedule` (the LR at every step 0..max(steps));
    with `return_ci`, the bootstrap interval at `level` (default: the fit's level)."""
    if steps is None or lr_schedule is None:
        raise ConfigError(f"law {law.law!r} predicts a curve: predict(steps, lr_schedule)")
    if law.law not in CURVE_LAWS:
        raise ConfigError(f"law {law.law!r} does not predict curves")
    level = law.settings["ci_level"] if level is None else float(level)
    check_level(level)
    if not isinstance(lr_schedule, (str, Schedule)) and np.ndim(lr_schedule) != 1:
        # a table of LRs was flattened into one schedule, a number read as steps of N, D
        if np.ndim(lr_schedule) != 0:
            got = f"an array of shape {np.shape(lr_schedule)}"
        elif isinstance(lr_schedule, (int, float, np.number)):
            got = f"the number {float(lr_schedule):g}"
        else:
            got = repr(lr_schedule)
        raise ConfigError(
            "lr_schedule: the LR at every step 0..max(steps) in one dimension (an array, "
            f"a Schedule or a spec string), not {got}"
        )
    raw = np.asarray(steps)
    numbers = raw.dtype.kind in "iuf" or (  # float("7") is 7.0: strings are no steps
        raw.dtype.kind == "O" and all(isinstance(x, int | float) for x in raw.ravel())
    )
    if not numbers:  # bools are kind "b": refused with the strings
        raise ConfigError(f"steps must be whole numbers >= 0, got {short_repr(steps)}")
    steps = np.atleast_1d(raw.astype(float))
    if steps.size == 0:
        raise ConfigError("steps is empty: give the steps to predict")
    if not np.isfinite(steps).all() or (steps < 0).any() or (steps != np.round(steps)).any():
        raise ConfigError("steps must be whole numbers >= 0")
    if steps.max() >= MAX_STEPS:
        raise ConfigError(f"step {steps.max():.0f}: curve laws predict steps below {MAX_STEPS:,}")
    steps = steps.astype(int)
    lr = as_schedule(lr_schedule, steps)
    unlearned = steps[np.cumsum(lr)[steps] <= 0]
    if unlearned.size:  # S1 = 0: the laws' power of the LR area is infinite there
        raise ConfigError(
            f"step {unlearned[0]}: the LR summed over steps 0..{unlearned[0]} is 0 (no "
            "update yet); a curve law predicts the steps after the LR's first non-zero step"
        )
    form = form_of(law)
    pred = predict_curve(form, law.params_, steps, lr)
    if not return_ci:
        return pred
    if law.samples_ is None:
        raise FitError("no bootstrap samples: fit with bootstrap > 0 for intervals")
    names = form.param_names
    S = np.stack([law.samples_[k] for k in names], axis=1)
    S = S[np.isfinite(S).all(axis=1)]
    th = np.stack([form.theta(dict(zip(names, row, strict=True))) for row in S])
    ctx = form.prepare([(steps, lr, None)])
    per = max(1, CHUNK // (len(steps) + len(ctx.get("drop", ()))))  # draws at once
    draws = np.concatenate(
        [form.pred(ctx, th[i : i + per], grad=False)[0] for i in range(0, len(th), per)]
    )
    q = 100 * (1 - level) / 2
    with np.errstate(invalid="ignore"):
        lo, hi = np.nanpercentile(draws, [q, 100 - q], axis=0)
    return pred, lo, hi
