"""The frontier's noise interval: every fitted run's loss redrawn with the measured seed
noise, against the first-order error propagation it should reproduce."""

import math

import numpy as np
import pytest

from scalinglab.errors import FitError
from scalinglab.laws.isoflop import redrawn_vertices
from scalinglab.laws.settings import FitConfig
from scalinglab.plan.analysis import ArchFits, allocation, fit_arch, predict, predictive_interval

BUDGETS = (1e11, 3e11, 9e11)
H = math.log(2.0)  # the sizes of a budget: N_opt / 2, N_opt, 2 N_opt


def frontier_rows(alpha=0.1, cc=1e14, k=0.05):
    """3 sizes per budget on exact parabolas in log N around N_opt = sqrt(C / 120), their
    minima on the power law L = (cc / C)^alpha."""
    rows = []
    for c in BUDGETS:
        n_opt, l_opt = math.sqrt(c / 120), (cc / c) ** alpha
        for j in (-1, 0, 1):
            n = n_opt * math.exp(j * H)
            rows.append({"arch": "gpt", "status": "completed", "params": n, "budget": c,
                         "tokens": c / (6 * n), "loss": l_opt + k * (j * H) ** 2})  # fmt: skip
    return rows


def test_redrawn_vertices_without_noise_are_the_minima():
    rows = frontier_rows()
    cs, Ls = redrawn_vertices([r["params"] for r in rows], [r["loss"] for r in rows],
                              [r["budget"] for r in rows], 0.0, 5)  # fmt: skip
    assert list(cs) == list(BUDGETS)
    assert Ls == pytest.approx(np.tile([(1e14 / c) ** 0.1 for c in BUDGETS], (5, 1)), rel=1e-12)


@pytest.mark.parametrize("curvature", ["per-budget", "shared"])
def test_redrawn_minimum_moves_as_its_runs_noise(curvature):
    """With each minimum on its middle size, to first order in a small noise the minimum is
    the parabola's value there, a linear function a·L of the runs' losses (per budget, the
    middle run's loss; with one shared curvature, a mix of all 9): its spread is
    sigma·sqrt(sum (a_i L_i)^2), a from the least-squares design."""
    rows = frontier_rows()
    sigma = 0.0005
    L = np.array([r["loss"] for r in rows])
    _, Ls = redrawn_vertices([r["params"] for r in rows], L, [r["budget"] for r in rows],
                             sigma, 4000, seed=1, curvature=curvature)  # fmt: skip
    xc = np.tile([-H, 0.0, H], 3)
    g = np.repeat([0, 1, 2], 3)
    if curvature == "per-budget":
        a = np.eye(9)[[1, 4, 7]]  # the middle runs
    else:  # columns: level per budget, slope per budget, one curvature
        V = np.column_stack([np.eye(3)[g], np.eye(3)[g] * xc[:, None], xc * xc])
        a = np.linalg.pinv(V)[:3]
    expect = sigma * np.sqrt(((a * L) ** 2).sum(axis=1))
    assert np.std(Ls, axis=0) == pytest.approx(expect, rel=0.06)


def test_frontier_noise_interval_is_the_propagated_noise():
    """Far beyond the budgets the redrawn frontier's 95% interval is the straight line's
    prediction error: 1.96 sigma sqrt(1/3 + (log C - mean log C_b)^2 / Sxx) (the draws are
    refitted by Huber's loss as the frontier is, which on three points with this noise
    spreads as least squares does, to the tolerance below)."""
    sigma, C = 0.004, 3e13
    fits = fit_arch("gpt", frontier_rows(), FitConfig(bootstrap=4000, seed=2))
    pred = predict(fits, 1e5, C / 6e5, C, "frontier", {"rel_std": sigma})
    p = pred["predicted_loss"]
    assert p == pytest.approx((1e14 / C) ** 0.1, rel=1e-9)
    x = np.log(BUDGETS)
    half = (
        1.96
        * sigma
        * math.sqrt(1 / 3 + (math.log(C) - x.mean()) ** 2 / ((x - x.mean()) ** 2).sum())
    )
    lo, hi = pred["noise_interval"]
    assert math.log(p / lo) == pytest.approx(half, rel=0.08)
    assert math.log(hi / p) == pytest.approx(half, rel=0.08)
    # no noise measured: no such interval, the rest unchanged
    plain = predict(fits, 1e5, C / 6e5, C, "frontier")
    assert "noise_interval" not in plain and plain["predicted_loss"] == p


def test_predictive_interval_adds_each_part_in_quadrature():
    pred = {"predicted_loss": 1.0, "fit_interval": [0.9, 1.2], "noise_interval": [0.8, 1.1]}
    z = 1.959963984540054
    lo, hi = predictive_interval(pred, {"rel_std": 0.05 / z}, 0.95)
    assert lo == pytest.approx(1 - math.sqrt(0.01 + 0.04 + 0.0025))
    assert hi == pytest.approx(1 + math.sqrt(0.04 + 0.01 + 0.0025))
    lo, hi = predictive_interval({**pred, "noise_interval": None}, None, 0.95)
    assert (lo, hi) == pytest.approx((0.9, 1.2))


def test_seed_noise_lists_each_seed_with_its_own_loss():
    from scalinglab.plan.analysis import seed_noise

    base = {"status": "completed", "arch": "gpt", "n_layer": 2, "n_embd": 64, "tokens": 1e6,
            "params": 1e5}  # fmt: skip
    # the sweep's run (seed 1337) comes first, the repeats after it: listed in seed order
    rows = [{**base, "seed": 1337, "loss": 2.70}, {**base, "seed": 1, "loss": 2.80},
            {**base, "seed": 2, "loss": 2.90}]  # fmt: skip
    (g,) = seed_noise(rows)["groups"]
    assert g["seeds"] == [1, 2, 1337] and g["losses"] == [2.80, 2.90, 2.70]
    assert g["rel_std"] == pytest.approx(np.std([2.7, 2.8, 2.9], ddof=1) / 2.8)


def test_leave_larger_out_by_c_holds_out_whole_isoflop_budgets(monkeypatch):
    """A run's C lies a little off its budget (its steps rounded), so the thresholds at
    shares of the rows fell inside a budget, fitting some of its profile and predicting the
    rest; each threshold now lies between budgets. (The thresholds the backtest is given,
    or would choose itself; the fits are laws.backtest's.)"""
    from scalinglab.laws.backtest import TRAIN_FRACS
    from scalinglab.laws.intervals import thresholds_for
    from scalinglab.plan import analysis

    seen = {}

    def backtest(law, t, by, settings, thresholds=None):
        seen[by] = thresholds_for(t, by, TRAIN_FRACS) if thresholds is None else thresholds
        return {"thresholds": [], "overall": {}}

    monkeypatch.setattr(analysis, "rolling_backtest", backtest)
    rng = np.random.default_rng(0)
    rows = []
    for b in (1e15, 3e15, 1e16, 3e16):
        n_opt = math.sqrt(b / 6) / 5
        for f in (0.25, 0.5, 1, 2, 4):
            n = n_opt * f
            d = b / (6 * n) * (1 + rng.uniform(-0.02, 0.02))
            rows.append({"status": "completed", "params": n, "tokens": d, "loss": 3.0,
                         "budget": b, "flops_6nd": 6 * n * d})  # fmt: skip
    s = FitConfig(bootstrap=0)
    analysis.leave_larger_out(analysis.ArchFits("gpt", rows, settings=s), s)
    assert len(seen["C"]) == 2  # after the budget of half the rows, and after the next one
    for thr in seen["C"]:
        held = {r["budget"] for r in rows if r["flops_6nd"] > thr}
        fitted = {r["budget"] for r in rows if r["flops_6nd"] <= thr}
        assert held and fitted and not held & fitted, f"C > {thr:.4g} splits a budget"


E_SIZE = 40.0  # embeddings of a width ∝ sqrt(N_ne): N = N_ne + E_SIZE·sqrt(N_ne)


def kaplan_rows(alpha=0.1, cc=1e14, k=0.05):
    """Runs placed at budgets of 6·N·D in all parameters, whose loss is a law of Kaplan's
    count: 3 non-embedding sizes per budget on exact parabolas in log N_ne, their minima
    on the power law L = (cc / C_ne)^alpha of C_ne = 6·N_ne·D at the middle run."""
    rows = []
    for c in BUDGETS:
        n_opt = math.sqrt(c / 120)
        d_opt = c / (6 * (n_opt + E_SIZE * math.sqrt(n_opt)))
        l_opt = (cc / (6 * n_opt * d_opt)) ** alpha
        for j in (-1, 0, 1):
            ne = n_opt * math.exp(j * H)
            n = ne + E_SIZE * math.sqrt(ne)
            rows.append({"arch": "gpt", "status": "completed", "params": n,
                         "params_nonembed": ne, "budget": c, "tokens": c / (6 * n),
                         "loss": l_opt + k * (j * H) ** 2})  # fmt: skip
    return rows


def test_fits_counting_n_without_embeddings_recover_kaplans_law():
    """fit_arch(kind="params_nonembed"): each budget's vertex at its own C = 6·N_opt·D_opt
    with D_opt the runs' D at N_opt, not at the budget (6·N·D in all parameters), and the
    frontier through them the law the runs follow; counted in all parameters, the same
    runs give another exponent (the embeddings' share shrinks with size)."""
    rows = kaplan_rows()
    fits = fit_arch("gpt", rows, FitConfig(bootstrap=200, seed=0), "params_nonembed")
    assert fits.kind == "params_nonembed"
    for p, c in zip(fits.frontier_points, BUDGETS, strict=True):
        mid = next(r for r in rows if r["budget"] == c and r["loss"] == min(
            q["loss"] for q in rows if q["budget"] == c))  # fmt: skip
        assert p["budget"] == c
        assert p["C"] == pytest.approx(6 * mid["params_nonembed"] * mid["tokens"], rel=1e-9)
        assert p["C"] < 0.9 * c  # the embeddings' share of N is counted out
    shares = [p["C"] / p["budget"] for p in fits.frontier_points]
    assert shares == sorted(shares)  # and less of it the larger the model
    assert fits.frontier.params_["alpha"] == pytest.approx(0.1, rel=1e-6)
    iso = fits.isoflop.params_
    assert iso["a"] + iso["b"] == pytest.approx(1.0, abs=1e-9)  # D_opt = C_opt / (6 N_opt)
    ne, d = 5e5, 4e7  # far beyond the budgets
    pred = predict(fits, ne, d, 6 * ne * d, "frontier", {"rel_std": 0.004})
    assert pred["predicted_loss"] == pytest.approx((1e14 / (6 * ne * d)) ** 0.1, rel=1e-6)
    lo, hi = pred["noise_interval"]  # the budgets' redrawn minima at their vertices' C
    assert lo < pred["predicted_loss"] < hi
    total = fit_arch("gpt", rows, FitConfig(bootstrap=0), "params")
    assert total.frontier.params_["alpha"] > 0.1 * 1.02
    assert "C_opt@1e+11" not in total.isoflop.params_
    with pytest.raises(FitError, match="N counted as 'N': expected one of params, params_no"):
        fit_arch("gpt", rows, FitConfig(bootstrap=0), "N")


def test_huber_lines_are_the_power_c_fit_of_each_row():
    """The frontier's draws are refitted by huber_loglog_fit; each row's line must be what
    power-c (no floor) fits to those points, also where noise far beyond delta makes the
    objective nearly flat (reweighted least squares stopped 0.003 short in alpha there)."""
    from scalinglab.laws import ScalingLaw
    from scalinglab.laws.isoflop import huber_loglog_fit

    rng = np.random.default_rng(0)
    for noise in (1e-4, 1e-3, 1e-2, 5e-2):
        for g in (2, 3, 6):
            C = np.sort(10 ** rng.uniform(10, 20, g))
            L = 3 * (C / 1e10) ** -0.1 * np.exp(rng.normal(0, noise, g))
            law = ScalingLaw("power-c", floor=False, bootstrap=0).fit({"C": C, "L": L})
            s, c = huber_loglog_fit(np.log(C), np.log(L)[None, :], 1e-3)
            assert -s[0] == pytest.approx(law.params_["alpha"], abs=1e-8)
            assert np.exp(c[0] + s[0] * np.log(1e22)) == pytest.approx(
                law.predict(C=1e22, check_range=False), rel=1e-7
            )
    # a missing entry is left out of its row; a row with one point has no line
    x = np.log([1e10, 1e11, 1e12])
    s, c = huber_loglog_fit(
        x, np.log([[2.0, np.nan, 1.0], [2.0, 1.5, np.nan], [np.nan, 1.5, np.nan]]), 1e-3
    )
    assert s[0] == pytest.approx(np.log(0.5) / (x[2] - x[0]))
    assert s[1] == pytest.approx(np.log(0.75) / (x[1] - x[0]))
    assert np.isnan(s[2]) and np.isnan(c[2])


def test_the_frontier_point_is_the_centre_of_its_bootstrap():
    """The frontier's point was power-c's Huber line through the IsoFLOP vertices, its draws
    least-squares lines through the resampled ones: on a Chinchilla table (7 budgets x 7
    sizes, 0.2% noise) the point's loss at 1e22, 1.9240, fell below its own 95% interval
    [1.9244, 1.9348]. Each draw is now refitted as the point was."""
    from scalinglab.laws import ScalingLaw
    from scalinglab.plan.analysis import fit_frontier

    rng = np.random.default_rng(2)
    E, A, B, a, b = 1.8, 400.0, 2000.0, 0.34, 0.37
    G = (a * A / (b * B)) ** (1 / (a + b))
    rows = []
    for C in np.logspace(17, 20, 7):
        n_opt = G * (C / 6) ** (b / (a + b))
        for f in (1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8):
            N, D = n_opt * f, C / (6 * n_opt * f)
            L = (E + A / N**a + B / D**b) * np.exp(rng.normal(0, 0.002))
            rows.append({"N": N, "D": D, "C": C, "budget": C, "L": L})
    iso = ScalingLaw("isoflop", bootstrap=1000).fit(rows)
    frontier, _ = fit_frontier(iso, FitConfig(bootstrap=1000))
    v, lo, hi = frontier.predict(C=1e22, return_ci=True, check_range=False)
    assert lo < v < hi
    alpha, draws = frontier.params_["alpha"], frontier.samples_["alpha"]
    lo_a, hi_a = frontier.ci_["alpha"]
    assert abs(np.nanmedian(draws) - alpha) < 0.1 * (hi_a - lo_a)


def test_n_without_embeddings_of_small_models_is_not_off_its_budget():
    """Budgets are set in all parameters; counted without embeddings a small model's C is
    below its budget by the embeddings' share, so the IsoFLOP fit refused a tiny study's
    runs as 'more than 3x off' their budget (0.18x) and its 'frontier, N without
    embeddings' prediction was an error (found by an audit). Below is allowed for that
    count; a C above its budget by more than 3x is still another profile."""
    rows = [r | {"params_nonembed": 0.15 * r["params"]} for r in frontier_rows()]
    fits = fit_arch("gpt", rows, FitConfig(bootstrap=0), "params_nonembed")
    assert fits.isoflop is not None and "isoflop" not in fits.errors
    assert fits.frontier is not None
    wrong = [r | {"budget": r["budget"] / 30} for r in rows]  # a budget column 30x too small
    fits = fit_arch("gpt", wrong, FitConfig(bootstrap=0), "params_nonembed")
    assert fits.isoflop is None and "more than 3x off" in fits.errors["isoflop"]
    plain = fit_arch(
        "gpt", [r | {"budget": r["budget"] * 30} for r in rows], FitConfig(bootstrap=0)
    )
    assert plain.isoflop is None and "more than 3x off" in plain.errors["isoflop"]


def test_without_an_isoflop_or_chinchilla_fit_n_grows_as_the_square_root_of_c():
    """The study's last-resort allocation: the best run of the largest budget scaled by
    √(C / C_max); at 100× its budget, 10× its N (by C/C_max: 100×; a mutation audit)."""
    rows = [{"arch": "gpt", "params": 1e7, "tokens": 1e8, "loss": 3.0, "status": "completed"},
            {"arch": "gpt", "params": 2e7, "tokens": 5e7, "loss": 3.1, "status": "completed"},
            {"arch": "gpt", "params": 5e6, "tokens": 1e8, "loss": 3.5, "status": "completed"}]  # fmt: skip
    n, _ = allocation(ArchFits("gpt", rows), 6e17)  # 100x the largest budget, 6e15
    assert n == pytest.approx(1e8, rel=1e-12)


def test_the_new_runs_seed_noise_is_relative_to_the_predicted_loss():
    # a loss of 3 with 1% relative seed noise: +-z*0.03 at 95%, nothing else
    z = 1.959963984540054
    lo, hi = predictive_interval({"predicted_loss": 3.0}, {"rel_std": 0.01}, 0.95)
    assert (lo, hi) == pytest.approx((3.0 - z * 0.03, 3.0 + z * 0.03), rel=1e-12)


def test_plan_rows_give_each_budgets_d_and_tokens_per_param_of_its_optimum():
    """plan_rows: N from the IsoFLOP law at each budget, D = C / (6N) and D/N of that N."""
    from scalinglab.plan.analysis import plan_rows

    fits = fit_arch("gpt", kaplan_rows(), FitConfig(bootstrap=0), "params")
    for row in plan_rows(fits, [1e13, 1e15], "frontier"):
        n = fits.isoflop.optimal(row["flops"], check_range=False)["params"]
        assert row["params"] == pytest.approx(n, rel=1e-12)
        assert row["tokens"] == pytest.approx(row["flops"] / (6 * n), rel=1e-12)
        assert row["tokens_per_param"] == pytest.approx(row["tokens"] / n, rel=1e-12)


def test_a_ray_counts_sizes_not_runs():
    """Three runs on the ray but two sizes (a seed repeat): a power law of C through two
    sizes is not determined, so the ray refuses, naming the count of sizes."""
    from scalinglab.plan.analysis import fit_ray

    rows = [{"status": "completed", "arch": "gpt", "params": n, "tokens": 48 * n, "loss": x}
            for n, x in ((1e4, 3.0), (1e4, 3.02), (4e4, 2.6))]  # fmt: skip
    with pytest.raises(FitError, match=r"the ray at 48 tokens per parameter has 2 size\(s\)"):
        fit_ray(ArchFits("gpt", rows, settings=FitConfig(bootstrap=0)), 48)


def test_seed_groups_of_one_shape_on_other_tokens_are_apart():
    """Repeats are runs that differ only in their seed: one shape trained on two numbers
    of tokens is two groups, each with its own spread (merged, the pair of losses 2.0 apart
    would read as seed noise)."""
    from scalinglab.plan.analysis import seed_noise

    base = {"status": "completed", "arch": "gpt", "n_layer": 2, "n_embd": 64, "params": 1e5}
    rows = [{**base, "tokens": d, "seed": s, "loss": x}
            for d, s, x in ((1e6, 1, 3.0), (1e6, 2, 3.03), (1e7, 1, 2.0), (1e7, 2, 2.02))]  # fmt: skip
    out = seed_noise(rows)
    assert [g["tokens"] for g in out["groups"]] == [1e6, 1e7]
    assert out["dof"] == 2
    rel = [np.std([3.0, 3.03], ddof=1) / 3.015, np.std([2.0, 2.02], ddof=1) / 2.01]
    assert out["rel_std"] == pytest.approx(math.sqrt(sum(r**2 for r in rel) / 2), rel=1e-12)
