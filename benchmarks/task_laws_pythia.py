"""Task laws on Pythia's LAMBADA accuracy: fit the smaller models, predict the larger.

Fits `task-sigmoid` (C -> task loss -> accuracy) and `task-power` (a direct law in C)
to the six smaller non-deduped Pythia models (70M-2.8B: every checkpoint from step
1000 for the sigmoid, each model's last for the laws in C), and predicts the LAMBADA
accuracy of 6.9B and 12B at their last checkpoint (step 143000). Beside them: the
sigmoid step alone, given the large model's measured task loss (ln perplexity).
Errors are in accuracy points (absolute, x100). Then the rolling leave-larger-out
backtest of both laws over all eight models (`scalinglab backtest --law task-*`):
errors and the coverage of the 80% and 95% prediction intervals.

    python benchmarks/task_laws_pythia.py [--data ../shared/scaling_data] [--bootstrap 1000]
"""

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np

from scalinglab.laws import tasklaws
from scalinglab.laws.estimator import ScalingLaw

FILE = "pythia_v1_zeroshot_lambada_by_step.csv"
SPLIT_N = 5e9  # fit below, predict above
MIN_STEP = 1000  # earlier checkpoints sit at chance (accuracy 0-0.1)
LAST_STEP = 143000


def read(path: Path) -> tuple[list[dict], list[dict]]:
    """(rows to fit, rows to predict) of the non-deduped models, with task_loss = ln ppl."""
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["deduped"] == "False"]
    rows = [r for r in rows if int(r["step"]) >= MIN_STEP]
    for r in rows:
        r["task_loss"] = math.log(float(r["lambada_openai_ppl"]))
    fit = [r for r in rows if float(r["N_params"]) < SPLIT_N]
    target = [r for r in rows if float(r["N_params"]) > SPLIT_N and int(r["step"]) == LAST_STEP]
    return fit, target


def backtest(path: Path, bootstrap: int = 1000, seed: int = 0) -> list[dict]:
    """One row per (law, target model): measured, predicted, interval, error (points)."""
    fit, target = read(path)
    out = []
    for law in tasklaws.TASK_LAWS:
        est = ScalingLaw(
            law,
            metric_col="lambada_openai_acc",
            loss_col="task_loss" if law == "task-sigmoid" else None,
            run_cols=["model"],
            checkpoints=True,
            bootstrap=bootstrap,
            seed=seed,
        ).fit(fit)
        for r in target:
            N, D = float(r["N_params"]), float(r["D_tokens"])
            measured = float(r["lambada_openai_acc"])
            if bootstrap:
                p, lo, hi = (float(v) for v in est.predict(N=N, D=D, return_ci=True))
            else:
                p, lo, hi = float(est.predict(N=N, D=D)), math.nan, math.nan
            out.append(dict(law=law, model=r["model"], measured=measured, predicted=p,
                            lo=lo, hi=hi, params=est.params_))  # fmt: skip
            if law == "task-sigmoid":
                q = float(tasklaws.metric_from_loss(est.params_, r["task_loss"]))
                out.append(dict(law="loss only (sigmoid at the measured task loss)",
                                model=r["model"], measured=measured, predicted=q,
                                lo=math.nan, hi=math.nan, params=est.params_))  # fmt: skip
    for r in out:
        r["error_points"] = 100 * (r["predicted"] - r["measured"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/scaling_data", help="folder holding " + FILE)
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = backtest(Path(args.data) / FILE, args.bootstrap)
    print("| law | model | measured | predicted | 95% interval | error (points) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ci = "-" if math.isnan(r["lo"]) else f"[{r['lo']:.3f}, {r['hi']:.3f}]"
        print(f"| {r['law']} | {r['model']} | {r['measured']:.4f} | {r['predicted']:.4f} | "
              f"{ci} | {r['error_points']:+.2f} |")  # fmt: skip
    for law in (*tasklaws.TASK_LAWS, "loss only (sigmoid at the measured task loss)"):
        errs = [abs(r["error_points"]) for r in rows if r["law"] == law]
        print(f"{law}: mean |error| {np.mean(errs):.2f} points, max {np.max(errs):.2f}")
    print("\nRolling leave-larger-out backtests (`scalinglab backtest --law task-*`): at each "
          "threshold the smaller models predict the larger ones' last accuracy.")  # fmt: skip
    print("| law | C above | fitted | predicted | mean abs error | max | bias | in 80% | in 95% |")
    print("|---|---|---|---|---|---|---|---|---|")
    for law in tasklaws.TASK_LAWS:
        bt = rolling(Path(args.data) / FILE, law, args.bootstrap)
        for name, r in [*((f"{t['threshold']:.3g}", t) for t in bt["thresholds"]),
                        ("all", bt["overall"])]:  # fmt: skip
            print(f"| {law} | {name} | {r.get('n_train', '')} | {r['n']} | "
                  f"{r['mean_abs_error_points']:.2f} | {r['max_abs_error_points']:.2f} | "
                  f"{r['bias_points']:+.2f} | {r['coverage']['0.8']:.0%} | "
                  f"{r['coverage']['0.95']:.0%} |")  # fmt: skip
    print(f"({time.perf_counter() - t0:.1f} s, bootstrap {args.bootstrap})", file=sys.stderr)
    return 0


def rolling(path: Path, law: str, bootstrap: int) -> dict:
    """tasklaws.rolling_backtest over every non-deduped model (checkpoints from step 1000)."""
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f)
                if r["deduped"] == "False" and int(r["step"]) >= MIN_STEP]  # fmt: skip
    for r in rows:
        r["task_loss"] = math.log(float(r["lambada_openai_ppl"]))
    est = ScalingLaw(
        law, metric_col="lambada_openai_acc", run_cols=["model"], checkpoints=True,
        loss_col="task_loss" if law == "task-sigmoid" else None, bootstrap=bootstrap, seed=0,
    )  # fmt: skip
    return tasklaws.rolling_backtest(est, rows)


if __name__ == "__main__":
    raise SystemExit(main())
