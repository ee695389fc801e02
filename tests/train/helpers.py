"""Tiny corpora and configs shared by the training tests."""

import dataclasses

import numpy as np

from scalinglab.config import ModelConfig, RunConfig, TrainConfig
from tests.conftest import write_raw_shards

TEXT = b"a quick brown fox jumps over the lazy dog. " * 200


def tiny_shards(path, text: bytes = TEXT, val_frac: float = 0.1):
    arr = np.frombuffer(text, dtype=np.uint8)
    cut = int(len(arr) * (1 - val_frac))
    return write_raw_shards(path, arr[:cut], arr[cut:], vocab_size=256)


def unigram_entropy(text: bytes = TEXT) -> float:
    """Entropy (nats) of the byte frequencies: the loss of the best context-free model."""
    counts = np.bincount(np.frombuffer(text, dtype=np.uint8), minlength=256)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def tiny_cfg(data, arch: str = "gpt", model: dict | None = None, **train) -> RunConfig:
    """A tiny run; keyword arguments go to TrainConfig, or ModelConfig where they name its field."""
    model_names = {f.name for f in dataclasses.fields(ModelConfig)}
    model = (model or {}) | {k: train.pop(k) for k in list(train) if k in model_names}
    m = dict(arch=arch, n_layer=1, n_embd=32, n_head=2, block_size=16) | model
    t = dict(
        data=str(data), batch_size=8, steps=20, lr=3e-3, warmup=5, seed=7,
        eval_tokens=400, log_every=1, deterministic=True,
    ) | train  # fmt: skip
    return RunConfig(model=ModelConfig(**m), train=TrainConfig(**t))


def cli_args(data, out, *extra) -> list[str]:
    return [
        "train", "--data", str(data), "--out", str(out), "--n-layer", "1", "--n-embd", "32",
        "--n-head", "2", "--block-size", "16", "--batch-size", "8", "--eval-tokens", "400",
        "--deterministic", "--seed", "7", *extra,
    ]  # fmt: skip
