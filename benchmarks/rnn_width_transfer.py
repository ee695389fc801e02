"""Does the RNN recipe's learning rate transfer across hidden width? (issue 21, item 3)

A 2-layer LSTM (or --arch gru / rnn_tanh) on byte-level text (tinyshakespeare from
../shared, nanoGPT's 90/10 split), at each width trained for the same number of
tokens per parameter, over a grid of learning rates spaced by factors of 2, for
each rule:

- `sgd`: the default recipe (plain SGD, gradient norm clipped to 0.25, cosine to
  lr/10), the same LR at every width: a clipped step moves the weights by at most
  lr x clip in global norm, whatever the width;
- `adamw`: AdamW at the same LR at every width (the control: what the recipe
  replaced).

`--lr-width-power A` turns a rule into a width rule: the run at width w and grid
LR g trains at g x (w / smallest width) ** A, and the table and verdict are in the
smallest width's LR units (A = 0: one LR at every width, the default). Runs are
cached by (arch, layers, width, LR actually used, tokens, optimizer, seed, block,
batch, shards) in `--cache FILE` (JSON lines), so grids that overlap train each
run once.

The criterion (issue 21): the LR best at the smallest width is within one grid
step of the best at each larger width, and the loss at that transferred LR is
within 0.5% of the larger width's grid optimum. The script prints the loss table
(LR x width) per rule and the verdict.

    python benchmarks/rnn_width_transfer.py [--widths 32,128,256] [--tokens-per-param 2]
        [--rules sgd,adamw] [--sgd-lrs 5,10,20,40,80] [--adamw-lrs ...] [--threads 1]
        [--layers 2] [--block-size 64] [--batch-size 16] [--flops C] [--tokens N]
        [--lr-width-power A] [--seeds 1337] [--cache FILE] [--shards DIR] [--grad-norms]

`--flops C` gives every run the same compute instead (the quickstart's IsoFLOP
setting), `--tokens N` the same tokens (and steps: muTransfer's setting); `--shards DIR` trains on a prepared shards folder (e.g. the quickstart's
byte-level standard library, in scalinglab's cache) instead of --corpus.
"""

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch

from scalinglab.config import ModelConfig, RunConfig, TrainConfig
from scalinglab.data.writer import prepare
from scalinglab.models.counting import count
from scalinglab.train import train

ROOT = Path(__file__).resolve().parents[1]


def model_config(args, width: int) -> ModelConfig:
    return ModelConfig(arch=args.arch, n_layer=args.layers, n_embd=width,
                       block_size=args.block_size)  # fmt: skip


def run(args, width, lr, rule, shards, tokens, out, seed=1337) -> float:
    m = model_config(args, width)
    t = TrainConfig(data=str(shards), batch_size=args.batch_size, tokens=tokens, lr=lr,
                    optimizer=rule, threads=args.threads, eval_tokens=1 << 16,
                    warmup=20, seed=seed)  # fmt: skip
    key = json.dumps([args.arch, args.layers, width, round(lr, 9), tokens, rule, seed,
                      args.block_size, args.batch_size, str(shards)])  # fmt: skip
    cache = Path(args.cache) if args.cache else None
    if cache and cache.exists():
        for line in cache.read_text().splitlines():
            row = json.loads(line)
            if row["key"] == key:
                return row["loss"]
    res = train(RunConfig(model=m, train=t), out / f"{rule}-{width}-{lr:g}-{seed}")
    loss = res["val_loss"]
    loss = loss if loss is not None and math.isfinite(loss) else math.inf
    if cache:
        with cache.open("a") as f:
            f.write(json.dumps({"key": key, "loss": loss}) + "\n")
    return loss


def grad_norms(args, widths, shards, steps: int = 100) -> None:
    """Each width's gradient norm, in total and per group (embedding = the tied decoder;
    the cell's matrices), at the first step and after `steps` steps of the recipe (SGD at
    the first --sgd-lrs LR, clip 0.25) on the training split: what a step of one LR moves."""
    import numpy as np

    from scalinglab.data.shards import open_shards
    from scalinglab.models.registry import build_model

    tokens, rng = open_shards(shards).train, np.random.default_rng(0)
    bs, t, lr = args.batch_size, args.block_size, float(args.sgd_lrs.split(",")[0])
    for w in widths:
        torch.manual_seed(0)
        model = build_model(model_config(args, w), 256)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        for step in range(steps + 1):
            i = rng.integers(0, len(tokens) - t - 1, bs)
            xy = torch.from_numpy(np.stack([tokens[j : j + t + 1].astype(np.int64) for j in i]))
            model.zero_grad()
            model(xy[:, :-1], xy[:, 1:])[1].backward()
            if step in (0, steps):
                g = {n: p.grad.norm().item() ** 2 for n, p in model.named_parameters()}
                total, emb = sum(g.values()), g["encoder.weight"]
                cell = sum(v for n, v in g.items() if n.startswith("rnn.weight"))
                print(f"width {w} step {step}: |grad| {total**0.5:.3f}; embedding/decoder "
                      f"{emb**0.5:.3f} ({emb / total:.0%} of |grad|^2), cell matrices "
                      f"{cell**0.5:.3f} ({cell / total:.0%})", flush=True)  # fmt: skip
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            opt.step()


def verdict(table: dict, lrs: list[float], widths: list[int]) -> str:
    best = {w: min(lrs, key=lambda lr: table[w, lr]) for w in widths}
    base = best[widths[0]]
    lines = []
    for w in widths[1:]:
        steps = abs(math.log2(best[w] / base))
        gap = table[w, base] / table[w, best[w]] - 1
        ok = steps <= 1 and gap <= 0.005
        lines.append(
            f"width {widths[0]} -> {w}: best lr {base:g} -> {best[w]:g} ({steps:.0f} grid "
            f"steps), loss at the transferred lr +{100 * gap:.2f}% -> {'PASS' if ok else 'FAIL'}"
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="lstm")
    ap.add_argument("--widths", default="32,128,256")
    ap.add_argument("--tokens-per-param", type=float, default=2.0)
    ap.add_argument("--rules", default="sgd,adamw")
    ap.add_argument("--sgd-lrs", default="5,10,20,40,80")
    ap.add_argument("--adamw-lrs", default="0.001,0.002,0.004,0.008,0.016,0.032")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--flops", type=float, default=0.0, help="each run's compute (IsoFLOP)")
    ap.add_argument("--tokens", type=int, default=0, help="each run's tokens (fixed steps)")
    ap.add_argument("--lr-width-power", type=float, default=0.0,
                    help="lr at width w = grid lr x (w / smallest width) ** A")  # fmt: skip
    ap.add_argument("--seeds", default="1337", help="seeds; the loss is their mean")
    ap.add_argument("--cache", default="", help="JSON-lines file of finished runs")
    ap.add_argument("--grad-norms", action="store_true",
                    help="only print each width's gradient norms (first step, step 100)")  # fmt: skip
    ap.add_argument("--shards", default="", help="a prepared shards folder (else --corpus)")
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared/corpora/tinyshakespeare.txt"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="rnn_width-"))
    shards = Path(args.shards) if args.shards else work / "shards"
    if not args.shards:
        prepare([args.corpus], shards, tokenizer="byte")
    widths = [int(w) for w in args.widths.split(",")]
    if args.grad_norms:
        return grad_norms(args, widths, shards)
    t0 = time.perf_counter()
    for rule in args.rules.split(","):
        lrs = [float(x) for x in getattr(args, f"{rule}_lrs").split(",")]
        table, se = {}, {}
        for w in widths:
            n = count(model_config(args, w), 256)
            if args.tokens:
                tokens = args.tokens
            elif args.flops:
                tokens = int(args.flops / n.flops_per_token)
            else:
                tokens = int(args.tokens_per_param * n.params)
            scale = (w / widths[0]) ** args.lr_width_power
            seeds = [int(x) for x in args.seeds.split(",")]
            for lr in lrs:
                losses = [run(args, w, lr * scale, rule, shards, tokens, work, s) for s in seeds]
                table[w, lr] = statistics.fmean(losses)
                if len(losses) > 1 and math.isfinite(table[w, lr]):  # standard error, relative
                    se[w, lr] = statistics.stdev(losses) / len(losses) ** 0.5 / table[w, lr]
            print(f"{rule} width {w}: {n.params:,} params, {tokens:,} tokens: "
                  + ", ".join(f"lr {lr:g} {table[w, lr]:.4f}" for lr in lrs), flush=True)  # fmt: skip
        print(
            f"\n{args.arch}, rule {rule}, lr x (width / {widths[0]}) ** "
            f"{args.lr_width_power:g}: val loss (nats/byte; the mean over seeds "
            f"{args.seeds}, ± its standard error)"
        )
        print("| lr | " + " | ".join(f"width {w}" for w in widths) + " |")
        print("|---" * (len(widths) + 1) + "|")
        for lr in lrs:
            cells = []
            for w in widths:
                star = "*" if lr == min(lrs, key=lambda x, w=w: table[w, x]) else ""
                spread = f" ±{100 * se[w, lr]:.1f}%" if (w, lr) in se else ""
                cells.append(f"{table[w, lr]:.4f}{star}{spread}")
            print(f"| {lr:g} | " + " | ".join(cells) + " |")
        print(verdict(table, lrs, widths), flush=True)
    print(f"\n{(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
