"""The run folder: its file names, reading and writing its files, when a run is finished,
and whose it is.

One training run lives in one folder (docs/training.md, docs/sweeps.md)::

    RUN/config.toml      the fully resolved config (the trainer writes it at each start)
    RUN/run.toml         a sweep's input to the trainer (the driver writes it)
    RUN/sweep.json       the design's columns and the planned N, D, C (the driver)
    RUN/metrics.jsonl    one JSON object per log/eval step
    RUN/ckpt/step-N/     checkpoints (train/checkpoint.py owns their inside)
    RUN/result.json      written atomically when the run ends
    RUN/train.log        a sweep worker's log of every attempt
    RUN/history.jsonl    settings changed on resume with --allow-config-change (one line each)
    RUN/trackers.json    the ids of the run's tracker runs (--logger wandb, mlflow), to resume them
    RUN/metrics.csv      --logger csv: the metrics rows as CSV
    RUN/tasks.json       task results of `scalinglab eval --tasks`, per task and checkpoint
    RUN/.lock            held (flock) by the trainer, or by a sweep worker while its trainer
                         lives; it holds the holder's pid and host (`hold_lock`)

Every room that reads or writes these goes through here. This module is part of the
base layer: it imports only scalinglab.errors, .fsio, .config and the standard library.

**Finished, resumable, failed.** One rule, from result.json's status (`run_state`):
completed and diverged runs are *finished* (a rerun skips them); a preempted run, or one
without a result (never started, or killed), is *resumable* (a rerun continues it from
its newest checkpoint); a failed run is *failed* (a sweep retries it, up to --retries).

**Whose checkpoint.** Each checkpoint records the `run_id` of the run that wrote it and
its `lineage_id`: the run's identity without the fields a continuation may set anew
(`CONTINUABLE`: the budget, the decay of the schedule, and how much of the validation
split the final evaluation reads). A run resumes only from a checkpoint of its own
lineage (`check_checkpoint`), so another run's checkpoint is refused with one line naming
both run ids. Why not the full run_id: a larger budget continues a run (docs/training.md),
and a WSD branch (sweep/wsd.py) starts from a copy of its stable run's checkpoint — a
constant-LR run of another length; both share the branch's lineage, since up to the
checkpoint they are the same run, and the copy stays byte for byte the stable run's, so
branching stays bitwise. Checkpoints written before this rule record no lineage: they
resume as before (the trainer still refuses a changed model or data, train/setup.py).
"""

import contextlib
import dataclasses
import fcntl
import json
import logging
import math
import os
import shutil
import socket
import time
from pathlib import Path

from scalinglab.config import (
    CONFIG_FORMAT_VERSION,
    OPERATIONAL,
    RunConfig,
    TrainConfig,
    dumps_toml,
    load_toml,
    order_before_field,
    run_identity,
)
from scalinglab.errors import CheckpointError, ConfigError, DataError, ScalingLabError
from scalinglab.fsio import atomic_write_bytes, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

CONFIG = "config.toml"
RUN_TOML = "run.toml"
SWEEP_JSON = "sweep.json"
METRICS = "metrics.jsonl"
RESULT = "result.json"
CKPT = "ckpt"
TOKENIZER = "tokenizer.json"
TRAIN_LOG = "train.log"
HISTORY = "history.jsonl"
TRACKERS = "trackers.json"
METRICS_CSV = "metrics.csv"
TASKS = "tasks.json"
TASKS_FORMAT_VERSION = 2
"""2: a multiple-choice `bpb` counts the bytes of what was scored, the choice with the
context's trailing whitespace moved onto it (1 divided that whitespace's bits by the
choice's bytes alone: 4.9% high on `recall`); version 1's results are read without it."""
LOCK = ".lock"
LOCK_HELD_ENV = "SCALINGLAB_RUN_LOCK_HELD"
"""Set by a sweep worker for its trainer: which RUN/.lock (device:inode) it holds for it."""
MARKERS = (RESULT, CONFIG, RUN_TOML, SWEEP_JSON)
"""A folder holding any of these is a run folder."""
RUN_FILES = (*MARKERS, METRICS, CKPT, TOKENIZER, TRAIN_LOG, HISTORY, TRACKERS, METRICS_CSV,
             TASKS, LOCK)  # fmt: skip
"""The names a run folder's own files (and checkpoint folder) have."""

RESULT_FORMAT_VERSION = 1
FINISHED = ("completed", "diverged")
"""Statuses a rerun skips."""
CONTINUABLE = ("steps", "tokens", "flops", "time", "schedule", "cooldown_frac", "min_lr",
               "eval_tokens")  # fmt: skip
"""Train fields a resumed run may change: not part of its lineage."""


def is_run_folder(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.is_dir() and any((path / m).exists() for m in MARKERS)


def folder_arg(value, flag: str = "--out", *, file_ok: bool = False) -> Path:
    """`value`, a folder to write or read, as a Path: None or another type (a dict), and
    (unless `file_ok`: the caller says better what a file is not) a path that exists and
    is no folder, are refused naming `flag` (from Python they were pathlib's TypeError, or
    FileExistsError from deep inside)."""
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        raise ConfigError(f"{flag}: a folder path is needed, got {value!r}")
    path = Path(value)
    if not file_ok and path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: exists and is not a folder")
    return path


def run_folder_of(path: str | os.PathLike, root: str | os.PathLike) -> Path | None:
    """The innermost run folder that is `path` or holds it, searched from `path` up to
    `root` (included) only; None when `path` does not lie inside `root` or no folder on
    the way is a run folder. What an --out inside a folder of runs would write among."""
    path, top = Path(path).absolute(), Path(root).resolve()
    if not path.resolve().is_relative_to(top):
        return None
    for folder in (path, *path.parents):
        if is_run_folder(folder):
            return folder
        if folder.resolve() == top:
            return None
    return None


# --- config.toml / run.toml -------------------------------------------------


def write_config(run_dir: str | os.PathLike, cfg: RunConfig, name: str = CONFIG) -> None:
    """Write RUN/config.toml (the resolved config, with its format_version) atomically;
    `name=RUN_TOML` writes a sweep's input to the trainer."""
    d = {"format_version": CONFIG_FORMAT_VERSION, **cfg.to_dict()}
    atomic_write_text(Path(run_dir) / name, dumps_toml(d))


def _config_toml(run_dir) -> tuple[Path, dict] | None:
    """(path, TOML) of RUN/config.toml, else RUN/run.toml; None if absent or unreadable."""
    found, _ = _config_toml_or_why(run_dir)
    return found


def _config_toml_or_why(run_dir) -> tuple[tuple[Path, dict] | None, str | None]:
    """(_config_toml's answer, why it is None though a file exists: its TOML error)."""
    for name in (CONFIG, RUN_TOML):
        path = Path(run_dir) / name
        if path.exists():
            try:
                return (path, load_toml(path)), None
            except ScalingLabError as exc:
                return None, str(exc)
    return None, None


def read_config_dict(run_dir: str | os.PathLike) -> dict | None:
    """The raw TOML of RUN/config.toml, else RUN/run.toml; None if absent or unreadable."""
    found = _config_toml(run_dir)
    return found[1] if found else None


def check_format_version(path, d: dict, known: int, missing: int | None = 1) -> None:
    """DataError naming the file when `d` is of a format_version this code does not read;
    a file without one is of version `missing` (1: a trainer of its own need not write
    it; None: a file scalinglab always versioned, refused without one)."""
    version = d.get("format_version", missing)
    if version != known:
        raise DataError(f"{path}: format_version {version!r}; this scalinglab reads {known}")


def read_config(run_dir: str | os.PathLike) -> RunConfig | None:
    """The run's config (config.toml, else run.toml), or None if absent or invalid;
    DataError naming the file when it is of another format_version (a newer scalinglab's:
    read as this one's, its numbers could be wrong)."""
    return _config_or_why(run_dir)[0]


def _config_or_why(run_dir) -> tuple[RunConfig | None, str | None]:
    """(read_config's answer, why it is None though a file exists)."""
    found, why = _config_toml_or_why(run_dir)
    if found is None:
        return None, why
    check_format_version(found[0], found[1], CONFIG_FORMAT_VERSION)
    try:
        return folder_config(found[1], str(found[0])), None
    except ScalingLabError as exc:
        return None, str(exc)


def folder_config(d: dict, where: str) -> RunConfig:
    """A run folder's config.toml (or run.toml) as a RunConfig. One written before
    `order` existed has no such key: its run trained in the order of its model then
    (`order_before_field`), not in today's default."""
    cfg = RunConfig.from_dict(d, where)
    if "order" in d.get("train", {}):
        return cfg
    old = dataclasses.replace(cfg.train, order=order_before_field(cfg.model))
    return dataclasses.replace(cfg, train=old)


def config_problem(run_dir: str | os.PathLike) -> str | None:
    """Why the run's config.toml (else run.toml) exists but `read_config` gives None for
    it: the error naming the file (and the line of a TOML syntax error); None when it is
    absent or reads."""
    return _config_or_why(run_dir)[1]


def load_config(run_dir: str | os.PathLike) -> RunConfig:
    """A trained run's RUN/config.toml; DataError/ConfigError naming the file if it is not."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        if run_dir.exists():
            raise DataError(f"{run_dir}: not a folder (give a run folder)")
        raise DataError(f"run folder not found: {run_dir}")
    path = run_dir / CONFIG
    if not path.exists():
        inside = sorted(
            p.parent for p in (*run_dir.glob(f"*/{CONFIG}"), *run_dir.glob(f"runs/*/{CONFIG}"))
        )
        if inside:  # a sweep's folder: 'DIR/config.toml is missing' left the user guessing
            raise DataError(
                f"{run_dir}: a folder of {len(inside)} runs, not one run folder (give one, "
                f"e.g. {inside[0]})"
            )
        raise DataError(f"not a run folder: {path} is missing")
    d = load_toml(path)
    if not isinstance(d.get("model"), dict) or "vocab_size" not in d["model"]:
        # the trainer always writes [model] with its vocab_size: an empty or hand-cut file
        # read as every default said only 'needs a vocabulary size (vocab_size is 0)'
        what = (
            "has no vocab_size in [model]"
            if isinstance(d.get("model"), dict)
            else "has no [model] table"
        )
        raise DataError(f"{path}: {what}, which the trainer writes: damaged or written by hand?")
    return folder_config(d, str(path))


def read_trackers(run_dir: str | os.PathLike) -> dict:
    """RUN/trackers.json: the ids of the run's tracker runs, or {} if absent or unreadable."""
    return _json_object(Path(run_dir) / TRACKERS) or {}


def write_trackers(run_dir: str | os.PathLike, ids: dict) -> None:
    """Add `ids` to RUN/trackers.json (atomically)."""
    atomic_write_json(Path(run_dir) / TRACKERS, read_trackers(run_dir) | ids)


def loggers_of_last_start(run_dir: str | os.PathLike) -> list[str]:
    """The loggers RUN/config.toml lists: those of the run's last start (read before this
    start writes it anew); [] when absent or unreadable. It names the trackers a resumed
    run had before, as trackers.json keeps no id of a run of an older scalinglab."""
    path = Path(run_dir) / CONFIG
    try:
        loggers = load_toml(path).get("train", {}).get("loggers", [])
    except (OSError, ScalingLabError, AttributeError):
        return []
    return [x for x in loggers if isinstance(x, str)] if isinstance(loggers, list) else []


class FolderAsFound:
    """A run folder as a start found it, to put back when the start fails before training
    (a tracker that cannot start): the entries it added are removed, the files a
    tracker's start rewrites (trackers.json, metrics.csv) get their bytes back, and the
    folders it made (`--out` and any missing parents: `made`, the topmost) go, where
    empty. `.lock` stays in a folder that was there (a trainer waiting on it may hold it
    open); a folder made here goes with its lock."""

    REWRITTEN = (TRACKERS, METRICS_CSV)

    def __init__(self, run_dir: str | os.PathLike, made: Path | None):
        self.run_dir, self.made = Path(run_dir), made
        self.names = set() if made else set(os.listdir(self.run_dir)) | {LOCK}
        self.saved = {}
        for name in self.REWRITTEN:
            with contextlib.suppress(OSError):  # absent: nothing to put back
                self.saved[name] = (self.run_dir / name).read_bytes()

    @staticmethod
    def missing_from(path: Path) -> Path | None:
        """The topmost folder of `path` (itself or a parent) that does not exist yet."""
        path, top = Path(path).absolute(), None
        while not path.exists() and path != path.parent:
            path, top = path.parent, path
        return top

    def restore(self) -> None:
        """Put the folder back as found; what cannot be removed stays, with a warning."""
        try:
            for name in set(os.listdir(self.run_dir)) - self.names:
                entry = self.run_dir / name
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            for name, data in self.saved.items():
                path = self.run_dir / name
                if not path.exists() or path.read_bytes() != data:
                    atomic_write_bytes(path, data)
            if self.made:
                folder = self.run_dir.absolute()
                while True:
                    folder.rmdir()
                    if folder == self.made:
                        break
                    folder = folder.parent
        except OSError as exc:
            log.warning("%s: could not remove what this start wrote: %s",
                        self.run_dir, exc)  # fmt: skip


def write_metrics_csv(run_dir: str | os.PathLike, text: str) -> Path:
    """RUN/metrics.csv, replaced atomically (its header and the rows a resume keeps)."""
    path = Path(run_dir) / METRICS_CSV
    atomic_write_text(path, text)
    return path


def read_sweep_meta(run_dir: str | os.PathLike) -> dict:
    """RUN/sweep.json (the design's columns, the planned N, D, C), or {} if absent or
    unreadable."""
    return _json_object(Path(run_dir) / SWEEP_JSON) or {}


def _json_object(path: Path) -> dict | None:
    """A JSON file's object, or None when absent, unreadable or not an object."""
    return _json_object_or_why(path)[0]


def _json_object_or_why(path: Path) -> tuple[dict | None, str | None]:
    """(the JSON file's object, None), or (None, why not: "PATH: empty" and the like);
    (None, None) when the file is absent."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{path}: cannot read ({exc.strerror or exc})"
    if not data.strip():
        return None, f"{path}: empty"
    try:
        d = json.loads(data.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError is one
        return None, f"{path}: not JSON (truncated or damaged)"
    return (d, None) if isinstance(d, dict) else (None, f"{path}: not a JSON object")


# --- result.json --------------------------------------------------------------


def finite_or_none(d: dict) -> dict:
    """`d` with NaN and infinite floats as None (JSON has no such numbers)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def write_result(run_dir: str | os.PathLike, result: dict) -> dict:
    """Write RUN/result.json atomically; non-finite numbers become null. Returns what was
    written."""
    clean = finite_or_none({"format_version": RESULT_FORMAT_VERSION, **result})
    atomic_write_json(Path(run_dir) / RESULT, clean)
    return clean


RESULT_NUMBERS = (
    "val_loss", "val_ppl", "val_bpb", "last_eval_loss", "train_loss", "params",
    "params_nonembed", "flops_per_token", "steps", "tokens", "flops", "flops_6nd",
    "unique_tokens", "epochs", "wall_seconds", "train_seconds", "tokens_per_second",
)  # fmt: skip
"""result.json's fields that are numbers (or null) in every run that has them."""
RESULT_POSITIVE = ("params", "params_nonembed", "tokens", "flops", "flops_6nd")
"""N, D and C: the runs table's columns the fitter reads; a completed run's are > 0."""


def read_result(run_dir: str | os.PathLike) -> dict | None:
    """RUN/result.json, or None when absent or unreadable (a run still going); DataError
    naming the file when it is of another format_version, or when one of RESULT_NUMBERS
    is not a number >= 0 (a table or a report would carry it as one)."""
    path = Path(run_dir) / RESULT
    d = _json_object(path)
    if d is not None:
        check_format_version(path, d, RESULT_FORMAT_VERSION)
        for k in RESULT_NUMBERS:
            v = d.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise DataError(f"{path}: {k} is {json.dumps(v)}, not a number")
            if v is not None and v < 0:  # a loss, a count, seconds: none is below 0 (a
                # val_loss of -3 was listed as a completed run's loss)
                least = "a positive number" if k in RESULT_POSITIVE else "a number >= 0"
                raise DataError(f"{path}: {k} is {json.dumps(v)}, not {least}")
    return d


def result_problem(run_dir: str | os.PathLike) -> str | None:
    """Why RUN/result.json exists but cannot be read (`read_result` gives None for it, as
    for a run still writing): "PATH: not JSON", "...: empty", "...: not a JSON object";
    None when it is absent or readable."""
    return _json_object_or_why(Path(run_dir) / RESULT)[1]


def run_state(result: dict | None) -> str:
    """What a rerun does with a run whose result.json is `result` (see the module's doc):
    'finished', 'resumable' or 'failed'."""
    status = (result or {}).get("status")
    if status in FINISHED:
        return "finished"
    if status == "failed":
        return "failed"
    return "resumable"  # preempted, or no result yet


def is_finished(run_dir: str | os.PathLike) -> bool:
    return run_state(read_result(run_dir)) == "finished"


def table_status(run_dir: str | os.PathLike, result: dict | None) -> str:
    """The runs table's status: result.json's, else incomplete (started: metrics written,
    or a sweep worker's train.log, which it opens as it starts the trainer; no result)
    or pending (planned, not started)."""
    if result:
        return result.get("status", "unknown")
    started = (Path(run_dir) / METRICS).exists() or (Path(run_dir) / TRAIN_LOG).exists()
    return "incomplete" if started else "pending"


# --- metrics.jsonl ------------------------------------------------------------


def metrics_line(row: dict) -> tuple[dict, str]:
    """(the row as written, its metrics.jsonl line): non-finite numbers become null."""
    clean = finite_or_none(row)
    return clean, json.dumps(clean) + "\n"


def _lines(data: bytes):
    """(line number, raw line, the row or None when not a JSON object, torn) per line.
    `torn`: the last line when the file does not end with a newline (a write cut short)."""
    chunks = data.split(b"\n")
    tail = chunks.pop()  # b"" when the file ends with a newline
    for i, raw in enumerate(chunks, 1):
        yield i, raw, _row(raw), False
    if tail:
        yield len(chunks) + 1, tail, _row(tail), True


def _row(raw: bytes) -> dict | None:
    try:
        d = json.loads(raw.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError is one
        return None
    return d if isinstance(d, dict) else None


def parse_metrics(data: bytes, source: str = METRICS, strict: bool = False) -> list[dict]:
    """The rows of metrics.jsonl content. A torn last line (no newline: a run writing, or
    killed mid-line) is skipped. Any other line that is not a JSON object is skipped, or
    with `strict` raises DataError naming `source` and the line."""
    rows = []
    for i, raw, row, torn in _lines(data):
        if row is not None:
            rows.append(row)
        elif strict and not torn:
            what = "not a JSON object" if _is_json(raw) else "not JSON"
            raise DataError(f"{source}: line {i}: {what}")
    return rows


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw.decode("utf-8"))
    except ValueError:
        return False
    return True


def read_metrics(run_dir: str | os.PathLike, strict: bool = False) -> list[dict]:
    """The rows of RUN/metrics.jsonl, in order ([] when absent); see `parse_metrics`."""
    path = Path(run_dir) / METRICS
    try:
        data = path.read_bytes()
    except OSError as exc:
        if strict:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
        return []
    return parse_metrics(data, str(path), strict)


def metrics_problems(run_dir: str | os.PathLike) -> list[str]:
    """ "PATH: line N: not JSON" for each line of RUN/metrics.jsonl that `read_metrics`
    skips, but for a torn last line (a run writing, or killed mid-line)."""
    path = Path(run_dir) / METRICS
    try:
        data = path.read_bytes()
    except OSError:
        return []
    return [
        f"{path}: line {i}: {'not a JSON object' if _is_json(raw) else 'not JSON'}"
        for i, raw, row, torn in _lines(data)
        if row is None and not torn
    ]


def latest_metrics(run_dir: str | os.PathLike, max_bytes: int = 8192) -> dict:
    """The latest non-null value of each key in the last `max_bytes` of RUN/metrics.jsonl
    (evaluation lines carry no train_loss): a live view of a run, read cheaply."""
    try:
        with open(Path(run_dir) / METRICS, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - max_bytes))
            data = f.read()
    except OSError:
        return {}
    last: dict = {}
    for row in parse_metrics(data):  # a first line cut by the seek is skipped
        last.update({k: v for k, v in row.items() if v is not None})
    return last


def odd_lines(path, numbers: list[int]) -> str:
    """The warning for the lines of a metrics file that are no rows, kept as they were."""
    lines = ", ".join(map(str, numbers[:5])) + (", ..." if len(numbers) > 5 else "")
    return (f"{path}: line(s) {lines} are not metrics rows: kept as they are, with the rows "
            "after them (readers skip them)")  # fmt: skip


def truncate_metrics(run_dir: str | os.PathLike, step: int, final_too: bool = False) -> list[int]:
    """Drop the rows of steps > `step` (every line when step is 0) and a torn last line
    (a crash mid-write): a resumed run's file reads as one run; `final_too`: the final
    evaluation's row at `step` as well (a run killed after writing it, before its result,
    evaluates again). Any other line that is not a row with a step (edited by hand,
    damaged) stays as it is, and so does every row after it; returns those lines' numbers
    (readers skip them)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    kept, odd = [], []
    for i, raw, row, torn in _lines(path.read_bytes()):
        if torn or not step:
            continue
        at = row.get("step") if row is not None else None
        if isinstance(at, int | float) and not isinstance(at, bool):
            if at > step or (final_too and at == step and row.get("final") is True):
                continue
        else:
            odd.append(i)
        kept.append(raw + b"\n")
    atomic_write_bytes(path, b"".join(kept))
    return odd


# --- identity -------------------------------------------------------------------


def run_id(cfg: RunConfig, data_id: str) -> str:
    """The run's id: a short hash of everything that determines its result
    (config.run_identity; a sweep's folder names start with its first 8 digits)."""
    return run_identity(cfg, data_id)[:12]


def lineage_id(cfg: RunConfig, data_id: str) -> str:
    """run_id without the CONTINUABLE fields: the same for every run that continues
    another (a larger budget, a WSD branch of its stable run)."""
    neutral = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in CONTINUABLE}
    same = RunConfig(model=cfg.model, train=dataclasses.replace(cfg.train, **neutral))
    return run_identity(same, data_id)[:12]


def checkpoint_owner(cfg: RunConfig, data_id: str) -> dict:
    """What each checkpoint records about the run that wrote it (in its manifest)."""
    return {"run_id": run_id(cfg, data_id), "lineage_id": lineage_id(cfg, data_id)}


def check_checkpoint(
    ckpt_dir: str | os.PathLike,
    recorded: dict,
    cfg: RunConfig,
    data_id: str,
    saved: dict | None = None,
    allow_change: bool = False,
) -> dict:
    """Refuse to resume the run `cfg` from a checkpoint another run wrote, or from one of
    its own run written under other settings; return the settings `allow_change` let
    through ({field: [old, new]}, {} when none changed), for `append_history`.

    `recorded` is the checkpoint's manifest, `saved` the config in its state. Whose it is:
    its lineage_id is this run's; or a change already accepted in RUN/history.jsonl; or it
    is the lineage of RUN/config.toml (the settings this folder's run last started with),
    so the settings changed since: refused naming each `--flag old -> new`, unless
    `allow_change` (--allow-config-change). Anything else is another run's checkpoint
    (copied or linked into this folder), refused naming both run ids whatever
    `allow_change` says. A checkpoint without a lineage_id (written before checkpoints
    recorded it) is accepted: the trainer's model and data checks still apply."""
    theirs, mine = recorded.get("lineage_id"), lineage_id(cfg, data_id)
    if theirs is None or theirs == mine:
        return {}
    ckpt_dir = Path(ckpt_dir)
    run_dir = ckpt_dir.parent.parent
    history = read_history(run_dir)
    if any(h.get("from_lineage") == theirs and h.get("to_lineage") == mine for h in history):
        return {}
    own = read_config(run_dir)
    changes = {}
    if own is not None and saved is not None and lineage_id(own, data_id) == theirs:
        names = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in CONTINUABLE]
        changes = changed_fields(saved.get("train", {}), cfg.to_dict()["train"], names)
        # eval_every steers the LR under plateau annealing: part of the run's identity
        steer = saved.get("train", {}).get("plateau_factor") or cfg.train.plateau_factor
        changes = {
            k: v for k, v in changes.items()
            if k not in OPERATIONAL or (k == "eval_every" and steer)
        }  # fmt: skip
    if not changes:
        raise CheckpointError(
            f"{ckpt_dir}: this checkpoint belongs to run {recorded.get('run_id')}, not to "
            f"this run {run_id(cfg, data_id)}; use a new --out folder or that run's settings"
        )
    if not allow_change:
        raise CheckpointError(
            f"cannot resume {run_dir} from {ckpt_dir.name}: settings changed since it was "
            f"written ({describe_changes(changes)}); pass --allow-config-change to continue "
            f"with them (recorded in {run_dir / HISTORY}), or use a new --out folder"
        )
    return changes


# --- where checkpoints live -------------------------------------------------------


def checkpoint_root(run_dir: str | os.PathLike) -> Path:
    """RUN/ckpt, refused when it leads into another run's folder (a symbolic link there):
    resuming would take that run's weights and pruning would delete its checkpoints.

    A link elsewhere (a scratch disk that is no run's folder) is allowed: the checkpoint
    module deletes only this run's checkpoints in it (train/checkpoint.prune)."""
    run_dir = Path(run_dir)
    root = run_dir / CKPT
    if not root.is_symlink():
        return root
    target = Path(os.path.realpath(root))
    own = Path(os.path.realpath(run_dir))
    for folder in (target, *target.parents):
        if folder == own:
            return root  # a link within the run's own folder
        if is_run_folder(folder):
            raise CheckpointError(
                f"{root} is a link into another run's folder ({folder}); a run keeps its "
                "checkpoints in its own folder: remove the link, or pass that run's "
                "folder as --out"
            )
    return root


# --- history of changed settings -------------------------------------------------


def changed_fields(old: dict, new: dict, names) -> dict:
    """{field: [old, new]} of the `names` whose values differ between two config tables."""
    return {n: [old.get(n), new.get(n)] for n in names if old.get(n) != new.get(n)}


def describe_changes(changes: dict) -> str:
    """`--lr 0.001 -> 0.002, --seed 1 -> 2`: each changed field with its flag."""
    return ", ".join(f"--{k.replace('_', '-')} {a!r} -> {b!r}" for k, (a, b) in changes.items())


def append_history(run_dir: str | os.PathLike, entry: dict) -> None:
    """Append one event (a JSON object) to RUN/history.jsonl, with the time it happened.

    Rewritten atomically with the earlier lines, so a crash leaves the old file or the new."""
    path = Path(run_dir) / HISTORY
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **entry}) + "\n"
    atomic_write_text(path, old + line)


def read_history(run_dir: str | os.PathLike) -> list[dict]:
    """The events of RUN/history.jsonl, oldest first ([] when absent)."""
    try:
        data = (Path(run_dir) / HISTORY).read_bytes()
    except OSError:
        return []
    return parse_metrics(data, HISTORY)


def own_lineages(run_dir: str | os.PathLike, lineage: str) -> set[str]:
    """`lineage` and every lineage this folder's run had before a change of settings that
    led to it (--allow-config-change, RUN/history.jsonl): its checkpoints are the run's own."""
    own, changes = {lineage}, read_history(run_dir)
    grown = True
    while grown:
        more = {h["from_lineage"] for h in changes
                if h.get("to_lineage") in own and h.get("from_lineage")}  # fmt: skip
        grown = not more <= own
        own |= more
    return own


# --- tasks.json -------------------------------------------------------------------


def read_tasks(run_dir: str | os.PathLike) -> list[dict]:
    """The task results in RUN/tasks.json (`scalinglab eval --tasks`), [] when absent.

    Each is {task, step, tokens, flops, sha256 (the items' identity), n, metrics...};
    DataError naming the file when it is of a format_version this code does not read."""
    return _tasks_or_why(run_dir)[0]


def _tasks_or_why(run_dir) -> tuple[list[dict], str | None]:
    path = Path(run_dir) / TASKS
    d, why = _json_object_or_why(path)
    if d is None:
        return [], why
    old = d.get("format_version") == 1
    if not old:
        check_format_version(path, d, TASKS_FORMAT_VERSION, missing=None)
    results = d.get("results", [])
    if not isinstance(results, list):
        return [], f"{path}: 'results' is not a list"
    results = [r for r in results if isinstance(r, dict)]
    if old:  # its bpb is another number than this version's: left out, not shown as one
        results = [{k: v for k, v in r.items() if k != "bpb"} for r in results]
    return results, None


def tasks_problem(run_dir: str | os.PathLike) -> str | None:
    """Why RUN/tasks.json exists but cannot be read (`read_tasks` gives [] for it): "PATH:
    not JSON (truncated or damaged)" and the like; None when it is absent or readable."""
    return _tasks_or_why(run_dir)[1]


def check_tasks_readable(run_dir: str | os.PathLike) -> None:
    """DataError naming RUN/tasks.json when it exists but cannot be read: rewriting it
    would lose every result it holds."""
    problem = tasks_problem(run_dir)
    if problem:
        raise DataError(
            f"{problem}; its earlier task results would be lost: mend or move it, then score again"
        )


def record_tasks(run_dir: str | os.PathLike, results: list[dict]) -> list[dict]:
    """Add task results to RUN/tasks.json atomically: a result of the same task, step and
    items replaces the old one; the others are kept. Returns every result now recorded.
    A tasks.json that does not read is a DataError, never overwritten."""
    check_tasks_readable(run_dir)
    new = {_task_key(r) for r in results}
    kept = [r for r in read_tasks(run_dir) if _task_key(r) not in new]
    # when it was scored: of two item sets alike in size (a task file corrected, scored
    # again), the runs table shows the newer (sweep.table.task_items, final_tasks)
    now = max([time.time(), *(scored_at(r) + 1e-6 for r in kept)])
    allres = sorted(
        kept + [finite_or_none(r) | {"scored_at": now} for r in results],
        key=lambda r: (str(r.get("task")), r.get("step") or 0),
    )
    atomic_write_json(
        Path(run_dir) / TASKS, {"format_version": TASKS_FORMAT_VERSION, "results": allres}
    )
    return allres


def scored_at(r: dict) -> float:
    """When a task result was recorded (0 for results recorded before this was kept)."""
    v = r.get("scored_at")
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


def _task_key(r: dict) -> tuple:
    return r.get("task"), r.get("step"), r.get("sha256"), r.get("dtype") or "float32"


def in_float32(r: dict) -> bool:
    """Whether a task result was scored in float32 (the default, and every result recorded
    before the dtype was): of two at one step and item set, the one tables show."""
    return (r.get("dtype") or "float32") == "float32"


def final_tasks(run_dir: str | os.PathLike, items: dict | None = None) -> dict[str, dict]:
    """{task: its result at the newest step evaluated}: what the runs table shows.

    `items` ({task: sha256}): only the results on those items (the item set a table's
    column shows, so that it compares runs on the same items: sweep.table.task_items).
    Without it, where the newest step was scored on several item sets (a quick `eval
    --tasks --task-items 50` beside a study's 4000), the result on the most items; then
    the float32 one, where `eval --tasks --dtype bfloat16` scored it too."""
    out: dict[str, dict] = {}
    for r in read_tasks(run_dir):
        name = r.get("task")
        if not name or (items and name in items and r.get("sha256") != items[name]):
            continue
        key = (r.get("step") or 0, r.get("n") or 0, in_float32(r), scored_at(r))
        o = out.get(name)
        if o is None or key >= (o.get("step") or 0, o.get("n") or 0, in_float32(o), scored_at(o)):
            out[name] = r
    return out


# --- the run's lock -----------------------------------------------------------------


def hold_lock(run_dir: str | os.PathLike, wait: bool = False) -> int | None:
    """Take RUN/.lock (an exclusive flock) for this process; returns its descriptor, to
    pass to `release_lock` (the kernel drops the lock when the process dies, so a killed
    holder never leaves the folder locked).

    Held by someone else: with `wait`, wait for them; else raise ScalingLabError naming
    the holder's pid and host. Returns None when a parent process holds it for this one
    (`held_for_children`: a sweep worker's trainer, also under a launcher like torchrun)."""
    run_dir = Path(run_dir)
    path = run_dir / LOCK
    if _inherited_lock(path):
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                raise ScalingLabError(
                    f"{run_dir} is in use by another trainer ({holder}); wait for it to "
                    "end, or use another --out folder"
                ) from None
            log.info("%s: waiting for %s to stop", run_dir.name, holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(OSError):  # a full disk: held all the same, holder unnamed
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def release_lock(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _holder(fd: int) -> str:
    """Who holds the lock, as its file says."""
    try:
        pid, _, host = os.pread(fd, 256, 0).decode("utf-8", "replace").strip().partition(" ")
    except OSError:
        pid = host = ""
    if not pid:
        return "a process that did not write its pid"
    return f"pid {pid}" + (f" on {host}" if host else "")


def held_for_children(fd: int) -> dict:
    """The environment entry that tells a child process it works under the lock `fd`."""
    st = os.fstat(fd)
    return {LOCK_HELD_ENV: f"{st.st_dev}:{st.st_ino}"}


def _inherited_lock(path: Path) -> bool:
    held = os.environ.get(LOCK_HELD_ENV)
    if not held:
        return False
    try:
        st = os.stat(path)
    except OSError:
        return False
    return held == f"{st.st_dev}:{st.st_ino}"
