"""Time estimates for a sweep plan, from a quick measured throughput.

The smallest and the largest shape of the plan each take a few real training
steps (forward, backward, fused AdamW, in the dtype `--dtype` resolves to on
this CPU) at the sweep's batch size and thread count;
a line through the two, seconds per step = a + b × FLOPs per step, prices every
run. A step's time is the fastest of the steps once they have settled (see
`steady_step_time`): on a loaded machine the first steps on two or more threads
can take 10–20× longer than the rest, which made one plan's estimate 350 minutes
and the next one's 15. Each run also pays a fixed START_SECONDS (starting Python and torch,
opening the shards) — a stated estimate, not a measurement; evaluation time is
not counted. A shape whose training state would pass MAX_TIMED_BYTES is never built: its
step is priced by the line through the shapes timed (`untimed` names them).
"""

import os
import time

import torch

from scalinglab.models.registry import build_model
from scalinglab.sweep.design import PlannedRun
from scalinglab.train.setup import autocast, pick_dtype

START_SECONDS = 3.0
STEPS = 3  # the last STEPS steps within SETTLED × the fastest one: settled
SETTLED = 1.25
MAX_STEPS = 30  # or stop after this many steps, or MAX_SECONDS of stepping
MAX_SECONDS = 5.0
MAX_TIMED_BYTES = 2**30
"""The largest training state of a shape timed here: fp32 weights, gradients and AdamW's
two moments, 16 bytes a parameter (a 1e12-parameter design's would be 16 TB)."""


BUSY_LOAD = 0.5  # the cores other work keeps busy that make a machine busy


def load_now(interval: float = 0.3) -> float | None:
    """How many cores other work keeps busy now: the non-idle share of every core's time
    over `interval` seconds while this process sleeps, times the cores (Linux's
    /proc/stat; None elsewhere). Not the load average, which still counts for a minute
    what just ended (the `pip install` before a first quickstart). Read it before the
    plan's own work (preparing data, measuring steps)."""

    def times():
        with open("/proc/stat", encoding="ascii") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + (v[4] if len(v) > 4 else 0)  # all, idle + iowait

    try:
        total0, idle0 = times()
        time.sleep(interval)
        total1, idle1 = times()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (1 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)


def busy_note(threads: int, load: float | None, cores: int | None = None) -> str:
    """A sentence for a plan's estimate when other work shares the cores (`load`, the cores
    it kept busy before planning, `load_now`, at least BUSY_LOAD) and a run uses 2 or more
    threads: such steps slow several-fold beside it, and the estimate measured them so."""
    cores = cores or os.cpu_count() or 1
    if load is None or threads < 2 or load < BUSY_LOAD:
        return ""
    return (
        f" This machine is busy now (other work kept {load:.1f} of its {cores} cores busy): a run on "
        f"{threads} threads beside other work can take several times its idle time, and "
        "the estimate measured that; OMP_WAIT_POLICY=PASSIVE limits it (docs/performance.md)."
    )


def steady_step_time(step) -> float:
    """The time of one step once steps have settled: `step()` runs one and returns its
    seconds. After one warm-up step (allocators, kernels), steps run until the last
    STEPS of them are each within SETTLED × the fastest so far, or MAX_STEPS / MAX_SECONDS
    run out; the fastest is returned."""
    spent = step()  # warm-up, not counted
    times: list[float] = []
    while True:
        times.append(step())
        spent += times[-1]
        best = min(times)
        if len(times) >= STEPS and max(times[-STEPS:]) <= SETTLED * best:
            return best
        if len(times) >= MAX_STEPS or spent >= MAX_SECONDS:
            return best


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

        def step() -> float:
            t0 = time.perf_counter()
            with cast():
                loss = model(x, x)[1]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return time.perf_counter() - t0

        return t.grad_accum * steady_step_time(step)
    finally:
        torch.set_num_threads(old)


def untimed(runs: list[PlannedRun]) -> list[PlannedRun]:
    """The runs whose shape is too large to time a step of (MAX_TIMED_BYTES)."""
    return [r for r in runs if 16 * r.counts.params > MAX_TIMED_BYTES]


def estimate_seconds(runs: list[PlannedRun], threads: int) -> dict[str, float]:
    """Estimated wall seconds of each run (by name); none when no run's shape is small
    enough to time (`untimed`), a larger shape's from the line through the timed ones."""
    big = {r.name for r in untimed(runs)}
    timed = [r for r in runs if r.name not in big]
    if not timed:
        return {}

    def fps(r: PlannedRun) -> float:  # model FLOPs of one optimizer step
        return r.counts.flops_per_token * r.tokens / r.steps

    lo, hi = min(timed, key=fps), max(timed, key=fps)
    t_lo = _seconds_per_step(lo, threads)
    t_hi = _seconds_per_step(hi, threads) if fps(hi) > fps(lo) else t_lo
    b = max(0.0, (t_hi - t_lo) / (fps(hi) - fps(lo))) if fps(hi) > fps(lo) else 0.0
    if b == 0.0 and big:  # one shape timed: a larger one's step in proportion to its FLOPs
        b = t_lo / fps(lo)
    a = max(0.0, t_lo - b * fps(lo))
    # a seeded run (a WSD branch, a trunk's branch) trains from its seed's step only
    return {
        r.name: START_SECONDS + (r.steps - (r.seed.step if r.seed else 0)) * (a + b * fps(r))
        for r in runs
    }
