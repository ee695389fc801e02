"""WSD branching: the branch point matches the trainer's schedule, and a branch seeded
from the stable run's checkpoint ends bit for bit where an independent WSD run ends."""

import json

import pytest

from scalinglab.config import RunConfig, load_toml
from scalinglab.errors import SweepError
from scalinglab.runfolder import read_result
from scalinglab.sweep import design, driver
from scalinglab.sweep.local import LocalExecutor
from scalinglab.sweep.spec import load_spec
from scalinglab.sweep.table import runs_table
from scalinglab.train.loop import train
from scalinglab.train.optim import Schedule
from tests.sweep.conftest import FAKE_TRAINER, spec_text, write_spec

WSD = """kind = "wsd"
params = [3000]
tokens_per_param = [1, 2.5]
cooldown_frac = 0.25
checkpoints = 4
"""


@pytest.mark.parametrize(
    "steps,warmup,frac", [(47, 2, 0.2), (100, 5, 0.25), (117, 0, 0.1), (10, 4, 0.5), (3, 1, 0.9)]
)
def test_branch_point_is_where_the_schedule_leaves_the_peak(steps, warmup, frac):
    s = Schedule("wsd", 1.0, 0.1, warmup, steps, frac)
    const = Schedule("constant", 1.0, 0.1, s.warmup, steps)
    b = design.branch_point(steps, s.warmup, frac)
    assert all(s(i) == const(i) for i in range(b))
    assert b == steps or s(b) != const(b)


def test_branches_equal_independent_wsd_runs(tmp_path, shards):
    spec = load_spec(write_spec(tmp_path, shards, WSD, train="log_every = 5"))
    ctx = driver.open_context(spec)
    sizes = design.wsd_sizes(ctx)
    (size,) = sizes
    assert size.stable.counts.params == 3016
    assert [b.steps for b in size.branches] == [47, 118]  # D = r × N, 64 tokens a step
    assert size.stable.steps == max(b.group["branch_step"] for b in size.branches)
    spent, independent = design.trained_flops(sizes)
    assert spent < independent
    stable, branches = design.stages(design.plan(ctx))  # stable runs first, in OUT/stable
    assert (stable.folder, [r.name for r in stable.runs]) == ("stable", [size.stable.name])
    assert (branches.folder, branches.runs) == (".", size.branches)

    out = tmp_path / "out"
    outcomes = driver.run_sweep(spec, out, LocalExecutor(1), threads=1)
    assert sorted(o["status"] for o in outcomes) == ["completed"] * 3
    rows = runs_table(out)  # the stable run stays out of the table
    assert sorted(r["run_id"] for r in rows) == sorted(b.name for b in size.branches)
    assert {r["stable_run"] for r in rows} == {size.stable.name}
    assert (out / "stable" / "runs" / size.stable.name / "result.json").exists()

    for b in size.branches:
        assert b.seed.run == size.stable.name
        assert 0 < b.seed.step <= b.group["branch_step"]  # resumed from a stable checkpoint
        cfg = RunConfig.from_dict(load_toml(out / "runs" / b.name / "run.toml"))
        alone = train(cfg, tmp_path / f"alone-{b.name}")
        branch = read_result(out / "runs" / b.name)
        assert branch["tokens"] == alone["tokens"] == b.tokens
        assert branch["val_loss"] == alone["val_loss"]  # bit for bit
        assert branch["train_loss"] == alone["train_loss"]


def test_a_size_keeps_one_lr_under_a_duration_power(tmp_path, shards):
    """A branch is its stable run until the cooldown, so with [hparams] duration_power
    every run of a size takes the longest branch's lr: 1e-2 × (118 / 47)^0.5 = 0.015845
    (branches of 47 and 118 steps, lr tuned on 47 steps' tokens, rule mup)."""
    text = write_spec(tmp_path, shards, WSD).read_text().replace(
        "warmup_frac = 0.1", 'warmup_frac = 0.1\nrule = "mup"\nduration_power = 0.5\n'
        f"ref_tokens = {47 * 64}")  # fmt: skip
    (tmp_path / "d.toml").write_text(text)
    (size,) = design.wsd_sizes(driver.open_context(load_spec(tmp_path / "d.toml")))
    assert [b.steps for b in size.branches] == [47, 118]
    for r in (size.stable, *size.branches):
        assert r.lr == pytest.approx(0.015845, rel=1e-4)
        assert r.config.train.min_lr == size.stable.config.train.min_lr
    # and its weight decay with it, where [hparams] sets one per size from the lr
    (tmp_path / "w.toml").write_text(text.replace("duration_power", "decay_tokens_per_param = "
                                                  "10\nduration_power"))  # fmt: skip
    (size,) = design.wsd_sizes(driver.open_context(load_spec(tmp_path / "w.toml")))
    n = size.stable.counts.params
    for r in (size.stable, *size.branches):
        assert r.config.train.weight_decay == pytest.approx(64 / (0.015845 * 10 * n), rel=1e-4)
    # so with rule "fitted": the fit's lr at the longest branch's N and D, 2 N^-0.5 D^0.1
    fit = {"kind": "scalinglab.lr_opt_fit", "cells": [], "params": {
        "step": {"a": 2.0, "alpha": -0.5, "beta": 0.1, "b": 1.0, "gamma": 0.5},
        "deepseek": {"a": 1.0, "alpha": -0.1, "b": 1.0, "gamma": 0.3}}}  # fmt: skip
    (tmp_path / "lr.json").write_text(json.dumps(fit))
    (tmp_path / "f.toml").write_text(text.replace(
        "duration_power = 0.5", f'rule = "fitted"\nfit = "{tmp_path / "lr.json"}"').replace(
        'rule = "mup"\n', ""))  # fmt: skip
    (size,) = design.wsd_sizes(driver.open_context(load_spec(tmp_path / "f.toml")))
    want = 2.0 * 3016**-0.5 * (118 * 64) ** 0.1
    assert [r.lr for r in (size.stable, *size.branches)] == pytest.approx([want] * 3, rel=1e-12)


def test_branches_of_a_stable_run_that_did_not_complete_are_blocked(tmp_path, shards):
    # the stand-in trainer diverges at lr > 1: the stable run ends diverged
    p = write_spec(tmp_path, shards, WSD)
    p.write_text(p.read_text().replace("lr = 1e-2", "lr = 5\nlr_power = 0"))
    spec, out = load_spec(p), tmp_path / "out"
    (size,) = design.wsd_sizes(driver.open_context(spec))
    for _ in range(2):  # a rerun skips the diverged stable run and blocks again
        outcomes = driver.run_sweep(spec, out, LocalExecutor(1), 1, command=FAKE_TRAINER)
        assert [(o["name"], o["status"]) for o in outcomes] == [
            (size.stable.name, "diverged"),
            *((b.name, "blocked") for b in size.branches),
        ]
    assert not (out / "runs").exists()  # no branch folder was written


def test_bad_wsd_design_is_named(tmp_path, shards):
    bad = WSD.replace("cooldown_frac = 0.25", "cooldown_frac = 1.5")
    with pytest.raises(SweepError, match="cooldown_frac must be a number in"):
        load_spec(write_spec(tmp_path, shards, bad))


ISO_TRUNKS = """kind = "isoflop"
budgets = [6e8, 1.8e9]
sizes = 3
tokens_per_param = 4
spread = 3
trunks = true
cooldown_frac = 0.25
checkpoints = 4
"""


def test_isoflop_trunks_branch_each_size_at_its_budgets(tmp_path, shards):
    """trunks = true plans the IsoFLOP design's own runs, grouped by shape: one stable
    run per shape to its largest budget, a WSD branch per budget it belongs to."""
    ctx = driver.open_context(load_spec(write_spec(tmp_path, shards, ISO_TRUNKS)))
    plain = driver.open_context(
        load_spec(write_spec(tmp_path, shards, ISO_TRUNKS.replace("trunks = true", "")))
    )
    iso = design.plan(plain)
    sizes = design.wsd_sizes(ctx)
    branches = [b for s in sizes for b in s.branches]
    # the same (shape, budget, tokens) points as without trunks, now WSD branches
    point = lambda r: (r.config.model.n_embd, r.group["budget"], r.tokens)  # noqa: E731
    assert sorted(map(point, branches)) == sorted(map(point, iso))
    assert len(sizes) < len(iso)  # shapes shared by both budgets train one trunk
    shared = [s for s in sizes if len(s.branches) == 2]
    assert shared
    for s in sizes:
        assert s.stable.steps == max(b.group["branch_step"] for b in s.branches)
        assert {b.config.train.schedule for b in s.branches} == {"wsd"}
        assert {b.seed.run for b in s.branches} == {s.stable.name}
        assert all("-c" in b.name for b in s.branches)  # tagged by budget, as without trunks
    spent, independent = design.trained_flops(sizes)
    assert spent < independent
    assert sorted(r.name for r in design.plan(ctx)) == sorted(
        r.name for s in sizes for r in (s.stable, *s.branches)
    )
    with pytest.raises(SweepError, match="recentre must be false"):
        load_spec(write_spec(tmp_path, shards, ISO_TRUNKS + "recentre = true\n"))


def test_the_sweeps_closing_table_holds_the_branches_not_the_stable_runs(tmp_path, shards, capsys):
    """`scalinglab sweep` ends with the table `scalinglab runs` gives: the stable run
    (out/stable/runs) was listed in it as a blank 'pending' row."""
    from scalinglab.cli import main

    out = tmp_path / "out"
    spec = write_spec(tmp_path, shards, WSD)
    assert main(["sweep", str(spec), "--out", str(out), "--threads", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in rows] == ["completed", "completed"]
    assert sorted(r["run_id"] for r in rows) == sorted(r["run_id"] for r in runs_table(out))


def test_a_branch_added_after_the_stable_run_ended_starts_from_an_earlier_checkpoint(
    tmp_path, shards
):
    """A budget added to a finished WSD sweep branches where the stable run kept no
    checkpoint: the sweep stopped on 'the checkpoint to start from is missing' at every
    rerun. It starts from the newest checkpoint before its branch point, and still ends
    bit for bit where the branch alone ends."""
    out = tmp_path / "out"
    first = load_spec(write_spec(tmp_path, shards, WSD))
    driver.run_sweep(first, out, LocalExecutor(1), threads=1)
    text = WSD.replace("[1, 2.5]", "[1, 1.7, 2.5]").replace("checkpoints = 4", "checkpoints = 5")
    more = load_spec(write_spec(tmp_path, shards, text))
    outcomes = driver.run_sweep(more, out, LocalExecutor(1), threads=1)
    assert sorted(o["status"] for o in outcomes) == ["completed"] * 4
    (new,) = [b for s in design.wsd_sizes(driver.open_context(more)) for b in s.branches
              if b.group["tokens_per_param"] == 1.7]  # fmt: skip
    assert not (out / "stable" / "runs" / new.seed.run / "ckpt"
                / f"step-{new.seed.step:08d}").exists()  # fmt: skip
    cfg = RunConfig.from_dict(load_toml(out / "runs" / new.name / "run.toml"))
    alone = train(cfg, tmp_path / "alone")
    assert read_result(out / "runs" / new.name)["val_loss"] == alone["val_loss"]


def test_the_dry_run_prices_a_branch_from_its_seed_step(tmp_path, shards, capsys):
    """Each branch was priced (compute and est_s) for all its steps, though it trains
    from its stable run's checkpoint: the total was about twice what the design trains,
    more than the same runs trained alone."""
    from scalinglab.cli import main

    spec = write_spec(tmp_path, shards, WSD)
    assert main(["sweep", str(spec), "--dry-run", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    spent, independent = design.trained_flops(
        design.wsd_sizes(driver.open_context(load_spec(spec)))
    )
    assert spent < independent
    assert f"3 runs, total compute trained {spent:.3g} FLOPs" in out


def test_a_wsd_branch_follows_its_stable_runs_lr_until_its_branch_step_under_a_long_warmup(
    tmp_path, shards
):
    """warmup_frac = 0.9 asks for more warmup than the shortest branch (47 steps) can hold;
    the trainer keeps a run's warmup to (steps - 1) // 2 = 23, so the plan must too: the
    stable run and every branch warm up over 23 steps, and each branch's own schedule is the
    stable run's until its branch step, where it leaves the peak."""
    p = tmp_path / "spec.toml"
    p.write_text(spec_text(shards, WSD).replace("warmup_frac = 0.1", "warmup_frac = 0.9"))
    ctx = driver.open_context(load_spec(p))
    ((stable, branches),) = [(s.stable, s.branches) for s in design.wsd_sizes(ctx)]
    assert [b.steps for b in branches] == [47, 118]
    # round(0.9 * 47) = 42, kept to (47 - 1) // 2 = 23 steps
    assert stable.config.train.warmup == 23
    assert [b.config.train.warmup for b in branches] == [23, 23]
    st = stable.config.train
    const = Schedule("constant", st.lr, st.min_lr, st.warmup, stable.steps)
    for b in branches:
        t = b.config.train
        s = Schedule("wsd", t.lr, t.min_lr, t.warmup, b.steps, t.cooldown_frac)
        p_b = b.group["branch_step"]
        assert all(s(i) == const(i) for i in range(p_b))
        assert s(p_b) != const(p_b)


def test_a_wsd_stable_run_keeps_the_checkpoint_of_every_branch_it_seeds(tmp_path, shards):
    """The fixture's stable run trains 89 steps with a checkpoint every 23 (branches of 47
    and 118 steps leave the peak at 36 and 89: seeds at 23 and 69). All four checkpoints,
    23, 46, 69 and the last, 89, stay after it ends, so the short branch resumes from
    step 23 instead of training the stable steps again from step 0."""
    from scalinglab.runfolder import CKPT
    from scalinglab.train import checkpoint

    spec = load_spec(write_spec(tmp_path, shards, WSD))
    (size,) = design.wsd_sizes(driver.open_context(spec))
    assert (size.stable.steps, size.stable.config.train.ckpt_every) == (89, 23)
    assert sorted(b.seed.step for b in size.branches) == [23, 69]
    out = tmp_path / "out"
    outcomes = driver.run_sweep(spec, out, LocalExecutor(1), threads=1)
    assert sorted(o["status"] for o in outcomes) == ["completed"] * 3
    kept = checkpoint.list_steps(out / "stable" / "runs" / size.stable.name / CKPT)
    assert sorted(int(p.name.removeprefix("step-")) for p in kept) == [23, 46, 69, 89]
