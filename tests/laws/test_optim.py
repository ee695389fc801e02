"""The batched L-BFGS: correct minima, and problems that do not influence each other."""

import numpy as np
import pytest

from scalinglab.laws import ScalingLaw, estimator
from scalinglab.laws.fit import fit_starts
from scalinglab.laws.objective import CHUNK_ELEMENTS, ChinchillaObjective
from scalinglab.laws.optim import minimize_batch
from tests.laws.synth import chinchilla_law, grid_table


def rosenbrock(X, rows):
    x, y = X[:, 0], X[:, 1]
    f = (1 - x) ** 2 + 100 * (y - x * x) ** 2
    g = np.stack([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)], axis=1)
    return f, g


def test_rosenbrock_from_many_starts():
    starts = np.array([[-1.2, 1.0], [2.0, -1.0], [0.0, 0.0], [-3.0, 5.0]])
    res = minimize_batch(rosenbrock, starts, max_iter=2000)
    np.testing.assert_allclose(res.x, 1.0, atol=1e-6)
    assert res.converged.all()
    assert (res.fun < 1e-12).all()


def test_problems_are_independent():
    """A start optimised in a batch ends exactly where it ends alone."""
    starts = np.array([[-1.2, 1.0], [2.0, -1.0], [0.5, 3.0]])
    batch = minimize_batch(rosenbrock, starts, max_iter=2000)
    for i, s in enumerate(starts):
        alone = minimize_batch(rosenbrock, s[None], max_iter=2000)
        np.testing.assert_array_equal(alone.x[0], batch.x[i])
        assert alone.nit[0] == batch.nit[i]


def test_pruning_keeps_the_best_starts():
    """fit_starts(prune=True) refines the prune_keep starts of the lowest objective: on a
    double well the one start in the lower well must be kept (keeping the worst ones
    found the upper well, +0.294; found by a mutation audit)."""

    def fun(th, rows):  # minima near x = -1 (f -0.305) and x = +1 (f +0.294)
        x = th[:, 0]
        return (x**2 - 1) ** 2 + 0.3 * x, (4 * x * (x**2 - 1) + 0.3)[:, None]

    starts = np.array([[-1.5], *[[v] for v in np.linspace(0.5, 2.0, 9)]])
    res = fit_starts(fun, starts, prune=True, prune_keep=2)
    assert float(np.min(res.fun)) == pytest.approx(-0.3054, abs=1e-3)


# Known answers for mutations of laws/objective.py and laws/optim.py that every test
# passed (a mutation audit): each fails on its mutation.


def chunked_table(rng, n):
    """A Chinchilla table of n > CHUNK_ELEMENTS points (evaluated in chunks) and two
    parameter rows (log A, log B, log E, alpha, beta) to evaluate it at."""
    assert n > CHUNK_ELEMENTS
    logN, logD = rng.uniform(15, 22, n), rng.uniform(18, 25, n)
    logL = np.logaddexp(np.logaddexp(6.0 - 0.34 * logN, 7.0 - 0.28 * logD), 0.5)
    theta = np.array([[6.0, 7.0, 0.5, 0.34, 0.28], [5.5, 7.2, 0.6, 0.3, 0.3]])
    return logN, logD, logL + rng.normal(0, 0.01, n), theta


def test_chinchilla_objective_sums_every_point_of_a_table_larger_than_one_chunk():
    """OB3 (objective.py:42, f[b] = fj for +=): over 70 000 points (> CHUNK_ELEMENTS) the
    mutant kept the last chunk of points only (0.034 for 0.526). Reference: the Huber loss
    of the log residuals written out."""
    rng, n, delta = np.random.default_rng(0), 70_000, 1e-3
    logN, logD, logL, theta = chunked_table(rng, n)
    f, _ = ChinchillaObjective(logN, logD, logL, delta=delta)(theta, np.arange(2))
    for k, (a, b, e, al, be) in enumerate(theta):
        r = np.logaddexp(np.logaddexp(a - al * logN, b - be * logD), e) - logL
        ref = np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)).sum()
        assert f[k] == pytest.approx(ref, rel=1e-9)


def test_chinchilla_bootstrap_from_several_starts_per_resample():
    """OB5 (objective.py:52, the resample's weights taken by problem row): with
    boot_starts=3 each resample has 3 problem rows, and the mutant indexed past the 20
    resamples' weights (IndexError)."""
    from tests.laws.synth import TRUE_CHIN, chinchilla_law, grid_table

    t = grid_table(chinchilla_law, np.geomspace(1e7, 1e9, 5), np.geomspace(1e8, 1e10, 5),
                   0.005, np.random.default_rng(0))  # fmt: skip
    law = ScalingLaw("chinchilla", bootstrap=20, seed=1, boot_starts=3).fit(t)
    lo, hi = law.ci_["alpha"]
    assert lo < TRUE_CHIN["alpha"] < hi and hi - lo < 0.2


def test_line_search_never_accepts_a_step_that_raises_the_objective():
    """OP1 (optim.py:98, Armijo's sufficient decrease with its sign flipped): from x = 0.49999
    on f = x²/2 the first, unit-length step lands at −0.50001, f up by 1e-5 (< c1·|g|), which
    the mutant accepted. The clean search backtracks by quadratic interpolation, exact on a
    quadratic: x = 0 after one iteration."""
    from scalinglab.laws.optim import minimize_batch

    def fun(X, rows):
        return 0.5 * (X**2).sum(axis=1), X.copy()

    x0 = np.array([[0.49999], [-0.3]])
    res = minimize_batch(fun, x0, max_iter=1)
    assert np.all(res.fun <= 0.5 * (x0**2).sum(axis=1))
    assert res.fun[0] < 1e-20


def test_a_problem_whose_start_is_not_finite_is_not_reported_converged():
    """OP5 (optim.py:69, done = ~active): a start where f is NaN never moved; the mutant
    called it converged (fit.py's boot_converged share counts these)."""
    from scalinglab.laws.optim import minimize_batch

    def fun(X, rows):
        f = 0.5 * (X**2).sum(axis=1)
        f[X[:, 0] > 5] = np.nan
        return f, X.copy()

    res = minimize_batch(fun, np.array([[10.0, 0.0], [1.0, 1.0]]))
    assert res.converged.tolist() == [False, True]


def test_weighted_objective_over_more_points_than_one_chunk_is_the_weighted_huber_sum():
    """Bootstrap weights must be cut to each chunk of points, as the residuals are: a table
    larger than CHUNK_ELEMENTS is evaluated in chunks. Reference: the weighted Huber sum
    written out with numpy."""
    rng, n, delta = np.random.default_rng(1), 70_000, 1e-3
    logN, logD, logL, theta = chunked_table(rng, n)
    W = rng.multinomial(n, np.full(n, 1.0 / n), size=2).astype(float)
    obj = ChinchillaObjective(logN, logD, logL, weights=W, delta=delta)
    f, _ = obj(theta, np.arange(2), wrow=np.array([1, 0]))
    for k, (a, b, e, al, be) in enumerate(theta):
        r = np.logaddexp(np.logaddexp(a - al * logN, b - be * logD), e) - logL
        h = np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))
        assert f[k] == pytest.approx((W[1 - k] * h).sum(), rel=1e-9)


def test_line_search_backtracks_as_far_as_a_steep_start_needs():
    """From x = 1e-8 on x²/2 the first step has unit length, 1e8 times too long: the
    backtracking must shrink it by 10⁸ (8 shrinks of at most 10x) and reach the minimum 0,
    not stop where it started and call that converged."""

    def quad(X, rows):
        return 0.5 * (X**2).sum(axis=1), X.copy()

    res = minimize_batch(quad, np.array([[1e-8], [3.0]]))
    assert np.abs(res.x).max() < 1e-15
    assert res.converged.all()


def test_a_problem_whose_line_search_finds_no_decrease_stops_converged_at_once():
    """At |x|'s kink, with the gradient given as +1, no step along -g decreases f (machine
    precision reached, in the module's words): the problem stops after that one iteration and
    is reported converged, not re-run to max_iter and reported unconverged."""

    def kink(X, rows):
        return np.abs(X[:, 0]), np.where(X >= 0, 1.0, -1.0)

    res = minimize_batch(kink, np.array([[0.0]]), max_iter=300)
    assert res.x[0, 0] == 0.0
    assert res.nit.tolist() == [1]
    assert res.converged.tolist() == [True]


def test_scaled_stop_is_relative_to_the_objective_so_a_small_objective_is_still_minimised():
    """`scaled` stops once the Newton decrease |g|²/2 is below ftol·|f| (relative, as the
    docstring says). A fit's objective is small (a Chinchilla Huber sum is ~1e-4): on
    f = 1e-8 + 0.75|x - c|², c = 1e-6, the first −g step lands at 1.5c, and an absolute test
    (|g|²/2 = 6e-13 < 1e-11) stopped there, 50% off; the relative one goes on to c."""
    c = 1e-6

    def fun(X, rows):
        return 1e-8 + 0.75 * ((X - c) ** 2).sum(axis=1), 1.5 * (X - c)

    res = minimize_batch(fun, np.zeros((1, 2)), scaled=True)
    np.testing.assert_allclose(res.x, c, rtol=1e-6)
    assert res.converged.all()


def test_a_fit_whose_best_start_did_not_converge_says_so(monkeypatch):
    """converged_ (fit.json's "converged") is the best start's own flag from the fitting
    engine, not True whatever it was."""
    real = estimator.fit_form

    def unconverged(*args, **kwargs):
        out = real(*args, **kwargs)
        out["converged"] = False
        return out

    monkeypatch.setattr(estimator, "fit_form", unconverged)
    t = grid_table(chinchilla_law, np.geomspace(1e7, 1e9, 4), np.geomspace(1e8, 1e10, 4),
                   0.005, np.random.default_rng(0))  # fmt: skip
    law = ScalingLaw("chinchilla").fit(t)
    assert law.converged_ is False
    assert law.to_json()["converged"] is False


def test_the_best_start_is_the_lowest_finite_objective_not_a_nan():
    """A start where the objective is not a number (outside its domain) ends as NaN; the
    fit is the best of the starts that gave a number (np.argmin would pick the NaN)."""
    from scalinglab.laws.fit import fit_best

    def fun(X, rows):
        x = X[:, 0]
        f = np.where(x < 0, np.nan, (x - 2.0) ** 2 + 1.0)
        return f, np.where(x[:, None] < 0, np.nan, 2 * (X - 2.0))

    _, out = fit_best(fun, np.array([[-1.0], [5.0]]), False, "test")
    assert out["theta"][0] == pytest.approx(2.0, abs=1e-6)
    assert out["objective"] == pytest.approx(1.0)


def test_the_fits_converged_flag_is_the_best_starts(monkeypatch):
    """Another start converging (to a worse optimum) does not make the best one converged."""
    from scalinglab.laws import fit
    from scalinglab.laws.optim import BatchResult

    done = BatchResult(np.array([[0.0], [1.0]]), np.array([2.0, 1.0]), np.array([5, 1000]),
                       np.array([True, False]))  # fmt: skip
    monkeypatch.setattr(fit, "fit_starts", lambda *a, **k: done)
    _, out = fit.fit_best(None, None, False, "test")
    assert out["theta"].tolist() == [1.0] and out["converged"] is False


def test_distinct_optima_skip_near_copies_of_a_better_one():
    """Optima within 1e-3 (in every coordinate) of a better one are the same optimum."""
    from scalinglab.laws.fit import _distinct

    xs = np.array([[0.0, 0.0], [0.0005, -0.0002], [1.0, 1.0], [0.002, 0.0]])
    fs = np.array([1.0, 1.1, 2.0, 1.5])
    assert _distinct(xs, fs, 3) == [0, 3, 2]
    assert _distinct(xs, fs, 1) == [0]


def test_bootstrap_refits_start_from_as_many_optima_as_boot_starts(monkeypatch):
    from scalinglab.laws import fit

    seen = []
    real = fit.refit_resamples

    def spy(objective, res, W, boot_starts=1, **kw):
        seen.append(boot_starts)
        return real(objective, res, W, boot_starts, **kw)

    monkeypatch.setattr(fit, "refit_resamples", spy)
    t = grid_table(chinchilla_law, np.geomspace(1e7, 1e9, 4), np.geomspace(1e8, 1e10, 4),
                   0.005, np.random.default_rng(0))  # fmt: skip
    ScalingLaw("chinchilla", bootstrap=10, boot_starts=3).fit(t)
    assert seen and set(seen) == {3}
