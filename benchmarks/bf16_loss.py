"""Does bfloat16 autocast change the loss? The same run in float32 and bfloat16, and the plain
float32 reference loop, after the same number of tokens, scored on the same validation tokens.

GPT 4x128, block 128, batch 16 (2048 rows a micro-batch: `--dtype auto` picks bfloat16 on
a CPU with native bf16), tinyshakespeare as bytes (or any text file given), nanoGPT's
schedule (warmup, cosine to lr/10) in all three.

    python benchmarks/bf16_loss.py [--steps 200] [--text FILE] [--threads 1]
"""

import argparse
import tempfile
import time
from pathlib import Path

import reference_loops as ref
import torch

from scalinglab.config import ModelConfig, RunConfig, TrainConfig
from scalinglab.data.shards import open_shards
from scalinglab.data.writer import prepare
from scalinglab.train.evaluate import evaluate
from scalinglab.train.loop import train

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared/corpora/tinyshakespeare.txt"
MODEL = dict(arch="gpt", n_layer=4, n_head=4, n_embd=128, block_size=128, dropout=0.0)
BATCH, LR, WARMUP, EVAL_TOKENS = 16, 1e-3, 20, 32768


def scalinglab_run(shards: Path, out: Path, dtype: str, steps: int, threads: int) -> dict:
    t = TrainConfig(
        data=str(shards), batch_size=BATCH, steps=steps, lr=LR, warmup=WARMUP, dtype=dtype,
        eval_tokens=EVAL_TOKENS, threads=threads, seed=1337, log_every=steps,
    )  # fmt: skip
    return train(RunConfig(model=ModelConfig(**MODEL), train=t), out)


def reference_run(shards: Path, steps: int) -> float:
    sh = open_shards(shards)
    m = ModelConfig(**MODEL)
    model, step = ref.gpt_loop(
        sh.train, sh.vocab_size, m.n_layer, m.n_head, m.n_embd, m.block_size, BATCH, LR, seed=1337
    )
    for i in range(steps):
        step(ref.lr_at(i, steps, LR, WARMUP))
    model.eval()
    loss, _ = evaluate(model, sh.val, m.block_size, BATCH, EVAL_TOKENS, "cpu")
    return loss


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument(
        "--text", default=str(SHAKESPEARE), help="a text file (default tinyshakespeare)"
    )
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as d:
        shards = Path(d) / "shards"
        prepare(a.text, shards, tokenizer="byte")
        res = {}
        for dtype in ("float32", "bfloat16"):
            t0 = time.perf_counter()
            r = scalinglab_run(shards, Path(d) / dtype, dtype, a.steps, a.threads)
            res[dtype] = (r["val_loss"], time.perf_counter() - t0)
        t0 = time.perf_counter()
        res["reference float32"] = (reference_run(shards, a.steps), time.perf_counter() - t0)
    tokens = a.steps * BATCH * MODEL["block_size"]
    base = res["float32"][0]
    print(f"GPT 4x128 block 128 batch 16, {a.steps} steps = {tokens:,} tokens, val loss on "
          f"the first {EVAL_TOKENS:,} validation tokens:")  # fmt: skip
    for k, (loss, sec) in res.items():
        print(f"  {k:18s} {loss:.4f} nats/token  ({(loss - base) / base:+.2%} vs scalinglab "
              f"float32; {sec:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
