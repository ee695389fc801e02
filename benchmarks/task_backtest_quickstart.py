"""The quickstart's built-in task accuracies: the table over its runs, and the backtest
run's accuracy predicted from the study's loss prediction, as a study with [tasks] does.

Give a finished quickstart folder (`scalinglab quickstart --out runs/quickstart`) whose
runs were scored (`scalinglab eval DIR/sweeps/gpt --tasks builtin`, the same for
DIR/backtest, and for DIR/sweeps/lstm and DIR/seed to fill the table). For each task,
`scalinglab.study.tasks.predict_tasks` (what a study with [tasks] runs): the sigmoid
from validation loss to accuracy, its ends fixed at chance and 1, fitted to the GPT
sweep's runs, evaluated at prediction.json's predicted loss and interval (written
before the backtest run existed), against the accuracy the backtest run measured;
beside it the free four-parameter sigmoid (OLMo's form) for comparison. The interval
holds one run's noise: the larger of the items' standard error and the sweep runs'
scatter about the sigmoid.

Then the criterion that picks the quickstart's tasks from the sweep alone, before any
backtest (docs/tasks.md): a task is in when (a) some run of the smallest budget is 3
standard errors above chance (the task is learned over the whole sweep, not only at its
end) and (b) the sweep runs' scatter about the sigmoid is at most 1 point (one run's
accuracy is reproducible to the 2-point target: 1.96 x 1 point ~ 2). Last, the other
ways of fitting the link that were tried, each with its backtest error, so that none
is chosen by the backtest unseen.

    python benchmarks/task_backtest_quickstart.py runs/quickstart [--bootstrap 1000]
"""

import argparse
import json
import statistics
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from scipy.optimize import least_squares

from scalinglab.laws import tasklaws
from scalinglab.laws.estimator import ScalingLaw
from scalinglab.laws.fit import fit_form
from scalinglab.report.collect import collect
from scalinglab.study.tasks import predict_tasks
from scalinglab.tasks.builtin import BUILTIN

TASKS = list(BUILTIN)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", help="a finished quickstart folder, its runs scored")
    ap.add_argument("--bootstrap", type=int, default=1000)
    a = ap.parse_args()
    c = collect(a.study)
    pred = json.loads((Path(a.study) / "prediction.json").read_text())
    rows = sorted(c.rows, key=lambda r: (r["role"], r["arch"], r.get("flops_6nd") or 0))
    global TASKS  # the built-in tasks the study scored (the quickstart: next-line, recall)
    TASKS = [t for t in TASKS if any(r.get(f"{t}.acc") is not None for r in rows)]
    print("| role | run | C (FLOPs) | loss | " + " | ".join(f"{t} acc" for t in TASKS) + " |")
    print("|---|---|---|---|" + "---|" * len(TASKS))
    for r in rows:
        accs = " | ".join("-" if r.get(f"{t}.acc") is None else f"{r[f'{t}.acc']:.4f}"
                          for t in TASKS)  # fmt: skip
        print(f"| {r['role']} | {r['run_id']} | {r['flops_6nd']:.3g} | {r['loss']:.4f} | {accs} |")
    bt = next(r for r in c.by_role("backtest") if r["run_id"] == pred["run_name"])
    print(f"\nbacktest {bt['run_id']}: loss predicted {pred['predicted_loss']:.4f} "
          f"{[round(x, 4) for x in pred['interval']]}, measured {bt['loss']:.4f}")  # fmt: skip
    study = SimpleNamespace(
        tasks=SimpleNamespace(names=list(TASKS)),
        fit=SimpleNamespace(bootstrap=a.bootstrap, seed=0, ci_level=pred["ci_level"], chance=None),
    )
    got = predict_tasks(study, c.by_role("sweep"), pred["arch"], pred["predicted_loss"],
                        pred["interval"])  # fmt: skip
    print(
        "| task | items | chance | runs | scatter (points) | predicted | 95% interval "
        "| measured (± s.e.) | error (points) | inside | free sigmoid (4 parameters) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for t in TASKS:
        g, m = got[t], bt.get(f"{t}.acc")
        se = tasklaws.accuracy_se(m, g["n_items"])
        sc = "-" if g.get("scatter") is None else f"{100 * g['scatter']:.1f}"
        head = f"| {t} | {g['n_items']} | {g['chance']:.3f} | {g['runs']} | {sc} |"
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
    for t in TASKS:
        errs = []
        for chance in (0.5, None):
            f = tasklaws.fit_sigmoid([r["loss"] for r in fit_on], [r[f"{t}.acc"] for r in fit_on],
                                     bootstrap=0, chance=chance)  # fmt: skip
            e = [100 * abs(float(tasklaws.metric_from_loss(f["params"], r["loss"])) - r[f"{t}.acc"])
                 for r in held]  # fmt: skip
            errs.append(f"{sum(e) / len(e):.1f} / {max(e):.1f}")
        print(f"| {t} | {errs[0]} | {errs[1]} |")
    criterion(c, pred, got)
    variants(c, pred, bt)
    return 0


def criterion(c, pred, got) -> None:
    """The quickstart's task set from the sweep alone (module doc): (a) and (b)."""
    pts = [r for r in c.by_role("sweep") if r["arch"] == pred["arch"]]
    low = min(r["flops_6nd"] for r in pts)
    first = [r for r in pts if r["flops_6nd"] < low * 1.5]
    seeds = [r for r in c.by_role("seed") if r["arch"] == pred["arch"]]
    if seeds:  # the sweep point the seeds repeat (its seed 0) belongs with them
        s0 = seeds[0]
        seeds += [r for r in pts if r["params"] == s0["params"]
                  and abs(np.log(r["flops_6nd"] / s0["flops_6nd"])) < 0.1]  # fmt: skip
    print(f"\nThe quickstart's task set, from the {len(pts)} sweep runs alone (before the "
          f"backtest): (a) a run of the smallest budget ({low:.3g}) 3 s.e. above chance; "
          "(b) the runs' scatter about the sigmoid <= 1 point")  # fmt: skip
    print("| task | best at the smallest budget (3 s.e.) | (a) | scatter (points) | (b) "
          "| seed runs' accuracies (s.d., points) | in the set |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for t in TASKS:
        g = got[t]
        best = max(r[f"{t}.acc"] for r in first)
        bar = 3 * tasklaws.accuracy_se(g["chance"], g["n_items"])
        ok_a = best - g["chance"] > bar
        sc = g.get("scatter")
        ok_b = sc is not None and sc <= 0.01
        acc = [r[f"{t}.acc"] for r in seeds]
        sd = f"{100 * statistics.stdev(acc):.1f}" if len(acc) > 1 else "-"
        print(f"| {t} | {best:.4f} (> {g['chance'] + bar:.4f}) | {'yes' if ok_a else 'no'} | "
              f"{'-' if sc is None else f'{100 * sc:.1f}'} | {'yes' if ok_b else 'no'} | "
              f"{', '.join(f'{x:.4f}' for x in acc)} ({sd}) | {'yes' if ok_a and ok_b else 'no'} |")  # fmt: skip


def variants(c, pred, bt) -> None:
    """Other links tried, each on the sweep's runs, with its backtest error (points)."""
    pts = [r for r in c.by_role("sweep") if r["arch"] == pred["arch"]]
    seeds = [r for r in c.by_role("seed") if r["arch"] == pred["arch"]]
    tpp = pred["tokens"] / pred["params"]
    near = [r for r in pts if tpp / 3 <= r["tokens"] / r["params"] <= 3 * tpp]
    ends = {"lo": 0.5, "hi": 1.0}
    ways = {  # label: (runs, the sigmoid's fixed ends, the loss's transform)
        "ends at chance and 1 (the law)": (pts, ends, None),
        "lo free, hi = 1": (pts, {"hi": 1.0}, None),
        "lo = chance, hi free": (pts, {"lo": 0.5}, None),
        "the seed runs added": (pts + seeds, ends, None),
        f"runs within 3x of the backtest's {tpp:.0f} tokens/param": (near, ends, None),
        # the law's sigmoid tops out below 1 at zero loss (recall: 0.83); in ln L it reaches
        # 1 only there, and bends more steeply as the loss falls
        "ends at chance and 1, of ln L": (pts, ends, np.log),
    }
    print("\nOther links tried (sigmoid of the validation loss; the backtest's error in points "
          "at the predicted loss):")  # fmt: skip
    print("| link | runs | " + " | ".join(TASKS) + " |")
    print("|---|---|" + "---|" * len(TASKS))
    for label, (rows, fixed, f) in ways.items():
        f = f or (lambda x: x)
        cells = []
        for t in TASKS:
            x = f(np.array([r["loss"] for r in rows]))
            p = sigmoid_params(x, [r[f"{t}.acc"] for r in rows], fixed)
            v = float(tasklaws.metric_from_loss(p, f(pred["predicted_loss"])))
            cells.append(f"{v:.4f} ({100 * (v - bt[f'{t}.acc']):+.1f})")
        print(f"| {label} | {len(rows)} | " + " | ".join(cells) + " |")
    # Through the task's own loss: the sigmoid of the task's gold bpb (ends at chance and 1),
    # the bpb from the validation loss by a line or by a shifted power law (loss to loss,
    # bpb = K (L - E)^kappa); beside them the sigmoid at the bpb the backtest run measured,
    # which no prediction has: it says how much of the error is the bpb's
    L = np.array([r["loss"] for r in pts])
    bpb = {t: np.array([r[f"{t}.bpb"] for r in pts]) for t in TASKS}
    of_bpb = {t: sigmoid_params(bpb[t], [r[f"{t}.acc"] for r in pts], ends) for t in TASKS}
    for label, how in (("sigmoid of the task's bpb; bpb linear in L", "linear"),
                       ("sigmoid of the task's bpb; bpb = K (L - E)^kappa", "shifted"),
                       ("sigmoid of the task's bpb, at the measured bpb (not a prediction)",
                        "measured")):  # fmt: skip
        cells = []
        for t in TASKS:
            bp = (bt[f"{t}.bpb"] if how == "measured"
                  else loss_to_loss(L, bpb[t], how, pred["predicted_loss"]))  # fmt: skip
            if not np.isfinite(bp):
                cells.append("- (bpb 0 above the predicted loss)")
                continue
            v = float(tasklaws.metric_from_loss(of_bpb[t], bp))
            cells.append(f"{v:.4f} ({100 * (v - bt[f'{t}.acc']):+.1f}; bpb {bp:.2f} "
                         f"against {bt[f'{t}.bpb']:.2f})")  # fmt: skip
        print(f"| {label} | {len(pts)} | " + " | ".join(cells) + " |")
    # The task laws in C on the same runs: the task's own loss (bpb) as a power law in C,
    # then the sigmoid (OLMo's two steps); and the direct law in C.
    for law in tasklaws.TASK_LAWS:
        cells = []
        for t in TASKS:
            rows = [{"C": r["flops_6nd"], "acc": r[f"{t}.acc"], "bpb": r[f"{t}.bpb"]} for r in pts]
            two = law == "task-sigmoid"  # chance is the sigmoid's lower end; no end in C
            kw = {"chance": 0.5, "loss_col": "bpb"} if two else {}
            est = ScalingLaw(law, metric_col="acc", bootstrap=0, **kw).fit(rows)
            v = float(est.predict(C=pred["flops"]))
            cells.append(f"{v:.4f} ({100 * (v - bt[f'{t}.acc']):+.1f})")
        how = "task loss in C, then sigmoid" if law == "task-sigmoid" else "-ln acc in C"
        print(f"| {law} ({how}) | {len(pts)} | " + " | ".join(cells) + " |")


def sigmoid_params(x, y, fixed) -> dict:
    """The sigmoid from x to the accuracies y with the ends in `fixed`: its parameters."""
    sig = tasklaws.Sigmoid(**fixed)
    res = fit_form(sig, tasklaws.Points(np.asarray(x), np.asarray(y), None, "runs"), bootstrap=0)
    return {k: float(v[0]) for k, v in sig.natural(res["ctx"], res["theta"]).items()}


def loss_to_loss(L, b, how, at):
    """The task's bpb at validation loss `at` from the runs' (L, b): a least-squares line, or
    the shifted power law b = K (L - E)^kappa with 0 <= E < min L (NaN where `at` <= E:
    the fit puts the task's bpb at 0 before the loss gets there)."""
    if how == "linear":
        return float(np.polyval(np.polyfit(L, b, 1), at))
    best = None
    for e in np.linspace(0.0, 0.95, 20):  # starts for E / min L
        th0 = [np.log(b.mean() / (L.mean() - e * L.min())), np.log(max(e, 1e-3) / (1 - e)), 1.0]
        res = least_squares(
            lambda th: np.exp(th[0]) * (L - L.min() / (1 + np.exp(-th[1]))) ** th[2] - b, th0
        )
        best = res if best is None or res.cost < best.cost else best
    K, E, kappa = np.exp(best.x[0]), L.min() / (1 + np.exp(-best.x[1])), best.x[2]
    return float(K * (at - E) ** kappa) if at > E else float("nan")


if __name__ == "__main__":
    raise SystemExit(main())
