"""Causal attention kernels on a CPU, forward and backward, measured side by side.

For a few (batch, heads, T, head size) shapes, in float32 and bfloat16: torch's
`F.scaled_dot_product_attention` with its flash kernel (what the trainer uses in
float32) and with its math backend, scalinglab's explicit attention
(`models/gpt.py explicit_causal_attention`'s batched matmuls with an additive mask, what the
trainer uses in bfloat16 on a CPU), and with `--compile` the same explicit
attention compiled by inductor. Each figure is the median over interleaved rounds
of forward + backward milliseconds; outputs and gradients are checked against
the flash kernel's first.

    python benchmarks/attention_kernels.py [--threads 1] [--rounds 7] [--compile]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from scalinglab.models.gpt import explicit_causal_attention as explicit
from scalinglab.train.malloc import keep_freed_memory

SHAPES = [(8, 7, 128, 8), (8, 11, 128, 8), (16, 4, 256, 32), (8, 6, 256, 64)]


def flash(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def math(q, k, v):
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def _out_and_grads(fn, q, k, v) -> list[torch.Tensor]:
    out = fn(q, k, v)
    return [out, *torch.autograd.grad(out.square().sum(), (q, k, v))]


def check(cands: dict, q, k, v) -> None:
    """Every candidate's output and gradients against float32 flash attention: within
    1e-4 of the largest value in float32, 5% of it in bfloat16."""
    f32 = [x.detach().float().requires_grad_() for x in (q, k, v)]
    ref = _out_and_grads(flash, *f32)
    tol = 1e-4 if q.dtype == torch.float32 else 5e-2
    for name, fn in cands.items():
        for x, y in zip(_out_and_grads(fn, q, k, v), ref, strict=True):
            err = (x.float() - y).abs().max().item() / y.abs().max().item()
            if err > tol:
                raise SystemExit(f"{name} {tuple(q.shape)} {q.dtype}: relative error {err:.2g}")


def fwd_bwd_ms(fn, q, k, v, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        out = fn(q, k, v)
        out.backward(torch.ones_like(out))
    return 1e3 * (time.perf_counter() - t0) / reps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=10, help="calls per candidate per round")
    ap.add_argument("--compile", action="store_true", help="add the explicit path compiled")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    keep_freed_memory()  # as the trainer runs
    cands = {"flash": flash, "math": math, "explicit": explicit}
    if a.compile:
        cands["explicit compiled"] = torch.compile(explicit)
    print(f"forward + backward ms, {a.threads} thread(s), medians of {a.rounds} rounds")
    for dtype in (torch.float32, torch.bfloat16):
        for shape in SHAPES:
            q, k, v = (torch.randn(shape, dtype=dtype, requires_grad=True) for _ in range(3))
            check(cands, q, k, v)  # also warms each candidate up (and compiles it)
            times = {name: [] for name in cands}
            for _ in range(a.rounds):
                for name, fn in cands.items():
                    times[name].append(fwd_bwd_ms(fn, q, k, v, a.reps))
            cells = "  ".join(f"{n} {statistics.median(t):7.3f}" for n, t in times.items())
            print(f"  {str(dtype)[6:]:8s} B,heads,T,hs={shape}: {cells}")


if __name__ == "__main__":
    main()
