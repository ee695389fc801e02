"""`torchrun -m tests.train.ddp_entry ARGS`: scalinglab's CLI in each worker, with

- SCALINGLAB_TEST_AUDIT=DIR: every file a worker writes (Python open() for writing,
  os.replace, os.rename) is logged to DIR/writes-rank{RANK}.log;
- SCALINGLAB_TEST_CRASH=RANK:STEP: that rank dies (os._exit) right after finishing
  STEP, in torchrun's first attempt only (TORCHELASTIC_RESTART_COUNT=0);
- SCALINGLAB_TEST_THREADS=DIR: once the CLI returns, the names of the worker's
  native threads are written to DIR/threads-rank{RANK}-attempt{RESTART_COUNT}.txt
  (a process group still alive shows as gloo's threads);
- SCALINGLAB_TEST_DISK_FULL=STEP: rank 0's checkpoint of STEP fails as on a full disk
  (ENOSPC while writing its state.pt);
- SCALINGLAB_TEST_MASKS=DIR: the sha256 of each dropout mask a worker draws in
  training (nn.Dropout's) goes to DIR/masks-rank{RANK}-attempt{RESTART_COUNT}.txt;
- SCALINGLAB_TEST_EXIT=DIR: a worker's stderr goes to DIR/stderr-rank{RANK}.txt and, once
  the CLI returns, its exit code to DIR/exit-rank{RANK}.txt (torchrun's own report of a
  failed worker is a traceback: this keeps each worker's output apart from it).
"""

import builtins
import errno
import os
import sys
from pathlib import Path


def _audit(folder: str, rank: str) -> None:
    log = Path(folder) / f"writes-rank{rank}.log"
    real_open, real_replace, real_rename = builtins.open, os.replace, os.rename

    def note(path) -> None:
        with real_open(log, "a") as f:
            f.write(f"{os.fspath(path)}\n")

    def audited_open(file, mode="r", *args, **kwargs):
        if isinstance(file, str | os.PathLike) and any(c in mode for c in "wax+"):
            note(file)
        return real_open(file, mode, *args, **kwargs)

    def audited_replace(src, dst, *args, **kwargs):
        note(dst)
        return real_replace(src, dst, *args, **kwargs)

    def audited_rename(src, dst, *args, **kwargs):
        note(dst)
        return real_rename(src, dst, *args, **kwargs)

    builtins.open, os.replace, os.rename = audited_open, audited_replace, audited_rename


def _crash(rank: str, spec: str) -> None:
    crash_rank, crash_step = (int(x) for x in spec.split(":"))
    if int(rank) != crash_rank or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        return
    from scalinglab.train.loop import Trainer

    orig = Trainer._after_step

    def after_step(self, bar):
        orig(self, bar)
        if self.c.step == crash_step:
            os._exit(1)  # as a killed process: no cleanup, no result

    Trainer._after_step = after_step


def _disk_full(rank: str, step: str) -> None:
    if rank != "0":
        return
    import torch

    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and str(obj.get("counters", {}).get("step")) == step:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
        return real_save(obj, f, *args, **kwargs)

    torch.save = save


def _masks(folder: str, rank: str) -> None:
    import hashlib

    import torch

    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    log = Path(folder) / f"masks-rank{rank}-attempt{attempt}.txt"
    real_dropout = torch.nn.functional.dropout

    def dropout(x, p=0.5, training=True, inplace=False):
        out = real_dropout(x, p, training, inplace)
        if training and p > 0:
            mask = (out == 0).numpy().tobytes()
            with open(log, "a") as f:
                f.write(hashlib.sha256(mask).hexdigest() + "\n")
        return out

    torch.nn.functional.dropout = dropout


if __name__ == "__main__":
    rank = os.environ.get("RANK", "0")
    if os.environ.get("SCALINGLAB_TEST_AUDIT"):
        _audit(os.environ["SCALINGLAB_TEST_AUDIT"], rank)
    if os.environ.get("SCALINGLAB_TEST_CRASH"):
        _crash(rank, os.environ["SCALINGLAB_TEST_CRASH"])
    if os.environ.get("SCALINGLAB_TEST_DISK_FULL"):
        _disk_full(rank, os.environ["SCALINGLAB_TEST_DISK_FULL"])
    if os.environ.get("SCALINGLAB_TEST_MASKS"):
        _masks(os.environ["SCALINGLAB_TEST_MASKS"], rank)
    exits = os.environ.get("SCALINGLAB_TEST_EXIT")
    if exits:
        err = os.open(Path(exits) / f"stderr-rank{rank}.txt", os.O_WRONLY | os.O_CREAT, 0o644)
        os.dup2(err, 2)
    from scalinglab.cli import main

    rc = main(sys.argv[1:])
    if os.environ.get("SCALINGLAB_TEST_THREADS"):
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        names = [(Path("/proc/self/task") / t / "comm").read_text().strip()
                 for t in os.listdir("/proc/self/task")]  # fmt: skip
        out = (
            Path(os.environ["SCALINGLAB_TEST_THREADS"]) / f"threads-rank{rank}-attempt{attempt}.txt"
        )
        out.write_text("\n".join(sorted(names)) + "\n")
    if exits:
        (Path(exits) / f"exit-rank{rank}.txt").write_text(f"{rc}\n")
    sys.exit(rc)
