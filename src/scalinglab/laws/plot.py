"""`ScalingLaw.plot(ax=None)`: the data, the fitted law, its interval band, extrapolation shaded.

matplotlib is imported when a figure is drawn, never when scalinglab is imported
(docs/design.md). One figure per law kind:

- chinchilla, kaplan, nd-interaction: loss against tokens D, the data coloured by N and the law
  at a few model sizes, each with its bootstrap band; D beyond the data is shaded.
- power-n, power-d, power-c: loss against N, D or C; the law and its band; the
  range beyond the data is shaded.
- isoflop: loss against N at each budget, the fitted parabolas, each vertex with
  its interval on N_opt.
- envelope: N_opt against C, the law k_N·C^a and its band; each run's N over the
  compute it covers; compute beyond the runs is shaded.
- data-constrained: loss against D at up to 4 of the fitted model sizes N, each with
  up to 4 of its runs' unique-token counts U (line style: U's rank): the runs (hollow: repeated data, D > U), the
  law and its band at that N and U, a tick where D = U (one epoch).
- task-sigmoid, task-power: the task metric against C, the rows, the law and its band;
  the range beyond the data is shaded (with `chance`, a line at chance).
- multi-power, lr-annealing: loss against step for every run, its logged losses and
  the law's curve under its own schedule, with its band; held-out runs dashed
  (predicted, not fitted) and hollow.

A law without data (load_fit, from_params) draws the law alone over a default range;
data-constrained and the curve laws, which need each run's U or LR schedule, refuse.
"""

import math

import numpy as np

from scalinglab.errors import ConfigError
from scalinglab.laws.isoflop import group_budgets
from scalinglab.laws.tasklaws import last_of_each_run

LOSS = "loss (nats/token)"
WHAT = {"N": "parameters N", "D": "training tokens D", "C": "training compute C (FLOPs)"}
# The range drawn for a law without data (a published law): typical LLM scales.
DEFAULT_RANGE = {"N": (1e7, 1e11), "D": (1e9, 1e13), "C": (1e17, 1e25)}


def _axes(ax):
    if ax is not None:
        from matplotlib.axes import Axes

        if not isinstance(ax, Axes):  # ax="x" was an AttributeError deep in matplotlib
            raise ConfigError(
                f"ax must be a matplotlib Axes (plt.subplots()[1]), got {type(ax).__name__} {ax!r}"
            )
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(6.4, 4.6))
    return ax


def _shade(ax, lo, hi):
    """Shade [lo, hi] on the x axis as extrapolation (beyond the data)."""
    if hi > lo:
        ax.axvspan(lo, hi, color="k", alpha=0.06, lw=0)
        ax.text(
            math.sqrt(lo * hi), 0.97, "extrapolation", ha="center", va="top",
            transform=ax.get_xaxis_transform(), fontsize=8, color="0.35",
        )  # fmt: skip


def _band(ax, law, x, color, label, ls="-", **kw):
    """The law's prediction over x (a dict of N/D/C arrays) and its bootstrap band."""
    kw = {**kw, "check_range": False}  # the shaded extrapolation is drawn on purpose
    if law.samples_ is not None:
        mid, lo, hi = law.predict(**kw, return_ci=True)
        ax.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0)
    else:
        mid = law.predict(**kw)
    ax.plot(x, mid, ls, color=color, lw=1.6, label=label)


def _data_range(values):
    if values is None or len(values) == 0:
        return None
    return float(np.min(values)), float(np.max(values))


def plot_law(law, ax=None):
    """Draw `law` (a fitted ScalingLaw) on `ax` (a new figure's axes when None); return ax."""
    law.check_fitted()
    ax = _axes(ax)
    points = getattr(law, "points_", None)
    if law.law in ("chinchilla", "kaplan", "nd-interaction"):
        _two_variable(law, ax, points)
    elif law.law.startswith("power-"):
        _one_variable(law, ax, points, law.law[-1].upper())
    elif law.law == "isoflop":
        _isoflop(law, ax, points)
    elif law.law == "envelope":
        _envelope(law, ax, points)
    elif law.law == "data-constrained":
        _constrained(law, ax, _needs_points(law, points, "unique tokens U"))
    elif law.law.startswith("task-"):
        _task(law, ax, points)
    elif law.law in ("multi-power", "lr-annealing"):
        _curves(law, ax, _needs_points(law, points, "LR schedules"))
    else:
        raise ConfigError(f"law {law.law!r} has no plot")
    ax.set_title(_title(law), fontsize=10)
    ax.grid(True, alpha=0.3)
    _plain_log_y(ax)
    return ax


def _plain_log_y(ax):
    """A loss axis spans under a decade: label its ticks 2, 2.5, 3, not 2×10⁰."""
    from matplotlib.ticker import FuncFormatter

    if ax.get_yscale() == "log" and ax.get_ylabel() == LOSS:
        fmt = FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(fmt)
        ax.yaxis.set_minor_formatter(fmt)


def _title(law) -> str:
    skip = ("@", "k_", "a_L")
    shown = [
        f"{k}={v:.3g}"
        for k, v in law.params_.items()
        if not any(s in k for s in skip) and v is not None
    ][:5]
    n = f", {law.n_points_} points" if law.n_points_ else ""
    return f"{law.law}{n}: " + ", ".join(shown)


def _two_variable(law, ax, points):
    import matplotlib.pyplot as plt

    data = points is not None and points.N is not None and points.D is not None
    ranges = getattr(law, "ranges_", None) or {}  # a loaded fit's: fit.json's N/D_range
    fitted = (_data_range(points.N), _data_range(points.D)) if data else (
        ranges.get("N"), ranges.get("D"))  # fmt: skip
    fitted = fitted if all(fitted) else None
    n_range, d_range = fitted or (DEFAULT_RANGE["N"], DEFAULT_RANGE["D"])
    cmap = plt.get_cmap("viridis")
    lo_n, hi_n = math.log(n_range[0]), math.log(n_range[1])

    def color(n):
        return cmap(0.05 + 0.8 * (math.log(n) - lo_n) / max(hi_n - lo_n, 1e-9))

    if data:
        ax.scatter(points.D, points.L, c=[color(n) for n in points.N], s=14, alpha=0.8,
                   edgecolors="none", label="runs (colour: N)")  # fmt: skip
    d_hi = d_range[1] * (10 if fitted else 1)
    D = np.geomspace(d_range[0] / (2 if fitted else 1), d_hi, 120)
    for n in np.geomspace(*n_range, 4):
        _band(ax, law, D, color(n), f"N = {n:.3g}", N=np.full_like(D, n), D=D)
    if fitted:
        _shade(ax, d_range[1], d_hi)
    ax.set(xscale="log", yscale="log", xlabel=WHAT["D"], ylabel=LOSS)
    ax.legend(fontsize=8)


def _one_variable(law, ax, points, var):
    x = None if points is None else getattr(points, var)
    fitted = _data_range(x) or (getattr(law, "ranges_", None) or {}).get(var)  # a loaded fit's
    rng = fitted or DEFAULT_RANGE[var]
    hi = rng[1] * (10 if fitted else 1)
    grid = np.geomspace(rng[0] / (2 if fitted else 1), hi, 160)
    if x is not None:
        ax.plot(x, points.L, "o", color="0.35", ms=4, label="data")
    _band(ax, law, grid, "C0", f"{law.law} fit", **{var: grid})
    if fitted:
        _shade(ax, rng[1], hi)
    ax.set(xscale="log", yscale="log", xlabel=WHAT[var], ylabel=LOSS)
    ax.legend(fontsize=8)


def _isoflop(law, ax, points):
    import matplotlib.pyplot as plt

    p = law.params_
    budgets = sorted(float(k.split("@")[1]) for k in p if k.startswith("N_opt@"))
    if not budgets:  # a law from parameters: its N_opt(C) alone, over a default range
        return _envelope(law, ax, None)
    cmap = plt.get_cmap("plasma")
    cols = {b: cmap(0.1 + 0.75 * i / max(1, len(budgets) - 1)) for i, b in enumerate(budgets)}
    group = None
    if points is not None and points.N is not None and budgets:
        # each run's budget as the fit grouped it: snapped to its --budgets when given
        below = law.settings.get("n_kind") != "params_nonembed"  # as the fit grouped them
        group, _ = group_budgets(points, law.settings.get("budgets"), below=below)
        group = np.asarray(group, dtype=float)
        # the runs of a budget the fit skipped (too few runs) belong to no parabola
        skipped = ~np.isclose(group[:, None], budgets, rtol=1e-5).any(axis=1)  # keys are :g
        if skipped.any():
            ax.plot(points.N[skipped], points.L[skipped], "x", color="0.5", ms=4,
                    label="runs of budgets skipped")  # fmt: skip
    for b in budgets:
        n_opt, l_opt, k = (p.get(f"{v}@{b:g}") for v in ("N_opt", "L_opt", "k"))
        if not all(v is not None and math.isfinite(v) for v in (n_opt, l_opt, k)):
            continue
        span = (n_opt / 10, n_opt * 10)
        m = None if group is None else np.isclose(group, b, rtol=1e-5)
        if m is not None and m.any():
            ax.plot(points.N[m], points.L[m], "o", color=cols[b], ms=4)
            span = (points.N[m].min() / 1.5, points.N[m].max() * 1.5)
        N = np.geomspace(*span, 80)
        ax.plot(N, l_opt + k * (np.log(N) - math.log(n_opt)) ** 2, "-", color=cols[b],
                lw=1.2, label=f"C = {b:.3g}")  # fmt: skip
        ci = law.ci_.get(f"N_opt@{b:g}")
        xerr = None if not ci else [[n_opt - ci[0]], [ci[1] - n_opt]]
        ax.errorbar([n_opt], [l_opt], xerr=xerr, fmt="*", color=cols[b], ms=11, mec="k",
                    mew=0.5, capsize=3)  # fmt: skip
    ax.plot([], [], "*", color="grey", mec="k", label="N_opt (interval: bars)")
    ax.set(xscale="log", yscale="log", xlabel=WHAT["N"], ylabel=LOSS)
    ax.legend(fontsize=8)


def _envelope(law, ax, curves):
    p = law.params_
    runs = getattr(curves, "runs", None) or []
    if runs:
        c_lo = min(float(r[2].min()) for r in runs)
        c_hi = max(float(r[2].max()) for r in runs)
        for _, n, c, _, _ in runs:
            ax.plot([c.min(), c.max()], [n, n], "-", color="0.6", lw=1)
        ax.plot([], [], "-", color="0.6", label="runs: N over the compute they cover")
    else:
        c_lo, c_hi = DEFAULT_RANGE["C"]
    hi = c_hi * (100 if runs else 1)
    C = np.geomspace(c_lo, hi, 120)
    if law.samples_ is not None:
        k, a = law.samples_["k_N"][:, None], law.samples_["a"][:, None]
        q = 100 * (1 - law.settings["ci_level"]) / 2
        with np.errstate(over="ignore", invalid="ignore"):
            lo, up = np.nanpercentile(k * C**a, [q, 100 - q], axis=0)
        ax.fill_between(C, lo, up, color="C0", alpha=0.18, lw=0)
    ax.plot(C, p["k_N"] * C ** p["a"], "-", color="C0", lw=1.6, label="N_opt = k_N·C^a")
    if runs:
        _shade(ax, c_hi, hi)
    ax.set(xscale="log", yscale="log", xlabel=WHAT["C"], ylabel="compute-optimal N_opt")
    ax.legend(fontsize=8)


def _needs_points(law, points, what):
    if points is None:
        raise ConfigError(
            f"plot(): law {law.law!r} draws the runs it was fitted on (their {what}); this "
            "one has none (loaded from fit.json or made from parameters): fit it to draw it"
        )
    return points


def _spread(values, k=4):
    """At most k of the distinct values, evenly by rank, the smallest and largest among them."""
    vals = np.unique(values)
    if len(vals) <= k:
        return vals
    idx = np.unique(np.round(np.linspace(0, len(vals) - 1, k)).astype(int))
    return vals[idx]


def _constrained(law, ax, t):
    """Each drawn curve's label names its N and U; the legend shows N by colour and the
    rank of U among that N's runs by line style; the tick on a curve is at D = U."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    sizes = _spread(t.N)
    cmap = plt.get_cmap("viridis")
    styles = ("-", "--", ":", "-.")
    drawn = np.zeros(len(t), bool)
    d_lo, d_hi = float(t.D.min()), float(t.D.max())
    top = d_hi * 4
    D = np.geomspace(d_lo / 2, top, 120)
    legend = []
    for i, n in enumerate(sizes):
        col = cmap(0.05 + 0.8 * i / max(1, len(sizes) - 1))
        legend.append(Line2D([], [], color=col, lw=1.6, label=f"N = {n:.3g}"))
        at_n = np.equal(t.N, n)
        for j, u in enumerate(_spread(t.U[at_n], len(styles))):
            m = at_n & np.equal(t.U, u)
            drawn |= m
            rep = t.D[m] > u
            ax.plot(t.D[m][~rep], t.L[m][~rep], "o", color=col, ms=4)
            ax.plot(t.D[m][rep], t.L[m][rep], "o", mfc="none", mec=col, ms=4)
            _band(ax, law, D, col, f"N = {n:.3g}, U = {u:.3g}", styles[j],
                  N=np.full_like(D, n), D=D, U=np.full_like(D, u))  # fmt: skip
            at_u = law.predict(N=n, D=u, U=u, check_range=False)
            ax.plot([u], [at_u], "|", color=col, ms=12, mew=1.5)
    legend += [Line2D([], [], color="0.4", ls=ls, label=f"{k} U of its runs")
               for ls, k in zip(styles, ("smallest", "2nd", "3rd", "4th"), strict=True)]  # fmt: skip
    if (~drawn).any():
        ax.plot(t.D[~drawn], t.L[~drawn], ".", color="0.7", ms=3)
        legend.append(Line2D([], [], ls="", marker=".", color="0.7", label="other runs"))
    legend += [
        Line2D([], [], ls="", marker="o", color="0.4", ms=4, label="run, D <= U"),
        Line2D([], [], ls="", marker="o", mfc="none", mec="0.4", ms=4,
               label="run, D > U (repeated)"),
        Line2D([], [], ls="", marker="|", color="0.4", ms=10, mew=1.5,
               label="D = U (one epoch)"),
    ]  # fmt: skip
    _shade(ax, d_hi, top)
    ax.set(xscale="log", yscale="log", xlabel=WHAT["D"], ylabel=LOSS)
    ax.legend(handles=legend, fontsize=7, ncol=2)


def _task(law, ax, m):
    name = law.settings["metric_col"] or "metric"
    data = m is not None
    fitted = _data_range(m.C) if data else (getattr(law, "ranges_", None) or {}).get("C")
    lo, hi = fitted or DEFAULT_RANGE["C"]  # a loaded fit: its fit.json's data.C_range
    top = hi * (10 if fitted else 1)
    C = np.geomspace(lo / (2 if fitted else 1), top, 160)
    if data:
        last = np.zeros(len(m), bool)
        last[last_of_each_run(m)] = True
        if not last.all():  # checkpoints: the law in C is fitted to each run's last row
            ax.plot(m.C[~last], m.L[~last], ".", color="0.7", ms=3,
                    label="checkpoints (not fitted in C)")  # fmt: skip
        label = "each run's last row" if not last.all() else "data"
        ax.plot(m.C[last], m.L[last], "o", color="0.35", ms=4, label=label)
    _band(ax, law, C, "C0", f"{law.law} fit", C=C)
    chance = law.settings.get("chance")
    if law.law == "task-sigmoid" and chance is not None:
        ax.axhline(chance, color="0.5", ls=":", lw=1, label=f"chance ({chance:g})")
    if fitted:
        _shade(ax, hi, top)
    ax.set(xscale="log", xlabel=WHAT["C"], ylabel=f"task metric ({name})")
    ax.legend(fontsize=8)


def _curves(law, ax, t):
    import matplotlib.pyplot as plt

    fill = law.settings["lr_fill"]
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(t.runs):
        col = cycle[i % len(cycle)]
        steps = np.unique(np.linspace(r.steps[0], r.steps[-1], 200).astype(int))
        lr = r.schedule(fill)
        kind = "held out: predicted" if r.held_out else "fitted"
        ls = "--" if r.held_out else "-"
        if law.samples_ is not None:
            mid, lo, hi = law.predict(steps, lr, return_ci=True)
            ax.fill_between(steps, lo, hi, color=col, alpha=0.18, lw=0)
        else:
            mid = law.predict(steps, lr)
        # the curve over the logged losses, which a long run logs densely
        ax.plot(steps, mid, ls, color=col, lw=1.4, label=f"run {r.run_id} ({kind})", zorder=3)
        face = "none" if r.held_out else col
        ms = 3 if len(r.steps) <= 80 else 1.5
        ax.plot(r.steps, r.loss, "o", mfc=face, mec=col, ms=ms, alpha=0.6, zorder=2)
    ax.plot([], [], "o", color="0.4", ms=3, label="logged loss (hollow: held out)")
    # the first tenth of training falls steeply: the axis shows the losses after it, where
    # the schedules part
    late = np.concatenate([r.loss[r.steps >= 0.1 * r.steps[-1]] for r in t.runs])
    pad = 0.05 * (late.max() - late.min()) or 0.05 * late.max()
    ax.set_ylim(late.min() - pad, late.max() + pad)
    ax.set(xlabel="step", ylabel=LOSS)
    ax.legend(fontsize=7)
