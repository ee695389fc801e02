"""`scalinglab runs`: damaged run folders warn (one line each, naming the file); a folder
with no run folders is a one-line error."""

from scalinglab.cli import main
from tests.reliability.helpers import one_line_error


def _folders(tmp_path):
    root = tmp_path / "r"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "c").mkdir()
    (root / "a" / "result.json").write_text('{"val_loss": 3')  # cut short
    (root / "c" / "result.json").write_text("")
    (root / "b" / "config.toml").write_text("[train]\nlr = = 1\n")
    (root / "b" / "metrics.jsonl").write_text(
        '{"step": 1, "val_loss": 3.0, "tokens": 10}\n{oops\n'
        '{"step": 2, "val_loss": 2.5, "tokens": 20}\n{"step"'  # a torn last line: silent
    )
    return root


def test_damaged_result_and_config_warn(tmp_path, capsys):
    root = _folders(tmp_path)
    assert main(["runs", str(root)]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {root}/a/result.json: not JSON (truncated or damaged): "
        "the run shows without its result",
        f"warning: {root}/b/config.toml: invalid TOML: Invalid value (at line 2, column 6): "
        "the run's config columns are empty",
        f"warning: {root}/c/result.json: empty: the run shows without its result",
    ]


def test_a_damaged_tasks_json_warns(tmp_path, capsys):
    """Its task columns vanished without a word."""
    root = _folders(tmp_path)
    (root / "c" / "tasks.json").write_text('{"format_version": 2, "results": [],}')
    assert main(["runs", str(root)]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"warning: {root}/c/tasks.json: not JSON (truncated or damaged): "
        "the run's task columns are empty"
    )


def test_curves_warn_of_a_malformed_metrics_line(tmp_path, capsys):
    root = _folders(tmp_path)
    assert main(["runs", str(root), "--curves"]) == 0
    out = capsys.readouterr()
    assert out.err.splitlines()[-1] == f"warning: {root}/b/metrics.jsonl: line 2: not JSON: skipped"
    assert len(out.out.splitlines()) == 3  # header and the two good rows


def test_a_folder_without_run_folders_is_an_error(tmp_path, capsys):
    (tmp_path / "shards").mkdir()
    d = tmp_path / "shards"
    assert one_line_error(capsys, ["runs", str(d)]) == (
        f"error: {d}: no run folders found (looked in {d} and {d}/runs)\n"
    )


def test_an_unknown_status_is_an_error_naming_the_statuses(tmp_path, capsys):
    root = _folders(tmp_path)
    assert one_line_error(capsys, ["runs", str(root), "--status", "complete"]) == (
        "error: --status complete: not a status (the statuses are completed, diverged, "
        "preempted, failed, incomplete, pending; here: incomplete 1, pending 2)\n"
    )
    # an empty one is no status either: it listed every run
    assert one_line_error(capsys, ["runs", str(root), "--status", ""]).startswith(
        "error: --status '': not a status (the statuses are completed,"
    )
    # a known status that no run has: an empty selection, not an error
    assert main(["runs", str(root), "--status", "failed", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"


def test_a_result_in_the_folder_of_the_runs_is_no_run(tmp_path, capsys, caplog):
    """A trainer that wrote {out}/../result.json made SWEEP/runs itself a run: listed, and
    fitted as a fourth point, with nothing said."""
    import json
    import shutil

    from tests.report.synth_runs import isoflop_sweep

    runs = isoflop_sweep(tmp_path / "s", "gpt", [1e12, 3e12], noise=0.0)
    shutil.copy(runs[0] / "result.json", tmp_path / "s" / "runs" / "result.json")
    out = tmp_path / "t.csv"
    assert main(["runs", str(tmp_path / "s"), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == len(runs) + 1  # the runs and the header
    assert caplog.messages == [
        f"{tmp_path / 's' / 'runs'} holds result.json, as a run folder would, though it is the "
        "folder of the runs (written there by a trainer outside its own --out?): left out"
    ]
    # a completed run whose loss is NaN: diverged, as report counts it (fit said "missing value")
    bad = runs[1] / "result.json"
    result = json.loads(bad.read_text())
    bad.write_text(json.dumps(result | {"val_loss": float("nan")}))
    capsys.readouterr()
    assert main(["runs", str(tmp_path / "s"), "--out", str(out)]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        f"warning: {runs[1]}: completed with a non-finite loss (nan); counted as diverged, "
        "left out of the fits"
    )
    statuses = [line.split(",") for line in out.read_text().splitlines()]
    col = statuses[0].index("status")
    assert sum(r[col] == "diverged" for r in statuses[1:]) == 1
