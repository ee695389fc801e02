"""Keep freed memory in the training process: glibc's malloc tuned for a training loop.

A training step allocates and frees the same large activation buffers every
step. glibc serves a large request with a fresh `mmap` and returns it to the
kernel on `free`, so each step touches new pages: page faults and zeroing, on
every step, for every activation. On a 2-core CPU this was 12–16% of a GPT
step (4×128 and 6×384, bf16) and half of a step with a 50k vocabulary, whose
logits alone are hundreds of MB (benchmarks/results/throughput.md has the measurements).

`keep_freed_memory()` tells glibc to serve every request from its heap
(`M_MMAP_MAX = 0`) and to keep up to 2 GiB of freed memory at the heap's top
instead of trimming it (`M_TRIM_THRESHOLD`): after the first steps, a step
reuses the pages of the last. The numbers the model computes do not change;
the process's resident memory stays near its peak instead of falling between
steps. This is what jemalloc and tcmalloc are preloaded for in PyTorch's CPU
tuning guides, done with the allocator every Linux machine already has.

Process-wide and one-way (the settings cannot be put back the way glibc chose
them), so the trainer calls it for CPU runs only. Set `SCALINGLAB_MALLOC=system`
to leave malloc alone (`tuned`, the default, is the other value). Elsewhere
(macOS, Windows, musl) it does nothing.
"""

import ctypes
import os
import sys

from scalinglab.errors import ConfigError

M_TRIM_THRESHOLD = -1  # glibc malloc.h
M_MMAP_MAX = -4
KEEP_BYTES = 2**31 - 1  # mallopt takes an int: 2 GiB is the most it can keep

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Tune glibc's malloc once per process; True when it is (now or already) tuned."""
    global _done
    if _done is None:
        _done = _tune()
    return _done


def _is_glibc() -> bool:
    try:  # glibc, not musl: mallopt's parameter numbers are glibc's
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        return False


def _tune() -> bool:
    choice = os.environ.get("SCALINGLAB_MALLOC", "tuned")
    if choice not in ("tuned", "system"):
        raise ConfigError(f"SCALINGLAB_MALLOC={choice!r}: expected 'tuned' (default) or 'system'")
    if choice == "system" or sys.platform != "linux":
        return False
    if not _is_glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
