"""Prediction intervals, leave-larger-out backtests, --law auto and the warnings that need
no bootstrap (issue 20)."""

import json
import math
import re
import types

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.errors import ConfigError, DataError
from scalinglab.laws import ScalingLaw, load_fit, tasklaws, warn
from scalinglab.laws import intervals as intervals_mod
from scalinglab.laws.backtest import backtest, choose_law, pick, read_for, rolling_backtest
from scalinglab.laws.backtest import metrics as backtest_metrics
from scalinglab.laws.intervals import (
    conformal_factors,
    conformal_scores,
    held_out,
    noise_model,
    seed_spread,
)
from scalinglab.laws.table import read_csv, read_table
from tests.conftest import shared_file
from tests.laws.synth import chinchilla_curves_csv, chinchilla_law, grid_table, synthetic_coverage
from tests.laws.test_cli_fit import runs_csv

EPOCH = "scaling_data/epoch_chinchilla_svg_extracted_data.csv"


def test_synthetic_prediction_intervals_cover_at_their_level():
    # power-c with log-normal noise: 50 tables, 10 new runs beyond each (up to 3x in C)
    cov, n = synthetic_coverage("power-c", 50, bootstrap=50)
    assert n == 500
    assert cov[0.8] == pytest.approx(0.80, abs=0.05)
    assert cov[0.95] == pytest.approx(0.95, abs=0.05)


def test_calibrated_intervals_cover_at_their_level_when_the_law_is_right():
    # the calibration must not widen (or narrow) much where the law is true: 25 synthetic
    # tables of a log-linear power law in C (fast fits), each fitted with its own
    # calibration by C, 20 new runs 1.1-3.2x beyond each; measured 79.4% / 96.6% (80.6% / 95.2% before the noise was drawn from the residuals themselves; with three
    # calibration thresholds: 82.2% / 94.2%; allowed to narrow without evidence: 70.8% / 87.4%)
    cov, n = synthetic_coverage(
        "power-c", 25, bootstrap=30, calibrate="C", floor=False, new_runs=20
    )
    assert n == 500
    assert cov[0.8] == pytest.approx(0.80, abs=0.05)
    assert cov[0.95] == pytest.approx(0.95, abs=0.05)


def test_prediction_interval_is_wider_than_confidence_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    t = grid_table(chinchilla_law, np.logspace(7, 9, 5), np.logspace(9, 11, 5), 0.01, rng)
    law = ScalingLaw("chinchilla", bootstrap=200).fit(t)
    _, clo, chi = law.predict(N=3e9, D=6e10, return_ci=True)
    p, plo, phi = law.predict(N=3e9, D=6e10, return_ci=True, kind="prediction")
    assert plo < clo < p < chi < phi
    # the noise is the residual spread: about the 1% drawn
    assert law.noise_["source"] == "residuals"
    assert 0.006 < law.noise_["sigma"] < 0.014
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(law.to_json()))
    again = load_fit(path).predict(N=3e9, D=6e10, return_ci=True, kind="prediction")
    np.testing.assert_allclose(again, (p, plo, phi))
    with pytest.raises(Exception, match="kind='bogus'"):
        law.predict(N=3e9, D=6e10, return_ci=True, kind="bogus")


def test_noise_from_seed_repeats_when_they_spread_more():
    rng = np.random.default_rng(2)
    x = np.repeat(np.linspace(0, 1, 10), 3)
    logL = 1.0 - 0.5 * x + 0.05 * rng.standard_normal(x.size)
    # a "fit" through the group means leaves residuals of the seed spread only; shrink them
    means = np.repeat(logL.reshape(10, 3).mean(axis=1), 3)
    m = noise_model(logL, means + 0.1 * (logL - means), 2, keys=x[:, None])
    assert m["source"] == "seed repeats"
    assert m["sigma_seeds"] == pytest.approx(0.05, rel=0.35)
    assert m["sigma"] == m["sigma_seeds"]


def test_runs_of_one_n_and_d_on_other_unique_data_are_no_seed_repeats():
    """Chinchilla's seed repeats were rows of equal N and D, so runs that repeat their
    data more (another U) counted as seeds: on the datablations runs a seed spread of
    24% (190 rows) replaced the residuals' 21.9%, where runs of equal N, D and U spread
    0.7% (found by an audit of the intervals)."""
    rng = np.random.default_rng(5)
    N, D = (a.ravel() for a in np.meshgrid([1e7, 3e7, 1e8, 3e8], [2e8, 6e8, 2e9, 6e9]))
    rows = []
    for n, d in zip(N, D, strict=True):
        for u, penalty in ((d, 1.0), (d / 8, 1.12)):  # repeating the data 8 times costs 12%
            for _ in range(2):  # two seeds, 1% apart
                loss = chinchilla_law(n, d) * penalty * np.exp(0.01 * rng.standard_normal())
                rows.append({"N": n, "D": d, "U": u, "L": loss})
    law = ScalingLaw("chinchilla", bootstrap=0).fit(rows)
    assert law.noise_["source"] == "residuals"
    assert law.noise_["seed_rows"] == 64
    assert law.noise_["sigma_seeds"] == pytest.approx(0.01, rel=0.3)
    assert law.noise_["sigma_residuals"] > 0.04  # the law cannot see U: a 12% step
    # without U the two data regimes read as one run's seeds, spread by the 12% step
    no_u = ScalingLaw("chinchilla", bootstrap=0).fit([{**r, "U": None} for r in rows])
    assert no_u.noise_["seed_rows"] == 64 and no_u.noise_["sigma_seeds"] > 0.04


def test_chinchilla_on_the_datablations_runs_draws_its_noise_from_the_residuals():
    law = ScalingLaw("chinchilla", bootstrap=0).fit(
        shared_file("scaling_data/datablations_val_losses.csv")
    )
    assert law.noise_["source"] == "residuals"
    assert law.noise_["seed_rows"] == 82
    assert law.noise_["sigma_seeds"] == pytest.approx(0.00695, abs=5e-5)
    assert law.noise_["sigma"] == law.noise_["sigma_residuals"] == pytest.approx(0.2188, abs=1e-4)


def test_a_calibrated_fit_takes_the_seed_spread_below_a_misfit():
    # a law that misfits: residuals of ~10% about it, seed repeats 1% apart
    rng = np.random.default_rng(4)
    x = np.repeat(np.linspace(0, 1, 10), 3)
    misfit = np.repeat(0.1 * rng.standard_normal(10), 3)
    logL = 1.0 - 0.5 * x + misfit + 0.01 * rng.standard_normal(x.size)
    logpred = 1.0 - 0.5 * x
    plain = noise_model(logL, logpred, 2, keys=x[:, None])
    first = noise_model(logL, logpred, 2, keys=x[:, None], seeds_first=True)
    assert plain["source"] == "residuals" and plain["sigma"] > 0.05
    assert first["source"] == "seed repeats"
    assert first["sigma"] == first["sigma_seeds"] == pytest.approx(0.01, rel=0.35)
    assert first["sigma_residuals"] == plain["sigma"]
    ratio = np.ptp(first["quantiles"]) / np.ptp(plain["quantiles"])
    assert ratio == pytest.approx(first["sigma"] / plain["sigma"])
    # without repeats there is no seed spread to take: the residuals either way
    lone = noise_model(logL[::3], logpred[::3], 2, keys=x[::3, None], seeds_first=True)
    assert lone["source"] == "residuals"


def test_calibrated_fits_and_their_refits_draw_the_noise_from_the_seeds(monkeypatch):
    # chinchilla on a grid with three seeds a point and a misfit larger than their spread
    rng = np.random.default_rng(6)
    N, D = (a.ravel() for a in np.meshgrid(np.logspace(7, 9, 4), np.logspace(9, 11, 4)))
    N, D = np.repeat(N, 3), np.repeat(D, 3)
    L = chinchilla_law(N, D) * np.exp(
        np.repeat(0.05 * rng.standard_normal(16), 3) + 0.005 * rng.standard_normal(48)
    )
    rows = {"N": N, "D": D, "L": L}
    plain = ScalingLaw("chinchilla", bootstrap=0).fit(rows)
    cal = ScalingLaw("chinchilla", bootstrap=0, calibrate="C").fit(rows)
    assert plain.noise_["source"] == "residuals"
    assert cal.noise_["source"] == "seed repeats"
    assert cal.noise_["sigma"] < plain.noise_["sigma"] / 3
    # the calibration's refits, whose raw intervals it scales, take it the same way
    seen = []
    real = noise_model

    def spy(*a, **k):
        seen.append(k.get("seeds_first"))
        return real(*a, **k)

    import scalinglab.laws.intervals as iv

    monkeypatch.setattr(iv, "noise_model", spy)
    ScalingLaw("chinchilla", bootstrap=0, calibrate="C").fit(rows)
    assert len(seen) >= 4 and all(seen)


def test_conformal_factor_makes_the_intervals_cover():
    L = np.exp(np.linspace(-0.1, 0.1, 101))
    pred = np.ones_like(L)
    lo, hi = np.full_like(L, np.exp(-0.05)), np.full_like(L, np.exp(0.05))
    s = conformal_scores(L, pred, lo, hi)
    f = conformal_factors({0.8: s})[0.8]
    assert f == pytest.approx(1.62, abs=0.03)  # |log L| up to 0.081 needed: 0.081 / 0.05
    inside = np.abs(np.log(L)) <= f * 0.05 + 1e-12
    assert inside.mean() >= 0.8


def test_the_conformal_factor_is_the_score_of_rank_ceil_n_plus_1_times_level():
    """The split-conformal quantile takes rank ⌈(n + 1)·level⌉ of n scores (so that a new
    point is covered at the level); rank ⌈n·level⌉, one lower here, under-covers."""
    assert conformal_factors({0.8: np.arange(1.0, 11.0)}, floor=0.0) == {0.8: 9.0}
    assert conformal_factors({0.95: np.arange(1.0, 21.0)}, floor=0.0) == {0.95: 20.0}
    assert conformal_factors({0.8: np.arange(1.0, 4.0)}, floor=0.0) == {0.8: 3.0}  # rank capped


def test_seed_deviations_are_scaled_by_the_groups_degrees_of_freedom():
    """A group of m seeds spreads about its own mean by a factor sqrt((m − 1)/m) less than
    the seeds do: each deviation is scaled back by sqrt(m/(m − 1))."""
    dev = seed_spread(np.array([[1.0], [1.0], [2.0], [2.0], [2.0], [3.0]]),
                      np.array([0.0, 0.2, 1.0, 1.3, 1.6, 5.0]))  # fmt: skip
    r2, r32 = np.sqrt(2.0), np.sqrt(1.5)
    np.testing.assert_allclose(dev, [-0.1 * r2, 0.1 * r2, -0.3 * r32, 0.0, 0.3 * r32], atol=1e-15)


def test_calibration_d0_is_the_median_distance_above_0(monkeypatch):
    """d0 = median of the backtest's distances beyond its refits' data (0s left out);
    the factors are the conformal quantiles of the scores over (1 + d/d0)²."""
    scores = np.array([0.5, 0.9, 1.2, 2.0])
    monkeypatch.setattr(
        intervals_mod,
        "calibration_scores",
        lambda *a, **k: {
            "scores": {0.8: scores, 0.95: scores},
            "d": np.array([0.0, 0.1, 0.2, 1.0]),
            "fitted": np.array([3, 3, 4, 4]),
            "thresholds": [1.0],
        },
    )
    t = types.SimpleNamespace(C=np.array([1.0, 2.0, 4.0]), N=None, D=None, conventions={})
    cal = intervals_mod.calibrate(None, t, "C")
    assert cal["d0"] == pytest.approx(0.2)  # the mean of 0.1, 0.2, 1.0 is 0.433
    # scores / (1 + d/0.2)²: 0.5, 0.4, 0.3, 0.056; rank ⌈5·level⌉ of 4 is the largest
    assert cal["factors"] == {"0.8": pytest.approx(0.5), "0.95": pytest.approx(0.5)}


def test_backtest_errors_are_relative_to_the_measured_loss():
    """rel = (pred − L) / L: a prediction of 3 for losses 2 and 4 is 50% and 25% off."""
    m = backtest_metrics({"L": np.array([2.0, 4.0]), "pred": np.array([3.0, 3.0]),
                          "pi": {}, "cpi": {}, "ci": {}})  # fmt: skip
    assert (m["mean_abs_rel_error"], m["max_abs_rel_error"], m["bias"]) == (0.375, 0.5, 0.125)


def test_calibrated_interval_grows_with_the_distance_of_extrapolation():
    from scalinglab.laws.intervals import interval

    rng = np.random.default_rng(5)
    C = np.logspace(17, 19, 20)
    law = ScalingLaw("power-c", bootstrap=0).fit(
        {"C": C, "L": (1.7 + (1e16 / C) ** 0.3) * np.exp(0.01 * rng.standard_normal(20))}
    )
    law.calibration_ = {"by": "C", "x_max": 1e19, "d0": 0.5, "factors": {"0.8": 1.5}}
    new = np.array([1e18, 1e19, 1e19 * np.e])  # inside, at the edge, d = 1 beyond
    pred = law.predict(C=new)
    _, lo, hi = law.predict(C=new, return_ci=True, kind="prediction", level=0.8)
    rlo, rhi = interval(law, pred, None, "prediction", 0.8, calibrate=False)
    ratio = np.log(hi / pred) / np.log(rhi / pred)
    np.testing.assert_allclose(ratio, [1.5, 1.5, 1.5 * 3])  # q (1 + d / d0)
    np.testing.assert_allclose(np.log(pred / lo) / np.log(pred / rlo), [1.5, 1.5, 4.5])
    # as calibrate() stores it now: max(floor, q (1 + d / d0)^power), never below the raw
    law.calibration_.update(power=2.0, floor=1.0, factors={"0.8": 0.5})
    _, lo, hi = law.predict(C=new, return_ci=True, kind="prediction", level=0.8)
    np.testing.assert_allclose(np.log(hi / pred) / np.log(rhi / pred), [1.0, 1.0, 4.5])
    # a raw interval its calibration backtest found too wide (floor 0 at 80%): narrowed
    law.calibration_.update(floors={"0.8": 0.0, "0.95": 1.0})
    _, lo, hi = law.predict(C=new, return_ci=True, kind="prediction", level=0.8)
    np.testing.assert_allclose(np.log(hi / pred) / np.log(rhi / pred), [0.5, 0.5, 4.5])
    with pytest.raises(Exception, match="give C"):
        interval(law, pred, None, "prediction", 0.8)


def test_a_fit_calibrated_by_a_c_column_that_is_not_6nd_needs_c_to_widen(tmp_path):
    """The calibration measured distances in the table's C (a runs table's flops, 30% over
    6ND here) while predict(N, D) read a new run's C as 6ND: the run looked nearer than it
    is and its interval came out narrower than the same run's with C given (found by an
    audit of the intervals). Without C such a fit now says to give it; a table whose C is
    6ND still predicts from N and D alone."""
    rng = np.random.default_rng(3)
    N, D = (a.ravel() for a in np.meshgrid(np.logspace(7, 8.5, 6), np.logspace(8.5, 10, 5)))
    L = chinchilla_law(N, D) * np.exp(0.01 * rng.standard_normal(N.size))
    for ratio in (1.3, 1.0):
        law = ScalingLaw("chinchilla", bootstrap=30, calibrate="C").fit(
            {"N": N, "D": D, "flops": ratio * 6 * N * D, "L": L}
        )
        at = {"N": 8e9, "D": 1.6e11, "check_range": False, "kind": "prediction"}
        _, lo, hi = law.predict(**at, C=ratio * 6 * 8e9 * 1.6e11, return_ci=True)
        if ratio == 1.0:
            assert "C_column" not in law.calibration_
            assert law.predict(**at, return_ci=True)[1:] == (lo, hi)
            continue
        assert law.calibration_["C_column"] == "flops"
        with pytest.raises(ConfigError, match="its column 'flops' counts it, which is not 6ND"):
            law.predict(**at, return_ci=True)
        (tmp_path / "fit.json").write_text(json.dumps(law.to_json()))  # the file keeps it
        with pytest.raises(ConfigError, match="give C"):
            load_fit(tmp_path / "fit.json").predict(**at, return_ci=True)


def test_calibration_scores_say_how_many_rows_predicted_each_run():
    from scalinglab.laws.intervals import calibration_scores

    rng = np.random.default_rng(3)
    C = np.logspace(17, 19, 20)
    t = read_table(
        {"C": C, "L": (1.7 + (1e16 / C) ** 0.3) * np.exp(0.01 * rng.standard_normal(20))}
    )
    bt = calibration_scores(lambda m: ScalingLaw("power-c", bootstrap=0).fit(t.subset(m)), t, "C")
    # thresholds at 50..90% of 20 runs: refits on 10, 12, 14, 16 and 18 runs, each
    # predicting the rest; every score knows the size of the refit that made it
    assert bt["thresholds"] == pytest.approx(C[[9, 11, 13, 15, 17]])
    want = np.repeat([10, 12, 14, 16, 18], [10, 8, 6, 4, 2])
    np.testing.assert_array_equal(bt["fitted"], want)
    assert bt["d"].shape == bt["scores"][0.8].shape == want.shape
    assert (bt["d"] > 0).all()


def test_the_calibration_narrows_only_an_interval_shown_too_wide():
    from scalinglab.laws.intervals import narrowing_floors

    def scores(inside, n=100):  # `inside` of n runs inside the raw interval (score <= 1)
        return np.r_[np.full(inside, 0.5), np.full(n - inside, 2.0)]

    # 80%, 100 runs: one standard error is 4 points; narrowing needs more than 88 inside
    assert narrowing_floors({0.8: scores(87)})[0.8] == 1.0
    assert narrowing_floors({0.8: scores(89)})[0.8] == 0.0
    # 95%, 100 runs: 2 s.e. = 4.36 points, so even 99 inside is not enough
    assert narrowing_floors({0.95: scores(99)})[0.95] == 1.0
    assert narrowing_floors({0.95: scores(100)})[0.95] == 0.0
    # 20 runs (a small table's backtest): 80% needs more than 97.9% inside, i.e. all
    assert narrowing_floors({0.8: scores(19, n=20)})[0.8] == 1.0
    assert narrowing_floors({0.8: scores(20, n=20)})[0.8] == 0.0


def test_calibration_on_the_fits_own_rows_covers_epoch_by_compute():
    path = shared_file(EPOCH)
    s = {"bootstrap": 0, "drop_highest": 5, "calibrate": "C"}
    t = read_for(path, ["chinchilla"], s)
    r = rolling_backtest("chinchilla", t, by="C", fracs=(0.5, 0.7, 0.9), settings=s)
    for row in r["thresholds"]:  # each fit calibrated below its own threshold
        assert row["threshold"] < 1e21
    o = r["overall"]
    assert o["n"] == 120 + 72 + 24
    raw, cal = o["coverage"], o["calibrated_coverage"]
    # noise alone: far too narrow; calibrated on the rows below each threshold (five
    # calibration thresholds), growing with the square of the distance: near 95% and 80%
    # (three thresholds: 95.8%, 82.4%; linear growth: 94.4%, 75.5%)
    assert raw["0.95"] < 0.75
    assert cal["0.95"] == pytest.approx(0.968, abs=0.01)  # 209 of 216
    assert cal["0.8"] == pytest.approx(0.884, abs=0.01)  # 191 of 216


def test_auto_is_chosen_inside_each_training_part():
    path = shared_file(EPOCH)
    s = {"bootstrap": 0, "drop_highest": 5}
    t = read_for(path, ["chinchilla", "kaplan", "power-c", "nd-interaction"], s)
    # margin 0: the lowest inner error wins (with the default 60%: chinchilla at both
    # thresholds, 1.049%)
    r = rolling_backtest("auto", t, by="C", fracs=(0.7, 0.9), settings=s, margin=0.0)
    assert [row["law"] for row in r["thresholds"]] == ["chinchilla", "power-c"]
    last = r["thresholds"][-1]
    train = t.subset(~held_out(t, "C", last["threshold"]))
    assert last["law"] == choose_law(train, by="C", fracs=(0.7, 0.9), settings=s, margin=0.0)[0]
    # the whole procedure's error, choice included: 96 runs, 1.09%
    assert r["overall"]["n"] == 96
    assert r["overall"]["mean_abs_rel_error"] == pytest.approx(0.0109, abs=0.0003)


def test_auto_keeps_chinchilla_unless_another_law_wins_by_the_margin():
    from scalinglab.laws.backtest import AUTO_MARGIN

    def rows(**errs):
        return [{"law": k.replace("_", "-"), "mean_abs_rel_error": v} for k, v in errs.items()]

    edge = 1 - AUTO_MARGIN  # another law must be below this share of chinchilla's error
    assert pick(rows(chinchilla=0.010, kaplan=0.0101 * edge)) == "chinchilla"
    assert pick(rows(chinchilla=0.010, kaplan=0.0099 * edge, nd_interaction=0.0098 * edge)) == (
        "nd-interaction"
    )  # the lowest of those that pass
    assert pick(rows(chinchilla=0.010, kaplan=0.008), margin=0.0) == "kaplan"
    failed = [{"law": "chinchilla", "error": "no fit"}, *rows(kaplan=0.02, power_c=0.03)]
    assert pick(failed) == "kaplan"
    assert pick([{"law": "chinchilla", "error": "no fit"}]) is None
    # where data repeats (data-constrained is a candidate), it is the law kept
    assert pick(rows(chinchilla=0.010, data_constrained=0.012)) == "data-constrained"
    assert pick(rows(chinchilla=0.010, data_constrained=0.030)) == "chinchilla"
    assert pick(rows(chinchilla=0.010, data_constrained=0.012), prefer="chinchilla") == (
        "chinchilla"
    )


def test_epoch_backtest_by_compute():
    path = shared_file(EPOCH)
    s = {"bootstrap": 0, "drop_highest": 5}
    t = read_for(path, ["chinchilla"], s)
    r = rolling_backtest("chinchilla", t, by="C", settings=s)
    # thresholds at 50..90% of the 240 rows, whole budgets: 120, 96, 72, 48, 24 predicted
    assert [row["n"] for row in r["thresholds"]] == [120, 96, 72, 48, 24]
    assert r["overall"]["n"] == 360
    assert r["overall"]["mean_abs_rel_error"] == pytest.approx(0.0094, abs=0.0004)
    # the residual noise alone under-covers the larger runs of this table
    cov = r["overall"]["coverage"]
    assert cov["0.95"] < 0.8
    f = r["pooled_factors"]
    assert f["0.8"] > 1.5 and f["0.95"] > 1.3


def test_backtest_text_says_the_intervals_hold_the_noise_alone_without_a_bootstrap(capsys):
    """--bootstrap 0 printed the intervals as '(bootstrap + run-to-run noise)': they hold no
    bootstrap draw, only the noise around each point fit (so they cover less)."""
    from scalinglab.cli.backtest import render

    argv = ["backtest", str(shared_file(EPOCH)), "--bootstrap", "0", "--train-fracs", "0.8"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "prediction intervals (run-to-run noise alone: --bootstrap 0)\n" in out
    assert main([*argv, "--json"]) == 0
    bt = json.loads(capsys.readouterr().out)
    bt["settings"] = {}  # the default: a bootstrap
    assert "prediction intervals (bootstrap + run-to-run noise)\n" in render(bt)


@pytest.mark.parametrize(
    "law, by, value", [("chinchilla", "C", "nan"), ("chinchilla", "N", "inf"),
                       ("kaplan", "D", "-1e9"), ("task-power", "C", "0")],
)  # fmt: skip
def test_backtest_refuses_a_threshold_that_is_no_value_of_by(tmp_path, capsys, law, by, value):
    """--thresholds nan (or inf, -1) fitted nothing and said 'no threshold could be fitted',
    as if the table were to blame."""
    path = tmp_path / "runs.csv"
    path.write_text("N,D,loss\n1e7,1e9,3.5\n2e7,1e9,3.3\n4e7,2e9,3.1\n8e7,2e9,2.95\n")
    argv = ["backtest", str(path), "--law", law, "--by", by, "--bootstrap", "0"]
    assert main([*argv, "--thresholds", "1e17", value]) == 2
    shown = f"{float(value):g}"
    assert capsys.readouterr().err == (
        f"error: --thresholds must be finite numbers > 0 (values of {by}, --by {by}), got {shown}\n"
    )


def test_thresholds_that_fit_nothing_are_named_with_the_tables_range(tmp_path, capsys):
    """'no threshold could be fitted (leaves no rows to fit or to predict)' named neither
    the threshold nor where thresholds must fall."""
    path = tmp_path / "runs.csv"
    path.write_text("N,D,loss\n1e7,1e9,3.5\n2e7,1e9,3.3\n4e7,2e9,3.1\n8e7,2e9,2.95\n")
    argv = ["backtest", str(path), "--by", "N", "--bootstrap", "0", "--thresholds", "1e3", "1e30"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: law 'chinchilla': no threshold could be fitted (N > 1e+03, 1e+30: "
        "leaves no rows to fit or to predict); N runs from 1e+07 to 8e+07 in this table\n"
    )  # each reason once, with the thresholds it stopped (it was repeated for each)


@pytest.mark.parametrize("value, shown", [(float("nan"), "nan"), (-1e9, "-1e+09"), (0, "0")])
def test_the_library_backtest_refuses_a_threshold_that_is_no_value(value, shown):
    """rolling_backtest(..., thresholds=[nan]) (and the task laws') fitted nothing and said
    'no threshold could be fitted'; only the CLI checked its flag."""
    N, D = np.array([1e7, 2e7, 4e7, 8e7]), np.array([1e9, 1e9, 2e9, 2e9])
    t = read_table({"N": N, "D": D, "L": np.array([3.5, 3.3, 3.1, 2.95])}, need=("N", "D", "C"))
    says = rf"^thresholds must be finite numbers > 0, got {re.escape(shown)}$"
    with pytest.raises(ConfigError, match=says):
        rolling_backtest("chinchilla", t, by="C", thresholds=[1e17, value])
    law = ScalingLaw("task-power", metric_col="acc", bootstrap=0)
    data = {"flops": 6 * N * D, "acc": np.array([0.3, 0.4, 0.5, 0.6])}
    with pytest.raises(ConfigError, match=says):
        tasklaws.rolling_backtest(law, data, thresholds=[value])
    with pytest.raises(ConfigError, match=r"^thresholds must be finite numbers > 0, got 'C'$"):
        rolling_backtest("chinchilla", t, by="C", thresholds="C")


def test_backtest_cli_auto_prints_and_saves_the_candidates(tmp_path, capsys):
    path = shared_file(EPOCH)
    out = tmp_path / "bt.json"
    argv = [
        "backtest", str(path), "--drop-highest", "5", "--law", "auto", "--bootstrap", "0",
        "--train-fracs", "0.7", "0.9", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "<- chosen" in text and "nd-interaction" in text
    saved = json.loads(out.read_text())
    laws = {r["law"]: r for r in saved["auto"]}
    assert set(laws) == {"chinchilla", "kaplan", "power-c", "nd-interaction"}  # no U column
    chosen = next(r for r in saved["auto"] if r["chosen"])
    assert chosen["law"] == pick(saved["auto"]) == saved["chosen"]
    assert "chinchilla (data-constrained where data repeats) unless another law's" in text
    # the backtest of auto is nested: a law chosen at each threshold, on its rows only
    assert saved["law"] == "auto"
    assert all(r["law"] in laws for r in saved["thresholds"])
    assert laws["kaplan"]["mean_abs_rel_error"] > laws["chinchilla"]["mean_abs_rel_error"]


def test_auto_offers_data_constrained_where_data_repeats():
    rng = np.random.default_rng(3)
    N = np.repeat(np.logspace(7, 8.5, 6), 4)
    U = np.full_like(N, 2e9)
    D = np.tile([1e9, 2e9, 8e9, 3e10], 6)
    L = chinchilla_law(N, np.minimum(D, U) * (1 + 0.3 * np.log1p(np.maximum(D / U - 1, 0))))
    L = L * np.exp(0.003 * rng.standard_normal(L.size))
    t = read_table({"N": N, "D": D, "U": U, "L": L}, need=("N", "D", "C", "U"))
    _, rows = choose_law(t, fracs=(0.75,), settings={})
    assert "data-constrained" in {r["law"] for r in rows}
    t2 = read_table({"N": N, "D": D, "U": D * 2, "L": L}, need=("N", "D", "C", "U"))
    _, rows2 = choose_law(t2, fracs=(0.75,), settings={})
    assert "data-constrained" not in {r["law"] for r in rows2}


def test_where_comparisons_and_min_over(tmp_path):
    path = shared_file(EPOCH)
    every = read_csv(path)
    small = read_csv(path, where=["N<1.7e9"])
    assert len(small) == int(np.sum(every.N < 1.7e9)) > 0
    big = read_csv(path, where=["Training FLOP>=1e20", "N<1.7e9"])
    assert len(big) == int(np.sum((every.C >= 1e20) & (every.N < 1.7e9)))
    rows = [
        {"N": 1e8, "D": 1e9, "lr": lr, "batch_size": bs, "loss": 3.0 + abs(lr - 1e-3) * 100 + bs}
        for lr in (3e-4, 1e-3, 3e-3)
        for bs in (0.0, 0.01)
    ] + [{"N": 2e8, "D": 1e9, "lr": 1e-3, "batch_size": 0.0, "loss": 2.9}]
    t = read_table(rows, need=("N", "D", "L"), min_over=["lr", "batch_size"])
    assert sorted(t.L) == [2.9, 3.0]
    with pytest.raises(Exception, match="min_over 'wd': no such column"):
        read_table(rows, need=("N", "D", "L"), min_over=["wd"])
    # a sweep rounds D to whole batches per batch size: D 0.05% apart is one cell (exact
    # equality kept every row, and the fit took the worse batch sizes' losses with it)
    rounded = [r | {"D": 1e9 * (1 + 5e-4 * r["batch_size"] * 100)} for r in rows]
    assert sorted(read_table(rounded, need=("N", "D", "L"), min_over=["lr", "batch_size"]).L) == [
        2.9, 3.0]  # fmt: skip
    with pytest.raises(DataError, match=r"min_over lr: every \(N, D\) cell holds one row, so "
                       r"there is no minimum to take \(values within 1% of each other are one"):  # fmt: skip
        read_table([r for r in rows if r["lr"] == 1e-3 and r["batch_size"] == 0.0],
                   need=("N", "D", "L"), min_over=["lr"])  # fmt: skip
    with pytest.raises(DataError, match=r"min_over: an empty column name in \[''\]"):
        read_table(rows, need=("N", "D", "L"), min_over=[""])
    with pytest.raises(Exception, match="is not a number"):
        read_csv(path, where=["N<big"])


def test_curvature_warns_without_bootstrap():
    path = shared_file(EPOCH)
    law = ScalingLaw("chinchilla", bootstrap=0, drop_highest=5).fit(path)
    assert law.warnings_ == []
    # the asymptotic stderr of alpha from the curvature: near Epoch's bootstrap (~0.014)
    assert 0.005 < law.curvature_stderr_["alpha"] < 0.03
    # three decades of N at one D: beta is not identifiable, flagged with no bootstrap
    rng = np.random.default_rng(4)
    N = np.logspace(7, 9, 12)
    D = np.full_like(N, 1e10) * np.exp(0.01 * rng.standard_normal(12))
    L = chinchilla_law(N, D) * np.exp(0.003 * rng.standard_normal(12))
    law = ScalingLaw("chinchilla", bootstrap=0).fit({"N": N, "D": D, "L": L})
    assert any("poorly determined" in w or "nearly flat" in w for w in law.warnings_)


def test_envelope_report_has_no_zero_objective(tmp_path):
    sizes, tokens = np.logspace(7, 9, 8), np.logspace(8, 11, 12)
    path = chinchilla_curves_csv(tmp_path / "curves.csv", sizes, tokens, "run_id,N,D,C,loss")
    law = ScalingLaw("envelope", bootstrap=50).fit(path)
    assert law.objective_ is None
    text = law.report()
    assert "objective: -" in text
    # k_N's spread in log10: half the central 68% of the draws' log10 (their standard
    # deviation before; a few runaway resamples blew that up)
    draws = np.log10(law.samples_["k_N"])
    lo, hi = np.percentile(draws[np.isfinite(draws)], [15.865525, 84.134475])
    dex = (hi - lo) / 2
    assert law.stderr_log10_["k_N"] == pytest.approx(dex)
    assert f"{dex:.3g} dex" in text


def test_fit_law_auto_fits_the_chosen_law_and_saves_the_table(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = ["params,tokens,loss"]
    for N in np.logspace(7, 9, 5):
        for D in np.logspace(9, 11, 5):
            rows.append(f"{N},{D},{chinchilla_law(N, D) * np.exp(0.005 * rng.standard_normal())}")
    path = tmp_path / "runs.csv"
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "fit.json"
    argv = ["fit", str(path), "--law", "auto", "--bootstrap", "0", "--out", str(out)]
    assert main(argv) == 0
    assert "<- chosen" in capsys.readouterr().out
    fit = json.loads(out.read_text())
    errs = {r["law"]: r["mean_abs_rel_error"] for r in fit["auto"]}
    # the data follow Chinchilla's law: it wins, Kaplan's form (no floor) is far behind
    assert fit["law"] == "chinchilla" == min(errs, key=errs.get)
    assert errs["kaplan"] > 3 * errs["chinchilla"]
    assert fit["params"]["alpha"] == pytest.approx(0.34, abs=0.05)


def checkpoints_csv(tmp_path):
    """Curves of 15 runs (5 sizes x 1e9, 1e10, 1e11 tokens), 4 checkpoints each, on the law."""
    rows = ["run,params,tokens,loss"]
    for i, N in enumerate(np.logspace(7, 9, 5)):
        for j, T in enumerate((1e9, 1e10, 1e11)):
            for f in (0.25, 0.5, 0.75, 1.0):
                rows.append(f"r{i}-{j},{N},{f * T},{chinchilla_law(N, f * T)}")
    path = tmp_path / "ckpts.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_backtest_run_col_holds_out_whole_runs(tmp_path, capsys):
    path = checkpoints_csv(tmp_path)
    out = tmp_path / "bt.json"
    argv = ["backtest", str(path), "--by", "D", "--run-col", "run", "--bootstrap", "0",
            "--train-fracs", "0.5", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    (t,) = json.loads(out.read_text())["thresholds"]
    # D's median (5e9) holds out every run of 1e10 and 1e11 tokens: 10 runs, 40 rows,
    # their early checkpoints (2.5e9 tokens and up) included
    assert t["threshold"] == pytest.approx(5e9) or t["threshold"] == pytest.approx(7.5e9)
    assert t["n"] == 40 and t["n_train"] == 20
    # the data are the law itself: the backtest predicts them almost exactly
    assert t["mean_abs_rel_error"] < 1e-3


def test_backtest_run_col_counts_each_split_of_whole_runs_once(tmp_path, capsys):
    """Thresholds at 0.6 and 0.9 of the rows by D (D = 1e10, 7.5e10) hold out the same
    whole runs (those of 1e11 tokens): the split was fitted twice and its rows counted
    twice in 'all' (by default four of the five thresholds were this split)."""
    path = checkpoints_csv(tmp_path)
    out = tmp_path / "bt.json"
    argv = ["backtest", str(path), "--by", "D", "--run-col", "run", "--bootstrap", "0",
            "--train-fracs", "0.6", "0.9", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    bt = json.loads(out.read_text())
    splits = [(t["n_train"], t["n"]) for t in bt["thresholds"]]
    assert len(set(splits)) == len(splits)  # no split twice
    assert splits == [(40, 20)]  # the runs of 1e9 and 1e10 tokens fit, 1e11's predicted
    assert bt["thresholds"][0]["threshold"] == pytest.approx(1e10)  # the lower one
    assert bt["overall"]["n"] == 20
    # given as --thresholds, the second is skipped, saying why
    argv[argv.index("--train-fracs") : argv.index("--out")] = ["--thresholds", "1e10", "7.5e10"]
    assert main(argv) == 0
    bt = json.loads(out.read_text())
    assert [(t["n_train"], t["n"]) for t in bt["thresholds"]] == [(40, 20)]
    assert bt["skipped"] == [{"threshold": 7.5e10, "why": "holds out the same runs as D > 1e+10"}]


@pytest.mark.parametrize("frac", ["0", "1", "1.5", "nan"])
def test_backtest_refuses_a_train_frac_naming_the_flag(tmp_path, capsys, frac):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss\n1e7,1e9,3\n1e8,1e10,2.5\n")
    assert main(["backtest", str(path), "--bootstrap", "0", "--train-fracs", frac]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --train-fracs {float(frac):g}: a share of the rows must be in (0, 1)"


def test_a_threshold_that_leaves_no_residual_is_skipped_not_a_zero_width_interval():
    """A quickstart's GPT sweep backtested by C: its lowest threshold left 5 rows for
    chinchilla's 5 parameters, residuals of 0, prediction intervals of 0 width, and the
    printed widening that would have covered them was x9.6e13."""
    rng = np.random.default_rng(0)
    d = grid_table(chinchilla_law, np.array([1e6, 2e6, 4e6, 8e6]), np.array([2e7, 7e7]), 0.01, rng)
    d = {k: v[:7] for k, v in d.items()}  # 7 runs, distinct C
    t = read_table(d)
    c = np.sort(t.C)
    s = {"bootstrap": 20, "seed": 0}
    r = rolling_backtest("chinchilla", t, by="C", thresholds=[c[4], c[5]], settings=s)
    assert [x["threshold"] for x in r["thresholds"]] == [c[5]]  # 6 rows for 5 parameters
    assert r["skipped"] == [{"threshold": c[4], "why": "5 rows fit 5 parameters: no residual "
                             "is left to measure the run-to-run noise"}]  # fmt: skip
    assert all(np.isfinite(f) and f < 1e3 for f in r["pooled_factors"].values())


def test_a_new_runs_interval_holds_the_fits():
    """A new run's interval adds its noise to the fit's: it is never narrower than the fit's
    own interval (the report showed [0.9998, 1.515] beside the fit's [0.9988, 1.516]: the
    Monte Carlo draws of a skewed noise pool). Here a pool of noise >= 0 lifts the lower
    end of the convolution above the fit's at 21 of 50 inputs, before the fix."""
    rng = np.random.default_rng(0)
    N = np.geomspace(1e6, 1e9, 30)
    D = 20 * N * np.exp(rng.uniform(-1.5, 1.5, 30))
    true = ScalingLaw.from_params("chinchilla", E=1.7, A=400.0, B=2000.0, alpha=0.34, beta=0.28)
    L = true.predict(N=N, D=D) * (1 + 0.01 * rng.standard_normal(30))
    law = ScalingLaw("chinchilla", bootstrap=100).fit({"N": N, "D": D, "loss": L})
    pool = np.linspace(0, 0.02, len(law.noise_["quantiles"])) ** 4 / 0.02**3
    law.noise_["quantiles"] = list(pool)
    n = np.geomspace(1e9, 1e12, 50)
    _, clo, chi = law.predict(N=n, D=20 * n, return_ci=True)
    _, plo, phi = law.predict(N=n, D=20 * n, return_ci=True, kind="prediction")
    assert (plo <= clo).all() and (phi >= chi).all()
    assert (phi > chi).all()  # the noise widens the upper end


def auto_table():
    rng = np.random.default_rng(0)
    return read_table(grid_table(chinchilla_law, np.logspace(7, 9, 4), np.logspace(9, 11, 4),
                                 0.005, rng), need=("N", "D", "C"))  # fmt: skip


def test_auto_gives_each_candidate_the_settings_it_uses(monkeypatch, tmp_path, capsys):
    """`--law auto --no-floor` gave floor=False to every candidate and then to the law
    chosen: chinchilla refused it after every backtest had run."""
    import scalinglab.laws.backtest as bt

    seen = {}

    def scored(law, t, *, settings, **kw):  # the candidates' backtests, at no cost
        seen[law] = settings
        err = 0.01 if law == "chinchilla" else 0.02
        o = {"n": 4, "mean_abs_rel_error": err, "max_abs_rel_error": err, "bias": 0.0}
        return {"overall": o, "thresholds": [{}]}

    monkeypatch.setattr(bt, "rolling_backtest", scored)
    chosen, _ = choose_law(auto_table(), settings={"floor": False, "bootstrap": 0})
    assert chosen == "chinchilla" and seen["power-c"]["floor"] is False
    assert all("floor" not in s for law, s in seen.items() if law != "power-c")
    path = tmp_path / "runs.csv"
    t = auto_table()
    path.write_text(
        "N,D,loss\n" + "".join(f"{n},{d},{lo}\n" for n, d, lo in zip(t.N, t.D, t.L, strict=True))
    )
    assert main(["fit", str(path), "--law", "auto", "--no-floor", "--bootstrap", "0"]) == 0
    assert "<- chosen" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("law", "settings", "message"),
    [
        ("chinchilla", {"curvature": "shared"},
         "curvature shared does not apply to law 'chinchilla' (it applies to isoflop)"),
        ("power-c", {"lr_fill": "previous"},
         "lr_fill previous does not apply to law 'power-c' (it applies to multi-power, "
         "lr-annealing)"),
        ("auto", {"tie": ["alpha=beta"]},
         "tie alpha=beta does not apply to any candidate of law auto on <dict> (chinchilla, "
         "kaplan, power-c, nd-interaction)"),
        ("auto", {"chance": 0.5},
         "chance 0.5 does not apply to any candidate of law auto on <dict> (chinchilla, "
         "kaplan, power-c, nd-interaction)"),
    ],
)  # fmt: skip
def test_backtests_refuse_a_setting_their_laws_do_not_use(law, settings, message):
    """rolling_backtest fitted from_settings: a setting the law cannot use was ignored
    (curvature) or refused at every threshold's fit; `--law auto` tried every candidate
    before the chosen law refused it."""
    t = auto_table()
    with pytest.raises(ConfigError) as exc:
        rolling_backtest(law, t, settings={"bootstrap": 0, **settings})
    assert str(exc.value) == message
    if law == "auto":
        with pytest.raises(ConfigError):
            choose_law(t, settings=settings)


def test_the_stderr_is_not_blown_up_by_runaway_refits():
    """A few bootstrap refits that ran off to extreme values (alpha at 40) made the
    standard deviation, the ± beside each parameter, many times the interval's width."""
    rng = np.random.default_rng(0)
    alpha = np.concatenate([0.34 + 0.01 * rng.standard_normal(990), np.full(10, 40.0)])
    k_N = np.concatenate([10 ** (0.3 * rng.standard_normal(990)), np.full(10, 1e30)])
    law = ScalingLaw("isoflop")
    law.set_uncertainty({"alpha": alpha, "k_N": k_N})
    lo, hi = law.ci_["alpha"]
    assert law.stderr_["alpha"] == pytest.approx(0.01, rel=0.1)
    assert law.stderr_["alpha"] < (hi - lo) / 2
    assert law.stderr_log10_["k_N"] == pytest.approx(0.3, rel=0.1)
    # normal draws: the standard deviation
    law.set_uncertainty({"alpha": alpha[:990]})
    assert law.stderr_["alpha"] == pytest.approx(np.std(alpha[:990]), rel=0.05)


@pytest.mark.parametrize("width", [0.504, 0.5004, 0.62])
def test_a_wide_interval_never_reads_as_equal_to_its_threshold(width):
    """An interval 50.4% of its value read '50% of its value (more than 50%)'."""
    from types import SimpleNamespace

    from scalinglab.laws import warn

    law = SimpleNamespace(params_={"alpha": 0.5}, ci_={"alpha": [0.3, 0.3 + 0.5 * width]},
                          settings={"ci_level": 0.95}, law="chinchilla")  # fmt: skip
    z = 1.96
    se = {"alpha": width * 0.5 / (2 * z)}
    for msg in (
        *warn.exponents(law, ["alpha"]),
        *warn.curvature_warnings(se, 1.0, law.params_, ["alpha"], z=z),
    ):
        shown = re.search(r"is ([\d.]+)% of (its|the) value", msg)
        assert shown, msg
        assert float(shown.group(1)) > 100 * warn.WIDE, msg
        assert float(shown.group(1)) == pytest.approx(100 * width, abs=0.05), msg


def test_thresholds_by_c_cut_between_isoflop_budgets_where_the_table_has_them():
    """`backtest --by C` and `calibrate = "C"` put thresholds at shares of the rows: with
    a run's C a little off its budget (steps rounded), one cut a budget's profile in two
    (the study's report already cut between budgets)."""
    from scalinglab.laws.intervals import thresholds_for

    budget = np.repeat([1e18, 1e19, 1e20], 5)
    N = np.tile(np.geomspace(1e7, 1e9, 5), 3)
    C = budget * (1 + np.tile([-0.01, 0.004, -0.003, 0.008, 0.0], 3))
    cols = {"budget": budget, "params": N, "flops": C, "tokens": C / (6 * N),
            "loss": chinchilla_law(N, C / (6 * N))}  # fmt: skip
    t = read_table(cols)
    cuts = thresholds_for(t, "C", (0.5, 0.6, 0.7))
    assert cuts and all(
        len({C[i] > thr for i in np.flatnonzero(budget == b)}) == 1 for thr in cuts for b in budget
    )
    assert (
        t.points_sha256()
        == read_table({k: v for k, v in cols.items() if k != "budget"}).points_sha256()
    )
    tokens = read_table({**cols, "budget_kind": ["tokens"] * 15})  # budgets in D: no cuts by them
    assert tokens.budget is None
    assert len(thresholds_for(tokens, "C", (0.5, 0.6, 0.7))) == 3


def test_a_curvature_singular_to_inv_is_no_traceback(monkeypatch):
    """A valid 2-budget study (3 IsoFLOP vertices for its frontier) ended, after all its runs,
    in a LinAlgError traceback from the curvature's inverse, and so did `report` on it: the
    correlation's eigenvalues were > 0 in float while inv found it singular. That is the
    'singular curvature' answer ({}, inf), as when an eigenvalue is 0."""
    from scalinglab.laws import warn

    x = np.linspace(0.0, 1.0, 6)

    def logpred(th):
        return th[:, :1] + th[:, 1:2] * x[None, :]

    def natural(th):
        return {"a": th[:, 0], "b": th[:, 1]}

    theta, logL = np.array([1.0, -0.5]), 1.0 - 0.5 * x + 0.01 * np.sin(7 * x)
    se, cond = warn.curvature(logpred, natural, theta, logL, ["a", "b"])
    assert set(se) == {"a", "b"} and np.isfinite(cond)  # the well-posed case, as before

    def singular(a):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(np.linalg, "inv", singular)
    assert warn.curvature(logpred, natural, theta, logL, ["a", "b"]) == ({}, np.inf)


def test_the_noise_of_a_small_table_is_its_scaled_residuals_themselves():
    """The noise was stored as 1001 quantiles interpolated between the residuals, which
    gives the extreme ones half their weight: at 12 rows the pool spread 18% less than
    the residuals (noise.sigma 0.0152, the pool 0.0124), so prediction intervals were
    narrower than the model docs/laws.md states. Now the pool is the scaled residuals."""
    rng = np.random.default_rng(8)
    N = np.repeat(np.logspace(7, 9, 4), 3)
    D = N * np.tile([5.0, 20.0, 80.0], 4)
    L = (1.8 + 400 / N**0.34 + 2000 / D**0.37) * np.exp(rng.normal(0, 0.01, N.size))
    law = ScalingLaw("power-c", bootstrap=0).fit({"C": 6 * N * D, "L": L})
    r = np.log(L) - np.log(law.predict(C=6 * N * D))
    n, P = len(L), 3
    scaled = np.sort((r - np.median(r)) * np.sqrt(n / (n - P)))
    assert law.noise_["quantiles"] == pytest.approx(list(scaled), abs=1e-12)
    assert np.std(law.noise_["quantiles"]) == pytest.approx(law.noise_["sigma"], rel=1e-12)
    v, lo, hi = law.predict(C=1e19, return_ci=True, kind="prediction")
    # no bootstrap: the point plus one residual, its 2.5th and 97.5th percentiles
    want = np.percentile(
        np.log(v) + scaled[np.random.default_rng(0).integers(0, n, 400_000)], [2.5, 97.5]
    )
    assert np.log([lo, hi]) == pytest.approx(want, abs=2e-3)


# Known answers for mutations of laws/estimator.py's intervals that every test passed,
# or that only a file of minutes caught (a mutation audit): each fails on its mutation.


@pytest.fixture(scope="module")
def chin_fit():
    from tests.laws.synth import chinchilla_law, grid_table

    t = grid_table(chinchilla_law, np.geomspace(1e7, 1e9, 5), np.geomspace(1e8, 1e10, 5),
                   0.005, np.random.default_rng(0))  # fmt: skip
    return ScalingLaw("chinchilla", bootstrap=60, seed=1).fit(t)


def test_ci_is_the_central_percentile_interval_of_the_draws(chin_fit):
    """ES1 (estimator.py:555, q without /2): the 95% interval was the 5th..95th percentile."""
    for level, law in ((0.95, chin_fit), (0.8, ScalingLaw.from_settings("chinchilla", {}))):
        if law is not chin_fit:  # the same draws, at another level
            law.settings["ci_level"] = level
            law.set_uncertainty(chin_fit.samples_)
        for k in ("alpha", "beta", "E"):
            v = chin_fit.samples_[k][np.isfinite(chin_fit.samples_[k])]
            tail = 100 * (1 - level) / 2
            assert law.ci_[k] == pytest.approx(
                list(np.percentile(v, [tail, 100 - tail])), rel=1e-12
            )


def test_isoflop_stderr_log10_is_in_decades():
    """ES3 (estimator.py:576, np.log for np.log10): k_N's spread in dex, the half-width of
    the central 68.27% of log10 of its draws (it was 2.303x that, in nepers)."""
    from tests.laws.test_isoflop_envelope import isoflop_table

    law = ScalingLaw("isoflop", bootstrap=40).fit(isoflop_table(np.random.default_rng(0)))
    v = np.log10(law.samples_["k_N"][np.isfinite(law.samples_["k_N"])])
    lo, hi = np.percentile(v, [15.865525393145708, 84.13447460685429])
    assert law.stderr_log10_["k_N"] == pytest.approx((hi - lo) / 2, rel=1e-9)


def test_noiseless_data_keeps_its_zero_width_interval():
    """ES2 (estimator.py:562, v.size < ok.size -> <=): every resample of exact data refits
    the true alpha; the mutant took the equal finite draws for an unfittable parameter
    and dropped every interval (samples_ None)."""
    from tests.laws.synth import chinchilla_law, grid_table

    t = grid_table(chinchilla_law, np.geomspace(1e7, 1e9, 5), np.geomspace(1e8, 1e10, 5),
                   0.0, np.random.default_rng(0))  # fmt: skip
    law = ScalingLaw("chinchilla", bootstrap=10, seed=1).fit(t)
    assert law.flat_draws_ == []
    assert law.ci_["alpha"] == pytest.approx([0.34, 0.34], abs=1e-9)


def test_calibrated_prediction_interval_reads_c_as_6nd_from_n_and_d():
    """ES14 (estimator.py:826, C = N·D for 6ND): from N and D alone the interval's widening
    was read at a C 6x too small ([1.365, 3.623] for [0.752, 4.365])."""
    from tests.laws.synth import chinchilla_law, grid_table

    t = grid_table(chinchilla_law, np.geomspace(1e7, 1e9, 5), np.geomspace(1e8, 1e10, 5),
                   0.02, np.random.default_rng(0))  # fmt: skip
    law = ScalingLaw("chinchilla", bootstrap=20, seed=1, calibrate="C").fit(t)
    assert law.calibration_["d0"] > 0
    n, d = 1e10, 2e11  # beyond the fitted runs, where the widening grows with C
    by_nd = law.predict(N=n, D=d, return_ci=True, kind="prediction")
    by_c = law.predict(N=n, D=d, C=6 * n * d, return_ci=True, kind="prediction")
    assert by_nd == pytest.approx(by_c, rel=1e-12)


def test_data_constrained_calibration_takes_c_as_6nd():
    """ES4 (estimator.py:293, C = N·D): the calibration's x_max was 6x too small, and a
    prediction interval from N, D, U was refused as if the C column were not 6ND."""
    from tests.laws.test_constrained import known_runs

    runs = known_runs()
    tab = {k: np.array([r[i] for r in runs]) for i, k in enumerate("NDUL")}
    tab["L"] = tab["L"] * np.exp(0.01 * np.random.default_rng(0).standard_normal(len(runs)))
    law = ScalingLaw("data-constrained", bootstrap=20, calibrate="C", tie=["alpha=beta"],
                     fix=["A=400", "B=1200", "E=1.8", "alpha=0.34"]).fit(tab)  # fmt: skip
    assert law.calibration_["x_max"] == pytest.approx(6 * np.max(tab["N"] * tab["D"]))
    _, lo, hi = law.predict(N=1e10, D=4e11, U=1e11, return_ci=True, kind="prediction")
    assert lo < hi


def _law(v, ci=None):
    return types.SimpleNamespace(params_={"alpha": v}, ci_={"alpha": ci} if ci else {},
                           settings={"ci_level": 0.95}, law="power-c")  # fmt: skip


def test_an_exponent_of_zero_is_warned_of():
    """an exponent at 0 (flat loss) is as bad as a negative one (the doc: 'at or below 0')."""
    (w,) = warn.exponents(_law(0.0), ["alpha"])
    assert w.startswith("alpha is 0 <= 0")


def test_an_interval_60_percent_of_the_exponent_is_wide():
    """the interval's full width (0.30 of 0.5: 60%) is compared with WIDE, not half of it."""
    (w,) = warn.exponents(_law(0.5, [0.35, 0.65]), ["alpha"])
    assert "is 60% of its value 0.5" in w
    assert warn.exponents(_law(0.5, [0.4, 0.6]), ["alpha"]) == []  # 40%: not wide


def test_curvature_stderr_is_the_ols_standard_error_of_a_line():
    """for log L = a + b x the curvature's stderr is the textbook OLS one, sigma^2 =
    RSS / (n - 2) (closed form), not RSS / n."""
    x = np.linspace(0.0, 1.0, 8)
    y = 1.0 - 0.5 * x + 0.02 * np.array([1, -1, 2, 0, -2, 1, -1, 0.5])
    b, a = np.polyfit(x, y, 1)
    rss = np.sum((y - a - b * x) ** 2)
    se_b = math.sqrt(rss / (len(x) - 2) / np.sum((x - x.mean()) ** 2))
    se, _ = warn.curvature(lambda th: th[:, :1] + th[:, 1:2] * x[None, :],
                           lambda th: {"a": th[:, 0], "b": th[:, 1]},
                           np.array([a, b]), y, ["a", "b"])  # fmt: skip
    assert se["b"] == pytest.approx(se_b, rel=1e-4)


def test_predict_warns_twenty_times_below_the_smallest_fitted():
    """BELOW is 10: an N 20x below the smallest fitted is named (units slip)."""
    msg = warn.beyond_data({"N": [1e8, 1e9]}, [("N", "N", [5e6])])
    assert msg == "predict: N=5e+06 is 20x below the smallest N fitted (1e+08); check the units"


def test_a_floor_above_a_thousandth_of_the_smallest_loss_is_not_at_zero():
    """E is 'at its limit 0' only under 0.1% of EVERY fitted loss (the smallest)."""
    predicted = np.array([1.0, 3.0])
    assert warn.floor_at_zero(types.SimpleNamespace(params_={"E": 0.002}), predicted) == []
    assert warn.floor_at_zero(types.SimpleNamespace(params_={"E": 0.0005}), predicted)


def test_a_range_under_a_decade_is_warned_of_and_one_over_it_is_not():
    """The exponent of a variable spanning under 10x is weakly constrained: 5x is said,
    15x is not (nine exact points of one law, so nothing else is warned of)."""
    for span, want in ((5, ["C spans only 5x (less than a decade): its exponent is weakly "
                            "constrained"]), (15, [])):  # fmt: skip
        C = np.geomspace(1e15, span * 1e15, 9)
        law = ScalingLaw("power-c", bootstrap=0).fit({"C": C, "L": 1.7 + 300 * C**-0.15})
        assert law.warnings_ == want


def test_backtest_text_table_shows_the_json_numbers_in_their_columns(tmp_path, capsys):
    """Each row of the backtest's text table (and its 'all' row, and the widening line)
    shows the numbers of `backtest --json` in the columns its header names: fit and
    predicted counts, mean and max |error|, signed bias, coverage in 80% and in 95%."""
    path = runs_csv(tmp_path, n_sizes=6, n_tokens=5, seed=1)
    argv = ["backtest", str(path), "--bootstrap", "0", "--train-fracs", "0.5", "0.7", "0.9"]
    assert main([*argv, "--json"]) == 0
    bt = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    want = [(f"{t['threshold']:.3g}", str(t["n_train"]), t) for t in bt["thresholds"]]
    want.append(("all", None, bt["overall"]))
    for name, n_fit, r in want:
        (line,) = [ln for ln in lines if ln.split() and ln.split()[0] == name]
        cells = line.split()
        if n_fit is not None:
            assert cells[1] == n_fit  # 'fit': the rows fitted
            cells = [cells[0], *cells[2:]]
        assert int(cells[1]) == r["n"]  # 'pred'
        assert float(cells[2].rstrip("%")) == pytest.approx(100 * r["mean_abs_rel_error"], abs=6e-4)
        assert float(cells[3].rstrip("%")) == pytest.approx(100 * r["max_abs_rel_error"], abs=6e-3)
        assert float(cells[4].rstrip("%")) == pytest.approx(100 * r["bias"], abs=6e-3)
        assert cells[5] == f"{r['coverage']['0.8']:.0%}"
        assert cells[6] == f"{r['coverage']['0.95']:.0%}"
    f = bt["pooled_factors"]
    assert f"80% x{f['0.8']:.2f}, 95% x{f['0.95']:.2f}" in "\n".join(lines)
    # the data must tell the columns apart for this test to mean something
    o = bt["overall"]
    assert o["mean_abs_rel_error"] != o["max_abs_rel_error"] and o["bias"] != 0
    assert any(t["n"] != t["n_train"] for t in bt["thresholds"])


def _distinct_c_table(noise=0.01, seed=0):
    """20 runs of distinct C (N on a grid, D = 20N times a jitter), Chinchilla losses."""
    rng = np.random.default_rng(seed)
    N = np.geomspace(1e7, 1e9, 20)
    D = 20 * N * np.exp(rng.uniform(-1.0, 1.0, 20))
    L = chinchilla_law(N, D) * np.exp(noise * rng.standard_normal(20))
    return read_table({"N": N, "D": D, "L": L})


def test_holdout_above_holds_out_only_the_runs_strictly_above_it():
    """docs/laws.md: `--holdout-above FLOPS` holds out runs with C > FLOPS; a run whose C
    equals the threshold is fitted."""
    t = _distinct_c_table()
    C = np.sort(t.C)
    assert len(np.unique(C)) == len(C)
    bt = backtest(ScalingLaw("chinchilla", bootstrap=0), t, holdout_above=float(C[-4]))
    assert bt["n_test"] == 3 and bt["n_train"] == 17
    assert sorted(p["C"] for p in bt["points"]) == pytest.approx(list(C[-3:]))


def test_holdout_inside_ci_is_the_share_of_held_out_losses_inside_their_interval():
    """inside_ci recomputed from the points' own intervals; held-out losses 30% above the
    law are inside none of them."""
    t = _distinct_c_table()
    law = ScalingLaw("chinchilla", bootstrap=40, seed=0)
    bt = backtest(law, t, holdout_frac=0.3)
    want = np.mean([p["predicted_ci"][0] <= p["loss"] <= p["predicted_ci"][1]
                    for p in bt["points"]])  # fmt: skip
    assert bt["inside_ci"] == pytest.approx(want)
    top = np.sort(t.C)[-7] < t.C
    shifted = read_table({"N": t.N, "D": t.D, "L": np.where(top, 1.3 * t.L, t.L)})
    bt = backtest(law, shifted, holdout_frac=0.3)
    assert bt["n_test"] == 6 and bt["inside_ci"] == 0.0


def test_the_pooled_factor_of_a_backtest_whose_intervals_over_cover_is_no_narrowing():
    """`pooled_factors` is the widening that would have made the pooled intervals cover
    (docs/laws.md): where they already cover (noisy small runs, nearly exact large ones),
    it is 1, never a factor below 1."""
    rng = np.random.default_rng(0)
    C = np.geomspace(1e17, 1e20, 40)
    sd = np.where(C < 3e18, 0.05, 0.001)
    L = (1.7 + (1e16 / C) ** 0.3) * np.exp(sd * rng.standard_normal(C.size))
    r = rolling_backtest("power-c", read_table({"C": C, "L": L}), by="C", settings={"bootstrap": 0})
    cov = r["overall"]["coverage"]
    assert cov["0.8"] >= 0.8 and cov["0.95"] >= 0.95
    assert r["pooled_factors"] == {"0.8": 1.0, "0.95": 1.0}


def _nd_grid(seed=3):
    rng = np.random.default_rng(seed)
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 3e8, 6), np.geomspace(3e8, 1e10, 5)))
    L = chinchilla_law(N, D) * np.exp(0.01 * rng.standard_normal(N.size))
    return N, D, L


def test_a_fit_calibrated_by_n_widens_with_the_distance_beyond_its_largest_n():
    """--calibrate N: x_max is the largest fitted N, and the 95% prediction interval at
    10x that N is the raw one scaled by max(floor, q (1 + d/d0)^2), d = log(10)."""
    from scalinglab.laws.intervals import floor_of, interval

    N, D, L = _nd_grid()
    law = ScalingLaw("chinchilla", bootstrap=0, calibrate="N").fit({"N": N, "D": D, "L": L})
    cal = law.calibration_
    assert cal["by"] == "N" and cal["x_max"] == pytest.approx(N.max())
    at = {"N": 10 * N.max(), "D": 6e10, "check_range": False}
    v, _, hi = law.predict(**at, return_ci=True, kind="prediction", level=0.95)
    _, rhi = interval(law, np.atleast_1d(v), None, "prediction", 0.95, calibrate=False)
    want = max(floor_of(cal, 0.95),
               cal["factors"]["0.95"] * (1 + np.log(10) / cal["d0"]) ** cal["power"])  # fmt: skip
    assert np.log(hi / v) / np.log(rhi[0] / v) == pytest.approx(want, rel=1e-9)


def test_a_backtest_by_n_calibrated_by_n_scores_the_intervals_predict_gives():
    """The calibrated coverage of a backtest threshold equals the share of held-out runs
    inside the calibrated intervals of the same fit's predict (growth read from N)."""
    N, D, L = _nd_grid()
    t = read_table({"N": N, "D": D, "L": L})
    thr = float(np.sort(np.unique(N))[3])
    s = {"bootstrap": 0, "calibrate": "N"}
    (row,) = rolling_backtest("chinchilla", t, by="N", thresholds=[thr], settings=s)["thresholds"]
    test = thr < t.N
    law = ScalingLaw("chinchilla", **s).fit(t.subset(~test))
    for lv in (0.8, 0.95):
        _, lo, hi = law.predict(N=t.N[test], D=t.D[test], return_ci=True, kind="prediction",
                                level=lv, check_range=False)  # fmt: skip
        inside = np.mean((lo <= t.L[test]) & (t.L[test] <= hi))
        assert row["calibrated_coverage"][f"{lv:g}"] == pytest.approx(inside)


def test_checkpoints_held_out_inside_the_refits_range_are_at_distance_zero():
    """docs/laws.md: a checkpoint of a run held out whole that lies at or below the
    refit's x_max is no extrapolation, d = 0 (never negative: (1 + d/d0)^2 of a negative d
    shrank, or zeroed, the scale and so inflated its score)."""
    from scalinglab.laws.intervals import calibration_scores

    rng = np.random.default_rng(0)
    run, N, D = [], [], []
    for i, n in enumerate(np.geomspace(1e7, 1e9, 8)):
        for f in (0.1, 0.25, 0.5, 1.0):
            run.append(f"r{i}"), N.append(n), D.append(f * 20 * n)
    N, D = np.array(N), np.array(D)
    L = chinchilla_law(N, D) * np.exp(0.01 * rng.standard_normal(N.size))
    t = read_table({"run": run, "N": N, "D": D, "L": L}, run_cols=["run"])
    assert t.groups is not None
    bt = calibration_scores(
        lambda m: ScalingLaw("chinchilla", bootstrap=0).fit(t.subset(m)), t, "C"
    )
    assert bt["d"].size > 0 and (bt["d"] >= 0).all() and (bt["d"] == 0).any()
    # each held-out row's d is its log-distance beyond the refit's largest C, or 0
    assert bt["d"].max() > 0


def _isoflop_table(budget, N, C):
    return read_table({"budget": budget, "params": N, "flops": C, "tokens": C / (6 * N),
                       "loss": chinchilla_law(N, C / (6 * N))})  # fmt: skip


def test_budget_cuts_take_shares_of_the_rows_not_of_the_budgets():
    """Unequal IsoFLOP profiles (8, 4 and 3 runs): 50% of the 15 rows ends in the first
    budget, 60% and 70% in the second; the cuts are those budgets' largest C."""
    from scalinglab.laws.intervals import thresholds_for

    budget = np.repeat([1e18, 1e19, 1e20], [8, 4, 3])
    N = np.concatenate([np.geomspace(1e7, 1e9, 8), np.geomspace(3e7, 1e9, 4),
                        np.geomspace(1e8, 1e9, 3)])  # fmt: skip
    C = budget * (1 + 0.005 * np.sin(np.arange(15)))
    cuts = thresholds_for(_isoflop_table(budget, N, C), "C", (0.5, 0.6, 0.7))
    assert cuts == pytest.approx([C[budget == 1e18].max(), C[budget == 1e19].max()], rel=1e-12)


def test_no_budget_cut_where_the_next_budgets_runs_reach_below_it():
    """A budget whose runs' C reach below the largest C of the budget under it gets no cut
    there: every cut leaves each budget wholly fitted or wholly predicted."""
    from scalinglab.laws.intervals import budget_cuts

    budget = np.repeat([1.5e18, 2e18, 1e19], 5)
    C = budget * np.tile([0.9, 0.95, 1.0, 1.05, 1.13], 3) * np.repeat([1.0, 0.85, 1.0], 5)
    cuts = budget_cuts(C, budget, (0.3, 0.5, 0.7))
    assert cuts == pytest.approx([C[budget == 2e18].max()], rel=1e-12)
    for thr in cuts:
        for b in np.unique(budget):
            assert len(set(C[budget == b] > thr)) == 1


def test_a_conformal_score_divides_by_the_half_width_on_the_losss_side():
    """An interval skewed upwards (log half-widths 0.05 below, 0.2 above): a loss 0.1
    above the prediction (in log) is inside at half the upper half-width, score 0.5; one
    0.1 below is outside by twice the lower half-width, score 2."""
    L = np.exp([0.1, -0.1, 0.3])
    s = conformal_scores(L, np.ones(3), np.full(3, np.exp(-0.05)), np.full(3, np.exp(0.2)))
    np.testing.assert_allclose(s, [0.5, 2.0, 1.5], rtol=1e-12)


@pytest.mark.parametrize("by", ["N", "D"])
def test_a_calibration_by_n_or_d_widens_with_that_variable(by):
    """calibrate="N" widens a prediction interval with how far N lies beyond the largest
    N fitted, calibrate="D" with D: the variable the widening reads at (N, D) is that
    input itself."""
    rng = np.random.default_rng(6)
    N, D = (a.ravel() for a in np.meshgrid(np.logspace(7, 9, 4), np.logspace(9, 11, 4)))
    L = chinchilla_law(N, D) * np.exp(0.02 * rng.standard_normal(16))
    law = ScalingLaw("chinchilla", bootstrap=50, seed=1, calibrate=by).fit({"N": N, "D": D, "L": L})
    cal = law.calibration_
    assert cal["by"] == by and cal["d0"] > 0
    n, d = 1e11, 1e10  # N 100x beyond the data, D inside it
    x = {"N": n, "D": d}[by]
    expect = np.atleast_1d(x).astype(float)
    assert law.calibration_x((1,), N=n, D=d) == pytest.approx(expect, rel=1e-12)
