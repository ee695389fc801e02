"""A batched L-BFGS: many independent smooth problems minimised in lock-step.

Scaling-law fits are small (5 parameters, a few hundred points) but are run
from thousands of starts and, for the bootstrap, on a thousand resamples. One
scipy call per start spends its time in Python overhead; here every problem
keeps its own L-BFGS memory, its own step and its own line search, and only
the objective evaluation is shared: one numpy call computes the values and
gradients of all still-active problems at once. Problems are independent —
this is not the sum of their objectives handed to one optimiser, which would
share one line search (a single step length for all starts) and a curvature
memory mixing them.

The line search is backtracking Armijo with safeguarded quadratic
interpolation; curvature pairs with s·y <= 0 are dropped (the two-loop
recursion skips them), which keeps the inverse-Hessian estimate positive
definite. A problem stops when its relative decrease stays below `ftol` for
two iterations, its gradient is below `gtol`, its line search cannot decrease
the objective any more (machine precision), or after `max_iter` iterations.
"""

from dataclasses import dataclass

import numpy as np


@dataclass
class BatchResult:
    x: np.ndarray  # (B, P) final points
    fun: np.ndarray  # (B,) final objective values
    nit: np.ndarray  # (B,) iterations used
    converged: np.ndarray  # (B,) True when a stopping test (not max_iter) ended it


def _two_loop(g, S, Y, rho, gamma, order):
    """-H·g for each row from its L-BFGS memory; S, Y (m, k, P), rho (m, k)."""
    q = g.copy()
    alpha = np.zeros((len(order), g.shape[0]))
    for j, slot in enumerate(order):  # newest first
        alpha[j] = rho[slot] * np.einsum("kp,kp->k", S[slot], q)
        q -= alpha[j][:, None] * Y[slot]
    r = gamma[:, None] * q
    for j in range(len(order) - 1, -1, -1):  # oldest first
        slot = order[j]
        beta = rho[slot] * np.einsum("kp,kp->k", Y[slot], r)
        r += (alpha[j] - beta)[:, None] * S[slot]
    return -r


def minimize_batch(fun, x0, *, m=10, max_iter=500, ftol=1e-11, gtol=1e-12, c1=1e-4, scaled=False):
    """Minimise B independent problems; fun(X, rows) -> (f (k,), g (k, P)) for problem rows.

    `scaled`: the coordinates are scaled so that the Hessian is near the identity (a
    whitened warm start): the first step is −g, the Newton step there, not a step of
    unit length along −g; and a problem also stops once the decrease a Newton step
    promises, |g|²/2, is below ftol·|f| (so it does not spend its last iterations in line
    searches that cannot decrease f at machine precision)."""
    X = np.array(x0, dtype=float, copy=True)
    B, P = X.shape
    f, g = fun(X, np.arange(B))
    f = f.copy()
    g = g.copy()
    S = np.zeros((m, B, P))
    Y = np.zeros((m, B, P))
    rho = np.zeros((m, B))
    gamma = np.ones(B)
    nit = np.zeros(B, dtype=int)
    small = np.zeros(B, dtype=int)  # consecutive iterations with a tiny relative decrease
    active = np.isfinite(f) & (np.abs(g).max(axis=1) > gtol)
    done = ~active & np.isfinite(f)
    for it in range(max_iter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        order = [(it - 1 - j) % m for j in range(min(it, m))]
        gr = g[rows]
        if it == 0 and scaled:
            d = -gr
        elif it == 0:
            # no curvature yet: a first step of unit length, as L-BFGS-B does
            d = -gr / np.linalg.norm(gr, axis=1, keepdims=True)
        else:
            d = _two_loop(gr, S[:, rows], Y[:, rows], rho[:, rows], gamma[rows], order)
        gd = np.einsum("kp,kp->k", gr, d)
        bad = ~(gd < 0)
        if bad.any():  # memory gone stale: fall back to steepest descent
            d[bad] = -gr[bad]
            gd[bad] = -np.einsum("kp,kp->k", gr[bad], gr[bad])
            rho[:, rows[bad]] = 0.0
        t = np.ones(rows.size)
        f0 = f[rows]
        x_new = X[rows].copy()
        f_new = np.empty(rows.size)
        g_new = np.empty_like(gr)
        pending = np.arange(rows.size)
        for _ in range(60):
            xt = X[rows[pending]] + t[pending, None] * d[pending]
            ft, gt = fun(xt, rows[pending])
            ok = np.isfinite(ft) & (ft <= f0[pending] + c1 * t[pending] * gd[pending])
            acc = pending[ok]
            x_new[acc], f_new[acc], g_new[acc] = xt[ok], ft[ok], gt[ok]
            rej = pending[~ok]
            if rej.size == 0:
                pending = rej
                break
            # quadratic interpolation of the step, kept within [0.1, 0.5] of the old one
            ftr = np.where(np.isfinite(ft[~ok]), ft[~ok], np.inf)
            tr = t[rej]
            denom = 2.0 * (ftr - f0[rej] - gd[rej] * tr)
            tq = np.where(denom > 0, -gd[rej] * tr * tr / np.where(denom > 0, denom, 1.0), 0.5 * tr)
            t[rej] = np.clip(tq, 0.1 * tr, 0.5 * tr)
            pending = rej
        failed = np.zeros(rows.size, dtype=bool)
        failed[pending] = True  # no decrease found: converged to machine precision
        moved = ~failed
        mv = rows[moved]
        s = x_new[moved] - X[mv]
        y = g_new[moved] - g[mv]
        sy = np.einsum("kp,kp->k", s, y)
        yy = np.einsum("kp,kp->k", y, y)
        slot = it % m
        rho[slot, rows] = 0.0
        S[slot, mv], Y[slot, mv] = s, y
        good = (yy > 0) & (sy > 1e-12 * yy)
        rho[slot, mv[good]] = 1.0 / sy[good]
        gamma[mv[good]] = sy[good] / yy[good]
        rel = (f0[moved] - f_new[moved]) / np.maximum(np.abs(f_new[moved]), 1e-300)
        X[mv], f[mv], g[mv] = x_new[moved], f_new[moved], g_new[moved]
        nit[rows] += 1
        small[mv] = np.where(rel < ftol, small[mv] + 1, 0)
        stop = np.zeros(B, dtype=bool)
        stop[rows[failed]] = True
        stop[mv] = (small[mv] >= 2) | (np.abs(g[mv]).max(axis=1) <= gtol)
        if scaled:
            newton = 0.5 * np.einsum("kp,kp->k", g[mv], g[mv])
            stop[mv] |= newton <= ftol * np.abs(f[mv])
        done |= stop
        active &= ~stop
    return BatchResult(x=X, fun=f, nit=nit, converged=done)
