"""The project's exception types.

Every boundary (files, flags, configs, checkpoints, CSV tables) validates its
input and raises one of these, with a message a user can act on: it names the
file, row, column, byte offset or flag at fault. The CLI prints the message as
one line (`error: ...`) and exits non-zero, never with a traceback.
"""

import importlib


class ScalingLabError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code = 2


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
