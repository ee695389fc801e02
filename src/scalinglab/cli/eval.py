"""`scalinglab eval`: loss, perplexity and bits per byte of a trained run."""

ORDER = 30


def register(sub) -> None:
    from scalinglab.cli._tasks import add_flags as add_task_flags

    p = sub.add_parser(
        "eval",
        help="evaluate a run's newest checkpoint on its val or test split, or on tasks",
        description=(
            "Loss in nats per token, perplexity = exp(loss), and bits per byte = "
            "loss / (ln 2 * bytes per token) on the val (or --split test) split of the "
            "run's shards (or --data)."
        ),
    )
    p.add_argument("run", metavar="RUN", help="run folder made by `scalinglab train`")
    p.add_argument("--data", metavar="SHARDS", help="shards folder (default: the run's own)")
    p.add_argument(
        "--split", default="val", choices=("val", "test"),
        help="the split to score: val, or test (shards made with `prepare --test-file`) "
        "(default: val)",
    )  # fmt: skip
    p.add_argument(
        "--eval-tokens", type=int, default=0, help="score only the first N tokens (default: all)"
    )
    p.add_argument(
        "--batch-size", type=int, default=0,
        help="lanes per batch (default: the run's); with --tasks, sequences scored at a time "
        "(default: 32)",
    )  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps (default: auto)")
    p.add_argument(
        "--dtype", choices=("float32", "bfloat16"), default=None,
        help="the arithmetic of the forward passes (default: the loss in the run's own, as "
        "result.json's was measured; --tasks in float32, as a study scores its runs and "
        "lm-evaluation-harness with dtype=float32 does)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    add_task_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from scalinglab.cli._tasks import check_task_flags

    check_task_flags(args)  # a flag of the other mode is refused, not silently ignored
    if args.tasks is not None:
        from scalinglab.cli._tasks import run_tasks

        return run_tasks(args)
    from scalinglab.cli._util import print_json
    from scalinglab.data.shards import check_integrity
    from scalinglab.errors import ConfigError
    from scalinglab.train.evaluate import (
        check_own_data,
        check_same_tokenizer,
        evaluate,
        load_trained,
        open_run_data,
        summarize,
    )
    from scalinglab.train.malloc import keep_freed_memory
    from scalinglab.train.setup import autocast, pick_device, pick_dtype

    for flag, v, zero in (("--eval-tokens", args.eval_tokens, "the whole split"),
                          ("--batch-size", args.batch_size, "the run's")):  # fmt: skip
        if v < 0:
            raise ConfigError(f"{flag} must be >= 0 (0: {zero}), got {v}")
    _check_one_run(args.run)
    device = pick_device(args.device)
    if device == "cpu":
        keep_freed_memory()  # as in training: 1.8x with a 50k vocabulary's logits
    model, cfg, step = load_trained(args.run, device)
    if 0 < args.eval_tokens < cfg.model.block_size:
        raise ConfigError(
            f"--eval-tokens {args.eval_tokens} is less than one window of the run's block_size "
            f"{cfg.model.block_size}; give at least {cfg.model.block_size}, or 0 for the whole "
            "split"
        )
    shards = open_run_data(args.run, cfg, args.data)
    check_integrity(shards)
    check_same_tokenizer(args.run, shards, given=bool(args.data))
    if not args.data:  # the run's own, found from here: the same shards it trained on?
        check_own_data(args.run, cfg, shards)
    if shards.vocab_size > cfg.model.vocab_size:
        raise ConfigError(
            f"--data {shards.path}: vocabulary of {shards.vocab_size} is larger than the "
            f"model's ({cfg.model.vocab_size})"
        )
    tokens = shards.split(args.split)  # DataError naming the flag to make a test split
    cast = autocast(device, args.dtype or pick_dtype(cfg.train.dtype, device))
    loss, n = evaluate(
        model, tokens, cfg.model.block_size, args.batch_size or cfg.train.batch_size,
        args.eval_tokens or None, device, cast,
    )  # fmt: skip
    out = summarize(loss, shards.bytes_per_token(args.split))
    out |= {"tokens": n, "step": step, "data": str(shards.path), "run": args.run}
    out["split"] = args.split
    if args.json:
        print_json(out)
    else:
        bpb = f"{out['bits_per_byte']:.4f}" if out["bits_per_byte"] is not None else "-"
        print(
            f"{args.run} (step {step}) on {shards.path} {args.split}, {n} tokens: loss {loss:.4f} "
            f"nats/token  perplexity {out['perplexity']:.3f}  bits/byte {bpb}"
        )
    return 0


def _check_one_run(run: str) -> None:
    """The loss is a run's: a folder of runs (a sweep's) is refused saying that --tasks
    takes one; it was 'not a run folder: DIR/config.toml is missing', which left the
    user to guess that folders of runs are read at all."""
    from pathlib import Path

    from scalinglab import runfolder
    from scalinglab.cli._tasks import trained_run_dirs
    from scalinglab.errors import ConfigError

    if Path(run).is_dir() and not (Path(run) / runfolder.CONFIG).exists():
        runs = trained_run_dirs(run)
        if runs:
            raise ConfigError(
                f"{run}: a folder of {len(runs)} runs, not one run: the loss is evaluated on one "
                "run folder (give one, e.g. "
                f"{runs[0]}); --tasks scores every run of a folder"
            )
