"""Bring your own trainer to a study: `study --trainer-cmd` (and `trainer_cmd` in the study
spec) trains every run of the study, sweeps, seed repeats and backtest, with an external
program (tests/sweep/byo_trainer.py, plain PyTorch); the study fits, predicts and reports
from what that program left (docs/interfaces.md)."""

import json
import tomllib

import pytest

from scalinglab.cli import main
from scalinglab.errors import SweepError
from scalinglab.study.spec import parse_study, study_dict
from tests.sweep.test_trainer_cmd import CMD
from tests.test_study import TOY, toy_corpus


@pytest.mark.slow
def test_a_study_trains_every_run_with_an_external_trainer(tmp_path, capsys):
    corpus = toy_corpus(tmp_path / "corpus.txt")
    spec = tmp_path / "toy.toml"
    # the toy study, smaller: 2 budgets x 3 sizes, one seed repeat and the backtest
    text = TOY.format(corpus=corpus).replace("sizes = 4", "sizes = 3")
    for old, new in (("[3e8, 1e9]", "[1e8, 3e8]"), ("budget = 3e9", "budget = 1e9"),
                     ("budget = 3e8", "budget = 1e8")):  # fmt: skip
        assert old in text
        text = text.replace(old, new)
    spec.write_text(text)
    out = tmp_path / "study"
    argv = ["study", str(spec), "--out", str(out), "--cache", str(tmp_path / "cache"),
            "--trainer-cmd", CMD]  # fmt: skip
    assert main(argv) == 0
    results = {p.parent.name: json.loads(p.read_text()) for p in out.rglob("result.json")}
    # 2 budgets x 3 sizes, a seed repeat and the backtest: all the external trainer's
    assert len(results) == 8
    assert {r["trainer"] for r in results.values()} == {"tests/sweep/byo_trainer.py"}
    assert {r["status"] for r in results.values()} == {"completed"}
    summary = json.loads((out / "summary.json").read_text())
    pred = json.loads((out / "prediction.json").read_text())
    bt = results[pred["run_name"]]
    assert summary["backtest"]["actual_loss"] == bt["val_loss"]  # the external run's loss
    assert summary["backtest"]["predicted_loss"] == pred["predicted_loss"]
    seeds = [tomllib.loads(p.read_text())["train"]["seed"] for p in out.rglob("run.toml")]
    assert sorted(seeds).count(7) == 1  # the seed repeat, given its {seed}
    assert json.loads((out / "study.json").read_text())["spec"]["trainer_cmd"] == CMD
    assert (out / "report.html").exists()
    # a rerun finds every run finished: nothing is trained again
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("result.json")}
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("result.json")} == mtimes


def test_trainer_cmd_in_a_study_spec_is_checked_and_kept(tmp_path):
    d = tomllib.loads(TOY.format(corpus=tmp_path / "c.txt"))
    d["trainer_cmd"] = "python t.py --width {n_embd} --out {out}"
    study = parse_study(d, "toy")
    assert study.trainer_cmd == d["trainer_cmd"]
    assert parse_study(study_dict(study), "again").trainer_cmd == d["trainer_cmd"]
    assert study.scaled(5).trainer_cmd == d["trainer_cmd"]
    d["trainer_cmd"] = "python t.py {n_layers}"
    with pytest.raises(
        SweepError, match=r"toy: trainer_cmd: unknown placeholder\(s\) \{n_layers\}"
    ):
        parse_study(d, "toy")
    with pytest.raises(SweepError, match=r"trainer_cmd: unknown placeholder\(s\) \{width\}"):
        study.with_trainer_cmd("python t.py {width}", "--trainer-cmd")


def test_a_studys_trainer_cmd_may_use_the_columns_all_its_runs_have(tmp_path):
    """An IsoFLOP study's runs (its sweeps, the grid runs of its backtest and seed
    repeats) all have a budget; a ladder's tokens_per_param is refused up front, not at
    each run's fill."""
    d = tomllib.loads(TOY.format(corpus=tmp_path / "c.txt"))
    study = parse_study(d, "toy")
    cmd = "t.py {budget:.2e} {out}"
    assert study.with_trainer_cmd(cmd, "--trainer-cmd").trainer_cmd == cmd
    with pytest.raises(SweepError) as err:
        study.with_trainer_cmd("t.py {tokens_per_param}", "--trainer-cmd")
    assert str(err.value).endswith("and the design columns all its runs have: budget)")
