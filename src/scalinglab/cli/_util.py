"""Small helpers shared by the command modules (terminal output only)."""

import contextlib
import json
import os
import signal
import sys
import threading

from scalinglab.errors import ScalingLabError


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")


def print_rows(obj) -> None:
    """A result (a table's rows, a summary) as JSON on stdout, NaN and inf as null: what
    `--json` prints on every command (docs/cli.md)."""
    from scalinglab.plan.analysis import json_safe

    print_json(json_safe(obj))


def is_terminal() -> bool:
    return sys.stderr.isatty()


@contextlib.contextmanager
def writes_to(path: str | os.PathLike):
    """Name `path` in a write failure that names no file (a write() on a full disk, as
    libraries report it: an OSError without a file name, safetensors' own error), so the
    CLI's one line says where; other errors pass unchanged."""
    from scalinglab.fsio import named_as

    try:
        with named_as(path):
            yield
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":  # safetensors may not even be imported
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ScalingLabError(f"{os.fspath(path)}: cannot write: {reason}") from None


def render_auto(rows) -> str:
    """--law auto's table of candidates."""
    from scalinglab.laws.backtest import AUTO_MARGIN, AUTO_PREFER, AUTO_PREFER_REPEATS

    lines = [
        "--law auto: candidates by leave-larger-out error (point fits); the rule: "
        f"{AUTO_PREFER} ({AUTO_PREFER_REPEATS} where data repeats) unless another law's "
        f"error is lower by more than {AUTO_MARGIN:.0%}",
        "",
    ]
    head = f"{'law':<18}{'points':>8}{'mean |rel err|':>16}{'max':>9}{'bias':>9}"
    lines += [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['law']:<18}  not fitted: {r['error']}")
            continue
        mark = "  <- chosen" if r["chosen"] else ""
        lines.append(
            f"{r['law']:<18}{r['n']:>8}{r['mean_abs_rel_error']:>16.3%}"
            f"{r['max_abs_rel_error']:>9.2%}{r['bias']:>+9.2%}{mark}"
        )
    return "\n".join([*lines, ""])


class Terminated(KeyboardInterrupt):
    """SIGTERM to a sweep's or a study's driver (a scheduler, `timeout`, `kill`): it stops
    the runs as Ctrl-C does (docs/sweeps.md), and the command exits 143."""


_SIGTERM = {"received": False}  # set by sigterm_interrupts' handler


def terminated(exc: KeyboardInterrupt) -> bool:
    """Whether `exc` stopped a command for a SIGTERM: Terminated, or the plain
    KeyboardInterrupt that code it was raised in put in its place (Ray's wait does)."""
    return isinstance(exc, Terminated) or _SIGTERM["received"]


def forget_sigterm() -> None:
    """A new command: no SIGTERM received yet (for commands run one after another in one
    process, as the tests do)."""
    _SIGTERM["received"] = False


@contextlib.contextmanager
def sigterm_interrupts():
    """Within: the first SIGTERM raises Terminated in the main thread, so the executor
    stops its runs as on Ctrl-C; a second one ends the process at once, as before."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread sets handlers (a sweep run from a thread)
        return

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _SIGTERM["received"] = True
        raise Terminated

    _SIGTERM["received"] = False
    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if old is None else old)


def warn_loggers_unread(cmd: str | None, loggers) -> None:
    """`warning: ...` on stderr where runs are to be logged to trackers (`--logger`, or
    [train] loggers) but trained by a trainer command that is given neither `{loggers}`
    nor `{config}` (the run.toml that holds them): nothing would log to them, unsaid."""
    if not cmd or not loggers or "{loggers" in cmd or "{config" in cmd:
        return
    print(
        f"warning: loggers {', '.join(loggers)}: the runs are trained by the trainer command, "
        "which is given neither {loggers} nor {config}: it logs only what it logs itself "
        "(docs/interfaces.md)",
        file=sys.stderr,
    )
