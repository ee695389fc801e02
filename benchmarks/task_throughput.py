"""Task evaluation speed of a quickstart-sized model: items per second, and what
scoring the built-in tasks adds to the quickstart's runs.

A GPT of the quickstart's backtest shape (2 layers, width 80, 10 heads, block 128, byte
vocabulary; random weights: speed does not care) scores the three built-in tasks made
from a byte-level shards folder (the quickstart's `stdlib` shards by default), as
`scalinglab eval --tasks builtin` does. Printed: items and scored sequences per second
per task, and the seconds for all three (200 items each) beside the quickstart's
13-minute wall time.

    python benchmarks/task_throughput.py [--data SHARDS] [--threads 2] [--items 200]
"""

import argparse
import glob
import os
import time

import torch

from scalinglab.config import ModelConfig
from scalinglab.data.shards import open_shards
from scalinglab.data.tokenizers import ByteTokenizer
from scalinglab.models.registry import build_model
from scalinglab.tasks.builtin import BUILTIN, builtin_task
from scalinglab.tasks.score import encode_pair, score_task
from scalinglab.train.evaluate import evaluate

QUICKSTART_RUNS = 24  # 13 GPT + 8 LSTM sweep runs, 2 seed runs, 1 backtest run
QUICKSTART_SECONDS = 13 * 60


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    found = sorted(glob.glob(os.path.expanduser("~/.cache/scalinglab/stdlib-byte-*")))
    ap.add_argument("--data", default=found[0] if found else None, help="byte-level shards")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    if a.data is None:
        ap.error("no stdlib shards in ~/.cache/scalinglab: run the quickstart, or give --data")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = ModelConfig(arch="gpt", n_layer=2, n_head=10, n_embd=80, block_size=128)
    model = build_model(cfg, 256).eval()
    tok = ByteTokenizer()
    total = scored = tokens = 0.0
    print(f"GPT 2x80 (block 128), {a.threads} thread(s), batch {a.batch}, {a.data}:")
    for name in BUILTIN:
        t0 = time.perf_counter()
        task = builtin_task(name, a.data, a.items)
        made = time.perf_counter() - t0
        score_task(model, tok, task, cfg.block_size, a.batch)  # warm-up
        t0 = time.perf_counter()
        score_task(model, tok, task, cfg.block_size, a.batch)
        dt = time.perf_counter() - t0
        seqs = sum(len(it.choices) for it in task.items)
        total += made + dt
        scored += dt
        tokens += sum(
            min(sum(map(len, encode_pair(tok, it.context, c))), cfg.block_size + 1)
            for it in task.items
            for c in it.choices
        )
        print(f"  {name:10s} {len(task.items):4d} items  {len(task.items) / dt:8.0f} items/s  "
              f"{seqs / dt:8.0f} sequences/s  (made in {made:.2f} s)")  # fmt: skip
    # the same model's loss evaluation over as many tokens, timed in this process: a
    # ratio that holds on a loaded machine, where seconds do not
    val = open_shards(a.data).val
    t0 = time.perf_counter()
    evaluate(model, val, cfg.block_size, a.batch, int(tokens))
    loss_dt = time.perf_counter() - t0
    print(f"  {int(tokens)} tokens scored in {scored:.2f} s; the loss evaluation of as many "
          f"tokens: {loss_dt:.2f} s (tasks / loss: x{scored / loss_dt:.2f})")  # fmt: skip
    print(f"  all three: {total:.2f} s a run; x{QUICKSTART_RUNS} runs = "
          f"{total * QUICKSTART_RUNS:.0f} s, {100 * total * QUICKSTART_RUNS / QUICKSTART_SECONDS:.1f}% "
          f"of the quickstart's {QUICKSTART_SECONDS // 60} minutes")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
