"""`prepare hf:... --streaming`: rows read as they come from a local data file, a folder of
data files or a saved data set (no network), giving the very shards the loaded data set
gives; killed mid-stream, a rerun resumes from the last checkpoint. The memory bound is
measured by benchmarks/hf_streaming.py."""

import json
import logging
import os
import signal
import subprocess
import sys

import pytest

from scalinglab.cli import main
from scalinglab.data import writer
from scalinglab.data.shards import open_shards
from scalinglab.data.sources import resolve_sources
from scalinglab.data.tokenizers import load_tokenizer
from scalinglab.data.writer import prepare
from scalinglab.errors import DataError


def rows(n: int = 150) -> list[dict]:
    return [{"id": i, "text": f"document {i}: " + "lorem ipsum dolor ünï " * (i % 7 + 1)}
            for i in range(n)]  # fmt: skip


def test_streamed_shards_equal_the_loaded_ones(tmp_path, datasets_offline, capsys):
    data = tmp_path / "part-0.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows()))
    assert main(["prepare", f"hf:{data}@train", "--streaming", "--tokenizer", "char",
                 "--block-size", "8", "-o", str(tmp_path / "b"), "--json"]) == 0  # fmt: skip
    streamed = json.loads(capsys.readouterr().out)
    # nothing was converted into the datasets cache: the rows were read as they came
    assert not list((tmp_path / "hf-cache").rglob("*.arrow"))
    loaded = prepare([f"hf:{data}@train"], tmp_path / "a", tokenizer="char", block_size=8)
    assert list((tmp_path / "hf-cache").rglob("*.arrow"))  # loading converts the file first
    assert streamed["sha256"] == loaded["sha256"] and streamed["splits"] == loaded["splits"]
    assert streamed["splits"]["val"]["documents"] == 2  # 1% of 150 documents, by the seed
    (d,) = streamed["source_details"]
    assert d["streaming"] is True and d["rows"] is None
    # a rerun on the unchanged file is up to date; a changed file is read again
    again = prepare([f"hf:{data}@train"], tmp_path / "b", tokenizer="char", block_size=8,
                    streaming=True)  # fmt: skip
    assert again["up_to_date"]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows(160)))
    changed = prepare([f"hf:{data}@train"], tmp_path / "b", tokenizer="char", block_size=8,
                      streaming=True)  # fmt: skip
    assert not changed["up_to_date"] and changed["documents"] == 160


def test_a_saved_dataset_and_a_folder_of_files_stream_too(tmp_path, datasets_offline):
    saved = tmp_path / "saved"
    datasets_offline.Dataset.from_list(rows()).save_to_disk(str(saved))
    folder = tmp_path / "folder"
    folder.mkdir()
    for k in range(3):  # three shards of one data set, as hub data sets come
        part = rows()[k * 50 : (k + 1) * 50]
        (folder / f"part-{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    ref = prepare([f"hf:{saved}"], tmp_path / "ref", tokenizer="byte", block_size=8)
    for src in (saved, folder):
        m = prepare([f"hf:{src}"], tmp_path / "out" / src.name, tokenizer="byte", block_size=8,
                    streaming=True)  # fmt: skip
        assert m["sha256"] == ref["sha256"], src
    (src,) = resolve_sources([f"hf:{folder}"], text_field="body", streaming=True)
    with pytest.raises(DataError, match=r"folder: no column 'body' \(columns: id, text\)"):
        src.dataset()


# A prepare that SIGKILLs itself at its `at`-th encoded chunk: a kill mid-stream, after the
# checkpoints written so far and with tokens written past the last one.
KILLED_AT = """
import os, signal, sys
import scalinglab.data.writer as w
from scalinglab.cli import main
real, calls = w._encode_chunk, [0]
def encode_then_die(*a, **k):
    calls[0] += 1
    if calls[0] == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*a, **k)
w._encode_chunk = encode_then_die
sys.exit(main(sys.argv[2:]))
"""


def test_a_streamed_prepare_killed_mid_stream_resumes(tmp_path, datasets_offline, monkeypatch,
                                                      caplog):  # fmt: skip
    data = tmp_path / "part-0.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows(3000)))
    out = tmp_path / "s"
    args = ["prepare", f"hf:{data}@train", "--streaming", "--tokenizer", "char",
            "--block-size", "8", "--chunk-bytes", "1024", "-o", str(out)]  # fmt: skip
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf-cache"), "HF_HUB_OFFLINE": "1"}
    killed = subprocess.run([sys.executable, "-c", KILLED_AT, "2000", *args], env=env,
                            capture_output=True, text=True)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (left,) = tmp_path.glob(".s.tmp-*")  # the killed prepare's folder, nothing that is shards
    assert not out.exists() and not (left / "manifest.json").exists()
    state = json.loads((left / "resume.json").read_text())
    assert state["stage"] == "trained" and 0 < state["encode"]["chunks"] < 2000
    # tokens were written past the last checkpoint: the resumed prepare cuts them off
    assert (left / "train.bin").stat().st_size > state["encode"]["lengths"]["train"]

    encoded = []
    real = writer._encode_chunk
    monkeypatch.setattr(writer, "_encode_chunk", lambda *a: encoded.append(1) or real(*a))
    with caplog.at_level(logging.INFO, logger="scalinglab.data"):
        assert main(args) == 0
    assert "resuming the prepare a killed process left" in caplog.text
    assert len(encoded) == 3000 - state["encode"]["chunks"]  # only the rest was encoded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf-cache", "part-0.jsonl", "s"]
    assert not (out / "resume.json").exists() and not (out / "plan.npz").exists()
    resumed = open_shards(out, verify=True).manifest
    whole = prepare([f"hf:{data}@train"], tmp_path / "ref", tokenizer="char", block_size=8)
    assert resumed["sha256"] == whole["sha256"] and resumed["splits"] == whole["splits"]


def test_a_damaged_checkpoint_is_started_over(tmp_path, datasets_offline, caplog):
    """A killed prepare's folder whose plan cannot be read is deleted and the prepare
    starts over (the plan is written before the state that points to it, so only a hand
    or a disk can damage it)."""
    data = tmp_path / "part-0.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows()))
    out = tmp_path / "s"
    kw = {"tokenizer": "char", "block_size": 8, "streaming": True}
    ref = prepare([f"hf:{data}@train"], tmp_path / "ref", **kw)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    left = tmp_path / f".s.tmp-{dead}@{os.uname().nodename}.abc"
    left.mkdir()
    # the state of this very request, pointing to a plan that is not there
    key = {"request": ref["request"], "fingerprint": ref["fingerprint"], "chunk_bytes": 4 << 20}
    (left / "resume.json").write_text(json.dumps({"key": key, "stage": "scanned",
                                                  "plan": {}, "has_labels": True}))  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="scalinglab.data"):
        m = prepare([f"hf:{data}@train"], out, **kw)
    assert "cannot resume from" in caplog.text and "starting over" in caplog.text
    assert m["sha256"] == ref["sha256"] and not left.exists()


@pytest.mark.parametrize("streaming", [False, True])
def test_a_local_text_file_keeps_its_line_breaks(tmp_path, datasets_offline, streaming):
    # datasets' text builder strips each row's line end, and rows are joined with no
    # separator: 'First Citizen:Before we proceed'. Read with keep_linebreaks, hf:rows.txt
    # is the very text of rows.txt (blank lines too)
    f = tmp_path / "rows.txt"
    f.write_text("".join(f"Line {i}: speak, speak.\n" + "\n" * (i % 3 == 0) for i in range(60)))
    a = prepare([str(f)], tmp_path / "a", tokenizer="char", block_size=8)
    h = prepare([f"hf:{f}"], tmp_path / "h", tokenizer="char", block_size=8,
                streaming=streaming)  # fmt: skip
    assert h["split_by"] == a["split_by"] == "bytes"
    for split in ("train", "val"):
        assert h["splits"][split]["bytes"] == a["splits"][split]["bytes"]
        assert h["sha256"][f"{split}.bin"] == a["sha256"][f"{split}.bin"]
    sa, sh = open_shards(tmp_path / "a"), open_shards(tmp_path / "h")
    tok = load_tokenizer(tmp_path / "h")
    assert tok.decode(sh.train) + tok.decode(sh.val) == f.read_text()
    assert tok.decode(sh.val) == load_tokenizer(tmp_path / "a").decode(sa.val)


# Known answers for mutations of data/resume.py that every test passed (a mutation audit):
# each fails on its mutation.
def _dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_killed_prepare_is_adopted_for_a_key_holding_tuples(tmp_path):
    """Kills R2 (the key not normalised as JSON reads it back): a request whose key holds a
    tuple (sources) takes over the killed prepare's folder and its state."""
    import socket

    from scalinglab.data import resume

    out = tmp_path / "shards"
    key = {"sources": ("a.txt", "b.txt"), "vocab": 256}
    tmp = tmp_path / f"{resume.temp_prefix(out)}{_dead_pid()}@{socket.gethostname()}.abc123"
    tmp.mkdir()
    resume.save_plan(tmp, key, [3, 4], None, {"n": 2})
    got = resume.adopt(out, key)
    assert got is not None
    mine, state = got
    assert state["stage"] == "scanned" and (mine / resume.PLAN).exists() and not tmp.exists()


def test_a_plan_without_labels_loads_without_labels(tmp_path):
    """Kills R3: a scan without labels loads back as labels None, not an empty array."""
    import numpy as np

    from scalinglab.data import resume

    state = resume.save_plan(tmp_path, {"k": 1}, [5, 6, 7], None, {"f": 1})
    sizes, labels, fields = resume.load_plan(tmp_path, state)
    assert sizes.tolist() == [5, 6, 7] and labels is None and fields == {"f": 1}
    state = resume.save_plan(tmp_path, {"k": 1}, [5, 6], [0, 1], {})
    assert resume.load_plan(tmp_path, state)[1].tolist() == [0, 1]
    assert np.asarray(resume.load_plan(tmp_path, state)[1]).dtype == np.int8
