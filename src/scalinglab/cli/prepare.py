"""`scalinglab prepare SOURCE... --tokenizer KIND --out DIR`: corpus → token shards."""

ORDER = 10


def register(subparsers) -> None:
    from scalinglab.config import add_flags
    from scalinglab.data.writer import PrepareConfig

    p = subparsers.add_parser(
        "prepare",
        help="tokenize a corpus into train/val token shards",
        description=(
            "Read SOURCEs (files, folders, globs, JSONL, hf:NAME[:CONFIG][@SPLIT], or "
            "'stdlib': this Python's standard library source), hold out a validation "
            "split (or read it from --val-file, and a test split from --test-file), "
            "train a tokenizer on the rest and write DIR/{train,val[,test]}.bin, "
            "tokenizer.json and manifest.json."
        ),
    )
    p.add_argument("sources", nargs="*", metavar="SOURCE", help="corpus sources (default: stdlib)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="shards folder to write")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.add_argument(
        "--from-nanogpt", metavar="DIR",
        help="import a nanoGPT data folder (train.bin, val.bin, meta.pkl) instead of SOURCEs; "
        "its vocabulary from meta.pkl, or --tokenizer PATH and --vocab-size (docs/data.md)",
    )  # fmt: skip
    add_flags(p, PrepareConfig)
    p.set_defaults(func=run)


def run(args) -> int:
    from scalinglab.cli._util import is_terminal, print_json
    from scalinglab.config import flags_given
    from scalinglab.data.writer import PrepareConfig, prepare

    if args.from_nanogpt:
        return _from_nanogpt(args)
    given = flags_given(args, PrepareConfig)  # as options: prepare sees which were given
    PrepareConfig(**given)  # a bad flag is refused before the progress bars start
    bars = _Bars() if is_terminal() else None
    try:
        m = prepare(args.sources or ["stdlib"], args.out, progress=bars, **given)
    finally:
        if bars:
            bars.close()
    if args.json:
        print_json(m)
    else:
        print(summary(m, args.out))
    return 0


def _from_nanogpt(args) -> int:
    from scalinglab.cli._util import print_json
    from scalinglab.config import flags_given
    from scalinglab.data.nanogpt import import_nanogpt
    from scalinglab.data.tokenizers import KINDS
    from scalinglab.data.writer import PrepareConfig
    from scalinglab.errors import ConfigError

    given = flags_given(args, PrepareConfig)
    other = sorted(set(given) - {"tokenizer", "vocab_size", "block_size", "force"})
    if args.sources or other:
        what = "SOURCEs" if args.sources else "--" + other[0].replace("_", "-")
        raise ConfigError(f"--from-nanogpt imports a folder as it is: {what} does not apply")
    if given.get("tokenizer") in KINDS:
        raise ConfigError(
            f"--tokenizer {given['tokenizer']}: with --from-nanogpt, a pretrained tokenizer "
            "(the one that made the ids), or none for a meta.pkl with itos"
        )
    m = import_nanogpt(args.from_nanogpt, args.out, given.get("tokenizer"),
                       given.get("vocab_size"), given.get("block_size", 128),
                       bool(given.get("force")))  # fmt: skip
    if args.json:
        print_json(m)
    else:
        print(summary(m, args.out))
    return 0


def summary(m: dict, out) -> str:
    """One line: documents, MB, tokens, MB/s (or that the folder was already up to date)."""
    splits = m["splits"]
    docs = m.get("documents", sum(s["documents"] for s in splits.values()))
    n_bytes = sum(s["bytes"] for s in splits.values())
    head = f"{out}: {m['tokenizer']} tokenizer, vocab {m['vocab_size']} ({m['dtype']})"
    each = " / ".join(f"{k} {s['tokens']:,}" for k, s in splits.items())
    tokens = sum(s["tokens"] for s in splits.values())
    body = f"{docs:,} document{'s' * (docs != 1)}, {_size(n_bytes)}, {tokens:,} tokens ({each})"
    if m.get("up_to_date"):
        return f"{head}: up to date; {body}"
    b = m.get("build", {})
    seconds, rate = b.get("seconds", 0), b.get("mb_per_s", 0) * 1e6
    if rate < 1e5 and seconds > 0:  # mb_per_s is rounded to 10 kB/s: from the bytes
        rate = n_bytes / seconds
    return f"{head}: {body} in {seconds:.2f} s, {_size(rate)}/s"


def _size(n_bytes: float) -> str:
    """'1.1 MB'; under 0.1 MB in kB, under 100 bytes in bytes: a corpus of 24 kB read
    '0.0 MB', as if it were empty."""
    if n_bytes >= 1e5:
        return f"{n_bytes / 1e6:.1f} MB"
    return f"{n_bytes / 1e3:.1f} kB" if n_bytes >= 100 else f"{n_bytes:.0f} bytes"


class _Bars:
    """tqdm progress bars, one per phase, fed by `prepare`'s progress callback."""

    def __init__(self):
        self.phase, self.bar = None, None

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if phase != self.phase:
            from tqdm import tqdm

            self.close()
            self.phase = phase
            self.bar = tqdm(total=total, desc=phase, unit="B", unit_scale=True, leave=False)
        self.bar.update(done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
