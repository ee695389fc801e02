"""A hand-edited fit.json whose params are numbers out of their law's domain, or whose parts
are of the wrong JSON type, is refused by load_fit (and `scalinglab plan`) in one line naming
the file and the key: chinchilla B = 0 was a ZeroDivisionError traceback, A = 1e308 an
OverflowError, E = -1 a plan of loss -0.34; multi-power L0 = -5 a numpy warning and an error
blaming the LR; params as a list 'malformed fit.json (AttributeError(...))'."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.errors import DataError
from scalinglab.laws import ScalingLaw, load_fit
from scalinglab.laws.curves import CurveTable, Run
from scalinglab.plan import optimal_allocation, rank_schedules
from tests.laws.test_cli_fit import runs_csv
from tests.laws.test_curves import MPL_25M, mpl_direct, schedule
from tests.reliability.helpers import one_line_error

CHIN_PLAN = ["--flops", "1e20"]
MP_PLAN = ["--steps", "2000", "--peak-lr", "3e-4", "--warmup", "100"]


@pytest.fixture(scope="module")
def chin(tmp_path_factory):
    """A chinchilla fit.json written by `scalinglab fit` on a synthetic table."""
    tmp = tmp_path_factory.mktemp("chin")
    out = tmp / "fit.json"
    assert main(["fit", str(runs_csv(tmp)), "--bootstrap", "0", "--out", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def mp(tmp_path_factory):
    """A multi-power fit.json of three synthetic curves of Luo et al.'s 25M law."""
    runs = []
    for kind in ("cosine", "constant", "drop"):
        lr = schedule(kind, 2000)
        steps = np.arange(100, 2000, 100)
        runs.append(Run(kind, steps, lr[steps], mpl_direct(MPL_25M, lr, steps), lr_full=lr))
    fit = ScalingLaw("multi-power", bootstrap=0).fit(CurveTable(runs))
    return json.loads(json.dumps(fit.to_json()))


def write(tmp_path, obj, name="fit.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return path


def edited(obj, **params):
    obj = json.loads(json.dumps(obj))
    obj["params"].update(params)
    return obj


def refused(capsys, path, plan_args, message):
    """load_fit and `scalinglab plan` both refuse `path` with `message`, in one line on
    stderr (exit 2), with no numpy warning."""
    with pytest.raises(DataError) as e:
        load_fit(path)
    assert str(e.value) == f"{path}: {message}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        err = one_line_error(capsys, ["plan", str(path), *plan_args])
    assert err == f"error: {path}: {message}\n"
    assert not caught, [str(w.message) for w in caught]


@pytest.mark.parametrize(
    "name, value, message",
    [("B", 0, "params.B is 0; law 'chinchilla' needs B > 0"),
     ("A", 0, "params.A is 0; law 'chinchilla' needs A > 0"),
     ("A", -5, "params.A is -5; law 'chinchilla' needs A > 0"),
     ("B", -1e-3, "params.B is -0.001; law 'chinchilla' needs B > 0"),
     ("E", -1, "params.E is -1; law 'chinchilla' needs E >= 0"),
     ("A", 10**400, "params.A is inf, not a finite number")],
)  # fmt: skip
def test_chinchilla_params_out_of_their_domain(chin, tmp_path, capsys, name, value, message):
    refused(capsys, write(tmp_path, edited(chin, **{name: value})), CHIN_PLAN, message)


@pytest.mark.parametrize(
    "name, value, shown",
    [("A", 1e308, "params at {}flops 1e+20 come out inf, not a finite number > 0"),
     ("alpha", 1e-300, "params at {}flops 1e+20 come out 0, not a finite number > 0")],
)  # fmt: skip
def test_chinchilla_extreme_params_fail_the_plan_in_one_line(
    chin, tmp_path, capsys, name, value, shown
):
    """In the domain but beyond a float's range in the allocation: the fit loads, the plan
    names the file (an OverflowError traceback; numpy warnings and 'predict: N[0] is 0')."""
    path = write(tmp_path, edited(chin, **{name: value}))
    law = load_fit(path)
    assert law.params_[name] == value
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        err = one_line_error(capsys, ["plan", str(path), *CHIN_PLAN])
        with pytest.raises(DataError) as e:  # the library spells the flag as its argument
            optimal_allocation(law, 1e20)
    assert str(e.value).startswith(f"{path}: the compute-optimal {shown.format('')}: ")
    want = f"error: {path}: the compute-optimal {shown.format('--')}: the fit's parameters ("
    assert err.startswith(want), err
    assert f"{name}={value:.4g}" in err
    assert not caught, [str(w.message) for w in caught]


@pytest.mark.parametrize(
    "params, message",
    [({"L0": -5}, "params.L0 is -5; law 'multi-power' needs L0 >= 0"),
     ({"B": -1}, "params.B is -1; law 'multi-power' needs B >= 0"),
     ({"C": -0.5}, "params.C is -0.5; law 'multi-power' needs C >= 0"),
     ({"A": -0.1}, "params.A is -0.1; law 'multi-power' needs A >= 0"),
     ({"gamma": None}, "params.gamma is null, not a finite number")],
)  # fmt: skip
def test_multi_power_params_out_of_their_domain(mp, tmp_path, capsys, params, message):
    refused(capsys, write(tmp_path, edited(mp, **params)), MP_PLAN, message)


@pytest.mark.parametrize("params", [{"gamma": -1.0}, {"alpha": 0.0}, {"L0": 0.0}, {"C": 0.0}])
def test_multi_power_values_a_fit_can_give_still_load(mp, tmp_path, capsys, params):
    """The exponents are fitted unconstrained (a negative gamma, an alpha of 0) and L0, C are
    exponentials that may underflow to 0: no domain refuses them, and they rank schedules."""
    path = write(tmp_path, edited(mp, **params))
    law = load_fit(path)
    assert all(law.params_[k] == v for k, v in params.items())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["plan", str(path), *MP_PLAN]) == 0
    assert capsys.readouterr().err == ""
    assert not caught, [str(w.message) for w in caught]


def test_chinchilla_exponent_zero_still_loads(chin, tmp_path):
    """An exponent at or below 0 is fitted (and warned of): it loads; plan refuses it."""
    assert load_fit(write(tmp_path, edited(chin, beta=0.0))).params_["beta"] == 0.0
    assert load_fit(write(tmp_path, edited(chin, E=0.0))).params_["E"] == 0.0  # E underflows


def test_degenerate_bootstrap_draws_are_not_refused(chin, tmp_path, capsys):
    """Only the point params are checked: a draw with B = 0, A < 0 or null is left out by the
    intervals, as it was."""
    obj = json.loads(json.dumps(chin))
    samples = {k: [v] * 20 for k, v in obj["params"].items()}
    samples["B"][3], samples["A"][5], samples["B"][7] = 0.0, -5.0, None
    obj["bootstrap"] = {"resamples": 20, "seed": 0, "samples": samples}
    path = write(tmp_path, obj)
    law = load_fit(path)
    assert law.samples_["B"][3] == 0.0 and np.isnan(law.samples_["B"][7])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["plan", str(path), *CHIN_PLAN]) == 0
    assert capsys.readouterr().err == ""
    assert not caught, [str(w.message) for w in caught]


def test_valid_fits_load_and_plan_to_the_same_numbers(chin, mp, tmp_path, capsys):
    p = chin["params"]
    a, b = p["alpha"], p["beta"]
    G = (a * p["A"] / (b * p["B"])) ** (1 / (a + b))
    N = G * (1e20 / 6) ** (b / (a + b))
    path = write(tmp_path, chin)
    assert main(["plan", str(path), *CHIN_PLAN, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)  # one row a budget
    assert row["params"] == pytest.approx(N, rel=1e-12)
    assert row["tokens"] == pytest.approx(1e20 / 6 / N, rel=1e-12)
    assert row == optimal_allocation(load_fit(chin), [1e20])[0]

    mpath = write(tmp_path, mp, "mp.json")
    assert main(["plan", str(mpath), *MP_PLAN, "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    direct = rank_schedules(load_fit(mp), 2000, [r["schedule"] for r in ranked])
    assert [r["loss"] for r in ranked] == pytest.approx([r["loss"] for r in direct], rel=1e-12)
    law = load_fit(mpath)
    for r in ranked:  # each the law's loss at the last step under that schedule
        assert r["loss"] == pytest.approx(float(law.predict([1999], r["schedule"])[0]), rel=1e-12)


@pytest.mark.parametrize(
    "edit, shown",
    [(lambda o: o.update(params=list(o["params"].values())), "'params' is a list, not an object"),
     (lambda o: o.pop("params"), "no 'params'"),
     (lambda o: o.pop("law"), "no 'law'"),
     (lambda o: o.update(law=5), "'law' is a number, not a string"),
     (lambda o: o.update(settings=None), "'settings' is null, not an object"),
     (lambda o: o.update(data=None), "'data' is null, not an object"),
     (lambda o: o.update(conventions="x"), "'conventions' is a string, not an object"),
     (lambda o: o.update(warnings={}), "'warnings' is an object, not a list"),
     (lambda o: o.update(derived=[]), "'derived' is a list, not an object"),
     (lambda o: o.update(bootstrap="x"), "'bootstrap' is a string, not an object"),
     (lambda o: o.update(bootstrap={"resamples": 2}), "its bootstrap has no 'samples'"),
     (lambda o: o.update(bootstrap={"samples": [1, 2]}),
      "bootstrap.samples is a list, not an object"),
     (lambda o: o.update(bootstrap={"samples": {"A": ["x", 1.0]}}),
      "bootstrap.samples.A is not a list of numbers"),
     (lambda o: o.update(bootstrap={"samples": {"A": 3.0}}),
      "bootstrap.samples.A is not a list of numbers")],
)  # fmt: skip
def test_wrong_shaped_parts_name_their_key(chin, tmp_path, capsys, edit, shown):
    obj = json.loads(json.dumps(chin))
    edit(obj)
    refused(capsys, write(tmp_path, obj), CHIN_PLAN, f"malformed fit.json ({shown})")


def test_a_schedule_the_law_predicts_as_inf_is_refused(mp, tmp_path, capsys):
    """An exponent within its (free) domain but far out of range predicted every schedule at
    loss=inf, and plan ranked them with exit 0: one line naming the schedule instead."""
    path = write(tmp_path, edited(mp, alpha=2000.0))  # (LR area < 1)^-2000 overflows
    err = one_line_error(capsys, ["plan", str(path), *MP_PLAN])
    assert "the law predicts a loss of inf at step 1999: its parameters (" in err, err
    assert "alpha=2000" in err
