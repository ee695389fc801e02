"""Scoring: exact log-likelihoods of a model with known probabilities, the batched scorer
against one-item-at-a-time sums, and a tiny trained run on the task files of examples/."""

import json
import math
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest
import torch

from scalinglab import runfolder
from scalinglab.data.tokenizers import ByteTokenizer, CharTokenizer
from scalinglab.errors import ConfigError, DataError
from scalinglab.tasks.format import Item, Task, read_task
from scalinglab.tasks.run import evaluate_run, resolve_tasks
from scalinglab.tasks.score import (
    chrf,
    encode_pair,
    generate_greedy,
    loglikelihoods,
    score_task,
    shared_hosts,
)
from tests.export.runs import trained_runs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tasks"


class Bigram(torch.nn.Module):
    """p(next byte | byte) from a fixed table: log-likelihoods known in closed form."""

    recurrent = False

    def __init__(self, logp):
        super().__init__()
        self.logp = torch.nn.Parameter(logp, requires_grad=False)
        self.block_size = 8

    def forward(self, idx, targets=None):
        return self.logp[idx], None


def bigram_table():
    g = torch.Generator().manual_seed(0)
    return torch.log_softmax(torch.randn(256, 256, generator=g), dim=-1)


def test_loglikelihoods_are_the_sums_of_the_known_log_probabilities():
    logp = bigram_table()
    model = Bigram(logp)
    tok = ByteTokenizer()
    pairs = [encode_pair(tok, "the cat", " sat"), encode_pair(tok, "a", "b"),
             encode_pair(tok, "0123456789", "xyz")]  # fmt: skip
    got = loglikelihoods(model, pairs, block_size=8, batch_size=2)
    for (ctx, cont), ll in zip(pairs, got, strict=True):
        seq = ctx + cont
        want = sum(logp[seq[i - 1], seq[i]].item() for i in range(len(ctx), len(seq)))
        assert ll == pytest.approx(want, abs=1e-5)
    # the trailing space of a context moves to the continuation, as lm-evaluation-harness does
    assert encode_pair(tok, "the cat ", "sat") == encode_pair(tok, "the cat", " sat")


def test_accuracy_and_normalised_accuracy_pick_by_sum_and_by_sum_per_character():
    logp = torch.full((256, 256), math.log(1e-6))
    for (a, b), p in ("ab", 0.3), ("ax", 0.3), ("bb", 0.35), ("bc", 0.3):
        logp[ord(a), ord(b)] = math.log(p)  # p(b|a) = p(x|a) ~ 0.5, p(b|b) ~ 0.54
    model = Bigram(torch.log_softmax(logp, dim=-1))
    # "bbb" has the larger total only per character (ln 0.5 + 2 ln 0.54 = -1.93 against
    # ln 0.5 = -0.69; per character -0.64 > -0.69): acc picks "x", acc_norm picks "bbb"
    item = Item(context="a", choices=("x", "bbb"), gold=1)
    out = score_task(model, ByteTokenizer(), Task("t", "multiple_choice", [item]), block_size=8)
    assert out["acc"] == 0.0 and out["acc_norm"] == 1.0
    lp = torch.log_softmax(logp, dim=-1)
    nats = -(lp[ord("a"), ord("b")] + 2 * lp[ord("b"), ord("b")]).item()
    want_bpb = nats / math.log(2) / 3
    assert out["bpb"] == pytest.approx(want_bpb, rel=1e-5)
    assert Task("t", "multiple_choice", [item]).chance == 0.5


def test_bpb_counts_the_bytes_of_what_was_scored_with_the_moved_whitespace():
    """A context's trailing whitespace is scored with the choice; bpb summed the bits of
    both but divided by the choice's bytes alone (4.9% high on recall, 2.7% on next-line,
    where the contexts end in a space or newline). Both are counted now, known exactly
    from a bigram table."""
    logp = bigram_table()
    model = Bigram(logp)
    item = Item(context="import ", choices=("sys", "re"), gold=0)
    out = score_task(model, ByteTokenizer(), Task("t", "multiple_choice", [item]), block_size=8)
    seq = [ord(c) for c in "import sys"]
    nats = -sum(logp[seq[i - 1], seq[i]].item() for i in range(6, 10))  # " sys"
    assert out["bpb"] == pytest.approx(nats / math.log(2) / 4, rel=1e-5)


def test_a_version_1_tasks_json_is_read_without_its_bpb(tmp_path):
    """Version 1's bpb divided by the choice's bytes alone: another number than version
    2's, so it is not shown beside them; its accuracies are read as they are."""
    old = {"task": "qa", "step": 10, "sha256": "x", "acc": 0.5, "acc_norm": 0.6, "bpb": 4.3}
    (tmp_path / "tasks.json").write_text(json.dumps({"format_version": 1, "results": [old]}))
    (got,) = runfolder.read_tasks(tmp_path)
    assert "bpb" not in got and got["acc"] == 0.5 and got["acc_norm"] == 0.6
    new = {**old, "task": "other", "bpb": 3.1}
    runfolder.record_tasks(tmp_path, [new])
    d = json.loads((tmp_path / "tasks.json").read_text())
    assert d["format_version"] == 2
    by_task = {r["task"]: r for r in runfolder.read_tasks(tmp_path)}
    assert "bpb" not in by_task["qa"] and by_task["other"]["bpb"] == 3.1
    (tmp_path / "tasks.json").write_text(json.dumps({"format_version": 3, "results": [old]}))
    with pytest.raises(DataError, match="format_version 3; this scalinglab reads 2"):
        runfolder.read_tasks(tmp_path)


def test_a_continuation_longer_than_the_window_is_refused():
    with pytest.raises(DataError, match="longer than the model's block_size"):
        loglikelihoods(Bigram(bigram_table()), [([1], list(range(9)))], block_size=8)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_a_batch_size_below_one_is_refused(batch_size):
    """range(0, n, -1) is empty: every log-likelihood was 0, a silently wrong score."""
    item = Item(context="a", choices=("x", "y"), gold=1)
    with pytest.raises(ConfigError, match=f"batch_size must be >= 1, got {batch_size}"):
        score_task(Bigram(bigram_table()), ByteTokenizer(), Task("t", "multiple_choice", [item]),
                   block_size=8, batch_size=batch_size)  # fmt: skip
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        loglikelihoods(Bigram(bigram_table()), [([1], [2])], block_size=8, batch_size=batch_size)


def test_choices_of_the_same_tokens_are_refused_naming_the_file_line_or_item(tmp_path):
    """A char tokenizer maps unseen characters to one id: " }" and " ]" were one sequence,
    scored as a tie, and a tie counts as the first choice (acc 1.0 with gold 0)."""
    tok = CharTokenizer(list("ab )"))
    path = tmp_path / "t.jsonl"
    path.write_text('{"context":"a","choices":[" )"," b"],"gold":0}\n\n'
                    '{"context":"a","choices":[" )"," }"," ]"],"gold":0}\n')  # fmt: skip
    model = Bigram(bigram_table())
    with pytest.raises(DataError) as exc:
        score_task(model, tok, read_task(path), block_size=8)
    assert str(exc.value) == (
        f'{path}:3: choices 1 and 2 (" }}", " ]") encode to the same tokens under this '
        "run's tokenizer; they score the same, and a tie counts as the first"
    )
    items = [Item(context="a", choices=(" b", " )"), gold=0),
             Item(context="a", choices=(" ]", " }"), gold=1)]  # fmt: skip
    with pytest.raises(DataError, match=r"^task 'brackets' item 1: choices 0 and 1 "):
        score_task(model, tok, Task("brackets", "multiple_choice", items), block_size=8)


def test_shared_hosts_reads_each_prefix_from_the_longest_input_that_extends_it():
    inputs = [(1, 2), (1, 2, 3), (1,), (1, 3), (2,), (1, 2, 3), (1, 2, 3, 4)]
    host = shared_hosts(inputs)
    for i, h in enumerate(host):  # each host extends its guest and is its own host
        assert inputs[h][: len(inputs[i])] == inputs[i] and host[h] == h
    assert len(set(host)) == 3  # (1, 2, 3, 4), (1, 3), (2,)
    assert shared_hosts([]) == [] and shared_hosts([(5,)]) == [0]


class Counting(torch.nn.Module):
    """A model's forward passes, counted in sequences read."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, idx, targets=None):
        self.rows += len(idx)
        return self.model(idx, targets)


def test_shared_prefixes_give_the_log_likelihoods_of_sequences_scored_alone():
    from scalinglab.config import ModelConfig
    from scalinglab.models.registry import build_model

    torch.manual_seed(0)  # a GPT with learned positions: a shifted window would differ
    gpt = build_model(ModelConfig(arch="gpt", n_layer=1, n_head=2, n_embd=16, block_size=32), 256)
    model, tok = Counting(gpt.eval()), ByteTokenizer()
    text = "def f(x): return [x]"
    pairs = [encode_pair(tok, text[:k], c) for k in (6, 9, 17) for c in (")", "]", "}")]
    pairs += [encode_pair(tok, text[:10], text[10:16]), encode_pair(tok, text[:10], " yield")]
    got = loglikelihoods(model, pairs, block_size=32, batch_size=3)
    assert model.rows == 2  # "def f(x): return " (read by 10 pairs) and "def f(x):  yiel"
    for (ctx, cont), ll in zip(pairs, got, strict=True):
        x = torch.tensor([(ctx + cont)[:-1]])
        with torch.no_grad():
            lp = torch.log_softmax(gpt(x)[0], -1)[0]
        want = sum(lp[len(ctx) + j - 1, t].item() for j, t in enumerate(cont))
        assert ll == pytest.approx(want, abs=1e-5)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_runs(tmp_path_factory.mktemp("tasks"), gpt={})["gpt"]


def one_at_a_time(model, tok, task, block_size):
    """acc of a task scored item by item, choice by choice, with no batching or padding."""
    right = 0
    for it in task.items:
        lls = []
        for c in it.choices:
            ctx, cont = encode_pair(tok, it.context, c)
            seq = (ctx + cont)[-(block_size + 1) :]
            x = torch.tensor([seq[:-1]])
            with torch.no_grad():
                lp = torch.log_softmax(model(x)[0].float(), -1)[0]
            lls.append(sum(lp[i - 1, seq[i]].item() for i in range(len(seq) - len(cont), len(seq))))
        right += int(np.argmax(lls)) == it.gold
    return right / len(task.items)


def test_a_trained_run_knows_its_sentence_and_writes_tasks_json(run, tmp_path):
    fox = tmp_path / "fox.jsonl"
    items = [
        {"context": "a quick brown", "choices": [" cat", " fox", " dog"], "gold": 1},
        {"context": "jumps over the", "choices": [" lazy", " quick"], "gold": 0},
        {"context": "the lazy", "choices": [" fox", " dog", " cat"], "gold": 1},
    ]
    fox.write_text("".join(json.dumps(i) + "\n" for i in items))
    gen = tmp_path / "continue.jsonl"
    gen.write_text(json.dumps({"prompt": "a quick brown", "reference": " fox jumps over",
                               "until": [" the"]}) + "\n")  # fmt: skip
    out = evaluate_run(run, resolve_tasks([str(fox), str(gen)], None))
    by = {r["task"]: r for r in out}
    assert by["fox"]["acc"] == 1.0 and by["fox"]["n"] == 3
    assert by["continue"]["outputs"] == [" fox jumps over"]
    assert by["continue"]["exact_match"] == 1.0
    if by["continue"]["chrf"] is not None:  # sacrebleu, the [tasks] extra
        assert by["continue"]["chrf"] == pytest.approx(100.0)
    recorded = runfolder.final_tasks(run)
    assert recorded["fox"]["acc"] == 1.0 and recorded["fox"]["step"] == by["fox"]["step"]
    assert "outputs" not in recorded["continue"]
    assert recorded["fox"]["tokens"] > 0


@pytest.mark.parametrize("name", ["sentiment", "qa"])
def test_the_example_task_files_score_as_item_by_item_scoring_does(run, name):
    from scalinglab.train.evaluate import load_trained

    model, cfg, _ = load_trained(run)
    task = read_task(EXAMPLES / f"{name}.jsonl")
    got = score_task(model, ByteTokenizer(), task, cfg.model.block_size, batch_size=3)
    assert got["acc"] == one_at_a_time(model, ByteTokenizer(), task, cfg.model.block_size)
    assert len(task.items) == 8 and task.chance == (0.5 if name == "sentiment" else 0.25)


def test_the_translation_example_runs_end_to_end(run):
    r = evaluate_run(run, resolve_tasks([str(EXAMPLES / "translation.jsonl")], None), record=False)
    assert r[0]["n"] == 8 and len(r[0]["outputs"]) == 8
    # a model of one English sentence knows no French: no exact match
    assert r[0]["exact_match"] == 0.0


def test_a_bpe_merge_across_the_boundary_leaves_the_choice_whole():
    """`'` and `)` merge into one BPE token: split as the joint encoding splits, the
    continuation `)` was empty (the built-in brackets task was refused on a BPE run) and a
    longer choice lost its head into the context. The context is now its own encoding
    and the continuation is encoded after it."""
    from scalinglab.data.tokenizers import train_tokenizer
    from scalinglab.tasks.score import encode_pair

    tok = train_tokenizer("bpe", ["print(x, 'abc')\n" * 200 + "self._skip = 1\n" * 200], 300)
    for context, choice in (("print(x, 'abc'", ")"), ("a = self.", "_skip")):
        whole = tok.encode(context + choice).tolist()
        ctx = tok.encode(context).tolist()
        assert whole[: len(ctx)] != ctx  # the merge is there
        got_ctx, got_cont = encode_pair(tok, context, choice)
        assert got_ctx == ctx and tok.decode(got_cont) == choice


def test_a_prompt_that_encodes_to_no_token_names_its_line(tmp_path):
    """Under a word tokenizer a whitespace prompt is no token: the error blamed a --prompt
    flag that `eval` does not have."""
    from scalinglab.data.tokenizers import train_tokenizer
    from scalinglab.tasks.score import score_generation

    path = tmp_path / "gen.jsonl"
    path.write_text('{"prompt": "a b", "reference": "b"}\n{"prompt": "   ", "reference": "x"}\n')
    tok = train_tokenizer("word", ["a b a b\n"])
    with pytest.raises(DataError) as exc:
        score_generation(None, tok, read_task(path))
    assert str(exc.value) == f"{path}:2: 'prompt' '   ' encodes to no token"


# Known answers for mutations of tasks/format.py that every test passed (a mutation audit):
# each fails on its mutation.
def test_a_multiple_choice_item_needs_two_choices():
    """Kills F3 (`< 1`): one choice is always right, and its chance would be 1."""
    from scalinglab.errors import DataError
    from scalinglab.tasks.format import parse_item

    with pytest.raises(DataError, match="at least 2 strings"):
        parse_item({"context": "a", "choices": [" b"], "gold": 0}, "t.jsonl:1")
    assert parse_item({"context": "a", "choices": [" b", " c"], "gold": 1}, "t.jsonl:1")[0] == (
        "multiple_choice"
    )


def test_a_generation_items_default_until_is_not_written_and_not_in_its_identity():
    """Kills F4 (`until` always written): a task's sha256 of items made in memory is that of
    its JSONL objects, {"prompt", "reference"} where until is the default newline."""
    import hashlib

    from scalinglab.tasks.format import Item, item_dict, items_sha256

    it = Item(prompt="2+2=", reference="4")
    assert item_dict(it) == {"prompt": "2+2=", "reference": "4"}
    line = json.dumps({"prompt": "2+2=", "reference": "4"}, sort_keys=True).encode() + b"\n"
    assert items_sha256([it]) == hashlib.sha256(line).hexdigest()
    assert item_dict(Item(prompt="a", reference="b", until=(".",)))["until"] == ["."]


def test_a_run_missing_one_of_the_studys_tasks_is_scored_again(monkeypatch, tmp_path):
    """Kills ST4 (`all` -> `any`): a run scored on task a but not on b (b added to [tasks]
    later) is scored; a run scored on both is not."""
    from scalinglab.study import tasks as st

    monkeypatch.setattr(st, "builtin_task", lambda n, *a: NS(name=n, sha256=f"sha-{n}"))
    rows = [{"status": "completed", "arch": "gpt", "dir": "one"},
            {"status": "completed", "arch": "gpt", "dir": "both"}]  # fmt: skip
    monkeypatch.setattr(st, "collect", lambda out: NS(rows=rows))
    done = {"one": {"a": {}}, "both": {"a": {}, "b": {}}}
    monkeypatch.setattr(st.runfolder, "final_tasks", lambda d, items: done[d])
    scored = []
    monkeypatch.setattr(st, "evaluate_run", lambda d, tasks: scored.append(d))
    study = NS(tasks=NS(names=["a", "b"], items=10, seed=0))
    assert st.score_runs(study, tmp_path, tmp_path) == 1
    assert scored == ["one"]


def test_a_diverged_run_is_not_a_point_of_the_accuracy_sigmoid(tmp_path):
    """Kills ST5 (status filter dropped): a diverged run with a loss and a score is left
    out of the loss-to-accuracy fit: 6 runs, not 7."""
    from scalinglab.study.tasks import predict_tasks

    rows = []
    pts = [(3.0, 0.30, "completed"), (2.8, 0.38, "completed"), (2.6, 0.50, "completed"),
           (2.4, 0.62, "completed"), (2.2, 0.72, "completed"), (2.0, 0.78, "completed"),
           (9.0, 0.25, "diverged")]  # fmt: skip
    for i, (loss, acc, status) in enumerate(pts):
        d = tmp_path / "runs" / f"r{i}"
        d.mkdir(parents=True)
        runfolder.record_tasks(d, [{"task": "recall", "sha256": "s", "n": 1000, "step": 100,
                                    "acc": acc, "chance": 0.25}])  # fmt: skip
        rows.append({"dir": str(d), "arch": "gpt", "status": status, "loss": loss,
                     "recall.acc": acc})  # fmt: skip
    study = NS(tasks=NS(names=["recall"]), fit=NS(chance=None, bootstrap=0, seed=0, ci_level=0.95))
    out = predict_tasks(study, rows, "gpt", 1.9, None)["recall"]
    assert out["runs"] == 6 and out["fit_loss_range"] == [2.0, 3.0]


def _table(pairs, floor=1e-6):
    logp = torch.full((256, 256), math.log(floor))
    for (a, b), p in pairs.items():
        logp[a, b] = math.log(p)
    return torch.log_softmax(logp, dim=-1)


def test_acc_norm_divides_by_characters_not_utf8_bytes():
    """lm-evaluation-harness's acc_norm is the sum per character. 'é' is 1 character
    but 2 UTF-8 bytes, as many as 'xy': per byte 'é' wins, per character 'xy'."""
    e1, e2 = "é".encode()  # 0xC3 0xA9
    lp = _table({(ord("a"), e1): 0.45, (e1, e2): 0.99, (ord("a"), ord("x")): 0.5,
                 (ord("x"), ord("y")): 0.74, (ord("x"), ord("q")): 0.26})  # fmt: skip
    model = Bigram(lp)
    item = Item(context="a", choices=("xy", "é"), gold=0)
    ll_e = (lp[ord("a"), e1] + lp[e1, e2]).item()  # closed form: about -0.80
    ll_xy = (lp[ord("a"), ord("x")] + lp[ord("x"), ord("y")]).item()  # about -0.99
    assert ll_xy / 2 > ll_e / 1 and ll_e / 2 > ll_xy / 2  # per char: xy; per byte: é
    out = score_task(model, ByteTokenizer(), Task("t", "multiple_choice", [item]), block_size=8)
    assert out["acc"] == 0.0 and out["acc_norm"] == 1.0


def test_generation_stops_at_the_first_until_string():
    """the output is cut where the earliest `until` string starts. Two of them can
    complete on one token ("Q:" and ":" both end at the ':'); the cut is at "Q:"."""
    text = "abQ:cd"
    lp = _table({(a, b): 0.99 for a, b in zip(text.encode(), text[1:].encode(), strict=False)})
    model = Bigram(lp)
    got = generate_greedy(model, ByteTokenizer(), "a", (":", "Q:"), max_new_tokens=5)
    assert got == "b"  # the continuation "bQ:cd" cut before "Q:", not before ":" ("bQ")


def test_chrf_takes_outputs_as_hypotheses():
    """chrF is asymmetric (beta=2 weighs recall): the outputs are the hypotheses."""
    sacrebleu = pytest.importorskip("sacrebleu")
    outs, refs = ["the cat"], ["the cat sat on the mat"]
    want = sacrebleu.metrics.CHRF().corpus_score(outs, [refs]).score
    assert chrf(outs, refs) == pytest.approx(want)
    assert want != pytest.approx(sacrebleu.metrics.CHRF().corpus_score(refs, [outs]).score)


def test_a_choice_of_exactly_block_size_tokens_is_scored_whole():
    """a continuation of block_size tokens fits in one window (the context's last token
    and its block_size tokens): it is scored, not refused."""
    g = torch.Generator().manual_seed(0)
    lp = torch.log_softmax(torch.randn(256, 256, generator=g), dim=-1)
    model = Bigram(lp)  # block_size 8
    cont = "12345678"
    item = Item(context="a", choices=(cont, "z"), gold=0)
    out = score_task(model, ByteTokenizer(), Task("t", "multiple_choice", [item]), block_size=8)
    seq = b"a" + cont.encode()
    nats = -sum(lp[seq[i - 1], seq[i]].item() for i in range(1, len(seq)))
    assert out["bpb"] == pytest.approx(nats / math.log(2) / 8, rel=1e-5)


def test_only_a_contexts_trailing_whitespace_moves_to_the_continuation():
    tok = ByteTokenizer()
    assert encode_pair(tok, "  the cat ", "sat") == (list(b"  the cat"), list(b" sat"))


def test_generation_cuts_at_an_until_string_that_appears_when_another_never_does():
    text = "abQ:cd"
    lp = _table({(a, b): 0.99 for a, b in zip(text.encode(), text[1:].encode(), strict=False)})
    got = generate_greedy(Bigram(lp), ByteTokenizer(), "a", ("\n", "Q:"), max_new_tokens=5)
    assert got == "b"


def test_loglikelihoods_refuse_an_empty_context():
    with pytest.raises(DataError, match="need a token each"):
        loglikelihoods(Bigram(torch.zeros(256, 256)), [([], [97, 98])], block_size=8)


def test_a_tie_between_choices_counts_as_the_first_choice():
    model = Bigram(torch.zeros(256, 256))  # uniform: every choice of one byte ties
    items = [Item(context="a", choices=("x", "y"), gold=0)]
    out = score_task(model, ByteTokenizer(), Task("t", "multiple_choice", items), block_size=8)
    assert out["acc"] == 1.0 and out["acc_norm"] == 1.0
