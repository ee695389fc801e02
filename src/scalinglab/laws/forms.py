"""The parametric law forms: their parameters, starts, objectives and predictions.

Every form predicts log L and is fitted by Huber(δ) on log L − log L_pred,
summed over points, with analytic gradients (objective.py). Internally a form
works in its own unconstrained coordinates `theta`; `natural(theta)` maps them
to the parameters users read (E, A, B, alpha, beta, ...), vectorised over rows.

- chinchilla (Hoffmann et al. 2022): L = E + A/N^α + B/D^β, theta = (a, b, e, α, β)
  with A = e^a, B = e^b, E = e^e; fitted in raw log N, log D, from Hoffmann's grid.
- kaplan (Kaplan et al. 2020, eq. 1.5): L = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D.
- power-n / power-d / power-c: L = E + (X_c/X)^α, or (X_c/X)^α with floor=False.
The non-Chinchilla forms work in log(X / geometric mean of X), so one grid of
starts suits any units.
"""

import itertools

import numpy as np

from scalinglab.laws.objective import ChinchillaObjective, huber, summed, weight_rows

HOFFMANN_GRID = np.array(
    list(
        itertools.product(
            np.arange(0, 30, 5.0),  # a
            np.arange(0, 30, 5.0),  # b
            np.arange(-1, 1.5, 0.5),  # e
            np.arange(0, 2.5, 0.5),  # alpha
            np.arange(0, 2.5, 0.5),  # beta
        )
    )
)


def _fg(pred, dpred, logL, w, delta):
    """Summed Huber value and gradient from predictions (k, n) and their derivatives (P, k, n)."""
    h, psi = huber(pred - logL, delta)
    if w is not None:
        h, psi = h * w, psi * w
    return h.sum(axis=1), np.einsum("pkn,kn->kp", dpred, psi)


class Chinchilla:
    name = "chinchilla"
    needs = ("N", "D")
    varies = ("N", "D")
    param_names = ("E", "A", "B", "alpha", "beta")
    exponents = ("alpha", "beta")

    def __init__(self, delta=1e-3):
        self.delta = delta

    def prepare(self, t):
        return {"logN": np.log(t.N), "logD": np.log(t.D), "logL": np.log(t.L)}

    def starts(self, ctx):
        return HOFFMANN_GRID.copy()

    def objective(self, ctx, weights=None):
        obj = ChinchillaObjective(ctx["logN"], ctx["logD"], ctx["logL"], weights, self.delta)
        return obj

    def natural(self, ctx, th):
        th = np.atleast_2d(th)
        # a degenerate bootstrap draw may put log B past a float's range: inf, which the
        # intervals leave out (laws.intervals), not a warning printed to the user
        with np.errstate(over="ignore"):
            return {
                "E": np.exp(th[:, 2]),
                "A": np.exp(th[:, 0]),
                "B": np.exp(th[:, 1]),
                "alpha": th[:, 3],
                "beta": th[:, 4],
            }

    @staticmethod
    def derived(p):
        s = p["alpha"] + p["beta"]
        return {"a": p["beta"] / s, "b": p["alpha"] / s}

    @staticmethod
    def predict(p, N=None, D=None, C=None):
        # a degenerate draw (B = inf, D^β = inf) predicts NaN, which intervals leave out
        with np.errstate(over="ignore", invalid="ignore"):
            return p["E"] + p["A"] / np.power(N, p["alpha"]) + p["B"] / np.power(D, p["beta"])


class Kaplan:
    name = "kaplan"
    needs = ("N", "D")
    varies = ("N", "D")
    param_names = ("alpha_N", "alpha_D", "N_c", "D_c")
    exponents = ("alpha_N", "alpha_D")

    def __init__(self, delta=1e-3):
        self.delta = delta

    def prepare(self, t):
        n0, d0 = np.exp(np.log(t.N).mean()), np.exp(np.log(t.D).mean())
        return {
            "x": np.log(t.N / n0),
            "z": np.log(t.D / d0),
            "logL": np.log(t.L),
            "n0": n0,
            "d0": d0,
        }

    def starts(self, ctx):
        mean_log_l = ctx["logL"].mean()
        out = []
        for aD, r in itertools.product((0.03, 0.06, 0.12, 0.25, 0.5), (0.5, 0.8, 1.25, 2.0)):
            s = max(mean_log_l / aD, 0.1)  # the sum inside the power, at the data's centre
            for du, dv in itertools.product((-2.0, 0.0, 2.0), repeat=2):
                out.append((aD, r, s / r + du, s + dv))
        return np.array(out)

    def objective(self, ctx, weights=None):
        x, z, logL = ctx["x"], ctx["z"], ctx["logL"]

        def part(th, rows, wrow, sl):
            aD, r, u, v = (th[:, i : i + 1] for i in range(4))
            xs = x[sl]
            t1, t2 = r * (u - xs), v - z[sl]
            m = np.maximum(t1, t2)
            e1, e2 = np.exp(t1 - m), np.exp(t2 - m)
            s = e1 + e2
            S = m + np.log(s)
            p1, p2 = e1 / s, e2 / s
            dpred = np.stack(
                [np.broadcast_to(S, t1.shape), aD * p1 * (u - xs), aD * p1 * r, aD * p2]
            )
            w = weight_rows(weights, rows, wrow, sl)
            # a trial point far out (aD·S past 1e308) predicts inf: its objective is inf and
            # the optimiser steps back, as from Chinchilla's; numpy's warning said nothing more
            with np.errstate(over="ignore"):
                return _fg(aD * S, dpred, logL[sl], w, self.delta)

        return lambda th, rows, wrow=None: summed(part, th, rows, wrow, logL.size, 4)

    def natural(self, ctx, th):
        th = np.atleast_2d(th)
        with np.errstate(over="ignore"):  # as Chinchilla's: a degenerate draw gives inf
            return {
                "alpha_N": th[:, 0] * th[:, 1],
                "alpha_D": th[:, 0],
                "N_c": ctx["n0"] * np.exp(th[:, 2]),
                "D_c": ctx["d0"] * np.exp(th[:, 3]),
            }

    @staticmethod
    def derived(p):
        return {}

    @staticmethod
    def predict(p, N=None, D=None, C=None):
        ratio = p["alpha_N"] / p["alpha_D"]
        return np.power(np.power(p["N_c"] / N, ratio) + p["D_c"] / D, p["alpha_D"])


class Power:
    """L = E + (X_c / X)^α for X in {N, D, C}; without E when floor=False."""

    exponents = ("alpha",)

    def __init__(self, var, floor=True, delta=1e-3):
        self.var = var
        self.floor = floor
        self.delta = delta
        self.name = f"power-{var.lower()}"
        self.needs = (var,)
        self.varies = (var,)
        self.param_names = (("E",) if floor else ()) + ("alpha", f"{var}_c")

    def prepare(self, t):
        X = getattr(t, self.var)
        x0 = np.exp(np.log(X).mean())
        return {"x": np.log(X / x0), "logL": np.log(t.L), "x0": x0, "Lmin": t.L.min()}

    def starts(self, ctx):
        alphas = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
        if not self.floor:
            return np.array([(ctx["logL"].mean(), a) for a in alphas])
        out = []
        for a, frac in itertools.product(alphas, (0.1, 0.3, 0.6, 0.9)):
            E = frac * ctx["Lmin"]
            # the reducible part at the data's centre, so every start passes near the data
            red = max(np.exp(ctx["logL"].mean()) - E, 1e-3)
            for dc in (-1.0, 0.0, 1.0):
                out.append((np.log(red) + dc, a, np.log(E)))
        return np.array(out)

    def objective(self, ctx, weights=None):
        x, logL = ctx["x"], ctx["logL"]

        def part(th, rows, wrow, sl):
            w = weight_rows(weights, rows, wrow, sl)
            c, a = th[:, 0:1], th[:, 1:2]
            xs, ls = x[sl], logL[sl]
            t1 = c - a * xs
            if not self.floor:
                dpred = np.stack([np.ones_like(t1), np.broadcast_to(-xs, t1.shape)])
                return _fg(t1, dpred, ls, w, self.delta)
            e = th[:, 2:3]
            m = np.maximum(t1, e)
            e1, e2 = np.exp(t1 - m), np.exp(e - m)
            s = e1 + e2
            p1, p2 = e1 / s, e2 / s
            dpred = np.stack([p1, -p1 * xs, p2])
            return _fg(m + np.log(s), dpred, ls, w, self.delta)

        P = len(self.param_names)
        return lambda th, rows, wrow=None: summed(part, th, rows, wrow, logL.size, P)

    def natural(self, ctx, th):
        th = np.atleast_2d(th)
        c, a = th[:, 0], th[:, 1]
        # (X_c/X)^α = exp(c − α log(X/x0))  =>  log X_c = c/α + log x0
        with np.errstate(divide="ignore", over="ignore"):
            xc = ctx["x0"] * np.exp(c / a)
        out = {"alpha": a, f"{self.var}_c": xc}
        if self.floor:
            out = {"E": np.exp(th[:, 2]), **out}
        return out

    @staticmethod
    def derived(p):
        return {}

    def predict(self, p, N=None, D=None, C=None):
        X = {"N": N, "D": D, "C": C}[self.var]
        return p.get("E", 0.0) + np.power(p[f"{self.var}_c"] / X, p["alpha"])


class NDInteraction(Chinchilla):
    """L = E + A/N^α + B·N^γ/D^β: the data term's scale depends on N (an N–D interaction,
    after Li et al. 2025's Farseer, whose data term varies with N; γ = 0 is Chinchilla).
    theta = (a, b, e, α, β, γ), log L = LSE(a − α log N, b − β log D + γ log N, e)."""

    name = "nd-interaction"
    param_names = (*Chinchilla.param_names, "gamma")

    def starts(self, ctx):
        # Hoffmann's grid at γ = 0 (Chinchilla's starts): the pruned starts move γ
        return np.column_stack([HOFFMANN_GRID, np.zeros(len(HOFFMANN_GRID))])

    def objective(self, ctx, weights=None):
        logN, logD, logL = ctx["logN"], ctx["logD"], ctx["logL"]

        def part(th, rows, wrow, sl):
            a, b, e, al, be, ga = (th[:, i : i + 1] for i in range(6))
            x, z = logN[sl], logD[sl]
            u1, u2 = a - al * x, b - be * z + ga * x
            u3 = np.broadcast_to(e, u1.shape)
            m = np.maximum(np.maximum(u1, u2), u3)
            e1, e2, e3 = np.exp(u1 - m), np.exp(u2 - m), np.exp(u3 - m)
            s = e1 + e2 + e3
            p1, p2, p3 = e1 / s, e2 / s, e3 / s
            dpred = np.stack([p1, p2, p3, -p1 * x, -p2 * z, p2 * x])
            w = weight_rows(weights, rows, wrow, sl)
            return _fg(m + np.log(s), dpred, logL[sl], w, self.delta)

        return lambda th, rows, wrow=None: summed(part, th, rows, wrow, logL.size, 6)

    def natural(self, ctx, th):
        th = np.atleast_2d(th)
        return {**super().natural(ctx, th), "gamma": th[:, 5]}

    @staticmethod
    def derived(p):
        return {}  # with γ ≠ 0 the compute-optimal split is not Chinchilla's a, b

    @staticmethod
    def predict(p, N=None, D=None, C=None):
        with np.errstate(over="ignore", invalid="ignore"):
            data = p["B"] * np.power(N, p["gamma"]) / np.power(D, p["beta"])
            return p["E"] + p["A"] / np.power(N, p["alpha"]) + data


def make_form(law, floor=True, delta=1e-3):
    if law == "chinchilla":
        return Chinchilla(delta)
    if law == "kaplan":
        return Kaplan(delta)
    if law == "nd-interaction":
        return NDInteraction(delta)
    if law in ("power-n", "power-d", "power-c"):
        return Power(law[-1].upper(), floor=floor, delta=delta)
    raise KeyError(law)
