"""Progress of a running sweep, for the live display (the CLI draws it).

Executors report `queued`, `started`, `finished` and a periodic `tick`; the
state of a run they cannot see start (Ray, submitit) is read from its folder:
a metrics.jsonl that grew since the sweep began means it is running. Current
losses are the last lines of each running run's metrics.jsonl.
"""

import time
from pathlib import Path

from scalinglab import runfolder
from scalinglab.sweep.design import PlannedRun

MTIME_SLACK = 1.0  # seconds; a filesystem may store mtimes a few ms behind the clock


class SweepProgress:
    """What the sweep is doing; `listener(event, progress, outcome)` hears every change."""

    def __init__(self, runs: list[PlannedRun], run_root: Path, listener=None, skipped=()):
        self.runs = {r.name: r for r in runs}
        self.root = Path(run_root)
        self.listener = listener
        self.state = {r.name: "queued" for r in runs}
        for name, status in skipped:
            self.state[name] = status
        self.skipped = {name for name, _ in skipped}
        self.t0 = time.monotonic()
        self.outcomes: list[dict] = []

    def _emit(self, event: str, outcome: dict | None = None) -> None:
        if self.listener:
            self.listener(event, self, outcome)

    def skipped_run(self, outcome: dict) -> None:
        """A run already final before this invocation (not run again)."""
        self.outcomes.append(outcome)
        self._emit("skipped", outcome)

    def queued(self, name: str) -> None:
        pass  # every run starts queued

    def started(self, name: str) -> None:
        self.state[name] = "running"
        self._emit("started")

    def finished(self, outcome: dict) -> None:
        self.state[outcome["name"]] = outcome["status"]
        self.outcomes.append(outcome)
        self._emit("finished", outcome)

    def tick(self) -> None:
        for name, s in self.state.items():
            if s == "queued":
                m = self.root / name / runfolder.METRICS
                # written since this sweep began (less a second: file times are coarse)
                since = time.time() - (time.monotonic() - self.t0) - MTIME_SLACK
                if m.exists() and m.stat().st_mtime >= since:
                    self.state[name] = "running"
        self._emit("tick")

    # --- what the display shows -------------------------------------------

    def rows(self) -> list[dict]:
        out = []
        for name, r in self.runs.items():
            s = self.state[name]
            row = {"name": name, "state": s, "params": r.counts.params, "tokens": r.tokens}
            if s not in ("queued",):
                m = runfolder.latest_metrics(self.root / name)
                row["done"] = min(1.0, (m.get("tokens") or 0) / r.tokens) if s == "running" else 1.0
                row["train_loss"] = m.get("train_loss")
                row["val_loss"] = m.get("val_loss")
            out.append(row)
        return out

    def counts(self) -> dict:
        c = {"done": 0, "running": 0, "queued": 0}
        for s in self.state.values():
            c[s if s in c else "done"] += 1
        return c

    def eta_seconds(self, rows: list[dict] | None = None) -> float | None:
        """Remaining seconds, from the planned compute done so far in this invocation."""
        rows = rows or self.rows()
        todo = [r for r in rows if r["name"] not in self.skipped]
        total = sum(self.runs[r["name"]].flops for r in todo)
        done = sum(self.runs[r["name"]].flops * r.get("done", 0.0) for r in todo)
        elapsed = time.monotonic() - self.t0
        if done <= 0 or elapsed <= 0:
            return None
        return elapsed * (total - done) / done

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0
