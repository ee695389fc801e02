"""Why the GPT's 3× cosine misses in own_curves.py: the floor L0 of its fit.

    .venv/bin/python benchmarks/own_curves_floor.py [--train]

Reads the 3000-step curves of benchmarks/results/own_curves_3000*.csv (GPT
and LSTM each averaged over 4 seeds; every curve from step 900, as in
own_curves.md) and prints, per model, the multi-power fit of the 3 fitted
schedules with L0 free and held at each of `--l0` values (the other six
parameters refitted): the fit's objective, its mean |error| on the fitted
curves, alpha, and the held-out schedules' mean |error| % (the profile of the
fit in L0: how well the fitted curves determine the floor).

It also continues the GPT's constant-LR run (seed 0) to 9000 steps
(`--train` trains it, ~3 min of one core; otherwise it is read from
benchmarks/results/own_curves_9000_gpt_constant.csv) and prints how far the
constant curve past step 3000 is from each fit's prediction: the asymptote's
extrapolation alone, without any decay term. Last, seed 0 alone fitted twice —
on its 3 fitted schedules as own_curves.py does, and with the constant run
continued to 9000 steps in place of the 3000-step one — and each fit's error
on seed 0's held-out schedules: does a fitted curve that reaches the floor
predict the 3× cosine?
"""

import argparse
import csv
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import own_curves
from curve_protocols import Fixed, minimise

from scalinglab.laws.curvelaws import MultiPower, curve_objective, predict_curve
from scalinglab.laws.schedules import Schedule

RESULTS = Path(__file__).resolve().parent / "results"
CURVES = [
    RESULTS / "own_curves_3000.csv",
    RESULTS / "own_curves_3000_gpt_seeds123.csv",
    RESULTS / "own_curves_3000_lstm_seeds123.csv",
]
LONG = RESULTS / "own_curves_9000_gpt_constant.csv"
START, STEPS, LONG_STEPS, WARMUP, EVAL_EVERY = 900, 3000, 9000, 150, 50
PEAK = {"gpt": 3e-3, "lstm": 5e-3}


def train_long():
    """The GPT, seed 0, constant LR to LONG_STEPS: own_curves.py's loop and settings."""
    import torch

    own_curves.WARMUP, own_curves.EVAL_EVERY = WARMUP, EVAL_EVERY
    torch.set_num_threads(1)
    train_data, val = own_curves.corpus()
    vi = np.random.default_rng(1).integers(0, len(val) - own_curves.BLOCK - 1, 512)
    val_x, val_y = own_curves.windows(val, vi)
    lr = Schedule(own_curves.schedules(LONG_STEPS, PEAK["gpt"])["constant"]).lr_array()
    steps, losses = own_curves.train("gpt", lr, train_data, val_x, val_y, 0)
    with open(LONG, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "seed", "schedule", "step", "lr", "loss"])
        w.writerows(
            ("gpt", 0, "constant", int(s), float(lr[s]), float(v))
            for s, v in zip(steps, losses, strict=True)
        )


def fit(runs, l0):
    """Multi-power on runs [(steps, lr, loss)], L0 free (None) or held: (params, objective)."""
    base = MultiPower(delta=1e-2)
    ctx = base.prepare(runs)
    if l0 is None:
        th = minimise(base, ctx, np.ones(len(ctx["logL"])))
    else:
        form = Fixed(0, np.log(l0), base.delta)
        th = form.full(minimise(form, ctx, np.ones(len(ctx["logL"])))[None])[0]
    obj = float(curve_objective(base, ctx)(th[None], np.zeros(1, dtype=int))[0][0])
    return {k: float(v[0]) for k, v in base.natural(th).items()}, obj


def mean_error(params, steps, lr, loss):
    return 100 * float(np.mean(np.abs(predict_curve(MultiPower(), params, steps, lr) / loss - 1)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", action="store_true", help="train the 9000-step constant GPT run")
    ap.add_argument("--l0", type=float, nargs="+", default=[0.6, 0.8, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5])
    args = ap.parse_args()
    own_curves.WARMUP = WARMUP
    if args.train:
        train_long()
    with open(LONG, newline="") as f:
        rows = list(csv.DictReader(f))
    ls = np.array([int(r["step"]) for r in rows])
    ll = np.array([float(r["loss"]) for r in rows])
    long_lr = Schedule(own_curves.schedules(LONG_STEPS, PEAK["gpt"])["constant"]).lr_array()
    past = ls >= STEPS
    curves = own_curves.read_curves(CURVES, STEPS)
    print(f"{'model':<6}{'L0':>6}{'objective':>11}{'fitted %':>9}{'alpha':>7}{'held %':>8}"
          f"   held-out curves %   | GPT constant to 9000 (seed 0), past 3000: mean % [at 8949]")  # fmt: skip
    for arch, runs in curves.items():
        runs = [
            (r.run_id, r.held_out, r.steps[r.steps >= START], r.lr_full, r.loss[r.steps >= START])
            for r in runs
        ]
        fitted = [(s, lr, L) for _, held, s, lr, L in runs if not held]
        for l0 in [None, *args.l0]:
            p, obj = fit(fitted, l0)
            fe = np.mean([mean_error(p, s, lr, L) for s, lr, L in fitted])
            held = {n: mean_error(p, s, lr, L) for n, h, s, lr, L in runs if h}
            line = (f"{arch:<6}{'free' if l0 is None else l0:>6}{obj:>11.4e}{fe:>9.3f}"
                    f"{p['alpha']:>7.3f}{np.mean(list(held.values())):>8.3f}   "
                    + " ".join(f"{n}:{e:.2f}" for n, e in held.items()))  # fmt: skip
            if arch == "gpt":
                rel = 100 * (predict_curve(MultiPower(), p, ls[past], long_lr) / ll[past] - 1)
                line += f"   | {np.mean(np.abs(rel)):.2f} [{rel[-1]:+.2f}]"
            print(line, flush=True)
    seed0 = own_curves.read_curves(CURVES, STEPS, seeds={0})["gpt"]
    held = [(r.run_id, r.steps >= START, r) for r in seed0 if r.held_out]
    base = [(r.steps[r.steps >= START], r.lr_full, r.loss[r.steps >= START]) for r in seed0]
    fitted = [b for b, r in zip(base, seed0, strict=True) if not r.held_out]
    names = [r.run_id for r in seed0 if not r.held_out]
    long = (ls[ls >= START], long_lr, ll[ls >= START])
    for what, runs in (
        ("3000-step constant", fitted),
        (
            "constant to 9000",
            [long if n == "constant" else f for n, f in zip(names, fitted, strict=True)],
        ),
    ):
        p, _ = fit(runs, None)
        errs = {n: mean_error(p, r.steps[k], r.lr_full, r.loss[k]) for n, k, r in held}
        print(f"gpt seed 0, fitted with the {what}: L0 {p['L0']:.3f} alpha {p['alpha']:.3f}  "
              f"held-out mean {np.mean(list(errs.values())):.3f}%   "
              + " ".join(f"{n}:{e:.2f}" for n, e in errs.items()), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
