"""The batched L-BFGS: correct minima, and problems that do not influence each other."""

import numpy as np

from scalinglab.laws.optim import minimize_batch


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
