"""The --dtype auto rule: bfloat16 autocast on CPUs with native bf16 only where it pays."""

import pytest

from scalinglab.config import ModelConfig
from scalinglab.train import setup

GPT_WIDE = ModelConfig(arch="gpt", n_layer=4, n_head=4, n_embd=128, block_size=256)
GPT_TINY = ModelConfig(arch="gpt", n_layer=2, n_head=4, n_embd=32, block_size=128)
LSTM = ModelConfig(arch="lstm", n_layer=2, n_embd=32, n_hidden=256, tie_embeddings=False)


@pytest.mark.parametrize(
    "model,rows,expected",
    [
        (GPT_WIDE, 16 * 256, "bfloat16"),
        (GPT_WIDE, 12 * 64, "float32"),  # 768 rows: casts cost what the matmuls save
        (GPT_TINY, 8 * 128 * 4, "float32"),  # 32 wide
        (LSTM, 16 * 256, "bfloat16"),  # the hidden width counts
        (None, 10**6, "float32"),
    ],
)
def test_auto_on_a_bf16_cpu(monkeypatch, model, rows, expected):
    monkeypatch.setattr(setup, "cpu_has_bf16", lambda: True)
    assert setup.pick_dtype("auto", "cpu", model, rows) == expected


def test_auto_without_native_bf16_is_float32(monkeypatch):
    monkeypatch.setattr(setup, "cpu_has_bf16", lambda: False)
    assert setup.pick_dtype("auto", "cpu", GPT_WIDE, 16 * 256) == "float32"


def test_explicit_dtype_is_kept(monkeypatch):
    monkeypatch.setattr(setup, "cpu_has_bf16", lambda: True)
    assert setup.pick_dtype("float32", "cpu", GPT_WIDE, 16 * 256) == "float32"
    assert setup.pick_dtype("bfloat16", "cpu", GPT_TINY, 8) == "bfloat16"
