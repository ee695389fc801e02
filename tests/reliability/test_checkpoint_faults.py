"""Checkpoint faults: a kill between weights and manifest, each kind of corruption,
malicious files, and a full disk. Each time the run loses nothing it had saved."""

import errno
import json
import logging
import os
import pickle
import shutil
import struct
import subprocess
import sys

import pytest
import torch

from scalinglab.cli import main
from scalinglab.fsio import sha256_file
from scalinglab.train import checkpoint, train
from scalinglab.train.loop import Trainer
from tests.reliability.helpers import (
    ROOT,
    argv,
    assert_same_checkpoint,
    assert_same_run,
    cfg,
    one_line_error,
)  # fmt: skip
from tests.train.helpers import tiny_shards


class Crash(Exception):
    pass


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Shards, an uninterrupted reference run, and a run that died after step 9
    (checkpoints 4 and 8 in place), which each test copies and damages."""
    d = tmp_path_factory.mktemp("base")
    data = tiny_shards(d / "shards")
    train(cfg(data), d / "ref")
    orig = Trainer._after_step

    def after_step(self, bar):
        orig(self, bar)
        if self.c.step == 9:
            raise Crash

    with pytest.MonkeyPatch.context() as m:
        m.setattr(Trainer, "_after_step", after_step)
        with pytest.raises(Crash):
            train(cfg(data), d / "crashed")
    return data, d / "ref", d / "crashed"


@pytest.fixture
def crashed(base, tmp_path):
    data, ref, crashed = base
    run = tmp_path / "run"
    shutil.copytree(crashed, run)
    return data, ref, run


def _ckpt(run, step):
    return run / "ckpt" / f"step-{step:08d}"


def _rehash(path) -> None:
    """Make the manifest vouch for the files as they are now (an attacker can)."""
    m = json.loads((path / checkpoint.MANIFEST).read_text())
    m["sha256"] = {n: sha256_file(path / n) for n in (checkpoint.WEIGHTS, checkpoint.STATE)}
    (path / checkpoint.MANIFEST).write_text(json.dumps(m))


def test_kill_between_weights_and_manifest_resumes_from_the_previous_checkpoint(
    base, tmp_path, caplog
):
    data, ref, _ = base
    run = tmp_path / "run"
    env = {**os.environ, "SCALINGLAB_TEST_KILL_IN_CHECKPOINT": "8"}
    p = subprocess.run([sys.executable, "-m", "scalinglab", *argv(data, run)], cwd=ROOT, env=env,
                       capture_output=True, text=True)  # fmt: skip
    assert p.returncode == -9, p.stderr
    names = sorted(x.name for x in (run / "ckpt").iterdir())
    assert names[0].startswith(".tmp-step-00000008-") and names[1:] == ["step-00000004"]
    partial = sorted(x.name for x in (run / "ckpt" / names[0]).iterdir())
    assert partial == [checkpoint.WEIGHTS, checkpoint.STATE]  # written, but no manifest
    assert not (run / "result.json").exists()
    with caplog.at_level(logging.INFO):
        assert train(cfg(data), run)["status"] == "completed"
    assert "from step-00000004 (step 4)" in caplog.text
    assert sorted(x.name for x in (run / "ckpt").iterdir()) == [
        "step-00000004",
        "step-00000008",
        "step-00000012",
    ]  # fmt: skip  -- the partial folder is gone
    assert_same_run(run, ref)


def _truncate_weights(path):
    w = path / checkpoint.WEIGHTS
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])


def _flip_state_byte(path):
    s = path / checkpoint.STATE
    b = bytearray(s.read_bytes())
    b[len(b) // 2] ^= 0x01
    s.write_bytes(bytes(b))


def _delete_manifest(path):
    (path / checkpoint.MANIFEST).unlink()


def _edit_hash(path):
    m = json.loads((path / checkpoint.MANIFEST).read_text())
    m["sha256"][checkpoint.WEIGHTS] = "0" * 64
    (path / checkpoint.MANIFEST).write_text(json.dumps(m))


def _hashes_a_list(path):  # it was an AttributeError traceback, in train and eval
    m = json.loads((path / checkpoint.MANIFEST).read_text())
    m["sha256"] = [1, 2]
    (path / checkpoint.MANIFEST).write_text(json.dumps(m))


@pytest.mark.parametrize(
    "damage, reason",
    [
        (_truncate_weights, "model.safetensors does not match its sha256 in the manifest"),
        (_flip_state_byte, "state.pt does not match its sha256 in the manifest"),
        (_delete_manifest, "no manifest (the write did not finish)"),
        (_edit_hash, "model.safetensors does not match its sha256 in the manifest"),
        (_hashes_a_list, "manifest's sha256 is not an object of file hashes"),
    ],
)
def test_corrupt_checkpoint_must_names_it_auto_falls_back(crashed, capsys, caplog, damage, reason):
    data, ref, run = crashed
    bad = _ckpt(run, 8)
    damage(bad)
    before = {p.name: p.read_bytes() for p in bad.iterdir()}
    err = one_line_error(capsys, argv(data, run, "--resume", "must"))
    assert f"checkpoint {bad} is invalid: {reason}" in err
    assert {p.name: p.read_bytes() for p in bad.iterdir()} == before  # left for inspection
    assert not (run / "result.json").exists() or "completed" not in (run / "result.json").read_text()  # fmt: skip
    with caplog.at_level(logging.INFO):
        assert main(argv(data, run, "--resume", "auto")) == 0
    assert f"skipping checkpoint {bad}: {reason}" in caplog.text
    assert "from step-00000004 (step 4)" in caplog.text
    assert_same_run(run, ref)


class CreatesAFile:
    """Unpickling this (with plain pickle) would call open(path, 'w')."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_malicious_state_file_is_refused_and_never_runs(crashed, tmp_path, capsys, writer):
    data, _, run = crashed
    marker = tmp_path / "PWNED"
    state = {"counters": {"step": 8}, "payload": CreatesAFile(marker)}
    target = _ckpt(run, 8) / checkpoint.STATE
    if writer == "pickle":
        target.write_bytes(pickle.dumps(state))
    else:
        torch.save(state, target)
    _rehash(_ckpt(run, 8))
    assert checkpoint.verify(_ckpt(run, 8)) is None  # the hashes vouch for it
    for mode in ("auto", "must"):
        err = one_line_error(capsys, argv(data, run, "--resume", mode))
        assert f"{target}: refused: not a plain tensor-and-container state file (" in err
        assert "weights_only=False" not in err  # no advice to run untrusted code
    assert not marker.exists()


def test_safetensors_header_longer_than_the_file_is_refused(crashed, capsys):
    data, _, run = crashed
    w = _ckpt(run, 8) / checkpoint.WEIGHTS
    w.write_bytes(struct.pack("<Q", 1 << 40) + b'{"a": 1}')  # claims a 1 TiB header
    _rehash(_ckpt(run, 8))
    err = one_line_error(capsys, argv(data, run, "--resume", "auto"))
    assert f"{w}: cannot load into this model: Error while deserializing header" in err


def test_disk_full_while_checkpointing_keeps_the_previous_one(base, tmp_path, capsys, monkeypatch):
    data, ref, _ = base
    run = tmp_path / "run"
    real_save = torch.save

    def save_then_disk_full(obj, f, *a, **kw):
        if obj.get("counters", {}).get("step") != 8:
            return real_save(obj, f, *a, **kw)
        f.write(b"PK\x03\x04 half a file")  # what fit before the disk filled up
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f.name)

    with monkeypatch.context() as m:
        m.setattr(torch, "save", save_then_disk_full)
        err = one_line_error(capsys, argv(data, run))
    assert f"cannot write checkpoint {_ckpt(run, 8)}: No space left on device" in err
    assert [p.name for p in (run / "ckpt").iterdir()] == ["step-00000004"]  # no partial left
    assert checkpoint.verify(_ckpt(run, 4)) is None
    assert_same_checkpoint(_ckpt(run, 4), _ckpt(ref, 4))  # bit for bit the reference's
    assert main(argv(data, run)) == 0  # space again: the run resumes and ends as if never hurt
    assert_same_run(run, ref)
