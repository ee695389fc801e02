"""Confidence and prediction intervals for a law's predicted loss.

- A **confidence** interval is an interval for the fitted curve: the percentile
  interval of the predictions of the bootstrap draws of the parameters (the
  bootstrap resamples whole runs). It shrinks as runs are added and says
  nothing about where one more run will land.
- A **prediction** interval is an interval for the loss of one new run: each
  bootstrap draw's predicted log-loss plus one draw of the run-to-run noise,
  and the percentile interval of those sums. The noise is drawn from the fit's
  own log-residuals (inflated by sqrt(n / (n − P)) for the P fitted
  parameters), rescaled to the spread of the seed repeats where the table has
  repeated (N, D[, U]) runs and they spread more than the residuals do. The
  residuals carry both the seed noise and the law's misfit, which a new run
  meets too. A calibrated fit (below) takes the seed repeats' spread wherever
  the table has them, larger or not: the misfit is then what its calibration
  measures, growing with the distance, rather than a constant spread.
- A **calibration** (`calibration_`): how the prediction interval must be
  scaled to cover runs beyond the fitted ones, found by a leave-larger-out
  backtest of the fit's own rows (normalized conformal prediction). A held-out
  run's score is |log L − log pred| over its raw half-width (on its side) times
  (1 + d/d0)^2, where d = log(x / x_max) >= 0 is how far beyond the largest
  fitted x (C, N or D: the `calibrate` setting) it lies and d0 the median such
  distance above 0 in the calibration backtest; the factor q per level is the conformal
  quantile of the scores. A calibrated interval is the raw one scaled about the
  point prediction, in log space, by max(floor, q·(1 + d/d0)^2), growing with the
  square of the log-distance of extrapolation (a fit matches the level and slope
  at the edge of its data; a wrong curvature's error grows as d^2). The floor is 1
  (never narrower than the raw interval: where the law is right, a q below 1 is
  chance) unless the raw interval held more of the calibration backtest's runs
  than the level by more than NARROW_Z binomial standard errors: then it is 0 and
  the calibration may narrow the raw interval (it is too wide: residuals larger
  than the scatter of the larger runs). Fits saved before "floors" have floor 1.
  Fits saved before `power` and `floor` were stored grow linearly and may narrow
  (q·(1 + d/d0)); fits saved before d0 existed carry factors only (never below 1,
  no growth). Both are applied as they were.

Everything is in log-loss: the laws are fitted on log L and the noise is
multiplicative.
"""

import math

import numpy as np

from scalinglab.errors import ConfigError, FitError

KINDS = ("confidence", "prediction")
LEVELS = (0.8, 0.95)
CAL_FRACS = (0.5, 0.6, 0.7, 0.8, 0.9)  # shares of the fit's rows below the calibration thresholds
CAL_BOOTSTRAP = 200  # bootstrap resamples of each calibration fit (at most)
# A calibrated interval is the raw one times max(FLOOR, q (1 + d/d0)^GROWTH_POWER)
# (benchmarks/results/coverage.md: how these were chosen).
GROWTH_POWER = 2.0
FLOOR = 1.0
# ... where the floor at a level is 0 instead (the calibration may narrow the raw interval)
# when the raw interval held more of the calibration backtest's runs than the level by
# more than NARROW_Z binomial standard errors, sqrt(level (1 - level) / n).
NARROW_Z = 2.0
POOL = 1001  # the noise is stored as the scaled residuals, or this many of their quantiles
PREDICTION_DRAWS = 4000  # at least this many (parameter draw, noise draw) pairs


def seed_spread(keys, logL):
    """Deviations of log L from their group mean, over groups of rows with equal keys
    (seed repeats), each scaled by sqrt(m / (m − 1)); empty when no key repeats."""
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    m = counts[inverse]
    rep = m >= 2
    if not rep.any():
        return np.array([])
    means = np.bincount(inverse, weights=logL) / counts
    dev = (logL - means[inverse]) * np.sqrt(m / np.maximum(m - 1, 1))
    return dev[rep]


def noise_model(logL, logpred, n_params, keys=None, seeds_first=False) -> dict:
    """The run-to-run noise of a fit, as stored in `noise_` (and fit.json's "noise").

    Args:
        logL, logpred: observed and predicted log-loss of the fitted rows.
        n_params: the number of fitted parameters P.
        keys: (n, k) array whose equal rows are repeats of one run (seeds), or None.
        seeds_first: take the seed repeats' spread wherever the rows have them, also when
            the residuals spread more (a calibrated fit: the residuals' excess is the law's
            misfit, which its calibration measures and widens for); otherwise the larger.
    """
    r = np.asarray(logL, dtype=float) - np.asarray(logpred, dtype=float)
    r = r[np.isfinite(r)]
    n = r.size
    if n < 2:
        raise FitError(f"{n} finite residuals: no run-to-run noise can be estimated")
    if n <= n_params:  # the fit passes through every point: residuals of 0 (a sigma of
        # 1e-15 made prediction intervals of zero width), no noise to measure
        return {"source": "none", "sigma": None, "dof": n - n_params}
    r = (r - np.median(r)) * np.sqrt(n / max(n - n_params, 1))
    sigma_res = float(np.std(r))
    out = {"source": "residuals", "sigma": sigma_res, "sigma_residuals": sigma_res,
           "dof": n - n_params}  # fmt: skip
    if keys is not None:
        dev = seed_spread(np.asarray(keys, dtype=float), np.asarray(logL, dtype=float))
        if dev.size >= 3:
            sigma_seed = float(np.sqrt(np.mean(dev**2)))
            out["sigma_seeds"] = sigma_seed
            out["seed_rows"] = int(dev.size)
            if sigma_res > 0 and (seeds_first or sigma_seed > sigma_res):
                r = r * (sigma_seed / sigma_res)
                out["source"] = "seed repeats"
                out["sigma"] = sigma_seed
    # the residuals themselves (a larger table: POOL quantiles of them). 1001 quantiles of
    # a few residuals interpolate between them, which gives the extreme ones half their
    # weight: at 12 residuals the pool spread 18% less than they do
    pool = np.sort(r) if n <= POOL else np.quantile(r, np.linspace(0, 1, POOL))
    out["quantiles"] = [float(x) for x in pool]
    return out


# The draws' 15.87th and 84.13th percentiles: the mean -/+ one standard deviation of a
# normal spread.
SIGMA_PERCENTILES = (
    100 * 0.5 * math.erfc(1 / math.sqrt(2)),
    100 * (1 - 0.5 * math.erfc(1 / math.sqrt(2))),
)


def bootstrap_stderr(draws) -> float:
    """The standard error of a parameter from its bootstrap draws (finite, at least 2):
    half the range of their central 68.27%, which is the standard deviation where the
    draws spread normally. A few refits that ran off to extreme values (an exponent at
    the end of its range) made the standard deviation many times the percentile
    interval's half-width; they move these percentiles by a draw or two."""
    with np.errstate(over="ignore", invalid="ignore"):  # finite draws near the float limit
        lo, hi = np.percentile(draws, SIGMA_PERCENTILES)
        return float((hi - lo) / 2)


NO_RESIDUAL = "the fit has as many parameters as points: no residual measures the noise"


def has_noise(law) -> bool:
    """Whether `law` has a noise model to draw prediction intervals from (not a fit with as
    many parameters as points, nor a law from its parameters)."""
    return bool((getattr(law, "noise_", None) or {}).get("quantiles"))


def check_level(level) -> None:
    """An interval's level: a probability strictly between 0 and 1."""
    if not 0 < level < 1:
        raise ConfigError(f"level={level}: must be in (0, 1)")


def nearest(by_level: dict, level):
    """The value of {"0.8": v, ...} at the stored level nearest `level`."""
    levels = np.array([float(k) for k in by_level])
    return list(by_level.values())[int(np.argmin(np.abs(levels - level)))]


def factor(law, level) -> float:
    """The calibration factor q of `law` at `level` (1 without a calibration)."""
    cal = getattr(law, "calibration_", None) or {}
    factors = cal.get("factors") or {}
    return float(nearest(factors, level)) if factors else 1.0


def floor_of(cal, level) -> float:
    """The smallest scaling of the raw interval a calibration allows at `level`: its
    per-level "floors" (NARROW_Z), else its "floor" (0 in fits saved before it existed)."""
    floors = cal.get("floors")
    return float(nearest(floors, level)) if floors else cal.get("floor", 0.0)


def narrowing_floors(scores_by_level: dict, z=NARROW_Z, floor=FLOOR) -> dict:
    """{level: floor}: 0 where the raw intervals held more of the scored runs (score <= 1)
    than the level by more than z binomial standard errors (they are too wide: the
    calibration may narrow them), else `floor`."""
    out = {}
    for level, scores in scores_by_level.items():
        s = np.asarray(scores, dtype=float)
        s = s[np.isfinite(s)]
        wide = s.size > 0 and np.mean(s <= 1) - level > z * math.sqrt(level * (1 - level) / s.size)
        out[level] = 0.0 if wide else float(floor)
    return out


def growth(cal, x):
    """(m,) the calibration's widening with the distance of extrapolation, (1 + d/d0)^power
    with d = max(log(x / x_max), 0) (power 1 in fits saved before it was stored); ones for
    a calibration without d0."""
    d0 = cal.get("d0") if cal else None
    if not d0:
        return 1.0
    if x is None:
        raise FitError(
            f"the calibration grows with the distance beyond the fitted {cal['by']}: "
            f"give {cal['by']} (or what it is computed from) to predict"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.maximum(np.log(np.asarray(x, dtype=float) / cal["x_max"]), 0.0)
    return (1.0 + d / d0) ** cal.get("power", 1.0)


def shaped(pred, lo, hi):
    """predict's (value, lo, hi) in one kind: three Python floats for a scalar input,
    else three arrays of the value's shape (a scalar call gave a float beside two 0-d
    arrays, which print, compare and serialise differently)."""
    if np.ndim(pred) == 0:
        return float(pred), float(np.ravel(lo)[0]), float(np.ravel(hi)[0])
    shape = np.shape(pred)
    return np.asarray(pred, dtype=float), np.reshape(lo, shape), np.reshape(hi, shape)


def interval(law, pred, draws, kind, level, calibrate=True, x=None):
    """(lo, hi) of the `kind` interval at `level` around the point prediction.

    Args:
        pred: (m,) point predictions (loss).
        draws: (K, m) predictions of the bootstrap draws, or None (a fit without bootstrap:
            the prediction interval is then the noise alone).
        calibrate: scale a prediction interval by the fit's calibration_ (if it has one).
        x: (m,) the calibration's variable (C, N or D) at the inputs, for its growth with
            the distance of extrapolation.
    """
    if kind not in KINDS:
        raise ConfigError(f"kind={kind!r}: not one of {', '.join(KINDS)}")
    check_level(level)
    q = 100 * (1 - level) / 2
    logp = np.log(pred)
    if kind == "confidence":
        if draws is None:
            raise FitError("no bootstrap samples: fit with bootstrap > 0 for intervals")
        lo, hi = np.log(np.nanpercentile(draws, [q, 100 - q], axis=0))
    else:
        noise = getattr(law, "noise_", None)
        if not noise:
            raise FitError(f"law {law.law!r}: this fit has no noise model for prediction intervals")
        if not has_noise(law):
            raise FitError(
                f"law {law.law!r}: {NO_RESIDUAL} for prediction intervals (fit more runs)"
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            base = np.log(draws) if draws is not None else logp[None, :]
        pool = np.asarray(noise["quantiles"])
        lo, hi = np.full_like(logp, np.nan), np.full_like(logp, np.nan)
        for j in range(base.shape[1]):  # each input over its own finite draws
            col = base[:, j][np.isfinite(base[:, j])]
            if col.size == 0:  # no draw predicts here: the interval is unknown (NaN)
                continue
            col = np.tile(col, -(-PREDICTION_DRAWS // col.size))
            # the same noise draws for every input: its interval is not moved by the
            # inputs asked for beside it, or before it
            rng = np.random.default_rng(law.settings["seed"] + 1)
            eps = pool[rng.integers(0, len(pool), size=col.shape)]
            lo[j], hi[j] = np.percentile(col + eps, [q, 100 - q])
        if draws is not None:  # a new run's interval holds the fit's: with little noise,
            # the Monte Carlo draws of the two made it a hair narrower ([0.9998, 1.515]
            # against the fit's [0.9988, 1.516])
            with np.errstate(divide="ignore", invalid="ignore"):
                fit_lo, fit_hi = np.log(np.nanpercentile(draws, [q, 100 - q], axis=0))
            lo, hi = np.fmin(lo, fit_lo), np.fmax(hi, fit_hi)
    cal = getattr(law, "calibration_", None)
    if calibrate and kind == "prediction" and cal and cal.get("factors"):
        f = np.maximum(factor(law, level) * growth(cal, x), floor_of(cal, level))
        lo, hi = logp - f * (logp - lo), logp + f * (hi - logp)
    return np.exp(lo), np.exp(hi)


def conformal_factors(scores_by_level: dict, floor=1.0) -> dict:
    """{level: factor}: the smallest scaling of the interval at each level that puts
    `level` of the backtest's points inside (never below `floor`: 1, a widening only,
    or 0, a scaling either way).

    A point's score is how far outside its interval it lies, in units of the interval's
    half-width on its side in log space: |log L − log pred| / half-width; inside <= 1."""
    out = {}
    for level, scores in scores_by_level.items():
        s = np.asarray(scores, dtype=float)
        s = s[np.isfinite(s)]
        if s.size == 0:
            out[level] = 1.0
            continue
        # the conformal quantile: rank ceil((n + 1)·level) of n scores
        k = min(int(np.ceil((s.size + 1) * float(level))), s.size)
        out[level] = float(max(floor, np.sort(s)[k - 1]))
    return out


def conformal_scores(L, pred, lo, hi):
    """Conformal scores of observed losses L against intervals [lo, hi] around pred."""
    lL, lp = np.log(L), np.log(pred)
    up = lL >= lp
    half = np.where(up, np.log(hi) - lp, lp - np.log(lo))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(half > 0, np.abs(lL - lp) / half, np.inf)


def held_out(t, by, threshold):
    """Rows of RunsTable t above the threshold of `by`; with checkpoints (t.groups), every
    row of a run that has one."""
    test = getattr(t, by) > threshold
    if t.groups is not None:
        test = np.isin(t.groups, t.groups[test])
    return test


def check_thresholds(thresholds, name: str = "thresholds", what: str = "") -> list[float]:
    """`thresholds` as sorted floats; a non-finite or non-positive one is refused naming it
    (nan, inf and -1 held out every row or none: 'no threshold could be fitted'). `name`
    and `what`: how the caller calls them (the CLI: its flag, and what they are values of)."""
    says = f"{name} must be finite numbers > 0{what}, got"
    values = check_numbers(thresholds, name, says)
    for x in values:
        if not (math.isfinite(x) and x > 0):
            raise ConfigError(f"{says} {x:g}")
    return sorted(values)


def check_numbers(values, name: str, says: str = "") -> list[float]:
    """`values` as floats: a list of numbers, not a string (its characters), nor bools or
    strings among them (float("1e18") and True read as numbers), else a ConfigError
    `says` (default: "NAME must be a list of numbers, got") and what was given."""
    says = says or f"{name} must be a list of numbers, got"
    if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        raise ConfigError(f"{says} {values!r}")
    values = list(values)
    if any(isinstance(x, bool | np.bool_ | str | bytes) for x in values):
        raise ConfigError(f"{says} {values!r}")
    try:
        return [float(x) for x in values]
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{says} {values!r}") from None


def budget_cuts(C, budget, fracs) -> list[float]:
    """Thresholds of C between IsoFLOP budgets, so that each budget is wholly fitted or
    wholly predicted: a run's C (its steps rounded) lies a little off its budget, so a
    threshold at a share of the rows (`fracs`) cut a budget's profile in two. Each share's
    budget is fitted whole; the threshold is its largest C, kept where every run of the
    budgets above lies above it."""
    C, budget = np.asarray(C, dtype=float), np.asarray(budget, dtype=float)
    budgets = np.sort(budget)
    out = set()
    for f in fracs:
        b = budgets[max(math.ceil(f * len(budgets)) - 1, 0)]
        below, above = C[budget <= b], C[budget > b]
        if above.size and above.min() > below.max():
            out.add(float(below.max()))
    return sorted(out)


def thresholds_for(t, by, fracs):
    """Distinct thresholds: the `by` value at or below which each fraction of the rows lies
    (those that leave rows both to fit and to predict); by C in a table with IsoFLOP
    budgets (t.budget), between budgets (budget_cuts). With checkpoints (t.groups) two
    thresholds can hold out the same whole runs: the split is kept once, at the lower."""
    x = np.sort(getattr(t, by))
    for f in fracs:
        if not 0 < f < 1:
            raise ConfigError(f"--train-fracs {f:g}: a share of the rows must be in (0, 1)")
    if by == "C" and getattr(t, "budget", None) is not None:
        candidates = budget_cuts(t.C, t.budget, fracs)
    else:
        candidates = [float(x[max(math.ceil(f * len(x)) - 1, 0)]) for f in fracs]
    out, splits = [], []
    for thr in candidates:
        test = held_out(t, by, thr)
        if test.any() and not test.all() and not any(np.array_equal(test, s) for s in splits):
            out.append(thr)
            splits.append(test)
    return out


def calibration_scores(fit_rows, t, by, levels=LEVELS, fracs=CAL_FRACS) -> dict:
    """The leave-larger-out backtest of a fit's own rows that `calibrate` reads:
    {"scores": {level: conformal scores of the held-out rows (raw intervals)}, "d": their
    distances log(x / x_max) beyond each refit (>= 0), "fitted": the number of rows of the
    refit that predicted each, "thresholds": those used}."""
    x_all = getattr(t, by)
    got = {lv: [] for lv in levels}
    dist = []
    fitted = []
    used = []
    for thr in thresholds_for(t, by, fracs):
        test = held_out(t, by, thr)
        try:
            sub = fit_rows(~test)
        except FitError:
            continue
        held = t.subset(test)
        pred, draws = sub.prediction_draws(N=held.N, D=held.D, C=held.C, U=held.U)
        pred = np.atleast_1d(pred).astype(float)
        dist.append(np.maximum(np.log(getattr(held, by) / x_all[~test].max()), 0.0))
        fitted.append(np.full(pred.size, int((~test).sum())))
        for lv in levels:
            lo, hi = interval(sub, pred, draws, "prediction", lv, calibrate=False)
            got[lv].append(conformal_scores(held.L, pred, lo, hi))
        used.append(thr)
    if not used:
        empty = np.array([])
        return {"scores": {lv: empty for lv in levels}, "d": empty, "fitted": empty,
                "thresholds": []}  # fmt: skip
    return {
        "scores": {lv: np.concatenate(got[lv]) for lv in levels},
        "d": np.concatenate(dist),
        "fitted": np.concatenate(fitted),
        "thresholds": used,
    }


def calibrate(fit_rows, t, by, levels=LEVELS, fracs=CAL_FRACS) -> dict:
    """The calibration of a fit (`calibration_`): the conformal factor per level and the
    growth with the distance of extrapolation, from a leave-larger-out backtest of the
    fit's own rows (module docstring).

    Args:
        fit_rows: mask -> a law fitted on those rows of t (without calibration).
        t: the RunsTable the fit was fitted on (with the U column for data-constrained).
        by: "C", "N" or "D".
    """
    bt = calibration_scores(fit_rows, t, by, levels, fracs)
    out = {
        "method": "normalized conformal scaling of the prediction interval, in log loss, "
        f"by max(floor, q * (1 + d/d0)^power), d = log({by} / x_max): a leave-larger-out "
        f"backtest by {by} "
        "of the fit's own runs",
        "by": by,
        "x_max": float(np.max(getattr(t, by))),
        "thresholds": bt["thresholds"],
    }
    has_nd = by == "C" and t.N is not None and t.D is not None
    if has_nd and not np.allclose(t.C, 6.0 * t.N * t.D, rtol=1e-3, atol=0.0):
        # C counts more than 6ND (a runs table's flops): a new run's C is then no 6ND
        out["C_column"] = str(t.conventions.get("C", "C"))
    if not bt["thresholds"]:
        return {**out, "factors": {}, "points": 0}
    d = bt["d"]
    d0 = float(np.median(d[d > 0])) if np.any(d > 0) else 0.0
    if d0 > 0:
        scale = (1.0 + d / d0) ** GROWTH_POWER
        pooled = {lv: bt["scores"][lv] / scale for lv in levels}
        factors = conformal_factors(pooled, floor=0.0)
        floors = narrowing_floors(bt["scores"])
    else:  # nothing held out lay beyond its fit (ties): a widening, without growth
        factors = conformal_factors(bt["scores"])
        floors = {lv: FLOOR for lv in levels}
    return {
        **out,
        "d0": d0,
        "power": GROWTH_POWER,
        "floor": FLOOR,
        "floors": {f"{lv:g}": f for lv, f in floors.items()},
        "narrow_z": NARROW_Z,
        "points": len(d),
        "factors": {f"{lv:g}": f for lv, f in factors.items()},
    }
