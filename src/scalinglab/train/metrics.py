"""Writing RUN/metrics.jsonl as a run trains (its format, reading and truncating are
scalinglab.runfolder's).

metrics.jsonl holds one JSON object per line, per log or eval step::

    {"step": 100, "tokens": 76800, "flops": 4.1e11, "train_loss": 2.31,
     "val_loss": 2.35, "lr": 0.00099, "seconds": 12.5}

(`val_loss` only on evaluation steps). On resume the lines after the
checkpoint's step, written by the run that died, are dropped, so the file
reads as one uninterrupted run.

With `--tensorboard` each row is also written as TensorBoard scalars
(`loss/train`, `loss/val`, `lr`, and `loss/val_final` for the final
evaluation) to event files in the run folder itself, so `tensorboard --logdir
SWEEP` shows every run of a sweep under its folder name. A resumed run purges
the events after its checkpoint's step, as it drops those metrics lines.
"""

import os
from pathlib import Path

from scalinglab import runfolder
from scalinglab.errors import require

TB_TAGS = {"train_loss": "loss/train", "val_loss": "loss/val", "lr": "lr"}  # row key -> tag


class TensorBoardSink:
    """Metrics rows as TensorBoard scalars, through torch.utils.tensorboard."""

    def __init__(self, log_dir: Path):
        require("tensorboard", "tensorboard", "--tensorboard")
        self.log_dir = Path(log_dir)
        self.purge_step: int | None = None
        self._w = None

    def write(self, row: dict) -> None:
        if self._w is None:  # opened late: a resume sets purge_step first
            from torch.utils.tensorboard import SummaryWriter

            self._w = SummaryWriter(str(self.log_dir), purge_step=self.purge_step)
        for key, tag in TB_TAGS.items():
            if row.get(key) is not None:
                if key == "val_loss" and row.get("final"):
                    tag = "loss/val_final"
                self._w.add_scalar(tag, row[key], global_step=row["step"])

    def close(self) -> None:
        if self._w is not None:
            self._w.close()
            self._w = None


class MetricsLog:
    """`enabled=False` (ranks other than 0 of a multi-process run) writes nothing."""

    def __init__(self, run_dir: Path, tensorboard: bool = False, enabled: bool = True):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / runfolder.METRICS
        self.enabled = enabled
        self._f = None
        self.sinks = [TensorBoardSink(self.run_dir)] if tensorboard and enabled else []

    def truncate_after(self, step: int) -> None:
        """Keep only the lines of steps <= `step` (all of them gone when step is 0)."""
        for sink in self.sinks:
            sink.purge_step = step + 1
        if self.enabled:
            runfolder.truncate_metrics(self.run_dir, step)

    def write(self, **row) -> None:
        if not self.enabled:
            return
        if self._f is None:
            self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 -- kept open across steps
        clean, line = runfolder.metrics_line(row)
        self._f.write(line)
        self._f.flush()
        for sink in self.sinks:
            sink.write(clean)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        if self._f is not None:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            self._f = None
