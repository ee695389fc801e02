"""`scalinglab coord-check`: activation and update sizes per layer over widths (μP's check)."""

ORDER = 38


def register(sub) -> None:
    p = sub.add_parser(
        "coord-check",
        help="activation and update sizes per layer over widths, after a few steps",
        description=(
            "Train GPTs of --widths a few Adam steps under each --param and measure, on one "
            "fixed batch, each layer's mean |x| and its update since step 0. Under mup both "
            "stay flat in width; under sp the updates grow. Writes coord_check.json and "
            "coord_check.png into --out and prints each layer's growth exponent (the slope "
            "of log size against log width at the last step: 0 is flat)."
        ),
    )
    p.add_argument("--data", required=True, metavar="SHARDS", help="a prepared shards folder")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="folder for JSON and figure")
    p.add_argument(
        "--widths", default="32,64,128,256", help="comma-separated (default: %(default)s)"
    )
    p.add_argument("--params", default="sp,mup", help="comma-separated (default: %(default)s)")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam's lr (default: %(default)s)")
    p.add_argument("--steps", type=int, default=4, help="optimizer steps (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=16, help="(default: %(default)s)")
    p.add_argument("--block-size", type=int, default=64, help="(default: %(default)s)")
    p.add_argument("--n-layer", type=int, default=2, help="(default: %(default)s)")
    p.add_argument("--n-head", type=int, default=4, help="(default: %(default)s)")
    p.add_argument("--base-width", type=int, help="default: the smallest width")
    p.add_argument("--seeds", type=int, default=1, help="models averaged per width (default: 1)")
    p.add_argument("--json", action="store_true", help="print the exponents as JSON")
    p.set_defaults(func=run)


def _ints(text: str, flag: str) -> list[int]:
    from scalinglab.errors import ConfigError

    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: give comma-separated whole numbers") from None
    if not out or min(out) < 1:
        raise ConfigError(f"{flag} {text!r}: give positive whole numbers")
    return out


def run(args) -> int:
    from pathlib import Path

    from scalinglab.cli._util import print_json
    from scalinglab.config import PARAMS
    from scalinglab.data.shards import open_shards
    from scalinglab.errors import ConfigError
    from scalinglab.fsio import atomic_write_json
    from scalinglab.train.coordcheck import WHAT, coord_check, sample_batches

    widths = _ints(args.widths, "--widths")
    repeated = sorted({w for w in widths if widths.count(w) > 1})
    if repeated:
        raise ConfigError(
            f"--widths {args.widths!r}: {', '.join(map(str, repeated))} given twice; "
            "give each width once"
        )
    if len(widths) < 2:
        raise ConfigError(
            f"--widths {args.widths!r}: give 2 or more widths (the growth exponents "
            "are fitted across widths)"
        )
    params = [p.strip() for p in args.params.split(",") if p.strip()]
    for p in params:
        if p not in PARAMS:
            raise ConfigError(f"--params: {p!r} is not one of {', '.join(PARAMS)}")
    if not params or len(set(params)) < len(params):  # none: matplotlib's traceback
        raise ConfigError(
            f"--params {args.params!r}: give each of the parametrisations to compare once "
            f"({', '.join(PARAMS)})"
        )
    for flag in ("steps", "batch_size", "block_size", "n_layer", "n_head", "seeds", "base_width"):
        if flag == "base_width" and args.base_width is None:  # not given: the smallest width
            continue
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be at least 1")
    if not args.lr > 0:
        raise ConfigError(f"--lr {args.lr}: must be positive")
    out = Path(args.out)
    if out.exists() and not out.is_dir():  # before the models train, not after
        raise ConfigError(f"--out {args.out} is a file, not a folder: give a folder")
    shards = open_shards(args.data)
    batches = sample_batches(shards.train, args.steps + 1, args.batch_size, args.block_size)
    res = coord_check(batches, widths, params, lr=args.lr, n_layer=args.n_layer,
                      n_head=args.n_head, base_width=args.base_width or 0, seeds=args.seeds,
                      vocab_size=shards.vocab_size)  # fmt: skip
    _check_finite(res, args.lr)
    out.mkdir(parents=True, exist_ok=True)
    doc = res.to_json()
    atomic_write_json(out / "coord_check.json", doc)
    res.plot(out / "coord_check.png")
    if args.json:
        print_json(doc["exponents"])
        return 0
    print(f"growth exponent of each layer in width ({res.widths}), step {res.steps}, "
          f"lr {res.lr:g}, base width {res.base_width}: 0 is flat, 1 grows as the width")  # fmt: skip
    for what in WHAT:
        ex = doc["exponents"][what]
        print(f"\n{what}:\n| param | " + " | ".join(res.layers) + " |")
        print("|---|" + "---|" * len(res.layers))
        for p in params:
            print(f"| {p} | " + " | ".join(f"{ex[p][k]:+.2f}" for k in res.layers) + " |")
    print(f"\nwrote {out / 'coord_check.json'} and {out / 'coord_check.png'}")
    return 0


def _check_finite(res, lr: float) -> None:
    """Refuse activations that overflowed (a diverging --lr): their NaN was no JSON, a
    traceback after the out folder was made."""
    import numpy as np

    from scalinglab.errors import ConfigError

    for what, by_param in res.values.items():
        for p, v in by_param.items():
            bad = np.argwhere(~np.isfinite(np.asarray(v, dtype=float)))
            if len(bad):
                w, step = res.widths[bad[0][0]], int(bad[0][1])
                raise ConfigError(
                    f"--lr {lr:g}: {p} at width {w} diverged by step {step} (its {what} is "
                    "not finite); a coordinate check needs a --lr that trains"
                )
