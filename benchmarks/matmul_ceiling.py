"""The most FLOP/s a training step can reach here: the time of its matmuls alone.

A step's FLOPs (scalinglab.models.counting) are all matmul FLOPs, so the step can
never go faster than its matmuls would go with everything else (LayerNorm, GELU,
softmax, casts, the optimizer, Python) taking no time. This benchmark measures that
ceiling for each shape:

1. One step of scalinglab's Trainer (forward in the dtype it picks, backward, update)
   run under a dispatch mode that records every matmul torch executes (mm, addmm,
   bmm, baddbmm) and every CPU flash-attention call (forward and backward), with
   their operands' shapes, strides and dtypes. The recorded FLOPs (attention as the
   batched matmuls it stands for, at the full context) are printed beside the FLOP
   counter's: they agree, which checks both.
2. Those ops are replayed alone, on preallocated tensors of the same shapes,
   strides and dtypes, interleaved round by round with the trainer's real step
   (scalinglab's Trainer, as benchmarks/train_throughput.py builds it) and with a
   large matmul for the peak. Medians over rounds.

The flash-attention kernel is replayed whole (its softmax included): no faster
attention exists in torch on a CPU for these shapes, so the ceiling is what the
matmul and attention kernels torch has allow. Where the trainer computes attention
explicitly (bfloat16 on a CPU) the replay is its batched matmuls, softmax free.

It prints, per shape: the ceiling (step FLOPs / replay time) and the trainer
step's GFLOP/s, both as shares of the peak, and the share of the ceiling the
step reaches.

    python benchmarks/matmul_ceiling.py [--threads 2] [--shapes "gpt 6x384,qs 2x56"]
"""

import argparse
import tempfile
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from train_throughput import SHAPES, build_trainer, make_data, matmul_fns, median_rate, timed

from scalinglab.config import ModelConfig
from scalinglab.models.counting import count

aten = torch.ops.aten


def _quickstart(width: int, batch: int = 8) -> tuple[ModelConfig, int, str]:
    """A GPT of the quickstart study: 2 layers, head size 8, block 128, batch 8, float32."""
    cfg = ModelConfig(arch="gpt", n_layer=2, n_head=width // 8, n_embd=width, block_size=128)
    return cfg, batch, "float32"


CEILING_SHAPES = {
    "gpt 4x128": (*SHAPES["gpt 4x128"], "auto"),
    "gpt 6x384": (*SHAPES["gpt 6x384"], "auto"),
    "qs 2x24": _quickstart(24),
    "qs 2x56": _quickstart(56),
    "qs 2x88": _quickstart(88),
    "qs 2x56 batch 32": _quickstart(56, 32),  # would bigger batches (or packed runs) help?
}


def _spec(t: torch.Tensor) -> tuple:
    return tuple(t.shape), tuple(t.stride()), t.dtype


def _like(spec: tuple) -> torch.Tensor:
    """A tensor of the recorded shape, strides (so the same operand layout) and dtype."""
    shape, stride, dtype = spec
    return torch.empty_strided(shape, stride, dtype=dtype).normal_()


class RecordMatmuls(TorchDispatchMode):
    """Records the operands (shape, strides, dtype) of every matmul and CPU flash attention."""

    def __init__(self):
        super().__init__()
        self.ops: list[tuple] = []  # ("mm" | "bmm", a, b) or ("attention", q, k, v, backward)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func.overloadpacket
        if packet in (aten.mm, aten.bmm):
            self.ops.append((packet.__name__, _spec(args[0]), _spec(args[1])))
        elif packet in (aten.addmm, aten.baddbmm):
            self.ops.append((packet.__name__[-3:], _spec(args[1]), _spec(args[2])))
        elif packet is aten._scaled_dot_product_flash_attention_for_cpu:
            self.ops.append(("attention", *map(_spec, args[:3]), False))
        elif packet is aten._scaled_dot_product_flash_attention_for_cpu_backward:
            self.ops.append(("attention", *map(_spec, args[1:4]), True))
        return func(*args, **kwargs)


def record(step) -> list[tuple]:
    """The matmul and attention calls of one call of the trainer's step, as it runs them."""
    with RecordMatmuls() as rec:
        step()
    return rec.ops


def op_flops(op: tuple) -> int:
    """Matmul FLOPs of a recorded op; attention as the batched matmuls it stands for
    (QKᵀ and PV forward; dV, dP, dQ, dK backward) at the full context, as counting.py."""
    if op[0] == "attention":
        b, h, t, hs = op[1][0]
        return (4 if op[4] else 2) * 2 * b * h * t * t * hs
    a, b = op[1][0], op[2][0]
    batch = a[0] if len(a) == 3 else 1
    return 2 * batch * a[-2] * a[-1] * b[-1]


def replay_fn(ops: list[tuple]):
    """fn() running every recorded op once, alone, on preallocated inputs and outputs."""
    flash = aten._scaled_dot_product_flash_attention_for_cpu
    bwd = aten._scaled_dot_product_flash_attention_for_cpu_backward
    calls = []
    for op in ops:
        if op[0] == "attention":
            q, k, v = (_like(s) for s in op[1:4])
            out, lse = flash(q, k, v, 0.0, True)
            if op[4]:
                grad = torch.randn_like(out)
                calls.append(
                    lambda q=q, k=k, v=v, o=out, lse=lse, g=grad: bwd(g, q, k, v, o, lse, 0.0, True)
                )
            else:
                calls.append(lambda q=q, k=k, v=v: flash(q, k, v, 0.0, True))
        else:
            a, b = _like(op[1]), _like(op[2])
            out = torch.empty((*a.shape[:-1], b.shape[-1]), dtype=a.dtype)
            f = torch.bmm if op[0] == "bmm" else torch.mm
            calls.append(lambda f=f, a=a, b=b, out=out: f(a, b, out=out))

    def fn():
        for call in calls:
            call()

    return fn


def bench(name, cfg, batch, dtype_name, shards, tmp, a) -> None:
    cfg = ModelConfig(**{**cfg.__dict__, "vocab_size": cfg.vocab_size or 256})
    tokens = batch * cfg.block_size
    step_flops = count(cfg).flops_per_token * tokens
    step, info = build_trainer(shards, tmp / name, cfg, batch, dtype_name, a.threads)
    ops = record(step)
    rec = sum(map(op_flops, ops))
    mm, mm_flops = matmul_fns()
    peak_key = "torch.mm bfloat16" if info["dtype"] == "bfloat16" else "torch.mm float32 (MKL)"
    fns = {"step": timed(step), "alone": timed(replay_fn(ops)), "peak": mm[peak_key]}
    units = {"step": step_flops, "alone": step_flops, "peak": mm_flops}
    r = {k: v / 1e9 for k, v in median_rate(fns, units, a.seconds, a.rounds).items()}
    print(
        f"\n{name} ({info['dtype']}, batch {batch} x {cfg.block_size}, {a.threads} thread(s)): "
        f"{len(ops)} matmul and attention calls, {rec / 1e9:.3f} GFLOP recorded, {step_flops / 1e9:.3f} counted "
        f"({rec / step_flops:.3f}x)"
    )
    print(f"  peak ({peak_key})     {r['peak']:8.1f} GFLOP/s")
    print(
        f"  ceiling: those alone   {r['alone']:8.1f} GFLOP/s = "
        f"{r['alone'] / r['peak']:6.1%} of the peak"
    )
    print(
        f"  trainer step           {r['step']:8.1f} GFLOP/s = {r['step'] / r['peak']:6.1%} of "
        f"the peak, {r['step'] / r['alone']:6.1%} of the ceiling"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--seconds", type=float, default=1.0, help="time per candidate per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--shapes", default=",".join(CEILING_SHAPES), help="comma-separated subset")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        shards = make_data(tmp)
        for name in a.shapes.split(","):
            bench(name, *CEILING_SHAPES[name], shards, tmp, a)


if __name__ == "__main__":
    main()
