"""Tiny trained runs shared by the export tests."""

import torch

from scalinglab.train import train
from tests.train.helpers import tiny_cfg, tiny_shards


def trained_runs(tmp, **variants) -> dict:
    """{name: run folder} of runs trained on the tiny corpus; each variant is tiny_cfg's kwargs."""
    data = tiny_shards(tmp / "shards")
    out = {}
    for name, kw in variants.items():
        torch.set_num_threads(1)
        result = train(
            tiny_cfg(data, **({"steps": 150, "lr": 3e-2, "warmup": 10} | kw)), tmp / name
        )
        assert result["status"] == "completed"
        out[name] = tmp / name
    return out
