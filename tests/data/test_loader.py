import numpy as np
import pytest
import torch

from scalinglab.data.loader import BatchLoader, eval_windows
from scalinglab.data.shards import open_shards
from scalinglab.errors import ConfigError, DataError
from tests.conftest import write_raw_shards


def test_random_batches_are_shifted_windows_and_deterministic(tmp_path):
    tokens = np.arange(1000) % 251
    sh = open_shards(write_raw_shards(tmp_path / "s", tokens, tokens[:100]))
    a = BatchLoader(sh.train, block_size=16, batch_size=4, seed=3)
    b = BatchLoader(sh.train, block_size=16, batch_size=4, seed=3)
    for _ in range(5):
        xa, ya = a.next()
        xb, yb = b.next()
        assert xa.dtype == torch.int64 and xa.shape == (4, 16)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert torch.equal(xa[:, 1:], ya[:, :-1])
    c = BatchLoader(sh.train, block_size=16, batch_size=4, seed=4)
    assert not torch.equal(c.next()[0], BatchLoader(sh.train, 16, 4, seed=3).next()[0])


@pytest.mark.parametrize("mode", ["random", "stream"])
def test_state_dict_roundtrip_gives_identical_batches(mode):
    tokens = np.random.default_rng(0).integers(0, 256, size=5000)
    a = BatchLoader(tokens, block_size=8, batch_size=3, seed=7, mode=mode)
    for _ in range(11):
        a.next()
    state = a.state_dict()
    expected = [a.next() for _ in range(20)]
    b = BatchLoader(tokens, block_size=8, batch_size=3, seed=7, mode=mode)
    b.load_state_dict(state)
    for x, y in expected:
        xb, yb = b.next()
        assert torch.equal(x, xb) and torch.equal(y, yb)


def test_state_dict_refuses_other_settings():
    tokens = np.zeros(500, dtype=np.uint16)
    state = BatchLoader(tokens, 8, 3, seed=7).state_dict()
    with pytest.raises(ConfigError, match="seed"):
        BatchLoader(tokens, 8, 3, seed=8).load_state_dict(state)


def test_stream_lanes_continue_across_steps():
    tokens = np.arange(10_000) % 60000
    ld = BatchLoader(tokens, block_size=10, batch_size=4, mode="stream")
    x1, _ = ld.next()
    assert ld.reset
    x2, _ = ld.next()
    assert not ld.reset
    # each row continues where it stopped: lane i walks forward by block_size
    assert torch.equal(x2 - x1, torch.full_like(x1, 10))
    lane_len = 10_000 // 4
    assert x1[:, 0].tolist() == [0, lane_len, 2 * lane_len, 3 * lane_len]


def test_ranks_split_the_lanes():
    tokens = np.arange(8000)
    r0 = BatchLoader(tokens, 10, 2, mode="stream", rank=0, world_size=2).next()[0]
    r1 = BatchLoader(tokens, 10, 2, mode="stream", rank=1, world_size=2).next()[0]
    assert r0[:, 0].tolist() == [0, 2000] and r1[:, 0].tolist() == [4000, 6000]


def test_eval_windows_cover_every_token_once():
    tokens = np.arange(1 + 4 * 5 * 7)  # 4 lanes × 5 windows × block 7, plus one
    seen = []
    for x, y in eval_windows(tokens, block_size=7, batch_size=4):
        assert torch.equal(x[:, 1:], y[:, :-1])
        seen.extend(y.flatten().tolist())
    assert sorted(seen) == list(range(1, len(tokens)))


def test_eval_windows_respects_max_tokens_and_refuses_tiny_splits():
    tokens = np.arange(1000)
    n = sum(y.numel() for _, y in eval_windows(tokens, block_size=10, batch_size=4, max_tokens=200))
    assert n == 200
    with pytest.raises(DataError, match="block_size 10"):
        next(eval_windows(np.arange(10), block_size=10, batch_size=4))


def test_loader_refuses_a_split_of_block_size_plus_one_tokens():
    # a random-order window needs block_size + 2 tokens (one start beyond 0 must exist)
    with pytest.raises(DataError, match="fewer than one window"):
        BatchLoader(np.arange(9), block_size=8, batch_size=1)
    BatchLoader(np.arange(10), block_size=8, batch_size=1).next()


def test_stream_windows_never_read_into_the_next_lane():
    # 17 tokens, 2 lanes of 8: a lane holds (8 - 1) // 4 = 1 window of 4 inputs + 1 target
    ld = BatchLoader(np.arange(17), block_size=4, batch_size=2, mode="stream")
    for _ in range(3):
        x, y = ld.next()
        assert x.tolist() == [[0, 1, 2, 3], [8, 9, 10, 11]]
        assert y.tolist() == [[1, 2, 3, 4], [9, 10, 11, 12]]


def test_stream_reset_is_true_at_the_start_of_every_pass():
    # 40 tokens, 2 lanes of 20, block 4: (20 - 1) // 4 = 4 windows a pass
    ld = BatchLoader(np.arange(40), block_size=4, batch_size=2, mode="stream")
    resets = []
    for _ in range(9):
        ld.next()
        resets.append(ld.reset)
    assert resets == [True, False, False, False] * 2 + [True]


def test_random_order_ranks_draw_different_windows():
    tokens = np.arange(1000)
    a = BatchLoader(tokens, 8, 4, seed=3, rank=0, world_size=2).next()[0]
    b = BatchLoader(tokens, 8, 4, seed=3, rank=1, world_size=2).next()[0]
    assert not np.array_equal(a.numpy(), b.numpy())
    # and each is the pure function of (seed, step, rank) the module documents
    want = np.random.default_rng([3, 0, 1]).integers(0, 1000 - 8 - 1, size=4)
    assert b[:, 0].tolist() == want.tolist()
