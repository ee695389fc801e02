"""What the shards check costs at each start of `train` and `eval`.

    .venv/bin/python benchmarks/shard_check.py [--mb 256]

Writes a shards folder of MB megabytes of random uint16 token ids (vocabulary
50,257, train and val 9:1) into a temporary folder and times, side by side:
opening it (the size check every start pays), the full check (sha256 and the
largest token id of each file, one read: a start after the files changed), the
cached check (a start of an unchanged folder), and, for scale, sha256 alone and
numpy's max alone over the same bytes. Prints seconds, MB/s and the ratios.
The first read comes from the page cache (the files were just written), as at
the start of every run after the first one on a machine.
"""

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from scalinglab.data.shards import VERIFIED, check_integrity, open_shards
from scalinglab.fsio import sha256_file

VOCAB = 50257


def _write(folder: Path, mb: int) -> None:
    rng = np.random.default_rng(0)
    n = (mb << 20) // 2
    ids = rng.integers(0, VOCAB, size=n, dtype=np.uint16)
    cut = n * 9 // 10
    splits = {"train": ids[:cut], "val": ids[cut:]}
    sha = {}
    for name, arr in splits.items():
        arr.tofile(folder / f"{name}.bin")
        sha[f"{name}.bin"] = sha256_file(folder / f"{name}.bin")
    (folder / "tokenizer.json").write_text('{"kind": "byte"}')
    manifest = {
        "format_version": 1, "kind": "scalinglab.shards", "sources": ["random"],
        "tokenizer": "bpe", "vocab_size": VOCAB, "dtype": "uint16",
        "splits": {k: {"documents": 1, "bytes": 2 * len(v), "tokens": len(v)}
                   for k, v in splits.items()},
        "sha256": sha,
    }  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=256, help="size of the two token files together")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write(folder, args.mb)
        files = [folder / "train.bin", folder / "val.bin"]
        mb = sum(f.stat().st_size for f in files) / 2**20

        def full():
            (folder / VERIFIED).unlink(missing_ok=True)
            check_integrity(open_shards(folder))

        def sha_only():
            for f in files:
                hashlib.sha256(f.read_bytes()).hexdigest()

        def max_only():
            for f in files:
                int(np.fromfile(f, dtype=np.uint16).max())

        t_open = _best(lambda: open_shards(folder))
        t_full = _best(full)
        t_cached = _best(lambda: check_integrity(open_shards(folder)))
        t_sha, t_max = _best(sha_only), _best(max_only)
    print(f"{mb:.0f} MB of uint16 token ids (train + val)")
    print(f"open (size check)         {t_open * 1e3:9.2f} ms")
    print(f"full check (sha256 + max) {t_full * 1e3:9.2f} ms  {mb / t_full:7.0f} MB/s")
    print(f"cached check              {t_cached * 1e3:9.2f} ms")
    print(f"sha256 alone              {t_sha * 1e3:9.2f} ms  {mb / t_sha:7.0f} MB/s")
    print(f"max alone                 {t_max * 1e3:9.2f} ms  {mb / t_max:7.0f} MB/s")
    print(f"full check / sha256 alone: {t_full / t_sha:.2f}x; full / cached: "
          f"{t_full / t_cached:.0f}x")  # fmt: skip


if __name__ == "__main__":
    main()
