import json

import pytest

from scalinglab.train import train
from tests.train.helpers import tiny_cfg, tiny_shards, unigram_entropy


@pytest.mark.parametrize("arch", ["gpt", "lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_every_arch_learns_a_tiny_corpus(tmp_path, arch):
    data = tiny_shards(tmp_path / "shards")
    cfg = tiny_cfg(data, arch, steps=300, lr=2e-2, warmup=10, eval_every=150, n_embd=64)
    result = train(cfg, tmp_path / "run")
    h = unigram_entropy()  # 3.04 nats: the best a model without context can do
    assert result["status"] == "completed"
    assert result["val_loss"] < 0.5 * h, (arch, result["val_loss"], h)
    assert result["steps"] == 300 and result["tokens"] == 300 * 8 * 16
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert rows[0]["train_loss"] > rows[-2]["train_loss"]
    assert rows[-1]["final"] is True and rows[-1]["val_loss"] == result["val_loss"]
