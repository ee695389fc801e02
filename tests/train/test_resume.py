import dataclasses
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from scalinglab.errors import CheckpointError
from scalinglab.train import checkpoint, setup, train
from scalinglab.train.loop import Trainer
from tests.train.helpers import cli_args, tiny_cfg, tiny_shards

ROOT = Path(__file__).resolve().parents[2]


def _weights(run: Path) -> dict:
    return load_file(checkpoint.latest(run / "ckpt") / checkpoint.WEIGHTS)


def _assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _rows(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


class Crash(Exception):
    pass


def _crash_at(monkeypatch, step: int):
    """Make the trainer die (like a killed process) right after finishing `step`."""
    orig = Trainer._after_step

    def after_step(self, bar):
        orig(self, bar)
        if self.c.step == step:
            raise Crash(step)

    monkeypatch.setattr(Trainer, "_after_step", after_step)


def test_sigkill_at_a_random_step_then_resume_is_bitwise_equal(tmp_path):
    data = tiny_shards(tmp_path / "shards")
    steps, extra = 80, dict(ckpt_every=3, dropout=0.1, eval_every=50)
    ref = train(tiny_cfg(data, steps=steps, **extra), tmp_path / "ref")
    run = tmp_path / "killed"
    kill_after = random.Random(os.urandom(8)).randrange(4, 50)
    args = cli_args(data, run, "--steps", str(steps), "--ckpt-every", "3", "--dropout", "0.1")
    args += ["--eval-every", "50", "--lr", "3e-3", "--warmup", "5", "--log-every", "1"]
    args += ["--threads", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "scalinglab", *args],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and metrics.read_text().count("\n") >= kill_after:
            break
        time.sleep(0.002)
    assert proc.poll() is None, f"the run ended before the kill: {proc.stderr.read()}"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (run / "result.json").exists()
    resumed = train(tiny_cfg(data, steps=steps, **extra), run)
    assert resumed["status"] == "completed", kill_after
    _assert_bitwise_equal(_weights(tmp_path / "ref"), _weights(run))
    assert resumed["val_loss"] == ref["val_loss"]
    assert _rows(run) == _rows(tmp_path / "ref"), f"killed after {kill_after} metrics lines"


def test_a_failure_whose_record_cannot_be_written_raises_itself_and_drops_the_old_record(
    tmp_path, monkeypatch, caplog
):
    """A run continued to a larger budget fails, and the disk is full when it records
    the failure: the error raised is the failure (it was the full disk's, naming
    result.json), and the earlier budget's result.json, which would now say the run
    completed, is removed (an audit)."""
    from scalinglab import runfolder

    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    assert train(tiny_cfg(data, steps=4), run)["status"] == "completed"

    def disk_full(*a, **kw):
        raise OSError(28, "No space left on device", str(run / "result.json"))

    with monkeypatch.context() as m:
        _crash_at(m, 6)
        m.setattr(runfolder, "write_result", disk_full)
        with pytest.raises(Crash):
            train(tiny_cfg(data, steps=8), run)
    assert not (run / "result.json").exists()
    assert "could not record the failure" in caplog.text and "No space left" in caplog.text
    assert train(tiny_cfg(data, steps=8), run)["status"] == "completed"


@pytest.mark.parametrize("arch, order", [("lstm", "stream"), ("gru", "stream"), ("lstm", "random")])
def test_recurrent_crash_and_resume_is_bitwise_equal(tmp_path, monkeypatch, arch, order):
    # The carried hidden state and the stream loader position travel in the checkpoint.
    data = tiny_shards(tmp_path / "shards")
    cfg = tiny_cfg(
        data, arch, model=dict(n_layer=2), steps=24, ckpt_every=5, dropout=0.2, order=order
    )
    ref = train(cfg, tmp_path / "ref")
    with monkeypatch.context() as m:
        _crash_at(m, 13)
        with pytest.raises(Crash):
            train(cfg, tmp_path / "run")
    assert json.loads((tmp_path / "run/result.json").read_text())["status"] == "failed"
    resumed = train(cfg, tmp_path / "run")
    assert resumed["status"] == "completed" and resumed["steps"] == 24
    _assert_bitwise_equal(_weights(tmp_path / "ref"), _weights(tmp_path / "run"))
    assert resumed["val_loss"] == ref["val_loss"]
    assert _rows(tmp_path / "run") == _rows(tmp_path / "ref")


def test_auto_dtype_resumes_in_the_dtype_it_started_with(tmp_path, monkeypatch):
    data = tiny_shards(tmp_path / "shards")
    cfg = tiny_cfg(data, steps=24, ckpt_every=5, dtype="auto")
    ref = train(cfg, tmp_path / "ref")
    assert ref["dtype"] == "float32"  # auto, for a model 32 wide
    with monkeypatch.context() as m:
        _crash_at(m, 13)
        with pytest.raises(Crash):
            train(cfg, tmp_path / "run")
    # Resumed where auto now resolves to bfloat16 (another machine, a newer rule):
    monkeypatch.setattr(
        setup, "pick_dtype", lambda name, *a: "bfloat16" if name == "auto" else name
    )
    assert train(tiny_cfg(data, steps=2, dtype="auto"), tmp_path / "fresh")["dtype"] == "bfloat16"
    resumed = train(cfg, tmp_path / "run")
    assert resumed["dtype"] == "float32" and resumed["steps"] == 24
    assert 'dtype = "float32"' in (tmp_path / "run/config.toml").read_text()
    _assert_bitwise_equal(_weights(tmp_path / "ref"), _weights(tmp_path / "run"))
    assert resumed["val_loss"] == ref["val_loss"] and resumed["run_id"] == ref["run_id"]


def test_corrupt_checkpoint_is_skipped_or_refused(tmp_path, monkeypatch, caplog):
    data = tiny_shards(tmp_path / "shards")
    cfg = tiny_cfg(data, steps=12, ckpt_every=4, keep_ckpts=3)
    train(cfg, tmp_path / "ref")
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        _crash_at(m, 9)
        with pytest.raises(Crash):
            train(cfg, run)
    assert [p.name for p in checkpoint.list_steps(run / "ckpt")] == [
        "step-00000008",
        "step-00000004",
    ]
    blob = run / "ckpt/step-00000008" / checkpoint.WEIGHTS
    data_bytes = bytearray(blob.read_bytes())
    data_bytes[-1] ^= 0xFF  # one flipped bit pattern in the last weight
    blob.write_bytes(bytes(data_bytes))

    cfg.train.resume = "must"
    with pytest.raises(CheckpointError, match=r"step-00000008 is invalid: model.safetensors"):
        train(cfg, run)
    cfg.train.resume = "auto"
    with caplog.at_level("WARNING"):
        result = train(cfg, run)
    assert "skipping checkpoint" in caplog.text and "step-00000008" in caplog.text
    assert result["status"] == "completed"
    _assert_bitwise_equal(_weights(tmp_path / "ref"), _weights(run))


def test_checkpoint_without_manifest_does_not_exist(tmp_path):
    data = tiny_shards(tmp_path / "shards")
    train(tiny_cfg(data, steps=4, ckpt_every=2, keep_ckpts=5), tmp_path / "run")
    root = tmp_path / "run/ckpt"
    (root / "step-00000004" / checkpoint.MANIFEST).unlink()  # as if killed mid-write
    assert checkpoint.verify(root / "step-00000004") == "no manifest (the write did not finish)"
    assert checkpoint.latest(root).name == "step-00000002"


def _trainer(data, run, preexec_fn=None) -> subprocess.Popen:
    """`scalinglab train` of a long budget in a subprocess, once it has logged a few steps."""
    args = cli_args(data, run, "--steps", "100000", "--log-every", "1", "--threads", "1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "scalinglab", *args], preexec_fn=preexec_fn,
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 200):
        time.sleep(0.01)
    return proc


@pytest.mark.parametrize(
    "signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "Ctrl-C"]
)
def test_sigterm_checkpoints_and_reports_preempted(tmp_path, signum, code):
    """Ctrl-C stopped a run where it stood, 'error: interrupted', every step since the last
    checkpoint lost (all of them under the default --ckpt-every): it now stops as SIGTERM
    does, exit 130."""
    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    proc = _trainer(data, run)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "preempted"
    assert result.get("signal") == ("SIGINT" if signum == signal.SIGINT else None)
    assert out.startswith("preempted:")
    ckpt = checkpoint.latest(run / "ckpt", strict=True)
    assert ckpt.name == f"step-{result['steps']:08d}" and result["steps"] > 1
    state = checkpoint.load_state(ckpt)
    assert state["counters"]["step"] == result["steps"]
    assert state["loader"]["step"] == result["steps"]


def test_a_second_ctrl_c_stops_at_once_and_an_ignored_one_is_ignored(tmp_path):
    """A sweep's trainer starts with SIGINT ignored (its terminal's Ctrl-C reaches the whole
    process group; its executor stops it with SIGTERM): it keeps ignoring it."""
    from scalinglab.train.guards import StopOnSignal

    with StopOnSignal() as stop:
        stop.request(signal.SIGINT)
        assert stop.requested and stop.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            stop.request(signal.SIGINT)
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopOnSignal():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, old)
    data = tiny_shards(tmp_path / "shards")
    ignored = _trainer(data, tmp_path / "ignored",
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # fmt: skip
    ignored.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert ignored.poll() is None  # still training
    ignored.send_signal(signal.SIGTERM)
    ignored.communicate(timeout=60)
    assert ignored.returncode == 143


def test_completed_run_is_not_trained_again(tmp_path, caplog):
    """...and says so: it logged 'resumed RUN from step-00000005 (step 5)', as if it trained."""
    data = tiny_shards(tmp_path / "shards")
    cfg = tiny_cfg(data, steps=5)
    first = train(cfg, tmp_path / "run")
    lines = (tmp_path / "run/metrics.jsonl").read_text()
    caplog.clear()
    with caplog.at_level("INFO", logger="scalinglab"):
        again = train(cfg, tmp_path / "run")
    assert again == first
    assert (tmp_path / "run/metrics.jsonl").read_text() == lines
    assert f"{tmp_path / 'run'} is already complete (step 5): nothing to train" in caplog.text
    assert "resumed" not in caplog.text


def test_a_run_killed_after_its_final_row_before_its_result_logs_it_once(tmp_path):
    """Killed between the final evaluation's metrics row and result.json, a run resumed from
    its last step's checkpoint evaluated again and wrote the final row a second time (found
    by a crash-safety audit: 3 of 3 kills in that window). Its file is now the
    uninterrupted run's, but for the clock."""
    data = tiny_shards(tmp_path / "shards")
    cfg = tiny_cfg(data, steps=6, ckpt_every=3)
    done = train(cfg, tmp_path / "ref")
    killed = tmp_path / "run"
    shutil.copytree(tmp_path / "ref", killed)
    (killed / "result.json").unlink()  # what the kill left: the final row, no result
    again = train(cfg, killed)
    assert again["val_loss"] == done["val_loss"] and again["status"] == "completed"

    def rows(run):
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]

    assert rows(killed) == rows(tmp_path / "ref")
    assert sum(1 for r in rows(killed) if r.get("final")) == 1


def test_checkpoints_record_their_run_and_another_runs_is_refused(tmp_path):
    data = tiny_shards(tmp_path / "shards")
    mine = train(tiny_cfg(data, steps=4), tmp_path / "mine")
    ckpt = checkpoint.latest(tmp_path / "mine/ckpt")
    manifest = checkpoint.read_manifest(ckpt)
    assert manifest["run_id"] == mine["run_id"] and len(manifest["lineage_id"]) == 12
    # another run (another peak LR) finds this checkpoint in its folder
    shutil.copytree(tmp_path / "mine/ckpt", tmp_path / "other/ckpt")
    other = tiny_cfg(data, steps=8, lr=1e-3)
    with pytest.raises(CheckpointError) as err:
        train(other, tmp_path / "other")
    want = (
        f"{tmp_path / 'other/ckpt/step-00000004'}: this checkpoint belongs to run "
        f"{mine['run_id']}, not to this run ([0-9a-f]{{12}}); "
        "use a new out folder or that run's settings"
    )
    m = re.fullmatch(want, str(err.value))
    assert m and m[1] != mine["run_id"]
    assert not (tmp_path / "other/result.json").exists()
    # the same run with a larger budget continues from it
    longer = train(tiny_cfg(data, steps=8), tmp_path / "mine")
    assert longer["status"] == "completed" and longer["steps"] == 8
    assert longer["run_id"] != mine["run_id"]


def test_an_old_checkpoint_without_its_run_still_resumes(tmp_path, monkeypatch):
    """Checkpoints written before they recorded run_id and lineage_id resume as before."""
    data = tiny_shards(tmp_path / "shards")
    cfg = tiny_cfg(data, steps=12, ckpt_every=4)
    ref = train(cfg, tmp_path / "ref")
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        _crash_at(m, 9)
        with pytest.raises(Crash):
            train(cfg, run)
    path = checkpoint.latest(run / "ckpt")
    old = checkpoint.read_manifest(path)
    old = {k: v for k, v in old.items() if k not in ("run_id", "lineage_id")}
    (path / checkpoint.MANIFEST).write_text(json.dumps(old))
    assert checkpoint.verify(path) is None
    resumed = train(cfg, run)
    assert resumed["steps"] == 12 and resumed["val_loss"] == ref["val_loss"]
    _assert_bitwise_equal(_weights(tmp_path / "ref"), _weights(run))


def _contiguous(batches) -> bool:
    """Whether each row of every batch continues that row of the batch before it."""
    return all(torch.equal(x[:, 0], y0[:, -1]) for (_, y0), (x, _) in itertools.pairwise(batches))


def test_an_rnn_trains_on_random_windows_unless_order_stream(tmp_path):
    """An RNN walked batch_size contiguous lanes, and below one epoch SGD followed the few
    stretches of text they cover: the quickstart's LSTMs ended 2-8% higher in validation
    loss than on random windows at the same tokens (benchmarks/rnn_order.py). Now an RNN's
    windows are drawn at random, as the GPT's, unless --order stream; a run folder written
    before --order existed is read as the order it trained in, and keeps its id."""
    from scalinglab import runfolder

    data = tiny_shards(tmp_path / "shards")
    for order, contiguous in (("random", False), ("stream", True)):
        over = {} if order == "random" else {"order": "stream"}
        trainer = Trainer(tiny_cfg(data, "lstm", steps=4, **over), tmp_path / order)
        batches = [trainer.loader.next() for _ in range(3)]
        assert trainer.cfg.train.order == order and _contiguous(batches) is contiguous
    # an old RNN run's config.toml (no order key) trained in stream order; a GPT's at random
    run = tmp_path / "old"
    train(tiny_cfg(data, "lstm", steps=2, order="stream"), run)
    text = (run / "config.toml").read_text()
    written = runfolder.load_config(run)
    assert 'order = "stream"' in text
    (run / "config.toml").write_text(text.replace('order = "stream"\n', ""))
    old = runfolder.load_config(run)
    assert old == written and old.train.order == "stream"
    now = dataclasses.replace(old, train=dataclasses.replace(old.train, order="random"))
    assert (
        runfolder.run_id(old, "x") == runfolder.run_id(written, "x") != runfolder.run_id(now, "x")
    )


def _model(layers: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(layers)])


def _steps(root):
    return [int(p.name.split("-")[1]) for p in checkpoint.list_steps(root)]


def test_a_checkpoint_recording_no_lineage_is_the_runs_own_when_pruning_and_rewriting(tmp_path):
    """a checkpoint of an older version (no lineage_id in its manifest) counts as the
    run's own: pruned under --keep-ckpts, and rewriting its step returns it."""
    root, m = tmp_path / "ckpt", _model()
    for step in (1, 2, 3):  # an older version's checkpoints: no owner in the manifest
        checkpoint.save(root, step, m, {"step": step}, keep=10)
    assert "lineage_id" not in checkpoint.read_manifest(root / "step-00000003")
    owner = {"run_id": "r" * 12, "lineage_id": "l" * 12}
    assert checkpoint.save(root, 3, m, {"step": 3}, keep=10, owner=owner) == root / "step-00000003"
    checkpoint.save(root, 4, m, {"step": 4}, keep=2, owner=owner)
    assert _steps(root) == [4, 3]  # the newest 2 of the run's own; 2 and 1 pruned


def test_weights_of_a_model_with_fewer_tensors_are_refused(tmp_path):
    """load_weights is strict: a model with a tensor the file lacks (a config.toml of
    more layers than the run trained) is refused, not left half randomly initialised."""
    path = checkpoint.save(tmp_path / "ckpt", 1, _model(1), {}, keep=1)
    with pytest.raises(CheckpointError, match=r"cannot load into this model: Missing key"):
        checkpoint.load_weights(_model(2), path)
    checkpoint.load_weights(_model(1), path)  # the model that wrote it loads


@pytest.mark.parametrize("version", [2, None])
def test_a_manifest_of_another_format_version_is_no_checkpoint(tmp_path, version):
    """a manifest whose format_version is not 1 (a newer writer, or none) is refused,
    with hashes that match."""
    path = checkpoint.save(tmp_path / "ckpt", 1, _model(), {}, keep=1)
    m = checkpoint.read_manifest(path)
    if version is None:
        del m["format_version"]
    else:
        m["format_version"] = version
    (path / checkpoint.MANIFEST).write_text(json.dumps(m))
    assert checkpoint.verify(path) == f"format_version {version!r} is not 1"
    assert checkpoint.latest(tmp_path / "ckpt") is None


def test_wall_seconds_carry_across_a_resume(tmp_path):
    """a checkpoint saves the clock so far: a continued run's wall_seconds count the
    time before it too."""
    data = tiny_shards(tmp_path / "shards")
    first = train(tiny_cfg(data, steps=4), tmp_path / "run")
    saved = checkpoint.load_state(checkpoint.latest(tmp_path / "run/ckpt"))["counters"]
    assert 0 < saved["wall_seconds"] <= first["wall_seconds"]
    more = train(tiny_cfg(data, steps=8), tmp_path / "run")
    assert more["wall_seconds"] > saved["wall_seconds"]
