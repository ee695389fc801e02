"""Resuming a killed `prepare`: its temporary folder is the checkpoint.

`prepare` works in a hidden `.NAME.tmp-PID@HOST.*` folder beside its output. Into it go,
as each is done: the plan of the split (`plan.npz`, after the scan pass), the trained
tokenizer (`tokenizer.json`), and, after every CHECKPOINT_CHUNKS × `--chunk-bytes` of text
the encode pass reads (64 MB by default), the lengths of the split files and the counts so far (`resume.json`, written atomically after
the files are synced). A prepare killed by SIGKILL or a power loss leaves that folder; the
next prepare of the same request (same sources, settings and `--chunk-bytes`) on this host
takes it over once the process that wrote it is gone, cuts the split files back to the
last checkpoint and goes on from there. A folder of another request is deleted.
"""

import hashlib
import json
import os
import secrets
from pathlib import Path

import numpy as np

from scalinglab.fsio import atomic_write_json, stale_temps, temp_tag

RESUME = "resume.json"
PLAN = "plan.npz"
CHECKPOINT_CHUNKS = 16  # --chunk-bytes of text between two checkpoints of the encode pass


def temp_prefix(out: Path) -> str:
    """The name every temporary folder of a prepare into `out` starts with."""
    return f".{out.name}.tmp-"


def adopt(out: Path, key: dict) -> tuple[Path, dict] | None:
    """A killed prepare's folder for the same `key`, renamed to this process's name, and its
    state; None when there is none."""
    if not out.parent.is_dir():
        return None
    key = json.loads(json.dumps(key))  # as read back: lists, not tuples
    for path in stale_temps(out.parent, temp_prefix(out)):
        try:
            state = json.loads((path / RESUME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(state, dict) or state.get("key") != key:
            continue
        mine = out.parent / f"{temp_prefix(out)}{temp_tag()}.{secrets.token_hex(6)}"
        try:
            path.rename(mine)
        except OSError:  # another prepare took it first
            continue
        return mine, state
    return None


def save(tmp: Path, state: dict) -> None:
    """Record the state (atomically: a reader sees the old state or the new one)."""
    atomic_write_json(tmp / RESUME, state)


def save_plan(tmp: Path, key: dict, sizes, labels, fields: dict) -> dict:
    """Keep the scan's result, then the state that says it is there; returns the state."""
    with open(tmp / PLAN, "wb") as f:
        np.savez(f, sizes=np.asarray(sizes, dtype=np.int64),
                 labels=np.asarray([] if labels is None else labels, dtype=np.int8))  # fmt: skip
        f.flush()
        os.fsync(f.fileno())
    state = {
        "key": json.loads(json.dumps(key)),
        "stage": "scanned",
        "plan": fields,
        "has_labels": labels is not None,
    }
    save(tmp, state)
    return state


def load_plan(tmp: Path, state: dict) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """(sizes, labels or None, the other fields) as `save_plan` kept them."""
    with np.load(tmp / PLAN) as z:
        sizes, labels = z["sizes"], z["labels"]
    return sizes, (labels if state["has_labels"] else None), state["plan"]


def reopen(tmp: Path, lengths: dict) -> tuple[dict, dict]:
    """The split files cut back to the checkpoint's `lengths` and open for appending, and
    sha256 objects that have read what they hold."""
    files, hashes = {}, {}
    for split, n in lengths.items():
        f = open(tmp / f"{split}.bin", "r+b")  # noqa: SIM115
        f.truncate(n)
        h = hashlib.sha256()
        while block := f.read(1 << 20):
            h.update(block)
        f.seek(n)
        files[split], hashes[split] = f, h
    return files, hashes


def finish(tmp: Path) -> None:
    """Remove the checkpoint's files from a folder about to become the shards."""
    for name in (RESUME, PLAN):
        (tmp / name).unlink(missing_ok=True)
