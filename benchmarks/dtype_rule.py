"""Where bfloat16 autocast pays on this CPU: the evidence for `--dtype auto`'s CPU rule.

For small GPTs and LSTMs (2 layers, width W) fed R rows (batch x block) per
micro-batch, it times a training step (forward, backward, fused AdamW) in
float32 and under bf16 autocast, side by side in interleaved rounds (medians),
with malloc tuned as the trainer tunes it, and prints the bf16 speed-up next to
what `pick_dtype` chooses for that shape. A rule that fits the machine picks
bf16 where the speed-up is above 1 and float32 where it is below.

    python benchmarks/dtype_rule.py [--threads 1,2] [--widths 32,48,64,96,128]
"""

import argparse
import statistics
import time

import torch

from scalinglab.config import ModelConfig
from scalinglab.models.registry import build_model
from scalinglab.train.malloc import keep_freed_memory
from scalinglab.train.setup import cpu_has_bf16, pick_dtype

BLOCK = 128


def model_cfg(arch: str, width: int) -> ModelConfig:
    if arch == "gpt":
        return ModelConfig(arch="gpt", n_layer=2, n_embd=width, n_head=width // 8, block_size=BLOCK)
    return ModelConfig(arch=arch, n_layer=2, n_embd=width, block_size=BLOCK)


def make_step(cfg: ModelConfig, batch: int, bf16: bool):
    torch.manual_seed(0)
    model = build_model(cfg, 256)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    x = torch.randint(0, 256, (batch, BLOCK))
    state = model.init_state(batch, "cpu") if model.recurrent else None

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(x, x)[1] if state is None else model(x, x, state=state)[1]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def speedup(cfg: ModelConfig, batch: int, rounds: int, reps: int) -> float:
    """float32 step time / bf16 step time, medians of interleaved rounds."""
    steps = {bf16: make_step(cfg, batch, bf16) for bf16 in (False, True)}
    times = {bf16: [] for bf16 in steps}
    for step in steps.values():
        for _ in range(3):
            step()  # warm up: allocator, oneDNN primitive caches
    for _ in range(rounds):
        for bf16, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                step()
            times[bf16].append(time.perf_counter() - t0)
    return statistics.median(times[False]) / statistics.median(times[True])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--widths", default="32,48,64,96,128")
    ap.add_argument("--batches", default="4,8,16", help=f"micro-batches of block {BLOCK}")
    ap.add_argument("--archs", default="gpt,lstm")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=10, help="steps per candidate per round")
    a = ap.parse_args()
    if not cpu_has_bf16():
        print("this CPU has no native bf16 matmuls: --dtype auto is float32 here")
    keep_freed_memory()
    print("bf16 speed-up over float32 (step time ratio); pick: what --dtype auto chooses")
    for threads in map(int, a.threads.split(",")):
        torch.set_num_threads(threads)
        for arch in a.archs.split(","):
            for width in map(int, a.widths.split(",")):
                cfg = model_cfg(arch, width)
                for batch in map(int, a.batches.split(",")):
                    rows = batch * BLOCK
                    s = speedup(cfg, batch, a.rounds, a.reps)
                    pick = pick_dtype("auto", "cpu", cfg, rows, threads)
                    print(
                        f"  threads {threads}  {arch:4s} width {width:4d}  rows {rows:5d}  "
                        f"bf16 x{s:5.2f}  pick {pick}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
