"""The runs table's hyperparameter columns, and `scalinglab runs --out` as CSV, JSON lines,
Parquet."""

import csv
import json

import pytest

from scalinglab.cli import main
from scalinglab.config import ModelConfig, RunConfig, TrainConfig, dumps_toml
from scalinglab.sweep.table import HYPERPARAMETERS, format_table, runs_table


def _run(root, name, result=None, **train):
    cfg = RunConfig(
        model=ModelConfig(n_layer=2, n_embd=16, n_head=4, block_size=32, vocab_size=32),
        train=TrainConfig(data="x", tokens=6400, **train),
    )
    d = root / "runs" / name
    d.mkdir(parents=True)
    (d / "config.toml").write_text(dumps_toml(cfg.to_dict()))
    if result is not None:
        (d / "result.json").write_text(json.dumps({"format_version": 1, **result}))
    return d


@pytest.fixture
def sweep(tmp_path):
    done = {"status": "completed", "val_loss": 2.5, "dtype": "float32", "tokens": 6400}
    _run(tmp_path, "a", done, lr=3e-3, seed=1, schedule="wsd", warmup=7, grad_accum=2)
    _run(tmp_path, "b", {**done, "val_loss": 2.6}, lr=1e-3, min_lr=2e-4, seed=2, batch_size=4)
    _run(tmp_path, "c", lr=1e-3, seed=3)  # pending: the config's values, dtype unresolved
    return tmp_path


def test_rows_carry_each_runs_hyperparameters(sweep):
    rows = {r["run_id"]: r for r in runs_table(sweep)}
    a, b, c = rows["a"], rows["b"], rows["c"]
    assert (a["lr"], a["schedule"], a["warmup"], a["grad_accum"]) == (3e-3, "wsd", 7, 2)
    assert a["min_lr"] == pytest.approx(3e-4)  # the default: lr / 10
    assert (b["lr"], b["min_lr"], b["schedule"], b["batch_size"]) == (1e-3, 2e-4, "cosine", 4)
    assert [r["seed"] for r in (a, b, c)] == [1, 2, 3]
    assert {r["block_size"] for r in (a, b, c)} == {32}
    assert (a["dtype"], c["dtype"]) == ("float32", "auto")  # resolved by the run, else config
    assert {r["optimizer"] for r in (a, b, c)} == {"adamw"}
    assert set(HYPERPARAMETERS) <= set(a)
    # the terminal shows the hyperparameters that differ, not the ones all runs share
    head = format_table(list(rows.values())).splitlines()[0].split()
    assert {"lr", "seed", "schedule", "min_lr"} <= set(head)
    assert "optimizer" not in head and "block_size" not in head


def test_an_sgd_runs_decay_and_betas_are_what_it_applied(tmp_path):
    """Plain SGD applies no weight decay and no moments, but the table showed the AdamW
    settings its config carries (weight_decay 0.1, betas 0.9 / 0.99), so an analysis of
    decay read every SGD LSTM as decayed at 0.1 (found by an audit)."""
    done = {"status": "completed", "val_loss": 2.5, "tokens": 6400}
    _run(tmp_path, "s", done, optimizer="sgd", lr=20.0, weight_decay=0.1)
    _run(tmp_path, "a", done, optimizer="adamw", weight_decay=0.05)
    rows = {r["run_id"]: r for r in runs_table(tmp_path)}
    assert (rows["s"]["weight_decay"], rows["s"]["beta1"], rows["s"]["beta2"]) == (0.0, None, None)
    assert rows["a"]["weight_decay"] == 0.05 and rows["a"]["beta1"] == 0.9


def test_runs_out_writes_csv_jsonl_and_parquet(sweep, capsys):
    rows = runs_table(sweep)
    out = {fmt: sweep / f"table.{fmt}" for fmt in ("csv", "jsonl", "parquet")}
    for path in out.values():
        assert main(["runs", str(sweep), "--out", str(path)]) == 0
    with open(out["csv"]) as f:
        got = list(csv.DictReader(f))
    assert [r["lr"] for r in got] == ["0.003", "0.001", "0.001"]
    lines = [json.loads(x) for x in out["jsonl"].read_text().splitlines()]
    assert [r["run_id"] for r in lines] == ["a", "b", "c"]
    assert lines[0]["lr"] == 3e-3 and lines[2]["loss"] is None and lines[1]["seed"] == 2
    assert lines == [{k: r.get(k) for k in lines[0]} for r in rows]
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is in the [dataframe] extra")
    table = pq.read_table(out["parquet"]).to_pylist()
    assert table == lines
    assert main(["runs", str(sweep), "--out", str(sweep / "t.txt")]) == 2
    assert "cannot tell the format from the suffix" in capsys.readouterr().err
    assert main(["runs", str(sweep), "--out", str(sweep / "t.txt"), "--format", "jsonl"]) == 0
    assert json.loads((sweep / "t.txt").read_text().splitlines()[1])["run_id"] == "b"
    assert main(["runs", str(sweep), "--format", "csv"]) == 2


@pytest.mark.parametrize(
    "target",
    [
        "runs/a/result.json",  # the run's result, replaced by the table
        "runs/a/metrics.jsonl",  # an existing file of a run, though a table suffix
        "runs/c/result.json",  # absent: it would mark the pending run finished
        "summary.json",  # a study's own file beside its runs
    ],
)
def test_runs_out_never_overwrites_what_the_table_reads(sweep, target, capsys):
    (sweep / "runs/a/metrics.jsonl").write_text('{"step": 10, "val_loss": 2.5}\n')
    (sweep / "summary.json").write_text('{"kind": "study"}')
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()}
    for flag in ("--out", "--csv"):
        fmt = ["--format", "csv"] if flag == "--out" else []  # not "cannot tell the format"
        assert main(["runs", str(sweep), flag, str(sweep / target), *fmt]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {flag} ") and target in err[0], err
    assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} == before
    assert {r["run_id"]: r["status"] for r in runs_table(sweep)}["c"] == "pending"
    # a new table inside DIR, even inside a run folder, is fine; so is rewriting one
    for name in ("runs.csv", "runs.csv", "runs/a/table.csv"):
        assert main(["runs", str(sweep), "--out", str(sweep / name)]) == 0
