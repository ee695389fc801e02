"""Training: the generic loop, optimizer and schedules, checkpoints, guards, metrics,
evaluation and generation.

The library entry point is `train(cfg, out_dir)`; see scalinglab.train.loop.
"""

from scalinglab.train.loop import train

__all__ = ["train"]
