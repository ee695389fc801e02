"""The compute-optimal allocation of a fitted law: N_opt, D_opt and L_opt at a budget C.

Chinchilla (C = 6ND): minimising A/N^α + B/D^β under D = C/(6N) gives
N_opt = G·(C/6)^(β/(α+β)), D_opt = (C/6)/N_opt with G = (αA/(βB))^(1/(α+β)).
IsoFLOP / envelope fits use their power laws N_opt = k_N·C^a, D_opt = k_D·C^b
(and L_opt = k_L·C^a_L for isoflop). Every quantity is also computed for each
bootstrap draw of the fit, and its percentile interval reported as `*_ci`.

It is the law's own algebra (`ScalingLaw.optimal`); scalinglab.plan builds the
compute for a target loss and the fixed-size comparison on it.
"""

import warnings

import numpy as np

from scalinglab.errors import ConfigError, DataError, FitError
from scalinglab.laws import intervals
from scalinglab.laws.forms import Power

KEYS = ("flops", "params", "tokens", "tokens_per_param", "loss")


def allocate(law_name: str, p, C):
    """(N, D, L) at compute C under parameters p (floats, or (K, 1) arrays of draws); N and
    D are NaN under power-c, a law of the loss along the compute-optimal frontier alone."""
    if law_name not in ("chinchilla", "isoflop", "envelope", "power-c"):
        raise ConfigError(
            f"law {law_name!r} has no compute-optimal allocation; use chinchilla, isoflop or "
            "envelope (power-c gives the loss at a budget, without N and D)"
        )
    # numpy floats: parameters in their domain but extreme (A = 1e308, alpha = 1e-300) give
    # inf, NaN or 0, which the callers refuse (point_allocation) or leave out (a draw), not
    # Python's OverflowError or ZeroDivisionError, nor numpy's warnings
    p = {k: np.asarray(v, dtype=float) for k, v in p.items()}
    C = np.asarray(C, dtype=float)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        if law_name == "chinchilla":
            a, b = p["alpha"], p["beta"]
            G = (a * p["A"] / (b * p["B"])) ** (1.0 / (a + b))
            N = G * (C / 6.0) ** (b / (a + b))
            D = (C / 6.0) / N
            L = p["E"] + p["A"] / N**a + p["B"] / D**b
        elif law_name in ("isoflop", "envelope"):
            N = p["k_N"] * C ** p["a"]
            D = p["k_D"] * C ** p["b"]
            L = p["k_L"] * C ** p["a_L"] if "k_L" in p else np.full(np.shape(N), np.nan)
        else:  # power-c: the frontier's loss at C; N and D are no part of it
            L = Power("C").predict(p, C=C)
            N = D = np.full(np.shape(L), np.nan)
    return N, D, L


def check_exponents(law) -> None:
    """FitError for a Chinchilla fit with an exponent at or below 0: its allocation has no
    minimum (the closed form gave complex N, and plan failed as 'predict: N must be
    numbers, got array([...j])')."""
    if law.law != "chinchilla":
        return
    for name, var in (("alpha", "N"), ("beta", "D")):
        v = law.params_.get(name)
        if v is not None and not v > 0:
            raise FitError(
                f"the fit's {name} is {v:.3g} <= 0 (the loss does not fall as {var} grows): "
                "no compute-optimal allocation"
            )


def point_allocation(law, Cs):
    """allocate() at the fit's own parameters, budgets Cs (an array). Parameters within their
    law's domain (load_fit checks it) but extreme (A = 1e308, alpha = 1e-300) overflowed: a
    Python OverflowError traceback, or numpy's warnings and then N = 0 blamed on predict.
    DataError (naming the fit.json) for a budget whose N, D or loss is not a finite number."""
    p = law.params_
    N, D, L = allocate(law.law, p, Cs)
    checks = [("loss", L)] if law.law == "power-c" else [("params", N), ("tokens", D)]
    if law.law == "chinchilla" or np.isfinite(p.get("k_L", np.nan) + p.get("a_L", np.nan)):
        checks.append(("loss", L))
    for what, x in checks:
        bad = ~(np.isfinite(x) & ((x > 0) if what != "loss" else True))
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            where = getattr(law, "fit_path_", None) or f"the {law.law} law"
            shown = ", ".join(f"{k}={v:.4g}" for k, v in p.items() if "@" not in k)
            raise DataError(
                f"{where}: the compute-optimal {what} at --flops {Cs[i]:g} come out "
                f"{x[i]:.4g}, not a finite number{' > 0' if what != 'loss' else ''}: the "
                f"fit's parameters ({shown}) are beyond what a float can compute"
            )
    return N, D, L


def percentile_interval(draws, ci_level: float):
    """(lo, hi) percentiles of draws along axis 0; non-finite draws are left out."""
    q = 100 * (1 - ci_level) / 2
    with warnings.catch_warnings():  # an all-NaN column (no loss law) gives a NaN interval
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(np.where(np.isfinite(draws), draws, np.nan), [q, 100 - q], axis=0)
    return lo, hi


def finite_or_none(x):
    """A float, or None where it is not finite (JSON has no NaN)."""
    x = float(x)
    return x if np.isfinite(x) else None


def draw_columns(law):
    """The fit's bootstrap draws as (K, 1) columns (they broadcast against budgets), or None."""
    if law.samples_ is None:
        return None
    return {k: v[:, None] for k, v in law.samples_.items()}


def _rows(law, C, N, D, L, draws):
    vals = {"flops": C, "params": N, "tokens": D, "tokens_per_param": D / N, "loss": L}
    cis = {}
    if draws is not None:
        Nd, Dd, Ld, Cd = draws
        dvals = {"flops": Cd, "params": Nd, "tokens": Dd, "tokens_per_param": Dd / Nd, "loss": Ld}
        shape = np.broadcast_shapes(Nd.shape, (1, len(C)))
        level = law.settings["ci_level"]
        cis = {k: percentile_interval(np.broadcast_to(v, shape), level) for k, v in dvals.items()}
    out = []
    for i in range(len(C)):
        row = {k: finite_or_none(vals[k][i]) for k in KEYS}
        for k, (lo, hi) in cis.items():
            row[f"{k}_ci"] = [finite_or_none(lo[i]), finite_or_none(hi[i])]
        out.append(row)
    return out


def bool_or_text(v) -> bool:
    """Whether `v` is a bool or a string or holds one (a numpy bool, a list with True in
    it): numpy takes True as 1, so plan_run(law, flops=True) planned a run at C = 1 FLOP,
    and it reads "1e21" as 1e21, so flops="1e21" was planned while target_loss="2.5"
    was refused."""
    if isinstance(v, (list, tuple)):
        return any(bool_or_text(x) for x in v)
    if isinstance(v, np.ndarray):
        return v.dtype.kind in "bUSO" and (v.dtype.kind != "O" or bool_or_text(v.tolist()))
    return isinstance(v, (bool, np.bool_, str, bytes, np.str_))


def optimal_allocation(law, C):
    """Compute-optimal N, D, tokens per parameter and loss at each FLOP budget C."""
    law.check_fitted()
    check_exponents(law)
    if bool_or_text(C):
        raise ConfigError(f"--flops: a number or a list of numbers, got {C!r}")
    try:
        Cs = np.atleast_1d(np.asarray(C, dtype=float))
    except (TypeError, ValueError):  # from Python: flops=["1e21", "big"], a dict
        raise ConfigError(f"--flops: a number or a list of numbers, got {C!r}") from None
    if Cs.size == 0:  # flops=[] unpacked nothing: a ValueError deep in the draws
        raise ConfigError("--flops: no budget given (an empty list)")
    if Cs.ndim > 1:  # one row per budget: a list
        raise ConfigError(
            f"--flops: a number or a list of numbers, got an array of shape {Cs.shape}"
        )
    if np.any(~np.isfinite(Cs) | (Cs <= 0)):
        raise ConfigError(f"--flops must be positive numbers, got {C}")
    N, D, L = point_allocation(law, Cs)
    draws = None
    s = draw_columns(law)
    if s is not None:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            draws = (*allocate(law.law, s, Cs[None, :]), np.broadcast_to(Cs, (1, len(Cs))))
    rows = _rows(law, Cs, N, D, L, draws)
    for r in rows:
        r.pop("flops_ci", None)  # the budget is given, not estimated
        if law.law == "power-c":  # a loss at C: no N or D to show
            for k in ("params", "tokens", "tokens_per_param"):
                r.pop(k)
                r.pop(f"{k}_ci", None)
    pi = prediction_interval(law, N, D, Cs)
    if pi is not None:
        for r, lo, hi in zip(rows, *pi, strict=True):
            r["loss_pi"] = [finite_or_none(lo), finite_or_none(hi)]
    return rows[0] if np.ndim(C) == 0 else rows


def prediction_interval(law, N, D, C):
    """(lo, hi) of the prediction interval of one new run at N, D, C (arrays), or None for a
    law without a noise model (isoflop, envelope, a law from its parameters)."""
    if not intervals.has_noise(law) or law.law in ("isoflop", "envelope"):
        return None
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        _, lo, hi = law.predict(
            **law.inputs_used(N=N, D=D, C=C), return_ci=True, kind="prediction", check_range=False
        )
    return np.atleast_1d(lo), np.atleast_1d(hi)
