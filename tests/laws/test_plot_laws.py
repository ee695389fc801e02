"""`plot()` of the data-constrained, task and curve laws: what each figure holds (the runs
drawn, the law's curve equal to its predictions there, held-out runs told apart)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from scalinglab.errors import ConfigError
from scalinglab.laws import ScalingLaw, load_fit
from scalinglab.laws import plot as lplot
from scalinglab.laws.constrained import DataConstrained
from scalinglab.laws.curves import CurveTable, Run
from tests.laws.test_curves import MPL_25M, mpl_direct, schedule
from tests.laws.test_task_laws import synthetic

matplotlib = pytest.importorskip("matplotlib", reason="plot() draws with matplotlib")
matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def markers(ax, marker="o"):
    """The data lines (markers, no line) drawn with `marker` that hold points."""
    return [
        ln for ln in ax.get_lines()
        if ln.get_marker() == marker and ln.get_linestyle() == "None" and len(ln.get_xdata())
    ]  # fmt: skip


def test_nd_interaction_plot_draws_the_law_at_four_sizes():
    """nd-interaction, an N, D law as chinchilla is (the same figure), raised 'has no plot'."""
    p = {"E": 1.8, "A": 400.0, "B": 1200.0, "alpha": 0.34, "beta": 0.3, "gamma": 0.05}
    law = ScalingLaw.from_params("nd-interaction", **p)
    ax = law.plot()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("training tokens D", "loss (nats/token)")
    curves = [ln for ln in ax.get_lines() if ln.get_label().startswith("N = ")]
    assert len(curves) == 4
    for ln in curves:
        x, y = ln.get_data()
        n = float(ln.get_label().split("= ")[1])  # N to 3 digits
        want = p["E"] + p["A"] / n ** p["alpha"] + p["B"] * n ** p["gamma"] / x ** p["beta"]
        np.testing.assert_allclose(y, want, rtol=1e-3)


def constrained_law():
    """Runs of 3 sizes, each on 2 unique-token counts of its own (6 in all), from half an
    epoch to 16 epochs."""
    true = {"A": 400.0, "B": 1200.0, "E": 1.8, "alpha": 0.34, "beta": 0.34, "R_D": 12.0,
            "R_N": 4.0}  # fmt: skip
    rows = [(N, U * k * ep, U * k) for k, N in enumerate((1e7, 1e8, 1e9), 1) for U in (1e8, 1e9)
            for ep in (0.5, 1, 4, 16)]  # fmt: skip
    N, D, U = (np.array(c) for c in zip(*rows, strict=True))
    L = DataConstrained.predict(true, N, D, U)
    fix = ["A=400", "B=1200", "E=1.8", "alpha=0.34"]
    law = ScalingLaw("data-constrained", tie=["alpha=beta"], fix=fix, bootstrap=0)
    return law.fit({"N": N, "D": D, "U": U, "L": L}), N, D, U


def test_data_constrained_plot_draws_each_n_and_u_with_unique_tokens_marked():
    law, N, D, U = constrained_law()
    ax = law.plot()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("training tokens D", "loss (nats/token)")
    curves = [ln for ln in ax.get_lines() if ln.get_label().startswith("N = ")]
    assert len(curves) == 6  # every (N, U) of the runs
    for ln in curves:
        n, u = (float(part.split("= ")[1]) for part in ln.get_label().split(", "))
        x, y = ln.get_data()
        np.testing.assert_allclose(y, law.predict(N=n, D=x, U=np.full_like(x, u)), rtol=1e-9)
    dots = markers(ax)
    # every run, once, on its curve (with 4 U's picked of all 6, a size lost its runs)
    assert sum(len(ln.get_xdata()) for ln in dots) == len(N)
    hollow = [ln for ln in dots if ln.get_markerfacecolor() == "none"]
    assert sum(len(ln.get_xdata()) for ln in hollow) == int(np.sum(D > U))  # repeated data
    ticks = markers(ax, "|")  # D = U on each curve
    assert sorted(float(t.get_xdata()[0]) for t in ticks) == sorted(set(U))


@pytest.mark.parametrize("name", ["task-sigmoid", "task-power"])
def test_task_law_plot_draws_the_metric_against_compute_with_its_band(name):
    from matplotlib.collections import PolyCollection

    data = synthetic()
    kw = {"loss_col": "task_loss"} if name == "task-sigmoid" else {}
    law = ScalingLaw(name, metric_col="acc", bootstrap=20, seed=0, **kw).fit(data)
    ax = law.plot()
    assert (ax.get_xlabel(), ax.get_ylabel()) == (
        "training compute C (FLOPs)", "task metric (acc)",
    )  # fmt: skip
    (dots,) = markers(ax)
    np.testing.assert_array_equal(dots.get_xdata(), data["flops"])
    np.testing.assert_array_equal(dots.get_ydata(), data["acc"])
    (fit,) = [ln for ln in ax.get_lines() if ln.get_label() == f"{name} fit"]
    x, y = fit.get_data()
    np.testing.assert_allclose(y, law.predict(C=x, check_range=False), rtol=1e-12)
    assert x.max() > data["flops"].max()  # drawn beyond the data, shaded
    assert any("extrapolation" in t.get_text() for t in ax.texts)
    band = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert band  # the bootstrap interval
    # a loaded fit has no rows: the law alone, over a default range of C
    loaded = load_fit(law.to_json()).plot()
    assert not markers(loaded) and [ln.get_label() for ln in loaded.get_lines()] == [f"{name} fit"]


def test_task_law_plot_of_checkpoints_marks_the_rows_the_law_in_c_was_fitted_to():
    """Rows that are checkpoints of runs: the law in C is fitted to each run's last row,
    which the figure draws as the data; the other checkpoints are drawn apart."""
    data = synthetic()
    rows = {"run": [], "flops": [], "acc": []}
    for i, (c, a) in enumerate(zip(data["flops"], data["acc"], strict=True)):
        for frac in (0.25, 0.5, 1.0):  # each run's checkpoints, its last at C
            rows["run"].append(f"r{i}")
            rows["flops"].append(c * frac)
            rows["acc"].append(a * (0.8 + 0.2 * frac))
    law = ScalingLaw("task-power", metric_col="acc", run_cols=["run"], bootstrap=0).fit(rows)
    ax = law.plot()
    (last,) = markers(ax)
    np.testing.assert_allclose(last.get_xdata(), data["flops"])
    np.testing.assert_allclose(last.get_ydata(), data["acc"])
    (mid,) = markers(ax, ".")
    assert len(mid.get_xdata()) == 2 * len(data["flops"])


def curve_law(name):
    runs = []
    for kind in ("cosine", "constant", "drop"):
        lr = schedule(kind, 2000, warmup=100)
        steps = np.arange(100, 2000, 100)
        loss = mpl_direct(MPL_25M, lr, steps)
        runs.append(Run(kind, steps, lr[steps], loss, held_out=kind == "drop", lr_full=lr))
    return ScalingLaw(name, bootstrap=0).fit(CurveTable(runs)), runs


@pytest.mark.parametrize("name", ["multi-power", "lr-annealing"])
def test_curve_law_plot_draws_every_run_and_tells_the_held_out_apart(name):
    law, runs = curve_law(name)
    ax = law.plot()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("step", "loss (nats/token)")
    curves = {ln.get_label(): ln for ln in ax.get_lines() if ln.get_label().startswith("run ")}
    assert set(curves) == {
        "run cosine (fitted)", "run constant (fitted)", "run drop (held out: predicted)",
    }  # fmt: skip
    for r in runs:
        kind = "held out: predicted" if r.held_out else "fitted"
        ln = curves[f"run {r.run_id} ({kind})"]
        assert ln.get_linestyle() == ("--" if r.held_out else "-")
        x, y = ln.get_data()
        assert x[0] == r.steps[0] and x[-1] == r.steps[-1]
        np.testing.assert_allclose(y, law.predict(x, r.lr_full), rtol=1e-12)
    dots = markers(ax)
    assert len(dots) == 3
    for r, ln in zip(runs, dots, strict=True):
        np.testing.assert_array_equal(ln.get_ydata(), r.loss)
        assert (ln.get_markerfacecolor() == "none") == r.held_out


@pytest.mark.parametrize("name", ["data-constrained", "multi-power"])
def test_a_loaded_fit_of_a_law_that_draws_its_runs_says_it_has_none(name):
    fitted = constrained_law()[0] if name == "data-constrained" else curve_law(name)[0]
    law = load_fit(fitted.to_json())
    with pytest.raises(ConfigError, match=f"law '{name}' draws the runs it was fitted on"):
        law.plot()


def test_a_loaded_task_law_draws_over_its_fitted_range_of_c():
    """A task law's fit.json had no C range: a loaded one drew over 1e17-1e25 whatever
    compute it was fitted on. An old fit.json without it still loads and draws."""
    data = synthetic()
    law = ScalingLaw("task-power", metric_col="acc", bootstrap=0).fit(data)
    obj = law.to_json()
    lo, hi = data["flops"].min(), data["flops"].max()
    assert obj["data"]["C_range"] == [lo, hi]
    (fit,) = load_fit(obj).plot().get_lines()
    assert (fit.get_xdata().min(), fit.get_xdata().max()) == pytest.approx((lo / 2, hi * 10))
    del obj["data"]["C_range"]
    (old,) = load_fit(obj).plot().get_lines()
    from scalinglab.laws.plot import DEFAULT_RANGE

    assert (old.get_xdata().min(), old.get_xdata().max()) == pytest.approx(DEFAULT_RANGE["C"])


def test_a_loaded_power_c_law_draws_over_its_fitted_range_of_c():
    """A loaded power-c fit drew over 1e17-1e25 though its fit.json holds data.C_range."""
    C = np.geomspace(1e15, 1e18, 8)
    law = ScalingLaw("power-c", bootstrap=0).fit({"flops": C, "loss": 1.7 + (3e14 / C) ** 0.1})
    (fit,) = load_fit(law.to_json()).plot().get_lines()
    assert (fit.get_xdata().min(), fit.get_xdata().max()) == pytest.approx((C[0] / 2, C[-1] * 10))


def test_a_loaded_chinchilla_fit_draws_and_checks_over_its_fitted_n_and_d():
    """fit.json recorded only data.C_range: a loaded chinchilla drew over the default N and D
    ranges and checked only 6ND. It records N_range and D_range now; an old fit.json still
    loads (and draws over the default ranges)."""
    from scalinglab.laws.estimator import ExtrapolationWarning
    from scalinglab.laws.plot import DEFAULT_RANGE

    N, D = np.meshgrid(np.geomspace(1e6, 1e8, 4), np.geomspace(1e8, 1e10, 4))
    N, D = N.ravel(), D.ravel()
    loss = 1.8 + 400 / N**0.34 + 1200 / D**0.3
    law = ScalingLaw("chinchilla", bootstrap=0).fit({"params": N, "tokens": D, "loss": loss})
    obj = law.to_json()
    assert obj["data"]["N_range"] == [1e6, 1e8] and obj["data"]["D_range"] == [1e8, 1e10]
    loaded = load_fit(obj)
    curves = [ln for ln in loaded.plot().get_lines() if ln.get_label().startswith("N = ")]
    assert [c.get_label() for c in curves][::3] == ["N = 1e+06", "N = 1e+08"]
    assert (curves[0].get_xdata().min(), curves[0].get_xdata().max()) == pytest.approx((5e7, 1e11))
    with pytest.warns(ExtrapolationWarning, match="N=1 .* smallest N fitted"):
        loaded.predict(N=1.0, D=1e20)  # 6ND in range: only N's own range tells
    del obj["data"]["N_range"], obj["data"]["D_range"]
    old = [ln for ln in load_fit(obj).plot().get_lines() if ln.get_label().startswith("N = ")]
    assert old[0].get_xdata().min() == pytest.approx(DEFAULT_RANGE["D"][0])


def test_an_isoflop_plot_groups_the_runs_by_the_budgets_the_fit_used():
    """Fitted with budgets=[...], isoflop snaps each run's C to them; the plot coloured the
    runs by the table's own budget column instead (here one label for all: one group)."""
    from tests.laws.test_isoflop_envelope import isoflop_table

    rows = isoflop_table(np.random.default_rng(1))
    for r in rows:
        r["C"] *= 1.2  # off the budgets by 20%: the fit snaps them back
        r["budget"] = 1e18  # a column the fit does not group by
    budgets = [1e18, 1e19, 1e20, 1e21, 1e22]
    law = ScalingLaw("isoflop", bootstrap=0, budgets=budgets).fit(rows)
    groups = markers(law.plot())
    assert len(groups) == 5
    for b, line in zip(budgets, groups, strict=True):
        drawn = sorted(line.get_xdata())
        assert drawn == sorted(r["N"] for r in rows if r["C"] == pytest.approx(1.2 * b))


def test_an_isoflop_plot_does_not_draw_a_skipped_budgets_runs_as_a_fitted_ones():
    """A budget with too few runs is skipped by the fit; the plot drew its runs in the
    colour of the nearest fitted budget, as if that parabola were fitted to them."""
    from tests.laws.test_isoflop_envelope import isoflop_table

    rows = isoflop_table(np.random.default_rng(1))
    rows = [r for r in rows if r["C"] != 1e22] + [r for r in rows if r["C"] == 1e22][3:5]
    law = ScalingLaw("isoflop", bootstrap=0).fit(rows)
    assert law.warnings_[0] == "budgets with fewer than 3 runs skipped: 1e+22"
    ax = law.plot()
    assert [len(line.get_xdata()) for line in markers(ax)] == [9, 9, 9, 9]
    (skipped,) = markers(ax, "x")
    assert sorted(skipped.get_xdata()) == sorted(r["N"] for r in rows if r["C"] == 1e22)


def _isoflop_law(bootstrap):
    from tests.laws.test_isoflop_envelope import isoflop_table

    return ScalingLaw("isoflop", bootstrap=bootstrap).fit(isoflop_table(np.random.default_rng(0)))


def test_isoflop_plot_draws_the_fitted_parabola_in_natural_log_n():
    """each curve is L_opt + k (ln N - ln N_opt)^2 with the fit's own numbers."""
    law = _isoflop_law(0)
    ax = law.plot()
    curves = [ln for ln in ax.get_lines() if ln.get_label().startswith("C = ")]
    assert curves
    budgets = sorted(float(k.split("@")[1]) for k in law.params_ if k.startswith("N_opt@"))
    for ln, b in zip(curves, budgets, strict=True):
        p = {v: law.params_[f"{v}@{b:g}"] for v in ("N_opt", "L_opt", "k")}
        x, y = ln.get_data()
        want = p["L_opt"] + p["k"] * (np.log(x) - math.log(p["N_opt"])) ** 2
        np.testing.assert_allclose(y, want, rtol=1e-12)


def test_isoflop_plot_bars_span_each_vertexs_interval():
    """the horizontal bar at N_opt runs from the interval's low end to its high end."""
    law = _isoflop_law(20)
    ax = law.plot()
    spans = sorted(tuple(sorted((s[0][0], s[1][0]))) for c in ax.containers
                   for s in c.lines[2][0].get_segments())  # fmt: skip
    want = sorted(tuple(law.ci_[k]) for k in law.ci_ if k.startswith("N_opt@"))
    assert want and np.allclose(spans, want, rtol=1e-9)


def test_envelope_band_is_the_central_interval_at_the_laws_level():
    """at ci_level 0.9 the band runs from the 5th to the 95th percentile of the draws."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    k, a = np.exp(rng.normal(0, 0.3, 400)), rng.normal(0.5, 0.02, 400)
    law = SimpleNamespace(params_={"k_N": 1.0, "a": 0.5}, samples_={"k_N": k, "a": a},
                          settings={"ci_level": 0.9})  # fmt: skip
    _, ax = plt.subplots()
    lplot._envelope(law, ax, None)
    (band,) = ax.collections
    v = band.get_paths()[0].vertices
    c0 = lplot.DEFAULT_RANGE["C"][0]
    at = v[np.isclose(v[:, 0], c0, rtol=1e-9), 1]
    draws = k * c0**a
    assert sorted(at)[0] == pytest.approx(np.percentile(draws, 5), rel=1e-9)
    assert sorted(at)[-1] == pytest.approx(np.percentile(draws, 95), rel=1e-9)


def test_nd_plot_shades_only_beyond_the_largest_fitted_d():
    """the shaded extrapolation starts at the largest D fitted (to 10x it)."""
    rng = np.random.default_rng(0)
    N = np.repeat([1e7, 1e8, 1e9], 4)
    D = np.tile([1e9, 3e9, 1e10, 3e10], 3)
    L = 1.8 + 400 / N**0.34 + 1200 / D**0.3 * np.exp(0.002 * rng.standard_normal(12))
    ax = ScalingLaw("chinchilla", bootstrap=0).fit({"N": N, "D": D, "L": L}).plot()
    (t,) = [t for t in ax.texts if t.get_text() == "extrapolation"]
    assert t.get_position()[0] == pytest.approx(math.sqrt(3e10 * 3e11))
