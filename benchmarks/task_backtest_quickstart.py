"""The quickstart's built-in task accuracies: the table over its runs, and the backtest
run's accuracy predicted from the study's loss prediction, as a study with [tasks] does.

Give a finished quickstart folder (`scalinglab quickstart --out runs/quickstart`) whose
runs were scored (`scalinglab eval DIR/sweeps/gpt --tasks builtin`, the same for
DIR/backtest, and for DIR/sweeps/lstm to fill the table). For each task: the sigmoid
from validation loss to accuracy fitted to the GPT sweep's runs, evaluated at
prediction.json's predicted loss and interval (written before the backtest run
existed), against the accuracy the backtest run measured.

    python benchmarks/task_backtest_quickstart.py runs/quickstart [--bootstrap 1000]
"""

import argparse
import json
from pathlib import Path

from scalinglab.laws import tasklaws
from scalinglab.report.collect import collect
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
        accs = " | ".join("-" if r.get(f"{t}.acc") is None else f"{r[f'{t}.acc']:.3f}"
                          for t in BUILTIN)  # fmt: skip
        print(f"| {r['role']} | {r['run_id']} | {r['flops_6nd']:.3g} | {r['loss']:.4f} | {accs} |")
    bt = next(r for r in c.by_role("backtest") if r["run_id"] == pred["run_name"])
    sweep = [r for r in c.by_role("sweep") if r["arch"] == pred["arch"]]
    print(f"\nbacktest {bt['run_id']}: loss predicted {pred['predicted_loss']:.4f} "
          f"{[round(x, 4) for x in pred['interval']]}, measured {bt['loss']:.4f}")  # fmt: skip
    print("| task | chance | predicted | interval | measured | error (points) | inside |")
    print("|---|---|---|---|---|---|---|")
    for t in BUILTIN:
        pts = [r for r in sweep if r.get(f"{t}.acc") is not None]
        fit = tasklaws.fit_sigmoid([r["loss"] for r in pts], [r[f"{t}.acc"] for r in pts],
                                   bootstrap=a.bootstrap)  # fmt: skip
        p = tasklaws.metric_at_loss(fit, pred["predicted_loss"], pred["interval"])
        m = bt.get(f"{t}.acc")
        lo, hi = p["interval"]
        chance = {"next-line": 0.25, "brackets": 1 / 3, "recall": 0.25}[t]
        print(f"| {t} | {chance:.3f} | {p['predicted']:.3f} | [{lo:.3f}, {hi:.3f}] | {m:.3f} | "
              f"{100 * (p['predicted'] - m):+.1f} | {'yes' if lo <= m <= hi else 'no'} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
