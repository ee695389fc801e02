"""`scalinglab train`: train (or resume) one run into a run folder."""

ORDER = 20

# Exit codes besides 0 (completed) and 2 (user error): scripts and sweeps read them.
EXIT_DIVERGED = 3
EXIT_PREEMPTED = 143  # 128 + SIGTERM, as a shell reports a process the signal ended
EXIT_INTERRUPTED = 130  # 128 + SIGINT: Ctrl-C, the run preempted all the same
EXIT_FAILED = 1


def register(sub) -> None:
    from scalinglab.config import ModelConfig, TrainConfig, add_flags

    p = sub.add_parser(
        "train",
        help="train a model (GPT or RNN) on a shards folder",
        description=(
            "Train one run into --out. Flags override --config FILE.toml, which overrides "
            "--preset. Give exactly one budget: --steps, --tokens, --flops or --time. "
            "Exit codes: 0 completed, 2 bad input, 3 diverged (non-finite loss), "
            "143 preempted (SIGTERM; resume with --resume auto), 130 the same after "
            "Ctrl-C (a second Ctrl-C stops at once)."
        ),
    )
    p.add_argument("--out", "-o", metavar="RUN", help="run folder to write (or resume); required")
    p.add_argument("--config", metavar="FILE.toml", help="run config ([model] and [train])")
    p.add_argument("--json", action="store_true", help="print result.json to stdout at the end")
    p.add_argument(
        "--print-config", action="store_true",
        help="print the resolved config (TOML, as RUN/config.toml would hold it) and exit; "
        "nothing is written",
    )  # fmt: skip
    p.add_argument(
        "--allow-config-change", action="store_true",
        help="resume although training settings (e.g. --lr) changed since the checkpoint; "
        "the change is recorded in RUN/history.jsonl (else such a resume is refused)",
    )  # fmt: skip
    add_flags(p, ModelConfig)
    add_flags(p, TrainConfig)
    p.set_defaults(func=run)


def build_config(args):
    """RunConfig from --preset < --config < flags."""
    from scalinglab.config import (
        ModelConfig,
        RunConfig,
        TrainConfig,
        flags_given,
        load_toml,
        run_table,
    )
    from scalinglab.models.registry import preset_fields

    d = load_toml(args.config) if args.config else {}
    where = args.config
    model_flags = flags_given(args, ModelConfig)
    file_model = run_table(d, "model", where)
    flag = bool(model_flags.get("preset"))
    preset = model_flags.get("preset") or file_model.get("preset", "")
    given = "--preset" if flag else f"{where} [model]"
    model = (preset_fields(preset, given) if preset else {}) | file_model | model_flags
    train_flags = flags_given(args, TrainConfig)
    train = run_table(d, "train", where) | train_flags
    if not args.config:  # flags and presets hold only known fields: errors name just the flag
        return RunConfig(model=ModelConfig(**model), train=TrainConfig(**train))
    given = {"model": set(model_flags), "train": set(train_flags)}
    return RunConfig.from_dict({**d, "model": model, "train": train}, where, given)


def run(args) -> int:

    from scalinglab.cli._util import is_terminal, print_json
    from scalinglab.errors import ConfigError
    from scalinglab.train import train
    from scalinglab.train.distributed import is_main_process

    cfg = build_config(args)
    if not cfg.train.data:
        raise ConfigError("no shards folder: give --data SHARDS (or [train] data in --config)")
    cfg.train.budget  # noqa: B018 -- a missing budget is a user error, before any work
    if args.print_config:
        return print_config(cfg)
    if not args.out:
        raise ConfigError("--out RUN is required (the run folder to write or resume)")
    result = train(
        cfg, args.out, progress=is_terminal(), allow_config_change=args.allow_config_change
    )
    if args.json and is_main_process():  # under torchrun, rank 0 alone reports
        print_json(result)
    elif is_main_process():
        val, loss = (result.get(k) for k in ("val_loss", "train_loss"))
        val, loss = (f"{x:.4f}" if x is not None else "-" for x in (val, loss))
        print(
            f"{result['status']}: {args.out}  steps {result['steps']}  tokens {result['tokens']}  "
            f"train_loss {loss}  val_loss {val}  "
            f"{result['tokens_per_second']:.0f} tok/s  {result['wall_seconds']:.1f} s"
        )
    if result["status"] == "preempted" and result.get("signal") == "SIGINT":
        return EXIT_INTERRUPTED  # Ctrl-C: stopped as SIGTERM stops a run, with a checkpoint
    return {"completed": 0, "diverged": EXIT_DIVERGED, "preempted": EXIT_PREEMPTED}.get(
        result["status"], EXIT_FAILED
    )


def print_config(cfg) -> int:
    """The config the trainer would run: the shards' vocabulary, the dtype `auto` picks on
    this machine, the final LR; the TOML of RUN/config.toml."""
    from scalinglab.config import CONFIG_FORMAT_VERSION, dumps_toml
    from scalinglab.data.shards import open_shards
    from scalinglab.train import setup

    resolved = setup.resolve(cfg, open_shards(cfg.train.data), setup.pick_device(cfg.train.device))
    print(dumps_toml({"format_version": CONFIG_FORMAT_VERSION, **resolved.to_dict()}), end="")
    return 0
