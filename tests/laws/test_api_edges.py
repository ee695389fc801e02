"""The notebook API at its edges: in-memory tables read as the CLI reads files, laws from
parameters asked what they cannot answer, and bad arguments named in one line."""

import numpy as np
import pandas as pd
import pytest

from scalinglab import ScalingLaw, load_fit, plan_run
from scalinglab.api import run_config
from scalinglab.errors import ConfigError, DataError, FitError


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
