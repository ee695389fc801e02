import json
import math

import numpy as np
import pytest
import torch

from scalinglab import runfolder
from scalinglab.cli import main
from scalinglab.cli.generate import stream_text
from scalinglab.config import ModelConfig
from scalinglab.models.registry import build_model
from scalinglab.train import malloc, train
from scalinglab.train.evaluate import load_trained, summarize
from scalinglab.train.generate import filter_logits, sample
from tests.train.helpers import tiny_cfg, tiny_shards


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A GPT and an LSTM that have learned the tiny corpus (one sentence, repeated)."""
    tmp = tmp_path_factory.mktemp("runs")
    data = tiny_shards(tmp / "shards")
    out = {}
    for arch in ("gpt", "lstm"):
        torch.set_num_threads(1)
        result = train(tiny_cfg(data, arch, steps=400, lr=3e-2, warmup=10), tmp / arch)
        out[arch] = (tmp / arch, result)
    return out


def test_eval_cli_matches_the_final_evaluation(runs, capsys, monkeypatch):
    run, result = runs["gpt"]
    tuned = []
    monkeypatch.setattr(malloc, "keep_freed_memory", lambda: tuned.append(True))
    assert main(["eval", str(run), "--json", "--eval-tokens", "400"]) == 0
    assert tuned == [True]  # a CPU evaluation keeps freed memory, as training does
    got = json.loads(capsys.readouterr().out)
    assert got["loss"] == result["val_loss"]  # the same windows, the same weights
    assert got["perplexity"] == pytest.approx(math.exp(got["loss"]), rel=1e-12)
    # the test shards hold one byte per token: bits per byte = loss / ln 2
    assert got["bits_per_byte"] == pytest.approx(got["loss"] / math.log(2), rel=1e-12)
    assert got["tokens"] == result["eval_tokens"] and got["step"] == 400


@pytest.mark.parametrize("arch", ["gpt", "lstm"])
def test_greedy_generation_continues_the_corpus(runs, arch):
    model, _, _ = load_trained(runs[arch][0])
    prompt = list(b"a quick brown")
    out = bytes(sample(model, prompt, 30, temperature=0))
    assert out == b" fox jumps over the lazy dog. "


@pytest.mark.parametrize("arch", ["gpt", "lstm"])
def test_sampling_is_reproducible_with_a_seed(runs, arch):
    model, _, _ = load_trained(runs[arch][0])
    a = list(sample(model, [116], 40, temperature=1.5, seed=3))
    b = list(sample(model, [116], 40, temperature=1.5, seed=3))
    c = list(sample(model, [116], 40, temperature=1.5, seed=4))
    assert a == b and a != c and len(a) == 40


def test_generate_cli_streams_text(runs, capsys):
    run, _ = runs["lstm"]
    argv = ["generate", str(run), "--prompt", "over the", "--temperature", "0"]
    assert main([*argv, "--max-new-tokens", "10"]) == 0
    assert capsys.readouterr().out == "over the lazy dog.\n"


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.05, 0.3, 0.15]]))
    k2 = filter_logits(logits, top_k=2)
    assert torch.isinf(k2).tolist() == [[False, True, False, True]]
    # top_p 0.8: 0.5 + 0.3 reach it, so 0.15 and 0.05 are dropped
    p = filter_logits(logits, top_p=0.8)
    assert torch.isinf(p).tolist() == [[False, True, False, True]]
    p = filter_logits(logits, top_p=0.81)
    assert torch.isinf(p).tolist() == [[False, True, False, False]]
    assert torch.equal(filter_logits(logits), logits)


class _Bytes:
    def decode(self, ids):
        return bytes(ids).decode("utf-8", errors="replace")


def test_stream_text_holds_back_split_characters():
    pieces = list(stream_text(_Bytes(), list(b"caf"), iter("é!".encode())))
    assert pieces == ["caf", "é", "!"]
    # a byte-level prompt that ends inside a character: everything generated after it
    # was dropped (the text no longer started with the prompt's trailing U+FFFD)
    pieces = list(stream_text(_Bytes(), list(b"caf\xc3"), iter(b"\xa9 ok")))
    assert "".join(pieces) == "café ok" and pieces[0] == "caf"
    assert "".join(stream_text(_Bytes(), list(b"caf\xc3"), iter(()))) == "caf\ufffd"


def test_word_level_generation_continues_the_prompts_line(tmp_path, capsys):
    # The prompt is encoded without <eos>: "a quick brown" goes on with "fox", not with a
    # new line ("<eos> a quick ..."), as it did when the prompt ended in <eos>.
    from scalinglab.cli.generate import prompt_ids
    from scalinglab.data.tokenizers import load_tokenizer
    from scalinglab.data.writer import prepare

    line = "a quick brown fox jumps over the lazy dog\n"
    corpus, test = tmp_path / "lines.txt", tmp_path / "test.txt"
    corpus.write_text(line * 300)
    val = tmp_path / "val.txt"  # the training text again (a file is given to one split only)
    val.write_text(line * 300)
    test.write_text("the lazy dog jumps over a quick brown fox\n" * 30)
    shards = tmp_path / "shards"
    prepare([str(corpus)], shards, tokenizer="word", block_size=16, val_file=str(val),
            test_file=str(test))  # fmt: skip
    tok = load_tokenizer(shards)
    assert tok.decode(prompt_ids(tok, "a quick brown")) == "a quick brown"
    assert len(prompt_ids(tok, "a quick brown")) == 3
    run = tmp_path / "run"
    result = train(tiny_cfg(shards, "lstm", steps=150, lr=3e-2, warmup=10), run)
    argv = ["generate", str(run), "--prompt", "a quick brown", "--temperature", "0"]
    assert main([*argv, "--max-new-tokens", "6"]) == 0
    assert capsys.readouterr().out.split()[:6] == ["a", "quick", "brown", "fox", "jumps", "over"]

    # eval --split: val is the training text (learned), test the same words in another order
    got = {}
    for split in ("val", "test"):
        assert main(["eval", str(run), "--split", split, "--json", "--eval-tokens", "400"]) == 0
        got[split] = json.loads(capsys.readouterr().out)
        assert got[split]["split"] == split
    assert got["val"]["loss"] == result["val_loss"]
    assert got["test"]["tokens"] > 200 and got["test"]["loss"] > got["val"]["loss"] + 1.0
    prepare([str(corpus)], tmp_path / "novt", tokenizer="word", block_size=16)
    assert main(["eval", str(run), "--split", "test", "--data", str(tmp_path / "novt")]) != 0
    err = capsys.readouterr().err
    assert err == (
        f"error: shards folder {tmp_path / 'novt'} has no test split (it has train, val) "
        "(`prepare --val-file FILE --test-file FILE` makes one)\n"
    )


def test_a_padded_vocabulary_never_samples_an_id_without_a_token(tmp_path, capsys):
    data = tiny_shards(tmp_path / "shards")  # byte shards: 256 tokens
    torch.set_num_threads(1)
    train(tiny_cfg(data, steps=3, vocab_size=4096), tmp_path / "run")
    model, _, _ = load_trained(tmp_path / "run")
    ids = list(sample(model, [116], 300, temperature=1.0, seed=0, vocab_size=256))
    assert len(ids) == 300 and max(ids) < 256
    argv = ["generate", str(tmp_path / "run"), "--prompt", "a", "--max-new-tokens", "300"]
    assert main([*argv, "--seed", "1"]) == 0  # it stopped at "token id 2603 is out of range"
    out = capsys.readouterr()
    assert out.err == "" and len(out.out) > 100  # 300 bytes, some in multi-byte characters


@pytest.mark.parametrize(
    "flag, message", [("--top-k=-1", "--top-k must be >= 0, got -1"),
                      ("--top-p=0", "--top-p must be in (0, 1], got 0.0")],
)  # fmt: skip
def test_sampling_flags_are_checked_before_anything_is_printed(runs, capsys, flag, message):
    assert main(["generate", str(runs["gpt"][0]), "--prompt", "ROMEO:", flag]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == f"error: {message}\n"


# Known answers for mutations of train/generate.py that every test passed (a mutation audit):
# each fails on its mutation.
def test_top_p_drops_a_token_once_those_above_it_exactly_reach_top_p():
    """Kills G2 (`>= top_p` -> `> top_p` in filter_logits). Four equal logits give
    probabilities of exactly 1/4 each; with top_p = 1/2 the two tokens ranked first reach
    1/2 exactly, so the smallest set with probability >= 1/2 has 2 tokens: 2 are kept."""
    out = filter_logits(torch.zeros(1, 4, dtype=torch.float64), top_p=0.5)
    assert int(torch.isfinite(out).sum()) == 2


def test_recurrent_sampling_feeds_only_the_new_token():
    """Kills G5 (`feed = nxt` -> `feed = idx`: an RNN re-reads the whole sequence on
    top of its carried state). Known answer: greedy ids from re-running the untrained
    LSTM from its initial state over the whole prefix at every step."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch="lstm", n_layer=1, n_embd=32, n_head=2, block_size=16)
    model = build_model(cfg, vocab_size=256).eval()
    with torch.no_grad():  # large weights: the untrained model's argmax depends on its input
        for p in model.parameters():
            p.normal_(0.0, 1.0)
    prompt = [97, 98, 99]
    got = list(sample(model, prompt, 12, temperature=0))
    idx, want = list(prompt), []
    with torch.no_grad():
        for _ in range(12):
            x = torch.tensor([idx])
            logits, _, _ = model(x, state=model.init_state(1, x.device))
            nxt = int(logits[0, -1].float().argmax())
            want.append(nxt)
            idx.append(nxt)
    assert got == want and len(set(want)) > 3  # a non-constant known answer


def test_perplexity_is_e_to_the_loss_for_a_large_vocabulary_loss():
    """A freshly initialised model over a 50k-token vocabulary has a loss near ln 50257 ~ 10.8;
    its perplexity is e**loss, a finite number, not infinity (only a loss past float range is)."""
    for loss in (0.5, 5.5, 10.8, 50.0, 600.0):
        assert summarize(loss, None)["perplexity"] == pytest.approx(math.exp(loss), rel=1e-12)
    assert summarize(800.0, None)["perplexity"] == math.inf


def test_recurrent_evaluation_carries_the_state_across_windows():
    """One lane cut into ten windows of 16 scores the same 160 tokens as one window of 160:
    the state at each window's start is the one the previous window ended with."""
    import torch

    from scalinglab.train.evaluate import evaluate

    torch.manual_seed(0)
    model = build_model(
        ModelConfig(arch="lstm", n_layer=1, n_embd=32, block_size=16, vocab_size=64)
    )
    tokens = np.random.default_rng(0).integers(0, 64, 161).astype(np.uint16)
    short, n_short = evaluate(model, tokens, 16, 1)
    whole, n_whole = evaluate(model, tokens, 160, 1)
    assert n_short == n_whole == 160
    assert short == pytest.approx(whole, rel=1e-5)


def test_a_tokenizer_with_one_id_more_than_the_model_reads_is_refused(tmp_path):
    """A byte tokenizer has 256 ids: a model of vocab_size 255 has no row for id 255."""
    from scalinglab.config import ModelConfig, RunConfig, TrainConfig
    from scalinglab.errors import DataError
    from scalinglab.train.evaluate import load_run_tokenizer

    (tmp_path / runfolder.TOKENIZER).write_text(json.dumps({"kind": "byte"}))

    def cfg(v):
        return RunConfig(
            model=ModelConfig(vocab_size=v), train=TrainConfig(data=str(tmp_path / "x"))
        )

    assert load_run_tokenizer(tmp_path, cfg(256)).vocab_size == 256
    with pytest.raises(
        DataError, match="a byte tokenizer of 256 ids, and the run's model reads 255"
    ):
        load_run_tokenizer(tmp_path, cfg(255))
