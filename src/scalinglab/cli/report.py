"""`scalinglab report DIR [--out DIR2] [--json]`: figures, report.html and summary.json of a
study or sweep folder."""

ORDER = 90


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write DIR/report.html (self-contained), DIR/summary.json and the PNGs",
        description=(
            "Fit the laws to the runs of a study or sweep folder and write DIR/report.html "
            "(one self-contained file, figures embedded), DIR/summary.json and the figures "
            "as PNGs beside them. Reads only the run folders: safe to rerun at any time."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="a study folder, a sweep folder or a folder of runs")
    p.add_argument(
        "--out", "-o", metavar="DIR",
        help="write report.html, summary.json and the PNGs here (default: DIR itself)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print summary.json to stdout")
    p.add_argument(
        "--arch", metavar="NAME",
        help="the main architecture, whose plan the report makes (default: gpt where the "
        "runs have it, else the first)",
    )  # fmt: skip
    p.add_argument(
        "--bootstrap", type=int, default=None, metavar="K",
        help="bootstrap resamples of every fit (default: the study's setting, else 1000)",
    )  # fmt: skip
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from scalinglab.errors import ConfigError
    from scalinglab.laws.settings import check_bootstrap
    from scalinglab.report import build_report

    if args.bootstrap is not None:
        check_bootstrap(args.bootstrap)
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        # before the fits: it failed after them with 'FILE: File exists', naming no flag
        raise ConfigError(f"--out {args.out} is a file, not a folder: give a folder")
    if args.out is not None:
        check_out_not_among_runs(Path(args.out), Path(args.dir))
    s = build_report(args.dir, bootstrap=args.bootstrap, out=args.out, arch=args.arch)
    print_warnings(s)
    if args.json:
        from scalinglab.cli._util import print_rows

        print_rows(s)
    else:
        print(format_summary(s, args.out or args.dir))
    return 0


def check_out_not_among_runs(out, root) -> None:
    """Refuse a report folder inside a run folder of DIR (its checkpoint folder included:
    keep-last pruning deletes a step folder with what it holds) or in a shards folder:
    report.html, summary.json and the PNGs were written among a run's or the shards' files."""
    from pathlib import Path

    from scalinglab import runfolder
    from scalinglab.data.shards import is_shards_dir
    from scalinglab.errors import ConfigError

    given, out = out, out.absolute()
    for folder in (out, *out.parents):
        if is_shards_dir(folder):
            raise ConfigError(f"--out {given} lies in the shards folder {folder}; give the "
                              "report a folder of its own")  # fmt: skip
    folder = runfolder.run_folder_of(out, root)
    if folder is not None:
        raise ConfigError(f"--out {given} lies in the run folder {folder}; give the "
                          "report a folder of its own")  # fmt: skip
    try:  # a new folder among DIR's run folders: the study's rerun found it unplanned
        inside = out.relative_to(Path(root).absolute()).parts
    except ValueError:
        inside = ()
    if "runs" in inside:
        raise ConfigError(f"--out {given} lies among the run folders of {root}; give the "
                          "report a folder of its own")  # fmt: skip
    if out != Path(root).absolute() and (marks := [m for m in ("study.json", "sweep.toml")
                                                   if (out / m).is_file()]):  # fmt: skip
        raise ConfigError(
            f"--out {given} is the folder of another study or sweep (it holds {marks[0]}): its "
            "own report.html and summary.json would be replaced; give the report a folder of "
            "its own"
        )


def print_warnings(s: dict) -> None:
    """`warning: ...` on stderr for each thing the report leaves out (summary.json's
    warnings: a folder study.json lists and is not there, a run counted as diverged,
    runs not finished)."""
    import sys

    for w in s.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)


def left_out(arch: str, f: dict, runs: dict) -> list[str]:
    """Why an architecture's line shows no frontier (one budget, a grid, too few runs: the
    laws not fitted and why) and the sweep runs that diverged: the line said `no fit`, or
    showed an N-D law fitted on one budget, with no word of either."""
    out = []
    if not f.get("isoflop"):
        why = f.get("not_fitted") or {}
        out += [
            f"  {law}: not fitted: {why[law]}" for law in ("isoflop", "chinchilla") if law in why
        ]
    by_status = runs.get(f"sweep/{arch}", {})
    if n := by_status.get("diverged"):
        total = sum(by_status.values())
        out.append(f"  {n} of {total} runs diverged: left out of the fits")
    return out


def format_summary(s: dict, where) -> str:
    """The few lines a terminal shows: exponents, the backtest, the plan, the files."""
    from scalinglab.report.html import apart, fixed

    lines = []
    for arch, f in s["fits"].items():
        pc, iso = f.get("power-c"), f.get("isoflop")
        parts = []
        if pc:
            ci = pc["ci"].get("alpha")
            parts.append(
                f"frontier L ∝ C^-{pc['params']['alpha']:.3f}"
                + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
            )
        if iso:
            ci = iso["ci"].get("a")
            parts.append(
                f"N_opt ∝ C^{iso['params']['a']:.2f}"
                + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
            )
        ch = f.get("chinchilla")
        if ch and not parts:  # a WSD ladder has no frontier: its N-D law is the fit to show
            parts.append(
                "L = E + A/N^α + B/D^β: "
                + ", ".join(f"{k} {ch['params'][k]:.3f}" for k in ("alpha", "beta", "E"))
            )
        lines.append(f"{arch}: " + ("; ".join(parts) or "no fit"))
        lines += left_out(arch, f, s.get("runs", {}))
        # what changes the frontier (a skipped budget, a line through 2 minima): shown
        # here, not only in the report
        lines += [f"  warning: {w}" for w in (iso or {}).get("warnings", [])]
        # the frontier's own (C spans under a decade): the plan extrapolates along it
        lines += [f"  warning: frontier: {w}" for w in (pc or {}).get("warnings", [])]
        if ch and not (pc or iso):  # the N-D law shown: its warnings (N and D collinear)
            lines += [f"  warning: {w}" for w in ch.get("warnings", [])]
    bt = s.get("backtest")
    if bt and bt.get("actual_loss") is not None:
        # decimals enough to show which side of an end the measurement fell (an audit)
        pred, lo, hi, meas = apart(
            [bt["predicted_loss"], *bt["interval"], bt["actual_loss"]], 4, fixed
        )
        lines.append(
            f"backtest at C={bt['flops']:.3g}: predicted {pred} "
            f"[{lo}, {hi}], measured {meas}: error "
            f"{100 * bt['rel_error']:.2f}%, "
            + ("inside" if bt["in_interval"] else "OUTSIDE")
            + f" the interval ({bt['predictor']})"
        )
        if bt.get("extrapolation") is not None:
            lines.append(
                f"  extrapolation {bt['extrapolation']:.1f}x (its C / the largest fitted run's), "
                f"fit_cost_ratio {bt['fit_cost_ratio']:.3f} (the fits' FLOPs / its C), "
                f"rel_error {100 * bt['rel_error']:.2f}%, in_interval "
                + ("yes" if bt["in_interval"] else "no")
            )
        for k, o in (bt.get("other_predictions") or {}).items():
            if o.get("rel_error") is not None:
                lines.append(
                    f"  also predicted before training by {k}: {o['predicted_loss']:.4f}, "
                    f"error {100 * o['rel_error']:.2f}%"
                )
    if s.get("seed_noise"):
        lines.append(
            f"seed noise: {100 * s['seed_noise']['rel_std']:.2f}% (relative std of the loss)"
        )
    if s["plan"]["rows"]:  # which architecture and law: a sweep of two plans one of them
        how = [f"{s['plan'].get('arch')}, the main architecture"]
        laws = sorted({str(r["predictor"]) for r in s["plan"]["rows"] if r.get("predictor")})
        if laws:
            how.append(f"by {', '.join(laws)}")
        if s["plan"].get("n_kind") == "params_nonembed":
            how.append("N without embeddings, C = 6·N·D with it, as the fits count them")
        lines.append(f"plan ({'; '.join(how)}):")
    for r in s["plan"]["rows"]:
        loss = "-" if r.get("loss") is None else f"{r['loss']:.4f}"
        lines.append(
            f"plan C={r['flops']:.3g}: N={r['params']:.3g} D={r['tokens']:.3g} "
            f"({r['tokens_per_param']:.0f} tokens/param) loss {loss}"
            + (f" ({r['epochs']:.2f} epochs of the data)" if r.get("epochs", 0) > 1 else "")
        )
    lines.append(f"report: {where}/report.html  summary: {where}/summary.json")
    return "\n".join(lines)
