"""ScalingLaw: the estimator-style API over every law (settings in __init__, fit -> self).

    law = ScalingLaw("chinchilla", bootstrap=1000).fit("runs.csv")
    law.params_["alpha"], law.ci_["alpha"], law.predict(N=1e9, D=2e10), law.optimal(1e21)

Learned values end in `_`; using an unfitted estimator raises FitError.
`to_json()` gives the fit.json object; `load_fit(path)` restores a fitted
estimator from it (JSON only).
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from scalinglab.errors import ConfigError, DataError, FitError
from scalinglab.laws import constrained, curvefit, warn
from scalinglab.laws.curvelaws import CURVE_LAWS
from scalinglab.laws.envelope import Curves, fit_envelope, read_curves_csv, read_run_folders
from scalinglab.laws.fit import fit_form
from scalinglab.laws.forms import make_form
from scalinglab.laws.isoflop import fit_isoflop
from scalinglab.laws.optimal import optimal_allocation
from scalinglab.laws.report import render_report
from scalinglab.laws.settings import csv_mapping, split_settings
from scalinglab.laws.table import as_table

LAWS = (
    "chinchilla", "kaplan", "power-n", "power-d", "power-c", "isoflop", "envelope",
    "data-constrained", *CURVE_LAWS,
)  # fmt: skip
FORMAT_VERSION = 1


class ScalingLaw:
    """A law and its fit settings; `fit(table)` learns `params_`, `ci_`, `samples_`, ...

    `settings` are the fields of `FitConfig` (bootstrap, seed, ci_level, curvature,
    floor, huber_delta, boot_starts, prune, envelope_points) and of `TableConfig`
    (n_col, d_col, c_col, loss_col, budget_col, n_kind, where, drop_highest, budgets,
    run_cols), with their defaults (scalinglab.laws.settings); an unknown one raises.
    """

    def __init__(self, law="chinchilla", **settings):
        if law not in LAWS:
            raise ConfigError(f"--law {law!r} is not one of {', '.join(LAWS)}")
        fit, table = split_settings(settings)
        self.law = law
        self.settings = {**dataclasses.asdict(fit), **dataclasses.asdict(table)}

    # ------------------------------------------------------------------ fitting
    def fit(self, table):
        s = self.settings
        if self.law in CURVE_LAWS:
            return self._fit_curves(table)
        if s["holdout_where"]:
            raise ConfigError(
                f"--holdout-where is for the curve laws ({', '.join(CURVE_LAWS)}); "
                f"--law {self.law} backtests with --holdout-frac or --holdout-above"
            )
        if self.law == "envelope":
            return self._fit_envelope(table)
        if self.law == "data-constrained":
            out = constrained.fit_law(self, table)
            self._set_learned(out)
            self.warnings_ = out["warnings"] + warn.exponents(self, ("alpha", "beta"))
            return self
        mapping = csv_mapping(s)
        if self.law in ("chinchilla", "kaplan"):
            need = ("N", "D")
        elif self.law == "isoflop":
            need = ("N", "C", "budget")
        else:
            need = (self.law[-1].upper(),)
        t = (
            as_table(table, need=need, **mapping)
            if isinstance(table, (str, Path))
            else as_table(table)
        )
        if len(t) == 0:
            raise DataError(f"{t.source}: the table has no rows")
        self.conventions_ = {k: v for k, v in t.conventions.items() if not k.endswith("_tried")}
        self.data_ = {"source": t.source, "sha256": t.sha256, "rows": len(t)}
        if self.law == "isoflop":
            self._fit_isoflop(t)
        else:
            self._fit_parametric(t)
        return self

    def _fit_parametric(self, t):
        s = self.settings
        form = make_form(self.law, floor=s["floor"], delta=s["huber_delta"])
        t.require(self.law, *form.needs)
        res = fit_form(
            form,
            t,
            bootstrap=s["bootstrap"],
            seed=s["seed"],
            boot_starts=s["boot_starts"],
            prune=s["prune"],
        )
        nat = form.natural(res["ctx"], res["theta"])
        self.params_ = {k: float(v[0]) for k, v in nat.items()}
        self.derived_ = {k: float(v) for k, v in form.derived(self.params_).items()}
        self.objective_ = res["objective"]
        self.n_points_ = len(t)
        self.converged_ = res["converged"]
        samples = None
        if res["samples"] is not None:
            sn = form.natural(res["ctx"], res["samples"])
            samples = {**sn, **form.derived(sn)}
        self.set_uncertainty(samples)
        self.warnings_ = warn.parametric(self, form, t, res)

    def _fit_isoflop(self, t):
        s = self.settings
        res = fit_isoflop(
            t,
            budgets=s["budgets"],
            bootstrap=s["bootstrap"],
            seed=s["seed"],
            curvature=s["curvature"],
        )
        self.params_ = {**res["point"], **res["per_budget"]}
        self.derived_ = {}
        self.objective_ = res["objective"]
        self.n_points_ = res["n_points"]
        self.converged_ = True
        self.conventions_["budgets"] = res["budgets"]
        samples = None
        if res["samples"] is not None:
            samples = {**res["samples"], **res["per_budget_samples"]}
        self.set_uncertainty(samples)
        self.warnings_ = res["warnings"] + warn.exponents(self, ("a",))

    def _fit_envelope(self, curves):
        s = self.settings
        if isinstance(curves, (str, Path)) and Path(curves).is_file():
            curves = read_curves_csv(
                curves,
                run_cols=s["run_cols"],
                n_col=s["n_col"],
                d_col=s["d_col"],
                c_col=s["c_col"],
                loss_col=s["loss_col"],
            )
        elif isinstance(curves, (list, tuple)):
            curves = read_run_folders(curves)
        elif not isinstance(curves, Curves):
            raise DataError(f"{curves}: envelope takes a curves CSV or a list of run folders")
        res = fit_envelope(
            curves, points=s["envelope_points"], bootstrap=s["bootstrap"], seed=s["seed"]
        )
        self.params_ = res["point"]
        self.derived_ = {}
        self.objective_ = 0.0
        self.n_points_ = res["n_points"]
        self.converged_ = True
        self.conventions_ = {"source": curves.source, "runs": res["n_runs"], **curves.columns}
        self.data_ = {"source": curves.source, "sha256": "", "rows": res["n_runs"]}
        self.set_uncertainty(res["samples"])
        self.warnings_ = res["warnings"] + warn.exponents(self, ("a", "b"))
        return self

    def _fit_curves(self, table):
        t = curvefit.read_table(self, table)
        out = curvefit.fit_curve_law(self, t)
        self._set_learned(out)
        curvefit.finish(self, out, t.runs)
        return self

    def _set_learned(self, out):
        """The learned attributes (names ending in _) of a law module's fit, and its draws."""
        for k, v in out.items():
            if k.endswith("_"):
                setattr(self, k, v)
        self.set_uncertainty(out["samples"])

    def set_uncertainty(self, samples):
        """Bootstrap draws {name: (K,) array} -> samples_, stderr_ and ci_ (None: no draws).

        The fitters call it; so does code that draws a law's parameters its own way
        (the study's frontier, from the IsoFLOP bootstrap)."""
        self.samples_ = None
        self.stderr_, self.ci_ = {}, {}
        if samples is None:
            return
        self.samples_ = {k: np.asarray(v, dtype=float) for k, v in samples.items()}
        q = 100 * (1 - self.settings["ci_level"]) / 2
        for k, v in self.samples_.items():
            v = v[np.isfinite(v)]
            if v.size >= 2:
                # A scale factor of a wild resample (k_D at an extreme exponent) can be
                # finite yet square to inf: its stderr is then inf, honestly, not a warning.
                with np.errstate(over="ignore", invalid="ignore"):
                    self.stderr_[k] = float(np.std(v, ddof=1))
                lo, hi = np.percentile(v, [q, 100 - q])
                self.ci_[k] = [float(lo), float(hi)]

    # ------------------------------------------------------------------ using a fit
    def check_fitted(self):
        """Raise FitError unless fit() (or load_fit) has given this estimator its params_."""
        if not hasattr(self, "params_"):
            raise FitError(f"this ScalingLaw({self.law!r}) is not fitted: call .fit(table) first")

    def _predict_with(self, p, N, D, C):
        if self.law in ("isoflop", "envelope"):
            raise ConfigError(f"law {self.law!r} does not predict a run's loss; use .optimal(C)")
        form = make_form(self.law, floor=self.settings["floor"])
        needed = {"N": N, "D": D, "C": C}
        for var in form.needs:
            if needed[var] is None:
                raise ConfigError(f"law {self.law!r} predicts from {', '.join(form.needs)}")
        return form.predict(p, N=N, D=D, C=C)

    def predict(
        self, N=None, D=None, C=None, return_ci=False, *, U=None, steps=None, lr_schedule=None
    ):
        """Predicted loss; with return_ci, also the bootstrap percentile interval (lo, hi).

        data-constrained: predict(N=, D=, U=unique tokens). Curve laws:
        predict(steps, lr_schedule), the LR at every step 0..max(steps)."""
        self.check_fitted()
        if self.law == "data-constrained":
            return constrained.predict(self, N, D, U, return_ci=return_ci)
        if self.law in CURVE_LAWS:
            if steps is None and lr_schedule is None:
                steps, lr_schedule = N, D
            return curvefit.predict(self, steps, lr_schedule, return_ci=return_ci)
        args = [None if v is None else np.asarray(v, dtype=float) for v in (N, D, C)]
        pred = self._predict_with(self.params_, *args)
        if not return_ci:
            return pred
        if self.samples_ is None:
            raise FitError("no bootstrap samples: fit with bootstrap > 0 for intervals")
        sp = {k: v[:, None] for k, v in self.samples_.items()}
        flat = [None if a is None else np.atleast_1d(a)[None, :] for a in args]
        draws = self._predict_with(sp, *flat)
        q = 100 * (1 - self.settings["ci_level"]) / 2
        lo, hi = np.nanpercentile(draws, [q, 100 - q], axis=0)
        return pred, lo.reshape(np.shape(pred)), hi.reshape(np.shape(pred))

    def optimal(self, C):
        """Compute-optimal allocation at FLOPs C: dict of params, tokens, loss (+ *_ci)."""
        return optimal_allocation(self, C)

    def report(self) -> str:
        self.check_fitted()
        return render_report(self)

    def to_json(self) -> dict:
        self.check_fitted()
        out = {
            "format_version": FORMAT_VERSION,
            "kind": "scalinglab.fit",
            "law": self.law,
            "params": _finite(self.params_),
            "derived": _finite(self.derived_),
            "stderr": _finite(self.stderr_),
            "ci": self.ci_,
            "ci_level": self.settings["ci_level"],
            "n_points": self.n_points_,
            "objective": self.objective_,
            "converged": self.converged_,
            "warnings": self.warnings_,
            "conventions": self.conventions_,
            "data": self.data_,
            "settings": self.settings,
        }
        if getattr(self, "backtest_", None) is not None:
            out["backtest"] = self.backtest_
        if self.samples_ is not None:
            out["bootstrap"] = {
                "resamples": self.settings["bootstrap"],
                "seed": self.settings["seed"],
                "samples": {
                    k: [None if not np.isfinite(x) else float(x) for x in v]
                    for k, v in self.samples_.items()
                    if "@" not in k  # per-budget draws are summarised by their ci
                },
            }
        return out


def _finite(d):
    """JSON has no NaN/inf: a value that is not finite (e.g. a skipped budget) becomes null."""
    return {k: (float(v) if np.isfinite(v) else None) for k, v in d.items()}


def load_fit(path) -> ScalingLaw:
    """A fitted ScalingLaw from a fit.json (format_version 1)."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a fit.json ({exc})") from None
    if not isinstance(obj, dict) or obj.get("kind") != "scalinglab.fit":
        raise DataError(f"{path}: not a scalinglab fit.json (no kind 'scalinglab.fit')")
    if obj.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{path}: format_version {obj.get('format_version')!r}; this scalinglab reads {FORMAT_VERSION}"
        )
    try:
        law = ScalingLaw(obj["law"], **obj["settings"])
        law.params_ = {k: np.nan if v is None else float(v) for k, v in obj["params"].items()}
        law.derived_ = obj.get("derived", {})
        law.stderr_, law.ci_ = obj["stderr"], obj["ci"]
        law.n_points_, law.objective_ = obj["n_points"], obj["objective"]
        law.converged_, law.warnings_ = obj.get("converged", True), obj["warnings"]
        law.conventions_, law.data_ = obj["conventions"], obj.get("data", {})
        law.backtest_ = obj.get("backtest")
        boot = obj.get("bootstrap")
        law.samples_ = None
        if boot:
            law.samples_ = {
                k: np.array([np.nan if x is None else x for x in v], dtype=float)
                for k, v in boot["samples"].items()
            }
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: malformed fit.json ({exc!r})") from None
    except ConfigError as exc:  # a setting no fit.json of this format has
        raise DataError(f"{path}: malformed fit.json ({exc})") from None
    return law
