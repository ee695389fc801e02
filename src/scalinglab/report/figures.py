"""The report's figures (matplotlib, Agg backend): each function draws one PNG and returns
its caption. Axes are log-log where the law is a power law, and every axis names its
quantity and unit: loss in nats/token, compute in FLOPs (C = 6·N·D), parameters, tokens.
"""

import io
import math

import numpy as np

from scalinglab.fsio import atomic_write_bytes
from scalinglab.plan.analysis import PUBLISHED, ArchFits, law_c

ARCH_COLORS = {"gpt": "#1f5fbf", "lstm": "#c0392b", "gru": "#2e8b57", "rnn_tanh": "#8e44ad"}
ARCH_NAMES = {"gpt": "GPT", "lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN", "rnn_relu": "RNN"}
LOSS = "validation loss (nats/token)"
COMPUTE = "training compute C = 6·N·D (FLOPs)"
KAPLAN = " (N without embeddings)"
"""What the axes of N and C add where the fits count N without embeddings."""


def _counted(fits) -> str:
    """KAPLAN where the fits (an ArchFits or a dict of them) count N without embeddings."""
    many = fits.values() if isinstance(fits, dict) else [fits]
    return KAPLAN if any(f.kind != "params" for f in many) else ""


DPI = 110


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {"font.size": 10, "axes.titlesize": 11, "legend.fontsize": 8.5, "axes.grid": True,
         "grid.alpha": 0.3, "axes.grid.which": "major"}
    )  # fmt: skip
    return plt


def _plain_log(ax, axis: str = "y") -> None:
    """Loss axes span less than a decade: label the log ticks 2, 2.5, 3 rather than 2×10⁰."""
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    a = ax.yaxis if axis == "y" else ax.xaxis
    a.set_major_formatter(fmt)
    a.set_minor_formatter(fmt)


def name(arch: str) -> str:
    return ARCH_NAMES.get(arch, arch)


def color(arch: str) -> str:
    return ARCH_COLORS.get(arch, "#555555")


def _save(fig, path) -> None:
    from matplotlib.ticker import NullFormatter

    for ax in fig.axes:  # log axes spanning under a decade crowd their minor labels
        if ax.get_xscale() == "log":
            ax.xaxis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    save_png(fig, path, DPI)


def save_png(fig, path, dpi: int) -> None:
    """The figure as a PNG at `path`, written atomically (a report killed while drawing
    leaves the old PNG whole, never a cut one), and closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _panels(plt, n: int, w: float = 6.2, h: float = 4.4):
    fig, axes = plt.subplots(1, n, figsize=(w * n, h), squeeze=False)
    return fig, list(axes[0])


def _smooth(y: list[float], k: int = 0) -> np.ndarray:
    """A centred running mean over about 1/15 of the run (at least 5 logged steps):
    one batch of 8 sequences gives a noisy training loss."""
    y = np.asarray(y, dtype=float)
    k = k or max(5, len(y) // 15)
    if len(y) < 2 * k:
        return y
    pad = np.pad(y, (k // 2, k - 1 - k // 2), mode="edge")
    return np.convolve(pad, np.ones(k) / k, mode="valid")


def loss_curves(path, archs: list[str], rows: list[dict], curves: dict) -> str:
    """Training loss against tokens, one line per run, coloured by N (log colour scale)."""
    plt = _plt()
    from matplotlib.colors import LogNorm

    fig, axes = _panels(plt, len(archs))
    for ax, arch in zip(axes, archs, strict=True):
        mine = [r for r in rows if r.get("arch") == arch and r["run_id"] in curves]
        ns = [r["params"] for r in mine if r.get("params")]
        norm = LogNorm(min(ns), max(ns) * 1.0001) if ns else LogNorm(1, 10)
        cmap = plt.get_cmap("viridis")
        for r in sorted(mine, key=lambda r: r.get("params") or 0):
            c = curves[r["run_id"]]
            if not c["tokens"]:
                continue
            col = cmap(norm(r["params"]))
            ls = "--" if r["role"] == "backtest" else "-"
            ax.plot(c["tokens"], _smooth(c["train_loss"]), color=col, lw=1.1, ls=ls, alpha=0.9)
            if c["final"]:
                ax.plot(*c["final"], "o", color=col, ms=4, mec="k", mew=0.4)
        sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(sm, ax=ax, label="parameters N")
        ax.set(xscale="log", yscale="log", xlabel="training tokens D",
               ylabel="training loss (nats/token)",
               title=f"{name(arch)}: loss curves by model size")  # fmt: skip
        _plain_log(ax)
        ax.plot([], [], "o", color="grey", mec="k", label="final validation loss")
        if any(r["role"] == "backtest" for r in mine):
            ax.plot([], [], "--", color="grey", label="backtest run")
        ax.legend(loc="upper right")
    _save(fig, path)
    return (
        "Training loss (a running mean over about 1/15 of each run) against tokens seen, one line per run, "
        "coloured by parameter count; dots are the final loss on the held-out split."
    )


def _budget_colors(plt, budgets):
    cmap = plt.get_cmap("plasma")
    k = max(1, len(budgets) - 1)
    return {b: cmap(0.1 + 0.75 * i / k) for i, b in enumerate(sorted(budgets))}


def fitted_parabola(iso, budget: float):
    """L(log N) of the IsoFLOP fit at one budget, the parabola that was fitted (its vertex
    and curvature), or None where that budget has no finite vertex."""
    if iso is None:
        return None
    p = iso.params_
    n_opt, l_opt, k = (p.get(f"{v}@{budget:g}", math.nan) for v in ("N_opt", "L_opt", "k"))
    if not all(math.isfinite(v) for v in (n_opt, l_opt, k)):
        return None
    return lambda x: l_opt + k * (x - math.log(n_opt)) ** 2


def isoflop_profiles(path, fits: dict[str, ArchFits]) -> str:
    """Loss against N at each budget, the fitted parabola in log N and its vertex."""
    plt = _plt()
    archs = [a for a, f in fits.items() if any(r.get("budget") for r in f.rows)]
    fig, axes = _panels(plt, max(1, len(archs)))
    for ax, arch in zip(axes, archs, strict=False):
        f = fits[arch]
        budgets = sorted({r["budget"] for r in f.rows if r.get("budget")})
        cols = _budget_colors(plt, budgets)
        for b in budgets:
            pts = sorted((r[f.kind], r["loss"]) for r in f.rows if r.get("budget") == b)
            N, L = np.array(pts).T
            ax.plot(N, L, "o", color=cols[b], label=f"C = {b:.3g} FLOPs")
            curve = fitted_parabola(f.isoflop, b)
            if curve is not None:
                x = np.linspace(np.log(N.min()) - 0.15, np.log(N.max()) + 0.15, 100)
                ax.plot(np.exp(x), curve(x), "-", color=cols[b], lw=1.2)
                n_opt, l_opt = f.isoflop.params_[f"N_opt@{b:g}"], f.isoflop.params_[f"L_opt@{b:g}"]
                ax.plot(n_opt, l_opt, "*", color=cols[b], ms=13, mec="k", mew=0.6)
        ax.plot([], [], "*", color="grey", ms=11, mec="k", label="fitted optimum (vertex)")
        ax.set(xscale="log", yscale="log", xlabel="parameters N" + _counted(f), ylabel=LOSS,
               title=f"{name(arch)}: IsoFLOP profiles")  # fmt: skip
        _plain_log(ax)
        ax.legend()
    _save(fig, path)
    shared = any(
        f.isoflop is not None and f.isoflop.settings.get("curvature") == "shared"
        for f in fits.values()
    )
    return (
        "IsoFLOP profiles (Hoffmann et al. 2022, Approach 2): at each compute budget, models of "
        "different size trained on D = C/(6N) tokens; the fitted parabola in log N through "
        + ("each profile, one curvature shared by all budgets" if shared else "each profile")
        + "; stars mark its minimum, the compute-optimal N at that budget."
    )


def _band(ax, law, C, col, label):
    """The fitted L(C) with its bootstrap band."""
    # drawn to the planned budgets on purpose: no ExtrapolationWarning
    if law.samples_ is not None:
        p, lo, hi = law.predict(C=C, return_ci=True, check_range=False)
        ax.fill_between(C, lo, hi, color=col, alpha=0.15, lw=0)
    else:
        p = law.predict(C=C, check_range=False)
    ax.plot(C, p, "-", color=col, lw=1.6, label=label)


def _alpha_label(arch, law) -> str:
    a = law.params_["alpha"]
    ci = law.ci_.get("alpha")
    s = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
    return f"{name(arch)} fit: L = (C_c/C)^α, α = {a:.3f}{s}"


def _frontier_points(ax, arch, f, col, label=True):
    pts = f.frontier_points
    C = np.array([p["C"] for p in pts])
    L = np.array([p["L"] for p in pts])
    ci = [p.get("L_ci") or [p["L"], p["L"]] for p in pts]
    err = np.abs(np.array(ci).T - L)
    ax.errorbar(C, L, yerr=err, fmt="s", color=col, ms=6, mec="k", mew=0.5, capsize=3,
                label=f"{name(arch)} IsoFLOP optima" if label else None)  # fmt: skip


def frontier(path, fits: dict[str, ArchFits], arch: str, c_max: float, backtest: dict | None):
    """The compute-optimal frontier L(C) of one architecture, extrapolated to c_max."""
    plt = _plt()
    f = fits[arch]
    col = color(arch)
    fig, axes = _panels(plt, 1, 8.0, 5.0)
    ax = axes[0]
    runs = [(law_c(r, f.kind), r["loss"]) for r in f.rows]
    if runs:
        ax.plot(*np.array(runs).T, ".", color="grey", alpha=0.6, label="every sweep run")
    c_lo = min(p["C"] for p in f.frontier_points) / 1.5
    C = np.geomspace(c_lo, c_max * 1.3, 200)
    level = f.frontier.settings["ci_level"]
    boot = f.frontier.samples_ is not None  # --bootstrap 0: no band, no intervals
    band = f" ({level:.0%} band)" if boot else ""
    _band(ax, f.frontier, C, col, _alpha_label(arch, f.frontier) + band)
    _frontier_points(ax, arch, f, col)
    c_fit = max(p["C"] for p in f.frontier_points)
    ax.axvspan(c_fit, C[-1], color="k", alpha=0.04, lw=0)
    ax.text(c_fit * 1.15, 0.98, "extrapolation", transform=ax.get_xaxis_transform(),
            va="top", fontsize=8.5, color="0.35")  # fmt: skip
    mine = backtest if backtest and backtest.get("arch") == arch else None
    if mine:
        _backtest_marks(ax, mine)
    ax.set(xscale="log", yscale="log", xlabel=COMPUTE + _counted(f), ylabel=LOSS,
           title=f"{name(arch)}: compute-optimal frontier and its extrapolation")  # fmt: skip
    _plain_log(ax)
    ax.legend(loc="lower left")
    _save(fig, path)
    moved = [p.get("L_ci") is not None for p in f.frontier_points]
    what = (
        f"(the IsoFLOP optima{_vertex_intervals(level, moved)}), the power law "
        f"fitted through them and its {level:.0%} band,"
        if boot
        else "(the IsoFLOP optima) and the power law fitted through them,"
    )
    return (
        f"{name(arch)}: the lowest loss reachable at each compute {what} extrapolated to the "
        "planned budgets (shaded region: beyond the data)."
        + ("" if boot else f" {no_intervals(f.isoflop)}")
        + _backtest_caption(mine)
    )


def _vertex_intervals(level: float, moved: list[bool], bare: str = "") -> str:
    """What the captions say of the IsoFLOP vertices' intervals, `moved` saying which have
    one: a budget of 3 sizes gets none (docs/laws.md), and the quickstart's GPT frontier,
    drawn without any, was captioned 'with their 95% bootstrap intervals'. `bare`: whose
    vertices have none, where several architectures are drawn."""
    why = "no resample moves a vertex of a budget of 3 sizes (docs/laws.md)"
    if all(moved):
        return f" with their {level:.0%} bootstrap intervals"
    if not any(moved):
        return f", without intervals: {why}"
    if bare:
        return f" with their {level:.0%} bootstrap intervals, the {bare} ones without: {why}"
    return f" with their {level:.0%} bootstrap intervals where resampling moves them: {why}"


NO_INTERVALS = "No intervals: the fits had no bootstrap (--bootstrap 0)."
"""A caption's last sentence where the fits had no resamples: the captions said "with
their bootstrap intervals" of points and lines drawn without any."""


def no_intervals(iso) -> str:
    """Why an IsoFLOP fit's figure has no intervals: no bootstrap asked, or one whose
    resamples could not move it (every budget of 3 sizes), which was captioned as the
    first (a study with --bootstrap 20 read 'the fits had no bootstrap')."""
    n = iso.settings.get("bootstrap") or 0
    if not n:
        return NO_INTERVALS
    return (
        f"No intervals: none of the {n} resamples moved the fit (no resample moves a vertex "
        "of a budget of 3 sizes, docs/laws.md)."
    )


def _backtest_caption(bt: dict | None) -> str:
    """What the frontier shows of the backtest: nothing on another architecture's frontier
    (the caption of every frontier claimed the backtest), and the measured loss only once
    there is one."""
    if not bt:
        return ""
    if bt.get("actual_loss") is None:
        return (" The backtest: the loss predicted before training, with its interval "
                f"(not measured yet: its run is {bt.get('status') or 'not run'}).")  # fmt: skip
    return (" The backtest: the loss predicted before training (with its interval) and the "
            "loss measured after.")  # fmt: skip


def _backtest_marks(ax, bt: dict) -> None:
    C, p = bt.get("law_flops") or bt["flops"], bt["predicted_loss"]  # at the fits' C
    lo, hi = bt.get("interval") or (p, p)
    ax.errorbar([C], [p], yerr=[[p - lo], [hi - p]], fmt="D", color="#f39c12", mec="k",
                ms=7, capsize=4, label=f"backtest: predicted {p:.4f} [{lo:.4f}, {hi:.4f}]")  # fmt: skip
    if bt.get("actual_loss") is not None:
        ax.plot([C], [bt["actual_loss"]], "*", color="#27ae60", ms=15, mec="k",
                label=f"backtest: measured {bt['actual_loss']:.4f} "
                f"({100 * bt['rel_error']:.2f}% error)")  # fmt: skip


def allocation(path, fits: dict[str, ArchFits], c_max: float, backtest: dict | None) -> str:
    """N_opt(C) and D_opt(C) with intervals, beside the published exponents."""
    plt = _plt()
    fig, axes = _panels(plt, 2, 6.2, 6.0)
    have = [a for a, f in fits.items() if f.isoflop is not None]
    level = fits[have[0]].isoflop.settings["ci_level"]
    boot = any(fits[a].isoflop.samples_ is not None for a in have)
    q = 100 * (1 - level) / 2
    # the backtest run where its architecture is drawn (the frontier's rule), named by it
    # where there are several: the GPT's run was drawn as if it were any architecture's
    bt = backtest if backtest and backtest.get("arch") in have else None
    for ax, var, key in ((axes[0], "N", "a"), (axes[1], "D", "b")):
        anchor = None
        for arch in have:
            iso, col = fits[arch].isoflop, color(arch)
            bud = sorted(float(k.split("@")[1]) for k in iso.params_ if k.startswith(f"{var}_opt@"))
            v = np.array([iso.params_[f"{var}_opt@{b:g}"] for b in bud])
            ci = np.array(
                [iso.ci_.get(f"{var}_opt@{b:g}", [x, x]) for b, x in zip(bud, v, strict=True)]
            )
            ok = np.isfinite(v)
            err = np.abs(ci[ok].T - v[ok]) if ok.any() else None
            # each optimum at its own C where the fits count N without embeddings
            x = np.array([iso.params_.get(f"C_opt@{b:g}", b) for b in bud])
            ax.errorbar(x[ok], v[ok], yerr=err, fmt="o", color=col, mec="k", mew=0.5,
                        capsize=3, label=f"{name(arch)} IsoFLOP optima")  # fmt: skip
            C = np.geomspace(min(x) / 1.5, c_max * 1.3, 100)
            k = iso.params_[f"k_{var}"]
            expo = iso.params_[key]
            if iso.samples_ is not None:
                draws = iso.samples_[f"k_{var}"][:, None] * C[None, :] ** iso.samples_[key][:, None]
                lo, hi = np.nanpercentile(draws, [q, 100 - q], axis=0)
                ax.fill_between(C, lo, hi, color=col, alpha=0.13, lw=0)
            ci_e = iso.ci_.get(key)
            s = f" [{ci_e[0]:.2f}, {ci_e[1]:.2f}]" if ci_e else ""
            band = f" ({level:.0%} band)" if iso.samples_ is not None else ""
            ax.plot(C, k * C**expo, "-", color=col, lw=1.5,
                    label=f"{name(arch)}: {var}_opt ∝ C^{expo:.2f}{s}{band}")  # fmt: skip
            if anchor is None:
                cm = math.sqrt(min(x) * max(x))
                anchor = (cm, k * cm**expo, C)
        if anchor is not None:
            cm, vm, C = anchor
            for (label, a_n), ls in zip(PUBLISHED.items(), (":", "-."), strict=True):
                e = a_n if var == "N" else 1 - a_n
                ax.plot(C, vm * (C / cm) ** e, ls, color="0.3", lw=1.1,
                        label=f"{label}: exponent {e:.2f}")  # fmt: skip
        run_key = "params_run" if var == "N" else "tokens_run"
        if bt and bt.get(run_key):
            who = f"{name(bt['arch'])} " if len(have) > 1 else ""
            ax.plot([bt.get("law_flops") or bt["flops"]], [bt[run_key]], "D", color="#f39c12",
                    mec="k", ms=7, label=f"{who}backtest run")  # fmt: skip
        what = "parameters N_opt" + _counted(fits) if var == "N" else "training tokens D_opt"
        ax.set(xscale="log", yscale="log", xlabel=COMPUTE + _counted(fits),
               ylabel=f"compute-optimal {what}",
               title=f"Compute-optimal {'model size' if var == 'N' else 'data'} {var}_opt(C)")  # fmt: skip
        # below the axes: the bands fill any corner inside them
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize=8)
    _save(fig, path)
    moved = {a: any(k.startswith("N_opt@") for k in fits[a].isoflop.ci_) for a in have}
    bare = " and ".join(name(a) for a in have if not moved[a])
    what = (
        f"(IsoFLOP vertices{_vertex_intervals(level, list(moved.values()), bare)}) and the "
        f"power laws through them with their {level:.0%} bands"
        if boot
        else "(IsoFLOP vertices) and the power laws through them"
    )
    said = ""
    if bt and bt.get("params_run"):
        said = f" The diamond: the {name(bt['arch'])} backtest run's N and D."
    return (
        f"The compute-optimal model size and data at each budget {what}, beside the published "
        "exponents of N_opt ∝ C^a (Chinchilla a ≈ 0.5; Kaplan et al. 2020, a = 0.73), "
        "drawn through our fit's middle for the slope only; D_opt's exponent is 1 − a."
        + ("" if boot else f" {no_intervals(fits[have[0]].isoflop)}")
        + said
    )


def arch_compare(path, fits: dict[str, ArchFits], c_max: float) -> str:
    """Every architecture's frontier on one plot."""
    plt = _plt()
    fig, axes = _panels(plt, 1, 8.0, 5.0)
    ax = axes[0]
    for arch, f in fits.items():
        if f.frontier is None:
            continue
        col = color(arch)
        for r in f.rows:
            ax.plot(law_c(r, f.kind), r["loss"], ".", color=col, alpha=0.35)
        lo = min(p["C"] for p in f.frontier_points) / 1.5
        _band(
            ax, f.frontier, np.geomspace(lo, c_max * 1.3, 200), col, _alpha_label(arch, f.frontier)
        )
        _frontier_points(ax, arch, f, col)
    ax.set(xscale="log", yscale="log", xlabel=COMPUTE + _counted(fits), ylabel=LOSS,
           title="Which architecture scales better? Compute-optimal frontiers")  # fmt: skip
    _plain_log(ax)
    ax.legend(loc="lower left")
    _save(fig, path)
    return (
        "The compute-optimal frontiers of the architectures on one plot: a larger α means the "
        "loss falls faster as compute grows (Kaplan et al. 2020 found LSTMs scale worse "
        "than Transformers). Small dots: every run."
    )


def residuals(path, fits: dict[str, ArchFits]) -> str:
    """Relative residuals (observed − fitted) / fitted of every fit."""
    plt = _plt()
    fig, axes = _panels(plt, 3, 5.0, 4.0)
    markers = dict(zip(fits, "os^vD", strict=False))
    for arch, f in fits.items():
        col, m = color(arch), markers[arch]
        rows = f.rows
        C = np.array([law_c(r, f.kind) for r in rows])
        L = np.array([r["loss"] for r in rows])
        N = np.array([r[f.kind] for r in rows], dtype=float)
        D = np.array([r["tokens"] for r in rows], dtype=float)
        if f.chinchilla is not None:
            pred = f.chinchilla.predict(N=N, D=D)
            axes[0].plot(C, 100 * (L / pred - 1), m, color=col, mec="k", mew=0.3, label=name(arch))
        bud = np.array([r.get("budget") or np.nan for r in rows], dtype=float)
        for b in np.unique(bud[np.isfinite(bud)]):
            sel = bud == b
            curve = fitted_parabola(f.isoflop, b)
            if curve is not None:
                fit = curve(np.log(N[sel]))
                axes[1].plot(C[sel], 100 * (L[sel] / fit - 1), m, color=col, mec="k", mew=0.3)
        axes[1].plot([], [], m, color=col, mec="k", label=name(arch))
        if f.frontier is not None:
            pc = np.array([p["C"] for p in f.frontier_points])
            pl = np.array([p["L"] for p in f.frontier_points])
            axes[2].plot(pc, 100 * (pl / f.frontier.predict(C=pc) - 1), m, color=col, mec="k",
                         mew=0.3, ms=7, label=name(arch))  # fmt: skip
    titles = ("Chinchilla L(N, D), every run", "IsoFLOP parabolas, every run",
              "frontier power law L(C), IsoFLOP optima")  # fmt: skip
    for ax, t in zip(axes, titles, strict=True):
        if not any(len(line.get_xdata()) for line in ax.get_lines()):  # a WSD ladder: no IsoFLOP
            ax.set(title=t, xticks=[], yticks=[])
            ax.text(0.5, 0.5, "not fitted (no runs for it)", ha="center", transform=ax.transAxes)
            continue
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xscale="log", xlabel=COMPUTE + _counted(fits),
               ylabel="residual (observed/fitted − 1, %)", title=t)  # fmt: skip
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    _save(fig, path)
    return (
        "Residuals of each fit, in percent of the fitted loss: a good fit leaves them small "
        "and without a trend in compute."
    )
