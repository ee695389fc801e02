"""The sweep spec: a versioned TOML file that names the shards, the architectures,
the shared training settings, the shape and hyperparameter rules, and a design.

::

    format_version = 1
    name = "tiny"                       # optional; default: the file's stem
    data = "shards/stdlib-byte"         # shards folder (relative paths: to the current directory)
    archs = ["gpt"]                     # any of scalinglab.config.ARCHS

    [model]                             # shared ModelConfig fields (not the shape)
    block_size = 32

    [train]                             # shared TrainConfig fields (not data or the budget)
    batch_size = 8

    [shape]                             # target N -> shape (see design.shape_for)
    aspect = 16                         # GPT: n_embd ≈ aspect × n_layer
    head_size = 8                       # GPT: n_head = n_embd / head_size
    rnn_layers = 1                      # RNNs: depth; the width is solved from N
    width_multiple = 4                  # RNN widths are multiples of this

    [hparams]                           # per-size rule (see design.hparams_for)
    lr = 3e-3                           # learning rate at ref_width
    ref_width = 64
    lr_power = 0.5                      # lr = lr × (ref_width / width) ** lr_power
    warmup_frac = 0.05                  # warmup steps = round(warmup_frac × steps)
    [hparams.lstm]                      # optional per-architecture overrides
    lr = 1e-2

    [design]
    kind = "isoflop"                    # grid | isoflop | ladder (keys: see DESIGN_KEYS)
    budgets = [1e11, 3e11]
    ...

Every table is checked: unknown keys are named, with the known ones listed.
"""

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from scalinglab.config import (
    ARCHS,
    BUDGETS,
    ModelConfig,
    TrainConfig,
    from_dict,
    load_toml,
)
from scalinglab.errors import ConfigError, SweepError

FORMAT_VERSION = 1
KINDS = ("grid", "isoflop", "ladder", "wsd")
FLOPS_CONVENTIONS = ("6nd", "model")
SHAPE_FIELDS = ("n_layer", "n_embd", "n_head", "n_hidden")
MODEL_SET_BY_SWEEP = ("arch", "preset", "vocab_size", *SHAPE_FIELDS)
# The sweep sets these per run; a spec that sets them would be silently overridden.
TRAIN_SET_BY_SWEEP = ("data", *BUDGETS)
TOP_KEYS = (
    "format_version",
    "name",
    "data",
    "archs",
    "model",
    "train",
    "shape",
    "hparams",
    "design",
)
DESIGN_KEYS = {
    "grid": ("kind", "shapes", "params", "tokens", "flops", "flops_convention"),
    "isoflop": (
        "kind", "budgets", "sizes", "tokens_per_param", "spread", "recentre", "flops_convention",
    ),
    "ladder": ("kind", "params", "tokens_per_param"),
    "wsd": (
        "kind", "params", "tokens_per_param", "cooldown_frac", "checkpoints", "flops_convention",
    ),
}  # fmt: skip

# The default centre of an IsoFLOP profile, in training tokens per parameter. Measured
# on this project's tiny byte-level GPTs (15k–200k parameters): the optimum sat at
# about 150–240 tokens per parameter, far from Chinchilla's 20 at billions of parameters.
DEFAULT_TOKENS_PER_PARAM = 200.0


@dataclass
class ShapeRule:
    aspect: float = 16.0
    """GPT: target ratio n_embd / n_layer."""
    head_size: int = 8
    """GPT: n_embd is a multiple of this and n_head = n_embd / head_size."""
    rnn_layers: int = 1
    """RNNs: number of stacked layers; the width is solved from the target N."""
    width_multiple: int = 4
    """RNNs: widths are multiples of this."""
    max_layers: int = 48
    """GPT: deepest model considered by the shape search."""
    min_layers: int = 1
    """GPT: shallowest model considered (min_layers = max_layers fixes the depth)."""

    def __post_init__(self):
        ints = isinstance(self.min_layers, int) and isinstance(self.max_layers, int)
        if ints and self.min_layers > self.max_layers:
            raise ConfigError(
                f"min_layers ({self.min_layers}) is larger than max_layers ({self.max_layers})"
            )


@dataclass
class HparamRule:
    lr: float = 3e-3
    """Learning rate of a model of width ref_width."""
    ref_width: int = 64
    lr_power: float = 0.5
    """lr(width) = lr × (ref_width / width) ** lr_power (0: the same lr at every width)."""
    warmup_frac: float = 0.05
    """Warmup steps = round(warmup_frac × the run's steps)."""

    def __post_init__(self):
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"[hparams] lr must be a positive number, got {self.lr}")
        if self.ref_width < 1:
            raise ConfigError(f"[hparams] ref_width must be positive, got {self.ref_width}")
        if not 0.0 <= self.warmup_frac < 1.0:
            raise ConfigError(f"[hparams] warmup_frac must be in [0, 1), got {self.warmup_frac}")


@dataclass
class SweepSpec:
    name: str
    data: Path
    archs: list[str]
    model: dict
    """Shared ModelConfig fields (validated)."""
    train: dict
    """Shared TrainConfig fields (validated)."""
    shape: ShapeRule
    hparams: dict[str, HparamRule]
    """Per-architecture rule (every arch of the sweep has one)."""
    design: dict
    source: Path | None = None
    raw: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.design["kind"]


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec file."""
    path = Path(path)
    return parse_spec(load_toml(path), where=str(path), default_name=path.stem, source=path)


def parse_spec(d: dict, where: str = "spec", default_name: str = "sweep", source=None) -> SweepSpec:
    """Validate a spec mapping; every error names the file, table and key."""
    _unknown(d, TOP_KEYS, where)
    version = d.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise SweepError(
            f"{where}: format_version {version!r} is not supported (this scalinglab reads "
            f"{FORMAT_VERSION})"
        )
    if not d.get("data"):
        raise SweepError(f"{where}: 'data' (the shards folder) is required")
    archs = d.get("archs", ["gpt"])
    if isinstance(archs, str):
        archs = [archs]
    bad = [a for a in archs if a not in ARCHS]
    if bad or not archs:
        raise SweepError(f"{where}: archs {bad or archs} not among {', '.join(ARCHS)}")
    model = d.get("model", {})
    shape_keys = sorted(set(model) & set(MODEL_SET_BY_SWEEP))
    if shape_keys:
        raise SweepError(
            f"{where} [model]: {', '.join(shape_keys)} are set by the sweep, per run "
            "(archs at the top level, vocab_size from the shards, shapes by [design]; "
            "explicit shapes go in [design] shapes with kind = 'grid')"
        )
    train = d.get("train", {})
    set_by_sweep = sorted(set(train) & set(TRAIN_SET_BY_SWEEP))
    if set_by_sweep:
        raise SweepError(
            f"{where} [train]: {', '.join(set_by_sweep)} are set by the sweep, per run "
            "('data' at the top level, the budget by [design])"
        )
    _check(ModelConfig, {**model, "arch": archs[0]}, f"{where} [model]")
    _check(TrainConfig, train, f"{where} [train]")
    shape = _dataclass(ShapeRule, d.get("shape", {}), f"{where} [shape]")
    hparams = _hparams(d.get("hparams", {}), archs, f"{where} [hparams]")
    design = _design(d.get("design"), f"{where} [design]")
    return SweepSpec(
        name=str(d.get("name") or default_name),
        data=Path(d["data"]),
        archs=list(archs),
        model=dict(model),
        train=dict(train),
        shape=shape,
        hparams=hparams,
        design=design,
        source=source,
        raw=d,
    )


def _unknown(d: dict, known, where: str) -> None:
    if not isinstance(d, dict):
        raise SweepError(f"{where}: expected a table, got {type(d).__name__}")
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise SweepError(
            f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )


def _check(cls, d: dict, where: str) -> None:
    try:
        from_dict(cls, d, where)
    except ConfigError as exc:
        raise SweepError(str(exc)) from None


def _dataclass(cls, d: dict, where: str):
    _unknown(d, [f.name for f in dataclasses.fields(cls)], where)
    try:
        obj = cls(**d)
    except (TypeError, ConfigError) as exc:
        raise SweepError(f"{where}: {exc}") from None
    for f in dataclasses.fields(cls):
        v = getattr(obj, f.name)
        kind = int if f.type in (int, "int") else int | float
        if isinstance(v, bool) or not isinstance(v, kind) or v <= 0:
            what = "a positive integer" if kind is int else "a positive number"
            raise SweepError(f"{where}: {f.name} must be {what}, got {v!r}")
    return obj


def _hparams(d: dict, archs: list[str], where: str) -> dict[str, HparamRule]:
    fields = [f.name for f in dataclasses.fields(HparamRule)]
    _unknown(d, fields + list(ARCHS), where)
    base = {k: v for k, v in d.items() if k in fields}
    rules = {}
    for arch in archs:
        over = d.get(arch, {})
        _unknown(over, fields, f"{where}.{arch}")
        try:
            rules[arch] = HparamRule(**{**base, **over})
        except ConfigError as exc:
            raise SweepError(f"{where}: {exc}") from None
    return rules


def _positive_list(design: dict, key: str, where: str, integer: bool = False) -> list:
    v = design[key]
    if not isinstance(v, list) or not v:
        raise SweepError(f"{where}: {key} must be a non-empty list, got {v!r}")
    for x in v:
        if isinstance(x, bool) or not isinstance(x, int | float) or not x > 0 or x == math.inf:
            raise SweepError(f"{where}: {key} must hold positive numbers, got {x!r}")
    return [int(x) for x in v] if integer else [float(x) for x in v]


def _design(d, where: str) -> dict:
    if d is None:
        raise SweepError(f"{where}: the [design] table is required (kind = {' | '.join(KINDS)})")
    if not isinstance(d, dict) or d.get("kind") not in KINDS:
        kind = d.get("kind") if isinstance(d, dict) else d
        raise SweepError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    kind = d["kind"]
    _unknown(d, DESIGN_KEYS[kind], where)
    out = dict(d)
    conv = d.get("flops_convention", "6nd")
    if conv not in FLOPS_CONVENTIONS:
        raise SweepError(f"{where}: flops_convention {conv!r} is not one of {FLOPS_CONVENTIONS}")
    out["flops_convention"] = conv
    if kind == "grid":
        _exactly_one(d, ("shapes", "params"), where)
        _exactly_one(d, ("tokens", "flops"), where)
        if "params" in d:
            out["params"] = _positive_list(d, "params", where)
        else:
            out["shapes"] = _shapes(d["shapes"], where)
        budget = "tokens" if "tokens" in d else "flops"
        out[budget] = _positive_list(d, budget, where)
    elif kind == "isoflop":
        if "budgets" not in d:
            raise SweepError(f"{where}: isoflop needs budgets = [C_1, ..., C_k] (FLOPs)")
        out["budgets"] = sorted(_positive_list(d, "budgets", where))
        out["sizes"] = d.get("sizes", 5)
        out["tokens_per_param"] = d.get("tokens_per_param", DEFAULT_TOKENS_PER_PARAM)
        out["spread"] = d.get("spread", 16.0)
        out["recentre"] = d.get("recentre", False)
        for key in ("sizes", "tokens_per_param", "spread"):
            if isinstance(out[key], bool) or not isinstance(out[key], int | float) or out[key] <= 0:
                raise SweepError(f"{where}: {key} must be a positive number, got {out[key]!r}")
        if not isinstance(out["sizes"], int) or out["spread"] < 1:
            raise SweepError(f"{where}: sizes must be an integer and spread >= 1")
        if not isinstance(out["recentre"], bool):
            raise SweepError(f"{where}: recentre must be true or false")
    elif kind == "wsd":
        from scalinglab.sweep import wsd  # it imports design, which imports this module

        out.update(wsd.check_design(d, where, _positive_list))
    else:
        for key in ("params", "tokens_per_param"):
            if key not in d:
                raise SweepError(f"{where}: ladder needs {key} = [...]")
            out[key] = _positive_list(d, key, where)
    return out


def _exactly_one(d: dict, keys: tuple[str, str], where: str) -> None:
    if (keys[0] in d) == (keys[1] in d):
        raise SweepError(f"{where}: give exactly one of {keys[0]} or {keys[1]}")


def _shapes(shapes, where: str) -> list[dict]:
    if not isinstance(shapes, list) or not shapes:
        raise SweepError(f"{where}: shapes must be a non-empty list of tables")
    out = []
    for i, s in enumerate(shapes):
        _unknown(s, SHAPE_FIELDS, f"{where} shapes[{i}]")
        out.append(dict(s))
    return out
