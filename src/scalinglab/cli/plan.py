"""`scalinglab plan FIT.json`: compute-optimal N and D, the compute for a target loss, a fixed N."""

ORDER = 60


def register(sub):
    p = sub.add_parser(
        "plan",
        help="plan the compute-optimal run from a fit.json",
        description="Compute-optimal N and D for FLOP budgets (--flops), the compute to reach a "
        "loss (--target-loss), or the loss of a fixed model size on a budget (--params N --flops C).",
    )
    p.add_argument("fit", help="fit.json written by `scalinglab fit --out`")
    p.add_argument("--flops", type=float, nargs="+", help="FLOP budget(s)")
    p.add_argument("--target-loss", type=float, help="loss to reach")
    p.add_argument("--params", type=float, help="fixed model size N (with one --flops)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _fmt(row):
    parts = []
    for k, v in row.items():
        if k.endswith("_ci") or isinstance(v, dict):
            continue
        ci = row.get(f"{k}_ci")
        s = f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        if ci and None not in ci:
            s += f" [{ci[0]:.4g}, {ci[1]:.4g}]"
        parts.append(s)
    return "  ".join(parts)


def _warn_extrapolation(law, rows) -> None:
    """A plan decades outside the fitted compute still answers, saying how far it reaches."""
    import sys

    from scalinglab.plan.allocate import extrapolation, fitted_compute_range

    fitted = fitted_compute_range(law)
    for row in rows:
        c = row.get("flops")
        note = extrapolation(c, fitted) if isinstance(c, int | float) else None
        if note:
            print(f"warning: extrapolating: {note}", file=sys.stderr)


def run(args):
    from scalinglab.cli._util import print_json
    from scalinglab.errors import ConfigError
    from scalinglab.laws import load_fit
    from scalinglab.plan import fixed_params, optimal_allocation, target_loss

    law = load_fit(args.fit)
    if args.params is not None:
        if not args.flops or len(args.flops) != 1:
            raise ConfigError("--params needs exactly one --flops budget")
        out = fixed_params(law, args.params, args.flops[0])
    elif args.target_loss is not None:
        if args.flops:
            raise ConfigError("give --flops or --target-loss, not both")
        out = target_loss(law, args.target_loss)
    elif args.flops:
        out = optimal_allocation(law, args.flops)
    else:
        raise ConfigError("give --flops C..., --target-loss L, or --params N --flops C")
    _warn_extrapolation(law, out if isinstance(out, list) else [out])
    if args.json:
        print_json(out)
    else:
        for row in out if isinstance(out, list) else [out]:
            print(_fmt(row))
            if "optimal" in row:
                print("compute-optimal at this budget: " + _fmt(row["optimal"]))
    return 0
