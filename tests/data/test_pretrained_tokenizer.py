"""`prepare --tokenizer PATH`: a pretrained Hugging Face tokenizer (a tokenizer.json or a
local tokenizer folder), made here in the test — no download — used as is, recorded in
the manifest with its fingerprint, and what train, eval and generate then read."""

import json

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.data.shards import open_shards
from scalinglab.data.tokenizers import load_tokenizer
from scalinglab.data.writer import prepare
from scalinglab.errors import ConfigError

TEXT = "".join(
    f"Line {i}: the quick brown fox jumps over the lazy dog, ünïcödé {i * i}.\n" for i in range(400)
)


def hf_tokenizer(vocab_size: int = 300):
    """A byte-level BPE trained on TEXT, with a post-processor that adds <s> around each
    text (as Llama's does): a corpus must be encoded without it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)  # fmt: skip
    tok.train_from_iterator([TEXT], trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return tok


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


def test_a_tokenizer_json_is_used_as_is_and_fingerprinted(tmp_path, corpus):
    hf = hf_tokenizer()
    tj = tmp_path / "mine.json"
    hf.save(str(tj))
    m = prepare([str(corpus)], tmp_path / "shards", tokenizer=str(tj), block_size=16)
    assert m["tokenizer"] == "bpe" and m["vocab_size"] == hf.get_vocab_size() == 300
    assert m["pretrained_tokenizer"]["path"] == str(tj)
    # the fingerprint is the sha256 of the tokenizer.json the shards hold (tokenizer_id)
    assert m["pretrained_tokenizer"]["sha256"] == m["sha256"]["tokenizer.json"]
    s = open_shards(tmp_path / "shards")
    ids = np.concatenate([s.train, s.val]).astype(np.int64)
    assert hf.token_to_id("<s>") not in set(ids.tolist())  # no BOS inside the corpus
    tok = load_tokenizer(tmp_path / "shards")  # what train, eval and generate read
    train_text, val_text = tok.decode(s.train), tok.decode(s.val)
    assert train_text + val_text == TEXT and len(val_text) > 1000  # 10% held out, lossless
    # each split holds the ids HF gives its text (the writer's chunks cut at line ends)
    for split, text in ((s.train, train_text), (s.val, val_text)):
        assert split.tolist() == hf.encode(text, add_special_tokens=False).ids
    # unchanged: up to date; another tokenizer at the same path: rebuilt
    assert prepare([str(corpus)], tmp_path / "shards", tokenizer=str(tj), block_size=16)[
        "up_to_date"
    ]
    hf_tokenizer(280).save(str(tj))
    m2 = prepare([str(corpus)], tmp_path / "shards", tokenizer=str(tj), block_size=16)
    assert not m2["up_to_date"] and m2["vocab_size"] == 280
    assert m2["pretrained_tokenizer"]["sha256"] != m["pretrained_tokenizer"]["sha256"]


def test_a_saved_transformers_folder_trains_evaluates_and_generates(tmp_path, corpus, capsys):
    transformers = pytest.importorskip("transformers", reason="the [hf] extra is not installed")
    folder = tmp_path / "tok"
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=hf_tokenizer())
    fast.save_pretrained(str(folder))
    assert main(["prepare", str(corpus), "--tokenizer", str(folder), "-o",
                 str(tmp_path / "shards"), "--block-size", "16", "--json"]) == 0  # fmt: skip
    m = json.loads(capsys.readouterr().out)
    assert m["vocab_size"] == 300 and m["pretrained_tokenizer"]["path"] == str(folder)
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "shards"), "--out", str(run), "--n-layer",
                 "1", "--n-embd", "32", "--n-head", "2", "--block-size", "16", "--steps",
                 "30", "--lr", "3e-3", "--eval-tokens", "256", "--json"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert "vocab_size = 300" in (run / "config.toml").read_text()  # from the shards
    assert load_tokenizer(run).decode([5, 17, 40]) == fast.decode([5, 17, 40])  # its copy
    assert main(["eval", str(run), "--json", "--eval-tokens", "256"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["loss"] == result["val_loss"] and ev["loss"] < np.log(300)  # it learned something
    assert main(["generate", str(run), "--prompt", "Line 7:", "--temperature", "0",
                 "--max-new-tokens", "8", "--json"]) == 0  # fmt: skip
    g = json.loads(capsys.readouterr().out)
    assert g["text"].startswith("Line 7:") and g["new_tokens"] == 8
    assert fast.decode(fast.encode("Line 7:", add_special_tokens=False)) == "Line 7:"


def test_a_folder_transformers_converts_vocab_and_merges(tmp_path, corpus):
    transformers = pytest.importorskip("transformers", reason="the [hf] extra is not installed")
    folder = tmp_path / "gpt2-style"
    folder.mkdir()
    hf = hf_tokenizer()
    hf.model.save(str(folder))  # vocab.json + merges.txt, as GPT-2's slow files
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer"}))
    assert not (folder / "tokenizer.json").exists()
    m = prepare([str(corpus)], tmp_path / "shards", tokenizer=str(folder), block_size=16)
    ref = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    s = open_shards(tmp_path / "shards")
    assert m["vocab_size"] == len(ref)
    assert s.train[:50].tolist() == ref(TEXT[:2000], add_special_tokens=False)["input_ids"][:50]


def test_bad_tokenizer_arguments_are_one_line_errors(tmp_path, corpus, capsys):
    with pytest.raises(
        ConfigError,
        match=r"^tokenizer 'bpee' is not one of byte, char, word, bpe, nor a tokenizer\.json",
    ):
        prepare([str(corpus)], tmp_path / "s", tokenizer="bpee")
    tj = tmp_path / "t.json"
    hf_tokenizer().save(str(tj))
    assert main(["prepare", str(corpus), "-o", str(tmp_path / "s"), "--tokenizer", str(tj),
                 "--vocab-size", "100"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "--vocab-size 100: the pretrained tokenizer" in err and err.count("\n") == 1
    (tmp_path / "junk.json").write_text("{}")
    assert main(["prepare", str(corpus), "-o", str(tmp_path / "s"),
                 "--tokenizer", str(tmp_path / "junk.json")]) == 2  # fmt: skip
    assert "not a tokenizer file" in capsys.readouterr().err


def test_a_study_prepares_its_corpus_with_a_pretrained_tokenizer(tmp_path, corpus):
    import tomllib

    from scalinglab.study.builtin import QUICKSTART_TOML
    from scalinglab.study.run import prepare_data
    from scalinglab.study.spec import parse_study

    tj = tmp_path / "mine.json"
    hf_tokenizer().save(str(tj))
    d = tomllib.loads(QUICKSTART_TOML)
    d["data"] = {"sources": [str(corpus)], "tokenizer": str(tj), "block_size": 16}
    shards, what = prepare_data(parse_study(d, "test"), tmp_path / "cache")
    assert shards.parent == tmp_path / "cache"  # one folder, not a path below the cache
    assert shards.name.startswith("corpus.txt-mine.json-") and str(tj) in what
    assert open_shards(shards).vocab_size == 300


def test_a_pretrained_tokenizer_splits_by_its_own_kind(tmp_path):
    # 10% of the bytes from the end falls inside a line: a pretrained BPE (multi-character
    # tokens) cuts at the next line start, as --tokenizer bpe does; a pretrained char
    # tokenizer keeps nanoGPT's character cut
    f = tmp_path / "t.txt"
    f.write_text("".join(f"line {i} holds some longer words\n" for i in range(300)))
    data, n = f.read_bytes(), len(f.read_bytes())
    assert data[int(n * 0.9) - 1 : int(n * 0.9)] != b"\n"  # the raw point is mid-line
    b = prepare([str(f)], tmp_path / "b", tokenizer="bpe", vocab_size=300, block_size=8)
    pb = prepare([str(f)], tmp_path / "pb", tokenizer=str(tmp_path / "b/tokenizer.json"),
                 block_size=8)  # fmt: skip
    cut = pb["splits"]["train"]["bytes"]
    assert cut == b["splits"]["train"]["bytes"] > int(n * 0.9)
    assert data[cut - 1 : cut] == b"\n"
    c = prepare([str(f)], tmp_path / "c", tokenizer="char", block_size=8)
    pc = prepare([str(f)], tmp_path / "pc", tokenizer=str(tmp_path / "c/tokenizer.json"),
                 block_size=8)  # fmt: skip
    assert pc["splits"]["train"]["bytes"] == c["splits"]["train"]["bytes"] == int(n * 0.9)


def start_marking_tokenizer(form: str):
    """A pretrained-style BPE that marks the start of every text it encodes: SentencePiece's
    Metaspace prepend ('▁', as Llama 2's newer conversions), the older Llama form (a
    Prepend normalizer), or GPT-2's ByteLevel with add_prefix_space. Its merges never
    cross a newline, so a document cut after a newline encodes to the same tokens."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    if form == "bytelevel":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        alphabet = sorted(set(TEXT) | {"▁"})
        if form == "metaspace":
            tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
        else:  # legacy llama: no pre-tokenizer, '▁' prepended and spaces replaced
            tok.normalizer = normalizers.Sequence(
                [normalizers.Prepend("▁"), normalizers.Replace(Regex(" "), "▁")]
            )
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(TEXT.split("\n"), trainer=trainer)
    return tok


@pytest.mark.parametrize("form", ["metaspace", "prepend", "bytelevel"])
def test_a_start_of_text_mark_only_at_a_documents_start(tmp_path, form):
    """A document of 170 KB is encoded in 64 KiB pieces: the tokens are the whole
    document's as the tokenizer encodes it, with its start mark ('▁', a prefix space) at
    the document's start only, not at each cut (WRITER_VERSION 4)."""
    hf = start_marking_tokenizer(form)
    tj = tmp_path / "tok.json"
    hf.save(str(tj))
    doc = "".join(f"Case {i}: {TEXT[i % 7000 : i % 7000 + 300]}\n" for i in range(600))
    assert len(doc.encode()) > 2 * (1 << 16)
    (tmp_path / "doc.txt").write_text(doc, encoding="utf-8")
    (tmp_path / "val.txt").write_text(TEXT[:3000], encoding="utf-8")
    prepare([str(tmp_path / "doc.txt")], tmp_path / "shards", tokenizer=str(tj),
            val_file=str(tmp_path / "val.txt"), block_size=16)  # fmt: skip
    s = open_shards(tmp_path / "shards")
    whole = hf.encode(doc, add_special_tokens=False).ids
    assert s.train.tolist() == whole
    assert s.val.tolist() == hf.encode(TEXT[:3000], add_special_tokens=False).ids
