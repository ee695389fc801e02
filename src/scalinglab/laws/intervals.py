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
  meets too.
- A **calibration** (`calibration_`): a factor per level that widens an
  interval about the point prediction in log space, found by conformal
  scoring of a leave-larger-out backtest (scalinglab.laws.backtest). 1 means
  the backtest found the interval covering at its level already.

Everything is in log-loss: the laws are fitted on log L and the noise is
multiplicative.
"""

import math

import numpy as np

from scalinglab.errors import ConfigError, FitError

KINDS = ("confidence", "prediction")
LEVELS = (0.8, 0.95)
CAL_FRACS = (0.5, 0.65, 0.8)  # shares of the fit's rows below the calibration thresholds
CAL_BOOTSTRAP = 200  # bootstrap resamples of each calibration fit (at most)
POOL = 1001  # the noise is stored as this many quantiles of the scaled residuals
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


def noise_model(logL, logpred, n_params, keys=None) -> dict:
    """The run-to-run noise of a fit, as stored in `noise_` (and fit.json's "noise").

    Args:
        logL, logpred: observed and predicted log-loss of the fitted rows.
        n_params: the number of fitted parameters P.
        keys: (n, k) array whose equal rows are repeats of one run (seeds), or None.
    """
    r = np.asarray(logL, dtype=float) - np.asarray(logpred, dtype=float)
    r = r[np.isfinite(r)]
    n = r.size
    if n < 2:
        raise FitError(f"{n} finite residuals: no run-to-run noise can be estimated")
    r = (r - np.median(r)) * np.sqrt(n / max(n - n_params, 1))
    sigma_res = float(np.std(r))
    out = {"source": "residuals", "sigma": sigma_res, "sigma_residuals": sigma_res}
    if keys is not None:
        dev = seed_spread(np.asarray(keys, dtype=float), np.asarray(logL, dtype=float))
        if dev.size >= 3:
            sigma_seed = float(np.sqrt(np.mean(dev**2)))
            out["sigma_seeds"] = sigma_seed
            out["seed_rows"] = int(dev.size)
            if sigma_seed > sigma_res > 0:
                r = r * (sigma_seed / sigma_res)
                out["source"] = "seed repeats"
                out["sigma"] = sigma_seed
    out["quantiles"] = [float(x) for x in np.quantile(r, np.linspace(0, 1, POOL))]
    return out


def factor(law, level) -> float:
    """The calibration factor of `law` at `level` (1 without a calibration)."""
    cal = getattr(law, "calibration_", None) or {}
    factors = cal.get("factors") or {}
    if not factors:
        return 1.0
    levels = np.array([float(k) for k in factors])
    return float(list(factors.values())[int(np.argmin(np.abs(levels - level)))])


def interval(law, pred, draws, kind, level, calibrate=True):
    """(lo, hi) of the `kind` interval at `level` around the point prediction.

    Args:
        pred: (m,) point predictions (loss).
        draws: (K, m) predictions of the bootstrap draws, or None (a fit without bootstrap:
            the prediction interval is then the noise alone).
    """
    if kind not in KINDS:
        raise ConfigError(f"kind={kind!r}: not one of {', '.join(KINDS)}")
    if not 0 < level < 1:
        raise ConfigError(f"level={level}: must be in (0, 1)")
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
        with np.errstate(divide="ignore", invalid="ignore"):
            base = np.log(draws) if draws is not None else logp[None, :]
        rng = np.random.default_rng(law.settings["seed"] + 1)
        pool = np.asarray(noise["quantiles"])
        lo, hi = np.full_like(logp, np.nan), np.full_like(logp, np.nan)
        for j in range(base.shape[1]):  # each input over its own finite draws
            col = base[:, j][np.isfinite(base[:, j])]
            if col.size == 0:  # no draw predicts here: the interval is unknown (NaN)
                continue
            col = np.tile(col, -(-PREDICTION_DRAWS // col.size))
            eps = pool[rng.integers(0, len(pool), size=col.shape)]
            lo[j], hi[j] = np.percentile(col + eps, [q, 100 - q])
    if calibrate:
        f = factor(law, level)
        lo, hi = logp - f * (logp - lo), logp + f * (hi - logp)
    return np.exp(lo), np.exp(hi)


def conformal_factors(scores_by_level: dict) -> dict:
    """{level: factor}: the smallest widening of the interval at each level that puts
    `level` of the backtest's points inside (1 when they are inside already).

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
        out[level] = float(max(1.0, np.sort(s)[k - 1]))
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


def thresholds_for(t, by, fracs):
    """Distinct thresholds: the `by` value at or below which each fraction of the rows lies
    (those that leave rows both to fit and to predict)."""
    x = np.sort(getattr(t, by))
    out = []
    for f in fracs:
        if not 0 < f < 1:
            raise ConfigError(f"train fraction {f} is not in (0, 1)")
        thr = float(x[max(math.ceil(f * len(x)) - 1, 0)])
        test = held_out(t, by, thr)
        if test.any() and not test.all() and thr not in out:
            out.append(thr)
    return out


def calibrate(fit_rows, t, by, levels=LEVELS, fracs=CAL_FRACS) -> dict:
    """The calibration of a fit (`calibration_`): conformal widening factors per level
    from a leave-larger-out backtest of its own rows.

    Args:
        fit_rows: mask -> a law fitted on those rows of t (without calibration).
        t: the RunsTable the fit was fitted on (with the U column for data-constrained).
        by: "C", "N" or "D".
    """
    got = {lv: [] for lv in levels}
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
        for lv in levels:
            lo, hi = interval(sub, pred, draws, "prediction", lv, calibrate=False)
            got[lv].append(conformal_scores(held.L, pred, lo, hi))
        used.append(thr)
    out = {
        "method": "conformal widening of the prediction interval, in log loss, from a "
        f"leave-larger-out backtest by {by} of the fit's own runs",
        "by": by,
        "thresholds": used,
    }
    if not used:
        return {**out, "factors": {}, "points": 0}
    pooled = {lv: np.concatenate(got[lv]) for lv in levels}
    factors = conformal_factors(pooled)
    return {
        **out,
        "points": len(pooled[levels[0]]),
        "factors": {f"{lv:g}": f for lv, f in factors.items()},
    }
