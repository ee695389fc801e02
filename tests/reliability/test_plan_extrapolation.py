"""`plan` far outside the fitted compute still answers, and says how far it extrapolates
(issue 16, item 12). The table: N from 1e7 to 1e9, D from 1e9 to 1e11, so C = 6ND from
6e16 to 6e20."""

import json

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


@pytest.mark.parametrize(
    "flags, warnings",
    [
        # 7 meant as 7e9: C = 1e20 lies inside the fitted compute, N and D far outside
        (["--params", "7", "--flops", "1e20"],
         ["N=7 is 6.2 decades below the smallest N fitted (1e+07)",
          "D=2.381e+18 is 7.4 decades above the largest D fitted (1e+11)"]),
        # D far above as C is: the compute's note says it; N below it does not
        (["--params", "7", "--flops", "6e25"],
         ["C=6e+25 is 5.0 decades above the largest C fitted (6e+20)",
          "N=7 is 6.2 decades below the smallest N fitted (1e+07)"]),
        (["--params", "1e8", "--flops", "1e20"], []),  # N 1e8, D 1.7e11: within a decade
    ],
)  # fmt: skip
def test_plan_of_a_fixed_size_warns_of_its_n_and_d_too(fit, capsys, flags, warnings):
    """A --params far outside the fitted N (a units slip: 7 for 7 billion) at a budget
    inside the fitted compute planned, and printed its loss, without a word: plan checked
    the compute alone, though fit.json records the N and D ranges too."""
    capsys.readouterr()
    assert main(["plan", str(fit), *flags]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("flops="), out
    assert err == "".join(f"warning: extrapolating: {w}\n" for w in warnings)


def test_a_target_loss_beyond_the_data_is_flagged_and_a_gone_table_is_silent(fit, capsys):
    capsys.readouterr()
    assert main(["plan", str(fit), "--target-loss", "1.71"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: extrapolating: C=2.479e+34 is 13.6 decades above")
    # fit.json records the range it was fitted on: a changed table changes nothing
    assert json.loads(fit.read_text())["data"]["C_range"] == [6e16, 6e20]
    (fit.parent / "runs.csv").write_text(GOOD + "r9,1e10,1e12,1.8\n")  # no longer the fit's
    assert main(["plan", str(fit), "--flops", "1e24"]) == 0
    assert "3.2 decades above the largest C fitted (6e+20)" in capsys.readouterr().err
    # a fit.json written before it recorded C_range (and so N_range and D_range, added
    # after it) reads the table back: if that is no longer the fit's, plan cannot tell,
    # and says nothing
    old = json.loads(fit.read_text())
    for k in ("C_range", "N_range", "D_range"):
        del old["data"][k]
    fit.write_text(json.dumps(old))
    assert main(["plan", str(fit), "--flops", "1e24"]) == 0
    assert capsys.readouterr().err == ""


def test_an_envelope_fit_warns_too(tmp_path, capsys):
    """The envelope's fit.json names no sha256 (it reads curves), so plan could never check
    its range: 1e26 FLOPs, 5.8 decades above the misfitting runs, got no warning (1.8e19 here)."""
    lines = ["run_id,params,tokens,flops,loss"]
    for i, n in enumerate([1e7, 3e7, 1e8, 3e8]):
        for d in [1e8, 1e9, 1e10]:
            lines.append(f"r{i},{n},{d},{6 * n * d},{1.7 + 400 / n**0.34 + 2000 / d**0.28}")
    (tmp_path / "curves.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "env.json"
    argv = ["fit", str(tmp_path / "curves.csv"), "--law", "envelope", "--bootstrap", "0"]
    assert main([*argv, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["plan", str(out), "--flops", "6e24"]) == 0
    assert capsys.readouterr().err == (
        "warning: extrapolating: C=6e+24 is 5.5 decades above the largest C fitted (1.8e+19)\n"
    )
