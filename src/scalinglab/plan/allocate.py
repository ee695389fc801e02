"""Compute-optimal allocation, the compute for a target loss, and a fixed model size.

Chinchilla (C = 6ND): minimising A/N^α + B/D^β under D = C/(6N) gives
N_opt = G·(C/6)^(β/(α+β)), D_opt = (C/6)/N_opt with G = (αA/(βB))^(1/(α+β)).
IsoFLOP / envelope fits use their power laws N_opt = k_N·C^a, D_opt = k_D·C^b
(and L_opt = k_L·C^a_L for isoflop). Every quantity is also computed for each
bootstrap draw of the fit, and its percentile interval reported as `*_ci`.
"""

import warnings

import numpy as np

from scalinglab.errors import ConfigError, FitError

KEYS = ("flops", "params", "tokens", "tokens_per_param", "loss")


def _alloc(law, p, C):
    """(N, D, L) at compute C; p holds floats or (K, 1) arrays of draws."""
    if law.law == "chinchilla":
        a, b = p["alpha"], p["beta"]
        G = (a * p["A"] / (b * p["B"])) ** (1.0 / (a + b))
        N = G * (C / 6.0) ** (b / (a + b))
        D = (C / 6.0) / N
        L = p["E"] + p["A"] / N**a + p["B"] / D**b
    elif law.law in ("isoflop", "envelope"):
        N = p["k_N"] * C ** p["a"]
        D = p["k_D"] * C ** p["b"]
        L = p["k_L"] * C ** p["a_L"] if "k_L" in p else np.full(np.shape(N), np.nan)
    else:
        raise ConfigError(
            f"law {law.law!r} has no compute-optimal allocation; use chinchilla, isoflop or envelope"
        )
    return N, D, L


def _ci(law, draws):
    q = 100 * (1 - law.settings["ci_level"]) / 2
    with warnings.catch_warnings():  # an all-NaN column (no loss law) gives a NaN interval
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(np.where(np.isfinite(draws), draws, np.nan), [q, 100 - q], axis=0)
    return lo, hi


def _clean(x):
    x = float(x)
    return x if np.isfinite(x) else None


def _rows(law, C, N, D, L, draws):
    vals = {"flops": C, "params": N, "tokens": D, "tokens_per_param": D / N, "loss": L}
    cis = {}
    if draws is not None:
        Nd, Dd, Ld, Cd = draws
        dvals = {"flops": Cd, "params": Nd, "tokens": Dd, "tokens_per_param": Dd / Nd, "loss": Ld}
        shape = np.broadcast_shapes(Nd.shape, (1, len(C)))
        cis = {k: _ci(law, np.broadcast_to(v, shape)) for k, v in dvals.items()}
    out = []
    for i in range(len(C)):
        row = {k: _clean(vals[k][i]) for k in KEYS}
        for k, (lo, hi) in cis.items():
            row[f"{k}_ci"] = [_clean(lo[i]), _clean(hi[i])]
        out.append(row)
    return out


def _samples(law):
    if law.samples_ is None:
        return None
    return {k: v[:, None] for k, v in law.samples_.items()}


def optimal_allocation(law, C):
    """Compute-optimal N, D, tokens per parameter and loss at each FLOP budget C."""
    law._check()
    Cs = np.atleast_1d(np.asarray(C, dtype=float))
    if np.any(~np.isfinite(Cs) | (Cs <= 0)):
        raise ConfigError(f"--flops must be positive numbers, got {C}")
    N, D, L = _alloc(law, law.params_, Cs)
    draws = None
    s = _samples(law)
    if s is not None:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            draws = (*_alloc(law, s, Cs[None, :]), np.broadcast_to(Cs, (1, len(Cs))))
    rows = _rows(law, Cs, N, D, L, draws)
    for r in rows:
        r.pop("flops_ci", None)  # the budget is given, not estimated
    return rows[0] if np.ndim(C) == 0 else rows


def _compute_for_loss(law, p, target):
    """FLOPs at which the compute-optimal loss equals `target` (inf where unreachable)."""
    if law.law == "isoflop":
        with np.errstate(divide="ignore", invalid="ignore"):
            return (target / p["k_L"]) ** (1.0 / p["a_L"])
    if law.law != "chinchilla":
        raise ConfigError(f"--target-loss needs a chinchilla or isoflop fit, not {law.law!r}")
    E = np.asarray(p["E"], dtype=float)
    lo = np.full(np.shape(E), np.log(1e0))
    hi = np.full(np.shape(E), np.log(1e45))
    # L_opt(C) falls monotonically towards E: bisection in log C, vectorised over draws
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        with np.errstate(over="ignore", invalid="ignore"):
            L = _alloc(law, p, np.exp(mid))[2]
        above = target < L
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    C = np.exp(0.5 * (lo + hi))
    return np.where(target > E, C, np.inf)


def target_loss(law, target):
    """The compute (and allocation) the compute-optimal path needs to reach loss `target`."""
    law._check()
    if not target > 0:
        raise ConfigError(f"--target-loss must be > 0, got {target}")
    C = float(_compute_for_loss(law, law.params_, target))
    if not np.isfinite(C):
        floor = law.params_.get("E")
        raise FitError(
            f"--target-loss {target}: unreachable under this fit"
            + (f" (the irreducible loss E is {floor:.4g})" if floor else "")
        )
    out = {"target_loss": target, **optimal_allocation(law, C)}
    s = _samples(law)
    if s is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            Cd = _compute_for_loss(law, {k: v[:, 0] for k, v in s.items()}, target)
        lo, hi = _ci(law, Cd[:, None])
        out["flops_ci"] = [_clean(lo[0]), _clean(hi[0])]
        out["reachable_fraction"] = float(np.mean(np.isfinite(Cd)))
    return out


def fixed_params(law, N, C):
    """Loss of a model of N parameters trained on budget C (D = C/(6N)) vs the optimum at C."""
    law._check()
    if law.law in ("isoflop", "envelope"):
        raise ConfigError(f"--params needs a law that predicts loss from N and D, not {law.law!r}")
    if not (N > 0 and C > 0):
        raise ConfigError(f"--params and --flops must be > 0, got {N}, {C}")
    D = C / (6.0 * N)
    out = {"flops": C, "params": N, "tokens": D, "tokens_per_param": D / N}
    if law.samples_ is not None:
        L, lo, hi = law.predict(N=N, D=D, C=C, return_ci=True)
        out["loss"], out["loss_ci"] = float(L), [float(lo), float(hi)]
    else:
        out["loss"] = float(law.predict(N=N, D=D, C=C))
    if law.law == "chinchilla":
        opt = optimal_allocation(law, C)
        out["optimal"] = opt
        out["excess_loss"] = out["loss"] - opt["loss"]
        # the compute the optimal allocation would need for the same loss
        c_eq = float(_compute_for_loss(law, law.params_, out["loss"]))
        out["compute_efficiency"] = c_eq / C if np.isfinite(c_eq) else None
    return out
