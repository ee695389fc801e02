"""Temporary files and folders a SIGKILL left are cleaned on the next run (issue 16,
item 7): an atomic write killed between its temporary file and the rename, and a
prepare killed while it writes its temporary folder. Another live process's temporary
files are never touched."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from scalinglab.cli import main
from scalinglab.fsio import atomic_write_text, temp_tag
from tests.reliability.helpers import ROOT
from tests.train.helpers import TEXT

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def _killed(code: str) -> None:
    """Run `code` in a child that SIGKILLs itself where the code says `die()`."""
    prelude = "import os, signal\ndef die(*a, **k):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    p = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], env=ENV,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == -signal.SIGKILL, p.stderr


def test_an_atomic_write_killed_before_its_rename_leaves_a_temp_the_next_write_removes(tmp_path):
    target = tmp_path / "result.json"
    _killed(f"""
        import scalinglab.fsio as fsio
        fsio.os.replace = die  # killed after the temporary file is written and fsynced
        fsio.atomic_write_text({str(target)!r}, "half")
    """)
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".result.json.") and left[0].endswith(".tmp")
    live = tmp_path / f".result.json.{temp_tag()}.abc.tmp"  # this process: alive
    live.write_text("another writer's")
    atomic_write_text(target, "whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "result.json"]
    assert target.read_text() == "whole"


def test_a_prepare_killed_mid_write_leaves_a_folder_the_next_prepare_removes(tmp_path):
    (tmp_path / "corpus.txt").write_bytes(TEXT)
    out = tmp_path / "shards"
    _killed(f"""
        import scalinglab.data.writer as w
        w._check_windows = die  # killed with the token files written, before the manifest
        w.prepare([{str(tmp_path / "corpus.txt")!r}], {str(out)!r}, tokenizer="byte",
                  block_size=16)
    """)
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".shards.tmp-")]
    assert len(left) == 1 and (tmp_path / left[0] / "train.bin").exists()
    assert main(["prepare", str(tmp_path / "corpus.txt"), "--out", str(out),
                 "--block-size", "16"]) == 0  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "shards"]


def test_a_rebuild_killed_before_deleting_the_old_shards_leaves_a_folder_the_next_prepare_removes(
    tmp_path,
):
    (tmp_path / "corpus.txt").write_bytes(TEXT)
    out = tmp_path / "shards"
    args = f"[{str(tmp_path / 'corpus.txt')!r}], {str(out)!r}, tokenizer='byte', block_size=16"
    _killed(f"""
        import scalinglab.data.writer as w, scalinglab.fsio as fsio
        w.prepare({args})
        fsio.shutil.rmtree = die  # killed with the new shards in place, the old moved aside
        w.prepare({args}, force=True)
    """)
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".shards.old-")]
    assert len(left) == 1 and (tmp_path / left[0] / "x" / "train.bin").exists()
    live = tmp_path / f".shards.old-{temp_tag()}.abc"  # this process: alive
    live.mkdir()
    argv = ["prepare", str(tmp_path / "corpus.txt"), "--out", str(out), "--block-size", "16"]
    assert main(argv) == 0  # up to date: nothing rebuilt, the leftover still removed
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "corpus.txt", "shards"]
    assert main([*argv, "--force"]) == 0  # and a rebuild's own aside folder is deleted
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "corpus.txt", "shards"]


def _export_killed_then_rerun(tmp_path, fmt: str, out, hook: str) -> None:
    """An export SIGKILLed after its temporary output is written, before the check that
    would move it into place; the next export removes that temporary and succeeds."""
    from tests.export.runs import trained_runs

    run = trained_runs(tmp_path / "runs", gpt={"steps": 20})["gpt"]
    _killed(f"""
        import scalinglab.export.{fmt} as ex
        ex.{hook} = die
        ex.export_{fmt}({str(run)!r}, {str(out)!r})
    """)
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}.tmp-")]
    assert len(left) == 1 and any((tmp_path / left[0]).iterdir())  # what the kill left
    args = ["export", str(run), "--format", fmt, "--out", str(out)]
    assert main(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["runs", out.name])


@pytest.mark.slow
def test_an_export_killed_mid_write_leaves_a_temp_the_next_export_removes(tmp_path):
    pytest.importorskip("onnxruntime", reason="the [export] extra (onnxruntime) is not installed")
    pytest.importorskip("onnxscript", reason="the [export] extra (onnxscript) is not installed")
    _export_killed_then_rerun(tmp_path, "onnx", tmp_path / "m.onnx", "compare")


@pytest.mark.slow
def test_an_hf_export_killed_mid_write_leaves_a_temp_the_next_export_removes(tmp_path):
    pytest.importorskip("transformers", reason="the [export] extra (transformers) is not installed")
    _export_killed_then_rerun(tmp_path, "hf", tmp_path / "hf-model", "logits_difference")
