"""Huber objectives on log-loss, vectorised over points and over problems.

Every parametric law here predicts log L as a log-sum-exp (or a line) of
terms linear in log N, log D or log C, and is fitted as Hoffmann et al. 2022
fit Chinchilla: Huber(δ) of log L_pred − log L_obs, summed over points. A
"problem" is one (start, resample) pair: theta is (k, P) and per-point weights
(k, n) carry the bootstrap (a resample is a multinomial count per point).
"""

import numpy as np


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
        # The hot loop of the field-standard fit (4500 starts, 1000s of resamples):
        # written out by hand, and with einsum rather than `@` so that no BLAS
        # thread pool is woken for these thin products.
        a, b, e, al, be = (theta[:, i : i + 1] for i in range(5))
        u1 = a - al * self.logN
        u2 = b - be * self.logD
        u3 = np.broadcast_to(e, u1.shape)
        m = np.maximum(np.maximum(u1, u2), u3)
        e1, e2, e3 = np.exp(u1 - m), np.exp(u2 - m), np.exp(u3 - m)
        s = e1 + e2 + e3
        r = m + np.log(s) - self.logL
        h, psi = huber(r, self.delta)
        if self.weights is not None:
            w = self.weights[wrow if wrow is not None else rows]
            h = h * w
            psi = psi * w
        q = psi / s
        p1, p2, p3 = q * e1, q * e2, q * e3
        g = np.stack(
            [
                p1.sum(1),
                p2.sum(1),
                p3.sum(1),
                -np.einsum("kn,n->k", p1, self.logN),
                -np.einsum("kn,n->k", p2, self.logD),
            ],
            axis=1,
        )
        return h.sum(axis=1), g
