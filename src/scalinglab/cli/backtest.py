"""`scalinglab backtest RUNS.csv --law L`: leave-larger-out backtests and interval coverage.

At each threshold of C (or N, D: `--by`) the law is fitted on the rows at or below it
and predicts every row above it; per threshold and over all of them it prints the
number of predicted points, the mean and max |relative error|, the signed bias and
the share of the held-out losses inside the 80% and 95% prediction intervals
(scalinglab.laws.backtest; docs/laws.md).
"""

from scalinglab.cli._util import render_auto

ORDER = 52


def register(sub):
    from scalinglab.cli.fit import add_fit_flags
    from scalinglab.laws.backtest import BACKTEST_LAWS, BY
    from scalinglab.laws.tasklaws import TASK_LAWS

    p = sub.add_parser(
        "backtest",
        help="leave-larger-out backtests of a law: errors and interval coverage",
        description="Fit a law on the smaller runs, predict the larger ones, at several "
        "thresholds; print the errors and the coverage of the 80% and 95% prediction "
        "intervals. --law auto backtests every candidate law in the thresholds' own training "
        "rows and keeps chinchilla (data-constrained where data repeats) unless another "
        "law's error is below 40% of it.",
    )
    p.add_argument("runs", help="runs table CSV")
    p.add_argument(
        "--law",
        choices=(*BACKTEST_LAWS, *TASK_LAWS, "auto"),
        default="chinchilla",
        help="law to backtest, or auto: chosen by the candidates' backtest errors "
        "(docs/laws.md, Backtests; default chinchilla); task-sigmoid and task-power backtest a task metric "
        "(--metric-col; docs/tasks.md)",
    )
    p.add_argument("--by", choices=BY, default="C", help="hold out the runs larger in (default C)")
    p.add_argument(
        "--train-fracs",
        type=float,
        nargs="+",
        default=None,
        metavar="F",
        help="shares of the rows below the thresholds (default 0.5 0.6 0.7 0.8 0.9)",
    )
    p.add_argument(
        "--thresholds", type=float, nargs="+", default=None, help="explicit threshold values"
    )
    add_fit_flags(p)
    p.add_argument("--json", action="store_true", help="print the backtest as one JSON object")
    p.add_argument(
        "-o", "--out", metavar="FILE", help="write the backtest (and --law auto's table) as JSON"
    )
    p.set_defaults(func=run)


def run(args):
    from scalinglab.cli._util import print_json
    from scalinglab.cli.fit import check_out_not_input
    from scalinglab.config import flags_given
    from scalinglab.errors import ConfigError
    from scalinglab.fsio import atomic_write_json
    from scalinglab.laws import ScalingLaw
    from scalinglab.laws.backtest import AUTO_LAWS, choose_law, read_for, rolling_backtest
    from scalinglab.laws.intervals import check_thresholds
    from scalinglab.laws.settings import FitConfig, TableConfig

    check_out_not_input(args.out, [args.runs], "backtest")
    if args.train_fracs and args.thresholds:
        raise ConfigError("give --train-fracs or --thresholds, not both")
    if args.thresholds:  # refused before the table is read, named as the flag
        check_thresholds(args.thresholds, "--thresholds", f" (values of {args.by}, --by {args.by})")
    settings = {**flags_given(args, FitConfig), **flags_given(args, TableConfig)}
    if args.run_cols:  # hold out whole runs: rows are checkpoints of the runs named
        settings["checkpoints"] = True
    if args.law in ("task-sigmoid", "task-power"):  # errors in points: cli/_tasks.py
        from scalinglab.cli._tasks import run_backtest

        return run_backtest(args, settings)
    if args.law != "auto":  # a fit setting the law cannot use is refused, as by `fit`
        ScalingLaw(args.law, **settings)
    laws = AUTO_LAWS if args.law == "auto" else (args.law,)
    table = read_for(args.runs, laws, settings, by=args.by)
    out = {}
    if args.law == "auto":  # the law a fit of the whole table would choose; the backtest
        # below chooses again inside each threshold's training rows (nested), so its
        # errors and coverage are those of the choice too
        out["chosen"], out["auto"] = choose_law(
            table, by=args.by, fracs=args.train_fracs, settings=settings
        )
    out.update(
        rolling_backtest(
            args.law,
            table,
            by=args.by,
            fracs=args.train_fracs,
            thresholds=args.thresholds,
            settings=settings,
        )
    )
    out["source"] = table.source
    if args.out:
        atomic_write_json(args.out, out)
    if args.json:
        print_json(out)
    else:
        print(render(out))
    return 0


def _pct(d, key):
    return "-" if d is None or key not in d else f"{d[key]:.0%}"


def render(bt) -> str:
    """The backtest as text tables."""
    lines = []
    if "auto" in bt:
        lines.append(render_auto(bt["auto"]))
    by = bt["by"]
    law = bt["law"]
    if law == "auto":
        law = "auto (chosen inside each threshold's training rows; last column)"
    lines.append(f"law: {law}    backtest by {by}    source: {bt.get('source', '-')}")
    cal = "calibrated_coverage" in bt["overall"]
    head = (
        f"{by + ' above':>12}{'fit':>6}{'pred':>6}{'mean |err|':>12}{'max':>8}{'bias':>9}"
        f"{'in 80%':>8}{'in 95%':>8}" + (f"{'cal 80%':>9}{'cal 95%':>9}" if cal else "")
    )
    lines += ["", head, "-" * len(head)]
    rows = [(f"{r['threshold']:.3g}", r["n_train"], r) for r in bt["thresholds"]]
    rows.append(("all", "", bt["overall"]))
    for name, n_fit, r in rows:
        chosen = f"  {r['law']}" if "law" in r else ""
        lines.append(
            f"{name:>12}{n_fit!s:>6}{r['n']:>6}{r['mean_abs_rel_error']:>12.3%}"
            f"{r['max_abs_rel_error']:>8.2%}{r['bias']:>+9.2%}"
            f"{_pct(r.get('coverage'), '0.8'):>8}{_pct(r.get('coverage'), '0.95'):>8}"
            + (
                f"{_pct(r.get('calibrated_coverage'), '0.8'):>9}"
                f"{_pct(r.get('calibrated_coverage'), '0.95'):>9}"
                if cal
                else ""
            )
            + chosen
        )
    for s in bt.get("skipped", []):
        lines.append(f"skipped {by} > {s['threshold']:.3g}: {s['why']}")
    f = bt["pooled_factors"]
    # --bootstrap 0: the intervals hold the run-to-run noise alone, no fit's uncertainty
    drawn = (bt.get("settings") or {}).get("bootstrap") != 0
    what = "bootstrap + run-to-run noise" if drawn else "run-to-run noise alone: --bootstrap 0"
    lines += [
        "",
        f"in 80%/95%: held-out losses inside the prediction intervals ({what})"
        + ("; cal: widened by each fit's own backtest (--calibrate)" if cal else ""),
        f"widening that would have made these intervals cover: 80% x{f['0.8']:.2f}, "
        f"95% x{f['0.95']:.2f}",
    ]
    return "\n".join(lines)
