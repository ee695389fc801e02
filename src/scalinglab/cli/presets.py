"""`scalinglab presets`: the named model shapes, with their parameters and FLOPs per token."""

ORDER = 25


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "presets",
        help="list the named model shapes (--preset NAME) with N and FLOPs per token",
        description="The presets `--preset NAME` starts from (models/registry.py), with "
        "their parameter counts and training FLOPs per token at a vocabulary size.",
    )
    p.add_argument("--vocab-size", type=int, default=256, metavar="V",
                   help="vocabulary size N is counted at (default: 256, bytes)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run)


def rows(vocab_size: int) -> list[dict]:
    from scalinglab.config import ModelConfig
    from scalinglab.errors import ConfigError
    from scalinglab.models.counting import count
    from scalinglab.models.registry import PRESETS

    if not 1 <= vocab_size <= 1 << 32:  # 1e30 printed a table of 1e35-parameter models
        raise ConfigError(
            f"--vocab-size must be in [1, {1 << 32}] (shards hold token ids in at most 32 "
            f"bits), got {vocab_size}"
        )
    out = []
    for name, fields in PRESETS.items():
        cfg = ModelConfig(**fields, preset=name)
        c = count(cfg, vocab_size)
        out.append({"preset": name, **fields, "params": c.params,
                    "params_nonembed": c.params_nonembed, "flops_per_token": c.flops_per_token})  # fmt: skip
    return out


def run(args) -> int:
    from scalinglab.cli._util import print_json

    table = rows(args.vocab_size)
    if args.json:
        print_json(table)
        return 0
    print(f"{'preset':<16} {'arch':<9} {'layers':>6} {'width':>6} {'heads':>5} {'block':>6} "
          f"{'N (V=' + str(args.vocab_size) + ')':>14} {'FLOPs/token':>12}")  # fmt: skip
    for r in table:
        print(f"{r['preset']:<16} {r['arch']:<9} {r['n_layer']:>6} {r['n_embd']:>6} "
              f"{r.get('n_head', '-'):>5} {r['block_size']:>6} {r['params']:>14,} "
              f"{r['flops_per_token']:>12.3g}")  # fmt: skip
    return 0
