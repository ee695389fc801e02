"""Checkpoints: `RUN/ckpt/step-XXXXXXXX/` folders that exist only once complete.

A checkpoint folder holds::

    model.safetensors   the weights (tied tensors stored once)
    state.pt            optimizer, schedule, loader, RNG, counters, carried RNN
                        state and the resolved config; plain tensors and
                        containers, read with torch.load(weights_only=True)
    manifest.json       written last: format_version, step, the run_id and lineage_id
                        of the run that wrote it (runfolder.checkpoint_owner; absent
                        in checkpoints of older versions), sha256 of each file

It is written under a temporary name, each file fsynced, then renamed into
place, so a crash at any moment leaves either no folder or a complete one.
A folder whose manifest is missing or whose hashes do not match is not a
checkpoint: `latest` skips it with a warning, or refuses it when asked to.

Test-only: when the environment variable SCALINGLAB_TEST_KILL_IN_CHECKPOINT
equals a step number, the process SIGKILLs itself while writing that step's
checkpoint, after the weights and state and before the manifest (the fault
tests in tests/reliability use it). Never set it outside tests.
"""

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import warnings
from collections.abc import Collection
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from scalinglab.errors import CheckpointError
from scalinglab.fsio import atomic_write_json, follow_umask, fsync_dir, sha256_file

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "scalinglab.checkpoint"
WEIGHTS = "model.safetensors"
STATE = "state.pt"
MANIFEST = "manifest.json"
_STEP_DIR = re.compile(r"^step-(\d{8,})$")
_TEST_KILL_ENV = "SCALINGLAB_TEST_KILL_IN_CHECKPOINT"


def step_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step-{step:08d}"


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def save(
    root: Path,
    step: int,
    model: torch.nn.Module,
    state: dict,
    keep: int,
    owner: dict | None = None,
    earlier: Collection[str] = (),
) -> Path:
    """Write checkpoint `step` atomically, then keep only the newest `keep` ones.

    `owner` (runfolder.checkpoint_owner) goes into the manifest: whose checkpoint it is.
    `earlier`: the run's own lineages before a change of settings (runfolder.own_lineages),
    whose checkpoints count and are pruned as its own."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = step_dir(root, step)
    if final.exists() or final.is_symlink():
        if verify(final) is None:
            if _mine(final, owner):
                return final  # the same step is the same state: nothing new to write
            raise CheckpointError(f"{final}: another run's checkpoint is in the way; not replaced")
        _remove(final)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists() or tmp.is_symlink():
        _remove(tmp)
    try:
        _write(tmp, step, model, state, owner or {})
        os.rename(tmp, final)
    except (OSError, SafetensorError, RuntimeError) as exc:
        # E.g. a full disk: drop the partial folder (it would only take more space) and
        # report; the checkpoints already in place are untouched. torch.save's failed
        # write is a RuntimeError about stream positions; the OSError under it says why.
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"cannot write checkpoint {final}: {_one_line(_os_cause(exc))}; "
            "earlier checkpoints are kept"
        ) from None
    fsync_dir(root)
    prune(root, keep, owner, earlier)
    return final


def _write(tmp: Path, step: int, model: torch.nn.Module, state: dict, owner: dict) -> None:
    tmp.mkdir()
    save_model(model, str(tmp / WEIGHTS))
    follow_umask(tmp / WEIGHTS)  # safetensors writes 0600: a shared folder could not read it
    with open(tmp / STATE, "wb") as f:  # through Python's file: its OSError is kept
        torch.save(state, f)
    hashes = {}
    for name in (WEIGHTS, STATE):
        _fsync_file(tmp / name)
        hashes[name] = sha256_file(tmp / name)
    if os.environ.get(_TEST_KILL_ENV) == str(step):  # test-only fault injection, see above
        os.kill(os.getpid(), signal.SIGKILL)
    manifest = {"format_version": FORMAT_VERSION, "kind": KIND, "step": step, **owner}
    manifest["sha256"] = hashes
    atomic_write_json(tmp / MANIFEST, manifest)


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
    if not (path / MANIFEST).exists():
        return "no manifest (the write did not finish)"
    try:
        m = read_manifest(path)
    except (OSError, ValueError) as exc:
        return f"unreadable manifest ({exc})"
    if not isinstance(m, dict) or m.get("kind") != KIND:
        return "manifest is not a scalinglab checkpoint manifest"
    if m.get("format_version") != FORMAT_VERSION:
        return f"format_version {m.get('format_version')!r} is not {FORMAT_VERSION}"
    if not isinstance(m.get("sha256"), dict):  # a list was an AttributeError traceback
        return "manifest's sha256 is not an object of file hashes"
    for name in (WEIGHTS, STATE):
        f = path / name
        if not f.exists():
            return f"{name} is missing"
        if not f.is_file():  # a folder: sha256_file's IsADirectoryError stopped a whole sweep
            return f"{name} is not a file"
        if sha256_file(f) != m.get("sha256", {}).get(name):
            return f"{name} does not match its sha256 in the manifest"
    return None


def read_manifest(path: Path):
    """The checkpoint's manifest.json as parsed (OSError/ValueError when unreadable)."""
    return json.loads((Path(path) / MANIFEST).read_text())


def latest(root: Path, strict: bool = False, quiet: bool = False) -> Path | None:
    """The newest valid checkpoint. Invalid ones are skipped with a warning (none with
    `quiet`: a second look at a run already warned of), or raise if strict."""
    for path in list_steps(root):
        reason = verify(path)
        if reason is None:
            return path
        if strict:
            raise CheckpointError(f"checkpoint {path} is invalid: {reason}")
        if not quiet:
            log.warning("skipping checkpoint %s: %s", path, reason)
    return None


def prune(root: Path, keep: int, owner: dict | None = None, earlier: Collection[str] = ()) -> None:
    """Delete all but the newest `keep` valid checkpoints, invalid ones older than those,
    and temporary folders of interrupted writes.

    Nothing outside `root` is ever deleted: an entry that is a symbolic link is unlinked,
    never followed. With `owner` (runfolder.checkpoint_owner), a valid checkpoint of
    another lineage (a folder shared with another run) is neither counted nor deleted,
    but one of the `earlier` lineages (the run's own before a change of settings) is: the
    newest `keep` are kept whichever of the run's lineages wrote them."""
    root = Path(root)
    for p in root.glob(".tmp-step-*"):
        _remove(p)
    kept = 0
    for path in list_steps(root):
        valid = verify(path) is None
        if valid and not _mine(path, owner, earlier):
            continue
        if kept < keep and valid:
            kept += 1
        elif kept >= keep:
            _remove(path)


def _mine(path: Path, owner: dict | None, earlier: Collection[str] = ()) -> bool:
    """The checkpoint at `path` was written by `owner`'s lineage or one of the `earlier`
    ones (or records none)."""
    if not owner or not owner.get("lineage_id"):
        return True
    try:
        theirs = read_manifest(path).get("lineage_id")
    except (OSError, ValueError, AttributeError):
        return True
    return theirs in (None, owner["lineage_id"], *earlier)


def _remove(path: Path) -> None:
    """Delete a checkpoint's folder; a symbolic link only as a link, not what it points at."""
    if path.is_symlink():
        with contextlib.suppress(OSError):
            path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    try:
        load_model(model, str(Path(path) / WEIGHTS), strict=True, device=_device_of(model))
    except (RuntimeError, OSError, SafetensorError) as exc:  # SafetensorError: a malformed file
        lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
        if len(lines) > 1 and lines[0].startswith("Error(s) in loading state_dict"):
            # torch's heading says nothing; its first problem says which tensor and shapes
            more = f" (and {len(lines) - 2} more)" if len(lines) > 2 else ""
            raise CheckpointError(
                f"{Path(path) / WEIGHTS}: cannot load into this model: {lines[1]}{more}; "
                "does the run's config.toml describe the model that wrote it?"
            ) from None
        raise CheckpointError(
            f"{Path(path) / WEIGHTS}: cannot load into this model: {_one_line(exc)}"
        ) from None


def load_state(path: Path, map_location=None) -> dict:
    try:
        with warnings.catch_warnings():  # e.g. torch's pickle-protocol warning: the error says it
            warnings.simplefilter("ignore")
            return torch.load(Path(path) / STATE, map_location=map_location, weights_only=True)
    except Exception as exc:  # any unpickling failure means an unusable file
        raise CheckpointError(
            f"{Path(path) / STATE}: refused: not a plain tensor-and-container state file "
            f"({_one_line(exc)})"
        ) from None


def _os_cause(exc: BaseException) -> BaseException:
    """The OSError (a full disk, a file size limit) a library's own error was raised
    while handling, if any; else `exc`."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


def _one_line(exc: BaseException) -> str:
    """A one-line reason from an exception whose message may span many lines.

    torch's weights-only refusal is a paragraph that ends in advice to load with
    weights_only=False, which we never give; its reason follows 'WeightsUnpickler error:'."""
    msg = str(exc)
    if "WeightsUnpickler error:" in msg:  # its first sentence; the rest is how to allow it
        msg = msg.split("WeightsUnpickler error:", 1)[1].strip().split(". ")[0]
    elif isinstance(exc, OSError) and exc.strerror:
        msg = exc.strerror
    lines = [x.strip() for x in msg.splitlines() if x.strip()]
    return lines[0] if lines else type(exc).__name__


def _device_of(model: torch.nn.Module) -> str:
    p = next(model.parameters(), None)
    return str(p.device) if p is not None else "cpu"
