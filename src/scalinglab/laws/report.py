"""The readable text report of a fit."""


def _fmt(x):
    return "-" if x is None else f"{x:.6g}"


def render_report(law) -> str:
    lines = [f"law: {law.law}    points: {law.n_points_}    objective: {_fmt(law.objective_)}"]
    level = law.settings["ci_level"]
    if law.ci_:
        lines.append(
            f"bootstrap: {law.settings['bootstrap']} resamples, seed {law.settings['seed']}"
        )
    head = f"{'parameter':<18}{'value':>14}{'stderr':>14}   {level:.0%} interval"
    lines += ["", head, "-" * len(head)]
    for k, v in {**law.params_, **law.derived_}.items():
        ci = law.ci_.get(k)
        ci_s = f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "-"
        dex = (getattr(law, "stderr_log10_", None) or {}).get(k)
        se = f"{dex:.3g} dex" if dex is not None else _fmt(law.stderr_.get(k))
        lines.append(f"{k:<18}{_fmt(v):>14}{se:>14}   {ci_s}")
    conv = law.conventions_
    lines += [
        "",
        "columns: "
        + ", ".join(
            f"{k}={conv[k]}"
            for k in ("run", "step", "lr", "N", "D", "C", "L", "budget")
            if k in conv
        ),
    ]
    if conv.get("filters"):
        lines.append("filters: " + "; ".join(conv["filters"]))
    bt = getattr(law, "backtest_", None)
    if bt and "runs_test" in bt:  # curve laws: whole runs held out
        lines += ["", f"held out: {'; '.join(bt['holdout'])} ({bt['runs_test']} runs)"]
        lines += [
            f"  {p['run']}: mean |rel. error| {p['mean_abs_rel_error']:.3%}, "
            f"max {p['max_abs_rel_error']:.3%}"
            for p in bt["per_run"]
        ]
        lines.append(
            f"  all {bt['n_test']} points: mean {bt['mean_abs_rel_error']:.3%}, "
            f"max {bt['max_abs_rel_error']:.3%}"
        )
    elif bt:
        lines += [
            "",
            f"backtest: fit on {bt['n_train']} cheaper runs, predicted {bt['n_test']} held out "
            f"(C > {bt['threshold']:.3g}): mean |rel. error| {bt['mean_abs_rel_error']:.3%}, "
            f"max {bt['max_abs_rel_error']:.3%}",
        ]
    if getattr(law, "stderr_log10_", None):
        lines.append("dex: the standard deviation of log10 of a scale coefficient")
    if law.warnings_:
        lines += ["", "warnings:"] + [f"  - {w}" for w in law.warnings_]
    return "\n".join(lines)
