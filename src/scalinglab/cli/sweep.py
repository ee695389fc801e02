"""`scalinglab sweep SPEC.toml --out DIR`: run a sweep of many training runs."""

import sys
import time
from pathlib import Path

from scalinglab.cli._util import (
    is_terminal,
    print_rows,
    sigterm_interrupts,
    terminated,
    warn_loggers_unread,
)

ORDER = 70


def register(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a sweep (grid, IsoFLOP, ladder, WSD) of training runs; rerun to resume",
        description=(
            "Plan the runs a sweep spec describes and run them. Each run writes its own "
            "folder OUT/runs/NAME; rerunning the same command skips completed runs, "
            "resumes interrupted ones from their checkpoints and retries failed ones. "
            "See docs/sweeps.md for the spec format."
        ),
    )
    p.add_argument("spec", help="sweep spec (TOML)")
    p.add_argument(
        "--out", "-o", metavar="DIR", help="sweep folder to write (or resume); required unless "
        "--dry-run or --print-config",
    )  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument(
        "--json", action="store_true",
        help="print the runs table (with --dry-run: the plan) as a JSON list at the end",
    )  # fmt: skip
    p.add_argument(
        "--print-config", action="store_true",
        help="print the spec with every default filled in (TOML) and exit",
    )  # fmt: skip
    p.add_argument(
        "--flops-convention",
        choices=("6nd", "model"),
        help="tokens per run from C = 6·N·D, or from the model's own FLOP count "
        "(overrides the spec's flops_convention)",
    )
    p.add_argument(
        "--trainer-cmd",
        metavar="CMD",
        help="run CMD for each planned run instead of scalinglab's trainer, e.g. "
        "'python my_train.py --layers {n_layer} --width {n_embd} --tokens {tokens} --lr {lr} "
        "--out {out}' (overrides the spec's trainer_cmd; docs/interfaces.md)",
    )
    add_set_flag(p)
    add_logger_flag(p)
    add_executor_flags(p)
    p.set_defaults(func=run)


def add_set_flag(p, example: str = "design.budgets=[1e11,3e11]") -> None:
    """`--set KEY=VALUE`: a dotted override of a spec key (sweep and study; `example`
    is a key of that command's spec)."""
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
        help=f"override a key of the spec, e.g. train.batch_size=16 or {example} "
        "([model] and [train] keys typed as train's flags; else a TOML value); repeatable",
    )  # fmt: skip


def parse_with_sets(d: dict, sets: list[str], parse):
    """`parse(d)` after the `--set` overrides; an error they cause names the --set."""
    from scalinglab.config import ModelConfig, TrainConfig, apply_sets
    from scalinglab.errors import ConfigError, ScalingLabError

    typed = {"model": ModelConfig, "train": TrainConfig}
    if not sets:
        return parse(d)
    parse(apply_sets(d, []))  # the file's own errors first, named as the file's
    try:  # all of them at once: keys that need each other can come in any order
        return parse(apply_sets(d, sets, typed))
    except ScalingLabError as exc:
        if str(exc).startswith("--set "):
            raise
        error = exc
    # the --set to blame: the first after which this same error appears (an earlier one
    # may only have lacked a later one's key), else all of them
    blamed = sets
    for i in range(len(sets)):
        try:
            parse(apply_sets(d, sets[: i + 1], typed))
        except ScalingLabError as exc:
            if str(exc) == str(error):
                blamed = [sets[i]]
                break
    shown = ", ".join(f"--set {s}" for s in blamed)
    raise ConfigError(f"{shown}: {error}") from None


def add_logger_flag(p) -> None:
    """--logger (repeatable), shared with `study`: every run also logs to these trackers."""
    from scalinglab.config import LOGGERS

    p.add_argument(
        "--logger", action="append", choices=LOGGERS, metavar="NAME",
        help=f"log every run to this experiment tracker too, one of {', '.join(LOGGERS)}; "
        "repeatable (overrides the spec's [train] loggers; docs/trackers.md)",
    )  # fmt: skip


def add_executor_flags(p, skip: tuple[str, ...] = ()) -> None:
    """The executor's flags (sweep.executors.ExecutorConfig), shared with `study`."""
    from scalinglab.config import add_flags
    from scalinglab.sweep.executors import ExecutorConfig

    add_flags(p, ExecutorConfig, skip=("submitit_params", *skip))
    p.add_argument(
        "--submitit-param", action="append", default=[], metavar="KEY=VALUE",
        help="submitit: any executor parameter, e.g. slurm_account=abc or slurm_mem_gb=8 "
        "(VALUE is read as a TOML value when it parses, else as a string); repeatable",
    )  # fmt: skip


def executor_config(args, **defaults):
    """The ExecutorConfig of the flags given, over `defaults` and the config's own."""
    from scalinglab.config import flags_given
    from scalinglab.errors import ConfigError
    from scalinglab.sweep.executors import ExecutorConfig

    given = flags_given(args, ExecutorConfig)
    if given.get("ray_address") == "":  # the setting's default: a local Ray, silently
        raise ConfigError(
            "--ray-address '': no address; give HOST:PORT, ray://HOST:PORT or auto, or leave "
            "the flag out to start a local Ray"
        )
    if args.submitit_param:
        given["submitit_params"] = _key_values(args.submitit_param)
    cfg = ExecutorConfig(**(defaults | given))
    cfg.check_here()  # before a --dry-run's plan, or a study's corpus
    for note in cfg.notes():
        print(f"warning: {note}", file=sys.stderr)
    return cfg


def run(args) -> int:
    from scalinglab.config import load_toml
    from scalinglab.errors import ConfigError
    from scalinglab.sweep import driver
    from scalinglab.sweep.executors import make_executor
    from scalinglab.sweep.spec import check_program, check_trainer_cmd, parse_spec

    path = Path(args.spec)
    spec = parse_with_sets(
        load_toml(path), args.sets,
        lambda d: parse_spec(d, where=str(path), default_name=path.stem, source=path, strict=True),
    )  # fmt: skip
    if args.flops_convention:
        spec.design.flops_convention = args.flops_convention
    if args.trainer_cmd is not None:
        spec.trainer_cmd = check_trainer_cmd(args.trainer_cmd, "--trainer-cmd", spec.design)
    if args.logger:
        spec.train = {**spec.train, "loggers": list(dict.fromkeys(args.logger))}
    warn_loggers_unread(spec.trainer_cmd, spec.train.get("loggers"))
    if args.print_config:
        from scalinglab.config import dumps_toml
        from scalinglab.sweep.spec import spec_dict

        print(dumps_toml(spec_dict(spec)), end="")
        return 0
    flag = args.trainer_cmd is not None
    check_program(spec.trainer_cmd, "--trainer-cmd" if flag else f"{path}: trainer_cmd")
    if args.out:  # a file or a study's folder: refused alike by a dry run, before its plan
        driver.check_out(args.out)
    cfg = executor_config(args)
    threads = cfg.threads_per_run
    if args.dry_run:
        return _dry_run(spec, cfg.workers, threads, args.json, args.out)
    if not args.out:
        raise ConfigError("--out DIR is required (the sweep folder)")
    out = Path(args.out)
    executor = make_executor(cfg, out)  # its refusals come first, before the plan's
    ctx, runs = driver.make_plan(spec)
    _warn_unplanned(out, runs, spec)
    if not getattr(spec.design, "recentre", False):  # re-centred: the driver warns of each
        if spec.kind == "isoflop":  # budget as it plans it, on the centre measured before
            _warn_thin(runs)
        _warn_moved(ctx)
    t0 = time.monotonic()
    view = LiveView() if is_terminal() else LineView()
    try:
        with sigterm_interrupts():
            outcomes = driver.run_sweep(
                spec, out, executor, threads, cfg.retries, listener=view, command=spec.trainer_cmd
            )
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM: the executor has stopped its runs
        on_slurm = cfg.executor == "submitit" and cfg.submitit_cluster != "local"
        flight = (
            "the jobs already submitted to SLURM go on (scancel ends them)" if on_slurm
            else "the runs in flight were stopped, each with a checkpoint where it had trained "
            "(one still starting had none to save)"
        )  # fmt: skip
        how, code = ("terminated", 143) if terminated(exc) else ("interrupted", 130)
        print(
            f"error: {how}: {flight}, queued runs did not start; "
            f"rerun the same command to resume the sweep in {out}",
            file=sys.stderr,
        )
        return code
    view.close()
    return _summary(out, outcomes, time.monotonic() - t0, args.json)


def _key_values(items: list[str]) -> dict:
    import tomllib

    from scalinglab.errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--submitit-param {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


def _summary(out: Path, outcomes: list[dict], wall: float, as_json: bool = False) -> int:
    from scalinglab.sweep.design import STABLE_DIR
    from scalinglab.sweep.table import format_table, run_row

    # the table of the fitted runs, as `scalinglab runs` gives it: a WSD design's stable
    # runs (out/stable/runs) are counted below but are not rows
    fitted = [o for o in outcomes if not (out / STABLE_DIR / "runs" / o["name"]).is_dir()]
    rows = [run_row(out / "runs" / o["name"]) for o in fitted]
    for o, row in zip(fitted, rows, strict=True):
        if o["status"] == "blocked":  # never written: its seed run did not complete
            row["status"] = "blocked"
    rows.sort(key=lambda r: (r.get("budget") or 0, str(r["arch"]), r.get("params") or 0))
    if as_json:
        print_rows(rows)
    else:
        print(format_table(rows))
    by = {}
    for o in outcomes:
        by[o["status"]] = by.get(o["status"], 0) + 1
    # blocked runs are skipped too, but not done: they are counted as `blocked` above
    skipped = sum(1 for o in outcomes if o.get("skipped") and o["status"] != "blocked")
    parts = ", ".join(f"{n} {s}" for s, n in sorted(by.items()))
    print(
        f"sweep finished in {wall:.1f} s: {parts} ({skipped} already done, skipped); "
        f"table: scalinglab runs {out}",
        file=sys.stderr,
    )
    return 0 if set(by) <= {"completed", "diverged"} else 1


def _warn_thin(runs) -> None:
    """A warning line on stderr per IsoFLOP budget planned with too few distinct sizes."""
    from scalinglab.sweep.design import thin_budgets

    for line in thin_budgets(runs):
        print(f"warning: {line}", file=sys.stderr)


def _warn_moved(ctx, centres: dict | None = None) -> None:
    """A warning line on stderr per target size the [shape] grid moved far or merged
    (an IsoFLOP budget's on its centre in `centres`, by default the spec's)."""
    from scalinglab.sweep.design import moved_targets

    for line in moved_targets(ctx, centres):
        print(f"warning: {line}", file=sys.stderr)


def _warn_unplanned(out: Path | str | None, runs, spec) -> None:
    """A warning line when OUT holds run folders this spec does not plan: an edited spec
    makes new folders beside the old ones, and `scalinglab runs OUT` lists both, so a fit
    of that table mixes the two specs' runs. (A re-centred design plans its later
    budgets as it runs: not checked.)"""
    from scalinglab.sweep.design import STABLE_DIR

    if out is None or getattr(spec.design, "recentre", False):
        return
    names = {r.name for r in runs}
    others = sorted(
        p.name
        for sub in ("runs", f"{STABLE_DIR}/runs")
        for p in (Path(out) / sub).glob("*")
        if p.is_dir() and p.name not in names
    )
    if others:
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        print(
            f"warning: {out} holds {len(others)} run folder(s) this spec does not plan "
            f"({others[0]}{more}: an earlier or edited spec's); `scalinglab runs {out}` lists "
            "them beside this spec's runs, and a fit of that table mixes the two: give "
            "another --out to keep this spec's runs apart",
            file=sys.stderr,
        )


def _dry_run(spec, workers: int, threads: int, as_json: bool = False, out=None) -> int:
    from scalinglab.sweep import driver
    from scalinglab.sweep.estimate import (
        MAX_TIMED_BYTES,
        START_SECONDS,
        busy_note,
        estimate_seconds,
        load_now,
        untimed,
    )
    from scalinglab.sweep.table import format_table

    load = load_now()  # before the steps measured here add to it
    ctx, runs, known, centres = driver.known_plan(spec, out)
    done = _finished_in(out, runs)
    todo = [r for r in runs if r.name not in done]
    est = estimate_seconds(todo, threads)
    rows = []
    for r in runs:
        d = r.describe()
        rows.append(
            {
                "name": r.name,
                **{k: d[k] for k in ("n_layer", "n_embd", "n_head", "params", "tokens", "steps")},
                "flops": r.flops,
                "tok/param": r.tokens / r.counts.params,
                "lr": r.lr,
                "warmup": d["warmup"],
                "est_s": est.get(r.name),
            }
        )
    # trained: a branch seeded from a stable run's checkpoint trains from there on
    total_c = sum(r.flops * (r.steps - (r.seed.step if r.seed else 0)) / r.steps for r in runs)
    total_s = sum(est.values())
    if as_json:
        print_rows(rows)
    else:
        print(format_table(rows, list(rows[0])))
    say = (lambda m: print(m, file=sys.stderr)) if as_json else print
    big = untimed(todo)
    state = f"training state over {MAX_TIMED_BYTES / 2**30:g} GiB at 16 bytes a parameter"
    if done:  # a rerun into OUT skips them: only the rest is run, and timed
        left = sum(r.flops * (r.steps - (r.seed.step if r.seed else 0)) / r.steps for r in todo)
        what = f"{len(todo)} to run ({left:.3g} FLOPs)" if todo else "nothing left to run"
        remains = f"{len(done)} already finished in {out}, {what}; "
    else:
        remains = ""
    if not todo:
        when = "no time estimate needed"
    elif not est:
        when = (
            f"no time estimate: the smallest model ({min(r.counts.params for r in big):,} "
            f"parameters) is too large to time a step of here ({state})"
        )
    else:
        when = (
            f"estimated {total_s:.0f} s of run time, about "
            f"{total_s / min(workers, len(todo)):.0f} s with {workers} worker(s) "
            f"at {threads} thread(s) each (measured step time + {START_SECONDS:.0f} s start per run"
            + (
                f"; the {len(big)} run(s) of {min(r.counts.params for r in big):,} parameters or "
                f"more extrapolated from smaller shapes, not timed: {state}"
                if big
                else ""
            )
            + ")"
        )
    say(
        f"{len(runs)} runs, total compute trained {total_c:.3g} FLOPs "
        f"({spec.design.flops_convention} convention); {remains}{when}"
        + (busy_note(threads, load) if est else "")
    )
    if spec.kind == "isoflop":  # as the sweep itself: a grid's budgets are no IsoFLOPs
        _warn_thin(runs)
    _warn_unplanned(out, runs, spec)
    _warn_moved(ctx, centres)  # a re-centred budget known from OUT on its measured centre
    budgets = getattr(spec.design, "budgets", [])
    if getattr(spec.design, "recentre", False) and known < len(budgets):
        after = (
            f"once the runs of budget {budgets[known - 1]:.3g} have ended in {out}"
            if out
            else "when the sweep runs"
        )
        say(
            f"recentre = true: the budgets from {budgets[known]:.3g} on are re-centred on "
            f"the optimum measured at the budget before {after}; shown here at the spec's centre"
        )
    return 0


def _finished_in(out: Path | str | None, runs) -> set[str]:
    """The names of the planned runs whose folder in the sweep folder `out` holds a final
    result (finished, diverged, ...): a sweep into `out` skips them."""
    from scalinglab import runfolder
    from scalinglab.sweep.design import STABLE_DIR

    if out is None:
        return set()
    seeds = {r.seed.run for r in runs if r.seed}
    done = set()
    for r in runs:
        folder = Path(out) / (STABLE_DIR if r.name in seeds else "") / "runs" / r.name
        if runfolder.is_finished(folder):
            done.add(r.name)
    return done


def finished_line(result: dict, status: str) -> str:
    """`loss 2.4447` of a finished run's result.json; of a failed one, why it failed (its
    `error`, one line), so that a failure is read where it is shown."""
    loss = result.get("val_loss")
    text = (
        f"loss {loss:.4f}"
        if isinstance(loss, int | float) and not isinstance(loss, bool)
        else "loss -"
    )
    if status == "failed" and result.get("error"):
        why = " ".join(str(result["error"]).split())
        text += f": {why if len(why) <= 300 else why[:297] + '...'}"
    return text


class LineView:
    """Not a terminal: one line per finished run."""

    def __init__(self):
        self.n, self.progress = 0, None

    def __call__(self, event, progress, outcome=None):
        if event not in ("finished", "skipped"):
            return
        from scalinglab.runfolder import read_result

        if progress is not self.progress:  # a stage of its own (WSD's branches): [1/k] again,
            self.n, self.progress = 0, progress  # not [5/4] past the trunks' total
        self.n += 1
        r = read_result(progress.root / outcome["name"]) or {}
        done = event == "skipped" or outcome.get("skipped")  # or trained by another sweep
        extra = "already done" if done else f"{r.get('wall_seconds') or 0:.1f} s"
        print(
            f"[{self.n}/{len(progress.runs)}] {outcome['name']} {outcome['status']} "
            f"{finished_line(r, outcome['status'])} ({extra})",
            file=sys.stderr,
            flush=True,
        )

    def close(self):
        pass


class LiveView:
    """A terminal: a table of the runs, redrawn in place about once a second."""

    def __init__(self):
        self.lines = 0
        self.last = 0.0

    def __call__(self, event, progress, outcome=None):
        now = time.monotonic()
        if event == "tick" and now - self.last < 1.0:
            return
        self.last = now
        rows = progress.rows()
        c = progress.counts()
        eta = progress.eta_seconds(rows)
        head = (
            f"done {c['done']}  running {c['running']}  queued {c['queued']}  "
            f"elapsed {progress.elapsed:.0f} s  ETA {'-' if eta is None else f'{eta:.0f} s'}"
        )
        body = []
        for r in rows:
            if r["state"] == "queued":
                continue
            pct = f"{100 * r.get('done', 0):.0f}%"
            tl, vl = r.get("train_loss"), r.get("val_loss")
            body.append(
                f"  {r['name']:<40} {r['state']:<10} {pct:>4}  "
                f"train {'-' if tl is None else f'{tl:.4f}'}  val {'-' if vl is None else f'{vl:.4f}'}"
            )
        text = [head, *body[-30:]]
        if self.lines:
            sys.stderr.write(f"\x1b[{self.lines}F\x1b[J")
        sys.stderr.write("\n".join(text) + "\n")
        sys.stderr.flush()
        self.lines = len(text)

    def close(self):
        pass
