"""An external trainer in plain PyTorch (it does not import scalinglab), for the
bring-your-own-trainer contract of docs/interfaces.md.

It reads the token shards itself (train.bin / val.bin, flat little-endian integers
whose dtype manifest.json names), trains a small causal Transformer of the shape it
is given for the given number of tokens, and leaves in --out what the contract asks:
result.json (status, val_loss, params, tokens, flops) and a metrics.jsonl curve.
"""

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn


class TinyLM(nn.Module):
    def __init__(self, vocab, n_layer, n_embd, n_head, block):
        super().__init__()
        self.tok = nn.Embedding(vocab, n_embd)
        self.pos = nn.Embedding(block, n_embd)
        layer = nn.TransformerEncoderLayer(
            n_embd, n_head, 4 * n_embd, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, n_layer, enable_nested_tensor=False)
        self.head = nn.Linear(n_embd, vocab)

    def forward(self, x):  # x: (B, T) token ids -> (B, T, vocab) logits
        T = x.shape[1]
        h = self.tok(x) + self.pos(torch.arange(T))
        mask = nn.Transformer.generate_square_subsequent_mask(T)
        return self.head(self.blocks(h, mask=mask, is_causal=True))


def batches(data, block, batch, rng):
    starts = rng.integers(0, len(data) - block - 1, batch)
    x = np.stack([data[s : s + block] for s in starts])
    y = np.stack([data[s + 1 : s + block + 1] for s in starts])
    return torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))


def main():
    p = argparse.ArgumentParser()
    for name in ("n-layer", "n-embd", "n-head", "block-size", "batch-size", "tokens", "seed"):
        p.add_argument(f"--{name}", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)
    data = Path(a.data)
    manifest = json.loads((data / "manifest.json").read_text())
    dtype = np.dtype(manifest["dtype"]).newbyteorder("<")
    train = np.fromfile(data / "train.bin", dtype=dtype)
    val = np.fromfile(data / "val.bin", dtype=dtype)
    vocab = int(manifest["vocab_size"])
    model = TinyLM(vocab, a.n_layer, a.n_embd, a.n_head, a.block_size)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    per_step = a.batch_size * a.block_size
    steps = max(1, a.tokens // per_step)
    rng = np.random.default_rng(a.seed)
    out = Path(a.out)
    t0 = time.time()
    with open(out / "metrics.jsonl", "w") as log:
        for step in range(1, steps + 1):
            lr = a.lr * 0.5 * (1 + math.cos(math.pi * step / steps))  # cosine to 0
            for g in opt.param_groups:
                g["lr"] = lr
            x, y = batches(train, a.block_size, a.batch_size, rng)
            loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 10 == 0 or step == steps:
                row = {"step": step, "tokens": step * per_step, "train_loss": loss.item()}
                log.write(json.dumps(row) + "\n")
    model.eval()
    with torch.no_grad():  # the whole validation split, in non-overlapping windows
        n = (len(val) - 1) // a.block_size
        x = torch.from_numpy(val[: n * a.block_size].astype(np.int64)).view(n, -1)
        y = torch.from_numpy(val[1 : n * a.block_size + 1].astype(np.int64)).view(n, -1)
        val_loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
    tokens = steps * per_step
    result = {
        "status": "completed" if math.isfinite(val_loss) else "diverged",
        "val_loss": val_loss,
        "train_loss": loss.item(),
        "params": n_params,
        "tokens": tokens,
        "flops": 6.0 * n_params * tokens,
        "wall_seconds": time.time() - t0,
        "trainer": "tests/sweep/byo_trainer.py",
    }
    tmp = out / "result.json.tmp"
    tmp.write_text(json.dumps(result))
    os.replace(tmp, out / "result.json")  # atomically: a half-written result never counts


if __name__ == "__main__":
    main()
