"""Our own loss curves under 7 LR schedules: fit the curve laws on 3, predict the other 4.

    .venv/bin/python benchmarks/own_curves.py [--steps 1500] [--out curves.csv]
    .venv/bin/python benchmarks/own_curves.py --curves curves.csv --fit-from 0 200 400

A tiny GPT and a tiny LSTM (scalinglab.models) are trained on the built-in
corpus (the Python standard library's source, byte tokens) under the
schedules below, written in scalinglab's schedule syntax (S = --steps, peak
P, final P/10, warmup 50): cosine, constant, a step drop to P/4 at 60%,
WSD with a linear and with a 1−sqrt decay over the last 20%, linear, and a
cosine 3× longer. Every run of a seed sees the same batches in the same order
(`--seeds`: each seed its own data order and initialisation; the curves of a
schedule's seeds are averaged step by step before the fit, which removes the
wiggles that one data order prints on every schedule) and is evaluated on
the same 512 held-out windows (16k tokens) every 25 steps after the warmup
(the curve the laws are fitted to). The loop is this file's own (plain AdamW with
the LR set each step from the schedule): the trainer's schedules are only
cosine, constant and WSD.

Fit on cosine, constant and step drop (as Luo et al. fit cosine, constant and
a two-stage drop); predict the 4 others. Printed: per law and model, each
held-out curve's mean and max |relative error|, and their means (Luo et al.'s
PredE and WorstE).

On a machine with many cores or a GPU, `--jobs J` trains each (model,
schedule, seed) run in its own process, J at a time, the longest first, and
`--device cuda` puts them on the GPU; `--corpus-file F` reads the corpus from
a file of bytes (written here with `--write-corpus F`), so that a machine with
another Python trains on the same text:

    .venv/bin/python benchmarks/own_curves.py --write-corpus corpus.bin
    python benchmarks/own_curves.py --corpus-file corpus.bin --device cuda --jobs 16 \
        --archs gpt --seeds 0 1 2 3 --steps 6000 --warmup 150 --eval-every 50 --out gpt.csv
"""

import argparse
import csv
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from scalinglab.config import ModelConfig
from scalinglab.data.sources import stdlib_files
from scalinglab.laws import ScalingLaw
from scalinglab.laws.curves import CurveTable, Run
from scalinglab.laws.schedules import Schedule
from scalinglab.models.registry import build_model

BLOCK, BATCH, EVAL_EVERY, WARMUP = 32, 16, 25, 50
EVAL_WINDOWS = 512  # 16k held-out tokens (16 windows, 512 tokens, made the curves too noisy)
FIT = ("cosine", "constant", "drop")


def schedules(S, P):
    f, w = P / 10, f"warmup({WARMUP}, {P})"
    body = S - WARMUP
    dec = round(0.2 * S)
    return {
        "cosine": f"{w} + cosine({body}, {f})",
        "constant": f"{w} + constant({body})",
        "drop": f"{w} + constant({round(0.6 * S) - WARMUP}) + drop({S - round(0.6 * S)}, {P / 4})",
        "wsd_linear": f"{w} + constant({body - dec}) + linear({dec}, {f})",
        "wsd_sqrt": f"{w} + constant({body - dec}) + sqrt({dec}, {f})",
        "linear": f"{w} + linear({body}, {f})",
        "cosine_3x": f"{w} + cosine({3 * S - WARMUP}, {f})",
    }


def corpus_bytes(n_bytes=3_000_000, path=None):
    """The first n_bytes of the built-in corpus (this Python's standard library, in
    the prepared corpus's file order), or of the file `path`."""
    if path is not None:
        with open(path, "rb") as f:
            return f.read(n_bytes)
    _, files = stdlib_files()
    buf = bytearray()
    for p in files:
        buf += p.read_bytes()
        if len(buf) >= n_bytes:
            break
    return bytes(buf[:n_bytes])


def corpus(n_bytes=3_000_000, path=None, more=0):
    """(train, validation): the first 95% of the first n_bytes and the rest; `more` bytes
    of the corpus after those n_bytes appended to the training split (the validation
    windows unchanged: runs long enough to repeat the 2.85M training bytes need not)."""
    raw = corpus_bytes(n_bytes + more, path)
    if more and len(raw) < n_bytes + more:
        raise SystemExit(f"--more-train-bytes {more}: the corpus has {len(raw) - n_bytes} after "
                         f"the first {n_bytes}")  # fmt: skip
    data = torch.tensor(np.frombuffer(raw, dtype=np.uint8).astype(np.int64))
    cut = int(0.95 * n_bytes)
    return torch.cat([data[:cut], data[n_bytes:]]), data[cut:n_bytes]


def windows(data, idx):
    """Windows starting at idx, and their next-token targets: one gather, so that a
    step on a GPU is not 2 × BATCH copies."""
    rows = torch.as_tensor(idx, device=data.device)[:, None] + torch.arange(
        BLOCK + 1, device=data.device
    )
    w = data[rows]
    return w[:, :-1], w[:, 1:]


def train(arch, lr, train_data, val_x, val_y, seed=0, weight_decay=0.1):
    """Loss on the held-out windows every EVAL_EVERY steps: (steps, losses)."""
    device = train_data.device
    torch.manual_seed(seed)
    if arch == "gpt":
        cfg = ModelConfig(
            arch="gpt", n_layer=2, n_embd=48, n_head=4, block_size=BLOCK, vocab_size=256
        )
    else:
        cfg = ModelConfig(arch="lstm", n_layer=1, n_embd=64, block_size=BLOCK, vocab_size=256)
    model = build_model(cfg, 256).to(device)
    opt = torch.optim.AdamW(
        model.parameters(), lr=float(lr[0]), betas=(0.9, 0.95), weight_decay=weight_decay,
        fused=device.type == "cuda",
    )  # fmt: skip
    rng = np.random.default_rng(seed)  # the same batches, in the same order, for every schedule
    steps, losses = [], []
    for step in range(len(lr)):
        for g in opt.param_groups:
            g["lr"] = float(lr[step])
        x, y = windows(train_data, rng.integers(0, len(train_data) - BLOCK - 1, BATCH))
        _, loss = model(x, y)[:2]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % EVAL_EVERY == 0 and step >= WARMUP:  # the laws start after warmup
            with torch.no_grad():
                steps.append(step)
                losses.append(float(model(val_x, val_y)[1]))
    return np.array(steps), np.array(losses)


def checkpoint_noise(loss):
    """Relative noise of a curve's checkpoints from its second differences (for white
    noise of sd s, var(L[i-1] - 2 L[i] + L[i+1]) = 6 s^2), over its last two thirds."""
    d2 = np.diff(loss[len(loss) // 3 - 1 :], 2)
    return float(np.sqrt(np.mean(d2**2) / 6) / np.mean(loss[len(loss) // 3 :]))


def report(arch, runs, fit_from=0, huber_delta=None, start=0):
    """Fit both laws on the FIT runs (their points from step fit_from on), print the
    held-out curves' errors (all their points). `start`: every curve, fitted or held
    out, begins at this step (the early transient left out of both)."""
    fit_runs = []
    for r in runs:
        keep = r.steps >= (start if r.held_out else max(start, fit_from))
        fit_runs.append(Run(r.run_id, r.steps[keep], r.lr[keep], r.loss[keep],
                            held_out=r.held_out, lr_full=r.lr_full))  # fmt: skip
    noise = "  ".join(f"{r.run_id} {100 * checkpoint_noise(r.loss):.2f}" for r in runs)
    print(f"{arch} checkpoint noise %: {noise}", flush=True)
    for law in ("multi-power", "lr-annealing"):
        fit = ScalingLaw(law, bootstrap=0, huber_delta=huber_delta).fit(CurveTable(fit_runs))
        bt = fit.backtest_
        per = "  ".join(
            f"{p['run']} {100 * p['mean_abs_rel_error']:.2f}/{100 * p['max_abs_rel_error']:.2f}"
            for p in bt["per_run"]
        )
        print(f"{arch} {law:<13} PredE {100 * bt['mean_of_run_means']:.3f}%  "
              f"WorstE {100 * bt['mean_of_run_maxes']:.3f}%   {per}", flush=True)  # fmt: skip


def read_curves(paths, S, seeds=None):
    """{arch: [Run]} from CSVs written by --out (the schedules rebuilt from their specs).

    A file without a `seed` column holds seed 0. Where a schedule was trained with
    several seeds (data orders and initialisations), its curve is their mean loss at
    each step (the steps every seed logged); `seeds` keeps only those seeds."""
    rows = []
    for path in paths:
        with open(path, newline="") as f:
            rows += [{"seed": "0", **r} for r in csv.DictReader(f)]
    if seeds is not None:
        rows = [r for r in rows if int(r["seed"]) in seeds]
    out = {}
    for arch, peak in (("gpt", 3e-3), ("lstm", 5e-3)):
        runs = []
        for name, spec in schedules(S, peak).items():
            mine = [r for r in rows if r["arch"] == arch and r["schedule"] == name]
            if not mine:  # a model or schedule the file does not have (yet)
                continue
            by_seed = {}
            for r in mine:
                by_seed.setdefault(r["seed"], {})[int(r["step"])] = float(r["loss"])
            steps = np.array(sorted(set.intersection(*(set(d) for d in by_seed.values()))))
            lr = Schedule(spec).lr_array()
            losses = np.mean([[d[s] for s in steps] for d in by_seed.values()], axis=0)
            runs.append(Run(name, steps, lr[steps], losses, held_out=name not in FIT,
                            lr_full=lr[: steps[-1] + 1]))  # fmt: skip
        if any(r.held_out for r in runs) and any(not r.held_out for r in runs):
            out[arch] = runs
    return out


def run_jobs(args, argv):
    """Train each (model, schedule, seed) run in its own process, args.jobs at a time,
    the longest first; merge their CSVs into args.out in the order of a serial run."""
    peaks = {"gpt": 3e-3, "lstm": 5e-3}
    todo = [
        (arch, name, seed, len(Schedule(spec)))
        for arch in args.archs
        for name, spec in schedules(args.steps, peaks[arch]).items()
        if args.schedules is None or name in args.schedules
        for seed in args.seeds or [0]
    ]
    strip = {"--jobs", "--out", "--archs", "--schedules", "--seeds"}
    base, skip = [], False
    for a in argv:  # this command's own flags, less those each job gets its own of
        if a.startswith("--"):
            skip = a.split("=")[0] in strip
        if not skip:
            base.append(a)
    parts, running, t0 = {}, [], time.perf_counter()
    pending = sorted(todo, key=lambda t: -t[3])
    while pending or running:
        while pending and len(running) < args.jobs:
            arch, name, seed, _ = job = pending.pop(0)
            parts[job] = f"{args.out}.{arch}.{name}.{seed}.part"
            cmd = [sys.executable, __file__, *base, "--archs", arch, "--schedules", name,
                   "--seeds", str(seed), "--out", parts[job], "--no-fit"]  # fmt: skip
            running.append((job, subprocess.Popen(cmd)))
        time.sleep(0.5)
        for job, proc in list(running):
            if proc.poll() is not None:
                running.remove((job, proc))
                if proc.returncode:
                    raise SystemExit(f"job {job[:3]} failed with exit code {proc.returncode}")
    print(f"{len(todo)} runs in {time.perf_counter() - t0:.0f} s wall", flush=True)
    with open(args.out, "w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["arch", "seed", "schedule", "step", "lr", "loss"])
        for job in todo:
            with open(parts[job], newline="") as f:
                w.writerows(list(csv.reader(f))[1:])
            os.remove(parts[job])


def main():
    global BATCH, WARMUP, EVAL_EVERY, EVAL_WINDOWS
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--out", default=None, help="write the curves as CSV (run, step, lr, loss)")
    ap.add_argument(
        "--curves", nargs="+", default=None,
        help="refit the curves of --out CSVs (no training); a schedule's seeds are averaged",
    )  # fmt: skip
    ap.add_argument(
        "--seeds", type=int, nargs="+", default=None,
        help="train with these seeds (data order and init; default 0); with --curves: use only these",
    )  # fmt: skip
    ap.add_argument(
        "--fit-from", type=int, nargs="+", default=[0],
        help="fit only the points from these steps on (one fit each; held-out curves: all points)",
    )  # fmt: skip
    ap.add_argument(
        "--huber-delta", type=float, default=None, help="the fits' Huber delta (default: the law's)"
    )
    ap.add_argument(
        "--start", type=int, default=0, help="every curve (fitted and held out) from this step"
    )
    ap.add_argument("--archs", nargs="+", default=["gpt", "lstm"], help="which models to train")
    ap.add_argument("--batch", type=int, default=BATCH, help="training windows per step")
    ap.add_argument("--warmup", type=int, default=WARMUP, help="warmup steps (curves start after)")
    ap.add_argument("--eval-every", type=int, default=EVAL_EVERY, help="steps between evaluations")
    ap.add_argument(
        "--eval-windows", type=int, default=EVAL_WINDOWS, help="held-out windows per evaluation"
    )
    ap.add_argument(
        "--schedules", nargs="+", default=None, help="train only these schedules (default: all)"
    )
    ap.add_argument(
        "--weight-decay", type=float, default=0.1, help="AdamW's decoupled weight decay"
    )
    ap.add_argument(
        "--more-train-bytes", type=int, default=0,
        help="append this many bytes of the corpus (after the first 3M) to the training split",
    )  # fmt: skip
    ap.add_argument("--device", default="cpu", help="torch device to train on (cpu, cuda)")
    ap.add_argument("--corpus-file", default=None, help="train and evaluate on this file's bytes")
    ap.add_argument(
        "--write-corpus", default=None, help="write the built-in corpus's bytes here and stop"
    )
    ap.add_argument(
        "--jobs", type=int, default=0, help="train each run in its own process, this many at a time"
    )
    ap.add_argument("--no-fit", action="store_true", help="train and write the curves only")
    args = ap.parse_args()
    if args.write_corpus:
        with open(args.write_corpus, "wb") as f:
            f.write(corpus_bytes())
        return
    BATCH, WARMUP, EVAL_EVERY = args.batch, args.warmup, args.eval_every
    EVAL_WINDOWS = args.eval_windows
    if args.jobs:
        if not args.out:
            ap.error("--jobs needs --out (the runs' curves are merged there)")
        run_jobs(args, sys.argv[1:])
        for arch, runs in read_curves([args.out], args.steps).items():
            report(arch, runs, args.fit_from[0], args.huber_delta, args.start)
        return
    if args.curves:
        for arch, runs in read_curves(args.curves, args.steps, args.seeds).items():
            for f in args.fit_from:
                print(f"fit from step {f}:")
                report(arch, runs, f, args.huber_delta, args.start)
        return
    torch.set_num_threads(1)
    device = torch.device(args.device)
    train_data, val = (
        t.to(device) for t in corpus(path=args.corpus_file, more=args.more_train_bytes)
    )
    vi = np.random.default_rng(1).integers(0, len(val) - BLOCK - 1, EVAL_WINDOWS)
    print(f"steps {args.steps}, batch {BATCH}, warmup {WARMUP}, eval {EVAL_WINDOWS} windows "
          f"every {EVAL_EVERY} steps", flush=True)  # fmt: skip
    val_x, val_y = windows(val, vi)
    if args.out:  # written as the runs finish
        with open(args.out, "w", newline="") as f:
            csv.writer(f).writerow(["arch", "seed", "schedule", "step", "lr", "loss"])
    for arch, peak in (("gpt", 3e-3), ("lstm", 5e-3)):
        if arch not in args.archs:
            continue
        runs = []
        for name, spec in schedules(args.steps, peak).items():
            if args.schedules is not None and name not in args.schedules:
                continue
            lr = Schedule(spec).lr_array()
            curves = []
            for seed in args.seeds or [0]:
                t0 = time.perf_counter()
                steps, losses = train(arch, lr, train_data, val_x, val_y, seed, args.weight_decay)
                curves.append(losses)
                print(f"{arch} {name:<11} seed {seed} {len(lr)} steps "
                      f"{time.perf_counter() - t0:6.1f} s final loss {losses[-1]:.4f}",
                      flush=True)  # fmt: skip
                if args.out:
                    with open(args.out, "a", newline="") as f:
                        csv.writer(f).writerows(
                            (arch, seed, name, int(s), float(lr[s]), float(v))
                            for s, v in zip(steps, losses, strict=True)
                        )
            losses = np.mean(curves, axis=0)
            runs.append(
                Run(
                    name,
                    steps,
                    lr[steps],
                    losses,
                    held_out=name not in FIT,
                    lr_full=lr[: steps[-1] + 1],
                )
            )
        if args.no_fit:
            continue
        for f in args.fit_from:
            if len(args.fit_from) > 1:
                print(f"fit from step {f}:")
            report(arch, runs, f, args.huber_delta, args.start)


if __name__ == "__main__":
    main()
