"""A study with [tasks]: every run scored, the backtest's accuracy predicted before it
is trained, and summary.json's backtest.tasks holding prediction and measurement."""

import json
import tomllib

import pytest

from scalinglab.errors import SweepError
from scalinglab.study.spec import parse_study, study_dict
from tests.test_study import TOY, toy_corpus

TASKS = '\n[tasks]\nnames = ["recall"]\nitems = 30\n'


def test_the_tasks_table_is_checked_and_round_trips():
    d = tomllib.loads(TOY.format(corpus="x") + TASKS)
    s = parse_study(d, "toy")
    assert s.tasks.names == ["recall"] and s.tasks.items == 30
    assert parse_study(study_dict(s), "again").tasks == s.tasks
    assert parse_study(tomllib.loads(TOY.format(corpus="x")), "toy").tasks.names == []
    d["tasks"]["names"] = ["spelling"]
    with pytest.raises(SweepError, match=r"\[tasks\]: names: 'spelling' not among next-line"):
        parse_study(d, "toy")


@pytest.mark.slow
def test_a_study_predicts_the_backtest_runs_task_accuracy(tmp_path):
    from scalinglab import runfolder
    from scalinglab.study.run import run_study

    corpus = toy_corpus(tmp_path / "corpus.txt")
    study = parse_study(tomllib.loads(TOY.format(corpus=corpus) + TASKS), "toy")
    out = tmp_path / "study"
    summary = run_study(study, out, tmp_path / "cache")
    pred = json.loads((out / "prediction.json").read_text())
    p = pred["tasks"]["recall"]
    assert p["metric"] == "acc" and p["runs"] == 4 + 4  # every sweep run of the arch
    assert p["interval"][0] <= p["predicted"] <= p["interval"][1]
    run_dir = out / "backtest" / "runs" / pred["run_name"]
    measured = runfolder.final_tasks(run_dir)["recall"]["acc"]
    got = summary["backtest"]["tasks"]["recall"]
    assert got["predicted"] == p["predicted"] and got["measured"] == measured
    assert got["error_points"] == pytest.approx(100 * (p["predicted"] - measured))
    assert got["in_interval"] == (p["interval"][0] <= measured <= p["interval"][1])
    assert any(f["name"] == "tasks" and "file" in f for f in summary["figures"])
    assert "Tasks: the backtest" in (out / "report.html").read_text()
    for d in (out / "sweeps" / "gpt" / "runs").iterdir():  # every run scored
        assert runfolder.final_tasks(d)["recall"]["n"] == 30
