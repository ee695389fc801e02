"""ScalingLaw: the estimator-style API over every law (settings in __init__, fit -> self).

    law = ScalingLaw("chinchilla", bootstrap=1000).fit("runs.csv")
    law.params_["alpha"], law.ci_["alpha"], law.predict(N=1e9, D=2e10), law.optimal(1e21)

Learned values end in `_`; using an unfitted estimator raises FitError.
`to_json()` gives the fit.json object; `load_fit(path)` restores a fitted
estimator from it (JSON only).
"""

import copy
import dataclasses
import json
import os
import warnings
from pathlib import Path

import numpy as np

from scalinglab.errors import ConfigError, DataError, ExtrapolationWarning, FitError
from scalinglab.laws import constrained, curvefit, intervals, tasklaws, warn
from scalinglab.laws.curvelaws import CURVE_LAWS
from scalinglab.laws.envelope import Curves, fit_envelope, read_curves_csv, read_run_folders
from scalinglab.laws.fit import fit_form
from scalinglab.laws.forms import make_form
from scalinglab.laws.isoflop import fit_isoflop
from scalinglab.laws.optimal import optimal_allocation
from scalinglab.laws.plot import plot_law
from scalinglab.laws.published import PUBLISHED
from scalinglab.laws.report import render_report
from scalinglab.laws.settings import (
    FitConfig,
    TableConfig,
    csv_mapping,
    huber_delta,
    split_settings,
)
from scalinglab.laws.table import (
    OPTIONS,
    compute_range,
    data_ranges,
    fitted_ranges,
    read_table,
    short_repr,
)
from scalinglab.laws.view import law_html, law_repr, summary_table

LAWS = (
    "chinchilla", "kaplan", "power-n", "power-d", "power-c", "isoflop", "envelope",
    "data-constrained", "nd-interaction", *CURVE_LAWS, *tasklaws.TASK_LAWS,
)  # fmt: skip
FORMAT_VERSION = 1
FLAT = 1e-9
"""Bootstrap draws of a parameter whose spread is at most this fraction of their size
are one value: the resampling could not move it, so no interval is given for it."""
# Settings a law cannot use raise rather than being ignored. FitConfig's are exempt:
# a study's one [fit] table serves every law it fits.
SETTING_LAWS = {
    "budgets": ("isoflop",),
    "budget_col": ("isoflop",),
    # the envelope's and the curve laws' runs (and, with checkpoints=True, an N, D law's)
    "run_cols": ("envelope", *CURVE_LAWS, *tasklaws.TASK_LAWS),
    "metric_col": tasklaws.TASK_LAWS,
    "n_kind": tuple(law for law in LAWS if law != "envelope" and law not in CURVE_LAWS),
    "where": LAWS,
    "drop_highest": tuple(law for law in LAWS if law != "envelope" and law not in CURVE_LAWS),
    "fix": ("data-constrained", *CURVE_LAWS),  # the others would ignore them silently
    # the curve laws read steps, LRs and losses only: these were ignored there, silently
    # (--drop-highest 3 fitted every row, and fit.json recorded it)
    **{
        k: tuple(law for law in LAWS if law not in CURVE_LAWS)
        for k in ("n_col", "d_col", "c_col", "min_over", "checkpoints")
    },
    "decay_factor": ("lr-annealing",),
    "tie": ("data-constrained",),
    # the curve laws' columns, and U's (a chinchilla fit given u_col said "no such column")
    **{k: CURVE_LAWS for k in ("step_col", "lr_col", "schedule_col")},
    "u_col": ("data-constrained",),
}
# FitConfig settings a law cannot use: refused only when given to `ScalingLaw(...)` by
# keyword (or as a flag), since a study's one [fit] table and a fit.json's settings hold
# every one of them (`ScalingLaw.from_settings` builds those laws).
# The laws fitted by minimising an objective from a grid of starts (isoflop fits its
# parabolas in closed form; the envelope reads its curves, it is not fitted).
OBJECTIVE_LAWS = tuple(law for law in LAWS if law not in ("isoflop", "envelope"))
# The laws that predict each run's loss from N, D, C (and U): the ones `calibrate` widens.
CALIBRATED_LAWS = (
    "chinchilla", "kaplan", "power-n", "power-d", "power-c", "data-constrained", "nd-interaction",
)  # fmt: skip
GIVEN_SETTING_LAWS = {
    "curvature": ("isoflop",),
    # the task laws' power law in C (of the task loss, or of -ln(metric)) has the floor E too
    "floor": ("power-n", "power-d", "power-c", *tasklaws.TASK_LAWS),
    "chance": ("task-sigmoid",),
    "envelope_points": ("envelope",),
    "lr_fill": CURVE_LAWS,
    # isoflop and the envelope ignored these, silently (--huber-delta 0.1 fitted as before)
    "huber_delta": OBJECTIVE_LAWS,
    "prune": OBJECTIVE_LAWS,
    "boot_starts": tuple(law for law in OBJECTIVE_LAWS if law not in tasklaws.TASK_LAWS),
    "calibrate": CALIBRATED_LAWS,
}


def unused_settings(law, settings) -> list:
    """The names of `settings` (keywords, as `ScalingLaw` takes them) that law `law` cannot
    use, as `ScalingLaw(law, **settings).fit` refuses them: a default value is never one.

    Args:
        law: one of LAWS.
        settings: keyword settings; an unknown name or a bad value raises ConfigError.
    """
    fit, table = split_settings(settings)
    values = {**dataclasses.asdict(fit), **dataclasses.asdict(table)}
    fit_defaults = dataclasses.asdict(FitConfig())
    defaults = {**fit_defaults, **setting_defaults()}
    out = []
    for name in settings:
        laws = GIVEN_SETTING_LAWS.get(name) or SETTING_LAWS.get(name)
        if laws is None or law in laws or values[name] in (defaults[name], [], ()):
            continue
        if name == "run_cols" and values["checkpoints"]:
            continue  # rows are checkpoints: the runs they belong to
        out.append(name)
    return out


def settings_for(law, settings) -> dict:
    """Of `settings` (a study's [fit] table, `--law auto`'s flags), those law `law` uses."""
    unused = set(unused_settings(law, settings))
    return {k: v for k, v in settings.items() if k not in unused}


def setting_defaults() -> dict:
    """The values of SETTING_LAWS' settings that are not refused: their defaults."""
    table = TableConfig()
    return {**OPTIONS, "budgets": None, "run_cols": ["run_id"], "metric_col": None,
            "fix": [], "tie": [], "checkpoints": False,
            "decay_factor": FitConfig().decay_factor, "step_col": table.step_col,
            "lr_col": table.lr_col, "schedule_col": None}  # fmt: skip


def setting_shown(name, value) -> str:
    """Setting `name` at `value` as its flag: `--no-floor`, `--tie alpha=beta`."""
    flag = "--" + ("run-col" if name == "run_cols" else name.replace("_", "-"))
    if value is False:  # a switch turned off: --no-floor
        flag, value = "--no-" + flag[2:], True
    shown = " ".join(map(str, value)) if isinstance(value, list | tuple) else value
    return flag + ("" if value is True else f" {shown}")  # a switch: --checkpoints


def check_applies(law, name, value, laws):
    """ConfigError unless `law` is one of `laws`, the laws that use setting `name`."""
    if law in laws:
        return
    also = ""
    if name == "run_cols" and law in ("chinchilla", "kaplan", "nd-interaction"):
        also = "; with --checkpoints, rows are checkpoints of these runs"
    raise ConfigError(
        f"{setting_shown(name, value)} does not apply to law {law!r} (it applies to "
        f"{', '.join(laws)}{also})"
    )


class ScalingLaw:
    """A law and its fit settings; `fit(table)` learns `params_`, `ci_`, `samples_`, ...

    Args:
        law: the law to fit, one of LAWS: "chinchilla" (L = E + A/N^α + B/D^β),
            "kaplan", "power-n", "power-d", "power-c", "isoflop", "envelope",
            "data-constrained", "nd-interaction", the curve laws "multi-power"
            and "lr-annealing", the task laws "task-sigmoid" and "task-power"
            (docs/laws.md).
        **settings: the fields of `FitConfig` (bootstrap, seed, ci_level,
            calibrate, curvature, floor, chance, huber_delta, boot_starts, prune,
            envelope_points, lr_fill, decay_factor, tie, fix) and of
            `TableConfig` (n_col, d_col, c_col, loss_col, budget_col, metric_col,
            n_kind, step_col, lr_col, schedule_col, u_col, drop_highest,
            checkpoints, where, budgets, run_cols, min_over, holdout_where), with
            their defaults (scalinglab.laws.settings); an unknown one raises
            ConfigError, as does a fit setting given here that the law cannot use
            (curvature, floor, chance, envelope_points, lr_fill, huber_delta, prune,
            boot_starts, calibrate: GIVEN_SETTING_LAWS)
            and, when `fit` is called, a table setting the law cannot use.
    """

    def __init__(self, law="chinchilla", **settings):
        self._set_settings(law, settings)
        if law in tasklaws.TASK_LAWS and "run_cols" in settings:
            # Rows of the runs named are checkpoints, as `fit --run-col` takes them: the
            # curves table's run_cols=["run_id"] is the default's spelling, and read as no
            # runs at all it stopped at the run's second row as a duplicate run_id.
            self.settings["checkpoints"] = True
        defaults = dataclasses.asdict(FitConfig())
        for name, laws in GIVEN_SETTING_LAWS.items():
            if name in settings and self.settings[name] != defaults[name]:
                check_applies(self.law, name, self.settings[name], laws)

    @classmethod
    def from_settings(cls, law, settings):
        """A law with settings recorded for several laws (a study's [fit] table, a
        fit.json, a parent fit's): fit settings it does not use are kept, not refused.

        Args:
            law: one of LAWS.
            settings: keyword settings, as `ScalingLaw(law, **settings)` takes them.
        """
        self = cls.__new__(cls)
        self._set_settings(law, settings)
        return self

    def _set_settings(self, law, settings):
        if law not in LAWS:
            raise ConfigError(f"ScalingLaw(law={law!r}): not one of {', '.join(LAWS)}")
        fit, table = split_settings(settings)
        self.law = law
        self.settings = {**dataclasses.asdict(fit), **dataclasses.asdict(table)}
        # a refit inside a calibration backtest takes its noise as the calibrated fit does
        self.calibration_refit = False

    # ------------------------------------------------------------------ fitting
    def fit(self, table):
        """Fit the law to a runs table and return self (learned values end in `_`).

        A fit that raises leaves the estimator as it was.

        Args:
            table: a CSV path, a pandas/polars/pyarrow DataFrame (a polars
                LazyFrame is collected), a dict of columns, a list of row dicts
                or a RunsTable; every kind is read
                by `scalinglab.laws.table.read_table` with this estimator's table
                settings (column aliases `params`/`N`, `tokens`/`D`,
                `flops`/`C`, `loss`/`L`, ...; `where`, `drop_highest`,
                `n_kind`, the column mappings, completed runs only when there is
                a `status` column). For law "envelope": a curves CSV or a list
                of run folders.

        Returns:
            self, with `params_`, `stderr_`, `ci_`, `samples_`, `derived_`,
            `n_points_`, `objective_`, `converged_`, `warnings_`,
            `conventions_`, `data_` (and for the laws that predict from N, D or C,
            `ranges_`: the fitted [smallest, largest] of each).

        Raises:
            DataError: the table is malformed (the message names row and column).
            ConfigError: a setting does not apply to this law or input.
            FitError: the data cannot determine the law.
        """
        # a refit that failed left the old params_ beside the new table's data_, and
        # to_json wrote both
        before = dict(self.__dict__)
        try:
            return self._fit(table)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit(self, table):
        """`fit` without the restore on failure."""
        s = self.settings
        self.__dict__.pop("fit_path_", None)  # a loaded fit refitted: no longer that file's
        self.check_settings_apply()
        self.check_calibrate_applies()
        self.calibration_ = None
        if self.law in CURVE_LAWS:
            return self._fit_curves(table)
        if s["holdout_where"]:
            raise ConfigError(
                f"--holdout-where is for the curve laws ({', '.join(CURVE_LAWS)}); "
                f"--law {self.law} backtests with --holdout-frac or --holdout-above"
            )
        if self.law == "envelope":
            return self._fit_envelope(table)
        if self.law in tasklaws.TASK_LAWS:
            self._set_learned(tasklaws.fit_law(self, table))
            return self
        if self.law == "data-constrained":
            out = constrained.fit_law(self, table)
            self._set_learned(out)
            self.drop_interval(out["at_limit"])
            t = out["table"]
            self.points_ = t  # the runs fitted (in memory only; plot() draws them)
            self.ranges_ = data_ranges(t)
            self.noise_ = intervals.noise_model(
                np.log(t.L),
                np.log(self.predict(N=t.N, D=t.D, U=t.U)),
                len(constrained.make(self).free),
                keys=np.column_stack([t.N, t.D, t.U]),
                seeds_first=self.calibrated_noise(),
            )
            if s["calibrate"] != "none":  # C as the fit's C_range has it: 6ND
                self.calibrate_on(dataclasses.replace(t, C=6.0 * t.N * t.D))
            self.warnings_ = out["warnings"] + warn.exponents(self, ("alpha", "beta"))
            return self
        mapping = csv_mapping(s)
        if self.law in ("chinchilla", "kaplan", "nd-interaction"):
            need = ("N", "D", "C")  # C (its column, else 6ND): the C_range and --calibrate C
        elif self.law == "isoflop":  # --budgets snaps C to them: no budget column read
            if s.get("budgets") and s.get("budget_col"):  # was 'only isoflop uses budgets'
                raise ConfigError(
                    "--budgets and --budget-col both say where the budgets are: --budgets "
                    "snaps each run's C to the given ones, --budget-col reads them from a "
                    "column; give one"
                )
            need = ("N", "C") if s.get("budgets") else ("N", "C", "budget")
            if s.get("n_kind") == "params_nonembed":  # the optimum's D from its runs
                need += ("D",)
        else:
            need = (self.law[-1].upper(),)
        t = read_table(table, need=need, **mapping)
        if len(t) == 0:
            raise DataError(f"{t.source}: the table has no rows")
        if self.law == "power-c" and s.get("n_kind") != "params" and t.conventions["C"] != "6ND":
            raise ConfigError(  # it picks N's column, and power-c read C from its own
                f"--n-kind {s['n_kind']} has no effect on power-c here: C is the column "
                f"{t.conventions['C']!r} of {t.source}, not 6ND (name a column of compute "
                "without embeddings with --c-col, where the table has one)"
            )
        self.conventions_ = {k: v for k, v in t.conventions.items() if not k.endswith("_tried")}
        self.points_ = t  # the table fitted (in memory only; plot() draws it)
        self.ranges_ = data_ranges(t)  # in memory only: predict warns far outside them
        self.data_ = {
            "source": t.source,
            "sha256": t.sha256,
            "rows": len(t),
            "points_sha256": t.points_sha256(),
            "C_range": compute_range(t.C),
            **fitted_ranges(t),  # N_range, D_range: a loaded fit plots and checks over them
        }
        if self.law == "isoflop":
            self._fit_isoflop(t)
        else:
            self._fit_parametric(t)
        return self

    def check_settings_apply(self):
        """Raise ConfigError for a table setting, --fix or --tie (not its default) that this
        law cannot use."""
        defaults = setting_defaults()
        for name, laws in SETTING_LAWS.items():
            value = self.settings[name]
            if name == "run_cols" and self.settings.get("checkpoints"):
                continue  # rows are checkpoints: the runs they belong to
            if value not in (defaults[name], [], ()):
                check_applies(self.law, name, value, laws)

    def check_calibrate_applies(self):
        """ConfigError for a power-X law calibrated by another variable than X: it reads
        and predicts from X alone (power-c with calibrate N was an AxisError after the fit)."""
        by = self.settings["calibrate"]
        if self.law.startswith("power-") and by not in ("none", self.law[-1].upper()):
            x = self.law[-1].upper()
            raise ConfigError(
                f"--calibrate {by} does not apply to law {self.law!r}, which predicts from "
                f"{x} alone: give --calibrate {x} (or none)"
            )

    def _fit_parametric(self, t):
        s = self.settings
        form = make_form(self.law, floor=s["floor"], delta=huber_delta(self.law, s))
        t.require(self.law, *form.needs)
        # as many parameters as points: the fit passes through every point and every
        # resample reproduces it; its zero-width "intervals" claimed the law known exactly
        boot, too_few = warn.resamples(len(t), len(form.param_names), s["bootstrap"])
        res = fit_form(
            form,
            t,
            bootstrap=boot,
            seed=s["seed"],
            boot_starts=s["boot_starts"],
            prune=s["prune"],
        )
        with np.errstate(over="ignore"):  # a log-scale theta past ~709: exp() is inf
            nat = form.natural(res["ctx"], res["theta"])
        self.params_ = {k: float(v[0]) for k, v in nat.items()}
        overflow = [k for k, v in self.params_.items() if not np.isfinite(v)]
        if overflow:
            # The objective is finite in log space, but the law in its own parameters is
            # not: every prediction was nan, and the fit stopped at '0 finite residuals'.
            got = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
            raise FitError(
                f"{t.source}: law {self.law!r} on {len(t)} points ran "
                f"{', '.join(overflow)} off to infinity ({got}): these runs do not "
                "determine the law (too few of them, or over too narrow a range)"
            )
        self.derived_ = {k: float(v) for k, v in form.derived(self.params_).items()}
        self.objective_ = res["objective"]
        self.n_points_ = len(t)
        self.converged_ = res["converged"]
        samples = None
        if res["samples"] is not None:
            sn = form.natural(res["ctx"], res["samples"])
            samples = {**sn, **form.derived(sn)}
        self.set_uncertainty(samples)
        ctx, logL = res["ctx"], np.log(t.L)

        def logpred(th):
            p = {k: v[:, None] for k, v in form.natural(ctx, th).items()}
            with np.errstate(all="ignore"):
                return np.log(form.predict(p, N=t.N, D=t.D, C=t.C))

        se, cond = warn.curvature(
            logpred, lambda th: form.natural(ctx, th), res["theta"], logL, list(self.params_)
        )
        self.curvature_stderr_ = se
        self.warnings_ = warn.parametric(self, form, t, res, curv=(se, cond))
        self.warnings_ += too_few
        fitted = self._predict_with(self.params_, t.N, t.D, t.C)
        floor = warn.floor_at_zero(self, fitted)
        if floor:
            self.drop_interval(["E"])
            self.warnings_ += floor
        self.noise_ = intervals.noise_model(
            np.log(t.L),
            np.log(fitted),
            len(form.param_names),
            keys=t.seed_keys(form.needs),
            seeds_first=self.calibrated_noise(),
        )
        if s["calibrate"] != "none":
            self.calibrate_on(t)

    def calibrated_noise(self) -> bool:
        """Whether the noise comes from the seed repeats first (intervals.noise_model): in a
        calibrated fit, and in the refits of its calibration backtest, whose intervals the
        calibration scales."""
        return self.settings["calibrate"] != "none" or self.calibration_refit

    def calibrate_on(self, t):
        """calibration_: the conformal widening of the prediction intervals, from a
        leave-larger-out backtest (by the `calibrate` setting) of the rows of t.

        Args:
            t: the RunsTable fitted (its rows are refitted, larger ones held out).
        """
        s = self.settings
        sub_settings = {
            **s,
            "calibrate": "none",
            "bootstrap": min(s["bootstrap"], intervals.CAL_BOOTSTRAP),
        }

        def fit_rows(mask):
            sub = ScalingLaw.from_settings(self.law, sub_settings)
            sub.calibration_refit = True
            return sub.fit(t.subset(mask))

        self.calibration_ = intervals.calibrate(fit_rows, t, s["calibrate"])

    def _fit_isoflop(self, t):
        s = self.settings
        res = fit_isoflop(
            t,
            budgets=s["budgets"],
            bootstrap=s["bootstrap"],
            seed=s["seed"],
            curvature=s["curvature"],
            d_from_runs=s.get("n_kind") == "params_nonembed",
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
        self.warnings_ = res["warnings"] + warn.table_checks(t)
        self.warnings_ += warn.exponents(self, ("a",)) + warn.flat(self)

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
                where=s["where"],
            )
        elif isinstance(curves, (str, Path)):
            what = "a folder" if Path(curves).is_dir() else "no such file"
            raise DataError(f"{curves}: {what}; envelope takes a curves CSV or run folders")
        elif isinstance(curves, (list, tuple)) and all(
            isinstance(c, str | os.PathLike) for c in curves
        ):
            given = [k for k in ("n_col", "d_col", "c_col", "loss_col", "where") if s[k]]
            if given or s["run_cols"] != ["run_id"]:
                raise ConfigError(
                    f"{', '.join(given) or 'run_cols'} does not apply to run folders "
                    "(their metrics.jsonl and result.json name every column)"
                )
            curves = read_run_folders(curves)
        elif not isinstance(curves, Curves):
            kind = type(curves).__name__
            if isinstance(curves, (list, tuple)):
                kind += " of " + ", ".join(sorted({type(c).__name__ for c in curves}))
            raise DataError(
                f"envelope takes a curves CSV path, a list of run folders or Curves, not a {kind}"
            )
        res = fit_envelope(
            curves, points=s["envelope_points"], bootstrap=s["bootstrap"], seed=s["seed"]
        )
        self.params_ = res["point"]
        self.derived_ = {}
        self.objective_ = None  # the envelope is read off the curves, not fitted
        self.n_points_ = res["n_points"]
        self.converged_ = True
        self.conventions_ = {"source": curves.source, "runs": res["n_runs"], **curves.columns}
        self.data_ = {"source": curves.source, "sha256": "", "rows": res["n_runs"],
                      "C_range": compute_range(np.concatenate([r[2] for r in curves.runs]))}  # fmt: skip
        self.points_ = curves
        self.set_uncertainty(res["samples"])
        self.warnings_ = curves.notes + res["warnings"] + warn.table_checks(curves.points())
        self.warnings_ += warn.exponents(self, ("a", "b"))
        return self

    def _fit_curves(self, table):
        t = curvefit.read_table(self, table)
        out = curvefit.fit_curve_law(self, t)
        self._set_learned(out)
        curvefit.finish(self, out, t.runs)
        self.points_ = t  # every run, held-out ones too (in memory only; plot() draws them)
        return self

    def _set_learned(self, out):
        """The learned attributes (names ending in _) of a law module's fit, and its draws."""
        for k, v in out.items():
            if k.endswith("_"):
                setattr(self, k, v)
        self.set_uncertainty(out["samples"])

    def set_uncertainty(self, samples):
        """Bootstrap draws -> samples_, stderr_ and ci_.

        Args:
            samples: {parameter name: (K,) array of draws}, or None for no draws.

        The fitters call it; so does code that draws a law's parameters its own way
        (the study's frontier, from the IsoFLOP bootstrap)."""
        self.samples_ = None
        self.flat_draws_ = []
        self.stderr_, self.ci_ = {}, {}
        # a scale coefficient (k_N, k_D, k_L of isoflop and envelope) spans decades across
        # resamples: its spread is given in log10 (dex), where it means something
        self.stderr_log10_ = {}
        if samples is None:
            return
        self.samples_ = {k: np.asarray(v, dtype=float) for k, v in samples.items()}
        q = 100 * (1 - self.settings["ci_level"]) / 2
        flat = []
        # a parameter held by --fix is known exactly: its interval is that value
        fixed = {f.split("=")[0].strip() for f in self.settings.get("fix") or []}
        for k, v in self.samples_.items():
            ok = np.isfinite(v)
            v = v[ok]
            if 2 <= v.size < ok.size and k not in fixed and np.ptp(v) <= FLAT * np.abs(v).max():
                # the resamples that changed the data could not be fitted, and every one
                # that could gave the fit itself: the resampling cannot show this
                # parameter's uncertainty, and a zero-width interval would claim it is
                # known exactly (draws all finite and equal are a fit that every resample
                # reproduces: noiseless data, or an end held at chance; those keep theirs)
                flat.append(k)
            elif v.size >= 2:
                # half the central 68% of the draws (intervals.bootstrap_stderr): their
                # standard deviation was blown up by a few runaway refits
                self.stderr_[k] = intervals.bootstrap_stderr(v)
                lo, hi = np.percentile(v, [q, 100 - q])
                self.ci_[k] = [float(lo), float(hi)]
                if k.startswith("k_") and (v > 0).all():
                    self.stderr_log10_[k] = intervals.bootstrap_stderr(np.log10(v))
        self.flat_draws_ = flat
        # no draw left to give any interval with (a skipped budget's values are all NaN)
        if flat and all(k in flat or not np.isfinite(v).any() for k, v in self.samples_.items()):
            self.samples_ = None

    def drop_interval(self, names):
        """No interval for `names`: each ran to a limit of its law (E to 0, R*_D to
        infinity), a bound the data set rather than an estimate (laws/warn.py says so).

        Args:
            names: the parameters whose stderr_ and ci_ are removed.
        """
        for k in names:
            self.ci_.pop(k, None)
            self.stderr_.pop(k, None)

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

    def inputs(self) -> tuple:
        """The inputs of `predict` this law reads, of N, D, C and U: the task laws C (or N
        and D, as C = 6ND); C too for a law that predicts from N and D when its fit is
        calibrated by C (the prediction interval's widening is read at C)."""
        if self.law in tasklaws.TASK_LAWS:
            return ("C",)
        if self.law.startswith("power-"):
            return (self.law[-1].upper(),)
        out = ("N", "D", "U") if self.law == "data-constrained" else ("N", "D")
        return out + (("C",) if self.settings["calibrate"] == "C" else ())

    def inputs_used(self, N=None, D=None, C=None, U=None) -> dict:
        """Of the inputs given, those `predict` reads (`inputs`): for code that has all of
        N, D and C at hand and predicts with any law.

        Args:
            N: parameters, as for `predict`.
            D: training tokens.
            C: training FLOPs.
            U: unique tokens.
        """
        given = {"N": N, "D": D, "C": C, "U": U}
        keep = set(self.inputs())
        if self.law in tasklaws.TASK_LAWS and C is None:
            keep = {"N", "D"}
        return {k: v for k, v in given.items() if v is not None and k in keep}

    def _check_inputs_used(self, N, D, C):
        """ConfigError for an input of `predict` this law does not read (it was dropped
        without a word: C beside chinchilla's N and D, D given to power-n)."""
        if self.law in tasklaws.TASK_LAWS:
            if C is not None and (N is not None or D is not None):
                raise ConfigError(
                    f"predict: law {self.law!r} predicts from C, or from N and D as C = 6ND; "
                    "give C or N and D, not both"
                )
            return
        if self.law in ("isoflop", "envelope") or self.law in CURVE_LAWS:
            return  # these raise on their own terms
        inputs = self.inputs()
        for name, v in (("N", N), ("D", D), ("C", C)):
            if v is not None and name not in inputs:
                raise ConfigError(
                    f"predict: law {self.law!r} predicts from {', '.join(inputs)}; "
                    f"{name} is not used"
                )

    def predict(
        self,
        N=None,
        D=None,
        C=None,
        return_ci=False,
        *,
        U=None,
        steps=None,
        lr_schedule=None,
        kind="confidence",
        level=None,
        check_range=True,
    ):
        """The predicted loss of runs of N parameters, D tokens, C FLOPs (the task
        laws: the task metric; the curve laws: the loss at each of `steps`).

        Args:
            N: parameters (a number or an array), for the laws that use N.
            D: training tokens, for the laws that use D.
            C: training FLOPs, for power-c and the task laws (which take N and D
                instead as C = 6ND).
            return_ci: also return an interval (docs/laws.md, "What the intervals mean").
            U: unique tokens, for data-constrained.
            steps: the steps to predict, for the curve laws (multi-power,
                lr-annealing); `predict(steps, lr_schedule)` works positionally too.
            lr_schedule: the learning rate at every step 0..max(steps) (an array,
                a Schedule or a schedule spec string), for the curve laws.
            kind: "confidence" (default): the bootstrap percentile interval of the
                fitted curve (needs bootstrap > 0); "prediction": the interval for the
                loss of one new run, adding the run-to-run noise, widened by the fit's
                `calibration_` when it has one.
            level: the interval's level (default the fit's ci_level).
            check_range: warn (ExtrapolationWarning) when an N, D or C lies far outside
                the data fitted (`warn_beyond_data`); False for code that goes there on
                purpose (figures drawn to a planned budget, backtests of held-out rows).

        Returns:
            The loss (shaped as the inputs broadcast), or (loss, lo, hi) with return_ci:
            three floats for scalar inputs, else three arrays of the inputs' shape (empty
            arrays for an empty input: predict(N=[], D=[]) is array([])).
        """
        self.check_fitted()
        check_flag("return_ci", return_ci)
        check_flag("check_range", check_range)
        if level is not None and (
            isinstance(level, bool) or not isinstance(level, int | float | np.number)
        ):
            # float("x") raised a bare ValueError, and level="0.9" passed as 0.9
            raise ConfigError(f"level={short_repr(level)}: must be a number in (0, 1)")
        level = self.settings["ci_level"] if level is None else float(level)
        # checked even without return_ci: a misspelt kind, or U given to a law without it,
        # predicted as if they were not there
        if kind not in intervals.KINDS:
            raise ConfigError(f"kind={kind!r}: not one of {', '.join(intervals.KINDS)}")
        intervals.check_level(level)
        if U is not None and self.law != "data-constrained":
            raise ConfigError(f"predict: U is for law 'data-constrained'; {self.law!r} has no U")
        if (steps is not None or lr_schedule is not None) and self.law not in CURVE_LAWS:
            raise ConfigError(
                f"predict: steps and lr_schedule are for the curve laws "
                f"({', '.join(CURVE_LAWS)}), not {self.law!r}"
            )
        self._check_inputs_used(N, D, C)
        if self.law in tasklaws.TASK_LAWS:
            if kind != "confidence":
                raise ConfigError(f"law {self.law!r}: only kind='confidence' intervals")
            check_inputs(N=N, D=D, C=C)  # C = 0 predicted 0.497, a negative C NaN
            empty = _empty(N, D, C)
            if check_range and not empty:
                self.warn_beyond_data(N, D, C)
            if empty and return_ci:
                pred = tasklaws.predict(self, N, D, C, level=level)
                return self._empty_interval(pred, kind, level, N=N, D=D, C=C)
            return tasklaws.predict(self, N, D, C, return_ci=return_ci, level=level)
        if self.law in CURVE_LAWS:
            if kind != "confidence":
                raise ConfigError(f"law {self.law!r}: only kind='confidence' intervals")
            if C is not None:  # was ignored: the curve predicted as if it were not given
                raise ConfigError(
                    f"predict: law {self.law!r} predicts a curve, predict(steps, lr_schedule); "
                    "C is for the N, D laws"
                )
            # positional, keyword or both: predict(steps, lr_schedule=lr) was refused with
            # 'predicts a curve: predict(steps, lr_schedule)', the call the user had made
            if steps is None:
                steps, N = N, None
            if lr_schedule is None:
                lr_schedule, D = D, None
            if N is not None or D is not None:
                raise ConfigError(
                    f"predict: law {self.law!r} predicts a curve, predict(steps, lr_schedule); "
                    f"{'steps' if N is not None else 'lr_schedule'} is given twice "
                    "(by position and by keyword)"
                )
            return curvefit.predict(self, steps, lr_schedule, return_ci=return_ci, level=level)
        check_inputs(N=N, D=D, C=C, U=U)
        empty = _empty(N, D, C, U)
        pred, draws = self.prediction_draws(N, D, C, U, with_draws=return_ci and not empty)
        if check_range and not empty:  # an empty input lies nowhere (min() of it raised)
            self.warn_beyond_data(N, D, C, U)
        if not return_ci:
            return pred
        if empty:
            return self._empty_interval(pred, kind, level, N=N, D=D, C=C, U=U)
        flat = np.atleast_1d(pred).ravel()
        x = self.calibration_x(np.shape(pred), N=N, D=D, C=C) if kind == "prediction" else None
        lo, hi = intervals.interval(self, flat, draws, kind, level, x=x)
        return intervals.shaped(pred, lo, hi)

    def _empty_interval(self, pred, kind, level, **given):
        """predict's (loss, lo, hi) for an empty input: three empty arrays of its shape,
        after the interval is asked for at one stand-in point of each input given, so an
        empty input is refused what any input is (no bootstrap, no noise model, a
        calibration's variable not given). numpy's percentile of the (K, 0) draws is of
        shape (0,), not (2, 0): the interval itself raised a bare ValueError."""
        one = {k: np.ones(1) for k, v in given.items() if v is not None}
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # the stand-in's numbers are never shown
            self.predict(**one, return_ci=True, kind=kind, level=level, check_range=False)
        pred = np.asarray(pred, dtype=float)
        return pred, np.empty(pred.shape), np.empty(pred.shape)

    def warn_beyond_data(self, N=None, D=None, C=None, U=None, *, caller="predict"):
        """An ExtrapolationWarning when an input lies far outside the data fitted: more
        than warn.BELOW below the smallest N, D, C or U of `ranges_`, or warn.ABOVE above
        the largest (most often a units mix-up). One warning per call, naming each such
        variable, its extreme value and the fitted value it is compared with. A fit loaded
        from fit.json knows the ranges it recorded (data.C_range, N_range, D_range and a
        data-constrained fit's U_range; one written before N_range its compute range
        alone: it checks C, or 6ND from N and D); a law from parameters has no range and
        never warns.

        Args:
            N: parameters, as for `predict`.
            D: training tokens.
            C: training FLOPs.
            U: unique tokens (data-constrained).
            caller: the method the warning names (`predict`, `optimal`).
        """
        ranges = getattr(self, "ranges_", None) or {}
        given = [("N", "N", N), ("D", "D", D), ("C", "C", C), ("U", "U", U)]
        if C is None and N is not None and D is not None and not {"N", "D"} & set(ranges):
            given.append(("C=6ND", "C", 6.0 * np.asarray(N, float) * np.asarray(D, float)))
        message = warn.beyond_data(ranges, given, caller)
        if message:  # stacklevel 3: the line that called predict
            warnings.warn(message, ExtrapolationWarning, stacklevel=3)

    def calibration_x(self, shape, N=None, D=None, C=None):
        """The calibration's variable (C, N or D; C = 6ND where not given, refused where the
        fit's C column is not 6ND) at the inputs, flattened to `shape`, or None (no
        calibration, or that variable is unknown).

        Args:
            shape: the shape of the predictions.
            N: parameters, as for `predict`.
            D: training tokens.
            C: training FLOPs.
        """
        cal = self.calibration_ or {}
        by = cal.get("by")
        if not cal.get("d0") or by not in ("C", "N", "D"):
            return None
        if by == "C" and C is None and N is not None and D is not None:
            if cal.get("C_column"):  # 6ND would read a larger run as nearer than it is
                raise ConfigError(
                    f"predict: this fit's prediction intervals widen with C as its column "
                    f"{cal['C_column']!r} counts it, which is not 6ND; give C, the run's "
                    "FLOPs counted as that column counts them"
                )
            C = 6.0 * np.asarray(N, dtype=float) * np.asarray(D, dtype=float)
        x = {"C": C, "N": N, "D": D}[by]
        if x is None:
            return None
        return np.broadcast_to(np.asarray(x, dtype=float), shape).ravel()

    def prediction_draws(self, N=None, D=None, C=None, U=None, with_draws=True):
        """The point prediction and the predictions of every bootstrap draw.

        Args:
            N: parameters, as for `predict`.
            D: training tokens.
            C: training FLOPs.
            U: unique tokens, for data-constrained.
            with_draws: also compute the draws' predictions.

        Returns:
            (point prediction shaped as the inputs broadcast, (K, m) predictions of the
            K bootstrap draws at the m flattened inputs, or None without draws).
        """
        check_flag("with_draws", with_draws)
        check_inputs(N=N, D=D, C=C, U=U)
        if self.law == "data-constrained":
            pred = constrained.predict(self, N, D, U)
            if not with_draws or self.samples_ is None:
                return pred, None
            form = constrained.make(self)
            sp = {k: self.samples_[k][:, None] for k in constrained.NAMES}
            flat = [np.atleast_1d(np.asarray(x, dtype=float)).ravel()[None, :] for x in (N, D, U)]
            flat = np.broadcast_arrays(*flat)
            return pred, form.predict(sp, *flat)
        args = [None if v is None else np.asarray(v, dtype=float) for v in (N, D, C)]
        pred = self._predict_with(self.params_, *args)
        if not with_draws or self.samples_ is None:
            return pred, None
        sp = {k: v[:, None] for k, v in self.samples_.items()}
        given = [a for a in args if a is not None]
        shape = np.broadcast_shapes(*(np.shape(a) for a in given))
        flat = [None if a is None else np.broadcast_to(a, shape).ravel()[None, :] for a in args]
        return pred, self._predict_with(sp, *flat)

    def optimal(self, C, *, check_range=True):
        """The compute-optimal allocation at a budget (chinchilla, isoflop, envelope).

        Args:
            C: FLOPs, a number or a list of numbers.
            check_range: warn (ExtrapolationWarning) where a budget, or the N or D planned
                at it, lies far outside the data fitted, as `predict` does.

        Returns:
            A dict (a list of dicts for a list) of flops, params, tokens,
            tokens_per_param and loss, each with a `*_ci` interval when the fit
            has bootstrap draws.

        Raises:
            ConfigError: a budget whose optimal run has less than one parameter or token
                (C = 1 planned 0.04 parameters), or a C that is no positive number.
        """
        check_flag("check_range", check_range)
        rows = optimal_allocation(self, C)
        listed = rows if isinstance(rows, list) else [rows]
        for r in listed:
            small = [f"{k}={r[k]:.3g}" for k in ("params", "tokens") if r.get(k, 1) < 1]
            if small:
                raise ConfigError(
                    f"optimal: C={r['flops']:g}: the compute-optimal run has "
                    f"{', '.join(small)}, less than one parameter or token: no run is that small"
                )
        if check_range:
            given = {k: np.array([r[key] for r in listed]) for k, key in
                     (("C", "flops"), ("N", "params"), ("D", "tokens")) if key in listed[0]}  # fmt: skip
            self.warn_beyond_data(**given, caller="optimal")
        return rows

    def report(self) -> str:
        """The fit as readable text (what `scalinglab fit` prints)."""
        self.check_fitted()
        return render_report(self)

    def to_json(self) -> dict:
        """The fit as fit.json's object (format_version 1; `load_fit` reads it back): a copy,
        so editing it leaves the fitted law as it was."""
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
        if getattr(self, "noise_", None) is not None:
            out["noise"] = self.noise_
        if getattr(self, "stderr_log10_", None):
            out["stderr_log10"] = _finite(self.stderr_log10_)
        if getattr(self, "curvature_stderr_", None):
            out["curvature_stderr"] = _finite(self.curvature_stderr_)
        if getattr(self, "calibration_", None) is not None:
            out["calibration"] = self.calibration_
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
        return copy.deepcopy(out)

    # ------------------------------------------------------------------ reading a fit
    # (repr, notebook HTML, summary table, plot, laws from parameters: laws/view.py,
    # laws/plot.py, laws/published.py)
    def __repr__(self):
        return law_repr(self)

    def _repr_html_(self):
        return law_html(self)

    def summary(self):
        """One row per parameter and derived quantity: value, stderr, ci_low, ci_high.

        IsoFLOP's per-budget values (N_opt, D_opt, L_opt, k at each budget) are rows
        with their `budget`. Returns a pandas DataFrame when pandas is installed (the
        [dataframe] extra), else the same rows as a list of dicts.
        """
        self.check_fitted()
        return summary_table(self)

    def plot(self, ax=None):
        """Draw the data, the fitted law, its bootstrap band and the extrapolated range.

        Args:
            ax: a matplotlib Axes to draw on; None makes a new figure.

        Returns:
            The Axes drawn on (`ax.figure.savefig(path)` saves it). The figure
            depends on the law: docs/api.md shows each.
        """
        return plot_law(self, ax)

    @classmethod
    def from_params(cls, law, **params):
        """A law with given parameters and no data, ready to `predict`, `optimal`, `plot`.

        Args:
            law: one of LAWS; "isoflop" and "envelope" take k_N, a, k_D, b
                (and optionally k_L, a_L).
            **params: every parameter of the law, by name (for "chinchilla": E,
                A, B, alpha, beta; "kaplan": alpha_N, alpha_D, N_c, D_c;
                "power-X": E (optional: no floor without it), alpha, X_c).

        Raises:
            ConfigError: an unknown law, a missing or unknown parameter, one that is
                not a finite number, a scale (A, B, X_c, k_N, ...) not > 0, E < 0.
        """
        est = cls(law, bootstrap=0)
        if law in ("isoflop", "envelope"):
            names, optional = ("k_N", "a", "k_D", "b"), ("k_L", "a_L")
        elif law.startswith("power-"):
            names, optional = ("alpha", f"{law[-1].upper()}_c"), ("E",)
            est.settings["floor"] = "E" in params
        else:
            try:
                names, optional = make_form(law).param_names, ()
            except KeyError:
                raise ConfigError(
                    f"from_params({law!r}): a law built from parameters is one of chinchilla, "
                    "kaplan, nd-interaction, power-n, power-d, power-c, isoflop, envelope"
                ) from None
        missing = [n for n in names if n not in params]
        unknown = [n for n in params if n not in names and n not in optional]
        if missing or unknown:
            raise ConfigError(
                f"from_params({law!r}): "
                + "; ".join(
                    f"{what} {', '.join(v)}"
                    for what, v in (("missing", missing), ("unknown", unknown))
                    if v
                )
                + f" (the parameters: {', '.join(names + optional)})"
            )
        bad = [k for k, v in params.items() if not _real(v)]
        if bad:
            raise ConfigError(
                f"from_params({law!r}): {', '.join(f'{k}={params[k]!r}' for k in bad)}: "
                "parameters are finite numbers"
            )
        scales = [k for k in _SCALES.get(law, ()) if k in params and not params[k] > 0]
        if scales:  # A=-480 planned a run of -1e9 parameters, B=0 a ZeroDivisionError
            raise ConfigError(
                f"from_params({law!r}): {', '.join(f'{k}={params[k]!r}' for k in scales)}: "
                "must be > 0"
            )
        if "E" in params and params["E"] < 0:  # a law that predicts a negative loss
            raise ConfigError(
                f"from_params({law!r}): E={params['E']!r}: must be >= 0 (the irreducible loss)"
            )
        if law == "chinchilla" and not (params["alpha"] > 0 and params["beta"] > 0):
            raise ConfigError(
                f"from_params('chinchilla'): alpha={params['alpha']!r}, beta={params['beta']!r}: "
                "the exponents are > 0 (the loss falls as N and D grow)"
            )
        est.params_ = {k: float(v) for k, v in params.items()}
        est.derived_ = {}
        if law == "chinchilla":
            est.derived_ = {k: float(v) for k, v in make_form(law).derived(est.params_).items()}
        est.stderr_, est.ci_, est.samples_ = {}, {}, None
        est.noise_, est.calibration_ = None, None  # no data: no prediction interval
        est.n_points_, est.objective_, est.converged_ = 0, None, True
        est.warnings_ = []
        est.conventions_ = {"source": "from_params"}
        est.data_ = {"source": "from_params", "sha256": "", "rows": 0}
        return est

    @classmethod
    def from_published(cls, name):
        """A published law by name, with no data.

        Args:
            name: "hoffmann2022", "besiroglu2024" or "kaplan2020".

        The parameters and their source are in `scalinglab.laws.published.PUBLISHED`
        (and docs/api.md); `conventions_["source"]` names the paper.
        """
        if name not in PUBLISHED:
            raise ConfigError(f"published law {name!r} is not one of {', '.join(PUBLISHED)}")
        entry = PUBLISHED[name]
        est = cls.from_params(entry["law"], **entry["params"])
        est.conventions_ = {"source": entry["note"]}
        est.data_ = {"source": name, "sha256": "", "rows": 0}
        return est


# the parameters a fit gives as exponentials (forms.py, isoflop's intercepts), so > 0
_SCALES = {
    "chinchilla": ("A", "B"),
    "nd-interaction": ("A", "B"),
    "kaplan": ("N_c", "D_c"),
    "power-n": ("N_c",),
    "power-d": ("D_c",),
    "power-c": ("C_c",),
    "isoflop": ("k_N", "k_D", "k_L"),
    "envelope": ("k_N", "k_D", "k_L"),
}


def _real(v) -> bool:
    """A finite real number (not a bool, not a string)."""
    return isinstance(v, int | float | np.number) and not isinstance(v, bool) and np.isfinite(v)


def check_flag(name, value) -> None:
    """ConfigError unless `value` is True or False (a numpy bool too): a string such as
    "no" is truthy, and return_ci="no" returned the interval."""
    if not isinstance(value, bool | np.bool_):
        raise ConfigError(f"{name}={short_repr(value)}: must be True or False")


def _empty(*inputs) -> bool:
    """Whether the inputs given (checked by check_inputs) broadcast to no value at all."""
    shapes = [np.shape(v) for v in inputs if v is not None]
    return bool(shapes) and 0 in np.broadcast_shapes(*shapes)


def check_inputs(**given) -> None:
    """Refuse inputs of a prediction that are not finite positive numbers, or whose shapes
    do not broadcast, naming the argument (a negative N predicted NaN, N = 0 inf); and a
    table (a DataFrame) for one: `D=df[["tokens"]]`, of shape (20, 1), beside a column of
    20 broadcast to 400 losses of every pair. Arrays broadcast as numpy's do (N[:, None]
    beside D: a grid, asked for)."""
    shapes = {}
    for name, v in given.items():
        if v is None:
            continue
        if hasattr(v, "columns") and hasattr(v, "shape"):  # pandas, polars, pyarrow tables
            first = next(iter(v.columns), "COLUMN")
            raise ConfigError(
                f"predict: {name} is a table of {len(v.columns)} column(s), not a column: "
                f"give one column (df[{first!r}] rather than df[[...]])"
            )
        try:
            raw = np.asarray(v)
        except ValueError:  # ragged lists, [[1e7, 2e7], [3e7]]: numpy's bare ValueError
            raise ConfigError(f"predict: {name} must be numbers, got {short_repr(v)}") from None
        if raw.dtype.kind == "O" and all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in raw.ravel()
        ):  # Python ints beyond int64 (N=10**20) make an object array: numbers all the same
            try:
                raw = raw.astype(float)
            except OverflowError:  # an int past float's range, N=10**400
                raise ConfigError(
                    f"predict: {name} holds a number too large for a float: {short_repr(v)}"
                ) from None
        if raw.dtype.kind not in "iuf":  # strings, objects, bools
            raise ConfigError(f"predict: {name} must be numbers, got {short_repr(v)}")
        a = raw.astype(float)
        bad = np.argwhere(~(np.isfinite(a) & (a > 0)).reshape(np.shape(np.atleast_1d(a))))
        if len(bad):
            at = tuple(bad[0].tolist())
            where = "" if a.ndim == 0 else f"[{', '.join(map(str, at))}]"
            value = np.atleast_1d(a)[at]
            raise ConfigError(
                f"predict: {name}{where} is {value:g}; {name} must be finite numbers > 0"
            )
        shapes[name] = a.shape
    try:
        np.broadcast_shapes(*shapes.values())
    except ValueError:
        what = " and ".join(f"{k} of shape {v}" for k, v in shapes.items())
        raise ConfigError(f"predict: {what} do not broadcast to one shape") from None


def _finite(d):
    """JSON has no NaN/inf: a value that is not finite (e.g. a skipped budget) becomes null."""
    return {k: (float(v) if np.isfinite(v) else None) for k, v in d.items()}


def required_params(law) -> tuple:
    """The parameters `law` (a ScalingLaw) predicts or plans with: every fit.json of it holds
    them in params and, with a bootstrap, in its samples."""
    name = law.law
    if name in ("chinchilla", "kaplan", "nd-interaction") or name.startswith("power-"):
        return make_form(name, floor=law.settings["floor"]).param_names
    if name == "data-constrained":
        return constrained.NAMES
    if name in CURVE_LAWS:
        return CURVE_LAWS[name].param_names
    if name in ("isoflop", "envelope"):  # k_L, a_L optional (from_params)
        return ("k_N", "a", "k_D", "b")
    if name in ("task-power", "task-sigmoid"):  # a power law in C, then the sigmoid
        power = (("E",) if law.settings["floor"] else ()) + ("alpha", "C_c")
        return power + (("lo", "hi", "k", "L0") if name == "task-sigmoid" else ())
    return ()


def _too_big(v: int) -> bool:
    try:
        float(v)
    except OverflowError:
        return True
    return False


def _read_params(params, need, path) -> dict:
    """{name: float} of fit.json's params. A value that is no number (a string, true: float()
    took true as 1 and "3" as 3) is refused, naming it; so is a parameter in `need` (the
    law's: required_params) that is null, NaN or infinite: predict blamed its N for it
    ('N[0] is nan'). Others may be null (not finite when fitted)."""
    out = {}
    for k, v in params.items():
        if isinstance(v, int) and not isinstance(v, bool) and _too_big(v):
            v = float("inf")  # an integer beyond a float's range: float() raised OverflowError
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            if k in need:
                shown = "null" if v is None else str(v)
                raise DataError(f"{path}: params.{k} is {shown}, not a finite number")
        elif isinstance(v, bool) or not isinstance(v, int | float):
            raise DataError(f"{path}: params.{k} is {json.dumps(v)}, not a number")
        out[k] = np.nan if v is None else float(v)
    return out


# Each law's parameter domains: `load_fit` refuses a fit.json whose point params leave them
# (a hand edit: B = 0 was a ZeroDivisionError in plan, E = -1 planned a loss of -0.34).
# Only what the fit itself keeps: the scales it fits as exponentials (A = e^a, ...) are
# > 0 where 0 breaks predict or plan (chinchilla's allocation divides by B, and A = 0 puts
# N_opt at 0; data-constrained's R*_D, R*_N divide) and >= 0 where an exponential of a large
# negative coordinate may underflow to 0 and the law still predicts (E; the curve laws'
# L0, A, B, C; a power law's X_c = x0·e^(c/α) at a small α). Exponents and the other
# coordinates are fitted unconstrained (an exponent <= 0 is fitted and warned of, and plan
# refuses it: optimal.check_exponents), so they need only be finite (_read_params). Bootstrap
# draws are not checked: a degenerate draw is left out by the intervals.
_POS, _NONNEG = (">", 0.0), (">=", 0.0)
_FLOORED = {"E": _NONNEG}
PARAM_DOMAINS = {
    "chinchilla": {**_FLOORED, "A": _POS, "B": _POS},
    "nd-interaction": {**_FLOORED, "A": _NONNEG, "B": _NONNEG},
    "kaplan": {"N_c": _NONNEG, "D_c": _NONNEG},
    "power-n": {**_FLOORED, "N_c": _NONNEG},
    "power-d": {**_FLOORED, "D_c": _NONNEG},
    "power-c": {**_FLOORED, "C_c": _NONNEG},
    "data-constrained": {**_FLOORED, "A": _POS, "B": _POS, "R_D": _POS, "R_N": _POS},
    "multi-power": {"L0": _NONNEG, "A": _NONNEG, "B": _NONNEG, "C": _NONNEG},
    "lr-annealing": {"L0": _NONNEG, "A": _NONNEG, "C": _NONNEG},
    "isoflop": {"k_N": _POS, "k_D": _POS, "k_L": _POS},
    "envelope": {"k_N": _POS, "k_D": _POS},
    "task-power": {**_FLOORED, "C_c": _NONNEG},
    "task-sigmoid": {**_FLOORED, "C_c": _NONNEG, "k": _NONNEG},
}


def _check_domains(law, path) -> None:
    """DataError naming a point parameter outside its law's domain (PARAM_DOMAINS); a
    parameter that may be null (isoflop's k_L when L_opt was not fitted) is skipped there."""
    for k, (op, bound) in PARAM_DOMAINS.get(law.law, {}).items():
        v = law.params_.get(k)
        if v is None or np.isnan(v):
            continue
        if not (v > bound if op == ">" else v >= bound):
            raise DataError(
                f"{path}: params.{k} is {v:g}; law {law.law!r} needs {k} {op} {bound:g}"
            )


def _check_params(law, path) -> None:
    """DataError ('malformed fit.json') naming the parameters of the law that params or the
    bootstrap samples lack (plan failed on them with a KeyError traceback)."""
    need = required_params(law)
    for what, have in (("params", law.params_), ("bootstrap samples", law.samples_)):
        missing = [k for k in need if have is not None and k not in have]
        if missing:
            raise DataError(
                f"{path}: malformed fit.json (its {what} lack {', '.join(missing)} of law "
                f"{law.law!r}, whose parameters are {', '.join(need)})"
            )


def _check_parts(law, path) -> None:
    """DataError ('malformed fit.json') naming a part a hand edit broke that predict and plan
    read only later: the noise, calibration or backtest not an object, the noise's quantiles
    not a list of numbers, a data range not [smallest, largest], bootstrap samples of
    unequal lengths (each a traceback: 'operands could not be broadcast', 'len() of
    unsized object', 'not enough values to unpack')."""
    for key in ("noise", "calibration", "backtest"):
        v = getattr(law, f"{key}_")
        if v is not None and not isinstance(v, dict):
            raise DataError(
                f"{path}: malformed fit.json ({key} is {json.dumps(v)[:40]}, not an object)"
            )
    q = (law.noise_ or {}).get("quantiles")
    if q is not None and not (
        isinstance(q, list)
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in q)
    ):
        raise DataError(f"{path}: malformed fit.json (noise.quantiles is not a list of numbers)")
    for key in ("C_range", "N_range", "D_range", "U_range", "steps_range", "lr_range"):
        v = law.data_.get(key)
        if v is not None and not (
            isinstance(v, list)
            and len(v) == 2
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
            and all(np.isfinite(v))
            and 0 <= v[0] <= v[1]
        ):  # plan and predict unpack (smallest, largest): a ValueError traceback
            raise DataError(
                f"{path}: malformed fit.json (data.{key} is {json.dumps(v)[:40]}, not "
                "[smallest, largest])"
            )
    sizes = {k: v.size for k, v in (law.samples_ or {}).items()}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{k} {n}" for k, n in sizes.items())
        raise DataError(
            f"{path}: malformed fit.json (its bootstrap samples differ in length: {shown}; "
            "each holds one draw per resample)"
        )


# fit.json's parts that load_fit reads, each with the JSON type it must be: those required
# (to_json writes them all) and those that may be left out. A part of the wrong type was a
# 'malformed fit.json (AttributeError(...))' naming no key.
_REQUIRED_PARTS = {
    "law": str,
    "settings": dict,
    "params": dict,
    "stderr": dict,
    "ci": dict,
    "n_points": None,
    "objective": None,
    "warnings": list,
    "conventions": dict,
}
_OPTIONAL_PARTS = {"derived": dict, "data": dict, "stderr_log10": dict}
_JSON_TYPES = {dict: "an object", list: "a list", str: "a string"}


def _json_type(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    return _JSON_TYPES.get(type(v), type(v).__name__)


def _check_shape(obj, path) -> None:
    """DataError ('malformed fit.json') naming a part fit.json lacks, or one of another JSON
    type than to_json writes (params a list, data or settings null, bootstrap samples that
    are no lists of numbers)."""

    def bad(what):
        return DataError(f"{path}: malformed fit.json ({what})")

    for key, kind in _REQUIRED_PARTS.items():
        if key not in obj:
            raise bad(f"no {key!r}")
        if kind is not None and not isinstance(obj[key], kind):
            raise bad(f"{key!r} is {_json_type(obj[key])}, not {_JSON_TYPES[kind]}")
    for key, kind in _OPTIONAL_PARTS.items():
        if key in obj and not isinstance(obj[key], kind):
            raise bad(f"{key!r} is {_json_type(obj[key])}, not {_JSON_TYPES[kind]}")
    boot = obj.get("bootstrap")
    if boot is None:  # no bootstrap (to_json leaves it out)
        return
    if not isinstance(boot, dict):
        raise bad(f"'bootstrap' is {_json_type(boot)}, not an object")
    if "samples" not in boot:
        raise bad("its bootstrap has no 'samples'")
    samples = boot["samples"]
    if not isinstance(samples, dict):
        raise bad(f"bootstrap.samples is {_json_type(samples)}, not an object")
    for k, v in samples.items():
        if not isinstance(v, list) or not all(
            x is None or (isinstance(x, int | float) and not isinstance(x, bool)) for x in v
        ):
            raise bad(f"bootstrap.samples.{k} is not a list of numbers")


def load_fit(path) -> ScalingLaw:
    """A fitted ScalingLaw from a fit.json (format_version 1).

    Args:
        path: a fit.json written by `scalinglab fit --out` or `to_json()`, or
            `to_json()`'s dict itself, or its JSON text (a string starting with `{`).

    Raises:
        DataError: the file is missing, not a fit.json, or of another format_version, or
            a part is missing or of the wrong JSON type (`_check_shape`), its params or
            bootstrap samples lack a parameter of its law (`required_params`), a point
            parameter is out of its law's domain (`PARAM_DOMAINS`), or a part it reads
            later is malformed (`_check_parts`).
    """
    if isinstance(path, dict):  # a fit's to_json() in memory
        obj, path = path, Path("<dict>")
    elif isinstance(path, str) and path.lstrip().startswith("{"):
        # a fit.json's text (json.dumps(law.to_json())) was read as a file name: the whole
        # text came back in 'cannot read (File name too long)'
        try:
            obj, path = json.loads(path), Path("<JSON text>")
        except json.JSONDecodeError as exc:
            raise DataError(f"load_fit: a JSON text that is not a fit.json ({exc})") from None
    else:
        if not isinstance(path, str | os.PathLike):
            raise ConfigError(
                f"load_fit: a fit.json path or a fit's to_json() dict, not {type(path).__name__}"
            )
        path = Path(path)
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise DataError(f"{path}: a folder, not a fit.json") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: not a fit.json ({exc})") from None
    if not isinstance(obj, dict) or obj.get("kind") != "scalinglab.fit":
        raise DataError(f"{path}: not a scalinglab fit.json (no kind 'scalinglab.fit')")
    if obj.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{path}: format_version {obj.get('format_version')!r}; this scalinglab reads {FORMAT_VERSION}"
        )
    _check_shape(obj, path)
    try:
        law = ScalingLaw.from_settings(obj["law"], obj["settings"])
        law.params_ = _read_params(obj["params"], required_params(law), path)
        law.derived_ = obj.get("derived", {})
        law.stderr_, law.ci_ = obj["stderr"], obj["ci"]
        law.n_points_, law.objective_ = obj["n_points"], obj["objective"]
        law.converged_, law.warnings_ = obj.get("converged", True), obj["warnings"]
        law.conventions_, law.data_ = obj["conventions"], obj.get("data", {})
        # the ranges fit.json records (C_range; N_range and D_range since they were added):
        # predict checks against them and plot draws over them, as an in-memory fit does
        law.ranges_ = {
            k: [float(x) for x in law.data_[f"{k}_range"]]
            for k in ("N", "D", "C", "U")
            if law.data_.get(f"{k}_range")
        }
        law.backtest_ = obj.get("backtest")
        law.noise_ = obj.get("noise")
        law.stderr_log10_ = obj.get("stderr_log10", {})
        law.calibration_ = obj.get("calibration")
        boot = obj.get("bootstrap")
        law.samples_ = None
        if boot:
            law.samples_ = {
                k: np.array([np.nan if x is None else x for x in v], dtype=float)
                for k, v in boot["samples"].items()
            }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{path}: malformed fit.json ({exc!r})") from None
    except ConfigError as exc:  # a setting no fit.json of this format has
        raise DataError(f"{path}: malformed fit.json ({exc})") from None
    _check_params(law, path)
    _check_domains(law, path)
    _check_parts(law, path)
    law.fit_path_ = path  # plan names it when the law's numbers overflow (laws.optimal)
    return law
