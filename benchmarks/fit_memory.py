"""Peak memory and time of a Chinchilla fit with bootstrap on a large table (issue 16).

A synthetic table of --rows runs (N log-uniform in 1e7..1e10, D in 1e9..1e12, the
Chinchilla law of tests/laws/synth.py, 1% log-normal noise) is fitted with --resamples
bootstrap resamples; prints the time, the peak resident memory of the process
(ru_maxrss) and the fitted exponents against the true ones.

    python benchmarks/fit_memory.py --rows 1000000 --resamples 1000
"""

import argparse
import os
import resource
import time

import numpy as np
from flake_hunt import cpu_name  # benchmarks/ is the script's folder

from scalinglab.laws import ScalingLaw

TRUE = {"E": 1.7, "A": 400.0, "B": 1200.0, "alpha": 0.34, "beta": 0.28}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.rows
    N = 10 ** rng.uniform(7, 10, n)
    D = 10 ** rng.uniform(9, 12, n)
    L = TRUE["E"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]
    L = L * np.exp(0.01 * rng.standard_normal(n))
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


if __name__ == "__main__":
    main()
