"""Refit finished studies with N counted both ways and print each count's backtest error.

No training: for each study folder, the GPT sweep's runs are fitted with N as all
parameters (`params`, the default), as Kaplan's non-embedding count (`params_nonembed`,
a study's `[fit] n_kind`) and, with `--flops`, as the compute each run really spent
(`flops`: N = its training FLOPs per token / 6, attention at full context and the
readout included, so that 6·N·D is the run's `flops`), and the frontier predicts the study's own
backtest run at its C in that count (6·N·D); the seed repeats give the noise interval,
as the study's prediction does. The run is the one the study trained, so both counts
are scored against the same measured loss; the size each count would have allocated at
the budget is printed beside it (a study with the other count may train another run).

    python benchmarks/count_refit.py runs/quickstart runs/quickstart-seed1 ... [--flops]
        [--curvature shared]
"""

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path

from scalinglab.plan import analysis as an
from scalinglab.report.collect import collect

KINDS = ("params", "params_nonembed")


def as_count(r: dict, kind: str) -> tuple[dict, str]:
    """(row, the fits' count) for `kind`; `flops` rides on the non-embedding count's
    machinery (any count but all parameters: D read off the runs, C = 6·N·D)."""
    if kind != "flops":
        return r, kind
    return {**r, "params_nonembed": r["flops"] / (6.0 * r["tokens"])}, "params_nonembed"


def frontier_at(fits, run: dict, kind: str, noise, level: float) -> tuple[float, float, float]:
    """(predicted, lo, hi): the frontier's prediction of `run` (its N in the count `kind`,
    its tokens) with the study's predictive interval (the seed noise added)."""
    n, d = run[kind], run["tokens"]
    p = an.predict(fits, n, d, 6.0 * n * d, "frontier", noise)
    lo, hi = an.predictive_interval(p, noise, level)
    return p["predicted_loss"], lo, hi


def refit(folder: Path, kinds=KINDS, curvature: str | None = None) -> dict:
    c = collect(folder)
    fs, _ = an.fit_settings(c.study.get("fit", {}), str(folder))
    if curvature:  # the IsoFLOP parabolas' curvature, instead of the study's own
        fs = dataclasses.replace(fs, curvature=curvature)
    arch = c.prediction["arch"]
    bt = next(r for r in c.by_role("backtest") if r["run_id"] == c.prediction["run_name"])
    rows = [r for r in c.by_role("sweep") if r["arch"] == arch]
    noise = an.seed_noise(c.by_role("sweep", "seed"))
    out = {"study": folder.name, "measured": bt["loss"], "run_params": bt["params"]}
    for kind in kinds:
        rows_k = [as_count(r, kind)[0] for r in rows]
        b, k = as_count(bt, kind)
        fits = an.fit_arch(arch, rows_k, fs, k, chinchilla=False)  # the frontier's fits
        pred, lo, hi = frontier_at(fits, b, k, noise, fs.ci_level)
        budget = c.prediction["budget"] * (b[k] / bt["params"])  # this run's C in the count
        out[kind] = {
            "alpha": fits.frontier.params_["alpha"],
            "predicted": pred,
            "interval": (lo, hi),
            "error": 100 * (pred / bt["loss"] - 1),
            "inside": lo <= bt["loss"] <= hi,
            "n_opt": an.allocation(fits, budget)[0],
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="finished study folders")
    ap.add_argument("--flops", action="store_true", help="also count N as FLOPs per token / 6")
    ap.add_argument("--curvature", choices=("per-budget", "shared"),
                    help="the IsoFLOP parabolas' curvature (default: each study's own)")  # fmt: skip
    args = ap.parse_args()
    kinds = (*KINDS, "flops") if args.flops else KINDS
    warnings.simplefilter("ignore")  # the fits' warnings are the study's own report's
    print(
        "| study | measured | N | count | α | predicted | 95% interval | error | inside | N_opt |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    errors = {k: [] for k in kinds}
    for f in args.folders:
        r = refit(f, kinds, args.curvature)
        for k in kinds:
            x = r[k]
            errors[k].append(abs(x["error"]))
            print(f"| {r['study']} | {r['measured']:.4f} | {r['run_params']:,} | {k} | "
                  f"{x['alpha']:.3f} | {x['predicted']:.4f} | [{x['interval'][0]:.4f}, "
                  f"{x['interval'][1]:.4f}] | {x['error']:+.2f}% | {'yes' if x['inside'] else 'no'} "
                  f"| {x['n_opt']:,.0f} |")  # fmt: skip
    for k in kinds:
        e = errors[k]
        print(f"{k}: mean |error| {sum(e) / len(e):.2f}% over {len(e)} studies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
