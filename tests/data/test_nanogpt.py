"""`prepare --from-nanogpt DIR`: a nanoGPT data folder (train.bin / val.bin uint16 +
meta.pkl) made here the way nanoGPT's prepare scripts make it, imported as shards with
the same ids; a meta.pkl is read as plain data only, never run."""

import json
import os
import pickle

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.data.nanogpt import import_nanogpt, read_meta
from scalinglab.data.shards import check_integrity, open_shards
from scalinglab.data.tokenizers import load_tokenizer
from scalinglab.errors import ConfigError, DataError

TEXT = "".join(f"First Citizen: we are {i} accounted poor citizens. Ünïcödé!\n" for i in range(300))


def char_folder(path, text=TEXT):
    """As nanoGPT's shakespeare_char/prepare.py leaves its folder: sorted characters, a
    90/10 split by characters, uint16 ids, meta.pkl with vocab_size, itos and stoi."""
    path.mkdir()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    cut = int(len(text) * 0.9)
    ids[:cut].tofile(path / "train.bin")
    ids[cut:].tofile(path / "val.bin")
    meta = {"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}
    (path / "meta.pkl").write_bytes(pickle.dumps(meta))
    return path, text[:cut], text[cut:]


def test_a_char_folder_keeps_its_ids_and_text(tmp_path):
    src, train_text, val_text = char_folder(tmp_path / "shakespeare_char")
    m = import_nanogpt(src, tmp_path / "shards", block_size=32)
    n = len(set(TEXT))
    assert m["tokenizer"] == "char" and m["vocab_size"] == n + 1  # + <unk>, last
    s = open_shards(tmp_path / "shards")
    check_integrity(s)  # sha256 and every id below vocab_size
    for split, raw in (("train", s.train), ("val", s.val)):
        assert np.array_equal(raw, np.fromfile(src / f"{split}.bin", dtype=np.uint16))
    tok = load_tokenizer(tmp_path / "shards")
    assert tok.decode(s.train) == train_text and tok.decode(s.val) == val_text
    # bytes are the UTF-8 bytes of each split's text: bits per byte compare across tokenizers
    assert m["splits"]["train"]["bytes"] == len(train_text.encode())
    assert m["splits"]["val"]["bytes"] == len(val_text.encode())
    assert import_nanogpt(src, tmp_path / "shards", block_size=32)["up_to_date"]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickled, this would create the marker file


def test_meta_pkl_is_never_run(tmp_path):
    src, _, _ = char_folder(tmp_path / "d")
    marker = tmp_path / "ran"
    (src / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": 3, "itos": _Evil(str(marker))}))
    with pytest.raises(DataError, match=r"meta\.pkl: names io\.open; only plain data"):
        import_nanogpt(src, tmp_path / "shards")
    assert not marker.exists() and not (tmp_path / "shards").exists()
    (src / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": 3, "itos": {0: 1}}))
    with pytest.raises(DataError, match="itos must map integer ids to strings"):
        read_meta(src / "meta.pkl")
    (src / "meta.pkl").write_bytes(pickle.dumps(["not", "a", "dict"])[:-3])
    with pytest.raises(DataError, match=r"not a readable meta\.pkl"):
        read_meta(src / "meta.pkl")


def test_a_bpe_folder_needs_its_tokenizer_and_declared_vocabulary(tmp_path, capsys):
    from tests.data.test_pretrained_tokenizer import TEXT as BPE_TEXT
    from tests.data.test_pretrained_tokenizer import hf_tokenizer

    hf = hf_tokenizer()  # 300 ids, trained here: nanoGPT's openwebtext uses GPT-2's this way
    tj = tmp_path / "tokenizer.json"
    hf.save(str(tj))
    src = tmp_path / "owt"
    src.mkdir()
    ids = np.array(hf.encode(BPE_TEXT, add_special_tokens=False).ids, dtype=np.uint16)
    cut = int(len(ids) * 0.9)
    ids[:cut].tofile(src / "train.bin")
    ids[cut:].tofile(src / "val.bin")
    out = str(tmp_path / "shards")
    assert main(["prepare", "--from-nanogpt", str(src), "-o", out]) == 2
    assert "no meta.pkl with itos" in capsys.readouterr().err
    assert main(["prepare", "--from-nanogpt", str(src), "-o", out, "--tokenizer", str(tj),
                 "--vocab-size", "301"]) == 2  # fmt: skip
    assert (
        "declared as 301 ids (--vocab-size), but the tokenizer has 300" in capsys.readouterr().err
    )
    assert main(["prepare", "--from-nanogpt", str(src), "-o", out, "--tokenizer", str(tj),
                 "--vocab-size", "300", "--block-size", "16", "--json"]) == 0  # fmt: skip
    m = json.loads(capsys.readouterr().out)
    assert m["vocab_size"] == 300 and m["pretrained_tokenizer"]["path"] == str(tj)
    s = open_shards(out)
    assert np.array_equal(np.concatenate([s.train, s.val]), ids)
    total = m["splits"]["train"]["bytes"] + m["splits"]["val"]["bytes"]
    assert total == len(BPE_TEXT.encode())  # byte-level pieces: one byte per character
    # a token id the vocabulary does not hold is named, with its position
    bad = ids.copy()
    bad[5] = 300
    bad[:cut].tofile(src / "train.bin")
    with pytest.raises(DataError, match=r"train.bin: token 5 is id 300, out of range"):
        import_nanogpt(src, tmp_path / "other", tokenizer=str(tj))


def test_flags_that_do_not_apply_are_refused(tmp_path, capsys):
    src, _, _ = char_folder(tmp_path / "d")
    for extra, says in [
        (["corpus.txt"], "SOURCEs does not apply"),
        (["--val-fraction", "0.2"], "--val-fraction does not apply"),
        (["--tokenizer", "char"], "--tokenizer char: with --from-nanogpt, a pretrained"),
    ]:
        argv = ["prepare", "--from-nanogpt", str(src), "-o", str(tmp_path / "s"), *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
    (src / "val.bin").write_bytes(b"\x01")
    with pytest.raises(DataError, match="1 bytes, not whole uint16 token ids"):
        import_nanogpt(src, tmp_path / "s")
    os.remove(src / "val.bin")
    with pytest.raises(DataError, match=r"no val\.bin"):
        import_nanogpt(src, tmp_path / "s")
    with pytest.raises(ConfigError, match=r"^vocab_size 7: .*declares"):
        char_folder(tmp_path / "e")
        import_nanogpt(tmp_path / "e", tmp_path / "s", vocab_size=7)


def test_ids_are_held_to_the_declared_vocabulary(tmp_path, caplog):
    from tests.data.test_pretrained_tokenizer import hf_tokenizer

    # meta.pkl declares len(itos) ids; <unk>, our last id, is one nanoGPT never writes
    src, _, _ = char_folder(tmp_path / "c")
    n = len(set(TEXT))
    ids = np.fromfile(src / "train.bin", dtype=np.uint16)
    ids[7] = n
    ids.tofile(src / "train.bin")
    with pytest.raises(DataError, match=rf"train\.bin: token 7 is id {n}, out of range for "
                       rf"the vocabulary of {n} \(meta\.pkl's vocab_size\)"):  # fmt: skip
        import_nanogpt(src, tmp_path / "s1", block_size=8)
    # a meta.pkl whose vocab_size is not its itos's size is refused
    meta = read_meta(src / "meta.pkl")
    (src / "meta.pkl").write_bytes(pickle.dumps({**meta, "vocab_size": n + 5}))
    with pytest.raises(DataError, match=rf"vocab_size is {n + 5} but itos holds {n}"):
        import_nanogpt(src, tmp_path / "s2", block_size=8)
    # a tokenizer of 300 ids, --vocab-size 280: ids from 280 up are refused, and the
    # difference is said
    tj = tmp_path / "tok.json"
    hf_tokenizer(300).save(str(tj))
    b = tmp_path / "b"
    b.mkdir()
    np.arange(200, 300, dtype=np.uint16).repeat(3).tofile(b / "train.bin")
    np.arange(0, 100, dtype=np.uint16).tofile(b / "val.bin")
    with caplog.at_level("WARNING"), pytest.raises(
        DataError, match=r"token 240 is id 280, out of range for the vocabulary of 280 "
        r"\(vocab_size\)"
    ):  # fmt: skip
        import_nanogpt(b, tmp_path / "s3", tokenizer=str(tj), vocab_size=280, block_size=8)
    assert "declared as 280 ids (--vocab-size), the tokenizer has 300" in caplog.text
    m = import_nanogpt(b, tmp_path / "s3", tokenizer=str(tj), vocab_size=300, block_size=8)
    assert m["vocab_size"] == 300


def test_a_huge_vocab_size_in_meta_pkl_is_one_line(tmp_path, capsys):
    # 10**5000 has more digits than Python turns into text: formatting it raised
    src, _, _ = char_folder(tmp_path / "d")
    meta = read_meta(src / "meta.pkl")
    (src / "meta.pkl").write_bytes(pickle.dumps({**meta, "vocab_size": 10**5000}))
    assert main(["prepare", "--from-nanogpt", str(src), "-o", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "vocab_size must be an integer in 1..2**32" in err
    assert "an integer of 16610 bits" in err and not (tmp_path / "s").exists()
    (src / "meta.pkl").write_bytes(pickle.dumps({**meta, "vocab_size": 2**32 + 1}))
    with pytest.raises(DataError, match=r"in 1\.\.2\*\*32"):
        read_meta(src / "meta.pkl")


def test_up_to_date_shards_still_need_one_window(tmp_path, capsys):
    # --block-size is not part of the request: an up-to-date import checks the windows too
    src, _, _ = char_folder(tmp_path / "d")
    out = str(tmp_path / "s")
    assert main(["prepare", "--from-nanogpt", str(src), "-o", out, "--block-size", "8"]) == 0
    capsys.readouterr()
    assert main(["prepare", "--from-nanogpt", str(src), "-o", out,
                 "--block-size", "100000"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "one window of --block-size 100000" in err
    assert main(["prepare", "--from-nanogpt", str(src), "-o", out, "--block-size", "8"]) == 0
    assert "up to date" in capsys.readouterr().out


def _ids_folder(path, ids):
    path.mkdir()
    ids = np.asarray(ids, dtype=np.uint16)
    cut = int(len(ids) * 0.9)
    ids[:cut].tofile(path / "train.bin")
    ids[cut:].tofile(path / "val.bin")
    return path


def test_byte_ids_count_one_byte_each(tmp_path):
    # decoding a byte >= 0x80 alone gives U+FFFD, which counted 3 bytes: 3,038 + 351
    # bytes were recorded for these 2,430 + 271
    from scalinglab.data.tokenizers import ByteTokenizer

    ByteTokenizer().save(tmp_path / "byte.json")
    data = TEXT.encode()[:2701]
    src = _ids_folder(tmp_path / "ngb", np.frombuffer(data, np.uint8))
    m = import_nanogpt(src, tmp_path / "out", tokenizer=str(tmp_path / "byte.json"))
    assert {s: m["splits"][s]["bytes"] for s in ("train", "val")} == {"train": 2430, "val": 271}
    assert m["splits"]["train"]["tokens"] + m["splits"]["val"]["tokens"] == len(data) == 2701
    assert m["request"]["importer"] == 4  # older imports are rebuilt, not kept


def test_sentencepiece_pieces_count_their_space_and_fallback_bytes(tmp_path):
    # `▁word` decoded alone drops its space: 15% of the bytes went uncounted
    from tokenizers import SentencePieceBPETokenizer

    sp = SentencePieceBPETokenizer()
    sp.train_from_iterator([TEXT], vocab_size=120, show_progress=False)
    sp.save(str(tmp_path / "sp.json"))
    ids = sp.encode(TEXT).ids  # one text: one ▁ prepended, counted as its space
    src = _ids_folder(tmp_path / "sp", ids)
    m = import_nanogpt(src, tmp_path / "out", tokenizer=str(tmp_path / "sp.json"))
    assert m["splits"]["train"]["bytes"] + m["splits"]["val"]["bytes"] == len(TEXT.encode()) + 1

    # Llama style: a Prepend/Replace normalizer, byte-fallback pieces <0xNN> for unseen text
    from tokenizers import Tokenizer, decoders, models, normalizers

    pieces = ["<unk>", *(f"<0x{b:02X}>" for b in range(256)), "▁", "a", "b", "▁a", "▁ab"]
    bpe = models.BPE({p: i for i, p in enumerate(pieces)}, [("▁", "a"), ("▁a", "b")],
                     unk_token="<unk>", byte_fallback=True)  # fmt: skip
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])  # fmt: skip
    tok.save(str(tmp_path / "llama.json"))
    text = "ab a ✓ é b " * 40  # ✓ and é: byte-fallback pieces, 3 and 2 bytes
    ids = tok.encode(text).ids
    assert tok.decode(ids) == text
    src = _ids_folder(tmp_path / "ll", ids)
    m = import_nanogpt(
        src, tmp_path / "out2", tokenizer=str(tmp_path / "llama.json"), block_size=16
    )
    assert m["splits"]["train"]["bytes"] + m["splits"]["val"]["bytes"] == len(text.encode()) + 1


@pytest.mark.parametrize("chunk", [1 << 22, 37])
def test_word_and_wordpiece_splits_count_the_bytes_of_their_decoded_text(
    tmp_path, monkeypatch, chunk
):
    """Counted per id, a word-level split left out the spaces between words and a
    WordPiece one counted its `##` marks: WikiText-2's bytes came out 24-28% short, so
    every val_bpb of the import read 1.28x high (found by an audit of data preparation).
    They are the bytes of the decoded text now, also across the seams of the chunks it is
    decoded in (a chunk of 37 ids: a seam in every line)."""
    from tokenizers import BertWordPieceTokenizer

    from scalinglab.data import nanogpt
    from scalinglab.data.tokenizers import train_tokenizer

    monkeypatch.setattr(nanogpt, "CHUNK_TOKENS", chunk)
    word = train_tokenizer("word", [TEXT], None)
    word.save(tmp_path / "word.json")
    wp = BertWordPieceTokenizer(lowercase=False, strip_accents=False)
    wp.train_from_iterator([TEXT], vocab_size=200, show_progress=False)
    wp.save(str(tmp_path / "wp.json"))
    for name, ids in (("word", word.encode(TEXT)), ("wp", wp.encode(TEXT).ids)):
        src = _ids_folder(tmp_path / f"ng-{name}", ids)
        m = import_nanogpt(src, tmp_path / f"out-{name}", tokenizer=str(tmp_path / f"{name}.json"))
        tok = load_tokenizer(tmp_path / f"out-{name}")
        for s in ("train", "val"):
            split = np.fromfile(src / f"{s}.bin", dtype=np.uint16)
            assert m["splits"][s]["bytes"] == len(tok.decode(split).encode()), (name, s)


def test_a_damaged_import_is_rebuilt(tmp_path, caplog):
    src, _, _ = char_folder(tmp_path / "sc")
    out = tmp_path / "shards"
    import_nanogpt(src, out)
    good = (out / "val.bin").read_bytes()
    assert import_nanogpt(src, out)["up_to_date"]
    (out / "val.bin").write_bytes(good[:-2] + bytes([good[-2] ^ 1, 0]))  # the last id changed
    with caplog.at_level("WARNING", logger="scalinglab.data.nanogpt"):
        m = import_nanogpt(src, out)
    assert not m["up_to_date"] and (out / "val.bin").read_bytes() == good
    assert [r.getMessage() for r in caplog.records] == [
        f"{out / 'val.bin'}: sha256 does not match the manifest; rebuilding {out}"
    ]


def test_uint32_ids_are_refused_not_read_as_twice_as_many(tmp_path, capsys):
    # read as uint16, 4-byte ids passed every check: each followed by a 0, the split twice
    # as long and not the text
    src, _, _ = char_folder(tmp_path / "d")
    out = tmp_path / "shards"
    import_nanogpt(src, out, block_size=32)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    ids = np.fromfile(src / "train.bin", dtype=np.uint16)
    ids.astype(np.uint32).tofile(src / "train.bin")
    rc = main(["prepare", "--from-nanogpt", str(src), "--out", str(out), "--block-size", "32"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {src / 'train.bin'}: every second uint16 id is 0")
    assert "holds uint32 ids" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old shards stay


# Known answers for mutations of data/nanogpt.py that every test passed (a mutation audit):
# each fails on its mutation.
def _nanogpt_char_folder(path, train_ids, val_ids, chars="abcdefgh"):
    """A nanoGPT char folder as shakespeare_char/prepare.py writes it, given its ids."""
    path.mkdir()
    np.asarray(train_ids).tofile(path / "train.bin")
    np.asarray(val_ids, dtype=np.uint16).tofile(path / "val.bin")
    itos = dict(enumerate(chars))
    meta = {"vocab_size": len(chars), "itos": itos, "stoi": {c: i for i, c in itos.items()}}
    (path / "meta.pkl").write_bytes(pickle.dumps(meta))
    return path


def test_an_imported_train_split_needs_block_size_plus_2_tokens(tmp_path):
    """Kills N5 (`tr < block_size + 2` -> `tr < block_size + 1` in _check_windows): the
    loader (data/loader.py) needs block_size + 2 train tokens. Known answer: 50 train and
    50 val tokens import at --block-size 48, and are refused at 49 (train 50 < 51)."""
    ids = np.arange(50, dtype=np.uint16) % 8
    src = _nanogpt_char_folder(tmp_path / "d", ids, ids)
    assert import_nanogpt(src, tmp_path / "ok", block_size=48)["splits"]["train"]["tokens"] == 50
    with pytest.raises(DataError, match="train has 50 tokens and val 50"):
        import_nanogpt(src, tmp_path / "short", block_size=49)


def test_uint32_ids_are_recognised_from_exactly_uint32_sign_ids(tmp_path):
    """Kills N6 (`len(ids) >= UINT32_SIGN` -> `>`). 512 ids written as uint32 read as
    exactly 1024 = UINT32_SIGN uint16 ids, every second one 0. Known answer: refused."""
    train = (np.arange(512) % 7 + 1).astype(np.uint32)
    src = _nanogpt_char_folder(tmp_path / "d", train, np.arange(200) % 8)
    with pytest.raises(DataError, match="every second uint16 id is 0"):
        import_nanogpt(src, tmp_path / "s", block_size=16)


def test_a_meta_pkl_without_vocab_size_takes_its_itos_length(tmp_path):
    """Kills N9 (`declared = len(tok.chars)` -> `tok.vocab_size`, which counts our <unk>:
    every meta.pkl without vocab_size was then refused as 'vocab_size is 9 but itos holds
    8'). Known answer: 8 characters in itos, the import succeeds with their ids."""
    ids = np.arange(100, dtype=np.uint16) % 8
    src = _nanogpt_char_folder(tmp_path / "d", ids, ids)
    meta = pickle.loads((src / "meta.pkl").read_bytes())
    del meta["vocab_size"]
    (src / "meta.pkl").write_bytes(pickle.dumps(meta))
    m = import_nanogpt(src, tmp_path / "s", block_size=16)
    assert m["splits"]["train"]["tokens"] == 100 and m["up_to_date"] is False
