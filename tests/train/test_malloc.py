"""keep_freed_memory: big blocks come from the heap and stay there once freed.

Each case runs in a fresh interpreter (the setting is process-wide and one-way) and
reads glibc's own accounting (mallinfo2) around a 64 MiB tensor: bytes in mmapped
blocks (hblkhd), the heap's size (arena) and its free bytes (fordblks).
benchmarks/train_throughput.py measures what this buys a training step.
"""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"),
    reason="malloc tuning is for glibc on Linux; elsewhere keep_freed_memory() does nothing",
)

SCRIPT = """
import ctypes, json, sys, torch
from scalinglab.train.malloc import keep_freed_memory
tuned = keep_freed_memory() if sys.argv[1] == "tune" else None
FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
class Info(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in FIELDS]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
def info():
    i = libc.mallinfo2()
    return {f: getattr(i, f) for f in ("arena", "hblkhd", "fordblks")}
before = info()
t = torch.empty(16 << 20).fill_(1.0)  # 64 MiB of float32
alive = info()
del t
freed = info()
print(json.dumps({"tuned": tuned, "before": before, "alive": alive, "freed": freed}))
"""
MIB64 = 64 << 20


def run(mode: str, **env) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        env={**os.environ, **env}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def grew(r: dict, when: str, field: str) -> int:
    return r[when][field] - r["before"][field]


def test_big_blocks_come_from_the_heap_and_stay():
    r = run("tune")
    assert r["tuned"] is True
    assert grew(r, "alive", "hblkhd") == 0  # no mmap for it...
    # ...the heap served it (in use grew by the block; the heap grows by less when it
    # already held free space, which depends on what the imports allocated and freed)
    used = {k: r[k]["arena"] - r[k]["fordblks"] for k in ("before", "alive")}
    assert used["alive"] - used["before"] >= MIB64
    # Freed, the block stays in the heap as free space, for the next step to reuse.
    assert r["freed"]["arena"] >= r["alive"]["arena"]
    assert r["freed"]["fordblks"] >= MIB64


def test_system_malloc_maps_and_unmaps_big_blocks():
    # glibc's default, and what SCALINGLAB_MALLOC=system keeps: a fresh mmap per block,
    # handed back to the kernel on free, so a training step faults its pages in again.
    for r in (run("plain"), run("tune", SCALINGLAB_MALLOC="system")):
        assert r["tuned"] in (None, False)
        assert grew(r, "alive", "hblkhd") >= MIB64
        assert grew(r, "freed", "hblkhd") == 0
        assert grew(r, "freed", "arena") < MIB64
