"""`scalinglab sweep --out` that is a file or a study's folder is refused in one line
(exit 2) before anything is planned, run or written, by a dry run as by a real run."""

import json
from pathlib import Path

import pytest

from scalinglab.cli import main
from tests.sweep.conftest import write_spec

GRID = """kind = "grid"
shapes = [{n_layer = 1, n_embd = 8, n_head = 2}]
tokens = [640]
"""


def _snapshot(path: Path) -> dict:
    """{relative path: bytes} of every file under `path` (of `path` itself if a file)."""
    if path.is_file():
        return {".": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def _one_line_error(capsys, argv) -> str:
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert rc == 2, captured.err
    assert "Traceback" not in captured.err
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err


@pytest.fixture
def study_folder(tmp_path) -> Path:
    """A study's folder, as `scalinglab study` leaves it (study.json, prediction.json)."""
    st = tmp_path / "study"
    (st / "sweeps/pool/runs").mkdir(parents=True)
    (st / "study.json").write_text(
        json.dumps({"format_version": 1, "kind": "scalinglab.study", "folders": {}})
    )
    (st / "prediction.json").write_text(json.dumps({"format_version": 1}))
    return st


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_sweep_out_a_study_folder_is_refused(shards, tmp_path, capsys, study_folder, dry_run):
    """It wrote sweep.toml, plan.json and runs/ into the study (exit 0), and `scalinglab
    runs STUDY` then omitted the sweep's run."""
    spec = write_spec(tmp_path, shards, GRID)
    before = _snapshot(study_folder)
    argv = ["sweep", spec, "--out", study_folder, "--workers", "1", "--threads", "1"]
    err = _one_line_error(capsys, [*argv, *(["--dry-run"] if dry_run else [])])
    assert err == (
        f"error: --out {study_folder} is a study's folder (study.json), not a sweep's: "
        "give the sweep a folder of its own\n"
    )
    assert _snapshot(study_folder) == before


def test_sweep_dry_run_out_a_file_is_refused_before_the_plan(shards, tmp_path, capsys):
    """The dry run printed the whole plan and exited 0 where the real run refused."""
    spec = write_spec(tmp_path, shards, GRID)
    afile = tmp_path / "afile.txt"
    afile.write_bytes(b"keep\n")
    rc = main(["sweep", str(spec), "--out", str(afile), "--dry-run"])
    captured = capsys.readouterr()
    assert rc == 2, captured.err
    assert captured.out == ""  # no plan printed
    assert captured.err == f"error: --out {afile} is a file, not a sweep folder: give a folder\n"
    assert afile.read_bytes() == b"keep\n"


def test_sweep_out_a_file_names_the_flag_and_exits_2(shards, tmp_path, capsys):
    """It was `error: afile.txt: File exists (something else is in the way)`, exit 1."""
    spec = write_spec(tmp_path, shards, GRID)
    afile = tmp_path / "afile.txt"
    afile.write_bytes(b"keep\n")
    before = _snapshot(tmp_path)
    argv = ["sweep", spec, "--out", afile, "--workers", "1", "--threads", "1"]
    err = _one_line_error(capsys, argv)
    assert err == f"error: --out {afile} is a file, not a sweep folder: give a folder\n"
    assert _snapshot(tmp_path) == before


def test_the_study_mark_is_the_studys_manifest():
    """The driver (a layer below report) names a study's manifest as report does."""
    from scalinglab.report.collect import STUDY_JSON
    from scalinglab.sweep.driver import STUDY_MARK

    assert STUDY_MARK == STUDY_JSON


def test_a_data_folder_without_a_manifest_gets_one_hint(shards, tmp_path, capsys):
    """The shards' message says to create the folder with `scalinglab prepare`, and the
    sweep added a second hint after it: '(create one with ...) (make it with e.g. ...)'."""
    empty = tmp_path / "not-shards"
    empty.mkdir()
    spec = write_spec(tmp_path, empty, GRID)
    err = _one_line_error(capsys, ["sweep", spec, "--out", tmp_path / "o", "--dry-run"])
    assert "not a shards folder" in err and err.count("scalinglab prepare") == 1, err
    assert "make it with e.g." not in err


def test_sweep_out_a_run_folder_is_refused(shards, tmp_path, capsys):
    """A study refuses a run's folder as --out; a sweep planned its runs/ inside one."""
    spec = write_spec(tmp_path, shards, GRID)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text("kept")
    for dry in ([], ["--dry-run"]):
        err = _one_line_error(capsys, ["sweep", spec, "--out", run, *dry])
        assert err == (
            f"error: --out {run} is a run's folder, not a sweep's: give the sweep a folder "
            "of its own\n"
        )
        assert sorted(p.name for p in run.iterdir()) == ["config.toml"]
