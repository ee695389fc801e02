"""Task evaluation speed of a quickstart-sized model, in items per second, and what
scoring the built-in tasks adds to a quickstart.

A GPT of the quickstart's backtest shape (2 layers, width 80, 10 heads, block 128, byte
vocabulary; random weights: speed does not care) scores the three built-in tasks made
from a byte-level shards folder (the quickstart's `stdlib` shards by default) at their
default item counts, as `scalinglab eval --tasks builtin` does. Printed per task: items,
the sequences actually run (items that share a context start share one forward pass),
the tokens run, items per second (wall and CPU seconds: on a loaded machine the CPU
seconds say more), and the loss evaluation of as many tokens timed in the same process
(a ratio that holds under load). With `--rounds R` the scoring and the loss evaluation
alternate R times and the median of each is printed. The loss evaluation reads at most
the whole validation split (the quickstart's holds about 435k tokens, fewer than the
three tasks' 0.9M), so its time is divided by the tokens it predicted: a first version
divided by the tokens asked for and printed a ratio of 2.1 where the costs per token
are equal.

With `--quickstart DIR` (a finished quickstart), the cost inside it, in FLOPs, which no
load changes: each run's scoring costs a forward pass over the tokens run (a third of
its training FLOPs per token, result.json's flops_per_token / 3), beside the FLOPs
that trained it; the share of the study's compute, and that share of its wall time.
With `--score-runs N` as well, every run of it is scored for real (its final
checkpoint, `evaluate_run(..., record=False)` with the study's batch size, one thread:
nothing is written) on the first N items of each task, and its CPU seconds are scaled
to the full items by the tokens run: what `[tasks]` adds to the quickstart, measured.

    python benchmarks/task_throughput.py [--data SHARDS] [--threads 1] [--rounds 3]
                                         [--quickstart DIR [--score-runs 400]]
"""

import argparse
import glob
import json
import os
import statistics
import time
from pathlib import Path

import torch

from scalinglab.config import ModelConfig
from scalinglab.data.shards import open_shards
from scalinglab.data.tokenizers import ByteTokenizer
from scalinglab.models.registry import build_model
from scalinglab.report.collect import collect
from scalinglab.tasks.builtin import BUILTIN, N_ITEMS, builtin_task
from scalinglab.tasks.score import encode_pair, score_task, shared_hosts
from scalinglab.train.evaluate import evaluate


def tokens_run(task, tok, block_size: int) -> tuple[int, int]:
    """(sequences, tokens) the scorer runs for a task: one per shared host."""
    seqs = [(a + b)[-(block_size + 1) :] for it in task.items
            for a, b in (encode_pair(tok, it.context, c) for c in it.choices)]  # fmt: skip
    hosts = set(shared_hosts([tuple(s[:-1]) for s in seqs]))
    return len(hosts), sum(len(seqs[h]) - 1 for h in hosts)


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    found = sorted(glob.glob(os.path.expanduser("~/.cache/scalinglab/stdlib-byte-*")))
    ap.add_argument("--data", default=found[0] if found else None, help="byte-level shards")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--items", type=int, default=N_ITEMS)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=1, help="alternate scoring and loss R times")
    ap.add_argument("--quickstart", help="a finished quickstart folder: the cost inside it")
    ap.add_argument("--score-runs", type=int, default=0, metavar="N",
                    help="with --quickstart: score each of its runs on N items per task")  # fmt: skip
    a = ap.parse_args()
    if a.data is None:
        ap.error("no stdlib shards in ~/.cache/scalinglab: run the quickstart, or give --data")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = ModelConfig(arch="gpt", n_layer=2, n_head=10, n_embd=80, block_size=128)
    model = build_model(cfg, 256).eval()
    tok = ByteTokenizer()
    print(f"GPT 2x80 (block 128), {a.threads} thread(s), batch {a.batch}, {a.data}:")
    tasks = [builtin_task(name, a.data, a.items) for name in BUILTIN]
    runs = [tokens_run(task, tok, cfg.block_size) for task in tasks]
    total_tokens = sum(n_tok for _, n_tok in runs)
    val = open_shards(a.data).val
    for task in tasks:
        score_task(model, tok, task, cfg.block_size, a.batch)  # warm-up
    times = {task.name: [] for task in tasks}
    loss_times, n_loss = [], []
    for _ in range(a.rounds):
        for task in tasks:
            times[task.name].append(
                timed(lambda t=task: score_task(model, tok, t, cfg.block_size, a.batch))
            )
        # evaluate reads at most the split (the quickstart's holds about 435k tokens): the
        # tokens it predicted, its second value, are what its time is divided by
        loss_times.append(
            timed(lambda: n_loss.append(
                evaluate(model, val, cfg.block_size, a.batch, total_tokens)[1]))
        )  # fmt: skip

    def med(pairs):
        return tuple(statistics.median(x) for x in zip(*pairs, strict=True))

    wall = cpu = 0.0
    for task, (n_seq, n_tok) in zip(tasks, runs, strict=True):
        w, c = med(times[task.name])
        wall, cpu = wall + w, cpu + c
        pairs = sum(len(it.choices) for it in task.items)
        print(f"  {task.name:10s} {len(task.items):5d} items  {pairs:5d} choices -> {n_seq:5d} "
              f"sequences, {n_tok:7d} tokens  {len(task.items) / w:6.0f} items/s "
              f"({len(task.items) / c:6.0f} per CPU s)")  # fmt: skip
    lw, lc = med(loss_times)
    n_items = sum(len(t.items) for t in tasks)
    print(f"  all three: {n_items} items, {total_tokens} tokens in {wall:.2f} s ({cpu:.2f} CPU s; "
          f"median of {a.rounds}), {n_items / cpu:.0f} items and {total_tokens / cpu:.0f} tokens "
          f"per CPU s; the loss evaluation: {n_loss[0]} tokens (what the split holds, at most "
          f"as many) in {lw:.2f} s ({lc:.2f} CPU s), {n_loss[0] / lc:.0f} tokens per CPU s: "
          f"tasks / loss per token x{(cpu / total_tokens) / (lc / n_loss[0]):.2f}")  # fmt: skip
    if a.quickstart:
        qs = Path(a.quickstart)
        rows = [r for r in collect(qs).rows if r["status"] == "completed"]
        train = score = 0.0
        for r in rows:
            res = json.loads((Path(r["dir"]) / "result.json").read_text())
            train += res["flops"]
            score += res["flops_per_token"] / 3 * total_tokens
        summ = json.loads((qs / "summary.json").read_text())
        secs = summ.get("wall_seconds") or 0.0
        print(f"  {qs}: {len(rows)} runs trained with {train:.3g} FLOPs; scoring each on "
              f"the three tasks: {score:.3g} FLOPs, {100 * score / train:.1f}% of it "
              f"(~{score / train * secs:.0f} s of the study's {secs:.0f} s wall time)")  # fmt: skip
        if a.score_runs:
            score_runs(rows, tasks, a.data, a.score_runs, tok, cfg.block_size)
    return 0


def score_runs(rows, tasks, data, n, tok, block: int) -> None:
    """Score every run on n items a task (nothing written); CPU seconds scaled to all."""
    from scalinglab.tasks.run import evaluate_run
    from scalinglab.train.evaluate import load_trained

    few = [builtin_task(t.name, data, n) for t in tasks]
    scale = sum(tokens_run(t, tok, block)[1] for t in tasks) / sum(
        tokens_run(t, tok, block)[1] for t in few
    )
    total = 0.0
    print(f"  every run scored on {n} items a task (x{scale:.2f} the tokens for all items):")
    for r in sorted(rows, key=lambda r: r["params"]):
        _, c = timed(lambda d=r["dir"]: evaluate_run(d, few, batch_size=32, record=False))
        _, load = timed(lambda d=r["dir"]: load_trained(d, "cpu"))  # once, whatever the items
        full = load + max(c - load, 0.0) * scale
        total += full
        print(f"    {r['run_id']:32s} {r['params']:7d} params  {c:6.2f} CPU s (loading "
              f"{load:.2f}) -> {full:6.1f} CPU s for all items")  # fmt: skip
    print(f"  {len(rows)} runs: {total:.0f} CPU s to score the three tasks at their full "
          f"item counts ({total / 60:.1f} CPU min; at most that in wall time on an idle "
          f"machine, one thread)")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
