"""The report's task figure and section: each built-in task's accuracy against compute,
the two-step law (frontier loss -> sigmoid) through it, and the backtest's prediction."""

import numpy as np

from scalinglab.laws import tasklaws
from scalinglab.plan.analysis import law_c
from scalinglab.report.figures import COMPUTE, KAPLAN, color, name, save_png
from scalinglab.report.html import apart, esc, fixed, num, table


def task_metrics(path, rows: list[dict], fits: dict, bt: dict) -> str:
    """One panel per task: every run's accuracy vs C, the fitted law, the backtest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = bt["tasks"]
    arch = bt["arch"]
    kind = bt.get("n_kind") or "params"  # the fits' count: their C is 6·N·D with it
    c_bt = bt.get("law_flops") or bt["flops"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.6 * len(tasks), 4.2), squeeze=False)
    for ax, (task, t) in zip(axes[0], tasks.items(), strict=True):
        col = f"{task}.{t.get('metric', 'acc')}"
        fitted = []  # the predicted architecture's points: where its law's line starts
        for a in sorted({r["arch"] for r in rows}):
            pts = [(law_c(r, kind), r[col])
                   for r in rows if r["arch"] == a and r.get(col) is not None
                   and r["status"] == "completed"]  # fmt: skip
            if pts:
                ax.plot(*np.array(pts).T, "o", ms=4, color=color(a), alpha=0.7,
                        label=f"{name(a)} runs")  # fmt: skip
            if a == arch:
                fitted = pts
        f = fits.get(arch)
        if t.get("params") and f is not None and f.frontier is not None:
            lo_c = min(p for p, _ in fitted) if fitted else c_bt / 100
            C = np.geomspace(lo_c, c_bt * 1.5, 100)
            acc = tasklaws.metric_from_loss(t["params"], f.frontier.predict(C=C, check_range=False))
            ax.plot(C, acc, "-", color=color(arch), label="frontier loss -> sigmoid")
        if t.get("chance") is not None:
            ax.axhline(t["chance"], color="0.5", ls=":", lw=1, label=f"chance {t['chance']:.3f}")
        # the legend's numbers with digits enough to tell the measurement from an end
        p, (lo, hi) = t.get("predicted"), t.get("interval") or (None, None)
        sp, slo, shi, sm = apart([p, lo, hi, t.get("measured")], 3, fixed)
        if "predicted" in t:
            ax.errorbar([c_bt], [p], yerr=[[p - lo], [hi - p]], fmt="D", color="#f39c12",
                        mec="k", ms=7, capsize=4, label=f"predicted {sp} [{slo}, {shi}]")  # fmt: skip
        if t.get("measured") is not None:
            how = " (at chance: not predicted)" if t.get("at_chance") else ""
            ax.plot([c_bt], [t["measured"]], "*", color="#27ae60", ms=14, mec="k",
                    label=f"measured {sm}{how}")  # fmt: skip
        ax.set(xscale="log", xlabel=COMPUTE + (KAPLAN if kind != "params" else ""),
               ylabel=f"{task} accuracy", title=task)  # fmt: skip
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save_png(fig, path, 110)
    return (
        "Each built-in task's accuracy against compute, for every run; the line is the "
        "two-step law (the frontier's loss at C, then the sigmoid from loss to accuracy "
        "fitted to the sweep's runs, between chance and 1); the diamond, the backtest run's "
        "accuracy predicted before it was trained, with its interval (one run's own noise "
        "included: the larger of its items' standard error and the sweep runs' scatter "
        "about the sigmoid); the star, what it measured; the dotted "
        "line, chance. A task no sweep run learned beyond chance is measured, not predicted."
    )


def task_section(bt: dict | None) -> str:
    """The backtest's task predictions as a table (empty without tasks)."""
    if not bt or not bt.get("tasks"):
        return ""
    rows = []
    for task, t in bt["tasks"].items():
        m = t.get("measured")
        about = [task, "-" if t.get("n_items") is None else num(t["n_items"]),
                 "-" if t.get("chance") is None else num(t["chance"], 3)]  # fmt: skip
        se = ""
        if m is not None and t.get("n_items"):
            se = f" ± {num(tasklaws.accuracy_se(m, t['n_items']), 3)}"
        if "predicted" not in t:
            measured = "-" if m is None else num(m, 3) + se
            rows.append([*about, "-", "-", "-", measured, t.get("note") or t.get("error", "")])
            continue
        sc = t.get("scatter")
        # digits enough to show which side of an end the measurement fell (an audit)
        pred, lo, hi, meas = apart([t["predicted"], *t["interval"], m], 3)
        measured = "-" if m is None else meas + se
        rows.append([
            *about, pred, f"[{lo}, {hi}]",
            "-" if sc is None else f"{100 * sc:.1f}", measured,
            "-" if m is None else f"{t['error_points']:+.1f} points" + ("" if t["in_interval"] else " (outside)"),
        ])  # fmt: skip
    by_note: dict[str, list[str]] = {}  # tasks fitted on the same runs share one note
    for task, t in bt["tasks"].items():
        if "predicted" in t and t.get("note"):
            by_note.setdefault(t["note"], []).append(task)
    notes = "".join(f"<p>{esc(', '.join(ts))}: {esc(n)}</p>" for n, ts in by_note.items())
    return '<h2 id="tasks">Tasks: the backtest\'s accuracy, predicted before training</h2>' + table(
        ["task", "items", "chance", "predicted", "interval", "runs' scatter (points)",
         "measured (± s.e.)", "error: predicted − measured"], rows,
    ) + notes  # fmt: skip
