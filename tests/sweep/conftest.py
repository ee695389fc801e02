import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_raw_shards

FAKE_TRAINER = [sys.executable, str(Path(__file__).with_name("fake_trainer.py"))]


def pattern_tokens(n: int, seed: int = 0) -> np.ndarray:
    """A learnable stream over a 32-token vocabulary: a phrase repeated, with 5% noise."""
    rng = np.random.default_rng(seed)
    base = np.frombuffer(b"the cat sat on the mat. ", dtype=np.uint8) % 32
    arr = np.resize(base, n).astype(np.int64)
    flip = rng.random(n) < 0.05
    arr[flip] = rng.integers(0, 32, flip.sum())
    return arr


@pytest.fixture
def shards(tmp_path):
    return write_raw_shards(
        tmp_path / "shards", pattern_tokens(20000), pattern_tokens(4000, 1), vocab_size=32
    )


def spec_text(data, design: str, train: str = "", extra: str = "") -> str:
    return f"""
format_version = 1
name = "t"
data = "{data}"
archs = ["gpt"]
{extra}
[model]
block_size = 16

[train]
batch_size = 4
deterministic = true
eval_tokens = 512
{train}

[shape]
aspect = 4
head_size = 4

[hparams]
lr = 1e-2
ref_width = 16
warmup_frac = 0.1

[design]
{design}
"""


def write_spec(tmp_path, data, design, **kw) -> Path:
    p = tmp_path / "spec.toml"
    p.write_text(spec_text(data, design, **kw))
    return p
