"""An RNN's training order below one epoch: windows drawn at random (`--order random`,
the default) against contiguous lanes walked in order (`--order stream`, the classic
recipe), at the same tokens.

Each run folder given (a study's or sweep's RNN runs, e.g. the quickstart's
`runs/quickstart/sweeps/lstm/runs/*`) is trained again from its own config.toml under
both orders, into OUT/stream/NAME and OUT/random/NAME (a rerun resumes), and the
validation losses are printed side by side with their ratio.

`--arch gru` (or rnn_tanh, rnn_relu, lstm) trains the same widths and budgets as another
cell of the family, at `--lr` where given (else the folder's lr), so one study's LSTM runs
answer the question for every RNN; `--lr-scale 0.5 1 2` trains each order at those
multiples of the lr, to see whether the order moves the best SGD lr.

    python benchmarks/rnn_order.py RUN [RUN ...] --out DIR [--threads 1]
        [--arch ARCH] [--lr LR] [--lr-scale S [S ...]]
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
    ap.add_argument("--arch", default="", help="train as this RNN cell instead")
    ap.add_argument("--lr", type=float, default=0.0, help="the lr (default: the run's)")
    ap.add_argument("--lr-scale", type=float, nargs="+", default=[1.0])
    args = ap.parse_args()
    print(
        f"{'run':34} {'arch':>8} {'lr':>7} {'epochs':>7} {'steps':>6} {'stream':>8} "
        f"{'random':>8} {'random/stream':>14}"
    )
    for run in args.runs:
        cfg = runfolder.load_config(run)
        if not cfg.model.recurrent:
            print(f"{run.name}: a {cfg.model.arch}, not an RNN: skipped")
            continue
        model = dataclasses.replace(cfg.model, arch=args.arch or cfg.model.arch)
        for scale in args.lr_scale:
            lr = (args.lr or cfg.train.lr) * scale
            tag = f"{model.arch}-lr{lr:g}" if (args.arch or args.lr or scale != 1) else ""
            loss = {}
            for order in ("stream", "random"):
                t = dataclasses.replace(cfg.train, order=order, threads=args.threads, lr=lr)
                t = dataclasses.replace(t, min_lr=cfg.train.min_lr * lr / cfg.train.lr)
                folder = args.out / order / (f"{tag}-{run.name}" if tag else run.name)
                res = train(dataclasses.replace(cfg, model=model, train=t), folder)
                loss[order] = res["val_loss"]
            print(
                f"{run.name:34} {model.arch:>8} {lr:7.3g} {res['epochs']:7.3f} "
                f"{res['steps']:6d} {loss['stream']:8.4f} {loss['random']:8.4f} "
                f"{loss['random'] / loss['stream']:14.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
