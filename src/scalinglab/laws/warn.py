"""Warnings a careful analyst would give about a fit (returned as sentences, never printed)."""

import numpy as np


def exponents(law, names):
    """An exponent whose bootstrap interval is wider than its value is not determined."""
    out = []
    for name in names:
        if name in law.ci_ and name in law.params_:
            lo, hi = law.ci_[name]
            if hi - lo > abs(law.params_[name]):
                out.append(
                    f"the {law.settings['ci_level']:.0%} interval of {name} "
                    f"[{lo:.3g}, {hi:.3g}] is wider than its value {law.params_[name]:.3g}: "
                    "the exponent is not determined by these data"
                )
    return out


def parametric(law, form, table, res):
    out = []
    n, P = len(table), len(form.param_names)
    if n < 3 * P:
        out.append(f"only {n} points for {P} parameters (fewer than 3x): the fit is fragile")
    for var in form.varies:
        v = getattr(table, var)
        span = v.max() / v.min()
        if span < 10:
            out.append(
                f"{var} spans only {span:.3g}x (less than a decade): its exponent is weakly constrained"
            )
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
    out += exponents(law, form.exponents)
    return out
