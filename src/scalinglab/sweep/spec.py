"""The sweep spec: a versioned TOML file (docs/sweeps.md) that names the shards, the
architectures, the shared [model] and [train] settings, the [shape] and [hparams]
rules, and a [design] (grid | isoflop | ladder | wsd).

Each table is a config dataclass in the style of scalinglab.config (ShapeRule,
HparamRule, one Design subclass per kind): its fields are the TOML keys, with the
same names and defaults, and it validates itself on construction. Every table is
checked here, in one place: unknown keys are named, with the known ones listed,
and every error names the file and the table.
"""

import dataclasses
import math
import os
import shlex
import shutil
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from scalinglab.config import (
    ARCHS,
    BUDGETS,
    ModelConfig,
    TrainConfig,
    from_dict,
    load_toml,
    setting,
)
from scalinglab.errors import ConfigError, SweepError

FORMAT_VERSION = 1
FLOPS_CONVENTIONS = ("6nd", "model")
SHAPE_FIELDS = ("n_layer", "n_embd", "n_head", "n_hidden")
MODEL_SET_BY_SWEEP = ("arch", "preset", "vocab_size", *SHAPE_FIELDS)
# The sweep sets these per run; a spec that sets them would be silently overridden.
TRAIN_SET_BY_SWEEP = ("data", *BUDGETS)
# ... and the [hparams] rule these (shapes.hparams_for): each [train] key, the [hparams]
# keys that set it.
TRAIN_SET_BY_HPARAMS = {
    "lr": "lr (the lr at ref_width, scaled per width by lr_power)",
    "warmup": "warmup_frac (warmup = warmup_frac × the run's steps)",
}
TOP_KEYS = (
    "format_version", "name", "data", "archs", "model", "train", "shape", "hparams", "design",
    "trainer_cmd",
)  # fmt: skip

# The default centre of an IsoFLOP profile, in training tokens per parameter. Measured
# on this project's tiny byte-level GPTs (15k–200k parameters): the optimum sat at
# about 150–240 tokens per parameter, far from Chinchilla's 20 at billions of parameters.
DEFAULT_TOKENS_PER_PARAM = 200.0
# The most sizes per IsoFLOP budget: each is a run at every budget (and a shape search
# when planning); a profile's parabola needs 3 to about 10.
MAX_ISOFLOP_SIZES = 100


def _number(obj, name: str, integer: bool = False, positive: bool = True):
    """Check a numeric field (TOML gives ints for whole floats; bools are not numbers)."""
    v = getattr(obj, name)
    kind = int if integer else int | float
    bad = isinstance(v, bool) or not isinstance(v, kind)
    if bad or (positive and not (v > 0 and math.isfinite(v))):  # NaN, inf: checked later
        what = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{name} must be {what if positive else 'a number'}, got {v!r}")
    if not integer:
        setattr(obj, name, float(v))


def _numbers(obj, name: str, need: str) -> None:
    """Check a non-empty list of distinct positive finite numbers and store it as floats
    (a value given twice planned its runs twice: 'the design plans the same run twice',
    naming neither the key nor the value; a ladder's repeated size took the next shape)."""
    v = getattr(obj, name)
    if isinstance(v, list) and not v:
        raise ConfigError(need)
    if not isinstance(v, list):
        raise ConfigError(f"{name} must be a non-empty list, got {v!r}")
    for x in v:
        if isinstance(x, bool) or not isinstance(x, int | float) or not x > 0 or x == math.inf:
            raise ConfigError(f"{name} must hold positive numbers, got {x!r}")
    v = [float(x) for x in v]
    twice = next((x for x in v if v.count(x) > 1), None)
    if twice is not None:
        raise ConfigError(f"{name}: {twice:g} is given twice (each value is planned once)")
    setattr(obj, name, v)


# --- the rules -----------------------------------------------------------------


@dataclass
class ShapeRule:
    """[shape]: how a target parameter count N becomes a shape (shapes.shape_for)."""

    aspect: float = setting(16.0, "GPT: target ratio n_embd / n_layer")
    head_size: int = setting(8, "GPT: n_embd is a multiple of this and n_head = n_embd / head_size")
    rnn_layers: int = setting(1, "RNNs: number of stacked layers; the width is solved from N")
    width_multiple: int = setting(4, "RNNs: widths are multiples of this")
    max_layers: int = setting(48, "GPT: deepest model considered by the shape search")
    min_layers: int = setting(1, "GPT: shallowest model considered (= max_layers fixes the depth)")

    def __post_init__(self):
        _number(self, "aspect")
        for name in ("head_size", "rnn_layers", "width_multiple", "max_layers", "min_layers"):
            _number(self, name, integer=True)
        if self.min_layers > self.max_layers:
            raise ConfigError(
                f"min_layers ({self.min_layers}) is larger than max_layers ({self.max_layers})"
            )


HPARAM_RULES = ("power", "mup", "fitted")


LR_POWER = 0.5  # lr ∝ 1/sqrt(width) (the power rule's default)


@dataclass
class HparamRule:
    """[hparams]: the per-size rule (shapes.hparams_for)."""

    lr: float = setting(3e-3, "learning rate of a model of width ref_width")
    ref_width: int = setting(64, "the width at which lr applies")
    lr_power: float = setting(
        LR_POWER, "lr(width) = lr × (ref_width / width) ** lr_power (0: one lr at every width)"
    )
    duration_power: float = setting(
        0.0,
        "lr × (D / ref_tokens) ** duration_power, D a run's training tokens: a longer run "
        "gets a larger lr (the lr law's D exponent, e.g. 0.228; 0: lr does not depend on D)",
    )
    ref_tokens: float = setting(
        0.0,
        "the training tokens (steps × batch × block) of the run at which lr was tuned; "
        "needed when duration_power is not 0",
    )
    warmup_frac: float = setting(0.05, "warmup steps = round(warmup_frac × the run's steps)")
    decay_tokens_per_param: float = setting(
        0.0,
        "AdamW's weight decay per size: wd = tokens per step / (lr × decay_tokens_per_param "
        "× N), so that the decay's timescale 1/(lr·wd) spans decay_tokens_per_param tokens "
        "per parameter at every size (0: [train]'s weight_decay at every size)",
    )
    rule: str = setting(
        "power",
        "power: lr × (ref_width / width) ** lr_power; mup: lr at every width, the GPTs under "
        "--param mup with base_width = ref_width (unless [model] sets param); both × the "
        "duration factor; fitted: lr from the lr-opt fit `fit` at each run's N and D",
        choices=HPARAM_RULES,
    )
    fit: str = setting("", "fitted: an lr-opt fit.json (`scalinglab fit --law lr-opt --out`)")
    optimizer: str = setting(
        "", "this architecture's optimizer (adamw | sgd), its lr this table's",
        shown="[train]'s, else adamw",
    )  # fmt: skip
    grad_clip: float = setting(-1.0, "this architecture's gradient clip", shown="[train]'s")

    def __post_init__(self):
        if self.optimizer not in ("", "adamw", "sgd"):
            raise ConfigError(f"optimizer {self.optimizer!r} is not one of adamw, sgd")
        _number(self, "grad_clip", positive=False)
        if not math.isfinite(self.grad_clip):
            raise ConfigError(
                f"grad_clip must be a finite number (-1: [train]'s), got {self.grad_clip}"
            )
        if self.rule not in HPARAM_RULES:
            raise ConfigError(f"rule {self.rule!r} is not one of {', '.join(HPARAM_RULES)}")
        if (self.rule == "fitted") != bool(self.fit):
            raise ConfigError('rule = "fitted" goes with fit = "LROPT.json" (and only it)')
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        self.lr = float(self.lr)
        # A fractional ref_width has always been accepted: it only scales lr.
        if isinstance(self.ref_width, bool) or not isinstance(self.ref_width, int | float):
            raise ConfigError(f"ref_width must be positive, got {self.ref_width!r}")
        if not (math.isfinite(self.ref_width) and self.ref_width >= 1):
            raise ConfigError(f"ref_width must be a finite number >= 1, got {self.ref_width}")
        for name in ("lr_power", "duration_power", "ref_tokens"):
            _number(self, name, positive=False)
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.ref_tokens < 0:
            raise ConfigError(f"ref_tokens must be positive, got {self.ref_tokens:g}")
        if self.rule != "power" and self.lr_power != LR_POWER:  # it was ignored, silently
            raise ConfigError(
                f"lr_power is the power rule's; rule = {self.rule!r} sets each width's lr "
                "itself: leave lr_power out"
            )
        if self.duration_power and self.rule == "fitted":
            raise ConfigError(
                'rule = "fitted" takes the lr\'s dependence on D from its fit: leave '
                "duration_power at 0"
            )
        if self.duration_power and not self.ref_tokens:
            raise ConfigError(
                f"duration_power = {self.duration_power:g} needs ref_tokens: the training "
                "tokens of the run at which lr was tuned"
            )
        _number(self, "warmup_frac", positive=False)
        if not 0.0 <= self.warmup_frac < 1.0:
            raise ConfigError(f"warmup_frac must be in [0, 1), got {self.warmup_frac}")
        _number(self, "decay_tokens_per_param", positive=False)
        if not (math.isfinite(self.decay_tokens_per_param) and self.decay_tokens_per_param >= 0):
            raise ConfigError(
                "decay_tokens_per_param must be a finite number >= 0 (0: [train]'s "
                f"weight_decay), got {self.decay_tokens_per_param}"
            )
        if self.decay_tokens_per_param and self.optimizer == "sgd":
            raise ConfigError(
                'decay_tokens_per_param sets AdamW\'s weight decay; optimizer = "sgd" has '
                "none: leave it out"
            )


# --- the designs: one dataclass per kind ------------------------------------------


@dataclass
class Design:
    """What every [design] has."""

    kind: str = setting("", "grid | isoflop | ladder | wsd | hparams")
    flops_convention: str = setting(
        "6nd", "C = 6·N·D (6nd) or the model's own forward+backward FLOPs per token (model)"
    )

    def __post_init__(self):
        if DESIGNS.get(self.kind) is not type(self):
            raise ConfigError(f"kind {self.kind!r} is not one of {', '.join(DESIGNS)}")
        if self.flops_convention not in FLOPS_CONVENTIONS:
            raise ConfigError(
                f"flops_convention {self.flops_convention!r} is not one of {FLOPS_CONVENTIONS}"
            )

    COLUMNS: ClassVar[dict] = {}
    """The design columns (sweep.json's `planned`, the runs table's, a trainer_cmd's
    placeholders) every run of this kind of design has, each with a value of its type."""

    def columns(self) -> dict:
        """COLUMNS, as this design's runs have them."""
        return dict(self.COLUMNS)


@dataclass
class _Sized(Design):
    """Explicit shapes or target sizes, and budgets in tokens or another kind (`OTHER`)."""

    OTHER = "flops"
    shapes: list[dict] | None = field(
        default=None, metadata={"help": "explicit shapes: tables of n_layer, n_embd, ..."}
    )
    params: list[float] | None = field(
        default=None, metadata={"help": "target sizes N (shapes by [shape])"}
    )
    tokens: list[float] | None = field(
        default=None, metadata={"help": "budgets in training tokens D"}
    )

    def __post_init__(self):
        super().__post_init__()
        for pair in (("shapes", "params"), ("tokens", self.OTHER)):
            if (getattr(self, pair[0]) is None) == (getattr(self, pair[1]) is None):
                raise ConfigError(f"give exactly one of {pair[0]} or {pair[1]}")
        for name in ("params", "tokens", self.OTHER):
            if getattr(self, name) is not None:
                _numbers(self, name, f"{name} must be a non-empty list, got []")
        if self.shapes is not None:
            if not isinstance(self.shapes, list) or not self.shapes:
                raise ConfigError("shapes must be a non-empty list of tables")
            for i, s in enumerate(self.shapes):
                if not isinstance(s, dict):
                    raise ConfigError(f"shapes[{i}]: expected a table, got {type(s).__name__}")
                unknown = sorted(set(s) - set(SHAPE_FIELDS))
                if unknown:
                    raise ConfigError(
                        f"shapes[{i}]: unknown key(s) {', '.join(unknown)} "
                        f"(known: {', '.join(sorted(SHAPE_FIELDS))})"
                    )
            self.shapes = [dict(s) for s in self.shapes]


@dataclass
class GridDesign(_Sized):
    """Explicit shapes (or target sizes) × explicit budgets (tokens or FLOPs)."""

    COLUMNS: ClassVar[dict] = {"budget": 1.0, "budget_kind": "tokens"}
    kind: str = setting("grid", "grid")
    flops: list[float] | None = field(
        default=None, metadata={"help": "budgets in FLOPs C (D = C / FLOPs per token)"}
    )

    @property
    def budget_kind(self) -> str:
        return "tokens" if self.tokens is not None else "flops"


@dataclass
class IsoflopDesign(Design):
    """Per FLOP budget, `sizes` sizes spread log-uniformly around the centre."""

    COLUMNS: ClassVar[dict] = {"budget": 1.0}
    kind: str = setting("isoflop", "isoflop")
    budgets: list[float] = field(
        default_factory=list, metadata={"help": "FLOP budgets C_1 ... C_k (sorted ascending)"}
    )
    sizes: int = setting(5, "model sizes per budget")
    tokens_per_param: float = setting(
        DEFAULT_TOKENS_PER_PARAM, "the centre: N_c = sqrt(C / (6 · tokens_per_param))"
    )
    spread: float = setting(16.0, "the largest size of a budget is this many times the smallest")
    recentre: bool = setting(False, "centre each budget after the first on the measured optimum")
    trunks: bool = setting(
        False,
        "train each size once: a constant-LR trunk to its largest budget, and a WSD "
        "cooldown branch at each of its budgets (design.wsd_sizes)",
    )
    cooldown_frac: float = setting(
        0.2, "with trunks: a branch decays linearly to min_lr over this last fraction"
    )
    checkpoints: int = setting(20, "with trunks: a trunk checkpoints about this many times")

    def __post_init__(self):
        super().__post_init__()
        _numbers(self, "budgets", "isoflop needs budgets = [C_1, ..., C_k] (FLOPs)")
        self.budgets.sort()
        for name in ("sizes", "tokens_per_param", "spread"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
                raise ConfigError(f"{name} must be a positive number, got {v!r}")
        if not isinstance(self.sizes, int):  # one message for two keys named neither value
            raise ConfigError(f"sizes must be a whole number of sizes, got {self.sizes!r}")
        if self.spread < 1:
            raise ConfigError(
                f"spread must be >= 1 (the largest size over the smallest), got {self.spread!r}"
            )
        if self.sizes > MAX_ISOFLOP_SIZES:
            raise ConfigError(
                f"sizes must be at most {MAX_ISOFLOP_SIZES}, got {self.sizes}: each size is a "
                "run at every budget, and a profile's parabola needs 3 to about 10"
            )
        for name in ("tokens_per_param", "spread"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be a finite number, got {getattr(self, name)}")
        self.tokens_per_param, self.spread = float(self.tokens_per_param), float(self.spread)
        for name in ("recentre", "trunks"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false")
        if self.trunks and self.recentre:
            raise ConfigError(
                "trunks = true plans every budget before anything trains: recentre must be false"
            )
        _check_branches(self)

    def columns(self) -> dict:
        # with trunks, a trunk run has no budget (only its branches do)
        return {} if self.trunks else dict(self.COLUMNS)


@dataclass
class LadderDesign(Design):
    """Target sizes × tokens per parameter: D = r · N."""

    COLUMNS: ClassVar[dict] = {"target_params": 1.0, "tokens_per_param": 1.0}
    kind: str = setting("ladder", "ladder")
    params: list[float] = field(
        default_factory=list, metadata={"help": "target sizes N (shapes by [shape])"}
    )
    tokens_per_param: list[float] = field(
        default_factory=list, metadata={"help": "ratios r: each size trains on D = r · N"}
    )

    def __post_init__(self):
        super().__post_init__()
        for name in ("params", "tokens_per_param"):
            _numbers(self, name, f"ladder needs {name} = [...]")


@dataclass
class WsdDesign(Design):
    """A ladder trained as one stable run per size with cooldown branches (design.wsd_sizes)."""

    # a stable run has no tokens_per_param (only its branches do)
    COLUMNS: ClassVar[dict] = {"target_params": 1.0}
    kind: str = setting("wsd", "wsd")
    params: list[float] = field(
        default_factory=list, metadata={"help": "target sizes N (shapes by [shape])"}
    )
    tokens_per_param: list[float] = field(
        default_factory=list, metadata={"help": "each size's budgets: D = r · N (sorted)"}
    )
    cooldown_frac: float = setting(
        0.2, "a branch decays linearly to min_lr over this last fraction"
    )
    checkpoints: int = setting(20, "the stable run checkpoints about this many times")

    def __post_init__(self):
        super().__post_init__()
        for name in ("params", "tokens_per_param"):
            _numbers(self, name, f"wsd needs {name} = [...]")
        self.tokens_per_param.sort()
        _check_branches(self)


def _check_branches(d: "IsoflopDesign | WsdDesign") -> None:
    """cooldown_frac and checkpoints of a design trained as trunks with WSD branches."""
    f = d.cooldown_frac
    if isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f < 1:
        raise ConfigError(f"cooldown_frac must be a number in (0, 1), got {f!r}")
    d.cooldown_frac = float(f)
    k = d.checkpoints
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"checkpoints must be a positive integer, got {k!r}")


@dataclass
class HparamsDesign(_Sized):
    """Learning rate × batch size grids at several (N, D): the runs `fit --law lr-opt` fits.

    Each size (explicit shapes or target sizes) trains on each D (`tokens`, or
    `tokens_per_param` ratios of its N) at every lr = the [hparams] rule's lr for its
    width × each of `lr_factors`, and every `batch_sizes` (sequences per micro-batch).
    """

    OTHER = "tokens_per_param"
    COLUMNS: ClassVar[dict] = {
        "budget": 1.0, "budget_kind": "tokens", "batch_size": 1, "lr_factor": 1.0,
    }  # fmt: skip
    kind: str = setting("hparams", "hparams")
    tokens_per_param: list[float] | None = field(
        default=None, metadata={"help": "budgets as ratios: D = r · N"}
    )
    lr_factors: list[float] = field(
        default_factory=lambda: [0.25, 0.5, 1.0, 2.0, 4.0],
        metadata={"help": "each run's lr = the rule's lr × one of these"},
    )
    batch_sizes: list[float] | None = field(
        default=None, metadata={"help": "sequences per micro-batch (default: [train]'s)"}
    )

    def __post_init__(self):
        super().__post_init__()
        for name in ("lr_factors", "batch_sizes"):
            if getattr(self, name) is not None:
                _numbers(self, name, f"{name} must be a non-empty list, got []")
        for b in self.batch_sizes or []:
            if b != int(b):
                raise ConfigError(f"batch_sizes must be whole numbers of sequences, got {b}")


DESIGNS = {
    "grid": GridDesign, "isoflop": IsoflopDesign, "ladder": LadderDesign, "wsd": WsdDesign,
    "hparams": HparamsDesign,
}  # fmt: skip
KINDS = tuple(DESIGNS)
AnyDesign = GridDesign | IsoflopDesign | LadderDesign | WsdDesign | HparamsDesign


# --- the spec --------------------------------------------------------------------


@dataclass
class SweepSpec:
    """A whole spec, checked (parse_spec builds it)."""

    name: str = field(metadata={"help": "the sweep's name (default: the spec file's stem)"})
    data: Path = field(
        metadata={"help": "shards folder (relative paths: to the current directory)"}
    )
    archs: list[str] = field(metadata={"help": f"architectures, any of {ARCHS} (default: gpt)"})
    model: dict = field(
        metadata={"help": "[model]: shared ModelConfig fields (validated; not the shape)"}
    )
    train: dict = field(
        metadata={"help": "[train]: shared TrainConfig fields (validated; not data or budget)"}
    )
    shape: ShapeRule = field(metadata={"help": "[shape]"})
    hparams: dict[str, HparamRule] = field(
        metadata={"help": "[hparams]: the rule of each arch of the sweep"}
    )
    design: AnyDesign = field(metadata={"help": "[design]"})
    trainer_cmd: str | None = field(
        default=None,
        metadata={
            "help": "run this program for each run instead of scalinglab's trainer: a command "
            "line with {placeholders} (docs/interfaces.md)"
        },
    )
    source: Path | None = field(
        default=None, metadata={"help": "the spec file, when read from one"}
    )
    raw: dict = field(
        default_factory=dict, metadata={"help": "the spec as given (written to OUT/sweep.toml)"}
    )

    @property
    def kind(self) -> str:
        return self.design.kind


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec file."""
    d = load_toml(path)  # first: it names a path that is no path (None)
    path = Path(path)
    return parse_spec(d, where=str(path), default_name=path.stem, source=path, strict=True)


def parse_spec(
    d: dict, where: str = "spec", default_name: str = "sweep", source=None, strict: bool = False
) -> SweepSpec:
    """Validate a spec mapping; every error names the file, table and key.

    strict: also refuse the [train] keys the [hparams] rule sets per run (lr, warmup):
    every spec a person wrote is read so; a study's own repeat of a run passes them.
    """
    _table(d, TOP_KEYS, where)
    version = d.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise SweepError(
            f"{where}: format_version {version!r} is not supported (this scalinglab reads "
            f"{FORMAT_VERSION})"
        )
    if not d.get("data"):
        raise SweepError(f"{where}: 'data' (the shards folder) is required")
    if not isinstance(d["data"], str):
        raise SweepError(f"{where}: data must be a path (a string), got {d['data']!r}")
    archs = d.get("archs", ["gpt"])
    if isinstance(archs, str):
        archs = [archs]
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise SweepError(f"{where}: archs must be a name or a list of names, got {archs!r}")
    bad = [a for a in archs if a not in ARCHS]
    if bad or not archs:
        raise SweepError(f"{where}: archs {bad or archs} not among {', '.join(ARCHS)}")
    model, train = d.get("model", {}), d.get("train", {})
    _table(model, None, f"{where} [model]")
    _table(train, None, f"{where} [train]")
    set_by_sweep(model, train, where, hparams_keys=strict)
    for arch in archs:  # every architecture's runs take [model]: a GPT-only key is refused
        _build(ModelConfig, {**model, "arch": arch}, f"{where} [model]")
    _build(TrainConfig, train, f"{where} [train]")
    design = _design(d.get("design"), f"{where} [design]")
    shape, hparams = parse_rules(d, archs, where)
    if "gpt" in archs and model.get("pos") == "rope" and shape.head_size % 2:
        # the GPTs' heads are head_size wide: each shape failed when planned, with
        # '--pos rope needs an even head size; --n-embd 3 / --n-head 1 = 3', no file or key
        raise SweepError(
            f'{where} [shape]: head_size {shape.head_size} is odd, and [model] pos = "rope" '
            "rotates pairs of a head's dimensions: give an even head_size"
        )
    return SweepSpec(
        name=str(d.get("name") or default_name),
        data=Path(d["data"]),
        archs=list(archs),
        model=dict(model),
        train=dict(train),
        shape=shape,
        hparams=hparams,
        design=design,
        trainer_cmd=check_trainer_cmd(d.get("trainer_cmd"), f"{where}: trainer_cmd", design),
        source=source,
        raw=d,
    )


# The {placeholders} of a trainer_cmd besides the ModelConfig and TrainConfig fields and
# the design's columns (docs/interfaces.md), each with a value of its type;
# `tokens`, `flops` and `steps` are the run's planned budget.
TRAINER_PLACEHOLDERS = {
    "out": "", "config": "", "name": "", "params": 1, "params_nonembed": 1, "flops_6nd": 1.0,
}  # fmt: skip
CONVERSIONS = ("r", "s", "a")


def placeholder_values(design: "Design | dict | None" = None) -> dict:
    """Every name a trainer_cmd may use in braces, with a value of its type: the [model]
    and [train] fields, the planned budget, `out`, `config`, `name` and the columns of
    `design` (a Design, or the columns themselves)."""
    values = dataclasses.asdict(ModelConfig()) | dataclasses.asdict(TrainConfig())
    columns = design.columns() if isinstance(design, Design) else design or {}
    return values | TRAINER_PLACEHOLDERS | columns


def check_trainer_cmd(cmd, where: str, design: "Design | dict | None" = None) -> str | None:
    """A trainer command line, checked: a non-empty string whose placeholders all exist
    for every run of `design` (a Design, or the columns its runs all have), each with a
    conversion and format spec its value takes."""
    if cmd is None:
        return None
    if not isinstance(cmd, str) or not cmd.strip():
        raise SweepError(f"{where}: expected a command line (a non-empty string), got {cmd!r}")
    try:
        fields = [
            f for tok in shlex.split(cmd) for f in _fields(tok) if f[1] is not None
        ]  # fmt: skip
    except ValueError as exc:
        raise SweepError(f"{where}: {cmd!r}: {exc}") from None
    values = placeholder_values(design)
    if any(name == "" for _, name, _, _ in fields):
        raise SweepError(
            f"{where}: an empty placeholder {{}} in {cmd!r}: name the value, like {{out}} "
            "(a literal brace is written {{ or }})"
        )
    unknown = sorted({name for _, name, _, _ in fields if name not in values})
    if unknown:
        columns = sorted(values.keys() - placeholder_values().keys())
        kind = (
            f"this {design.kind} design's columns"
            if isinstance(design, Design)
            else "the design columns all its runs have"
        )
        raise SweepError(
            f"{where}: unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)} "
            f"(known: the [model] and [train] fields, {', '.join(TRAINER_PLACEHOLDERS)} and "
            f"{kind}: {', '.join(columns) or 'none'})"
        )
    for _, name, spec, conv in fields:
        _check_format_spec(name, spec, conv, values[name], where)
    return cmd


def check_program(cmd: str | None, where: str) -> None:
    """Refuse a trainer_cmd whose program cannot be started here, before a sweep or study
    runs (every run would fail): a path (with a /, relative to the current directory)
    that is no executable file, or a name on no folder of PATH. A program word with a
    placeholder is left to the run. Not part of check_trainer_cmd: a spec read back
    (a finished study's) may name a program since moved."""
    words = shlex.split(cmd) if cmd else []
    prog = words[0] if words else ""
    if not prog or "{" in prog or "}" in prog:
        return
    if os.sep not in prog and "/" not in prog:
        if shutil.which(prog) is None:
            raise SweepError(f"{where}: the program {prog!r} is not found on PATH")
        return
    path = Path(prog)
    if not path.exists():
        why = "does not exist"
    elif path.is_dir():
        why = "is a folder"
    elif not os.access(path, os.X_OK):
        why = "is not executable (chmod +x it, or run it with its interpreter: python FILE)"
    else:
        return
    raise SweepError(f"{where}: the program {prog} {why}")


def _fields(text: str) -> list:
    """string.Formatter().parse of one word, the fields nested in format specs too."""
    out = []
    for f in string.Formatter().parse(text):
        out.append(f)
        if f[2] and "{" in f[2]:
            out += _fields(f[2])
    return out


def _check_format_spec(name: str, spec: str, conv: str | None, value, where: str) -> None:
    """Refuse a {name!conv:spec} the placeholder's value does not take (`{lr:.2q}`,
    `{lr:d}`, `{lr!x}`): it failed only when each run's command was filled, after the
    sweep had begun."""
    if conv is not None and conv not in CONVERSIONS:
        raise SweepError(
            f"{where}: {{{name}!{conv}}}: unknown conversion {conv!r} (use !r, !s or !a)"
        )
    if not spec or "{" in spec:
        return
    if conv:
        value = "text"
    if isinstance(value, str):
        kind = "text"
    elif isinstance(value, bool):
        kind = "a boolean"
    elif isinstance(value, int):
        kind = "an integer"
    elif isinstance(value, float):
        kind = "a number"
    else:
        kind = "a list"
    try:
        format(value, spec)
    except (ValueError, TypeError) as exc:
        raise SweepError(f"{where}: {{{name}:{spec}}} is no format for {kind} ({exc})") from None


def _table(d, known, where: str) -> None:
    if not isinstance(d, dict):
        raise SweepError(f"{where}: expected a table, got {type(d).__name__}")
    unknown = sorted(set(d) - set(known)) if known is not None else []
    if unknown:
        raise SweepError(
            f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )


def set_by_sweep(model: dict, train: dict, where: str, hparams_keys: bool = True) -> None:
    """Refuse the [model] and [train] keys the sweep sets per run (a spec's or a study's):
    they would be silently overridden. hparams_keys: also those of the [hparams] rule."""
    shape_keys = sorted(set(model) & set(MODEL_SET_BY_SWEEP))
    if shape_keys:
        raise SweepError(
            f"{where} [model]: {', '.join(shape_keys)} are set by the sweep, per run "
            "(archs at the top level, vocab_size from the shards, shapes by [design]; "
            "explicit shapes go in [design] shapes with kind = 'grid')"
        )
    set_by_sweep = sorted(set(train) & set(TRAIN_SET_BY_SWEEP))
    if set_by_sweep:
        why = ["'data' at the top level"] if "data" in set_by_sweep else []
        why += ["the budget by [design]"] if set(set_by_sweep) - {"data"} else []
        raise SweepError(
            f"{where} [train]: {', '.join(set_by_sweep)} are set by the sweep, per run "
            f"({', '.join(why)})"
        )
    by_rule = [k for k in TRAIN_SET_BY_HPARAMS if k in train] if hparams_keys else []
    if by_rule:
        raise SweepError(
            f"{where} [train]: {' and '.join(by_rule)} {'are' if len(by_rule) > 1 else 'is'} "
            "set per run by [hparams]: use [hparams] "
            + " and ".join(TRAIN_SET_BY_HPARAMS[k] for k in by_rule)
        )


def _build(cls, d, where: str):
    """config.from_dict, its errors raised as SweepError (a spec's fault)."""
    try:
        return from_dict(cls, d, where)
    except ConfigError as exc:
        raise SweepError(exc.message) from None


def spec_dict(spec: SweepSpec) -> dict:
    """The spec as a TOML mapping with every default filled in (what `sweep --print-config`
    prints); `parse_spec` of it gives the same spec."""
    d = {
        "format_version": FORMAT_VERSION, "name": spec.name, "data": str(spec.data),
        "archs": list(spec.archs), "model": dict(spec.model), "train": dict(spec.train),
        **rules_dict(spec.shape, spec.hparams),
        "design": {k: v for k, v in dataclasses.asdict(spec.design).items() if v is not None},
    }  # fmt: skip
    if spec.trainer_cmd:
        d["trainer_cmd"] = spec.trainer_cmd
    return d


def parse_rules(d: dict, archs: list[str], where: str) -> tuple[ShapeRule, dict[str, HparamRule]]:
    """The [shape] and [hparams] tables of a spec mapping `d` (a sweep's or a study's):
    the shape rule, and each architecture's hparam rule ([hparams] with its
    [hparams.ARCH] over it)."""
    shape = _build(ShapeRule, d.get("shape", {}), f"{where} [shape]")
    return shape, _hparams(d.get("hparams", {}), archs, f"{where} [hparams]")


def rules_dict(shape: ShapeRule, hparams: dict[str, HparamRule]) -> dict:
    """[shape] and [hparams] with every default filled in: each architecture's rule in
    full as [hparams.ARCH], which parse_rules reads back as the same rules."""
    return {
        "shape": dataclasses.asdict(shape),
        "hparams": {a: dataclasses.asdict(r) for a, r in hparams.items()},
    }


def _hparams(d, archs: list[str], where: str) -> dict[str, HparamRule]:
    fields = [f.name for f in dataclasses.fields(HparamRule)]
    _table(d, fields + list(ARCHS), where)
    base = {k: v for k, v in d.items() if k in fields}
    _build(HparamRule, base, where)
    rules = {}
    for arch in archs:
        over = d.get(arch, {})
        _table(over, fields, f"{where}.{arch}")
        rules[arch] = _build(HparamRule, {**base, **over}, f"{where}.{arch}" if over else where)
    return rules


def _design(d, where: str) -> AnyDesign:
    if d is None:
        raise SweepError(f"{where}: the [design] table is required (kind = {' | '.join(KINDS)})")
    if not isinstance(d, dict) or d.get("kind") not in KINDS:
        kind = d.get("kind") if isinstance(d, dict) else d
        raise SweepError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    return _build(DESIGNS[d["kind"]], dict(d), where)
