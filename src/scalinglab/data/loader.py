"""Batch loaders over a memory-mapped token array.

Two ways to cut a token stream into training batches:

- `random` (the default, `--order random`; an RNN's state starts at 0 in each window):
  each row is a window of `block_size + 1` tokens
  at an offset drawn from a generator seeded by (seed, step, rank). The batch at
  step s is a pure function of (seed, s, rank), so a resumed run sees exactly
  the batches an uninterrupted one would have seen, and ranks of a DDP run see
  different windows.
- `stream` (`--order stream`, for recurrent models): the stream is cut into
  `batch_size × world_size`
  contiguous lanes, one per batch row; consecutive steps walk each lane forward
  by `block_size`, so a hidden state carried from one step to the next has
  seen the text that precedes the window. `reset` is True on the first window
  of each pass, where a carried state must be dropped.

Both keep their whole position in `state_dict()`.

`rank` and `world_size` give one process its own windows, for a loop of one's own. The
trainer does not use them: it draws each step's global batch with one loader and hands
each DDP rank its rows (`train/distributed.py`), so a run sees the same batches on any
number of processes.
"""

from collections.abc import Iterator

import numpy as np
import torch

from scalinglab.errors import ConfigError, DataError

MODES = ("random", "stream")


class BatchLoader:
    """Yields (x, y) int64 tensors of shape (batch_size, block_size); y is x shifted by one."""

    def __init__(
        self,
        tokens: np.ndarray,
        block_size: int,
        batch_size: int,
        seed: int = 0,
        mode: str = "random",
        rank: int = 0,
        world_size: int = 1,
        device: str | torch.device = "cpu",
        split: str = "train",
    ):
        if mode not in MODES:
            raise ConfigError(f"loader mode {mode!r} is not one of {MODES}")
        if block_size < 1 or batch_size < 1:
            raise ConfigError("--block-size and --batch-size must be positive")
        self.tokens = tokens
        self.block_size = block_size
        self.batch_size = batch_size
        self.seed = seed
        self.mode = mode
        self.rank = rank
        self.world_size = world_size
        self.device = torch.device(device)
        self.step = 0
        self.reset = True
        n = len(tokens)
        if n < block_size + 2:
            raise DataError(
                f"the {split} split has {n} tokens, fewer than one window needs "
                f"({block_size + 2}: --block-size {block_size} + 2); use a smaller --block-size "
                "or more data"
            )
        self._arange = np.arange(block_size + 1)
        if mode == "stream":
            lanes = batch_size * world_size
            self._lane_len = n // lanes
            self._windows = (self._lane_len - 1) // block_size
            if self._windows < 1:
                raise DataError(
                    f"the {split} split ({n} tokens) is too short for {lanes} lanes of "
                    f"--block-size {block_size}; use a smaller batch or block size"
                )
            first = rank * batch_size
            self._lane_starts = (np.arange(first, first + batch_size) * self._lane_len)[:, None]

    def _offsets(self, step: int) -> np.ndarray:
        if self.mode == "random":
            rng = np.random.default_rng([self.seed, step, self.rank])
            # starts 0 .. len - block_size - 2: the one last valid start (len - block_size
            # - 1) is never drawn. Drawing it would change every random-order run's
            # batches (and so every recorded result) for one window in len of them.
            return rng.integers(0, len(self.tokens) - self.block_size - 1, size=self.batch_size)
        w = step % self._windows
        return self._lane_starts[:, 0] + w * self.block_size

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch for the current step; advances the step counter."""
        offsets = self._offsets(self.step)
        self.reset = self.mode == "random" or self.step % self._windows == 0
        self.step += 1
        idx = offsets[:, None] + self._arange[None, :]
        buf = torch.from_numpy(self.tokens[idx].astype(np.int64))
        x, y = buf[:, :-1], buf[:, 1:]
        if self.device.type != "cpu":
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
        return x, y

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield self.next()

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "seed": self.seed,
            "mode": self.mode,
            "block_size": self.block_size,
            "batch_size": self.batch_size,
            "rank": self.rank,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict) -> None:
        for key in ("seed", "mode", "block_size", "batch_size", "world_size"):
            if state.get(key) != getattr(self, key):
                raise ConfigError(
                    f"loader state has {key}={state.get(key)!r}, this loader has "
                    f"{key}={getattr(self, key)!r}"
                )
        self.step = int(state["step"])


def eval_windows(
    tokens: np.ndarray,
    block_size: int,
    batch_size: int,
    max_tokens: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Deterministic evaluation batches covering a split (or its first `max_tokens`).

    The covered tokens are cut into `batch_size` contiguous lanes and walked
    window by window, so consecutive batches continue each row: a Transformer
    scores each window on its own, a recurrent model carries its state across.
    Every covered token except the very first is predicted exactly once.
    """
    n = len(tokens) if max_tokens is None else min(len(tokens), max_tokens + 1)
    lanes = max(1, min(batch_size, (n - 1) // block_size))
    # Lanes abut: lane i's last target is lane i+1's first input, so every
    # covered token but the very first is a target exactly once.
    windows = (n - 1) // (lanes * block_size)
    if windows < 1:
        raise DataError(
            f"the validation split has {len(tokens)} tokens, fewer than one window of "
            f"--block-size {block_size} plus one; use a smaller --block-size or more data"
        )
    starts = np.arange(lanes) * windows * block_size
    arange = np.arange(block_size + 1)
    for w in range(windows):
        idx = (starts + w * block_size)[:, None] + arange[None, :]
        buf = torch.from_numpy(tokens[idx].astype(np.int64))
        yield buf[:, :-1], buf[:, 1:]
