"""Writing RUN/metrics.jsonl as a run trains (its format, reading and truncating are
scalinglab.runfolder's).

metrics.jsonl holds one JSON object per line, per log or eval step::

    {"step": 100, "tokens": 76800, "flops": 4.1e11, "train_loss": 2.31,
     "val_loss": 2.35, "lr": 0.00099, "seconds": 12.5}

(`val_loss` only on evaluation steps). On resume the lines after the
checkpoint's step, written by the run that died, are dropped, so the file
reads as one uninterrupted run.

With `--logger NAME` (repeatable; `--tensorboard` is `--logger tensorboard`) each row
also goes to that experiment tracker (train/trackers.py): TensorBoard event files in
the run folder, a W&B or MLflow run, or RUN/metrics.csv. A resumed run drops the
tracker's rows after its checkpoint's step, as it drops those metrics lines.
"""

import contextlib
import logging
import os
from pathlib import Path

from scalinglab import runfolder
from scalinglab.fsio import named_as
from scalinglab.train import trackers

log = logging.getLogger(__name__)


class MetricsLog:
    """`enabled=False` (ranks other than 0 of a multi-process run) writes nothing."""

    def __init__(self, run_dir: Path, loggers=(), enabled: bool = True):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / runfolder.METRICS
        self.enabled = enabled
        self._f = None
        # checked now, before anything is written: a missing package, or an MLflow store
        # that cannot be reached, is one line (and no config.toml left in --out)
        self.loggers = trackers.check_loggers(loggers, probe=True) if enabled else []
        self.trackers: list[trackers.Tracker] = []

    def truncate_after(self, step: int, final_too: bool = False) -> None:
        """Keep only the lines of steps <= `step` (all of them gone when step is 0), less
        the final evaluation's row at `step` where `final_too`."""
        if self.enabled:
            odd = runfolder.truncate_metrics(self.run_dir, step, final_too)
            if odd:
                log.warning("%s", runfolder.odd_lines(self.path, odd))

    def open_trackers(self, hparams: dict, resume_step: int) -> None:
        """Start the trackers (a resumed run, resume_step > 0, continues its tracker runs
        from its checkpoint's step); raises, one line, if one cannot start."""
        if self.loggers:
            meta = runfolder.read_sweep_meta(self.run_dir)
            self.trackers = trackers.open_trackers(
                self.loggers, self.run_dir, hparams, resume_step,
                run_name=self.run_dir.resolve().name, group=meta.get("sweep"),
            )  # fmt: skip

    def write(self, row: dict, tracked: dict | None = None) -> None:
        """Append `row` to metrics.jsonl and send it, with `tracked` (values for the
        trackers only), to every tracker."""
        if not self.enabled:
            return
        if self._f is None:
            self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 -- kept open across steps
        clean, line = runfolder.metrics_line(row)
        with named_as(self.path):  # a write names no file: the error named only the run
            self._f.write(line)
            self._f.flush()
        metrics = trackers.row_metrics(clean | (tracked or {}))
        self._each(lambda t: t.log(clean["step"], metrics))

    def finish(self, result: dict) -> None:
        """The run's result, to every tracker (its summary)."""
        self._each(lambda t: t.finish(result))

    def _each(self, call) -> None:
        """A tracker that fails mid-run is dropped with a warning: the run goes on."""
        for t in list(self.trackers):
            try:
                call(t)
            except Exception as exc:
                log.warning("--logger %s failed and is dropped for this run: %s",
                            t.name, trackers.one_line(exc))  # fmt: skip
                self.trackers.remove(t)
                try:  # a tracker whose server went away often cannot close either
                    t.close()
                except Exception as closing:
                    log.warning("--logger %s: %s", t.name, trackers.one_line(closing))

    def close(self) -> None:
        for t in self.trackers:
            try:
                t.close()
            except Exception as exc:  # closing must not hide the run's own outcome
                log.warning("--logger %s: %s", t.name, trackers.one_line(exc))
        self.trackers = []
        if self._f is not None:
            f, self._f = self._f, None
            try:
                with named_as(self.path):
                    f.flush()
                    os.fsync(f.fileno())
            finally:
                with contextlib.suppress(OSError):  # what could not be flushed is lost
                    f.close()
