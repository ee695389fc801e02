"""Every law fitted with an analytic gradient: that gradient against central differences
of the law's own value. A wrong sign or a dropped term in a gradient does not stop L-BFGS:
it ends somewhere else, or stops early, and the fit is silently another one."""

from types import SimpleNamespace

import numpy as np
import pytest

from scalinglab.laws.curvelaws import LRAnnealing, MultiPower, curve_objective
from scalinglab.laws.forms import Chinchilla, Kaplan, NDInteraction, Power
from scalinglab.laws.tasklaws import Sigmoid

H = 1e-6  # central differences in theta: error ~H² f''' against rounding ~eps f / H


def grid():
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 3e9, 5), np.geomspace(1e8, 1e11, 5)))
    L = 1.7 + 400 / N**0.34 + 410 / D**0.28
    return SimpleNamespace(N=N, D=D, C=6 * N * D, L=L * np.exp(0.01 * np.sin(np.arange(25))))


def check(fun, th):
    """fun(th (k, P), rows) -> (f (k,), g (k, P)); g against the differences of f."""
    th = np.atleast_2d(np.asarray(th, dtype=float))
    rows = np.arange(len(th))
    f, g = fun(th, rows)
    assert np.isfinite(f).all() and np.isfinite(g).all()
    for i in range(th.shape[1]):
        up, down = th.copy(), th.copy()
        up[:, i] += H
        down[:, i] -= H
        num = (fun(up, rows)[0] - fun(down, rows)[0]) / (2 * H)
        np.testing.assert_allclose(g[:, i], num, rtol=1e-5, atol=1e-9 * np.abs(f).max(),
                                   err_msg=f"parameter {i}")  # fmt: skip


def shifted_starts(form, ctx, k=3):
    """A few of the law's own starts, moved off any grid value and any optimum."""
    s = np.asarray(form.starts(ctx), dtype=float)
    pick = s[np.linspace(0, len(s) - 1, k).astype(int)]
    return pick + 0.013 * np.arange(1, pick.shape[1] + 1)


@pytest.mark.parametrize("delta", [1.0, 1e-3])  # quadratic everywhere; mostly linear Huber
@pytest.mark.parametrize(
    "form",
    [
        Chinchilla,
        Kaplan,
        NDInteraction,
        lambda d: Power("N", True, d),
        lambda d: Power("C", False, d),
    ],
    ids=["chinchilla", "kaplan", "nd-interaction", "power-n", "power-c-no-floor"],
)
def test_the_point_laws_gradients(form, delta):
    f = form(delta)
    ctx = f.prepare(grid())
    check(f.objective(ctx), shifted_starts(f, ctx))


@pytest.mark.parametrize("ends", [{}, {"lo": 0.25, "hi": 1.0}, {"lo": 0.25}])
def test_the_task_sigmoids_gradient(ends):
    loss = np.linspace(1.2, 3.0, 15)
    acc = 0.25 + 0.7 / (1 + np.exp(2.5 * (loss - 2.0))) + 0.01 * np.cos(np.arange(15))
    s = Sigmoid(**ends)
    ctx = s.prepare(SimpleNamespace(C=loss, L=acc))
    check(s.objective(ctx), shifted_starts(s, ctx))


def lr_runs():
    """Three schedules of 2000 steps (cosine, a step drop, WSD), losses every 100 steps."""
    t = np.arange(2000)
    warm = np.minimum(1.0, (t + 1) / 100)
    cosine = 3e-4 * warm * (0.1 + 0.45 * (1 + np.cos(np.pi * t / 2000)))
    drop = 3e-4 * warm * np.where(t < 1200, 1.0, 0.3)
    wsd = 3e-4 * warm * np.where(t < 1600, 1.0, 1 - (t - 1600) / 400 * 0.9)
    steps = np.arange(100, 2000, 100)
    out = []
    for k, lr in enumerate((cosine, drop, wsd)):
        area = np.cumsum(lr)[steps]
        loss = 3.0 + 0.5 * area**-0.4 - 300 * (np.maximum.accumulate(lr) - lr)[steps]
        out.append((steps, lr, loss * (1 + 0.002 * np.sin(steps + k))))
    return out


@pytest.mark.parametrize("delta", [1.0, 1e-3])
@pytest.mark.parametrize("form", [MultiPower, LRAnnealing], ids=["multi-power", "lr-annealing"])
def test_the_curve_laws_gradients(form, delta):
    f = form(delta=delta, decay_factor=0.99)
    ctx = f.prepare(lr_runs())
    check(curve_objective(f, ctx), shifted_starts(f, ctx, k=2))
