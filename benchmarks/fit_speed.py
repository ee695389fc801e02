"""Chinchilla fit + 1000 bootstrap resamples on the Epoch data: ours vs a per-start scipy loop.

    .venv/bin/python benchmarks/fit_speed.py [--resamples 1000] [--scipy-every 1]

Both sides use the same objective and analytic gradient (Huber δ=1e-3 on
log L, LSE parameterisation), Hoffmann's 4500-start grid for the target fit
and a warm start from the full-data optimum for each bootstrap refit. The
scipy side is the straightforward loop: one `scipy.optimize.minimize(...,
method="L-BFGS-B", jac=True)` per start and per resample. `--scipy-every k`
runs every k-th grid start and `--scipy-resamples m` only m resamples, and
scales the times up (to keep the run short). scipy gets tight tolerances
(TIGHT): with its defaults, L-BFGS-B stops when the decrease is below
2.2e-9·max(|f|, 1), an absolute test for this objective (f ≈ 1e-3), and
warm-started bootstrap refits stop at their start — intervals ~20x too narrow.
"""

import argparse
import os
import time
from pathlib import Path

# One BLAS thread for both sides: on a busy machine a BLAS pool woken for the
# thin (1 x 240) products of the per-start loop costs it ~40x, an unfair handicap.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from scipy.optimize import minimize

from scalinglab.laws.fit import bootstrap_weights, fit_starts
from scalinglab.laws.forms import HOFFMANN_GRID, Chinchilla
from scalinglab.laws.optim import minimize_batch
from scalinglab.laws.table import read_csv

DATA = (
    Path(__file__).resolve().parents[2]
    / "shared/scaling_data/epoch_chinchilla_svg_extracted_data.csv"
)


def ours(table, resamples, prune=True):
    form = Chinchilla()
    ctx = form.prepare(table)
    t0 = time.perf_counter()
    res = fit_starts(form.objective(ctx), HOFFMANN_GRID, prune=prune)
    best = res.x[np.argmin(res.fun)]
    t1 = time.perf_counter()
    W = bootstrap_weights(len(table), resamples, 0)
    rb = minimize_batch(form.objective(ctx, W), np.tile(best, (resamples, 1)), max_iter=1000)
    t2 = time.perf_counter()
    return best, float(res.fun.min()), rb.x, t1 - t0, t2 - t1


TIGHT = {"ftol": 1e-14, "gtol": 1e-12, "maxiter": 1000}


def scipy_loop(table, resamples, every, n_boot):
    form = Chinchilla()
    ctx = form.prepare(table)
    fun = form.objective(ctx)
    one = np.arange(1)

    def f(x):
        v, g = fun(x[None], one)
        return v[0], g[0]

    t0 = time.perf_counter()
    best = None
    for x0 in HOFFMANN_GRID[::every]:
        r = minimize(f, x0, jac=True, method="L-BFGS-B", options=TIGHT)
        if best is None or r.fun < best.fun:
            best = r
    t1 = time.perf_counter()
    W = bootstrap_weights(len(table), resamples, 0)
    xs = []
    for w in W[:n_boot]:
        fw = form.objective(ctx, w[None])
        r = minimize(
            lambda x, fw=fw: tuple(a[0] for a in fw(x[None], one)),
            best.x,
            jac=True,
            method="L-BFGS-B",
            options=TIGHT,
        )
        xs.append(r.x)
    t2 = time.perf_counter()
    return best.x, float(best.fun), np.array(xs), (t1 - t0) * every, (t2 - t1) * resamples / n_boot


def timed(fn, *args):
    """fn's result, and its CPU seconds (wall seconds mislead on a shared, busy machine)."""
    c0 = time.process_time()
    out = fn(*args)
    return out, time.process_time() - c0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DATA,
                    help="the Epoch CSV (default: ../shared beside the repository; "
                    "`scalinglab data fetch epoch-chinchilla --out data` gets it)")  # fmt: skip
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--scipy-every", type=int, default=1)
    ap.add_argument("--scipy-resamples", type=int, default=None)
    ap.add_argument(
        "--backtest",
        action="store_true",
        help="time only the full leave-larger-out backtest (every threshold, by C and by N, "
        "--resamples each)",
    )
    args = ap.parse_args()
    if args.backtest:
        return time_backtest(args)
    table = read_csv(args.data, drop_highest=5)
    nat = Chinchilla().natural
    (b1, f1, s1, tf1, tb1), cpu1 = timed(ours, table, args.resamples)
    (b0, f0, _, tf0, _), _ = timed(ours, table, 0, False)
    n_boot = args.scipy_resamples or args.resamples
    (b2, f2, s2, tf2, tb2), cpu2 = timed(
        scipy_loop, table, args.resamples, args.scipy_every, n_boot
    )
    # scipy's CPU time covers the runs it did; scale it like its wall times
    cpu2 *= (tf2 + tb2) / (tf2 / args.scipy_every + tb2 * n_boot / args.resamples)
    print(f"{len(table)} points, {len(HOFFMANN_GRID)} starts, {args.resamples} bootstrap resamples")
    for name, b, f in (
        ("ours (pruned)", b1, f1),
        ("ours (all starts)", b0, f0),
        ("scipy loop", b2, f2),
    ):
        p = {k: float(v[0]) for k, v in nat(None, b).items()}
        print(
            f"  {name:18s} objective {f:.10g}  " + "  ".join(f"{k}={v:.5g}" for k, v in p.items())
        )
    q = lambda s: np.percentile(s[:, 3], [2.5, 97.5])  # noqa: E731
    print(f"  alpha 95% CI: ours {q(s1).round(4)}  scipy {q(s2).round(4)} ({len(s2)} resamples)")
    print(
        f"ours:  fit {tf1:.2f} s (all starts to convergence: {tf0:.2f} s) + bootstrap {tb1:.2f} s = {tf1 + tb1:.2f} s"
    )
    scaled = f" (scaled from every {args.scipy_every}-th start)" if args.scipy_every > 1 else ""
    print(f"scipy: fit {tf2:.2f} s{scaled} + bootstrap {tb2:.2f} s = {tf2 + tb2:.2f} s")
    print(
        f"ratio scipy/ours: fit {tf2 / tf1:.1f}x (vs ours without pruning {tf2 / tf0:.1f}x), "
        f"bootstrap {tb2 / tb1:.1f}x, total {(tf2 + tb2) / (tf1 + tb1):.1f}x"
    )
    print(
        f"CPU seconds, fit + bootstrap: ours {cpu1:.2f} s, scipy {cpu2:.2f} s, ratio {cpu2 / cpu1:.1f}x"
    )


def time_backtest(args):
    """`scalinglab backtest` of the Epoch data: every threshold, --resamples each."""
    from scalinglab.laws.backtest import read_for, rolling_backtest

    for by in ("C", "N"):
        s = {"bootstrap": args.resamples, "drop_highest": 5}
        w0, c0 = time.perf_counter(), time.process_time()
        r = rolling_backtest(
            "chinchilla", read_for(args.data, ["chinchilla"], s), by=by, settings=s
        )
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        o = r["overall"]
        print(
            f"backtest by {by}: {len(r['thresholds'])} thresholds x {args.resamples} resamples, "
            f"{o['n']} predicted points: {wall:.1f} s wall, {cpu:.1f} s CPU "
            f"(mean |rel err| {o['mean_abs_rel_error']:.3%}, in 80% {o['coverage']['0.8']:.0%}, "
            f"in 95% {o['coverage']['0.95']:.0%})"
        )


if __name__ == "__main__":
    main()
