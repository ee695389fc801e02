"""`scalinglab plan FIT.json`: compute-optimal N and D, the compute for a target loss, a fixed N."""

import sys

ORDER = 60
FLAGS = ("--flops", "--target-loss")  # how plan's refusals name its arguments


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
    p.add_argument(
        "--unique-tokens",
        type=float,
        metavar="U",
        help="data-constrained fit: only U unique tokens exist; N, D and epochs per --flops",
    )
    g = p.add_argument_group("curve laws: which schedule reaches the lowest loss in S steps")
    g.add_argument("--steps", type=int, metavar="S", help="run length in steps")
    g.add_argument(
        "--schedule", action="append", default=None, metavar="SPEC",
        help="a candidate, e.g. 'warmup(500, 1e-3) + cosine(9500, 1e-4)'; repeatable",
    )  # fmt: skip
    g.add_argument("--peak-lr", type=float, help="the family's peak LR (cosine, linear, WSD ...)")
    g.add_argument("--final-lr", type=float, help="the family's final LR (default peak/10)")
    g.add_argument("--warmup", type=int, default=None, help="the family's warmup steps (default 0)")
    h = p.add_argument_group("hyperparameters: lr and batch from an lr-opt fit")
    lr_fit = ("an lr-opt fit (`fit --law lr-opt --out`): add its lr and batch to every planned "
              "N and D; or give it as FIT with --params N --flops C")  # fmt: skip
    h.add_argument("--lr-fit", metavar="FIT.json", help=lr_fit)
    forms = "step: lr(N, D), B(D) (default); deepseek: lr(C), B(C)"
    h.add_argument("--lr-form", choices=("step", "deepseek"), default=None, help=forms)
    h.add_argument("--block-size", type=int, default=0, help="also give the batch in sequences")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the plan as JSON instead of its lines: a list of one object per --flops "
        "(per schedule with --steps, best first); one object for --target-loss or --params",
    )
    p.set_defaults(func=run)


def _fmt(row):
    parts = []
    for k, v in row.items():
        if k.endswith(("_ci", "_pi")) or isinstance(v, dict):
            continue
        ci, pi = row.get(f"{k}_ci"), row.get(f"{k}_pi")
        # None: JSON's null, a number the law does not give (an envelope's loss): '-', as
        # the report shows it, not Python's 'None'
        s = f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={'-' if v is None else v}"
        if ci and None not in ci:
            s += f" [{ci[0]:.4g}, {ci[1]:.4g}]"
        elif k == "flops" and ci and ci[0] is not None and "target_loss" in row:
            s += f" [{ci[0]:.4g}, inf]"  # too many draws cannot reach the target
        if pi and None not in pi:
            s += f" (a new run: [{pi[0]:.4g}, {pi[1]:.4g}])"
        parts.append(s)
    return "  ".join(parts)


def run(args):
    from scalinglab.errors import ConfigError, FitError
    from scalinglab.laws import load_fit
    from scalinglab.laws.lropt import load_lr_opt
    from scalinglab.plan.allocate import check_sizes, extrapolations

    _check_numbers(args)
    lr_opt = _is_lr_opt(args.fit)
    if not lr_opt and not args.lr_fit:  # they shape the lr-opt fit's lr and batch alone:
        # without one they were ignored, the plan printed as if they were not given
        given = [f for f, v in (("--lr-form", args.lr_form), ("--block-size", args.block_size))
                 if v]  # fmt: skip
        if given:
            raise ConfigError(
                f"{given[0]} shapes the lr and batch of an lr-opt fit: it needs --lr-fit "
                "FIT.json (or an lr-opt fit as FIT)"
            )
    args.lr_form = args.lr_form or "step"
    if lr_opt:  # plan LROPT.json --params N --flops C
        if args.params is None or not args.flops or len(args.flops) != 1:
            raise ConfigError("an lr-opt fit plans with --params N --flops C")
        row = {"params": args.params, "flops": args.flops[0],
               "tokens": args.flops[0] / (6 * args.params)}  # fmt: skip
        return _show(_with_hparams(load_lr_opt(args.fit), [row], args), args.json)
    if args.steps is None:
        given = [f for f, v in (("--schedule", args.schedule), ("--peak-lr", args.peak_lr),
                                ("--final-lr", args.final_lr), ("--warmup", args.warmup))
                 if v is not None]  # fmt: skip
        if given:
            raise ConfigError(
                f"{given[0]} needs --steps S (the run length the schedules are ranked at)"
            )
    else:  # these were ignored without a word: the ranking printed as if they were not given
        other = [f for f, v in (("--flops", args.flops), ("--target-loss", args.target_loss),
                                ("--params", args.params), ("--unique-tokens", args.unique_tokens),
                                ("--lr-fit", args.lr_fit)) if v is not None]  # fmt: skip
        if other:
            raise ConfigError(
                f"--steps S ranks schedules under a curve law; {other[0]} plans N and D "
                "under the other laws: give one or the other"
            )
        family_only = [f for f, v in (("--final-lr", args.final_lr), ("--warmup", args.warmup))
                       if v is not None]  # fmt: skip
        if family_only and args.peak_lr is None:
            raise ConfigError(
                f"{family_only[0]} shapes the family of --peak-lr LR and needs it "
                "(a --schedule SPEC gives its own)"
            )
    law = load_fit(args.fit)
    try:
        out = _plan(args, law)
    except FitError as exc:  # of the fit, not the flags: name the file ('this fit' said none)
        raise FitError(f"{args.fit}: {exc.message}") from None
    rows = out if isinstance(out, list) else [out]
    check_sizes(law, rows, FLAGS)
    for note in extrapolations(law, rows):  # a plan far out still answers, saying how far
        print(f"warning: extrapolating: {note}", file=sys.stderr)
    if args.lr_fit:
        _with_hparams(load_lr_opt(args.lr_fit), rows, args)
    return _show(out, args.json)


def _with_hparams(law, rows, args):
    """The rows with the lr-opt fit's lr and batch, saying how far they extrapolate."""
    from scalinglab.plan.hparams import extrapolations, with_hparams

    for note in extrapolations(law, rows):  # an lr of 2.3e84 came without a word
        print(f"warning: extrapolating: {note}", file=sys.stderr)
    return with_hparams(law, rows, args.lr_form, args.block_size)


def _check_numbers(args) -> None:
    """Refuse, before any fit is read, a number flag that can mean nothing: a non-finite or
    non-positive size, budget, loss or LR (`--target-loss inf` answered flops=1), a run
    shorter than two steps (a negative --steps was blamed on --warmup)."""
    import math

    from scalinglab.errors import ConfigError

    given = [("--flops", c) for c in args.flops or []]
    given += [(f"--{k.replace('_', '-')}", getattr(args, k))
              for k in ("target_loss", "params", "unique_tokens", "peak_lr")]  # fmt: skip
    for name, v in given:
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ConfigError(f"{name} must be a finite number > 0, got {v}")
    for name, v in (("--params", args.params), ("--unique-tokens", args.unique_tokens)):
        if v is not None and v < 1:  # params=0.5 was planned, its loss printed
            raise ConfigError(f"{name} must be at least 1, got {v:g}")
    if args.final_lr is not None and not (math.isfinite(args.final_lr) and args.final_lr >= 0):
        raise ConfigError(f"--final-lr must be a finite number >= 0, got {args.final_lr}")
    for c in args.flops or [] if args.params is not None else []:
        if c / (6 * args.params) < 1:  # tokens=1.7e-09 and an lr of 2.5e-17 were printed
            raise ConfigError(
                f"--flops {c:g} at --params {args.params:g} trains on C / (6 N) = "
                f"{c / (6 * args.params):.3g} tokens, less than one"
            )
    if args.steps is not None and args.steps < 2:
        raise ConfigError(f"--steps must be >= 2, got {args.steps}")
    if args.block_size < 0:
        raise ConfigError(
            f"--block-size must be >= 0 (0: no batch in sequences), got {args.block_size}"
        )


def _is_lr_opt(path) -> bool:
    import json

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("kind") == "scalinglab.lr_opt_fit"
    except (OSError, ValueError, AttributeError):
        return False  # load_fit says what is wrong with it


def _show(out, as_json: bool) -> int:
    from scalinglab.cli._util import print_json

    if as_json:
        print_json(out)
    else:
        for row in out if isinstance(out, list) else [out]:
            print(_fmt(row))
            if "optimal" in row:
                print("compute-optimal at this budget: " + _fmt(row["optimal"]))
    return 0


def _plan(args, law):
    """The plan's rows (a list, or one row) for the arguments that are not lr-opt's."""
    from scalinglab.errors import ConfigError
    from scalinglab.plan import (
        fixed_params,
        optimal_allocation,
        rank_schedules,
        target_loss,
        unique_tokens_allocation,
    )

    if args.steps is not None:
        from scalinglab.laws.schedules import family

        cands = list(args.schedule or [])
        if args.peak_lr is not None:
            final = args.final_lr if args.final_lr is not None else args.peak_lr / 10
            cands += [s.spec for s in family(args.steps, args.peak_lr, final, args.warmup or 0)]
        if not cands:
            raise ConfigError("--steps S needs --schedule SPEC (repeatable) or --peak-lr LR")
        out = rank_schedules(law, args.steps, cands)
        from scalinglab.plan.schedules import lr_note, steps_note

        for note in (steps_note(law, args.steps), lr_note(law, args.steps, cands)):
            if note:  # a ranking far out still answers, saying how far (as plans of N, D do)
                print(f"warning: extrapolating: {note}", file=sys.stderr)
    elif args.unique_tokens is not None:
        if not args.flops or args.params is not None or args.target_loss is not None:
            raise ConfigError("--unique-tokens U goes with --flops C... only")
        out = unique_tokens_allocation(law, args.flops, args.unique_tokens)
    elif law.law == "data-constrained":
        raise ConfigError("a data-constrained fit plans with --flops C... --unique-tokens U")
    elif law.law == "power-c" and args.lr_fit:  # the lr-opt fit reads N, which power-c lacks
        raise ConfigError("--lr-fit needs a plan's N: a power-c fit plans the loss alone")
    elif args.params is not None:
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
    return out
