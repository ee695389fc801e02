"""`scalinglab runs DIR [--out FILE] [--json] [--curves]`: the runs table, rebuilt from the
run folders.

`--csv OUT` is the older spelling of `--out OUT` for a CSV file; it still works, unlisted.

`--curves` writes one row per evaluation of every run instead (its metrics.jsonl,
read through scalinglab.runfolder): the input of `scalinglab fit --checkpoints
--run-col run_id` (N, D laws from every checkpoint), of the curve laws, and, with the
`TASK.METRIC` columns of the steps `eval --tasks --every-checkpoint` scored, of the task
laws from every checkpoint (`--run-col run_id`). Its
`lr_schedule` column is the run's exact LR at every step, rebuilt from its config
(`--schedule-col lr_schedule`); empty for a time budget, whose LR follows the clock,
and for a run resumed with a changed config (--allow-config-change).
"""

import argparse
import logging

CURVE_COLUMNS = (
    "run_id", "arch", "status", "params", "params_nonembed",
    "step", "tokens", "flops", "lr", "train_loss", "loss", "lr_schedule",
)  # fmt: skip

ORDER = 80


def register(sub) -> None:
    p = sub.add_parser(
        "runs",
        help="the runs table of a sweep folder (or any folder of run folders)",
        description=(
            "Rebuild the runs table from run folders (result.json, config.toml, sweep.json): "
            "one row per run, failed and diverged runs included with their status. "
            "The CSV is the input of `scalinglab fit`."
        ),
    )
    p.add_argument("dir", help="a sweep folder, a folder of run folders, or one run folder")
    p.add_argument("--csv", metavar="OUT", help=argparse.SUPPRESS)  # the older --out FILE.csv
    p.add_argument(
        "--out",
        "-o",
        metavar="FILE",
        help="write the table to FILE: CSV, JSON lines or Parquet, by --format or the suffix "
        "(.csv, .jsonl, .parquet; Parquet needs pyarrow, scalinglab[dataframe])",
    )
    p.add_argument("--format", choices=("csv", "jsonl", "parquet"), help="the format of --out")
    p.add_argument(
        "--json", action="store_true", help="print the rows as a JSON list instead of the table"
    )
    p.add_argument(
        "--status",
        help="only rows with this status: completed, diverged, preempted, failed, incomplete "
        "(started, no result) or pending; default: all rows",
    )
    p.add_argument(
        "--curves",
        action="store_true",
        help="one row per evaluation (step, tokens, flops, lr, loss) of every run: "
        "the input of `fit --checkpoints --run-col run_id` and of the curve laws",
    )
    p.set_defaults(func=run)


# the runs table's statuses: result.json's, or incomplete (started) and pending (not yet)
STATUSES = ("completed", "diverged", "preempted", "failed", "incomplete", "pending")


def run(args) -> int:
    import sys
    from pathlib import Path

    from scalinglab.cli.fit import check_out_not_input
    from scalinglab.errors import ConfigError, DataError
    from scalinglab.sweep.table import (
        count_bad_losses_as_diverged,
        find_run_dirs,
        format_table,
        runs_table,
        write_csv,
        write_table,
    )

    if args.format and not args.out:
        raise ConfigError("--format says how to write --out FILE; give --out too")
    for flag, out in (("--out", args.out), ("--csv", args.csv)):
        if out:  # before the folders are read: an OSError naming no flag, exit 1, came after
            check_out_not_input(out, [], "runs table", flag=flag)  # inside DIR is fine,
            check_out_not_read(out, args.dir, flag)  # but not over what the table reads
    rows = runs_table(args.dir)
    if not rows:
        root = Path(args.dir)
        raise DataError(f"{root}: no run folders found (looked in {root} and {root / 'runs'})")
    dirs = {d.name: d for d in find_run_dirs(args.dir)}  # as report counts them: one status
    for line in count_bad_losses_as_diverged(rows, lambda r: dirs[r["run_id"]]):
        print(f"warning: {line}", file=sys.stderr)
    if args.status is not None:  # '' is no status either: it listed every run
        found = {r["status"] for r in rows}
        if args.status not in (*STATUSES, *found):
            here = ", ".join(f"{s} {sum(r['status'] == s for r in rows)}" for s in sorted(found))
            shown = args.status or "''"
            raise ConfigError(
                f"--status {shown}: not a status (the statuses are "
                f"{', '.join(STATUSES)}; here: {here})"
            )
        rows = [r for r in rows if r["status"] == args.status]
    warn_damaged(args.dir)
    if args.curves:
        rows = curve_rows(args.dir, rows)
    if args.csv:
        if args.curves:
            write_rows(rows, args.csv)
        else:
            write_csv(rows, args.csv)
        logging.getLogger(__name__).info("wrote %d rows to %s", len(rows), args.csv)  # -q: not
    if args.out:
        if args.curves and (args.format or Path(args.out).suffix.lower()[1:]) == "csv":
            write_rows(rows, args.out)  # the curve columns only, as --csv writes them
            fmt = "csv"
        else:
            fmt = write_table(rows, args.out, args.format)
        logging.getLogger(__name__).info("wrote %d rows to %s (%s)", len(rows), args.out, fmt)
    if args.json:
        from scalinglab.cli._util import print_rows

        print_rows(rows)
    elif not args.csv and not args.out:
        shown = [c for c in CURVE_COLUMNS if c != "lr_schedule"]  # long: in the CSV only
        print(format_table(rows, shown if args.curves else None))
    return 0


TABLE_SUFFIXES = (".csv", ".jsonl", ".parquet")


def check_out_not_read(out, root, flag: str) -> None:
    """Refuse an --out inside DIR that would overwrite what the table is built from: a file
    of a run folder (its result.json, metrics.jsonl, ...: `runs DIR --out
    DIR/run1/result.json` replaced the run's result with the table, and the next `runs`
    listed the run as damaged), any file name a run folder reads (a result.json written
    into an unfinished run would mark it finished), or an existing file of the folder that
    is not a table (a study's summary.json, prediction.json). Rewriting DIR/runs.csv is fine.
    """
    from pathlib import Path

    from scalinglab import runfolder
    from scalinglab.errors import ConfigError
    from scalinglab.fsio import path_relation

    path = Path(out).absolute()
    if path_relation(path, root) != "lies inside":
        return
    folder = runfolder.run_folder_of(path, root)
    if folder is not None and (path.exists() or path.name in runfolder.RUN_FILES):
        raise ConfigError(
            f"{flag} {out} is a file of the run folder {folder}; write the runs "
            "table outside the run folders"
        )
    if path.is_file() and path.suffix.lower() not in TABLE_SUFFIXES:
        raise ConfigError(
            f"{flag} {out} would overwrite a file of {root} that is not a runs table; write "
            f"the table to a new file ({', '.join(TABLE_SUFFIXES)})"
        )


def curve_rows(root, run_rows) -> list[dict]:
    """One row per metrics.jsonl record with a val_loss, for each run of `run_rows`; a
    warning on stderr naming the file and line of each run's malformed lines (skipped)."""
    import sys
    from pathlib import Path

    from scalinglab import runfolder
    from scalinglab.sweep.table import find_run_dirs, task_items

    dirs = {d.name: d for d in find_run_dirs(root)}
    items = task_items(Path(dirs[r["run_id"]]) for r in run_rows)
    out = []
    for run in run_rows:
        scored = scored_steps(Path(dirs[run["run_id"]]), items)
        problems = runfolder.metrics_problems(Path(dirs[run["run_id"]]))
        if problems:
            more = f" (and {len(problems) - 1} more lines)" if len(problems) > 1 else ""
            print(f"warning: {problems[0]}{more}: skipped", file=sys.stderr)
        records = runfolder.read_metrics(Path(dirs[run["run_id"]]))
        # a run continued under another config, budget or schedule whose LR differs at the
        # steps it had trained had two schedules: only its lr column is right
        changed = any(h.get("event") in ("config_change", "schedule_change")
                      for h in runfolder.read_history(Path(dirs[run["run_id"]])))  # fmt: skip
        schedule = None if changed else run_schedule(Path(dirs[run["run_id"]]))
        lr, first = None, len(out)
        for rec in records:
            lr = rec.get("lr", lr)  # an eval record may carry no lr: the last one logged
            if rec.get("val_loss") is None:
                continue
            if rec.get("final") and len(out) > first and out[-1]["step"] == rec.get("step"):
                # the final evaluation (the whole validation split) at a step that also had
                # a periodic one: one row, with the final loss, as the run's result has it
                out[-1]["loss"] = rec["val_loss"]
                continue
            out.append(
                {
                    **{k: run.get(k) for k in CURVE_COLUMNS[:5]},
                    **{k: rec.get(k) for k in ("step", "tokens", "flops", "train_loss")},
                    "lr": lr,
                    "loss": rec["val_loss"],
                    "lr_schedule": schedule,
                    **scored.pop(rec.get("step"), {}),
                }
            )
        if scored:  # scored at a checkpoint that was no evaluation step
            steps = ", ".join(map(str, sorted(scored)))
            print(f"warning: {dirs[run['run_id']]}: the task results of step(s) {steps} have "
                  "no evaluation at that step: not in the curves table", file=sys.stderr)  # fmt: skip
    return out


def scored_steps(run_dir, items: dict) -> dict[int, dict]:
    """{step: {TASK.METRIC: value}} of the run's task results (RUN/tasks.json, `eval
    --tasks --every-checkpoint`), on the item set each column shows (`items`)."""
    from scalinglab import runfolder
    from scalinglab.sweep.table import TASK_METRICS

    out: dict[int, dict] = {}
    # float32's last, so that at a step scored in both it is the one kept (final_tasks)
    for r in sorted(runfolder.read_tasks(run_dir), key=runfolder.in_float32):
        name, step = r.get("task"), r.get("step")
        if name in items and r.get("sha256") == items[name] and isinstance(step, int):
            out.setdefault(step, {}).update({f"{name}.{m}": r[m] for m in TASK_METRICS if m in r})
    return out


def warn_damaged(root) -> None:
    """A warning on stderr, one line per run folder, naming the file: a result.json that
    exists but cannot be read (its run shows as incomplete or pending), a config.toml that
    does not read (its config columns are empty), a tasks.json that does not read (its
    task columns are empty)."""
    import sys

    from scalinglab import runfolder
    from scalinglab.sweep.table import find_run_dirs

    for d in find_run_dirs(root):
        problem = runfolder.result_problem(d)
        if problem:
            print(f"warning: {problem}: the run shows without its result", file=sys.stderr)
        problem = runfolder.config_problem(d)
        if problem:
            print(f"warning: {problem}: the run's config columns are empty", file=sys.stderr)
        problem = runfolder.tasks_problem(d)
        if problem:
            print(f"warning: {problem}: the run's task columns are empty", file=sys.stderr)


def run_schedule(run_dir):
    """The run's LR at every step in the schedule syntax, from its config; None if unknown."""
    from scalinglab import runfolder
    from scalinglab.laws.schedules import trainer_spec

    cfg = runfolder.read_config(run_dir)
    if cfg is None:
        return None
    t = cfg.train
    kind, _ = t.budget
    if t.plateau_factor:  # its evaluations divided the LR: no schedule of the config's
        return None
    result = runfolder.read_result(run_dir) or {}
    per_token = result.get("flops_per_token")
    if kind == "time" or (kind == "flops" and not per_token):
        return None
    from scalinglab.train.optim import plan_steps  # lazy: it imports torch

    total = plan_steps(t, t.batch_size * t.grad_accum * cfg.model.block_size, per_token or 0)
    # the warmup the run used: a run started too short for its --warmup and continued to
    # a larger budget keeps the shorter one, which config.toml's value capped anew is not
    warmup = result.get("warmup")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        warmup = t.warmup
    return trainer_spec(t.schedule, t.lr, t.final_lr, warmup, total, t.cooldown_frac)


def write_rows(rows, path) -> None:
    import csv
    import io

    from scalinglab.fsio import atomic_write_text

    tasks = sorted({k for r in rows for k in r} - set(CURVE_COLUMNS))  # TASK.METRIC
    columns = [*CURVE_COLUMNS, *tasks]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r[c] for c in columns])
    atomic_write_text(path, buf.getvalue())
