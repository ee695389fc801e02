"""The settings of a fit, as typed configs (the project's one mechanism: scalinglab.config).

`FitConfig` says how a law is fitted (bootstrap, objective, starts); `TableConfig`
says how a runs table is read (which columns, which rows). Each field is one
keyword of `ScalingLaw(...)`, one `scalinglab fit` flag and, for `FitConfig`, one
key of a study's `[fit]` table, with the same name and default in all three.

One default for the bootstrap, 1000 resamples: a 95% percentile interval then
rests on 25 draws in each tail (200, a study's default before, left 5). On a
quickstart-sized study (28 runs, two architectures) fitting every law of every
architecture took 0.99 s of CPU against 0.77 s with 200. `bootstrap=0` fits the
point only.
"""

import dataclasses
import math
from dataclasses import dataclass, field

from scalinglab.config import SEED_RANGE, check_seed, check_types, from_dict, setting
from scalinglab.errors import ConfigError
from scalinglab.laws.curves import LR_FILLS
from scalinglab.laws.isoflop import CURVATURES

N_KINDS = ("params", "params_nonembed")
CALIBRATE = ("none", "C", "N", "D")
BOOTSTRAP = 1000
# Old spelling of `curvature` in a study's [fit] table and study.json (before issue 15).
OLD_KEYS = {"isoflop_curvature": "curvature"}


# The Huber delta of a law's fit when --huber-delta is not given: 1e-3 (Hoffmann et al.,
# Besiroglu et al., Luo et al.) but for multi-power, whose fits on Luo et al.'s curves
# predict the held-out schedules better at 1e-2 for every model size (benchmarks/results/
# curve_laws.md); residuals of these curves are ~1e-3, so 1e-2 is least squares in practice.
HUBER_DELTA = 1e-3
LAW_HUBER_DELTA = {"multi-power": 1e-2}


def huber_delta(law: str, settings: dict) -> float:
    """The Huber delta a fit of `law` uses: the setting, else the law's default."""
    given = settings.get("huber_delta")
    return given if given is not None else LAW_HUBER_DELTA.get(law, HUBER_DELTA)


MIN_BOOTSTRAP = 10
MAX_BOOTSTRAP = 100_000  # 1e9 resamples grew until the OS killed the process (22 GiB of draws)


def check_bootstrap(k: int) -> None:
    """0 (no interval) or at least MIN_BOOTSTRAP resamples: 2 draws made "95% intervals"
    that left out the fit itself (the range of k draws covers (k-1)/(k+1) of new ones)."""
    if k < 0 or 0 < k < MIN_BOOTSTRAP:
        raise ConfigError(
            f"--bootstrap must be 0 (no intervals) or >= {MIN_BOOTSTRAP} resamples, got {k}"
        )
    if k > MAX_BOOTSTRAP:  # each resample is a refit, its draws kept in memory
        raise ConfigError(
            f"--bootstrap {k}: at most {MAX_BOOTSTRAP:,} resamples (each is a refit, its "
            "draws kept in memory; the default is 1000)"
        )


@dataclass
class FitConfig:
    """How a law is fitted: bootstrap resamples and intervals, objective, starts."""

    bootstrap: int = setting(BOOTSTRAP, "bootstrap resamples of every fit; 0 for none")
    seed: int = setting(0, "bootstrap seed", range=SEED_RANGE)
    ci_level: float = setting(0.95, "confidence level of the intervals")
    calibrate: str = setting(
        "none",
        "prediction intervals: widen them by the conformal factor of a leave-larger-out "
        "backtest of the fit's own runs, larger by C, N or D (none: no widening)",
        choices=CALIBRATE,
    )
    curvature: str = setting(
        "per-budget",
        "isoflop: one parabola per budget (Hoffmann et al.), or parabolas that share one "
        "curvature (steadier optima from few noisy sizes per budget)",
        choices=CURVATURES,
    )
    floor: bool = setting(
        True, "power-*, task laws: fit an irreducible loss E (--no-floor: L = (X_c/X)^a)"
    )
    chance: float | None = setting(
        None,
        "task-sigmoid: fix the sigmoid's ends at this chance accuracy and 1, fit only k and "
        "L0 (e.g. 0.5 for two choices)",
        shown="none: all four free",
    )
    huber_delta: float | None = setting(
        None,
        "Huber delta on log-loss residuals (each law's own: 1e-3, multi-power 1e-2)",
        shown="the law's",
    )
    boot_starts: int = setting(1, "starts per bootstrap refit (best distinct optima of the grid)")
    prune: bool = setting(True, "run only the best starts to convergence (--no-prune: all)")
    envelope_points: int = setting(100, "envelope: log-spaced compute values")
    lr_fill: str = setting(
        "linear",
        "curve laws: the LR between logged steps: linear interpolation; linear with isolated "
        "jumps at the interval's midpoint (auto); or the previous logged value",
        choices=LR_FILLS,
    )
    decay_factor: float = setting(
        0.999, "lr-annealing: the momentum factor lambda of the annealing area S2"
    )
    # list fields (their flags are written in cli/fit.py)
    tie: list = field(
        default_factory=list,
        metadata={"help": "data-constrained: parameters fitted as one (alpha=beta); repeatable"},
    )
    fix: list = field(
        default_factory=list,
        metadata={
            "help": "data-constrained, multi-power, lr-annealing: hold NAME at VALUE "
            "(NAME=VALUE); repeatable"
        },
    )

    def __post_init__(self):
        check_types(self)
        check_bootstrap(self.bootstrap)
        check_seed(self.seed)  # numpy's generators refuse a negative seed
        if not 0 < self.ci_level < 1:
            raise ConfigError(f"--ci-level must be in (0, 1), got {self.ci_level}")
        if self.chance is not None and not (math.isfinite(self.chance) and 0 <= self.chance < 1):
            raise ConfigError(f"--chance must be in [0, 1), got {self.chance}")
        if self.huber_delta is not None and not (
            math.isfinite(self.huber_delta) and self.huber_delta > 0
        ):
            raise ConfigError(f"--huber-delta must be > 0, got {self.huber_delta}")
        self.tie = [str(x) for x in _items(self.tie)]
        self.fix = [str(x) for x in _items(self.fix)]
        if not 0 < self.decay_factor < 1:
            raise ConfigError(f"--decay-factor must be in (0, 1), got {self.decay_factor}")
        if self.boot_starts < 1:
            raise ConfigError(f"--boot-starts must be >= 1, got {self.boot_starts}")
        if self.envelope_points < 3:  # 1 and 2 failed later: 'fewer than 3 compute values'
            raise ConfigError(
                f"--envelope-points must be >= 3 (a line through the envelope's optima needs "
                f"3 compute values), got {self.envelope_points}"
            )


@dataclass
class TableConfig:
    """How a runs table is read: the columns of N, D, C, loss and budget; the rows kept."""

    n_col: str | None = setting(
        None, "column holding N (parameters)", shown="params, N, N_params, ..."
    )
    d_col: str | None = setting(
        None, "column holding D (training tokens)", shown="tokens, D, D_tokens, ..."
    )
    c_col: str | None = setting(None, "column holding C (training FLOPs)", shown="flops, C, ...")
    loss_col: str | None = setting(
        None, "column holding the loss (nats/token)", shown="loss, val_loss, ..."
    )
    budget_col: str | None = setting(
        None, "isoflop: column holding each run's compute budget", shown="budget"
    )
    metric_col: str | None = setting(
        None, "task laws: column holding the task metric, a fraction (e.g. recall.acc)"
    )
    n_kind: str = setting("params", "which N of our runs tables", choices=N_KINDS)
    step_col: str = setting("step", "curve laws: column holding each logged point's step")
    lr_col: str = setting("lr", "curve laws: column holding the learning rate at that step")
    schedule_col: str | None = setting(
        None, "curve laws: column holding each run's schedule spec (instead of --lr-col)"
    )
    u_col: str | None = setting(
        None,
        "data-constrained: column holding the unique tokens U",
        shown="unique_tokens, U, U_unique_tokens, ...",
    )
    drop_highest: int = setting(0, "drop the K highest-loss rows (Besiroglu et al. drop 5)")
    checkpoints: bool = setting(
        False,
        "N, D laws: rows are checkpoints of runs named by --run-col (repeats allowed); "
        "the bootstrap and the backtest take whole runs",
    )
    # The list fields (their flags are written in cli/fit.py: add_flags makes scalar flags).
    where: list = field(
        default_factory=list,
        metadata={
            "help": "keep rows where COL=VALUE (!=, <, <=, >, >=; N, D, C, L, U name their columns); repeatable"
        },
    )
    budgets: list | None = field(
        default=None,
        metadata={"help": "isoflop: snap each run's C to the nearest of these budgets"},
    )
    run_cols: list = field(
        default_factory=lambda: ["run_id"],
        metadata={
            "help": "envelope, curve laws: column(s) identifying a run",
            "flag": "--run-col",
        },
    )
    min_over: list = field(
        default_factory=list,
        metadata={
            "help": "keep the lowest loss per (N, D) over a sweep of these columns "
            "(e.g. lr,batch_size)",
        },
    )
    holdout_where: list = field(
        default_factory=list,
        metadata={
            "help": "curve laws: hold out runs with a row where COL=V (!=, <, <=, >, >=); "
            "repeatable; a held-out run is held out whole"
        },
    )

    def __post_init__(self):
        check_types(self)
        if self.drop_highest < 0:
            raise ConfigError(f"--drop-highest must be >= 0, got {self.drop_highest}")
        # lists, whatever sequence was given (one string is one item): fit.json stores arrays
        self.where = [str(w) for w in _items(self.where)]
        self.holdout_where = [str(w) for w in _items(self.holdout_where)]
        self.min_over = [c.strip() for m in _items(self.min_over) for c in str(m).split(",")]
        # an empty name ('' was accepted and did nothing) is refused where the table is read
        self.run_cols = [str(c) for c in _items(self.run_cols) or ["run_id"]]
        try:
            self.budgets = [float(b) for b in _items(self.budgets)] or None
        except (TypeError, ValueError):
            raise ConfigError(f"--budgets must be numbers, got {self.budgets!r}") from None
        for b in self.budgets or ():
            if not (math.isfinite(b) and b > 0):  # numpy warned, then "found 1 budget"
                raise ConfigError(f"--budgets must be FLOPs > 0, got {b:g}")


def _items(v) -> list:
    if v is None:
        return []
    return [v] if isinstance(v, str | int | float) else list(v)


# The TableConfig fields that say how a CSV is read (passed on to table.read_csv).
CSV_KEYS = (
    "n_col", "d_col", "c_col", "loss_col", "budget_col", "n_kind", "where", "drop_highest",
    "u_col", "min_over",
)  # fmt: skip


def csv_mapping(settings: dict) -> dict:
    """The keywords of table.read_csv from a law's settings."""
    out = {k: settings[k] for k in CSV_KEYS}
    if settings.get("checkpoints"):
        out["run_cols"] = settings["run_cols"]
    return out


def fit_config(d: dict, where: str) -> FitConfig:
    """A FitConfig from a [fit] table (a study spec, study.json); unknown keys are named."""
    if isinstance(d, dict):
        for old, new in OLD_KEYS.items():
            if old in d and new in d:  # the later one won, whichever it was
                raise ConfigError(
                    f"{where}: {old} and {new} are one setting ({old} its old name): give one"
                )
        d = {OLD_KEYS.get(k, k): v for k, v in d.items()}
    return from_dict(FitConfig, d, where)


def split_settings(settings: dict) -> tuple[FitConfig, TableConfig]:
    """ScalingLaw's keyword settings as its two configs; an unknown one is named."""
    fit_names = {f.name for f in dataclasses.fields(FitConfig)}
    table_names = {f.name for f in dataclasses.fields(TableConfig)}
    unknown = sorted(set(settings) - fit_names - table_names)
    if unknown:
        known = ", ".join(sorted(fit_names | table_names))
        raise ConfigError(f"unknown fit setting(s) {', '.join(unknown)} (known: {known})")
    fit = FitConfig(**{k: v for k, v in settings.items() if k in fit_names})
    table = TableConfig(**{k: v for k, v in settings.items() if k in table_names})
    return fit, table
