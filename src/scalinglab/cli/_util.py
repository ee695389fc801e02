"""Small helpers shared by the command modules (terminal output only)."""

import json
import sys


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")


def is_terminal() -> bool:
    return sys.stderr.isatty()
