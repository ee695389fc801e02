"""Known laws in, the same laws out: point estimates, intervals, and coverage over repeated draws."""

import numpy as np
import pytest

from scalinglab.laws import ScalingLaw
from tests.laws.synth import TRUE_CHIN, chinchilla_law, grid_table, power_table

SIZES = np.geomspace(1e7, 3e9, 6)
TOKENS = np.geomspace(1e8, 1e11, 6)


def test_chinchilla_recovered_within_intervals():
    rng = np.random.default_rng(1)
    table = grid_table(chinchilla_law, SIZES, TOKENS, 0.005, rng)
    law = ScalingLaw("chinchilla", bootstrap=200, seed=1).fit(table)
    for k, v in TRUE_CHIN.items():
        lo, hi = law.ci_[k]
        assert lo <= v <= hi, (k, v, law.ci_[k])
    assert law.params_["alpha"] == pytest.approx(0.34, abs=0.03)
    assert law.params_["beta"] == pytest.approx(0.28, abs=0.03)
    assert law.params_["E"] == pytest.approx(1.7, abs=0.05)
    assert not any("collinear" in w for w in law.warnings_)


def test_kaplan_recovered():
    # Kaplan et al. 2020's one-variable fits (eq. 1.1, 1.2) as a known truth
    true = {"alpha_N": 0.076, "alpha_D": 0.095, "N_c": 8.8e13, "D_c": 5.4e13}

    def kaplan(N, D):
        return ((true["N_c"] / N) ** (true["alpha_N"] / true["alpha_D"]) + true["D_c"] / D) ** true[
            "alpha_D"
        ]

    rng = np.random.default_rng(2)
    table = grid_table(kaplan, SIZES, TOKENS, 0.003, rng)
    law = ScalingLaw("kaplan", bootstrap=200, seed=2).fit(table)
    for k, v in true.items():
        lo, hi = law.ci_[k]
        assert lo <= v <= hi, (k, v, law.ci_[k])
    assert law.params_["alpha_N"] == pytest.approx(0.076, rel=0.1)
    assert law.params_["alpha_D"] == pytest.approx(0.095, rel=0.1)


@pytest.mark.parametrize(
    "law_name,var,xs",
    [
        ("power-n", "N", np.geomspace(1e6, 1e10, 25)),
        ("power-d", "D", np.geomspace(1e8, 1e12, 25)),
        ("power-c", "C", np.geomspace(1e17, 1e23, 25)),
    ],
)
def test_power_laws_recovered(law_name, var, xs):
    rng = np.random.default_rng(3)
    xc = xs[0] * 30
    table = power_table(var, 1.8, 0.3, xc, xs, 0.004, rng)
    law = ScalingLaw(law_name, bootstrap=200, seed=3).fit(table)
    assert law.ci_["E"][0] <= 1.8 <= law.ci_["E"][1]
    assert law.ci_["alpha"][0] <= 0.3 <= law.ci_["alpha"][1]
    assert law.params_["alpha"] == pytest.approx(0.3, abs=0.05)
    assert law.params_[f"{var}_c"] == pytest.approx(xc, rel=0.5)


def test_power_no_floor_is_kaplans_pure_form():
    rng = np.random.default_rng(4)
    xs = np.geomspace(1e6, 1e10, 20)
    table = power_table("N", 0.0, 0.076, 8.8e13, xs, 0.002, rng)
    law = ScalingLaw("power-n", floor=False, bootstrap=200).fit(table)
    assert set(law.params_) == {"alpha", "N_c"}
    assert law.params_["alpha"] == pytest.approx(0.076, abs=0.003)
    assert law.ci_["alpha"][0] <= 0.076 <= law.ci_["alpha"][1]
    assert np.log10(law.params_["N_c"]) == pytest.approx(np.log10(8.8e13), abs=0.3)


def test_a_floor_run_to_zero_is_said_and_gets_no_interval():
    # exact runs of a law with no floor (E = 0): the fit can only send E to its limit,
    # where the objective is flat; the exponents are still the law's
    rng = np.random.default_rng(1)
    pure = {**TRUE_CHIN, "E": 0.0}
    table = grid_table(lambda N, D: chinchilla_law(N, D, pure), SIZES, TOKENS, 0.0, rng)
    law = ScalingLaw("chinchilla", bootstrap=100, seed=1).fit(table)
    assert law.params_["E"] < 1e-3 * min(table["L"])
    assert any(w.startswith("E ran to ") and "its limit 0" in w for w in law.warnings_)
    assert "E" not in law.ci_ and "E" not in law.stderr_
    for k in ("alpha", "beta", "A", "B"):
        assert law.params_[k] == pytest.approx(pure[k], rel=1e-6), k
    # with a floor in the runs the warning stays away
    table = grid_table(chinchilla_law, SIZES, TOKENS, 0.005, rng)
    law = ScalingLaw("chinchilla", bootstrap=0).fit(table)
    assert not any("E ran to" in w for w in law.warnings_)


def test_interval_coverage_near_nominal():
    """50 independent noisy draws: the 90% interval of alpha covers the truth about 90% of the time."""
    rng = np.random.default_rng(5)
    xs = np.geomspace(1e6, 1e10, 30)
    hits = {"E": 0, "alpha": 0}
    draws = 50
    for i in range(draws):
        table = power_table("N", 1.8, 0.3, 3e7, xs, 0.01, rng)
        law = ScalingLaw("power-n", bootstrap=100, seed=i, ci_level=0.9).fit(table)
        hits["alpha"] += law.ci_["alpha"][0] <= 0.3 <= law.ci_["alpha"][1]
        hits["E"] += law.ci_["E"][0] <= 1.8 <= law.ci_["E"][1]
    # binomial(50, 0.9): 2 sd either side is about 0.81..0.99; percentile bootstraps run a little narrow
    for k, h in hits.items():
        assert 0.76 <= h / draws <= 1.0, (k, h)


ND_TRUE = {"E": 1.7, "A": 400.0, "B": 410.0, "alpha": 0.34, "beta": 0.28, "gamma": 0.1}


def test_nd_interaction_recovered_from_exact_losses():
    """L = E + A/N^α + B·N^γ/D^β on a 6 x 6 grid of exact losses: the fit returns the law
    (γ = 0.1, so no Chinchilla split is derived from it)."""
    from scalinglab.laws.forms import NDInteraction

    N, D = (a.ravel() for a in np.meshgrid(SIZES, TOKENS))
    law = ScalingLaw("nd-interaction", bootstrap=0).fit(
        {"N": N, "D": D, "L": NDInteraction.predict(ND_TRUE, N, D)}
    )
    for k, v in ND_TRUE.items():
        assert law.params_[k] == pytest.approx(v, rel=1e-3), k
    assert law.derived_ == {}


def test_nd_interaction_objective_gradient_is_the_derivative_of_its_value():
    """The analytic gradient of the Huber objective in (a, b, e, α, β, γ) against central
    differences of its own value, at a point away from the optimum."""
    from scalinglab.laws.forms import NDInteraction

    N, D = (a.ravel() for a in np.meshgrid(SIZES, TOKENS))
    L = NDInteraction.predict(ND_TRUE, N, D)
    form = NDInteraction(delta=1.0)  # quadratic everywhere here: a smooth objective
    fun = form.objective({"logN": np.log(N), "logD": np.log(D), "logL": np.log(L)})
    th = np.array([[6.1, 6.0, 0.6, 0.3, 0.3, 0.05]])
    _, g = fun(th, np.arange(1))
    h = 1e-6
    for i in range(6):
        up, down = th.copy(), th.copy()
        up[0, i] += h
        down[0, i] -= h
        num = (fun(up, np.arange(1))[0][0] - fun(down, np.arange(1))[0][0]) / (2 * h)
        assert g[0, i] == pytest.approx(num, rel=1e-5), i
