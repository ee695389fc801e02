"""The study's tasks ([tasks] in the spec; docs/tasks.md): the built-in tasks scored on
every run, and the backtest run's accuracy predicted before it is trained.

The prediction goes through the loss, in two steps as in OLMo's ladder: the study's
own prediction of the backtest run's loss (its frontier or Chinchilla law, with its
interval), then the sigmoid from loss to accuracy fitted to the sweep's runs of that
architecture (`scalinglab.laws.tasklaws.fit_sigmoid`, its ends fixed at chance and 1).
The interval is one for the accuracy that one run will measure: it holds that run's
own noise, the larger of the items' standard error and the sweep runs' scatter about
the sigmoid (runs of one loss differ by more than their items' noise where the seed or
the shape matters: brackets' two seeds of one quickstart point differ by 6 points on
1366 items). A task no run has learned beyond chance is said to be at chance, not
predicted. `[fit] chance`, when given, replaces every task's own chance as the
sigmoid's lower end.
"""

import logging
from pathlib import Path

from scalinglab import runfolder
from scalinglab.data.tokenizers import load_tokenizer
from scalinglab.errors import FitError, SweepError
from scalinglab.laws import tasklaws
from scalinglab.report.collect import collect
from scalinglab.sweep.table import task_items
from scalinglab.tasks.builtin import builtin_task
from scalinglab.tasks.run import evaluate_run
from scalinglab.tasks.score import encode_pair

log = logging.getLogger(__name__)
METRIC = "acc"


def score_runs(study, shards: Path, out: Path, arch: str | None = None) -> int:
    """Score the study's tasks on its completed runs (of `arch`, or all) that have no
    result for these items yet; return how many runs were scored."""
    t = study.tasks
    if not t.names:
        return 0
    tasks = [builtin_task(n, shards, t.items, t.seed) for n in t.names]
    n = 0
    for r in collect(out).rows:
        if r["status"] != "completed" or (arch and r["arch"] != arch):
            continue
        done = runfolder.final_tasks(r["dir"], {k.name: k.sha256 for k in tasks})
        if all(k.name in done for k in tasks):
            continue  # a resumed study does not score a run twice
        evaluate_run(r["dir"], tasks)
        n += 1
    log.info("scored %d run(s) on %s", n, ", ".join(t.names))
    return n


def check_fits(study, shards: Path, block_size: int) -> None:
    """Refuse [tasks] whose choices are longer than the runs' block_size, at plan time:
    found when the first run was scored, after the sweep had trained (and the spec fixed
    was then another study's)."""
    t = study.tasks
    if not t.names:
        return
    tok = load_tokenizer(shards)
    for name in t.names:
        task = builtin_task(name, shards, t.items, t.seed)
        if task.kind != "multiple_choice":
            continue
        longest = [max(len(encode_pair(tok, it.context, c)[1]) for c in it.choices)
                   for it in task.items]  # fmt: skip
        if max(longest, default=0) > block_size:
            raise SweepError(
                f"[tasks] {name!r}: {sum(n > block_size for n in longest)} of {len(longest)} "
                f"items have a choice longer than the runs' block_size ({block_size}); it "
                f"needs at least {max(longest)} tokens: raise [model] block_size or leave "
                "the task out"
            )


def predict_tasks(study, rows: list[dict], arch: str, loss: float, interval) -> dict:
    """{task: {metric, predicted, interval, se, scatter, noise, params, runs, chance,
    n_items, fit_loss_range, loss_beyond[, note]}} of the backtest run, from its predicted
    loss and interval (`beyond_the_runs`); {task: {metric, at_chance, ...}}
    where no run of the sweep is above chance (nothing to predict: the backtest will be
    measured and shown, not predicted); {task: {"error": why}} where the sigmoid cannot
    be fitted."""
    out = {}
    items = task_items(r["dir"] for r in rows)  # the item set of the rows' task columns
    for name in study.tasks.names:
        col = f"{name}.{METRIC}"
        pts = [r for r in rows if r["arch"] == arch and r["status"] == "completed"
               and r.get(col) is not None and r.get("loss") is not None]  # fmt: skip
        if not pts:
            out[name] = {"metric": METRIC, "error": f"no {arch} run has a {col}"}
            continue
        # what the runs were scored on: the chance and the item count of the task
        done = runfolder.final_tasks(pts[0]["dir"], items).get(name, {})
        chance, n = done.get("chance"), done.get("n")
        acc = [r[col] for r in pts]
        about = {"metric": METRIC, "chance": chance, "n_items": n, "runs": len(pts)}
        if chance is not None and n and not tasklaws.above_chance(acc, chance, n):
            best = max(acc)
            out[name] = {**about, "at_chance": True, "best": best,
                         "note": f"no {arch} run of the sweep is above chance ({chance:.3f}) by "
                                 f"3 standard errors on {n} items (best {best:.3f}): the task "
                                 f"is not learned at these scales, so it is not predicted"}  # fmt: skip
            continue
        lower = chance if study.fit.chance is None else study.fit.chance  # the sigmoid's end
        try:
            fit = tasklaws.fit_sigmoid(
                [r["loss"] for r in pts], acc, bootstrap=study.fit.bootstrap,
                seed=study.fit.seed, chance=lower,
            )  # fmt: skip
        except FitError as exc:
            out[name] = {**about, "error": str(exc)}
            continue
        m = tasklaws.metric_at_loss(fit, loss, interval, study.fit.ci_level, n, fit["scatter"])
        out[name] = {**about, **m, "params": fit["params"], **beyond_the_runs(pts, loss, arch)}
    return out


def beyond_the_runs(pts: list[dict], loss: float, arch: str) -> dict:
    """{"fit_loss_range": [best, worst], "loss_beyond": nats}: the losses of the runs the
    sigmoid was fitted on, and how far below the best of them the predicted loss lies (0
    inside); beyond them, a "note" that the link is extrapolated. The interval cannot
    hold that: the sigmoid's shape below the runs' losses is not measured (the
    quickstart's `recall` steepens there; benchmarks/results/tasks_quickstart.md)."""
    losses = [r["loss"] for r in pts]
    best, worst = min(losses), max(losses)
    out = {"fit_loss_range": [best, worst], "loss_beyond": max(0.0, best - loss)}
    if loss < best:
        out["note"] = (
            f"the predicted loss {loss:.3f} is {best - loss:.2f} nats below the best {arch} "
            f"run the sigmoid was fitted on ({best:.3f}): the loss-to-accuracy link is "
            "extrapolated there, and a task whose accuracy climbs faster below the runs' "
            "losses lands above the interval"
        )
    return out
