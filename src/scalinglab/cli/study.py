"""`scalinglab study [SPEC.toml] --out DIR` and `scalinglab quickstart --out DIR`:
the one-command scaling study (sweeps, fits, a predicted backtest, a plan, a report)."""

import os
import sys
import time
from pathlib import Path

from scalinglab.cli._util import print_rows, sigterm_interrupts, warn_loggers_unread
from scalinglab.cli.sweep import (
    add_executor_flags,
    add_logger_flag,
    add_set_flag,
    executor_config,
    parse_with_sets,
)

ORDER = 5


def _common(p) -> None:
    p.add_argument(
        "--out", "-o", metavar="DIR",
        help="study folder to write (rerun to resume); required unless --print-config",
    )  # fmt: skip
    p.add_argument(
        "--json", action="store_true",
        help="print the summary (summary.json; with --dry-run: the plan) as JSON at the end",
    )  # fmt: skip
    p.add_argument(
        "--minutes", type=float, metavar="M",
        help="scale every budget to take about M minutes instead of the spec's (default 10)",
    )  # fmt: skip
    p.add_argument("--workers", type=int, help="runs at a time (default: the spec's, 2)")
    p.add_argument(
        "--cache", metavar="DIR",
        help="where prepared corpora are kept (default $SCALINGLAB_CACHE or ~/.cache/scalinglab)",
    )  # fmt: skip
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan and its time, train nothing (the corpus is prepared into the "
        "cache: the plan needs its size)",
    )
    p.add_argument(
        "--print-config", action="store_true",
        help="print the study spec with every default filled in (TOML) and exit",
    )  # fmt: skip
    p.add_argument(
        "--trainer-cmd", metavar="CMD",
        help="your own trainer for every run of the study, a command line with {placeholders}, "
        "e.g. 'python my_train.py --layers {n_layer} --tokens {tokens} --lr {lr} --out {out}' "
        "(overrides the spec's trainer_cmd; docs/interfaces.md)",
    )  # fmt: skip
    add_set_flag(p, example="sweeps.gpt.sizes=4")
    add_logger_flag(p)
    add_executor_flags(p, skip=("workers",))  # --executor, --threads, --ray-address, ...
    p.set_defaults(func=run)


def register(sub) -> None:
    desc = (
        "Run a scaling study: IsoFLOP sweeps per architecture, fits (isoflop, chinchilla, "
        "the power law of each compute-optimal frontier) with bootstrap intervals, a "
        "backtest predicted before it is trained, a plan for larger budgets, and "
        "DIR/report.html. Rerun the same command to resume. See docs/study.md."
    )
    p = sub.add_parser("study", help="run a whole scaling study from a spec (default: the quickstart)",
                       description=desc)  # fmt: skip
    p.add_argument("spec", nargs="?", help="study spec (TOML); default: the built-in quickstart")
    _common(p)
    q = sub.add_parser(
        "quickstart",
        help="the built-in scaling study on Python's standard library (6-12 min on 2 idle cores)",
        description=desc + " This is `scalinglab study` with the built-in spec "
        "(examples/quickstart.toml).",
    )
    q.set_defaults(spec=None)
    _common(q)


def _load(args):
    from scalinglab.study.spec import parse_study

    if args.spec:
        from scalinglab.config import load_toml

        d, where = load_toml(args.spec), str(args.spec)
        d.setdefault("name", Path(args.spec).stem)  # as study.spec.load_study names it
    else:
        import tomllib

        from scalinglab.study.builtin import QUICKSTART_TOML

        d, where = tomllib.loads(QUICKSTART_TOML), "built-in quickstart"
    study = parse_with_sets(d, args.sets, lambda d: parse_study(d, where))
    if args.minutes is not None:
        study = study.scaled(args.minutes)
    if args.trainer_cmd is not None:
        study = study.with_trainer_cmd(args.trainer_cmd, "--trainer-cmd")
    if args.logger:
        study = study.with_loggers(args.logger)
    warn_loggers_unread(study.trainer_cmd, study.shared.get("train", {}).get("loggers"))
    return study


def check_not_a_sweep_or_run(out: Path) -> None:
    """Refuse a sweep's or a run's folder as a study's --out: the study would write its
    study.json and report.html into it, and `report` would read it as a study from then on."""
    from scalinglab import runfolder
    from scalinglab.errors import ConfigError

    if (out / "study.json").exists():
        return
    if (out / "sweep.toml").exists():
        what = "a sweep's folder (sweep.toml)"
    elif runfolder.is_run_folder(out):
        what = "a run's folder"
    else:
        return
    raise ConfigError(f"--out {out} is {what}, not a study's: give a folder of the study's own")


def study_where(args) -> str:
    """The study spec as errors name it (_load's `where`)."""
    return str(args.spec) if args.spec else "built-in quickstart"


def cache_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    env = os.environ.get("SCALINGLAB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "scalinglab"


def run(args) -> int:
    from scalinglab.errors import ConfigError
    from scalinglab.study.run import plan_study, prepare_data, run_study

    study = _load(args)
    if args.print_config:
        from scalinglab.config import dumps_toml
        from scalinglab.study.spec import study_dict

        print(dumps_toml(study_dict(study)), end="")
        return 0
    if not args.out:
        raise ConfigError("--out DIR is required (the study folder)")
    if Path(args.out).exists() and not Path(args.out).is_dir():  # before the corpus is prepared
        raise ConfigError(f"--out {args.out} is a file, not a study folder: give a folder")
    check_not_a_sweep_or_run(Path(args.out))
    from scalinglab.sweep.spec import check_program

    given = args.trainer_cmd is not None
    check_program(
        study.trainer_cmd, "--trainer-cmd" if given else f"{study_where(args)}: trainer_cmd"
    )
    cfg = executor_config(args, workers=study.workers)  # --workers: default the spec's
    t0 = time.monotonic()
    view = _View(t0, args.out, args.json, args.dry_run)
    if args.dry_run:
        shards, corpus = prepare_data(study, cache_dir(args.cache))
        plan = plan_study(study, shards, corpus, Path(args.out), cfg.workers,
                          cfg.threads_per_run, cores=cfg.cores_here)  # fmt: skip
        view("plan", plan)
        return 0
    with sigterm_interrupts():  # SIGTERM stops the runs as Ctrl-C does (exit 143)
        run_study(study, args.out, cache_dir(args.cache), cfg, listener=view)
    print(f"total wall time: {(time.monotonic() - t0) / 60:.1f} min", file=sys.stderr)
    return 0


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _View:
    """Terminal output of a study: the plan first, a line per run, the prediction, the summary."""

    def __init__(self, t0: float, out: str, as_json: bool = False, dry_run: bool = False):
        from scalinglab.sweep.estimate import load_now

        self.t0, self.out, self.as_json, self.dry_run = t0, out, as_json, dry_run
        self.load = load_now()  # before preparing data and measuring steps add to it

    def __call__(self, event: str, info) -> None:
        getattr(self, event)(info)

    def plan(self, plan) -> None:
        from scalinglab.sweep.table import format_table

        rows = []
        for part, r in plan.pool_runs:
            rows.append({"part": part.folder, "run": r.name, "params": r.counts.params,
                         "tokens": r.tokens, "flops": r.flops, "tok/param": r.tokens / r.counts.params,
                         "lr": r.lr, "est_s": plan.estimates.get(r.name),
                         "done": "yes" if r.name in plan.done else ""})  # fmt: skip
        g = plan.backtest_guess
        guess = "(size chosen by the fits, about)"
        rows.append({"part": "backtest", "run": g.name if plan.backtest_known else guess,
                     "params": g.counts.params, "tokens": g.tokens, "flops": g.flops,
                     "tok/param": g.tokens / g.counts.params, "lr": g.lr,
                     "est_s": plan.estimates.get("backtest"),
                     "done": "yes" if g.name in plan.done else ""})  # fmt: skip
        _say(f"corpus: {plan.corpus} -> {plan.shards}")
        if self.as_json and self.dry_run:  # the plan is the command's one JSON document
            print_rows(rows)
        else:  # a study's --json document is its summary, at the end
            _say(format_table(rows, list(rows[0])))
        from scalinglab.study.run import fit_cost
        from scalinglab.sweep.estimate import busy_note

        cost = fit_cost(plan.parts, g.arch)
        if cost["largest"] > 0:
            _say(
                f"backtest: about {g.flops / cost['largest']:.1f}x the largest fitted run's C "
                f"(extrapolation), its fits' runs cost about {cost['flops'] / g.flops:.2f}x its C "
                "(fit_cost_ratio)"
            )
        s = plan.seconds(plan.backtest_guess.arch)
        done = sum(r.name in plan.done for _, r in plan.pool_runs)
        last = f"; the backtest last, alone, on {plan.backtest_threads} thread(s)"
        _say(
            f"plan: {len(plan.pool_runs)} sweep runs ({done} already done) and the "
            f"backtest{' (done)' if g.name in plan.done else ''}, {plan.workers} at a time, {plan.threads} thread(s) each"
            f"{last if plan.alone else ''}.\n"
            f"estimated time: {s['total'] / 60:.1f} min (the prediction after about "
            f"{s['sweeps_to_prediction'] / 60:.1f} min; the backtest run {s['backtest'] / 60:.1f} "
            "min). Measured step times on this machine now; evaluation, start-up and other "
            "load are not all counted."
            + busy_note(max(plan.threads, plan.backtest_threads), self.load)
        )

    def run_started(self, info) -> None:
        pass

    def run_finished(self, o) -> None:
        from scalinglab.cli.sweep import finished_line

        el = (time.monotonic() - self.t0) / 60
        _say(
            f"[{o['index']}/{o['total']}] {o['name']} {o['status']} "
            f"{finished_line({'val_loss': o.get('loss'), 'error': o.get('error')}, o['status'])} "
            f"({o.get('wall_seconds') or 0:.0f} s; {el:.1f} min elapsed)"
        )

    def prediction(self, p) -> None:
        lo, hi = p["interval"]
        how = (
            f"reused: prediction.json, written {p.get('written_at')} before the run started"
            if p.get("reused")
            else "written to prediction.json before the run exists"
        )
        _say(
            f"backtest prediction ({how}): "
            f"{p['shape']} N={p['params']:,} D={p['tokens']:,} C={p['flops']:.3g}: "
            f"loss {p['predicted_loss']:.4f} [{lo:.4f}, {hi:.4f}] ({p['predictor']})"
        )

    def report(self, s) -> None:
        from scalinglab.cli.report import format_summary

        for w in s.get("warnings", []):  # what the report leaves out (summary.json's)
            print(f"warning: {w}", file=sys.stderr)
        if self.as_json:
            print_rows(s)
        else:
            print(format_summary(s, self.out))
