"""A run continued in its folder: to a larger budget (its LR history recorded where it
changed), never to a smaller one."""

import csv
import json

import pytest
import torch

from scalinglab import runfolder
from scalinglab.cli import main
from scalinglab.errors import ConfigError
from scalinglab.fsio import sha256_file
from scalinglab.laws.schedules import Schedule as SpecSchedule
from scalinglab.train import checkpoint, train
from tests.train.helpers import tiny_cfg, tiny_shards


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_shards(tmp_path_factory.mktemp("shards") / "shards")


def test_a_smaller_budget_is_refused_and_nothing_changes(data, tmp_path):
    torch.set_num_threads(1)
    run = tmp_path / "run"
    train(tiny_cfg(data, steps=12, warmup=2), run)
    config, result = (run / "config.toml").read_bytes(), (run / "result.json").read_bytes()
    metrics = (run / "metrics.jsonl").read_bytes()
    with pytest.raises(ConfigError) as e:
        train(tiny_cfg(data, steps=6, warmup=2), run)
    assert str(e.value) == (
        f"{run} has trained 12 steps, more than the 6 of steps 6: a run continues to a "
        "larger budget only; give the run's own budget or more, or a new out folder"
    )
    assert (run / "config.toml").read_bytes() == config
    assert (run / "result.json").read_bytes() == result
    assert (run / "metrics.jsonl").read_bytes() == metrics
    # the same budget returns the run's result, as before
    assert train(tiny_cfg(data, steps=12, warmup=2), run)["steps"] == 12


@pytest.mark.parametrize("schedule, changed", [("cosine", True), ("constant", False)])
def test_a_larger_budget_records_a_changed_lr_history(data, tmp_path, schedule, changed):
    """A cosine of 12 steps continued to 20 ran steps 0..11 at another LR than the 20-step
    cosine's: history.jsonl says so and `runs --curves` gives no schedule for the run. A
    constant schedule's first 12 steps are the longer one's: its schedule stays exact."""
    torch.set_num_threads(1)
    run = tmp_path / "sweep" / "runs" / "r1"
    cfg = dict(warmup=2, schedule=schedule, eval_every=4)
    train(tiny_cfg(data, steps=12, **cfg), run)
    train(tiny_cfg(data, steps=20, **cfg), run)
    events = [h["event"] for h in runfolder.read_history(run)]
    assert events == (["schedule_change"] if changed else [])
    out = tmp_path / "curves.csv"
    assert main(["runs", str(tmp_path / "sweep"), "--curves", "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [int(r["step"]) for r in rows] == [4, 8, 12, 16, 20]
    specs = {r["lr_schedule"] for r in rows}
    if changed:
        assert specs == {""}
    else:
        (spec,) = specs
        lr = SpecSchedule(spec).lr_array()
        logged = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        # index t is the LR of the t-th update: the trainer's LR of step t - 1, as logged
        assert all(lr[r["step"]] == r["lr"] for r in logged if "lr" in r)


def test_a_larger_budget_keeps_the_warmup_its_steps_trained_with(data, tmp_path, caplog):
    """A 10-step run of --warmup 1000 warmed up over 4 steps (half the run); continued to
    40 steps the cap gave 19, another LR at the steps already trained (a schedule_change).
    It keeps the 4: a constant schedule's first 10 steps are the longer run's. `runs
    --curves` gives it the schedule it trained with: its lr_schedule warmed up over 19
    (config.toml's --warmup capped anew), an LR up to 5x too low at steps 5-18 of a
    schedule the curve laws take as exact."""
    torch.set_num_threads(1)
    run = tmp_path / "sweep" / "runs" / "run"
    cfg = dict(warmup=1000, schedule="constant", log_every=1)
    train(tiny_cfg(data, steps=10, **cfg), run)
    result = train(tiny_cfg(data, steps=40, **cfg), run)
    assert result["warmup"] == 4 and runfolder.read_history(run) == []
    assert "the warmup of 4 steps they trained with" in caplog.text
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    lrs = {r["step"]: r["lr"] for r in rows if "lr" in r}
    assert lrs[2] < lrs[5] == lrs[12] == lrs[40]  # warmed up by step 4 and held
    out = tmp_path / "curves.csv"
    assert main(["runs", str(tmp_path / "sweep"), "--curves", "--csv", str(out)]) == 0
    (spec,) = {r["lr_schedule"] for r in csv.DictReader(out.open())}
    lr = SpecSchedule(spec).lr_array()  # index t: the LR logged at step t, as above
    assert len(lr) == 41 and all(lr[s] == v for s, v in lrs.items())
    # a run of 40 steps from the start warms up over 19, as before
    assert train(tiny_cfg(data, steps=40, **cfg), tmp_path / "fresh")["warmup"] == 19


def test_a_time_budget_warms_up_within_half_of_it_and_resumes_its_decay(data, tmp_path, caplog):
    torch.set_num_threads(1)
    run = tmp_path / "run"
    cfg = dict(steps=0, lr=1e-3, warmup=10**6, log_every=1)
    train(tiny_cfg(data, time=0.5, **cfg), run)
    assert "--warmup 1000000 is more than half the --time budget: it ended at step" in caplog.text
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if "lr" in r]
    assert max(lrs) == 1e-3  # the peak, where half the budget had passed
    assert lrs[-1] < 0.2e-3  # near --min-lr (1e-4) at the end, not still warming up
    first = len(lrs)
    # continued to twice the budget: its decay goes on from where it began (restored from
    # the checkpoint), not from a new warmup or a restarted decay at the peak
    train(tiny_cfg(data, time=1.0, **cfg), run)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if "lr" in r]
    assert len(lrs) > first and 0.2e-3 < lrs[first] < 0.9e-3
    assert [h["event"] for h in runfolder.read_history(run)] == ["schedule_change"]


def test_a_schedule_whose_lr_differs_only_at_the_last_trained_step_is_a_change():
    """A WSD run of 11 steps (cooldown 5%) decays on its last step only; continued to 21 steps
    that step's LR is the peak. Steps 0..10 were trained: the LR of step 10 differs, so the
    continuation records a schedule change; over steps 0..9 alone nothing differs."""
    from scalinglab.train.loop import schedule_change
    from scalinglab.train.optim import Schedule

    old = Schedule("wsd", 1e-3, 1e-4, 0, 11, 0.05)
    new = Schedule("wsd", 1e-3, 1e-4, 0, 21, 0.05)
    assert [old(s) == new(s) for s in range(11)] == [True] * 10 + [False]
    assert schedule_change(old.state_dict(), new, 11) == old.state_dict()
    assert schedule_change(old.state_dict(), new, 10) is None


def test_a_larger_cosine_budget_records_a_schedule_change_but_no_config_change(tmp_path):
    """Continuing a cosine run to a larger budget changes the LR of steps already trained:
    history.jsonl gets a schedule_change; the settings did not change, so the result has no
    config_changes count (the runs table would mark the run as mixed)."""
    from scalinglab.train.loop import train

    data = tiny_shards(tmp_path / "shards")
    train(tiny_cfg(data, steps=6, ckpt_every=3), tmp_path / "run")
    r = train(tiny_cfg(data, steps=12, ckpt_every=3), tmp_path / "run")
    events = [h["event"] for h in runfolder.read_history(tmp_path / "run")]
    assert events == ["schedule_change"]
    assert r["status"] == "completed" and r["steps"] == 12
    assert "config_changes" not in r


def test_a_continued_run_given_a_new_warmup_uses_it(tmp_path):
    """A 10-step run asked for --warmup 100 warms up over 4 steps (half its steps, capped).
    Continued to 40 steps with the same --warmup it keeps those 4 steps; continued with
    --warmup 10 (a change, allowed) it warms up over 10 as asked."""
    from scalinglab.train.loop import train

    data = tiny_shards(tmp_path / "shards")
    for out in ("same", "changed"):
        r = train(tiny_cfg(data, steps=10, warmup=100, ckpt_every=5), tmp_path / out)
        assert r["warmup"] == 4
    same = train(tiny_cfg(data, steps=40, warmup=100, ckpt_every=5), tmp_path / "same")
    assert same["warmup"] == 4
    changed = train(
        tiny_cfg(data, steps=40, warmup=10, ckpt_every=5),
        tmp_path / "changed",
        allow_config_change=True,
    )
    assert changed["warmup"] == 10


def test_a_time_run_resumed_from_a_checkpoint_without_warmup_frac_goes_on_decaying(tmp_path):
    """A time-budget checkpoint written before the schedule saved warmup_frac, past its
    warmup, had decayed over its whole budget (from fraction 0). Continued to twice the
    budget, the decay goes on from there: at about half of the new budget a cosine from
    1e-3 to 1e-4 is near (1e-3 + 1e-4) / 2, not back at the 1e-3 peak."""
    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    cfg = dict(steps=0, lr=1e-3, min_lr=1e-4, warmup=2, log_every=1)
    train(tiny_cfg(data, time=1.0, **cfg), run)
    path = checkpoint.latest(run / "ckpt")
    state = checkpoint.load_state(path)
    assert state["counters"]["step"] > 2  # past its warmup
    del state["schedule"]["warmup_frac"]  # as an older version saved it
    torch.save(state, path / checkpoint.STATE)
    manifest = checkpoint.read_manifest(path)
    manifest["sha256"][checkpoint.STATE] = sha256_file(path / checkpoint.STATE)
    (path / checkpoint.MANIFEST).write_text(json.dumps(manifest))
    assert checkpoint.verify(path) is None
    first = state["counters"]["step"]
    train(tiny_cfg(data, time=2.0, **cfg), run)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    lrs = {r["step"]: r["lr"] for r in rows if "lr" in r}
    resumed = [lr for step, lr in sorted(lrs.items()) if step >= first]
    assert resumed and max(resumed) < 0.9e-3
