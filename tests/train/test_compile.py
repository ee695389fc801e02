"""--compile: the compiled run follows the eager one, and its evals are the eager model's."""

import json
import shutil

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from scalinglab.data.shards import open_shards
from scalinglab.train import train
from scalinglab.train.evaluate import evaluate, load_trained
from tests.train.helpers import tiny_cfg, tiny_shards

pytestmark = pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="torch.compile on a CPU needs a C++ compiler (c++ or g++ on PATH)",
)


def train_losses(run) -> list[float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["train_loss"] for r in rows if "train_loss" in r]


def test_compiled_run_matches_eager(tmp_path):
    data = tiny_shards(tmp_path / "shards")
    eager = train(tiny_cfg(data, steps=30, eval_every=15), tmp_path / "eager")
    torch._dynamo.reset()
    counters.clear()
    compiled = train(tiny_cfg(data, steps=30, eval_every=15, compile=True), tmp_path / "compiled")
    assert compiled["status"] == "completed"
    # One graph, the training step's: the three evaluations did not compile another.
    assert counters["stats"]["unique_graphs"] == 1
    # Fused kernels sum in another order: the same run up to float32 rounding.
    a, b = train_losses(tmp_path / "eager"), train_losses(tmp_path / "compiled")
    assert len(a) == len(b) == 30
    assert b == pytest.approx(a, rel=1e-3)
    assert compiled["val_loss"] == pytest.approx(eager["val_loss"], rel=1e-3)
    # Evaluations use the plain model, so the recorded loss is what the saved weights give.
    model, cfg, _ = load_trained(tmp_path / "compiled")
    val = open_shards(data).val
    loss, _ = evaluate(model, val, cfg.model.block_size, cfg.train.batch_size, 400)
    assert loss == compiled["val_loss"]
