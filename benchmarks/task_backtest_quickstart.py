"""The quickstart's built-in task accuracies: the table over its runs, and the backtest
run's accuracy predicted from the study's loss prediction, as a study with [tasks] does.

Give a finished quickstart folder (`scalinglab quickstart --out runs/quickstart`) whose
runs were scored (`scalinglab eval DIR/sweeps/gpt --tasks builtin`, the same for
DIR/backtest, and for DIR/sweeps/lstm and DIR/seed to fill the table). For each task,
`scalinglab.study.tasks.predict_tasks` (what a study with [tasks] runs): the sigmoid
from validation loss to accuracy, its ends fixed at chance and 1, fitted to the GPT
sweep's runs, evaluated at prediction.json's predicted loss and interval (written
before the backtest run existed), against the accuracy the backtest run measured;
beside it the free four-parameter sigmoid (OLMo's form) for comparison.

    python benchmarks/task_backtest_quickstart.py runs/quickstart [--bootstrap 1000]
"""

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

from scalinglab.laws import tasklaws
from scalinglab.report.collect import collect
from scalinglab.study.tasks import predict_tasks
from scalinglab.tasks.builtin import BUILTIN


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", help="a finished quickstart folder, its runs scored")
    ap.add_argument("--bootstrap", type=int, default=1000)
    a = ap.parse_args()
    c = collect(a.study)
    pred = json.loads((Path(a.study) / "prediction.json").read_text())
    rows = sorted(c.rows, key=lambda r: (r["role"], r["arch"], r.get("flops_6nd") or 0))
    print("| role | run | C (FLOPs) | loss | " + " | ".join(f"{t} acc" for t in BUILTIN) + " |")
    print("|---|---|---|---|" + "---|" * len(BUILTIN))
    for r in rows:
        accs = " | ".join("-" if r.get(f"{t}.acc") is None else f"{r[f'{t}.acc']:.4f}"
                          for t in BUILTIN)  # fmt: skip
        print(f"| {r['role']} | {r['run_id']} | {r['flops_6nd']:.3g} | {r['loss']:.4f} | {accs} |")
    bt = next(r for r in c.by_role("backtest") if r["run_id"] == pred["run_name"])
    print(f"\nbacktest {bt['run_id']}: loss predicted {pred['predicted_loss']:.4f} "
          f"{[round(x, 4) for x in pred['interval']]}, measured {bt['loss']:.4f}")  # fmt: skip
    study = SimpleNamespace(
        tasks=SimpleNamespace(names=list(BUILTIN)),
        fit=SimpleNamespace(bootstrap=a.bootstrap, seed=0, ci_level=pred["ci_level"]),
    )
    got = predict_tasks(study, c.by_role("sweep"), pred["arch"], pred["predicted_loss"],
                        pred["interval"])  # fmt: skip
    print(
        "| task | items | chance | runs | predicted | 95% interval | measured (± s.e.) "
        "| error (points) | inside | free sigmoid (4 parameters) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for t in BUILTIN:
        g, m = got[t], bt.get(f"{t}.acc")
        se = tasklaws.accuracy_se(m, g["n_items"])
        head = f"| {t} | {g['n_items']} | {g['chance']:.3f} | {g['runs']} |"
        if "predicted" not in g:
            print(f"{head} - | - | {m:.4f} ± {se:.4f} | - | - | {g.get('note') or g['error']} |")
            continue
        pts = [r for r in c.by_role("sweep") if r["arch"] == pred["arch"]]
        free = tasklaws.fit_sigmoid([r["loss"] for r in pts], [r[f"{t}.acc"] for r in pts],
                                    bootstrap=0)  # fmt: skip
        f = float(tasklaws.metric_from_loss(free["params"], pred["predicted_loss"]))
        p, (lo, hi) = g["predicted"], g["interval"]
        print(f"{head} {p:.4f} | [{lo:.4f}, {hi:.4f}] | {m:.4f} ± {se:.4f} | "
              f"{100 * (p - m):+.1f} | {'yes' if lo <= m <= hi else 'no'} | "
              f"{f:.4f} ({100 * (f - m):+.1f}) |")  # fmt: skip
    # The same link inside the sweep: its smaller budgets predict its largest budget's runs.
    pts = [r for r in c.by_role("sweep") if r["arch"] == pred["arch"]]
    top = max(r["flops_6nd"] for r in pts)
    fit_on = [r for r in pts if r["flops_6nd"] < top / 1.5]
    held = [r for r in pts if r["flops_6nd"] >= top / 1.5]
    print(f"\nInside the sweep: {len(fit_on)} runs below {top:.3g} FLOPs predict the "
          f"{len(held)} at it, from their measured loss (mean / max |error|, points):")  # fmt: skip
    print("| task | ends at chance and 1 | free sigmoid (4 parameters) |")
    print("|---|---|---|")
    for t in BUILTIN:
        errs = []
        for chance in (0.5, None):
            f = tasklaws.fit_sigmoid([r["loss"] for r in fit_on], [r[f"{t}.acc"] for r in fit_on],
                                     bootstrap=0, chance=chance)  # fmt: skip
            e = [100 * abs(float(tasklaws.metric_from_loss(f["params"], r["loss"])) - r[f"{t}.acc"])
                 for r in held]  # fmt: skip
            errs.append(f"{sum(e) / len(e):.1f} / {max(e):.1f}")
        print(f"| {t} | {errs[0]} | {errs[1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
