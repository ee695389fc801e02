"""Scoring a model on a task: log-likelihoods of choices, greedy generation, the metrics.

Multiple choice follows lm-evaluation-harness's rules, so the two agree on the same
items (tests/tasks/test_lm_eval.py):

- a context's trailing whitespace moves to the front of the continuation; the pair is
  encoded as a whole, and the continuation's tokens are those after the context's own
  encoding (so a BPE merge across the boundary is the continuation's);
- the model reads the last `block_size` tokens of context + continuation (minus the
  final one) and the log-probabilities of the continuation's tokens are summed;
- `acc`: the choice of the largest sum is right; `acc_norm`: the largest sum divided
  by the choice's length in characters.

`bpb` is the task loss: −log₂ p(right choice) per UTF-8 byte of it, summed over items
and divided by their bytes (lower is better; the first step of the two-step task law).

Generation decodes greedily up to `max_new_tokens` or the first `until` string;
`exact_match` compares the stripped output with the stripped reference, `chrf` is
sacrebleu's corpus chrF (0-100; the [tasks] extra).
"""

import contextlib
import json
import math

import numpy as np
import torch

from scalinglab.errors import ConfigError, DataError, MissingExtraError, require
from scalinglab.tasks.format import Task
from scalinglab.train.generate import sample


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of a piece of text that may go on (a word tokenizer ends no line it did
    not see end)."""
    if tokenizer.kind == "word":
        return [int(i) for i in tokenizer.encode(text, final=False)]
    return [int(i) for i in tokenizer.encode(text)]


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids), split as lm-evaluation-harness splits them."""
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    whole = encode(tokenizer, context + continuation)
    ctx = encode(tokenizer, context)
    if whole[: len(ctx)] == ctx and len(whole) > len(ctx):
        return ctx, whole[len(ctx) :]
    # A BPE merge across the boundary (`'` + `)` -> `')`) would feed part or all of the
    # continuation as context: the context as it encodes alone, the continuation after it
    # (without the start mark some pretrained tokenizers put before each text).
    cont = tokenizer.continuation() if hasattr(tokenizer, "continuation") else tokenizer
    return ctx, encode(cont, continuation)


def shared_hosts(inputs: list[tuple]) -> list[int]:
    """For each input, the index of an input that it is a prefix of (itself if none).

    A causal model's outputs at the positions of a prefix do not depend on what follows
    it, so a pair whose input is a prefix of another's is read from the longer one's
    forward pass: the choices of one token after the same context, and the items of a
    built-in task that share a window, cost one sequence. Sorted, a prefix comes just
    before the inputs that extend it, so one backward walk finds the hosts."""
    order = sorted(range(len(inputs)), key=inputs.__getitem__)
    host = list(range(len(inputs)))
    for a, b in zip(order[-2::-1], order[:0:-1], strict=True):  # a just before b
        x, y = inputs[a], inputs[b]
        if y[: len(x)] == x:
            host[a] = host[b]
    return host


def check_batch_size(batch_size: int) -> None:
    """Refuse a batch size below 1: `range(0, n, batch_size)` would be empty (no pair
    read, every log-likelihood 0) or never end."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size!r}")


def too_long(pairs, block_size: int) -> list[int]:
    """The pairs whose continuation does not fit in one window: its tokens must be read
    whole (a window holding part of it would score a part)."""
    return [i for i, (_, cont) in enumerate(pairs) if len(cont) > block_size]


@torch.no_grad()
def loglikelihoods(
    model,
    pairs: list[tuple[list[int], list[int]]],
    block_size: int,
    batch_size: int = 32,
    device="cpu",
    autocast=contextlib.nullcontext,
) -> np.ndarray:
    """The summed log-probability (nats) of each continuation after its context.

    Each pair reads its last block_size + 1 tokens; a pair whose input is a prefix of
    another's is read from that one's forward pass (shared_hosts). The sequences run
    are sorted by length and right-padded in batches (the padding comes after every
    scored position, so no causal model sees it)."""
    check_batch_size(batch_size)
    seqs = []
    for i, (ctx, cont) in enumerate(pairs):
        if not ctx or not cont:
            raise DataError(f"pair {i}: the context and the continuation need a token each")
        seqs.append((ctx + cont)[-(block_size + 1) :])
    long = too_long(pairs, block_size)
    if long:
        worst = max(long, key=lambda i: len(pairs[i][1]))
        raise DataError(
            f"{len(long)} of {len(pairs)} continuations are longer than the model's block_size "
            f"({block_size}); the longest, pair {worst}'s, is {len(pairs[worst][1])} tokens"
        )
    host = shared_hosts([tuple(s[:-1]) for s in seqs])
    guests: dict[int, list[int]] = {}
    for i, h in enumerate(host):
        guests.setdefault(h, []).append(i)
    out = np.zeros(len(pairs))
    order = sorted(guests, key=lambda i: -len(seqs[i]))
    model.eval()
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = len(seqs[idx[0]]) - 1
        x = np.zeros((len(idx), width), dtype=np.int64)
        # every scored position of the batch at once: (row, position, target, pair)
        at_row, at_pos, target, owner = [], [], [], []
        for r, h in enumerate(idx):
            x[r, : len(seqs[h]) - 1] = seqs[h][:-1]
            for i in guests[h]:
                seq, n = seqs[i], len(pairs[i][1])
                t = len(seq) - 1  # positions t-n .. t-1 predict the continuation's n tokens
                at_row += [r] * n
                at_pos += range(t - n, t)
                target += seq[t - n + 1 :]
                owner += [i] * n
        with autocast():
            logits = model(torch.from_numpy(x).to(device))[0]  # (B, T, V)
        rows = logits[torch.tensor(at_row, device=logits.device),
                      torch.tensor(at_pos, device=logits.device)]  # fmt: skip
        logp = torch.log_softmax(rows.float(), dim=-1)  # only the positions scored
        got = logp.gather(1, torch.tensor(target, device=logp.device)[:, None])[:, 0]
        out += np.bincount(owner, weights=got.double().cpu().numpy(), minlength=len(pairs))
    return out


def check_distinct_choices(task: Task, pairs) -> None:
    """Refuse an item two of whose choices are the same tokens (a tokenizer that maps
    unknown characters to one id): they score the same, and a tie counts as the first."""
    pos = 0
    for k, it in enumerate(task.items):
        first: dict[tuple, int] = {}
        for j in range(len(it.choices)):
            ids = tuple(pairs[pos + j][0] + pairs[pos + j][1])
            if ids in first:
                raise DataError(
                    f"{task.where(k)}: choices {first[ids]} and {j} "
                    f"({json.dumps(it.choices[first[ids]])}, {json.dumps(it.choices[j])}) "
                    "encode to the same tokens under this run's tokenizer; they score the "
                    "same, and a tie counts as the first"
                )
            first[ids] = j
        pos += len(it.choices)


def score_multiple_choice(model, tokenizer, task: Task, block_size: int, **kw) -> dict:
    """acc, acc_norm and bpb of a multiple-choice task (see the module's doc)."""
    pairs, owner = [], []
    for k, it in enumerate(task.items):
        for c in it.choices:
            pairs.append(encode_pair(tokenizer, it.context, c))
            owner.append(k)
    check_distinct_choices(task, pairs)
    long = {owner[i] for i in too_long(pairs, block_size)}
    if long:
        need = max(len(cont) for _, cont in pairs)
        raise DataError(
            f"task {task.name!r}: {len(long)} of {len(task.items)} items have a choice longer "
            f"than the model's block_size ({block_size}); it needs a block_size of at least "
            f"{need} tokens"
        )
    ll = loglikelihoods(model, pairs, block_size, **kw)
    right = right_norm = 0
    nats = nbytes = 0.0
    pos = 0
    for it in task.items:
        scores = ll[pos : pos + len(it.choices)]
        pos += len(it.choices)
        chars = np.array([len(c) for c in it.choices], dtype=float)
        right += int(np.argmax(scores)) == it.gold
        right_norm += int(np.argmax(scores / chars)) == it.gold
        nats -= scores[it.gold]
        # the bytes of what was scored: the choice with the context's trailing whitespace,
        # which encode_pair moves onto it
        moved = it.context[len(it.context.rstrip()) :]
        nbytes += len((moved + it.choices[it.gold]).encode("utf-8"))
    n = len(task.items)
    return {"acc": right / n, "acc_norm": right_norm / n, "bpb": float(nats / math.log(2) / nbytes)}


def generate_greedy(model, tokenizer, prompt: str, until, max_new_tokens: int) -> str:
    """The greedy continuation of `prompt`, cut at the first `until` string."""
    ids = encode(tokenizer, prompt)
    new: list[int] = []
    text = ""
    for tok in sample(model, ids, max_new_tokens, temperature=0.0, seed=0,
                      vocab_size=tokenizer.vocab_size):  # fmt: skip
        new.append(tok)
        text = tokenizer.decode(new)
        cut = min((text.find(u) for u in until if u in text), default=-1)
        if cut >= 0:
            return text[:cut]
    return text


def chrf(outputs: list[str], references: list[str]) -> float | None:
    """sacrebleu's corpus chrF (0-100), or None without sacrebleu."""
    try:
        sacrebleu = require("sacrebleu", "tasks", "chrF")
    except MissingExtraError:
        return None
    return float(sacrebleu.corpus_chrf(outputs, [references]).score)


def score_generation(model, tokenizer, task: Task, max_new_tokens: int = 64) -> dict:
    """exact_match (a fraction) and chrf (0-100; None without sacrebleu) of a generation task."""
    for k, it in enumerate(task.items):  # sample() would blame a --prompt flag
        if not encode(tokenizer, it.prompt):
            raise DataError(f"{task.where(k)}: 'prompt' {it.prompt!r} encodes to no token")
    outs = [
        generate_greedy(model, tokenizer, it.prompt, it.until, max_new_tokens) for it in task.items
    ]
    refs = [it.reference for it in task.items]
    em = sum(o.strip() == r.strip() for o, r in zip(outs, refs, strict=True)) / len(refs)
    return {"exact_match": em, "chrf": chrf(outs, refs), "outputs": outs}


def score_task(
    model,
    tokenizer,
    task: Task,
    block_size: int,
    batch_size: int = 32,
    device="cpu",
    autocast=contextlib.nullcontext,
    max_new_tokens: int = 64,
) -> dict:
    """The task's metrics: {acc, acc_norm, bpb} or {exact_match, chrf, outputs}."""
    check_batch_size(batch_size)
    if task.kind == "multiple_choice":
        return score_multiple_choice(
            model, tokenizer, task, block_size, batch_size=batch_size, device=device,
            autocast=autocast,
        )  # fmt: skip
    return score_generation(model, tokenizer, task, max_new_tokens)
