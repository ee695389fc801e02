"""The coordinate check (Yang et al., Tensor Programs V): how each layer's activations and
their updates scale with the width after a few optimizer steps.

GPTs of several widths (the other settings fixed) are trained a few steps with the
trainer's optimizer (`make_optimizer`: its per-group learning rates, so `--param mup`'s
multipliers), and on one fixed probe batch each layer's typical coordinate, mean |x|,
and its update since initialisation, mean |x_t - x_0|, are recorded at every step.
Under μP both stay about the same at every width (exponent ~0 in width); under SP
with Adam the updates grow with the width (exponent ~1 for the hidden layers).

`scalinglab coord-check` (cli/coordcheck.py) runs it on prepared shards and writes a
figure and a JSON; benchmarks/coord_check.py records a larger one.
"""

import contextlib
import copy
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from scalinglab.config import ModelConfig, TrainConfig
from scalinglab.errors import ConfigError
from scalinglab.fsio import atomic_write_bytes
from scalinglab.models.counting import count
from scalinglab.models.registry import build_model
from scalinglab.train.optim import make_optimizer
from scalinglab.train.setup import out_of_memory, too_large

WHAT = ("size", "update")
"""size: mean |x| of a layer's output; update: mean |x_t - x_0|, its change since step 0."""


def layer_names(n_layer: int) -> list[str]:
    """The layers measured: the embedding, each block's attention and MLP outputs (the
    residual branches) and its output (the residual stream), and the logits."""
    blocks = [f"{kind} {i}" for i in range(n_layer) for kind in ("attn", "mlp", "block")]
    return ["embedding", *blocks, "logits"]


@dataclass
class CoordCheck:
    """The measurements: `values[what][param]` is an array (widths, steps + 1, layers),
    averaged over seeds."""

    widths: list[int]
    params: list[str]
    layers: list[str]
    steps: int
    lr: float
    base_width: int
    values: dict = field(default_factory=dict)

    def exponents(self, what: str = "update", step: int = -1) -> dict:
        """{param: {layer: slope of log mean |x| against log width}} at `step` (0: flat;
        1: grows as the width). Update exponents need step >= 1."""
        logw = np.log(self.widths)
        out = {}
        for p in self.params:
            ys = self.values[what][p][:, step, :]
            out[p] = {layer: float(np.polyfit(logw, np.log(np.maximum(ys[:, j], 1e-30)), 1)[0])
                      for j, layer in enumerate(self.layers)}  # fmt: skip
        return out

    def to_json(self) -> dict:
        """coord_check.json's object: a copy, so editing it leaves the check as it was."""
        return copy.deepcopy({
            "format_version": 1,
            "kind": "scalinglab.coord_check",
            "widths": self.widths,
            "params": self.params,
            "layers": self.layers,
            "steps": self.steps,
            "lr": self.lr,
            "base_width": self.base_width,
            # values[what][param][width index][step][layer]
            "values": {w: {p: v.tolist() for p, v in d.items()} for w, d in self.values.items()},
            "exponents": {w: self.exponents(w) for w in WHAT},
        })  # fmt: skip

    def plot(self, path) -> None:
        """A panel per (param, what) row and layer: mean |x| against width, a line per step."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [(p, w) for p in self.params for w in WHAT]
        fig, axes = plt.subplots(len(rows), len(self.layers), sharex=True, squeeze=False,
                                 figsize=(2.6 * len(self.layers), 2.4 * len(rows)))  # fmt: skip
        colors = plt.cm.viridis(np.linspace(0, 0.9, self.steps + 1))
        for i, (p, w) in enumerate(rows):
            for j, layer in enumerate(self.layers):
                ax = axes[i, j]
                for t in range(0 if w == "size" else 1, self.steps + 1):
                    ax.plot(self.widths, self.values[w][p][:, t, j], "o-", ms=3,
                            color=colors[t], label=f"step {t}")  # fmt: skip
                ax.set_xscale("log", base=2)
                ax.set_yscale("log")
                ax.set_title(f"{p} {w}: {layer}", fontsize=8)
                if i == len(rows) - 1:
                    ax.set_xlabel("width")
        axes[0, 0].legend(fontsize=6)
        fig.suptitle(f"coordinate check: mean |x| (size) and mean |x_t - x_0| (update) against "
                     f"width; Adam lr {self.lr:g}, base width {self.base_width}")  # fmt: skip
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        atomic_write_bytes(path, buf.getvalue())


def _measure(model, x) -> dict:
    """{layer: output tensor} of the probe batch x (no gradients)."""
    out, hooks = {}, []
    mods = [("embedding", model.transformer.wte)]
    for i, block in enumerate(model.transformer.h):
        mods += [(f"attn {i}", block.attn), (f"mlp {i}", block.mlp), (f"block {i}", block)]
    for name, mod in mods:
        hooks.append(mod.register_forward_hook(
            lambda m, i, o, name=name: out.__setitem__(name, o.detach().clone())))  # fmt: skip
    try:
        with torch.no_grad():
            out["logits"] = model(x)[0].detach().clone()
    finally:
        for h in hooks:
            h.remove()
    return out


def run_one(cfg: ModelConfig, batches: list, lr: float, seed: int) -> dict:
    """{what: array (steps + 1, layers)} for one model trained on batches[1:] (Adam at lr
    times each group's multiplier, no weight decay), measured on batches[0]'s inputs."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    opt = make_optimizer(model, TrainConfig(lr=lr, weight_decay=0.0, steps=1), "cpu")
    for g in opt.param_groups:
        g["lr"] = lr * g["lr_mult"]  # as the training loop sets it
    probe = batches[0][0]
    layers = layer_names(cfg.n_layer)
    first = _measure(model, probe)
    size, update = [], []
    for t in range(len(batches)):
        if t:
            x, y = batches[t]
            model(x, y)[1].backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        now = first if t == 0 else _measure(model, probe)
        size.append([now[k].abs().mean().item() for k in layers])
        update.append([(now[k] - first[k]).abs().mean().item() for k in layers])
    return {"size": np.array(size), "update": np.array(update)}


def coord_check(
    batches: list,
    widths: list[int],
    params: list[str],
    lr: float = 1e-2,
    n_layer: int = 2,
    n_head: int = 4,
    base_width: int = 0,
    seeds: int = 1,
    vocab_size: int = 256,
) -> CoordCheck:
    """Train a GPT of each width under each parametrisation on `batches` ([(x, y)], the
    first also the probe; steps = len(batches) - 1) and measure it (see the module)."""
    widths = sorted(widths)
    base = base_width or widths[0]
    if len(set(widths)) < 2 or len(set(widths)) < len(widths) or len(batches) < 2:
        raise ConfigError(
            "a coordinate check needs 2 or more widths, each once, and 1 or more steps"
        )
    for w in widths:
        if w % n_head:
            raise ConfigError(f"width {w} is not a multiple of --n-head {n_head}")
    if base % n_head:
        raise ConfigError(f"--base-width {base} is not a multiple of --n-head {n_head}")
    block = batches[0][0].shape[1]

    def config(width: int, p: str) -> ModelConfig:
        return ModelConfig(n_layer=n_layer, n_embd=width, n_head=n_head, block_size=block,
                           vocab_size=vocab_size, param=p, base_width=base)  # fmt: skip

    for width in widths:  # every width before any model is built: not a traceback at the last
        check_fits(config(width, params[0]), width)
    res = CoordCheck(widths, list(params), layer_names(n_layer), len(batches) - 1, lr, base)
    for p in params:
        per_width = {w: [] for w in WHAT}
        for width in widths:
            cfg = config(width, p)
            try:
                runs = [run_one(cfg, batches, lr, seed) for seed in range(seeds)]
            except (RuntimeError, MemoryError) as exc:  # torch.OutOfMemoryError: a RuntimeError
                if not out_of_memory(exc):
                    raise
                raise ConfigError(_too_large(cfg, width)) from None
            for w in WHAT:
                per_width[w].append(np.mean([r[w] for r in runs], axis=0))
        for w in WHAT:
            res.values.setdefault(w, {})[p] = np.array(per_width[w])
    return res


BYTES_PER_PARAM = 16
"""Training state of a parameter: fp32 weight, gradient and Adam's two moments."""


def memory_bytes() -> int | None:
    """The memory a model here may use: the machine's, or less where an address-space
    limit (ulimit -v) or a cgroup's limit is lower; None when unknown."""
    limits = []
    with contextlib.suppress(ValueError, OSError, AttributeError):
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    with contextlib.suppress(ImportError, ValueError, OSError, AttributeError):
        import resource  # POSIX only: Windows has neither it nor an address-space limit

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY and soft > 0:
            limits.append(soft)
    with contextlib.suppress(OSError, ValueError):
        limits.append(int(Path("/sys/fs/cgroup/memory.max").read_text()))  # "max": no limit
    return min(limits) if limits else None


def _too_large(cfg: ModelConfig, width: int, need: int | None = None) -> str:
    size = f" (about {need / 2**30:,.0f} GiB to train)" if need else ""
    return f"--widths: width {width}: {too_large(cfg, 'cpu', size)}"


def check_fits(cfg: ModelConfig, width: int, memory: int | None = None) -> None:
    """Refuse, before it is built, a model whose training state (BYTES_PER_PARAM a
    parameter) is more than the memory here (`memory`, by default memory_bytes())."""
    memory = memory_bytes() if memory is None else memory
    need = BYTES_PER_PARAM * count(cfg).params
    if memory is not None and need > memory:
        raise ConfigError(_too_large(cfg, width, need))


def sample_batches(tokens, n: int, batch: int, block: int, seed: int = 0) -> list:
    """n (x, y) batches of `batch` random windows of `block` tokens from a token array."""
    if len(tokens) < block + 2:
        raise ConfigError(f"the training split has {len(tokens)} tokens, fewer than a block")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        starts = rng.integers(0, len(tokens) - block - 1, batch)
        x = np.stack([np.asarray(tokens[s : s + block + 1]) for s in starts]).astype(np.int64)
        out.append((torch.from_numpy(x[:, :-1]), torch.from_numpy(x[:, 1:])))
    return out
