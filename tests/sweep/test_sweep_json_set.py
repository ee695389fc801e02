"""`sweep --json` (the runs table, or the plan, as JSON on stdout) and `--set` overrides
reaching the runs a real sweep trains."""

import json

from scalinglab import runfolder
from scalinglab.cli import main
from scalinglab.sweep.driver import make_plan
from scalinglab.sweep.spec import load_spec
from tests.sweep.conftest import write_spec

GRID = """kind = "grid"
shapes = [{n_layer = 1, n_embd = 16, n_head = 4}]
tokens = [640, 1280]
"""


def test_dry_run_json_is_the_plan(tmp_path, shards, capsys):
    p = write_spec(tmp_path, shards, GRID)
    assert main(["sweep", str(p), "--dry-run", "--json", "--threads", "1"]) == 0
    io = capsys.readouterr()
    plan = json.loads(io.out)
    _, runs = make_plan(load_spec(p))
    assert [r["name"] for r in plan] == [r.name for r in runs]
    assert [r["tokens"] for r in plan] == [640, 1280]
    assert [r["flops"] for r in plan] == [r.flops for r in runs]
    assert "2 runs, total compute" in io.err  # the summary goes to stderr


def test_a_sweep_with_set_overrides_prints_its_table_as_json(tmp_path, shards, capsys):
    p = write_spec(tmp_path, shards, GRID)
    out = tmp_path / "o"
    argv = ["sweep", str(p), "-o", str(out), "--json", "--threads", "1",
            "--set", "train.batch_size=2", "--set", "design.tokens=[320]"]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["tokens"], r["status"], r["batch_size"]) for r in rows] == [(320, "completed", 2)]
    run = out / "runs" / rows[0]["run_id"]
    assert rows[0]["loss"] == runfolder.read_result(run)["val_loss"] > 0
    assert "batch_size = 2" in (run / "config.toml").read_text()


def test_a_key_set_twice_is_refused(tmp_path, shards, capsys):
    """`--set train.batch_size=2 --set train.batch_size=4` planned with 4, the last one,
    whichever the user meant; the spec file is read as it was."""
    from tests.reliability.helpers import one_line_error

    p = write_spec(tmp_path, shards, GRID)
    before = p.read_bytes()
    argv = ["sweep", str(p), "--dry-run", "--threads", "1",
            "--set", "train.batch_size=2", "--set", " train.batch_size =4"]  # fmt: skip
    assert one_line_error(capsys, argv) == (
        "error: --set  train.batch_size =4: train.batch_size is set twice "
        "(--set train.batch_size=2)\n"
    )
    assert p.read_bytes() == before
