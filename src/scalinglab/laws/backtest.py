"""Backtests: fit on the cheaper runs, predict the held-out larger ones.

The honest answer to "can I trust the extrapolation?": the relative error of
the predicted loss on runs the fit never saw, all larger (in C, N or D) than
any run it did see, and whether they land inside the intervals at the rate
the intervals state.

`rolling_backtest` repeats the split at several thresholds (leave-larger-out):
at each it fits a fresh copy of the law on the rows at or below the threshold
and predicts every row above it, with its 80% and 95% prediction intervals
(scalinglab.laws.intervals). When rows are checkpoints of runs (a table read
with run_cols), a run with any row above the threshold is held out whole.
It reports, per threshold and over all of them (every predicted point counted
once per threshold that predicts it): the number of predicted points, the mean
and max absolute relative error, the signed bias (mean relative error) and
the empirical coverage of each interval. With the `calibrate` setting each fit
calibrates its own intervals on its own rows only (intervals.calibrate), and the
coverage of the calibrated intervals is reported beside the raw one, so nothing
above a threshold helps to predict it. `pooled_factors` gives the conformal
widening that would have made the pooled intervals cover (a measurement, not
something applied). `choose_law` is `--law auto`.

`backtest` is the single split of `scalinglab fit --holdout-frac/--holdout-above`.
"""

import math

import numpy as np

from scalinglab.errors import ConfigError, FitError
from scalinglab.laws import intervals
from scalinglab.laws.estimator import ScalingLaw, setting_shown, settings_for, unused_settings
from scalinglab.laws.intervals import check_numbers, check_thresholds, held_out, thresholds_for
from scalinglab.laws.settings import csv_mapping, split_settings
from scalinglab.laws.table import RunsTable, read_table

BY = ("C", "N", "D")
LEVELS = (0.8, 0.95)
# The share of rows (ordered by the --by variable) below each default threshold.
TRAIN_FRACS = (0.5, 0.6, 0.7, 0.8, 0.9)
BACKTEST_LAWS = (
    "chinchilla", "kaplan", "power-n", "power-d", "power-c", "data-constrained", "nd-interaction",
)  # fmt: skip
# `--law auto`: the candidates, in the order a tie is broken.
AUTO_LAWS = ("chinchilla", "kaplan", "power-c", "data-constrained", "nd-interaction")
# `--law auto` keeps AUTO_PREFER (AUTO_PREFER_REPEATS where data repeats: it is then a
# candidate) unless another candidate's backtest error is lower by more than AUTO_MARGIN of
# it (benchmarks/results/coverage.md: why).
AUTO_PREFER = "chinchilla"
AUTO_PREFER_REPEATS = "data-constrained"
AUTO_MARGIN = 0.6


def law_needs(law) -> tuple:
    if law in ("chinchilla", "kaplan", "nd-interaction", "auto"):
        return ("N", "D", "C")
    if law == "data-constrained":
        return ("N", "D", "C", "U")
    if law.startswith("power-"):
        return (law[-1].upper(),)
    raise ConfigError(f"--law {law}: a backtest needs a law that predicts each run's loss")


def split_by_compute(C, holdout_frac=None, holdout_above=None):
    """Boolean mask of held-out runs (the most expensive ones) and the threshold used."""
    if (holdout_frac is None) == (holdout_above is None):
        raise ConfigError("give exactly one of --holdout-frac and --holdout-above")
    if holdout_above is not None:
        test = holdout_above < C
        threshold = float(holdout_above)
    else:
        if not 0 < holdout_frac < 1:
            raise ConfigError(f"--holdout-frac must be in (0, 1), got {holdout_frac}")
        k = max(1, math.ceil(holdout_frac * len(C)))
        threshold = float(np.sort(C)[len(C) - k - 1]) if k < len(C) else 0.0
        test = threshold < C
    if not test.any() or test.all():
        raise FitError(
            f"the backtest split at C > {threshold:.3g} leaves {int((~test).sum())} runs to fit "
            f"and {int(test.sum())} to predict; both must be non-empty"
        )
    return test, threshold


def fit_subset(law, settings, t, mask):
    """A fresh law fitted on the rows of `mask`."""
    if law == "data-constrained":
        t.require(law, "U")
    return ScalingLaw.from_settings(law, settings).fit(t.subset(mask))


def predict_rows(fitted, t, mask, levels=LEVELS):
    """Point predictions and intervals of the rows of `mask`: prediction intervals as
    fitted ("pi"), as calibrated by the fit's calibration_ ("cpi", when it has one) and
    confidence intervals ("ci", with bootstrap draws)."""
    held = t.subset(mask)
    pred, draws = fitted.prediction_draws(N=held.N, D=held.D, C=held.C, U=held.U)
    pred = np.atleast_1d(pred).astype(float)
    out = {"L": held.L, "pred": pred, "pi": {}, "cpi": {}, "ci": {}}
    for lv in levels:
        out["pi"][lv] = intervals.interval(fitted, pred, draws, "prediction", lv, calibrate=False)
        cal = fitted.calibration_
        if cal and cal.get("factors"):
            x = getattr(held, cal["by"])
            out["cpi"][lv] = intervals.interval(fitted, pred, draws, "prediction", lv, x=x)
        if draws is not None:
            out["ci"][lv] = intervals.interval(fitted, pred, draws, "confidence", lv)
    return out


def coverage(L, ivs, levels):
    return {f"{lv:g}": float(np.mean((ivs[lv][0] <= L) & (ivs[lv][1] >= L))) for lv in levels}


def metrics(p, levels=LEVELS):
    """n, mean/max |relative error|, bias and the coverage of each kind of interval."""
    L, pred = p["L"], p["pred"]
    rel = (pred - L) / L
    out = {
        "n": len(L),
        "mean_abs_rel_error": float(np.mean(np.abs(rel))),
        "max_abs_rel_error": float(np.max(np.abs(rel))),
        "bias": float(np.mean(rel)),
    }
    for name, key in (
        ("coverage", "pi"),
        ("calibrated_coverage", "cpi"),
        ("confidence_coverage", "ci"),
    ):
        if p[key] and all(lv in p[key] for lv in levels):
            out[name] = coverage(L, p[key], levels)
    return out


def _pool(parts, levels):
    out = {k: np.concatenate([p[k] for p in parts]) for k in ("L", "pred")}
    for key in ("pi", "cpi", "ci"):
        out[key] = {}
        if all(lv in p[key] for p in parts for lv in levels):
            for lv in levels:
                out[key][lv] = tuple(np.concatenate([p[key][lv][i] for p in parts]) for i in (0, 1))
    return out


def rolling_backtest(
    law,
    table,
    *,
    by="C",
    fracs=None,
    thresholds=None,
    settings=None,
    levels=LEVELS,
    margin=None,
):
    """Leave-larger-out backtests of law `law` (a name) on a RunsTable at several thresholds.

    Args:
        law: a law name that predicts each run's loss (chinchilla, kaplan, power-*,
            data-constrained, nd-interaction), or "auto": at each threshold the law is
            chosen by `choose_law` on the rows below it only (a backtest inside the
            training part, same fracs), so the choice never sees what it is scored on.
        table: a runs table holding the columns the law needs (and U for
            data-constrained): a RunsTable, or anything `read_table` reads (a CSV path, a
            pandas/polars frame, a dict of columns), read with `settings`' column options.
        by: "C", "N" or "D": the variable whose larger values are held out.
        fracs: the shares of rows below the thresholds (default TRAIN_FRACS), or
        thresholds: explicit threshold values.
        settings: ScalingLaw settings of every fit (bootstrap, seed, calibrate, ...). With
            calibrate (C, N or D) each fit calibrates its intervals on its own rows only.
            One the law cannot use is refused, as by `ScalingLaw(law, ...)`; with "auto"
            each candidate takes those it uses (`check_auto_settings`).
        margin: auto's margin (`pick`; default AUTO_MARGIN).

    Returns:
        {"law", "by", "levels", "thresholds": [per-threshold metrics], "skipped",
         "overall": metrics over every predicted point, "pooled_factors": the conformal
         factors that would have made the pooled prediction intervals cover}.
    """
    if by not in BY:
        raise ConfigError(f"--by {by!r}: not one of {', '.join(BY)}")
    if thresholds is not None:
        thresholds = check_thresholds(thresholds)
    if fracs is not None:
        fracs = check_numbers(fracs, "fracs")
    if not isinstance(table, RunsTable):  # a frame or a path, as fit takes: read it here
        law_needs(law)  # an unknown law is named before the table is read
        table = read_for(table, AUTO_LAWS if law == "auto" else (law,), settings or {}, by)
    for var in law_needs(law):
        table.require(law, var)
    table.require(law, by)
    settings = dict(settings or {})
    if law == "auto":
        check_auto_settings(table, settings)
    else:  # a setting the law cannot use is refused, as by `fit`
        ScalingLaw(law, **settings).check_settings_apply()
    if thresholds is None:
        thresholds = thresholds_for(table, by, fracs or TRAIN_FRACS)
    thresholds = sorted(thresholds)
    if not thresholds:
        raise FitError(f"{table.source}: no threshold of {by} leaves rows both to fit and predict")
    per, parts, skipped, splits = [], [], [], []
    for thr in thresholds:
        test = held_out(table, by, thr)
        if not test.any() or test.all():
            skipped.append({"threshold": thr, "why": "leaves no rows to fit or to predict"})
            continue
        same = [t for t, s in splits if np.array_equal(s, test)]
        if same:  # whole runs held out (checkpoints): counted once, not once per threshold
            skipped.append({"threshold": thr, "why": f"holds out the same runs as {by} > "
                            f"{same[0]:.3g}"})  # fmt: skip
            continue
        splits.append((thr, test))
        chosen = law
        try:
            if law == "auto":
                chosen, _ = _choose(
                    table.subset(~test),
                    by=by,
                    fracs=fracs or TRAIN_FRACS,
                    settings=settings,
                    margin=AUTO_MARGIN if margin is None else margin,
                )
            fitted = fit_subset(chosen, settings_for(chosen, settings), table, ~test)
        except FitError as exc:
            skipped.append({"threshold": thr, "why": str(exc)})
            continue
        dof = (getattr(fitted, "noise_", None) or {}).get("dof", 1)
        if dof <= 0:  # residuals of 0: a prediction interval of 0 width, a widening of 1e14
            n = int((~test).sum())
            skipped.append({"threshold": thr, "why": f"{n} rows fit {n - dof} parameters: no "
                            "residual is left to measure the run-to-run noise"})  # fmt: skip
            continue
        p = predict_rows(fitted, table, test, levels)
        row = {"threshold": thr, "n_train": int((~test).sum()), **metrics(p, levels)}
        if law == "auto":
            row["law"] = chosen
        if p["cpi"]:
            row["calibration"] = fitted.calibration_["factors"]
        per.append(row)
        parts.append(p)
    if not per:  # each threshold named with its reason, and the range it must fall in
        x = getattr(table, by)
        why = {}  # one reason, once, with every threshold it stopped (it was repeated 5 times)
        for s in skipped:
            why.setdefault(s["why"], []).append(f"{s['threshold']:.3g}")
        raise FitError(
            f"{table.source}: law {law!r}: no threshold could be fitted ("
            + "; ".join(f"{by} > {', '.join(t)}: {w}" for w, t in why.items())
            + f"); {by} runs from {np.nanmin(x):.3g} to {np.nanmax(x):.3g} in this table"
        )
    pooled = _pool(parts, levels)
    sc = {
        lv: intervals.conformal_scores(pooled["L"], pooled["pred"], *pooled["pi"][lv])
        for lv in levels
    }
    return {
        "law": law,
        "by": by,
        "levels": list(levels),
        "settings": {k: settings[k] for k in ("bootstrap", "seed", "calibrate") if k in settings},
        "thresholds": per,
        "skipped": skipped,
        "overall": metrics(pooled, levels),
        "pooled_factors": {f"{lv:g}": f for lv, f in intervals.conformal_factors(sc).items()},
    }


def read_for(path_or_table, laws, settings, by="C"):
    """The RunsTable a backtest of `laws` reads (the columns they all need, and `by`)."""
    import dataclasses

    full = {}
    for cfg in split_settings(settings):
        full.update(dataclasses.asdict(cfg))
    need = {"L", by}
    for law in laws:
        need |= set(law_needs(law))
    if "U" in need and not any(law == "data-constrained" for law in laws):
        need.discard("U")
    return read_table(path_or_table, need=tuple(sorted(need)), **csv_mapping(full))


def check_backtestable(law: str) -> None:
    """ConfigError unless `fit --holdout-*` can backtest law `law` (checked before the fit:
    the envelope and lr-opt fits ignored the flags, exit 0 and no backtest)."""
    if law in ("isoflop", "envelope", "lr-opt"):
        raise ConfigError(f"--law {law}: a backtest needs a law that predicts each run's loss")


def backtest(law, table, *, holdout_frac=None, holdout_above=None, max_bootstrap=200):
    """Fit a fresh copy of `law` (a ScalingLaw) on the cheap runs; score the expensive ones."""
    check_backtestable(law.law)
    t = read_table(table)
    t.require(law.law, "C", *(("U",) if law.law == "data-constrained" else ()))
    test, threshold = split_by_compute(t.C, holdout_frac, holdout_above)
    if t.groups is not None:  # checkpoints: a run with any checkpoint held out is held out whole
        test = np.isin(t.groups, t.groups[test])
        if test.all():
            raise FitError(f"the backtest split at C > {threshold:.3g} holds out every run")
    settings = {**law.settings, "bootstrap": min(law.settings["bootstrap"], max_bootstrap)}
    try:
        sub = ScalingLaw.from_settings(law.law, settings).fit(t.subset(~test))
    except FitError as e:
        # the fit is of the rows the split keeps: '4 points for law 'chinchilla'' of a
        # 6-row table said nothing of the 2 that --holdout-frac took out
        raise FitError(
            f"the backtest's fit of the {int((~test).sum())} of {len(t)} rows at or below "
            f"C = {threshold:.3g} ({int(test.sum())} held out): {e.message}"
        ) from None
    held = t.subset(test)
    args = sub.inputs_used(N=held.N, D=held.D, C=held.C, U=held.U)
    args["check_range"] = False  # the held-out rows are data, not a request: no warning
    if sub.samples_ is not None:
        pred, lo, hi = sub.predict(**args, return_ci=True)
    else:
        pred, lo, hi = sub.predict(**args), None, None
    rel = (pred - held.L) / held.L
    out = {
        "threshold": threshold,
        "n_train": int((~test).sum()),
        "n_test": int(test.sum()),
        "mean_abs_rel_error": float(np.mean(np.abs(rel))),
        "max_abs_rel_error": float(np.max(np.abs(rel))),
        "mean_rel_error": float(np.mean(rel)),
        "train_params": sub.params_,
        "points": [
            {
                "C": float(held.C[i]),
                "N": None if held.N is None else float(held.N[i]),
                "D": None if held.D is None else float(held.D[i]),
                **({"U": float(held.U[i])} if held.U is not None else {}),
                "loss": float(held.L[i]),
                "predicted": float(pred[i]),
                "rel_error": float(rel[i]),
                **({"predicted_ci": [float(lo[i]), float(hi[i])]} if lo is not None else {}),
            }
            for i in range(len(held))
        ],
    }
    if lo is not None:
        out["inside_ci"] = float(np.mean((lo <= held.L) & (hi >= held.L)))
    return out


def auto_candidates(t):
    """The candidate laws for this table: data-constrained only where the table has unique
    tokens U and some run repeats data (D > U)."""
    out = []
    for law in AUTO_LAWS:
        if law == "data-constrained" and (t.U is None or not np.any(t.D > t.U * (1 + 1e-9))):
            continue
        out.append(law)
    return out


def pick(rows, margin=AUTO_MARGIN, prefer=None):
    """The law `--law auto` chooses from its table of candidates: `prefer` unless another
    candidate's backtest error is below (1 - margin) times prefer's (then the lowest);
    the lowest where prefer could not be backtested. `prefer` None: data-constrained where
    it was backtested (a candidate only where data repeats; it is chinchilla with a
    penalty for repeated tokens), else chinchilla."""
    scored = [r for r in rows if "mean_abs_rel_error" in r]
    if not scored:
        return None
    if prefer is None:
        repeats = any(r["law"] == AUTO_PREFER_REPEATS for r in scored)
        prefer = AUTO_PREFER_REPEATS if repeats else AUTO_PREFER
    best = min(scored, key=lambda r: r["mean_abs_rel_error"])
    base = next((r for r in scored if r["law"] == prefer), None)
    if base is not None and best["mean_abs_rel_error"] >= (1 - margin) * base["mean_abs_rel_error"]:
        return base["law"]
    return best["law"]


def check_auto_settings(t, settings):
    """ConfigError for a setting (not its default) that no candidate of `--law auto` on
    table `t` uses; each candidate takes those it uses (`settings_for`): `--no-floor`
    goes to power-c alone, `--tie` to data-constrained."""
    laws = auto_candidates(t)
    unused = [set(unused_settings(law, settings)) for law in laws]
    for name in settings:
        if all(name in u for u in unused):
            raise ConfigError(
                f"{setting_shown(name, settings[name])} does not apply to any candidate of "
                f"--law auto on {t.source} ({', '.join(laws)})"
            )


def choose_law(t, *, by="C", fracs=None, settings=None, margin=AUTO_MARGIN):
    """`--law auto`: from the mean |relative error| of a point-fit (no bootstrap)
    leave-larger-out backtest of each candidate, `pick`: chinchilla (data-constrained
    where data repeats) unless another law's error is lower by more than `margin` (a share
    of that law's). Each candidate takes the settings it uses; one that no candidate
    uses is refused (`check_auto_settings`). Returns (law, table of candidates): fit
    the law with `settings_for(law, settings)`."""
    check_auto_settings(t, settings or {})
    return _choose(t, by=by, fracs=fracs, settings=settings, margin=margin)


def _choose(t, *, by="C", fracs=None, settings=None, margin=AUTO_MARGIN):
    """`choose_law` without the check of its settings (a threshold's training rows may
    lack a candidate of the whole table: data-constrained where none of them repeats)."""
    point = {**(settings or {}), "bootstrap": 0, "calibrate": "none"}
    rows = []
    for law in auto_candidates(t):
        try:
            r = rolling_backtest(law, t, by=by, fracs=fracs, settings=settings_for(law, point))
        except FitError as exc:
            rows.append({"law": law, "error": str(exc)})
            continue
        o = r["overall"]
        rows.append(
            {
                "law": law,
                "n": o["n"],
                "mean_abs_rel_error": o["mean_abs_rel_error"],
                "max_abs_rel_error": o["max_abs_rel_error"],
                "bias": o["bias"],
                "thresholds": len(r["thresholds"]),
            }
        )
    chosen = pick(rows, margin)
    if chosen is None:
        raise FitError(f"{t.source}: --law auto: no candidate law could be backtested")
    for r in rows:
        r["chosen"] = r["law"] == chosen
    return chosen, rows
