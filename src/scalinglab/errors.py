"""The project's exception types.

Every boundary (files, flags, configs, checkpoints, CSV tables) validates its
input and raises one of these, with a message a user can act on: it names the
file, row, column, byte offset or setting at fault. The CLI prints the message as
one line (`error: ...`) and exits non-zero, never with a traceback.

**A setting is named as the user wrote it.** Messages are written with the
command-line spelling (`--drop-highest must be >= 0`). While a `scalinglab`
command runs (`cli.main` holds `flag_spelling()`) that is what the message says;
called from Python, the same error names the keyword (`drop_highest must be >= 0`):
`python_spelling` turns each `--flag` into its keyword, rendering the message
when it is read (`str(exc)`), so no raise site needs to know who called it. Text
in backticks (a command line to run) keeps its flags.
"""

import contextlib
import importlib
import re

# Flags whose keyword is not the flag's name with "-" turned into "_".
KEYWORDS = {
    "model": "arch",
    "logger": "loggers",
    "no-tie-embeddings": "tie_embeddings=False",
    "no-floor": "floor=False",
    "no-prune": "prune=False",
    "force": "force=True",
    "allow-config-change": "allow_config_change=True",
    "submitit-param": "submitit_params",
    "run-col": "run_cols",
}
_FLAG = re.compile(r"(?<![\w/.-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")
_flag_spelling = 0  # > 0 while a CLI command runs (a count: commands may nest in tests)


def python_spelling(message: str) -> str:
    """`message` with each `--flag` outside backticks turned into its Python keyword."""
    parts = message.split("`")
    for i in range(0, len(parts), 2):  # the even parts lie outside backticks
        parts[i] = _FLAG.sub(lambda m: KEYWORDS.get(m[1], m[1].replace("-", "_")), parts[i])
    return "`".join(parts)


@contextlib.contextmanager
def flag_spelling():
    """Within this block errors name command-line flags (`cli.main` holds it)."""
    global _flag_spelling
    _flag_spelling += 1
    try:
        yield
    finally:
        _flag_spelling -= 1


class ScalingLabError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code = 2

    @property
    def message(self) -> str:
        """The message as written, with command-line flags: what an error that wraps this
        one embeds, so that each reader still gets its own spelling."""
        return super().__str__()

    def __str__(self) -> str:
        return self.message if _flag_spelling else python_spelling(self.message)


class ConfigError(ScalingLabError):
    """A flag, config field or spec value is invalid (the message names it)."""


class DataError(ScalingLabError):
    """A corpus, shards folder or table is missing or malformed (names file and position)."""


class CheckpointError(ScalingLabError):
    """A checkpoint is missing, incomplete, corrupt or incompatible."""


class FitError(ScalingLabError):
    """A scaling-law fit cannot be done on the given data."""


class SweepError(ScalingLabError):
    """A sweep spec or sweep folder is invalid."""


class ExportError(ScalingLabError):
    """A model cannot be exported to the requested format."""


class ExtrapolationWarning(UserWarning):
    """A prediction asked far outside the data its law was fitted on (`ScalingLaw.predict`:
    more than laws.warn.BELOW below the smallest N, D or C fitted, or laws.warn.ABOVE above
    the largest), most often a units mix-up; a warning, since the law still answers."""


class MissingExtraError(ScalingLabError):
    """An optional dependency is not installed; the message says which extra installs it."""

    def __init__(self, module: str, extra: str, what: str):
        super().__init__(
            f"{what} needs the Python package '{module}', which is not installed; "
            f"install it with: pip install 'scalinglab[{extra}]'"
        )
        self.module = module
        self.extra = extra


def require(module: str, extra: str, what: str):
    """Import and return an optional dependency, or raise MissingExtraError."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # the extra is absent, or broken
        raise MissingExtraError(module, extra, what) from exc
