"""Command-line entry point: `scalinglab SUBCOMMAND ...`.

The CLI is thin: each subcommand lives in a module of this package that
defines `register(subparsers)` (adds its parser and sets `func`) and an
optional `ORDER` (position in `--help`). Modules import torch and other heavy
libraries inside their handlers, so `scalinglab fit --help` stays fast.

Every `ScalingLabError` becomes one line on stderr (`error: ...`) and a
non-zero exit; tracebacks are for bugs only.
"""

import argparse
import importlib
import logging
import pkgutil
import sys

from scalinglab import __version__
from scalinglab.errors import ScalingLabError


def _command_modules():
    mods = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "register"):
            mods.append(mod)
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: `error: ...` and where to look, not the whole
    usage block (which `--help` prints)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="scalinglab",
        description="Train language models of many sizes, fit scaling laws, plan the next run.",
    )
    parser.add_argument("--version", action="version", version=f"scalinglab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except ScalingLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `scalinglab generate ... | head`
        return 0
    return int(rc or 0)
