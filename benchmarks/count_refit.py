"""Refit finished studies with N counted both ways and print each count's backtest error.

No training: for each study folder, the GPT sweep's runs are fitted with N as all
parameters (`params`, the default) and as Kaplan's non-embedding count
(`params_nonembed`, a study's `[fit] n_kind`), and the frontier predicts the study's own
backtest run at its C in that count (6·N·D); the seed repeats give the noise interval,
as the study's prediction does. The run is the one the study trained, so both counts
are scored against the same measured loss; the size each count would have allocated at
the budget is printed beside it (a study with the other count may train another run).

    python benchmarks/count_refit.py runs/quickstart runs/quickstart-seed1 ...
"""

import argparse
import sys
import warnings
from pathlib import Path

from scalinglab.plan import analysis as an
from scalinglab.report.collect import collect

KINDS = ("params", "params_nonembed")


def refit(folder: Path) -> dict:
    c = collect(folder)
    fs, _ = an.fit_settings(c.study.get("fit", {}), str(folder))
    arch = c.prediction["arch"]
    bt = next(r for r in c.by_role("backtest") if r["run_id"] == c.prediction["run_name"])
    rows = [r for r in c.by_role("sweep") if r["arch"] == arch]
    noise = an.seed_noise(c.by_role("sweep", "seed"))
    out = {"study": folder.name, "measured": bt["loss"], "run_params": bt["params"]}
    for kind in KINDS:
        fits = an.fit_arch(arch, rows, fs, kind)
        n, d = bt[kind], bt["tokens"]
        p = an.predict(fits, n, d, 6.0 * n * d, "frontier", noise)
        lo, hi = an.predictive_interval(p, noise, fs.ci_level)
        budget = c.prediction["budget"] * (n / bt["params"])  # this run's C in the count
        out[kind] = {
            "alpha": fits.frontier.params_["alpha"],
            "predicted": p["predicted_loss"],
            "interval": (lo, hi),
            "error": 100 * (p["predicted_loss"] / bt["loss"] - 1),
            "inside": lo <= bt["loss"] <= hi,
            "n_opt": an.allocation(fits, budget)[0],
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="finished study folders")
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # the fits' warnings are the study's own report's
    print(
        "| study | measured | N | count | α | predicted | 95% interval | error | inside | N_opt |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    errors = {k: [] for k in KINDS}
    for f in args.folders:
        r = refit(f)
        for k in KINDS:
            x = r[k]
            errors[k].append(abs(x["error"]))
            print(f"| {r['study']} | {r['measured']:.4f} | {r['run_params']:,} | {k} | "
                  f"{x['alpha']:.3f} | {x['predicted']:.4f} | [{x['interval'][0]:.4f}, "
                  f"{x['interval'][1]:.4f}] | {x['error']:+.2f}% | {'yes' if x['inside'] else 'no'} "
                  f"| {x['n_opt']:,.0f} |")  # fmt: skip
    for k in KINDS:
        e = errors[k]
        print(f"{k}: mean |error| {sum(e) / len(e):.2f}% over {len(e)} studies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
