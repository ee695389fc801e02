"""The schedule syntax and the choice of a schedule under a fitted curve law."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.errors import ConfigError
from scalinglab.laws import ScalingLaw, curvelaws
from scalinglab.laws.schedules import Schedule, family, trainer_spec
from scalinglab.plan import rank_schedules
from scalinglab.plan.schedules import lr_note, steps_note
from tests.laws.test_curves import MPL_25M, curves_csv, mpl_direct


def test_phases_known_values():
    lr = Schedule("warmup(4, 1.0) + constant(2) + linear(4, 0.2) + drop(2, 0.05)").lr_array()
    assert np.allclose(lr, [0, 1 / 3, 2 / 3, 1, 1, 1, 1.0, 0.8, 0.6, 0.4, 0.05, 0.05])
    cos = Schedule("constant(1, 1.0) + cosine(4, 0.0)").lr_array()
    assert np.allclose(
        cos, [1, 1, (1 + np.cos(np.pi / 4)) / 2, 0.5, (1 + np.cos(3 * np.pi / 4)) / 2]
    )
    ex = Schedule("constant(1, 1.0) + exp(2, 0.01)").lr_array(5)
    assert np.allclose(ex, [1, 1, 0.1, 0.01, 0.01])  # held at the end value beyond the end
    sq = Schedule("constant(1, 1.0) + sqrt(4, 0.0)").lr_array()
    assert np.allclose(sq[1:], 1 - np.sqrt(np.arange(4) / 4))
    # Luo et al.'s cosine_24000, as their code builds it
    lr = Schedule("warmup(2160, 3e-4) + cosine(21840, 3e-5)").lr_array()
    t = np.arange(2160, 24000)
    up = 3e-5 + 0.5 * (3e-4 - 3e-5) * (1 + np.cos(np.pi * (t - 2160) / 21840))
    assert np.allclose(lr, np.concatenate([np.linspace(0, 3e-4, 2160), up]), rtol=0, atol=1e-15)


def test_start_argument_of_decay_phases():
    lr = Schedule("constant(2, 1.0) + linear(2, 0.0, 0.5) + cosine(2, 0.0, 0.8)").lr_array()
    assert np.allclose(lr, [1, 1, 0.5, 0.25, 0.8, 0.4])
    with pytest.raises(ConfigError, match=r"constant takes at most 2: constant\(STEPS, LR\)"):
        Schedule("constant(2, 1.0, 0.5)")  # a start only for the decays


@pytest.mark.parametrize("kind", ["cosine", "constant", "wsd"])
def test_trainer_spec_is_the_trainers_lr_step_for_step(kind):
    from scalinglab.train.optim import Schedule as TrainerSchedule

    for warmup, total, cooldown in [(0, 50, 0.2), (7, 101, 0.33), (100, 1000, 0.2), (3, 4, 1.0)]:
        want = TrainerSchedule(kind, 3e-3, 3e-4, warmup, total, cooldown)
        # index t: the LR of the t-th update (index 0: none yet)
        expect = [0.0] + [want(s) for s in range(total)]
        got = Schedule(trainer_spec(kind, 3e-3, 3e-4, warmup, total, cooldown)).lr_array()
        assert np.allclose(got, expect, rtol=1e-12, atol=0), (warmup, total, cooldown)
    assert trainer_spec(kind, 3e-3, 3e-4, 10, None) is None  # a time budget follows the clock


@pytest.mark.parametrize(
    "spec, msg",
    [("cosine(10)", "needs an LR"), ("warm(10, 1)", "one of"), ("linear(x, 1)", "bad numbers"),
     ("constant(0, 1)", "steps >= 1"), ("constant(3, 1) + exp(3, 0)", "exp needs LRs > 0"),
     # too many numbers were blamed on the steps or the LRs
     ("constant(100, 1e-3, 5)", r"'constant\(100, 1e-3, 5\)': 3 numbers, constant takes at most "
      r"2: constant\(STEPS, LR\)$"),
     ("cosine(9, 1e-4, 1e-3, 5)", r"4 numbers, cosine takes at most 3: cosine\(STEPS, TO\[, FROM\]\)$"),
     # a first constant without an LR held 0: predicted as if never trained
     ("constant(100) + cosine(10, 1e-4)", r"the first phase 'constant\(100\)' has no LR to hold: "
      r"constant\(100, LR\)$"),
     # an empty number was dropped, the next moved into its slot: the start LR read as the target
     ("warmup(100, 1e-3) + cosine(1900, , 5e-4)", r"'cosine\(1900, , 5e-4\)': an empty number "
      r"between commas$"),
     ("warmup(100,,1e-3)", "an empty number between commas"),
     # a first decay rose from 0 to its target (a first constant without an LR is refused)
     ("cosine(2000, 1e-4)", r"the first phase 'cosine\(2000, 1e-4\)' decays from an LR no phase "
      r"before it sets: give it, cosine\(2000, TO, FROM\), or begin with warmup")],
)  # fmt: skip
def test_bad_specs(spec, msg):
    with pytest.raises(ConfigError, match=msg):
        Schedule(spec).lr_array()


def test_rank_schedules_under_a_known_law(tmp_path, capsys):
    law = ScalingLaw("multi-power", bootstrap=0)
    law.params_, law.samples_ = dict(MPL_25M), None
    cands = family(12000, 3e-4, 3e-5, warmup=1000)
    assert len(cands) == 3 + 4 * 3 and all(len(c) == 12000 for c in cands)
    rows = rank_schedules(law, 12000, cands)
    form = curvelaws.MultiPower()
    for r in rows:
        want = curvelaws.predict_curve(form, MPL_25M, [11999], Schedule(r["schedule"]).lr_array())
        assert r["loss"] == pytest.approx(want[0], rel=1e-12)
    assert [r["loss"] for r in rows] == sorted(r["loss"] for r in rows)
    assert rows[-1]["schedule"].endswith("constant(11000)")  # no annealing: the highest loss
    assert "exp" in rows[0]["schedule"] or "sqrt" in rows[0]["schedule"]  # a WSD wins
    chin = ScalingLaw("chinchilla")
    chin.params_ = {"E": 1.7, "A": 400.0, "B": 1200.0, "alpha": 0.34, "beta": 0.28}
    with pytest.raises(ConfigError, match="curve law"):
        rank_schedules(chin, 100, cands)


def test_plan_steps_cli(tmp_path, capsys):
    def fn(lr, steps):
        return mpl_direct(MPL_25M, lr, steps)

    path = curves_csv(tmp_path / "c.csv", fn, ("cosine", "constant", "drop"))
    fit = tmp_path / "fit.json"
    argv = ["fit", str(path), "--law", "lr-annealing", "--run-col", "run", "--bootstrap", "20"]
    assert main([*argv, "--out", str(fit)]) == 0
    capsys.readouterr()
    argv = ["plan", str(fit), "--steps", "3000", "--peak-lr", "3e-4", "--warmup", "300"]
    assert main([*argv, "--schedule", "warmup(300, 3e-4) + drop(2700, 1e-4)", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 + 15 and sum(r["best_share"] for r in rows) == pytest.approx(1.0)
    assert all(r["loss_ci"][0] <= r["loss"] <= r["loss_ci"][1] for r in rows)
    assert main(["plan", str(fit), "--steps", "3000"]) == 2
    assert "--schedule SPEC" in capsys.readouterr().err
    for extra, err in (
        # a final LR above the peak made "decays" that rise, and ranked them
        (["--final-lr", "3e-3"], "--final-lr 0.003 must be below --peak-lr 0.0003: a decay "
                                 "ends lower"),
        # equal, every candidate was the constant LR and the first printed won best_share=1
        (["--final-lr", "3e-4"], "--final-lr 0.0003 must be below --peak-lr 0.0003: a decay "
                                 "ends lower"),
        # a candidate whose LR is 0 throughout was refused without naming it
        (["--schedule", "constant(3000, 0)"], "--schedule 'constant(3000, 0)': its LR is 0 at "
                                              "every step: nothing to rank"),
        # a first constant phase without an LR held 0 (predict(steps, "constant(3000)") too)
        (["--schedule", "constant(3000)"], "--schedule 'constant(3000)': the first phase "
                                           "'constant(3000)' has no LR to hold: "
                                           "constant(3000, LR)"),
    ):  # fmt: skip
        assert main([*argv, *extra]) == 2
        assert capsys.readouterr().err == f"error: {err}\n"
    # a ranking far outside the fitted steps said nothing of it
    lo, hi = json.loads(fit.read_text())["data"]["steps_range"]
    assert main(["plan", str(fit), "--steps", "3000", "--peak-lr", "3e-4"]) == 0
    assert capsys.readouterr().err == ""
    for steps, where in ((lo, "before the first"), (3 * hi + 2, "more than 3x the last")):
        assert main(["plan", str(fit), "--steps", str(steps), "--peak-lr", "3e-4"]) == 0
        assert capsys.readouterr().err == (
            f"warning: extrapolating: --steps {steps}: the loss at step {steps - 1} is {where} "
            f"step the fitted curves logged (steps {lo}..{hi}): the ranking is an "
            "extrapolation\n"
        )
    # flags the ranking does not use were ignored without a word
    for flag, value in (("--flops", "1e20"), ("--lr-fit", str(fit))):
        assert main([*argv, flag, value]) == 2
        assert capsys.readouterr().err == (
            f"error: --steps S ranks schedules under a curve law; {flag} plans N and D "
            "under the other laws: give one or the other\n"
        )
    only = ["plan", str(fit), "--steps", "3000", "--schedule", "constant(3000, 3e-4)"]
    for flag, value in (("--warmup", "300"), ("--final-lr", "1e-5")):
        assert main([*only, flag, value]) == 2
        assert capsys.readouterr().err == (
            f"error: {flag} shapes the family of --peak-lr LR and needs it "
            "(a --schedule SPEC gives its own)\n"
        )
    assert main(["plan", str(fit), "--warmup", "300"]) == 2
    assert capsys.readouterr().err == (
        "error: --warmup needs --steps S (the run length the schedules are ranked at)\n"
    )


def test_plan_steps_warns_of_a_peak_lr_beyond_the_fitted_and_refuses_a_loss_below_0(
    tmp_path, capsys
):
    """A ranking at a peak LR the fitted curves never ran at said nothing of it, and at
    --peak-lr 100 printed every candidate at a loss of about -3e4 (exit 0): the law
    extrapolates the LR's area without bound. fit.json records the LRs fitted."""
    path = curves_csv(tmp_path / "c.csv", lambda lr, s: mpl_direct(MPL_25M, lr, s),
                      ("cosine", "constant", "drop"))  # fmt: skip
    fit = tmp_path / "fit.json"
    argv = ["fit", str(path), "--law", "multi-power", "--run-col", "run", "--bootstrap", "0"]
    assert main([*argv, "--out", str(fit)]) == 0
    lo, hi = json.loads(fit.read_text())["data"]["lr_range"]
    assert hi == 3e-4 and 0 < lo < 3e-5  # the warmup's first steps: 3e-4 / 300
    capsys.readouterr()
    argv = ["plan", str(fit), "--steps", "3000"]
    assert main([*argv, "--peak-lr", "3e-4"]) == 0
    assert capsys.readouterr().err == ""
    assert main([*argv, "--peak-lr", "3e-4", "--schedule", "constant(3000, 6e-4)"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("schedule=")
    assert err == (
        "warning: extrapolating: a peak LR of 0.0006 (1 of the 16 candidates peak above "
        "0.0003) is 2x the largest LR the fitted curves ran at: the ranking is an "
        "extrapolation\n"
    )
    assert main([*argv, "--peak-lr", "1e-9"]) == 0  # far below: ranked at loss 97, silently
    assert capsys.readouterr().err == (
        f"warning: extrapolating: a peak LR of 1e-09 (15 of the 15 candidates peak below "
        f"{lo:g}) is {lo / 1e-9:.3g}x below the smallest LR the fitted curves ran at: the "
        "ranking is an extrapolation\n"
    )
    assert main([*argv, "--schedule", "constant(1, 3e-4) + linear(2999, 1e-5)",
                 "--schedule", "constant(1, 100) + linear(2999, 1e-5)"]) == 2  # fmt: skip
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        "error: schedule 'constant(1, 100) + linear(2999, 1e-5)': the law predicts a loss of -"
    )
    assert err.endswith(
        "at step 2999, not above 0: its peak LR 100 lies beyond what the law can extrapolate "
        "to (the fitted curves ran at LRs up to 0.0003)\n"
    )


def test_best_share_goes_to_the_schedule_of_the_lowest_loss(tmp_path, capsys):
    """best_share is the share of the bootstrap draws under which a schedule has the lowest
    loss: the top-ranked schedule holds most, the worst none (credited to the highest loss,
    the worst held all; found by a mutation audit: the test summed the shares only)."""
    path = curves_csv(
        tmp_path / "c.csv", lambda lr, s: mpl_direct(MPL_25M, lr, s), ("cosine", "constant", "drop")
    )
    fit = tmp_path / "fit.json"
    argv = ["fit", str(path), "--law", "lr-annealing", "--run-col", "run", "--bootstrap", "20"]
    assert main([*argv, "--out", str(fit)]) == 0
    capsys.readouterr()
    assert main(["plan", str(fit), "--steps", "3000", "--peak-lr", "3e-4", "--warmup", "300",
                 "--schedule", "warmup(300, 3e-4) + drop(2700, 1e-4)", "--json"]) == 0  # fmt: skip
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["best_share"] == max(r["best_share"] for r in rows) == pytest.approx(0.95)
    assert rows[-1]["best_share"] == 0.0


# Known answers for mutations of plan/schedules.py that every test passed (a mutation audit):
# each fails on its mutation.
def test_steps_note_bounds_are_inclusive():
    """Kills S2 (`lo <= last` -> `lo < last`) and S3 (`last <= LONGER * hi` -> `<`).
    Fitted steps 100..1000: a ranking whose last step S - 1 is 100 (S = 101) or exactly
    3 x 1000 (S = 3001) is inside the documented range, no note; S = 100 and S = 3002 are
    outside (the note names which side)."""
    law = SimpleNamespace(data_={"steps_range": [100, 1000]})
    assert steps_note(law, 101) is None and steps_note(law, 3001) is None
    assert "step 99 is before the first" in steps_note(law, 100)
    assert "step 3001 is more than 3x the last" in steps_note(law, 3002)


def test_lr_note_names_the_lowest_peak_and_spares_one_at_the_fitted_lowest():
    """Kills S5 (`min(under)` -> `max(under)` in the note) and S6 (`lo * (1 - 1e-9)` ->
    `lo * (1 + 1e-9)`: a peak equal to the smallest fitted LR called an extrapolation).
    Fitted LRs 1e-5..3e-4: peaks 1e-6 and 1e-7 are below, the lowest 1e-7 is 100x below;
    a peak of exactly 1e-5 is inside: no note."""
    law = SimpleNamespace(data_={"lr_range": [1e-5, 3e-4]})
    note = lr_note(law, 100, ["constant(100, 1e-6)", "constant(100, 1e-7)"])
    assert note.startswith("a peak LR of 1e-07 (2 of the 2 candidates peak below 1e-05) is 100x")
    assert lr_note(law, 100, ["constant(100, 1e-5)"]) is None


def test_a_draw_with_no_finite_prediction_does_not_stop_the_ranking(monkeypatch):
    """Kills S7 (`np.where(np.isfinite(D), D, np.inf)` dropped: np.nanargmin raises
    ValueError 'All-NaN slice' on a bootstrap draw whose every prediction is NaN). Draws
    of two candidates: (1.0, nan, nan) and (2.0, 0.5, nan); the first wins draw 1, the
    second draw 2, and draw 3, which predicts neither, is counted for none (argmin's 0
    had credited it to the first: 2/3 and 1/3). Known answer: 1/2 each."""
    from scalinglab.plan import schedules as plan_schedules

    law = SimpleNamespace(
        law="multi-power", samples_={}, params_={}, check_fitted=lambda: None,
        predict=lambda at, lr, return_ci=False: (np.array([2.0]),) * 3,
    )  # fmt: skip
    draws = iter([np.array([1.0, np.nan, np.nan]), np.array([2.0, 0.5, np.nan])])
    monkeypatch.setattr(plan_schedules, "_draws", lambda law, at, lr: next(draws))
    rows = plan_schedules.rank_schedules(law, 100, ["constant(100, 1e-3)", "constant(100, 2e-3)"])
    share = {r["schedule"]: r["best_share"] for r in rows}
    assert share == {"constant(100, 1e-3)": 0.5, "constant(100, 2e-3)": 0.5}


@pytest.mark.parametrize("spec", ["constant(10, 0) + exp(10, 1e-4)", "exp(10, 1e-4, 0)"])
def test_an_exp_phase_starting_from_lr_zero_is_refused(spec):
    """Geometric decay from 0 has no ratio: 0 * (v/0)**i is NaN, the schedule unusable."""
    with pytest.raises(ConfigError, match="exp needs LRs > 0"):
        Schedule(spec)


# a law fitted to curves that ran at LRs 3e-5..3e-4
FITTED_UP_TO_3E_4 = SimpleNamespace(data_={"lr_range": [3e-5, 3e-4]})


def test_lr_note_names_a_peak_a_third_above_the_fitted_lrs():
    note = lr_note(
        FITTED_UP_TO_3E_4,
        1000,
        ["warmup(100, 4e-4) + cosine(900, 3e-5)", "warmup(100, 3e-4) + cosine(900, 3e-5)"],
    )
    assert note == (
        "a peak LR of 0.0004 (1 of the 2 candidates peak above 0.0003) is 1.33x the "
        "largest LR the fitted curves ran at: the ranking is an extrapolation"
    )
    assert lr_note(FITTED_UP_TO_3E_4, 1000, ["warmup(100, 3e-4) + cosine(900, 3e-5)"]) is None


def test_lr_note_ratio_is_of_the_highest_peak():
    note = lr_note(
        FITTED_UP_TO_3E_4,
        1000,
        ["warmup(100, 4e-4) + cosine(900, 3e-5)", "warmup(100, 6e-4) + cosine(900, 3e-5)"],
    )
    assert note.startswith("a peak LR of 0.0006 (2 of the 2 candidates peak above 0.0003) is 2x ")
