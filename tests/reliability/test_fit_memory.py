"""`fit` on a large table in bounded memory (issue 16 item 11): the objective of every law
is evaluated in blocks of at most objective.CHUNK_ELEMENTS problems × points, so memory
does not grow as starts (or resamples) × rows. The 10⁶-row, 1000-resample Chinchilla fit
is measured by benchmarks/fit_memory.py (benchmarks/results/fit.md)."""

import json
import subprocess
import sys

import numpy as np

from tests.reliability.helpers import ROOT

# Peak RSS from inside the process (/proc's VmHWM; ru_maxrss would carry pytest's).
PEAK_RSS = (
    "import re, sys; from scalinglab.cli import main; rc = main(sys.argv[1:]); "
    "print(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read())[1]); "
    "sys.exit(rc)"
)


def test_a_200k_row_power_law_fit_with_bootstrap_stays_in_bounded_memory(tmp_path):
    rng = np.random.default_rng(0)
    n = 200_000
    N = 10 ** rng.uniform(7, 10, n)
    L = (1.7 + (3e8 / N) ** 0.3) * np.exp(0.01 * rng.standard_normal(n))
    path = tmp_path / "runs.csv"
    np.savetxt(path, np.column_stack([N, L]), delimiter=",", header="params,loss", comments="")
    p = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, "fit", str(path), "--law", "power-n",
         "--bootstrap", "100", "--out", str(tmp_path / "fit.json")],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    peak_mb = int(p.stdout.split()[-1]) / 1024
    print(f"peak RSS {peak_mb:.0f} MB")
    # 100 resamples x 200k rows: the weights alone are 160 MB; every temporary of the
    # objective over all of them (a dozen, and a 3 x 160 MB gradient stack): 2.9 GB peak
    # before the objectives were evaluated in blocks.
    assert peak_mb < 600
    fit = json.loads((tmp_path / "fit.json").read_text())
    assert abs(fit["params"]["alpha"] - 0.3) < 0.005  # and the fit is right
    lo, hi = fit["ci"]["alpha"]
    assert lo < fit["params"]["alpha"] < hi and hi - lo < 0.01
