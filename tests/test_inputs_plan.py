"""`plan` refuses a number flag that can mean nothing, naming it, before any fit is read
(`--target-loss inf` answered flops=1 ... loss=4789, exit 0; `--params inf` a loss of inf;
`--steps -5` was blamed on --warmup)."""

import pytest

from scalinglab.cli import main
from scalinglab.errors import ConfigError
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


def test_finite_plans_still_answer(fit, capsys):
    assert main(["plan", fit, "--target-loss", "2.5", "--json"]) == 0
    assert '"target_loss": 2.5' in capsys.readouterr().out
