"""Training-step throughput: float32 against bfloat16 autocast, fused against foreach AdamW.

Measured side by side in one process on random tokens, for the shapes of the
tinyshakespeare demo (GPT 4x128, LSTM 2x216, block 64, batch 12). The trainer's
`--dtype auto` picks float32 on CPU because of what this prints there.

    python benchmarks/train_throughput.py [--steps 30] [--threads 1] [--device cpu]
"""

import argparse
import contextlib
import time

import torch

from scalinglab.config import ModelConfig
from scalinglab.models.registry import build_model

SHAPES = {
    "gpt 4x128": ModelConfig(arch="gpt", n_layer=4, n_head=4, n_embd=128, block_size=64),
    "lstm 2x216": ModelConfig(arch="lstm", n_layer=2, n_embd=216, block_size=64),
}


def tokens_per_second(cfg, device, dtype, fused, steps, batch=12) -> float:
    torch.manual_seed(0)
    model = build_model(cfg, 256).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused, foreach=not fused)
    x = torch.randint(0, 256, (batch, cfg.block_size), device=device)
    y = torch.randint(0, 256, (batch, cfg.block_size), device=device)
    cast = (
        (lambda: torch.autocast(device.split(":")[0], dtype=torch.bfloat16))
        if dtype == "bfloat16"
        else contextlib.nullcontext
    )

    def step():
        with cast():
            _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch * cfg.block_size / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for name, cfg in SHAPES.items():
        base = tokens_per_second(cfg, a.device, "float32", True, a.steps)
        bf16 = tokens_per_second(cfg, a.device, "bfloat16", True, a.steps)
        foreach = tokens_per_second(cfg, a.device, "float32", False, a.steps)
        print(
            f"{name:11s} float32+fused {base:8.0f} tok/s | bfloat16/float32 {bf16 / base:5.2f}x"
            f" | foreach/fused AdamW {foreach / base:5.2f}x"
        )


if __name__ == "__main__":
    main()
