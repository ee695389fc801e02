"""A spec a doc presents as a file of examples/ holds that file's keys and values."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOML_BLOCK = re.compile(r"^```toml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_study_md_shows_the_quickstart_spec_with_every_key():
    """docs/study.md calls examples/quickstart.toml the built-in study and shows it:
    its first TOML block is that spec, comments aside (it had left out [tasks], the
    LSTM's width_multiple and others)."""
    text = (ROOT / "docs" / "study.md").read_text(encoding="utf-8")
    shown = tomllib.loads(TOML_BLOCK.search(text).group(1))
    spec = tomllib.loads((ROOT / "examples" / "quickstart.toml").read_text(encoding="utf-8"))
    assert shown == spec
