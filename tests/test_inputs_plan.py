"""`plan` refuses a number flag that can mean nothing, naming it, before any fit is read
(`--target-loss inf` answered flops=1 ... loss=4789, exit 0; `--params inf` a loss of inf;
`--steps -5` was blamed on --warmup)."""

import math

import pytest

from scalinglab.cli import main
from scalinglab.errors import ConfigError, ExtrapolationWarning
from scalinglab.laws import load_fit
from scalinglab.plan import fixed_params, target_loss
from tests.laws.test_cli_fit import runs_csv
from tests.reliability.helpers import one_line_error


@pytest.fixture(scope="module")
def fit(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plan")
    out = tmp / "fit.json"
    assert main(["fit", str(runs_csv(tmp)), "--bootstrap", "0", "--out", str(out)]) == 0
    return str(out)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--target-loss", "inf"], "--target-loss must be a finite number > 0, got inf"),
        (["--target-loss", "nan"], "--target-loss must be a finite number > 0, got nan"),
        (["--target-loss", "-1"], "--target-loss must be a finite number > 0, got -1.0"),
        (["--flops", "1e20", "inf"], "--flops must be a finite number > 0, got inf"),
        (["--params", "inf", "--flops", "1e20"], "--params must be a finite number > 0, got inf"),
        (["--params", "1e9", "--flops", "nan"], "--flops must be a finite number > 0, got nan"),
        (["--flops", "1e20", "--unique-tokens", "inf"],
         "--unique-tokens must be a finite number > 0, got inf"),
        (["--steps", "-5", "--peak-lr", "3e-4"], "--steps must be >= 2, got -5"),
        (["--steps", "1", "--peak-lr", "3e-4"], "--steps must be >= 2, got 1"),
        (["--steps", "100", "--peak-lr", "nan"], "--peak-lr must be a finite number > 0, got nan"),
        (["--steps", "100", "--peak-lr", "3e-4", "--final-lr", "inf"],
         "--final-lr must be a finite number >= 0, got inf"),
        (["--flops", "1e20", "--block-size", "-3"],
         "--block-size must be >= 0 (0: no batch in sequences), got -3"),
        (["--params", "1e20", "--flops", "1e12"],
         "--flops 1e+12 at --params 1e+20 trains on C / (6 N) = 1.67e-09 tokens, less than one"),
    ],
)  # fmt: skip
def test_meaningless_plan_numbers_are_one_line(fit, capsys, flags, message):
    assert one_line_error(capsys, ["plan", fit, *flags]) == f"error: {message}\n"


def test_the_library_refuses_them_too(fit):
    law = load_fit(fit)
    cases = [
        (lambda: target_loss(law, float("inf")), "target_loss must be a finite number > 0, got inf"),
        (lambda: fixed_params(law, float("inf"), 1e20), "params must be a finite number > 0, got inf"),
        (lambda: fixed_params(law, 1e9, float("inf")), "flops must be a finite number > 0, got inf"),
    ]  # fmt: skip
    for call, message in cases:
        with pytest.raises(ConfigError) as e:
            call()
        assert str(e.value) == message


def test_plan_run_refuses_what_is_not_one_number_naming_the_argument(fit):
    """From Python a list, an array or a string reached numpy: `target_loss=[2.1, 2.2]`
    and `params=[1e9, 2e9]` raised "truth value of an array ... is ambiguous",
    `target_loss="2.1"` a ufunc TypeError, `flops=[]` "not enough values to unpack"."""
    import numpy as np

    from scalinglab import plan_run

    cases = [
        (dict(target_loss=[2.1, 2.2]), "target_loss must be one number, got [2.1, 2.2]"),
        (dict(target_loss="2.1"), "target_loss must be one number, got '2.1'"),
        (dict(params=[1e9, 2e9], flops=1e20), "params must be one number, got [1000000000.0, 2000000000.0]"),
        (dict(params=1e9, flops=np.array([1e20])), "flops must be one number, got array([1.e+20])"),
        (dict(flops=[]), "flops: no budget given (an empty list)"),
        (dict(flops=["1e20", "big"]), "flops: a number or a list of numbers, got ['1e20', 'big']"),
    ]  # fmt: skip
    for kwargs, message in cases:
        with pytest.raises(ConfigError) as e:
            plan_run(fit, **kwargs)
        assert str(e.value) == message
    with pytest.warns(ExtrapolationWarning, match="1.5 decades above"):  # 9.4e21 FLOPs
        assert plan_run(fit, target_loss=np.float64(2.5))["target_loss"] == 2.5


def test_plan_run_refuses_a_bool_as_a_number_naming_the_argument(fit):
    """numpy takes True as 1: `plan_run(law, flops=True)` planned a run at C = 1 FLOP, and
    `unique_tokens=True` one with a single unique token."""
    import numpy as np

    from scalinglab import ScalingLaw, plan_run

    cases = [
        (dict(flops=True), "flops: a number or a list of numbers, got True"),
        (dict(flops=np.True_), "flops: a number or a list of numbers, got np.True_"),
        (dict(flops=[1e20, True]), "flops: a number or a list of numbers, got [1e+20, True]"),
        (dict(flops=np.array([True])), "flops: a number or a list of numbers, got array([ True])"),
        (dict(target_loss=True), "target_loss must be one number, got True"),
        (dict(params=True, flops=1e20), "params must be one number, got True"),
        (dict(params=1e9, flops=np.True_), "flops must be one number, got np.True_"),
    ]  # fmt: skip
    for kwargs, message in cases:
        with pytest.raises(ConfigError) as e:
            plan_run(fit, **kwargs)
        assert str(e.value) == message
    law = ScalingLaw("data-constrained", bootstrap=0)
    law.params_ = {"A": 400.0, "B": 1200.0, "E": 1.8, "alpha": 0.34, "beta": 0.3, "R_D": 12.0,
                   "R_N": 4.0}  # fmt: skip
    law.samples_ = None
    for kwargs, message in [
        (dict(flops=True, unique_tokens=2e9), "flops: a number or a list of numbers, got True"),
        (dict(flops=1e21, unique_tokens=True), "unique_tokens: a number or a list of numbers, got True"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError) as e:
            plan_run(law, **kwargs)
        assert str(e.value) == message
    assert plan_run(fit, flops=1e20)["flops"] == 1e20


def test_plan_run_refuses_a_string_as_a_number_as_every_keyword_does(fit):
    """flops="1e21" was planned (numpy reads the text) while target_loss="2.5" and
    params="1e9" were refused: a string is no number for any of them."""
    import numpy as np

    from scalinglab import plan_run

    for kwargs, message in [
        (dict(flops="1e21"), "flops: a number or a list of numbers, got '1e21'"),
        (dict(flops=[1e20, "1e21"]), "flops: a number or a list of numbers, got [1e+20, '1e21']"),
        (dict(flops=np.array(["1e21"])),
         "flops: a number or a list of numbers, got array(['1e21'], dtype='<U4')"),
        (dict(target_loss="2.5"), "target_loss must be one number, got '2.5'"),
        (dict(params=1e9, flops="1e21"), "flops must be one number, got '1e21'"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError) as e:
            plan_run(fit, **kwargs)
        assert str(e.value) == message


def test_finite_plans_still_answer(fit, capsys):
    assert main(["plan", fit, "--target-loss", "2.5", "--json"]) == 0
    assert '"target_loss": 2.5' in capsys.readouterr().out


def test_plan_run_warns_and_refuses_as_the_plan_command_does(fit):
    """plan_run at an extreme budget gave no warning (the command warns), and at 1 FLOP
    planned a run of 0.66 parameters (the command refuses it)."""
    import warnings

    import numpy as np

    from scalinglab import plan_run

    with pytest.warns(ExtrapolationWarning, match=r"plan_run: extrapolating: C=1e\+30 is .* decades above the largest C fitted"):  # fmt: skip
        row = plan_run(fit, flops=1e30)
    assert row["params"] > 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # within the fitted compute: no warning
        plan_run(fit, flops=float(np.sqrt(np.prod(load_fit(fit).data_["C_range"]))))
    with pytest.raises(ConfigError, match=r"^flops 1: the plan has params=.*less than one parameter or token"):  # fmt: skip
        plan_run(fit, flops=1)
    with pytest.raises(ConfigError, match=r"^target_loss 1e\+06: the fit reaches that loss only below one"):  # fmt: skip
        plan_run(fit, target_loss=1e6)


@pytest.mark.parametrize(
    "value, shown",
    [(None, "null, not a finite number"), ("3.2", '"3.2", not a number'),
     (True, "true, not a number"), (float("inf"), "inf, not a finite number"),
     (float("nan"), "nan, not a finite number")],
)  # fmt: skip
def test_plan_names_a_fit_json_parameter_that_is_not_a_number(fit, tmp_path, capsys, value, shown):
    """A damaged fit.json's "A": null was blamed on N ('predict: N[0] is nan'); a string or
    true was taken as a number (float() of it) or refused as 'malformed'."""
    import json
    from pathlib import Path

    obj = json.loads(Path(fit).read_text())
    obj["params"]["A"] = value
    bad = tmp_path / "fit.json"
    bad.write_text(json.dumps(obj))
    err = one_line_error(capsys, ["plan", str(bad), "--flops", "1e20"])
    assert err == f"error: {bad}: params.A is {shown}\n"
    del obj["params"]["A"]
    bad.write_text(json.dumps(obj))
    err = one_line_error(capsys, ["plan", str(bad), "--flops", "1e20"])
    assert f"{bad}: malformed fit.json (its params lack A of law 'chinchilla'" in err


@pytest.mark.parametrize(
    "edit, shown",
    [(lambda o: o.update(noise="x"), 'noise is "x", not an object'),
     (lambda o: o.update(calibration=[1, 2]), "calibration is [1, 2], not an object"),
     (lambda o: o["noise"].update(quantiles=0.1),
      "noise.quantiles is not a list of numbers"),
     (lambda o: o["data"].update(C_range=[6e16]), "data.C_range is [6e+16], not [smallest, largest]"),
     (lambda o: o["data"].update(N_range=[1e9, 1e7]),
      "data.N_range is [1000000000.0, 10000000.0], not [smallest, largest]"),
     (lambda o: o["bootstrap"]["samples"].update(E=[1.8] * 10),
      "its bootstrap samples differ in length: E 10, A 20, B 20, alpha 20, beta 20; "
      "each holds one draw per resample")],
)  # fmt: skip
def test_plan_names_a_broken_part_of_a_fit_json(fit, tmp_path, capsys, edit, shown):
    """A hand-edited fit.json whose noise or calibration is not an object, or whose
    bootstrap samples are of unequal lengths, or whose data range is no [smallest, largest],
    loaded, then failed in the plan with a traceback ('operands could not be broadcast
    together', 'len() of unsized object', 'not enough values to unpack')."""
    import json
    from pathlib import Path

    obj = json.loads(Path(fit).read_text())
    obj["bootstrap"] = {"resamples": 20, "seed": 0,
                        "samples": {k: [v] * 20 for k, v in obj["params"].items()}}  # fmt: skip
    good = tmp_path / "good.json"
    good.write_text(json.dumps(obj))
    assert main(["plan", str(good), "--flops", "1e20"]) == 0  # as written, it plans
    edit(obj)
    bad = tmp_path / "fit.json"
    bad.write_text(json.dumps(obj))
    err = one_line_error(capsys, ["plan", str(bad), "--flops", "1e20"])
    assert err == f"error: {bad}: malformed fit.json ({shown})\n"


def test_a_budget_far_below_the_fit_says_how_far_in_decades(fit, capsys):
    """1e-300 FLOPs was refused as 'inf decades below the smallest C fitted': the fitted
    C over the budget overflowed."""
    import json
    from pathlib import Path

    lo = json.loads(Path(fit).read_text())["data"]["C_range"][0]
    err = one_line_error(capsys, ["plan", fit, "--flops", "1e-300"])
    assert f"(C=1e-300 is {300 + math.log10(lo):.1f} decades below the smallest C fitted" in err
    assert "inf" not in err


@pytest.mark.parametrize(
    "flags",
    [["--flops", "1e20", "--block-size", "1024"], ["--flops", "1e20", "--lr-form", "deepseek"],
     ["--flops", "1e20", "--lr-form", "step"],
     ["--steps", "100", "--peak-lr", "1e-3", "--block-size", "8"]],
)  # fmt: skip
def test_lr_opt_flags_without_an_lr_opt_fit_are_refused(fit, capsys, flags):
    """--block-size and --lr-form shape an lr-opt fit's lr and batch: without one they were
    ignored, and the plan printed as if they were not given (exit 0)."""
    flag = next(f for f in flags if f in ("--block-size", "--lr-form"))
    err = one_line_error(capsys, ["plan", fit, *flags])
    assert err == (
        f"error: {flag} shapes the lr and batch of an lr-opt fit: it needs --lr-fit FIT.json "
        "(or an lr-opt fit as FIT)\n"
    )
    assert main(["plan", fit, "--flops", "1e20", "--block-size", "0"]) == 0  # the default
