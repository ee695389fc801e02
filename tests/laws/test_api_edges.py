"""The notebook API at its edges: in-memory tables read as the CLI reads files, laws from
parameters asked what they cannot answer, and bad arguments named in one line."""

import warnings

import numpy as np
import pandas as pd
import pytest

from scalinglab import ScalingLaw, load_fit, plan_run
from scalinglab.api import run_config
from scalinglab.errors import ConfigError, DataError, ExtrapolationWarning, FitError


def chinchilla_rows(noise=0.01):
    N = np.repeat([1e7, 3e7, 1e8, 3e8, 1e9], 4)
    D = np.tile([2e8, 1e9, 5e9, 2e10], 5)
    rng = np.random.default_rng(0)
    L = (1.8 + 400 / N**0.34 + 2000 / D**0.37) * np.exp(rng.normal(0, noise, 20))
    return {"N": N, "D": D, "loss": L}


def test_an_in_memory_n_d_table_has_c_for_calibration_and_the_compute_range():
    rows = chinchilla_rows()
    law = ScalingLaw("chinchilla", bootstrap=20, calibrate="C").fit(rows)  # was an AxisError
    C = 6 * rows["N"] * rows["D"]
    assert law.data_["C_range"] == [C.min(), C.max()]
    assert law.calibration_ is not None and law.calibration_["by"] == "C"
    frame = ScalingLaw("chinchilla", bootstrap=0).fit(pd.DataFrame(rows))
    assert frame.data_["C_range"] == [C.min(), C.max()]  # plan warns of extrapolation from it


def test_a_prediction_interval_does_not_depend_on_the_inputs_beside_it():
    law = ScalingLaw("chinchilla", bootstrap=30).fit(chinchilla_rows())
    _, lo, hi = law.predict(N=np.full(3, 3e9), D=np.full(3, 6e10), return_ci=True,
                            kind="prediction")  # fmt: skip
    assert len(set(lo)) == 1 and len(set(hi)) == 1
    _, lo1, hi1 = law.predict(N=3e9, D=6e10, return_ci=True, kind="prediction")
    assert (lo1, hi1) == (lo[0], hi[0])
    one, two = law.optimal(1e21), law.optimal([1e19, 1e21])[1]
    assert one["loss_pi"] == two["loss_pi"]


def test_run_config_preset_over_a_run_config_takes_the_presets_shape():
    r = run_config(preset="gpt-tiny", steps=100, data="x")
    m = run_config(r, preset="gpt-mini").model
    mini = run_config(preset="gpt-mini", steps=100, data="x").model
    assert (m.n_layer, m.n_embd, m.n_head, m.block_size) == (
        mini.n_layer, mini.n_embd, mini.n_head, mini.block_size)  # fmt: skip
    assert m.n_layer != r.model.n_layer
    assert run_config(r, preset="gpt-mini", n_layer=2).model.n_layer == 2  # keywords win


def test_laws_from_parameters_say_what_they_cannot_answer():
    law = ScalingLaw.from_published("besiroglu2024")
    with pytest.raises(FitError, match="no noise model for prediction intervals"):
        law.predict(N=1e9, D=2e10, return_ci=True, kind="prediction")  # was AttributeError
    with pytest.raises(ConfigError, match=r"from_params\('data-constrained'\): a law built"):
        ScalingLaw.from_params("data-constrained")  # was KeyError
    iso = ScalingLaw.from_params("isoflop", k_N=0.1, a=0.5, k_D=1.6, b=0.5)
    with pytest.raises(ConfigError, match="has no loss law L_opt = k_L"):
        plan_run(iso, target_loss=2.0)  # was KeyError 'k_L'
    import matplotlib

    matplotlib.use("Agg")
    ax = iso.plot()  # was "Data cannot be log-scaled": N_opt(C) over a default range
    (line,) = ax.lines
    C, N = line.get_data()
    assert np.allclose(N, 0.1 * C**0.5)


def test_plot_refuses_an_ax_that_is_not_a_matplotlib_axes():
    """`law.plot(ax="x")` raised a bare AttributeError from deep in matplotlib's code."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    law = ScalingLaw.from_published("hoffmann2022")
    fig, ax = plt.subplots()
    for bad, shown in (("x", "str 'x'"), (fig, f"Figure {fig!r}"), ([ax], f"list {[ax]!r}")):
        with pytest.raises(ConfigError) as e:
            law.plot(ax=bad)
        assert str(e.value) == f"ax must be a matplotlib Axes (plt.subplots()[1]), got {shown}"
    assert len(ax.lines) == 0  # nothing drawn before the refusal
    assert law.plot(ax=ax) is ax and len(ax.lines) == 4
    plt.close(fig)


def test_rows_are_named_by_their_number_in_the_input_after_filters():
    df = pd.DataFrame({"status": ["failed", "failed", "completed", "completed", "completed"],
                       "params": [1e7, 1e7, 1e7, 3e7, 1e8], "tokens": [1e9] * 5,
                       "loss": [float("nan"), 9.0, 3.5, -3.2, 3.0]})  # fmt: skip
    with pytest.raises(DataError, match=r"^<pandas.DataFrame>: row 4, column 'loss'"):
        ScalingLaw("power-n", bootstrap=0).fit(df)  # it said row 2: the filtered index


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: load_fit("."), DataError, "a folder, not a fit.json"),
        (lambda: load_fit([1, 2]), ConfigError, "a fit.json path or a fit's to_json() dict, not list"),
        (lambda: load_fit({"kind": "scalinglab.fit", "format_version": 1, "law": "chinchilla",
                           "settings": {}, "params": [1, 2]}), DataError, "malformed fit.json"),
        (lambda: run_config("."), ConfigError, "a folder, not a TOML config file"),
        (lambda: run_config(123), ConfigError, "config is a TOML path or a RunConfig, not int"),
        (lambda: plan_run(3, flops=1e21), ConfigError, "law is a ScalingLaw, a fit.json path"),
        (lambda: ScalingLaw("envelope").fit(pd.DataFrame({"a": [1]})), DataError,
         "or Curves, not a DataFrame"),
        (lambda: ScalingLaw("envelope").fit([{"a": 1}]), DataError, "not a list of dict"),
        (lambda: ScalingLaw("envelope").fit("nosuch.csv"), DataError, "nosuch.csv: no such file"),
        (lambda: ScalingLaw.from_published("hoffmann2022").optimal(np.array([[1e21, 1e22]])),
         ConfigError, "a number or a list of numbers, got an array of shape (1, 2)"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line_errors(call, error, message):
    with pytest.raises(error) as e:
        call()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_python_ints_beyond_int64_are_numbers():
    law = ScalingLaw.from_published("hoffmann2022")
    assert law.predict(N=10**20, D=10**21) == law.predict(N=1e20, D=1e21)


def test_predict_with_return_ci_gives_three_floats_or_three_arrays():
    """A scalar call returned a float for the value and two 0-d arrays for the bounds."""
    law = ScalingLaw("chinchilla", bootstrap=20).fit(chinchilla_rows())
    for kind in ("confidence", "prediction"):
        one = law.predict(N=7e9, D=1.4e11, return_ci=True, kind=kind)
        assert [type(x) for x in one] == [float, float, float], kind
        assert one[1] < one[0] < one[2]
        grid = law.predict(N=[[7e9], [1e10]], D=[1.4e11, 2e11, 3e11], return_ci=True, kind=kind)
        assert [(type(x), x.shape) for x in grid] == [(np.ndarray, (2, 3))] * 3, kind
        assert grid[0][0, 0] == pytest.approx(one[0], rel=1e-12)
    task = ScalingLaw("task-power", metric_col="acc", bootstrap=10)
    C = np.geomspace(1e15, 1e19, 10)
    acc = np.exp(-(0.2 + (1e16 / C) ** 0.4)) * np.exp(np.random.default_rng(0).normal(0, 0.01, 10))
    task.fit({"flops": C, "acc": acc})
    assert [type(x) for x in task.predict(C=1e20, return_ci=True)] == [float, float, float]
    assert [x.shape for x in task.predict(C=[1e19, 1e20], return_ci=True)] == [(2,)] * 3


def test_predict_warns_once_far_below_or_far_above_the_data_fitted():
    """predict(N=7, D=1400) of a law fitted on N 1e7..1e9 (a units mix-up: 7B meant) gave a
    number without a word; far below the data, or four decades above, now warns."""
    law = ScalingLaw("chinchilla", bootstrap=0).fit(chinchilla_rows())  # N 1e7..1e9, D 2e8..2e10
    with pytest.warns(ExtrapolationWarning) as got:
        value = law.predict(N=7, D=1400)
    assert len(got) == 1 and got[0].filename == __file__  # the caller's line
    assert str(got[0].message) == (
        "predict: N=7 is 1.4e+06x below the smallest N fitted (1e+07); D=1400 is 1.4e+05x "
        "below the smallest D fitted (2e+08); check the units"
    )
    assert np.isfinite(value) and value > 10  # still the law's number
    with pytest.warns(ExtrapolationWarning) as got:
        law.predict(N=np.geomspace(1e8, 1e14, 1000), D=2e10)  # once per call, not per element
    assert [str(w.message) for w in got] == [
        "predict: N=1e+14 is 1e+05x above the largest N fitted (1e+09); check the units"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        law.predict(N=7e10, D=1.4e12)  # 70x beyond the largest runs: what a law is for
        law.predict(N=[2e6, 1e13], D=[3e7, 2e14])  # within 10x below, 1e4x above
        law.predict(N=7, D=1400, check_range=False)
        ScalingLaw.from_published("besiroglu2024").predict(N=7, D=1400)  # no data, no range
        law.optimal(1e30, check_range=False)  # plan names its own extrapolation
    # a loaded fit knows the N and D ranges fit.json records: the same warning
    with pytest.warns(ExtrapolationWarning) as loaded:
        load_fit(law.to_json()).predict(N=7, D=1400, return_ci=False)
    assert [str(w.message) for w in loaded] == [
        "predict: N=7 is 1.4e+06x below the smallest N fitted (1e+07); D=1400 is 1.4e+05x "
        "below the smallest D fitted (2e+08); check the units"
    ]
    # a fit.json written before them knows the compute range alone: 6ND against it
    old = law.to_json()
    del old["data"]["N_range"], old["data"]["D_range"]
    with pytest.warns(ExtrapolationWarning, match=r"^predict: C=6ND=5\.88e\+04 is 2e\+11x below "
                      r"the smallest C fitted \(1\.2e\+16\); check the units$"):  # fmt: skip
        load_fit(old).predict(N=7, D=1400, return_ci=False)
    power = ScalingLaw("power-c", bootstrap=0).fit(
        {"C": np.geomspace(1e17, 1e19, 8), "L": 1.7 + (1e16 / np.geomspace(1e17, 1e19, 8)) ** 0.3}
    )
    with pytest.warns(ExtrapolationWarning, match=r"C=1e\+24 is 1e\+05x above the largest C"):
        power.predict(C=[1e18, 1e24])
    task = ScalingLaw("task-power", metric_col="acc", bootstrap=0)
    C = np.geomspace(1e15, 1e19, 10)
    task.fit({"flops": C, "acc": np.exp(-(0.2 + (1e16 / C) ** 0.4))})
    with pytest.warns(
        ExtrapolationWarning, match=r"C=6ND=4\.2e\+12 is 2.4e\+02x below the smallest C"
    ):
        task.predict(N=7e6, D=1e5)  # N and D unknown to the table: C = 6ND is checked


def test_a_fit_that_runs_a_parameter_off_to_infinity_names_it():
    """Six runs over a narrow range: the optimum in log space (a = ln A past 709) is
    A = inf in the law's own parameters, every prediction nan, and the fit stopped at
    '0 finite residuals: no run-to-run noise can be estimated'."""
    rows = {
        "params": [1e8, 2e8, 4e8, 8e8, 1e8, 3e8],
        "tokens": [1e9, 1e9, 2e9, 4e9, 4e9, 3e9],
        "loss": [3.0, 2.9, 2.8, 2.7, 2.75, 2.72],
    }
    law = ScalingLaw("chinchilla", bootstrap=0)
    with pytest.raises(
        FitError,
        match=r"^<dict>: law 'chinchilla' on 6 points ran A off to infinity \(E=.*, A=inf, "
        r".*\): these runs do not determine the law",
    ):
        law.fit(rows)
    assert not hasattr(law, "params_")  # a fit that raises leaves the estimator unfitted


def test_summary_gives_each_per_budget_value_its_own_stderr_and_html_its_level():
    from tests.laws.test_isoflop_envelope import isoflop_table

    law = ScalingLaw("isoflop", bootstrap=50, ci_level=0.8).fit(
        isoflop_table(np.random.default_rng(0))
    )
    rows = law.summary()
    per = rows[rows["budget"].notna()]
    assert len(per) > 0
    for _, r in per.iterrows():
        key = f"{r['parameter']}@{r['budget']:g}"
        assert r["stderr"] == law.stderr_[key] and np.isfinite(r["stderr"])
    assert "<th>80% interval</th>" in law._repr_html_()


def test_an_interval_is_the_percentile_interval_of_the_finite_draws_only():
    """Resamples that could not be refitted leave NaN draws; the interval and stderr come
    from the finite ones (np.percentile of them), not NaN."""
    rng = np.random.default_rng(0)
    alpha = np.concatenate([0.34 + 0.01 * rng.standard_normal(200), np.full(7, np.nan)])
    law = ScalingLaw("chinchilla")
    law.set_uncertainty({"alpha": alpha})
    finite = alpha[np.isfinite(alpha)]
    assert law.ci_["alpha"] == pytest.approx(list(np.percentile(finite, [2.5, 97.5])), rel=1e-12)
    assert np.isfinite(law.stderr_["alpha"])


def test_one_parameter_the_bootstrap_cannot_move_keeps_the_others_draws():
    """E's finite draws all equal the fit (the other resamples failed): E alone gets no
    interval; alpha's draws still give theirs, and the draws are kept for predictions."""
    rng = np.random.default_rng(1)
    alpha = np.concatenate([0.34 + 0.01 * rng.standard_normal(100), [np.nan] * 3])
    E = np.concatenate([np.full(100, 1.69), [np.nan] * 3])
    law = ScalingLaw("chinchilla")
    law.set_uncertainty({"alpha": alpha, "E": E})
    assert law.flat_draws_ == ["E"]
    assert "E" not in law.ci_ and "alpha" in law.ci_
    assert law.samples_ is not None
    assert set(law.samples_) == {"alpha", "E"}


def test_a_parameter_held_by_fix_keeps_its_exact_interval_when_some_resamples_fail():
    """A parameter given by --fix NAME=VALUE is known exactly: its interval is [VALUE,
    VALUE] even when some resamples failed (NaN), not 'the bootstrap could not move it'."""
    law = ScalingLaw("data-constrained", fix=["E=1.8"])
    E = np.array([1.8] * 20 + [np.nan] * 2)
    alpha = np.concatenate([np.linspace(0.3, 0.4, 20), [np.nan] * 2])
    law.set_uncertainty({"E": E, "alpha": alpha})
    assert law.flat_draws_ == []
    assert law.ci_["E"] == pytest.approx([1.8, 1.8])
