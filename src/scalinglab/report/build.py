"""`build_report(DIR)`: fit, plot and write DIR/report.html, DIR/summary.json and the PNGs.

It reads only run folders and the study's files, so it can be rerun at any time
(while a sweep is going, after a crash): fits are seeded, and the same runs give
the same report.
"""

import dataclasses
import logging
import os
import time
from pathlib import Path

from scalinglab.errors import ConfigError, DataError, FitError
from scalinglab.fsio import atomic_write_json, atomic_write_text, follow_umask
from scalinglab.plan import analysis as an
from scalinglab.report import collect as col
from scalinglab.report import figures, sections, taskfig
from scalinglab.report.html import page

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
DEFAULT_FACTORS = (10.0, 100.0, 1000.0)


def _budget(r: dict) -> float | None:
    """A run's C: its sweep's budget, else 6ND; None for a run not yet measured."""
    if b := r.get("budget") or r.get("flops_6nd"):
        return float(b)
    if r.get("params") is None or r.get("tokens") is None:
        return None
    return 6.0 * r["params"] * r["tokens"]


def backtest_result(c: col.Collected) -> dict | None:
    """The prediction (written before the run existed) against the measured loss."""
    pred = c.prediction
    if not pred:
        return None
    out = {
        k: pred.get(k)
        for k in ("arch", "flops", "params", "tokens", "predictor", "predicted_loss",
                  "fit_interval", "noise_interval", "interval", "ci_level",
                  "seed_noise_rel_std",
                  "other_predictions", "run_name", "written_at", "shape", "extrapolation",
                  "fit_cost_ratio", "fit_flops", "largest_fit_flops", "unique_tokens",
                  "repeats_data", "epochs", "design", "n_kind", "law_params", "law_flops")
    }  # fmt: skip
    for k in ("n_kind", "law_params", "law_flops"):  # only where the fits count N otherwise
        if out[k] is None:
            del out[k]
    if out["epochs"] is None and out["unique_tokens"] and out["tokens"]:
        out["epochs"] = out["tokens"] / out["unique_tokens"]  # written only when data repeats
    rows = [r for r in c.by_role("backtest") if r["run_id"] == pred.get("run_name")]
    out["status"] = rows[0]["status"] if rows else "not run"
    actual = rows[0]["loss"] if rows and rows[0]["status"] == "completed" else None
    out["actual_loss"] = actual
    if actual is None:
        out.update(rel_error=None, signed_rel_error=None, in_interval=None, in_fit_interval=None)
        return out
    p = pred["predicted_loss"]
    out["rel_error"] = abs(p - actual) / actual
    others = {}
    for k, o in (pred.get("other_predictions") or {}).items():
        if o.get("predicted_loss") is not None:  # also written before the run: score it too
            o = {**o, "rel_error": abs(o["predicted_loss"] - actual) / actual}
        others[k] = o
    out["other_predictions"] = others
    out["signed_rel_error"] = (p - actual) / actual
    lo, hi = pred.get("interval") or (p, p)
    out["in_interval"] = bool(lo <= actual <= hi)
    fi = pred.get("fit_interval")
    out["in_fit_interval"] = bool(fi[0] <= actual <= fi[1]) if fi else None
    if pred.get("tasks"):  # the task accuracies, predicted before the run too
        out["tasks"] = measured_tasks(pred["tasks"], rows[0])
    out["params_run"] = rows[0][pred.get("n_kind") or "params"]  # as the fits count N
    out["tokens_run"] = rows[0]["tokens"]
    run_dir = Path(rows[0]["dir"])
    # The run folder's sweep.json is written once, when the folder is made: it must be
    # younger than the prediction.
    created = (
        (run_dir / "sweep.json").stat().st_mtime if (run_dir / "sweep.json").exists() else None
    )
    out["prediction_mtime"] = pred.get("mtime")
    out["run_folder_mtime"] = created
    return out


# what a task's prediction carries into summary.json beside the measurement
CARRIED = ("chance", "n_items", "se", "scatter", "fit_loss_range", "loss_beyond", "note")


def measured_tasks(pred_tasks: dict, row: dict | None) -> dict:
    """summary.json's backtest.tasks: {task: {predicted, measured, interval, ...}}, from
    prediction.json's tasks (study/tasks.py) and the backtest run's row of the runs table."""
    out = {}
    for name, p in (pred_tasks or {}).items():
        m = None if row is None or "metric" not in p else row.get(f"{name}.{p['metric']}")
        if "predicted" not in p:  # at chance (measured, not predicted), or no fit
            out[name] = {**p, "measured": m}
            continue
        lo, hi = p["interval"]
        out[name] = {
            "metric": p["metric"],
            "predicted": p["predicted"],
            "measured": m,
            "interval": [lo, hi],
            "error_points": None if m is None else 100 * (p["predicted"] - m),
            "in_interval": None if m is None else bool(lo <= m <= hi),
            "params": p.get("params"),
            **{k: p[k] for k in CARRIED if k in p},
        }
    return out


def _plan(
    fits: dict, main: str, largest: float, factors, predictor: str, unique: int | None
) -> list[dict]:
    """The plan's rows; each with `unique_tokens` and `epochs` (D_opt over them) where the
    runs' training tokens are known."""
    try:
        rows = an.plan_rows(fits[main], [f * largest for f in factors], predictor)
    except FitError as exc:
        log.warning("no plan: %s", exc)
        return []
    if unique:
        for r in rows:
            r.update(unique_tokens=unique, epochs=r["tokens"] / unique)
    return rows


def training_tokens(rows: list[dict], pred: dict | None) -> int | None:
    """The unique training tokens the runs had (their shards' train split): tokens over
    epochs of each completed run, when they all agree (one corpus), else the
    prediction's; None where unknown or the runs had different corpora."""
    sizes = {
        round(r["tokens"] / r["epochs"])
        for r in an.completed(rows)
        if isinstance(r.get("epochs"), int | float) and r["epochs"] > 0
    }
    if len(sizes) == 1:
        return sizes.pop()
    u = (pred or {}).get("unique_tokens")
    return u if not sizes and isinstance(u, int) and u > 0 else None


def repeats_note(plan: list[dict]) -> str | None:
    """A line naming the plan's budgets whose D_opt is more than one pass over the runs'
    training tokens: the laws behind the plan assume fresh tokens, so a loss there is
    optimistic."""
    over = [r for r in plan if r.get("epochs", 0) > 1]
    if not over:
        return None
    what = ", ".join(f"C={r['flops']:.3g} ({r['epochs']:.2f} epochs)" for r in over)
    return (
        f"plan: D_opt is more than the runs' {over[0]['unique_tokens']:,} training tokens at "
        f"{what}: its loss assumes fresh tokens and is optimistic where they repeat; plan "
        "those budgets with more data, or with a data-constrained fit (fit --law "
        "data-constrained, plan --unique-tokens)"
    )


def _figures(out: Path, c, fits, plan, bt) -> list[dict]:
    """Draw every figure the data supports; a failing figure is reported, not fatal."""
    archs = c.archs
    curve_rows = c.by_role("sweep", "backtest")
    curves = {r["run_id"]: col.read_curve(r["dir"]) for r in curve_rows}
    budgets = [b for r in c.by_role("sweep") if (b := _budget(r)) is not None]
    c_max = max([p["flops"] for p in plan] or budgets or [None])
    jobs = [
        ("loss_curves", "loss curves", lambda p: figures.loss_curves(p, archs, curve_rows, curves))
    ]
    if any(f.isoflop is not None for f in fits.values()):
        jobs.append(("isoflop", "IsoFLOP profiles", lambda p: figures.isoflop_profiles(p, fits)))
    for arch, f in fits.items():
        if f.frontier is not None:
            jobs.append((f"frontier_{arch}", f"{figures.name(arch)} frontier",
                         lambda p, a=arch: figures.frontier(p, fits, a, c_max, bt)))  # fmt: skip
    if any(f.isoflop is not None for f in fits.values()):
        jobs.append(
            ("allocation", "N_opt and D_opt", lambda p: figures.allocation(p, fits, c_max, bt))
        )
    if sum(f.frontier is not None for f in fits.values()) >= 2:
        jobs.append(
            ("architectures", "architectures", lambda p: figures.arch_compare(p, fits, c_max))
        )
    if any(f.isoflop or f.chinchilla or f.frontier for f in fits.values()):
        jobs.append(("residuals", "residuals", lambda p: figures.residuals(p, fits)))
    if bt and bt.get("tasks"):
        jobs.append(("tasks", "tasks", lambda p: taskfig.task_metrics(p, c.rows, fits, bt)))
    done = []
    for stem, title, draw in jobs:
        path = out / f"{stem}.png"
        try:
            caption = draw(path)
        except Exception as exc:  # a figure must not cost the whole report
            log.warning("figure %s failed: %s: %s", stem, type(exc).__name__, exc)
            done.append({"name": stem, "title": title, "error": f"{type(exc).__name__}: {exc}"})
            continue
        done.append({"name": stem, "title": title, "file": path.name, "caption": caption})
    return done


def build_report(
    root: str | Path,
    bootstrap: int | None = None,
    out: str | Path | None = None,
    arch: str | None = None,
) -> dict:
    """Write DIR/report.html, DIR/summary.json and DIR/*.png (into `out` instead when
    given); return the summary. `arch`: the main architecture, whose plan the report
    makes (default: gpt where the runs have it, else the first)."""
    t0 = time.perf_counter()
    root = Path(root)
    out = Path(out) if out is not None else root
    c = col.collect(root)
    meta = c.study
    fs, kind = an.fit_settings(meta.get("fit", {}), f"{root / col.STUDY_JSON} [fit]")
    if bootstrap is not None:
        fs = dataclasses.replace(fs, bootstrap=bootstrap)
    predictor = meta.get("predictor", "chinchilla")
    factors = meta.get("plan_factors", list(DEFAULT_FACTORS))
    fits = {
        a: an.fit_arch(a, [r for r in c.by_role("sweep") if r["arch"] == a], fs, kind)
        for a in c.archs
    }
    if not fits:  # a study whose sweep folders are gone: an IndexError traceback
        raise DataError(
            f"{root}: no sweep run to fit: the study's sweeps hold no run folder (moved or "
            "deleted?); the seed repeats and the backtest alone make no scaling law"
        )
    if arch is not None and arch not in fits:
        raise ConfigError(
            f"--arch {arch}: {root} has no sweep run of it (its architectures: "
            f"{', '.join(sorted(fits))})"
        )
    main = arch or ("gpt" if "gpt" in fits else c.archs[0])
    done_rows = [r for r in an.completed(c.by_role("sweep")) if r["arch"] == main]
    done = [b for r in done_rows if (b := _budget(r)) is not None]
    if not done:
        raise DataError(f"{root}: {_none_completed(main, c.by_role('sweep'))}")
    largest = max(done)
    if kind != "params" and fits[main].frontier_points:  # the plan's C is the fits' C
        largest = max(p["C"] for p in fits[main].frontier_points)
    plan = _plan(fits, main, largest, factors, predictor, training_tokens(done_rows, c.prediction))
    noise = an.seed_noise(c.by_role("sweep", "seed"))
    bt = backtest_result(c)
    out.mkdir(parents=True, exist_ok=True)
    figs = _figures(out, c, fits, plan, bt)
    summary = {
        "format_version": FORMAT_VERSION,
        "kind": "scalinglab.study_summary",
        "name": meta.get("name") or root.resolve().name,
        "corpus": meta.get("corpus"),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "runs": (counts := _counts(c.rows)),
        "warnings": [*c.warnings, *filter(None, [unfinished_note(counts), repeats_note(plan)])],
        "fit_settings": dataclasses.asdict(fs),
        "fits": {
            a: {
                "isoflop": an.compact(f.isoflop),
                "chinchilla": an.compact(f.chinchilla),
                "power-c": an.compact(f.frontier),
                "frontier_points": f.frontier_points,
                "not_fitted": f.errors,
            }
            for a, f in fits.items()
        },
        "plan": {"arch": main, "largest_budget": largest, "factors": factors, "rows": plan}
        | ({"n_kind": kind} if kind != "params" else {}),
        "backtest": bt,
        "leave_larger_out": an.leave_larger_out(fits[main], fs),
        "seed_noise": noise,
        "wall_seconds": meta.get("wall_seconds"),
        "figures": figs,
    }
    html_text = page(
        f"Scaling study: {summary['name']}",
        _subtitle(summary, c),
        _with_tasks(sections.all_sections(summary, c, fits, figs, out), summary["backtest"]),
    )
    atomic_write_text(out / "report.html", html_text)
    follow_umask(out / "report.html")  # as any file the user writes
    summary["report_seconds"] = round(time.perf_counter() - t0, 2)
    atomic_write_json(out / "summary.json", an.json_safe(summary))
    follow_umask(out / "summary.json")
    return summary


ENDED = ("completed", "diverged", "failed")
"""Statuses of a run that has ended: nothing trains it until a rerun of the sweep or
study (which starts a failed run again)."""


def _none_completed(arch: str, rows: list[dict]) -> str:
    """Why there is nothing to fit: `no completed gpt run: all 6 diverged` where every run
    has ended (the message said "yet", as if runs were still going), else `no completed
    gpt run yet (pending 4, diverged 2)`."""
    counts: dict[str, int] = {}
    for r in rows:
        if r.get("arch") == arch:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
    what = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
    if counts and all(k in ENDED for k in counts):
        n = sum(counts.values())
        one = next(iter(counts))
        ended = (f"its one run {one}" if n == 1 else f"all {n} {one}" if len(counts) == 1
                 else f"all {n} ended ({what})")  # fmt: skip
        return f"no completed {arch} run: {ended}; nothing to fit or report"
    counted = f" ({what})" if what else ""
    return f"no completed {arch} run yet{counted}: nothing to fit or report"


def _counts(rows: list[dict]) -> dict:
    out: dict = {}
    for r in rows:
        key = f"{r['role']}/{r.get('arch')}"
        out.setdefault(key, {})
        out[key][r["status"]] = out[key].get(r["status"], 0) + 1
    return out


def unfinished_note(counts: dict) -> str | None:
    """`4 of 6 runs are not finished (pending 4): ...` where the report is of part of the
    runs (a study or sweep still going, or stopped), else None. `counts` is summary.json's
    runs: {role/arch: {status: n}}."""
    total: dict[str, int] = {}
    for by_status in counts.values():
        for status, n in by_status.items():
            total[status] = total.get(status, 0) + n
    left = {k: n for k, n in total.items() if k not in ("completed", "diverged")}
    if not left:
        return None
    what = ", ".join(f"{k} {n}" for k, n in sorted(left.items()))
    return (
        f"{sum(left.values())} of {sum(total.values())} runs are not finished ({what}): the "
        "report is of the finished ones; rerun the sweep or study to finish the others"
    )


def _subtitle(s: dict, c) -> str:
    n = len(c.rows)
    # a sweep folder's summary names no corpus: its folder is no corpus either
    where = f"corpus: {s['corpus']}" if s["corpus"] else f"folder: {os.fspath(c.root)}"
    return f"{n} runs · {where} · report generated {s['generated']}"


def _with_tasks(secs: list[str], bt: dict | None) -> list[str]:
    """The sections, with the backtest's task table after the backtest's own."""
    return [*secs[:2], taskfig.task_section(bt), *secs[2:]]
