"""Whose folder, whose checkpoints, whose settings: a run never takes another run's
checkpoints nor deletes them, never changes its settings silently on resume, and never
shares its folder with a second trainer (issue 16, items 1, 5 and 6)."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest

from scalinglab import runfolder
from scalinglab.cli import main
from scalinglab.fsio import sha256_file
from scalinglab.sweep.table import runs_table
from scalinglab.train import checkpoint
from tests.reliability.helpers import ROOT, one_line_error
from tests.train.helpers import cli_args, tiny_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return tiny_shards(tmp_path_factory.mktemp("data") / "shards")


def _train(shards, run, *extra, steps: int = 8):
    return cli_args(shards, run, "--steps", str(steps), "--ckpt-every", "4", "--keep-ckpts",
                    "1", "--warmup", "2", "--log-every", "1", "--threads", "1", *extra)  # fmt: skip


def _tree(folder) -> dict:
    """Every file under `folder` with its sha256: what must stay untouched."""
    return {
        str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _result(run) -> dict:
    return json.loads((run / "result.json").read_text())


def test_a_copied_checkpoint_of_another_run_is_refused(shards, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(_train(shards, a)) == 0
    shutil.copytree(a / "ckpt", b / "ckpt")
    before = _tree(a)
    err = one_line_error(capsys, _train(shards, b, "--lr", "2e-3", steps=12))
    want = (
        f"error: {b / 'ckpt/step-00000008'}: this checkpoint belongs to run "
        f"{_result(a)['run_id']}, not to this run ([0-9a-f]{{12}}); use a new --out folder "
        "or that run's settings\n"
    )
    assert re.fullmatch(want, err), err
    # --allow-config-change is for this run's own settings, not for another run's weights
    err = one_line_error(capsys, _train(shards, b, "--lr", "2e-3", "--allow-config-change"))
    assert "this checkpoint belongs to run" in err
    assert _tree(a) == before
    assert sorted(p.name for p in b.iterdir()) == [".lock", "ckpt"]  # no config, no result


def test_a_ckpt_link_into_another_run_is_refused_and_nothing_there_is_deleted(
    shards, tmp_path, capsys
):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(_train(shards, a, "--keep-ckpts", "3")) == 0
    assert [p.name for p in checkpoint.list_steps(a / "ckpt")] == ["step-00000008", "step-00000004"]
    b.mkdir()
    (b / "ckpt").symlink_to(a / "ckpt")
    before = _tree(a)
    # The same settings as a's: by identity alone this would continue a's checkpoints
    # and, with --keep-ckpts 1, prune a's step 4.
    err = one_line_error(capsys, _train(shards, b, steps=12))
    assert err == (
        f"error: {b / 'ckpt'} is a link into another run's folder ({a}); a run keeps its "
        "checkpoints in its own folder: remove the link, or pass that run's folder as --out\n"
    )
    assert _tree(a) == before
    # A link to a folder of no run (a scratch disk) is fine.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    c = tmp_path / "c"
    c.mkdir()
    (c / "ckpt").symlink_to(scratch)
    assert main(_train(shards, c)) == 0
    assert [p.name for p in scratch.iterdir()] == ["step-00000008"]


def test_pruning_unlinks_a_link_and_never_deletes_what_it_points_at(shards, tmp_path):
    a = tmp_path / "a"
    assert main(_train(shards, a, "--keep-ckpts", "3")) == 0
    before = _tree(a)
    mine = tmp_path / "mine" / "ckpt"
    mine.mkdir(parents=True)
    shutil.copytree(a / "ckpt/step-00000008", mine / "step-00000009")
    (mine / "step-00000001").symlink_to(a / "ckpt/step-00000004")  # an old step, a link
    (mine / ".tmp-step-00000002-1").symlink_to(a / "ckpt")  # a "partial write", a link
    checkpoint.prune(mine, keep=1)
    assert sorted(p.name for p in mine.iterdir()) == ["step-00000009"]
    assert _tree(a) == before
    # A valid checkpoint of another lineage in a shared folder is neither counted nor deleted.
    (mine / "step-00000001").symlink_to(a / "ckpt/step-00000004")
    owner = {"run_id": "x" * 12, "lineage_id": "y" * 12}
    checkpoint.prune(mine, keep=1, owner=owner)
    assert sorted(p.name for p in mine.iterdir()) == ["step-00000001", "step-00000009"]
    assert _tree(a) == before


def test_a_changed_setting_on_resume_is_named_and_needs_allow_config_change(
    shards, tmp_path, capsys, caplog
):
    run = tmp_path / "run"
    assert main(_train(shards, run)) == 0
    first = _result(run)
    config = (run / "config.toml").read_text()
    changed = ("--lr", "2e-3", "--weight-decay", "0.05")
    err = one_line_error(capsys, _train(shards, run, *changed, steps=12))
    assert err == (
        f"error: cannot resume {run} from step-00000008: settings changed since it was "
        "written (--lr 0.001 -> 0.002, --weight-decay 0.1 -> 0.05); pass "
        f"--allow-config-change to continue with them (recorded in {run / 'history.jsonl'}), "
        "or use a new --out folder\n"
    )
    assert (run / "config.toml").read_text() == config  # nothing rewritten
    assert _result(run) == first
    assert not (run / "history.jsonl").exists()

    assert main(_train(shards, run, *changed, "--allow-config-change", steps=12)) == 0
    assert "continues from step-00000008 with changed settings: --lr 0.001 -> 0.002" in (
        caplog.text
    )
    mixed = _result(run)
    assert (mixed["status"], mixed["steps"], mixed["config_changes"]) == ("completed", 12, 1)
    (event,) = runfolder.read_history(run)
    assert event["event"] == "config_change" and event["step"] == 8
    assert event["changes"] == {"lr": [0.001, 0.002], "weight_decay": [0.1, 0.05]}
    assert (event["from_run_id"], event["to_run_id"]) == (first["run_id"], mixed["run_id"])
    assert "lr = 0.002" in (run / "config.toml").read_text()
    # The runs table flags the mixed run (0 is a clean run), and so does its terminal view.
    (row,) = runs_table(run)
    assert (row["status"], row["config_changes"], row["lr"]) == ("completed", 1, 0.002)
    capsys.readouterr()
    assert main(["runs", str(run)]) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert header.split()[-1] == "config_changes" and line.split()[-1] == "1"
    # From here the new settings are the run's: a larger budget continues without the flag,
    # the old ones are now the change.
    assert main(_train(shards, run, *changed, steps=16)) == 0
    assert _result(run)["steps"] == 16
    err = one_line_error(capsys, _train(shards, run, steps=20))
    assert "(--lr 0.002 -> 0.001, --weight-decay 0.05 -> 0.1)" in err


def test_keep_ckpts_prunes_the_runs_own_checkpoints_from_before_a_config_change(shards, tmp_path):
    """--keep-ckpts 1 over two changes of settings (three lineages) kept a checkpoint of
    each (steps 8, 12 and 16): pruning counted only the current lineage's, as if the
    earlier ones, recorded in history.jsonl, were another run's. Another run's checkpoint
    in the folder is still neither counted nor deleted."""
    run, other = tmp_path / "run", tmp_path / "other"
    assert main(_train(shards, run)) == 0
    assert main(_train(shards, run, "--lr", "2e-3", "--allow-config-change", steps=12)) == 0
    assert main(_train(shards, other, "--lr", "5e-3", steps=4)) == 0
    shutil.copytree(other / "ckpt/step-00000004", run / "ckpt/step-00000004")
    assert main(_train(shards, run, "--lr", "3e-3", "--allow-config-change", steps=16)) == 0
    steps = sorted(p.name for p in (run / "ckpt").iterdir())
    assert steps == ["step-00000004", "step-00000016"]
    lineages = [checkpoint.read_manifest(run / "ckpt" / s)["lineage_id"] for s in steps]
    assert lineages[0] == checkpoint.read_manifest(other / "ckpt/step-00000004")["lineage_id"]
    assert lineages[1] == runfolder.read_history(run)[-1]["to_lineage"] != lineages[0]


def test_a_second_trainer_on_the_folder_names_the_holder_and_exits(shards, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    fd = runfolder.hold_lock(run)  # as a trainer (or a sweep worker) of this run does
    try:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
        env.pop(runfolder.LOCK_HELD_ENV, None)
        p = subprocess.run(
            [sys.executable, "-m", "scalinglab", *_train(shards, run)],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
    finally:
        runfolder.release_lock(fd)
    assert p.returncode == 2, p.stderr
    assert p.stderr == (
        f"error: {run} is in use by another trainer (pid {os.getpid()} on "
        f"{socket.gethostname()}); wait for it to end, or use another --out folder\n"
    )
    assert sorted(x.name for x in run.iterdir()) == [".lock"]
    # Released (or its holder killed: the kernel drops the lock), the folder trains.
    assert main(_train(shards, run)) == 0


def test_a_config_change_resumed_at_the_last_step_completes(shards, tmp_path, capsys):
    """Killed after its final checkpoint and before result.json (during the final
    evaluation), a run continued with --allow-config-change trained nothing: saving its
    final checkpoint again was refused as 'another run's checkpoint' on every attempt."""
    run = tmp_path / "run"
    assert main(_train(shards, run)) == 0
    (run / "result.json").unlink()
    assert main(_train(shards, run, "--lr", "2e-3", "--allow-config-change")) == 0
    assert _result(run)["status"] == "completed"
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == ["step-00000008"]


def test_relaunching_a_complete_run_leaves_its_folder_as_it_was(shards, tmp_path, capsys):
    """A complete run relaunched with another --eval-tokens or --schedule returns its
    result; config.toml (rewritten to settings its result was not made with) and
    history.jsonl (a schedule_change per relaunch) stay as they were."""
    run = tmp_path / "run"
    assert main(_train(shards, run)) == 0
    before = _tree(run)
    for extra in (("--eval-tokens", "800"), ("--schedule", "constant")):
        assert main(_train(shards, run, *extra)) == 0
        assert _tree(run) == before


def test_resume_must_on_a_missing_folder_makes_none(shards, tmp_path, capsys):
    run = tmp_path / "typo"
    err = one_line_error(capsys, _train(shards, run, "--resume", "must"))
    assert err == f"error: --resume must, but {run / 'ckpt'} holds no valid checkpoint\n"
    assert not run.exists()


def test_a_model_too_large_for_memory_is_one_line(shards, tmp_path, capsys):
    """--vocab-size 1e11 was a RuntimeError traceback from the embedding's allocation."""
    run = tmp_path / "big"
    err = one_line_error(capsys, _train(shards, run, "--vocab-size", "100000000000"))
    assert err.startswith("error: the gpt of ") and "does not fit in the memory of cpu" in err
    assert not run.exists()


def test_eval_every_changed_under_plateau_annealing_is_a_config_change(shards, tmp_path, capsys):
    """With --plateau-factor the evaluations steer the LR, so --eval-every is part of the
    run: changing it on resume was refused as 'another run's checkpoint', even with
    --allow-config-change."""
    run = tmp_path / "run"
    assert main(_train(shards, run, "--plateau-factor", "2", "--eval-every", "2")) == 0
    longer = _train(shards, run, "--plateau-factor", "2", "--eval-every", "4", steps=12)
    err = one_line_error(capsys, longer)
    assert "settings changed since it was written (--eval-every 2 -> 4)" in err
    assert main([*longer, "--allow-config-change"]) == 0
    assert _result(run)["status"] == "completed"
