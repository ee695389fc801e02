"""Synthetic runs tables drawn from known laws, with multiplicative log-normal noise."""

import numpy as np

TRUE_CHIN = {"E": 1.7, "A": 400.0, "B": 1200.0, "alpha": 0.34, "beta": 0.28}


def chinchilla_law(N, D, p=TRUE_CHIN):
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


def grid_table(law, sizes, tokens, sigma, rng):
    N, D = (a.ravel() for a in np.meshgrid(sizes, tokens))
    L = law(N, D) * np.exp(sigma * rng.standard_normal(N.size))
    return {"N": N, "D": D, "L": L}


def power_table(var, E, alpha, xc, xs, sigma, rng):
    L = E + (xc / xs) ** alpha
    return {var: xs, "L": L * np.exp(sigma * rng.standard_normal(xs.size))}
