import json
import os
import re

import numpy as np
import pytest
import torch

from scalinglab.cli import main
from scalinglab.data import writer
from scalinglab.data.loader import BatchLoader
from scalinglab.data.shards import check_integrity, open_shards
from scalinglab.data.tokenizers import load_tokenizer
from scalinglab.data.writer import PrepareConfig, prepare
from scalinglab.errors import ConfigError, DataError
from tests.conftest import shared_file


def _corpus(folder, n_docs=120, seed=0):
    """n_docs small text files with distinct, recognisable content."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    words = ["alpha", "beta", "gamma", "delta", "épsilon", "zeta"]
    docs = []
    for i in range(n_docs):
        body = f"doc {i:04d}\n" + " ".join(rng.choice(words, size=40)) + "\n"
        (folder / f"d{i:04d}.txt").write_text(body, encoding="utf-8")
        docs.append(body)
    return docs


def test_tinyshakespeare_byte_split_matches_nanogpt(tmp_path):
    src = shared_file("corpora/tinyshakespeare.txt")
    data = src.read_bytes()
    m = prepare([str(src)], tmp_path / "s", tokenizer="byte")
    n = int(len(data) * 0.9)  # nanoGPT: train = data[:int(n*0.9)], val = the rest
    assert (n, len(data) - n) == (1_003_854, 111_540)
    assert m["splits"]["train"] == {"documents": 1, "bytes": n, "tokens": n}
    assert m["splits"]["val"] == {"documents": 1, "bytes": 111_540, "tokens": 111_540}
    assert (m["split_by"], m["dtype"], m["vocab_size"]) == ("bytes", "uint16", 256)
    sh = open_shards(tmp_path / "s", verify=True)
    assert sh.train.tobytes()[::2] == data[:n] and sh.val.astype(np.uint8).tobytes() == data[n:]


def test_prepare_takes_a_pathlib_path_and_names_a_source_that_is_none(tmp_path):
    """prepare(Path("corpus.txt"), ...) raised "'PosixPath' object is not iterable" and a
    list of Paths "'PosixPath' object has no attribute 'startswith'"; a Path is its path,
    and a source that is no path is named."""
    from scalinglab.errors import ConfigError

    src = shared_file("corpora/tinyshakespeare.txt")
    one = prepare(src, tmp_path / "a", tokenizer="byte")
    listed = prepare([src], tmp_path / "b", tokenizer="byte")
    assert one["sources"] == listed["sources"] == [str(src)]
    assert one["sha256"] == listed["sha256"]
    with pytest.raises(ConfigError, match="prepare: a source is a path or a source name, got 3"):
        prepare([src, 3], tmp_path / "c", tokenizer="byte")


def test_tinyshakespeare_char_ids_are_nanogpts(tmp_path):
    src = shared_file("corpora/tinyshakespeare.txt")
    text = src.read_text(encoding="utf-8")
    m = prepare([str(src)], tmp_path / "s", tokenizer="char")
    stoi = {c: i for i, c in enumerate(sorted(set(text)))}
    sh = open_shards(tmp_path / "s")
    assert m["vocab_size"] == 66  # nanoGPT's 65 characters + <unk>
    assert sh.train[:2000].tolist() == [stoi[c] for c in text[:2000]]
    assert sh.val[-2000:].tolist() == [stoi[c] for c in text[-2000:]]
    assert len(sh.train) == 1_003_854 and len(sh.val) == 111_540


def test_documents_split_whole_deterministic_by_seed(tmp_path):
    docs = _corpus(tmp_path / "c", n_docs=250)
    m = prepare([str(tmp_path / "c")], tmp_path / "s1", tokenizer="byte", block_size=16)
    assert m["split_by"] == "documents" and m["val_fraction"] == 0.01
    assert m["splits"]["val"]["documents"] == 2 and m["splits"]["train"]["documents"] == 248
    val = bytes(open_shards(tmp_path / "s1").val.astype(np.uint8))
    held = [d for d in docs if d.encode() in val]
    assert len(held) == 2 and val == "".join(held).encode()  # whole documents, in corpus order
    same = prepare([str(tmp_path / "c")], tmp_path / "s2", tokenizer="byte", block_size=16)
    other = prepare([str(tmp_path / "c")], tmp_path / "s3", tokenizer="byte", block_size=16, seed=1)
    assert same["sha256"] == m["sha256"] and other["sha256"]["val.bin"] != m["sha256"]["val.bin"]
    big = prepare([str(tmp_path / "c")], tmp_path / "s4", block_size=16, val_fraction=0.1)
    assert big["splits"]["val"]["documents"] == 25


@pytest.mark.parametrize("kind", ["byte", "char", "word", "bpe"])
def test_deterministic_and_chunk_size_invariant(tmp_path, kind):
    _corpus(tmp_path / "c", n_docs=30)
    opts = {"tokenizer": kind, "block_size": 8, "vocab_size": 300 if kind == "bpe" else None}
    a = prepare([str(tmp_path / "c")], tmp_path / "a", **opts)
    b = prepare([str(tmp_path / "c")], tmp_path / "b", chunk_bytes=64, **opts)
    assert a["sha256"] == b["sha256"] and a["splits"] == b["splits"]
    tok = load_tokenizer(tmp_path / "a")
    sh = open_shards(tmp_path / "a", verify=True)
    assert tok.kind == kind and sh.vocab_size == tok.vocab_size
    assert int(sh.train.max()) < tok.vocab_size
    if kind in ("byte", "char", "bpe"):  # lossless: the val text comes back exactly
        raw = b"".join(p.read_bytes() for p in sorted((tmp_path / "c").iterdir()))
        assert tok.decode(sh.val).encode() == raw[-a["splits"]["val"]["bytes"] :]


def test_rerun_is_up_to_date_force_and_changes_rebuild(tmp_path):
    _corpus(tmp_path / "c", n_docs=20)
    out = tmp_path / "s"
    first = prepare([str(tmp_path / "c")], out, block_size=16)
    stamp = (out / "train.bin").stat().st_mtime_ns
    again = prepare([str(tmp_path / "c")], out, block_size=16)
    assert again["up_to_date"] and not first["up_to_date"]
    assert (out / "train.bin").stat().st_mtime_ns == stamp
    assert not prepare([str(tmp_path / "c")], out, block_size=16, force=True)["up_to_date"]
    assert not prepare([str(tmp_path / "c")], out, block_size=16, tokenizer="char")["up_to_date"]
    (tmp_path / "c" / "d0000.txt").write_text("changed " * 50)
    m = prepare([str(tmp_path / "c")], out, block_size=16, tokenizer="char")
    assert not m["up_to_date"] and json.loads((out / "manifest.json").read_text())["tokenizer"] == "char"  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "s"]  # no temp folders left


def test_shards_of_another_corpus_or_tokenizer_are_replaced_with_a_warning(tmp_path, caplog):
    """A typo in --out replaced the shards runs had trained on without a word."""
    _corpus(tmp_path / "c", n_docs=20)
    _corpus(tmp_path / "d", n_docs=12)
    out = tmp_path / "s"
    with caplog.at_level("WARNING"):
        prepare([str(tmp_path / "c")], out, block_size=16)
        (tmp_path / "c" / "d0000.txt").write_text("changed " * 50)
        prepare([str(tmp_path / "c")], out, block_size=16)  # its own sources, changed: no
    assert "replacing" not in caplog.text
    with caplog.at_level("WARNING"):
        prepare([str(tmp_path / "d")], out, block_size=16)
    assert f"{out}: replacing its shards of {tmp_path / 'c'} with byte by shards of " in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        prepare([str(tmp_path / "d")], out, block_size=16, tokenizer="char")
    assert f"with byte by shards of {tmp_path / 'd'} with char" in caplog.text


def test_a_prepare_waits_for_another_of_the_same_folder_then_says_what_it_replaces(tmp_path):
    """Two prepares of other corpora into one --out at once both exited 0, each reporting
    its own sources, while the folder held one of them (an audit). The second waits for
    the first (a lock per folder on this machine), then replaces its shards, saying so."""
    import subprocess
    import sys
    import time

    from scalinglab.fsio import machine_lock

    _corpus(tmp_path / "c", n_docs=20)
    _corpus(tmp_path / "d", n_docs=12)
    out = tmp_path / "s"
    prepare([str(tmp_path / "c")], out, block_size=16)
    argv = [sys.executable, "-m", "scalinglab", "prepare", str(tmp_path / "d"), "--out", str(out),
            "--block-size", "16"]  # fmt: skip
    with machine_lock(f"prepare {os.path.realpath(out)}"):  # another prepare is writing it
        p = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        line = p.stderr.readline()
        assert "another scalinglab prepare is writing it; waiting for it to end" in line
        time.sleep(0.5)
        assert p.poll() is None  # still waiting
        assert json.loads((out / "manifest.json").read_text())["sources"] == [str(tmp_path / "c")]
    rest = p.communicate(timeout=120)[1]
    assert p.returncode == 0, rest
    assert f"{out}: replacing its shards of {tmp_path / 'c'}" in rest
    assert json.loads((out / "manifest.json").read_text())["sources"] == [str(tmp_path / "d")]


def test_a_prepare_goes_on_unguarded_where_its_lock_cannot_be_made(tmp_path, monkeypatch, caplog):
    """The lock lives in the temporary folder; a full or unwritable one must not stop a
    prepare that needed nothing from it before the lock existed."""
    import tempfile

    _corpus(tmp_path / "c", n_docs=20)
    (tmp_path / "afile").write_text("not a folder")
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "afile"))
    with caplog.at_level("WARNING"):
        m = prepare([str(tmp_path / "c")], tmp_path / "s", block_size=16)
    assert m["up_to_date"] is False
    check_integrity(open_shards(tmp_path / "s"))  # raises where a split is damaged
    assert "cannot take the lock" in caplog.text and "going on without it" in caplog.text


def test_interrupted_prepare_leaves_nothing_that_looks_valid(tmp_path, monkeypatch):
    _corpus(tmp_path / "c", n_docs=20)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "_encode_chunk", boom)
    with pytest.raises(KeyboardInterrupt):
        prepare([str(tmp_path / "c")], tmp_path / "s", block_size=16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_a_file_changed_while_being_prepared_is_named_and_nothing_is_written(
    tmp_path, monkeypatch, capsys
):
    """A document whose size changes between the plan's pass and the encoding pass is
    refused, naming it (the error had no test)."""
    _corpus(tmp_path / "c", n_docs=5)
    split_bytes = writer._split_bytes

    def grow(*a, **k):  # the encoding pass starts: another program appends to one file
        with open(tmp_path / "c" / "d0003.txt", "a", encoding="utf-8") as f:
            f.write("more\n")
        return split_bytes(*a, **k)

    monkeypatch.setattr(writer, "_split_bytes", grow)
    assert main(["prepare", str(tmp_path / "c"), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"error: {tmp_path / 'c' / 'd0003.txt'}: changed while being prepared; run prepare again\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_loader_on_prepared_shards_resumes_identically(tmp_path):
    _corpus(tmp_path / "c", n_docs=20)
    prepare([str(tmp_path / "c")], tmp_path / "s", tokenizer="char", block_size=16)
    sh = open_shards(tmp_path / "s", verify=True)
    a = BatchLoader(sh.train, block_size=16, batch_size=4, seed=5)
    for _ in range(3):
        a.next()
    state = a.state_dict()
    expected = [a.next() for _ in range(4)]
    b = BatchLoader(open_shards(tmp_path / "s").train, block_size=16, batch_size=4, seed=5)
    b.load_state_dict(state)
    for x, y in expected:
        xb, yb = b.next()
        assert torch.equal(x, xb) and torch.equal(y, yb)


def test_jsonl_and_hf_sources_give_the_same_shards(tmp_path):
    pytest.importorskip("datasets", reason="`datasets` (extra [hf]) is not installed")
    docs = _corpus(tmp_path / "c", n_docs=12)
    p = tmp_path / "c.jsonl"
    p.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    a = prepare([str(p)], tmp_path / "a", tokenizer="word", block_size=8)
    b = prepare([str(tmp_path / "c")], tmp_path / "b", tokenizer="word", block_size=8)
    h = prepare([f"hf:{p}@train"], tmp_path / "h", tokenizer="word", block_size=8)
    assert a["sha256"] == b["sha256"] == h["sha256"]
    # 10% of the bytes falls inside document 11; a word-level cut moves to the next line start,
    # here the start of the last document
    assert a["splits"]["train"]["documents"] == 11 and a["splits"]["val"]["documents"] == 1


# --- splits that never cut a token, splits from files ---------------------------------


def test_word_split_by_bytes_never_cuts_a_word(tmp_path):
    # WikiText-2's valid.txt then test.txt, 10% held out by bytes: the cut falls inside a
    # line of test.txt ("Streets" would be cut in two); it moves to the next line start, so
    # the two splits hold every word of the corpus, each whole.
    valid, test = (shared_file(f"corpora/wikitext-2/{n}.txt") for n in ("valid", "test"))
    m = prepare([str(valid), str(test)], tmp_path / "s", tokenizer="word")
    lines = (valid.read_text() + test.read_text()).split("\n")[:-1]
    assert sum(len(x.split()) + 1 for x in lines) == 217_646 + 245_569  # words + <eos>
    tr, va = m["splits"]["train"]["tokens"], m["splits"]["val"]["tokens"]
    assert tr + va == 217_646 + 245_569
    total = len(valid.read_bytes()) + len(test.read_bytes())
    cut = m["splits"]["train"]["bytes"]
    assert 0 <= cut - int(total * 0.9) < 2_000  # moved forward, at most to the line's end
    text = valid.read_bytes() + test.read_bytes()
    assert text[cut - 1 : cut] == b"\n"
    tok = load_tokenizer(tmp_path / "s")
    sh = open_shards(tmp_path / "s")
    assert tok.decode(sh.val[:12]) == " ".join(text[cut:].decode().split("\n")[0].split()[:12])


def test_byte_level_split_by_bytes_may_cut_anywhere_a_line_but_not_a_token(tmp_path):
    # byte tokens: nanoGPT's cut is kept (test_tinyshakespeare_byte_split_matches_nanogpt);
    # bpe tokens span characters: the cut goes to the start of the next line
    f = tmp_path / "t.txt"
    f.write_text("".join(f"line {i} holds some words\n" for i in range(200)))
    n = len(f.read_bytes())
    b = prepare([str(f)], tmp_path / "b", tokenizer="byte", block_size=8)
    assert b["splits"]["train"]["bytes"] == int(n * 0.9)
    p = prepare([str(f)], tmp_path / "p", tokenizer="bpe", vocab_size=300, block_size=8)
    cut = p["splits"]["train"]["bytes"]
    assert cut > int(n * 0.9) and f.read_bytes()[cut - 1 : cut] == b"\n"
    # no line break after the point: the start of the line that holds it
    g = tmp_path / "g.txt"
    g.write_text("first line\n" * 20 + "x " * 100)
    w = prepare([str(g)], tmp_path / "w", tokenizer="word", block_size=8, val_fraction=0.3)
    assert w["splits"]["train"]["bytes"] == len("first line\n") * 20


def test_val_file_and_test_file_are_the_splits(tmp_path):
    tr, va, te = tmp_path / "train.txt", tmp_path / "val.txt", tmp_path / "test.txt"
    tr.write_text("the cat sat on the mat\n" * 40)
    va.write_text("the dog sat on the mat\n" * 20)
    te.write_text("a cat sat\n" * 30)
    m = prepare(
        [str(tr)], tmp_path / "s", tokenizer="word", block_size=8,
        val_file=str(va), test_file=str(te),
    )  # fmt: skip
    assert m["split_by"] == "files" and m["val_file"] == str(va) and m["test_file"] == str(te)
    assert {k: v["tokens"] for k, v in m["splits"].items()} == {
        "train": 7 * 40,
        "val": 7 * 20,
        "test": 4 * 30,
    }
    sh = open_shards(tmp_path / "s", verify=True)
    check_integrity(sh)
    tok = load_tokenizer(tmp_path / "s")
    # the vocabulary is the training text's: "dog" and "a" read <unk>
    assert tok.decode(sh.val[:7]) == "the <unk> sat on the mat\n"
    assert tok.decode(sh.split("test")[:4]) == "<unk> cat sat\n"
    # without a test file: no test split, and asking for one names the way to make it
    prepare([str(tr)], tmp_path / "n", tokenizer="word", block_size=8, val_file=str(va))
    n = open_shards(tmp_path / "n")
    assert n.test is None and set(n.manifest["splits"]) == {"train", "val"}
    with pytest.raises(DataError, match=r"no test split .*--test-file"):
        n.split("test")


def test_split_file_flags_refuse_what_makes_no_sense(tmp_path, capsys):
    f = tmp_path / "t.txt"
    f.write_text("a b c\n" * 100)
    rc, _, err = _cli(capsys, f, "--out", tmp_path / "s", "--test-file", f)
    assert rc != 0
    _one_error(err, "--test-file needs --val-file")
    rc, _, err = _cli(capsys, f, "--out", tmp_path / "s", "--val-file", f, "--val-fraction", "0.2")
    assert rc != 0
    _one_error(err, "--val-fraction with --val-file")
    e = tmp_path / "empty.txt"
    e.write_text("")
    rc, _, err = _cli(capsys, f, "--out", tmp_path / "s", "--val-file", e)
    assert rc != 0
    _one_error(err, "empty.txt", "empty")


# --- bad input through the CLI: one line on stderr, exit != 0 --------------------------


def _cli(capsys, *argv):
    rc = main(["prepare", *map(str, argv)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_error(err, *fragments):
    assert err.count("\n") == 1 and err.startswith("error: ")
    for f in fragments:
        assert f in err, err


def test_cli_prints_one_line_summary(tmp_path, capsys):
    _corpus(tmp_path / "c", n_docs=20)
    rc, out, err = _cli(capsys, tmp_path / "c", "--tokenizer", "char", "--out", tmp_path / "s")
    assert rc == 0 and err == ""
    assert out.count("\n") == 1 and "char tokenizer" in out and "20 documents" in out
    # the speed's unit depends on the machine's (kB/s under 0.1 MB/s), the size's does not
    assert re.search(
        r", 5\.1 kB, 5,002 tokens \(train 4,502 / val 500\) in [\d.]+ s, [\d.]+ [kM]B/s\n$", out
    )
    rc, out, _ = _cli(capsys, tmp_path / "c", "--tokenizer", "char", "--out", tmp_path / "s")
    assert rc == 0 and "up to date" in out


def test_the_summary_line_gives_a_small_corpus_in_kb():
    """A 24 kB corpus read '0.0 MB, ... 0.0 MB/s', as if nothing had been read."""
    from scalinglab.cli.prepare import summary

    m = {"tokenizer": "byte", "vocab_size": 256, "dtype": "uint16", "documents": 6,
         "splits": {"train": {"documents": 5, "bytes": 22_042, "tokens": 22_042},
                    "val": {"documents": 2, "bytes": 2_450, "tokens": 2_450}},
         "build": {"seconds": 1.0, "mb_per_s": 0.02}}  # fmt: skip
    tail = "6 documents, 24.5 kB, 24,492 tokens (train 22,042 / val 2,450) in 1.00 s, 24.5 kB/s"
    assert summary(m, "s") == f"s: byte tokenizer, vocab 256 (uint16): {tail}"
    m["splits"]["train"]["bytes"] = 1_097_550
    m["build"] = {"seconds": 0.68, "mb_per_s": 1.64}
    assert summary(m, "s").endswith(", 1.1 MB, 24,492 tokens (train 22,042 / val 2,450) "
                                    "in 0.68 s, 1.6 MB/s")  # fmt: skip
    m["splits"] = {"train": {"documents": 1, "bytes": 6, "tokens": 6},
                   "val": {"documents": 1, "bytes": 6, "tokens": 6}}  # fmt: skip
    m["build"] = {"seconds": 0.06, "mb_per_s": 0.0}
    assert summary(m, "s").endswith(", 12 bytes, 12 tokens (train 6 / val 6) in 0.06 s, 0.2 kB/s")


def test_cli_missing_path(tmp_path, capsys):
    rc, _, err = _cli(capsys, tmp_path / "nope.txt", "--out", tmp_path / "s")
    assert rc != 0
    _one_error(err, "nope.txt: no such file or folder")


def test_cli_empty_file_and_folder(tmp_path, capsys):
    (tmp_path / "e.txt").write_text("")
    (tmp_path / "d").mkdir()
    rc, _, err = _cli(capsys, tmp_path / "e.txt", "--out", tmp_path / "s")
    assert rc != 0
    _one_error(err, "e.txt: empty file")
    rc, _, err = _cli(capsys, tmp_path / "d", "--out", tmp_path / "s")
    assert rc != 0
    _one_error(err, "empty folder")


def test_cli_whitespace_only(tmp_path, capsys):
    (tmp_path / "w.txt").write_text(" \n\t \n" * 500)
    rc, _, err = _cli(capsys, tmp_path / "w.txt", "--out", tmp_path / "s")
    assert rc != 0
    _one_error(err, "w.txt", "only whitespace")
    assert not (tmp_path / "s").exists()


def test_cli_too_small(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("a little text\n" * 20)  # 280 bytes: val 28 tokens
    rc, _, err = _cli(capsys, tmp_path / "t.txt", "--out", tmp_path / "s")
    assert rc != 0
    _one_error(err, "corpus too small", "val 28", "--block-size 128")
    rc, _, _ = _cli(capsys, tmp_path / "t.txt", "--out", tmp_path / "s", "--block-size", "16")
    assert rc == 0


def test_cli_non_utf8(tmp_path, capsys):
    (tmp_path / "x.txt").write_bytes(b"good text\n" * 30 + b"bad \xff byte\n" + b"more\n" * 40)
    base = [tmp_path / "x.txt", "--block-size", "8"]
    rc, _, err = _cli(capsys, *base, "--tokenizer", "char", "--out", tmp_path / "c")
    assert rc != 0
    _one_error(err, "x.txt: byte 304: invalid UTF-8", "--errors replace")
    assert _cli(capsys, *base, "--tokenizer", "byte", "--out", tmp_path / "b")[0] == 0
    rc, _, _ = _cli(capsys, *base, "--tokenizer", "char", "--errors", "replace", "--out", tmp_path / "c")  # fmt: skip
    assert rc == 0
    assert "\ufffd" in load_tokenizer(tmp_path / "c").chars


def test_cli_bad_jsonl_line(tmp_path, capsys):
    p = tmp_path / "c.jsonl"
    p.write_text('{"text": "fine"}\n{"text": "also"}\n{"text": broken}\n')
    rc, _, err = _cli(capsys, p, "--out", tmp_path / "s")
    assert rc != 0
    _one_error(err, "c.jsonl: line 3: not valid JSON")
    p.write_text('{"text": "fine"}\n{"content": "x"}\n')
    rc, _, err = _cli(capsys, p, "--out", tmp_path / "s")
    assert rc != 0
    _one_error(err, "c.jsonl: line 2: no field 'text'", "--text-field")


@pytest.mark.parametrize(("kind", "size"), [("byte", "512"), ("bpe", "100"), ("word", "0")])
def test_cli_vocab_size_out_of_range(tmp_path, capsys, kind, size):
    (tmp_path / "t.txt").write_text("text " * 100)
    rc, _, err = _cli(capsys, tmp_path / "t.txt", "--tokenizer", kind, "--vocab-size", size, "--out", tmp_path / "s")  # fmt: skip
    assert rc != 0
    _one_error(err, f"--vocab-size {size}")


def test_cli_refuses_an_output_folder_that_is_not_shards(tmp_path, capsys):
    _corpus(tmp_path / "c", n_docs=20)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    rc, _, err = _cli(capsys, tmp_path / "c", "--out", out, "--block-size", "8")
    assert rc != 0
    _one_error(err, "mine: exists and is not a shards folder", "--force")
    assert (out / "precious.txt").read_text() == "keep me"
    rc, _, _ = _cli(capsys, tmp_path / "c", "--out", out, "--block-size", "8", "--force")
    assert rc == 0 and not (out / "precious.txt").exists()
    assert open_shards(out, verify=True).manifest["documents"] == 20


def test_cli_default_source_is_stdlib(tmp_path, capsys, monkeypatch):
    # Only the source resolution is exercised here (the full stdlib corpus is ~12 MB).
    seen = {}

    def fake(sources, out, cfg=None, progress=None, **options):
        seen["sources"] = sources
        return {"splits": {s: {"documents": 1, "bytes": 1, "tokens": 1} for s in ("train", "val")},
                "tokenizer": "byte", "vocab_size": 256, "dtype": "uint16"}  # fmt: skip

    monkeypatch.setattr(writer, "prepare", fake)
    assert main(["prepare", "--out", str(tmp_path / "s")]) == 0
    assert seen["sources"] == ["stdlib"]
    assert os.environ.get("TOKENIZERS_PARALLELISM") == "false"


def test_a_folder_source_skips_shards_written_inside_it(tmp_path):
    _corpus(tmp_path / "c", n_docs=20)
    first = prepare([str(tmp_path / "c")], tmp_path / "c" / "shards", block_size=16)
    again = prepare([str(tmp_path / "c")], tmp_path / "c" / "shards", block_size=16, force=True)
    assert first["documents"] == again["documents"] == 20
    assert first["sha256"] == again["sha256"]


def test_an_empty_output_folder_is_used_without_force(tmp_path, capsys):
    _corpus(tmp_path / "c", n_docs=20)
    (tmp_path / "empty").mkdir()
    rc, _, err = _cli(capsys, tmp_path / "c", "--out", tmp_path / "empty", "--block-size", "8")
    assert rc == 0 and err == ""
    assert open_shards(tmp_path / "empty").manifest["documents"] == 20


def test_held_out_text_is_never_training_text(tmp_path, capsys):
    # a --val-file that is a training file (itself, or one inside a training folder), and
    # a folder given twice (each document twice: held out by documents, one copy in each
    # split) are refused in one line before anything is written
    _corpus(tmp_path / "dd", n_docs=120)
    tr = tmp_path / "dd" / "d0000.txt"
    out = tmp_path / "s"
    for argv, fragments in (
        ((tr, "--val-file", tr), ("--val-file", "d0000.txt", "training file", "trained on")),
        ((tmp_path / "dd", "--val-file", tr), ("--val-file", "d0000.txt", "training file")),
        ((tmp_path / "dd", tmp_path / "dd"), ("d0000.txt", "named by two SOURCEs")),
        ((tmp_path / "dd/d0001.txt", "--val-file", tr, "--test-file", tmp_path / "dd"),
         ("--test-file", "d0000.txt", "--val-file", "two splits")),
    ):  # fmt: skip
        rc, _, err = _cli(capsys, *argv, "--out", out, "--tokenizer", "char")
        assert rc == 2
        _one_error(err, *fragments)
        assert not out.exists() and not list(tmp_path.glob(".s.*"))
    os.symlink(tr, tmp_path / "link.txt")  # the same file under another name
    with pytest.raises(DataError, match=r"link\.txt is also a training file"):
        prepare([str(tr)], out, tokenizer="char", val_file=str(tmp_path / "link.txt"))


def test_a_split_far_from_the_fraction_asked_is_said(tmp_path, caplog):
    # the point falls in a long last line with no line start after it: the cut goes back to
    # that line's start, holding out ~97% instead of 10%; a warning names both shares
    f = tmp_path / "t.txt"
    f.write_text("short first line\n" * 3 + "word " * 600 + "\n")
    n = len(f.read_bytes())
    with caplog.at_level("WARNING", logger="scalinglab.data.writer"):
        m = prepare([str(f)], tmp_path / "w", tokenizer="word", block_size=8)
    cut = len("short first line\n") * 3
    assert m["splits"]["train"]["bytes"] == cut
    (rec,) = caplog.records
    share = 100 * (n - cut) / n
    assert f"holds {share:.1f}% of the bytes, not 10%" in rec.getMessage()
    assert f"nearest line boundary to byte {int(n * 0.9)} is byte {cut}" in rec.getMessage()
    caplog.clear()
    g = tmp_path / "g.txt"  # ordinary lines: the cut moves a line at most, nothing said
    g.write_text("a few words on a line\n" * 100)
    with caplog.at_level("WARNING", logger="scalinglab.data.writer"):
        prepare([str(g)], tmp_path / "g", tokenizer="word", block_size=8)
    assert not caplog.records


@pytest.mark.parametrize(
    "flag, value, says",
    [("--block-size", "0", "--block-size must be positive, got 0"),
     ("--chunk-bytes", "8", "--chunk-bytes must be at least 16, got 8")],
)  # fmt: skip
def test_a_bad_size_flag_is_named_alone_with_its_value(tmp_path, capsys, flag, value, says):
    # one message named both flags, whichever was wrong, and neither value
    rc, _, err = _cli(capsys, tmp_path / "none.txt", flag, value, "--out", tmp_path / "s")
    assert rc == 2 and err == f"error: {says}\n"


def test_utf16_text_is_named_as_such(tmp_path, capsys):
    # it was "invalid UTF-8 ...; pass --errors replace", and with that "NUL byte; this looks
    # like a binary file": neither the way out
    p = tmp_path / "notes.txt"
    p.write_bytes("some notes, written on Windows\n".encode("utf-16") * 20)
    says = f"error: {p}: UTF-16 text (it starts with a UTF-16 byte-order mark), not UTF-8"
    for more in ([], ["--errors", "replace"]):
        rc, _, err = _cli(capsys, p, "--tokenizer", "char", *more, "--out", tmp_path / "s")
        assert rc == 2 and err.count("\n") == 1 and err.startswith(says), err


def test_one_split_of_a_data_set_is_read_by_one_source_only(tmp_path, capsys, monkeypatch):
    # only files were checked: the same split of a hub data set or a save_to_disk folder
    # as SOURCE and --val-file made a validation split that was the training split
    monkeypatch.chdir(tmp_path)
    (tmp_path / "saved").mkdir()  # refused before it is read: the folder need hold nothing
    wt = "hf:wikitext:wikitext-2-raw-v1@train"
    rc, _, err = _cli(capsys, wt, "--val-file", wt, "--out", "s")
    assert rc == 2 and err == (
        f"error: --val-file {wt}: the data set wikitext:wikitext-2-raw-v1@train is also a "
        f"training data set (SOURCE {wt}); the held-out text would be trained on (give each "
        "data set to one split)\n"
    )
    rc, _, err = _cli(capsys, "hf:saved", "--val-file", "hf:x@x", "--test-file",
                      "hf:./saved@train", "--out", "s")  # fmt: skip
    assert rc == 2 and "the data set ./saved@train is also a training data set" in err
    assert not (tmp_path / "s").exists()


def test_a_text_field_no_source_reads_is_refused(tmp_path, capsys):
    # a JSON Lines file named .json is plain text: its keys and quotes were tokenized as
    # the corpus, --text-field ignored
    p = tmp_path / "c.json"
    p.write_text('{"text": "a few words"}\n' * 50)
    rc, _, err = _cli(capsys, p, "--text-field", "text", "--out", tmp_path / "s")
    assert rc == 2 and not (tmp_path / "s").exists()
    _one_error(err, "--text-field text: no source is JSON Lines or hf:", f"({p}: plain text")
    with pytest.raises(ConfigError, match=r"text.field body: no source is JSON Lines"):
        prepare([str(p)], tmp_path / "s", text_field="body")
    p.rename(p.with_suffix(".jsonl"))  # read by field: fine
    m = prepare([str(p.with_suffix(".jsonl"))], tmp_path / "s", text_field="text", block_size=8)
    assert m["splits"]["train"]["bytes"] + m["splits"]["val"]["bytes"] == 11 * 50


def test_a_glob_streaming_or_stdlib_tests_no_source_uses_is_refused(tmp_path, capsys):
    # --glob of a file SOURCE, --streaming of a folder, --stdlib-tests without stdlib were
    # ignored with exit 0: the user thought they took effect
    f, d = tmp_path / "c.txt", tmp_path / "d"
    f.write_text("a few words\n" * 50)
    d.mkdir()
    (d / "a.txt").write_text("more words\n" * 50)
    for argv, says in (
        (
            ("--glob", "*.py"),
            f"--glob '*.py': no source is a folder ({f}), so no file is "
            "chosen by it; it picks the files read from a folder SOURCE",
        ),
        (
            ("--stdlib-tests",),
            f"--stdlib-tests: no source is stdlib ({f}, {d}), so no test "
            "folder is read; it is for the stdlib source (its test folders)",
        ),
        (
            ("--streaming",),
            f"--streaming: no source is hf: ({f}, {d}), so nothing is "
            "streamed; it is for hf: sources (rows read as they come)",
        ),
    ):
        srcs = (f,) if argv[0] == "--glob" else (f, d)
        rc, _, err = _cli(capsys, *srcs, *argv, "--tokenizer", "char", "--block-size", "8",
                          "--out", tmp_path / "s")  # fmt: skip
        assert (rc, err) == (2, f"error: {says}\n")
        assert not (tmp_path / "s").exists()
    with pytest.raises(ConfigError, match=r"streaming: no source is hf: \("):
        prepare([str(d)], tmp_path / "s", config=PrepareConfig(streaming=True))
    # what is used, or asks for what happens anyway (--no-..., a default), is not refused
    m = prepare([str(d)], tmp_path / "s", glob="*.txt", streaming=False, stdlib_tests=False,
                tokenizer="char", block_size=8)  # fmt: skip
    assert m["documents"] == 1
    rc, _, err = _cli(capsys, f, "--no-streaming", "--no-stdlib-tests", "--tokenizer", "char",
                      "--block-size", "8", "--out", tmp_path / "s2")  # fmt: skip
    assert rc == 0 and err == ""


def test_small_messages_say_what_and_where(tmp_path, capsys):
    p = tmp_path / "c.jsonl"
    # a line cut off at its end: json counted its newline as a line 2 ("column 1")
    p.write_text('{"body": "fine"}\n{"body": "x", \n')
    rc, _, err = _cli(capsys, p, "--text-field", "body", "--out", tmp_path / "s")
    assert rc == 2
    _one_error(err, "c.jsonl: line 2: not valid JSON (", "at the end of the line)")
    p.write_text('{"body": "fine"}\n{"body": x}\n')
    rc, _, err = _cli(capsys, p, "--text-field", "body", "--out", tmp_path / "s")
    _one_error(err, "c.jsonl: line 2: not valid JSON (Expecting value at column 10)")
    # a string left open to the line's end: json's own message ends in "at" ("at at")
    p.write_text('{"body": "fine"}\n{"body": "x\n')
    rc, _, err = _cli(capsys, p, "--text-field", "body", "--out", tmp_path / "s")
    _one_error(err, "line 2: not valid JSON (Invalid control character at the end of the line)")
    p.write_text('{"body": "fine"}\n[1, 2]\n')  # not an object: no field is the wrong story
    rc, _, err = _cli(capsys, p, "--text-field", "body", "--out", tmp_path / "s")
    _one_error(err, "c.jsonl: line 2: a JSON list, not an object")
    # a missing or empty --val-file / --test-file names the flag
    f = tmp_path / "t.txt"
    f.write_text("a b c\n" * 100)
    (tmp_path / "empty.txt").write_text("")
    for flag, given, says in (
        ("--val-file", tmp_path / "nope.txt", "nope.txt: no such file or folder"),
        ("--val-file", tmp_path / "empty.txt", "empty.txt: empty file"),
        ("--test-file", tmp_path / "nope.txt", "nope.txt: no such file or folder"),
    ):
        extra = ("--val-file", f) if flag == "--test-file" else ()
        rc, _, err = _cli(capsys, f, *extra, flag, given, "--out", tmp_path / "s")
        assert rc == 2
        _one_error(err, f"error: {flag} {given}", says)
    # too small with --val-file: a larger --val-fraction is no way out (it is refused)
    g = tmp_path / "g.txt"
    g.write_text("a b\n")
    rc, _, err = _cli(capsys, f, "--val-file", g, "--tokenizer", "word", "--out", tmp_path / "s")
    assert rc == 2
    _one_error(err, "corpus too small", "use more text or a smaller --block-size")
    assert "--val-fraction" not in err
    rc, _, err = _cli(capsys, g, "--tokenizer", "word", "--out", tmp_path / "s")
    _one_error(err, "train has 2 tokens and val 1", "use more text or a smaller --block-size")
    assert "--val-fraction" not in err  # both splits too short: no fraction helps
    # the training split is the one too small: a larger fraction was the wrong advice
    rc, _, err = _cli(capsys, f, "--val-fraction", "0.9999999", "--out", tmp_path / "s")
    _one_error(err, "train has 0 tokens", "use more text, a smaller --val-fraction or a smaller")
    rc, _, err = _cli(capsys, f, "--val-fraction", "1e-7", "--out", tmp_path / "s")
    _one_error(err, "and val 1;", "use more text, a larger --val-fraction or a smaller")


def test_a_rerun_rebuilds_damaged_shards(tmp_path, capsys, caplog):
    # train and eval say "the folder is damaged, rerun `prepare`", but the rerun said
    # "up to date" and changed nothing: only --force mended the folder
    _corpus(tmp_path / "c", n_docs=20)
    out = tmp_path / "s"
    args = (tmp_path / "c", "--tokenizer", "char", "--out", out)
    assert _cli(capsys, *args)[0] == 0
    good = {f: (out / f).read_bytes() for f in ("train.bin", "tokenizer.json")}
    rc, line, _ = _cli(capsys, *args)
    assert rc == 0 and "up to date" in line
    with open(out / "train.bin", "r+b") as f:  # one id changed, the size kept
        f.seek(100)
        f.write(b"\x05")
    with pytest.raises(DataError, match=r"train\.bin: sha256 does not match the manifest"):
        check_integrity(open_shards(out))
    for name in ("train.bin", "tokenizer.json"):
        if name == "tokenizer.json":
            (out / name).write_text((out / name).read_text() + " ")
        caplog.clear()
        with caplog.at_level("WARNING", logger="scalinglab.data.writer"):
            rc, line, _ = _cli(capsys, *args)
        assert rc == 0 and "up to date" not in line
        assert [r.getMessage() for r in caplog.records] == [
            f"{out / name}: sha256 does not match the manifest; rebuilding {out}"
        ]
        assert all((out / f).read_bytes() == b for f, b in good.items())
        check_integrity(open_shards(out))


def test_the_split_at_its_boundaries_100_documents_and_a_cut_on_a_line_start(tmp_path):
    """100 documents, the least split by documents, hold out one (by bytes: 10 touched);
    a byte cut at exactly a line start keeps that line in val (searching from it, the val
    split was half its size, 5 tokens of 10; found by a mutation audit)."""
    _corpus(tmp_path / "c", n_docs=100)
    m = prepare([str(tmp_path / "c")], tmp_path / "s", tokenizer="byte", block_size=16)
    assert m["split_by"] == "documents" and m["splits"]["val"]["documents"] == 1
    (tmp_path / "t.txt").write_text("".join(f"w{i:02d} a b c\n" for i in range(20)))
    m = prepare([str(tmp_path / "t.txt")], tmp_path / "w", tokenizer="word", block_size=4)
    assert m["splits"]["train"]["bytes"] == 180 and m["splits"]["val"]["tokens"] == 10


def _docs(path, n):
    path.write_text(
        "".join(json.dumps({"text": f"document number {i} " * 5}) + "\n" for i in range(n))
    )
    return path


def test_another_seed_rebuilds_the_document_split(tmp_path):
    src = _docs(tmp_path / "c.jsonl", 150)
    prepare(str(src), tmp_path / "sh", seed=1, block_size=8)
    v1 = (tmp_path / "sh/val.bin").read_bytes()
    m = prepare(str(src), tmp_path / "sh", seed=2, block_size=8)
    assert m["up_to_date"] is False
    assert m["seed"] == 2
    assert (tmp_path / "sh/val.bin").read_bytes() != v1
    # the val documents are those numpy's generator picks for seed 2: round(0.01 * 150) = 2
    picked = np.random.default_rng(2).choice(150, size=2, replace=False)
    val_text = (tmp_path / "sh/val.bin").read_bytes()[::2].decode()  # byte ids as uint16
    assert all(f"document number {i} " in val_text for i in picked)


def test_prepare_refuses_a_train_split_the_loader_cannot_use(tmp_path):
    (tmp_path / "tr.txt").write_bytes(b"a" * 17)
    (tmp_path / "va.txt").write_bytes(b"b" * 40)
    with pytest.raises(DataError, match="corpus too small"):
        prepare(
            str(tmp_path / "tr.txt"),
            tmp_path / "sh",
            val_file=str(tmp_path / "va.txt"),
            block_size=16,
        )
    m = prepare(
        str(tmp_path / "tr.txt"), tmp_path / "sh", val_file=str(tmp_path / "va.txt"), block_size=15
    )
    BatchLoader(open_shards(tmp_path / "sh").train, 15, 1).next()
    assert m["splits"]["train"]["tokens"] == 17


def test_a_tiny_val_fraction_still_holds_out_one_document(tmp_path):
    src = _docs(tmp_path / "c.jsonl", 100)
    m = prepare(str(src), tmp_path / "sh", val_fraction=0.001, block_size=8)
    assert m["splits"]["val"]["documents"] == 1
    assert m["splits"]["train"]["documents"] == 99
