"""`scalinglab fit RUNS.csv --law LAW`: fit a scaling law, with bootstrap intervals and backtests."""

ORDER = 50

LAW_CHOICES = ("chinchilla", "kaplan", "power-n", "power-d", "power-c", "isoflop", "envelope")


def register(sub):
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
        "--law", choices=LAW_CHOICES, default="chinchilla", help="law to fit (default chinchilla)"
    )
    p.add_argument("--n-col", help="column holding N (parameters)")
    p.add_argument("--d-col", help="column holding D (training tokens)")
    p.add_argument(
        "--c-col", help="column holding C (training FLOPs; default 'flops' when present)"
    )
    p.add_argument("--loss-col", help="column holding the loss (nats/token)")
    p.add_argument("--budget-col", help="isoflop: column holding each run's compute budget")
    p.add_argument(
        "--budgets",
        type=float,
        nargs="+",
        help="isoflop: snap each run's C to the nearest of these budgets",
    )
    p.add_argument(
        "--curvature",
        choices=("per-budget", "shared"),
        default="per-budget",
        help="isoflop: one parabola per budget (Hoffmann et al.), or parabolas that share "
        "one curvature (steadier optima from few noisy sizes per budget)",
    )
    p.add_argument(
        "--n-kind",
        choices=("params", "params_nonembed"),
        default="params",
        help="which N of our runs tables (default params)",
    )
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="COL=VALUE",
        help="keep rows where COL=VALUE (or COL!=VALUE); repeatable",
    )
    p.add_argument(
        "--drop-highest",
        type=int,
        default=0,
        metavar="K",
        help="drop the K highest-loss rows (Besiroglu et al. drop 5)",
    )
    p.add_argument(
        "--no-floor",
        action="store_true",
        help="power-*: fit L = (X_c/X)^alpha with no irreducible loss E",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="K",
        help="bootstrap resamples (default 1000; 0 for none)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--ci-level", type=float, default=0.95, help="confidence level of the intervals")
    p.add_argument(
        "--huber-delta", type=float, default=1e-3, help="Huber delta on log-loss residuals"
    )
    p.add_argument(
        "--boot-starts",
        type=int,
        default=1,
        help="starts per bootstrap refit (best distinct optima of the grid)",
    )
    p.add_argument(
        "--no-prune", action="store_true", help="run every start of the grid to convergence"
    )
    p.add_argument(
        "--run-col",
        action="append",
        default=None,
        help="envelope: column(s) identifying a run (default run_id)",
    )
    p.add_argument(
        "--envelope-points", type=int, default=100, help="envelope: log-spaced compute values"
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--holdout-frac",
        type=float,
        help="backtest: hold out this fraction of the most expensive runs",
    )
    g.add_argument(
        "--holdout-above",
        type=float,
        metavar="FLOPS",
        help="backtest: hold out runs with C above FLOPS",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--out", help="write the fit as fit.json to this path")
    p.set_defaults(func=run)


def run(args):
    from scalinglab.cli._util import print_json
    from scalinglab.errors import ConfigError
    from scalinglab.fsio import atomic_write_json
    from scalinglab.laws import ScalingLaw
    from scalinglab.laws.backtest import backtest
    from scalinglab.laws.estimator import TABLE_KEYS
    from scalinglab.laws.table import read_csv

    law = ScalingLaw(
        args.law,
        bootstrap=args.bootstrap,
        seed=args.seed,
        ci_level=args.ci_level,
        floor=not args.no_floor,
        huber_delta=args.huber_delta,
        boot_starts=args.boot_starts,
        prune=not args.no_prune,
        budgets=args.budgets,
        curvature=args.curvature,
        envelope_points=args.envelope_points,
        run_cols=tuple(args.run_col or ("run_id",)),
        n_col=args.n_col,
        d_col=args.d_col,
        c_col=args.c_col,
        loss_col=args.loss_col,
        budget_col=args.budget_col,
        n_kind=args.n_kind,
        where=args.where,
        drop_highest=args.drop_highest,
    )
    if args.law == "envelope":
        law.fit(args.runs[0] if len(args.runs) == 1 else list(args.runs))
    else:
        if len(args.runs) != 1:
            raise ConfigError(f"--law {args.law} takes one runs table, got {len(args.runs)} paths")
        need = ("N", "D", "C")
        table = (
            read_csv(
                args.runs[0],
                need=need if args.law != "power-c" else ("C",),
                **{k: law.settings[k] for k in TABLE_KEYS},
            )
            if args.law != "isoflop"
            else args.runs[0]
        )
        law.fit(table)
        if args.holdout_frac is not None or args.holdout_above is not None:
            law.backtest_ = backtest(
                law, table, holdout_frac=args.holdout_frac, holdout_above=args.holdout_above
            )
    if args.out:
        atomic_write_json(args.out, law.to_json())
    if args.json:
        print_json(law.to_json())
    else:
        print(law.report())
    return 0
