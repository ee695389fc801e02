"""tests/conftest.py's HEAVY list names tests by file and function: a test renamed or
moved would leave the list silently and run beside the other studies again (each then
takes 4-6x its time, and CI its 25 minutes)."""

import ast
from pathlib import Path

from tests.conftest import HEAVY, is_heavy

ROOT = Path(__file__).resolve().parents[1]


def test_every_heavy_entry_names_a_test_that_exists():
    for entry in HEAVY:
        path, _, name = entry.partition("::")
        file = ROOT / path
        assert file.is_file(), f"HEAVY: {entry}: no file {path}"
        tests = {n.name for n in ast.walk(ast.parse(file.read_text()))
                 if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}  # fmt: skip
        assert tests, f"HEAVY: {entry}: {path} holds no test"
        assert not name or name in tests, f"HEAVY: {entry}: no test {name} in {path}"


def test_heavy_matches_whole_names_only():
    assert is_heavy("tests/test_readme.py::test_the_readme_block_runs_top_to_bottom")
    assert is_heavy("tests/test_study.py::test_toy_study_end_to_end")
    assert is_heavy("tests/train/test_distributed.py::test_crashed_worker[x]")
    assert not is_heavy("tests/test_study.py::test_toy_study_end_to_end_and_more")
    assert not is_heavy("tests/test_study.py::test_examples_copy_is_the_builtin_spec")
    assert not is_heavy("tests/test_readme.pyx::test_a")
