"""From runs to conclusions: the fits, the frontier, the plan, the seed noise and the
backtest's prediction. No torch and no plotting here; the study and the report share it.
The fits take their settings from one `FitConfig` (a study's [fit] table).

- `isoflop` (Hoffmann Approach 2) per architecture on its IsoFLOP runs: N_opt(C),
  D_opt(C) and the frontier loss L_opt(C) at each budget (parabola vertices).
- `chinchilla` (Approach 3) on each architecture with enough runs: L(N, D).
- `power-c` on each architecture's compute-optimal frontier: L(C) = (C_c / C)^α
  through the per-budget vertices. Its interval comes from the IsoFLOP bootstrap
  (runs resampled within each budget, the parabolas refitted, the line refitted
  through the new vertices): with 2–3 budgets, resampling the vertices
  themselves would be meaningless. With 3 sizes per budget that resampling cannot
  show the runs' noise either (a resample keeps all 3 sizes, and is the fit, or
  has no parabola), so where seed repeats measured it, a second interval redraws
  every run's loss with that noise and refits (`frontier_noise_interval`).
- `ray` on a WSD ladder: L(C) = (C_c / C)^γ through the branch ends at one tokens per
  parameter D/N (a ray through the (N, D) plane), for a run on the same ray further out.
  At the quickstart's scale the loss along a ray near the compute-optimal ratio is a
  power law of C (benchmarks/results/ladder_design.md), where Chinchilla's five
  parameters, fitted on ladders of runs this short, miss by several percent.
- the seed noise: runs that differ only in their seed.
- the prediction for a new run (N, D, C), with its fit interval and a predictive
  interval that adds, in quadrature, the frontier's noise interval and the seed
  noise of the new run itself, since one new run is one draw.
"""

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

from scalinglab.config import check_known
from scalinglab.errors import ConfigError, DataError, FitError
from scalinglab.laws import ScalingLaw, warn
from scalinglab.laws.backtest import TRAIN_FRACS, rolling_backtest
from scalinglab.laws.constrained import DataConstrained
from scalinglab.laws.estimator import settings_for
from scalinglab.laws.intervals import budget_cuts as cuts_between_budgets
from scalinglab.laws.intervals import has_noise
from scalinglab.laws.isoflop import huber_loglog_fit, redrawn_vertices
from scalinglab.laws.settings import OLD_KEYS, FitConfig, fit_config, huber_delta
from scalinglab.laws.table import Rows, read_table

# Reference exponents of N_opt ∝ C^a drawn beside ours.
PUBLISHED = {"Chinchilla (Hoffmann 2022)": 0.50, "Kaplan 2020": 0.73}
PREDICTORS = ("chinchilla", "frontier", "ray")
RAY_TOLERANCE = 1.1
"""A run is on the ray of ratio r when its D/N is within this factor of r (whole steps
and the width grid move a branch's D/N by a few percent)."""
MIN_RAY_SIZES = 3
"""The ray's power law has 2 parameters: at least 3 sizes on the ray."""


def fit_settings(d: dict | None, where: str) -> tuple[FitConfig, str]:
    """A study's [fit] table (study.json's "fit"): its FitConfig, and the count its fits
    take N from (`n_kind`, N_KINDS; "params" when absent)."""
    d = dict(d or {})
    # FitConfig's own message would not list n_kind, a key of this table
    check_known(d, {f.name for f in dataclasses.fields(FitConfig)} | {"n_kind"}, where, OLD_KEYS)
    kind = d.pop("n_kind", "params")
    if kind not in N_KINDS:
        raise ConfigError(f"{where}: n_kind = {kind!r}: expected one of {', '.join(N_KINDS)}")
    return fit_config(d, where), kind


@dataclass
class ArchFits:
    arch: str
    rows: list
    isoflop: ScalingLaw | None = None
    chinchilla: ScalingLaw | None = None
    frontier: ScalingLaw | None = None
    """power-c through the IsoFLOP vertices."""
    frontier_points: list = field(default_factory=list)
    """[{C, L, L_ci}] the per-budget vertices."""
    errors: dict = field(default_factory=dict)
    """law -> why it could not be fitted (shown in the report)."""
    settings: FitConfig | None = None
    rays: dict = field(default_factory=dict)
    """ratio -> the ray's power-c fit (fitted when a prediction first asks for it)."""
    kind: str = "params"
    """The count N is (N_KINDS); C is 6·N·D with it."""


def completed(rows: list[dict]) -> list[dict]:
    return [
        r
        for r in rows
        if r.get("status") == "completed"
        and _pos(r.get("loss"))
        and _pos(r.get("params"))
        and _pos(r.get("tokens"))
    ]


def _pos(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


N_KINDS = ("params", "params_nonembed")
"""The runs' columns the fits may take N from: `params` (all parameters, Chinchilla's and
the default) or `params_nonembed` (Kaplan's); every C of the fits is 6·N·D with that N."""
COUNT_NAMES = {"params": "all parameters", "params_nonembed": "N without embeddings"}


def law_c(r: dict, kind: str = "params") -> float:
    """A run's C as fits of the count `kind` take it: 6·N·D with that N (its recorded
    `flops_6nd` for all parameters)."""
    if kind == "params":
        return float(r.get("flops_6nd") or 6.0 * r["params"] * r["tokens"])
    return 6.0 * r[kind] * r["tokens"]


def _table(rows: list[dict], arch: str | None = None, kind: str = "params") -> list[dict]:
    """Run rows as the columns of a fit, named for messages: N under the name of its count
    `kind` (so the laws read the count the [fit] table names), D, L, C = 6·N·D with that N,
    and the budget the runs were placed at (6·N·D in all parameters)."""
    out = Rows([], f"the {arch} runs" if arch else "the runs")
    for r in rows:
        d = {kind: float(r[kind]), "D": float(r["tokens"]), "L": float(r["loss"])}
        d["C"] = law_c(r, kind)
        if _pos(r.get("budget")):
            d["budget"] = float(r["budget"])
        out.append(d)
    return out


def fit_arch(
    arch: str, rows: list[dict], s: FitConfig, kind: str = "params", chinchilla: bool = True
) -> ArchFits:
    """Every law that the runs of one architecture support, with N the count `kind`
    (N_KINDS); failures are recorded. `chinchilla=False`: the IsoFLOP fits and the
    frontier alone (Chinchilla's bootstrap is the slow part)."""
    if kind not in N_KINDS:
        raise FitError(f"N counted as {kind!r}: expected one of {', '.join(N_KINDS)}")
    rows = completed(rows)
    out = ArchFits(arch, rows, settings=s, kind=kind)
    kw = {**dataclasses.asdict(s), "n_kind": kind}
    table = _table(rows, arch, kind)
    iso_rows = Rows([r for r in table if "budget" in r], f"the {arch} IsoFLOP runs")
    try:
        iso = ScalingLaw.from_settings("isoflop", kw)
        out.isoflop = iso.fit(iso_rows) if iso_rows else None
        if out.isoflop is None:
            out.errors["isoflop"] = "no IsoFLOP runs (no budget column)"
    except FitError as exc:
        out.errors["isoflop"] = str(exc)
    if not chinchilla:
        out.errors["chinchilla"] = "not fitted (asked for the IsoFLOP fits alone)"
    elif len(rows) >= 6:
        try:
            out.chinchilla = ScalingLaw.from_settings("chinchilla", kw).fit(table)
        except FitError as exc:
            out.errors["chinchilla"] = str(exc)
    else:
        out.errors["chinchilla"] = f"{len(rows)} completed runs; at least 6 are needed"
    if out.isoflop is not None:
        try:
            out.frontier, out.frontier_points = fit_frontier(out.isoflop, s)
        except FitError as exc:
            out.errors["power-c"] = str(exc)
    return out


def _budgets(iso: ScalingLaw) -> list[float]:
    return sorted(float(k.split("@")[1]) for k in iso.params_ if k.startswith("L_opt@"))


def power_c_settings(s: FitConfig) -> dict:
    """The settings of a frontier's or a ray's power-c fit (no floor) from the study's one
    [fit] table: its calibrate N or D is for the laws of N and D (power-c refuses it)."""
    calibrate = s.calibrate if s.calibrate in ("none", "C") else "none"
    return {**dataclasses.asdict(s), "floor": False, "calibrate": calibrate}


def frontier_delta(s: FitConfig) -> float:
    """The Huber delta of the frontier's power-c fit, which its draws are refitted with."""
    return huber_delta("power-c", power_c_settings(s))


def fit_frontier(iso: ScalingLaw, s: FitConfig) -> tuple[ScalingLaw, list[dict]]:
    """power-c (no floor) through the IsoFLOP vertices, with the IsoFLOP bootstrap. Each
    vertex sits at its budget, or, where N is not the count the budgets were set with
    (`params_nonembed`), at its own C = 6·N_opt·D_opt (`C_opt@B`; the draws keep the point
    fit's, which moves them by far less than their loss)."""
    pts = []
    for c in _budgets(iso):
        L = iso.params_.get(f"L_opt@{c:g}")
        at = iso.params_.get(f"C_opt@{c:g}", c)
        if _pos(L) and _pos(at):
            pts.append({"C": at, "budget": c, "L": L, "L_ci": iso.ci_.get(f"L_opt@{c:g}")})
    if len(pts) < 2:
        raise FitError("the frontier needs the loss minimum of at least 2 budgets")
    # the point fit only: its draws come from the IsoFLOP bootstrap below
    law = ScalingLaw.from_settings("power-c", {**power_c_settings(s), "bootstrap": 0})
    law.fit(Rows([{"C": p["C"], "L": p["L"]} for p in pts], "the IsoFLOP minima"))
    if iso.samples_ is not None:
        draws = np.column_stack([iso.samples_.get(f"L_opt@{p['budget']:g}") for p in pts])
        with np.errstate(invalid="ignore", divide="ignore"):
            # each draw refitted as the point was (power-c's Huber line), so the point
            # is the centre of its draws
            slope, icpt = huber_loglog_fit(
                np.log([p["C"] for p in pts]), np.log(draws), frontier_delta(s)
            )
            # log L = α log C_c − α log C  =>  α = −slope, C_c = exp(icpt / α)
            alpha = -slope
            cc = np.exp(icpt / alpha)
        law.set_uncertainty({"alpha": alpha, "C_c": cc})
        law.settings["bootstrap"] = int(draws.shape[0])
        law.conventions_["bootstrap"] = "IsoFLOP: runs resampled within each budget"
        law.warnings_ = law.warnings_ + warn.flat(law)
    return law, pts


def on_ray(rows: list[dict], ratio: float, kind: str = "params") -> list[dict]:
    """The completed runs whose D/N (N the count `kind`) is within RAY_TOLERANCE of `ratio`."""
    tol = math.log(RAY_TOLERANCE)
    return [r for r in completed(rows) if abs(math.log(r["tokens"] / r[kind] / ratio)) <= tol]


def fit_ray(fits: ArchFits, ratio: float) -> ScalingLaw:
    """power-c (no floor) through the runs on the ray D/N = ratio, with the bootstrap of
    the fit settings (runs resampled); cached per ratio on `fits`."""
    key = round(ratio, 6)
    if key in fits.rays:
        return fits.rays[key]
    kind = fits.kind
    pts = _table(on_ray(fits.rows, ratio, kind), fits.arch, kind)
    sizes = {p[kind] for p in pts}
    if len(sizes) < MIN_RAY_SIZES:
        raise FitError(
            f"the ray at {ratio:.3g} tokens per parameter has {len(sizes)} size(s) "
            f"(at least {MIN_RAY_SIZES} are needed): the ladder needs a branch at that ratio"
        )
    s = fits.settings or FitConfig()
    law = ScalingLaw.from_settings("power-c", power_c_settings(s))
    law.fit(Rows([{"C": p["C"], "L": p["L"]} for p in pts], f"the runs at D/N {ratio:.3g}"))
    fits.rays[key] = law
    return law


def seed_noise(rows: list[dict]) -> dict | None:
    """Spread of the final loss across runs that differ only in their seed.

    Rows carry `seed`; groups are (arch, n_layer, n_embd, tokens). The relative
    standard deviation is pooled over groups (ddof=1 within each)."""
    groups: dict[tuple, list] = {}
    for r in completed(rows):
        if r.get("seed") is None:
            continue
        key = (r["arch"], r.get("n_layer"), r.get("n_embd"), r["tokens"])
        groups.setdefault(key, {})[r["seed"]] = r
    sets = [g for g in groups.values() if len(g) >= 2]
    if not sets:
        return None
    ss, dof, out = 0.0, 0, []
    for g in sets:
        g = dict(sorted(g.items()))  # seeds in order, each with its own loss
        losses = np.array([r["loss"] for r in g.values()])
        rel = losses / losses.mean()
        ss += float(((rel - 1.0) ** 2).sum())
        dof += len(losses) - 1
        first = next(iter(g.values()))
        out.append(
            {
                "arch": first["arch"],
                "params": first["params"],
                "tokens": first["tokens"],
                "seeds": list(g),
                "losses": [float(x) for x in losses],
                "rel_std": float(np.std(rel, ddof=1)),
            }
        )
    return {"rel_std": math.sqrt(ss / dof), "dof": dof, "groups": out}


def allocation(fits: ArchFits, C: float) -> tuple[float, str]:
    """Compute-optimal N at C and where it came from: the IsoFLOP power law (measured
    optima), else Chinchilla's, else the best run of the largest budget scaled as √C.
    N and C as the fits count them (`fits.kind`: C is 6·N·D with that N)."""
    for law in (fits.isoflop, fits.chinchilla):
        if law is not None:
            n = law.optimal(C, check_range=False)["params"]  # plans say how far
            if n is not None and math.isfinite(n) and n > 0:
                return float(n), law.law
    if not fits.rows:
        raise FitError(f"{fits.arch}: no completed runs to plan from")
    kind = fits.kind
    top = max(r.get("budget") or 6.0 * r["params"] * r["tokens"] for r in fits.rows)
    at = [r for r in fits.rows if (r.get("budget") or 6.0 * r["params"] * r["tokens"]) == top]
    best = min(at, key=lambda r: r["loss"])
    n, c_top = best[kind], 6.0 * best[kind] * best["tokens"]
    return float(n * math.sqrt(C / c_top)), "best run of the largest budget × √(C/C_max)"


def frontier_noise_interval(fits: ArchFits, rel_noise: float, C: float) -> list[float] | None:
    """The frontier's prediction at C as the seed noise of its runs moves it: every IsoFLOP
    run's loss drawn again with the measured relative seed noise (the fit's `bootstrap`
    draws, its seed and curvature), the budgets' minima and the power law through them
    refitted, and the central `ci_level` of the draws' predictions. None where the fit
    asked for no bootstrap or the draws give no interval."""
    s = fits.settings or FitConfig()
    rows = [r for r in _table(fits.rows, fits.arch, fits.kind) if "budget" in r]
    at = {p["budget"]: p["C"] for p in fits.frontier_points}  # each budget's vertex C
    if not s.bootstrap or not rows or not rel_noise:
        return None
    cs, Ls = redrawn_vertices([r[fits.kind] for r in rows], [r["L"] for r in rows],
                              [r["budget"] for r in rows], rel_noise, s.bootstrap,
                              seed=s.seed, curvature=s.curvature)  # fmt: skip
    keep, x = [], []  # the budgets the frontier used, each at its vertex's C
    for j, c in enumerate(cs):
        u = next((u for u in at if math.isclose(c, u, rel_tol=1e-5)), None)
        if u is not None:
            keep.append(j)
            x.append(at[u])
    with np.errstate(invalid="ignore", divide="ignore"):
        slope, icpt = huber_loglog_fit(np.log(x), np.log(Ls[:, keep]), frontier_delta(s))
        draws = np.exp(icpt + slope * math.log(C))
    draws = draws[np.isfinite(draws)]
    if len(draws) < 0.5 * s.bootstrap:  # most draws lost a budget's minimum: no interval
        return None
    q = 100 * (1 - s.ci_level) / 2
    return [float(x) for x in np.percentile(draws, [q, 100 - q])]


def predict(fits: ArchFits, N: float, D: float, C: float, predictor: str,
            noise: dict | None = None) -> dict:  # fmt: skip
    """Predicted loss of one run, with the fit's bootstrap interval; for the frontier, with
    `noise` (seed_noise's), also the interval its runs' seed noise gives it
    (`noise_interval`, frontier_noise_interval)."""
    if predictor == "chinchilla":
        law = fits.chinchilla
        args = {"N": N, "D": D}
    elif predictor == "frontier":
        law = fits.frontier
        args = {"C": C}
    elif predictor == "ray":
        law = fit_ray(fits, D / N)
        args = {"C": 6.0 * N * D}  # the ray's runs are placed by 6ND too
    else:
        raise FitError(f"predictor {predictor!r} is not one of {', '.join(PREDICTORS)}")
    if law is None:
        names = ("power-c", "isoflop") if predictor == "frontier" else (predictor,)
        why = next((fits.errors[k] for k in names if k in fits.errors), "not fitted")
        raise FitError(f"{fits.arch}: cannot predict with {predictor}: {why}")
    if law.samples_ is None:
        p, lo, hi = law.predict(**args), math.nan, math.nan
    else:
        p, lo, hi = law.predict(**args, return_ci=True)
    if not math.isfinite(float(p)):
        raise FitError(
            f"{fits.arch}: the {predictor} fit gives no finite loss at N={N:.3g}, D={D:.3g}"
        )
    ok = all(math.isfinite(float(x)) for x in (lo, hi))
    out = {
        "predictor": predictor,
        "predicted_loss": float(p),
        "fit_interval": [float(lo), float(hi)] if ok else None,
    }
    if has_noise(law):
        _, plo, phi = law.predict(**args, return_ci=True, kind="prediction")
        if math.isfinite(float(plo)) and math.isfinite(float(phi)):
            out["prediction_interval"] = [float(plo), float(phi)]
    if predictor == "frontier" and (noise or {}).get("rel_std"):
        try:
            out["noise_interval"] = frontier_noise_interval(fits, noise["rel_std"], C)
        except FitError:  # fewer than 2 budgets with 3 sizes: no redrawn frontier
            out["noise_interval"] = None
    return out


R_STAR = {"R_D": 15.4, "R_N": 5.3}
"""Muennighoff et al. 2023's fitted R*_D and R*_N (repeated tokens and excess parameters
lose their worth with these e-folding constants: the pass R* epochs in is worth 1/e of
a fresh one): the study's default when its own runs never repeat data."""


def predict_constrained(fits: ArchFits, N: float, D: float, U: float) -> dict:
    """The predicted loss of a run that repeats its U unique tokens (D > U): the
    data-constrained law (laws/constrained.py) with the Chinchilla fit's A, B, E, α, β and
    R_STAR, over the fit's bootstrap draws for the interval."""
    law = fits.chinchilla
    if law is None:
        why = fits.errors.get("chinchilla", "not fitted")
        raise FitError(f"{fits.arch}: cannot predict with the data-constrained law: {why}")
    names = ("A", "B", "E", "alpha", "beta")
    p = DataConstrained.predict({**{k: law.params_[k] for k in names}, **R_STAR}, N, D, U)
    out = {"predictor": "data-constrained", "predicted_loss": float(p), "fit_interval": None,
           "unique_tokens": float(U), "epochs": D / U, **R_STAR}  # fmt: skip
    if law.samples_ is not None:
        draws = DataConstrained.predict(
            {**{k: np.asarray(law.samples_[k]) for k in names}, **R_STAR}, N, D, U
        )
        q = 100 * (1 - law.settings["ci_level"]) / 2
        lo, hi = np.nanpercentile(draws, [q, 100 - q])
        if math.isfinite(lo) and math.isfinite(hi):
            out["fit_interval"] = [float(lo), float(hi)]
    if not math.isfinite(out["predicted_loss"]):
        raise FitError(f"{fits.arch}: the data-constrained law gives no finite loss at N={N:.3g}")
    return out


def leave_larger_out(fits: ArchFits, s: FitConfig) -> dict:
    """Leave-larger-out backtests of the Chinchilla law on one architecture's sweep, by C
    and by N: {by: {"thresholds", "overall"} or {"error"}} (scalinglab.laws.backtest)."""
    rows = completed(fits.rows)
    out = {}
    # a study's [fit] table serves every law: the backtest takes what chinchilla uses
    settings = settings_for(
        "chinchilla", {**dataclasses.asdict(s), "bootstrap": min(s.bootstrap, 200)}
    )
    for by in ("C", "N"):
        try:
            table = _table(rows, fits.arch, fits.kind)
            t = read_table(table, need=("N", "D", "C", "L"), n_kind=fits.kind)
            cuts = budget_cuts(table) if by == "C" else None
            r = rolling_backtest("chinchilla", t, by=by, settings=settings, thresholds=cuts)
            out[by] = {"thresholds": r["thresholds"], "overall": r["overall"]}
        except (FitError, DataError) as exc:
            out[by] = {"error": str(exc)}
    return out


def budget_cuts(table: list[dict], fracs=TRAIN_FRACS) -> list[float] | None:
    """Thresholds of C between the rows' IsoFLOP budgets (laws.intervals.budget_cuts);
    None when a row has no budget (the rows' own shares)."""
    if not table or any("budget" not in r for r in table):
        return None
    return cuts_between_budgets([r["C"] for r in table], [r["budget"] for r in table], fracs)


def predictive_interval(pred: dict, noise: dict | None, ci_level: float) -> list[float] | None:
    """The interval for one new run: on each side, in quadrature, the fit interval (the
    bootstrap's resampling), the frontier's noise interval where there is one (the
    fitted runs' seed noise moving the minima), and the new run's own seed noise."""
    p = pred["predicted_loss"]
    lo, hi = pred.get("fit_interval") or (p, p)
    nlo, nhi = pred.get("noise_interval") or (p, p)
    sd = (noise or {}).get("rel_std", 0.0) * p
    z = float(norm.ppf(0.5 + ci_level / 2))
    return [p - math.hypot(p - lo, p - nlo, z * sd), p + math.hypot(hi - p, nhi - p, z * sd)]


def plan_rows(fits: ArchFits, budgets: list[float], predictor: str) -> list[dict]:
    """Compute-optimal N, D and predicted loss (with intervals) at each budget."""
    law = fits.isoflop or fits.chinchilla
    if law is None:
        raise FitError(f"{fits.arch}: no fit gives a compute-optimal allocation")
    out = []
    for C in budgets:
        opt = law.optimal(C, check_range=False)  # its rows say how far they extrapolate
        N = opt["params"]
        row = {
            "flops": C,
            "params": N,
            "params_ci": opt.get("params_ci"),
            "tokens": C / (6.0 * N),
            "tokens_ci": opt.get("tokens_ci"),
            "tokens_per_param": C / (6.0 * N * N),
            "allocation": law.law,
        }
        row["loss"], row["loss_ci"], row["loss_pi"] = None, None, None
        # a ray predicts only on its own D/N: the plan's optima take Chinchilla's loss
        for p_name in dict.fromkeys((predictor, "chinchilla")):
            try:
                p = predict(fits, N, C / (6.0 * N), C, p_name)
            except FitError:
                continue
            row["loss"] = p["predicted_loss"]
            row["loss_ci"] = p.get("fit_interval")
            row["loss_pi"] = p.get("prediction_interval")
            row["predictor"] = p_name
            break
        out.append(row)
    return out


def compact(law: ScalingLaw | None) -> dict | None:
    """A fit as summary.json carries it: no bootstrap draws (fits/*.json keep those)."""
    if law is None:
        return None
    d = law.to_json()
    d.pop("bootstrap", None)
    d.pop("settings", None)
    keep = {k: v for k, v in d["ci"].items() if "@" not in k}
    d["ci"], d["stderr"] = keep, {k: v for k, v in d["stderr"].items() if "@" not in k}
    return d


def json_safe(x):
    """NaN and inf become null, recursively (JSON has no NaN)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    return x
