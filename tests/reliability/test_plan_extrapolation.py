"""`plan` far outside the fitted compute still answers, and says how far it extrapolates
(issue 16, item 12). The table: N from 1e7 to 1e9, D from 1e9 to 1e11, so C = 6ND from
6e16 to 6e20."""

import pytest

from scalinglab.cli import main
from tests.laws.test_cli_fit import GOOD


@pytest.fixture
def fit(tmp_path):
    (tmp_path / "runs.csv").write_text(GOOD)
    out = tmp_path / "fit.json"
    assert main(["fit", str(tmp_path / "runs.csv"), "--bootstrap", "0", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(
    "flags, warning",
    [
        (["--flops", "1e21"], None),  # within a decade of the largest C: no warning
        (["--flops", "6e16", "6e20"], None),
        (["--flops", "1e24"], "C=1e+24 is 3.2 decades above the largest C fitted (6e+20)"),
        (["--flops", "1e15"], "C=1e+15 is 1.8 decades below the smallest C fitted (6e+16)"),
        (["--params", "1e8", "--flops", "6e25"],
         "C=6e+25 is 5.0 decades above the largest C fitted (6e+20)"),
    ],
)  # fmt: skip
def test_plan_warns_how_far_it_extrapolates(fit, capsys, flags, warning):
    capsys.readouterr()
    assert main(["plan", str(fit), *flags]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(("flops=", "params=")), out  # the answer is given all the same
    if warning is None:
        assert "warning" not in err, err
    else:
        assert err == f"warning: extrapolating: {warning}\n"


def test_a_target_loss_beyond_the_data_is_flagged_and_a_gone_table_is_silent(fit, capsys):
    capsys.readouterr()
    assert main(["plan", str(fit), "--target-loss", "1.71"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: extrapolating: C=2.479e+34 is 13.6 decades above")
    (fit.parent / "runs.csv").write_text(GOOD + "r9,1e10,1e12,1.8\n")  # no longer the fit's
    assert main(["plan", str(fit), "--flops", "1e24"]) == 0
    assert capsys.readouterr().err == ""
