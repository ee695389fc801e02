"""Warnings a careful analyst would give about a fit (returned as sentences, never printed)."""

import numpy as np

# An exponent whose interval is wider than this share of its value is flagged: a
# 95% interval of beta of [0.38, 0.95] around 0.6 says little about beta.
WIDE = 0.5
# A per-token loss in nats above this is no language model's: a uniform guess over a
# vocabulary of 1e8 tokens is ln(1e8) = 18.4. Above it the column is likely perplexity.
LOSS_MAX = 20.0
# Tokens per parameter of a language-model run: the public runs tables have a median of
# 10 to 20 (single runs 2e-4 to 64,000). A median outside these bounds is a unit mix-up
# (tokens in billions gave 1e-8; parameters in millions, 1e7), which fits without a word.
TOKENS_PER_PARAM = (1e-3, 1e5)
# A FLOPs column against 6ND: a real count (attention, the readout; N without embeddings)
# runs 1-5x it on our own small runs (median 1.3-1.9), a forward pass alone 1/3. A median
# outside these bounds is a column in other units (PF-days, GFLOPs, a 100x typo).
FLOPS_PER_6ND = (0.1, 10.0)
# The condition number of the parameters' correlation matrix beyond which a
# combination of parameters is flagged as not determined (a flat valley).
FLAT = 1e8


def share_above(x: float, limit: float) -> str:
    """x (a share above `limit`) as a percentage with the fewest decimals that do not print
    it equal to the limit: 0.504 over 0.5 is "50.4%", not "50%" (more than 50%)."""
    for d in range(4):
        if f"{x:.{d}%}" != f"{limit:.{d}%}":
            return f"{x:.{d}%}"
    return f"{x:.6%}"


def exponents(law, names):
    """An exponent at or below 0 (the loss rises, or stays flat, as its variable grows:
    nothing to extrapolate, no compute-optimal allocation), or whose bootstrap interval is
    wide relative to its value (not determined)."""
    out = []
    for name in names:
        v = law.params_.get(name)
        if v is not None and np.isfinite(v) and v <= 0:
            plan = "; plan finds no compute-optimal allocation" if law.law == "chinchilla" else ""
            out.append(
                f"{name} is {v:.3g} <= 0: the fitted loss does not fall as its variable grows "
                f"(a scaling law's exponents are > 0: check the table){plan}"
            )
        if name in law.ci_ and name in law.params_:
            lo, hi = law.ci_[name]
            v = law.params_[name]
            if hi - lo > WIDE * abs(v):
                share = share_above((hi - lo) / abs(v), WIDE)
                out.append(
                    f"the {law.settings['ci_level']:.0%} interval of {name} "
                    f"[{lo:.3g}, {hi:.3g}] is {share} of its value {v:.3g} "
                    f"(more than {WIDE:.0%}): the exponent is poorly determined by these data"
                )
    return out


def curvature(logpred, natural, theta, logL, names, level=0.95, step=1e-6):
    """Standard errors of the natural parameters from the curvature of the fit (Gauss-Newton:
    J'J/σ² with J = d log L_pred / dθ, σ the residual spread; the delta method through
    `natural`), and the condition number of the parameters' correlation matrix. Needs no
    bootstrap, so its warnings do not depend on resampling luck.

    Args:
        logpred: (k, P) thetas -> (k, n) predicted log-loss of the fitted rows.
        natural: (k, P) thetas -> {name: (k,) values}.
        theta: (P,) the optimum.
    Returns:
        ({name: stderr}, condition number) or ({}, inf) when the curvature is singular.
    """
    theta = np.asarray(theta, dtype=float)
    P = theta.size
    h = step * np.maximum(1.0, np.abs(theta))
    E = np.diag(h)
    both = np.concatenate([theta + E, theta - E])
    f = logpred(both)
    J = ((f[:P] - f[P:]) / (2 * h[:, None])).T  # (n, P)
    r = logL - logpred(theta[None, :])[0]
    n = len(r)
    sigma2 = float(np.sum(r**2) / max(n - P, 1))
    F = J.T @ J
    if not np.isfinite(F).all():
        return {}, np.inf
    d = np.sqrt(np.diag(F))
    if (d <= 0).any():
        return {}, np.inf
    R = F / np.outer(d, d)
    lam = np.linalg.eigvalsh(R)
    cond = float(lam.max() / lam.min()) if lam.min() > 0 else np.inf
    if not np.isfinite(cond):
        return {}, cond
    try:  # eigenvalues > 0 in float but R singular to inv (a 2-budget study's 3 vertices)
        cov = np.linalg.inv(R) / np.outer(d, d) * sigma2
    except np.linalg.LinAlgError:
        return {}, np.inf
    nat = natural(both)
    G = np.stack([(nat[k][:P] - nat[k][P:]) / (2 * h) for k in names])  # (m, P)
    var = np.einsum("mp,pq,mq->m", G, cov, G)
    return {k: float(np.sqrt(max(v, 0.0))) for k, v in zip(names, var, strict=True)}, cond


def curvature_warnings(se, cond, params, exponents, z=1.96):
    """Warnings from `curvature`: a flat direction, an exponent its curvature cannot pin."""
    out = []
    if cond > FLAT:
        out.append(
            f"the objective is nearly flat along a combination of parameters (condition number "
            f"{cond:.2g} of their correlation at the optimum): the data do not determine them "
            "separately"
        )
    for name in exponents:
        if name in se and name in params and 2 * z * se[name] > WIDE * abs(params[name]):
            share = share_above(2 * z * se[name] / abs(params[name]), WIDE)
            out.append(
                f"{name} = {params[name]:.3g} ± {z * se[name]:.2g} (95%, from the curvature of "
                f"the fit): the interval is {share} of the value (more than {WIDE:.0%}); the "
                "exponent is poorly determined by these data"
            )
    return out


BELOW = 10.0
"""predict warns of an N, D, C or U more than this factor below the smallest fitted: nobody
fits a scaling law to predict runs ten times smaller than all its runs (the small end is
where a power law is least trusted), so such an input is most likely in other units
(N=7 meant 7 billion, D=1400 meant 1.4 trillion)."""
ABOVE = 1e4
"""predict warns of an N, D, C or U more than this factor above the largest fitted: upward
extrapolation is a scaling law's purpose (studies predict 10-100x beyond their largest
run in C, Chinchilla's Gopher budget about 100x its runs), but four decades beyond any
study's reach is the size of a units slip (FLOPs given to a law fitted in PF-days)."""


def beyond_data(ranges: dict, given, caller: str = "predict") -> str | None:
    """The ExtrapolationWarning's message for `given`, or None when every value is within
    [lo / BELOW, hi * ABOVE] of its variable's fitted range.

    Args:
        ranges: {"N"/"D"/"C": [smallest, largest] fitted} (laws.table.data_ranges).
        given: (label, variable, values) triples: each variable's requested values (any
            shape) and how the message names them ("N", or "C=6ND").
        caller: the method the message names first (`predict`, `optimal`).
    """
    notes = []
    for label, var, x in given:
        if x is None or not ranges.get(var):
            continue
        lo, hi = ranges[var]
        x = np.asarray(x, dtype=float)
        small, big = float(x.min()), float(x.max())
        if small < lo / BELOW:
            notes.append(
                f"{label}={small:.4g} is {lo / small:.2g}x below the smallest {var} fitted ({lo:.4g})"
            )
        if big > hi * ABOVE:
            notes.append(
                f"{label}={big:.4g} is {big / hi:.2g}x above the largest {var} fitted ({hi:.4g})"
            )
    return f"{caller}: " + "; ".join(notes) + "; check the units" if notes else None


FLOOR_SHARE = 1e-3
"""A floor E below this share of every fitted loss has run to its limit 0."""


def resamples(points: int, params: int, bootstrap: int) -> tuple[int, list[str]]:
    """(the bootstrap resamples to draw, warnings): none where there are no more points
    than parameters, since the fit passes through each and every resample reproduces it
    (its intervals were of zero width, the law 'known exactly')."""
    if points > params:
        return bootstrap, []
    if not bootstrap:
        return 0, []
    return 0, [f"{points} points for {params} parameters: the fit passes through every "
               "point, so no interval can be drawn (fit more runs)"]  # fmt: skip


def floor_at_zero(law, predicted) -> list[str]:
    """A warning when the fitted irreducible loss E ran to its limit 0 (under FLOOR_SHARE
    of every fitted loss): the runs then do not determine E (the objective is flat there,
    so the bootstrap cannot move it and the estimator gives it no interval), and the
    exponents absorb the missing floor (a small exponent mimics one)."""
    E = law.params_.get("E")
    floor = FLOOR_SHARE * predicted.min()
    if E is None or not np.isfinite(predicted).all() or floor <= E:
        return []
    return [
        f"E ran to {E:.3g}, its limit 0 (under {FLOOR_SHARE:.1%} of every fitted loss): these "
        "runs do not determine the irreducible loss, no interval is given for E, and the "
        "exponents stand in for the floor (read them with care)"
    ]


def parametric(law, form, table, res, curv=None):
    """Warnings of an N, D or C law's fit; `curv`: the (stderr, condition) of `curvature`."""
    out = []
    n, P = len(table), len(form.param_names)
    if n < 3 * P:
        out.append(f"only {n} points for {P} parameters (fewer than 3x): the fit is fragile")
    for var in form.varies:
        v = getattr(table, var)
        with np.errstate(over="ignore"):  # 1e-300 to 1e9 spans inf: decades enough
            span = v.max() / v.min()
        if span < 10:
            out.append(
                f"{var} spans only {span:.3g}x (less than a decade): its exponent is weakly constrained"
            )
    out += table_checks(table)
    if set(form.varies) >= {"N", "D"}:
        r = np.corrcoef(np.log(table.N), np.log(table.D))[0, 1]
        if abs(r) > 0.95:
            out.append(
                f"log N and log D are collinear (correlation {r:.3f}): the N and D exponents "
                "cannot be separated; vary N and D independently (e.g. IsoFLOP profiles)"
            )
    if not res["converged"]:
        out.append(f"the optimiser stopped at its iteration limit ({res['iterations']} iterations)")
    if res.get("boot_converged", 1.0) < 0.99:
        out.append(f"{1 - res['boot_converged']:.1%} of bootstrap refits hit the iteration limit")
    if curv is not None:
        out += curvature_warnings(*curv, law.params_, form.exponents)
    out += exponents(law, form.exponents)
    return out


def table_checks(table) -> list[str]:
    """The warnings about a table's columns that every law reading them gives: a loss in
    other units, tokens or parameters in millions or billions, rows listed twice."""
    return (
        mixed_runs(table)
        + loss_scale(table)
        + token_units(table)
        + compute_units(table)
        + repeated_rows(table)
    )


def mixed_runs(table) -> list[str]:
    """Runs of several architectures or tokenizers fitted as one law's points: `report`
    refuses the second, fits each architecture apart, and `fit` took both in silently."""
    from_table = getattr(table, "mixed", None) or {}
    out = []
    for col, counts in from_table.items():
        shown = ", ".join(f"{v} {n}" for v, n in sorted(counts.items())[:4])
        more = " ..." if len(counts) > 4 else ""
        why = {"tokenizer_id": ": a loss per token of one tokenizer is not another's"}
        out.append(
            f"the rows fitted hold {len(counts)} values of column {col} ({shown}{more}), one "
            f"law through them all{why.get(col, '')}; --where {col}=VALUE fits one"
        )
    return out


def loss_scale(table) -> list[str]:
    """A loss column whose values reach above LOSS_MAX nats: perplexity (exp of the loss) read
    as the loss fitted without a word (losses of 5 to 100 gave E = 7.1, exponents 0.67 and
    0.56), or a sum over tokens."""
    top = float(np.max(table.L))
    if top <= LOSS_MAX:
        return []
    col = table.conventions.get("L", "the loss column")
    return [
        f"the loss column {col!r} reaches {top:.4g}, above {LOSS_MAX:g} nats per token (a "
        "uniform guess over 1e8 tokens is 18.4): is it perplexity (exp of the loss) or a sum "
        "over tokens? The laws fit the mean loss per token in nats (--loss-col names it)"
    ]


def token_units(table) -> list[str]:
    """A median of tokens per parameter no run has (below 1e-3 or above 1e5): D or N in
    millions or billions. The fit only rescales a coefficient (B), so nothing else shows
    it, while `plan` turns C = 6ND into a model of 4e13 parameters trained on 4e5 tokens."""
    if table.N is None or table.D is None:
        return []
    ratio = float(np.median(table.D / table.N))
    lo, hi = TOKENS_PER_PARAM
    if lo <= ratio <= hi:
        return []
    n, d = (table.conventions.get(k, k) for k in ("N", "D"))
    return [
        f"the runs see a median of {ratio:.3g} tokens per parameter (D {d!r} / N {n!r}), "
        "outside 1e-3 to 1e5: is one of them in millions or billions? N and D are "
        "counts of parameters and tokens (plan's C = 6ND takes them as such)"
    ]


def compute_units(table) -> list[str]:
    """A FLOPs column (C read, not derived as 6ND) whose median against 6ND lies outside
    FLOPS_PER_6ND: C in other units. An N, D law reads C only for its ranges, so it fitted
    without a word while plan's extrapolation warnings and calibrate="C" took it as FLOPs."""
    if table.N is None or table.D is None or table.C is None:
        return []
    if table.conventions.get("C") in (None, "6ND"):
        return []
    ratio = float(np.median(table.C / (6.0 * table.N * table.D)))
    lo, hi = FLOPS_PER_6ND
    if lo <= ratio <= hi:
        return []
    c, n, d = (table.conventions.get(k, k) for k in ("C", "N", "D"))
    return [
        f"the FLOPs column {c!r} is a median {ratio:.3g}x 6ND (N {n!r}, D {d!r}), outside "
        f"{lo:g} to {hi:g}: is it in other units (PF-days, GFLOPs)? C is a count of "
        "FLOPs; --c-col names another column"
    ]


def repeated_rows(table) -> list[str]:
    """Rows whose numbers (N, D, C, loss, U and run) all equal an earlier row's: a run listed
    twice (a table pasted twice, or a run copied under two labels), which then counts twice in
    the fit and in every resample; seed repeats differ in their loss. A duplicate row fitted
    without a word."""
    cols = [getattr(table, k) for k in ("N", "D", "C", "L", "U", "groups")]
    cols = [c for c in cols if c is not None]
    seen: set = set()
    repeats = []
    for i, key in enumerate(zip(*cols, strict=True)):
        if key in seen:
            repeats.append(i)
        seen.add(key)
    if not repeats:
        return []
    i = repeats[0]
    first = ", ".join(
        f"{k}={getattr(table, k)[i]:.6g}" for k in ("N", "D", "L") if getattr(table, k) is not None
    )
    rows = "row repeats" if len(repeats) == 1 else "rows repeat"
    return [
        f"{len(repeats)} {rows} an earlier row's N, D and loss exactly (the first: {first}): "
        "a run listed twice counts twice in the fit and its bootstrap (seed repeats differ in "
        "their loss); drop the copies, or check which run each row is"
    ]


def flat(law) -> list[str]:
    """A warning naming the parameters whose bootstrap draws were all one value (the
    estimator gives them no interval); per-budget values (names with "@") left out."""
    names = [k for k in getattr(law, "flat_draws_", []) if "@" not in k]
    if not names:
        return []
    return [
        f"the bootstrap could not move {', '.join(names)} (every resample it could fit gave "
        "the fit itself): no interval is given for them"
    ]
