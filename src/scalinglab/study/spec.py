"""The study spec: a versioned TOML file (examples/quickstart.toml is the built-in one).

::

    format_version = 1
    name = "quickstart"
    minutes = 10                  # the wall time the budgets below were sized for
    workers = 2                   # runs at a time (threads per run: cores // workers)

    [data]                        # the corpus, prepared once into the cache
    sources = ["stdlib"]          # any `scalinglab prepare` sources
    tokenizer = "byte"
    # shards = "shards/mine"      # or an existing shards folder

    [model] / [train] / [shape] / [hparams]   # as in a sweep spec (docs/sweeps.md)

    [sweeps.gpt]                  # a WSD ladder per architecture (kind = "wsd"):
    kind = "wsd"                  # per size one stable-LR trunk, a cooldown branch
    params = [2e4, 4e4, 8e4]      # at each tokens-per-parameter ratio
    tokens_per_param = [10, 20, 40]
    cooldown_frac = 0.2

    [sweeps.lstm]                 # or an IsoFLOP sweep (kind = "isoflop", the default)
    budgets = [3e11, 1e12, 3e12]
    sizes = 4
    tokens_per_param = 150
    spread = 6

    [backtest]                    # predicted before it is trained
    arch = "gpt"
    budget = 1e13                 # at least 3x the largest C of that sweep's runs
    predictor = "chinchilla"      # or "frontier" (IsoFLOP sweeps only), or "ray" (WSD: a
                                  # power law of C along tokens_per_param = one of the
                                  # ladder's ratios); default: frontier for IsoFLOP,
                                  # chinchilla for WSD

    [seed_noise]                  # sweep runs repeated with other seeds
    arch = "gpt"
    params = 2e4                  # WSD: one of its sizes, trunk and branches repeated
    # budget = 1e12               # IsoFLOP: one of its budgets, the point nearest the centre
    seeds = [1]

    [plan]
    factors = [10, 100, 1000]     # multiples of the largest budget swept

    [fit]                         # scalinglab.laws.settings.FitConfig: the `fit` flags
    bootstrap = 1000
    # n_kind = "params_nonembed"  # N without embeddings (Kaplan's), C = 6·N·D with it

    # trainer_cmd = "python my_train.py ... --out {out}"   # your own trainer for every run
"""

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from scalinglab.config import (
    ARCHS,
    SEED_RANGE,
    ModelConfig,
    TrainConfig,
    check_seed,
    check_types,
    from_dict,
    load_toml,
    setting,
)
from scalinglab.data.writer import PrepareConfig
from scalinglab.errors import ConfigError, DataError, ScalingLabError, SweepError
from scalinglab.laws.estimator import GIVEN_SETTING_LAWS, SETTING_LAWS
from scalinglab.laws.settings import FitConfig
from scalinglab.laws.tasklaws import TASK_LAWS
from scalinglab.plan.analysis import PREDICTORS, RAY_TOLERANCE, fit_settings
from scalinglab.sweep.spec import (
    GridDesign,
    IsoflopDesign,
    WsdDesign,
    check_trainer_cmd,
    parse_rules,
    rules_dict,
    set_by_sweep,
)
from scalinglab.tasks.builtin import BUILTIN, N_ITEMS

FORMAT_VERSION = 1
TOP = ("format_version", "name", "minutes", "workers", "data", "model", "train", "shape",
       "hparams", "sweeps", "backtest", "seed_noise", "plan", "fit", "trainer_cmd",
       "tasks")  # fmt: skip
MIN_BACKTEST_FACTOR = 3.0
SWEEP_KINDS = ("isoflop", "wsd")
"""The designs a study sweeps with: IsoFLOP budgets, or a WSD ladder (sizes × branches)."""
MIN_WSD_SIZES = 3
"""A WSD ladder's sizes: Chinchilla's law needs N to vary over at least 3 values."""
DEFAULT_PREDICTOR = {"isoflop": "frontier", "wsd": "chinchilla"}


@dataclass
class Backtest:
    """[backtest]: the run the study predicts before it trains it."""

    arch: str = setting("", "its architecture (default: the first [sweeps] table's)")
    budget: float = setting(0.0, f"its FLOP budget, at least {MIN_BACKTEST_FACTOR:g}x the "
                            "largest C of that architecture's sweep runs")  # fmt: skip
    predictor: str = setting(
        "", "what predicts it (default: frontier for an IsoFLOP sweep, chinchilla for WSD)"
    )
    tokens_per_param: float = setting(
        0.0,
        "its D / N, N = sqrt(C / (6 · this)); 0: the compute-optimal N of the fits "
        '(predictor "ray": one of the ladder\'s tokens_per_param)',
    )
    alone: bool = setting(
        True,
        "train it after every other run, alone, on all the study's threads (workers x "
        "threads per run): the study's largest run then ends soonest; false: on one "
        "worker's threads as soon as it is predicted, beside the runs still going",
    )

    def __post_init__(self):
        check_types(self)
        r = self.tokens_per_param
        if isinstance(r, bool) or not isinstance(r, int | float) or not (r >= 0 and r < 1e9):
            raise ConfigError(f"tokens_per_param must be a number >= 0, got {r!r}")
        if self.predictor and self.predictor not in PREDICTORS:
            raise ConfigError(
                f"predictor must be one of {', '.join(PREDICTORS)}, got {self.predictor!r}"
            )


@dataclass
class SeedNoise:
    """[seed_noise]: sweep runs repeated with other seeds (the run-to-run noise): an
    IsoFLOP sweep's point nearest the centre at `budget`, or a WSD ladder's size `params`
    (its trunk and every branch)."""

    arch: str = setting("", "the sweep it repeats (default: the backtest's architecture)")
    budget: float = setting(0.0, "IsoFLOP: the budget of the point, one of that sweep's budgets")
    params: float = setting(0.0, "WSD: the size repeated, one of that sweep's params")
    seeds: list[int] = field(default_factory=lambda: [1], metadata={"help": "the other seeds"})

    def __post_init__(self):
        check_types(self)
        _check_list(self.seeds, "seeds", "a list of integers, like [1, 2]")
        for s in self.seeds:
            if isinstance(s, bool) or not isinstance(s, int):
                raise ConfigError(f"seeds: {s!r} is not an integer")
            check_seed(s, "seeds")


@dataclass
class TaskTable:
    """[tasks]: built-in tasks scored on every run; the backtest predicts their accuracy."""

    names: list[str] = field(
        default_factory=list,
        metadata={"help": f"built-in tasks ({', '.join(BUILTIN)}); none: no task"},
    )
    items: int = setting(N_ITEMS, "items per task (fewer where the validation split holds fewer)")
    seed: int = setting(0, "the choice of items", range=SEED_RANGE)

    def __post_init__(self):
        check_types(self)
        if isinstance(self.names, str):  # read letter by letter: 'r', 'e', 'c', ...
            raise ConfigError(f"names must be a list of task names, like [{self.names!r}]")
        _check_list(self.names, "names", f"a list of task names, like [{BUILTIN[0]!r}]")
        twice = sorted({n for n in self.names if self.names.count(n) > 1})
        if twice:
            raise ConfigError(f"names: {', '.join(map(repr, twice))} given twice")
        bad = [n for n in self.names if n not in BUILTIN]
        if bad:
            raise ConfigError(f"names: {', '.join(map(repr, bad))} not among {', '.join(BUILTIN)}")
        if self.items < 1:
            raise ConfigError(f"items must be >= 1, got {self.items}")
        check_seed(self.seed)


@dataclass
class PlanTable:
    """[plan]: the budgets the report plans for."""

    factors: list[float] = field(
        default_factory=lambda: [10.0, 100.0, 1000.0],
        metadata={"help": "multiples of the largest budget swept"},
    )

    def __post_init__(self):
        _check_list(self.factors, "factors", "a list of numbers, like [10, 100]")


def _check_list(v, key: str, like: str) -> None:
    """Refuse a scalar where a table's key holds a list (`factors = 10` was a TypeError
    traceback: check_types checks scalar fields only)."""
    if not isinstance(v, list):
        raise ConfigError(f"{key} must be {like}, got {v!r}")


@dataclass
class StudySpec:
    name: str
    minutes: float
    workers: int
    data: dict
    """[data]: sources or shards, and `scalinglab prepare` settings (PrepareConfig)."""
    shared: dict
    """model, train, shape and hparams tables, passed to every sweep spec."""
    sweeps: dict[str, IsoflopDesign | WsdDesign]
    backtest: Backtest
    seed_noise: SeedNoise | None
    factors: list[float]
    fit: FitConfig
    raw: dict
    trainer_cmd: str | None = None
    """Your own trainer's command line for every run (docs/interfaces.md); None: ours."""
    tasks: TaskTable = field(default_factory=TaskTable)
    n_kind: str = "params"
    """[fit] n_kind: the count the fits take N from (plan.analysis.N_KINDS)."""
    where: str = "study"
    """The spec as its errors name it (its file, or "built-in quickstart"): errors found
    only once the corpus is open and the runs are planned name it too."""
    scaled_from: "StudySpec | None" = field(default=None, repr=False)
    """The spec before `--minutes` scaled its budgets (`scaled`): a plan the scaling
    broke names the flag, and the minutes that plan this spec."""

    def with_trainer_cmd(self, cmd: str, where: str) -> "StudySpec":
        """The same study with every run trained by `cmd` (`study --trainer-cmd`), which
        is checked as the spec's `trainer_cmd` is and recorded in its raw mapping."""
        cmd = check_trainer_cmd(cmd, where, run_columns(self.sweeps))
        raw = {**copy.deepcopy(self.raw), "trainer_cmd": cmd}
        return dataclasses.replace(self, trainer_cmd=raw["trainer_cmd"], raw=raw)

    def with_loggers(self, loggers: list[str]) -> "StudySpec":
        """The same study with every run also logged to these trackers (`study --logger`):
        the shared [train] table's `loggers`, in the raw mapping too."""
        train = {**self.shared.get("train", {}), "loggers": list(dict.fromkeys(loggers))}
        raw = {**copy.deepcopy(self.raw), "train": train}
        return dataclasses.replace(self, shared={**self.shared, "train": train}, raw=raw)

    def scaled(self, minutes: float) -> "StudySpec":
        """The same study with every budget scaled by minutes / self.minutes."""
        if not (math.isfinite(minutes) and minutes > 0):
            raise SweepError(f"--minutes must be a positive number, got {minutes}")
        f = minutes / self.minutes
        raw = copy.deepcopy(self.raw)
        for s in raw["sweeps"].values():
            if s.get("kind", "isoflop") == "wsd":  # C ∝ N² at fixed tokens per parameter
                s["params"] = [n * math.sqrt(f) for n in s["params"]]
            else:
                s["budgets"] = [b * f for b in s["budgets"]]
        raw["backtest"]["budget"] *= f
        if raw.get("seed_noise"):
            if raw["seed_noise"].get("budget"):
                raw["seed_noise"]["budget"] *= f
            if raw["seed_noise"].get("params"):
                raw["seed_noise"]["params"] *= math.sqrt(f)
        raw["minutes"] = minutes
        study = parse_study(raw, "study (scaled)")
        _check_one_batch(study, minutes)
        return dataclasses.replace(study, scaled_from=self.scaled_from or self, where=self.where)


def _check_one_batch(study: StudySpec, minutes: float) -> None:
    """Refuse --minutes so small that a sweep's smallest run (at its target size, before
    shapes round) would not see one batch: the plan would blame the spec's [design]."""
    try:
        m = ModelConfig(**study.shared.get("model", {}))
        t = TrainConfig(**study.shared.get("train", {}))
    except (ConfigError, TypeError):
        return  # the sweep spec's own check says what is wrong with it
    tps = t.batch_size * t.grad_accum * m.block_size
    for arch, d in study.sweeps.items():
        if d.kind == "wsd":
            tokens = min(d.params) * min(d.tokens_per_param)
        else:  # the largest size of the smallest budget: D = C / (6 N)
            c = min(d.budgets)
            tokens = c / (6.0 * math.sqrt(c / (6.0 * d.tokens_per_param) * d.spread))
        if tokens < tps:
            raise SweepError(
                f"--minutes {minutes:g} is too small: the smallest run of [sweeps.{arch}] would "
                f"train on about {tokens:.3g} tokens, less than one batch ({tps} tokens: "
                f"batch_size × grad_accum × block_size); raise --minutes"
            )


def load_study(path: str | Path) -> StudySpec:
    d = load_toml(path)  # first: it names a path that is no path (None)
    path = Path(path)
    d.setdefault("name", path.stem)
    return parse_study(d, str(path))


def _err(where: str, msg: str) -> SweepError:
    return SweepError(f"{where}: {msg}")


def _table(d: dict, key: str, where: str, required: bool = True) -> dict:
    v = d.get(key)
    if v is None and not required:
        return {}
    if not isinstance(v, dict):
        raise _err(where, f"[{key}] must be a table")
    return v


def _typed(cls, d: dict, where: str):
    """`cls` from a TOML table through the config mechanism; errors name the table."""
    try:
        return from_dict(cls, d, where)
    except ConfigError as exc:
        raise SweepError(exc.message) from None


def _positive(v, what: str, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and v > 0):
        raise _err(where, f"{what} must be a positive number, got {v!r}")
    return float(v)


def _data(d: dict, where: str) -> dict:
    data = _table(d, "data", where)
    if not data.get("shards") and not data.get("sources"):
        raise _err(where, "[data] needs sources = [...] (to prepare) or shards = PATH")
    sources, shards = data.get("sources"), data.get("shards")
    if sources is not None and not (
        isinstance(sources, list) and sources and all(isinstance(x, str) and x for x in sources)
    ):
        raise _err(
            where, f"[data] sources must be a list of source names or paths, got {sources!r}"
        )
    if shards is not None and not (isinstance(shards, str) and shards):
        raise _err(where, f"[data] shards must be a folder path (a string), got {shards!r}")
    if sources is not None and shards is not None:  # the shards were used, sources unread
        raise _err(where, "[data] has both sources (to prepare) and shards (prepared): keep one")
    prep = {k: v for k, v in data.items() if k not in ("sources", "shards")}
    _typed(PrepareConfig, prep, f"{where} [data]")  # checked here, used by prepare_data
    return data


def largest_ladder_flops(d: WsdDesign) -> float:
    """The C = 6·N·D of a WSD ladder's largest run at its target sizes (D = r·N)."""
    return 6.0 * max(d.params) ** 2 * max(d.tokens_per_param)


def _wsd(s: dict, w: str) -> WsdDesign:
    design = _typed(WsdDesign, s, w)
    if len(set(design.params)) < MIN_WSD_SIZES:
        raise _err(w, f"params must list at least {MIN_WSD_SIZES} sizes (Chinchilla's law "
                      "fits N's exponent across sizes)")  # fmt: skip
    if len(design.tokens_per_param) < 2:
        raise _err(w, "tokens_per_param must list at least 2 ratios (a branch each)")
    for n in design.params:
        _positive(n, "every size in params", w)
    for r in design.tokens_per_param:
        _positive(r, "every tokens_per_param", w)
    return design


def _sweeps(d: dict, where: str) -> dict[str, IsoflopDesign | WsdDesign]:
    sweeps = _table(d, "sweeps", where)
    if not sweeps:
        raise _err(where, "[sweeps] needs at least one architecture, e.g. [sweeps.gpt]")
    out = {}
    for arch, s in sweeps.items():
        w = f"{where} [sweeps.{arch}]"
        if arch not in ARCHS:
            raise _err(w, f"{arch!r} is not one of {', '.join(ARCHS)}")
        if not isinstance(s, dict):
            raise _err(w, "must be a table")
        kind = s.get("kind", "isoflop")
        if kind not in SWEEP_KINDS:
            raise _err(w, f"kind must be one of {', '.join(SWEEP_KINDS)}, got {kind!r}")
        if kind == "wsd":
            out[arch] = _wsd(s, w)
            continue
        budgets = s.get("budgets")
        if budgets is None:  # a misspelt key ('budgts') is the likelier story: name it
            _typed(IsoflopDesign, {**s, "kind": "isoflop", "budgets": [1.0, 2.0]}, w)
        if not isinstance(budgets, list) or len(budgets) < 2:
            raise _err(w, "budgets must list at least 2 FLOP budgets (an IsoFLOP fit needs 2)")
        for b in budgets:
            _positive(b, "every budget", w)
        if len(set(budgets)) < len(budgets):
            twice = next(b for b in budgets if budgets.count(b) > 1)
            raise _err(w, f"budgets: {twice:g} is given twice (each budget is swept once)")
        design = _typed(IsoflopDesign, {**s, "kind": "isoflop"}, w)
        if design.sizes < 3:
            raise _err(w, "sizes must be at least 3 (a parabola per budget)")
        if design.recentre:  # it was read and ignored: every budget at the spec's centre
            raise _err(w, "recentre = true: a study plans every budget before any trains "
                       "(its prediction and cost need the whole plan); set tokens_per_param "
                       "to the centre, or re-centre with `scalinglab sweep`")  # fmt: skip
        if design.flops_convention != "6nd":  # the seed repeat and backtest were 6·N·D runs
            raise _err(w, f"flops_convention = {design.flops_convention!r}: a study counts "
                       "every budget, prediction and cost as C = 6·N·D; leave it out, or "
                       "sweep in the model's FLOPs with `scalinglab sweep`")  # fmt: skip
        out[arch] = design
    return out


def parse_study(d: dict, where: str = "study") -> StudySpec:
    """Validate a study mapping; errors name the file, table and key."""
    if not isinstance(d, dict):
        raise _err(where, "expected a table")
    unknown = sorted(set(d) - set(TOP))
    if unknown:
        raise _err(where, f"unknown key(s) {', '.join(unknown)} (known: {', '.join(TOP)})")
    if d.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise _err(where, f"format_version {d['format_version']!r} is not supported (reads 1)")
    data = _data(d, where)
    sweeps = _sweeps(d, where)
    parse_rules(d, list(sweeps), where)  # checked now, not once the data is prepared
    for key in ("model", "train"):
        _table(d, key, where, required=False)
    set_by_sweep(d.get("model", {}), d.get("train", {}), where)
    for arch in sweeps:  # checked now, errors naming this file, not a sweep made of it
        _typed(ModelConfig, {**d.get("model", {}), "arch": arch}, f"{where} [model]")
    _typed(TrainConfig, d.get("train", {}), f"{where} [train]")
    w = f"{where} [backtest]"
    bt = _typed(Backtest, _table(d, "backtest", where), w)
    bt.arch = bt.arch or next(iter(sweeps))
    if bt.arch not in sweeps:
        raise _err(w, f"arch {bt.arch!r} has no [sweeps.{bt.arch}]")
    kind = sweeps[bt.arch].kind
    bt.predictor = bt.predictor or DEFAULT_PREDICTOR[kind]
    if kind == "wsd" and bt.predictor == "frontier":
        raise _err(w, f'predictor "frontier" needs IsoFLOP budgets, and [sweeps.{bt.arch}] is '
                      'a WSD ladder: use predictor = "chinchilla" or "ray"')  # fmt: skip
    if bt.predictor == "ray":
        ratios = sweeps[bt.arch].tokens_per_param if kind == "wsd" else []
        if not any(abs(math.log(bt.tokens_per_param / r)) <= math.log(RAY_TOLERANCE)
                   for r in ratios if bt.tokens_per_param):  # fmt: skip
            raise _err(w, f'predictor "ray" predicts along one of the WSD ladder\'s '
                          f"tokens_per_param: set tokens_per_param to one of "
                          f"[sweeps.{bt.arch}]'s ({', '.join(f'{r:g}' for r in ratios) or 'none: it is IsoFLOP'})")  # fmt: skip
    _positive(bt.budget, "budget", w)
    # a WSD ladder's largest run, C = 6·N·r·N at its target sizes (plan_study checks the
    # planned shapes' own C again)
    s = sweeps[bt.arch]
    biggest = max(s.budgets) if kind == "isoflop" else largest_ladder_flops(s)
    if bt.budget < MIN_BACKTEST_FACTOR * biggest * (1 - 1e-9):
        what = "budget" if kind == "isoflop" else "run's C (6·N·D at its target N)"
        raise _err(
            w,
            f"budget {bt.budget:.3g} must be at least {MIN_BACKTEST_FACTOR:g}x the largest "
            f"{what} of [sweeps.{bt.arch}] ({biggest:.3g}): a backtest extrapolates",
        )
    sn = None
    if d.get("seed_noise") is not None:
        w = f"{where} [seed_noise]"
        sn = _typed(SeedNoise, _table(d, "seed_noise", where), w)
        sn.arch = sn.arch or bt.arch
        if sn.arch not in sweeps:
            raise _err(w, f"arch {sn.arch!r} has no [sweeps.{sn.arch}]")
        if sweeps[sn.arch].kind == "wsd":
            if sn.budget or sn.params not in sweeps[sn.arch].params:
                raise _err(w, f"[sweeps.{sn.arch}] is a WSD ladder: give params, one of its "
                              "sizes (not budget)")  # fmt: skip
        elif sn.params or sn.budget not in sweeps[sn.arch].budgets:
            raise _err(w, "budget must be one of the budgets of the sweep of its arch")
        if not sn.seeds or not all(isinstance(x, int) and not isinstance(x, bool)
                                   for x in sn.seeds):  # fmt: skip
            raise _err(w, f"seeds must be a list of integers, got {sn.seeds!r}")
    plan = _typed(PlanTable, _table(d, "plan", where, required=False), f"{where} [plan]")
    if not plan.factors:  # the report said no fit gave an allocation
        raise _err(f"{where} [plan]", "factors is empty: give the multiples of the largest "
                                      "budget to plan for (default [10, 100, 1000])")  # fmt: skip
    factors = [_positive(f, "each of factors", f"{where} [plan]") for f in plan.factors]
    twice = next((f for f in factors if factors.count(f) > 1), None)
    if twice is not None:  # the report planned the same run twice, in two rows
        raise _err(f"{where} [plan]", f"factors: {twice:g} is given twice (each is planned once)")
    fs, n_kind = fit_settings(_table(d, "fit", where, required=False), f"{where} [fit]")
    if fs.fix or fs.tie:  # the data-constrained and curve laws' settings: no study law reads them
        key = "fix" if fs.fix else "tie"
        raise _err(f"{where} [fit]", f"{key} is not used by a study: its laws (IsoFLOP, "
                   "Chinchilla, the frontier) are fitted free; hold parameters by fitting its "
                   f"runs table: scalinglab fit RUNS.csv --{key} ...")  # fmt: skip
    check_fit_used(fs, f"{where} [fit]")
    if fs.curvature != FitConfig().curvature and all(s.kind == "wsd" for s in sweeps.values()):
        raise _err(f"{where} [fit]", "curvature is not used by this study: it is the IsoFLOP "
                   "profiles', and every sweep here is a WSD ladder (no budgets)")  # fmt: skip
    name = d.get("name", "study")
    if not isinstance(name, str) or not name.strip():
        raise _err(where, f"name must be a non-empty string, got {name!r}")
    tasks = _typed(TaskTable, _table(d, "tasks", where, required=False), f"{where} [tasks]")
    workers = d.get("workers", 2)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise _err(where, f"workers must be a positive integer, got {workers!r}")
    return StudySpec(
        name=name,
        minutes=_positive(d.get("minutes", 10), "minutes", where),
        workers=workers,
        data=data,
        shared={k: d.get(k, {}) for k in ("model", "train", "shape", "hparams")},
        sweeps=sweeps,
        backtest=bt,
        seed_noise=sn,
        factors=factors,
        fit=fs,
        raw=d,
        trainer_cmd=check_trainer_cmd(
            d.get("trainer_cmd"), f"{where}: trainer_cmd", run_columns(sweeps)
        ),
        tasks=tasks,
        n_kind=n_kind,
        where=where,
    )


def in_spec(study: StudySpec, exc: ScalingLabError, table: str = "") -> ScalingLabError:
    """`exc` (a SweepError or DataError found while the study is prepared or planned) with
    the spec's file in front, as parse_study's errors have it: `SPEC [sweeps.gpt]: ...`."""
    msg = exc.message
    if msg.startswith(study.where):
        return exc
    head = f"{study.where} {table}" if table else study.where
    sep = " " if msg.startswith("[") and not table else ": "
    for kind in (SweepError, DataError):
        if isinstance(exc, kind):
            return kind(f"{head}{sep}{msg}")
    return exc


def run_columns(sweeps: dict) -> dict:
    """The design columns every run of a study has: its sweeps' and a grid run's (its
    backtest, an IsoFLOP sweep's seed repeats)."""
    columns = dict(GridDesign.COLUMNS)
    for design in sweeps.values():
        columns = {k: v for k, v in columns.items() if k in design.columns()}
    return columns


def study_dict(study: StudySpec) -> dict:
    """The study spec as a TOML mapping with every default filled in (what `study
    --print-config` prints); `parse_study` of it gives the same study."""
    d = {
        "format_version": FORMAT_VERSION, "name": study.name, "minutes": study.minutes,
        "workers": study.workers, "data": dict(study.data),
        **{k: v for k, v in study.shared.items() if v},
        **rules_dict(*parse_rules(study.shared, list(study.sweeps), "study")),
        "sweeps": {a: {k: v for k, v in dataclasses.asdict(s).items()
                       if k != "kind" or s.kind != "isoflop"}
                   for a, s in study.sweeps.items()},
        "backtest": dataclasses.asdict(study.backtest),
        "plan": {"factors": list(study.factors)},
        "fit": {k: v for k, v in dataclasses.asdict(study.fit).items() if v is not None}
        | ({"n_kind": study.n_kind} if study.n_kind != "params" else {}),
    }  # fmt: skip
    if study.seed_noise is not None:
        sn = dataclasses.asdict(study.seed_noise)
        d["seed_noise"] = {k: v for k, v in sn.items() if v or k not in ("budget", "params")}
    if study.trainer_cmd:
        d["trainer_cmd"] = study.trainer_cmd
    if study.tasks.names:
        d["tasks"] = dataclasses.asdict(study.tasks)
    return d


STUDY_LAWS = ("isoflop", "chinchilla", "power-c", "data-constrained", *TASK_LAWS)
"""The laws a study fits (plan.analysis): the IsoFLOP profiles, Chinchilla, the frontier,
the data-constrained law where its backtest repeats data, and the task laws."""


def check_fit_used(fs: FitConfig, where: str) -> None:
    """SweepError for a [fit] setting, not at its default, that none of STUDY_LAWS reads
    (a curve law's decay_factor or lr_fill, the envelope's points): the fits would refuse
    it only once every run had trained, or ignore it."""
    defaults = FitConfig()
    for f in dataclasses.fields(FitConfig):
        laws = GIVEN_SETTING_LAWS.get(f.name) or SETTING_LAWS.get(f.name)
        value = getattr(fs, f.name)
        if f.name == "floor" and value != defaults.floor:  # power-c's, but not the study's
            raise _err(where, "floor is not used by a study: its frontier and ray are power "
                       "laws of C without a floor (three or four budgets cannot fit one)")  # fmt: skip
        if laws is None or value == getattr(defaults, f.name) or set(laws) & set(STUDY_LAWS):
            continue
        raise _err(where, f"{f.name} is not used by a study: it is a setting of "
                   f"{', '.join(laws)}, and a study fits {', '.join(STUDY_LAWS)}")  # fmt: skip


def sweep_dict(study: StudySpec, arch: str, shards: Path, design: dict, suffix: str) -> dict:
    """The sweep spec (a mapping for sweep.spec.parse_spec) of one part of the study."""
    s = study.shared
    return {
        "format_version": 1,
        "name": f"{study.name}-{suffix}",
        "data": str(Path(shards).resolve()),
        "archs": [arch],
        "model": dict(s["model"]),
        "train": dict(s["train"]),
        "shape": dict(s["shape"]),
        "hparams": copy.deepcopy(s["hparams"]),
        "design": design,
    } | ({"trainer_cmd": study.trainer_cmd} if study.trainer_cmd else {})
