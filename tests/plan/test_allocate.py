"""Planning against brute force: the closed-form optimum is the minimum along C = 6ND."""

import json

import numpy as np
import pytest

from scalinglab.errors import ConfigError, FitError
from scalinglab.laws import ScalingLaw
from scalinglab.laws.optimal import percentile_interval
from scalinglab.plan import fixed_params, optimal_allocation, target_loss
from tests.laws.synth import TRUE_CHIN, with_draws


def fitted(params, law="chinchilla"):
    """A ScalingLaw holding known parameters (as load_fit would restore them)."""
    s = ScalingLaw(law)
    s.params_, s.derived_, s.samples_ = dict(params), {}, None
    s.stderr_, s.ci_ = {}, {}
    return s


def test_closed_form_matches_brute_force():
    law = fitted(TRUE_CHIN)
    C = 1e22
    N = np.geomspace(1e8, 1e12, 200001)
    L = law.predict(N=N, D=C / (6 * N))
    best = N[np.argmin(L)]
    opt = optimal_allocation(law, C)
    assert opt["params"] == pytest.approx(best, rel=1e-3)
    assert opt["loss"] == pytest.approx(L.min(), rel=1e-9)
    assert 6 * opt["params"] * opt["tokens"] == pytest.approx(C)
    assert opt["tokens_per_param"] == pytest.approx(opt["tokens"] / opt["params"])


def test_plan_intervals_are_the_central_percentiles_of_the_draws():
    """A 95% interval runs from the 2.5th to the 97.5th percentile of the draws (not the
    5th to the 95th), non-finite draws left out."""
    draws = np.arange(1001.0)[:, None]
    lo, hi = percentile_interval(draws, 0.95)
    assert (lo[0], hi[0]) == (pytest.approx(25.0), pytest.approx(975.0))
    lo, hi = percentile_interval(np.vstack([draws, [[np.inf]], [[np.nan]]]), 0.8)
    assert (lo[0], hi[0]) == (pytest.approx(100.0), pytest.approx(900.0))


def test_target_loss_inverts_the_optimum():
    law = fitted(TRUE_CHIN)
    res = target_loss(law, 2.2)
    assert res["loss"] == pytest.approx(2.2, rel=1e-9)
    assert optimal_allocation(law, res["flops"])["params"] == pytest.approx(res["params"])
    with pytest.raises(FitError, match="unreachable"):
        target_loss(law, 1.6)  # below E = 1.7


def test_fixed_params_at_the_optimum_is_efficient():
    law = fitted(TRUE_CHIN)
    opt = optimal_allocation(law, 1e21)
    at = fixed_params(law, opt["params"], 1e21)
    assert at["excess_loss"] == pytest.approx(0.0, abs=1e-9)
    assert at["compute_efficiency"] == pytest.approx(1.0, rel=1e-6)
    small = fixed_params(law, opt["params"] / 10, 1e21)
    assert small["excess_loss"] > 0 and small["compute_efficiency"] < 1


def test_isoflop_plan_uses_its_power_laws():
    law = fitted(
        {"a": 0.5, "b": 0.5, "k_N": 0.1, "k_D": 1.6667, "a_L": -0.05, "k_L": 30.0}, "isoflop"
    )
    opt = optimal_allocation(law, 1e20)
    assert opt["params"] == pytest.approx(0.1 * 1e10)
    assert opt["loss"] == pytest.approx(30.0 * 1e20**-0.05)
    assert target_loss(law, opt["loss"])["flops"] == pytest.approx(1e20)
    with pytest.raises(ConfigError):
        fixed_params(law, 1e9, 1e20)


@pytest.mark.parametrize(
    "target, error, message",
    [(1e-300, FitError, r"^target_loss 1e-300: beyond reach under this fit: the "
                        r"compute-optimal loss at 1e\+45 FLOPs is still 0\.1687024$"),
     (0.1, FitError, r"^target_loss 0.1: beyond reach .* at 1e\+45 FLOPs is still 0\.1687024$"),
     (100.0, ConfigError, r"^target_loss 100: the fit reaches that loss only below one "
                          r"FLOP \(C = 3\.49e-11\); give a lower target$"),
     (1e300, ConfigError, r"^target_loss 1e\+300: the fit reaches that loss only below one "
                          r"FLOP \(C = 0\)")],
)  # fmt: skip
def test_isoflop_target_loss_out_of_reach_is_named(target, error, message):
    """The isoflop loss law inverted in floats: --target-loss 1e-300 raised an
    OverflowError (a traceback), 1e300 came to C = 0 and was refused as '--flops must be
    positive numbers', a flag never given, and a target past 1e45 FLOPs (where Chinchilla's
    path stops as beyond reach) was planned."""
    law = fitted(
        {"a": 0.5, "b": 0.5, "k_N": 0.1, "k_D": 1.6667, "a_L": -0.05, "k_L": 30.0}, "isoflop"
    )
    with pytest.raises(error, match=message):
        target_loss(law, target)
    assert target_loss(law, 2.0)["flops"] == pytest.approx((2.0 / 30.0) ** (1 / -0.05))


@pytest.mark.parametrize("name", ["power-c", "power-n", "power-d", "isoflop", "multi-power"])
def test_fixed_params_needs_a_law_of_n_and_d(name):
    """power-c reads no N: plan --params 1e6 and 1e13 at 1e21 FLOPs both got the frontier's
    loss (2.306); power-n no D. A law of N and D answers; the others are refused."""
    law = fitted({"E": 1.7, "alpha": 0.1, "C_c": 1e19}, name)
    with pytest.raises(ConfigError, match=rf"params needs a law .* not '{name}'"):
        fixed_params(law, 1e9, 1e21)
    chin = fitted(TRUE_CHIN)
    assert fixed_params(chin, 1e6, 1e21)["loss"] > fixed_params(chin, 1e9, 1e21)["loss"]


def test_target_loss_interval_counts_the_draws_that_cannot_reach_it():
    """Draws that need infinite compute were dropped before the percentiles, so flops_ci
    could exclude the estimate; past the tail share of draws its upper end is unbounded."""
    law = fitted(TRUE_CHIN)
    rng = np.random.default_rng(0)
    draws = {k: np.full(100, float(v)) for k, v in TRUE_CHIN.items()}
    draws["A"] = draws["A"] * np.exp(rng.normal(0, 0.1, 100))
    law.samples_ = dict(draws)
    law.samples_["E"] = np.where(np.arange(100) < 40, 2.5, draws["E"])  # 40 cannot reach 2.2
    res = target_loss(law, 2.2)
    assert res["reachable_fraction"] == 0.6
    assert res["flops_ci"][1] is None  # unbounded (JSON's null)
    assert res["flops_ci"][0] < res["flops"]
    from scalinglab.cli.plan import _fmt

    text = _fmt({"target_loss": 2.2, "flops": 1e24, "flops_ci": [1e23, None]})
    assert text == "target_loss=2.2  flops=1e+24 [1e+23, inf]"
    # a number the law does not give (JSON null): '-', not Python's None
    assert _fmt({"flops": 1e18, "loss": None}) == "flops=1e+18  loss=-"
    # 2 draws of 100 unreachable, under the 2.5% tail: the 97.5th percentile of all 100
    law.samples_["E"] = np.where(np.arange(100) < 2, 2.5, draws["E"])
    res = target_loss(law, 2.2)
    each = [
        target_loss(fitted({k: v[i] for k, v in law.samples_.items()}), 2.2)["flops"]
        if i >= 2 else np.inf
        for i in range(100)
    ]  # fmt: skip
    hi = np.percentile(np.where(np.isfinite(each), each, 1e300), 97.5)
    assert res["flops_ci"][1] == pytest.approx(hi, rel=1e-6)


def test_target_loss_past_the_bisection_ceiling_is_beyond_reach():
    """A target just above E needs more than 1e45 FLOPs: it answered flops=1e45, at a loss
    above the target."""
    law = fitted(TRUE_CHIN)
    E = TRUE_CHIN["E"]
    with pytest.raises(FitError, match=r"beyond reach under this fit: the compute-optimal "
                       r"loss at 1e\+45 FLOPs is still "):  # fmt: skip
        target_loss(law, E + 1e-9)
    assert target_loss(law, E + 1e-3)["loss"] == pytest.approx(E + 1e-3, rel=1e-9)


def test_a_fit_whose_loss_rises_with_tokens_warns_and_plan_refuses_it(tmp_path, capsys):
    """A negative beta got no warning, and every plan failed as 'predict: N must be numbers,
    got array([...j])' (complex numbers from the closed-form allocation)."""
    from scalinglab.cli import main

    rng = np.random.default_rng(0)
    lines = ["params,tokens,loss"]
    for N in (1e7, 3e7, 1e8, 3e8, 1e9):
        for t in (5, 10, 20, 40, 80):
            L = (2 + 300 / N**0.3) * np.exp(rng.normal(0, 0.003)) * (1 + 0.02 * np.log(t / 20))
            lines.append(f"{N:g},{t * N:g},{L:.6f}")
    (tmp_path / "rise.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "fit.json"
    argv = ["fit", str(tmp_path / "rise.csv"), "--bootstrap", "0", "--out", str(out), "--json"]
    assert main(argv) == 0
    fit = json.loads(capsys.readouterr().out)
    beta = fit["params"]["beta"]
    assert beta < 0
    assert (
        f"beta is {beta:.3g} <= 0: the fitted loss does not fall as its variable grows (a "
        "scaling law's exponents are > 0: check the table); plan finds no compute-optimal "
        "allocation"
    ) in fit["warnings"]
    msg = f"error: {out}: the fit's beta is {beta:.3g} <= 0 (the loss does not fall as D grows): "
    for flags in (["--flops", "1e21"], ["--target-loss", "3"], ["--params", "1e8", "--flops",
                                                                 "1e21"]):  # fmt: skip
        assert main(["plan", str(out), *flags]) == 2
        assert capsys.readouterr().err == msg + "no compute-optimal allocation\n"


def test_a_power_c_fit_plans_the_loss_at_a_budget_and_the_budget_for_a_loss(tmp_path, capsys):
    """power-c, L = E + (C_c/C)^alpha along the compute-optimal frontier, was refused by
    plan ('no compute-optimal allocation'), though a budget's loss and a loss's budget
    are what it is for; it has no N or D, so the plan shows none."""
    from scalinglab.api import plan_run
    from scalinglab.cli import main
    from scalinglab.laws import load_fit

    C = np.geomspace(1e15, 1e19, 12)
    rng = np.random.default_rng(0)
    L = (1.7 + (3e14 / C) ** 0.15) * np.exp(rng.normal(0, 0.002, C.size))
    csv = tmp_path / "frontier.csv"
    csv.write_text("flops,loss\n" + "".join(f"{c:g},{v:.6f}\n" for c, v in zip(C, L, strict=True)))
    fit = tmp_path / "fit.json"
    assert main(["fit", str(csv), "--law", "power-c", "--out", str(fit), "--bootstrap", "50"]) == 0
    capsys.readouterr()
    law = load_fit(fit)
    E, a, Cc = (law.params_[k] for k in ("E", "alpha", "C_c"))
    row = plan_run(law, flops=1e20)
    assert sorted(row) == ["flops", "loss", "loss_ci", "loss_pi"]
    assert row["loss"] == pytest.approx(E + (Cc / 1e20) ** a, rel=1e-12)
    assert row["loss"] == pytest.approx(1.7 + (3e14 / 1e20) ** 0.15, rel=0.01)
    assert row["loss_ci"][0] < row["loss"] < row["loss_ci"][1]
    reach = plan_run(law, target_loss=1.85)
    assert reach["flops"] == pytest.approx(Cc * (1.85 - E) ** (-1 / a), rel=1e-12)
    assert reach["loss"] == pytest.approx(1.85, rel=1e-12)
    assert reach["flops_ci"][0] < reach["flops"] < reach["flops_ci"][1]
    assert main(["plan", str(fit), "--flops", "1e18"]) == 0
    assert capsys.readouterr().out.startswith(f"flops=1e+18  loss={E + (Cc / 1e18) ** a:.4g} [")
    assert main(["plan", str(fit), "--target-loss", f"{E * 0.99}"]) == 2
    assert capsys.readouterr().err == (
        f"error: {fit}: --target-loss {E * 0.99}: unreachable under this fit (the irreducible loss "
        f"E is {E:.4g})\n"
    )
    for flags, err in (
        (["--params", "1e8", "--flops", "1e20"], "--params needs a law that predicts loss "
         "from N and D (chinchilla, kaplan, nd-interaction, data-constrained), not 'power-c'"),
        (["--flops", "1e20", "--lr-fit", str(fit)],
         "--lr-fit needs a plan's N: a power-c fit plans the loss alone"),
    ):  # fmt: skip
        assert main(["plan", str(fit), *flags]) == 2
        assert capsys.readouterr().err == f"error: {err}\n"


CHIN = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28}


def test_each_budgets_intervals_are_the_percentiles_of_the_draws_own_closed_form():
    law = with_draws("chinchilla", CHIN, 0.03)
    s = law.samples_
    budgets = [1e19, 1e23]
    rows = optimal_allocation(law, budgets)
    level = law.settings["ci_level"]
    q = 100 * (1 - level) / 2
    for C, row in zip(budgets, rows, strict=True):
        a, b = s["alpha"], s["beta"]
        G = (a * s["A"] / (b * s["B"])) ** (1 / (a + b))
        N = G * (C / 6) ** (b / (a + b))
        D = C / 6 / N
        L = s["E"] + s["A"] / N**a + s["B"] / D**b
        for key, x in (("params", N), ("tokens", D), ("tokens_per_param", D / N), ("loss", L)):
            assert row[f"{key}_ci"] == pytest.approx(
                list(np.percentile(x, [q, 100 - q])), rel=1e-9
            ), key
