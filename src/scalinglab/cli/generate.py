"""`scalinglab generate`: sample text from a trained run, streamed to stdout."""

ORDER = 40
MAX_NEW_TOKENS = 1_000_000
"""--max-new-tokens' bound: a million tokens (hours on a CPU, one step per token) is more
than any sample is read for; a larger number is a typo."""


def register(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="sample text from a run's newest checkpoint",
        description="Continue --prompt with sampled tokens, printing text as it is generated.",
    )
    p.add_argument("run", metavar="RUN", help="run folder made by `scalinglab train`")
    p.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=200,
        help=f"tokens to sample, at most {MAX_NEW_TOKENS} (default: 200)",
    )
    p.add_argument("--temperature", type=float, default=0.8, help="0 means greedy (default: 0.8)")
    p.add_argument(
        "--top-k", type=int, default=0, help="sample from the k likeliest (default: all)"
    )
    p.add_argument(
        "--top-p", type=float, default=1.0, help="nucleus sampling mass (default: 1.0, all)"
    )
    p.add_argument("--seed", type=int, default=None, help="seed of the sampler (default: random)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps (default: auto)")
    p.add_argument(
        "--json", action="store_true",
        help="print {run, prompt, text, new_tokens} as JSON at the end instead of streaming",
    )  # fmt: skip
    p.set_defaults(func=run)


def stream_text(tokenizer, ids, sample):
    """Yield the decoded prompt, then text as it becomes decodable; a multi-byte
    character split across tokens is held back until it is complete."""
    shown = tokenizer.decode(ids).rstrip("\ufffd")  # a prompt ending inside a character:
    yield shown  # its end is held back too, else nothing generated would ever match it
    for tok in sample:
        ids.append(tok)
        text = tokenizer.decode(ids)
        if text.endswith("\ufffd"):
            continue
        if text.startswith(shown):
            yield text[len(shown) :]
            shown = text
    text = tokenizer.decode(ids)
    if text.startswith(shown) and text != shown:
        yield text[len(shown) :]


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The prompt's token ids, its last line left open (a word-level prompt gets no `<eos>`).
    The command line's bytes, as given: a run of the byte tokenizer takes
    any bytes (invalid UTF-8 too); other tokenizers read text, so invalid UTF-8 is refused
    naming its offset."""
    import os

    from scalinglab.errors import ConfigError

    raw = os.fsencode(prompt)  # Python decodes argv with surrogateescape: this undoes it
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if tokenizer.kind == "byte":
            return list(raw)
        raise ConfigError(
            f"--prompt: not valid UTF-8 at byte {exc.start}; the {tokenizer.kind} "
            "tokenizer of this run reads text (only a run of the byte tokenizer takes any "
            "bytes)"
        ) from None
    if tokenizer.kind == "word":  # no <eos> after the prompt: generation continues its line
        ids = [int(i) for i in tokenizer.encode(text, final=False)]
    else:
        ids = [int(i) for i in tokenizer.encode(text)]
    unk = getattr(tokenizer, "unk_id", None)
    if unk is not None and unk in ids:  # the model reads <unk> for them: say which
        import logging

        parts = text.split() if tokenizer.kind == "word" else list(dict.fromkeys(text))
        lacks = [p for p in dict.fromkeys(parts) if unk in tokenizer.encode(p)]
        logging.getLogger(__name__).warning(
            "--prompt: the run's %s tokenizer has no token for %s: the model reads <unk> "
            "for %s",
            tokenizer.kind, ", ".join(repr(p) for p in lacks[:10]) + (", ..." if len(lacks) > 10 else ""),
            "them" if len(lacks) > 1 else "it",
        )  # fmt: skip
    if text and not ids:  # else sample() says the prompt is empty, which it is not
        default = "; the default --prompt is a newline" if text == "\n" else ""
        raise ConfigError(
            f"--prompt {text!r} makes no tokens: the run's {tokenizer.kind} tokenizer has "
            f"none for its characters{default}; give a --prompt of text it knows"
        )
    return ids


def check_flags(args) -> None:
    """Every sampling setting in range before the model loads (NaN fails every check)."""
    import math

    from scalinglab.config import check_seed
    from scalinglab.errors import ConfigError

    if args.max_new_tokens < 0:
        raise ConfigError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
    if args.max_new_tokens > MAX_NEW_TOKENS:
        raise ConfigError(
            f"--max-new-tokens must be at most {MAX_NEW_TOKENS}, got {args.max_new_tokens} "
            "(a bound against a typo that would run for days; run generate again for more)"
        )
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise ConfigError(
            f"--temperature must be a finite number >= 0 (0: greedy), got {args.temperature}"
        )
    if not 0.0 < args.top_p <= 1.0:
        raise ConfigError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.top_k < 0:
        raise ConfigError(f"--top-k must be >= 0, got {args.top_k}")
    if args.seed is not None:
        check_seed(args.seed)


def run(args) -> int:
    import os
    import sys

    from scalinglab.train.evaluate import load_run_tokenizer, load_trained
    from scalinglab.train.generate import sample
    from scalinglab.train.setup import pick_device

    check_flags(args)
    model, cfg, _ = load_trained(args.run, pick_device(args.device))
    # The trainer copies the tokenizer into the run folder; older runs point at their shards
    # (refused when those were rebuilt with another tokenizer since).
    tokenizer = load_run_tokenizer(args.run, cfg)
    prompt = prompt_ids(tokenizer, args.prompt)
    tokens = sample(
        model, prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed,
        vocab_size=tokenizer.vocab_size,
    )  # fmt: skip
    if args.json:
        from scalinglab.cli._util import print_json

        new = [int(t) for t in tokens]
        # the prompt as given (it was its tokens decoded: another text where the tokenizer
        # lacks a character or normalizes spaces); `text` is the tokens the model read and wrote
        given = os.fsencode(args.prompt).decode("utf-8", errors="replace")
        print_json({"run": args.run, "prompt": given, "prompt_tokens": len(prompt),
                    "text": tokenizer.decode([*prompt, *new]), "new_tokens": len(new)})  # fmt: skip
        return 0
    for piece in stream_text(tokenizer, list(prompt), tokens):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
