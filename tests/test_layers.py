"""The layer contracts of docs/design.md (pyproject.toml [tool.importlinter]) hold on the
source tree, and break when an upward import or an import loop is added to a copy of it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="import-linter (the [dev] extra) is not installed")

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(src: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run import-linter with the project's contracts on the package found in `src`."""
    shutil.copy(ROOT / "pyproject.toml", cwd / "pyproject.toml")
    env = os.environ | {"PYTHONPATH": str(src)}
    cmd = [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"]
    return subprocess.run(
        [*cmd, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def copy_tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "scalinglab", src / "scalinglab",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    return src


def test_the_source_tree_keeps_every_contract(tmp_path):
    proc = lint_imports(ROOT / "src", tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout and "0 broken" in proc.stdout


def test_an_upward_import_breaks_the_layers(tmp_path):
    src = copy_tree(tmp_path)
    forms = src / "scalinglab" / "laws" / "forms.py"  # the fitter reaching up into the planner
    forms.write_text(forms.read_text() + "\nfrom scalinglab.plan import analysis  # noqa\n")
    proc = lint_imports(src, tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "Layers: each package imports only the ones below it BROKEN" in proc.stdout
    assert "scalinglab.laws.forms -> scalinglab.plan.analysis" in proc.stdout


def test_a_loop_between_sibling_modules_breaks_the_acyclic_contract(tmp_path):
    src = copy_tree(tmp_path)
    shards = src / "scalinglab" / "data" / "shards.py"
    loader = src / "scalinglab" / "data" / "loader.py"
    shards.write_text(shards.read_text() + "\nimport scalinglab.data.loader  # noqa\n")
    loader.write_text(loader.read_text() + "\nimport scalinglab.data.shards  # noqa\n")
    proc = lint_imports(src, tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "No import loops between the modules of a package BROKEN" in proc.stdout
    assert "No cycles are allowed in scalinglab.data" in proc.stdout


def test_torch_in_the_fitter_breaks_its_contract(tmp_path):
    src = copy_tree(tmp_path)
    fit = src / "scalinglab" / "laws" / "fit.py"
    fit.write_text(fit.read_text() + "\nimport torch  # noqa\n")
    proc = lint_imports(src, tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "The fitter and the planner know nothing of torch BROKEN" in proc.stdout


def test_no_module_imports_another_modules_private_names():
    """ruff's SLF001 catches `module._name`; this catches `from module import _name`."""
    import ast

    bad = []
    for path in sorted((ROOT / "src" / "scalinglab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("scalinglab"):
                names = [a.name for a in node.names if a.name.startswith("_")]
                bad += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names
                        if n != "__version__"]  # fmt: skip
    assert not bad, bad
