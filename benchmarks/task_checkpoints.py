"""A run's built-in task accuracies against its validation loss, checkpoint by checkpoint.

Is a task's accuracy a function of the validation loss alone (what the study's two-step
prediction assumes: C -> loss -> accuracy), or does it depend on the model's size too?
Train a study's backtest run again with checkpoints kept along the way and score every
checkpoint: where its losses overlap the sweep's, its accuracies should match the sweep
runs' at equal loss if the loss decides them. Below the sweep's losses the same curve
shows the link that the sweep could not.

    scalinglab train --config QS/backtest/runs/RUN/config.toml --out CK \
        --ckpt-every 500 --keep-ckpts 30 --threads 2
    python benchmarks/task_checkpoints.py CK --sweep QS [--tasks recall,next-line]

Prints, per checkpoint, the validation loss and each task's accuracy and gold-choice
bits per byte; with --sweep, the sweep's GPT runs (loss, accuracy) beside them, sorted by
loss.
"""

import argparse
import warnings
from pathlib import Path

import torch

from scalinglab.data.tokenizers import load_tokenizer
from scalinglab.report.collect import collect
from scalinglab.tasks.builtin import builtin_task
from scalinglab.tasks.score import score_multiple_choice
from scalinglab.train import checkpoint
from scalinglab.train.evaluate import evaluate, load_trained, open_run_data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a run folder with checkpoints along the way")
    ap.add_argument("--sweep", type=Path, help="the study folder whose GPT sweep to show beside")
    ap.add_argument(
        "--tasks", default="recall,next-line", help="built-in tasks (default: %(default)s)"
    )
    ap.add_argument("--items", type=int, default=4000, help="items per task (the study's default)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    names = args.tasks.split(",")
    _, cfg, _ = load_trained(args.run)
    shards = open_run_data(args.run, cfg)
    tok = load_tokenizer(cfg.train.data)
    tasks = [builtin_task(n, shards, args.items, 0) for n in names]
    print("step   loss    " + "  ".join(f"{n:>10s} acc  bpb" for n in names))
    for path in reversed(checkpoint.list_steps(args.run / "ckpt")):  # oldest first
        model, cfg, step = load_trained(args.run, path=path)
        loss, _ = evaluate(model, shards.val, cfg.model.block_size, 32)
        res = [score_multiple_choice(model, tok, t, cfg.model.block_size) for t in tasks]
        cols = "  ".join(f"{r['acc']:14.3f} {r['bpb']:.3f}" for r in res)
        print(f"{step:5d}  {loss:.4f}  {cols}", flush=True)
    if args.sweep:
        print(f"\nthe GPT sweep of {args.sweep} (loss, {', '.join(names)} acc):")
        rows = [r for r in collect(args.sweep).by_role("sweep") if r["arch"] == "gpt"]
        for r in sorted(rows, key=lambda r: -r["loss"]):
            accs = "  ".join(f"{r.get(n + '.acc', float('nan')):.3f}" for n in names)
            print(f"  {r['params']:>7,} params  loss {r['loss']:.4f}  {accs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
