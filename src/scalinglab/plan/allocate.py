"""The compute for a target loss and a fixed model size, from a fitted law.

The compute-optimal allocation itself is the law's algebra
(`scalinglab.laws.optimal`); both functions here walk along it. Every quantity
is also computed for each bootstrap draw of the fit, its percentile interval
reported as `*_ci`.
"""

from pathlib import Path

import numpy as np

from scalinglab.errors import ConfigError, FitError, ScalingLabError
from scalinglab.fsio import sha256_file
from scalinglab.laws.constrained import DataConstrained
from scalinglab.laws.optimal import (
    allocate,
    bool_or_text,
    check_exponents,
    draw_columns,
    finite_or_none,
    optimal_allocation,
    percentile_interval,
    prediction_interval,
)
from scalinglab.laws.settings import CSV_KEYS
from scalinglab.laws.table import read_csv

MAX_FLOPS = 1e45
"""The bisection's ceiling: a target the compute-optimal path reaches only beyond it is
beyond reach (it answered 1e45 FLOPs, at a loss above the target)."""


def _compute_for_loss(law, p, target):
    """FLOPs at which the compute-optimal loss equals `target` (inf where unreachable: at
    or below E, or beyond MAX_FLOPS)."""
    if law.law == "isoflop":
        if "k_L" not in p or "a_L" not in p:
            raise ConfigError(
                "--target-loss: this isoflop law has no loss law L_opt = k_L·C^a_L (k_L, a_L): "
                "it gives N_opt and D_opt only"
            )
        # in logs: the power overflowed (an OverflowError traceback at --target-loss
        # 1e-300) or came to 0 FLOPs (1e300, blamed on a --flops never given); beyond
        # MAX_FLOPS beyond reach, as on Chinchilla's path
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            C = np.exp((np.log(target) - np.log(p["k_L"])) / p["a_L"])
        return np.where(C <= MAX_FLOPS, C, np.inf)
    if law.law == "power-c":  # L = E + (C_c/C)^alpha, inverted; at or below E unreachable
        E = np.asarray(p.get("E", 0.0), dtype=float)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            C = p["C_c"] * np.exp(-np.log(target - E) / p["alpha"])
        return np.where((target > E) & (C <= MAX_FLOPS), C, np.inf)
    if law.law != "chinchilla":
        raise ConfigError(
            f"--target-loss needs a chinchilla, isoflop or power-c fit, not {law.law!r}"
        )
    E = np.asarray(p["E"], dtype=float)
    lo = np.full(np.shape(E), np.log(1e0))
    hi = np.full(np.shape(E), np.log(MAX_FLOPS))
    with np.errstate(over="ignore", invalid="ignore"):
        beyond = ~(target >= allocate(law.law, p, MAX_FLOPS)[2])  # a NaN loss: no answer
    # L_opt(C) falls monotonically towards E: bisection in log C, vectorised over draws
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        with np.errstate(over="ignore", invalid="ignore"):
            L = allocate(law.law, p, np.exp(mid))[2]
        above = target < L
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    C = np.exp(0.5 * (lo + hi))
    return np.where((target > E) & ~beyond, C, np.inf)


def unreachable_interval(draws, ci_level: float):
    """(lo, hi) percentile interval of the compute of each draw, an unreachable draw (inf)
    counted as larger than any other: the upper end is inf when more than the tail share
    of draws cannot reach the target (they were dropped, and the interval could exclude
    the estimate). np.percentile's linear rule where every draw it reads is finite."""
    x = np.sort(np.where(np.isfinite(draws), draws, np.inf))
    q = 100 * (1 - ci_level) / 2
    out = []
    for pct in (q, 100 - q):
        at = pct / 100 * (len(x) - 1)
        i, j = int(np.floor(at)), int(np.ceil(at))
        out.append(np.inf if not np.isfinite(x[j]) else x[i] + (at - i) * (x[j] - x[i]))
    return out


def target_loss(law, target):
    """The compute (and allocation) the compute-optimal path needs to reach loss `target`."""
    law.check_fitted()
    one_number("--target-loss", target)
    if not (np.isfinite(target) and target > 0):  # inf would answer C=1 (the bisection's end)
        raise ConfigError(f"--target-loss must be a finite number > 0, got {target}")
    check_exponents(law)
    C = float(_compute_for_loss(law, law.params_, target))
    if not np.isfinite(C):
        floor = law.params_.get("E")
        if floor is None or target > floor:  # above E (isoflop: no E), yet past the ceiling
            top = float(allocate(law.law, law.params_, MAX_FLOPS)[2])
            raise FitError(
                f"--target-loss {target}: beyond reach under this fit: the compute-optimal "
                f"loss at {MAX_FLOPS:.0e} FLOPs is still {top:.8g}"
                + ("" if floor is None else f" (the irreducible loss E is {floor:.8g})")
            )
        raise FitError(
            f"--target-loss {target}: unreachable under this fit"
            + (f" (the irreducible loss E is {floor:.4g})" if floor else "")
        )
    if C < 1:  # isoflop's power law, inverted (Chinchilla's bisection stops at 1 FLOP)
        raise ConfigError(
            f"--target-loss {target:g}: the fit reaches that loss only below one FLOP "
            f"(C = {C:.3g}); give a lower target"
        )
    out = {"target_loss": target, **optimal_allocation(law, C)}
    s = draw_columns(law)
    if s is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            Cd = _compute_for_loss(law, {k: v[:, 0] for k, v in s.items()}, target)
        lo, hi = unreachable_interval(Cd, law.settings["ci_level"])
        out["flops_ci"] = [finite_or_none(lo), finite_or_none(hi)]  # null: unbounded
        out["reachable_fraction"] = float(np.mean(np.isfinite(Cd)))
    return out


ND_LAWS = ("chinchilla", "kaplan", "nd-interaction", "data-constrained")


def one_number(flag: str, v) -> None:
    """ConfigError naming the flag unless `v` is one real number: from Python, a list, an
    array or a string (`plan_run(law, target_loss=[2.1, 2.2])`) raised numpy's TypeError or
    "truth value of an array is ambiguous"."""
    if isinstance(v, bool) or np.ndim(v) != 0 or np.asarray(v).dtype.kind not in "iuf":
        raise ConfigError(f"{flag} must be one number, got {v!r}")


def fixed_params(law, N, C):
    """Loss of a model of N parameters trained on budget C (D = C/(6N)) vs the optimum at C."""
    law.check_fitted()
    if law.law not in ND_LAWS:  # power-c read no N: every --params got the frontier's loss
        raise ConfigError(
            f"--params needs a law that predicts loss from N and D ({', '.join(ND_LAWS)}), "
            f"not {law.law!r}"
        )
    for name, v in (("--params", N), ("--flops", C)):
        one_number(name, v)
        if not (np.isfinite(v) and v > 0):
            raise ConfigError(f"{name} must be a finite number > 0, got {v}")
    D = C / (6.0 * N)
    out = {"flops": C, "params": N, "tokens": D, "tokens_per_param": D / N}
    # a budget far from the fit is `extrapolation`'s to name (the plan command prints it)
    if law.samples_ is not None:
        L, lo, hi = law.predict(**law.inputs_used(N=N, D=D, C=C), return_ci=True, check_range=False)
        out["loss"], out["loss_ci"] = float(L), [float(lo), float(hi)]
    else:
        out["loss"] = float(law.predict(**law.inputs_used(N=N, D=D, C=C), check_range=False))
    pi = prediction_interval(law, np.array([N]), np.array([D]), np.array([C]))
    if pi is not None:
        out["loss_pi"] = [float(pi[0][0]), float(pi[1][0])]
    if law.law == "chinchilla":
        check_exponents(law)  # before predicting anything
        opt = optimal_allocation(law, C)
        out["optimal"] = opt
        out["excess_loss"] = out["loss"] - opt["loss"]
        # the compute the optimal allocation would need for the same loss
        c_eq = float(_compute_for_loss(law, law.params_, out["loss"]))
        out["compute_efficiency"] = c_eq / C if np.isfinite(c_eq) else None
    return out


def _constrained_best(p, C, U, grid=400, rounds=3):
    """N minimising L(N, C/(6N), U) for params p (floats or (K, 1) draws): a log grid, refined.

    Returns (N, L) shaped like the draws. The loss is unimodal in log N here, so each round
    keeps the grid cell around the minimum and samples it again. The first grid spans the
    whole feasible range, N and D = C/(6N) each from e^-10 to e^10·C/6 (a bracket that
    stopped D at e^30 planned no more than 1.07e13 tokens at any budget)."""
    shape = np.shape(p["A"])
    half = 0.5 * np.log(C / 6.0)  # log N where N = D
    width = abs(half) + 10.0
    lo = np.full(shape, half - width)
    hi = np.full(shape, half + width)
    for _ in range(rounds):
        t = np.linspace(0.0, 1.0, grid)
        logN = lo[..., None] + (hi - lo)[..., None] * t
        N = np.exp(logN)
        pp = {k: np.asarray(v, dtype=float)[..., None] for k, v in p.items()}
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            L = DataConstrained.predict(pp, N, C / (6.0 * N), U)
        L = np.where(np.isfinite(L), L, np.inf)
        i = np.argmin(L, axis=-1)
        step = (hi - lo) / (grid - 1)
        best = np.take_along_axis(logN, i[..., None], -1)[..., 0]
        lo, hi = best - step, best + step
    Lbest = np.take_along_axis(L, i[..., None], -1)[..., 0]
    return np.exp(best), Lbest


def unique_tokens_allocation(law, flops, unique_tokens):
    """For each budget C: the N, D (and epochs D/U) with the lowest predicted loss when only
    U unique tokens exist, under a data-constrained fit (D = C/(6N), data repeated)."""
    law.check_fitted()
    if law.law != "data-constrained":
        raise ConfigError(f"--unique-tokens needs a data-constrained fit, not {law.law!r}")
    for name, v in (("--flops", flops), ("--unique-tokens", unique_tokens)):
        if bool_or_text(v):  # True was 1 FLOP, 1 unique token
            raise ConfigError(f"{name}: a number or a list of numbers, got {v!r}")
    U = float(unique_tokens)
    if not (np.isfinite(U) and U > 0):
        raise ConfigError(f"--unique-tokens must be a finite number > 0, got {unique_tokens}")
    s = draw_columns(law)
    rows = []
    for C in np.atleast_1d(np.asarray(flops, dtype=float)):
        if not (np.isfinite(C) and C > 0):
            raise ConfigError(f"--flops must be a finite number > 0, got {C}")
        N, L = _constrained_best(law.params_, C, U)
        D = C / (6.0 * N)
        row = {
            "flops": float(C), "unique_tokens": U, "params": float(N), "tokens": float(D),
            "tokens_per_param": float(D / N), "epochs": float(D / U), "loss": float(L),
        }  # fmt: skip
        if s is not None:
            Nd, Ld = _constrained_best({k: s[k][:, 0] for k in law.params_}, C, U)
            Dd = C / (6.0 * Nd)
            for k, v in (("params", Nd), ("tokens", Dd), ("epochs", Dd / U), ("loss", Ld)):
                lo, hi = percentile_interval(v[:, None], law.settings["ci_level"])
                row[f"{k}_ci"] = [finite_or_none(lo[0]), finite_or_none(hi[0])]
        rows.append(row)
    return rows


WARN_DECADES = 1.0
"""A budget more than this many decades outside the fitted compute range is flagged."""


def fitted_compute_range(law) -> tuple[float, float] | None:
    """(smallest, largest) compute C among the runs the law was fitted to: fit.json's
    data.C_range, or (a fit.json written before it) read back from its runs table, which
    fit.json names with its sha256; None when that table is gone, changed, or holds no
    compute column."""
    data = getattr(law, "data_", None) or {}
    if data.get("C_range"):  # recorded by the fit (an envelope's table has no sha256)
        lo, hi = data["C_range"]
        return float(lo), float(hi)
    source, sha = data.get("source"), data.get("sha256")
    if not source or not sha or not Path(source).is_file() or sha256_file(source) != sha:
        return None
    keys = {k: law.settings[k] for k in CSV_KEYS if k in law.settings}
    table = None
    for need in (("N", "D", "C"), ("C",)):  # as `fit` read it: C may be 6ND
        try:
            table = read_csv(source, need=need, **keys)
            break
        except ScalingLabError:
            continue
    if table is None:
        return None
    c = np.asarray(table.C, dtype=float) if table.C is not None else np.zeros(0)
    c = c[np.isfinite(c) & (c > 0)]
    return (float(c.min()), float(c.max())) if c.size else None


def extrapolation(c: float, fitted, var: str = "C") -> str | None:
    """How far `c` (compute, or the variable `var`) lies outside the fitted range
    (smallest, largest), when more than WARN_DECADES (in logs: lo / c overflowed, and
    --flops 1e-300 was 'inf decades below')."""
    if not fitted or not isinstance(c, int | float) or not (np.isfinite(c) and c > 0):
        return None
    lo, hi = fitted
    if c > hi * 10**WARN_DECADES:
        return (
            f"{var}={c:.4g} is {np.log10(c) - np.log10(hi):.1f} decades above the largest {var} "
            f"fitted ({hi:.4g})"
        )
    if c < lo / 10**WARN_DECADES:
        return (
            f"{var}={c:.4g} is {np.log10(lo) - np.log10(c):.1f} decades below the smallest {var} "
            f"fitted ({lo:.4g})"
        )
    return None


def extrapolations(law, rows) -> list[str]:
    """What `extrapolation` says of each planned row's compute (none within the band), and
    of its N, D and U where the fit recorded their ranges (data.N_range, data.D_range,
    data.U_range) and they lie outside them on a side the compute's own note does not
    already say (U: always, the compute says nothing of it): a
    `--params 7 --flops 1e21` meant as 7 billion, or a --unique-tokens plan of 200
    parameters, at a budget inside the fitted compute, was answered without a word."""
    fitted = fitted_compute_range(law)
    ranges = getattr(law, "ranges_", None) or {}
    notes = []
    for r in rows:
        c = r.get("flops")
        if not isinstance(c, int | float):
            continue
        said = extrapolation(c, fitted)
        notes.append(said)
        for var, key in (("N", "params"), ("D", "tokens"), ("U", "unique_tokens")):
            note = extrapolation(r.get(key), ranges.get(var), var)
            if note and not (said and (" above " in said) == (" above " in note)):
                notes.append(note)  # on the compute's side, its note says it already
    return [n for n in notes if n]


def check_sizes(law, rows, names=("flops", "target_loss")) -> None:
    """Refuse a plan below one parameter or one token, naming the argument (`names`: how
    the caller spells flops and target_loss, `--flops` on the command line). A budget of
    1 FLOP planned params=0.658 tokens=0.253 (a warning said only that it extrapolated),
    and a target loss above the fit's loss at C = 1 FLOP (the bisection's floor) answered
    flops=1 at another loss."""
    flops_name, loss_name = names
    for row in rows:
        for r, whose in ((row, "the plan"), (row.get("optimal") or {}, "its compute-optimal run")):
            small = [f"{k}={r[k]:.3g}" for k in ("params", "tokens")
                     if isinstance(r.get(k), int | float) and r[k] < 1]  # fmt: skip
            if not small:
                continue
            if "target_loss" in row:
                raise ConfigError(
                    f"{loss_name} {row['target_loss']:g}: the fit reaches that loss only "
                    f"below one parameter or token ({', '.join(small)} at C = {r['flops']:.3g} "
                    f"FLOPs, loss {r['loss']:.4g}); give a lower target"
                )
            note = extrapolation(r["flops"], fitted_compute_range(law))
            raise ConfigError(
                f"{flops_name} {r['flops']:g}: {whose} has {', '.join(small)}, less than one "
                "parameter or token: no run is that small" + (f" ({note})" if note else "")
            )
