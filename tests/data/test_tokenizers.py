import json
import logging

import numpy as np
import pytest

from scalinglab.data.tokenizers import (
    MAX_PRETOKEN,
    MAX_WORD,
    ByteTokenizer,
    CharTokenizer,
    WordTokenizer,
    bytes_to_unicode,
    load_tokenizer,
    train_tokenizer,
)
from scalinglab.errors import ConfigError, DataError
from tests.conftest import shared_file

TRICKY = "héllo\n  wörld 🙂\r\n\tend\x00 ﬁ 日本語  \n\n"


def test_byte_ids_are_the_bytes_and_roundtrip_any_bytes():
    tok = ByteTokenizer()
    assert tok.encode(TRICKY).tolist() == list(TRICKY.encode("utf-8"))
    assert tok.decode(tok.encode(TRICKY)) == TRICKY
    every = bytes(range(256)) + b"\xff\xfe"  # invalid UTF-8 still round-trips as bytes
    assert tok.decode_bytes(tok.encode(every)) == every
    assert tok.vocab_size == 256
    with pytest.raises(DataError, match="token id 256"):
        tok.decode([1, 256])


def test_byte_map_is_gpt2s():
    m = bytes_to_unicode()
    assert len(set(m.values())) == 256
    assert m[ord("A")] == "A" and m[ord(" ")] == "Ġ" and m[ord("\n")] == "Ċ"


def test_char_ids_match_nanogpt_shakespeare_char():
    text = shared_file("corpora/tinyshakespeare.txt").read_text(encoding="utf-8")
    tok = train_tokenizer("char", [text])
    chars = sorted(set(text))  # nanoGPT's data/shakespeare_char/prepare.py
    assert len(chars) == 65 and tok.vocab_size == 66
    stoi = {c: i for i, c in enumerate(chars)}
    head = text[:5000]
    assert tok.encode(head).tolist() == [stoi[c] for c in head]
    assert tok.decode(tok.encode(head)) == head
    # an unseen character maps to <unk>, the last id
    assert tok.encode("a€b").tolist() == [stoi["a"], 65, stoi["b"]]
    assert tok.decode([stoi["a"], 65]) == "a<unk>"


def test_char_roundtrip_and_vocab_cap():
    tok = train_tokenizer("char", ["aaab", "bc🙂"])
    assert tok.vocab_size == 5
    assert tok.decode(tok.encode("cab🙂")) == "cab🙂"
    capped = train_tokenizer("char", ["aaab", "bbc"], vocab_size=3)  # a,b kept (most frequent)
    assert capped.chars == ["a", "b"]
    assert capped.encode("abc").tolist() == [0, 1, 2]


def test_word_counts_match_pytorch_word_language_model_on_wikitext2():
    # data.py of pytorch/examples word_language_model: line.split() + ['<eos>'] per line;
    # its published token count for wiki.valid.tokens is 217,646.
    path = shared_file("corpora/wikitext-2/valid.txt")
    text = path.read_text(encoding="utf-8")
    tok = train_tokenizer("word", [text])
    ids = tok.encode(text)
    assert len(ids) == 217_646
    assert (ids == tok.eos_id).sum() == text.count("\n") == 3760
    assert (ids == tok.unk_id).sum() == text.split().count("<unk>")  # WikiText's own <unk>


def test_word_vocab_capped_by_frequency():
    tok = train_tokenizer("word", ["the cat the dog\nthe cat", "a"], vocab_size=4)
    assert tok.vocab_size == 4  # <unk>, <eos>, the (3), cat (2)
    assert tok.encode("the dog\ncat").tolist() == [2, 0, 1, 3, 1]
    assert tok.decode([2, 3, 1, 2]) == "the cat\nthe"
    full = train_tokenizer("word", ["b a\na"])
    assert full.encode("a b c\n").tolist() == [2, 3, 0, 1]  # a (2x) before b; ties by spelling


def test_bpe_roundtrip_exact_and_training_deterministic():
    text = shared_file("corpora/tinyshakespeare.txt").read_text(encoding="utf-8")[:200_000]
    a = train_tokenizer("bpe", [text], vocab_size=600)
    b = train_tokenizer("bpe", [text], vocab_size=600)
    assert a.vocab_size == 600
    assert a.hf.to_str() == b.hf.to_str()
    for s in (TRICKY, text[:3000]):
        assert a.decode(a.encode(s)) == s
    assert len(a.encode(text[:3000])) < 3000 / 2  # merges learned: well under a byte per token


@pytest.mark.parametrize("kind", ["byte", "char", "word", "bpe"])
def test_save_load_roundtrip(tmp_path, kind):
    texts = ["hello world\nthe hello\n", "wörld 🙂 x\n"] * 20
    tok = train_tokenizer(kind, texts, vocab_size=300 if kind == "bpe" else None)
    tok.save(tmp_path / "tokenizer.json")
    back = load_tokenizer(tmp_path)  # a folder holding tokenizer.json works too
    assert back.kind == kind and back.vocab_size == tok.vocab_size
    s = "the hello wörld\nunseen ✓\n"
    assert np.array_equal(back.encode(s), tok.encode(s))
    assert back.decode(back.encode(s)) == tok.decode(tok.encode(s))


@pytest.mark.parametrize("kind", ["byte", "char", "word", "bpe"])
def test_files_load_in_transformers(tmp_path, kind):
    pytest.importorskip("transformers", reason="transformers (extra [hf]) is not installed")
    from transformers import PreTrainedTokenizerFast

    tok = train_tokenizer(kind, ["hello world\nthe hello\n🙂\n"] * 5, vocab_size=300 if kind == "bpe" else None)  # fmt: skip
    tok.save(tmp_path / "tokenizer.json")
    hf = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    s = "the hello world 🙂\n"
    assert hf.encode(s) == tok.encode(s).tolist()
    if kind != "word":  # words lose their spacing by design
        assert hf.decode(hf.encode(s)) == s


def test_minimal_byte_form_and_bad_files(tmp_path):
    (tmp_path / "tokenizer.json").write_text(json.dumps({"kind": "byte"}))
    assert isinstance(load_tokenizer(tmp_path), ByteTokenizer)
    with pytest.raises(DataError, match="tokenizer file not found"):
        load_tokenizer(tmp_path / "nope")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json: unreadable"):
        load_tokenizer(tmp_path / "bad.json")


def test_kinds_are_recognised_from_structure(tmp_path):
    for tok in (ByteTokenizer(), CharTokenizer(list("ab")), WordTokenizer(["x"])):
        tok.save(tmp_path / "t.json")
        assert type(load_tokenizer(tmp_path / "t.json")) is type(tok)


@pytest.mark.parametrize(
    ("kind", "size"), [("byte", 1000), ("char", 1), ("word", 2), ("bpe", 100), ("bpe", 0)]
)
def test_vocab_size_out_of_range(kind, size):
    with pytest.raises(ConfigError, match=f"vocab_size {size}"):
        train_tokenizer(kind, ["abc"], vocab_size=size)


def test_bpe_cuts_pretokens_longer_than_the_cap_and_leaves_ordinary_text_alone():
    from tokenizers import Tokenizer as HF
    from tokenizers import pre_tokenizers

    ordinary = "The quick brown fox, 1234 jumps.\n\n    over the lazy dog's back!\n" * 30
    runs = "a" * 1000 + " " + "7" * 600 + " " + "é" * 300 + " " + "-" * 257 + "\n"
    tok = train_tokenizer("bpe", [ordinary, runs], vocab_size=400)
    # A run is tokenized as consecutive MAX_PRETOKEN-byte words (byte count: é is 2 bytes).
    cap = MAX_PRETOKEN
    pieces = ["a" * cap] * 3 + ["a" * (1000 - 3 * cap)]
    assert tok.encode("a" * 1000).tolist() == [i for p in pieces for i in tok.encode(p).tolist()]
    assert len(tok.encode("a" * 1000)) == 4  # the trainer saw these words: one token each
    for s in (runs, ordinary + runs):
        assert tok.decode(tok.encode(s)) == s  # lossless, a cut inside "é" included
    # Pre-tokens up to the cap are untouched: the same model without the cap agrees.
    plain = HF.from_str(tok.hf.to_str())
    plain.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    for s in (ordinary, "x" * cap, "-" * cap):
        assert tok.encode(s).tolist() == plain.encode(s).ids
    # ...and longer ones are cut from their start, in bytes.
    cut = tok.hf.pre_tokenizer.pre_tokenize_str("x " + "-" * 600 + " " + "é" * 200)
    assert [len(t) for t, _ in cut] == [1, 256, 256, 89, 256, 145]


def test_word_leaves_runs_longer_than_max_word_out_of_the_vocabulary():
    tok = train_tokenizer("word", ["x" * (MAX_WORD + 1) + " hi\n" + "y" * MAX_WORD + " hi"])
    assert tok.vocab_size == 4 and tok.decode([2, 3]) == "hi " + "y" * MAX_WORD
    assert tok.encode("x" * (MAX_WORD + 1) + " hi").tolist() == [tok.unk_id, 2, tok.eos_id]


def test_bpe_says_when_the_corpus_gives_fewer_merges_than_asked(caplog, capsys):
    # a small corpus runs out of pairs to merge long before 8000: the vocabulary it reaches
    # is smaller, said in a warning naming both sizes (the CLI prints it, one line)
    text = ["the cat sat on the mat\n" * 50]
    with caplog.at_level("WARNING", logger="scalinglab.data.tokenizers"):
        tok = train_tokenizer("bpe", text, vocab_size=8000)
    assert tok.vocab_size < 400
    (rec,) = caplog.records
    msg = rec.getMessage()
    assert "--vocab-size 8000" in msg and f"reached {tok.vocab_size}" in msg
    assert "no more merges" in msg
    caplog.clear()
    with caplog.at_level("WARNING", logger="scalinglab.data.tokenizers"):
        train_tokenizer("bpe", text, vocab_size=265)  # reachable: nothing said
    assert not caplog.records


def test_word_ids_are_the_exported_tokenizers_for_any_whitespace():
    """str.split() also splits at U+001C-U+001F, which the tokenizer.json's WhitespaceSplit
    does not: "the\\x1ccat sat" gave [22, 15, 18, 1] here and [0, 18, 1] from the file
    (found by an audit of data preparation). Other whitespace splits alike in both."""
    from tokenizers import Tokenizer as HF

    text = "the cat sat\nthe\x1ccat\tsat\u00a0on\u3000the mat\x1f\nend\r\n"
    tok = train_tokenizer("word", [text + "the cat sat on the mat\n"], None)
    hf = HF.from_str(tok.to_hf().to_str())
    assert tok.encode(text).tolist() == hf.encode(text).ids


def test_char_tokenizer_file_with_unk_not_last_is_refused(tmp_path):
    from tokenizers import Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HF

    hf = HF(models.WordLevel(vocab={"<unk>": 0, "a": 1, "b": 2}, unk_token="<unk>"))
    hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    hf.decoder = decoders.Fuse()
    hf.save(str(tmp_path / "tok.json"))
    # the file says a=1, b=2; reading it as ours (a=0, b=1) would give other ids
    with pytest.raises(DataError, match="<unk> as its last id"):
        load_tokenizer(tmp_path / "tok.json")


def test_bpe_short_of_its_target_by_one_token_is_warned(caplog):
    text = ["abcabd abcabd xyz"] * 3
    reached = train_tokenizer("bpe", text, 4096).vocab_size
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scalinglab"):
        tok = train_tokenizer("bpe", text, reached + 1)
    assert tok.vocab_size == reached
    assert f"reached {reached}" in caplog.text
