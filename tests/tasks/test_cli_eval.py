"""`scalinglab eval --tasks` on a folder of runs and on every checkpoint; the runs table's
task columns."""

import csv
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from scalinglab import runfolder
from scalinglab.cli import main
from scalinglab.errors import ConfigError, DataError
from scalinglab.tasks import run as task_run
from scalinglab.tasks.run import checkpoint_position
from scalinglab.tasks.score import encode_pair
from scalinglab.train.evaluate import load_run_tokenizer
from tests.export.runs import trained_runs
from tests.reliability.helpers import one_line_error

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tasks"
QA = str(EXAMPLES / "qa.jsonl")  # a task file that exists: the flag, not the name, is wrong


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    trained_runs(root, a={}, b={"steps": 40, "ckpt_every": 20, "keep_ckpts": 3})
    return root


def test_eval_tasks_over_a_folder_of_runs_fills_the_runs_table(sweep, capsys, tmp_path):
    tasks = f"{EXAMPLES / 'qa.jsonl'},{EXAMPLES / 'sentiment.jsonl'}"
    assert main(["eval", str(sweep), "--tasks", tasks, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted({(Path(r["run"]).name, r["task"]) for r in out}) == [
        ("a", "qa"), ("a", "sentiment"), ("b", "qa"), ("b", "sentiment"),
    ]  # fmt: skip
    assert main(["runs", str(sweep), "--csv", str(tmp_path / "runs.csv")]) == 0
    rows = {r["run_id"]: r for r in csv.DictReader((tmp_path / "runs.csv").open())}
    for r in out:
        row = rows[Path(r["run"]).name]
        for m in ("acc", "acc_norm", "bpb"):
            assert float(row[f"{r['task']}.{m}"]) == pytest.approx(r[m], rel=1e-12)


def test_every_checkpoint_is_scored_and_recorded_once(sweep, capsys):
    run = sweep / "b"
    steps = sorted(int(p.name.split("-")[1]) for p in (run / "ckpt").iterdir())
    assert steps == [20, 40]
    argv = ["eval", str(run), "--tasks", str(EXAMPLES / "qa.jsonl"), "--every-checkpoint"]
    assert main(argv) == 0
    assert main(argv) == 0  # a rerun replaces its results, it does not add copies
    text = capsys.readouterr().out
    assert "step 20  qa  n 8  acc" in text and "(chance 0.250)" in text
    qa = [r for r in runfolder.read_tasks(run) if r["task"] == "qa"]
    assert sorted(r["step"] for r in qa) == [20, 40]
    assert [r["tokens"] for r in sorted(qa, key=lambda r: r["step"])] == [20 * 8 * 16, 40 * 8 * 16]
    assert runfolder.final_tasks(run)["qa"]["step"] == 40


def test_bad_task_input_is_one_line(sweep, capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"context": "x", "choices": ["a", "b"], "gold": 2}\n')
    assert main(["eval", str(sweep / "a"), "--tasks", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"{bad}:1: 'gold' must be the index" in err
    # both kinds' keys: it was scored as multiple choice, its prompt and reference unread
    bad.write_text('{"context": "x", "choices": ["a", "b"], "gold": 0, "prompt": "y"}\n')
    assert main(["eval", str(sweep / "a"), "--tasks", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {bad}:1: both a multiple-choice item's 'context', 'choices', "
                   "'gold' and a generation item's 'prompt': keep one kind's keys\n")  # fmt: skip
    assert main(["eval", str(sweep / "a"), "--tasks", "brackets"]) == 2
    assert "yields no item of task 'brackets'" in capsys.readouterr().err
    # a choice the model cannot read in one window: the run, the task and the size it needs
    long = tmp_path / "long.jsonl"
    long.write_text(
        '{"context": "x", "choices": ["a", "b"], "gold": 0}\n\n'
        '{"context": "x", "choices": ["a", "' + "b" * 40 + '"], "gold": 0}\n'
    )
    tok = load_run_tokenizer(sweep / "a", runfolder.load_config(sweep / "a"))
    need = len(encode_pair(tok, "x", "b" * 40)[1])
    assert need > 16
    assert main(["eval", str(sweep / "a"), "--tasks", str(long)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {sweep / 'a'}: task 'long': 1 of 2 items have a choice longer than the "
        f"model's block_size (16); it needs a block_size of at least {need} tokens\n"
    )


def test_a_negative_batch_size_is_refused_and_keeps_tasks_json(sweep, capsys):
    """It scored no pair (every log-likelihood 0) and overwrote the good row."""
    run, qa = sweep / "a", str(EXAMPLES / "qa.jsonl")
    assert main(["eval", str(run), "--tasks", qa]) == 0
    before = (run / runfolder.TASKS).read_bytes()
    capsys.readouterr()
    assert main(["eval", str(run), "--tasks", qa, "--batch-size", "-1"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --batch-size must be >= 0 (0: 32 with --tasks), got -1\n"
    assert (run / runfolder.TASKS).read_bytes() == before


def test_a_damaged_tasks_json_is_refused_never_overwritten(sweep, capsys):
    """The next eval --tasks overwrote it: every earlier result lost."""
    path = sweep / "a" / runfolder.TASKS
    kept = path.read_bytes() if path.exists() else None
    damaged = b'{"format_version": 2, "results": [{"task": "qa", "acc": 0.5},]}'
    path.write_bytes(damaged)
    try:
        err = one_line_error(capsys, ["eval", str(sweep), "--tasks", str(EXAMPLES / "qa.jsonl")])
        assert err == (
            f"error: {path}: not JSON (truncated or damaged); its earlier task results would "
            "be lost: mend or move it, then score again\n"
        )
        assert path.read_bytes() == damaged
        with pytest.raises(DataError, match="not JSON"):
            runfolder.record_tasks(sweep / "a", [{"task": "qa", "step": 1, "acc": 1.0}])
        assert path.read_bytes() == damaged
    finally:
        path.unlink()
        if kept is not None:
            path.write_bytes(kept)


def test_a_folder_of_runs_skips_those_not_completed_or_without_a_checkpoint(
    sweep, tmp_path, capsys
):
    """The first run without a checkpoint (a diverged one) stopped the folder: none scored."""
    root = tmp_path / "sw"
    for name in ("a", "x", "y"):
        shutil.copytree(sweep / "a", root / name, ignore=shutil.ignore_patterns("tasks.json"))
    shutil.rmtree(root / "x" / "ckpt")
    result = json.loads((root / "y" / "result.json").read_text())
    (root / "y" / "result.json").write_text(json.dumps(result | {"status": "diverged"}))
    assert main(["eval", str(root), "--tasks", str(EXAMPLES / "qa.jsonl"), "--json"]) == 0
    out = capsys.readouterr()
    assert out.err.splitlines() == [
        f"warning: {root / 'x'}: no valid checkpoint in {root / 'x' / 'ckpt'}: skipped",
        f"warning: {root / 'y'}: diverged, not completed: skipped (eval RUN of the run itself "
        "scores it)",
    ]
    assert [r["run"] for r in json.loads(out.out)] == [str(root / "a")]
    shutil.rmtree(root / "a" / "ckpt")
    assert main(["eval", str(root), "--tasks", str(EXAMPLES / "qa.jsonl")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and err[0].endswith(f"{root / 'a' / 'ckpt'}: skipped")
    assert err[-1] == f"error: {root}: no completed run with a valid checkpoint to score"


def test_a_checkpoint_between_log_steps_gets_its_tokens_and_flops(tmp_path, capsys, caplog):
    """`--ckpt-every 15 --log-every 10`: step 15 is no logged step; it was recorded with
    tokens and flops None."""
    kw = {"steps": 30, "ckpt_every": 15, "keep_ckpts": 3, "log_every": 10}
    run = trained_runs(tmp_path, r=kw)["r"]
    argv = ["eval", str(run), "--tasks", str(EXAMPLES / "qa.jsonl"), "--every-checkpoint"]
    assert main([*argv, "--json"]) == 0
    per_token = json.loads((run / "result.json").read_text())["flops_per_token"]
    got = [(r["step"], r["tokens"], r["flops"]) for r in json.loads(capsys.readouterr().out)]
    assert got == [(s, s * 8 * 16, s * 8 * 16 * per_token) for s in (15, 30)]
    assert 15 not in {r["step"] for r in runfolder.read_metrics(run)}
    # a checkpoint whose state does not say: None, and a warning says so (not silently)
    ckpt = min((run / "ckpt").iterdir())  # step 15's
    (ckpt / "state.pt").write_bytes(b"not a state")
    with caplog.at_level(logging.WARNING):
        assert checkpoint_position(run, 15, ckpt, per_token) == {
            "tokens": None, "flops": None,
        }  # fmt: skip
    assert f"{run}: step 15 is no logged step and its checkpoint does not say" in caplog.text


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--tasks", ""], "--tasks '': name task files or built-in tasks"),
        (["--every-checkpoint"], "--every-checkpoint is for scoring tasks: give --tasks too"),
        (["--task-items", "50"], "--task-items is for scoring tasks: give --tasks too"),
        (["--task-seed", "3"], "--task-seed is for scoring tasks: give --tasks too"),
        (["--max-new-tokens", "8"], "--max-new-tokens is for scoring tasks: give --tasks too"),
        (["--tasks", "qa", "--split", "test"], "--split is for the loss; with --tasks"),
        (["--tasks", "qa", "--eval-tokens", "64"], "--eval-tokens is for the loss; with"),
        (["--tasks", "qa", "--task-items", "0"], "--task-items must be >= 1, got 0"),
        (["--tasks", "qa", "--max-new-tokens", "0"], "--max-new-tokens must be >= 1, got 0"),
        (["--tasks", QA, "--data", "sh"], "--data is the shards the built-in tasks are"),
        (["--tasks", QA, "--task-items", "50"], "--task-items is the size of the built-in"),
        (["--tasks", QA, "--task-seed", "0"], "--task-seed is the seed of the built-in"),
    ],
)
def test_a_flag_of_the_other_mode_is_refused_not_ignored(sweep, capsys, flags, says):
    """--tasks '' scored the loss, --every-checkpoint, --task-items, --task-seed or
    --max-new-tokens without --tasks and --split test with it, and --data, --task-items or --task-seed with task files only (they make built-in
    tasks), were ignored without a word."""
    err = one_line_error(capsys, ["eval", str(sweep / "a"), *flags])
    assert err.startswith(f"error: {says}"), err


def test_max_new_tokens_past_generates_bound_is_refused(sweep, capsys):
    """eval --tasks --max-new-tokens had no upper bound: a typo (100000000) ran a generation
    item that never met its `until` for days. Refused as generate's, before scoring."""
    run = sweep / "a"
    before = (run / "tasks.json").read_bytes() if (run / "tasks.json").exists() else None
    args = ["eval", str(run), "--tasks", str(EXAMPLES / "translation.jsonl")]
    err = one_line_error(capsys, [*args, "--max-new-tokens", "100000000"])
    assert err == (
        "error: --max-new-tokens must be at most 1000000, got 100000000 (a bound against a "
        "typo: each generation item may run to it)\n"
    )
    after = (run / "tasks.json").read_bytes() if (run / "tasks.json").exists() else None
    assert after == before


def test_a_folder_of_runs_skips_a_run_whose_config_is_damaged(sweep, tmp_path, capsys):
    """A run of a folder with a damaged config.toml stopped the whole folder with its error,
    no run scored (an audit); it is skipped with a warning line, as one without a checkpoint."""
    root = tmp_path / "sw"
    for name in ("a", "x"):
        shutil.copytree(sweep / "a", root / name, ignore=shutil.ignore_patterns("tasks.json"))
    (root / "a" / "config.toml").write_text("garbage [\n")
    assert main(["eval", str(root), "--tasks", str(EXAMPLES / "qa.jsonl"), "--json"]) == 0
    out = capsys.readouterr()
    assert out.err.startswith(f"warning: {root / 'a'}: skipped: {root / 'a' / 'config.toml'}: ")
    assert out.err.count("\n") == 1
    assert [r["run"] for r in json.loads(out.out)] == [str(root / "x")]
    assert not (root / "a" / "tasks.json").exists()


def test_the_loss_of_a_folder_of_runs_says_to_give_one_run_or_tasks(sweep, capsys):
    # 'not a run folder: DIR/config.toml is missing' left the user to guess that a folder
    # of runs is read at all (by --tasks)
    assert one_line_error(capsys, ["eval", str(sweep)]) == (
        f"error: {sweep}: a folder of 2 runs, not one run: the loss is evaluated on one run folder "
        f"(give one, e.g. {sweep / 'a'}); --tasks scores every run of a folder\n"
    )


def test_a_bfloat16_run_is_scored_in_float32_unless_asked(tmp_path, capsys):
    """`eval --tasks` scored a run trained under bfloat16 in bfloat16 autocast: its
    log-likelihoods up to 0.08 nats off the float32 ones lm-evaluation-harness computes
    with dtype=float32 (docs/tasks.md promises the same), and off a study's scores of the
    same run (evaluate_run, float32). Tasks are now scored in float32 unless --dtype says
    otherwise; the loss keeps the run's own arithmetic, which result.json's was measured in."""
    import torch

    from scalinglab.tasks.format import read_task
    from scalinglab.tasks.run import evaluate_run

    run = trained_runs(tmp_path, bf={"dtype": "bfloat16", "steps": 60})["bf"]
    tasks = [read_task(EXAMPLES / "qa.jsonl"), read_task(EXAMPLES / "sentiment.jsonl")]
    files = f"{EXAMPLES / 'qa.jsonl'},{EXAMPLES / 'sentiment.jsonl'}"

    def cli(*extra):
        assert main(["eval", str(run), "--tasks", files, "--json", *extra]) == 0
        return {r["task"]: r for r in json.loads(capsys.readouterr().out)}

    def bf16():
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)

    f32 = {r["task"]: r for r in evaluate_run(run, tasks, record=False)}
    b16 = {r["task"]: r for r in evaluate_run(run, tasks, autocast=bf16, record=False)}
    assert any(f32[t]["bpb"] != b16[t]["bpb"] for t in f32)  # the two arithmetics differ here
    for got, want in (
        (cli(), f32),
        (cli("--dtype", "float32"), f32),
        (cli("--dtype", "bfloat16"), b16),
    ):
        for t in want:
            for m in ("acc", "acc_norm", "bpb"):
                assert got[t][m] == want[t][m]
    # the bfloat16 scores replaced the float32 ones in tasks.json, with nothing to tell
    # them apart: now each result names its arithmetic, both are kept, tables read float32
    recorded = json.loads((run / "tasks.json").read_text())["results"]
    assert sorted((r["task"], r["dtype"]) for r in recorded) == sorted(
        (t, d) for t in f32 for d in ("bfloat16", "float32")
    )
    for t, r in runfolder.final_tasks(run).items():
        assert r["dtype"] == "float32" and r["bpb"] == f32[t]["bpb"]
    assert main(["eval", str(run), "--eval-tokens", "400", "--json"]) == 0
    loss = json.loads(capsys.readouterr().out)["loss"]
    assert loss == pytest.approx(
        json.loads((run / "result.json").read_text())["val_loss"], rel=1e-6
    )


# Known answers for mutations of tasks/run.py that every test passed (a mutation audit):
# each fails on its mutation.
def test_a_task_named_twice_is_refused(tmp_path):
    """Kills R4 (`names.count(n) > 1` -> `> 2`). Known answer: --tasks recall,recall
    names 'recall' twice: ConfigError 'names recall twice'."""
    from tests.conftest import write_raw_shards
    from tests.tasks.test_builtin import code

    val = np.frombuffer(code(40, 1).encode(), dtype=np.uint8)
    shards = write_raw_shards(tmp_path / "s", val, val)
    with pytest.raises(ConfigError, match="names recall twice"):
        task_run.resolve_tasks(["recall", "recall"], shards, n_items=5)


def test_a_step_missing_from_metrics_takes_result_json_steps(tmp_path, monkeypatch):
    """Kills R2 (the `result.get("steps") == step` fallback dropped). result.json says
    `steps` (train/loop.py writes that key, not `step`); with no metrics row for the
    final step, its tokens and flops are result.json's. Known answer: 1920 and 4.8e8."""
    monkeypatch.setattr(runfolder, "read_metrics", lambda d: [])
    monkeypatch.setattr(
        runfolder, "read_result", lambda d: {"steps": 15, "tokens": 1920, "flops": 4.8e8}
    )
    assert task_run.step_position(tmp_path, 15) == {"tokens": 1920, "flops": 4.8e8}


def test_a_metrics_row_without_tokens_is_passed_over(tmp_path, monkeypatch):
    """Kills R5 (`and row.get("tokens") is not None` dropped in step_position). Of two
    rows of step 15, the first (an evaluation row) has no tokens: the position is the
    second row's. Known answer: {'tokens': 1920, 'flops': 4.8e8}."""
    rows = [{"step": 15, "val_loss": 2.5}, {"step": 15, "tokens": 1920, "flops": 4.8e8}]
    monkeypatch.setattr(runfolder, "read_metrics", lambda d: rows)
    assert task_run.step_position(tmp_path, 15) == {"tokens": 1920, "flops": 4.8e8}


def test_every_checkpoint_means_every_valid_one_oldest_first(tmp_path, monkeypatch):
    """Kills R6 (the `checkpoint.verify(p) is None` filter dropped) and R1 (`valid[::-1]`
    -> `valid`). list_steps gives newest first; step 20 fails verification. Known answer:
    [step 10, step 30]."""
    from scalinglab.train import checkpoint

    steps = [tmp_path / "step_30.pt", tmp_path / "step_20.pt", tmp_path / "step_10.pt"]
    monkeypatch.setattr(checkpoint, "list_steps", lambda d: steps)
    monkeypatch.setattr(
        checkpoint, "verify", lambda p: "corrupted" if p.name == "step_20.pt" else None
    )
    assert task_run.checkpoints(tmp_path, every=True) == [steps[2], steps[0]]
