"""The sections of report.html, from the summary (every cell escaped by html.table)."""

import os
from pathlib import Path

from scalinglab.plan.analysis import PUBLISHED
from scalinglab.report.figures import name
from scalinglab.report.html import apart, card, esc, figure, interval, num, table
from scalinglab.sweep.table import TASK_METRICS

NO_BOOTSTRAP = (
    "No bootstrap (--bootstrap 0): the fits have no intervals, and a new run's prediction "
    "interval is the runs' scatter about the fit alone, without the fit's own uncertainty: "
    "narrower than it should be."
)
"""Said where the intervals are shown when the fits had no resamples: the page said
'95% bootstrap percentile intervals (0 resamples)', and the plan's and the leave-larger-out
prediction intervals, the scatter alone, read as whole."""

NOISE_MULTIPLE = 3.0
"""The key-results card is green when the backtest is inside its interval and its error
is at most this many seed-noise standard deviations (one run is one draw)."""


def all_sections(s: dict, c, fits: dict, figs: list[dict], root: Path) -> list[str]:
    return [
        _key_results(s, fits),
        _backtest(s["backtest"]),
        _leave_larger_out(s.get("leave_larger_out"), s["plan"]["arch"], s["fit_settings"]),
        _figures(figs, root),
        _plan(s["plan"], s["fit_settings"]),
        _fits(s["fits"], s["fit_settings"]),
        _seed_noise(s["seed_noise"]),
        _runs(c.rows, s.get("warnings", [])),
        _notes(s, c, root),
    ]


def _key_results(s: dict, fits: dict) -> str:
    cards, level = [], s["fit_settings"]["ci_level"]
    bt = s["backtest"]
    if bt and bt.get("actual_loss") is not None:
        ok = bt["in_interval"]
        # green only where the error is also near the run-to-run noise: a wide interval
        # that holds a large error is no success
        noise = bt.get("seed_noise_rel_std")
        near = noise is None or bt["rel_error"] <= NOISE_MULTIPLE * noise
        far = "" if near else f"; the error is over {NOISE_MULTIPLE:g}× the seed noise"
        pred, iv, meas = _measured_apart(bt)
        cards.append(
            card(
                f"backtest at C = {num(bt['flops'], 3)} FLOPs",
                f"{100 * bt['rel_error']:.2f}% error",
                f"predicted {pred} {iv} before training, measured {meas}: "
                + ("inside" if ok else "outside")
                + " the interval"
                + far
                + _reach(bt),
                "ok" if ok and near else "bad",
            )
        )
    elif bt:
        cards.append(card("backtest", "not finished", f"run status: {bt['status']}"))
    for arch, f in s["fits"].items():
        pc = f.get("power-c")
        if pc:
            ci = pc["ci"].get("alpha")
            cards.append(
                card(
                    f"{name(arch)} frontier exponent α (L ∝ C^−α)",
                    num(pc["params"]["alpha"], 3),
                    f"{level:.0%} interval {interval(ci, 3)}" if ci else "no interval",
                )
            )
        elif ch := f.get("chinchilla"):  # no frontier (one budget, a grid): the N-D law
            cards.append(_nd_card(arch, ch))
    main = s["plan"]["arch"]
    iso = s["fits"].get(main, {}).get("isoflop")
    if iso:
        ref = ", ".join(f"{k.split(' ')[0]} {v}" for k, v in PUBLISHED.items())
        cards.append(
            card(
                f"{name(main)}: N_opt ∝ C^a",
                f"a = {num(iso['params']['a'], 3)}",
                f"{level:.0%} interval {interval(iso['ci'].get('a'), 3)}; published: {ref}",
            )
        )
    if s["seed_noise"]:
        sn = s["seed_noise"]
        cards.append(card("seed noise (relative std of the loss)",
                          f"{100 * sn['rel_std']:.2f}%", f"{sn['dof']} degree(s) of freedom"))  # fmt: skip
    if s.get("wall_seconds"):
        cards.append(card("wall time of the study", f"{s['wall_seconds'] / 60:.1f} min"))
    if not cards:  # nothing fitted: say so rather than leave the heading bare
        return (
            "<h2>Key results</h2><p>None: no law could be fitted to these runs (why: under "
            "Fitted laws).</p>"
        )
    return '<h2>Key results</h2><div class="cards">' + "".join(cards) + "</div>"


def _nd_card(arch: str, ch: dict) -> str:
    """The Chinchilla fit where there is no frontier: the terminal shows it, and the key
    results were empty (an audit), or, of a single budget, would hide that its N and D
    exponents cannot be separated."""
    p = ch["params"]
    warns = ch.get("warnings", [])
    return card(
        f"{name(arch)}: L = E + A/N^α + B/D^β (no frontier)",
        f"α {num(p['alpha'], 3)}, β {num(p['beta'], 3)}",
        f"E {num(p['E'], 3)}" + "".join(f"; warning: {w}" for w in warns),
        "bad" if warns else "",
    )


def _measured_apart(bt: dict) -> tuple[str, str, str]:
    """The prediction, its interval and the measured loss, with digits enough to show
    which side of an end of the interval the measurement fell."""
    iv = bt.get("interval")
    lo, hi = iv if iv and None not in iv else (None, None)
    pred, lo, hi, meas = apart([bt["predicted_loss"], lo, hi, bt.get("actual_loss")])
    return pred, interval(iv) if lo == "–" else f"[{lo}, {hi}]", meas


def _reach(bt: dict) -> str:
    """How far the backtest reaches and what its fits cost (studies since issue 22)."""
    if bt.get("extrapolation") is None:
        return ""
    return (f"; {bt['extrapolation']:.1f}× the largest fitted run's C, fitted on runs "
            f"costing {bt['fit_cost_ratio']:.2f}× its C")  # fmt: skip


def _repeats(bt: dict) -> str:
    """Whether the backtest run repeats its data, and which law predicted it: a study whose
    data-constrained fit failed predicts it with its predictor as if the data did not."""
    if bt.get("repeats_data") is None:
        return "–"
    epochs = num(bt.get("epochs"), 3)
    if not bt["repeats_data"]:
        return f"no ({epochs} epochs of {num(bt.get('unique_tokens'))} unique tokens)"
    if bt.get("predictor") == "data-constrained":
        return f"yes, {epochs} epochs: the data-constrained law predicts it"
    return f"yes, {epochs} epochs: predicted as if they did not (fresh tokens), so optimistic"


def _backtest(bt: dict | None) -> str:
    if not bt:
        return ""
    shape = bt.get("shape") or {}
    pred, iv, meas = _measured_apart(bt)
    rows = [
        ["run", bt.get("run_name")],
        ["architecture, shape", f"{name(bt['arch'])}, {shape.get('n_layer')} layers × "
                                f"{shape.get('n_embd')} wide"],
        ["compute C (FLOPs, 6·N·D)", num(bt["flops"])],
        ["parameters N", num(bt["params"])],
        *([["N without embeddings, as the fits count it", num(bt["law_params"])],
           ["C = 6·N·D with it, where the fits predicted", num(bt["law_flops"])]]
          if bt.get("law_flops") else []),
        ["tokens D", num(bt["tokens"])],
        ["predicted with", bt.get("predictor")],
        ["extrapolation: its C / the largest C of a fitted run", num(bt.get("extrapolation"))],
        ["fit cost ratio: the FLOPs of every run its fits used / its C",
         num(bt.get("fit_cost_ratio"))],
        ["its tokens repeat the training data", _repeats(bt)],
        ["prediction written at", bt.get("written_at")],
        ["predicted loss (nats/token)", pred],
        [f"fit interval ({bt.get('ci_level', 0.95):.0%}, bootstrap)", interval(bt.get("fit_interval"))],
        ["the frontier as its runs' seed noise moves it", interval(bt.get("noise_interval"))],
        ["seed noise added (relative std)", num(bt.get("seed_noise_rel_std"))],
        ["predictive interval", iv],
        ["measured loss (nats/token)", meas],
        ["relative error |pred − actual| / actual",
         "–" if bt.get("rel_error") is None else f"{100 * bt['rel_error']:.3f}%"],
        ["inside the predictive interval", num(bt.get("in_interval"))],
        ["inside the fit interval alone", num(bt.get("in_fit_interval"))],
    ]  # fmt: skip
    for k, p in (bt.get("other_predictions") or {}).items():
        if p.get("predicted_loss") is None:  # that law could not predict this run: say why
            rows.append([f"not predicted by {k}", p.get("error") or "–"])
            continue
        err = "" if p.get("rel_error") is None else f" ({100 * p['rel_error']:.2f}% error)"
        kind = "predictive" if p.get("prediction_interval") else "fit"  # named: the rows above
        iv = interval(p.get("prediction_interval") or p.get("fit_interval"))  # have both
        rows.append([f"also predicted (before training) by {k}",
                     f"{num(p.get('predicted_loss'))}, {kind} interval {iv}{err}"])  # fmt: skip
    return (
        "<h2>Backtest: predicted before training, then measured</h2>"
        "<p>The study fitted its laws on the sweep, wrote the prediction for a compute-optimal "
        "run at a larger budget to disk, and only then trained that run.</p>"
        + table(["", "value"], rows)
    )


def _distinct(values: list[float], digits: int = 3) -> dict[float, str]:
    """Each value written with the fewest digits (at least `digits`) that tell them apart:
    the runs of one IsoFLOP budget differ in C by a few parts in 10^4, and two thresholds
    among them both read 7.00e+11 at three digits."""
    return dict(zip(values, apart(values, digits), strict=True))


def _leave_larger_out(llo: dict | None, arch: str, fs: dict) -> str:
    if not llo:
        return ""
    out = [
        f"<h2>Leave-larger-out backtests ({esc(name(arch))}, chinchilla)</h2>"
        "<p>At each threshold the law is fitted on the runs at or below it and predicts the "
        "runs above it. <i>in 80% / in 95%</i>: the share of those runs inside the 80% and "
        "95% prediction intervals of a new run (docs/laws.md, what the intervals mean). "
        "<i>bias</i>: the mean of (predicted − measured) / measured. <i>all</i>: every "
        "prediction of every threshold, a run predicted from several counting once for each."
        + (f" {NO_BOOTSTRAP}" if not fs["bootstrap"] else "")
        + "</p>"
    ]
    for by, r in llo.items():
        if "error" in r:
            out.append(f'<p class="warn">by {esc(by)}: not backtested: {esc(r["error"])}</p>')
            continue
        rows = []
        label = _distinct([t["threshold"] for t in r["thresholds"]])
        for t in [*r["thresholds"], {**r["overall"], "threshold": None, "n_train": None}]:
            cov = t.get("coverage") or {}
            rows.append([
                "all" if t["threshold"] is None else label[t["threshold"]],
                num(t["n_train"]), num(t["n"]),
                f"{100 * t['mean_abs_rel_error']:.2f}%", f"{100 * t['max_abs_rel_error']:.2f}%",
                f"{100 * t['bias']:+.2f}%",
                "–" if "0.8" not in cov else f"{100 * cov['0.8']:.0f}%",
                "–" if "0.95" not in cov else f"{100 * cov['0.95']:.0f}%",
            ])  # fmt: skip
        head = [f"{by} above", "fitted", "predicted", "mean |error|", "max", "bias",
                "in 80%", "in 95%"]  # fmt: skip
        out.append(f"<h3>by {esc(by)}</h3>" + table(head, rows))
    return "".join(out)


def _figures(figs: list[dict], root: Path) -> str:
    out = ["<h2>Figures</h2>"]
    for f in figs:
        out.append(f"<h3>{esc(f['title'])}</h3>")
        if "error" in f:
            out.append(f'<p class="warn">this figure failed: {esc(f["error"])}</p>')
        else:
            out.append(figure(root / f["file"], f["caption"], f["title"]))
    return "".join(out)


def _plan(plan: dict, fs: dict) -> str:
    level = fs["ci_level"]
    rows = []
    for r in plan["rows"]:
        rows.append([
            f"{r['flops'] / plan['largest_budget']:g}×", num(r["flops"], 3),
            num(r["params"], 3), interval(r.get("params_ci"), 3),
            num(r["tokens"], 3), interval(r.get("tokens_ci"), 3),
            num(r["tokens_per_param"], 3), num(r.get("loss")), interval(r.get("loss_ci")),
            interval(r.get("loss_pi")),
            *([num(r["epochs"], 3)] if "epochs" in r else []),
        ])  # fmt: skip
    if not rows:
        return "<h2>Plan</h2><p>No plan: no fit gives a compute-optimal allocation.</p>"
    ci = f"{level:.0%} interval"
    kaplan = plan.get("n_kind") == "params_nonembed"  # N and C counted without embeddings
    head = ["budget", "C (6·N·D, N without embeddings)" if kaplan else "C (FLOPs)",
            "N_opt (without embeddings)" if kaplan else "N_opt", ci, "D_opt (tokens)", ci,
            "tokens/param", "predicted loss", ci, f"a new run: {level:.0%}"]  # fmt: skip
    first = plan["rows"][0]
    epochs = ""
    if "epochs" in first:  # a short head: the table fits the page, this column in view
        head.append("epochs")
        epochs = (f" <i>epochs</i>: D_opt over the runs' {first['unique_tokens']:,} training "
                  "tokens (over 1 they repeat, and the loss, from laws fitted on fresh "
                  "tokens, is optimistic).")  # fmt: skip
    return (
        f"<h2>Plan: the next budgets ({esc(name(plan['arch']))})</h2>"
        f"<p>Compute-optimal N and D from the <code>{esc(first['allocation'])}</code> fit, "
        f"the loss from <code>{esc(first.get('predictor', '–'))}</code>, at multiples of the "
        f"largest budget swept ({num(plan['largest_budget'], 3)} FLOPs"
        + (
            ", as 6·N·D at its optimum with N counted without embeddings, the fits' C"
            if kaplan
            else ""
        )
        + f").{epochs}"
        + (f" {NO_BOOTSTRAP}" if not fs["bootstrap"] else "")
        + "</p>"
        + table(head, rows)
    )


def _fits(fits: dict, fs: dict) -> str:
    intervals = (
        f"Intervals: {fs['ci_level']:.0%} bootstrap percentile intervals "
        f"({fs['bootstrap']} resamples, seed {fs['seed']})."
        if fs["bootstrap"]
        else NO_BOOTSTRAP
    )
    # said only where there is an IsoFLOP fit: not of one budget, nor of token budgets
    iso = ""
    if any(f.get("isoflop") for f in fits.values()):
        iso = " IsoFLOP optima: " + (
            "parabolas in log N sharing one curvature across budgets."
            if fs.get("curvature") == "shared"
            else "one parabola in log N per budget."
        )
    out = [f"<h2>Fitted laws</h2><p>{intervals}{iso}</p>"]
    for arch, f in fits.items():
        for law in ("isoflop", "chinchilla", "power-c"):
            d = f.get(law)
            if not d:
                why = f["not_fitted"].get(law)
                if why:
                    out.append(
                        f'<p class="warn">{esc(name(arch))} {esc(law)}: not fitted: {esc(why)}</p>'
                    )
                continue
            rows = []
            params = {**d["params"], **d.get("derived", {})}
            for k, v in params.items():
                if "@" in k:
                    continue
                rows.append([k, num(v), num(d["stderr"].get(k)), interval(d["ci"].get(k))])
            out.append(f"<h3>{esc(name(arch))}: {esc(law)} ({d['n_points']} points)</h3>")
            out.append(table(["parameter", "value", "std. error", "interval"], rows))
            for w in d.get("warnings", []):
                out.append(f'<p class="warn">warning: {esc(w)}</p>')
    return "".join(out)


def _seed_noise(sn: dict | None) -> str:
    if not sn:
        return "<h2>Seed noise</h2><p>No repeated runs: the seed noise was not measured.</p>"
    rows = [
        [name(g["arch"]), num(g["params"]), num(g["tokens"]), ", ".join(map(str, g["seeds"])),
         ", ".join(f"{x:.4f}" for x in g["losses"]), f"{100 * g['rel_std']:.3f}%"]
        for g in sn["groups"]
    ]  # fmt: skip
    return (
        f"<h2>Seed noise</h2><p>Runs identical but for their seed. Pooled relative standard "
        f"deviation of the final loss: <b>{100 * sn['rel_std']:.3f}%</b> ({sn['dof']} degree(s) "
        "of freedom). The backtest's predictive interval adds it to the fit interval, "
        "twice for a frontier: the fitted runs' noise moving the frontier, and the new "
        "run's own.</p>" + table(["arch", "N", "D", "seeds", "losses", "relative std"], rows)
    )


def _runs(rows: list[dict], warnings: list[str]) -> str:
    """The runs table, after summary.json's warnings: what the report leaves out (a run
    counted as diverged or without N or D, a folder study.json lists and is not there),
    which `report` prints and a reader of the page would otherwise not see."""
    tasks = task_columns(rows)
    body = []
    for r in sorted(rows, key=lambda r: (r["role"] != "sweep", str(r.get("arch")),
                                         r.get("budget") or 0, r.get("params") or 0)):  # fmt: skip
        n, d = r.get("params"), r.get("tokens")
        body.append([
            r["run_id"], r["role"], name(str(r.get("arch"))),
            f"{r.get('n_layer')}×{r.get('n_embd')}", num(n), num(d),
            num(r.get("flops_6nd"), 3), num(d / n if n and d else None, 3),
            num(r.get("epochs"), 3), _seed(r.get("seed")), num(r.get("loss")), num(r.get("bpb")),
            num(r.get("wall_seconds"), 3), r["status"], *(num(r.get(k), 3) for k in tasks),
        ])  # fmt: skip
    head = ["run", "role", "arch", "layers×width", "N", "D (tokens)", "C = 6ND", "D/N",
            "epochs", "seed", "loss", "bits/byte", "wall s", "status", *tasks]  # fmt: skip
    repeated = [r for r in rows if (r.get("epochs") or 0) > 1]
    note = (
        f"<p class=warn>{len(repeated)} run(s) trained on more tokens than the train split holds "
        f"(up to {max(r['epochs'] for r in repeated):.2f} epochs): repeated tokens are worth "
        "less than new ones, so those losses sit above the law of a larger corpus.</p>"
        if repeated
        else "<p>Every run saw each training token at most once (epochs ≤ 1).</p>"
    )
    said = "".join(f'<p class="warn">warning: {esc(w)}</p>' for w in warnings)
    return f"<h2>Runs ({len(rows)})</h2>" + said + note + table(head, body, left=3)


def task_columns(rows: list[dict]) -> list[str]:
    """The runs' `TASK.METRIC` columns (RUN/tasks.json, `eval --tasks`), shown in the runs
    table: a sweep's task scores were in no part of the report (its task figure and
    table are the backtest's)."""
    keys = {k for r in rows for k in r if "." in k and k.rsplit(".", 1)[1] in TASK_METRICS}
    return sorted(keys)


def _notes(s: dict, c, here: Path) -> str:
    """The conventions, and where the files are: summary.json and the PNGs are written
    beside report.html (`here`, the --out folder); the run folders stay in the study or
    sweep folder read, named by its absolute path where that is another folder (a path
    relative to where `report` ran means nothing beside the page). It said 'under the
    study folder' of a sweep's report, and of one written elsewhere with --out."""
    kind = "study" if c.study else "sweep"
    runs = Path(c.root).resolve()
    where = (
        f"this file's folder (the {kind} folder)"
        if runs == Path(here).resolve()
        else f"the {kind} folder <code>{esc(os.fspath(runs))}</code>"
    )
    return (
        "<h2>Conventions</h2><ul>"
        "<li>loss: mean cross-entropy in nats per token on the held-out split; bits per byte "
        "= loss · tokens / (bytes · ln 2).</li>"
        "<li>N: every trainable parameter (embeddings included, tied ones once); D: training "
        "tokens seen; C = 6·N·D FLOPs.</li>"
        "<li>Fits: IsoFLOP parabolas in log N (Hoffmann Approach 2), Chinchilla L = E + A/N^α "
        "+ B/D^β (Approach 3, Huber on log loss), frontier L = (C_c/C)^α through the IsoFLOP "
        "optima.</li>"
        f"<li>Files: <code>summary.json</code> (format_version {s['format_version']}) and the "
        f"PNGs, beside this file; the run folders, under {where}.</li></ul>"
    )


def _seed(x) -> str:
    """A seed is a name, not a count: 1337, not 1,337."""
    return "–" if x is None else str(x)
