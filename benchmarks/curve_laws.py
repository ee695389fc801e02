"""Curve laws on Luo et al.'s schedule curves: fit the `fit` curves, predict the `test` ones.

    .venv/bin/python benchmarks/curve_laws.py [--bootstrap 100] [--figure PATH]

For each model size (25M, 100M, 400M) and law (multi-power, lr-annealing),
the law is fitted on the 3 `split=fit` curves of
../shared/scaling_data/multipowerlaw_schedule_curves.csv and predicts the 6
`split=test` curves, with the LR at every step

- rebuilt from the table's `lr` column by each `--lr-fill` rule
  (linear, auto, previous), as `scalinglab fit` does, and
- exact: the upstream schedules (SOURCES.md: linear warmup 0 → 3e-4 over 2160
  steps, then cosine / constant / two-stage / WSD), to measure what the
  reconstruction costs.

Printed per row: Luo et al.'s PredE (each held-out curve's mean |relative
error|, averaged over the curves) and WorstE (each curve's max, averaged), the
max over all held-out points, and the fit time. Then the time of one fit with
`--bootstrap` resamples per size (the rebuilt LR, lr_fill=linear).
"""

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from scalinglab.laws import ScalingLaw
from scalinglab.laws.curves import read_curve_table
from scalinglab.laws.schedules import Schedule

DATA = Path(__file__).resolve().parents[2] / "shared/scaling_data/multipowerlaw_schedule_curves.csv"
SIZES = ("25M", "100M", "400M")
PUBLISHED = {"25M": (0.110, 0.41), "100M": (0.142, 0.58), "400M": (0.168, 1.0)}
WARMUP, PEAK, LOW = 2160, 3e-4, 3e-5
FIT_FROM = 0  # --fit-from: the fitted curves' points before this step are left out


def exact_schedule(name):
    """The upstream LR at every step for a schedule name (SOURCES.md), in our syntax."""
    kind, _, arg = name.partition("_")
    warm = f"warmup({WARMUP}, {PEAK})"
    if kind == "cosine":
        spec = f"{warm} + cosine({int(arg) - WARMUP}, {LOW})"
    elif kind == "constant":
        spec = f"{warm} + constant({int(arg) - WARMUP})"
    elif kind == "wsdcon":
        spec = f"{warm} + constant({8000 - WARMUP}) + drop(8000, {int(arg) * 1e-5})"
    else:
        decay = "linear" if kind == "wsdld" else "exp"
        spec = f"{warm} + constant({20000 - WARMUP}) + {decay}(4000, {LOW})"
    return Schedule(spec).lr_array()


def table(size, fill):
    t = read_curve_table(
        DATA, run_cols=["schedule"], where=[f"model={size}"], holdout_where=["split=test"]
    )
    if fill == "exact":
        for r in t.runs:
            r.lr_full = exact_schedule(r.run_id)[: r.steps[-1] + 1]
    for r in t.fit_runs if FIT_FROM else ():
        r.lr_full = r.schedule("linear" if fill == "exact" else fill)  # from every logged LR
        keep = r.steps >= FIT_FROM
        r.steps, r.lr, r.loss = r.steps[keep], r.lr[keep], r.loss[keep]
    return t


def one(size, law, fill, bootstrap=0, huber_delta=None):
    fill_setting = "linear" if fill == "exact" else fill
    t0 = time.perf_counter()
    fit = ScalingLaw(law, bootstrap=bootstrap, lr_fill=fill_setting, huber_delta=huber_delta)
    fit.fit(table(size, fill))
    return fit, time.perf_counter() - t0


def figure(path, fits):
    """Top: each held-out curve (solid) and its prediction (dashed); bottom: the error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, axes = plt.subplots(2, len(fits), figsize=(5 * len(fits), 7), sharex="col")
    for col, (size, fit) in enumerate(fits.items()):
        top, bottom = axes[0, col], axes[1, col]
        bt = fit.backtest_
        pts = bt["points"]
        for run in dict.fromkeys(p["run"] for p in pts):
            mine = [p for p in pts if p["run"] == run]
            steps = [p["step"] for p in mine]
            line = top.plot(steps, [p["loss"] for p in mine], lw=1, label=run)[0]
            top.plot(steps, [p["predicted"] for p in mine], "--", color=line.get_color(), lw=1)
            bottom.plot(steps, [100 * p["rel_error"] for p in mine], color=line.get_color(), lw=1)
        top.set_title(
            f"{size}: held-out curves (solid), multi-power predictions (dashed)\n"
            f"PredE {100 * bt['mean_of_run_means']:.3f}%, WorstE "
            f"{100 * bt['mean_of_run_maxes']:.3f}%",
            fontsize=9,
        )
        top.set_ylim(min(p["loss"] for p in pts) - 0.05, max(p["loss"] for p in pts[50:]) + 0.1)
        for lim in (-0.6, 0.6):
            bottom.axhline(lim, color="grey", lw=0.6, ls=":")
        bottom.axhline(0, color="black", lw=0.6)
        bottom.set_ylabel("(predicted − loss) / loss, %")
        bottom.set_xlabel("step")
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xticks([2000, 5000, 10000, 20000, 50000])
    axes[0, 0].set_ylabel("training loss")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--figure", default=None, help="PNG of the multi-power predictions")
    ap.add_argument("--fills", nargs="+", default=["linear", "auto", "previous", "exact"])
    ap.add_argument(
        "--huber-delta", type=float, default=None, help="the fits' Huber delta (default: the law's)"
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="time each bootstrap fit N times: the minimum"
    )
    ap.add_argument(
        "--fit-from", type=int, default=0, help="fit the fitted curves' points from this step on"
    )
    args = ap.parse_args()
    global FIT_FROM
    FIT_FROM = args.fit_from
    print(f"{'size':<6}{'law':<14}{'LR':<10}{'PredE %':>9}{'WorstE %':>10}{'max %':>8}{'fit s':>7}")
    shown = {}
    for size in SIZES:
        for law in ("multi-power", "lr-annealing"):
            for fill in args.fills:
                fit, secs = one(size, law, fill, huber_delta=args.huber_delta)
                bt = fit.backtest_
                print(
                    f"{size:<6}{law:<14}{fill:<10}{100 * bt['mean_of_run_means']:>9.3f}"
                    f"{100 * bt['mean_of_run_maxes']:>10.3f}{100 * bt['max_abs_rel_error']:>8.3f}"
                    f"{secs:>7.1f}",
                    flush=True,
                )
                if law == "multi-power" and fill == "linear":
                    shown[size] = fit
        pe, we = PUBLISHED[size]
        print(f"{size:<6}{'published':<14}{'exact':<10}{pe:>9.3f}{we:>10.3f}")
    if args.figure:
        figure(args.figure, shown)
    if args.bootstrap:
        print(
            f"\nfit + {args.bootstrap} bootstrap resamples (lr_fill=linear), min of {args.repeat}:"
        )
        for size in SIZES:
            for law in ("multi-power", "lr-annealing"):
                wall = cpu = float("inf")
                for _ in range(args.repeat):
                    c0 = time.process_time()
                    fit, secs = one(size, law, "linear", args.bootstrap, args.huber_delta)
                    wall, cpu = min(wall, secs), min(cpu, time.process_time() - c0)
                ci = fit.ci_["alpha"]
                print(
                    f"{size:<6}{law:<14}{wall:>6.1f} s wall {cpu:>5.1f} s CPU   "
                    f"alpha {fit.params_['alpha']:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]",
                    flush=True,
                )


if __name__ == "__main__":
    main()
