"""Coordinate check: the size of each layer's activations over width, after a few Adam steps.

Under μP (`--param mup`) a layer's typical coordinate |x| (mean absolute value) and its
change since initialisation stay about the same at every width; under SP they grow
(or shrink) with the width. 2-layer GPTs of widths 32..512 (4 heads, base width 32),
trained a few steps with the trainer's optimizer (`train.optim.make_optimizer`, its
per-group learning rates) at one LR, on byte-level Python standard library windows;
sizes on one fixed batch, averaged over seeds. Prints the table and the growth
exponent (slope of log |x| against log width, steps 1..4) per layer, and writes the figure.

    python benchmarks/coord_check.py [--lr 0.01] [--steps 4] [--seeds 3] [--data SHARDS]
        [--fig benchmarks/results/coord_check.png]
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from scalinglab.config import ModelConfig, TrainConfig
from scalinglab.data.shards import open_shards
from scalinglab.models.registry import build_model
from scalinglab.train.optim import make_optimizer

HERE = Path(__file__).resolve().parent
WIDTHS = [32, 64, 128, 256, 512]
LAYERS = ["embedding", "attn 1", "mlp 1", "block 1", "logits", "logits change"]


def batches(data: str, n: int, batch: int, block: int, seed: int):
    train = open_shards(data).train
    rng = np.random.default_rng(seed)
    for _ in range(n):
        starts = rng.integers(0, len(train) - block - 1, batch)
        x = np.stack([train[s : s + block + 1] for s in starts]).astype(np.int64)
        yield torch.from_numpy(x[:, :-1]), torch.from_numpy(x[:, 1:])


def sizes(model, x) -> dict:
    """{layer: mean |coordinate|} on batch x, and the logits themselves."""
    out, hooks = {}, []
    last = model.transformer.h[-1]
    for name, mod in (("embedding", model.transformer.wte), ("attn 1", last.attn),
                      ("mlp 1", last.mlp), ("block 1", last)):  # fmt: skip
        hooks.append(mod.register_forward_hook(
            lambda m, i, o, name=name: out.__setitem__(name, o.abs().mean().item())))  # fmt: skip
    with torch.no_grad():
        logits = model(x)[0]
    for h in hooks:
        h.remove()
    out["logits"] = logits.abs().mean().item()
    return out, logits


def check(param: str, width: int, a, seed: int) -> list[dict]:
    """Sizes at steps 0..a.steps for one model."""
    torch.manual_seed(seed)
    cfg = ModelConfig(n_layer=2, n_embd=width, n_head=4, block_size=a.block, vocab_size=256,
                      param=param, base_width=32)  # fmt: skip
    model = build_model(cfg)
    opt = make_optimizer(model, TrainConfig(lr=a.lr, weight_decay=0.0, steps=1), "cpu")
    for g in opt.param_groups:
        g["lr"] = a.lr * g["lr_mult"]  # as the trainer's loop sets it
    data = list(batches(a.data, a.steps + 1, a.batch, a.block, seed))
    probe = data[0][0]
    rows = []
    s, logits0 = sizes(model, probe)
    rows.append(s | {"logits change": 0.0})
    for x, y in data[1:]:
        loss = model(x, y)[1]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        s, logits = sizes(model, probe)
        rows.append(s | {"logits change": (logits - logits0).abs().mean().item()})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--data", default="", help="byte shards (default: prepare the stdlib)")
    ap.add_argument("--fig", default=str(HERE / "results" / "coord_check.png"))
    a = ap.parse_args()
    if not a.data:
        from scalinglab.data.writer import prepare

        a.data = str(HERE / ".coord_check" / "shards")
        prepare("stdlib", out=a.data, tokenizer="byte")
    torch.set_num_threads(1)
    res = {}  # (param, width) -> array (steps+1, layers)
    for param in ("sp", "mup"):
        for w in WIDTHS:
            runs = [check(param, w, a, seed) for seed in range(a.seeds)]
            res[(param, w)] = np.array([[np.mean([r[t][k] for r in runs]) for k in LAYERS]
                                        for t in range(a.steps + 1)])  # fmt: skip
    logw = np.log(WIDTHS)
    print(f"lr {a.lr}, {a.steps} Adam steps, batch {a.batch} x {a.block}, {a.seeds} seeds")
    print("slope of log|x| against log width (0: flat), per layer, at the last step:")
    print("| param | " + " | ".join(LAYERS) + " |\n|---|" + "---|" * len(LAYERS))
    for param in ("sp", "mup"):
        ys = np.array([res[(param, w)][-1] for w in WIDTHS])
        slopes = [np.polyfit(logw, np.log(ys[:, j]), 1)[0] for j in range(len(LAYERS))]
        print(f"| {param} | " + " | ".join(f"{s:+.2f}" for s in slopes) + " |")
    print("\nmean |x| at the last step, width by width:")
    for param in ("sp", "mup"):
        for w in WIDTHS:
            print(f"  {param:4s} w{w:<4d} " + "  ".join(
                f"{k} {v:.3g}" for k, v in zip(LAYERS, res[(param, w)][-1], strict=True)))  # fmt: skip
    plot(res, a)


def plot(res, a):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(LAYERS), figsize=(3.1 * len(LAYERS), 6), sharex=True)
    colors = plt.cm.viridis(np.linspace(0, 0.9, a.steps + 1))
    for i, param in enumerate(("sp", "mup")):
        for j, layer in enumerate(LAYERS):
            ax = axes[i, j]
            for t in range(a.steps + 1):
                if layer == "logits change" and t == 0:
                    continue
                ys = [res[(param, w)][t, j] for w in WIDTHS]
                ax.plot(WIDTHS, ys, "o-", color=colors[t], ms=3, label=f"step {t}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{param}: {layer}", fontsize=9)
            if i == 1:
                ax.set_xlabel("width")
            if j == 0:
                ax.set_ylabel("mean |coordinate|")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"coordinate check: 2-layer GPT, Adam lr {a.lr}, base width 32 (rows: sp, mup)")
    fig.tight_layout()
    Path(a.fig).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.fig, dpi=110)
    print(f"figure: {a.fig}")


if __name__ == "__main__":
    main()
