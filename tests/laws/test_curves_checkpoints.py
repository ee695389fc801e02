"""N, D laws from every checkpoint: `runs --curves`, `fit --checkpoints`, whole-run bootstrap."""

import csv
import json

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.config import ModelConfig, RunConfig, TrainConfig, dumps_toml
from scalinglab.laws import ScalingLaw, read_csv
from scalinglab.laws.fit import run_weights, weight_chunks
from scalinglab.models.counting import count
from tests.laws.synth import TRUE_CHIN, chinchilla_law

VOCAB = 256


def run_folder(folder, width, tokens, evals=6):
    """A finished run whose val_loss at every evaluation follows TRUE_CHIN at (N, tokens so far)."""
    folder.mkdir(parents=True)
    model = ModelConfig(arch="gpt", n_layer=2, n_embd=width, n_head=width // 8, block_size=32,
                        vocab_size=VOCAB)  # fmt: skip
    cfg = RunConfig(model=model, train=TrainConfig(data="shards", tokens=tokens))
    (folder / "config.toml").write_text(dumps_toml(cfg.to_dict()))
    c = count(model, VOCAB)
    lines = []
    for t in np.geomspace(tokens / 20, tokens, evals).astype(int):
        t = int(t)
        f = float(t * c.flops_per_token)
        lines.append({"step": int(t // 256), "tokens": int(t), "flops": f, "lr": 1e-3,
                      "train_loss": 9.0})  # fmt: skip
        lines.append({"step": int(t // 256), "tokens": int(t), "flops": f,
                      "val_loss": float(chinchilla_law(c.params, t))})  # fmt: skip
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = {"format_version": 1, "status": "completed", "arch": "gpt",
              "val_loss": lines[-1]["val_loss"], "params": c.params,
              "params_nonembed": c.params_nonembed, "tokens": tokens,
              "flops": tokens * c.flops_per_token, "flops_6nd": 6 * c.params * tokens}  # fmt: skip
    (folder / "result.json").write_text(json.dumps(result))


def test_runs_curves_table_and_checkpoint_fit(tmp_path, capsys):
    for w in (16, 32, 64, 128):
        for tokens in (2e8, 2e9):
            run_folder(tmp_path / "sweep" / "runs" / f"w{w}-d{tokens:.0e}", w, int(tokens))
    out = tmp_path / "curves.csv"
    assert main(["runs", str(tmp_path / "sweep"), "--curves", "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 8 * 6 and {r["lr"] for r in rows} == {"0.001"}
    assert len({r["run_id"] for r in rows}) == 8
    # a run id repeats (one row per checkpoint): only --checkpoints accepts that
    assert main(["fit", str(out), "--law", "chinchilla", "--bootstrap", "0"]) == 2
    assert "duplicate run_id" in capsys.readouterr().err
    fit = tmp_path / "fit.json"
    argv = ["fit", str(out), "--law", "chinchilla", "--checkpoints", "--run-col", "run_id"]
    assert main([*argv, "--bootstrap", "40", "--out", str(fit)]) == 0
    obj = json.loads(fit.read_text())
    assert obj["n_points"] == 48 and obj["conventions"]["runs"] == 8
    for k, v in TRUE_CHIN.items():
        assert obj["params"][k] == pytest.approx(v, rel=0.02), k


def test_bootstrap_and_backtest_take_whole_runs(tmp_path):
    groups = np.array(["a", "a", "a", "b", "b", "c"])
    W = run_weights(groups, 200, 0)
    assert np.all(W[:, 0] == W[:, 1]) and np.all(W[:, 0] == W[:, 2]) and np.all(W[:, 3] == W[:, 4])
    assert np.all(W.reshape(200, -1)[:, [0, 3, 5]].sum(axis=1) == 3)  # 3 runs drawn per resample
    rng = np.random.default_rng(0)
    lines = ["run,N,D,loss"]
    for i, N in enumerate(np.geomspace(1e7, 1e9, 6)):
        for D in np.geomspace(1e8, 1e10, 5):
            L = chinchilla_law(N, D) * np.exp(0.002 * rng.standard_normal())
            lines.append(f"r{i},{N:.6g},{D:.6g},{L:.6f}")
    path = tmp_path / "ckpt.csv"
    path.write_text("\n".join(lines) + "\n")
    t = read_csv(path, run_cols=["run"])
    assert t.groups is not None and len(set(t.groups)) == 6
    law = ScalingLaw("chinchilla", checkpoints=True, run_cols=["run"], bootstrap=50)
    law.fit(path)
    from scalinglab.laws.backtest import backtest

    bt = backtest(law, t, holdout_above=3e19)
    # only the largest model's last checkpoint is above 3e19 FLOPs: its whole curve is held out
    assert bt["n_test"] == 5 and {p["N"] for p in bt["points"]} == {float(t.N.max())}
    assert bt["mean_abs_rel_error"] < 0.02


def test_runs_curves_schedule_column_is_the_configs_lr(tmp_path):
    from scalinglab.laws.curves import read_curve_table
    from scalinglab.train.optim import Schedule as TrainerSchedule

    run = tmp_path / "sweep" / "runs" / "r1"
    run.mkdir(parents=True)
    model = ModelConfig(arch="gpt", n_layer=2, n_embd=16, n_head=2, block_size=32,
                        vocab_size=VOCAB)  # fmt: skip
    train = TrainConfig(data="shards", steps=200, warmup=20, schedule="wsd", lr=2e-3)
    (run / "config.toml").write_text(dumps_toml(RunConfig(model=model, train=train).to_dict()))
    trainer = TrainerSchedule("wsd", 2e-3, 2e-4, 20, 200, 0.2)
    lines = [
        {"step": s, "tokens": s * 384, "lr": trainer(s - 1), "val_loss": 5.0 - s / 100}
        for s in (50, 100, 150, 200)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    # a completed run has its final loss (docs/interfaces.md; without one, runs counts it
    # as diverged, as report does)
    result = {"status": "completed", "steps": 200, "val_loss": 3.0}
    (run / "result.json").write_text(json.dumps(result))
    out = tmp_path / "curves.csv"
    assert main(["runs", str(tmp_path / "sweep"), "--curves", "--csv", str(out)]) == 0
    t = read_curve_table(out, schedule_col="lr_schedule")
    lr = t.runs[0].schedule()
    # the exact LR between the logged steps, not an interpolation of the logged values
    assert np.allclose(lr, [0.0] + [trainer(s) for s in range(200)], rtol=1e-12, atol=0)
    assert not np.allclose(t.runs[0].lr_full, lr_interp(t.runs[0]))
    # annealed on plateau: its evaluations divided the LR, which the config does not say
    # (the schedule gave 17.4 where the trainer used 8.7, and a fit without the lr column
    # took it), so none is given
    plateau = TrainConfig(data="shards", steps=200, warmup=20, schedule="wsd", lr=2e-3,
                          plateau_factor=2.0)  # fmt: skip
    (run / "config.toml").write_text(dumps_toml(RunConfig(model=model, train=plateau).to_dict()))
    assert main(["runs", str(tmp_path / "sweep"), "--curves", "--csv", str(out)]) == 0
    assert {r["lr_schedule"] for r in csv.DictReader(out.open())} == {""}
    (run / "config.toml").write_text(dumps_toml(RunConfig(model=model, train=train).to_dict()))
    # resumed with another config: two schedules in one run, so none is given
    with (run / "history.jsonl").open("a") as f:
        f.write(json.dumps({"event": "config_change", "step": 200}) + "\n")
    assert main(["runs", str(tmp_path / "sweep"), "--curves", "--csv", str(out)]) == 0
    assert {r["lr_schedule"] for r in csv.DictReader(out.open())} == {""}
    # such a run's LR is rebuilt from the lr column
    t = read_curve_table(out, schedule_col="lr_schedule")
    assert t.runs[0].lr_full is None
    assert np.allclose(t.runs[0].schedule(), lr_interp(t.runs[0]))


def lr_interp(run):
    from scalinglab.laws.curves import lr_at_every_step

    return lr_at_every_step(run.steps, run.lr, "linear")


def test_task_results_of_every_checkpoint_join_the_curves_table(tmp_path, capsys):
    """`eval --tasks --every-checkpoint` scored every checkpoint, but the curves table had
    no task columns: no table a task law could be fitted to from every checkpoint."""
    for w in (16, 32, 64):
        for tokens in (2e8, 2e9):
            run = tmp_path / "sweep" / "runs" / f"w{w}-d{tokens:.0e}"
            run_folder(run, w, int(tokens))
            evals = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
            results = [{"task": "recall", "step": e["step"], "tokens": e["tokens"],
                        "flops": e["flops"], "n": 100, "sha256": "s1", "chance": 0.5,
                        "acc": 0.5 + 0.5 / (1 + np.exp(0.3 * (e["val_loss"] - 20.0))),
                        "bpb": e["val_loss"]} for e in evals if "val_loss" in e]  # fmt: skip
            # a result on other items is not mixed in; one at a step with no evaluation
            results += [{**results[-1], "sha256": "other", "acc": 0.99},
                        {**results[0], "step": results[0]["step"] + 1}]  # fmt: skip
            (run / "tasks.json").write_text(json.dumps({"format_version": 2, "results": results}))
    out = tmp_path / "curves.csv"
    assert main(["runs", str(tmp_path / "sweep"), "--curves", "--csv", str(out)]) == 0
    assert capsys.readouterr().err.count("have no evaluation at that step") == 6
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 * 6 and all(r["recall.acc"] for r in rows)
    assert max(float(r["recall.acc"]) for r in rows) < 0.99  # not the other items' 0.99
    fit = tmp_path / "fit.json"
    argv = ["fit", str(out), "--law", "task-sigmoid", "--metric-col", "recall.acc",
            "--loss-col", "recall.bpb", "--chance", "0.5", "--run-col", "run_id",
            "--bootstrap", "0", "--out", str(fit)]  # fmt: skip
    assert main(argv) == 0
    p = json.loads(fit.read_text())["params"]
    assert p["k"] == pytest.approx(0.3, rel=1e-3) and p["L0"] == pytest.approx(20.0, rel=1e-3)


def test_the_fits_bootstrap_weights_resample_whole_runs():
    """The weights the fit's bootstrap draws in chunks are run_weights' (whole runs drawn,
    every checkpoint of a run with its run's weight); drawn per row, the intervals of a fit
    of 6 runs × 5 checkpoints came out 3.4× narrower (found by a mutation audit)."""
    groups = np.repeat(np.arange(6), 5)  # 6 runs x 5 checkpoints
    W = np.vstack(list(weight_chunks(len(groups), 200, 0, groups)))
    assert np.array_equal(W, run_weights(groups, 200, 0))
    assert np.all(W[:, ::5].sum(axis=1) == 6)  # 6 runs drawn per resample
    assert np.all(np.repeat(W[:, ::5], 5, axis=1) == W)  # a run's checkpoints alike


def test_runs_are_drawn_by_where_they_first_appear_not_by_their_names():
    """Runs were numbered in the sorted order of their names, so runs renamed to sort the
    other way round (rows in place) drew other resamples: alpha's 95% interval of a fit of
    12 runs x 5 checkpoints went from [0.1623, 0.3627] to [0.2126, 0.3687] (a metamorphic
    audit). Numbered by first appearance, as rows are drawn, the names change nothing."""
    groups = np.array(["b", "b", "a", "a", "c"])
    assert np.array_equal(run_weights(groups, 50, 3), run_weights(np.array([0, 0, 1, 1, 2]), 50, 3))
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        N, Dmax = np.exp(rng.uniform(np.log(1e6), np.log(1e9))), np.exp(rng.uniform(21, 25))
        for f in np.linspace(0.2, 1, 5):
            loss = chinchilla_law(N, f * Dmax) * np.exp(rng.normal(0, 0.01))
            rows.append({"run_id": f"r{i:02d}", "params": N, "tokens": f * Dmax, "loss": loss})
    kw = {"bootstrap": 20, "seed": 1, "checkpoints": True, "run_cols": ["run_id"]}
    named = ScalingLaw("chinchilla", **kw).fit(rows)
    renamed = [r | {"run_id": f"z{99 - int(r['run_id'][1:])}"} for r in rows]
    again = ScalingLaw("chinchilla", **kw).fit(renamed)
    assert named.params_ == again.params_ and named.ci_ == again.ci_


def test_runs_curves_rows_carry_the_runs_params_nonembed(tmp_path, capsys):
    """`runs --curves` gives every row the run's params and params_nonembed (as its
    result.json has them), so `fit --checkpoints --n-kind params_nonembed` can read it."""
    from tests.laws.test_curves_checkpoints import run_folder

    run_folder(tmp_path / "sweep" / "runs" / "w32", 32, int(2e8))
    res = json.loads((tmp_path / "sweep" / "runs" / "w32" / "result.json").read_text())
    out = tmp_path / "curves.csv"
    assert main(["runs", str(tmp_path / "sweep"), "--curves", "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6
    assert {int(r["params_nonembed"]) for r in rows} == {res["params_nonembed"]}
    assert {int(r["params"]) for r in rows} == {res["params"]}


def test_a_runs_schedule_counts_the_tokens_of_its_accumulated_micro_batches(tmp_path):
    """A token budget of 64,000 at batch 10 × grad_accum 2 × block 32 is 100 steps, as
    at batch 20 without accumulation; not the 200 of batch 10 alone."""
    from scalinglab.cli.runs import run_schedule

    model = ModelConfig(arch="gpt", n_layer=2, n_embd=32, n_head=4, block_size=32,
                        vocab_size=VOCAB)  # fmt: skip
    spec = {}
    for batch, accum in ((10, 2), (20, 1), (10, 1)):
        folder = tmp_path / f"b{batch}a{accum}"
        folder.mkdir()
        train = TrainConfig(data="shards", tokens=64_000, batch_size=batch, grad_accum=accum)
        (folder / "config.toml").write_text(dumps_toml(RunConfig(model, train).to_dict()))
        spec[batch, accum] = run_schedule(folder)
    assert spec[10, 2] == spec[20, 1] != spec[10, 1]
    # the default warmup of 100 steps, capped at half of a 100-step run
    assert spec[10, 2].startswith("warmup(50, 0.0) + cosine(50, ")
    assert spec[10, 1].startswith("warmup(100, 0.0) + cosine(100, ")
