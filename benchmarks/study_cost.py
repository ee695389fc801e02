"""The quickstart study's wall time and its average achieved FLOP/s over the whole study.

Runs `scalinglab quickstart --out DIR` (or analyses an existing study or sweep folder
with `--existing DIR`), then adds up the training FLOPs of every run folder under DIR
(result.json `flops`: scalinglab.models.counting's count × tokens) and divides by the
study's wall time. The float32 and bfloat16 matmul peaks are measured in the same
process, with one thread and with every core, so the ratio has a ceiling measured
on the same machine at the same time.

    python benchmarks/study_cost.py [--minutes 10] [--workers 2] [--out DIR]
    python benchmarks/study_cost.py --existing runs/quickstart      # no training
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from train_throughput import matmul_peaks, peaks_of


def study_flops(folder: Path) -> tuple[float, float, float, int]:
    """(training FLOPs, summed training seconds, summed trainer wall seconds, runs) of
    every result.json under folder. A run's wall counts from the trainer's start: its
    steps, evaluations, checkpoints and setup, not its process start."""
    flops = seconds = wall = 0.0
    n = 0
    for p in folder.rglob("result.json"):
        r = json.loads(p.read_text())
        if r.get("flops"):
            flops += r["flops"]
            seconds += r.get("train_seconds") or 0.0
            wall += r.get("wall_seconds") or 0.0
            n += 1
    return flops, seconds, wall, n


def peaks() -> dict:
    out = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        pk = peaks_of(matmul_peaks(0.5, 3))
        out[threads] = (pk["f32"] * 1e9, pk["bf16"] * 1e9)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=None, help="scale the quickstart's budgets")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out", default=None, help="study folder (default: a temp folder)")
    ap.add_argument("--existing", default=None, help="analyse this finished study; train nothing")
    a = ap.parse_args()
    pk = peaks()
    with tempfile.TemporaryDirectory() as d:
        if a.existing:  # the study's own wall time, as study.json records it
            folder = Path(a.existing)
            meta = folder / "study.json"
            wall = json.loads(meta.read_text()).get("wall_seconds") if meta.exists() else None
        else:
            folder = Path(a.out or Path(d) / "quickstart")
            cmd = [sys.executable, "-m", "scalinglab", "quickstart", "--out", str(folder)]
            cmd += ["--minutes", str(a.minutes)] if a.minutes else []
            cmd += ["--workers", str(a.workers)] if a.workers else []
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t0
        flops, train_s, run_wall, n = study_flops(folder)
        meta = folder / "study.json"  # the workers the study ran with
        spec = json.loads(meta.read_text()).get("spec", {}) if meta.exists() else {}
        workers = a.workers or spec.get("workers", 1)
    cores = os.cpu_count() or 1
    print(f"{folder}: {n} runs, {flops:.3e} training FLOPs")
    for threads, (f32, bf16) in pk.items():
        print(
            f"  matmul peak, {threads} thread(s): float32 {f32 / 1e9:.1f}, bf16 {bf16 / 1e9:.1f} GFLOP/s"
        )
    f32_all, bf16_all = pk[max(pk)]
    if wall:
        rate = flops / wall
        print(
            f"  wall {wall:.0f} s; average {rate / 1e9:.2f} GFLOP/s = {rate / f32_all:.1%} of the "
            f"float32 peak on {cores} cores ({rate / bf16_all:.1%} of bf16)"
        )
    if wall and train_s:
        slots = wall * workers
        print(
            f"  where the workers' {slots:.0f} s went: training steps {train_s / slots:.1%}, "
            f"the trainers' evaluations, checkpoints and setup {(run_wall - train_s) / slots:.1%}, "
            f"the rest (process starts, idle workers, fits, report) {1 - run_wall / slots:.1%}"
        )
    if train_s:
        per = flops / train_s
        print(
            f"  inside training steps: {per / 1e9:.2f} GFLOP/s per run process = "
            f"{per / pk[1][0]:.1%} of the one-thread float32 peak"
        )


if __name__ == "__main__":
    main()
