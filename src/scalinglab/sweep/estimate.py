"""Time estimates for a sweep plan, from a quick measured throughput.

The smallest and the largest shape of the plan each take a few real training
steps (forward, backward, fused AdamW, in the dtype `--dtype` resolves to on
this CPU) at the sweep's batch size and thread count;
a line through the two, seconds per step = a + b × FLOPs per step, prices every
run. Each run also pays a fixed START_SECONDS (starting Python and torch,
opening the shards) — a stated estimate, not a measurement; evaluation time is
not counted.
"""

import time

import torch

from scalinglab.models.registry import build_model
from scalinglab.sweep.design import PlannedRun
from scalinglab.train.setup import autocast, pick_dtype

START_SECONDS = 3.0
STEPS = 3


def _seconds_per_step(run: PlannedRun, threads: int) -> float:
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        m, t = run.config.model, run.config.train
        model = build_model(m, m.vocab_size)
        opt = torch.optim.AdamW(model.parameters(), lr=t.lr, fused=True)  # as the trainer's
        rows = t.batch_size * m.block_size
        cast = autocast("cpu", pick_dtype(t.dtype, "cpu", m, rows, max(1, threads)))
        x = torch.randint(0, m.vocab_size, (t.batch_size, m.block_size))
        times = []
        for _ in range(STEPS + 1):  # the first step warms up allocators and kernels
            t0 = time.perf_counter()
            with cast():
                loss = model(x, x)[1]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - t0)
        return t.grad_accum * min(times[1:])
    finally:
        torch.set_num_threads(old)


def estimate_seconds(runs: list[PlannedRun], threads: int) -> dict[str, float]:
    """Estimated wall seconds of each run (by name)."""
    if not runs:
        return {}

    def fps(r: PlannedRun) -> float:  # model FLOPs of one optimizer step
        return r.counts.flops_per_token * r.tokens / r.steps

    lo, hi = min(runs, key=fps), max(runs, key=fps)
    t_lo = _seconds_per_step(lo, threads)
    t_hi = _seconds_per_step(hi, threads) if fps(hi) > fps(lo) else t_lo
    b = max(0.0, (t_hi - t_lo) / (fps(hi) - fps(lo))) if fps(hi) > fps(lo) else 0.0
    a = max(0.0, t_lo - b * fps(lo))
    return {r.name: START_SECONDS + r.steps * (a + b * fps(r)) for r in runs}
