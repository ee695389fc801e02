"""Laws of whole loss curves under any learning-rate schedule, and their fit.

A curve law predicts the loss at step t from the learning rate η at every step
0..t (η_0 is the first step's LR). S1(t) = Σ_{τ≤t} η_τ is the LR area so far.

- multi-power (Luo et al. 2025, the Multi-Power Law):
      L(t) = L0 + A·S1(t)^(−α) − B·Σ_{k=1..t} (η_{k−1} − η_k)·G(η_k^(−γ)·S_k(t)),
      G(x) = 1 − (C·x + 1)^(−β),  S_k(t) = Σ_{τ=k..t} η_τ.
  The warmup is part of the schedule (its area is S1's offset S_W; its rising
  LR enters the sum with the opposite sign), as in the authors' code.
- lr-annealing (Tissue et al. 2024): L(t) = L0 + A·S1(t)^(−α) − C·S2(t),
  S2(t) = Σ_{i≤t} m_i, m_i = λ·m_{i−1} + (η_{i−1} − η_i), with λ = `decay_factor`
  (0.999, the paper's choice); S2 counts only steps after the LR's first peak
  (the step before its first drop), so the warmup's rise is not an "annealing".

Both are fitted as every law here: Huber(δ) on log L − log L_pred, summed over
the logged points of all fitted curves, batched L-BFGS from a grid of starts.

The Multi-Power sum has one term per step before t: 24000 steps × 171 logged
points is 4M terms per curve and evaluation. Per logged point the steps are
grouped into blocks whose width grows with their distance from t (`BLOCK` steps
next to t, at most distance/`RATIO` further back) and that never span a change
of log η by more than `LOG_STEP` nor a turn of the LR from falling to rising;
each block's LR drop is summed and G taken at its |drop|-weighted mean η and
area. Against the step-by-step sum this changes no prediction by more than 3e-5
relative on the Luo et al. curves (their published and fitted parameters), 7e-5
on the trainer's cosine and WSD schedules and 4e-5 on a re-warmup from LR 0 after
a cooldown (Luo's 400M law; up to 2.4e-4 where it is put to 3× its peak LR on
schedules of 500–2000 steps; tests/laws/test_curves.py holds its cases to 1e-4),
and leaves about 29 terms per point (RATIO 4 instead of 8 keeps that
error and drops a quarter of the terms; coarser blocks bias the loosely
determined C, β, γ of an exact synthetic fit by over 10%).
"""

import bisect
import itertools

import numpy as np

from scalinglab.errors import FitError
from scalinglab.laws.fit import bootstrap_weights, fit_best, refit_resamples
from scalinglab.laws.objective import huber

BLOCK = 8
RATIO = 4
LOG_STEP = 0.2
CHUNK = 100_000  # problems × terms evaluated at once: small enough to stay in the CPU's cache


def lr_area(lr):
    """S1 at every step: cumulative sum of the LR array (index = step)."""
    return np.cumsum(lr)


def mpl_terms(lr, steps, block=BLOCK, ratio=RATIO):
    """The Multi-Power sum's blocks for each step in `steps`, as flat arrays.

    Returns (point, drop, log_eta, area): for term j, the index of its point, the
    block's summed LR drop Σ(η_{k−1} − η_k), log of its mean η_k and its mean
    S_k(t) — weighted by |drop| — sorted by point. Blocks with no drop are left out.
    """
    lr = np.asarray(lr, dtype=float)
    cum = np.cumsum(lr)
    drop = np.zeros_like(lr)
    drop[1:] = lr[:-1] - lr[1:]
    w = np.abs(drop)
    prev = np.concatenate([[0.0], cum[:-1]])  # cum[k−1]
    # prefix sums over k of w, w·η_k, w·cum[k−1] and drop: block sums by differences
    P = [np.concatenate([[0.0], np.cumsum(a)]) for a in (w, w * lr, w * prev, drop)]
    # A block must not span a large change of η (G depends on η^−γ): fixed edges
    # wherever log η has moved by LOG_STEP since the last edge.
    logs = np.log(np.maximum(lr, lr.max() * 0.05))
    walk = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(logs)))])
    fixed = np.flatnonzero(np.diff(np.floor(walk / LOG_STEP)) != 0) + 1
    # nor a turn of the LR (a fall, then a rise): a block's terms of both signs cancel in
    # its summed drop where their G differ. A dip to LR ~0 and back (a re-warmup after a
    # cooldown) was predicted 0.5% off for hundreds of steps after it
    sign = np.sign(drop)
    moves = np.flatnonzero(sign)
    fixed = np.union1d(fixed, moves[1:][sign[moves[1:]] != sign[moves[:-1]]])
    fixed = [int(f) for f in fixed]  # bisect on a list: a tenth of np.searchsorted's cost
    lo, hi, point = [], [], []
    for i, t in enumerate(np.asarray(steps, dtype=int).tolist()):
        k1 = t + 1
        while k1 > 1:
            width = max(block, (t + 1 - k1) // ratio)
            j = bisect.bisect_left(fixed, k1) - 1  # the last fixed edge below k1
            k0 = max(1, k1 - width, fixed[j] if j >= 0 else 1)
            lo.append(k0)
            hi.append(k1)
            point.append(i)
            k1 = k0
    # each point's blocks in increasing order of k, as the sums expect
    k0, k1, point = (np.array(a, dtype=int) for a in (lo, hi, point))
    order = np.lexsort((k0, point))
    k0, k1, point = k0[order], k1[order], point[order]
    sw = P[0][k1] - P[0][k0]
    keep = sw > 0
    k0, k1, sw, point = k0[keep], k1[keep], sw[keep], point[keep]
    eta = (P[1][k1] - P[1][k0]) / sw
    cprev = (P[2][k1] - P[2][k0]) / sw
    t_of = np.asarray(steps, dtype=int)[point]
    area = cum[t_of] - cprev
    with np.errstate(divide="ignore"):
        log_eta = np.log(np.maximum(eta, 1e-300))
    return point, P[3][k1] - P[3][k0], log_eta, area


def linear_start(logS1, x2, L):
    """L ≈ L0 + A·S1^(−α) − B·x2 by least squares in (L0, A, B) on a grid of α: the best."""
    best = None
    for al in np.linspace(0.05, 1.5, 30):
        X = np.stack([np.ones_like(L), np.exp(-al * logS1), -x2], axis=1)
        coef, *_ = np.linalg.lstsq(X, L, rcond=None)
        sse = float(np.sum((X @ coef - L) ** 2))
        if best is None or sse < best[0]:
            best = (sse, coef, al)
    _, (L0, A, B), al = best
    # keep the start inside the law's domain (positive L0, A, B)
    return max(L0, 0.1 * L.min()), max(A, 1e-3), al, max(B, 1e-3 / max(np.max(x2), 1e-12))


def annealing_area(lr, decay_factor):
    """Tissue et al.'s S2 at every step (momentum of LR drops after the first peak).

    The first peak ends the LR's initial rise (the warmup, and any constant phase after
    it): the step before its first drop. It is found from the steps up to each step only,
    so a step's S2 never depends on the LR at later steps; a rise after that (a second
    warmup) enters as a negative drop."""
    lr = np.asarray(lr, dtype=float)
    drop = np.zeros_like(lr)
    drop[1:] = lr[:-1] - lr[1:]
    falls = np.flatnonzero(drop > 0)
    drop[: falls[0] if len(falls) else len(drop)] = 0.0
    m = np.empty_like(lr)
    acc = 0.0
    for i, d in enumerate(drop):  # a linear recurrence; 72000 steps take ~10 ms
        acc = decay_factor * acc + d
        m[i] = acc
    return np.cumsum(m)


class CurveForm:
    """Parameters in `logged` are fitted as their logarithm (they are positive)."""

    param_names: tuple = ()
    logged = ("L0", "A", "B", "C")

    def natural(self, th):
        th = np.atleast_2d(th)
        return {
            k: np.exp(th[:, i]) if k in self.logged else th[:, i]
            for i, k in enumerate(self.param_names)
        }

    def theta(self, p):
        # a fitted L0 or C can underflow to 0: log 0 = −inf predicts that limit
        with np.errstate(divide="ignore"):
            return np.array([np.log(p[k]) if k in self.logged else p[k] for k in self.param_names])


class MultiPower(CurveForm):
    name = "multi-power"
    param_names = ("L0", "A", "alpha", "B", "C", "beta", "gamma")
    exponents = ("alpha", "beta", "gamma")

    def __init__(self, delta=1e-3, decay_factor=0.999):
        self.delta = delta

    def prepare(self, runs):
        """runs: list of (steps, lr at every step, loss or None) -> the fit's arrays."""
        logS1, terms, logL, cum_drop, offset = [], [], [], [], 0
        for steps, lr, loss in runs:
            logS1.append(np.log(lr_area(lr)[steps]))
            cum_drop.append(np.maximum.accumulate(lr)[steps] - lr[steps])
            point, drop, log_eta, area = mpl_terms(lr, steps)
            terms.append((point + offset, drop, log_eta, np.log(np.maximum(area, 1e-300))))
            offset += len(steps)
            if loss is not None:
                logL.append(np.log(loss))
        n = offset
        # one zero term per point, so that no point's run of terms is empty (reduceat)
        terms.append((np.arange(n), np.zeros(n), np.zeros(n), np.zeros(n)))
        point, drop, log_eta, log_area = (np.concatenate(a) for a in zip(*terms, strict=True))
        # the terms of point i start at start[i] of the sorted term arrays
        order = np.argsort(point, kind="stable")
        point, drop, log_eta, log_area = point[order], drop[order], log_eta[order], log_area[order]
        counts = np.bincount(point, minlength=n)
        ctx = {
            "drop_sum": np.add.reduceat(drop, np.cumsum(counts) - counts),
            "logS1": np.concatenate(logS1),
            "cum_drop": np.concatenate(cum_drop),
            "drop": drop,
            "log_eta": log_eta,
            "log_area": log_area,
            "start": np.cumsum(counts) - counts,
            "logL": np.concatenate(logL) if logL else None,
        }
        return ctx

    def starts(self, ctx):
        # L0, A, alpha, B from the law's limit for a saturated G (a drop of the LR
        # lowers the loss by B·drop at once): linear least squares at each alpha of
        # a grid. Then a small grid of C, beta, gamma around it (as Luo et al. start
        # from such a fit).
        L0, A, al, B = linear_start(ctx["logS1"], ctx["cum_drop"], np.exp(ctx["logL"]))
        return np.array(
            [
                (np.log(L0), np.log(A), al, np.log(B), np.log(c), be, ga)
                for c, be, ga in itertools.product((0.3, 3.0), (0.4, 0.8), (0.4, 0.7))
            ]
        )

    def pred(self, ctx, th, grad=True):
        """Predicted loss (k, n) and, with grad, its derivatives (P, k, n) in theta.

        The (k, terms) arrays dominate the cost: few of them, updated in place."""
        l0, a, al, b, c, be, ga = (th[:, i : i + 1] for i in range(7))
        L0, A, B = np.exp(l0), np.exp(a), np.exp(b)
        pw = A * np.exp(-al * ctx["logS1"])
        log_eta, start = ctx["log_eta"], ctx["start"]

        def per_point(terms):
            return np.add.reduceat(terms, start, axis=1)

        x = np.multiply(-ga, log_eta)  # u = c − γ·log η + log S_k(t), then x = e^u
        x += ctx["log_area"]
        x += c
        np.minimum(x, 700.0, out=x)
        np.exp(x, out=x)
        l1p = np.log1p(x)
        qd = np.multiply(-be, l1p)
        np.exp(qd, out=qd)
        qd *= ctx["drop"]  # q·drop, q = (1 + x)^−β
        LD = ctx["drop_sum"] - per_point(qd)  # Σ drop·G, G = 1 − q
        pred = L0 + pw - B * LD
        if not grad:
            return pred, None
        np.divide(x, x + 1.0, out=x)
        x *= qd  # dG/du · drop / β
        l1p *= qd
        dc = per_point(x)
        x *= log_eta
        dpred = np.stack(
            [
                np.broadcast_to(L0, pred.shape),
                pw,
                -pw * ctx["logS1"],
                -B * LD,
                -B * be * dc,
                -B * per_point(l1p),
                B * be * per_point(x),
            ]
        )
        return pred, dpred


class LRAnnealing(CurveForm):
    name = "lr-annealing"
    param_names = ("L0", "A", "alpha", "C")
    exponents = ("alpha",)

    def __init__(self, delta=1e-3, decay_factor=0.999):
        self.delta = delta
        self.decay_factor = decay_factor

    def prepare(self, runs):
        logS1, S2, logL = [], [], []
        for steps, lr, loss in runs:
            logS1.append(np.log(lr_area(lr)[steps]))
            S2.append(annealing_area(lr, self.decay_factor)[steps])
            if loss is not None:
                logL.append(np.log(loss))
        return {
            "logS1": np.concatenate(logS1),
            "S2": np.concatenate(S2),
            "logL": np.concatenate(logL) if logL else None,
        }

    def starts(self, ctx):
        L0, A, al, C = linear_start(ctx["logS1"], ctx["S2"], np.exp(ctx["logL"]))
        return np.array([(np.log(L0), np.log(A), al, np.log(C))])

    def pred(self, ctx, th, grad=True):
        l0, a, al, c = (th[:, i : i + 1] for i in range(4))
        L0, A, C = np.exp(l0), np.exp(a), np.exp(c)
        pw = A * np.exp(-al * ctx["logS1"])
        ann = C * ctx["S2"]
        pred = L0 + pw - ann
        if not grad:
            return pred, None
        dpred = np.stack([np.broadcast_to(L0, pred.shape), pw, -pw * ctx["logS1"], -ann])
        return pred, dpred


class Held(CurveForm):
    """A curve law with some parameters held at given values (`--fix NAME=VALUE`).

    Fitted, bootstrapped and predicted in the free parameters only; `natural`
    returns every parameter, the held ones at their values."""

    def __init__(self, base, fixed):
        self.base, self.fixed = base, dict(fixed)
        self.name, self.delta, self.logged = base.name, base.delta, base.logged
        self.param_names = tuple(k for k in base.param_names if k not in self.fixed)
        self.exponents = tuple(k for k in base.exponents if k not in self.fixed)
        self.keep = [i for i, k in enumerate(base.param_names) if k not in self.fixed]
        self.held = np.array([np.log(v) if k in base.logged else v for k, v in self.fixed.items()])
        self.held_at = [base.param_names.index(k) for k in self.fixed]

    def full(self, th):
        th = np.atleast_2d(th)
        out = np.empty((len(th), len(self.base.param_names)))
        out[:, self.keep] = th
        out[:, self.held_at] = self.held
        return out

    def natural(self, th):
        return self.base.natural(self.full(th))

    def prepare(self, runs):
        return self.base.prepare(runs)

    def starts(self, ctx):
        return np.unique(self.base.starts(ctx)[:, self.keep], axis=0)

    def pred(self, ctx, th, grad=True):
        pred, dpred = self.base.pred(ctx, self.full(th), grad)
        return pred, (dpred[self.keep] if grad else None)


CURVE_LAWS = {"multi-power": MultiPower, "lr-annealing": LRAnnealing}


def make_curve_form(law, delta=1e-3, decay_factor=0.999, fixed=None):
    form = CURVE_LAWS[law](delta=delta, decay_factor=decay_factor)
    return Held(form, fixed) if fixed else form


def curve_objective(form, ctx, weights=None):
    logL, n = ctx["logL"], len(ctx["logL"])
    per_problem = max(1, n + len(ctx.get("drop", ())))

    def fun(th, rows, wrow=None):
        f = np.empty(len(th))
        g = np.empty_like(th)
        step = max(1, CHUNK // per_problem)
        for s in range(0, len(th), step):
            sl = slice(s, s + step)
            # a line search's trial point may overflow: it is then rejected as non-finite
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                pred, dpred = form.pred(ctx, th[sl])
                r = np.log(pred) - logL
                h, psi = huber(r, form.delta)
                if weights is not None:
                    w = weights[(wrow if wrow is not None else rows)[sl]]
                    h, psi = h * w, psi * w
                bad = ~np.isfinite(r).all(axis=1) | ~np.isfinite(dpred).all(axis=(0, 2))
                f[sl] = np.where(bad, np.inf, h.sum(axis=1))
                gs = np.einsum("pkn,kn->kp", dpred, np.where(np.isfinite(r), psi / pred, 0.0))
                g[sl] = np.where(bad[:, None], 0.0, gs)
        return f, g

    return fun


def stratified_weights(run_of_point, resamples, seed):
    """(resamples, n) counts: each run's checkpoints resampled within the run."""
    rng = np.random.default_rng(seed)
    W = np.zeros((resamples, len(run_of_point)))
    for r in np.unique(run_of_point):
        idx = np.flatnonzero(run_of_point == r)
        W[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)), size=resamples)
    return W


def fit_curves(
    form, runs, *, bootstrap=0, seed=0, boot_starts=1, prune=True, source="<memory>", note=""
):
    """Fit a curve law to runs [(steps, lr at every step, loss)]; returns a dict of results.
    `note` follows the too-few-points error: the rows the filters removed."""
    n = sum(len(s) for s, _, _ in runs)
    P = len(form.param_names)
    if n < P:
        raise FitError(
            f"{source}: {n} points for law {form.name!r}, which has {P} parameters{note}"
        )
    ctx = form.prepare(runs)
    res, out = fit_best(
        curve_objective(form, ctx), form.starts(ctx), prune, f"{source}: law {form.name!r}"
    )
    out["ctx"] = ctx
    if bootstrap:
        run_of = np.concatenate([np.full(len(s), i) for i, (s, _, _) in enumerate(runs)])
        if max(len(s) for s, _, _ in runs) > 1:
            W = stratified_weights(run_of, bootstrap, seed)
        else:  # one point a run (final losses): within-run draws would all be the data
            W = bootstrap_weights(n, bootstrap, seed)  # and give intervals of zero width
        # 40 L-BFGS pairs: the multi-power valley at 25M (Luo et al.'s curves) is long and
        # curved; 30% fewer evaluations than 10 pairs. A Newton first step in the whitened
        # coordinates: 8% fewer evaluations at 25M, 27% at 100M and 400M. The same optima
        # (benchmarks/results/curve_laws.md)
        out.update(
            refit_resamples(
                lambda w: curve_objective(form, ctx, w),
                res,
                W,
                boot_starts,
                whiten=True,
                memory=40,
                newton=True,
            )
        )
    return out


def predict_curve(form, params, steps, lr):
    """Predicted loss at `steps` of a run with LR `lr` at every step; params {name: value}."""
    steps = np.asarray(steps, dtype=int)
    ctx = form.prepare([(steps, np.asarray(lr, dtype=float), None)])
    # parameters in their domain but extreme (a hand-edited alpha = 1e308) overflow to an
    # inf or NaN loss, which the caller refuses or shows, not numpy's warnings
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        pred, _ = form.pred(ctx, form.theta(params)[None, :], grad=False)
    return pred[0]
