"""Peak memory of `prepare hf:FILE --streaming` on a local JSONL corpus larger than it.

Writes a JSONL corpus of --mb megabytes (documents of about 2 KB of varied text) into a
temporary folder, then runs `scalinglab prepare hf:CORPUS@train --tokenizer byte` in a
child process, streamed (and, with --loaded, also without --streaming, which converts
the file into the datasets cache first), and prints each run's peak RSS (the child's
ru_maxrss), its wall time and the corpus size over the peak RSS. No network: the corpus
is local and the hub is set offline.

    PYTHONPATH=src python benchmarks/hf_streaming.py --mb 2000 --loaded
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flake_hunt import cpu_name  # one reader of /proc/cpuinfo for the records

WORDS = ("scaling", "laws", "tokens", "compute", "loss", "model", "width", "depth", "data",
         "optimal", "budget", "frontier", "Chinchilla", "über", "naïve", "ß", "λ", "∞")  # fmt: skip


def write_corpus(path: Path, mb: float, seed: int = 0, distinct: int = 20_000) -> int:
    """About `mb` MB of JSONL: `distinct` random texts, cycled with a new id per row."""
    rng = random.Random(seed)
    texts = [json.dumps(" ".join(rng.choices(WORDS, k=rng.randint(150, 350))) + ".",
                        ensure_ascii=False) for _ in range(distinct)]  # fmt: skip
    target, n, written = int(mb * 1e6), 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            line = f'{{"id": {n}, "text": {texts[n % distinct]}}}\n'
            f.write(line)
            written += len(line.encode())
            n += 1
    return n


def run(argv: list[str], env: dict) -> tuple[float, float, int]:
    """(peak RSS in MB, seconds, exit status) of one child process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, time.perf_counter() - t0, p.returncode  # kB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=2000, help="corpus size in MB (default 2000)")
    ap.add_argument("--loaded", action="store_true", help="also run without --streaming")
    ap.add_argument("--dir", help="where to write the corpus (default: a temporary folder)")
    args = ap.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="hf-streaming-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        corpus = root / "corpus.jsonl"
        t0 = time.perf_counter()
        docs = write_corpus(corpus, args.mb)
        size = corpus.stat().st_size / 1e6
        print(f"CPU: {cpu_name()} ({os.cpu_count()} cores)")
        print(f"corpus: {size:.0f} MB JSONL, {docs:,} documents (written in "
              f"{time.perf_counter() - t0:.0f} s)")  # fmt: skip
        env = {**os.environ, "HF_DATASETS_CACHE": str(root / "hf-cache"), "HF_HUB_OFFLINE": "1",
               "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}  # fmt: skip
        modes = [("streaming", ["--streaming"])] + ([("loaded", [])] if args.loaded else [])
        for name, extra in modes:
            out = root / f"shards-{name}"
            argv = [sys.executable, "-m", "scalinglab", "prepare", f"hf:{corpus}@train",
                    "--tokenizer", "byte", "-o", str(out), "-q", *extra]  # fmt: skip
            rss, secs, rc = run(argv, env)
            cache = sum(p.stat().st_size for p in (root / "hf-cache").rglob("*") if p.is_file())
            print(f"{name:<10} peak RSS {rss:7.0f} MB  {secs:6.0f} s  {size / secs:5.1f} MB/s  "
                  f"corpus / peak RSS {size / rss:5.1f}x  datasets cache {cache / 1e6:6.0f} MB"
                  f"  exit {rc}")  # fmt: skip
            shutil.rmtree(out, ignore_errors=True)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
