"""IsoFLOP profiles (Hoffmann et al. 2022, Approach 2).

Runs are grouped by compute budget C (a budget column, budgets given by the
user to which each run's C is snapped in log space, or the distinct C values).
Per budget, a parabola in log N is fitted to the loss by least squares; its
vertex gives N_opt(C) and L_opt(C), and D_opt(C) = C / (6 N_opt) (so b = 1 − a
by construction). Across budgets, straight lines in log-log give
N_opt = k_N·C^a, D_opt = k_D·C^b and L_opt = k_L·C^a_L.

With `curvature="shared"` the budgets' parabolas share one curvature (each keeps
its own level and slope; one linear least-squares fit of 2·budgets + 1
coefficients): with 4–5 noisy sizes per budget, a curvature fitted per budget
moves each vertex by as much as the noise, and a profile that is not quite a
parabola bends each budget's curvature by where its sizes happened to fall.

The bootstrap resamples runs within each budget (every budget keeps its size)
and refits everything; all resamples are solved at once through batched 3×3
normal equations.
"""

import numpy as np

from scalinglab.errors import FitError
from scalinglab.laws.fit import bootstrap_weights

CURVATURES = ("per-budget", "shared")


def loglog_fit(logx, logy):
    """Least-squares lines logy = c + s·logx for each row of logy (R, G); NaN entries skipped."""
    logy = np.atleast_2d(logy)
    ok = np.isfinite(logy)
    cnt = ok.sum(axis=1)
    X = np.where(ok, logx, 0.0)
    Y = np.where(ok, logy, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = X.sum(1) / cnt, Y.sum(1) / cnt
        dx = np.where(ok, logx - mx[:, None], 0.0)
        slope = (dx * (Y - my[:, None])).sum(1) / (dx * dx).sum(1)
        icpt = my - slope * mx
    bad = cnt < 2
    slope[bad], icpt[bad] = np.nan, np.nan
    return slope, icpt


def huber_loglog_fit(logx, logy, delta, iters=64):
    """Huber lines logy = c + s·logx for each row of logy (R, G), NaN entries skipped: the
    fit `power-c` without a floor makes (Huber's loss of the log residual with `delta`),
    for every row at once. A bootstrap of that fit's points must be refitted with it, not
    by least squares: with a few points and delta = 1e-3 the Huber line is nearly the
    least-absolute-deviations one, and a point fit by Huber among draws by least squares
    fell outside their own 95% interval.

    Exact to rounding, by bisection twice (reweighted least squares crawls where most
    points lie beyond delta): for a slope s the best intercept c(s) is where the clipped
    residuals sum to zero, and the objective minimised over c is convex in s with
    derivative -sum(clip(r, ±delta)·logx), so s is where that changes sign. The slope
    lies between the least and the greatest slope through two of the points: beyond
    them the residuals fall (or rise) with logx and the derivative cannot change sign."""
    x = np.asarray(logx, dtype=float)
    logy = np.atleast_2d(np.asarray(logy, dtype=float))
    ok = np.isfinite(logy)
    Y = np.where(ok, logy, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = x[None, :] - x[:, None]
        pair = (Y[:, None, :] - Y[:, :, None]) / dx
        pair = np.where(ok[:, None, :] & ok[:, :, None] & (dx > 0), pair, np.nan)
    live = np.isfinite(pair).any(axis=(1, 2))
    if not live.any():
        nan = np.full(len(Y), np.nan)
        return nan, nan.copy()
    s_lo = np.where(live, np.nanmin(np.where(live[:, None, None], pair, 0.0), axis=(1, 2)), 0.0)
    s_hi = np.where(live, np.nanmax(np.where(live[:, None, None], pair, 0.0), axis=(1, 2)), 0.0)

    def intercept(s):
        z = Y - s[:, None] * x
        lo = np.where(ok, z, np.inf).min(1) - delta
        hi = np.where(ok, z, -np.inf).max(1) + delta
        for _ in range(iters):  # the clipped residuals' sum falls as c rises
            c = 0.5 * (lo + hi)
            up = np.where(ok, np.clip(z - c[:, None], -delta, delta), 0.0).sum(1) > 0
            lo, hi = np.where(up, c, lo), np.where(up, hi, c)
        c = 0.5 * (lo + hi)
        return c, np.where(ok, np.clip(z - c[:, None], -delta, delta), 0.0)

    for _ in range(iters):
        s = 0.5 * (s_lo + s_hi)
        _, psi = intercept(s)
        rising = -(psi * x).sum(1) > 0  # the objective's derivative in s
        s_lo, s_hi = np.where(rising, s_lo, s), np.where(rising, s, s_hi)
    slope = 0.5 * (s_lo + s_hi)
    icpt, _ = intercept(slope)
    return np.where(live, slope, np.nan), np.where(live, icpt, np.nan)


OFF_BUDGET = 3.0
"""A run whose C is more than this factor from its budget is of another IsoFLOP profile: a
run's real FLOPs run 1-1.6x its budget's 6ND on our small models, and the public IsoFLOP
tables 0.9-1.35x; 1e19 runs snapped to --budgets 1e18 merged two profiles (a = 2.2), and a
budget column of 1e21 on runs of 1e18 fitted a = 0.11 (true 0.46)."""


def group_budgets(table, budgets=None, below=True):
    """Budget value of each run (from the budget column, snapped, or the distinct C values);
    FitError for a run whose C is more than OFF_BUDGET from its budget. `below=False`: only
    above it, for a C counted with another N than the budgets were set with (N without
    embeddings, below the budgets' count by the embeddings' share, which reached 82% of
    a small sweep's smallest model: a run at 0.18x its budget was refused)."""
    if budgets:
        b = np.sort(np.asarray(budgets, dtype=float))
        if table.C is None:
            table.require("isoflop", "C")
        idx = np.abs(np.log(table.C)[:, None] - np.log(b)[None, :]).argmin(axis=1)
        how = f"C snapped to the nearest of --budgets {', '.join(f'{x:g}' for x in b)}"
        fix = "give its budget in --budgets too"
        bud = b[idx]
    elif table.budget is not None:
        how = f"budget column {table.conventions.get('budget', 'budget')!r}"
        fix = "is the budget column the runs' compute? Check it, or give --budgets"
        bud = table.budget
    else:
        table.require("isoflop", "C")
        return table.C, "distinct values of C"
    if table.C is not None:
        ratio = table.C / bud
        far = np.flatnonzero((ratio > OFF_BUDGET) | (below & (ratio < 1 / OFF_BUDGET)))
        if far.size:
            i = far[0]
            who = f"{table.run_id[i]!r}" if table.run_id else f"of N={table.N[i]:.4g}"
            raise FitError(
                f"{table.source}: the run {who} has C = {table.C[i]:.4g}, {ratio[i]:.3g}x its "
                f"budget {bud[i]:g} ({how}; {far.size} such run(s)): more than {OFF_BUDGET:g}x "
                f"off, it belongs to another IsoFLOP profile; {fix}"
            )
    return bud, how


def _parabolas(x, L, W):
    """Weighted quadratic fits L ≈ p0 + p1 x + p2 x² for each weight row W (R, n); L is
    one loss per run (n,) or one row of losses per weight row (R, n)."""
    xc = x - x.mean()
    V = np.stack([np.ones_like(xc), xc, xc * xc], axis=1)  # (n, 3)
    A = np.einsum("rn,ni,nj->rij", W, V, V)
    y = np.einsum("rn,ni,rn->ri", W, V, np.broadcast_to(L, W.shape))
    present = (W > 0).sum(axis=1)  # points a resample kept; too few sizes shows as det ≈ 0
    p = np.full((W.shape[0], 3), np.nan)
    det = np.linalg.det(A)
    ok = (np.abs(det) > 1e-12 * np.maximum(np.abs(A).max(axis=(1, 2)) ** 3, 1e-300)) & (
        present >= 3
    )
    if ok.any():
        p[ok] = np.linalg.solve(A[ok], y[ok][..., None])[..., 0]
    xs, Ls = _vertices(p[:, 0], p[:, 1], p[:, 2], np.ptp(xc))
    return xs + x.mean(), Ls, p[:, 2]


def _vertices(c, s, k, span):
    """Vertex (x, L) of each parabola c + s x + k x² (x centred); NaN where it opens
    downward or lies more than 1.5 sampled spans out (no minimum: the profile is ~flat)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        convex = k > 0
        xs = np.where(convex, -s / (2 * k), np.nan)
        Ls = np.where(convex, c - s**2 / (4 * k), np.nan)
    far = ~(np.abs(xs) <= 1.5 * span)
    xs[far], Ls[far] = np.nan, np.nan
    return xs, Ls


def _shared_parabolas(x, L, W, group, n_groups):
    """Parabolas L ≈ c_j + s_j x + k x² with one curvature k for all groups j (x centred
    per group), for each weight row W (R, n); L (n,) or (R, n) as in _parabolas. Returns
    the vertices (x, L) and k, each (R, n_groups)."""
    xc = x.copy()
    for j in range(n_groups):
        xc[group == j] -= x[group == j].mean()
    P = 2 * n_groups + 1
    V = np.zeros((len(x), P))
    V[np.arange(len(x)), group] = 1.0
    V[np.arange(len(x)), n_groups + group] = xc
    V[:, -1] = xc * xc
    A = np.einsum("rn,ni,nj->rij", W, V, V)
    y = np.einsum("rn,ni,rn->ri", W, V, np.broadcast_to(L, W.shape))
    p = np.full((W.shape[0], P), np.nan)
    # a resample needs 2+ distinct sizes in every group and 3+ in one to fix k: A is
    # singular otherwise (judged by its condition, not its determinant, which shrinks
    # with the number of budgets however well posed the fit is)
    sv = np.linalg.svd(A, compute_uv=False)
    ok = sv[:, -1] > 1e-10 * sv[:, 0]
    if ok.any():
        p[ok] = np.linalg.solve(A[ok], y[ok][..., None])[..., 0]
    c, s, k = p[:, :n_groups], p[:, n_groups:-1], p[:, -1:]
    means = np.array([x[group == j].mean() for j in range(n_groups)])
    spans = np.array([np.ptp(xc[group == j]) for j in range(n_groups)])
    xs, Ls = _vertices(c, s, k, spans)
    return xs + means, Ls, np.broadcast_to(k, xs.shape).copy()


def fit_isoflop(
    table,
    *,
    budgets=None,
    bootstrap=0,
    seed=0,
    min_points=3,
    curvature="per-budget",
    d_from_runs=False,
):
    """Per-budget parabolas and the lines through their vertices (module docstring).

    `d_from_runs`: N is not the count the budgets were set with (Kaplan's non-embedding
    N of runs placed by 6·N·D in all parameters), so C / (6 N_opt) is not the optimum's
    D: it is read off the budget's own runs (a parabola of log D in log N, exact for
    runs placed by 6ND with this N) at N_opt, and the lines are drawn against C_opt =
    6·N_opt·D_opt, reported per budget as `C_opt@B`."""
    table.require("isoflop", "N", "L", *(("D",) if d_from_runs else ()))
    bud, how = group_budgets(table, budgets, below=not d_from_runs)
    values = np.unique(bud)
    groups = [np.flatnonzero(bud == v) for v in values]
    keep = [(v, g) for v, g in zip(values, groups, strict=True) if len(g) >= min_points]
    warnings = []
    small = [f"{v:g}" for v, g in zip(values, groups, strict=True) if len(g) < min_points]
    if small:
        warnings.append(f"budgets with fewer than {min_points} runs skipped: {', '.join(small)}")
    if len(keep) < 2:
        raise FitError(
            f"{table.source}: isoflop needs at least 2 budgets with {min_points}+ runs each; "
            f"found {len(keep)} (budgets from {how})"
        )
    if curvature not in CURVATURES:
        raise FitError(f"isoflop: curvature {curvature!r} is not one of {', '.join(CURVATURES)}")
    R = bootstrap
    logN = np.log(table.N)
    xs = np.full((1 + R, len(keep)), np.nan)
    Ls = np.full((1 + R, len(keep)), np.nan)
    ks = np.full((1 + R, len(keep)), np.nan)
    usable, weights = [], []
    # one stream per budget from the seed (seed + j made seed s's budget j draw what seed
    # s + 1 drew for budget j − 1: two seeds were no independent replicates)
    streams = np.random.SeedSequence(seed).spawn(len(keep))
    for j, (v, g) in enumerate(keep):
        if np.unique(table.N[g]).size < 3:
            warnings.append(f"budget {v:g}: fewer than 3 distinct model sizes; skipped")
            continue
        W = np.ones((1, len(g)))
        if R:
            W = np.vstack([W, bootstrap_weights(len(g), R, streams[j])])
        usable.append(j)
        weights.append(W)
        if curvature == "per-budget":
            xs[:, j], Ls[:, j], ks[:, j] = _parabolas(logN[g], table.L[g], W)
    if curvature == "shared" and usable:
        idx = np.concatenate([keep[j][1] for j in usable])
        group = np.concatenate([np.full(len(keep[j][1]), i) for i, j in enumerate(usable)])
        sx, sL, sk = _shared_parabolas(
            logN[idx], table.L[idx], np.hstack(weights), group, len(usable)
        )
        xs[:, usable], Ls[:, usable], ks[:, usable] = sx, sL, sk
    for j in usable:
        v, g = keep[j]
        if not np.isfinite(xs[0, j]):
            warnings.append(
                f"budget {v:g}: the loss has no minimum in log N near the sampled sizes; skipped"
            )
        elif not logN[g].min() <= xs[0, j] <= logN[g].max():
            warnings.append(
                f"budget {v:g}: the parabola's minimum N={np.exp(xs[0, j]):.3g} lies outside the "
                f"sampled sizes ({table.N[g].min():.3g}..{table.N[g].max():.3g}): extrapolated"
            )
    if np.isfinite(xs[0]).sum() == 2:
        warnings.append(
            "the fit rests on the minima of 2 budgets: its lines (N_opt, D_opt and L_opt "
            "against C) pass through them exactly, so nothing measures their scatter about "
            "a line"
        )
    bvals = np.array([v for v, _ in keep])
    logC = np.log(bvals)
    Nopt = np.exp(xs)
    Dopt = bvals / (6.0 * Nopt)
    if d_from_runs:
        for j, (_, g) in enumerate(keep):  # log D through the budget's runs, as the loss
            if np.unique(logN[g]).size >= 3:
                Dopt[:, j] = np.exp(
                    np.polyval(np.polyfit(logN[g], np.log(table.D[g]), 2), xs[:, j])
                )
        logC = np.log(6.0 * Nopt * Dopt)  # each draw's own C_opt: (1 + R, budgets)
    a, cN = loglog_fit(logC, np.log(Nopt))
    b, cD = loglog_fit(logC, np.log(Dopt))
    with np.errstate(invalid="ignore", divide="ignore"):  # a resample may give L_opt <= 0
        aL, cL = loglog_fit(logC, np.log(Ls))
    if not np.isfinite(a[0]):  # why each budget failed was collected, then dropped
        why = [w for w in warnings if w.startswith("budget")]
        raise FitError(
            f"{table.source}: isoflop: fewer than 2 budgets with a convex profile"
            + (f" ({'; '.join(why)})" if why else "")
        )
    core = {"a": a, "b": b, "k_N": np.exp(cN), "k_D": np.exp(cD), "a_L": aL, "k_L": np.exp(cL)}
    per = {}
    for j, v in enumerate(bvals):
        per[f"N_opt@{v:g}"] = Nopt[:, j]
        per[f"D_opt@{v:g}"] = Dopt[:, j]
        per[f"L_opt@{v:g}"] = Ls[:, j]
        per[f"k@{v:g}"] = ks[:, j]  # the parabola: L = L_opt + k (log N − log N_opt)²
        if d_from_runs:
            per[f"C_opt@{v:g}"] = 6.0 * Nopt[:, j] * Dopt[:, j]
    resid = np.log(Nopt[0]) - (cN[0] + a[0] * np.atleast_2d(logC)[0])
    return {
        "point": {k: float(v[0]) for k, v in core.items()},
        "per_budget": {k: float(v[0]) for k, v in per.items()},
        "samples": {k: v[1:] for k, v in core.items()} if R else None,
        "per_budget_samples": {k: v[1:] for k, v in per.items()} if R else None,
        "objective": float(np.nansum(resid**2)),
        "n_points": int(sum(len(g) for _, g in keep)),
        "warnings": warnings,
        "budgets": how,
    }


def redrawn_vertices(N, L, budget, rel_noise, draws, *, seed=0, curvature="per-budget"):
    """The loss minimum L_opt of each budget when every run's loss is drawn again as
    L·(1 + rel_noise·ε), ε standard normal, independent per run and draw; the parabolas
    fitted as fit_isoflop fits them. Returns (budgets, L_opt draws of shape (draws,
    budgets)); NaN where a draw's profile has no minimum near the sizes.

    The parametric counterpart of the resampling bootstrap, for what it cannot show:
    with 3 sizes per budget a resample of them with fewer than 3 distinct sizes has no
    parabola, and one with all 3 is the original fit, so resampling says nothing of
    how the runs' seed noise moves each minimum. Budgets with fewer than 3 distinct
    sizes are left out."""
    N, L, budget = (np.asarray(a, dtype=float) for a in (N, L, budget))
    if curvature not in CURVATURES:
        raise FitError(f"isoflop: curvature {curvature!r} is not one of {', '.join(CURVATURES)}")
    rng = np.random.default_rng(seed)
    Lr = L * (1.0 + rel_noise * rng.standard_normal((draws, len(L))))
    values = [v for v in np.unique(budget) if np.unique(N[budget == v]).size >= 3]
    if len(values) < 2:
        raise FitError("redrawn vertices need at least 2 budgets with 3+ distinct sizes")
    groups = [np.flatnonzero(budget == v) for v in values]
    logN = np.log(N)
    if curvature == "per-budget":
        Ls = np.column_stack(
            [_parabolas(logN[g], Lr[:, g], np.ones((draws, len(g))))[1] for g in groups]
        )
    else:
        idx = np.concatenate(groups)
        group = np.concatenate([np.full(len(g), j) for j, g in enumerate(groups)])
        Ls = _shared_parabolas(logN[idx], Lr[:, idx], np.ones((draws, len(idx))), group,
                               len(groups))[1]  # fmt: skip
    return np.array(values), Ls
