"""The run folder's one module: metrics parsing, the finished/resumable/failed rule,
result writing, and whose checkpoint is whose (the training side is in
tests/train/test_resume.py)."""

import dataclasses
import json
import math
import os
import re

import pytest

from scalinglab import runfolder
from scalinglab.config import ModelConfig, RunConfig, TrainConfig
from scalinglab.errors import CheckpointError, DataError

ROWS = [
    {"step": 10, "tokens": 640, "train_loss": 3.0},
    {"step": 20, "tokens": 1280, "train_loss": 2.5, "val_loss": 2.7},
    {"step": 30, "tokens": 1920, "train_loss": 2.2},
]


def _metrics(run, tail: str = "") -> str:
    run.mkdir(exist_ok=True)
    text = "".join(json.dumps(x) + "\n" for x in ROWS) + tail
    (run / runfolder.METRICS).write_text(text)
    return text


# --- metrics.jsonl ------------------------------------------------------------


def test_a_torn_last_line_is_skipped_even_when_strict(tmp_path):
    _metrics(tmp_path, '{"step": 4')  # a write cut short: no newline
    assert runfolder.read_metrics(tmp_path) == ROWS
    assert runfolder.read_metrics(tmp_path, strict=True) == ROWS


def test_a_bad_line_is_skipped_or_named_with_its_line(tmp_path):
    good = [json.dumps(x) for x in ROWS]
    path = tmp_path / runfolder.METRICS
    path.write_text("\n".join([good[0], '{"step": 1', good[1], "[1, 2]", good[2]]) + "\n")
    assert runfolder.read_metrics(tmp_path) == ROWS
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: line 2: not JSON$"):
        runfolder.read_metrics(tmp_path, strict=True)
    path.write_text("\n".join([good[0], "[1, 2]", good[1]]) + "\n")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: line 2: not a JSON object$"):
        runfolder.read_metrics(tmp_path, strict=True)
    path.write_bytes(json.dumps(ROWS[0]).encode() + b"\n\xff\xfe\n")
    assert runfolder.read_metrics(tmp_path) == ROWS[:1]
    with pytest.raises(DataError, match="line 2: not JSON"):
        runfolder.read_metrics(tmp_path, strict=True)


def test_an_absent_metrics_file_reads_as_no_rows(tmp_path):
    assert runfolder.read_metrics(tmp_path) == []
    assert runfolder.latest_metrics(tmp_path) == {}
    with pytest.raises(DataError, match=r"metrics\.jsonl: cannot read"):
        runfolder.read_metrics(tmp_path, strict=True)


def test_latest_metrics_keeps_the_latest_of_each_key(tmp_path):
    _metrics(tmp_path, '{"step": 4')
    want = {"step": 30, "tokens": 1920, "train_loss": 2.2, "val_loss": 2.7}
    assert runfolder.latest_metrics(tmp_path) == want
    # a tail that starts mid-line skips that line
    n = len(json.dumps(ROWS[2]) + "\n" + '{"step": 4') + 5
    assert runfolder.latest_metrics(tmp_path, max_bytes=n) == ROWS[2]


def test_truncate_keeps_the_steps_up_to_the_checkpoint_and_drops_a_torn_tail(tmp_path):
    text = _metrics(tmp_path, '{"step": 4')
    runfolder.truncate_metrics(tmp_path, 20)
    assert (tmp_path / runfolder.METRICS).read_text() == "".join(text.splitlines(True)[:2])
    runfolder.truncate_metrics(tmp_path, 0)
    assert (tmp_path / runfolder.METRICS).read_text() == ""
    runfolder.truncate_metrics(tmp_path / "absent", 5)  # nothing to do
    assert not (tmp_path / "absent").exists()


def test_truncate_keeps_a_damaged_line_and_every_row_after_it(tmp_path):
    """A line that is not a row, in the middle of the file (edited by hand, damaged), used
    to end what a resume kept: the valid rows after it were deleted. Now it stays, as do
    they, and its number is returned for the trainer's warning."""
    path = tmp_path / runfolder.METRICS
    rows = [json.dumps(r) + "\n" for r in ROWS]
    path.write_text(rows[0] + '{"step": 20, "tokens": 25\n' + "".join(rows[1:]) + "[1]\n")
    assert runfolder.truncate_metrics(tmp_path, 20) == [2, len(ROWS) + 2]
    kept = path.read_text().splitlines(True)
    assert kept[:2] == [rows[0], '{"step": 20, "tokens": 25\n']
    assert [json.loads(x)["step"] for x in kept[2:-1]] == [
        r["step"] for r in ROWS[1:] if r["step"] <= 20
    ]
    assert kept[-1] == "[1]\n"
    path.write_bytes(b'{"step": 10}\n\xff\xfe\n{"step": 30}\n')  # not UTF-8: kept too
    assert runfolder.truncate_metrics(tmp_path, 20) == [2]
    assert path.read_bytes() == b'{"step": 10}\n\xff\xfe\n'


def test_metrics_line_writes_non_finite_numbers_as_null():
    row, line = runfolder.metrics_line({"step": 3, "train_loss": math.nan, "lr": math.inf})
    assert row == {"step": 3, "train_loss": None, "lr": None}
    assert line == '{"step": 3, "train_loss": null, "lr": null}\n'


# --- result.json and the one rule ---------------------------------------------


@pytest.mark.parametrize(
    "result,state",
    [
        ({"status": "completed"}, "finished"),
        ({"status": "diverged"}, "finished"),
        ({"status": "preempted"}, "resumable"),
        ({"status": "failed"}, "failed"),
        (None, "resumable"),
    ],
)
def test_finished_resumable_failed(tmp_path, result, state):
    assert runfolder.run_state(result) == state
    if result is not None:
        runfolder.write_result(tmp_path, result)
    assert runfolder.is_finished(tmp_path) == (state == "finished")
    assert runfolder.table_status(tmp_path, runfolder.read_result(tmp_path)) == (
        result["status"] if result else "pending"
    )


def test_table_status_without_a_result(tmp_path):
    assert runfolder.table_status(tmp_path, None) == "pending"
    _metrics(tmp_path)
    assert runfolder.table_status(tmp_path, None) == "incomplete"
    assert runfolder.table_status(tmp_path, {"val_loss": 2.0}) == "unknown"


def test_a_started_run_without_metrics_or_result_is_incomplete_not_pending(tmp_path):
    """A trainer_cmd that a sweep started and that was stopped (SIGTERM, exit 143)
    before it wrote metrics.jsonl or result.json left only the worker's train.log: it
    was started, so the table says incomplete, not pending (planned, not started)."""
    assert runfolder.table_status(tmp_path, None) == "pending"
    (tmp_path / runfolder.TRAIN_LOG).write_text("")
    assert runfolder.table_status(tmp_path, None) == "incomplete"


def test_write_result_is_atomic_and_writes_non_finite_as_null(tmp_path, monkeypatch):
    out = runfolder.write_result(tmp_path, {"status": "diverged", "train_loss": math.nan})
    assert out == {"format_version": 1, "status": "diverged", "train_loss": None}
    assert (tmp_path / "result.json").read_text() == (
        '{\n  "format_version": 1,\n  "status": "diverged",\n  "train_loss": null\n}\n'
    )
    assert os.listdir(tmp_path) == ["result.json"]

    def die(*a, **kw):  # the process dies before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        runfolder.write_result(tmp_path, {"status": "completed", "val_loss": 1.0})
    assert runfolder.read_result(tmp_path)["status"] == "diverged"  # the old one, whole
    assert os.listdir(tmp_path) == ["result.json"]


def test_read_result_is_none_unless_a_json_object(tmp_path):
    assert runfolder.read_result(tmp_path) is None
    for text in ('{"status": "comp', "[1]", "\xff"):
        (tmp_path / "result.json").write_text(text, encoding="latin-1")
        assert runfolder.read_result(tmp_path) is None


def test_a_newer_format_version_is_refused_naming_the_file(tmp_path, capsys):
    # docs/design.md: a reader refuses a format_version it does not know; read as today's,
    # a newer file's numbers could be silently wrong
    from scalinglab.cli import main

    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    runfolder.write_config(run, _cfg())
    (run / "result.json").write_text('{"status": "completed", "val_loss": 2.0}')
    assert runfolder.read_result(run)["val_loss"] == 2.0  # a trainer's own: no version
    (run / "result.json").write_text('{"format_version": 2, "status": "completed"}')
    assert main(["runs", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: {run / 'result.json'}: format_version 2; this scalinglab reads 1\n"
    )
    (run / "result.json").unlink()
    text = (run / "config.toml").read_text().replace("format_version = 1", "format_version = 7")
    (run / "config.toml").write_text(text)
    assert main(["runs", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: {run / 'config.toml'}: format_version 7; this scalinglab reads 1\n"
    )


# --- config and identity --------------------------------------------------------


def _cfg(**train) -> RunConfig:
    t = {"data": "shards", "steps": 100, "lr": 1e-3} | train
    return RunConfig(model=ModelConfig(n_layer=1, n_embd=32), train=TrainConfig(**t))


def test_config_round_trips_and_run_toml_is_the_fallback(tmp_path):
    cfg = _cfg()
    runfolder.write_config(tmp_path, cfg)
    assert runfolder.read_config(tmp_path) == cfg == runfolder.load_config(tmp_path)
    (tmp_path / "config.toml").rename(tmp_path / "run.toml")
    assert runfolder.read_config(tmp_path) == cfg
    assert runfolder.read_config_dict(tmp_path)["train"]["lr"] == 1e-3
    with pytest.raises(DataError, match=r"not a run folder: .*config\.toml is missing"):
        runfolder.load_config(tmp_path)
    (tmp_path / "run.toml").write_text("[train\n")
    assert runfolder.read_config(tmp_path) is None and runfolder.read_config_dict(tmp_path) is None


def test_a_continuation_shares_the_lineage_another_run_does_not():
    base = _cfg(schedule="constant", warmup=5)
    longer = _cfg(schedule="constant", warmup=5, steps=300)
    branch = _cfg(schedule="wsd", cooldown_frac=0.25, warmup=5, tokens=9600, steps=0)
    other = _cfg(schedule="constant", warmup=5, lr=2e-3)
    assert len({runfolder.run_id(c, "d") for c in (base, longer, branch, other)}) == 4
    lineage = runfolder.lineage_id(base, "d")
    assert runfolder.lineage_id(longer, "d") == runfolder.lineage_id(branch, "d") == lineage
    assert runfolder.lineage_id(other, "d") != lineage
    assert runfolder.lineage_id(base, "other data") != lineage
    assert runfolder.run_id(base, "d") == runfolder.checkpoint_owner(base, "d")["run_id"]
    # the operational fields change neither
    threads = dataclasses.replace(base, train=dataclasses.replace(base.train, threads=3))
    assert runfolder.checkpoint_owner(threads, "d") == runfolder.checkpoint_owner(base, "d")


def test_another_runs_checkpoint_is_refused_an_old_one_accepted(tmp_path):
    mine, theirs = _cfg(), _cfg(lr=2e-3)
    ckpt = tmp_path / "ckpt" / "step-00000004"
    runfolder.check_checkpoint(ckpt, runfolder.checkpoint_owner(mine, "d"), mine, "d")
    recorded = runfolder.checkpoint_owner(theirs, "d")
    msg = (
        f"{ckpt}: this checkpoint belongs to run {recorded['run_id']}, not to this run "
        f"{runfolder.run_id(mine, 'd')}; use a new out folder or that run's settings"
    )
    with pytest.raises(CheckpointError) as err:
        runfolder.check_checkpoint(ckpt, recorded, mine, "d")
    assert str(err.value) == msg
    old = {"format_version": 1, "kind": "scalinglab.checkpoint", "step": 4, "sha256": {}}
    runfolder.check_checkpoint(ckpt, old, mine, "d")  # written before checkpoints said whose


def test_latest_metrics_keeps_an_earlier_value_over_a_later_null(tmp_path):
    """A non-finite number is written as null; the live view keeps the latest real value."""
    rows = [
        {"step": 10, "tokens": 640, "train_loss": 3.0, "val_loss": 2.9},
        {"step": 20, "tokens": 1280, "train_loss": 2.5, "val_loss": None},
        {"step": 30, "tokens": 1920, "train_loss": None},
    ]
    (tmp_path / runfolder.METRICS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert runfolder.latest_metrics(tmp_path) == {
        "step": 30,
        "tokens": 1920,
        "train_loss": 2.5,
        "val_loss": 2.9,
    }


@pytest.mark.parametrize("key", ["val_loss", "tokens", "steps"])
def test_a_result_number_that_is_true_or_false_is_refused(tmp_path, key):
    """JSON true reads as Python True, an int subclass: a table would carry it as 1."""

    runfolder.write_result(tmp_path, {"status": "completed", key: True})
    with pytest.raises(DataError, match=f"{key} is true, not a number"):
        runfolder.read_result(tmp_path)


def test_final_tasks_shows_the_newest_step_before_the_larger_item_set(tmp_path):
    """The runs table shows each task at the newest step scored; the item count only breaks
    a tie at that step (a quick 10-item score at the end beats a 50-item one earlier)."""
    runfolder.record_tasks(
        tmp_path,
        [
            {"task": "lambada", "step": 100, "sha256": "a", "n": 50, "acc": 0.2},
            {"task": "lambada", "step": 200, "sha256": "b", "n": 10, "acc": 0.4},
        ],
    )
    assert runfolder.final_tasks(tmp_path)["lambada"]["step"] == 200
    runfolder.record_tasks(
        tmp_path, [{"task": "lambada", "step": 200, "sha256": "c", "n": 40, "acc": 0.3}]
    )
    assert runfolder.final_tasks(tmp_path)["lambada"]["sha256"] == "c"


def test_own_lineages_follow_a_chain_of_config_changes(tmp_path):
    """Two accepted changes a -> b -> c: the checkpoints of a and b are the run's own (pruned
    by --keep-ckpts), an unrelated lineage x is not."""
    for a, b in (("a", "b"), ("x", "y"), ("b", "c")):
        runfolder.append_history(
            tmp_path, {"event": "config_change", "from_lineage": a, "to_lineage": b}
        )
    assert runfolder.own_lineages(tmp_path, "c") == {"a", "b", "c"}
    assert runfolder.own_lineages(tmp_path, "b") == {"a", "b"}


def test_a_rescore_replaces_a_result_recorded_before_results_named_their_dtype(tmp_path):
    """A tasks.json written before the dtype was recorded holds results without "dtype":
    they were scored in float32, so scoring that step on those items again (now recorded
    as dtype float32) replaces them; it does not keep the stale score beside the new one."""
    old = {"task": "lambada", "step": 100, "sha256": "a", "n": 50, "acc": 0.2}
    runfolder.record_tasks(tmp_path, [old])
    assert "dtype" not in runfolder.read_tasks(tmp_path)[0]
    runfolder.record_tasks(tmp_path, [old | {"acc": 0.3, "dtype": "float32"}])
    results = runfolder.read_tasks(tmp_path)
    assert [(r["acc"], r["dtype"]) for r in results] == [(0.3, "float32")]
    # a bfloat16 score of the same step and items is kept beside the float32 one
    runfolder.record_tasks(tmp_path, [old | {"acc": 0.25, "dtype": "bfloat16"}])
    assert sorted(r["acc"] for r in runfolder.read_tasks(tmp_path)) == [0.25, 0.3]


def test_a_rescore_is_the_newer_result_even_when_the_clock_went_back(tmp_path, monkeypatch):
    """Two item sets of one size at one step (a task file corrected, scored again): the
    runs table shows the one scored last. A clock stepped back (NTP, another machine's
    tasks.json) must not make the new score look older than the one it follows."""
    runfolder.record_tasks(
        tmp_path, [{"task": "lambada", "step": 200, "sha256": "b", "n": 40, "acc": 0.4}]
    )
    first = runfolder.read_tasks(tmp_path)[0]["scored_at"]
    monkeypatch.setattr(runfolder.time, "time", lambda: first - 3600.0)  # an hour back
    runfolder.record_tasks(
        tmp_path, [{"task": "lambada", "step": 200, "sha256": "c", "n": 40, "acc": 0.3}]
    )
    shown = runfolder.final_tasks(tmp_path)["lambada"]
    assert (shown["sha256"], shown["acc"]) == ("c", 0.3)
    assert shown["scored_at"] > first
