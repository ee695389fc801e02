"""The --dtype auto rule: bfloat16 autocast on CPUs with native bf16 only where it pays."""

import pytest

from scalinglab.config import ModelConfig
from scalinglab.train import setup

GPT_WIDE = ModelConfig(arch="gpt", n_layer=4, n_head=4, n_embd=128, block_size=256)
GPT_TINY = ModelConfig(arch="gpt", n_layer=2, n_head=4, n_embd=32, block_size=128)
GPT_64 = ModelConfig(arch="gpt", n_layer=2, n_head=8, n_embd=64, block_size=128)
LSTM = ModelConfig(arch="lstm", n_layer=2, n_embd=32, n_hidden=256, tie_embeddings=False)
LSTM_64 = ModelConfig(arch="lstm", n_layer=2, n_embd=64, block_size=128)
LSTM_128 = ModelConfig(arch="lstm", n_layer=2, n_embd=128, block_size=128)


@pytest.mark.parametrize(
    "model,rows,threads,expected",
    [
        (GPT_WIDE, 16 * 256, 2, "bfloat16"),
        (GPT_WIDE, 12 * 64, 1, "float32"),  # 768 rows: casts cost what the matmuls save
        (GPT_TINY, 8 * 128 * 4, 1, "float32"),  # 32 wide
        (GPT_64, 8 * 128, 1, "bfloat16"),  # a quickstart run: 1024 rows, one thread
        (GPT_64, 8 * 128, 2, "float32"),  # the same rows over two threads: 512 each
        (LSTM, 16 * 256, 2, "bfloat16"),  # the hidden width counts
        (LSTM_64, 16 * 128, 1, "bfloat16"),
        (LSTM_64, 16 * 128, 2, "float32"),  # an RNN over two threads: 128 wide and up
        (LSTM_128, 16 * 128, 2, "bfloat16"),
        (None, 10**6, 1, "float32"),
    ],
)
def test_auto_on_a_bf16_cpu(monkeypatch, model, rows, threads, expected):
    monkeypatch.setattr(setup, "cpu_has_bf16", lambda: True)
    assert setup.pick_dtype("auto", "cpu", model, rows, threads) == expected


def test_auto_counts_torchs_threads_when_unset(monkeypatch):
    monkeypatch.setattr(setup, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(setup.torch, "get_num_threads", lambda: 2)
    assert setup.pick_dtype("auto", "cpu", GPT_64, 8 * 128) == "float32"
    assert setup.pick_dtype("auto", "cpu", GPT_64, 16 * 128) == "bfloat16"


def test_auto_without_native_bf16_is_float32(monkeypatch):
    monkeypatch.setattr(setup, "cpu_has_bf16", lambda: False)
    assert setup.pick_dtype("auto", "cpu", GPT_WIDE, 16 * 256) == "float32"


def test_explicit_dtype_is_kept(monkeypatch):
    monkeypatch.setattr(setup, "cpu_has_bf16", lambda: True)
    assert setup.pick_dtype("float32", "cpu", GPT_WIDE, 16 * 256) == "float32"
    assert setup.pick_dtype("bfloat16", "cpu", GPT_TINY, 8) == "bfloat16"
