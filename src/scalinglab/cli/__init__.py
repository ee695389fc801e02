"""Command-line entry point: `scalinglab SUBCOMMAND ...`.

The CLI is thin: each subcommand lives in a module of this package that
defines `register(subparsers)` (adds its parser and sets `func`) and an
optional `ORDER` (position in `--help`). Modules import torch and other heavy
libraries inside their handlers, so `scalinglab fit --help` stays fast.

Every `ScalingLabError` becomes one line on stderr (`error: ...`) and a
non-zero exit; so does every failure of the file system (`OSError`: a full disk, a
read-only folder, a file where a folder is expected), which exits with 1 after
naming the path: whatever the command wrote is complete or removed (written under
a temporary name and renamed into place, docs/reliability.md). Tracebacks are for
bugs only.
"""

import argparse
import errno
import importlib
import logging
import os
import pkgutil
import re
import sys

from scalinglab import __version__
from scalinglab.cli._util import forget_sigterm, terminated, writes_to
from scalinglab.errors import ScalingLabError, flag_spelling


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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # a negative number in exponent form is a value too (`--lr -1e-3`): argparse's
        # own pattern takes it for a flag and said "--lr: expected one argument"
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")

    def parse_args(self, args=None, namespace=None):
        # argparse leaves a subcommand's unknown flags to the top parser, whose error
        # would point to `scalinglab --help`; the command's own parser says it instead
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            where = getattr(ns, "_parser", None) or self
            where.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="scalinglab",
        description="Train language models of many sizes, fit scaling laws, plan the next run.",
    )
    parser.add_argument("--version", action="version", version=f"scalinglab {__version__}")
    _add_verbosity(parser, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        mod.register(sub)
    for p in _all_subparsers(sub):  # -v/-q anywhere: before or after the command
        _add_verbosity(p, argparse.SUPPRESS)
        p.set_defaults(_parser=p)  # the innermost command's parser: its usage errors
        _conventions(p)
    return parser


def _conventions(p: argparse.ArgumentParser) -> None:
    """What docs/cli.md promises of every flag, on every command, whoever wrote its
    parser: an integer flag reads `1e6` (config.int_arg), and a `--two-words` flag also
    answers to `--two_words` (unlisted in --help). A boolean `--no-x` pair is left as is:
    its action reads the sign from the spelling (config.add_flags aliases those itself)."""
    from scalinglab.config import int_arg

    for action in p._actions:  # noqa: SLF001 -- argparse's own list of a parser's flags
        if action.type is int:
            action.type = int_arg
        store = argparse._StoreAction  # noqa: SLF001 -- a plain store of its values
        if action.option_strings and type(action) is store and action.nargs in ("+", "*"):
            action.__class__ = _ValuesOnce
        if isinstance(action, argparse.BooleanOptionalAction):
            continue
        for name in action.option_strings:
            alias = "--" + name[2:].replace("-", "_")
            if name.startswith("--") and alias not in p._option_string_actions:  # noqa: SLF001
                p._option_string_actions[alias] = action  # noqa: SLF001


class _ValuesOnce(argparse._StoreAction):  # noqa: SLF001 -- argparse's store, checked
    """A flag of several values (`plan --flops C...`) given twice is refused: argparse kept
    the last one's values, and `--flops 1e20 --flops 1e21` planned 1e21 alone, silently."""

    def __call__(self, parser, namespace, values, option_string=None):
        # argparse puts each flag's default on the namespace before it reads the flags:
        # anything else there was stored by this flag given before
        if getattr(namespace, self.dest, self.default) is not self.default:
            raise argparse.ArgumentError(
                self, f"given twice: give all its values after one {option_string} "
                f"({option_string} A B ...)"
            )  # fmt: skip
        super().__call__(parser, namespace, values, option_string)


def _add_verbosity(p: argparse.ArgumentParser, default) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="store_true", default=default,
                   help="log debug messages")  # fmt: skip
    g.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="log warnings and errors only")  # fmt: skip


def _all_subparsers(sub) -> list[argparse.ArgumentParser]:
    """Every parser below `sub` (a command's own actions too, e.g. `data fetch`)."""
    found = []
    for p in dict.fromkeys(sub.choices.values()):
        found.append(p)
        for a in p._actions:  # noqa: SLF001 -- argparse keeps its subparsers only here
            if isinstance(a, argparse._SubParsersAction):  # noqa: SLF001
                found += _all_subparsers(a)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose, quiet = getattr(args, "verbose", False), getattr(args, "quiet", False)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LevelFormatter())
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO,
        handlers=[handler],
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    forget_sigterm()
    with flag_spelling():  # errors name the flags the user typed, not Python keywords
        try:
            with writes_to(_target(args)):
                rc = args.func(args)
        except ScalingLabError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt as exc:  # Ctrl-C; SIGTERM where a command stops runs
            by_sigterm = terminated(exc)
            print(f"error: {'terminated' if by_sigterm else 'interrupted'}", file=sys.stderr)
            return 143 if by_sigterm else 130
        except BrokenPipeError:  # e.g. `scalinglab generate ... | head`
            return 0
        except OSError as exc:
            print(f"error: {describe_os_error(exc)}", file=sys.stderr)
            return EXIT_OS_ERROR
    return int(rc or 0)


class LevelFormatter(logging.Formatter):
    """The message alone, with `warning: ` or `error: ` before it at those levels: what the
    commands print themselves (`print(f"warning: ...")`) and what the library logs read
    alike, and a user can grep one word for either."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"error: {text}"
        return f"warning: {text}" if record.levelno >= logging.WARNING else text


def _target(args) -> str:
    """Where the command writes (named in a write failure that names no file)."""
    for name in ("out", "csv", "dir", "run"):
        if getattr(args, name, None):
            return str(getattr(args, name))
    return "."


EXIT_OS_ERROR = 1
"""A write or read the system refused (disk full, read-only, no such folder): not a bug,
not bad input, but nothing to retry blindly either."""

_HINTS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EFBIG: "the file would exceed the size limit (ulimit -f)",
    errno.ENOTDIR: "a path component is a file where a folder is expected",
    errno.EISDIR: "it is a folder where a file is expected",
    errno.EEXIST: "something else is in the way",
}


def describe_os_error(exc: OSError) -> str:
    """One line: the path, the system's reason and what it means; never a traceback."""
    # an OSError raised with a message and no errno (ConnectionError("no Ray here")) has
    # no strerror: its message, not only its class name
    reason = exc.strerror or (str(exc).splitlines() or [""])[0].strip() or type(exc).__name__
    hint = _HINTS.get(exc.errno)
    path = exc.filename
    where = f"{os.fsdecode(path)}: " if path is not None else ""
    if exc.filename2 is not None:
        where = f"{os.fsdecode(path)} -> {os.fsdecode(exc.filename2)}: "
    return f"{where}{reason}" + (f" ({hint})" if hint and hint.lower() != reason.lower() else "")
