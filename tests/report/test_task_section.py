"""The report's task table and summary.json's backtest.tasks: a prediction is scored
against the measurement; a task at chance is measured and said to be, not predicted."""

import math

import pytest

from scalinglab.report.build import measured_tasks
from scalinglab.report.taskfig import task_section

PRED = {
    "next-line": {"metric": "acc", "predicted": 0.58, "interval": [0.56, 0.60], "se": 0.0078,
                  "scatter": 0.0123, "chance": 0.5, "n_items": 4000, "runs": 14,
                  "params": {"lo": 0.5, "hi": 1.0, "k": 1.5, "L0": 0.2}},
    "recall": {"metric": "acc", "at_chance": True, "chance": 0.5, "n_items": 30, "runs": 8,
               "best": 0.6, "note": "no gpt run of the sweep is above chance"},
}  # fmt: skip
ROW = {"next-line.acc": 0.61, "recall.acc": 0.5}


def test_backtest_tasks_score_predictions_and_measure_tasks_at_chance():
    got = measured_tasks(PRED, ROW)
    nl = got["next-line"]
    assert nl["measured"] == 0.61 and nl["error_points"] == pytest.approx(-3.0)
    assert nl["in_interval"] is False and nl["n_items"] == 4000 and nl["chance"] == 0.5
    assert nl["scatter"] == 0.0123
    assert got["recall"] == {**PRED["recall"], "measured": 0.5}
    assert "predicted" not in got["recall"]


def test_the_task_table_gives_items_chance_and_the_measurements_standard_error():
    html = task_section({"tasks": measured_tasks(PRED, ROW)})
    se = math.sqrt(0.61 * 0.39 / 4000)  # 0.00771
    assert "<td>4,000</td>" in html.replace(' class=""', "").replace(' class="l"', "")
    assert f"0.61 ± {se:.3g}" in html and "-3.0 points (outside)" in html
    plain = html.replace(' class=""', "")
    assert "scatter (points)</th>" in plain and "<td>1.2</td>" in plain
    assert "<th>error: predicted − measured</th>" in plain  # which way -3.0 points is
    assert "no gpt run of the sweep is above chance" in html
    assert task_section({"tasks": {}}) == "" and task_section(None) == ""


def test_a_prediction_beyond_the_runs_losses_says_its_link_is_extrapolated():
    from scalinglab.study.tasks import beyond_the_runs

    runs = [{"loss": 2.46}, {"loss": 2.01}, {"loss": 1.745}]
    far = beyond_the_runs(runs, 1.294, "gpt")
    assert far["fit_loss_range"] == [1.745, 2.46]
    assert far["loss_beyond"] == pytest.approx(1.745 - 1.294)
    assert "1.294 is 0.45 nats below the best gpt run" in far["note"]
    assert "(1.745)" in far["note"] and "extrapolated" in far["note"]
    inside = beyond_the_runs(runs, 1.9, "gpt")
    assert inside == {"fit_loss_range": [1.745, 2.46], "loss_beyond": 0.0}  # no note
    # summary.json carries it, and the report's task section says it under the table
    pred = {"next-line": {**PRED["next-line"], **far}}
    got = measured_tasks(pred, ROW)["next-line"]
    assert got["loss_beyond"] == far["loss_beyond"] and got["note"] == far["note"]
    html = task_section({"tasks": {"next-line": {**got, "note": "a <b> & c"}}})
    assert "<p>next-line: a &lt;b&gt; &amp; c</p>" in html  # escaped
    two = task_section({"tasks": {"next-line": got, "recall": {**got, "note": "other"}}})
    assert two.count("<p>") == 2 and "<p>recall: other</p>" in two
    same = task_section({"tasks": {"next-line": got, "recall": got}})
    assert same.count("<p>") == 1 and "<p>next-line, recall: the predicted loss" in same
    assert "<p>" not in task_section({"tasks": measured_tasks(PRED, ROW)})


def test_task_table_interval_reads_low_end_first():
    """The report's task table writes a prediction's interval as [low, high]."""
    t = {"metric": "acc", "predicted": 0.58, "interval": [0.56, 0.60], "chance": 0.5,
         "n_items": 4000, "measured": 0.59, "error_points": -1.0, "in_interval": True}  # fmt: skip
    html = task_section({"tasks": {"next-line": t}})
    assert "[0.56, 0.6]" in html  # as few digits as tell the three numbers apart
    assert "[0.6, 0.56]" not in html
