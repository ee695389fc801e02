"""Experiment trackers: a run's config, metrics rows and result, also sent to TensorBoard,
Weights & Biases, MLflow or a CSV file (`--logger NAME`, repeatable; TOML `loggers`).

RUN/metrics.jsonl stays the record scalinglab reads; a tracker is a copy for the
tools people already watch. Each one gets, for one run:

- at the start: the resolved config (`model.*`, `train.*`) and the run's `N`,
  `N_nonembed`, `D`, `C` (planned; `D` and `C` empty for a time budget) as
  hyperparameters;
- per metrics row: `loss/train`, `loss/val`, `lr`, `tokens`, `flops`,
  `tokens_per_second` against the optimizer step (W&B also lets you plot them
  against `tokens` or `flops`);
- at the end: the result (`status`, `val_loss`, `val_bpb`, `params`, `tokens`,
  `flops`, ...) as the run's summary.

A tracker run that begins at a resume (`--logger csv` added then, or a W&B or
MLflow run made anew) first gets the rows metrics.jsonl holds up to the checkpoint's
step, so it shows the whole run.

A run of a sweep or a study is its own tracker run, named after its folder and
grouped by its sweep (W&B `group`, an MLflow experiment of the sweep's name).
The libraries' own environment variables decide where things go (`WANDB_MODE`,
`WANDB_DIR`, `WANDB_PROJECT`, `MLFLOW_TRACKING_URI`). A tracker that cannot start
(its package absent, a bad tracking URI) stops the run before it trains, with one
line naming the tracker.
"""

import contextlib
import csv
import hashlib
import io
import logging
import math
import os
import secrets
import time
from pathlib import Path

from scalinglab import runfolder
from scalinglab.config import LOGGERS
from scalinglab.errors import ConfigError, require
from scalinglab.fsio import machine_lock

log = logging.getLogger(__name__)

PROJECT = "scalinglab"  # W&B project and MLflow experiment of a run outside a sweep
ROW_KEYS = {  # metrics row key -> the name trackers log it under
    "train_loss": "loss/train", "val_loss": "loss/val", "lr": "lr", "tokens": "tokens",
    "flops": "flops", "tokens_per_second": "tokens_per_second",
}  # fmt: skip
INVOCATION = ("train.loggers", "train.tensorboard", "train.resume")
"""Hyperparameters of how a run is started and reported, not of the run: a resume that
changes them (`--logger csv` added) continues the same run, with no warning of changed
settings."""
RESULT_KEYS = ("status", "val_loss", "val_ppl", "val_bpb", "train_loss", "params",
               "params_nonembed", "tokens", "flops", "flops_6nd", "steps", "wall_seconds",
               "tokens_per_second", "epochs", "config_changes")  # fmt: skip


def flatten(d: dict, prefix: str = "") -> dict:
    """{"model": {"n_layer": 2}} -> {"model.n_layer": 2}: hyperparameters as trackers keep them."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def row_metrics(row: dict) -> dict:
    """A metrics row's numbers under the names trackers log them as."""
    out = {}
    for key, name in ROW_KEYS.items():
        v = row.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out["loss/val_final" if key == "val_loss" and row.get("final") else name] = v
    return out


def _number(text) -> float | None:
    """A CSV field's number, or None (not a finite number)."""
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _param(v) -> str | int | float | bool:
    """A hyperparameter as a tracker of plain values keeps it: None (a time budget's D
    and C) is empty, not the text "None"."""
    if v is None:
        return ""
    return v if isinstance(v, int | float | str | bool) else str(v)


def _summary(result: dict) -> dict:
    return {k: result[k] for k in RESULT_KEYS if result.get(k) is not None}


class Tracker:
    """One tracker of one run. `start` before the first step (it raises ConfigError if the
    tracker cannot work), `log` per metrics row, `finish` with the result, `close` always."""

    name = ""
    replay_after: int | None = None
    """Set by `start`: the step after which this tracker run lacks the rows metrics.jsonl
    holds up to the resumed checkpoint (0: all of them, a tracker run begun at a resume),
    or None (it has them, or the run starts at step 0)."""

    def __init__(self, run_dir: Path, run_name: str, group: str | None):
        self.run_dir, self.run_name, self.group = Path(run_dir), run_name, group

    def start(self, hparams: dict, resume_step: int) -> None:
        """Open the tracker run; a resumed run (resume_step > 0) continues the same one."""

    def log(self, step: int, metrics: dict) -> None:
        raise NotImplementedError

    def finish(self, result: dict) -> None:
        """The run's result (a completed, diverged, preempted or failed run alike)."""

    def close(self) -> None:
        """Release files and connections (after finish, or on an error)."""

    def _new_at(self, step: int, metrics: dict) -> dict:
        """The metrics not yet logged at `step`: the final evaluation's row shares the last
        row's step, and its `tokens` and `flops` were logged there a second time (a tracker
        of one value per step and name keeps both: two points at one step)."""
        if step != getattr(self, "_step", None):
            self._step, self._sent = step, set()
        new = {k: v for k, v in metrics.items() if k not in self._sent}
        self._sent |= new.keys()
        return new


class TensorBoardTracker(Tracker):
    """Event files in the run folder itself, so `tensorboard --logdir SWEEP` shows every run
    under its folder name; a resumed run purges the events after its checkpoint's step."""

    name = "tensorboard"

    def start(self, hparams: dict, resume_step: int) -> None:
        require("tensorboard", "tensorboard", "--logger tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        if resume_step and not any(self.run_dir.glob("events.out.tfevents.*")):
            self.replay_after = 0  # added at this resume: no events of the steps before
        self.w = SummaryWriter(str(self.run_dir), purge_step=resume_step + 1)
        self.hparams = {k: _param(v) for k, v in hparams.items()}
        if resume_step == 0:
            self.w.add_text("config", "\n".join(f"    {k} = {v!r}" for k, v in hparams.items()))

    def log(self, step: int, metrics: dict) -> None:
        for tag, v in self._new_at(step, metrics).items():
            self.w.add_scalar(tag, v, global_step=step)

    def finish(self, result: dict) -> None:
        from torch.utils.tensorboard.summary import hparams

        final = {f"result/{k}": v for k, v in _summary(result).items() if not isinstance(v, str)}
        # the HPARAMS view: each run's settings beside its final numbers, in this run's own
        # event file (SummaryWriter.add_hparams would open a second one)
        for summary in hparams(self.hparams, final):
            self.w.file_writer.add_summary(summary)
        step = int(result.get("steps") or 0)
        for tag, v in final.items():
            self.w.add_scalar(tag, v, global_step=step)

    def close(self) -> None:
        if getattr(self, "w", None) is not None:
            self.w.close()
            self.w = None


class CsvTracker(Tracker):
    """RUN/metrics.csv: one row per metrics row, in fixed columns (step and the tracked
    names; a spreadsheet's view of metrics.jsonl); a resumed run drops the rows after its
    checkpoint's step."""

    name = "csv"
    COLUMNS = ("step", *ROW_KEYS.values(), "loss/val_final")

    def start(self, hparams: dict, resume_step: int) -> None:
        self.path = self.run_dir / runfolder.METRICS_CSV
        buf = io.StringIO()
        w = csv.DictWriter(buf, self.COLUMNS)
        w.writeheader()
        if resume_step:
            kept = self._keep_rows(w, buf, resume_step) if self.path.exists() else 0
            self.replay_after = kept if kept < resume_step else None
        runfolder.write_metrics_csv(self.run_dir, buf.getvalue())
        self.f = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 -- kept open across steps
        self.w = csv.DictWriter(self.f, self.COLUMNS)

    def _keep_rows(self, w: csv.DictWriter, buf: io.StringIO, resume_step: int) -> int:
        """The rows of steps <= resume_step, as metrics.jsonl's truncation keeps its lines:
        a torn last line (a crash mid-write) is dropped, and a line that is no row with a
        step (damaged, edited by hand) stays as it is, with a warning naming it. Returns
        the last step kept (0: none)."""
        text = self.path.read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines()
        if lines and not text.endswith(("\n", "\r")):
            lines.pop()  # torn
        header = next(csv.reader(lines[:1]), [])
        odd, last = [], 0
        for i, line in enumerate(lines[1:], start=2):
            fields = next(csv.reader([line]), [])
            row = dict(zip(header, fields, strict=False))
            step = _number(row.get("step"))
            if step is None or len(fields) != len(header) or set(row) - set(self.COLUMNS):
                odd.append(i)
                buf.write(line + "\r\n")  # as it was (csv's own line ending)
            elif step <= resume_step:
                w.writerow(row)
                last = max(last, int(step))
        if odd:
            log.warning("%s", runfolder.odd_lines(self.path, odd))
        return last

    def log(self, step: int, metrics: dict) -> None:
        self.w.writerow({"step": step, **metrics})
        self.f.flush()

    def close(self) -> None:
        if getattr(self, "f", None) is not None:
            self.f.close()
            self.f = None


class WandbTracker(Tracker):
    """A W&B run of a random id kept in RUN/trackers.json, so a resumed run continues it
    and a run started afresh (no checkpoint; a folder made again) is a new W&B run: an id
    fixed by the folder's path attached a fresh run to the old one, whose later steps
    made W&B drop the new run's. The path's hash is left only to a resumed run whose last
    start logged to W&B (its config.toml, read before this start rewrites it) and kept no
    id: a folder of an older scalinglab. Without WANDB_DIR its files go into the run
    folder (RUN/wandb/)."""

    name = "wandb"

    def start(self, hparams: dict, resume_step: int) -> None:
        wandb = require("wandb", "wandb", "--logger wandb")
        ids = runfolder.read_trackers(self.run_dir)
        if resume_step and ids.get("wandb_run_id"):
            run_id = str(ids["wandb_run_id"])
        elif resume_step and "wandb" in runfolder.loggers_of_last_start(self.run_dir):
            # a folder of an older scalinglab, which logged to W&B under this hash of its
            # path and kept no id. Only such a one: a run that had no W&B before (--logger
            # wandb added at a resume) hashed its path too, so two runs made one after the
            # other in a folder of one path attached to one W&B run
            run_id = hashlib.sha256(str(self.run_dir.resolve()).encode()).hexdigest()[:16]
        else:
            run_id = secrets.token_hex(8)
            self.replay_after = 0 if resume_step else None
        try:
            self.run = wandb.init(
                project=os.environ.get("WANDB_PROJECT") or PROJECT, group=self.group,
                name=self.run_name, id=run_id, resume="allow", config=hparams,
                dir=os.environ.get("WANDB_DIR") or str(self.run_dir), reinit="create_new",
            )  # fmt: skip
            # every metric can also be plotted against tokens or FLOPs
            for x in ("tokens", "flops"):
                self.run.define_metric(x)
        except Exception as exc:  # login, mode, network: one line, before the run trains
            raise ConfigError(f"--logger wandb: cannot start a W&B run: {one_line(exc)}") from None
        runfolder.write_trackers(self.run_dir, {"wandb_run_id": run_id})

    def log(self, step: int, metrics: dict) -> None:
        self.run.log(metrics, step=step)

    def finish(self, result: dict) -> None:
        self.run.summary.update(_summary(result))

    def close(self) -> None:
        if getattr(self, "run", None) is not None:
            self.run.finish()
            self.run = None


class MlflowTracker(Tracker):
    """An MLflow run in the experiment of the run's sweep (`scalinglab` outside one), at
    MLFLOW_TRACKING_URI; a resumed run continues the run it started (RUN/trackers.json)."""

    name = "mlflow"

    def start(self, hparams: dict, resume_step: int) -> None:
        require("mlflow", "mlflow", "--logger mlflow")
        import mlflow
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        try:
            # The runs of a sweep start together, and opening a file store makes its
            # Default experiment where it is missing (a write that fails if another
            # process made it first: seen in CI), then we look for the sweep's experiment
            # and make it if missing (a file store checks the name and then makes it under
            # a random id: two runs made two experiments of one name). So the open, the
            # look and the create hold a lock of this machine's processes.
            with machine_lock(f"mlflow store {mlflow.get_tracking_uri()}"):
                self.client = MlflowClient()
                exp_id = self._experiment(self.group or PROJECT)
            known = runfolder.read_trackers(self.run_dir).get("mlflow_run_id")
            values = {k: str(_param(v))[:6000] for k, v in hparams.items()}
            if resume_step and known and not self._in_store(known, uri):
                known = None  # another store: a new MLflow run there
            if resume_step and known:
                self.run_id = known
                self.client.update_run(self.run_id, status="RUNNING")
                values = self._changed(values)
            else:
                tags = {"scalinglab.run_dir": str(self.run_dir.resolve())}
                if self.group:
                    tags["scalinglab.sweep"] = self.group
                run = self.client.create_run(exp_id, run_name=self.run_name, tags=tags)
                self.run_id = run.info.run_id
                self.replay_after = 0 if resume_step else None
                if known:
                    self._end_earlier(known)
            params = [Param(k, v) for k, v in values.items()]
            for i in range(0, len(params), 100):  # MLflow takes 100 params a batch
                self.client.log_batch(self.run_id, params=params[i : i + 100])
            runfolder.write_trackers(self.run_dir, {"mlflow_run_id": self.run_id})
        except Exception as exc:  # a bad URI, a store it cannot open: one line, before training
            raise ConfigError(mlflow_refusal(uri, exc)) from None
        self.status = "KILLED"

    def _in_store(self, run_id: str, uri: str) -> bool:
        """Whether this store holds the MLflow run the folder's trackers.json names. A run
        resumed at another MLFLOW_TRACKING_URI (a folder copied to another machine, a new
        server) was refused, "cannot log to ...: Run '...' not found", though the store
        works: it starts a new MLflow run there, with a warning."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            log.warning(
                "--logger mlflow: %s: its MLflow run %s is not at "
                "MLFLOW_TRACKING_URI=%r; the resumed run logs to a new MLflow run there",
                self.run_dir, run_id, uri or "(unset)",
            )  # fmt: skip
            return False
        return True

    def _end_earlier(self, old: str) -> None:
        """A run started again from step 0 (killed before its first checkpoint) is a new
        MLflow run: the earlier one, still RUNNING (its process was killed), ends KILLED,
        tagged with its successor's id, instead of running forever beside it."""
        with contextlib.suppress(Exception):  # gone, another store: nothing to end
            if self.client.get_run(old).info.status == "RUNNING":
                self.client.set_tag(old, "scalinglab.restarted_as", self.run_id)
                self.client.set_terminated(old, "KILLED")

    def _changed(self, values: dict) -> dict:
        """A resumed run's hyperparameters against those its MLflow run has: MLflow's
        params cannot change, so a changed value (a resume under a larger budget: D, C,
        train.steps) becomes the tag `scalinglab.resumed.KEY`, with a warning; returns the
        new keys, to log as params."""
        logged = self.client.get_run(self.run_id).data.params
        changed = {k: v for k, v in values.items()
                   if k in logged and logged[k] != v and k not in INVOCATION}  # fmt: skip
        for k, v in changed.items():
            self.client.set_tag(self.run_id, f"scalinglab.resumed.{k}", v[:5000])
        if changed:
            was = ", ".join(f"{k} {logged[k]} -> {v}" for k, v in list(changed.items())[:5])
            log.warning(
                "--logger mlflow: %s resumes with changed settings (%s%s): MLflow "
                "keeps the first values as params; the new ones are the tags "
                "scalinglab.resumed.KEY", self.run_dir, was, ", ..." if len(changed) > 5 else "",
            )  # fmt: skip
        return {k: v for k, v in values.items() if k not in logged}

    def _experiment(self, name: str) -> str:
        """The id of experiment `name`, made if it is not there (called under the store's
        machine lock). Where another machine made it between our look and our create, a
        store that checks names (a tracking server's database) refuses the create
        ("already exists"), and the experiment is there to read."""
        exp = self.client.get_experiment_by_name(name)
        if exp:
            return exp.experiment_id
        try:
            return self.client.create_experiment(name)
        except Exception:
            exp = self.client.get_experiment_by_name(name)
            if exp is None:  # not that race: the store's own error, as it said it
                raise
            return exp.experiment_id

    def log(self, step: int, metrics: dict) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in self._new_at(step, metrics).items()]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def finish(self, result: dict) -> None:
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(result.get("steps") or 0)
        summary = _summary(result)
        batch = [Metric(f"result/{k}", float(v), now, step) for k, v in summary.items()
                 if not isinstance(v, str)]  # fmt: skip
        self.client.log_batch(self.run_id, metrics=batch)
        self.client.set_tag(self.run_id, "scalinglab.status", result.get("status", ""))
        ok = result.get("status") in ("completed", "diverged", "preempted")
        self.status = "FINISHED" if ok else "FAILED"

    def close(self) -> None:
        if getattr(self, "run_id", None) is not None:
            with contextlib.suppress(Exception):  # closing must not hide the run's own error
                self.client.set_terminated(self.run_id, self.status)
            self.run_id = None


KINDS = {c.name: c for c in (TensorBoardTracker, WandbTracker, MlflowTracker, CsvTracker)}


def one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."


# A probe of an MLflow server asks once and waits 10 s at most (unless the user set
# these): MLflow's own 7 retries with backoff took 268 s to say a server was down.
PROBE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


@contextlib.contextmanager
def _quick_requests():
    unset = [k for k in PROBE_ENV if k not in os.environ]
    os.environ.update({k: PROBE_ENV[k] for k in unset})
    try:
        yield
    finally:
        for k in unset:
            os.environ.pop(k, None)


def check_loggers(names, probe: bool = False) -> list[str]:
    """The tracker names, checked (known; each once) and their packages importable; with
    `probe`, MLflow's store is opened too. A sweep or study probes before any run starts,
    so that a bad MLFLOW_TRACKING_URI is one line, not a failed run each."""
    names = list(dict.fromkeys(names or []))
    for n in names:
        if n not in KINDS:
            raise ConfigError(f"--logger {n!r} is not one of {', '.join(LOGGERS)}")
    for n in names:
        if n != "csv":
            require(n, n, f"--logger {n}")
    if probe and "mlflow" in names:
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        try:
            with _quick_requests():
                MlflowClient().search_experiments(max_results=1)
        except Exception as exc:
            raise ConfigError(mlflow_refusal(uri, exc)) from None
    return names


def mlflow_refusal(uri: str, exc: Exception) -> str:
    """One line for an MLflow store that refused the run, with the way out first: MLflow's
    own (MLFLOW_ALLOW_FILE_STORE=true for a file: store) came at the end of a paragraph
    that one_line cut, and an unset URI was refused in words about a model registry."""
    text = " ".join(str(exc).split())
    fix = ""
    if "MLFLOW_ALLOW_FILE_STORE" in text:
        fix = "this MLflow opens a file: store only with MLFLOW_ALLOW_FILE_STORE=true (set it, or use an http:// server); "
    elif not uri:
        fix = ("set MLFLOW_TRACKING_URI (an http:// server, or file:./mlruns with "
               "MLFLOW_ALLOW_FILE_STORE=true): unset, MLflow's default store is one its client "
               "cannot write; ")  # fmt: skip
    return (f"--logger mlflow: cannot log to MLFLOW_TRACKING_URI={uri or '(unset)'!r}: {fix}"
            f"{one_line(exc)}")  # fmt: skip


def _replay(started: list[Tracker], run_dir: Path, resume_step: int) -> None:
    """Send a tracker run begun at a resume the rows metrics.jsonl holds up to the
    checkpoint's step (those after it, a killed attempt's, are about to be dropped): it
    then shows the whole run, as one that was there from the start does, but for the
    throughput, which metrics.jsonl does not keep."""
    todo = [t for t in started if t.replay_after is not None]
    if not todo or not resume_step:
        return
    rows = runfolder.read_metrics(run_dir)
    for t in todo:
        for row in rows:
            step = row.get("step")
            if (
                isinstance(step, int)
                and not isinstance(step, bool)
                and t.replay_after < step <= resume_step
            ):
                t.log(step, row_metrics(row))


def open_trackers(names, run_dir: Path, hparams: dict, resume_step: int,
                  run_name: str, group: str | None) -> list[Tracker]:  # fmt: skip
    """Start the named trackers for one run; if one cannot start, close those started and
    raise (ConfigError or MissingExtraError, one line). MLflow's store is probed before
    any starts: a W&B run begun beside an MLflow store that refuses was left behind."""
    started: list[Tracker] = []
    names = check_loggers(names, probe=True)
    try:
        for n in names:
            t = KINDS[n](run_dir, run_name, group)
            t.start(hparams, resume_step)
            started.append(t)
        _replay(started, run_dir, resume_step)
    except BaseException:
        for t in started:
            try:  # the error to show is the start's, not a close's after it
                t.close()
            except Exception as exc:
                log.warning("--logger %s: %s", t.name, one_line(exc))
        raise
    return started
