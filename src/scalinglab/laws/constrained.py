"""The data-constrained law (Muennighoff et al. 2023): repeated data and excess parameters.

    L = E + A / N'^α + B / D'^β
    D' = U_D + U_D·R*_D·(1 − exp(−R_D / R*_D)),  R_D = max(D / U_D − 1, 0)
    N' = U_N + U_N·R*_N·(1 − exp(−R_N / R*_N)),  R_N = max(N / U_N − 1, 0)
    U_N = min(N, N_opt(U_D))

U_D = min(U, D) is the number of unique tokens seen (U from a column: the
unique tokens available), R_D the repetitions beyond the first epoch;
repeated tokens are worth less and less, saturating at R*_D·U_D extra unique
tokens. U_N is the compute-optimal model size for U_D unique tokens seen once
(Chinchilla's allocation under the same A, B, α, β: N_opt = G·(G·U_D)^(β/α),
G = (αA/(βB))^(1/(α+β))); parameters beyond it decay the same way with R*_N.
With plenty of data (D ≤ U_D, N ≤ U_N) it is Chinchilla's law.

Fitted as the authors did: Huber (δ) on log L − log L_pred summed over runs,
in θ = (log A, log B, log E, α, β, log R*_D, log R*_N), from a grid of starts.
`tie=("alpha=beta",)` fits one exponent for both; `fix={"A": 520.8, ...}`
holds parameters at given values (the authors fixed A, B, E, α = β from their
Chinchilla fit on C4 and fitted only R*_D, R*_N on their runs). The gradient is
by central differences (the min() in U_N makes it piecewise). The runs are read by
`scalinglab.laws.table.read_table` with U among the quantities needed, as every law's.
"""

import itertools
from dataclasses import dataclass, field

import numpy as np

from scalinglab.errors import ConfigError, FitError
from scalinglab.laws import warn
from scalinglab.laws.fit import bootstrap_weights, fit_best, refit_resamples, run_weights
from scalinglab.laws.intervals import shaped
from scalinglab.laws.objective import huber
from scalinglab.laws.settings import csv_mapping, huber_delta
from scalinglab.laws.table import RunsTable, compute_range, fitted_ranges, read_table

NAMES = ("A", "B", "E", "alpha", "beta", "R_D", "R_N")
LOGGED = ("A", "B", "E", "R_D", "R_N")
POSITIVE = (*LOGGED, "alpha", "beta")  # --fix alpha=-1: "no start gave a finite objective"
TIES = ("alpha=beta",)
FD_STEP = 1e-6


@dataclass
class ConstrainedTable:
    """N, D, U and L as arrays (fit_law reads it as a dict of those columns)."""

    N: np.ndarray
    D: np.ndarray
    U: np.ndarray
    L: np.ndarray
    source: str = "<memory>"
    sha256: str = ""
    conventions: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.L)


def parse_fix(items, names=NAMES, positive=POSITIVE) -> dict:
    """{name: value} of `--fix NAME=VALUE` items for a law with parameters `names`
    (those in `positive` must be > 0). The curve laws use it too."""
    out = {}
    for item in items or ():
        name, sep, val = str(item).partition("=")
        name = name.strip()
        if not sep or name not in names:
            raise ConfigError(
                f"--fix {item!r}: expected NAME=VALUE with NAME one of {', '.join(names)}"
            )
        if name in out:  # the last one held silently
            raise ConfigError(f"--fix {name} is given twice ({name}={out[name]:g}, {item})")
        try:
            out[name] = float(val)
        except ValueError:
            raise ConfigError(f"--fix {item!r}: {val!r} is not a number") from None
        if not np.isfinite(out[name]):
            raise ConfigError(f"--fix {item!r}: {name} must be finite")
        if name in positive and not out[name] > 0:
            raise ConfigError(f"--fix {item!r}: {name} must be > 0")
    return out


def parse_tie(items) -> bool:
    for item in items or ():
        if str(item).replace(" ", "") not in TIES:
            raise ConfigError(
                f"--tie {item!r}: the data-constrained law ties only {', '.join(TIES)}"
            )
    return bool(items)


def _theta_value(name, v):
    return np.log(v) if name in LOGGED else v


class DataConstrained:
    name = "data-constrained"
    exponents = ("alpha", "beta")

    def __init__(self, delta=1e-3, fix=None, tie=False):
        self.delta = delta
        self.fix = dict(fix or {})
        self.tie = tie
        if (
            tie
            and "alpha" in self.fix
            and "beta" in self.fix
            and self.fix["alpha"] != self.fix["beta"]
        ):
            raise ConfigError("--tie alpha=beta with different --fix alpha and --fix beta")
        if tie and "beta" in self.fix:
            self.fix.setdefault("alpha", self.fix["beta"])
        self.free = [n for n in NAMES if n not in self.fix and not (tie and n == "beta")]
        if not self.free:  # as the curve laws say (it was a ValueError from the starts)
            tied = " (--tie alpha=beta holds beta with alpha)" if "beta" not in self.fix else ""
            raise ConfigError(
                f"--fix: every parameter of --law data-constrained is held{tied}; "
                "none is left to fit"
            )
        self.param_names = NAMES

    def full(self, th):
        """(k, 7) θ in NAMES order from the free coordinates (k, len(free))."""
        th = np.atleast_2d(th)
        out = np.empty((len(th), len(NAMES)))
        for i, n in enumerate(NAMES):
            if n in self.fix:
                out[:, i] = _theta_value(n, self.fix[n])
            elif n in self.free:
                out[:, i] = th[:, self.free.index(n)]
        if self.tie:
            out[:, 4] = out[:, 3]
        return out

    def natural(self, th):
        f = self.full(th)
        with np.errstate(over="ignore"):
            return {n: (np.exp(f[:, i]) if n in LOGGED else f[:, i]) for i, n in enumerate(NAMES)}

    @staticmethod
    def repeats(p, N, D, U):
        """(U, U_N, R_N, R_D): the unique tokens seen (no more than D), the parameters
        those tokens make worth having, and the excess parameters and repeated epochs
        beyond them (the counts R*_N and R*_D decay)."""
        A, B, al, be = (p[n] for n in ("A", "B", "alpha", "beta"))
        U = np.minimum(U, D)
        G = (al * A / (be * B)) ** (1.0 / (al + be))
        UN = np.minimum(N, G * (G * U) ** (be / al))
        return U, UN, np.maximum(N / UN - 1.0, 0.0), np.maximum(D / U - 1.0, 0.0)

    @staticmethod
    def log_pred(p, N, D, U):
        """log L for natural params p (arrays (k, 1) or floats) at N, D, U."""
        A, B, E, al, be, rd, rn = (p[n] for n in NAMES)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            U, UN, RN, RD = DataConstrained.repeats(p, N, D, U)
            Np = UN * (1.0 + rn * -np.expm1(-RN / rn))
            Dp = U * (1.0 + rd * -np.expm1(-RD / rd))
            terms = np.stack(
                np.broadcast_arrays(
                    np.log(A) - al * np.log(Np), np.log(B) - be * np.log(Dp), np.log(E)
                )
            )
            m = terms.max(axis=0)
            return m + np.log(np.exp(terms - m).sum(axis=0))

    @staticmethod
    def predict(p, N, D, U):
        return np.exp(DataConstrained.log_pred(p, N, D, U))

    def objective(self, t, weights=None):
        logL = np.log(t.L)
        P = len(self.free)
        steps = FD_STEP * np.eye(P)

        def value(th, w):
            nat = {k: v[:, None] for k, v in self.natural(th).items()}
            r = self.log_pred(nat, t.N, t.D, t.U) - logL
            h, _ = huber(r, self.delta)
            if w is not None:
                h = h * w
            return np.where(np.isfinite(r).all(axis=1), h.sum(axis=1), np.inf)

        def fun(th, rows, wrow=None):
            k = len(th)
            w = None if weights is None else weights[wrow if wrow is not None else rows]
            pts = np.concatenate([th[None], th[None] + steps[:, None], th[None] - steps[:, None]])
            ww = None if w is None else np.tile(w, (2 * P + 1, 1))
            with np.errstate(over="ignore", invalid="ignore"):
                f = value(pts.reshape(-1, P), ww).reshape(2 * P + 1, k)
                g = ((f[1 : P + 1] - f[P + 1 :]) / (2 * FD_STEP)).T
            bad = ~np.isfinite(g).all(axis=1) | ~np.isfinite(f[0])
            return np.where(bad, np.inf, f[0]), np.where(bad[:, None], 0.0, g)

        return fun

    def starts(self, t):
        grid = {
            "A": np.exp(np.arange(0, 30, 5.0)),
            "B": np.exp(np.arange(0, 30, 5.0)),
            "E": np.exp(np.arange(-1, 1.5, 0.5)),
            "alpha": np.array([0.25, 0.5, 1.0]),
            "beta": np.array([0.25, 0.5, 1.0]),
            # the authors' grid when only R*_D and R*_N are free; else one start each
            "R_D": np.array([20 / 3, 40 / 3, 20.0]) if len(self.free) <= 2 else np.array([15.0]),
            "R_N": np.array([20 / 3, 40 / 3, 20.0]) if len(self.free) <= 2 else np.array([5.0]),
        }
        axes = [[_theta_value(n, v) for v in grid[n]] for n in self.free]
        return np.array(list(itertools.product(*axes)), dtype=float).reshape(-1, len(self.free))


def fit_constrained(form, t, *, bootstrap=0, seed=0, boot_starts=1, prune=True, starts=None):
    """Fit; `starts` (k, free) in natural units replaces the grid (e.g. to follow a paper)."""
    n, P = len(t), len(form.free)
    if n < P:
        note = t.filtered() if isinstance(t, RunsTable) else ""  # rows the filters removed
        raise FitError(
            f"{t.source}: {n} runs for {P} free parameters of law 'data-constrained'{note}"
        )
    if starts is not None:
        starts = np.array(
            [[_theta_value(k, v) for k, v in zip(form.free, row, strict=True)] for row in starts]
        )
    res, out = fit_best(
        form.objective(t),
        form.starts(t) if starts is None else starts,
        prune,
        f"{t.source}: law 'data-constrained'",
    )
    if bootstrap:
        groups = getattr(t, "groups", None)  # checkpoints: resample whole runs
        W = bootstrap_weights(n, bootstrap, seed) if groups is None else run_weights(
            groups, bootstrap, seed)  # fmt: skip
        out.update(refit_resamples(lambda w: form.objective(t, w), res, W, boot_starts))
    return out


def read(law, table) -> RunsTable:
    """The runs a data-constrained fit uses: `read_table` with the law's table settings
    (column aliases and mappings, --where with N, D, C, L, U naming their columns,
    completed rows only where there is a status column, --min-over, --drop-highest,
    --n-kind, --checkpoints), needing N, D and the unique tokens U, as a backtest reads."""
    if isinstance(table, ConstrainedTable):
        table = {"N": table.N, "D": table.D, "U": table.U, "L": table.L}
    t = read_table(table, need=("N", "D", "U"), **csv_mapping(law.settings))
    t.require("data-constrained", "N", "D", "U")
    return t


def fit_law(law, table):
    """ScalingLaw('data-constrained').fit(table): its learned attributes, as a dict."""
    s = law.settings
    t = read(law, table)
    form = make(law)
    # as many free parameters as runs: the fit passes through every run, every resample
    # reproduces it, and its zero-width intervals would claim the law known exactly
    boot, too_few = warn.resamples(len(t), len(form.free), s["bootstrap"])
    res = fit_constrained(
        form,
        t,
        bootstrap=boot,
        seed=s["seed"],
        boot_starts=s["boot_starts"],
        prune=s["prune"],
    )
    nat = form.natural(res["theta"])
    samples = None if res["samples"] is None else form.natural(res["samples"])
    warnings = warn.table_checks(t)
    if not res["converged"]:
        warnings.append(
            f"the optimiser stopped at its iteration limit ({res['iterations']} iterations)"
        )
    limits = at_limit(form, {k: float(v[0]) for k, v in nat.items()}, t)
    warnings += limits.values()
    warnings += too_few
    return {
        "params_": {k: float(v[0]) for k, v in nat.items()},
        "derived_": {},
        "objective_": res["objective"],
        "n_points_": len(t),
        "converged_": res["converged"],
        "conventions_": {
            **{k: v for k, v in t.conventions.items() if not k.endswith("_tried")},
            "fixed": sorted(form.fix),
            "tied": ["alpha=beta"] if form.tie else [],
        },
        "data_": {
            "source": t.source,
            "sha256": t.sha256,
            "rows": len(t),
            "points_sha256": t.points_sha256(),
            "C_range": compute_range(6.0 * np.asarray(t.N) * np.asarray(t.D)),
            **fitted_ranges(t),
        },
        "samples": samples,
        "warnings": warnings,
        "at_limit": sorted(limits),
        "table": t,
    }


LIMIT_EFFECT = 1e-3
"""A repetition parameter whose whole effect on every run's effective N' or D' is below
this share has run to its limit: the runs cannot tell its value from the limit's."""


def at_limit(form, p, t) -> dict:
    """{name: warning} for a free R_D run off to infinity (no run repeats its data enough
    to feel the decay) or a free R_N run down to 0 (parameters beyond the compute-optimal
    size add nothing). Such a value is a bound the data set, not an estimate: its bootstrap
    draws do not move (the objective is flat there), so it gets no interval."""
    out = {}
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        _, _, excess, reps = form.repeats(p, t.N, t.D, t.U)
    rd = p["R_D"]
    if "R_D" in form.free and reps.max() > 0:
        # D' = U (1 + R_D (1 - exp(-reps / R_D))) against its limit U (1 + reps) = D
        with np.errstate(over="ignore", invalid="ignore"):
            lost = 1.0 - (1.0 + rd * -np.expm1(-reps / rd)) / (1.0 + reps)
        if np.nanmax(lost) < LIMIT_EFFECT:
            out["R_D"] = (
                f"R_D ran to {rd:.3g}: at it even the most repeated run "
                f"({reps.max() + 1:.3g} epochs) loses under {LIMIT_EFFECT:.1%} of its tokens' "
                "value to repetition, so these runs bound R_D from below only (no interval "
                "is given for it; --fix R_D=VALUE holds it)"
            )
    rn = p["R_N"]
    if "R_N" in form.free:
        # N' = U_N (1 + R_N (1 - exp(-excess / R_N))) against its limit U_N (R_N = 0)
        with np.errstate(over="ignore", invalid="ignore"):
            gained = rn * -np.expm1(-excess / rn)
        if excess.max() > 0 and np.nanmax(gained) < LIMIT_EFFECT:
            out["R_N"] = (
                f"R_N ran to {rn:.3g}, its limit 0: parameters beyond the compute-optimal size "
                f"for the unique data add under {LIMIT_EFFECT:.1%} to any run's effective N, "
                "which these runs cannot tell from nothing (no interval is given for it)"
            )
    return out


def make(law):
    s = law.settings
    return DataConstrained(
        delta=huber_delta(law.law, s),
        fix=parse_fix(s["fix"], NAMES, POSITIVE),
        tie=parse_tie(s["tie"]),
    )


def predict(law, N, D, U, return_ci=False):
    if N is None or D is None or U is None:
        raise ConfigError("law 'data-constrained' predicts from N, D and U (unique tokens)")
    N, D, U = (np.asarray(x, dtype=float) for x in (N, D, U))
    form = make(law)
    pred = form.predict(law.params_, N, D, U)
    if not return_ci:
        return pred
    if law.samples_ is None:
        raise FitError("no bootstrap samples: fit with bootstrap > 0 for intervals")
    sp = {k: law.samples_[k][:, None] for k in NAMES}
    draws = form.predict(sp, *(np.atleast_1d(x)[None, :] for x in (N, D, U)))
    q = 100 * (1 - law.settings["ci_level"]) / 2
    lo, hi = np.nanpercentile(draws, [q, 100 - q], axis=0)
    return shaped(pred, lo, hi)
