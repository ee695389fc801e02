"""Bring your own trainer: `scalinglab sweep --trainer-cmd` (and `trainer_cmd` in the spec)
runs any program per planned run (docs/interfaces.md)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.errors import SweepError
from scalinglab.laws import ScalingLaw
from scalinglab.sweep import driver
from scalinglab.sweep.spec import check_trainer_cmd, load_spec, placeholder_values
from scalinglab.sweep.table import runs_table
from scalinglab.sweep.worker import trainer_command, trainer_values
from tests.sweep.conftest import spec_text, write_spec

BYO = Path(__file__).with_name("byo_trainer.py")
CMD = (
    f"{sys.executable} {BYO} --n-layer {{n_layer}} --n-embd {{n_embd}} --n-head {{n_head}} "
    "--block-size {block_size} --batch-size {batch_size} --tokens {tokens} --lr {lr} "
    "--seed {seed} --data {data} --out {out}"
)


def spec(tmp_path, data, budgets="3e8, 1.2e9", extra=""):
    design = f"""kind = "isoflop"
budgets = [{budgets}]
sizes = 3
tokens_per_param = 32
spread = 16
"""
    text = spec_text(data, design, train="seed = 5", extra=extra)
    path = tmp_path / "spec.toml"
    path.write_text(text.replace("batch_size = 4", "batch_size = 32"))
    return path


@pytest.mark.slow
def test_an_external_pytorch_trainer_runs_an_isoflop_sweep_and_is_fitted(tmp_path, shards):
    """A trainer in plain PyTorch (byo_trainer.py, no scalinglab inside) driven through
    the CLI by --trainer-cmd: each run is its own, and the fitter reads what it left."""
    out = tmp_path / "out"
    path = spec(tmp_path, shards, "1.2e9, 2.4e9")
    argv = ["sweep", str(path), "--out", str(out), "--workers", "2", "--trainer-cmd", CMD]
    assert main(argv) == 0
    rows = runs_table(out)
    assert len(rows) == 6 and {r["status"] for r in rows} == {"completed"}
    plan = {r["name"]: r for r in json.loads((out / "plan.json").read_text())["runs"]}
    for r in rows:
        res = json.loads((out / "runs" / r["run_id"] / "result.json").read_text())
        assert res["trainer"] == "tests/sweep/byo_trainer.py"
        # N is the external model's own count (not scalinglab's GPT count of the shape)
        assert r["params"] == res["params"] != plan[r["run_id"]]["params"]
        # D: the planned tokens, in whole batches of 32 x 16
        assert plan[r["run_id"]]["tokens"] - 512 < r["tokens"] <= plan[r["run_id"]]["tokens"]
        assert r["loss"] == res["val_loss"] < np.log(32)  # it learned: below a uniform guess
        curve = (out / "runs" / r["run_id"] / "metrics.jsonl").read_text().splitlines()
        assert json.loads(curve[-1])["tokens"] == r["tokens"]
    law = ScalingLaw("isoflop", bootstrap=0).fit(rows)
    assert law.n_points_ == 6
    for b in (1.2e9, 2.4e9):  # each vertex: the minimum of the parabola through 3 runs
        measured = min(r["loss"] for r in rows if r["budget"] == b)
        assert law.params_[f"L_opt@{b:g}"] <= measured
    # rerunning skips the finished runs, as for scalinglab's own trainer
    assert main(argv) == 0
    assert all(r["loss"] == s["loss"] for r, s in zip(rows, runs_table(out), strict=True))


def test_trainer_cmd_in_the_spec_through_run_sweep_recovers_a_known_optimum(tmp_path, shards):
    """The stand-in's loss 1 + 1000/N + 1e4/D puts the IsoFLOP optimum at D/N = 10."""
    from scalinglab import run_sweep

    cmd = f"{sys.executable} {Path(__file__).with_name('law_trainer.py')} {{params}} {{tokens}} {{out}}"
    path = spec(tmp_path, shards, "1e9, 1e10, 1e11", extra=f"trainer_cmd = {json.dumps(cmd)}")
    text = path.read_text().replace("sizes = 3", "sizes = 7")
    path.write_text(text.replace("tokens_per_param = 32", "tokens_per_param = 10"))
    outcomes = run_sweep(path, tmp_path / "out", workers=2)
    assert len(outcomes) == 21 and {o["status"] for o in outcomes} == {"completed"}
    law = ScalingLaw("isoflop", bootstrap=0).fit(runs_table(tmp_path / "out"))
    for b in (1e9, 1e10, 1e11):
        ratio = law.params_[f"D_opt@{b:g}"] / law.params_[f"N_opt@{b:g}"]
        assert ratio == pytest.approx(10, rel=0.15)
    assert law.params_["a"] == pytest.approx(0.5, abs=0.02)


def test_placeholders_are_filled_per_run_and_checked_in_the_spec(tmp_path, shards):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "run.toml").write_text(
        '[model]\nn_layer = 3\nn_embd = 24\n[train]\nlr = 0.003\ndata = "/d/my shards"\n'
    )
    (run / "sweep.json").write_text(json.dumps({"planned": {"tokens": 5000, "budget": 1e9}}))
    argv = trainer_command("train.py --depth={n_layer} -w {n_embd} {lr} {data} {tokens} {out}", run)
    assert argv == [
        "train.py", "--depth=3", "-w", "24", "0.003", "/d/my shards", "5000", str(run.resolve()),
    ]  # fmt: skip
    with pytest.raises(SweepError, match=r"unknown placeholder\(s\) \{n_layers\}"):
        load_spec(spec(tmp_path, shards, extra='trainer_cmd = "t.py {n_layers}"'))
    with pytest.raises(SweepError, match="trainer_cmd: expected a command line"):
        load_spec(spec(tmp_path, shards, extra="trainer_cmd = 3"))
    # a format no value of the placeholder's kind takes is refused with the spec, not at the
    # first run's fill; the formats the run's values take are kept
    with pytest.raises(
        SweepError,
        match=r"trainer_cmd: \{lr:\.2q\} is no format for a number \(Unknown format code 'q'",
    ):
        load_spec(spec(tmp_path, shards, extra='trainer_cmd = "t.py {lr:.2q}"'))
    with pytest.raises(SweepError, match=r"\{arch:d\} is no format for text"):
        load_spec(spec(tmp_path, shards, extra='trainer_cmd = "t.py {arch:d}"'))
    ok = "t.py {lr:.3e} {n_layer:d} {steps:d} {params:,} {name!r:>9} {out:>5} {flops_6nd:.2e}"
    assert load_spec(spec(tmp_path, shards, extra=f'trainer_cmd = "{ok}"')).trainer_cmd == ok
    assert trainer_command("t.py {lr:.3e} {n_layer:03d} {tokens:,}", run)[1:] == [
        "3.000e-03", "003", "5,000",
    ]  # fmt: skip
    assert load_spec(spec(tmp_path, shards)).trainer_cmd is None


DESIGNS = {
    "grid": 'kind = "grid"\nshapes = [{n_layer = 1, n_embd = 8, n_head = 2}]\ntokens = [2000]',
    "isoflop": 'kind = "isoflop"\nbudgets = [3e8]\nsizes = 3\ntokens_per_param = 32',
    "trunks": 'kind = "isoflop"\nbudgets = [3e8, 6e8]\nsizes = 2\ntokens_per_param = 32\n'
    "trunks = true\ncheckpoints = 4",
    "ladder": 'kind = "ladder"\nparams = [2000]\ntokens_per_param = [2, 4]',
    "wsd": 'kind = "wsd"\nparams = [2000]\ntokens_per_param = [8, 16]\ncheckpoints = 4',
    "hparams": 'kind = "hparams"\nshapes = [{n_layer = 1, n_embd = 8, n_head = 2}]\n'
    "tokens = [2000]\nlr_factors = [0.5, 1]\nbatch_sizes = [4]",
}


@pytest.mark.parametrize("kind", DESIGNS)
def test_a_designs_placeholders_are_those_every_run_has_with_their_types(tmp_path, shards, kind):
    """The spec check knows each design's columns, typed as the runs' values are: a
    placeholder it accepts fills for every run, one that some run lacks is refused."""
    spec = load_spec(write_spec(tmp_path, shards, DESIGNS[kind]))
    known = placeholder_values(spec.design)
    _, runs = driver.make_plan(spec)
    every = None
    for r in runs:
        values = trainer_values(driver.write_run_folder(r, tmp_path / "o", spec, 1))
        for name, sample in known.items():
            assert type(values[name]) is type(sample), (kind, name, values[name])
        every = set(values) if every is None else every & set(values)
    assert every == set(known), kind  # nothing every run has is refused


@pytest.mark.parametrize(
    ("design", "cmd", "message"),
    [
        ("isoflop", "t.py {out} {}", "an empty placeholder {} in 't.py {out} {}': name the value"),
        ("isoflop", "t.py {lr!x}", "{lr!x}: unknown conversion 'x' (use !r, !s or !a)"),
        ("isoflop", "t.py {lr:d}", "{lr:d} is no format for a number (Unknown format code 'd'"),
        ("isoflop", "t.py {flops:d}", "{flops:d} is no format for a number"),
        ("isoflop", "t.py {budget:d}", "{budget:d} is no format for a number"),
        ("isoflop", "t.py {lr:{width}}", "unknown placeholder(s) {width}"),
        ("grid", "t.py {tokens_per_param}", "grid design's columns: budget, budget_kind)"),
        ("trunks", "t.py {budget}", "unknown placeholder(s) {budget} (known: the [model] and "
         "[train] fields, out, config, name, params, params_nonembed, flops_6nd and this "
         "isoflop design's columns: none)"),
        ("ladder", "t.py {budget}", "unknown placeholder(s) {budget} (known: the [model] and "
         "[train] fields, out, config, name, params, params_nonembed, flops_6nd and this "
         "ladder design's columns: target_params, tokens_per_param)"),
    ],
)  # fmt: skip
def test_a_placeholder_no_run_can_fill_is_refused_with_the_spec(tmp_path, shards, design, cmd,
                                                                 message):  # fmt: skip
    """They passed the spec check and then failed every run ("cannot fill it for this
    run"), after the sweep had begun."""
    path = write_spec(tmp_path, shards, DESIGNS[design], extra=f"trainer_cmd = {json.dumps(cmd)}")
    with pytest.raises(SweepError) as err:
        load_spec(path)
    assert f"{path}: trainer_cmd: " in str(err.value) and message in str(err.value)


def test_the_design_columns_fill_and_are_refused_by_the_cli_flag(tmp_path, shards, capsys):
    ladder = load_spec(write_spec(tmp_path, shards, DESIGNS["ladder"]))
    ok = "t.py {tokens_per_param:g} {target_params:.0f} {out}"
    assert check_trainer_cmd(ok, "--trainer-cmd", ladder.design) == ok
    grid = write_spec(tmp_path, shards, DESIGNS["grid"])
    argv = ["sweep", str(grid), "--out", str(tmp_path / "o"), "--trainer-cmd", "t.py {lr:d}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --trainer-cmd: {lr:d} is no format for a number")
    assert "Traceback" not in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("program", "why"),
    [
        ("/nonexistent/trainer", "the program /nonexistent/trainer does not exist"),
        ("no-such-trainer-xyz", "the program 'no-such-trainer-xyz' is not found on PATH"),
        ("./t.py", "the program ./t.py is not executable (chmod +x it"),
    ],
)
def test_a_trainer_cmd_whose_program_cannot_start_is_refused_before_any_run(
    tmp_path, shards, capsys, monkeypatch, program, why
):
    """It aborted the sweep with `error: /nonexistent/trainer: No such file or directory`
    (exit 1, a traceback's OSError), runs left pending with no reason recorded."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.py").write_text("print('not executable')\n")
    grid = write_spec(tmp_path, shards, DESIGNS["grid"])
    out = tmp_path / "o"
    argv = ["sweep", str(grid), "--out", str(out), "--trainer-cmd", f"{program} {{out}}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --trainer-cmd: {why}") and err.count("\n") == 1
    assert not out.exists()
    # the same command in the spec is named so
    grid.write_text(f"trainer_cmd = {json.dumps(program + ' {out}')}\n" + grid.read_text())
    assert main(argv[:4]) == 2
    assert capsys.readouterr().err.startswith(f"error: {grid}: trainer_cmd: {why}")


def test_a_trainer_that_cannot_start_fails_its_run_saying_why(tmp_path):
    """A program gone after the check (or missing on the node): the run is failed with the
    reason in its result.json, not an OSError that ends the sweep."""
    from scalinglab.sweep.worker import run_task

    run = tmp_path / "run"
    run.mkdir()
    outcome = run_task(run, retries=2, command=f"{tmp_path}/gone {{out}}")
    assert outcome == {"name": "run", "status": "failed", "attempts": 1, "returncode": None}
    result = json.loads((run / "result.json").read_text())
    error = f"cannot start the trainer '{tmp_path}/gone': No such file or directory"
    assert result["status"] == "failed" and result["error"] == error
    assert (run / "train.log").read_text().endswith(error + "\n")


def test_a_study_whose_trainer_cannot_start_is_refused_before_anything(tmp_path, capsys):
    from tests.test_study import TOY, toy_corpus

    spec = tmp_path / "toy.toml"
    spec.write_text(TOY.format(corpus=toy_corpus(tmp_path / "corpus.txt")))
    argv = ["study", str(spec), "--out", str(tmp_path / "s"), "--cache", str(tmp_path / "c"),
            "--trainer-cmd", "/nonexistent/trainer {out}"]  # fmt: skip
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "error: --trainer-cmd: the program /nonexistent/trainer does not exist\n"
    )
    assert not (tmp_path / "s").exists() and not (tmp_path / "c").exists()


def test_loggers_a_trainer_command_is_not_given_are_warned_of(tmp_path, shards, capsys):
    """`--logger wandb --trainer-cmd 'python t.py {out}'` was taken without a word, and no
    tracker logged anything: the command is given neither {loggers} nor {config}."""
    from tests.test_study import TOY

    path = spec(tmp_path, shards)
    study = tmp_path / "toy.toml"
    study.write_text(TOY.format(corpus=tmp_path / "corpus.txt"))
    say = (
        "warning: loggers csv: the runs are trained by the trainer command, which is given "
        "neither {loggers} nor {config}: it logs only what it logs itself (docs/interfaces.md)\n"
    )
    for cmd, logger, warned in [
        ("t.py {out}", ["--logger", "csv"], True),
        ("t.py --config {config} {out}", ["--logger", "csv"], False),
        ("t.py --log {loggers} {out}", ["--logger", "csv"], False),
        ("t.py {out}", [], False),
    ]:
        for argv in (["sweep", str(path)], ["study", str(study)]):
            assert main([*argv, "--print-config", "--trainer-cmd", cmd, *logger]) == 0
            assert capsys.readouterr().err == (say if warned else ""), (argv[0], cmd, logger)


FAKE = """import json, os, sys
out, params, tokens = sys.argv[1:4]
with open(os.path.join(out, "result.json"), "w") as f:
    json.dump({"status": "completed", "val_loss": 3.0, "params": float(params),
               "tokens": float(tokens)}, f)
"""


def test_a_rerun_under_another_trainer_command_is_refused(tmp_path, shards, capsys):
    """A run's name hashes its config, not the program that trains it: a rerun into the
    folder with another --trainer-cmd reused every finished run as if it had trained them
    ('15 already done'), and sweep.toml recorded the spec's command, not the flag's."""
    fake = tmp_path / "fake.py"
    fake.write_text(FAKE)
    cmd = f"{sys.executable} {fake} {{out}} {{params}} {{tokens}}"
    out = tmp_path / "out"
    argv = ["sweep", str(spec(tmp_path, shards, budgets="3e8")), "--out", str(out)]
    assert main([*argv, "--trainer-cmd", cmd]) == 0
    assert f"trainer_cmd = {json.dumps(cmd)}" in (out / "sweep.toml").read_text()
    capsys.readouterr()
    assert main([*argv, "--trainer-cmd", cmd + " v2"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (  # after the design's own warning
        f"error: {out}: its 3 finished run(s) were trained by {cmd!r} ({out / 'sweep.toml'}); "
        f"this sweep gives {cmd + ' v2'!r}: they would be reused as if trained by it; give "
        "another --out, or the same trainer command"
    )
    assert main([*argv]) == 2  # scalinglab's own trainer is another one too
    assert "this sweep gives scalinglab's trainer" in capsys.readouterr().err
    assert main([*argv, "--trainer-cmd", cmd]) == 0  # the same: its runs are done
