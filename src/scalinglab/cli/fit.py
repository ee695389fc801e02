"""`scalinglab fit RUNS.csv --law LAW`: fit a scaling law, with bootstrap intervals and backtests.

The fit and table flags are generated from `FitConfig` and `TableConfig`
(scalinglab.laws.settings): one field, one flag, one default, as in Python.
"""

ORDER = 50
# Fields whose flags take a list: add_flags makes scalar flags, these keep their shapes.
LIST_FIELDS = ("where", "budgets", "run_cols", "holdout_where", "tie", "fix", "min_over")


def register(sub):
    from scalinglab.laws.estimator import LAWS

    p = sub.add_parser(
        "fit",
        help="fit a scaling law to a runs table (any CSV), with bootstrap intervals",
        description="Fit a scaling law to a runs table. Columns are found by name "
        "(params/N/Model Size, tokens/D, flops/C/Training FLOP, loss/val_loss) or mapped "
        "with --n-col/--d-col/--c-col/--loss-col; D = C/(6N) when only C is given.",
    )
    p.add_argument(
        "runs", nargs="+", help="runs table CSV (for --law envelope: a curves CSV or run folders)"
    )
    p.add_argument(
        "--law",
        choices=(*LAWS, "auto", "lr-opt"),
        default="chinchilla",
        help="law to fit (default chinchilla); auto: backtests each candidate leave-larger-out "
        "by C and keeps chinchilla (data-constrained where data repeats) unless another "
        "law's error is below 40%% of it (the table of candidates is printed and saved in "
        "fit.json's auto; docs/laws.md); lr-opt: the best lr and batch as laws of N, D "
        "and C (scalinglab.laws.lropt)",
    )
    add_fit_flags(p)
    h = p.add_mutually_exclusive_group()
    h.add_argument(
        "--holdout-frac",
        type=float,
        help="backtest: hold out this fraction of the most expensive runs",
    )
    h.add_argument(
        "--holdout-above",
        type=float,
        metavar="FLOPS",
        help="backtest: hold out runs with C above FLOPS",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--out", "-o", metavar="FILE", help="write the fit (fit.json) to FILE")
    p.set_defaults(func=run)


def add_fit_flags(p):
    """The FitConfig and TableConfig flags (shared with `scalinglab backtest`)."""
    from scalinglab.config import add_flags
    from scalinglab.laws.settings import FitConfig, TableConfig

    add_flags(p, FitConfig, skip=LIST_FIELDS)
    add_flags(p, TableConfig, skip=LIST_FIELDS)
    g = p.add_argument_group("FitConfig and TableConfig lists")
    g.add_argument(
        "--tie", action="append", default=None, metavar="alpha=beta",
        help="data-constrained: fit alpha and beta as one exponent",
    )  # fmt: skip
    g.add_argument(
        "--fix", action="append", default=None, metavar="NAME=VALUE",
        help="data-constrained: hold a parameter (A, B, E, alpha, beta, R_D, R_N) at VALUE; "
        "multi-power, lr-annealing: any of theirs (e.g. gamma=1); repeatable",
    )  # fmt: skip
    g.add_argument(
        "--where", action="append", default=None, metavar="COL=VALUE",
        help="keep rows where COL=VALUE (!=, <, <=, >, >=; N, D, C, L, U name their columns); "
        "repeatable",
    )  # fmt: skip
    g.add_argument(
        "--budgets", type=float, nargs="+", default=None,
        help="isoflop: snap each run's C to the nearest of these budgets",
    )  # fmt: skip
    g.add_argument(
        "--run-col", dest="run_cols", action="append", default=None,
        help="envelope, curve laws, --checkpoints: column(s) identifying a run (default run_id); "
        "repeatable",
    )  # fmt: skip
    g.add_argument(
        "--holdout-where", dest="holdout_where", action="append", default=None,
        metavar="COL=VALUE",
        help="curve laws: hold out whole runs with a row where COL=VALUE (or !=, <, <=, >, >=); "
        "repeatable; fit.json's backtest predicts them",
    )  # fmt: skip
    g.add_argument(
        "--min-over", dest="min_over", action="append", default=None, metavar="COL[,COL]",
        help="keep the lowest loss per (N, D) over a sweep of these columns (e.g. lr,batch_size)",
    )  # fmt: skip


def run(args):
    from scalinglab.cli._util import print_json
    from scalinglab.config import flags_given
    from scalinglab.errors import ConfigError
    from scalinglab.fsio import atomic_write_json
    from scalinglab.laws import ScalingLaw
    from scalinglab.laws.backtest import backtest, check_backtestable
    from scalinglab.laws.curvelaws import CURVE_LAWS
    from scalinglab.laws.settings import FitConfig, TableConfig, csv_mapping
    from scalinglab.laws.table import read_csv
    from scalinglab.laws.tasklaws import TASK_LAWS

    check_out_not_input(args.out, args.runs, "fit")
    holdout = args.holdout_frac is not None or args.holdout_above is not None
    if holdout:
        check_backtestable(args.law)
    auto = None
    if args.law == "auto":
        from scalinglab.cli._util import render_auto
        from scalinglab.laws.backtest import AUTO_LAWS, choose_law, read_for
        from scalinglab.laws.estimator import settings_for

        if len(args.runs) != 1:
            raise ConfigError(f"--law auto takes one runs table, got {len(args.runs)} paths")
        given = {**flags_given(args, FitConfig), **flags_given(args, TableConfig)}
        table = read_for(args.runs[0], AUTO_LAWS, given)
        args.law, auto = choose_law(table, settings=given)
        chosen_settings = settings_for(args.law, given)
        if not args.json:
            print(render_auto(auto))
    if args.law == "lr-opt":
        law = _lr_opt(args)
    else:
        given = {**flags_given(args, FitConfig), **flags_given(args, TableConfig)}
        if args.run_cols and args.law in TASK_LAWS:  # rows of those runs, as in backtest
            given["checkpoints"] = True  # (--run-col run_id is the default's spelling too)
        if auto is not None:  # the settings the chosen law uses (checked by choose_law)
            given = chosen_settings
        law = ScalingLaw(args.law, **given)
    if args.law == "lr-opt":
        pass  # fitted by _lr_opt
    elif args.law in CURVE_LAWS:
        if len(args.runs) != 1:
            raise ConfigError(f"--law {args.law} takes one curves CSV, got {len(args.runs)} paths")
        if args.holdout_frac is not None or args.holdout_above is not None:
            raise ConfigError(f"--law {args.law}: hold runs out with --holdout-where")
        law.fit(args.runs[0])
    elif args.law in TASK_LAWS:
        if holdout:
            raise ConfigError(
                f"--law {args.law} takes no --holdout-*: backtest it with "
                f"scalinglab backtest RUNS.csv --law {args.law} (docs/tasks.md)"
            )
        if len(args.runs) != 1:
            raise ConfigError(f"--law {args.law} takes one runs table, got {len(args.runs)} paths")
        law.fit(args.runs[0])
    elif args.law == "envelope":
        law.fit(_envelope_input(args.runs))
    else:
        if len(args.runs) != 1:
            raise ConfigError(f"--law {args.law} takes one runs table, got {len(args.runs)} paths")
        need = {"power-c": ("C",), "data-constrained": ("N", "D", "C", "U")}
        # the path, read as ScalingLaw.fit reads it (docs/api.md: the same fit.json); a
        # holdout splits by C, so the table is read with C (its column, else 6ND) first
        table = (
            read_csv(
                args.runs[0],
                need=need.get(args.law, ("N", "D", "C")),
                **csv_mapping(law.settings),
            )
            if holdout and args.law != "isoflop"
            else args.runs[0]
        )
        law.fit(table)  # the table the backtest splits: the same rows
        if holdout:
            law.backtest_ = backtest(
                law, table, holdout_frac=args.holdout_frac, holdout_above=args.holdout_above
            )
    out = law.to_json()
    if auto is not None:
        out["auto"] = auto
    if args.out:
        atomic_write_json(args.out, out)
    if args.json:
        print_json(out)
    else:
        print(law.report())
    return 0


def _envelope_input(paths: list[str]):
    """A curves CSV, or run folders; one folder of runs (a sweep's, a study's) stands for
    its run folders, as for `scalinglab runs` (it was refused: 'a folder')."""
    from pathlib import Path

    from scalinglab import runfolder
    from scalinglab.errors import DataError
    from scalinglab.sweep.table import find_run_dirs

    if len(paths) != 1 or not Path(paths[0]).is_dir():
        return paths[0] if len(paths) == 1 else list(paths)
    dirs = find_run_dirs(paths[0])
    if not dirs:
        raise DataError(f"{paths[0]}: a folder with no run folders in it (envelope takes a "
                        "curves CSV or run folders)")  # fmt: skip
    archs = sorted({c.model.arch for d in dirs if (c := runfolder.read_config(d)) is not None})
    if len(archs) > 1:  # one envelope is one architecture's
        raise DataError(
            f"{paths[0]}: its runs are of {len(archs)} architectures ({', '.join(archs)}); "
            "give one's folder, or its curves (scalinglab runs DIR --curves) with "
            f"--where arch={archs[0]}"
        )
    return [str(d) for d in dirs]


def check_out_not_input(out, inputs, what: str, flag: str = "--out") -> None:
    """Refuse an --out that is one of the input tables (or lies inside an input folder):
    writing `what` there would overwrite the data it came from."""
    import tempfile
    from pathlib import Path

    from scalinglab.errors import ConfigError
    from scalinglab.fsio import path_relation

    if not out:
        return
    # checked before the fit, not after it and its bootstrap ran (exit 1, nothing written)
    parent = Path(out).absolute().parent
    if Path(out).is_dir():
        raise ConfigError(f"{flag} {out} is a folder; give the {what}'s file name")
    if not parent.is_dir():
        raise ConfigError(f"{flag} {out}: the folder {parent} does not exist")
    try:  # a folder we cannot write in failed after the fit, naming the file, not the flag
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{Path(out).name}.probe-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{flag} {out}: cannot write in {parent}: {exc.strerror or exc}"
        ) from None
    for given in inputs:
        how = path_relation(out, given)
        if how == "is":
            raise ConfigError(
                f"{flag} {out} is the input {given}; write the {what} to another file"
            )
        if how == "lies inside":
            raise ConfigError(
                f"{flag} {out} lies inside the input folder {given}; write the {what} outside it"
            )


def _lr_opt(args):
    """fit --law lr-opt: its own fitter (laws/lropt.py) with --bootstrap, --seed, --ci-level."""
    from scalinglab.config import flags_given
    from scalinglab.errors import ConfigError
    from scalinglab.laws.lropt import fit_lr_opt
    from scalinglab.laws.settings import FitConfig

    if len(args.runs) != 1:
        raise ConfigError(f"--law lr-opt takes one runs table, got {len(args.runs)} paths")
    fc = FitConfig(**flags_given(args, FitConfig))
    return fit_lr_opt(args.runs[0], bootstrap=fc.bootstrap, seed=fc.seed, ci_level=fc.ci_level)
