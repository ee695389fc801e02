"""`prepare` throughput per tokenizer, and vectorised vs per-symbol Python encoding.

    .venv/bin/python benchmarks/prepare_speed.py [SOURCE ...] [--kinds byte,char,word,bpe]

Runs `prepare` (default source: stdlib) into a temporary folder once per
tokenizer and prints MB/s side by side; then times, on the first 8 MB of the
corpus, our numpy byte/char encoders against the obvious per-symbol Python
loops (`[b for b in data]`, `[stoi[c] for c in text]`) and prints the ratios.
"""

import argparse
import tempfile
import time
from pathlib import Path

from scalinglab.data.sources import resolve_sources
from scalinglab.data.tokenizers import ByteTokenizer, train_tokenizer
from scalinglab.data.writer import prepare


def _sample(sources: list[str], limit: int = 8 << 20) -> bytes:
    out, n = [], 0
    for src in resolve_sources(sources):
        for doc in src.documents():
            for _, data in doc.read(1 << 20):
                out.append(data)
                n += len(data)
                if n >= limit:
                    return b"".join(out)[:limit]
    return b"".join(out)


def _best(fn, repeat=3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sources", nargs="*", default=["stdlib"])
    ap.add_argument("--kinds", default="byte,char,word,bpe")
    args = ap.parse_args()
    print(f"prepare {' '.join(args.sources)}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            m = prepare(args.sources, Path(tmp) / kind, tokenizer=kind, block_size=8)
            tokens = sum(s["tokens"] for s in m["splits"].values())
            print(f"  {kind:5s} vocab {m['vocab_size']:6d}  {tokens:12,d} tokens  "
                  f"{m['build']['seconds']:7.2f} s  {m['build']['mb_per_s']:7.1f} MB/s")  # fmt: skip

    data = _sample(args.sources)
    text = data.decode("utf-8", errors="replace")
    mb = len(data) / 1e6
    byte = ByteTokenizer()
    t_ours, t_loop = _best(lambda: byte.encode(data)), _best(lambda: [b for b in data], repeat=1)
    print(f"byte encode, {mb:.1f} MB: numpy {mb / t_ours:8.1f} MB/s, per-byte loop "
          f"{mb / t_loop:6.1f} MB/s, ratio {t_loop / t_ours:5.1f}x")  # fmt: skip
    char = train_tokenizer("char", [text])
    stoi = {c: i for i, c in enumerate(char.chars)}
    t_ours = _best(lambda: char.encode(text))
    t_loop = _best(lambda: [stoi.get(c, char.unk_id) for c in text], repeat=1)
    print(f"char encode, {mb:.1f} MB: numpy {mb / t_ours:8.1f} MB/s, per-char loop "
          f"{mb / t_loop:6.1f} MB/s, ratio {t_loop / t_ours:5.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
