"""The fitting engine for parametric laws: grid of starts, batched L-BFGS, bootstrap.

The target fit runs every start of the form's grid (for Chinchilla, Hoffmann's
4500) through the batched L-BFGS of optim.py, each start optimised on its own.
With `prune` (the default) all starts first take `prune_iters` iterations, and
only the `prune_keep` best continue to convergence: a start that is still far
behind after 15 iterations does not win. On the Epoch, datablations, misfitting
and Gadre et al. tables pruning after 5, 10, 15 or 30 iterations finds the same
optimum as running all 4500 starts (to 1e-15 relative); 15 keeps a margin.
`benchmarks/fit_speed.py` prints pruned and unpruned side by side.
prune=False runs every start to convergence.

The bootstrap resamples points with replacement (whole runs, for a table of
checkpoints: `RunsTable.groups`) (`resamples` multinomial count
vectors used as weights in the summed Huber objective) and refits each
resample from the full-data optimum and the next `boot_starts − 1` best
distinct optima of the grid — a warm start, as Besiroglu et al. 2024 did, no
grid — all resamples in one batched run. The refits run in coordinates whitened
by the full-data Hessian at the optimum (`whitening`), where a resample's
optimum is a Newton step or two away: on Epoch's data 1000 refits took 4x less
CPU and end at lower objectives (the plain refits stopped up to 2e-5 above their
optimum, whitened ones within 2e-11; the intervals agree to 4 decimals), and on
10⁵ rows each refit needs ~4 evaluations of its objective instead of ~50.
"""

import logging

import numpy as np

from scalinglab.errors import FitError
from scalinglab.laws.optim import minimize_batch

log = logging.getLogger(__name__)
# Memory bounds for large tables (issue 16): the bootstrap's resamples × rows weights are
# made and refitted in chunks of at most this many values (a 10⁶-row table: 25 resamples
# at a time), and with more rows than PRESCREEN_ROWS the grid of starts is fitted on a
# random PRESCREEN_SAMPLE of them (still 20x the 240 points Hoffmann et al.'s grid was
# run on), and only its PRESCREEN_KEEP best distinct optima on all. (The grid on 20,000
# rows took ~2 minutes of CPU on a shared 2-core machine, 4x what 5,000 take.)
WEIGHT_ELEMENTS = 25_000_000
PRESCREEN_ROWS = 20_000
PRESCREEN_SAMPLE = 5_000
PRESCREEN_KEEP = 10


def bootstrap_weights(n, resamples, seed):
    """(resamples, n) multinomial counts: resample i uses point j counts[i, j] times."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)


def run_index(groups):
    """(number of runs, each row's run): runs numbered in the order they first appear, by
    row position as rows are drawn (numbered in the sorted order of their names, runs
    renamed to sort the other way round drew other resamples)."""
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=int)
    rank[np.argsort(first)] = np.arange(len(first))
    return len(first), rank[inverse.ravel()]


def run_weights(groups, resamples, seed):
    """(resamples, n) weights that resample whole runs: a row weighs its run's count."""
    m, inverse = run_index(groups)
    return bootstrap_weights(m, resamples, seed)[:, inverse]


def weight_chunks(n, resamples, seed, groups=None, max_elements=WEIGHT_ELEMENTS):
    """The rows of bootstrap_weights (or run_weights, with groups) in chunks of at most
    `max_elements` values: the same draws, in order, without the whole matrix in memory."""
    rng = np.random.default_rng(seed)
    inverse = None
    m = n
    if groups is not None:
        m, inverse = run_index(groups)
    step = max(1, max_elements // max(n, 1))
    for i in range(0, resamples, step):
        counts = rng.multinomial(m, np.full(m, 1.0 / m), size=min(step, resamples - i))
        counts = counts.astype(float)
        yield counts if inverse is None else counts[:, inverse]


def _distinct(xs, fs, k):
    """Indices of the k best rows of xs that are not near-copies of a better one."""
    order = np.argsort(fs)
    picked = []
    for i in order:
        if not np.isfinite(fs[i]):
            break
        if all(np.max(np.abs(xs[i] - xs[j])) > 1e-3 for j in picked):
            picked.append(i)
        if len(picked) == k:
            break
    return picked


def fit_starts(fun, starts, prune=True, prune_iters=15, prune_keep=200, max_iter=1000):
    """Minimise from every start; returns the BatchResult of the runs that finished."""
    if prune and len(starts) > prune_keep:
        first = minimize_batch(fun, starts, max_iter=prune_iters)
        keep = np.argsort(np.where(np.isfinite(first.fun), first.fun, np.inf))[:prune_keep]
        return minimize_batch(fun, first.x[keep], max_iter=max_iter)
    return minimize_batch(fun, starts, max_iter=max_iter)


def fit_best(fun, starts, prune, what):
    """Minimise from every start; the BatchResult and the best start's raw results."""
    res = fit_starts(fun, starts, prune=prune)
    finite = np.isfinite(res.fun)
    if not finite.any():
        raise FitError(f"{what}: no start gave a finite objective")
    best = int(np.argmin(np.where(finite, res.fun, np.inf)))
    return res, {
        "theta": res.x[best],
        "objective": float(res.fun[best]),
        "converged": bool(res.converged[best]),
        "iterations": int(res.nit[best]),
        "samples": None,
    }


def whitening(fun, x, step=1e-5):
    """T with T·Tᵀ ≈ H⁻¹ at x (H by central differences of the gradient; flat directions
    clipped): in z with θ = x + T·z the objective is near-isotropic at its optimum."""
    P = len(x)
    E = step * np.eye(P)
    _, g = fun(np.concatenate([x + E, x - E]), np.zeros(2 * P, dtype=int))
    H = (g[:P] - g[P:]) / (2 * step)
    H = 0.5 * (H + H.T)
    lam, V = np.linalg.eigh(H)
    if not np.isfinite(lam).all() or lam.max() <= 0:
        return np.eye(P)
    lam = np.maximum(lam, lam.max() * 1e-10)
    return V / np.sqrt(lam)


def refit_resamples(
    objective, res, W, boot_starts=1, max_iter=1000, whiten=False, memory=10, newton=False
):
    """Refit every resample (a row of weights W) from the best `boot_starts` distinct optima.

    objective(W) -> fun(theta, rows, wrow): the summed objective weighted by W[wrow].
    `whiten`: optimise in coordinates whitened by the full-data Hessian at the optimum
    (same optima, far fewer iterations for badly scaled parameters); an array: that
    whitening (`whitening`'s T), computed once for all chunks. `memory`: L-BFGS pairs.
    `newton` (with `whiten`): minimize_batch's `scaled` steps and stopping test.
    Returns {"samples": (R, P) thetas, "boot_converged": share of refits converged}."""
    inits = res.x[_distinct(res.x, res.fun, boot_starts)]
    m = len(inits)
    R = len(W)
    bfun = objective(W)
    T = np.eye(inits.shape[1])
    if isinstance(whiten, np.ndarray):
        T = whiten
    elif whiten:
        full = objective(np.ones((1, W.shape[1])))
        T = whitening(lambda th, rows: full(th, rows, wrow=np.zeros(len(th), dtype=int)), inits[0])
    x0 = np.tile(inits, (R, 1))

    def fun_b(z, rows):
        f, g = bfun(x0[rows] + z @ T.T, rows, wrow=rows // m)  # problem row -> its resample
        return f, g @ T

    rb = minimize_batch(fun_b, np.zeros_like(x0), m=memory, max_iter=max_iter, scaled=newton)
    rb.x = x0 + rb.x @ T.T
    fb = np.where(np.isfinite(rb.fun), rb.fun, np.inf).reshape(R, m)
    pick = fb.argmin(axis=1)
    return {
        "samples": rb.x.reshape(R, m, -1)[np.arange(R), pick],
        "boot_converged": float(rb.converged.reshape(R, m)[:, 0].mean()),
    }


def fit_form(form, table, *, bootstrap=0, seed=0, boot_starts=1, prune=True):
    """Fit a parametric form to a RunsTable. Returns a dict of raw results."""
    n = len(table)
    P = len(form.param_names)
    if n < P:
        raise FitError(
            f"{table.source}: {n} points for law {form.name!r}, which has {P} parameters; "
            f"at least {P} points are needed{table.filtered()}"
        )
    for var in form.varies:
        vals = getattr(table, var)
        if np.unique(vals).size < 2:
            what = {"N": "model size N", "D": "token count D", "C": "compute C"}[var]
            raise FitError(
                f"{table.source}: every row has the same {what} ({vals[0]:.6g}); "
                f"law {form.name!r} needs {var} to vary"
            )
    if np.unique(table.L).size < 2:  # any exponents fit it: alpha 48.8, beta 41.7, A 4e9
        col = (getattr(table, "conventions", None) or {}).get("L")
        what = f"value of {col!r}" if col else getattr(form, "fitted", "loss")
        filtered = table.filtered() if hasattr(table, "filtered") else ""
        raise FitError(
            f"{table.source}: every row has the same {what} ({table.L[0]:.6g}); law "
            f"{form.name!r} needs it to vary{filtered}"
        )
    ctx = form.prepare(table)
    starts = form.starts(ctx)
    if prune and n > PRESCREEN_ROWS:
        # a large table: the whole grid on a random subsample of the rows, then its best
        # PRESCREEN_KEEP distinct optima on every row
        pick = np.sort(np.random.default_rng(seed).choice(n, PRESCREEN_SAMPLE, replace=False))
        mask = np.zeros(n, dtype=bool)
        mask[pick] = True
        first = fit_starts(form.objective(form.prepare(table.subset(mask))), starts)
        starts = first.x[_distinct(first.x, first.fun, PRESCREEN_KEEP)]
    res, out = fit_best(form.objective(ctx), starts, prune, f"{table.source}: law {form.name!r}")
    out["ctx"] = ctx
    if bootstrap:
        groups = getattr(table, "groups", None)
        T = whitening(form.objective(ctx), out["theta"])
        parts = [
            refit_resamples(
                lambda w: form.objective(ctx, w), res, W, boot_starts, whiten=T, newton=True
            )
            for W in weight_chunks(n, bootstrap, seed, groups)
        ]
        counts = np.array([len(p["samples"]) for p in parts])
        out["samples"] = np.concatenate([p["samples"] for p in parts])
        out["boot_converged"] = float(
            np.dot([p["boot_converged"] for p in parts], counts) / counts.sum()
        )
    return out
