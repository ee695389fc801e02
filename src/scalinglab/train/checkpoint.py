"""Checkpoints: `RUN/ckpt/step-XXXXXXXX/` folders that exist only once complete.

A checkpoint folder holds::

    model.safetensors   the weights (tied tensors stored once)
    state.pt            optimizer, schedule, loader, RNG, counters, carried RNN
                        state and the resolved config; plain tensors and
                        containers, read with torch.load(weights_only=True)
    manifest.json       written last: format_version, step, sha256 of each file

It is written under a temporary name, each file fsynced, then renamed into
place, so a crash at any moment leaves either no folder or a complete one.
A folder whose manifest is missing or whose hashes do not match is not a
checkpoint: `latest` skips it with a warning, or refuses it when asked to.
"""

import json
import logging
import os
import re
import shutil
from pathlib import Path

import torch

from scalinglab.errors import CheckpointError
from scalinglab.fsio import atomic_write_json, fsync_dir, sha256_file

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "scalinglab.checkpoint"
WEIGHTS = "model.safetensors"
STATE = "state.pt"
MANIFEST = "manifest.json"
_STEP_DIR = re.compile(r"^step-(\d{8,})$")


def step_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step-{step:08d}"


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def save(root: Path, step: int, model: torch.nn.Module, state: dict, keep: int) -> Path:
    """Write checkpoint `step` atomically, then keep only the newest `keep` ones."""
    from safetensors.torch import save_model

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = step_dir(root, step)
    if final.exists():
        if verify(final) is None:
            return final  # the same step is the same state: nothing new to write
        shutil.rmtree(final)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(model, str(tmp / WEIGHTS))
    torch.save(state, tmp / STATE)
    hashes = {}
    for name in (WEIGHTS, STATE):
        _fsync_file(tmp / name)
        hashes[name] = sha256_file(tmp / name)
    manifest = {"format_version": FORMAT_VERSION, "kind": KIND, "step": step, "sha256": hashes}
    atomic_write_json(tmp / MANIFEST, manifest)
    os.rename(tmp, final)
    fsync_dir(root)
    prune(root, keep)
    return final


def list_steps(root: Path) -> list[Path]:
    """Checkpoint folders (valid or not), newest step first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def verify(path: Path) -> str | None:
    """None if `path` is a complete checkpoint, else the reason it is not."""
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.exists():
        return "no manifest (the write did not finish)"
    try:
        m = json.loads(mpath.read_text())
    except (OSError, ValueError) as exc:
        return f"unreadable manifest ({exc})"
    if not isinstance(m, dict) or m.get("kind") != KIND:
        return "manifest is not a scalinglab checkpoint manifest"
    if m.get("format_version") != FORMAT_VERSION:
        return f"format_version {m.get('format_version')!r} is not {FORMAT_VERSION}"
    for name in (WEIGHTS, STATE):
        f = path / name
        if not f.exists():
            return f"{name} is missing"
        if sha256_file(f) != m.get("sha256", {}).get(name):
            return f"{name} does not match its sha256 in the manifest"
    return None


def latest(root: Path, strict: bool = False) -> Path | None:
    """The newest valid checkpoint. Invalid ones are skipped with a warning, or raise if strict."""
    for path in list_steps(root):
        reason = verify(path)
        if reason is None:
            return path
        if strict:
            raise CheckpointError(f"checkpoint {path} is invalid: {reason}")
        log.warning("warning: skipping checkpoint %s: %s", path, reason)
    return None


def prune(root: Path, keep: int) -> None:
    """Delete all but the newest `keep` valid checkpoints, invalid ones older than those,
    and temporary folders of interrupted writes."""
    root = Path(root)
    for p in root.glob(".tmp-step-*"):
        shutil.rmtree(p, ignore_errors=True)
    kept = 0
    for path in list_steps(root):
        if kept < keep and verify(path) is None:
            kept += 1
        elif kept >= keep:
            shutil.rmtree(path, ignore_errors=True)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_model

    try:
        load_model(model, str(Path(path) / WEIGHTS), strict=True, device=_device_of(model))
    except (RuntimeError, OSError) as exc:
        raise CheckpointError(f"{path / WEIGHTS}: cannot load into this model: {exc}") from None


def load_state(path: Path, map_location=None) -> dict:
    try:
        return torch.load(Path(path) / STATE, map_location=map_location, weights_only=True)
    except Exception as exc:  # any unpickling failure means an unusable file
        raise CheckpointError(f"{path / STATE}: unreadable ({exc})") from None


def _device_of(model: torch.nn.Module) -> str:
    p = next(model.parameters(), None)
    return str(p.device) if p is not None else "cpu"
