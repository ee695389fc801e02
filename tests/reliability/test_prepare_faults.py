"""`scalinglab prepare` killed at a random moment leaves nothing that passes for shards
but a complete folder; a 50 MB corpus on one line prepares in bounded memory.

tests/data/test_prepare.py interrupts prepare in-process (an exception in the
encoder); here the process is SIGKILLed, at any point up to its last rename."""

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from scalinglab.data.shards import open_shards
from scalinglab.errors import DataError
from tests.reliability.helpers import ROOT

PREPARE = [sys.executable, "-m", "scalinglab", "prepare"]
# Peak RSS of a `prepare` run, from inside the process: /proc's VmHWM belongs to the
# process's own memory map. (getrusage's ru_maxrss would not do: Linux carries the
# parent's high-water mark across fork and exec, here the whole pytest process.)
PEAK_RSS = (
    "import re, sys; from scalinglab.cli import main; rc = main(sys.argv[1:]); "
    "print(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read())[1]); "
    "sys.exit(rc)"
)


def _corpus(path, mb: int) -> None:
    rng = np.random.default_rng(0)
    words = np.array([b"alpha ", b"beta ", b"gamma\n", b"delta ", b"epsilon, "])
    path.write_bytes(b"".join(words[rng.integers(0, len(words), mb * 160_000)]))


def _valid_ones(parent) -> dict:
    """Every folder below `parent` (hidden ones too) that opens as verified shards."""
    ok = {}
    for d in parent.iterdir():
        if d.is_dir():
            with contextlib.suppress(DataError):
                ok[d.name] = open_shards(d, verify=True).manifest["sha256"]
    return ok


def test_sigkill_at_a_random_moment_leaves_no_partial_shards(tmp_path):
    _corpus(tmp_path / "c.txt", 6)
    args = [str(tmp_path / "c.txt"), "--tokenizer", "char"]
    t0 = time.monotonic()
    subprocess.run([*PREPARE, *args, "--out", str(tmp_path / "ref/s")], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    took = time.monotonic() - t0
    ref = open_shards(tmp_path / "ref/s", verify=True).manifest["sha256"]
    seed = int.from_bytes(os.urandom(4))
    delay = random.Random(seed).uniform(0.05, 1.0) * took
    print(f"random seed {seed}: SIGKILL after {delay:.2f} s of {took:.2f} s")
    out = tmp_path / "run"
    out.mkdir()
    proc = subprocess.Popen([*PREPARE, *args, "--out", str(out / "s")], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Whatever is there passes as shards only if it is the complete result.
    assert all(sha == ref for sha in _valid_ones(out).values())
    if not (out / "s").exists():  # killed before the rename: prepare again gets it all
        subprocess.run([*PREPARE, *args, "--out", str(out / "s")], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
    assert open_shards(out / "s", verify=True).manifest["sha256"] == ref


def _peak_rss_kb(corpus, out) -> int:
    p = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, "prepare", str(corpus), "--tokenizer", "char",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    return int(p.stdout.split()[-1])


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_a_50_mb_single_line_prepares_in_bounded_memory(tmp_path):
    line = b"abcdefghi\xc3\xa9" * 5_000_000  # 55 MB, no newline, no space, 2-byte characters
    small = tmp_path / "small.txt"
    small.write_bytes(line[: 11 * 1_000_000])  # 11 MB
    big = tmp_path / "big.txt"
    big.write_bytes(line)
    del line
    rss_small = _peak_rss_kb(small, tmp_path / "s_small")
    rss_big = _peak_rss_kb(big, tmp_path / "s_big")
    print(f"peak RSS: {rss_small / 1024:.0f} MB for 11 MB, {rss_big / 1024:.0f} MB for 55 MB")
    m = json.loads((tmp_path / "s_big/manifest.json").read_text())
    assert m["splits"]["train"]["tokens"] + m["splits"]["val"]["tokens"] == 50_000_000
    assert m["vocab_size"] == 10 + 1  # ten characters and <unk>
    # 44 MB more input may not cost 20 MB more memory: it is read in chunks.
    assert rss_big - rss_small < 20 * 1024, (rss_small, rss_big)
    assert rss_big < 256 * 1024  # 4 MB chunks, a few copies each, and the interpreter
