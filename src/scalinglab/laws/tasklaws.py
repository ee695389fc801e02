"""Task laws: a task metric (an accuracy) predicted from compute (docs/tasks.md).

- `task-power`, a direct law in C (after Krajewski et al. 2025, a law for log accuracy):
  −ln(metric) = E + (C_c/C)^α, fitted as the power-c form fits a loss (Huber on the log).
- `task-sigmoid`, two steps (after Bhagia et al. 2024, OLMo's ladder): C → task loss
  L = E + (C_c/C)^α (the power-c form on `loss_col`), then task loss → metric by a
  sigmoid, metric = lo + (hi − lo) / (1 + exp(k (L − L0))) (least squares on every row);
  with `chance` (the setting: `--chance`, `[fit] chance`, `ScalingLaw(chance=)`) its ends
  are fixed at lo = chance and hi = 1 and only k and L0 are fitted.

When rows are checkpoints of runs (`run_cols`), the laws in C are fitted to each run's
last row only (a checkpoint in the middle of a schedule is not a run of its compute),
and the sigmoid to every row (the metric follows the task loss however it was reached).
The bootstrap resamples whole runs, the same runs for both steps (one seed), so each
draw of the two-step law is one resample's pair of fits.
"""

import itertools
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from scalinglab.errors import ConfigError, DataError, FitError
from scalinglab.laws import warn
from scalinglab.laws.fit import fit_form
from scalinglab.laws.forms import Power
from scalinglab.laws.intervals import (
    check_level,
    check_thresholds,
    held_out,
    shaped,
    thresholds_for,
)
from scalinglab.laws.settings import huber_delta
from scalinglab.laws.table import MissingValue, compute_range, data_ranges, read_table

TASK_LAWS = ("task-sigmoid", "task-power")
# A backtest's thresholds: the share of the runs at or below each (laws.backtest's too).
BACKTEST_FRACS = (0.5, 0.6, 0.7, 0.8, 0.9)
LEVELS = (0.8, 0.95)
SIGMOID_PARAMS = ("lo", "hi", "k", "L0")


@dataclass
class Points:
    """What fit_form needs of a table: C, L (the quantity fitted), run groups, a source."""

    C: np.ndarray
    L: np.ndarray
    groups: np.ndarray | None
    source: str

    def __len__(self):
        return len(self.L)


class Sigmoid:
    """metric = lo + (hi − lo)·s, s = 1 / (1 + exp(k (L − L0))); theta = (lo, hi, ln k, L0),
    less the ends given as numbers (`lo=chance, hi=1`: theta = (ln k, L0)).
    The table's `C` holds the task loss L and its `L` the metric (Points' two columns)."""

    name = "task-sigmoid (loss -> metric)"
    fitted = "metric"  # what its table's L holds (fit_form's errors name it)
    varies = ("C",)

    def __init__(self, lo: float | None = None, hi: float | None = None):
        self.fixed = {"lo": lo, "hi": hi}
        self.free = [k for k in ("lo", "hi") if self.fixed[k] is None]
        self.param_names = (*self.free, "k", "L0")

    def prepare(self, t):
        return {"x": np.asarray(t.C, float), "y": np.asarray(t.L, float)}

    def starts(self, ctx):
        x, y = ctx["x"], ctx["y"]
        sd = max(x.std(), 1e-3)
        ends = {"lo": (0.0, y.min()), "hi": (y.max(), 1.0)}
        out = []
        for *e, k, q in itertools.product(
            *(ends[n] for n in self.free), (0.5, 1.0, 2.0, 4.0), (0.1, 0.5, 0.9)
        ):
            out.append((*e, np.log(k / sd), np.quantile(x, q)))
        return np.array(out)

    def _ends(self, th):
        """(lo, hi) as (k, 1) columns of theta or constants."""
        cols = {n: th[:, i : i + 1] for i, n in enumerate(self.free)}
        return tuple(cols.get(n, self.fixed[n]) for n in ("lo", "hi"))

    def objective(self, ctx, weights=None):
        x, y = ctx["x"], ctx["y"]
        f0 = len(self.free)

        def fun(th, rows, wrow=None):
            lo, hi = self._ends(th)
            u, x0 = th[:, f0 : f0 + 1], th[:, f0 + 1 : f0 + 2]
            k = np.exp(np.clip(u, -50, 50))
            z = np.clip(k * (x - x0), -500, 500)
            s = 1.0 / (1.0 + np.exp(z))
            r = lo + (hi - lo) * s - y
            w = 1.0 if weights is None else weights[wrow if wrow is not None else rows]
            ds = -s * (1 - s) * (hi - lo)
            d = {"lo": 1 - s, "hi": s}
            d = np.stack([*(d[n] for n in self.free), ds * z, ds * -k])  # (P, k, n)
            f = (w * r * r).sum(axis=1)
            g = np.einsum("pkn,kn->kp", d, 2 * w * r)
            return f, g

        return fun

    def natural(self, ctx, th):
        th = np.atleast_2d(th)
        lo, hi = self._ends(th)
        f0 = len(self.free)
        return {
            "lo": np.broadcast_to(lo, (len(th), 1))[:, 0].astype(float),
            "hi": np.broadcast_to(hi, (len(th), 1))[:, 0].astype(float),
            "k": np.exp(th[:, f0]),
            "L0": th[:, f0 + 1],
        }

    @staticmethod
    def predict(p, L):
        """The metric at loss L, clipped to [0, 1]: lo and hi are free (as in OLMo's
        ladder), so a sigmoid fitted on its steep side can pass 1 when extrapolated."""
        z = np.clip(p["k"] * (L - p["L0"]), -500, 500)
        return np.clip(p["lo"] + (p["hi"] - p["lo"]) / (1.0 + np.exp(z)), 0.0, 1.0)


def _read(law, table, col):
    try:
        return _read_c(law, table, col)
    except MissingValue as e:
        # A task column is empty where the task was not scored: every evaluated step of
        # `runs --curves` that --every-checkpoint did not score (evals outnumber the
        # checkpoints), or a run not scored on the column's items. Say how to leave those
        # rows out, or the documented curves-table fit is a dead end.
        if e.column != col:
            raise
        raise DataError(
            f"{e.message}: a row not scored on the task (an evaluated step that was not "
            f"scored, or a run not scored on the column's items); --where '{col}!=' "
            "leaves such rows out"
        ) from None


def _read_c(law, table, col):
    t = _read_need(law, table, col, ("C", "L"))
    if t.C is None:  # no C column: C = 6 N D, from N and D
        t = _read_need(law, table, col, ("N", "D", "C", "L"))
    if len(t) == 0:
        raise DataError(f"{t.source}: the table has no rows")
    return t


def _read_need(law, table, col, need):
    s = law.settings
    return read_table(
        table,
        need=need,
        c_col=s["c_col"],
        n_col=s["n_col"],
        d_col=s["d_col"],
        loss_col=col,
        where=s["where"],
        run_cols=s["run_cols"] if by_run(s) else None,
    )


def by_run(settings: dict) -> bool:
    """Whether rows are checkpoints of runs: `checkpoints`, or run columns named (as the
    backtest takes them; a fit given --run-col alone fitted its laws in C to every
    mid-schedule checkpoint, silently)."""
    return bool(settings.get("checkpoints")) or list(settings["run_cols"]) != ["run_id"]


def last_of_each_run(t) -> np.ndarray:
    """Indices of each run's largest-C row (every row when rows are not checkpoints)."""
    if t.groups is None:
        return np.arange(len(t))
    keep = []
    for g in np.unique(t.groups):
        idx = np.flatnonzero(t.groups == g)
        keep.append(idx[np.argmax(t.C[idx])])
    return np.array(sorted(keep))


def _fit(form, pts, s, notes: list):
    """fit_form; no bootstrap where there are no more points than parameters (the fit
    passes through each: every resample reproduced it, intervals of zero width)."""
    boot, too_few = warn.resamples(len(pts), len(form.param_names), s["bootstrap"])
    notes += too_few
    return fit_form(form, pts, bootstrap=boot, seed=s["seed"], prune=s["prune"])


def read_points(law, table):
    """(m, loss): the table read for the metric (m.L; C, run groups, source) and the task
    loss column of each row (None for task-power), checked."""
    s = law.settings
    if not s["metric_col"]:
        raise DataError(f"law {law.law!r} needs --metric-col: the column of the task metric")
    m = _read(law, table, s["metric_col"])
    metric = m.L
    if np.any((metric <= 0) | (metric > 1)):
        bad = int(np.flatnonzero((metric <= 0) | (metric > 1))[0]) + 1
        raise DataError(
            f"{m.source}: row {bad}, column {s['metric_col']!r}: a task metric must be a "
            f"fraction in (0, 1] (got {float(metric[bad - 1]):g}); accuracies, not percentages"
        )
    if law.law == "task-power":
        if np.any(metric >= 1):  # its power law is of -ln(metric): 0 at 1, no log of it
            bad = int(np.flatnonzero(metric >= 1)[0]) + 1
            raise DataError(
                f"{m.source}: row {bad}, column {s['metric_col']!r}: task-power fits "
                "-ln(metric), a power law that never reaches 0, and this row's metric is "
                f"{float(metric[bad - 1]):g}: leave the saturated rows out (--where) or "
                "fit task-sigmoid"
            )
        return m, None
    if not s["loss_col"]:
        raise DataError("law 'task-sigmoid' needs --loss-col: the column of the task loss")
    return m, _read(law, table, s["loss_col"]).L


def fit_law(law, table) -> dict:
    """Fit task-power or task-sigmoid; the learned attributes (names ending in _) and draws,
    and `points_`, the rows read (m.L the metric; in memory only: plot() draws them)."""
    m, loss = read_points(law, table)
    return {**fit_points(law.law, law.settings, m, loss), "points_": m}


def fit_points(name: str, s: dict, m, loss) -> dict:
    """fit_law on what read_points read (or a subset of its rows: a backtest's)."""
    metric = m.L
    last = last_of_each_run(m)
    groups = None if m.groups is None else m.groups[last]
    power = Power("C", floor=s["floor"], delta=huber_delta(name, s))
    # the ranges predict and plan check are those of the rows fitted in C, each run's last:
    # a checkpoint table's earlier rows put C_range a decade lower, and a prediction there
    # was not warned of (a metamorphic audit); task-sigmoid's step 2 fits every row
    in_c = np.zeros(len(m), dtype=bool)
    in_c[last] = True
    fitted = m.subset(in_c)
    used = len(m) if name == "task-sigmoid" else len(last)
    out = {"n_points_": used, "converged_": True, "derived_": {}, "ranges_": data_ranges(fitted)}
    notes = []
    if name == "task-power":
        pts = Points(m.C[last], -np.log(metric[last]), groups, m.source)
        res = _fit(power, pts, s, notes)
        nat = power.natural(res["ctx"], res["theta"])
        samples = None
        if res["samples"] is not None:
            samples = power.natural(res["ctx"], res["samples"])
        out.update(objective_=res["objective"], converged_=res["converged"])
    else:
        step1 = _fit(power, Points(m.C[last], loss[last], groups, m.source), s, notes)
        sig = sigmoid_for(s.get("chance"))
        step2 = _fit(sig, Points(loss, metric, m.groups, m.source), s, notes)
        nat = {**power.natural(step1["ctx"], step1["theta"]),
               **sig.natural(step2["ctx"], step2["theta"])}  # fmt: skip
        samples = None
        if step1["samples"] is not None and step2["samples"] is not None:
            samples = {**power.natural(step1["ctx"], step1["samples"]),
                       **sig.natural(step2["ctx"], step2["samples"])}  # fmt: skip
        out.update(
            objective_=step1["objective"] + step2["objective"],
            converged_=step1["converged"] and step2["converged"],
        )
    out["params_"] = {k: float(np.ravel(v)[0]) for k, v in nat.items()}
    out["samples"] = samples
    out["warnings_"] = notes
    chance = s.get("chance")
    if name == "task-sigmoid" and chance is None:
        lo, hi = out["params_"]["lo"], out["params_"]["hi"]
        if lo < 0 or hi > 1:  # an accuracy's ends: hi 4.7 from Pythia's steep side
            notes.append(
                f"the sigmoid's ends lo {lo:.3g} and hi {hi:.3g} lie outside [0, 1]: these "
                "runs do not place them; --chance fixes them at chance and 1"
            )
    if chance is not None and np.sum(metric < chance) > len(metric) / 2:
        notes.append(
            f"{int(np.sum(metric < chance))} of {len(metric)} rows lie below --chance "
            f"{chance:g}, the sigmoid's floor: is it the task's chance?"
        )
    if not out["converged_"]:
        out["warnings_"].append("the fit did not converge")
    out["conventions_"] = {
        **{k: v for k, v in m.conventions.items() if not k.endswith("_tried")},
        "metric": s["metric_col"],
        "fitted_in_C": "each run's last row" if m.groups is not None else "every row",
    }
    if name == "task-sigmoid":  # its L is the task loss of step 1, not the metric
        out["conventions_"]["L"] = s["loss_col"]
    out["data_"] = {"source": m.source, "sha256": m.sha256, "rows": len(m),
                    "points_sha256": m.points_sha256(), "C_range": compute_range(fitted.C)}  # fmt: skip
    return out


def sigmoid_for(chance: float | None) -> Sigmoid:
    """The sigmoid with its ends fixed at chance and 1, or free (chance None)."""
    return Sigmoid() if chance is None else Sigmoid(lo=float(chance), hi=1.0)


def metric_from_loss(p, L):
    """The sigmoid step alone: the metric at task loss L (task-sigmoid's parameters)."""
    return Sigmoid.predict(p, np.asarray(L, float))


def predict_with(law, p, C):
    """The metric at compute C under parameters p (one set, or arrays of draws)."""
    power = Power("C", floor="E" in p)
    red = power.predict(p, C=C)
    if law == "task-power":
        return np.exp(-red)
    return Sigmoid.predict(p, red)


def predict(law, N=None, D=None, C=None, return_ci=False, level=None):
    """ScalingLaw.predict for the task laws: the metric at C (or C = 6·N·D); the
    interval at `level` (default the fit's ci_level)."""
    if C is None:
        if N is None or D is None:
            raise FitError(f"law {law.law!r} predicts from C (or from N and D: C = 6 N D)")
        C = 6.0 * np.asarray(N, float) * np.asarray(D, float)
    C = np.asarray(C, dtype=float)
    pred = predict_with(law.law, law.params_, C)
    if not return_ci:
        return pred
    if law.samples_ is None:
        raise FitError("no bootstrap samples: fit with bootstrap > 0 for intervals")
    sp = {k: v[:, None] for k, v in law.samples_.items()}
    draws = predict_with(law.law, sp, np.atleast_1d(C)[None, :])
    level = law.settings["ci_level"] if level is None else level
    check_level(level)
    q = 100 * (1 - level) / 2
    lo, hi = np.nanpercentile(draws, [q, 100 - q], axis=0)
    return shaped(pred, lo, hi)


def rolling_backtest(law, table, *, fracs=None, thresholds=None, levels=LEVELS) -> dict:
    """Leave-larger-out backtests of a task law, as laws.backtest does for the loss laws.

    At each threshold of C the law (`law`: an unfitted ScalingLaw of task-sigmoid or
    task-power, its settings) is fitted to the runs whose last row is at or below it
    (whole runs: every row of a run with checkpoints) and predicts the metric of each
    larger run at its last row. Errors are in points (100 × accuracy). The prediction
    interval at each level spans the bootstrap draws (`bootstrap` > 0) widened in
    quadrature by the run-to-run scatter: the RMS residual of the fitted runs' metrics
    about the law, times the level's normal quantile.

    Returns {"law", "metric", "by": "C", "levels", "thresholds": [{threshold, n_train,
    n, mean_abs_error_points, max_abs_error_points, bias_points, coverage, rows}],
    "skipped", "overall"}."""
    if thresholds is not None:
        thresholds = check_thresholds(thresholds)
    s = law.settings
    m, loss = read_points(law, table)
    last = last_of_each_run(m)
    if thresholds is None:
        runs = np.zeros(len(m), bool)
        runs[last] = True
        thresholds = thresholds_for(m.subset(runs), "C", fracs or BACKTEST_FRACS)
    per, pooled, skipped = [], [], []
    for thr in sorted(thresholds):
        test = held_out(m, "C", thr)
        if not test.any() or test.all():
            skipped.append({"threshold": thr, "why": "leaves no runs to fit or to predict"})
            continue
        train = m.subset(~test)
        try:
            fit = fit_points(law.law, s, train, None if loss is None else loss[~test])
        except FitError as exc:
            skipped.append({"threshold": thr, "why": str(exc)})
            continue
        p, draws = fit["params_"], fit["samples"]
        fitted = last_of_each_run(train)
        res = train.L[fitted] - predict_with(law.law, p, train.C[fitted])
        scatter = float(np.sqrt(np.mean(res**2)))
        held = np.array([i for i in last if test[i]])
        C, measured = m.C[held], m.L[held]
        pred = np.atleast_1d(predict_with(law.law, p, C))
        spread = None
        if draws is not None:
            spread = predict_with(law.law, {k: v[:, None] for k, v in draws.items()}, C[None, :])
        rows = []
        for j in range(len(held)):
            row = {"C": float(C[j]), "measured": float(measured[j]), "predicted": float(pred[j])}
            for lv in levels:
                lo = hi = pred[j]
                if spread is not None:
                    lo, hi = np.nanpercentile(spread[:, j], [50 * (1 - lv), 50 * (1 + lv)])
                z = NormalDist().inv_cdf(0.5 + lv / 2) * scatter
                # a fraction's interval stays in [0, 1] (the task-power one reached 1.053)
                row[f"{lv:g}"] = [max(0.0, float(pred[j] - np.hypot(pred[j] - min(lo, pred[j]), z))),
                                  min(1.0, float(pred[j] + np.hypot(max(hi, pred[j]) - pred[j], z)))]  # fmt: skip
            rows.append(row)
        per.append({"threshold": thr, "n_train": len(fitted), "scatter": scatter,
                    **_errors(rows, levels), "rows": rows})  # fmt: skip
        pooled += rows
    if not per:
        raise FitError(
            f"{m.source}: law {law.law!r}: no threshold could be fitted "
            f"({'; '.join(x['why'] for x in skipped)})"
        )
    return {"law": law.law, "metric": s["metric_col"], "by": "C", "levels": list(levels),
            "thresholds": per, "skipped": skipped, "overall": _errors(pooled, levels)}  # fmt: skip


def _errors(rows, levels) -> dict:
    err = np.array([100 * (r["predicted"] - r["measured"]) for r in rows])
    inside = {f"{lv:g}": float(np.mean([r[f"{lv:g}"][0] <= r["measured"] <= r[f"{lv:g}"][1]
                                       for r in rows])) for lv in levels}  # fmt: skip
    return {"n": len(rows), "mean_abs_error_points": float(np.mean(np.abs(err))),
            "max_abs_error_points": float(np.max(np.abs(err))),
            "bias_points": float(np.mean(err)), "coverage": inside}  # fmt: skip


def fit_sigmoid(
    loss, metric, bootstrap: int = 1000, seed: int = 0, chance: float | None = None
) -> dict:
    """The sigmoid step alone, metric from loss (e.g. a study's runs: val loss -> recall.acc).

    With `chance` (a multiple-choice accuracy's), the ends are fixed: lo = chance and
    hi = 1, and only k and L0 are fitted. A handful of runs over a narrow range of loss
    cannot place four parameters: the free form put brackets' hi at 1659 on a
    quickstart's 14 runs (benchmarks/results/tasks_quickstart.md). Without it the four
    are free, as in OLMo's ladder.

    Returns {"params": {lo, hi, k, L0}, "samples": {name: (B,) draws} or None,
    "objective", "converged", "scatter"}: `scatter` is the runs' standard deviation about
    the fitted sigmoid, sqrt(sum of squared residuals / (runs − fitted parameters)) (None
    with no run to spare): how far one run's metric strays from the law — its items'
    noise and what differs between runs of one loss (the seed, the shape) together."""
    loss, metric = np.asarray(loss, float), np.asarray(metric, float)
    ok = np.isfinite(loss) & np.isfinite(metric)
    wrong = np.flatnonzero(ok & ((metric < 0) | (metric > 1)))
    if wrong.size:  # an accuracy of 1.5 was fitted
        i = int(wrong[0])
        raise DataError(f"metric[{i}] is {metric[i]:g}: a task metric is a fraction in [0, 1]")
    if chance is not None and not 0 <= chance < 1:
        raise ConfigError(f"chance={chance}: must be in [0, 1)")
    sig = sigmoid_for(chance)
    if ok.sum() < len(sig.param_names):
        raise FitError(
            f"{int(ok.sum())} runs with a loss and a task metric; the sigmoid needs "
            f"at least {len(sig.param_names)}"
        )
    res = fit_form(sig, Points(loss[ok], metric[ok], None, "runs"), bootstrap=bootstrap, seed=seed)
    nat = sig.natural(res["ctx"], res["theta"])
    samples = None if res["samples"] is None else sig.natural(res["ctx"], res["samples"])
    params = {k: float(v[0]) for k, v in nat.items()}
    spare = int(ok.sum()) - len(sig.param_names)
    resid = metric[ok] - metric_from_loss(params, loss[ok])
    return {
        "params": params,
        "samples": samples,
        "objective": res["objective"],
        "converged": res["converged"],
        "scatter": float(np.sqrt(np.sum(resid**2) / spare)) if spare > 0 else None,
    }


def accuracy_se(p: float, n: int) -> float:
    """The standard error of an accuracy p measured on n items, sqrt(p (1 - p) / n)."""
    return float(np.sqrt(max(p * (1 - p), 0.0) / n))


def above_chance(metric, chance: float, n: int, z: float = 3.0) -> bool:
    """Whether some run's accuracy lies more than z standard errors (of chance on n
    items) above chance: else the task stays at chance at these scales, and a law
    through its runs would fit noise."""
    return float(np.nanmax(metric)) - chance > z * accuracy_se(chance, n)


def metric_at_loss(
    fit: dict,
    loss: float,
    loss_interval=None,
    ci_level: float = 0.95,
    n_items: int | None = None,
    scatter: float | None = None,
) -> dict:
    """A predicted loss (and its interval) -> the metric and its interval.

    The interval spans the sigmoid's bootstrap draws evaluated across the loss interval
    (the metric falls as the loss rises: its low end comes from the high loss). With
    `n_items` and/or `scatter`, it is an interval for the metric one new run will
    measure: each half-width is widened in quadrature by that run's own noise, times
    the normal quantile of `ci_level` — the larger of the items' standard error,
    sqrt(p (1 - p) / n), and `scatter`, the fitted runs' spread about the law
    (fit_sigmoid's: it holds what differs between runs of one loss, e.g. a seed)."""
    p = float(metric_from_loss(fit["params"], loss))
    lo_l, hi_l = loss_interval if loss_interval is not None else (loss, loss)
    if fit["samples"] is None:
        ends = [float(metric_from_loss(fit["params"], x)) for x in (lo_l, hi_l)]
        lo, hi = min(ends), max(ends)
    else:
        q = 100 * (1 - ci_level) / 2
        at = [metric_from_loss(fit["samples"], x) for x in (lo_l, loss, hi_l)]
        draws = np.concatenate([a[np.isfinite(a)] for a in at])
        lo, hi = np.percentile(draws, [q, 100 - q])
    lo, hi = float(min(lo, p)), float(max(hi, p))
    out = {"predicted": p, "interval": [lo, hi]}
    if n_items or scatter:
        se = accuracy_se(p, n_items) if n_items else 0.0
        noise = max(se, scatter or 0.0)
        z = NormalDist().inv_cdf(0.5 + ci_level / 2) * noise
        lo, hi = p - float(np.hypot(p - lo, z)), p + float(np.hypot(hi - p, z))
        out.update(interval=[max(lo, 0.0), min(hi, 1.0)], noise=noise)
        if n_items:
            out.update(se=se, n_items=n_items)
        if scatter is not None:
            out["scatter"] = scatter
    return out
