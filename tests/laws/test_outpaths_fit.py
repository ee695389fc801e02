"""`fit` and `backtest` with --out naming an input: refused before anything is written."""

import os

import pytest

from scalinglab.cli import main
from tests.laws.test_cli_fit import runs_csv
from tests.reliability.helpers import one_line_error


def _refused(capsys, argv) -> str:
    return one_line_error(capsys, [str(a) for a in argv])


@pytest.mark.parametrize(
    "argv, what",
    [
        (["fit"], "fit"),
        (["fit", "--law", "auto"], "fit"),
        (["backtest"], "backtest"),
        (["backtest", "--law", "task-sigmoid"], "backtest"),
    ],
)
def test_out_the_input_table_is_refused_and_the_table_kept(tmp_path, capsys, argv, what):
    table = runs_csv(tmp_path)
    before = table.read_bytes()
    err = _refused(capsys, [*argv[:1], table, *argv[1:], "--out", table])
    assert err == f"error: --out {table} is the input {table}; write the {what} to another file\n"
    assert table.read_bytes() == before


def test_another_spelling_or_a_hard_link_is_the_same_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    runs_csv(tmp_path)
    before = (tmp_path / "runs.csv").read_bytes()
    err = _refused(capsys, ["fit", "runs.csv", "--out", "d/../runs.csv"])
    assert (
        err == "error: --out d/../runs.csv is the input runs.csv; write the fit to another file\n"
    )
    os.link("runs.csv", "d/link.csv")
    err = _refused(capsys, ["backtest", "runs.csv", "--out", "d/link.csv"])
    assert (
        err == "error: --out d/link.csv is the input runs.csv; write the backtest to another file\n"
    )
    assert (tmp_path / "runs.csv").read_bytes() == before


def test_out_inside_an_input_folder_is_refused(tmp_path, capsys):
    runs = [tmp_path / "r1", tmp_path / "r2"]
    for r in runs:
        r.mkdir()
        (r / "metrics.jsonl").write_text('{"step": 1}\n')
    out = runs[1] / "metrics.jsonl"
    err = _refused(capsys, ["fit", "--law", "envelope", *runs, "--out", out])
    assert err == (
        f"error: --out {out} lies inside the input folder {runs[1]}; write the fit outside it\n"
    )
    assert out.read_text() == '{"step": 1}\n'


def test_out_beside_the_input_is_written(tmp_path, capsys):
    table = runs_csv(tmp_path)
    out = tmp_path / "runs.csv.json"
    assert main(["fit", str(table), "--bootstrap", "0", "--out", str(out)]) == 0
    assert out.exists()
