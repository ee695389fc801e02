"""A study with [tasks]: every run scored, the backtest's accuracy predicted before it
is trained, and summary.json's backtest.tasks holding prediction and measurement."""

import json
import math
import tomllib
from statistics import NormalDist
from types import SimpleNamespace as NS

import pytest

from scalinglab import runfolder
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
    d["tasks"]["names"] = "recall"
    with pytest.raises(SweepError, match=r"names must be a list of task names, like \['recall'\]"):
        parse_study(d, "toy")
    d["tasks"]["names"] = ["recall", "recall"]
    with pytest.raises(SweepError, match=r"names: 'recall' given twice"):
        parse_study(d, "toy")


def test_tasks_longer_than_the_runs_window_are_refused_when_planned(tmp_path, capsys):
    """Found after the sweep had trained (2.7 min of runs), and the spec fixed was then
    refused as another study's: now the dry run says so."""
    from scalinglab.cli import main

    corpus = toy_corpus(tmp_path / "corpus.txt")
    spec = tmp_path / "s.toml"
    spec.write_text(TOY.format(corpus=corpus) + '\n[tasks]\nnames = ["recall"]\nitems = 40\n')
    argv = ["study", str(spec), "--out", str(tmp_path / "st"), "--cache", str(tmp_path / "c")]
    assert main([*argv, "--dry-run"]) == 0  # recall's choices fit a window of 16 bytes
    capsys.readouterr()
    assert main([*argv, "--dry-run", "--set", "model.block_size=4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {spec} [tasks] 'recall': ") and err.count("\n") == 1
    assert "items have a choice longer than the runs' block_size (" in err
    assert not (tmp_path / "st").exists()


@pytest.mark.slow
def test_a_study_predicts_the_backtest_runs_task_accuracy(tmp_path, monkeypatch):
    from scalinglab import runfolder
    from scalinglab.laws import tasklaws
    from scalinglab.report.collect import collect
    from scalinglab.study.run import run_study
    from scalinglab.study.tasks import predict_tasks

    corpus = toy_corpus(tmp_path / "corpus.txt")
    study = parse_study(tomllib.loads(TOY.format(corpus=corpus) + TASKS), "toy")
    out = tmp_path / "study"
    summary = run_study(study, out, tmp_path / "cache")
    pred = json.loads((out / "prediction.json").read_text())
    run_dir = out / "backtest" / "runs" / pred["run_name"]
    measured = runfolder.final_tasks(run_dir)["recall"]["acc"]
    sweep = [r for r in collect(out).by_role("sweep") if r["arch"] == "gpt"]
    for d in (out / "sweeps" / "gpt" / "runs").iterdir():  # every run scored
        assert runfolder.final_tasks(d)["recall"]["n"] == 30
    # Models with a 16-byte window cannot see a name's first use: recall stays at chance
    # (1/2; 3 standard errors on 30 items: 0.274), which the study says, not predicts.
    p = pred["tasks"]["recall"]
    assert max(r["recall.acc"] for r in sweep) < 0.5 + 0.274
    assert p["at_chance"] and "predicted" not in p and p["chance"] == 0.5
    assert p["n_items"] == 30 and p["runs"] == 4 + 4  # every sweep run of the arch
    got = summary["backtest"]["tasks"]["recall"]
    assert got["at_chance"] and got["measured"] == measured and "not predicted" in got["note"]
    assert any(f["name"] == "tasks" and "file" in f for f in summary["figures"])
    html = (out / "report.html").read_text()
    assert "Tasks: the backtest" in html and "is not learned at these scales" in html
    # A task above chance is predicted, with an interval for what its items will measure.
    monkeypatch.setattr(tasklaws, "above_chance", lambda *a: True)
    q = predict_tasks(study, sweep, "gpt", pred["predicted_loss"], pred["interval"])["recall"]
    assert q["params"]["lo"] == 0.5 and q["params"]["hi"] == 1.0 and q["n_items"] == 30
    assert q["interval"][0] <= q["predicted"] <= q["interval"][1]
    best = min(r["loss"] for r in sweep)  # the runs the sigmoid saw, and how far beyond
    assert q["fit_loss_range"] == [best, max(r["loss"] for r in sweep)]
    assert q["loss_beyond"] == max(0.0, best - pred["predicted_loss"])
    assert ("note" in q) == (pred["predicted_loss"] < best)
    half = 1.959964 * math.sqrt(q["predicted"] * (1 - q["predicted"]) / 30)
    assert q["interval"][1] - q["interval"][0] >= 2 * half - 1e-6  # the items' noise at least


# Known answers for mutations of study/tasks.py that every test passed (a mutation audit):
# each fails on its mutation.
def test_fit_chance_is_the_sigmoids_lower_end(tmp_path):
    """Kills ST3 ([fit] chance ignored): with [fit] chance = 0.1 the sigmoid from loss to
    accuracy is fitted with lo = 0.1, not the task's own chance (0.25, 4 choices)."""
    from scalinglab.study.tasks import predict_tasks

    rows = []
    for i, (loss, acc) in enumerate([(3.0, 0.30), (2.8, 0.38), (2.6, 0.50), (2.4, 0.62),
                                     (2.2, 0.72), (2.0, 0.78)]):  # fmt: skip
        d = tmp_path / "runs" / f"r{i}"
        d.mkdir(parents=True)
        runfolder.record_tasks(d, [{"task": "recall", "sha256": "s", "n": 1000, "step": 100,
                                    "acc": acc, "chance": 0.25}])  # fmt: skip
        rows.append({"dir": str(d), "arch": "gpt", "status": "completed", "loss": loss,
                     "recall.acc": acc})  # fmt: skip
    for chance, lo in ((None, 0.25), (0.1, 0.1)):
        study = NS(tasks=NS(names=["recall"]),
                   fit=NS(chance=chance, bootstrap=0, seed=0, ci_level=0.95))  # fmt: skip
        out = predict_tasks(study, rows, "gpt", 1.9, None)["recall"]
        assert "error" not in out, out
        assert out["params"]["lo"] == pytest.approx(lo)
        assert out["chance"] == 0.25  # the task's own, as recorded


def _task_rows(tmp_path, points, n_items=1000, chance=0.25):
    """Run rows with a recorded `recall` score on `n_items` items (as predict_tasks reads)."""
    rows = []
    for i, (loss, acc) in enumerate(points):
        d = tmp_path / "runs" / f"r{i}"
        d.mkdir(parents=True)
        runfolder.record_tasks(d, [{"task": "recall", "sha256": "s", "n": n_items, "step": 100,
                                    "acc": acc, "chance": chance}])  # fmt: skip
        rows.append({"dir": str(d), "arch": "gpt", "status": "completed", "loss": loss,
                     "recall.acc": acc})  # fmt: skip
    return rows


def _task_study(ci_level=0.95, bootstrap=0):
    return NS(tasks=NS(names=["recall"]),
              fit=NS(chance=None, bootstrap=bootstrap, seed=0, ci_level=ci_level))  # fmt: skip


def test_a_task_at_chance_reports_the_best_runs_accuracy(tmp_path):
    """3 standard errors of chance 0.25 on 1000 items is 0.041: runs at 0.22-0.27 are at
    chance, and the note and `best` give the highest accuracy, 0.27."""
    from scalinglab.study.tasks import predict_tasks

    rows = _task_rows(tmp_path, [(3.0, 0.22), (2.8, 0.27), (2.6, 0.24)])
    out = predict_tasks(_task_study(), rows, "gpt", 2.5, None)["recall"]
    assert out["at_chance"] is True
    assert out["best"] == 0.27
    assert "(best 0.270)" in out["note"]


# Accuracies scattered about a sigmoid in the loss: the runs' spread (about 0.03) is far
# above the standard error of 100000 items (about 0.0016).
SCATTERED = [(3.0, 0.30), (2.8, 0.44), (2.6, 0.45), (2.4, 0.66), (2.2, 0.68), (2.0, 0.82)]


def test_a_task_predictions_noise_is_the_runs_scatter_where_it_exceeds_the_items_se(tmp_path):
    """The new run's noise is max(items' standard error, runs' scatter about the sigmoid):
    here the scatter, as fit_sigmoid measures it on the same points."""
    from scalinglab.laws import tasklaws
    from scalinglab.study.tasks import predict_tasks

    rows = _task_rows(tmp_path, SCATTERED, n_items=100000)
    out = predict_tasks(_task_study(), rows, "gpt", 2.1, None)["recall"]
    fit = tasklaws.fit_sigmoid([r["loss"] for r in rows], [r["recall.acc"] for r in rows],
                               bootstrap=0, seed=0, chance=0.25)  # fmt: skip
    p = out["predicted"]
    se = math.sqrt(p * (1 - p) / 100000)
    assert out["se"] == pytest.approx(se)
    assert fit["scatter"] > 5 * se
    assert out["scatter"] == pytest.approx(fit["scatter"])
    assert out["noise"] == pytest.approx(fit["scatter"])


@pytest.mark.parametrize("level", [0.8, 0.95])
def test_a_task_predictions_interval_is_at_the_studys_level(tmp_path, level):
    """Without a bootstrap and a loss interval, the interval is p ± z·noise, z the normal
    quantile of (1 + level) / 2 (1.2816 at 80%, 1.9600 at 95%)."""
    from scalinglab.study.tasks import predict_tasks

    rows = _task_rows(tmp_path, SCATTERED, n_items=100000)
    out = predict_tasks(_task_study(ci_level=level), rows, "gpt", 2.1, None)["recall"]
    z = NormalDist().inv_cdf(0.5 + level / 2)
    lo, hi = out["interval"]
    assert hi - out["predicted"] == pytest.approx(z * out["noise"], rel=1e-9)
    assert out["predicted"] - lo == pytest.approx(z * out["noise"], rel=1e-9)


def test_a_choice_exactly_as_long_as_the_window_is_not_refused(monkeypatch):
    """The scorer reads the last block_size + 1 tokens of context + choice, so a choice of
    block_size tokens is scored (tasks.score.too_long: len > block_size). Only a longer
    one is refused at plan time."""
    from scalinglab.study import tasks as st

    item = NS(context="q ", choices=["x" * 8, "y"])
    monkeypatch.setattr(st, "load_tokenizer", lambda shards: None)
    monkeypatch.setattr(st, "builtin_task",
                        lambda *a: NS(kind="multiple_choice", items=[item]))  # fmt: skip
    monkeypatch.setattr(st, "encode_pair", lambda tok, ctx, c: (list(ctx), list(c)))
    study = NS(tasks=NS(names=["recall"], items=1, seed=0))
    st.check_fits(study, None, 8)  # 8 tokens in a window of 8: fits
    with pytest.raises(SweepError, match=r"needs at least 8 tokens"):
        st.check_fits(study, None, 7)
