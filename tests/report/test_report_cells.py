"""Cells of report.html and the checks report/collect.py makes of a study's files:
each against a number written here, not read back from the code."""

import html
import json
import re

import pytest

from scalinglab.errors import DataError
from scalinglab.report.collect import collect, read_curve
from scalinglab.report.sections import (
    _backtest,
    _fits,
    _leave_larger_out,
    _nd_card,
    _plan,
    _repeats,
    _runs,
    _seed_noise,
)
from tests.report.synth_runs import make_study


@pytest.mark.parametrize(
    "name, change, says",
    [
        ("prediction.json", {"predicted_loss": 0}, "predicted_loss must be a positive number"),
        ("prediction.json", {"ci_level": 1}, "ci_level must be a number in (0, 1), got 1"),
        ("prediction.json", {"ci_level": 0}, "ci_level must be a number in (0, 1), got 0"),
        ("prediction.json", {"budget": 0}, "budget must be a positive number, got 0"),
        ("prediction.json", {"budget": "4e13"}, "budget must be a positive number, got '4e13'"),
        ("study.json", {"plan_factors": [10, 0]}, "plan_factors must be a list of positive"),
        ("study.json", {"plan_factors": [-10]}, "plan_factors must be a list of positive"),
        (
            "study.json",
            {"folders": {"sweeps": ["sweeps/gpt"], "backtest": ["backtest"]}},
            "folders: unknown role 'sweeps'",
        ),
    ],
)
def test_a_study_json_or_prediction_json_out_of_range_is_refused(tmp_path, name, change, says):
    """A zero predicted loss (100% error), a 100% interval level, a budget that is no
    positive number, a zero or negative plan factor, a misspelt role (its runs silently
    left out of every fit): each is named, not read."""
    make_study(tmp_path)
    path = tmp_path / name
    path.write_text(json.dumps(json.loads(path.read_text()) | change))
    with pytest.raises(DataError) as e:
        collect(tmp_path)
    assert str(e.value).startswith(f"{path}: {says}")


def test_read_curve_leaves_out_train_losses_that_are_no_positive_number(tmp_path):
    """NaN, 0 and negative train losses (a diverged step, another trainer's sentinel) are
    no points of the loss curve."""
    lines = [
        {"step": 1, "tokens": 100, "train_loss": 3.0},
        {"step": 2, "tokens": 200, "train_loss": float("nan")},
        {"step": 3, "tokens": 300, "train_loss": 0},
        {"step": 4, "tokens": 400, "train_loss": -1.0},
        {"step": 5, "tokens": 500, "train_loss": 2.5},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    c = read_curve(tmp_path)
    assert c["tokens"] == [100.0, 500.0] and c["train_loss"] == [3.0, 2.5]


def test_a_backtest_runs_metrics_line_that_is_not_json_is_named(tmp_path):
    """The report draws the backtest's loss curve too: a line of its metrics.jsonl that is
    no JSON object is named, as a sweep run's is."""
    make_study(tmp_path)
    m = tmp_path / "backtest" / "runs" / "gpt-backtest" / "metrics.jsonl"
    m.write_text(m.read_text() + "{bad\n" + json.dumps({"step": 1, "tokens": 1}) + "\n")
    named = [w for w in collect(tmp_path).warnings if "metrics.jsonl" in w]
    assert len(named) == 1 and named[0].startswith(f"{m}: line ")


def _cells(html_text: str) -> list[list[str]]:
    """The data rows of the tables in `html_text`, each a list of its cells' text."""
    rows = re.findall(r"<tr>(.*?)</tr>", html_text)
    return [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)] for r in rows
            if "<td" in r]  # fmt: skip


def test_the_backtests_repeated_data_row_names_the_law_that_predicted_it():
    bt = {"repeats_data": True, "epochs": 2.5, "unique_tokens": 1000}
    assert _repeats(bt | {"predictor": "data-constrained"}) == (
        "yes, 2.5 epochs: the data-constrained law predicts it"
    )
    assert _repeats(bt | {"predictor": "chinchilla"}).endswith(
        "predicted as if they did not (fresh tokens), so optimistic"
    )


def test_another_laws_prediction_shows_its_predictive_interval_where_it_has_one():
    bt = {"arch": "gpt", "flops": 1e15, "params": 1e6, "tokens": 1e8, "predicted_loss": 2.0,
          "interval": [1.9, 2.1], "other_predictions": {"chinchilla": {
              "predicted_loss": 2.05, "fit_interval": [2.0, 2.1],
              "prediction_interval": [1.8, 2.3]}}}  # fmt: skip
    (row,) = [r for r in _cells(_backtest(bt)) if r[0].startswith("also predicted")]
    assert row[1] == "2.05, predictive interval [1.8, 2.3]"


def test_leave_larger_out_rows_show_signed_bias_and_each_levels_coverage():
    t = {
        "threshold": 1e12,
        "n_train": 6,
        "n": 4,
        "mean_abs_rel_error": 0.01,
        "max_abs_rel_error": 0.03,
        "bias": -0.02,
        "coverage": {"0.8": 0.5, "0.95": 0.75},
    }
    llo = {
        "C": {
            "thresholds": [t],
            "overall": {k: v for k, v in t.items() if k not in ("threshold", "n_train")},
        }
    }
    rows = _cells(_leave_larger_out(llo, "gpt", {"bootstrap": 10}))
    assert rows[0][3:] == ["1.00%", "3.00%", "-2.00%", "50%", "75%"]
    assert rows[1][0] == "all" and rows[1][5:] == ["-2.00%", "50%", "75%"]


def test_the_plan_tables_last_interval_is_a_new_runs():
    row = {"flops": 1e16, "params": 1e7, "tokens": 1.6e8, "tokens_per_param": 16.0,
           "allocation": "isoflop", "predictor": "chinchilla", "loss": 2.0,
           "loss_ci": [1.95, 2.05], "loss_pi": [1.8, 2.2]}  # fmt: skip
    plan = {"arch": "gpt", "largest_budget": 1e15, "rows": [row]}
    (cells,) = _cells(_plan(plan, {"ci_level": 0.95, "bootstrap": 10}))
    assert cells[0] == "10×" and cells[8:10] == ["[1.95, 2.05]", "[1.8, 2.2]"]


def test_the_repeated_data_note_gives_the_most_epochs():
    rows = [{"run_id": f"r{i}", "role": "sweep", "arch": "gpt", "status": "completed",
             "epochs": e} for i, e in enumerate([1.5, 3.0, 0.5])]  # fmt: skip
    html_text = _runs(rows, [])
    assert "2 run(s) trained on more tokens than the train split holds (up to 3.00 epochs)" in (
        html_text
    )


def test_fitted_laws_say_which_isoflop_curvature_was_fitted():
    fits = {"gpt": {"isoflop": {"params": {"a": 0.5}, "stderr": {}, "ci": {}, "n_points": 9},
                    "not_fitted": {}}}  # fmt: skip
    fs = {"ci_level": 0.95, "bootstrap": 10, "seed": 0}
    assert "sharing one curvature across budgets" in _fits(fits, fs | {"curvature": "shared"})
    assert "one parabola in log N per budget" in _fits(fits, fs | {"curvature": "per-budget"})


def test_the_n_d_card_is_marked_bad_only_with_warnings():
    ch = {"params": {"alpha": 0.3, "beta": 0.3, "E": 1.0}}
    assert 'class="v bad"' in _nd_card("gpt", ch | {"warnings": ["one budget"]})
    assert 'class="v bad"' not in _nd_card("gpt", ch)


def test_each_seed_noise_group_shows_its_own_relative_std():
    g = {"arch": "gpt", "params": 1000, "tokens": 20000, "seeds": [1, 2], "losses": [2.0, 2.1]}
    sn = {"rel_std": 0.02, "dof": 2, "groups": [g | {"rel_std": 0.01}, g | {"rel_std": 0.03}]}
    rows = _cells(_seed_noise(sn))
    assert [r[-1] for r in rows] == ["1.000%", "3.000%"]
