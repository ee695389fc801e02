"""Task laws: known parameters recovered from exact synthetic data, and the fit of
Pythia's LAMBADA accuracy (smaller models -> 6.9B and 12B) on the public table."""

import csv
import math

import numpy as np
import pytest
from scipy.stats import norm

from scalinglab.errors import ConfigError, DataError, FitError
from scalinglab.laws import tasklaws
from scalinglab.laws.estimator import ScalingLaw
from tests.conftest import shared_file

PYTHIA = "scaling_data/pythia_v1_zeroshot_lambada_by_step.csv"


def synthetic():
    """Runs on an exact power law of the task loss in C, and an exact sigmoid of it."""
    C = np.geomspace(1e15, 1e19, 12)
    loss = 1.5 + (3e16 / C) ** 0.3
    acc = 0.05 + 0.85 / (1 + np.exp(3.0 * (loss - 2.2)))
    return {"flops": C, "task_loss": loss, "acc": acc}


def test_task_sigmoid_recovers_known_parameters():
    est = ScalingLaw("task-sigmoid", metric_col="acc", loss_col="task_loss", bootstrap=0)
    est.fit(synthetic())
    p = est.params_
    want = {"E": 1.5, "alpha": 0.3, "C_c": 3e16, "lo": 0.05, "hi": 0.9, "k": 3.0, "L0": 2.2}
    for k, v in want.items():
        assert p[k] == pytest.approx(v, rel=1e-3), k
    assert est.predict(C=1e20) == pytest.approx(
        0.05 + 0.85 / (1 + np.exp(3.0 * (1.5 + (3e16 / 1e20) ** 0.3 - 2.2))), rel=1e-4
    )


def test_task_power_recovers_known_parameters():
    C = np.geomspace(1e15, 1e19, 10)
    acc = np.exp(-(0.2 + (1e16 / C) ** 0.4))
    est = ScalingLaw("task-power", metric_col="acc", bootstrap=0).fit({"flops": C, "acc": acc})
    for k, v in {"E": 0.2, "alpha": 0.4, "C_c": 1e16}.items():
        assert est.params_[k] == pytest.approx(v, rel=1e-4), k


@pytest.mark.parametrize("law", ["task-power", "task-sigmoid"])
def test_a_task_law_fit_json_missing_a_parameter_is_a_data_error(law):
    """load_fit checks a task law's parameters as it checks the loss laws': a fit.json
    without one was loaded, then predict failed with a KeyError traceback."""
    from scalinglab.laws import load_fit

    est = ScalingLaw(law, metric_col="acc", loss_col="task_loss", bootstrap=10, seed=0)
    obj = est.fit(synthetic()).to_json()
    assert load_fit(obj).predict(C=1e20) == pytest.approx(est.predict(C=1e20), rel=1e-12)
    gone = "L0" if law == "task-sigmoid" else "alpha"
    for where, what in (
        (obj["params"], "params"),
        (obj["bootstrap"]["samples"], "bootstrap samples"),
    ):
        kept = where.pop(gone)
        with pytest.raises(DataError, match=rf"its {what} lack {gone} of law '{law}'"):
            load_fit(obj)
        where[gone] = kept


def test_task_laws_refuse_percentages_and_a_missing_column():
    d = synthetic() | {"acc": synthetic()["acc"] * 100}
    with pytest.raises(DataError, match="row 1, column 'acc': a task metric must be a fraction"):
        ScalingLaw("task-power", metric_col="acc").fit(d)
    with pytest.raises(DataError, match="needs metric_col: the column"):
        ScalingLaw("task-power").fit(synthetic())


def pythia():
    with open(shared_file(PYTHIA), newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["deduped"] == "False" and int(r["step"]) >= 1000]
    for r in rows:
        r["task_loss"] = math.log(float(r["lambada_openai_ppl"]))
    small = [r for r in rows if float(r["N_params"]) < 5e9]
    big = {r["model"]: r for r in rows if float(r["N_params"]) > 5e9 and r["step"] == "143000"}
    return small, big


@pytest.mark.parametrize(
    "law, want",
    [
        ("task-sigmoid", {"pythia-6.9b": 0.6811, "pythia-12b": 0.6934}),
        ("task-power", {"pythia-6.9b": 0.6709, "pythia-12b": 0.6789}),
    ],
)
def test_pythia_lambada_smaller_models_predict_the_larger(law, want):
    small, big = pythia()
    est = ScalingLaw(
        law, metric_col="lambada_openai_acc", run_cols=["model"], checkpoints=True,
        loss_col="task_loss" if law == "task-sigmoid" else None, bootstrap=200, seed=0,
    ).fit(small)  # fmt: skip
    # 6 models x 16 checkpoints from step 1000: task-power fits each model's last row in C,
    # task-sigmoid's second step every row
    assert est.n_points_ == (96 if law == "task-sigmoid" else 6)
    for model, pred in want.items():
        r = big[model]
        N, D = float(r["N_params"]), float(r["D_tokens"])
        p, lo, hi = est.predict(N=N, D=D, return_ci=True)
        assert float(p) == pytest.approx(pred, abs=1e-3)
        measured = float(r["lambada_openai_acc"])  # 0.6728 and 0.7046
        assert abs(float(p) - measured) < 0.03 and lo < measured < hi
    if law == "task-sigmoid":  # the second step alone, at the measured task loss
        got = [float(tasklaws.metric_from_loss(est.params_, big[m]["task_loss"])) for m in want]
        assert got == pytest.approx([0.6743, 0.7004], abs=1e-3)


def test_run_columns_alone_make_rows_checkpoints_as_the_backtest_takes_them():
    """`fit --run-col model` without --checkpoints fitted the laws in C to every
    mid-schedule checkpoint (as if each were a run of its compute), while `backtest
    --run-col model` grouped them: the same flags, two readings."""
    small, _ = pythia()
    kw = {"metric_col": "lambada_openai_acc", "loss_col": "task_loss", "bootstrap": 0}
    grouped = ScalingLaw("task-sigmoid", run_cols=["model"], checkpoints=True, **kw).fit(small)
    named = ScalingLaw("task-sigmoid", run_cols=["model"], **kw).fit(small)
    every = ScalingLaw("task-sigmoid", **kw).fit(small)
    assert named.params_ == grouped.params_
    assert every.params_["alpha"] != pytest.approx(grouped.params_["alpha"], rel=0.1)


def test_fit_law_task_sigmoid_from_the_command_line(tmp_path, capsys):
    import json

    from scalinglab.cli import main
    from scalinglab.laws.estimator import load_fit

    d = synthetic()
    lines = ["flops,task_loss,recall.acc"]
    lines += [
        f"{c!r},{lo!r},{a!r}" for c, lo, a in zip(*(v.tolist() for v in d.values()), strict=True)
    ]
    (tmp_path / "runs.csv").write_text("\n".join(lines) + "\n")
    argv = ["fit", str(tmp_path / "runs.csv"), "--law", "task-sigmoid", "--metric-col",
            "recall.acc", "--loss-col", "task_loss", "--bootstrap", "20", "--out",
            str(tmp_path / "fit.json")]  # fmt: skip
    assert main(argv) == 0
    fit = json.loads((tmp_path / "fit.json").read_text())
    assert fit["law"] == "task-sigmoid" and fit["params"]["L0"] == pytest.approx(2.2, rel=1e-3)
    # the loss of step 1 is the task loss column; the metric is named apart
    assert fit["conventions"]["L"] == "task_loss" and fit["conventions"]["metric"] == "recall.acc"
    assert "L=task_loss" in capsys.readouterr().out
    law = load_fit(tmp_path / "fit.json")
    p, lo, hi = law.predict(C=1e19, return_ci=True)
    assert lo <= p <= hi and float(p) == pytest.approx(d["acc"][-1], rel=1e-4)
    assert main([*argv[:-2], "--holdout-frac", "0.2"]) == 2
    assert "backtest it with scalinglab backtest RUNS.csv --law task-sigmoid" in (
        capsys.readouterr().err
    )


def test_the_sigmoid_step_alone_predicts_a_metric_from_a_predicted_loss():
    d = synthetic()
    fit = tasklaws.fit_sigmoid(d["task_loss"], d["acc"], bootstrap=50)
    assert fit["params"]["L0"] == pytest.approx(2.2, rel=1e-3)
    out = tasklaws.metric_at_loss(fit, 2.0, (1.9, 2.1))
    assert out["predicted"] == pytest.approx(0.05 + 0.85 / (1 + np.exp(3.0 * -0.2)), rel=1e-4)
    want = [0.05 + 0.85 / (1 + np.exp(3.0 * (x - 2.2))) for x in (2.1, 1.9)]
    assert out["interval"] == pytest.approx(want, rel=1e-3)  # exact data: only the loss's spread
    with pytest.raises(FitError, match="the sigmoid needs at least 4"):
        tasklaws.fit_sigmoid([1.0, 2.0], [0.5, 0.4])


def test_a_predicted_metric_never_leaves_zero_to_one():
    p = {"lo": -0.2, "hi": 3.0, "k": 1.0, "L0": 0.0}  # a steep-side fit, extrapolated
    assert list(tasklaws.metric_from_loss(p, [-50.0, 0.0, 50.0])) == [1.0, 1.0, 0.0]


def test_with_chance_the_sigmoid_fits_k_and_l0_between_chance_and_one():
    loss = np.linspace(1.3, 2.2, 9)  # a narrow range on the steep side, as a quickstart's
    acc = 0.5 + 0.5 / (1 + np.exp(4.0 * (loss - 1.6)))
    fit = tasklaws.fit_sigmoid(loss, acc, bootstrap=20, chance=0.5)
    assert fit["params"]["lo"] == 0.5 and fit["params"]["hi"] == 1.0
    assert fit["params"]["k"] == pytest.approx(4.0, rel=1e-4)
    assert fit["params"]["L0"] == pytest.approx(1.6, rel=1e-4)
    assert set(fit["samples"]) == {"lo", "hi", "k", "L0"} and np.all(fit["samples"]["hi"] == 1)
    # extrapolated to a lower loss it approaches 1, never past it
    assert float(tasklaws.metric_from_loss(fit["params"], 0.5)) == pytest.approx(
        0.5 + 0.5 / (1 + np.exp(4.0 * -1.1)), rel=1e-4
    )
    with pytest.raises(FitError, match="the sigmoid needs at least 2"):
        tasklaws.fit_sigmoid([1.0], [0.6], chance=0.5)


def test_a_task_at_chance_is_told_from_one_above_it():
    # 2000 items, chance 1/2: the standard error of chance is 1.12 points
    assert tasklaws.accuracy_se(0.5, 2000) == pytest.approx(math.sqrt(0.25 / 2000))
    assert not tasklaws.above_chance([0.49, 0.51, 0.533], 0.5, 2000)  # 2.9 standard errors
    assert tasklaws.above_chance([0.49, 0.51, 0.534], 0.5, 2000)  # 3.0


def test_the_interval_of_a_measured_accuracy_holds_its_item_noise():
    d = synthetic()
    fit = tasklaws.fit_sigmoid(d["task_loss"], d["acc"], bootstrap=0)
    bare = tasklaws.metric_at_loss(fit, 2.0)
    out = tasklaws.metric_at_loss(fit, 2.0, n_items=1000)
    p = bare["predicted"]
    assert bare["interval"] == pytest.approx([p, p])  # exact data and loss: no spread
    se = math.sqrt(p * (1 - p) / 1000)
    assert out["se"] == pytest.approx(se) and out["n_items"] == 1000
    assert out["interval"] == pytest.approx([p - 1.959964 * se, p + 1.959964 * se], rel=1e-5)


@pytest.mark.parametrize("law", tasklaws.TASK_LAWS)
def test_a_rolling_backtest_of_exact_task_laws_predicts_the_larger_runs_exactly(law):
    est = ScalingLaw(law, metric_col="acc", loss_col="task_loss", bootstrap=0)
    if law == "task-power":  # exact in its own form: -ln acc = E + (C_c / C)^alpha
        d = synthetic()
        d["acc"] = np.exp(-(0.2 + (3e16 / d["flops"]) ** 0.3))
    else:
        d = synthetic()
    bt = tasklaws.rolling_backtest(est, d)
    assert [t["n_train"] for t in bt["thresholds"]] == [6, 8, 9, 10, 11]  # of 12 runs
    assert [t["n"] for t in bt["thresholds"]] == [6, 4, 3, 2, 1]
    assert bt["overall"]["n"] == 16 and bt["overall"]["max_abs_error_points"] < 1e-3


def test_backtest_of_a_task_law_from_the_command_line_on_pythia(tmp_path, capsys):
    import json

    from scalinglab.cli import main

    path = shared_file(PYTHIA)
    argv = ["backtest", str(path), "--law", "task-power", "--metric-col", "lambada_openai_acc",
            "--where", "deduped=False", "--where", "step>=1000", "--run-col", "model",
            "--bootstrap", "0",
            "--out", str(tmp_path / "bt.json")]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "law: task-power    metric: lambada_openai_acc" in text and "in 95%" in text
    bt = json.loads((tmp_path / "bt.json").read_text())
    # 8 models; at each threshold the smaller ones predict the larger ones' last accuracy
    assert [t["n_train"] for t in bt["thresholds"]] == [4, 5, 6, 7]
    assert bt["overall"]["n"] == 10
    assert bt["overall"]["mean_abs_error_points"] == pytest.approx(2.23, abs=0.01)
    # the bias is predicted - measured: the law under-predicts the larger models here
    rows = [r for t in bt["thresholds"] for r in t["rows"]]
    bias = 100 * np.mean([r["predicted"] - r["measured"] for r in rows])
    assert bt["overall"]["bias_points"] == pytest.approx(bias, abs=1e-9)
    assert bt["overall"]["bias_points"] == pytest.approx(-0.79, abs=0.01)
    assert bt["overall"]["coverage"]["0.95"] >= 0.8  # the fitted runs' scatter alone
    assert main([*argv[:-2], "--by", "N"]) == 2
    assert "backtests by C" in capsys.readouterr().err


def test_chance_fixes_the_sigmoids_ends_in_python_on_the_command_line_and_in_a_backtest(
    tmp_path,
):
    import json

    from scalinglab.cli import main
    from scalinglab.laws.estimator import load_fit

    d = synthetic()
    d["acc"] = 0.5 + 0.5 / (1 + np.exp(3.0 * (d["task_loss"] - 2.2)))  # two choices
    est = ScalingLaw("task-sigmoid", metric_col="acc", loss_col="task_loss", bootstrap=20,
                     chance=0.5).fit(d)  # fmt: skip
    assert est.params_["lo"] == 0.5 and est.params_["hi"] == 1.0
    assert est.params_["k"] == pytest.approx(3.0, rel=1e-4)
    assert est.params_["L0"] == pytest.approx(2.2, rel=1e-4)
    assert np.all(est.samples_["lo"] == 0.5) and np.all(est.samples_["hi"] == 1.0)
    free = ScalingLaw("task-sigmoid", metric_col="acc", loss_col="task_loss", bootstrap=0).fit(d)
    assert free.params_["lo"] != 0.5  # without chance all four are fitted
    lines = ["flops,task_loss,acc"]
    lines += [f"{c!r},{x!r},{a!r}" for c, x, a in zip(*(d[k].tolist() for k in d), strict=True)]
    (tmp_path / "runs.csv").write_text("\n".join(lines) + "\n")
    argv = ["fit", str(tmp_path / "runs.csv"), "--law", "task-sigmoid", "--metric-col", "acc",
            "--loss-col", "task_loss", "--bootstrap", "20", "--chance", "0.5"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "fit.json")]) == 0
    fit = json.loads((tmp_path / "fit.json").read_text())
    assert fit["params"]["lo"] == 0.5 and fit["params"]["hi"] == 1.0
    assert fit["params"]["k"] == pytest.approx(3.0, rel=1e-4)
    assert load_fit(tmp_path / "fit.json").settings["chance"] == 0.5
    assert float(load_fit(tmp_path / "fit.json").predict(C=1e19)) == pytest.approx(
        d["acc"][-1], rel=1e-4
    )
    # the leave-larger-out backtest fits the two-parameter sigmoid at every threshold
    bt = tasklaws.rolling_backtest(
        ScalingLaw("task-sigmoid", metric_col="acc", loss_col="task_loss", bootstrap=0,
                   chance=0.5), d)  # fmt: skip
    assert bt["overall"]["n"] == 16 and bt["overall"]["max_abs_error_points"] < 1e-3
    assert main([*argv[:-1], "1.5"]) == 2  # one line naming the flag


def test_the_interval_of_one_run_holds_the_runs_scatter_when_it_exceeds_the_items_noise():
    loss = np.linspace(1.5, 2.1, 10)
    exact = 0.5 + 0.5 / (1 + np.exp(4.0 * (loss - 1.6)))
    acc = exact + 0.03 * np.array([1, -1] * 5)  # runs 3 points off the law, as seeds are
    fit = tasklaws.fit_sigmoid(loss, acc, bootstrap=0, chance=0.5)
    resid = acc - tasklaws.metric_from_loss(fit["params"], loss)
    assert fit["scatter"] == pytest.approx(np.sqrt(np.sum(resid**2) / (10 - 2)))
    assert 0.028 < fit["scatter"] < 0.034
    out = tasklaws.metric_at_loss(fit, 1.4, n_items=4000, scatter=fit["scatter"])
    p, z = out["predicted"], 1.959964
    assert out["se"] == pytest.approx(math.sqrt(p * (1 - p) / 4000))  # 0.7 points < 3
    assert out["noise"] == fit["scatter"] and out["scatter"] == fit["scatter"]
    assert out["interval"] == pytest.approx([p - z * fit["scatter"], p + z * fit["scatter"]])
    few = tasklaws.metric_at_loss(fit, 1.4, n_items=50, scatter=fit["scatter"])
    assert few["noise"] == few["se"] > fit["scatter"]  # 50 items: their noise is larger
    assert tasklaws.fit_sigmoid(loss[:2], acc[:2], bootstrap=0, chance=0.5)["scatter"] is None


def test_task_law_inputs_and_levels_are_checked_as_the_loss_laws_check_them():
    """predict(C=0) gave 0.497 and C=-1 NaN; level=0.5 returned the 95% interval; an
    accuracy of 1.5 was fitted by the sigmoid step alone."""
    from scalinglab.errors import ConfigError

    d = synthetic()
    d["acc"] = d["acc"] + np.random.default_rng(0).normal(0, 0.01, d["acc"].size)
    est = ScalingLaw("task-sigmoid", metric_col="acc", loss_col="task_loss", bootstrap=20)
    est.fit(d)
    for c in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match=r"predict: C is .*; C must be finite numbers > 0"):
            est.predict(C=c)
    _, lo95, hi95 = est.predict(C=1e20, return_ci=True)
    _, lo50, hi50 = est.predict(C=1e20, return_ci=True, level=0.5)
    assert lo95 < lo50 < hi50 < hi95
    with pytest.raises(ConfigError, match=r"level=1.5: must be in \(0, 1\)"):
        est.predict(C=1e20, return_ci=True, level=1.5)
    with pytest.raises(DataError, match=r"metric\[2\] is 1.5: a task metric is a fraction"):
        tasklaws.fit_sigmoid([3.0, 2.5, 2.0, 1.5, 1.2], [0.1, 0.2, 1.5, 0.6, 0.8], bootstrap=0)


def test_a_task_law_through_every_point_draws_no_interval():
    d = {k: v[::3] for k, v in synthetic().items()}  # 4 runs for the sigmoid's 4 parameters
    est = ScalingLaw("task-sigmoid", metric_col="acc", loss_col="task_loss", bootstrap=20)
    est.fit(d)
    assert est.ci_ == {} and est.samples_ is None
    assert "4 points for 4 parameters: the fit passes through every point" in est.warnings_[0]


def test_backtest_intervals_of_a_fraction_stay_in_0_1():
    C = np.geomspace(1e15, 1e19, 10)
    noise = np.exp(np.random.default_rng(2).normal(0, 0.05, 10))
    acc = np.minimum(np.exp(-(0.002 + (1e16 / C) ** 0.4)) * noise, 0.999)
    law = ScalingLaw("task-power", metric_col="acc", bootstrap=20)
    bt = tasklaws.rolling_backtest(law, {"flops": C, "acc": acc})
    ends = [x for t in bt["thresholds"] for r in t["rows"] for lv in ("0.8", "0.95") for x in r[lv]]
    assert min(ends) >= 0.0 and max(ends) <= 1.0 and max(ends) == 1.0  # it reached past 1


def test_ends_outside_0_1_and_a_chance_above_the_runs_are_warned_of():
    """The free sigmoid on Pythia's steep side put hi at 4.7 and lo at -0.03; --chance 0.9
    with every row below it fitted, both without a word."""
    small, _ = pythia()
    kw = {"metric_col": "lambada_openai_acc", "loss_col": "task_loss", "bootstrap": 0,
          "run_cols": ["model"]}  # fmt: skip
    free = ScalingLaw("task-sigmoid", **kw).fit(small)
    assert free.params_["hi"] > 1
    assert any("lie outside [0, 1]: these runs do not place them" in w for w in free.warnings_)
    fixed = ScalingLaw("task-sigmoid", chance=0.9, **kw).fit(small)
    assert "96 of 96 rows lie below --chance 0.9" in " ".join(fixed.warnings_)
    ok = ScalingLaw("task-sigmoid", chance=0.0, **kw).fit(small)
    assert not any("below --chance" in w or "outside [0, 1]" in w for w in ok.warnings_)


def test_task_power_refuses_a_metric_of_one_naming_the_row():
    """-ln(1) = 0 has no log: it was 'law power-c: no start gave a finite objective'."""
    t = {"flops": [1e15, 1e16, 1e17, 1e18], "acc": [0.3, 0.5, 0.8, 1.0]}
    with pytest.raises(DataError, match=r"row 4, column 'acc': task-power fits -ln\(metric\)"):
        ScalingLaw("task-power", metric_col="acc", bootstrap=0).fit(t)


def test_a_curves_table_with_steps_not_scored_names_the_where_that_leaves_them_out(tmp_path):
    """`runs DIR --curves` has a row per evaluated step and a task's columns only at the
    steps `eval --every-checkpoint` scored (fewer checkpoints than evaluations): the
    documented task-law fit of it stopped at 'missing value' with no way on."""
    d = {k: v.tolist() for k, v in synthetic().items()}
    lines = ["run,step,flops,recall.acc,recall.bpb"]
    for r in range(6):  # each run: an evaluated, unscored step, then its scored last step
        c, a, lo = d["flops"][2 * r + 1], d["acc"][2 * r + 1], d["task_loss"][2 * r + 1]
        lines += [f"r{r},10,{c / 2!r},,", f"r{r},20,{c!r},{a!r},{lo!r}"]
    (tmp_path / "curves.csv").write_text("\n".join(lines) + "\n")
    kw = {"metric_col": "recall.acc", "loss_col": "recall.bpb", "run_cols": ["run"]}
    with pytest.raises(
        DataError,
        match=r"row 1 \(line 2\), column 'recall.acc': missing value: a row not scored on "
        r"the task .*; where 'recall.acc!=' leaves such rows out$",
    ):
        ScalingLaw("task-sigmoid", bootstrap=0, **kw).fit(tmp_path / "curves.csv")
    law = ScalingLaw("task-sigmoid", bootstrap=0, where=["recall.acc!="], **kw)
    assert law.fit(tmp_path / "curves.csv").n_points_ == 6


def test_run_cols_run_id_in_python_reads_checkpoints_as_fit_run_col_run_id_does(tmp_path):
    """`fit CURVES.csv --law task-sigmoid --run-col run_id` (docs/tasks.md) reads the rows
    as checkpoints of the runs; the same keyword in Python, run_cols=["run_id"], is the
    default's spelling and was read as no runs: 'duplicate run_id' at a run's second row."""
    import json

    from scalinglab.cli import main

    d = {k: v.tolist() for k, v in synthetic().items()}
    lines = ["run_id,step,flops,recall.acc,recall.bpb"]
    for r in range(6):  # each run: a mid-schedule checkpoint, then its last row
        for i in (2 * r, 2 * r + 1):
            lines.append(f"r{r},{i},{d['flops'][i]!r},{d['acc'][i]!r},{d['task_loss'][i]!r}")
    (tmp_path / "curves.csv").write_text("\n".join(lines) + "\n")
    kw = {"metric_col": "recall.acc", "loss_col": "recall.bpb", "bootstrap": 0}
    law = ScalingLaw("task-sigmoid", run_cols=["run_id"], **kw).fit(tmp_path / "curves.csv")
    assert law.settings["checkpoints"] is True and law.n_points_ == 12
    argv = ["fit", str(tmp_path / "curves.csv"), "--law", "task-sigmoid", "--metric-col",
            "recall.acc", "--loss-col", "recall.bpb", "--run-col", "run_id", "--bootstrap",
            "0", "--out", str(tmp_path / "fit.json")]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((tmp_path / "fit.json").read_text())["params"] == pytest.approx(law.params_)


def test_task_backtest_interval_is_the_draws_central_range_widened_by_the_normal_quantile(
    monkeypatch,
):
    C = np.geomspace(1e15, 1e19, 10)
    p = {"E": 0.2, "alpha": 0.4, "C_c": 1e16}
    acc = np.exp(-(0.2 + (1e16 / C) ** 0.4)) + 0.01 * np.array([1, -1] * 5)
    draws = {
        "E": np.full(101, 0.2),
        "alpha": np.linspace(0.35, 0.45, 101),
        "C_c": np.full(101, 1e16),
    }
    monkeypatch.setattr(tasklaws, "fit_points", lambda *a, **k: {"params_": p, "samples": draws})
    law = ScalingLaw("task-power", metric_col="acc", bootstrap=0)
    bt = tasklaws.rolling_backtest(law, {"flops": C, "acc": acc}, thresholds=[C[5] * 1.01])
    (t,) = bt["thresholds"]
    assert t["scatter"] == pytest.approx(0.01, rel=1e-9)  # the 6 fitted runs are 0.01 off
    for r in t["rows"]:
        pred = math.exp(-(0.2 + (1e16 / r["C"]) ** 0.4))
        spread = np.exp(-(0.2 + (1e16 / r["C"]) ** draws["alpha"]))
        for lv in (0.8, 0.95):
            lo, hi = np.percentile(spread, [50 * (1 - lv), 50 * (1 + lv)])
            z = norm.ppf(0.5 + lv / 2) * 0.01
            want = [pred - math.hypot(pred - lo, z), pred + math.hypot(hi - pred, z)]
            assert r[f"{lv:g}"] == pytest.approx(want, rel=1e-9)


def test_task_backtest_without_draws_is_the_prediction_plus_minus_z_times_scatter(monkeypatch):
    C = np.geomspace(1e15, 1e19, 10)
    p = {"E": 0.2, "alpha": 0.4, "C_c": 1e16}
    acc = np.exp(-(0.2 + (1e16 / C) ** 0.4)) + 0.01 * np.array([1, -1] * 5)
    monkeypatch.setattr(tasklaws, "fit_points", lambda *a, **k: {"params_": p, "samples": None})
    law = ScalingLaw("task-power", metric_col="acc", bootstrap=0)
    bt = tasklaws.rolling_backtest(law, {"flops": C, "acc": acc}, thresholds=[C[5] * 1.01])
    r = bt["thresholds"][0]["rows"][0]
    assert r["0.8"] == pytest.approx(
        [r["predicted"] - 1.281552 * 0.01, r["predicted"] + 1.281552 * 0.01], rel=1e-6
    )
    assert r["0.95"] == pytest.approx(
        [r["predicted"] - 1.959964 * 0.01, r["predicted"] + 1.959964 * 0.01], rel=1e-6
    )


def test_a_sigmoid_end_above_one_is_warned_of_even_with_the_other_end_inside():
    C = np.geomspace(3e15, 1e18, 12)
    loss = 1.5 + (3e16 / C) ** 0.3
    acc = 0.05 + 1.25 / (1 + np.exp(3.0 * (loss - 2.2)))  # lo = 0.05, hi = 1.3; every acc < 1
    assert acc.max() < 1
    est = ScalingLaw("task-sigmoid", metric_col="acc", loss_col="task_loss", bootstrap=0)
    est.fit({"flops": C, "task_loss": loss, "acc": acc})
    assert est.params_["hi"] == pytest.approx(1.3, rel=1e-2) and 0 <= est.params_["lo"] < 1
    assert any("lie outside [0, 1]" in w for w in est.warnings_)


def test_a_chance_of_one_is_refused():
    loss = np.linspace(1.5, 2.1, 10)
    acc = 0.5 + 0.5 / (1 + np.exp(4.0 * (loss - 1.6)))
    with pytest.raises(ConfigError, match=r"chance=1.0: must be in \[0, 1\)"):
        tasklaws.fit_sigmoid(loss, acc, bootstrap=0, chance=1.0)


def test_above_chance_measures_the_best_run_in_standard_errors_of_chance():
    # chance 0.25 on 100 items: se = sqrt(0.25*0.75/100) = 0.0433, 3 se = 0.130; 0.39 is 0.14 above
    assert tasklaws.above_chance([0.3, 0.39], 0.25, 100)
    assert not tasklaws.above_chance([0.3, 0.375], 0.25, 100)  # 0.125 above


@pytest.mark.parametrize("law", ["task-power", "task-sigmoid"])
def test_a_task_law_fitted_on_checkpoints_checks_the_c_of_the_rows_it_fitted_in_c(law):
    """Fitted in C to each run's last row, a checkpoint table's fit recorded every row's C:
    its C_range began a decade below the last rows', and a prediction there was not warned
    of, while the same fit from the last rows alone warned (a metamorphic audit)."""
    rows = []
    for run, (N, acc) in {
        "a": (1e6, 0.55),
        "b": (3e6, 0.6),
        "c": (1e7, 0.66),
        "d": (3e7, 0.71),
    }.items():
        for frac in (0.01, 0.1, 1.0):
            D = 20 * N * frac
            rows.append({"run_id": run, "params": N, "tokens": D, "flops": 6 * N * D,
                         "acc": acc - 0.04 * (1 - frac), "loss": 3.0 - acc * frac})  # fmt: skip
    last = [r for r in rows if r["tokens"] == 20 * r["params"]]
    kw = {"metric_col": "acc", "bootstrap": 0}
    if law == "task-sigmoid":
        kw["loss_col"] = "loss"
    alone = ScalingLaw(law, **kw).fit(last)
    runs = ScalingLaw(law, run_cols=["run_id"], **kw).fit(rows)
    assert (
        runs.to_json()["data"]["C_range"] == alone.to_json()["data"]["C_range"] == [1.2e14, 1.08e17]
    )
    assert runs.ranges_["C"] == alone.ranges_["C"]
    for fit in (alone, runs):
        with pytest.warns(UserWarning, match="below the smallest C fitted"):
            fit.predict(C=1e13)
    assert runs.n_points_ == (4 if law == "task-power" else 12)
