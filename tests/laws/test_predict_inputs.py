"""predict at the edges of its inputs (from an audit): an empty input predicts an empty
result of its shape, as numpy's arithmetic does (the range check's min() of it raised a
bare ValueError, and so did the interval), and a flag that is not True or False is
refused naming it (return_ci="no" is truthy: it returned the interval)."""

import warnings

import numpy as np
import pytest

from scalinglab.errors import ConfigError, FitError
from scalinglab.laws import ScalingLaw
from tests.laws.synth import chinchilla_law, grid_table


def grid():
    """A small noisy grid of runs on a known chinchilla law."""
    rng = np.random.default_rng(0)
    return grid_table(chinchilla_law, np.geomspace(1e6, 1e8, 4), np.geomspace(2e7, 2e9, 4),
                      0.01, rng)  # fmt: skip


@pytest.fixture(scope="module")
def chin():
    return ScalingLaw("chinchilla", bootstrap=10, seed=0).fit(grid())


@pytest.fixture(scope="module")
def chin0():
    """Without a bootstrap: no confidence interval, a prediction interval of the noise."""
    return ScalingLaw("chinchilla", bootstrap=0).fit(grid())


@pytest.fixture(scope="module")
def powc():
    C = np.geomspace(1e17, 1e19, 8)
    L = (1.7 + (1e16 / C) ** 0.3) * np.exp(0.01 * np.random.default_rng(1).standard_normal(8))
    return ScalingLaw("power-c", bootstrap=10, seed=0).fit({"C": C, "L": L})


@pytest.fixture(scope="module")
def task():
    C = np.geomspace(1e15, 1e19, 12)
    acc = np.exp(-((3e16 / C) ** 0.3))
    return ScalingLaw("task-power", metric_col="acc", bootstrap=10, seed=0).fit(
        {"flops": C, "acc": acc}
    )


def _strict(law, **kw):
    """law.predict(**kw) with every warning an error (an empty input warns of nothing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return law.predict(**kw)


def _empty_like(a, shape):
    assert isinstance(a, np.ndarray)
    assert a.shape == shape
    assert a.dtype == np.float64


@pytest.mark.parametrize(
    ("fixture", "kw", "shape"),
    [
        ("chin", {"N": [], "D": []}, (0,)),
        ("chin", {"N": np.array([]), "D": np.array([])}, (0,)),
        ("chin", {"N": np.zeros((0, 3)), "D": 1e8}, (0, 3)),
        ("chin", {"N": [], "D": 1e8}, (0,)),
        ("powc", {"C": []}, (0,)),
        ("powc", {"C": np.zeros((2, 0))}, (2, 0)),
        ("task", {"C": []}, (0,)),
        ("task", {"N": [], "D": []}, (0,)),
    ],
)
@pytest.mark.parametrize("check_range", [True, False])
def test_an_empty_input_predicts_an_empty_array_of_its_shape(
    request, fixture, kw, shape, check_range
):
    law = request.getfixturevalue(fixture)
    _empty_like(_strict(law, **kw, check_range=check_range), shape)
    out = _strict(law, **kw, return_ci=True, check_range=check_range)
    assert isinstance(out, tuple) and len(out) == 3
    for a in out:
        _empty_like(a, shape)


@pytest.mark.parametrize(
    ("fixture", "kw", "shape"),
    [
        ("chin", {"N": [], "D": []}, (0,)),
        ("chin", {"N": np.zeros((0, 3)), "D": 1e8}, (0, 3)),
        ("chin0", {"N": [], "D": []}, (0,)),  # the noise alone, as for any input
        ("powc", {"C": []}, (0,)),
    ],
)
def test_an_empty_input_has_empty_prediction_intervals(request, fixture, kw, shape):
    law = request.getfixturevalue(fixture)
    for a in _strict(law, **kw, return_ci=True, kind="prediction"):
        _empty_like(a, shape)


def test_an_empty_input_is_refused_what_any_input_is(chin, chin0):
    # no bootstrap: the confidence interval is refused for no input as for one
    for N, D in (([1e7], [1e8]), ([], [])):
        with pytest.raises(FitError, match=r"^no bootstrap samples: fit with bootstrap > 0"):
            chin0.predict(N=N, D=D, return_ci=True)
    with pytest.raises(ConfigError, match=r"^law 'chinchilla' predicts from N, D$"):
        chin.predict(N=[], return_ci=True)
    with pytest.raises(ConfigError) as exc:
        chin.predict(N=[], D=[1e8, 2e8])
    assert str(exc.value) == (
        "predict: N of shape (0,) and D of shape (2,) do not broadcast to one shape"
    )


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"return_ci": "no"}, "return_ci='no': must be True or False"),
        ({"return_ci": 1}, "return_ci=1: must be True or False"),
        ({"return_ci": None}, "return_ci=None: must be True or False"),
        ({"check_range": "no"}, "check_range='no': must be True or False"),
        ({"check_range": 0}, "check_range=0: must be True or False"),
        ({"check_range": []}, "check_range=[]: must be True or False"),
    ],
)
@pytest.mark.parametrize("fixture", ["chin", "powc", "task"])
def test_predict_refuses_a_flag_that_is_not_true_or_false(request, fixture, kw, message):
    law = request.getfixturevalue(fixture)
    x = {"C": 1e18} if fixture != "chin" else {"N": 1e7, "D": 1e8}
    with pytest.raises(ConfigError) as exc:
        law.predict(**x, **kw)
    assert str(exc.value) == message


def test_flags_take_python_and_numpy_bools_and_nothing_else(chin):
    plain = chin.predict(N=1e7, D=1e8)
    assert chin.predict(N=1e7, D=1e8, return_ci=np.False_) == plain
    assert len(chin.predict(N=1e7, D=1e8, return_ci=np.True_)) == 3
    assert chin.predict(N=1e7, D=1e8, check_range=np.bool_(False)) == plain
    with pytest.raises(ConfigError) as exc:
        chin.prediction_draws(N=1e7, D=1e8, with_draws="yes")
    assert str(exc.value) == "with_draws='yes': must be True or False"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"level": "x"}, "level='x': must be a number in (0, 1)"),
        ({"level": "0.9"}, "level='0.9': must be a number in (0, 1)"),
        ({"N": [[1e7, 2e7], [3e7]]}, "predict: N must be numbers, got [[10000000.0, 20000000.0], [30000000.0]]"),
    ],
)  # fmt: skip
def test_predict_names_a_level_or_input_numpy_cannot_read(chin, kw, message):
    args = {"N": 1e7, "D": 1e8, "return_ci": True, **kw}
    with pytest.raises(ConfigError) as exc:
        chin.predict(**args)
    assert str(exc.value) == message
