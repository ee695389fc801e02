"""A runs table's task column compares runs on one item set: a quick `eval --tasks
--task-items 50` of one run beside a study's 4000-item scores does not replace that run's
score in the column (found by the quickstart audit: the study's report and prediction read
the 50-item score of that run beside the 4000-item scores of the others)."""

import json

from scalinglab import runfolder
from scalinglab.report.collect import collect
from scalinglab.sweep.table import runs_table, task_items


def _run(root, name, loss, scores):
    """A completed run folder scored on (task, sha256, n items, step, acc) results."""
    d = root / "runs" / name
    d.mkdir(parents=True)
    result = {"format_version": 1, "status": "completed", "val_loss": loss, "arch": "gpt"}
    (d / "result.json").write_text(json.dumps(result))
    runfolder.record_tasks(
        d,
        [
            {"task": t, "sha256": sha, "n": n, "step": step, "acc": acc}
            for t, sha, n, step, acc in scores
        ],
    )
    return d


def _sweep(tmp_path):
    root = tmp_path / "sweep"
    for i in range(3):
        _run(root, f"r{i}", 3.0 - i / 10, [("recall", "study", 4000, 100, 0.5 + i / 10)])
    # one run scored again, later, on 50 other items: a worse, noisier number
    runfolder.record_tasks(
        root / "runs" / "r2",
        [{"task": "recall", "sha256": "quick", "n": 50, "step": 100, "acc": 0.02}],
    )
    return root


def test_a_column_shows_the_item_set_most_runs_were_scored_on(tmp_path):
    root = _sweep(tmp_path)
    assert task_items(sorted((root / "runs").iterdir())) == {"recall": "study"}
    acc = {r["run_id"]: r["recall.acc"] for r in runs_table(root)}
    assert acc == {"r0": 0.5, "r1": 0.6, "r2": 0.7}
    rows = collect(root).rows  # what a study's report and prediction read
    assert sorted(r["recall.acc"] for r in rows) == [0.5, 0.6, 0.7]
    # both item sets stay recorded in the run's tasks.json
    assert {r["sha256"] for r in runfolder.read_tasks(root / "runs" / "r2")} == {"study", "quick"}


def test_a_run_not_scored_on_the_columns_items_shows_none(tmp_path):
    root = _sweep(tmp_path)
    _run(root, "r3", 2.5, [("recall", "quick", 50, 100, 0.9)])  # two runs on each: a tie
    # the tie goes to the set of more items; r3 has no score on it, so none in the column
    rows = {r["run_id"]: r.get("recall.acc") for r in runs_table(root)}
    assert rows == {"r0": 0.5, "r1": 0.6, "r2": 0.7, "r3": None}


def test_one_run_alone_shows_its_newest_step_then_its_most_items(tmp_path):
    d = _run(
        tmp_path,
        "a",
        3.0,
        [
            ("recall", "s1", 4000, 100, 0.5),
            ("recall", "s2", 50, 100, 0.1),
            ("recall", "s3", 50, 50, 0.9),
        ],
    )
    assert runfolder.final_tasks(d)["recall"]["acc"] == 0.5
    assert runfolder.final_tasks(d, {"recall": "s3"})["recall"]["acc"] == 0.9


def test_a_corrected_task_file_scored_again_shows_its_new_result(tmp_path):
    """Two item sets of one task alike in runs and size (a task file fixed, then scored
    again): the table chose between them by their sha256's order, so the old numbers
    stayed about half the time. The set scored last is shown now."""
    from scalinglab import runfolder
    from scalinglab.sweep.table import task_items

    run = tmp_path / "run"
    run.mkdir()
    base = {"task": "mini", "step": 30, "n": 2, "acc": 0.0}
    for sha, acc in (("f" * 64, 0.0), ("0" * 64, 1.0), ("e" * 64, 0.5)):  # either order
        runfolder.record_tasks(run, [base | {"sha256": sha, "acc": acc}])
        assert task_items([run]) == {"mini": sha}
        assert runfolder.final_tasks(run)["mini"]["acc"] == acc
        assert runfolder.final_tasks(run, task_items([run]))["mini"]["acc"] == acc


def test_a_step_scored_in_float32_and_in_bfloat16_shows_float32_in_curves_and_table(tmp_path):
    """`eval --dtype bfloat16` after the float32 scores: both stay recorded, and the runs
    table and `runs --curves` show the float32 one (the default, which studies use)."""
    from scalinglab.cli.runs import scored_steps

    d = _run(tmp_path, "a", 3.0, [("recall", "s", 40, 100, 0.5)])
    bf16 = {"task": "recall", "sha256": "s", "n": 40, "step": 100, "acc": 0.9}
    runfolder.record_tasks(d, [bf16 | {"dtype": "bfloat16"}])
    assert sorted(r["acc"] for r in runfolder.read_tasks(d)) == [0.5, 0.9]
    assert scored_steps(d, {"recall": "s"}) == {100: {"recall.acc": 0.5}}
    assert runfolder.final_tasks(d)["recall"]["acc"] == 0.5
