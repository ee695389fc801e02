"""Curve laws at the edges of their inputs: causal S2, points before any update, schedule
specs with odd numbers, intervals at a level, `runs --curves` of a real trainer's log."""

import csv
import json

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.config import ModelConfig, RunConfig, TrainConfig, dumps_toml
from scalinglab.errors import ConfigError
from scalinglab.laws import ScalingLaw, load_fit
from scalinglab.laws.curvelaws import annealing_area
from scalinglab.laws.schedules import Schedule
from tests.laws.test_curves import MPL_25M, TISSUE, curves_csv, mpl_direct


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """An lr-annealing fit (with bootstrap) of three curves of a known Multi-Power Law."""
    tmp = tmp_path_factory.mktemp("fit")
    path = curves_csv(tmp / "c.csv", lambda lr, s: mpl_direct(MPL_25M, lr, s),
                      ("cosine", "constant", "drop"))  # fmt: skip
    out = tmp / "fit.json"
    argv = ["fit", str(path), "--law", "lr-annealing", "--run-col", "run", "--bootstrap", "30"]
    assert main([*argv, "--out", str(out)]) == 0
    return out


def test_a_steps_s2_does_not_depend_on_later_steps():
    # the LR rises above its first peak after a drop (a second warmup): the drop at step
    # 200 still counts at step 250, whatever comes later
    lr = Schedule("warmup(100, 1.0) + constant(100) + drop(100, 0.1) + constant(100, 1.5)")
    lr = lr.lr_array()
    full, prefix = annealing_area(lr, 0.999), annealing_area(lr[:251], 0.999)
    assert np.array_equal(full[:251], prefix)
    assert full[250] == pytest.approx(0.9 * (1 - 0.999**51) / (1 - 0.999))
    assert np.all(full[:200] == 0)  # the warmup's rise is no annealing
    law = ScalingLaw("lr-annealing", bootstrap=0)
    law.params_, law.samples_ = dict(TISSUE), None
    alone = law.predict([250], lr)
    assert law.predict([250, 399], lr)[0] == alone[0]


def test_warmup_of_one_step_reaches_its_peak():
    lr = Schedule("warmup(1, 1.0) + cosine(4, 0.0)").lr_array()
    assert np.allclose(lr, [0, 1, (1 + np.cos(np.pi / 4)) / 2, 0.5, (1 - np.cos(np.pi / 4)) / 2])


@pytest.mark.parametrize(
    "spec, msg",
    [("constant(inf, 1e-3)", "whole number of steps"), ("constant(1e400, 1e-3)", "whole number"),
     ("warmup(2.7, 1e-3)", "whole number of steps"),
     ("cosine(10, inf)", r"^schedule 'cosine\(10, inf\)': LR inf is not finite and >= 0 "),
     ("constant(3e-4)",  # a notebook's slip: an LR where the steps go, said twice and vaguely
      r"^schedule 'constant\(3e-4\)': STEPS 3e-4 is not a whole number of steps >= 1 "
      r"\(constant\(STEPS, LR\)\)$"),
     ("constant(10, 1e-3) + cosine(5, -1)",
      r"^schedule '.*': 'cosine\(5, -1\)': LR -1 is not finite and >= 0 \(cosine\(STEPS, TO"),
     ("constant(200000000, 1e-3)", "more than 100,000,000"),
     ("constant(3, 1) + constant(10) + exp(3, 0)", "exp needs LRs > 0")],
)  # fmt: skip
def test_bad_numbers_in_a_spec_are_refused_when_parsed(spec, msg):
    with pytest.raises(ConfigError, match=msg):
        Schedule(spec)


def test_the_steps_asked_for_are_all_that_is_built():
    s = Schedule("constant(10, 1e-3) + cosine(99999990, 1e-4)")
    assert len(s) == 100_000_000 and np.array_equal(s.lr_array(12)[:10], np.full(10, 1e-3))
    assert len(s.lr_array(12)) == 12


def test_intervals_at_the_level_asked_for(fitted):
    law = load_fit(fitted)
    spec = "warmup(300, 3e-4) + cosine(3700, 3e-5)"
    widths = {}
    for level in (0.5, 0.95, 0.99):
        _, lo, hi = law.predict([1000, 3999], spec, return_ci=True, level=level)
        widths[level] = hi - lo
    assert np.all(widths[0.5] < widths[0.95]) and np.all(widths[0.95] < widths[0.99])
    _, lo, hi = law.predict([1000, 3999], spec, return_ci=True)  # the fit's level: 0.95
    assert np.array_equal(hi - lo, widths[0.95])
    with pytest.raises(ConfigError, match=r"level=95\.0: must be in"):
        law.predict([1000], spec, return_ci=True, level=95)


def test_a_schedule_shorter_than_the_steps_is_not_padded(fitted):
    law = load_fit(fitted)
    with pytest.raises(ConfigError, match="has 4000 steps; predicting step 6000"):
        law.predict([6000], "warmup(300, 3e-4) + cosine(3700, 3e-5)")
    with pytest.raises(ConfigError, match="steps is empty"):
        law.predict([], "warmup(300, 3e-4) + cosine(3700, 3e-5)")


def test_an_lr_schedule_not_of_one_dimension_and_c_are_refused(fitted):
    """A (2, 300) array of LRs was flattened into one 600-step schedule and predicted;
    predict(N=1e9, D=1e10) blamed 'step 1000000000'; C was ignored."""
    law = load_fit(fitted)
    lr = np.full(300, 3e-4)
    want = law.predict([100], lr)
    with pytest.raises(ConfigError) as e:
        law.predict([100], np.stack([lr, lr / 2]))
    assert str(e.value) == (
        "lr_schedule: the LR at every step 0..max(steps) in one dimension (an array, "
        "a Schedule or a spec string), not an array of shape (2, 300)"
    )
    with pytest.raises(ConfigError, match=r"in one dimension .*, not the number 1e\+10$"):
        law.predict(N=1e9, D=1e10)
    with pytest.raises(ConfigError) as e:
        law.predict([100], lr, C=1e20)
    assert str(e.value) == (
        "predict: law 'lr-annealing' predicts a curve, predict(steps, lr_schedule); "
        "C is for the N, D laws"
    )
    assert law.predict([100], list(lr)) == pytest.approx(want, rel=1e-12)
    for steps in (["a"], ["100"], [True]):  # numpy's bare ValueError, or '100' read as 100
        with pytest.raises(ConfigError, match=r"^steps must be whole numbers >= 0, got \["):
            law.predict(steps, lr)


def test_steps_by_position_and_lr_schedule_by_keyword(fitted):
    """predict(steps, lr_schedule=lr), the docstring's keyword after a positional steps,
    was refused with 'predicts a curve: predict(steps, lr_schedule)'."""
    law = load_fit(fitted)
    lr = np.full(300, 3e-4)
    want = law.predict([100, 200], lr)
    assert law.predict([100, 200], lr_schedule=lr) == pytest.approx(want, rel=1e-12)
    assert law.predict(steps=[100, 200], lr_schedule=lr) == pytest.approx(want, rel=1e-12)
    with pytest.raises(ConfigError) as e:
        law.predict([100], lr, lr_schedule=lr)
    assert str(e.value) == (
        "predict: law 'lr-annealing' predicts a curve, predict(steps, lr_schedule); "
        "lr_schedule is given twice (by position and by keyword)"
    )


@pytest.mark.parametrize(
    "flags, law, shown",
    [
        (["--drop-highest", "3"], "lr-annealing", "--drop-highest 3"),
        (["--min-over", "lr"], "lr-annealing", "--min-over lr"),
        (["--n-col", "step"], "multi-power", "--n-col step"),
        (["--n-kind", "params_nonembed"], "lr-annealing", "--n-kind params_nonembed"),
        (["--checkpoints"], "lr-annealing", "--checkpoints"),
        (["--decay-factor", "0.9"], "multi-power", "--decay-factor 0.9"),
    ],
)
def test_settings_a_curve_law_does_not_use_are_refused(tmp_path, capsys, flags, law, shown):
    """They were ignored: --drop-highest 3 fitted every row (and fit.json recorded 3),
    --decay-factor (Tissue's lambda) did nothing to multi-power."""
    path = tmp_path / "c.csv"
    path.write_text("run_id,step,lr,loss\na,10,0.1,3.0\na,20,0.1,2.9\n")
    out = tmp_path / "fit.json"
    assert main(["fit", str(path), "--law", law, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {shown} does not apply to law {law!r} (it applies to ")
    assert not out.exists()


def test_a_bad_schedule_in_the_schedule_column_names_its_row_and_line(tmp_path, capsys):
    path = tmp_path / "c.csv"
    path.write_text(
        "run_id,step,lr,loss,sched\n"
        'a,10,0.1,3.0,"constant(30, 0.1)"\na,20,0.1,2.9,"constant(30, 0.1)"\n'
        'b,10,0.1,3.0,"cosin(30, 0.01)"\nb,20,0.1,2.9,"cosin(30, 0.01)"\n'
    )
    argv = ["fit", str(path), "--law", "lr-annealing", "--schedule-col", "sched"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: row 3 (line 4), column 'sched': schedule 'cosin(30, 0.01)': "
        "'cosin(30, 0.01)' is not PHASE(STEPS[, LR]) with PHASE one of warmup, constant, "
        "drop, linear, cosine, exp, sqrt\n"
    )


def test_an_lr_column_that_contradicts_the_schedule_column_is_refused(tmp_path, capsys):
    """The spec was fitted and the logged LRs ignored without a word: a spec 10x a run's
    logged LR fitted alpha 0.59 for 0.4. A logged LR of the step either side agrees."""
    path = tmp_path / "c.csv"
    spec = '"warmup(10, 0.1) + constant(90)"'
    rows = [
        f"a,{s},{0.1 if s >= 10 else 0.1 * s / 9:.6g},{3 - s / 100},{spec}" for s in (5, 20, 60)
    ]
    shifted = [f"b,{s},{0.1 * (s - 1) / 9:.6g},{3 - s / 100},{spec}" for s in (5, 8)]  # a step off
    path.write_text("run_id,step,lr,loss,sched\n" + "\n".join(rows + shifted) + "\n")
    argv = [
        "fit",
        str(path),
        "--law",
        "lr-annealing",
        "--schedule-col",
        "sched",
        "--bootstrap",
        "0",
    ]
    main(argv)  # whatever a fit of five points says, the logged LRs agree with the spec
    assert "logs LR" not in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text(path.read_text().replace("a,60,0.1,", "a,60,1,"))
    assert main([*argv[:1], str(bad), *argv[2:]]) == 2
    assert capsys.readouterr().err == (
        f"error: {bad}: row 3 (line 4), run 'a', step 60: column 'lr' logs LR 1 where the "
        "schedule in 'sched' gives 0.1: one of them is not the run's (leave 'lr' empty where "
        "the schedule is right)\n"
    )


def test_plan_with_a_final_lr_of_zero_leaves_out_the_exp_decays(fitted, capsys):
    argv = ["plan", str(fitted), "--steps", "3000", "--peak-lr", "3e-4", "--final-lr", "0"]
    assert main([*argv, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 + 4 * 2 and not any("exp(" in r["schedule"] for r in rows)
    assert main(["plan", str(fitted), "--steps", "1e9", "--peak-lr", "3e-4"]) == 2
    assert "--steps" in capsys.readouterr().err


@pytest.mark.parametrize("held", [False, True])
def test_a_point_before_any_update_is_refused_naming_its_row(tmp_path, capsys, held):
    fn = lambda lr, s: mpl_direct(MPL_25M, lr, s)  # noqa: E731
    path = curves_csv(tmp_path / "c.csv", fn, ("cosine", "constant", "drop"),
                      extra=["drop,drop,0,0,10.9"])  # fmt: skip
    argv = ["fit", str(path), "--law", "lr-annealing", "--run-col", "run", "--bootstrap", "0"]
    if held:
        argv += ["--holdout-where", "run=drop"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {path}: row 118 (line 119), run 'drop', step 0: the LR summed over steps 0..0 "
        "is 0 (no update yet); a curve law starts after the first non-zero LR: leave such rows "
        "out (e.g. --where 'step>0')\n"
    )
    assert main([*argv, "--where", "step>0"]) == 0


def test_a_run_whose_lr_is_0_throughout_is_refused_as_a_run(tmp_path, capsys):
    """It was told to leave out rows with --where 'step>0', which left every row in."""
    path = tmp_path / "c.csv"
    path.write_text("run_id,step,lr,loss\na,10,0.1,3.0\na,20,0.1,2.9\nz,10,0,3.0\nz,20,0,3.0\n")
    assert main(["fit", str(path), "--law", "lr-annealing", "--where", "step>0"]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: row 3 (line 4), run 'z': its LR is 0 at every step up to its last "
        "logged step 20 (no update): leave the run out (--where)\n"
    )


def test_steps_beyond_the_limit_and_empty_lr_cells_under_a_schedule(tmp_path, capsys):
    fn = lambda lr, s: mpl_direct(MPL_25M, lr, s)  # noqa: E731
    path = curves_csv(tmp_path / "c.csv", fn, ("cosine",), extra=["cosine,cosine,1e11,3e-5,3.1"])
    assert main(["fit", str(path), "--law", "lr-annealing", "--run-col", "run"]) == 2
    assert "row 40 (line 41), column 'step': step 1e11 is beyond 100,000,000" in (
        capsys.readouterr().err
    )
    # with a schedule column the lr column may have empty cells
    rows = ["run,step,lr,loss,sched"]
    for kind, spec in (("a", "warmup(300, 3e-4) + cosine(3700, 3e-5)"),
                       ("b", "warmup(300, 3e-4) + constant(3700)")):  # fmt: skip
        lr = Schedule(spec).lr_array()
        steps = np.arange(100, 4000, 100)
        for s, v in zip(steps, mpl_direct(MPL_25M, lr, steps), strict=True):
            rows.append(f'{kind},{s},,{v:.10g},"{spec}"')
    path.write_text("\n".join(rows) + "\n")
    argv = ["fit", str(path), "--law", "lr-annealing", "--run-col", "run", "--bootstrap", "0"]
    assert main([*argv, "--schedule-col", "sched", "--out", str(tmp_path / "f.json")]) == 0
    path.write_text(path.read_text().replace(',"warmup(300, 3e-4) + constant(3700)"', ","))
    assert main([*argv, "--schedule-col", "sched"]) == 2
    assert "row 40 (line 41), column 'lr': empty, and run 'b' has no schedule in 'sched'" in (
        capsys.readouterr().err
    )


def test_runs_curves_has_one_row_at_the_last_step(tmp_path):
    """The trainer logs a periodic evaluation at the last step when --eval-every divides
    the steps, then the final one (final: true): one row, with the final loss."""
    run = tmp_path / "sweep" / "runs" / "r1"
    run.mkdir(parents=True)
    model = ModelConfig(arch="gpt", n_layer=2, n_embd=16, n_head=2, block_size=32,
                        vocab_size=256)  # fmt: skip
    train = TrainConfig(data="shards", steps=200, schedule="constant", lr=2e-3)
    (run / "config.toml").write_text(dumps_toml(RunConfig(model=model, train=train).to_dict()))
    lines = [{"step": s, "tokens": s * 384, "lr": 2e-3, "val_loss": 5.0 - s / 100}
             for s in (100, 200)]  # fmt: skip
    lines.append({"step": 200, "tokens": 200 * 384, "val_loss": 2.95, "final": True})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (run / "result.json").write_text(json.dumps({"status": "completed", "steps": 200}))
    out = tmp_path / "curves.csv"
    assert main(["runs", str(tmp_path / "sweep"), "--curves", "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["step"], r["loss"], r["lr"]) for r in rows] == [
        ("100", "4.0", "0.002"),
        ("200", "2.95", "0.002"),
    ]


def test_blank_rows_are_skipped_and_lines_counted_as_in_a_runs_table(tmp_path, capsys):
    """The curves reader (csv.DictReader) took a row of empty cells for data ("'' is not a
    number") and counted a row's line as its row + 1, wrong below any blank line."""
    fn = lambda lr, s: mpl_direct(MPL_25M, lr, s)  # noqa: E731
    path = curves_csv(tmp_path / "c.csv", fn, ("cosine", "constant", "drop"),
                      extra=[",,,,", "", "drop,drop,0,0,10.9"])  # fmt: skip
    argv = ["fit", str(path), "--law", "lr-annealing", "--run-col", "run", "--bootstrap", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: row 118 (line 121), run 'drop', step 0:"), err
    assert main([*argv, "--where", "step>0"]) == 0


def _tissue_loss(p, lr, steps, lam):
    """Tissue et al.'s law computed here step by step: L0 + A S1^-alpha - C S2, S2 the
    momentum (factor lam) of the LR drops after the first peak."""
    cum = np.cumsum(lr)
    drop = np.zeros_like(lr)
    drop[1:] = lr[:-1] - lr[1:]
    first = np.flatnonzero(drop > 0)
    drop[: first[0] if len(first) else len(lr)] = 0.0
    m, acc = np.zeros_like(lr), 0.0
    for i, d in enumerate(drop):
        acc = lam * acc + d
        m[i] = acc
    s2 = np.cumsum(m)
    return p["L0"] + p["A"] * cum[steps] ** -p["alpha"] - p["C"] * s2[steps]


def _lr(kind, total=4000, warmup=300, peak=3e-4, low=3e-5):
    lr = np.full(total, peak)
    lr[:warmup] = np.linspace(0, peak, warmup)
    t = np.arange(total)
    if kind == "cosine":
        x = (t[warmup:] - warmup) / (total - warmup)
        lr[warmup:] = low + 0.5 * (peak - low) * (1 + np.cos(np.pi * x))
    elif kind == "drop":
        lr[total // 2 :] = 0.3 * peak
    return lr


TISSUE_KNOWN = {"L0": 3.0, "A": 0.55, "alpha": 0.5, "C": 0.4}


def _tissue_table(lam):
    from scalinglab.laws.curves import CurveTable, Run

    runs = []
    for kind in ("cosine", "constant", "drop"):
        lr = _lr(kind)
        steps = np.arange(100, 4000, 100)
        runs.append(
            Run(kind, steps, lr[steps], _tissue_loss(TISSUE_KNOWN, lr, steps, lam), lr_full=lr)
        )
    return CurveTable(runs)


def test_lr_annealing_fits_with_the_decay_factor_it_is_given():
    """Data made with Tissue's lambda 0.99: --decay-factor 0.99 recovers the law exactly."""

    law = ScalingLaw("lr-annealing", decay_factor=0.99, bootstrap=0).fit(_tissue_table(0.99))
    for k, v in TISSUE_KNOWN.items():
        assert law.params_[k] == pytest.approx(v, rel=1e-3), k
    lr = _lr("cosine")
    assert law.predict([3999], lr)[0] == pytest.approx(
        _tissue_loss(TISSUE_KNOWN, lr, [3999], 0.99)[0], rel=1e-5
    )


def test_fix_holds_a_logged_curve_law_parameter_at_its_value():
    """--fix L0=3 (a parameter fitted as its log): L0 stays 3, the others recover the law."""

    law = ScalingLaw("lr-annealing", fix=["L0=3.0"], bootstrap=0).fit(_tissue_table(0.999))
    assert law.params_["L0"] == pytest.approx(3.0, rel=1e-12)
    for k in ("A", "alpha", "C"):
        assert law.params_[k] == pytest.approx(TISSUE_KNOWN[k], rel=1e-3), k


def test_curve_rows_out_of_step_order_keep_their_lr_and_loss(tmp_path):
    """A curves CSV whose rows are not in step order: each step keeps the LR and loss of
    its own row."""
    from scalinglab.laws.curves import read_curve_table

    p = tmp_path / "c.csv"
    p.write_text("run_id,step,lr,loss\na,30,0.1,2.7\na,10,0.3,3.0\na,20,0.2,2.8\n")
    (run,) = read_curve_table(p).runs
    assert run.steps.tolist() == [10, 20, 30]
    assert run.lr.tolist() == [0.3, 0.2, 0.1]
    assert run.loss.tolist() == [3.0, 2.8, 2.7]
    assert run.rows == [2, 3, 1]


def test_auto_fill_finds_a_jump_in_the_last_logged_interval():
    """Steps 0, 10, 20, 30; the LR falls 10x between 20 and 30 only: a step drop, placed
    at the midpoint (25) of its interval, not a linear ramp."""
    from scalinglab.laws.curves import lr_at_every_step

    lr = lr_at_every_step(np.array([0, 10, 20, 30]), np.array([1.0, 1.0, 1.0, 0.1]), "auto")
    assert lr[20:25].tolist() == [1.0] * 5 and lr[25:31].tolist() == [0.1] * 6
    lr = lr_at_every_step(np.array([0, 10, 20, 30]), np.array([1.0, 0.1, 0.1, 0.1]), "auto")
    assert lr[0:5].tolist() == [1.0] * 5 and lr[5:11].tolist() == [0.1] * 6


def test_a_fractional_step_in_a_curves_csv_is_refused(tmp_path):
    from scalinglab.errors import DataError
    from scalinglab.laws.curves import read_curve_table

    p = tmp_path / "c.csv"
    p.write_text("run_id,step,lr,loss\na,10,0.1,3.0\na,20.5,0.1,2.9\n")
    with pytest.raises(
        DataError, match=r"row 2 \(line 3\), column 'step': '20.5' is not a whole step"
    ):
        read_curve_table(p)


@pytest.fixture(scope="module")
def tissue_law():
    return ScalingLaw("lr-annealing", bootstrap=0).fit(_tissue_table(0.999))


def test_predict_refuses_a_step_before_any_update(tissue_law):
    """Step 0 of a schedule that starts at LR 0 has an LR area of 0: S1^-alpha is infinite."""

    with pytest.raises(ConfigError, match=r"^step 0: the LR summed over steps 0..0 is 0"):
        tissue_law.predict([0, 1000], _lr("cosine"))


def test_predict_refuses_a_fractional_step(tissue_law):
    with pytest.raises(ConfigError, match=r"^steps must be whole numbers >= 0$"):
        tissue_law.predict([1000.5], _lr("cosine"))


def test_predict_refuses_a_negative_lr_in_the_schedule(tissue_law):
    lr = _lr("cosine")
    lr[500] = -1e-3
    with pytest.raises(ConfigError, match=r"every LR must be finite and >= 0"):
        tissue_law.predict([1000], lr)


def test_a_fit_to_one_curve_warns_that_the_schedule_terms_are_undetermined():
    from scalinglab.laws.curves import CurveTable

    one = CurveTable(_tissue_table(0.999).runs[:1])
    law = ScalingLaw("lr-annealing", bootstrap=0).fit(one)
    assert "one curve only: the schedule-dependent terms are not determined" in law.warnings_
    two = CurveTable(_tissue_table(0.999).runs[:2])
    law = ScalingLaw("lr-annealing", bootstrap=0).fit(two)
    assert not any("one curve only" in w for w in law.warnings_)


def test_rank_schedules_refuses_a_schedule_longer_than_steps(tissue_law):
    from scalinglab.plan.schedules import rank_schedules

    with pytest.raises(ConfigError, match=r"is 4001 steps long and (--)?steps is 4000"):
        rank_schedules(tissue_law, 4000, ["warmup(300, 3e-4) + cosine(3701, 3e-5)"])
    rows = rank_schedules(tissue_law, 4000, ["warmup(300, 3e-4) + cosine(3700, 3e-5)"])
    assert len(rows) == 1


def test_rank_schedules_refuses_a_predicted_loss_just_below_zero(tissue_law):
    """Not only a loss far below 0: a peak LR that runs the law to -0.5 is refused too."""
    from scipy.optimize import brentq

    from scalinglab.plan.schedules import rank_schedules

    def spec(peak):
        return f"constant(1, {peak!r}) + linear(3999, 1e-5)"

    def final(peak):
        return tissue_law.predict([3999], Schedule(spec(peak)).lr_array(4000))[0]

    peak = brentq(lambda x: final(x) + 0.5, 3e-4, 1e3, xtol=1e-12)
    assert final(peak) == pytest.approx(-0.5, abs=1e-6)
    with pytest.raises(
        ConfigError, match=r"the law predicts a loss of -0\.5 at step 3999, not above 0"
    ):
        rank_schedules(tissue_law, 4000, [spec(peak)])


def where_step_csv(path, lr_scale=None):
    """Three runs logged at every step (a warmup of 100, then cosine, WSD, constant), a
    Tissue law with noise; `lr_scale` {model: factor} writes the runs once per model, each
    model's LR scaled, under the same run names (a column `model` tells them apart)."""
    specs = {
        "cos": "warmup(100, 1e-3) + cosine(1900, 1e-4)",
        "wsd": "warmup(100, 1e-3) + constant(1500) + linear(400, 1e-4)",
        "const": "warmup(100, 1e-3) + constant(1900)",
    }
    rng = np.random.default_rng(0)
    lines = ["model,run,step,lr,loss,sched"]
    for model, scale in (lr_scale or {"a": 1.0}).items():
        for name, spec in specs.items():
            lr = Schedule(spec).lr_array() * scale
            S1, S2 = np.cumsum(lr), annealing_area(lr, 0.999)
            for t in range(1, len(lr)):
                loss = (2.0 + 1.5 * S1[t] ** -0.4 - 0.03 * S2[t]) * np.exp(rng.normal(0, 1e-3))
                lines.append(f'{model},{name},{t},{float(lr[t])!r},{float(loss)!r},"{spec}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_step_filter_keeps_each_runs_lr_history(tmp_path):
    """`--where 'step>=500'` leaves the points before step 500 out of the fit, not the steps:
    the LR a run logged there is still its history. Rebuilt from the kept rows alone, the LR
    ramped from 0 to step 500, and lr-annealing fitted L0 0.0 for 2.07 (an audit: the fit
    from the lr column must be the fit from the exact schedules)."""
    path = where_step_csv(tmp_path / "c.csv")
    kw = {"run_cols": ["run"], "where": ["step>=500"], "holdout_where": ["run=wsd"]}
    logged = ScalingLaw("lr-annealing", bootstrap=0, **kw).fit(path)
    exact = ScalingLaw("lr-annealing", bootstrap=0, schedule_col="sched", **kw).fit(path)
    for name, value in exact.params_.items():
        assert logged.params_[name] == pytest.approx(value, rel=1e-6), name
    assert logged.params_["L0"] == pytest.approx(2.0, rel=0.05)
    assert logged.n_points_ == 3 * 1500 - 1500  # wsd held out; steps 500..1999 of two runs


def test_a_step_filter_takes_no_lr_from_rows_of_another_model_under_the_same_run_name(tmp_path):
    """The rows --where left out are a kept run's only where they agree with its rows on
    the other --where columns (here `model`): model b's LR, 3x a's, must not enter a's
    history (two LRs at one step), and the fit is the fit of a table of model a alone."""
    both = where_step_csv(tmp_path / "both.csv", {"a": 1.0, "b": 3.0})
    alone = where_step_csv(tmp_path / "a.csv")
    kw = {"run_cols": ["run"], "holdout_where": ["run=wsd"], "bootstrap": 0}
    mixed = ScalingLaw("lr-annealing", where=["model=a", "step>=500"], **kw).fit(both)
    single = ScalingLaw("lr-annealing", where=["step>=500"], **kw).fit(alone)
    assert mixed.params_ == single.params_


def test_left_out_rows_that_log_a_step_twice_with_two_lrs_are_refused(tmp_path, capsys):
    """A run name shared by two runs, one of which logged only the steps --where leaves out
    (model b, steps 1..499): the run's history would hold two LRs at those steps. Refused
    naming the run, the step and both rows."""
    path = where_step_csv(tmp_path / "both.csv", {"a": 1.0, "b": 3.0})
    lines = path.read_text().splitlines()
    early = [ln for ln in lines if not ln.startswith("b,") or int(ln.split(",")[2]) < 500]
    path.write_text("\n".join(early) + "\n")
    argv = ["fit", str(path), "--law", "lr-annealing", "--run-col", "run", "--where",
            "step>=500", "--bootstrap", "0"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "logs step 1 twice with LR" in err
    assert err.count("\n") == 1
