"""Huber objectives on log-loss, vectorised over points and over problems.

Every parametric law here predicts log L as a log-sum-exp (or a line) of
terms linear in log N, log D or log C, and is fitted as Hoffmann et al. 2022
fit Chinchilla: Huber(δ) of log L_pred − log L_obs, summed over points. A
"problem" is one (start, resample) pair: theta is (k, P) and per-point weights
(k, n) carry the bootstrap (a resample is a multinomial count per point).
"""

import numpy as np

# Temporaries of the objective hold problems × points values: a call over more than this
# many is summed over blocks of problems and chunks of points, so memory stays bounded
# (10⁶ rows × 200 starts would otherwise take 1.6 GB per temporary, and there are a
# dozen). 2¹⁶ values (512 KB a temporary) keep a block's dozen temporaries in the CPU's
# caches: on 10⁶ rows × 25 resamples an evaluation takes 4x less time than with blocks
# of 2²² values (benchmarks/results/fit.md).
CHUNK_ELEMENTS = 2**16


def summed(part, theta, rows, wrow, n, P):
    """part(theta, rows, wrow, sl) -> (f (k,), g (k, P)) over the points `sl` (a slice),
    evaluated in blocks of at most CHUNK_ELEMENTS problems × points and summed over points.

    A table of at most CHUNK_ELEMENTS points is split by problems only, so each problem's
    sum is the same, to the last bit, as in one call."""
    k = len(theta)
    if k * n <= CHUNK_ELEMENTS:
        return part(theta, rows, wrow, slice(None))
    f = np.zeros(k)
    g = np.zeros((k, P))
    if n <= CHUNK_ELEMENTS:
        kb, nb = CHUNK_ELEMENTS // n, n
    else:
        kb = min(k, 64)
        nb = CHUNK_ELEMENTS // kb
    for i in range(0, k, kb):
        b = slice(i, i + kb)
        wb = None if wrow is None else wrow[b]
        for j in range(0, n, nb):
            fj, gj = part(theta[b], rows[b], wb, slice(j, j + nb))
            f[b] += fj
            g[b] += gj
    return f, g


def weight_rows(weights, rows, wrow, sl):
    """The bootstrap weights of problems `rows` (or of their resamples `wrow`) at the points
    `sl`, or None without weights."""
    if weights is None:
        return None
    return weights[wrow if wrow is not None else rows, sl]


def huber(r, delta):
    """Huber loss and its derivative, elementwise."""
    a = np.abs(r)
    # 0.5·m² + δ·(|r| − m) with m = min(|r|, δ): the same as the two-branch form,
    # without squaring a huge residual that the linear branch would discard.
    m = np.minimum(a, delta)
    val = m * (0.5 * m) + delta * (a - m)
    return val, np.clip(r, -delta, delta)


class ChinchillaObjective:
    """theta = (a, b, e, alpha, beta): log L = LSE(a − α log N, b − β log D, e)."""

    def __init__(self, logN, logD, logL, weights=None, delta=1e-3):
        self.logL = np.asarray(logL, dtype=float)
        self.weights = weights  # (R, n) bootstrap counts, or None
        self.delta = delta
        self.logN = np.asarray(logN, dtype=float)
        self.logD = np.asarray(logD, dtype=float)

    def __call__(self, theta, rows, wrow=None):
        return summed(self.part, theta, rows, wrow, self.logL.size, 5)

    def part(self, theta, rows, wrow, sl):
        """The objective and gradient summed over the points `sl` (a slice)."""
        # The hot loop of the field-standard fit (4500 starts, 1000s of resamples):
        # written out by hand, and with einsum rather than `@` so that no BLAS
        # thread pool is woken for these thin products.
        a, b, e, al, be = (theta[:, i : i + 1] for i in range(5))
        logN, logD, logL = self.logN[sl], self.logD[sl], self.logL[sl]
        u1 = a - al * logN
        u2 = b - be * logD
        u3 = np.broadcast_to(e, u1.shape)
        m = np.maximum(np.maximum(u1, u2), u3)
        e1, e2, e3 = np.exp(u1 - m), np.exp(u2 - m), np.exp(u3 - m)
        s = e1 + e2 + e3
        r = m + np.log(s) - logL
        h, psi = huber(r, self.delta)
        w = weight_rows(self.weights, rows, wrow, sl)
        if w is not None:
            h = h * w
            psi = psi * w
        q = psi / s
        p1, p2, p3 = q * e1, q * e2, q * e3
        g = np.stack(
            [
                p1.sum(1),
                p2.sum(1),
                p3.sum(1),
                -np.einsum("kn,n->k", p1, logN),
                -np.einsum("kn,n->k", p2, logD),
            ],
            axis=1,
        )
        return h.sum(axis=1), g
