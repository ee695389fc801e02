"""The Python API as a notebook uses it (from an audit): predictions refuse inputs that
are no sizes (a negative N predicted NaN, N = 0 inf), a failed refit leaves the fit as it
was, from_params refuses parameters that are no finite numbers, a bool column is no
count, duplicate DataFrame columns are named."""

import json

import numpy as np
import pytest

from scalinglab import plan_run
from scalinglab.errors import ConfigError, DataError, ExtrapolationWarning, FitError
from scalinglab.laws import ScalingLaw, load_fit
from tests.laws.synth import chinchilla_law

TRUE = {"E": 1.7, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.28}


def table(n=24):
    rng = np.random.default_rng(0)
    N = np.geomspace(1e6, 1e9, n)
    D = 20 * N * np.exp(rng.uniform(-1.5, 1.5, n))
    L = ScalingLaw.from_params("chinchilla", **TRUE).predict(N=N, D=D)
    return {"N": N, "D": D, "loss": L * (1 + 0.002 * rng.standard_normal(n))}


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"N": -1e9, "D": 1e10}, "predict: N is -1e+09; N must be finite numbers > 0"),
        ({"N": 0, "D": 1e10}, "predict: N is 0; N must be finite numbers > 0"),
        ({"N": 1e9, "D": np.inf}, "predict: D is inf; D must be finite numbers > 0"),
        ({"N": [1e9, np.nan], "D": 1e10}, "predict: N[1] is nan; N must be finite numbers > 0"),
        ({"N": "abc", "D": 1e10}, "predict: N must be numbers, got 'abc'"),
        ({"N": True, "D": 1e10}, "predict: N must be numbers, got True"),
        ({"N": [1e9, 2e9, 3e9], "D": [1e10, 2e10]},
         "predict: N of shape (3,) and D of shape (2,) do not broadcast to one shape"),
    ],
)  # fmt: skip
def test_predict_refuses_inputs_that_are_no_sizes(kw, message):
    law = ScalingLaw.from_published("hoffmann2022")
    with pytest.raises(ConfigError) as exc:
        law.predict(**kw)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"U": 1e9}, "predict: U is for law 'data-constrained'; 'chinchilla' has no U"),
        ({"kind": "predict"}, "kind='predict': not one of confidence, prediction"),
        ({"level": 95}, "level=95.0: must be in (0, 1)"),
        ({"steps": [10, 20]},
         "predict: steps and lr_schedule are for the curve laws (multi-power, lr-annealing), "
         "not 'chinchilla'"),
    ],
)  # fmt: skip
def test_predict_refuses_an_argument_it_would_ignore(kw, message):
    """Without return_ci a misspelt kind or a level of 95 passed unseen, and U (unique
    tokens) or steps given to a chinchilla fit were dropped: the loss came back as if
    they had not been given."""
    law = ScalingLaw.from_published("hoffmann2022")
    with pytest.raises(ConfigError) as exc:
        law.predict(N=1e9, D=2e10, **kw)
    assert str(exc.value) == message


def test_predict_takes_numbers_of_any_numeric_kind():
    law = ScalingLaw.from_published("hoffmann2022")
    one = law.predict(N=1e9, D=2e10)
    assert law.predict(N=np.float32(1e9), D=int(2e10)) == pytest.approx(one, rel=1e-7)
    assert law.predict(N=np.array([1e9, 1e9]), D=2e10).tolist() == [one, one]


def test_a_failed_refit_leaves_the_fit_as_it_was():
    t = table()
    law = ScalingLaw("chinchilla", bootstrap=0).fit(t)
    before = law.to_json()
    with pytest.raises(FitError, match="2 points for law 'chinchilla'"):
        law.fit({k: v[:2] for k, v in t.items()})
    assert law.to_json() == before and law.points_.N.size == 24


def test_from_params_refuses_parameters_that_are_no_finite_numbers():
    with pytest.raises(ConfigError, match=r"E=nan: parameters are finite numbers"):
        ScalingLaw.from_params("chinchilla", **{**TRUE, "E": np.nan})
    with pytest.raises(ConfigError, match=r"E='1.7': parameters are finite numbers"):
        ScalingLaw.from_params("chinchilla", **{**TRUE, "E": "1.7"})
    # alpha + beta = 0 divided by zero in the derived a, b (a ZeroDivisionError)
    with pytest.raises(ConfigError, match=r"alpha=-0.3, beta=0.3: the exponents are > 0"):
        ScalingLaw.from_params("chinchilla", **{**TRUE, "alpha": -0.3, "beta": 0.3})


def test_from_params_refuses_scales_not_above_zero_and_a_negative_floor():
    """A=-480 planned a run of -1e9 parameters (with a ComplexWarning), B=0 raised
    ZeroDivisionError, a negative N_c predicted nan, a negative E a negative loss."""
    with pytest.raises(ConfigError) as e:
        ScalingLaw.from_params("chinchilla", **{**TRUE, "A": -480, "B": 0})
    assert str(e.value) == "from_params('chinchilla'): A=-480, B=0: must be > 0"
    with pytest.raises(ConfigError) as e:
        ScalingLaw.from_params("chinchilla", **{**TRUE, "E": -1.0})
    assert str(e.value) == "from_params('chinchilla'): E=-1.0: must be >= 0 (the irreducible loss)"
    with pytest.raises(ConfigError, match=r"^from_params\('power-n'\): N_c=-5.0: must be > 0$"):
        ScalingLaw.from_params("power-n", alpha=0.07, N_c=-5.0)
    with pytest.raises(ConfigError, match=r"^from_params\('isoflop'\): k_N=-0.1: must be > 0$"):
        ScalingLaw.from_params("isoflop", k_N=-0.1, a=0.5, k_D=1.6, b=0.5)
    assert ScalingLaw.from_params("chinchilla", **{**TRUE, "E": 0}).predict(N=1e9, D=1e10) > 0


def test_load_fit_takes_to_json_and_plan_run_names_the_published_laws():
    law = ScalingLaw("chinchilla", bootstrap=0).fit(table())
    again = load_fit(law.to_json())
    assert again.predict(N=1e9, D=2e10) == law.predict(N=1e9, D=2e10)
    with pytest.raises(ConfigError, match=r"plan_run\('besiroglu2025'\): neither a fit.json nor a "
                       r"published law \(hoffmann2022, besiroglu2024, kaplan2020\)"):  # fmt: skip
        plan_run("besiroglu2025", flops=1e21)


def test_load_fit_and_plan_run_take_a_fit_json_text():
    """json.dumps(law.to_json()) was read as a file name: load_fit's error quoted the whole
    text before 'cannot read (File name too long)', plan_run raised a bare OSError."""
    law = ScalingLaw.from_params("chinchilla", **TRUE)
    text = json.dumps(law.to_json())
    assert load_fit(text).predict(N=1e9, D=2e10) == law.predict(N=1e9, D=2e10)
    assert plan_run(" " + text, flops=1e21) == plan_run(law, flops=1e21)
    with pytest.raises(DataError) as e:
        load_fit('{"law": "chinchilla"}')
    assert str(e.value) == "<JSON text>: not a scalinglab fit.json (no kind 'scalinglab.fit')"
    with pytest.raises(DataError, match=r"^load_fit: a JSON text that is not a fit.json \("):
        load_fit("{not json")


def test_a_bool_column_is_no_count_and_duplicate_columns_are_named():
    pd = pytest.importorskip("pandas", reason="the [dataframe] extra is not installed")
    df = pd.DataFrame(table())
    with pytest.raises(DataError, match=r"row 1, column 'loss': True is not a number"):
        ScalingLaw("chinchilla", bootstrap=0).fit(df.assign(loss=True))
    with pytest.raises(DataError, match=r"duplicate column names in the header: 'loss' at "
                       r"columns 3, 4"):  # fmt: skip
        ScalingLaw("chinchilla", bootstrap=0).fit(pd.concat([df, df[["loss"]]], axis=1))


def test_a_fit_through_every_point_claims_no_interval():
    """5 points for chinchilla's 5 parameters: the fit passes through each (objective 1e-29),
    every resample reproduced it and the noise was measured as 1e-15: zero-width intervals
    (`E 3.0396 [3.0396, 3.0396]`) and a new run's loss 'known' to 4 digits."""
    t = {k: v[::5] for k, v in table(25).items()}
    law = ScalingLaw("chinchilla", bootstrap=20).fit(t)
    assert law.n_points_ == 5 and law.ci_ == {} and law.samples_ is None
    assert any("5 points for 5 parameters: the fit passes through every point" in w
               for w in law.warnings_)  # fmt: skip
    assert law.noise_ == {"source": "none", "sigma": None, "dof": 0}
    with pytest.raises(FitError, match="as many parameters as points: no residual"):
        law.predict(N=1e9, D=2e10, return_ci=True, kind="prediction")
    with pytest.warns(ExtrapolationWarning, match="1.5 decades above the largest C fitted"):
        assert "loss_pi" not in plan_run(law, params=1e9, flops=1e20)
    law = ScalingLaw("chinchilla", bootstrap=20).fit({k: v[::4] for k, v in table(24).items()})
    assert set(law.ci_) >= {"E", "alpha"} and law.noise_["dof"] == 1  # 6 points: as before


@pytest.mark.parametrize("k", [1, 2, 9, -1])
def test_too_few_resamples_for_an_interval_are_refused(k, capsys, tmp_path):
    """--bootstrap 2 printed '95% intervals' that left out the fit itself (alpha 0.349 in
    [0.319, 0.333]): 0 is no interval, 10 the fewest resamples."""
    with pytest.raises(ConfigError, match=rf"bootstrap must be 0 \(no intervals\) or >= 10 .* {k}"):
        ScalingLaw("chinchilla", bootstrap=k)
    path = tmp_path / "t.csv"
    path.write_text("params,tokens,loss\n1e6,1e8,3\n")
    from scalinglab.cli import main

    assert main(["fit", str(path), "--bootstrap", str(k)]) == 2
    assert capsys.readouterr().err == (
        f"error: --bootstrap must be 0 (no intervals) or >= 10 resamples, got {k}\n"
    )
    assert ScalingLaw("chinchilla", bootstrap=10).settings["bootstrap"] == 10


def test_a_data_constrained_fit_through_every_run_claims_no_interval():
    """7 runs for the data-constrained law's 7 parameters: as for chinchilla above, every
    resample reproduced the fit and its intervals were of zero width."""
    rng = np.random.default_rng(0)
    N = np.array([1e7, 3e7, 1e8, 3e8, 1e9, 1e7, 1e8, 3e8])
    D = np.array([2e8, 6e8, 2e9, 6e9, 2e10, 2e9, 4e9, 3e9])
    U = np.full(8, 1e9)
    Dp = U + 15 * U * (1 - np.exp(-np.clip(D / U - 1, 0, None) / 15))
    L = (1.9 + 400 / N**0.34 + 1500 / Dp**0.34) * np.exp(rng.normal(0, 0.01, 8))
    law = ScalingLaw("data-constrained", bootstrap=20).fit(
        {"N": N[:7], "D": D[:7], "U": U[:7], "L": L[:7]}
    )
    assert law.ci_ == {} and law.samples_ is None and law.noise_["sigma"] is None
    assert "7 points for 7 parameters: the fit passes through every point" in law.warnings_[-1]
    law = ScalingLaw("data-constrained", bootstrap=20).fit({"N": N, "D": D, "U": U, "L": L})
    assert set(law.ci_) >= {"E", "alpha"} and law.noise_["dof"] == 1  # 8 runs: intervals


@pytest.mark.parametrize(
    ("law", "kw", "message"),
    [
        ("chinchilla", {"chance": 0.25},
         "chance 0.25 does not apply to law 'chinchilla' (it applies to task-sigmoid)"),
        ("chinchilla", {"curvature": "shared"},
         "curvature shared does not apply to law 'chinchilla' (it applies to isoflop)"),
        ("chinchilla", {"floor": False},
         "floor=False does not apply to law 'chinchilla' (it applies to power-n, power-d, "
         "power-c, task-sigmoid, task-power)"),
        ("power-c", {"envelope_points": 50},
         "envelope_points 50 does not apply to law 'power-c' (it applies to envelope)"),
        ("isoflop", {"lr_fill": "previous"},
         "lr_fill previous does not apply to law 'isoflop' (it applies to multi-power, "
         "lr-annealing)"),
        ("isoflop", {"huber_delta": 0.1},
         "huber_delta 0.1 does not apply to law 'isoflop' (it applies to chinchilla, kaplan, "
         "power-n, power-d, power-c, data-constrained, nd-interaction, multi-power, "
         "lr-annealing, task-sigmoid, task-power)"),
        ("envelope", {"prune": False},
         "prune=False does not apply to law 'envelope' (it applies to chinchilla, kaplan, "
         "power-n, power-d, power-c, data-constrained, nd-interaction, multi-power, "
         "lr-annealing, task-sigmoid, task-power)"),
        ("task-power", {"boot_starts": 3},
         "boot_starts 3 does not apply to law 'task-power' (it applies to chinchilla, kaplan, "
         "power-n, power-d, power-c, data-constrained, nd-interaction, multi-power, "
         "lr-annealing)"),
        ("multi-power", {"calibrate": "C"},
         "calibrate C does not apply to law 'multi-power' (it applies to chinchilla, kaplan, "
         "power-n, power-d, power-c, data-constrained, nd-interaction)"),
    ],
)  # fmt: skip
def test_a_fit_setting_the_law_does_not_use_is_refused_when_given(law, kw, message):
    """They were ignored: chinchilla given chance=0.25 or floor=False fitted as without,
    isoflop given huber_delta, boot_starts or calibrate, the envelope given prune=False."""
    with pytest.raises(ConfigError) as exc:
        ScalingLaw(law, **kw)
    assert str(exc.value) == message
    ScalingLaw.from_settings(law, kw)  # a study's [fit] table holds every law's settings


def test_a_task_law_takes_floor_false_as_a_study_gives_it():
    """The task laws fit their power law in C with floor=False from a study's [fit]
    table, yet ScalingLaw("task-power", floor=False) said floor did not apply to them."""
    C = np.geomspace(1e15, 1e19, 10)
    data = {"flops": C, "acc": np.exp(-((1e16 / C) ** 0.4))}
    law = ScalingLaw("task-power", floor=False, metric_col="acc", bootstrap=0).fit(data)
    assert "E" not in law.params_ and law.params_["alpha"] == pytest.approx(0.4, rel=1e-3)
    assert "E" in ScalingLaw("task-power", metric_col="acc", bootstrap=0).fit(data).params_


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"step_col": "iter"},
         "step_col iter does not apply to law 'chinchilla' (it applies to multi-power, "
         "lr-annealing)"),
        ({"schedule_col": "sched"},
         "schedule_col sched does not apply to law 'chinchilla' (it applies to multi-power, "
         "lr-annealing)"),
        ({"u_col": "U"},
         "u_col U does not apply to law 'chinchilla' (it applies to data-constrained)"),
    ],
)  # fmt: skip
def test_a_table_setting_the_law_does_not_use_is_refused(kw, message):
    """u_col on chinchilla said "no such column" rather than that it does not apply."""
    with pytest.raises(ConfigError) as exc:
        ScalingLaw("chinchilla", bootstrap=0, **kw).fit(table())
    assert str(exc.value) == message


def test_settings_for_several_laws_are_kept_by_from_settings():
    """A study's one [fit] table serves every law: its settings reach each fit whole."""
    kw = {"bootstrap": 0, "curvature": "shared", "chance": 0.25, "floor": False}
    law = ScalingLaw.from_settings("chinchilla", kw).fit(table())
    plain = ScalingLaw("chinchilla", bootstrap=0).fit(table())
    assert law.params_ == plain.params_
    assert law.settings["curvature"] == "shared"
    assert ScalingLaw("chinchilla", floor=True, chance=None).settings["floor"] is True


def test_the_command_line_refuses_a_fit_flag_the_law_does_not_use(tmp_path, capsys):
    from scalinglab.cli import main

    path = tmp_path / "t.csv"
    t = table(8)
    path.write_text(
        "N,D,loss\n" + "".join(f"{n},{d},{lo}\n" for n, d, lo in zip(*t.values(), strict=True))
    )
    for cmd, flags, err in [
        ("fit", ["--no-floor"], "--no-floor does not apply to law 'chinchilla' (it applies to "
         "power-n, power-d, power-c, task-sigmoid, task-power)"),
        ("backtest", ["--chance", "0.5"], "--chance 0.5 does not apply to law 'chinchilla' (it "
         "applies to task-sigmoid)"),
    ]:  # fmt: skip
        assert main([cmd, str(path), "--law", "chinchilla", "--bootstrap", "0", *flags]) == 2
        assert capsys.readouterr().err == f"error: {err}\n"


@pytest.mark.parametrize(
    ("law", "params", "kw", "message"),
    [
        ("chinchilla", TRUE, {"N": 1e9, "D": 2e10, "C": 1e21},
         "predict: law 'chinchilla' predicts from N, D; C is not used"),
        ("power-n", {"E": 1.7, "alpha": 0.3, "N_c": 1e10}, {"N": 1e9, "D": 2e10},
         "predict: law 'power-n' predicts from N; D is not used"),
        ("power-d", {"E": 1.7, "alpha": 0.3, "D_c": 1e10}, {"N": 1e9, "D": 2e10},
         "predict: law 'power-d' predicts from D; N is not used"),
        ("power-c", {"E": 1.7, "alpha": 0.05, "C_c": 1e10}, {"N": 1e9, "C": 1e20},
         "predict: law 'power-c' predicts from C; N is not used"),
        ("task-power", None, {"N": 1e8, "D": 2e9, "C": 1e18},
         "predict: law 'task-power' predicts from C, or from N and D as C = 6ND; give C or "
         "N and D, not both"),
    ],
)  # fmt: skip
def test_predict_refuses_an_input_the_law_does_not_use(law, params, kw, message):
    """The input was dropped without a word: power-n given D, or a task law given a C
    unlike 6ND, predicted as if it had not been given."""
    if params is None:  # a task law: fitted (from_params makes none)
        C = np.geomspace(1e15, 1e19, 10)
        fitted = ScalingLaw(law, metric_col="acc", bootstrap=0)
        fitted.fit({"flops": C, "acc": np.exp(-(0.2 + (1e16 / C) ** 0.4))})
    else:
        fitted = ScalingLaw.from_params(law, **params)
    with pytest.raises(ConfigError) as exc:
        fitted.predict(**kw)
    assert str(exc.value) == message
    assert fitted.predict(**fitted.inputs_used(**kw)) > 0


def test_a_missing_value_is_called_missing(tmp_path):
    """It read "None is not a number" (a CSV's empty cell: "'' is not a number")."""
    pd = pytest.importorskip("pandas", reason="pandas is in the [dataframe] extra")
    from scalinglab.laws.table import read_table

    rows = {"N": [1e6, 2e6, 4e6], "D": [1e8] * 3, "loss": [3.0, None, 2.8]}
    path = tmp_path / "t.csv"
    path.write_text("N,D,loss\n1e6,1e8,3.0\n2e6,1e8,\n4e6,1e8,2.8\n")
    frame = pd.DataFrame(rows).astype({"loss": "Float64"})  # pandas' NA
    for table, source in [(rows, "<dict>"), (path, f"{path}"), (frame, "<pandas.DataFrame>")]:
        with pytest.raises(DataError) as e:
            read_table(table)
        line = " (line 3)" if table is path else ""
        assert str(e.value) == f"{source}: row 2{line}, column 'loss': missing value"


def test_repr_shows_the_first_warning():
    """It said "3 warning(s): .warnings_": a notebook user saw none of them."""
    law = ScalingLaw("chinchilla", bootstrap=0).fit(table(8))
    assert repr(law).splitlines()[-1] == (
        "  warning: only 8 points for 5 parameters (fewer than 3x): the fit is fragile "
        "(+ 2 more); all in .warnings_"
    )
    law.warnings_ = law.warnings_[1:2]  # a long one is cut at 100 characters
    assert repr(law).splitlines()[-1] == (
        "  warning: the loss column 'loss' reaches 21.42, above 20 nats per token (a uniform "
        "guess over 1e8 tokens is...; all in .warnings_"
    )


def test_too_many_resamples_are_refused_before_any_fit(capsys, tmp_path):
    """`report --bootstrap 1000000000` grew until the OS killed it (22 GiB of draws); fit's
    and report's --bootstrap have one ceiling, named before anything is fitted."""
    from scalinglab.cli import main

    path = tmp_path / "t.csv"
    path.write_text("params,tokens,loss\n1e6,1e8,3\n")
    for argv in (["fit", str(path)], ["report", str(tmp_path)]):
        assert main([*argv, "--bootstrap", "100001"]) == 2
        assert capsys.readouterr().err == (
            "error: --bootstrap 100001: at most 100,000 resamples (each is a refit, its draws "
            "kept in memory; the default is 1000)\n"
        )
    assert ScalingLaw("chinchilla", bootstrap=100_000).settings["bootstrap"] == 100_000


# Known answers for mutations of laws/view.py and laws/estimator.py's loading that every
# test passed (a mutation audit): each fails on its mutation.


@pytest.fixture(scope="module")
def isoflop_law():
    from tests.laws.test_isoflop_envelope import isoflop_table

    return ScalingLaw("isoflop", bootstrap=0).fit(isoflop_table(np.random.default_rng(0)))


def test_isoflop_repr_counts_its_per_budget_values(isoflop_law):
    """VW5 (view.py:87, the global count shown as the per-budget one): 5 budgets x
    (N_opt, D_opt, L_opt, k) = 20 per-budget values; the mutant said 6 (a, b, k_N, ...)."""
    assert "  (+ 20 per-budget values: .summary())" in repr(isoflop_law).splitlines()


def test_html_table_header_has_one_cell_per_column(isoflop_law):
    """VW8 (view.py:114, an extra header cell): each row has 5 cells, so has the header."""
    import re

    html = isoflop_law._repr_html_()
    head = re.search(r"<thead>(.*?)</thead>", html).group(1)
    rows = re.findall(r"<tr><td>.*?</tr>", html)
    assert len(rows) == len(isoflop_law.params_)
    assert {r.count("<td>") for r in rows} == {head.count("<th>")} == {5}


def test_load_fit_refuses_a_data_range_given_largest_first():
    """ES9 (estimator.py:1281, the order check dropped): C_range [1e22, 1e18] loaded, and a
    prediction at C = 1.2e18, inside it, warned '8.3e+03x below the smallest C fitted'."""
    from scalinglab.laws import load_fit

    obj = ScalingLaw.from_published("hoffmann2022").to_json()
    obj["data"]["C_range"] = [1e22, 1e18]
    with pytest.raises(
        DataError, match=r"data\.C_range is \[1e\+22, 1e\+18\], not \[smallest, largest\]"
    ):
        load_fit(obj)


def test_load_fit_without_converged_reads_it_as_converged():
    """ES12 (estimator.py:1409, default True -> False): a fit.json written before the key
    existed came back converged_ False, and was re-saved so."""
    from scalinglab.laws import load_fit

    obj = ScalingLaw.from_published("hoffmann2022").to_json()
    del obj["converged"]
    assert load_fit(obj).converged_ is True


def test_a_fit_of_fewer_points_than_parameters_is_refused():
    N = np.array([1e7, 1e8, 1e9, 3e9])
    D = np.array([1e9, 1e10, 1e9, 3e10])
    with pytest.raises(FitError, match="4 points for law 'chinchilla', which has 5 parameters"):
        ScalingLaw("chinchilla", bootstrap=0).fit({"N": N, "D": D, "L": chinchilla_law(N, D)})


def test_a_law_whose_input_never_varies_is_refused():
    D = np.geomspace(1e9, 1e10, 6)
    with pytest.raises(FitError, match=r"same model size N \(1e\+08\)"):
        ScalingLaw("chinchilla", bootstrap=0).fit(
            {"N": np.full(6, 1e8), "D": D, "L": chinchilla_law(1e8, D)}
        )
    with pytest.raises(FitError, match=r"same compute C \(1e\+19\)"):
        ScalingLaw("power-c", bootstrap=0).fit({"C": np.full(4, 1e19), "L": [3.0, 2.9, 2.8, 2.7]})
