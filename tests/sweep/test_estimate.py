"""The plan's time estimate: a step's time once the steps have settled, and the note
that says a busy machine slowed it."""

import os
import subprocess
import sys
import time
from types import SimpleNamespace as NS

import pytest

from scalinglab.sweep import estimate
from scalinglab.sweep.estimate import steady_step_time


def _steps(ms):
    it = iter(ms)
    calls = []

    def step():
        calls.append(1)
        return next(it) / 1000

    return step, calls


def test_slow_first_steps_are_waited_out():
    """Step times (ms) of the ladder's backtest model on 2 threads of a loaded 2-core
    machine: the first seven 2-15x the rest. The fastest of the first three after the
    warm-up (102 ms, what the estimate used to take) doubled the estimate; the settled
    step is 50 ms."""
    seen = [423, 302, 114, 102, 775, 334, 155, 50, 52, 52, 52, 54, 53, 53, 55]
    step, calls = _steps(seen)
    assert steady_step_time(step) == 0.050
    assert len(calls) == 10  # the warm-up, then until 50, 52, 52 are within 1.25x of 50


def test_a_quiet_machine_takes_four_steps():
    step, calls = _steps([19, 7, 7, 7, 6, 7])
    assert steady_step_time(step) == 0.007 and len(calls) == 4


def test_steps_that_never_settle_stop_at_the_cap():
    step, calls = _steps([10] + [10, 30] * 100)
    assert steady_step_time(step) == 0.010
    assert len(calls) == estimate.MAX_STEPS + 1
    step, calls = _steps([2000, 1000, 3000, 1000, 3000, 1000])  # 5 s of stepping
    assert steady_step_time(step) == 1.0 and len(calls) == 3


def test_busy_note_only_for_runs_on_several_threads_beside_other_work():
    from scalinglab.sweep.estimate import busy_note

    assert busy_note(2, load=0.2, cores=2) == ""  # idle
    assert busy_note(2, load=None, cores=2) == ""  # a system without a load average
    assert busy_note(1, load=1.9, cores=2) == ""  # one thread: slowed by its share only
    assert busy_note(2, load=1.9, cores=2) == (
        " This machine is busy now (other work kept 1.9 of its 2 cores busy): a run on 2 threads beside "
        "other work can take several times its idle time, and the estimate measured that; "
        "OMP_WAIT_POLICY=PASSIVE limits it (docs/performance.md)."
    )


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="load_now reads Linux's /proc/stat")
def test_load_now_counts_other_work_now_not_the_last_minutes():
    """The load average still counted the `pip install` before a fresh quickstart, which
    printed the busy note on an idle machine; load_now measures the cores busy now."""
    from scalinglab.sweep.estimate import load_now

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert load_now() >= 0.5  # one core kept busy
    finally:
        spinner.kill()
        spinner.wait()


# a 1.09e12-parameter GPT: its training state (16 bytes a parameter) would be 17 TB
HUGE = "{n_layer = 96, n_embd = 30720, n_head = 96}"
SMALL = "{n_layer = 2, n_embd = 16, n_head = 4}"


def _dry_run_json(tmp_path, shards, capsys, monkeypatch, shapes: str):
    """`sweep --dry-run --json` of a grid of `shapes` at 640 tokens; the parameter counts
    of the models the estimate built (a wrapper that refuses a model over 1e6 parameters
    instead of letting it allocate)."""
    import json

    from scalinglab.cli import main
    from scalinglab.models.counting import count
    from tests.sweep.conftest import write_spec

    built = []

    def build(m, vocab_size=0):
        built.append(count(m, vocab_size).params)
        assert built[-1] < 1e6, f"the estimate built a model of {built[-1]:,} parameters"
        return real(m, vocab_size)

    real = estimate.build_model
    monkeypatch.setattr(estimate, "build_model", build)
    p = write_spec(tmp_path, shards, f'kind = "grid"\nshapes = [{shapes}]\ntokens = [640]\n')
    assert main(["sweep", str(p), "--dry-run", "--json", "--threads", "1"]) == 0
    io = capsys.readouterr()
    return json.loads(io.out), io.err, built


def test_a_dry_run_never_builds_a_model_too_large_to_time(tmp_path, shards, capsys, monkeypatch):
    """A design whose largest model has 1.09e12 parameters built it to time its step
    (terabytes); its step is now extrapolated from the smaller shape's, in proportion to
    FLOPs per step."""
    from scalinglab.config import ModelConfig
    from scalinglab.models.counting import count

    plan, err, built = _dry_run_json(tmp_path, shards, capsys, monkeypatch, f"{SMALL}, {HUGE}")
    assert built == [7360]  # the small shape only
    n = count(ModelConfig(n_layer=96, n_embd=30720, n_head=96, block_size=16), 32).params
    assert [r["params"] for r in plan] == [7360, n] and n == 1_087_203_471_360
    small, huge = (r["est_s"] - estimate.START_SECONDS for r in plan)
    fps = [count(ModelConfig(**{k: r[k] for k in ("n_layer", "n_embd", "n_head")},
                             block_size=16), 32).flops_per_token for r in plan]  # fmt: skip
    assert huge / small == pytest.approx(fps[1] / fps[0])  # same steps, t ∝ FLOPs a step
    assert "the 1 run(s) of 1,087,203,471,360 parameters or more extrapolated" in err


def test_a_dry_run_of_only_huge_models_prints_the_plan_without_a_time(
    tmp_path, shards, capsys, monkeypatch
):
    plan, err, built = _dry_run_json(tmp_path, shards, capsys, monkeypatch, HUGE)
    assert built == []
    assert [(r["params"], r["est_s"]) for r in plan] == [(1_087_203_471_360, None)]
    assert (
        "1 runs, total compute trained 4.17e+15 FLOPs (6nd convention); no time estimate: "
        "the smallest model (1,087,203,471,360 parameters) is too large to time" in err
    )


def test_a_dry_run_into_a_sweep_folder_counts_and_times_only_the_unfinished_runs(
    tmp_path, shards, capsys, monkeypatch
):
    """`--dry-run --out DIR` estimated every planned run, the finished ones too (a rerun
    skips them); it now says how many are done and times only the rest."""
    import json

    from scalinglab.cli import main
    from tests.sweep.conftest import write_spec

    monkeypatch.setattr(estimate, "load_now", lambda: None)  # the step times: not the point
    monkeypatch.setattr(estimate, "_seconds_per_step", lambda run, threads: 0.01)
    p = write_spec(tmp_path, shards, f'kind = "grid"\nshapes = [{SMALL}]\ntokens = [640, 1280]\n')
    out = tmp_path / "sweep"
    argv = ["sweep", str(p), "--dry-run", "--json", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    plan = json.loads(capsys.readouterr().out)
    assert all(r["est_s"] is not None for r in plan)
    first = out / "runs" / plan[0]["name"]
    first.mkdir(parents=True)
    (first / "result.json").write_text(json.dumps({"status": "completed", "val_loss": 2.0}))
    assert main(argv) == 0
    io = capsys.readouterr()
    again = json.loads(io.out)
    assert [r["est_s"] is None for r in again] == [True, False]
    left = plan[1]["flops"]
    assert f"1 already finished in {out}, 1 to run ({left:.3g} FLOPs)" in io.err
    assert f"estimated {again[1]['est_s']:.0f} s of run time" in io.err
    (out / "runs" / plan[1]["name"]).mkdir()
    (out / "runs" / plan[1]["name"] / "result.json").write_text('{"status": "diverged"}')
    assert main(argv) == 0
    assert "2 already finished in" in capsys.readouterr().err


# Known answers for mutations of sweep/estimate.py that every test passed (a mutation audit):
# each fails on its mutation.
def _run(name, fpt, tokens, steps, params=1000, seed_step=None):
    """A duck-typed PlannedRun: FLOPs a step = fpt * tokens / steps."""
    return NS(name=name, counts=NS(flops_per_token=fpt, params=params), tokens=tokens,
              steps=steps, seed=None if seed_step is None else NS(step=seed_step))  # fmt: skip


def _times(monkeypatch, by_name):
    monkeypatch.setattr(estimate, "_seconds_per_step", lambda run, threads: by_name[run.name])


def test_estimate_is_the_line_through_the_two_timed_shapes(monkeypatch):
    """Kills E3 (FLOPs a step without / steps), E5 (slope over fps(hi), not the difference).

    lo: 100 FLOPs/token x 100 tokens/step = 1e4 FLOPs a step, timed 0.2 s;
    hi: 1000 x 100 = 1e5, timed 1.1 s  ->  b = 0.9 / 9e4 = 1e-5 s/FLOP, a = 0.2 - 0.1 = 0.1 s.
    mid: 500 x 100 = 5e4 FLOPs a step -> 0.6 s a step, 10 steps: 3 + 6 = 9 s.
    big batch: 100 x 400 = 4e4 FLOPs a step -> 0.5 s, 10 steps: 3 + 5 = 8 s."""
    runs = [_run("lo", 100, 1000, 10), _run("hi", 1000, 1000, 10),
            _run("mid", 500, 1000, 10), _run("bigbatch", 100, 4000, 10)]  # fmt: skip
    _times(monkeypatch, {"lo": 0.2, "hi": 1.1})
    est = estimate.estimate_seconds(runs, threads=1)
    S = estimate.START_SECONDS
    assert est["lo"] == pytest.approx(S + 10 * 0.2)
    assert est["hi"] == pytest.approx(S + 10 * 1.1)
    assert est["mid"] == pytest.approx(S + 10 * 0.6)
    assert est["bigbatch"] == pytest.approx(S + 10 * 0.5)


def test_a_run_of_more_smaller_steps_is_priced_per_step(monkeypatch):
    """Kills E3: a run of 40 steps of 1e4 FLOPs (the lo shape at a 4x smaller batch, same
    tokens x 4) costs 40 x 0.2 s; pricing a run's whole FLOPs as one step's gave 3 + 40 x 0.5."""
    runs = [_run("lo", 100, 1000, 10), _run("hi", 1000, 1000, 10), _run("many", 100, 4000, 40)]
    _times(monkeypatch, {"lo": 0.2, "hi": 1.1})
    est = estimate.estimate_seconds(runs, threads=1)
    assert est["many"] == pytest.approx(estimate.START_SECONDS + 40 * 0.2)


def test_a_seeded_branch_is_priced_from_its_seed_step(monkeypatch):
    """Kills E1: a WSD branch of 40 steps seeded at step 30 trains 10 steps: 3 + 10 x 0.2."""
    runs = [_run("lo", 100, 1000, 10), _run("branch", 100, 4000, 40, seed_step=30)]
    _times(monkeypatch, {"lo": 0.2})
    est = estimate.estimate_seconds(runs, threads=1)
    assert est["branch"] == pytest.approx(estimate.START_SECONDS + 10 * 0.2)


def test_untimed_counts_16_bytes_a_parameter():
    """Kills E6: 2**27 parameters x 16 bytes (weights, grads, 2 AdamW moments) = 2 GiB,
    over MAX_TIMED_BYTES (1 GiB): not built to time; 2**25 (512 MiB) is."""
    big, small = _run("big", 1, 1, 1, params=2**27), _run("small", 1, 1, 1, params=2**25)
    assert [r.name for r in estimate.untimed([big, small])] == ["big"]


def test_a_step_with_gradient_accumulation_costs_its_micro_steps(monkeypatch):
    """Kills E4: grad_accum = 4 micro-steps of the timed (batch_size) step: 4 x 0.5 s."""
    from scalinglab.config import ModelConfig, TrainConfig

    m = ModelConfig(n_layer=1, n_embd=8, n_head=2, block_size=8, vocab_size=16)
    t = TrainConfig(data="x", batch_size=2, grad_accum=4)
    monkeypatch.setattr(estimate, "steady_step_time", lambda step: (step(), 0.5)[1])
    assert estimate._seconds_per_step(NS(config=NS(model=m, train=t)), 1) == pytest.approx(2.0)


def _fake_proc_stat(monkeypatch, lines: list[str], cores: int):
    import io

    reads = iter(lines)
    monkeypatch.setattr(estimate, "open", lambda *a, **k: io.StringIO(next(reads)), raising=False)
    monkeypatch.setattr(estimate.time, "sleep", lambda s: None)
    monkeypatch.setattr(estimate.os, "cpu_count", lambda: cores)
    return estimate


def test_load_now_is_the_busy_share_of_all_cores_times_the_cores(monkeypatch):
    """/proc/stat's first line sums every core: 1000 jiffies pass, 750 of them idle or
    waiting on I/O, so a quarter of 8 cores' time was busy: 2 cores' worth of other work."""
    # fields: user nice system idle iowait irq softirq
    estimate = _fake_proc_stat(monkeypatch, [
        "cpu  100 0 100 700 100 0 0\n",
        "cpu  250 0 200 1300 250 0 0\n",   # +150 user, +100 system, +600 idle, +150 iowait
    ], cores=8)  # fmt: skip
    assert estimate.load_now() == pytest.approx(0.25 * 8)


def test_one_busy_core_of_sixteen_makes_the_busy_note(monkeypatch):
    estimate = _fake_proc_stat(monkeypatch, [
        "cpu  0 0 0 0 0 0 0\n",
        "cpu  100 0 0 1500 0 0 0\n",  # one core's worth of 16 busy
    ], cores=16)  # fmt: skip
    load = estimate.load_now()
    assert load == pytest.approx(1.0)
    assert "busy" in estimate.busy_note(4, load, 16)
