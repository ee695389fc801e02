"""Choose a ladder design by simulation: which cheap set of runs predicts a run far
beyond them best, for a given fraction of its compute?

Synthetic truth: L(N, D) = E + A/N^alpha + B/D^beta at the quickstart's scale (byte-level
GPTs of 10^4-10^6 parameters), with the run-to-run noise the quickstart measures (0.35%
relative standard deviation between seeds). Runs that share a WSD trunk share part of
their noise (the trunk's draw) and add their own (the cooldown's).

Each design is a set of (N, D) runs whose summed training FLOPs (shared trunk steps
counted once) are a given fraction of the target run's C, with its largest run a given
factor below the target. Every draw fits Chinchilla's law to the noisy runs with
scalinglab's own fitter and predicts the compute-optimal run at the target budget; the
error is against that run's noisy measured loss, as a backtest would see it.

    python benchmarks/ladder_design.py --draws 200
    python benchmarks/ladder_design.py --quickstart --draws 100   # issue 22's second round
    python benchmarks/ladder_design.py --trunks --draws 500       # the third: IsoFLOP on trunks
    python benchmarks/ladder_design.py --ladder-toml --draws 500  # the fourth: ladder.toml

Prints one row per design: extrapolation, fit cost ratio, number of runs, and the
median, 90th-percentile and mean signed relative error of the prediction.

`--quickstart` asks the question with what our real runs taught: the quickstart's
constraints (the backtest a 186,560-parameter GPT on 8.93M tokens, C = 1e13; the
ladder's largest run <= 1e12, its fits <= 0.3 of the backtest's compute, sizes on the
2-layer width grid N(w) = 24 w^2 + 412 w, 1024 tokens a step); a seed noise that grows as
runs get shorter (measured: 2.34% over branches of ~200 steps, 1.21% of ~450, 0.27% at
2,966), sigma(steps) = 0.27% (steps / 2966)^-0.8; a third truth fitted to our own runs
(E ~ 0: at these sizes the loss along the compute-optimal frontier is a power law of C);
and three predictors: Chinchilla free, Chinchilla with alpha = beta (the measured
IsoFLOP allocation exponent a = 0.60 [0.36, 0.95] is consistent with 1/2), and `ray`,
a power law L = (C_c / C)^gamma through the branch ends at the backtest's own tokens
per parameter (the run predicted lies on that ray, 10x further).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from flake_hunt import cpu_name  # benchmarks/ is on sys.path when run as a script

from scalinglab import ScalingLaw

SIGMA = 0.0035  # the quickstart's measured seed noise (relative std)
SHARED = 0.7  # share of a branch's noise variance drawn once per trunk

TRUTHS = {
    # alpha > beta, then beta > alpha: both orders of the exponents
    "a.34-b.28": dict(E=0.80, A=19.7, alpha=0.34, B=20.8, beta=0.28),
    "a.28-b.34": dict(E=0.80, A=9.5, alpha=0.28, B=55.0, beta=0.34),
}
OURS = {  # Chinchilla fitted to 58 of our own GPT runs (the IsoFLOP quickstart's, both
    # ladders', their seeds and backtests; E went to 0, residuals 3.4% rms): the third truth
    "ours": dict(E=0.0, A=8.99, alpha=0.231, B=19.7, beta=0.198),
}


def loss(truth, n, d):
    return truth["E"] + truth["A"] / n ** truth["alpha"] + truth["B"] / d ** truth["beta"]


def optimum(truth, c):
    """The truth's compute-optimal (N, D) at C = 6ND (closed form, Hoffmann et al.)."""
    a, b = truth["alpha"], truth["beta"]
    g = ((a * truth["A"]) / (b * truth["B"])) ** (1 / (a + b))
    n = g * (c / 6) ** (b / (a + b))
    return n, c / (6 * n)


def design(kind, c_target, extrapolation, sizes, ratio, fractions, step=2.0, repeats=0):
    """Runs of one design: a list of (N, D, trunk id) and its summed FLOPs.

    The largest size trains ratio * N tokens (its C is c_target / extrapolation);
    the other sizes are 2x apart in N. `wsd` trains one trunk per size to the longest
    fraction and branches a 20% cooldown at each other fraction; `indep` trains each
    (N, D) point as its own run; `isoflop` ignores `ratio` and spreads `sizes` models
    over 3 budgets a factor sqrt(10) apart. Sizes are `step` apart in N; `repeats`
    more seeds of the smallest size's trunk and branches join the fit (their cost too).
    """
    c_max = c_target / extrapolation
    runs, cost = [], 0.0
    if kind == "isoflop":
        for c in c_max / np.sqrt(10) ** np.arange(3):
            n_mid = math.sqrt(c / (6 * ratio))
            for n in n_mid * 2.0 ** (np.arange(sizes) - (sizes - 1) / 2):
                runs.append((n, c / (6 * n), len(runs)))
                cost += c
        return runs, cost
    n_max = math.sqrt(c_max / (6 * ratio))
    trunks = [(i, n_max / step**i) for i in range(sizes)]
    trunks += [(sizes + k, n_max / step ** (sizes - 1)) for k in range(repeats)]
    for i, n in trunks:
        d_full = ratio * n
        if kind == "wsd":
            cost += 6 * n * d_full
            cost += sum(6 * n * 0.2 * f * d_full for f in fractions if f < 1)
        for f in fractions:
            if kind == "indep":
                cost += 6 * n * f * d_full
            runs.append((n, f * d_full, i if kind == "wsd" else len(runs) + 100))
    return runs, cost


def simulate(truth, runs, c_target, draws, rng):
    n_t, d_t = optimum(truth, c_target)
    true_t = loss(truth, n_t, d_t)
    n = np.array([r[0] for r in runs])
    d = np.array([r[1] for r in runs])
    trunk = np.array([r[2] for r in runs])
    clean = loss(truth, n, d)
    errors = []
    for _ in range(draws):
        shared = {t: rng.standard_normal() for t in set(trunk.tolist())}
        eps = np.array(
            [
                math.sqrt(SHARED) * shared[t] + math.sqrt(1 - SHARED) * rng.standard_normal()
                for t in trunk
            ]
        )
        noisy = clean * (1 + SIGMA * eps)
        law = ScalingLaw("chinchilla", bootstrap=0).fit({"N": n, "D": d, "loss": noisy})
        measured = true_t * (1 + SIGMA * rng.standard_normal())
        errors.append(float(law.predict(N=n_t, D=d_t)) / measured - 1)
    return np.array(errors)


DESIGNS = [
    # name, kind, extrapolation, sizes, tokens per parameter at the longest, fractions
    ("isoflop 3x4 (today's kind)", "isoflop", 15, 4, 20, None),
    ("indep 4 sizes x 3 lengths", "indep", 10, 4, 40, (0.25, 0.5, 1.0)),
    ("wsd 4 sizes x 3 branches", "wsd", 10, 4, 40, (0.25, 0.5, 1.0)),
    ("wsd 4 sizes x 5 branches", "wsd", 10, 4, 40, (0.125, 0.25, 0.5, 0.75, 1.0)),
    ("wsd 3 sizes x 5 branches", "wsd", 10, 3, 40, (0.125, 0.25, 0.5, 0.75, 1.0)),
    ("wsd 5 sizes x 5 branches", "wsd", 10, 5, 40, (0.125, 0.25, 0.5, 0.75, 1.0)),
    ("wsd 4 sizes x 5 branches, 80 tok/param", "wsd", 10, 4, 80, (0.125, 0.25, 0.5, 0.75, 1.0)),
    ("wsd 4 sizes x 5 branches, X=30", "wsd", 30, 4, 40, (0.125, 0.25, 0.5, 0.75, 1.0)),
    ("wsd 5 sizes x 5 branches, X=30", "wsd", 30, 5, 40, (0.125, 0.25, 0.5, 0.75, 1.0)),
]
F4 = (6 / 28, 12 / 28, 20 / 28, 1.0)  # the quickstart's ratios 6, 12, 20, 28
LADDER = [  # issue 22's candidates for the study's own ladder (name, ..., step, repeats)
    ("quickstart: wsd 5 sizes 1.55x apart x 4 branches", "wsd", 10.5, 5, 28, F4, 1.55, 0),
    ("wsd 5 sizes 2x apart x 4 branches", "wsd", 10.5, 5, 28, F4, 2.0, 0),
    ("wsd 3 sizes 1.55x apart x 4 branches", "wsd", 10.5, 3, 28, F4, 1.55, 0),
    ("wsd 6 sizes 1.55x apart x 4 branches, X=30", "wsd", 30, 6, 28, F4, 1.55, 0),
]


# --- the second round: the quickstart's constraints and the noise of short runs --------

TOKENS_PER_STEP = 1024  # batch 8 x block 128
SIGMA_AT = (0.0027, 2966.0)  # seed noise 0.27% at 2,966 steps (the quickstart, 3 seeds)
SIGMA_POWER = 0.8  # 2.34% at ~200 steps, 1.21% at ~450: sigma ∝ steps^-0.8
QS_TARGET = (186_560, 8_933_376)  # the backtest run the quickstart trains (width 80)


def width_params(w: int) -> int:
    """Parameters of the quickstart's 2-layer byte-level GPT of width w."""
    return 24 * w * w + 412 * w


def sigma_steps(tokens) -> np.ndarray:
    steps = np.asarray(tokens, dtype=float) / TOKENS_PER_STEP
    return SIGMA_AT[0] * (steps / SIGMA_AT[1]) ** -SIGMA_POWER


def ladder_runs(widths, ratios, repeats=2):
    """A WSD ladder on the width grid: (N, D, trunk id) per branch end, its cost (trunks to
    the longest ratio once, each shorter branch's 20% cooldown, `repeats` more seeds of the
    smallest size's trunk and branches) and its largest run's C, all in 6ND."""
    runs, cost = [], 0.0
    trunks = [(i, width_params(w)) for i, w in enumerate(widths)]
    trunks += [(len(widths) + k, width_params(min(widths))) for k in range(repeats)]
    r_max = max(ratios)
    for i, n in trunks:
        cost += 6 * n * n * r_max + sum(6 * n * 0.2 * r * n for r in ratios if r < r_max)
        runs += [(n, r * n, i) for r in ratios]
    largest = 6 * width_params(max(widths)) ** 2 * r_max
    return runs, cost, largest


def fit_predict(predictor, n, d, noisy, target, ray):
    """The prediction of one predictor from one draw of the ladder's branch ends."""
    nt, dt = target
    if predictor == "ray":
        on = np.isclose(d / n, ray)
        law = ScalingLaw("power-c", bootstrap=0, floor=False)
        law.fit({"C": 6 * n[on] * d[on], "loss": noisy[on]})
        return float(law.predict(C=6 * nt * dt))
    if predictor == "chinchilla a=b":
        law = ScalingLaw("data-constrained", bootstrap=0, tie=["alpha=beta"])
        law.fit({"N": n, "D": d, "U": np.full(len(n), 1e15), "L": noisy})
        return float(law.predict(N=nt, D=dt, U=1e15))
    law = ScalingLaw("chinchilla", bootstrap=0).fit({"N": n, "D": d, "loss": noisy})
    return float(law.predict(N=nt, D=dt))


def draw(clean, sig, trunk, true_t, dt, rng):
    """One noisy copy of the runs (a share SHARED of each run's noise variance drawn once
    per trunk) and of the target run's measured loss."""
    shared = {t: rng.standard_normal() for t in set(trunk.tolist())}
    eps = np.array([math.sqrt(SHARED) * shared[t] for t in trunk])
    eps += math.sqrt(1 - SHARED) * rng.standard_normal(len(trunk))
    measured = true_t * (1 + float(sigma_steps(dt)) * rng.standard_normal())
    return clean * (1 + sig * eps), measured


def simulate_quickstart(truth, runs, draws, rng, predictors, ray):
    """Signed relative errors per predictor over `draws` noisy copies of one ladder."""
    nt, dt = QS_TARGET
    true_t = loss(truth, nt, dt)
    n = np.array([r[0] for r in runs], dtype=float)
    d = np.array([r[1] for r in runs], dtype=float)
    trunk = np.array([r[2] for r in runs])
    clean, sig = loss(truth, n, d), sigma_steps(d)
    errors = {p: [] for p in predictors}
    for _ in range(draws):
        noisy, measured = draw(clean, sig, trunk, true_t, dt, rng)
        for p in predictors:
            try:
                errors[p].append(fit_predict(p, n, d, noisy, QS_TARGET, ray) / measured - 1)
            except Exception:  # a failed fit counts as a miss, not as a gap
                errors[p].append(math.inf)
    return {p: np.array(e) for p, e in errors.items()}


QS_LADDERS = [  # name, widths, tokens-per-parameter ratios (the ray is 48, the backtest's)
    ("last session's: w16-48, 6-28 tpp", (16, 24, 32, 40, 48), (6, 12, 20, 28)),
    ("w16-40 (4.3x N), 12/24/48", (16, 24, 32, 40), (12, 24, 48)),
    ("w8-40 (11x N), 12/24/48", (8, 16, 24, 32, 40), (12, 24, 48)),
    ("w24-40, 24/48", (24, 32, 40), (24, 48)),
]
QS_PREDICTORS = ("chinchilla", "chinchilla a=b", "ray")


def header(what: str):
    print(f"| truth | {what} | extrapolation | fit_cost_ratio | predictor | median abs err "
          "| p90 abs err | mean signed |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")


def row(truth: str, name: str, extrapolation: float, cost: float, predictor: str, err):
    """One table row from a design's signed relative errors (failed fits are inf)."""
    a = np.abs(err)
    print(f"| {truth} | {name} | {extrapolation:.1f} | {cost:.3f} | {predictor} | "
          f"{100 * np.median(a):.2f}% | {100 * np.quantile(a, 0.9):.2f}% | "
          f"{100 * np.mean(err[np.isfinite(err)]):+.2f}% |", flush=True)  # fmt: skip


def quickstart_round(args):
    nt, dt = QS_TARGET
    print(f"target: N {nt:,}, D {dt:,} (48 tokens/param), C {6 * nt * dt:.3g}; "
          f"seed noise at its length {100 * float(sigma_steps(dt)):.2f}%")  # fmt: skip
    header("ladder")
    for tname, truth in {**TRUTHS, **OURS}.items():
        rng = np.random.default_rng(args.seed)
        for name, widths, ratios in QS_LADDERS:
            runs, cost, largest = ladder_runs(widths, ratios)
            c_t = 6 * nt * dt
            preds = [p for p in args.predictors if p != "ray" or 48 in ratios]
            errs = simulate_quickstart(truth, runs, args.draws, rng, preds, 48)
            for p, err in errs.items():
                row(tname, name, c_t / largest, cost / c_t, p, err)


# --- the third round: IsoFLOP budgets on shared trunks, predicted by their frontier -----

QS_TRUNK_DESIGNS = [  # name, {budget: widths}: the quickstart's planner's shapes
    ("trunks 7.5e10/2.3e11/7e11 x 3 sizes (the quickstart)",
     {7.5e10: (8, 16, 24), 2.3e11: (16, 24, 32), 7e11: (24, 32, 48)}),
    ("trunks 7.5e10/2.3e11/7e11 x 4 sizes",
     {7.5e10: (8, 16, 24, 32), 2.3e11: (16, 24, 32, 40), 7e11: (24, 32, 40, 48)}),
    ("trunks 2.3e11/7e11 x 3 sizes", {2.3e11: (16, 24, 32), 7e11: (24, 32, 48)}),
]  # fmt: skip


def trunk_runs(budgets: dict, repeats: int = 2):
    """IsoFLOP budgets trained as one trunk per width with a cooldown branch per budget:
    (N, D, trunk id, budget) per branch end, the cost (each trunk to its largest budget
    once, every other branch's 20% cooldown, `repeats` independent seed runs of the
    lowest budget's middle size) and the largest run's C, in 6ND."""
    runs = [(width_params(w), c / (6 * width_params(w)), w, c)
            for c, widths in budgets.items() for w in widths]  # fmt: skip
    cost = 0.0
    for w in {r[2] for r in runs}:
        cs = sorted(r[3] for r in runs if r[2] == w)
        cost += cs[-1] + 0.2 * sum(cs[:-1])
    low = min(budgets)
    mid = sorted(budgets[low])[len(budgets[low]) // 2]
    runs += [(width_params(mid), low / (6 * width_params(mid)), -1 - k, low)
             for k in range(repeats)]  # fmt: skip
    return runs, cost + repeats * low, max(budgets)


def frontier_predict(n, d, c, noisy, target_c):
    """The study's `frontier` predictor: a parabola in log N per budget, its vertex the
    budget's optimum, a power law of C through the optima."""
    cs = sorted(set(c.tolist()))
    opt = []
    for b in cs:
        at = c == b
        x = np.log(n[at])
        a2, a1, a0 = np.polyfit(x, noisy[at], 2)
        inside = a2 > 0 and x.min() <= -a1 / (2 * a2) <= x.max()
        # as the study's parabola: its vertex, or the best run where it has none inside
        opt.append(a0 - a1 * a1 / (4 * a2) if inside else noisy[at].min())
    slope, icpt = np.polyfit(np.log(cs), np.log(opt), 1)
    return float(np.exp(icpt + slope * math.log(target_c)))


def simulate_trunks(truth, runs, draws, rng, target=QS_TARGET):
    nt, dt = target
    true_t = loss(truth, nt, dt)
    fit = [r for r in runs if r[2] >= 0]  # the seed repeats feed the noise, not the fit
    n, d = np.array([r[0] for r in fit]), np.array([r[1] for r in fit])
    trunk, c = np.array([r[2] for r in fit]), np.array([r[3] for r in fit])
    clean, sig = loss(truth, n, d), sigma_steps(d)
    errors = []
    for _ in range(draws):
        noisy, measured = draw(clean, sig, trunk, true_t, dt, rng)
        errors.append(frontier_predict(n, d, c, noisy, 6 * nt * dt) / measured - 1)
    return np.array(errors)


def trunks_round(args):
    nt, dt = QS_TARGET
    c_t = 6 * nt * dt
    header("design")
    for tname, truth in {**TRUTHS, **OURS}.items():
        rng = np.random.default_rng(args.seed)
        for name, budgets in QS_TRUNK_DESIGNS:
            runs, cost, largest = trunk_runs(budgets)
            err = simulate_trunks(truth, runs, args.draws, rng)
            row(tname, name, c_t / largest, cost / c_t, "frontier", err)
        runs, cost, largest = ladder_runs((8, 16, 24, 32, 40), (12, 24, 48))
        err = simulate_quickstart(truth, runs, args.draws, rng, ["ray"], 48)["ray"]
        row(tname, "ray ladder w8-40, 12/24/48 (the trial)", c_t / largest, cost / c_t, "ray", err)


# --- the fourth round: examples/ladder.toml, >= 30x out for <= 0.1 of the run ----------

LADDER_TOML_DESIGNS = [  # name, {budget: widths}, the backtest's C
    ("the quickstart's budgets x 3 sizes, run 3e13",
     {7.5e10: (8, 16, 24), 2.3e11: (16, 24, 32), 7e11: (24, 32, 48)}, 3e13),
    ("the quickstart's budgets x 4 sizes, run 4e13",
     {7.5e10: (8, 16, 24, 32), 2.3e11: (16, 24, 32, 40), 7e11: (24, 32, 40, 48)}, 4e13),
    ("4 budgets 7.5e10-7e11 (x2.1) x 3 sizes, run 3.5e13",
     {7.5e10: (8, 16, 24), 1.6e11: (16, 24, 32), 3.4e11: (16, 24, 32), 7e11: (24, 32, 48)},
     3.5e13),
    ("1e11/3e11/9e11 x 3 sizes, run 4e13",
     {1e11: (8, 16, 24), 3e11: (16, 24, 32), 9e11: (24, 40, 48)}, 4e13),
    ("2.3e11/7e11 x 4 sizes, run 3e13",
     {2.3e11: (16, 24, 32, 40), 7e11: (24, 32, 40, 48)}, 3e13),
]  # fmt: skip


def ladder_toml_round(args):
    """Candidates for examples/ladder.toml: each predicts a compute-optimal run (48 tokens
    per parameter, as the quickstart's) >= 30x beyond its largest budget for <= 0.1 of it."""
    header("design")
    for tname, truth in {**TRUTHS, **OURS}.items():
        rng = np.random.default_rng(args.seed)
        for name, budgets, c_t in LADDER_TOML_DESIGNS:
            n_t = math.sqrt(c_t / (6 * 48))
            runs, cost, largest = trunk_runs(budgets)
            err = simulate_trunks(truth, runs, args.draws, rng, (n_t, 48 * n_t))
            row(tname, name, c_t / largest, cost / c_t, "frontier", err)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--target-flops", type=float, default=1e13)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ladder", action="store_true", help="only the study's ladder candidates")
    p.add_argument(
        "--quickstart",
        action="store_true",
        help="the second round: the quickstart's constraints, noise by run length",
    )
    p.add_argument(
        "--predictors",
        nargs="+",
        default=list(QS_PREDICTORS),
        choices=QS_PREDICTORS,
        help="--quickstart: the predictors compared (chinchilla a=b is the slow one)",
    )
    p.add_argument(
        "--trunks",
        action="store_true",
        help="the third round: IsoFLOP budgets on shared trunks, predicted by their frontier",
    )
    p.add_argument(
        "--ladder-toml",
        action="store_true",
        help="the fourth round: examples/ladder.toml's candidates (>= 30x, <= 0.1)",
    )
    args = p.parse_args()
    if args.ladder_toml:
        print(f"# {time.strftime('%Y-%m-%d')} · {cpu_name()} · {args.draws} draws")
        return ladder_toml_round(args)
    if args.trunks:
        print(f"# {time.strftime('%Y-%m-%d')} · {cpu_name()} · {args.draws} draws")
        return trunks_round(args)
    if args.quickstart:
        print(f"# {time.strftime('%Y-%m-%d')} · {cpu_name()} · {args.draws} draws")
        return quickstart_round(args)
    cpu = cpu_name()
    print(
        f"# {time.strftime('%Y-%m-%d')} · {cpu} · {args.draws} draws, target C {args.target_flops:.0e}"
    )
    print(
        "| truth | design | extrapolation | fit_cost_ratio | runs | median abs err | p90 abs err | mean signed |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for tname, truth in TRUTHS.items():
        rng = np.random.default_rng(args.seed)
        todo = [] if args.ladder else [(*d, 2.0, 0) for d in DESIGNS]
        for name, kind, x, sizes, ratio, fracs, step, repeats in todo + LADDER:
            runs, cost = design(kind, args.target_flops, x, sizes, ratio, fracs, step, repeats)
            err = simulate(truth, runs, args.target_flops, args.draws, rng)
            a = np.abs(err)
            print(
                f"| {tname} | {name} | {x} | {cost / args.target_flops:.3f} | {len(runs)} | "
                f"{100 * np.median(a):.2f}% | {100 * np.quantile(a, 0.9):.2f}% | {100 * err.mean():+.2f}% |",
                flush=True,
            )


if __name__ == "__main__":
    main()
