"""An RNN's training order below one epoch: windows drawn at random (`--order random`,
the default) against contiguous lanes walked in order (`--order stream`, the classic
recipe), at the same tokens.

Each run folder given (a study's or sweep's RNN runs, e.g. the quickstart's
`runs/quickstart/sweeps/lstm/runs/*`) is trained again from its own config.toml under
both orders, into OUT/stream/NAME and OUT/random/NAME (a rerun resumes), and the
validation losses are printed side by side with their ratio.

    python benchmarks/rnn_order.py RUN [RUN ...] --out DIR [--threads 1]
"""

import argparse
import dataclasses
from pathlib import Path

from scalinglab import runfolder
from scalinglab.train.loop import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders of an RNN")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    print(
        f"{'run':34} {'epochs':>7} {'steps':>6} {'stream':>8} {'random':>8} {'random/stream':>14}"
    )
    for run in args.runs:
        cfg = runfolder.load_config(run)
        if not cfg.model.recurrent:
            print(f"{run.name}: a {cfg.model.arch}, not an RNN: skipped")
            continue
        loss = {}
        for order in ("stream", "random"):
            t = dataclasses.replace(cfg.train, order=order, threads=args.threads)
            res = train(dataclasses.replace(cfg, train=t), args.out / order / run.name)
            loss[order] = res["val_loss"]
        print(
            f"{run.name:34} {res['epochs']:7.3f} {res['steps']:6d} {loss['stream']:8.4f} "
            f"{loss['random']:8.4f} {loss['random'] / loss['stream']:14.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
