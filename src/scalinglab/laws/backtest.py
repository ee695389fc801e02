"""Backtests: fit on the cheaper runs, predict the held-out expensive ones.

The honest answer to "can I trust the extrapolation?": the relative error of
the predicted loss on runs the fit never saw, all more expensive than any run
it did see.
"""

import math

import numpy as np

from scalinglab.errors import ConfigError, FitError
from scalinglab.laws.estimator import ScalingLaw
from scalinglab.laws.table import as_table


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


def backtest(law, table, *, holdout_frac=None, holdout_above=None, max_bootstrap=200):
    """Fit a fresh copy of `law` (a ScalingLaw) on the cheap runs; score the expensive ones."""
    if law.law in ("isoflop", "envelope"):
        raise ConfigError(f"--law {law.law}: a backtest needs a law that predicts each run's loss")
    t = as_table(table)
    t.require(law.law, "C")
    test, threshold = split_by_compute(t.C, holdout_frac, holdout_above)
    if t.groups is not None:  # checkpoints: a run with any checkpoint held out is held out whole
        test = np.isin(t.groups, t.groups[test])
        if test.all():
            raise FitError(f"the backtest split at C > {threshold:.3g} holds out every run")
    settings = {**law.settings, "bootstrap": min(law.settings["bootstrap"], max_bootstrap)}
    sub = ScalingLaw(law.law, **settings).fit(t.subset(~test))
    held = t.subset(test)
    args = {"N": held.N, "D": held.D, "C": held.C}
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
