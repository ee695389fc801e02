"""Synthetic runs tables drawn from known laws, with multiplicative log-normal noise."""

import numpy as np

TRUE_CHIN = {"E": 1.7, "A": 400.0, "B": 1200.0, "alpha": 0.34, "beta": 0.28}


def chinchilla_law(N, D, p=TRUE_CHIN):
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


def grid_table(law, sizes, tokens, sigma, rng):
    N, D = (a.ravel() for a in np.meshgrid(sizes, tokens))
    L = law(N, D) * np.exp(sigma * rng.standard_normal(N.size))
    return {"N": N, "D": D, "L": L}


def chinchilla_curves_csv(path, sizes, tokens, header="run_id,params,tokens,flops,loss"):
    """A curves CSV of the Chinchilla law, exact: run i of N = sizes[i], a checkpoint at
    each D of `tokens`, C = 6ND."""
    lines = [header]
    for i, N in enumerate(sizes):
        lines += [f"r{i},{N},{D},{6 * N * D},{chinchilla_law(N, D)}" for D in tokens]
    path.write_text("\n".join(lines) + "\n")
    return path


def power_table(var, E, alpha, xc, xs, sigma, rng):
    L = E + (xc / xs) ** alpha
    return {var: xs, "L": L * np.exp(sigma * rng.standard_normal(xs.size))}


def power_c_draw(rng, sigma=0.01, floor=True, new_runs=10):
    """One synthetic power-c table (20 runs, C 1e17..1e19), `new_runs` new C beyond it
    (1.1-3.2x) and the true loss there: L = 1.7 + (1e16 / C)^0.3, or without the floor
    L = (1e22 / C)^0.05."""
    C = np.logspace(17, 19, 20)
    new = np.logspace(19.05, 19.5, new_runs)

    def truth(C):
        return 1.7 + (1e16 / C) ** 0.3 if floor else (1e22 / C) ** 0.05

    table = {"C": C, "L": truth(C) * np.exp(sigma * rng.standard_normal(C.size))}
    return table, new, truth(new)


def synthetic_coverage(
    law,
    draws,
    *,
    sigma=0.01,
    bootstrap=100,
    levels=(0.8, 0.95),
    seed=0,
    calibrate="none",
    floor=True,
    new_runs=10,
):
    """Share of new runs inside the prediction intervals of fits to synthetic tables.

    Each draw: a table from the true law with log-normal noise (sigma), a fit with a
    bootstrap, and 10 new runs beyond the table (up to ~3x in C, or in N and D), drawn
    with the same noise (power-c: `new_runs` of them; `floor` False fits and draws the
    law without its E); `calibrate` as ScalingLaw's. Returns ({level: share inside}, points)."""
    from scalinglab.laws import ScalingLaw

    rng = np.random.default_rng(seed)
    inside = {lv: 0 for lv in levels}
    n = 0
    for i in range(draws):
        if law == "power-c":
            table, newC, true_new = power_c_draw(rng, sigma, floor, new_runs)
            new = {"C": newC}
        else:
            sizes, tokens = np.logspace(7, 9, 5), np.logspace(9, 11, 5)
            table = grid_table(chinchilla_law, sizes, tokens, sigma, rng)
            N = np.logspace(9.05, 9.5, 10)
            new = {"N": N, "D": 20 * N}
            true_new = chinchilla_law(new["N"], new["D"])
        opts = {} if floor else {"floor": False}
        fit = ScalingLaw(law, bootstrap=bootstrap, seed=i, calibrate=calibrate, **opts).fit(table)
        obs = true_new * np.exp(sigma * rng.standard_normal(true_new.size))
        for lv in levels:
            _, lo, hi = fit.predict(**new, return_ci=True, kind="prediction", level=lv)
            inside[lv] += int(np.sum((lo <= obs) & (obs <= hi)))
        n += true_new.size
    return {lv: inside[lv] / n for lv in levels}, n


def with_draws(law_name, point, spread, k=400, seed=0):
    """A fitted-looking law at `point` whose bootstrap draws are `point` times a
    log-normal spread: intervals computed from known draws."""
    from scalinglab.laws import ScalingLaw

    rng = np.random.default_rng(seed)
    law = ScalingLaw(law_name)
    law.params_, law.derived_, law.stderr_, law.ci_ = dict(point), {}, {}, {}
    law.samples_ = {n: v * np.exp(spread * rng.standard_normal(k)) for n, v in point.items()}
    return law
