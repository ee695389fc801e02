"""Coordinate check: each layer's activation and update sizes over width, after a few Adam steps.

The record's setting of `scalinglab coord-check` (scalinglab.train.coordcheck): 2-layer
GPTs of widths 32..512 (4 heads, base width 32) under sp and mup, trained a few steps
with the trainer's optimizer at one lr on byte-level Python standard library windows,
measured on one fixed batch, averaged over seeds. Prints each layer's growth exponent
(slope of log mean |x| against log width at the last step) for the sizes and for the
updates since step 0, and writes the figure and the JSON.

    nice -n 15 python benchmarks/coord_check.py [--lr 0.01] [--steps 4] [--seeds 3]
        [--data SHARDS] [--out benchmarks/results]
"""

import argparse
from pathlib import Path

import torch

from scalinglab.data.shards import open_shards
from scalinglab.fsio import atomic_write_json
from scalinglab.train.coordcheck import WHAT, coord_check, sample_batches

HERE = Path(__file__).resolve().parent
WIDTHS = [32, 64, 128, 256, 512]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--data", default="", help="byte shards (default: prepare the stdlib)")
    ap.add_argument("--out", default=str(HERE / "results"), help="folder for figure and JSON")
    a = ap.parse_args()
    if not a.data:
        from scalinglab.data.writer import prepare

        a.data = str(HERE / ".coord_check" / "shards")
        prepare("stdlib", out=a.data, tokenizer="byte")
    torch.set_num_threads(1)
    batches = sample_batches(open_shards(a.data).train, a.steps + 1, a.batch, a.block)
    res = coord_check(batches, WIDTHS, ["sp", "mup"], lr=a.lr, base_width=32, seeds=a.seeds)
    print(f"lr {a.lr}, {a.steps} Adam steps, batch {a.batch} x {a.block}, {a.seeds} seeds, "
          f"widths {WIDTHS}, base width 32")  # fmt: skip
    for what in WHAT:
        ex = res.exponents(what)
        print(f"\n{what}: slope of log mean |x| against log width at step {a.steps} (0: flat)")
        print("| param | " + " | ".join(res.layers) + " |\n|---|" + "---|" * len(res.layers))
        for p in res.params:
            print(f"| {p} | " + " | ".join(f"{ex[p][k]:+.2f}" for k in res.layers) + " |")
        print(f"\n{what}, mean |x| at step {a.steps}, widths {WIDTHS}:")
        for j, layer in enumerate(res.layers):
            cells = [" / ".join(f"{v:.3g}" for v in res.values[what][p][:, -1, j])
                     for p in res.params]  # fmt: skip
            print(f"| {layer} | " + " | ".join(cells) + " |")
    out = Path(a.out)
    atomic_write_json(out / "coord_check.json", res.to_json())
    res.plot(out / "coord_check.png")
    print(f"\nwrote {out / 'coord_check.json'} and {out / 'coord_check.png'}")


if __name__ == "__main__":
    main()
