"""Evaluation throughput with the system's malloc and with freed memory kept (`scalinglab eval`).

A GPT (random weights; speed does not care) scores random tokens with
`scalinglab.train.evaluate.evaluate`, as `scalinglab eval` does, in two processes
of their own: one with glibc's defaults (SCALINGLAB_MALLOC=system), one tuned as
`scalinglab eval` tunes a CPU run. Rounds are interleaved; medians are printed.

    python benchmarks/eval_throughput.py [--vocab 50304] [--threads 2] [--tokens 100000]
"""

import argparse
import os

import numpy as np
import torch
from train_throughput import InProcess, median_rate

from scalinglab.config import ModelConfig
from scalinglab.models.registry import build_model
from scalinglab.train.evaluate import evaluate
from scalinglab.train.malloc import keep_freed_memory


def build_eval(malloc: str, vocab: int, tokens: int, batch: int):
    os.environ["SCALINGLAB_MALLOC"] = malloc  # this worker process only
    keep_freed_memory()
    torch.manual_seed(0)
    cfg = ModelConfig(arch="gpt", n_layer=4, n_head=4, n_embd=128, block_size=256)
    model = build_model(cfg, vocab)
    val = np.random.default_rng(0).integers(0, vocab, size=tokens).astype(np.uint32)
    return lambda: evaluate(model, val, cfg.block_size, batch), {}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=50304)
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    fns = {
        m: InProcess(a.threads, build_eval, m, a.vocab, a.tokens, a.batch)
        for m in ("system", "tuned")
    }
    rates = median_rate(fns, dict.fromkeys(fns, a.tokens), 1.0, a.rounds)
    for fn in fns.values():
        fn.close()
    print(f"GPT 4x128, vocabulary {a.vocab}, batch {a.batch} x 256, {a.threads} thread(s):")
    for m, r in rates.items():
        print(f"  malloc {m:6s} {r:9.0f} tokens/s")
    print(f"  tuned / system: x{rates['tuned'] / rates['system']:.2f}")


if __name__ == "__main__":
    main()
