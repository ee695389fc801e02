"""`scalinglab eval RUN --tasks NAME|FILE,...`: task accuracy of a run, of each of its
checkpoints, or of every run of a sweep folder (cli/eval.py's flags; docs/tasks.md);
and `scalinglab backtest --law task-sigmoid|task-power` (cli/backtest.py's flags)."""


def add_flags(p) -> None:
    """The task flags of `scalinglab eval`."""
    p.add_argument(
        "--tasks",
        metavar="NAME|FILE,...",
        help="score tasks instead of the loss: JSONL task files, built-in tasks made from "
        "the validation split (next-line, brackets, recall), or builtin for all three; "
        "results go to RUN/tasks.json and the runs table (docs/tasks.md)",
    )
    p.add_argument(
        "--every-checkpoint", action="store_true", help="with --tasks: score each checkpoint"
    )
    # None: not given (a built-in task gets tasks.builtin.N_ITEMS and seed 0), so that one
    # given with task files only, which it would not change, is refused (check_task_flags)
    p.add_argument(
        "--task-items", type=int, help="items per built-in task, at most (default: 4000)"
    )
    p.add_argument("--task-seed", type=int, help="seed of the built-in tasks' items (default: 0)")
    p.add_argument(
        "--max-new-tokens", type=int, help="generation tasks: tokens at most (default: 64)"
    )


def check_task_flags(args) -> None:
    """Refuse the flags of one mode of `eval` given to the other (they were ignored)."""
    from scalinglab.errors import ConfigError

    if args.tasks is None:  # each flag of the tasks' own would be ignored by the loss
        given = [f for f, on in (
            ("--every-checkpoint", args.every_checkpoint),
            ("--task-items", args.task_items is not None),
            ("--task-seed", args.task_seed is not None),
            ("--max-new-tokens", args.max_new_tokens is not None),
        ) if on]  # fmt: skip
        if given:
            raise ConfigError(f"{given[0]} is for scoring tasks: give --tasks too")
        return
    if not args.tasks.strip(" ,"):
        raise ConfigError("--tasks '': name task files or built-in tasks (or builtin)")
    loss_only = [f for f, on in (("--split", getattr(args, "split", "val") != "val"),
                                 ("--eval-tokens", args.eval_tokens)) if on]  # fmt: skip
    if loss_only:
        raise ConfigError(
            f"{loss_only[0]} is for the loss; with --tasks the built-in tasks read the "
            "validation split and task files their own items"
        )
    for flag, v in (("--task-items", args.task_items), ("--max-new-tokens", args.max_new_tokens)):
        if v is not None and v < 1:
            raise ConfigError(f"{flag} must be >= 1, got {v}")
    from scalinglab.cli.generate import MAX_NEW_TOKENS

    if args.max_new_tokens is not None and args.max_new_tokens > MAX_NEW_TOKENS:
        # as generate's: a generation item runs to it where no `until` string comes
        raise ConfigError(
            f"--max-new-tokens must be at most {MAX_NEW_TOKENS}, got {args.max_new_tokens} "
            "(a bound against a typo: each generation item may run to it)"
        )
    from scalinglab.tasks.builtin import BUILTIN

    names = (*BUILTIN, "builtin")
    specs = [s.strip() for s in args.tasks.split(",") if s.strip()]
    if any(s in names for s in specs):
        return
    from pathlib import Path

    if any(not Path(s).exists() for s in specs):
        return  # neither a task nor a file: read_tasks names it (the flag is not the error)
    for flag, given, what in (
        ("--data", args.data, "the shards the built-in tasks are made from"),
        ("--task-items", args.task_items is not None, "the size of the built-in tasks"),
        ("--task-seed", args.task_seed is not None, "the seed of the built-in tasks' items"),
    ):
        if given:  # task files hold their own items: the flag would be ignored
            raise ConfigError(
                f"{flag} is {what}; --tasks {args.tasks} names task files only, which hold "
                f"their own items: drop {flag}, or add a built-in task ({', '.join(names)})"
            )


def trained_run_dirs(path) -> list:
    """The run folders at or under `path` that hold a config.toml (a run, or a sweep's)."""
    from scalinglab import runfolder
    from scalinglab.sweep.table import find_run_dirs

    return [r for r in find_run_dirs(path) if (r / runfolder.CONFIG).exists()]


def run_tasks(args) -> int:
    import sys
    from pathlib import Path

    from scalinglab import runfolder
    from scalinglab.cli._util import print_json
    from scalinglab.config import check_seed
    from scalinglab.errors import ConfigError, DataError
    from scalinglab.tasks.builtin import BUILTIN, N_ITEMS
    from scalinglab.tasks.run import evaluate_run, resolve_tasks
    from scalinglab.train.evaluate import check_own_data, check_same_tokenizer, open_run_data
    from scalinglab.train.setup import autocast, pick_device

    n_items = N_ITEMS if args.task_items is None else args.task_items  # not given: 4000
    seed = 0 if args.task_seed is None else args.task_seed
    check_seed(seed, "--task-seed")
    if args.batch_size < 0:  # 0: the default, 32 (a negative one scored no pair: all 0)
        raise ConfigError(f"--batch-size must be >= 0 (0: 32 with --tasks), got {args.batch_size}")
    runs = trained_run_dirs(args.run)
    if not runs:
        raise ConfigError(f"{args.run}: no trained run folder in it")
    if runs != [Path(args.run)]:  # a folder of runs: one without a checkpoint stopped them all
        runs = [r for r in runs if scorable(r)]
        if not runs:
            raise DataError(f"{args.run}: no completed run with a valid checkpoint to score")
    for run in runs:  # before any scoring: a damaged tasks.json would be overwritten
        runfolder.check_tasks_readable(run)
    builtin = any(s.strip() in (*BUILTIN, "builtin") for s in args.tasks.split(","))
    if args.data and builtin:
        # the built-in items' text: of the runs' tokenizer?
        given = open_run_data(args.run, None, args.data)
        for run in runs:
            check_same_tokenizer(run, given)
    device = pick_device(args.device)
    out = []
    tasks = None
    for run in runs:
        cfg = runfolder.load_config(run)
        if tasks is None:  # one set of items for every run: the runs of a sweep share shards
            shards = Path(args.data or cfg.train.data)
            if builtin and not args.data:  # a relative data path may name other shards here
                check_own_data(run, cfg, open_run_data(run, cfg))
            tasks = resolve_tasks(args.tasks.split(","), shards, n_items, seed)
        # float32 unless asked: a bfloat16 run was scored in bfloat16 autocast, its
        # log-likelihoods up to 0.08 nats off lm-evaluation-harness's float32 ones
        cast = autocast(device, args.dtype or "float32")
        done = evaluate_run(
            run, tasks, args.every_checkpoint, device, args.batch_size or 32, cast,
            64 if args.max_new_tokens is None else args.max_new_tokens,
            dtype=args.dtype or "float32",
        )  # fmt: skip
        out += [{"run": str(run), **r} for r in done]
    if args.json:
        print_json(out)
        return 0
    for r in out:
        metrics = "  ".join(
            f"{k} {r[k]:.4f}"
            for k in ("acc", "acc_norm", "bpb", "exact_match", "chrf")
            if r.get(k) is not None
        )
        chance = f"  (chance {r['chance']:.3f})" if r.get("chance") else ""
        print(f"{r['run']}  step {r['step']}  {r['task']}  n {r['n']}  {metrics}{chance}")
    if any(r.get("kind") == "generation" and r.get("chrf") is None for r in out):
        print("note: chrF needs sacrebleu: pip install 'scalinglab[tasks]'", file=sys.stderr)
    return 0


def scorable(run) -> bool:
    """Whether a run of a folder of runs is scored: completed, with a valid checkpoint
    (as a study scores its runs); else a warning line saying why it is skipped."""
    import sys

    from scalinglab import runfolder
    from scalinglab.errors import ScalingLabError
    from scalinglab.train import checkpoint

    try:  # a damaged config.toml or result.json: that run's problem, not the folder's
        runfolder.load_config(run)
        status = runfolder.table_status(run, runfolder.read_result(run))
    except ScalingLabError as exc:
        print(f"warning: {run}: skipped: {exc}", file=sys.stderr)
        return False
    if checkpoint.latest(run / runfolder.CKPT, quiet=True) is None:
        why = f"no valid checkpoint in {run / runfolder.CKPT}: skipped"
    elif status != "completed":
        why = f"{status}, not completed: skipped (eval RUN of the run itself scores it)"
    else:
        return True
    print(f"warning: {run}: {why}", file=sys.stderr)
    return False


def run_backtest(args, settings: dict) -> int:
    """`scalinglab backtest RUNS.csv --law task-*`: leave-larger-out in C, errors in points."""
    from scalinglab.cli._util import print_json
    from scalinglab.errors import ConfigError
    from scalinglab.fsio import atomic_write_json
    from scalinglab.laws import ScalingLaw
    from scalinglab.laws.tasklaws import rolling_backtest

    if args.by != "C":
        raise ConfigError(
            f"--law {args.law} backtests by C (the laws are laws in C), not --by {args.by}"
        )
    law = ScalingLaw(args.law, **settings)
    bt = rolling_backtest(law, args.runs, fracs=args.train_fracs, thresholds=args.thresholds)
    bt["source"] = args.runs
    if args.out:
        atomic_write_json(args.out, bt)
    print_json(bt) if args.json else print(render_backtest(bt))
    return 0


def render_backtest(bt: dict) -> str:
    """A task law's backtest as a text table (errors in points: 100 x accuracy)."""
    lines = [f"law: {bt['law']}    metric: {bt['metric']}    backtest by C    "
             f"source: {bt.get('source', '-')}", ""]  # fmt: skip
    head = (f"{'C above':>12}{'fit':>6}{'pred':>6}{'mean |err|':>12}{'max':>8}{'bias':>8}"
            f"{'in 80%':>8}{'in 95%':>8}")  # fmt: skip
    lines += [head, "-" * len(head)]
    rows = [(f"{r['threshold']:.3g}", r["n_train"], r) for r in bt["thresholds"]]
    for name, n_fit, r in [*rows, ("all", "", bt["overall"])]:
        cov = r["coverage"]
        lines.append(
            f"{name:>12}{n_fit!s:>6}{r['n']:>6}{r['mean_abs_error_points']:>12.2f}"
            f"{r['max_abs_error_points']:>8.2f}{r['bias_points']:>+8.2f}"
            f"{cov['0.8']:>8.0%}{cov['0.95']:>8.0%}"
        )
    for s in bt.get("skipped", []):
        lines.append(f"skipped C > {s['threshold']:.3g}: {s['why']}")
    lines += ["", "errors in points (100 x the metric); in 80%/95%: held-out runs inside the "
              "prediction intervals (bootstrap draws + the fitted runs' scatter)"]  # fmt: skip
    return "\n".join(lines)
