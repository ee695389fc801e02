"""Curve laws (multi-power, lr-annealing): known answers, held-out runs, published curves."""

import json
from pathlib import Path

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.errors import ConfigError, DataError
from scalinglab.laws import ScalingLaw, curvefit, curvelaws, load_fit
from scalinglab.laws.curves import CurveTable, Run, lr_at_every_step, read_curve_table
from scalinglab.laws.schedules import Schedule
from scalinglab.laws.settings import huber_delta

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "scaling_data"
MPL_CSV = SHARED / "multipowerlaw_schedule_curves.csv"
# Luo et al.'s published 25M fit (upstream README)
MPL_25M = {
    "L0": 3.040,
    "A": 0.525,
    "alpha": 0.508,
    "B": 363.8,
    "C": 2.066,
    "beta": 0.583,
    "gamma": 0.641,
}
# Luo et al.'s published 400M fit (the authors' precomputed parameters)
MPL_400M = {
    "L0": 2.37474466,
    "A": 0.65421216,
    "alpha": 0.42878731,
    "B": 523.42464371,
    "C": 2.02462735,
    "beta": 0.59350493,
    "gamma": 0.63472457,
}
TISSUE = {"L0": 3.0, "A": 0.55, "alpha": 0.5, "C": 0.4}


def schedule(kind, total, warmup=300, peak=3e-4, low=3e-5):
    """The LR at steps 0..total-1 (the test's own reference schedules)."""
    t = np.arange(total, dtype=float)
    lr = np.full(total, peak)
    lr[:warmup] = np.linspace(0, peak, warmup)
    after = t >= warmup
    if kind == "cosine":
        x = (t[after] - warmup) / (total - warmup)
        lr[after] = low + 0.5 * (peak - low) * (1 + np.cos(np.pi * x))
    elif kind == "drop":
        lr[t >= total // 2] = 0.3 * peak
    elif kind == "wsd":
        d = t >= 0.8 * total
        lr[d] = peak + (low - peak) * (t[d] - 0.8 * total) / (0.2 * total)
    return lr


def mpl_direct(p, lr, steps):
    """The Multi-Power Law summed step by step (no blocks): the reference."""
    cum = np.cumsum(lr)
    out = []
    for t in steps:
        k = np.arange(1, t + 1)
        S = cum[t] - cum[k - 1]
        with np.errstate(divide="ignore"):  # LR 0: η^−γ is inf, and G its limit, 1
            G = 1 - (1 + p["C"] * lr[k] ** (-p["gamma"]) * S) ** (-p["beta"])
        LD = np.sum((lr[k - 1] - lr[k]) * G)
        out.append(p["L0"] + p["A"] * cum[t] ** (-p["alpha"]) - p["B"] * LD)
    return np.array(out)


def curves_csv(path, law_fn, kinds, total=4000, every=100, extra=(), marks=None):
    """A curves CSV; `marks` scales a run's losses (tells its rows apart from all others)."""
    lines = ["run,kind,step,lr,loss"]
    for kind in kinds:
        lr = schedule(kind, total)
        steps = np.arange(every, total, every)
        loss = law_fn(lr, steps) * (marks or {}).get(kind, 1.0)
        for s, v in zip(steps, loss, strict=True):
            lines.append(f"{kind},{kind},{s},{lr[s]:.10g},{v:.10g}")
    lines += list(extra)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_blocks_match_the_step_by_step_sum():
    for kind in ("cosine", "drop", "wsd"):
        lr = schedule(kind, 6000)
        steps = np.arange(200, 6000, 150)
        got = curvelaws.predict_curve(curvelaws.MultiPower(), MPL_25M, steps, lr)
        ref = mpl_direct(MPL_25M, lr, steps)
        assert np.max(np.abs(got - ref) / ref) < 1e-4, kind


@pytest.mark.parametrize(
    "spec",
    [  # a cooldown, then a warmup again from LR 0; a one-step dip to ~0 and back
        "warmup(2160, 3e-4) + constant(10000) + linear(2000, 3e-5) + warmup(500, 3e-4)"
        " + cosine(2000, 3e-5)",
        "warmup(2160, 3e-4) + constant(10000) + linear(2000, 3e-5) + drop(1, 1e-9)"
        " + linear(499, 3e-4) + cosine(2000, 3e-5)",
    ],
    ids=["rewarm-from-0", "dip"],
)
def test_blocks_match_the_step_by_step_sum_where_the_lr_falls_and_rises_again(spec):
    """A block that held both the cooldown's last falls and the re-warmup's rises summed
    terms of both signs at one mean LR: Luo et al.'s 400M law was predicted 0.53% off the
    step-by-step sum just after the re-warmup and 0.34% after the dip (found by an audit of
    the curve laws)."""
    lr = Schedule(spec).lr_array()
    steps = np.r_[np.arange(14000, 14160, 7), np.arange(14161, len(lr), 7)]
    got = curvelaws.predict_curve(curvelaws.MultiPower(), MPL_400M, steps, lr)
    ref = mpl_direct(MPL_400M, lr, steps)
    assert np.max(np.abs(got - ref) / ref) < 1e-4


def test_lr_fill_rules():
    steps, lrs = np.array([4, 8, 12, 16]), np.array([1.0, 1.0, 0.1, 0.1])
    lin = lr_at_every_step(steps, lrs, "linear")
    assert np.allclose(lin[:5], [0, 0.25, 0.5, 0.75, 1.0])  # warmup ramp ending at the first row
    assert np.isclose(lin[10], 0.55)
    prev = lr_at_every_step(steps, lrs, "previous")
    assert prev[11] == 1.0 and prev[12] == 0.1
    auto = lr_at_every_step(steps, lrs, "auto")  # an isolated jump, placed at the midpoint
    assert auto[9] == 1.0 and auto[10] == 0.1 and auto[16] == 0.1
    smooth = lr_at_every_step(np.array([4, 8, 12, 16]), np.array([1.0, 0.9, 0.8, 0.7]), "auto")
    assert np.isclose(smooth[10], 0.85)  # no jump: linear


@pytest.mark.parametrize("law", ["multi-power", "lr-annealing"])
def test_known_law_is_recovered_and_predicts_an_unseen_schedule(tmp_path, law):
    if law == "multi-power":
        true = MPL_25M

        def fn(lr, steps):
            return mpl_direct(true, lr, steps)
    else:
        true = TISSUE

        def fn(lr, steps):
            S1 = np.cumsum(lr)[steps]
            S2 = curvelaws.annealing_area(lr, 0.999)[steps]
            return true["L0"] + true["A"] * S1 ** (-true["alpha"]) - true["C"] * S2

    runs = []
    for kind in ("cosine", "constant", "drop", "wsd"):
        lr = schedule(kind, 4000)
        steps = np.arange(100, 4000, 100)
        loss = fn(lr, steps)
        runs.append(Run(kind, steps, lr[steps], loss, held_out=kind == "wsd", lr_full=lr))
    fit = ScalingLaw(law, bootstrap=0).fit(CurveTable(runs))
    bt = fit.backtest_
    assert bt["runs_test"] == 1 and bt["per_run"][0]["run"] == "wsd"
    assert bt["max_abs_rel_error"] < 1e-5
    # C, beta and gamma shape the loss drop after an LR decrease, which 3 schedules pin
    # down loosely: the blocks' 1e-5 error moves them by a few percent
    for k, v in true.items():
        assert fit.params_[k] == pytest.approx(v, rel=0.01 if k in ("L0", "A", "alpha") else 0.1), k


def test_held_out_runs_never_reach_the_fit(tmp_path, monkeypatch):
    def fn(lr, steps):
        return mpl_direct(MPL_25M, lr, steps)

    kinds = ("cosine", "constant", "drop", "wsd")
    path = curves_csv(tmp_path / "all.csv", fn, kinds, marks={"wsd": 1.0123})
    seen = []
    real_fit = curvelaws.fit_curves

    def spy(form, runs, **kw):
        seen.extend(runs)
        return real_fit(form, runs, **kw)

    monkeypatch.setattr(curvefit, "fit_curves", spy)
    held = ScalingLaw(
        "multi-power", run_cols=["run"], where=["kind!=cosine"], holdout_where=["kind=wsd"],
        bootstrap=0,
    ).fit(path)  # fmt: skip
    t = read_curve_table(path, run_cols=["run"], where=["kind!=cosine"])
    wsd = next(r for r in t.runs if r.run_id == "wsd")
    assert len(seen) == 2  # constant and drop only
    for _, _, loss in seen:
        assert not np.isin(loss, wsd.loss).any()
    assert held.n_points_ == sum(len(r.steps) for r in t.runs if r.run_id != "wsd")
    # the same fit as on a file that never had the held-out run
    lines = path.read_text().splitlines()
    (tmp_path / "without.csv").write_text("\n".join(x for x in lines if ",wsd," not in x) + "\n")
    alone = ScalingLaw("multi-power", run_cols=["run"], where=["kind!=cosine"], bootstrap=0)
    alone.fit(tmp_path / "without.csv")
    assert alone.params_ == held.params_
    whole = read_curve_table(path, run_cols=["run"], holdout_where=["step>=3000", "kind=wsd"])
    assert {r.run_id for r in whole.held_runs} == set(kinds)  # every run has a row >= 3000
    part = read_curve_table(path, run_cols=["run"], holdout_where=["lr<0.0001"])
    assert {r.run_id for r in part.held_runs} == {"cosine", "drop", "wsd"}  # not 'constant'
    assert all(len(r.steps) == 39 for r in part.held_runs)  # held out whole, every row


def test_predict_api_and_fit_json_round_trip(tmp_path):
    def fn(lr, steps):
        return mpl_direct(MPL_25M, lr, steps)

    path = curves_csv(tmp_path / "c.csv", fn, ("cosine", "constant", "drop"))
    law = ScalingLaw("lr-annealing", run_cols=["run"], bootstrap=20).fit(path)
    lr = schedule("wsd", 3000)
    steps = np.array([500, 1000, 2999])
    pred = law.predict(steps, lr)
    assert pred.shape == (3,) and np.all(np.diff(pred) < 0)
    assert np.allclose(law.predict(steps=steps, lr_schedule=lr), pred)
    p, lo, hi = law.predict(steps, lr, return_ci=True)
    assert np.all(lo <= p) and np.all(p <= hi)
    with pytest.raises(ConfigError, match=r"0\.\.3000"):
        law.predict([3000], lr)
    # step 0 of a warmup from LR 0: nothing learned, the laws' LR-area power is infinite
    # there (was inf with a numpy warning)
    warm = np.concatenate([[0.0], lr[1:]])
    with pytest.raises(ConfigError, match=r"^step 0: the LR summed over steps 0\.\.0 is 0"):
        law.predict([0, 500], warm)
    assert np.isfinite(law.predict([1, 500], warm)).all()
    (tmp_path / "fit.json").write_text(json.dumps(law.to_json()))
    again = load_fit(tmp_path / "fit.json")
    assert np.allclose(again.predict(steps, lr), pred)


def test_cli_curve_errors(tmp_path, capsys):
    path = tmp_path / "c.csv"
    path.write_text("run,step,lr,loss\na,10,0.1,3.0\na,10,0.1,2.9\n")
    for argv, msg in [
        (["--run-col", "run"], "logs step 10 twice"),
        (["--run-col", "run", "--lr-col", "eta"], "--lr-col 'eta': no such column"),
        (["--run-col", "run", "--holdout-where", "run=a"], "holds out every run"),
        # a misspelt holdout held out nothing: the fit took the test runs in, silently
        (["--run-col", "run", "--holdout-where", "run=b"], "--holdout-where run=b matches no row"),
        (
            ["--run-col", "run", "--where", "step>15", "--holdout-where", "step<15"],
            "--holdout-where step<15 matches no row after --where step>15",
        ),
        (["--run-col", "run", "--holdout-where", "step~3"], "expected COLUMN=VALUE"),
        (["--run-col", "run", "--holdout-frac", "0.2"], "--holdout-where"),
        (["--run-col", "run", "--fix", "delta=1"], "--fix 'delta=1': expected NAME=VALUE"),
    ]:
        if "twice" not in msg:
            path.write_text("run,step,lr,loss\na,10,0.1,3.0\na,20,0.1,2.9\n")
        assert main(["fit", str(path), "--law", "multi-power", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and msg in err and err.count("\n") == 1, err
    assert main(["fit", str(path), "--law", "chinchilla", "--holdout-where", "run=a"]) == 2
    assert "--holdout-where is for the curve laws" in capsys.readouterr().err
    with pytest.raises(DataError, match="'x' is not a number"):
        path.write_text("run,step,lr,loss\na,10,x,3.0\n")
        read_curve_table(path, run_cols=["run"])


def test_run_cols_that_join_alike_and_runs_of_several_models(tmp_path, capsys):
    """--run-col a --run-col b joined ('x/y', 'z') and ('x', 'y/z') into one run 'x/y/z'
    and fitted their points as one curve; two models' curves under one --run-col
    schedule logged each step twice, and the message did not say why."""
    path = tmp_path / "c.csv"
    path.write_text("a,b,step,lr,loss\nx/y,z,10,0.1,3.0\nx/y,z,20,0.1,2.9\nx,y/z,30,0.1,2.8\n")
    argv = ["fit", str(path), "--law", "lr-annealing", "--run-col", "a", "--run-col", "b"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: row 3 (line 4): --run-col a, b: ['x', 'y/z'] and ['x/y', 'z'] both "
        "name run 'x/y/z' ('/' joins them)\n"
    )
    with pytest.raises(DataError, match=r"run_cols a, b: .* both name run 'x/y/z'"):
        read_curve_table(path, run_cols=["a", "b"])  # in Python, named by its argument
    path.write_text("model,schedule,step,lr,loss\n25M,cos,10,0.1,3.0\n100M,cos,10,0.1,2.5\n")
    assert main(["fit", str(path), "--law", "lr-annealing", "--run-col", "schedule"]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: run 'cos' logs step 10 twice (rows 1 and 2); rows of several runs? "
        "name the columns that tell them apart with --run-col (repeatable), or keep one "
        "with --where\n"
    )
    runs = read_curve_table(path, run_cols=["model", "schedule"]).runs
    assert [(r.run_id, list(r.steps)) for r in runs] == [("25M/cos", [10]), ("100M/cos", [10])]


def test_cli_fix_exponent_outside_domain(tmp_path, capsys):
    """An exponent held at <= 0 is refused as a held A or C is: lr-annealing with
    --fix alpha=-1 was fitted (A = 3.5e-13, a loss that rises with the LR area), exit 0."""
    path = tmp_path / "c.csv"
    rows = "".join(f"{r},{s},{lr},{3 - s / 1000}\n" for r, lr in (("a", 0.1), ("b", 0.05))
                   for s in range(100, 600, 100))  # fmt: skip
    path.write_text("run,step,lr,loss\n" + rows)
    for law, fix in [("lr-annealing", "alpha=-1"), ("multi-power", "gamma=0"),
                     ("multi-power", "beta=-0.5")]:  # fmt: skip
        argv = ["fit", str(path), "--law", law, "--run-col", "run", "--bootstrap", "0"]
        assert main([*argv, "--fix", fix]) == 2
        err = capsys.readouterr().err
        name = fix.split("=")[0]
        assert err == f"error: --fix '{fix}': {name} must be > 0\n", err


@pytest.mark.skipif(not MPL_CSV.is_file(), reason="../shared/scaling_data is absent")
def test_multi_power_on_luo_et_al_25m(tmp_path, capsys):
    """Fit on the 3 `fit` curves, predict the 6 `test` ones (Luo et al.: 0.110% / 0.41%)."""
    out = tmp_path / "fit.json"
    argv = ["fit", str(MPL_CSV), "--law", "multi-power", "--run-col", "schedule"]
    argv += ["--where", "model=25M", "--holdout-where", "split=test", "--bootstrap", "0"]
    assert main([*argv, "--out", str(out)]) == 0
    bt = json.loads(out.read_text())["backtest"]
    assert bt["runs_test"] == 6 and bt["n_test"] == 1622
    # the issue's targets for each size (mean <= 0.15%, worst <= 0.6%), met with the defaults
    # (multi-power's Huber delta 1e-2: 0.119% / 0.506%; with 1e-3 the worst was 0.616%)
    assert bt["mean_of_run_means"] < 0.0015
    assert bt["mean_of_run_maxes"] < 0.006
    assert bt["max_abs_rel_error"] < 0.015
    saved = json.loads(out.read_text())
    assert saved["settings"]["huber_delta"] is None
    assert saved["conventions"]["huber_delta"] == 0.01  # the delta the fit used


def test_fix_holds_a_curve_law_parameter(tmp_path):
    """--fix gamma=V: gamma stays V (its interval too), the other six are fitted and recover a
    known law; fit.json keeps the setting, so a loaded fit predicts the same."""

    def fn(lr, steps):
        return mpl_direct(MPL_25M, lr, steps)

    runs = []
    for kind in ("cosine", "constant", "drop", "wsd"):
        lr = schedule(kind, 4000)
        steps = np.arange(100, 4000, 100)
        runs.append(Run(kind, steps, lr[steps], fn(lr, steps), held_out=kind == "wsd", lr_full=lr))
    fit = ScalingLaw("multi-power", bootstrap=20, fix=["gamma=0.641"]).fit(CurveTable(runs))
    assert fit.params_["gamma"] == 0.641 and fit.ci_["gamma"] == [0.641, 0.641]
    assert fit.conventions_["fixed"] == {"gamma": 0.641}
    assert fit.backtest_["max_abs_rel_error"] < 1e-5
    for k, v in MPL_25M.items():
        assert fit.params_[k] == pytest.approx(v, rel=0.01 if k in ("L0", "A", "alpha") else 0.1), k
    (tmp_path / "fit.json").write_text(json.dumps(fit.to_json()))
    again = load_fit(tmp_path / "fit.json")
    lr = schedule("wsd", 3000)
    assert np.allclose(again.predict([500, 2999], lr), fit.predict([500, 2999], lr))
    for fix, msg in [
        (["delta=1"], "fix 'delta=1': expected NAME=VALUE with NAME one of L0, A, alpha"),
        (["C=-1"], "fix 'C=-1': C must be > 0"),
        (["gamma=x"], "fix 'gamma=x': 'x' is not a number"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            ScalingLaw("multi-power", fix=fix).fit(CurveTable(runs))
    with pytest.raises(ConfigError, match=r"tie alpha=beta does not apply to law 'lr-anneal"):
        ScalingLaw("lr-annealing", tie=["alpha=beta"]).fit(CurveTable(runs))


@pytest.mark.skipif(not MPL_CSV.is_file(), reason="../shared/scaling_data is absent")
def test_fix_gamma_on_luo_et_al_400m(tmp_path):
    """gamma held at 1 at 400M: 0.162% mean (0.169% free; benchmarks/results/curve_laws.md),
    through the CLI's --fix."""
    out = tmp_path / "fit.json"
    argv = ["fit", str(MPL_CSV), "--law", "multi-power", "--run-col", "schedule"]
    argv += ["--where", "model=400M", "--holdout-where", "split=test", "--bootstrap", "0"]
    assert main([*argv, "--fix", "gamma=1", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["params"]["gamma"] == 1.0 and saved["settings"]["fix"] == ["gamma=1"]
    assert saved["backtest"]["mean_of_run_means"] == pytest.approx(0.001621, abs=2e-6)
    assert saved["backtest"]["mean_of_run_maxes"] == pytest.approx(0.007205, abs=2e-6)


def test_huber_delta_default_is_the_laws():
    assert huber_delta("multi-power", {"huber_delta": None}) == 1e-2
    assert huber_delta("lr-annealing", {"huber_delta": None}) == 1e-3
    assert huber_delta("chinchilla", {"huber_delta": None}) == 1e-3
    assert huber_delta("multi-power", {"huber_delta": 3e-4}) == 3e-4
    assert curvefit.form_of(ScalingLaw("multi-power")).delta == 1e-2
    assert curvefit.form_of(ScalingLaw("multi-power", huber_delta=1e-3)).delta == 1e-3
    assert curvefit.form_of(ScalingLaw("lr-annealing")).delta == 1e-3


def test_schedule_column_gives_each_run_its_exact_lr(tmp_path, capsys):
    specs = {
        "cos": "warmup(300, 3e-4) + cosine(3700, 3e-5)",
        "const": "warmup(300, 3e-4) + constant(3700)",
        "drop": "warmup(300, 3e-4) + constant(1700) + drop(2000, 9e-5)",
        "wsd": "warmup(300, 3e-4) + constant(2900) + sqrt(800, 3e-5)",
    }
    lines = ["run,sched,step,loss"]
    for name, spec in specs.items():
        lr = Schedule(spec).lr_array()
        steps = np.arange(100, 4000, 100)
        for s, v in zip(steps, mpl_direct(MPL_25M, lr, steps), strict=True):
            lines.append(f'{name},"{spec}",{s},{v:.10g}')  # a spec has commas: quoted
    path = tmp_path / "c.csv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "fit.json"
    argv = ["fit", str(path), "--law", "multi-power", "--run-col", "run", "--schedule-col", "sched"]
    assert main([*argv, "--holdout-where", "run=wsd", "--bootstrap", "0", "--out", str(out)]) == 0
    bt = json.loads(out.read_text())["backtest"]
    assert bt["runs_test"] == 1 and bt["max_abs_rel_error"] < 1e-5  # a 1-sqrt decay never fitted
    bad = '"warmup(300, 3e-4) + cosine(3700, 3e-5)",3900'
    path.write_text(path.read_text().replace(bad, '"constant(4000, 1e-4)",3900'))
    assert main(argv) == 2
    assert "run 'cos' has 2 different schedules" in capsys.readouterr().err
    # a run with no schedule needs an lr column to rebuild its LR from
    text = "\n".join(ln for ln in lines if not ln.startswith("cos,")) + "\ncos,,100,3.5\n"
    path.write_text(text)
    assert main(argv) == 2
    assert "run 'cos' has no schedule in 'sched' and there is no 'lr' column" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("law", ["multi-power", "lr-annealing"])
def test_each_bootstrap_refit_is_its_resamples_minimum(law):
    """The refits stop on their own tests (a Newton-decrement stop in whitened coordinates,
    a relative decrease below ftol): each must still be its resample's minimum. Reference:
    scipy's L-BFGS-B on that resample's objective from the full fit's optimum, at tight
    tolerances; a refit may sit no higher than 1e-9 of the objective above it."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(3)
    runs = []
    for kind in ("cosine", "constant", "drop"):
        lr = schedule(kind, 3000)
        steps = np.arange(100, 3000, 100)
        loss = mpl_direct(MPL_25M, lr, steps) * np.exp(rng.normal(0, 2e-3, steps.size))
        runs.append((steps, lr, loss))
    form = curvelaws.make_curve_form(law, delta=huber_delta(law, {}))
    out = curvelaws.fit_curves(form, runs, bootstrap=6, seed=5)
    run_of = np.concatenate([np.full(len(s), i) for i, (s, _, _) in enumerate(runs)])
    W = curvelaws.stratified_weights(run_of, 6, 5)
    for r in range(6):
        fun = curvelaws.curve_objective(form, out["ctx"], W[r : r + 1])

        def f(th, fun=fun):
            v, g = fun(th[None, :], np.array([0]))
            return v[0], g[0]

        ref = minimize(f, out["theta"], jac=True, method="L-BFGS-B",
                       options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})  # fmt: skip
        got = f(out["samples"][r])[0]
        assert got <= ref.fun + 1e-9 * abs(ref.fun), (r, got, ref.fun)


def test_runs_of_one_point_each_are_resampled_whole():
    """A table of final losses (one point a run): within-run draws are all the data, and
    gave prediction intervals of zero width; the runs are resampled instead."""
    rng = np.random.default_rng(0)
    runs = []
    for kind in ("cosine", "constant", "drop", "wsd"):
        for total in (1000, 2000, 4000):
            lr = schedule(kind, total)
            step = np.array([total - 1])
            loss = mpl_direct(MPL_25M, lr, step) * (1 + 0.003 * rng.standard_normal())
            runs.append(Run(f"{kind}{total}", step, lr[step], loss, lr_full=lr))
    law = ScalingLaw("lr-annealing", bootstrap=50).fit(CurveTable(runs))
    lr = schedule("cosine", 3000)
    pred, lo, hi = law.predict([2999], lr, return_ci=True)
    assert lo[0] < pred[0] < hi[0]
    assert 1e-4 < (hi[0] - lo[0]) / pred[0] < 0.05  # the spread of 0.3% noise, not 0


def test_where_compares_numbers_and_takes_double_equals_as_the_runs_reader(tmp_path):
    """The curves reader's --where compared the text as written (budget=1e19 kept no row
    of 1e+19) and took `budget==1e19` as budget = '=1e19'; the runs reader does neither."""
    path = tmp_path / "c.csv"
    rows = [f"{r},{b},{s},{3e-4},{4 - s / 100}" for r, b in (("a", "1e+19"), ("b", "2e19"))
            for s in (10, 20, 30)]  # fmt: skip
    path.write_text("run,budget,step,lr,loss\n" + "\n".join(rows) + "\n")
    for cond in ("budget=1e19", "budget==1e19", "budget==10000000000000000000"):
        t = read_curve_table(path, run_cols=["run"], where=[cond])
        assert [r.run_id for r in t.runs] == ["a"], cond
    t = read_curve_table(path, run_cols=["run"], holdout_where=["budget=2.0e19"])
    assert [r.run_id for r in t.held_runs] == ["b"]


def test_curves_with_a_status_column_take_completed_runs_by_default(tmp_path, capsys):
    """A curves table with a status column (`runs DIR --curves`) fed a diverged run's
    rising loss to the curve law as if valid: the runs reader's default filter
    status=completed now applies to curves too, and `--where status=...` overrides it."""

    def fn(lr, steps):
        return mpl_direct(MPL_25M, lr, steps)

    kinds = ("cosine", "constant", "drop", "wsd")
    clean = curves_csv(tmp_path / "clean.csv", fn, kinds)
    lines = clean.read_text().splitlines()
    rows = [f"{x},completed" for x in lines[1:]]
    blown = [f"blown,blown,{s},0.0003,{3 + s / 100:.6g},diverged" for s in range(100, 2000, 100)]
    path = tmp_path / "status.csv"
    path.write_text("\n".join([f"{lines[0]},status", *rows, *blown]) + "\n")
    kw = {"run_cols": ["run"], "holdout_where": ["kind=wsd"], "bootstrap": 0}
    fit = ScalingLaw("multi-power", **kw).fit(path)
    alone = ScalingLaw("multi-power", **kw).fit(clean)
    assert fit.params_ == alone.params_
    assert fit.conventions_["filters"] == ["status=completed"]
    t = read_curve_table(path, run_cols=["run"], where=["kind!=cosine"])
    assert ("the default filter status=completed", len(blown)) in t.removed
    assert ("--where kind!=cosine", 39) in t.removed
    t = read_curve_table(path, run_cols=["run"], where=["status=diverged"])
    assert [r.run_id for r in t.runs] == ["blown"]
    (tmp_path / "none.csv").write_text("\n".join([f"{lines[0]},status", *blown]) + "\n")
    argv = ["fit", str(tmp_path / "none.csv"), "--law", "multi-power", "--run-col", "run"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'none.csv'}: the default filter status=completed matched no rows "
        "(statuses: 'diverged'); pick rows with --where status=VALUE\n"
    )


# Known answers for mutations of laws/curves.py and laws/curvefit.py that every test
# passed (a mutation audit): each fails on its mutation.


def _law25(lr, s):
    return mpl_direct(MPL_25M, lr, s)


def test_auto_fill_splits_an_odd_interval_evenly_at_a_jump():
    """CV2 (curves.py:307, mid without +1): steps 8..13 hold 3 steps of each LR."""
    lr = lr_at_every_step(np.array([4, 8, 13, 17]), np.array([1.0, 1.0, 0.1, 0.1]), "auto")
    assert lr[8:14].tolist() == [1.0, 1.0, 1.0, 0.1, 0.1, 0.1]


def test_auto_fill_leaves_a_smooth_decay_linear_in_its_first_and_last_interval():
    """CV4 (curves.py:321, max -> min of the neighbours): the end intervals have one
    neighbour, padded with 0, and were taken for step drops."""
    steps, lrs = np.array([4, 8, 12, 16]), np.array([1.0, 0.9, 0.8, 0.7])
    auto = lr_at_every_step(steps, lrs, "auto")
    assert np.allclose(auto[4:], np.interp(np.arange(4, 17), steps, lrs))


def test_a_schedule_spec_shorter_than_the_logged_steps_is_refused(tmp_path):
    """CV6 (curves.py:286, <= -> <): a spec of 4000 steps (indices 0..3999) cannot give the
    LR at a logged step 4000; the mutant padded its last LR on without a word."""
    p = tmp_path / "c.csv"
    p.write_text(
        "run,step,loss,sched\n"
        + "".join(
            f'a,{s},{3 - s / 4000:.4f},"constant(4000, 1e-3)"\n' for s in (1000, 2000, 3000, 4000)
        )
    )
    with pytest.raises(
        DataError, match=r"'constant\(4000, 1e-3\)' has 4000 steps, it logs step 4000"
    ):
        read_curve_table(p, run_cols=["run"], schedule_col="sched")
    p.write_text(p.read_text().replace("4000, 1e-3", "4001, 1e-3"))  # long enough: read
    assert len(read_curve_table(p, run_cols=["run"], schedule_col="sched").runs[0].lr_full) == 4001


def test_a_loss_of_zero_in_a_curves_csv_is_refused_naming_its_row(tmp_path):
    """CV9 (curves.py:90, loss <= 0 -> < 0): the mutant read it and the fit failed with
    'no start gave a finite objective', naming no row."""
    p = curves_csv(tmp_path / "c.csv", _law25, ("cosine", "constant"),
                   extra=["constant,constant,3950,0.0003,0"])  # fmt: skip
    with pytest.raises(
        DataError, match=r"row 79 \(line 80\), column 'loss': '0' must be a finite number > 0"
    ):
        read_curve_table(p, run_cols=["run"])


def test_curve_fit_of_fewer_than_3_points_per_parameter_warns(tmp_path):
    """CF3 (curvefit.py:166, 3 * P -> 2 * P): lr-annealing has 4 parameters; 10 points."""
    p = curves_csv(tmp_path / "c.csv", _law25, ("cosine", "drop"), every=700)
    law = ScalingLaw("lr-annealing", run_cols=["run"], bootstrap=0).fit(p)
    assert law.n_points_ == 10
    assert "only 10 points for 4 parameters (fewer than 3x): the fit is fragile" in law.warnings_


def test_backtest_inside_ci_counts_the_observed_losses(tmp_path):
    """CF6 (curvefit.py:226, the prediction, not the loss, tested against its interval):
    a held-out run 20% above the law has no point inside the interval."""
    p = curves_csv(tmp_path / "c.csv", _law25, ("cosine", "constant", "drop"), every=400,
                   marks={"drop": 1.2})  # fmt: skip
    law = ScalingLaw("lr-annealing", run_cols=["run"], holdout_where=["run=drop"],
                     bootstrap=20, seed=0).fit(p)  # fmt: skip
    assert law.backtest_["mean_rel_error"] < -0.1
    assert law.backtest_["inside_ci"] == 0.0


def test_curve_prediction_interval_is_the_central_percentiles_of_the_draws(tmp_path):
    """CF7 (curvefit.py:311, q = 100(1 − level) without /2): the 95% interval was the 5th to
    95th percentile. Reference: each bootstrap draw's curve predicted on its own."""
    p = curves_csv(tmp_path / "c.csv", _law25, ("cosine", "constant", "drop"), every=400)
    law = ScalingLaw("lr-annealing", run_cols=["run"], bootstrap=40, seed=0).fit(p)
    spec, steps = "warmup(300, 3e-4) + cosine(3700, 3e-5)", [1000, 3999]
    _, lo, hi = law.predict(steps, spec, return_ci=True, level=0.9)
    point, samples = dict(law.params_), law.samples_
    draws = []
    for i in range(len(next(iter(samples.values())))):
        law.params_ = {k: float(samples[k][i]) for k in point}
        if all(np.isfinite(list(law.params_.values()))):
            draws.append(law.predict(steps, spec))
    law.params_ = point
    ref_lo, ref_hi = np.percentile(np.array(draws), [5, 95], axis=0)
    assert np.allclose(lo, ref_lo, rtol=1e-6) and np.allclose(hi, ref_hi, rtol=1e-6)


def test_predict_refuses_the_step_just_past_a_schedule_spec(tmp_path):
    """CF9 (curvefit.py:237, <= -> <): a spec of 4000 steps gives the LR at steps 0..3999;
    the mutant predicted step 4000 from a padded LR, the guess the check exists to refuse."""
    from scalinglab.errors import ConfigError

    p = curves_csv(tmp_path / "c.csv", _law25, ("cosine", "drop"), every=400)
    law = ScalingLaw("lr-annealing", run_cols=["run"], bootstrap=0).fit(p)
    spec = "warmup(300, 3e-4) + cosine(3700, 3e-5)"
    assert np.isfinite(law.predict([3999], spec)).all()
    with pytest.raises(ConfigError, match="has 4000 steps; predicting step 4000 needs"):
        law.predict([4000], spec)
