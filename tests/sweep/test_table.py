import csv
import json

from scalinglab import runfolder
from scalinglab.cli import main
from scalinglab.config import ModelConfig, RunConfig, TrainConfig, dumps_toml
from scalinglab.models.counting import count
from scalinglab.sweep.table import COLUMNS, run_row, runs_table

CFG = RunConfig(
    model=ModelConfig(n_layer=2, n_embd=16, n_head=4, block_size=16, vocab_size=32),
    train=TrainConfig(data="x", tokens=6400),
)


def _run(root, name, result=None, metrics=False, group=None):
    d = root / "runs" / name
    d.mkdir(parents=True)
    (d / "run.toml").write_text(dumps_toml(CFG.to_dict()))
    if group is not None:
        (d / "sweep.json").write_text(json.dumps({"format_version": 1, "group": group}))
    if metrics:
        (d / "metrics.jsonl").write_text('{"step": 10, "tokens": 640, "train_loss": 3.1}\n')
    if result is not None:
        (d / "result.json").write_text(json.dumps({"format_version": 1, **result}))
    return d


def test_rows_from_folders_keep_every_status(tmp_path, capsys):
    n = count(CFG.model, 32)
    done = {
        "status": "completed", "val_loss": 2.5, "val_bpb": 3.6, "params": n.params,
        "params_nonembed": n.params_nonembed, "tokens": 6400, "flops": 1.5e9,
        "flops_6nd": 6.0 * n.params * 6400, "wall_seconds": 4.0, "tokens_per_second": 1600.0,
        "arch": "gpt", "tokenizer": "byte", "tokenizer_id": "0123abcd",
    }  # fmt: skip
    _run(tmp_path, "a-done", done, metrics=True, group={"budget": 1e9})
    _run(tmp_path, "b-diverged", {"status": "diverged", "val_loss": None}, group={"budget": 1e9})
    _run(tmp_path, "c-incomplete", metrics=True, group={"budget": 2e9})
    _run(tmp_path, "d-pending", group={"budget": 2e9})
    (tmp_path / "runs" / "not-a-run").mkdir()
    rows = {r["run_id"]: r for r in runs_table(tmp_path)}
    assert sorted(rows) == ["a-done", "b-diverged", "c-incomplete", "d-pending"]
    assert [rows[k]["status"] for k in sorted(rows)] == [
        "completed",
        "diverged",
        "incomplete",
        "pending",
    ]
    a = rows["a-done"]
    assert (a["loss"], a["bpb"], a["params"], a["tokens"], a["budget"]) == (
        2.5,
        3.6,
        n.params,
        6400,
        1e9,
    )
    assert (a["n_layer"], a["n_embd"], a["n_head"]) == (2, 16, 4)
    assert (a["tokenizer"], a["tokenizer_id"]) == ("byte", "0123abcd")  # result.json's
    assert rows["b-diverged"]["params"] == n.params and rows["b-diverged"]["loss"] is None

    out = tmp_path / "runs.csv"
    assert main(["runs", str(tmp_path), "--csv", str(out)]) == 0
    with open(out) as f:
        table = list(csv.DictReader(f))
    assert list(table[0])[: len(COLUMNS)] == list(COLUMNS) and "budget" in table[0]
    assert [r["run_id"] for r in table] == ["a-done", "b-diverged", "c-incomplete", "d-pending"]
    assert table[0]["loss"] == "2.5" and table[1]["loss"] == "" and table[1]["status"] == "diverged"
    assert main(["runs", str(tmp_path), "--status", "completed"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and "a-done" in printed[1]


def test_single_run_folder_and_missing_dir(tmp_path, capsys):
    d = _run(tmp_path, "only", {"status": "failed", "error": "boom"})
    assert run_row(d)["status"] == "failed"
    assert [r["run_id"] for r in runs_table(d)] == ["only"]
    assert main(["runs", str(tmp_path / "nowhere")]) == 2
    assert "runs folder not found" in capsys.readouterr().err
    # a file is named as one, not "not found" (`eval RUN/config.toml --tasks`)
    assert main(["runs", str(d / "result.json")]) == 2
    assert (
        capsys.readouterr().err
        == f"error: {d / 'result.json'}: not a folder (give a run folder or a folder of runs)\n"
    )


def test_config_changes_flags_mixed_runs_and_filters_them_out(tmp_path, capsys):
    from scalinglab.laws.table import read_table

    clean = {"status": "completed", "val_loss": 2.5, "tokens": 6400, "flops": 1.5e9}
    _run(tmp_path, "a-clean", clean)
    _run(tmp_path, "b-mixed", clean | {"val_loss": 2.4, "config_changes": 2})
    _run(tmp_path, "c-pending")
    rows = {r["run_id"]: r["config_changes"] for r in runs_table(tmp_path)}
    assert rows == {"a-clean": 0, "b-mixed": 2, "c-pending": None}
    out = tmp_path / "runs.csv"
    assert main(["runs", str(tmp_path), "--csv", str(out)]) == 0
    table = read_table(out, where=["status=completed", "config_changes=0"], need=("D", "L"))
    assert list(table.L) == [2.5]  # the mixed run left out of a fit
    capsys.readouterr()
    assert main(["runs", str(tmp_path), "--status", "completed"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[-1] == "config_changes"
    (tmp_path / "runs" / "b-mixed" / "result.json").write_text(json.dumps(clean))
    assert main(["runs", str(tmp_path)]) == 0  # no mixed run: the column is not printed
    assert "config_changes" not in capsys.readouterr().out


def test_a_result_with_its_own_n_or_d_and_no_c_gets_6nd_not_the_planned_c(tmp_path):
    """Another trainer's result.json gave its own params (or tokens) and no flops: the
    row kept the planned C, which its own N and D do not make (params 5000, tokens
    373120, flops 3e9). It is now 6·N·D of the row's N and D; a result with the planned
    N and D, or its own flops, keeps its C."""
    planned = {"params": 4000, "tokens": 125_000, "flops": 3e9, "flops_6nd": 3e9}
    sweep = {"format_version": 1, "group": {"budget": 3e9}, "planned": planned}
    res = {"status": "completed", "val_loss": 2.0}
    cases = {
        "own-n": ({"params": 5000, "tokens": 373_120}, 6.0 * 5000 * 373_120),
        "own-d": ({"tokens": 100_000}, 6.0 * 4000 * 100_000),
        "planned": ({"params": 4000, "tokens": 125_000}, 3e9),
        "own-c": ({"params": 5000, "tokens": 373_120, "flops": 7e9, "flops_6nd": 7e9}, 7e9),
    }
    for name, (given, want) in cases.items():
        d = tmp_path / name
        d.mkdir()
        (d / "sweep.json").write_text(json.dumps(sweep))
        (d / "result.json").write_text(json.dumps({"format_version": 1, **res, **given}))
        row = run_row(d)
        assert (row["flops"], row["flops_6nd"]) == (want, want), name


# Known answers for mutations of sweep/table.py that every test passed (a mutation audit):
# each fails on its mutation.
def _scored(root, name, scores):
    d = root / "runs" / name
    d.mkdir(parents=True)
    result = {"format_version": 1, "status": "completed", "val_loss": 3.0, "arch": "gpt"}
    (d / "result.json").write_text(json.dumps(result))
    runfolder.record_tasks(d, [{"task": "recall", "sha256": sha, "n": n, "step": 100, "acc": a}
                               for sha, n, a in scores])  # fmt: skip
    return d


def test_a_task_column_takes_the_set_most_runs_have_even_of_fewer_items(tmp_path):
    """Kills T4 (item count ranked before the number of runs): three runs on 50 items, one
    on 4000; the column is the 50-item set's (docs: most runs first, then more items)."""
    from scalinglab.sweep.table import runs_table, task_items

    root = tmp_path / "sweep"
    for i in range(3):
        _scored(root, f"r{i}", [("few", 50, 0.5)])
    _scored(root, "r3", [("many", 4000, 0.9)])
    assert task_items(sorted((root / "runs").iterdir())) == {"recall": "few"}
    acc = {r["run_id"]: r.get("recall.acc") for r in runs_table(root)}
    assert acc == {"r0": 0.5, "r1": 0.5, "r2": 0.5, "r3": None}


def test_a_zero_loss_is_not_a_completed_runs_loss():
    """Kills T5 (finite_positive accepting 0): a completed run with val_loss 0 is counted
    as diverged and named (a loss of 0 nats has no log in a fit)."""
    from scalinglab.sweep.table import count_bad_losses_as_diverged, finite_positive

    assert not finite_positive(0) and not finite_positive(0.0) and finite_positive(1e-9)
    rows = [{"status": "completed", "loss": 0.0, "dir": "R"}]
    said = count_bad_losses_as_diverged(rows, lambda r: r["dir"])
    assert rows[0]["status"] == "diverged"
    assert said == ["R: completed with a loss of 0, not positive; counted as diverged, left out "
                    "of the fits"]  # fmt: skip


def test_an_rnn_row_has_no_heads(tmp_path):
    """Kills T7: an LSTM run's n_head column is 0, not ModelConfig's default."""
    from scalinglab.config import ModelConfig, RunConfig, TrainConfig, dumps_toml
    from scalinglab.sweep.table import run_row

    cfg = RunConfig(model=ModelConfig(arch="lstm", n_layer=1, n_embd=16, vocab_size=32),
                    train=TrainConfig(data="x", tokens=640))  # fmt: skip
    d = tmp_path / "runs" / "lstm-a"
    d.mkdir(parents=True)
    (d / "run.toml").write_text(dumps_toml(cfg.to_dict()))
    row = run_row(d)
    assert (row["arch"], row["n_layer"], row["n_embd"], row["n_head"]) == ("lstm", 1, 16, 0)
