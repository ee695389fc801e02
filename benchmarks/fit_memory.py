"""Peak memory and time of a Chinchilla fit with bootstrap on a large table (issue 16).

A synthetic table of --rows runs (N log-uniform in 1e7..1e10, D in 1e9..1e12, the
Chinchilla law of tests/laws/synth.py, 1% log-normal noise) is fitted with --resamples
bootstrap resamples; prints the time, the peak resident memory of the process
(ru_maxrss) and the fitted exponents against the true ones.

    python benchmarks/fit_memory.py --rows 1000000 --resamples 1000

`--blocks` instead times one evaluation of the Chinchilla objective over 25 resamples ×
--rows with the objective's blocks of 2^16 values (the default) and of 2^22 (before).
"""

import argparse
import os
import resource
import time

import numpy as np
from flake_hunt import cpu_name  # benchmarks/ is the script's folder

from scalinglab.laws import ScalingLaw, objective
from scalinglab.laws.fit import weight_chunks
from scalinglab.laws.forms import Chinchilla

TRUE = {"E": 1.7, "A": 400.0, "B": 1200.0, "alpha": 0.34, "beta": 0.28}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--blocks", action="store_true", help="time one objective evaluation")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.rows
    N = 10 ** rng.uniform(7, 10, n)
    D = 10 ** rng.uniform(9, 12, n)
    L = TRUE["E"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]
    L = L * np.exp(0.01 * rng.standard_normal(n))
    if args.blocks:
        return time_blocks(N, D, L)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    w0, c0 = time.perf_counter(), time.process_time()
    law = ScalingLaw("chinchilla", bootstrap=args.resamples).fit({"N": N, "D": D, "L": L})
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    p, ci = law.params_, law.ci_
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores")
    print(f"{n} rows, {args.resamples} resamples: {wall:.1f} s wall, {cpu:.1f} s CPU")
    print(f"peak RSS {peak:.0f} MiB (before the fit: {base:.0f} MiB)")
    for k in ("alpha", "beta", "E"):
        lo, hi = ci.get(k, (np.nan, np.nan))
        print(f"  {k}: {p[k]:.4f} [{lo:.4f}, {hi:.4f}] (true {TRUE[k]})")


def time_blocks(N, D, L):
    """CPU seconds of one objective evaluation over 25 resamples, by block size."""
    form = Chinchilla()
    ctx = {"logN": np.log(N), "logD": np.log(D), "logL": np.log(L)}
    W = next(weight_chunks(len(N), 25, 0))
    fun = form.objective(ctx, W[:25])
    theta = np.tile([np.log(TRUE["A"]), np.log(TRUE["B"]), np.log(TRUE["E"]), 0.34, 0.28], (25, 1))
    rows = np.arange(25)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores")
    for elements in (2**16, 2**22, 2**16, 2**22):
        objective.CHUNK_ELEMENTS = elements
        c0 = time.process_time()
        fun(theta, rows, wrow=rows)
        cpu = time.process_time() - c0
        print(f"blocks of {elements} values: {cpu:.2f} s CPU per evaluation of 25 x {len(N)}")


if __name__ == "__main__":
    main()
