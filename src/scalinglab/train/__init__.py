"""Training: the generic loop, optimizer and schedules, checkpoints, guards, metrics,
evaluation and generation.

The library entry point is `train(cfg, out_dir)`; see scalinglab.train.loop.
"""


def train(cfg, out_dir, progress: bool = False) -> dict:
    """Train (or resume) one run into `out_dir` and return its result (RUN/result.json)."""
    from scalinglab.train.loop import train as _train

    return _train(cfg, out_dir, progress=progress)
