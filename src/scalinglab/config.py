"""Typed configs: one dataclass per component, TOML in and out, validated on construction.

This is the project's one config mechanism. A field's `help` metadata is its
documentation and its `--help` text; its name is its TOML key and (with `_`
turned into `-`) its command-line flag. Unknown keys and invalid values fail
at construction with a message that names the key or flag.

A run's resolved config is written as `RUN/config.toml`::

    [model]
    arch = "gpt"
    n_layer = 4
    ...
    [train]
    data = "shards/stdlib-byte"
    lr = 0.001
    ...
"""

import argparse
import copy
import dataclasses
import decimal
import hashlib
import json
import math
import numbers
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from scalinglab.errors import ConfigError

ARCHS = ("gpt", "lstm", "gru", "rnn_tanh", "rnn_relu")
RECURRENT = ("lstm", "gru", "rnn_tanh", "rnn_relu")
SCHEDULES = ("cosine", "constant", "wsd")
OPTIMIZERS = ("auto", "adamw", "sgd")
ORDERS = ("random", "stream")
OPTIMIZER_DEFAULTS = {
    "adamw": {"lr": 1e-3, "grad_clip": 1.0},
    "sgd": {"lr": 20.0, "grad_clip": 0.25},
}
"""What `--lr 0` and a negative `--grad-clip` (the defaults) mean for each optimizer. `auto`
is sgd for the recurrent models trained at the default lr and adamw otherwise (an --lr given
keeps the optimizer it was chosen for before --optimizer existed; docs/training.md)."""
ELMAN_SGD_LR = 5.0
"""The Elman RNNs' (rnn_tanh, rnn_relu) default SGD lr: 20 blows them up
(benchmarks/results/rnn_recipe.md)."""
DTYPES = ("auto", "float32", "bfloat16")
RESUME = ("auto", "never", "must")
BUDGETS = ("steps", "tokens", "flops", "time")
# Bounds against a typo that would train until killed (--flops 1e40 started silently):
# a trillion steps is ~30 years at a millisecond a step, ten years of wall time is beyond
# any run's.
MAX_STEPS = 10**12
MAX_SECONDS = 10 * 365.25 * 86400
LOGGERS = ("tensorboard", "wandb", "mlflow", "csv")
PARAMS = ("sp", "mup", "completep")
CONFIG_FORMAT_VERSION = 1
"""config.toml / run.toml: the [model] and [train] tables below (absent means 1)."""
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
"""Every integer setting fits TOML's (and torch's) 64-bit integers."""
SEED_MAX = INT_MAX
"""Seeds are non-negative (numpy refuses others; torch would map them)."""
SEED_RANGE = (0, SEED_MAX)
"""A seed field's `range` (`setting(..., range=SEED_RANGE)`), which check_types names."""


def setting(default, help: str, **kw):
    """A config field with its documentation: `help` is its --help text; `flag` and
    `choices` (optional) its command-line spelling and allowed values; `range` (optional,
    an int field's) the (lowest, highest) it takes, INT_MIN and INT_MAX by default."""
    return field(default=default, metadata={"help": help, **kw})


def flag(name: str) -> str:
    """The command-line flag of a config field (`n_embd` -> `--n-embd`)."""
    return "--" + name.replace("_", "-")


@dataclass
class ModelConfig:
    """The shape of a model. Architecture-specific fields are ignored by the others."""

    arch: str = setting("gpt", "architecture", flag="--model", choices=ARCHS)
    preset: str = setting("", "named shape (`scalinglab presets`); other fields given override it")
    n_layer: int = setting(4, "number of layers (Transformer blocks or stacked RNN layers)")
    n_embd: int = setting(128, "embedding width (also the hidden width of RNNs unless n_hidden)")
    n_head: int = setting(4, "attention heads (GPT); must divide n_embd")
    n_hidden: int = setting(0, "RNN hidden width", shown="n_embd")
    block_size: int = setting(128, "context length in tokens (the unrolled length for RNNs)")
    vocab_size: int = setting(0, "vocabulary size", shown="the shards'")
    dropout: float = setting(0.0, "dropout probability")
    bias: bool = setting(True, "biases in Linear and LayerNorm layers (GPT)")
    tie_embeddings: bool = setting(True, "share the input embedding and output projection")
    pos: str = setting(
        "learned", "GPT position encoding: learned or rope", choices=("learned", "rope")
    )
    param: str = setting(
        "sp",
        "GPT parametrisation: sp (standard, GPT-2), mup (muP: the learning rate transfers "
        "across width), completep (muP plus depth scaling: it transfers across depth too)",
        choices=PARAMS,
    )
    base_width: int = setting(
        128, "mup/completep: the width (n_embd) of the base shape, where every multiplier is 1"
    )
    base_depth: int = setting(
        4, "completep: the depth (n_layer) of the base shape, where every multiplier is 1"
    )
    base_head_dim: int = setting(
        0,
        "mup/completep: the head size of the base shape (attention scale sqrt(base_head_dim) / "
        "head_dim); 0 means base_width / n_head (the base has as many heads)",
    )
    readout_mult: float = setting(
        1.0,
        "GPT: the logits' multiplier at the base shape (muP's output multiplier, tuned there; "
        "under mup/completep each width gets it x base_width / n_embd, under sp as it is)",
    )

    def __post_init__(self):
        check_types(self)
        if self.arch not in ARCHS:
            raise ConfigError(f"--model {self.arch!r} is not one of {', '.join(ARCHS)}")
        for name in ("n_layer", "n_embd", "block_size", "base_width", "base_depth"):
            _positive(self, name)
        if self.param != "sp" and self.arch != "gpt":
            raise ConfigError(
                f"--param {self.param} is for the GPT; --model {self.arch} has only sp"
            )
        if not (math.isfinite(self.readout_mult) and self.readout_mult > 0):
            raise ConfigError(f"--readout-mult must be positive, got {self.readout_mult}")
        if self.readout_mult != 1.0 and self.arch != "gpt":
            raise ConfigError(f"--readout-mult is for the GPT; --model {self.arch} has none")
        for name in ("n_hidden", "vocab_size", "base_head_dim"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{flag(name)} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.arch == "gpt":
            _positive(self, "n_head")
            if self.n_embd % self.n_head:
                raise ConfigError(
                    f"--n-embd {self.n_embd} is not divisible by --n-head {self.n_head}"
                )
            if self.param != "sp" and not self.base_head_dim and self.base_width % self.n_head:
                raise ConfigError(  # the base's head_dim base_width / n_head was 3.5
                    f"--base-width {self.base_width} is not a multiple of --n-head "
                    f"{self.n_head}: the base model's heads need a whole head size (or give "
                    "--base-head-dim)"
                )
            if self.pos == "rope" and (self.n_embd // self.n_head) % 2:
                raise ConfigError(
                    f"--pos rope needs an even head size; --n-embd {self.n_embd} / "
                    f"--n-head {self.n_head} = {self.n_embd // self.n_head}"
                )
        if self.arch in RECURRENT and self.tie_embeddings and self.hidden != self.n_embd:
            raise ConfigError(
                f"tied embeddings need --n-hidden equal to --n-embd ({self.n_embd}), got "
                f"{self.n_hidden}; pass --no-tie-embeddings or drop --n-hidden"
            )

    @property
    def hidden(self) -> int:
        return self.n_hidden or self.n_embd

    @property
    def recurrent(self) -> bool:
        return self.arch in RECURRENT


@dataclass
class TrainConfig:
    """How a model is trained: data, optimizer, schedule, budget, evaluation, checkpoints."""

    data: str = setting("", "shards folder made by `scalinglab prepare`", shown="none, required")
    batch_size: int = setting(12, "sequences per micro-batch")
    grad_accum: int = setting(1, "micro-batches per optimizer step")
    order: str = setting(
        "random",
        "order of the training windows: random (each drawn anywhere in the split, seen on "
        "its own; an RNN's state starts at 0 in each); stream (batch_size contiguous lanes "
        "walked in order, an RNN's state carried across windows: truncated BPTT)",
        choices=ORDERS,
    )
    lr: float = setting(
        0.0, "peak learning rate", shown="the optimizer's: AdamW 1e-3, SGD 20 (Elman RNNs 5)"
    )
    min_lr: float = setting(-1.0, "final learning rate", shown="lr / 10")
    warmup: int = setting(100, "linear warmup steps (capped at half the run)")
    schedule: str = setting("cosine", "learning-rate schedule", choices=SCHEDULES)
    cooldown_frac: float = setting(0.2, "wsd: fraction of the run spent decaying to min_lr")
    weight_decay: float = setting(
        0.1, "AdamW weight decay (on weights of 2 or more dimensions only)"
    )
    optimizer: str = setting(
        "auto",
        "optimizer: sgd is plain SGD (no momentum, no weight decay); auto: sgd for the "
        "RNNs (lstm, gru, rnn_tanh, rnn_relu) at the default --lr, else adamw",
        choices=OPTIMIZERS,
    )
    plateau_factor: float = setting(
        0.0,
        "divide the LR by this whenever a periodic evaluation (--eval-every) does not "
        "improve on the best so far (anneal on plateau; 4 in PyTorch's word LM example); "
        "0: never",
    )
    beta1: float = setting(0.9, "AdamW beta1")
    beta2: float = setting(0.99, "AdamW beta2")
    grad_clip: float = setting(
        -1.0,
        "clip the global gradient norm to this; 0 disables",
        shown="the optimizer's: AdamW 1.0, SGD 0.25",
    )
    seed: int = setting(1337, "seed for initialisation, batches and dropout", range=SEED_RANGE)
    steps: int = setting(0, "budget: optimizer steps", shown="none")
    tokens: int = setting(0, "budget: training tokens", shown="none")
    flops: float = setting(
        0.0, "budget: training FLOPs (the model's own forward+backward count)", shown="none"
    )
    time: float = setting(0.0, "budget: wall-clock seconds of training", shown="none")
    eval_every: int = setting(
        0, "evaluate on a fixed validation subset every this many steps", shown="never"
    )
    eval_tokens: int = setting(
        0,
        "validation tokens an evaluation reads",
        shown="all for the final one, 65,536 for periodic ones",
    )
    log_every: int = setting(10, "write a metrics line every this many steps")
    tensorboard: bool = setting(
        False, "also write TensorBoard event files beside metrics.jsonl (scalinglab[tensorboard])"
    )
    loggers: list[str] = field(
        default_factory=list,
        metadata={
            "help": f"also log to this experiment tracker, one of {', '.join(LOGGERS)}; "
            "repeatable: --logger wandb --logger mlflow (docs/trackers.md)",
            "flag": "--logger",
            "choices": LOGGERS,
        },
    )
    ckpt_every: int = setting(0, "checkpoint every this many steps", shown="only at the end")
    keep_ckpts: int = setting(2, "keep this many newest checkpoints")
    resume: str = setting("auto", "resume from checkpoints", choices=RESUME)
    deterministic: bool = setting(False, "deterministic kernels (bitwise-reproducible on CPU)")
    threads: int = setting(0, "torch threads", shown="the library's default")
    dtype: str = setting("auto", "compute dtype", choices=DTYPES)
    compile: bool = setting(False, "torch.compile the model")
    device: str = setting("auto", "device: auto, cpu, cuda, cuda:N, mps")

    def __post_init__(self):
        check_types(self)
        for name in ("batch_size", "grad_accum"):
            _positive(self, name)
        for name in ("warmup", "steps", "tokens", "eval_every", "eval_tokens", "ckpt_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{flag(name)} must be >= 0, got {getattr(self, name)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"--optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}"
            )
        if self.plateau_factor != 0 and not (
            math.isfinite(self.plateau_factor) and self.plateau_factor > 1
        ):
            raise ConfigError(
                f"--plateau-factor must be 0 (never) or a number > 1, got {self.plateau_factor}"
            )
        for name in ("flops", "time", "weight_decay"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ConfigError(f"{flag(name)} must be a finite number >= 0, got {v}")
        if self.steps > MAX_STEPS:
            raise ConfigError(
                f"--steps must be at most {MAX_STEPS:.0e}, got {self.steps:g} (a typo?)"
            )
        if self.time > MAX_SECONDS:
            raise ConfigError(
                f"--time is in seconds and at most {MAX_SECONDS:.4g} (ten years), got "
                f"{self.time:g} (a typo?)"
            )
        if not math.isfinite(self.grad_clip):
            raise ConfigError(f"--grad-clip must be a finite number, got {self.grad_clip}")
        if not (math.isfinite(self.lr) and self.lr >= 0):
            raise ConfigError(
                f"--lr must be a positive number (0: the optimizer's default), got {self.lr}"
            )
        if self.lr and self.min_lr > self.lr:
            raise ConfigError(f"--min-lr {self.min_lr} is larger than --lr {self.lr}")
        if not 0.0 <= self.cooldown_frac <= 1.0:
            raise ConfigError(f"--cooldown-frac must be in [0, 1], got {self.cooldown_frac}")
        if self.keep_ckpts < 1:
            raise ConfigError(f"--keep-ckpts must be >= 1, got {self.keep_ckpts}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{flag(name)} must be in [0, 1), got {getattr(self, name)}")
        check_seed(self.seed)
        if self.threads < 0:
            raise ConfigError(
                f"--threads must be >= 0 (0: the library's default), got {self.threads}"
            )
        _positive(self, "log_every")
        if not isinstance(self.loggers, list | tuple) or not all(
            isinstance(x, str) for x in self.loggers
        ):
            raise ConfigError(f"loggers must be a list of names, got {self.loggers!r}")
        for x in self.loggers:
            if x not in LOGGERS:
                raise ConfigError(f"--logger {x!r} is not one of {', '.join(LOGGERS)}")
        self.loggers = list(dict.fromkeys(self.loggers))
        given = [b for b in BUDGETS if getattr(self, b)]
        if len(given) > 1:
            raise ConfigError(
                "give exactly one budget; got " + " and ".join(flag(b) for b in given)
            )

    @property
    def budget(self) -> tuple[str, float]:
        """(kind, amount) of the one budget set; raises if none is."""
        for b in BUDGETS:
            if getattr(self, b):
                return b, getattr(self, b)
        raise ConfigError("no training budget: give one of " + ", ".join(map(flag, BUDGETS)))

    @property
    def final_lr(self) -> float:
        return self.lr / 10 if self.min_lr < 0 else self.min_lr

    def with_optimizer_defaults(self, recurrent: bool, arch: str = "") -> "TrainConfig":
        """This config with `optimizer auto`, `lr 0` and a negative `grad_clip` resolved:
        the recipe of the model family (OPTIMIZER_DEFAULTS; ELMAN_SGD_LR for `arch`
        rnn_tanh / rnn_relu)."""
        opt = self.optimizer
        if opt == "auto":  # an lr given was meant for AdamW, the one optimizer before this
            opt = "sgd" if recurrent and not self.lr else "adamw"
        d = OPTIMIZER_DEFAULTS[opt]
        if opt == "sgd" and arch in ("rnn_tanh", "rnn_relu"):
            d = d | {"lr": ELMAN_SGD_LR}
        clip = self.grad_clip if self.grad_clip >= 0 else d["grad_clip"]
        return dataclasses.replace(self, optimizer=opt, lr=self.lr or d["lr"], grad_clip=clip)


@dataclass
class RunConfig:
    """Everything that defines one training run (written as RUN/config.toml)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return {"model": to_dict(self.model), "train": to_dict(self.train)}

    @classmethod
    def from_dict(cls, d: dict, where: str = "config", flags: dict | None = None) -> "RunConfig":
        """`flags`: per table ("model", "train"), the keys that came from command-line
        flags, not from the file `where` (errors name them by their flags)."""
        flags = flags or {}
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected a table with [model] and [train]")
        unknown = sorted(set(d) - {"model", "train", "format_version"})
        if unknown:
            raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)}")
        version = d.get("format_version", CONFIG_FORMAT_VERSION)
        if version != CONFIG_FORMAT_VERSION:
            raise ConfigError(
                f"{where}: format_version {version!r} is not supported (this scalinglab "
                f"reads {CONFIG_FORMAT_VERSION})"
            )
        return cls(
            model=from_dict(
                ModelConfig,
                d.get("model", {}),
                f"{where} [model]",
                frozenset(flags.get("model", ())),
            ),
            train=from_dict(
                TrainConfig,
                d.get("train", {}),
                f"{where} [train]",
                frozenset(flags.get("train", ())),
            ),
        )


# Train fields added after run ids were first issued, with the value that gives what runs
# did before them: left out of the identity at that value.
LATER_FIELDS = {"optimizer": "adamw", "plateau_factor": 0.0}


def order_before_field(model) -> str:
    """The training order of runs made before `order` existed: an RNN's lanes were walked
    in order (stream), a Transformer's windows drawn at random. A run folder's config.toml
    without the key is read as that; such a run's id leaves the key out."""
    return "stream" if model.recurrent else "random"


# Train fields that change how a run executes or reports, not what it computes.
OPERATIONAL = (
    "data", "resume", "threads", "device", "compile", "log_every", "eval_every",
    "ckpt_every", "keep_ckpts", "deterministic", "tensorboard", "loggers",
)  # fmt: skip


# Model fields added after runs were first recorded: left out of a run's identity while
# at their default (which computes what runs computed before them), so older runs keep
# their ids and resume.
NEUTRAL_AT_DEFAULT = ("param", "base_width", "base_depth", "base_head_dim", "readout_mult")
BASE_SHAPE = ("base_width", "base_depth", "base_head_dim")
"""The fields that change nothing under --param sp."""


def run_identity(cfg: RunConfig, data_id: str) -> str:
    """Hex sha256 of what a run computes: its resolved config without the operational
    fields, with the shards' content id (`data.shards.content_id`) in place of their path.
    Under --param sp the base shape changes nothing, so it is left out too.

    The trainer's run_id and the sweep's run folders both come from here, so a sweep
    recognises the runs its trainer wrote.
    """
    d = cfg.to_dict()
    train = {k: v for k, v in d["train"].items() if k not in OPERATIONAL}
    for k, old in LATER_FIELDS.items():  # runs made before these fields keep their ids
        if train.get(k) == old:
            train.pop(k)
    if train.get("order") == order_before_field(cfg.model):  # the order every run had then
        train.pop("order")
    if train.get("plateau_factor"):  # then the evaluations steer the LR
        train["eval_every"] = d["train"]["eval_every"]
    model = {k: v for k, v in d["model"].items() if k != "preset"}
    defaults, sp = ModelConfig(), model["param"] == "sp"
    for k in NEUTRAL_AT_DEFAULT:
        if model[k] == getattr(defaults, k) or (sp and k in BASE_SHAPE):
            del model[k]
    blob = json.dumps({"model": model, "train": train, "data": data_id}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# --- the generic mechanism -------------------------------------------------


def check_seed(seed: int, name: str = "--seed") -> None:
    if not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"{name} must be in [0, {SEED_MAX}], got {seed}")


def _positive(obj, name: str) -> None:
    if getattr(obj, name) <= 0:
        raise ConfigError(f"{flag(name)} must be positive, got {getattr(obj, name)}")


def _base_type(tp):
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def check_types(obj) -> None:
    """Coerce ints to floats where a float is declared; refuse anything else that mismatches.

    Every config dataclass calls it first in its `__post_init__` (scalar fields only; a
    field's `choices` metadata is checked too)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        tp = _base_type(hints[f.name])
        name = f.metadata.get("flag", flag(f.name))
        if v is None or tp not in (int, float, str, bool):
            continue
        if isinstance(v, numbers.Real) and not isinstance(v, int | float):
            # a numpy scalar (steps=np.int64(200) from a notebook's arithmetic) is its
            # number: it was "steps must be int, got int64"
            v = int(v) if isinstance(v, numbers.Integral) else float(v)
            setattr(obj, f.name, v)
        if tp is float and isinstance(v, int) and not isinstance(v, bool):
            setattr(obj, f.name, float(v))
        elif tp is int and isinstance(v, float) and v.is_integer():
            setattr(obj, f.name, int(v))  # 1e6 in a TOML file means 1000000
        elif not isinstance(v, tp) or (tp is not bool and isinstance(v, bool)):
            raise ConfigError(f"{flag(f.name)} must be {tp.__name__}, got {type(v).__name__} {v!r}")
        v = getattr(obj, f.name)
        if tp is float and not math.isfinite(v):  # NaN passes every comparison: refuse it here
            raise ConfigError(f"{name} must be a finite number, got {v}")
        lo, hi = f.metadata.get("range", (INT_MIN, INT_MAX))
        if tp is int and not isinstance(v, bool) and not lo <= v <= hi:
            raise ConfigError(f"{name} must be in [{lo}, {hi}], got {v}")
        choices = f.metadata.get("choices")
        if choices and getattr(obj, f.name) not in choices:
            raise ConfigError(f"{name} {v!r} is not one of {', '.join(choices)}")


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def check_known(d: dict, names, where: str, also=()) -> None:
    """ConfigError naming the keys of `d` not among `names` (nor `also`: accepted, not
    listed, such as an old spelling), and the known ones."""
    unknown = sorted(set(d) - set(names) - set(also))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})"
        )


def from_dict(cls, d: dict, where: str, given: frozenset = frozenset()):
    """Build a config dataclass from a mapping; unknown keys are named in the error.

    `where` names the file and table the mapping comes from; `given`, the keys of it that
    came from command-line flags instead. An error names a key from the file as the file
    spells it (`FILE [train]: tokens must be int`), one from a flag by its flag alone."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a table, got {type(d).__name__}")
    check_known(d, {f.name for f in dataclasses.fields(cls)}, where)
    try:
        return cls(**d)
    except ConfigError as exc:
        raise ConfigError(_in_file(cls, d, where, exc.message, given)) from None


def _in_file(cls, d: dict, where: str, msg: str, given) -> str:
    """A field error's message as `from_dict` gives it: each --flag that stands for a key
    read from the file spelled as the key, `where` in front unless only flags are named."""
    from_file = flags_named = False
    for f in dataclasses.fields(cls):
        fl = f.metadata.get("flag", flag(f.name))
        pattern = rf"(?<![\w-]){re.escape(fl)}(?![\w-])"
        if not re.search(pattern, msg):
            continue
        if f.name in d and f.name not in given:
            msg, from_file = re.sub(pattern, f.name, msg), True
        else:
            flags_named = True
    return msg if flags_named and not from_file else f"{where}: {msg}"


def run_table(d: dict, key: str, where: str) -> dict:
    """The [model] or [train] table of a run's config file `d` (empty where absent); any
    other value (`model = "big"`, an array of tables `[[model]]`) is refused, not ignored."""
    v = d.get(key, {})
    if isinstance(v, dict):
        return v
    if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        got = f"an array of tables [[{key}]]"
    else:
        got = f"{type(v).__name__} {v!r}"
    raise ConfigError(f"{where}: {key} must be a table [{key}], got {got}")


def load_toml(path: str | Path) -> dict:
    """Read a TOML file; syntax errors name the file and line."""
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):  # None: pathlib's error
        raise ConfigError(f"a config or spec file path is needed, got {path!r}")
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a TOML config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 at byte {exc.start}") from None


def dumps_toml(d: dict) -> str:
    return tomli_w.dumps(d)


# --- command-line flags from the dataclasses (litgpt-style: the dataclass is the CLI) --


def int_arg(text: str) -> int:
    """An integer flag's value: `1000000`, or `1e6` / `2.5e5` where it is a whole number
    (as a TOML file may write it)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:  # Decimal, not float: 1e30 is 10**30, not float's 1000000000000000019884624838656
        v = decimal.Decimal(text.strip())
    except decimal.InvalidOperation:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if not v.is_finite() or v.adjusted() > 40:  # 1e999999999 would be a billion digits
        raise argparse.ArgumentTypeError(f"not a whole number a flag can take: {text!r}")
    if v != v.to_integral_value():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(v)


def shown_default(f: dataclasses.Field, name: str | None = None) -> str:
    """A field's default as --help shows it: its `shown` metadata where the stored value is a
    sentinel (`min_lr = -1.0` shows as `lr / 10`), `none` for None and "", `--flag` or
    `--no-flag` for booleans, else the value without quotes."""
    if "shown" in f.metadata:
        return f.metadata["shown"]
    d = f.default if f.default is not dataclasses.MISSING else None
    if d is None or d == "":
        return "none"
    if isinstance(d, bool):
        name = name or flag(f.name)
        return name if d else "--no-" + name[2:]
    return str(d)


def add_flags(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """Add one flag per field of `cls`; every default is None so that only given flags override.

    Integers accept `1e6`; each `--two-words` flag also answers to `--two_words` (the
    spelling of nanoGPT and Hugging Face), unlisted in --help."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(cls.__name__)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        name = f.metadata.get("flag", flag(f.name))
        tp = _base_type(hints[f.name])
        help_ = f"{f.metadata.get('help', '')} (default: {shown_default(f, name)})"
        alias = "--" + name[2:].replace("-", "_")
        choices = f.metadata.get("choices")
        if tp is bool:
            kw = dict(dest=f.name, action=argparse.BooleanOptionalAction, default=None)
        elif typing.get_origin(tp) is list:  # repeatable: --logger a --logger b
            kw = dict(dest=f.name, action="append", default=None, metavar="NAME",
                      choices=f.metadata.get("choices"))  # fmt: skip
            help_ = f"{f.metadata.get('help', '')} (default: none)"
        else:  # with choices, argparse shows them as the metavar: --schedule {cosine,wsd}
            kw = dict(dest=f.name, type=int_arg if tp is int else tp, default=None,
                      metavar=None if choices else f.name.upper(), choices=choices)  # fmt: skip
        group.add_argument(name, help=help_, **kw)
        if alias != name:
            group.add_argument(alias, help=argparse.SUPPRESS, **kw)


def flags_given(args: argparse.Namespace, cls) -> dict:
    """The fields of `cls` that were set on the command line."""
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cls)
        if getattr(args, f.name, None) is not None
    }


# --- dotted overrides of a spec (`--set train.batch_size=16`) -------------------------


def _typed_value(text: str, tp):
    """`text` read as the flag of a field of type `tp` reads it."""
    if tp is bool:
        low = text.strip().lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise argparse.ArgumentTypeError(f"not a boolean (true or false): {text!r}")
    if tp is int:
        return int_arg(text)
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if tp is str:
        return text
    return _toml_value(text)


def _toml_value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_sets(d: dict, items: list[str], typed: dict | None = None) -> dict:
    """A copy of the mapping `d` with each `KEY.PATH=VALUE` of `items` set in turn (the
    dotted overrides of litgpt and torchtitan: `train.batch_size=16`).

    Under a table named in `typed` (`{"train": TrainConfig}`) the key must be a field of
    that config and VALUE is read as its flag reads it (`train.tokens=1e6` is an int);
    any other VALUE is read as a TOML value (`[1e11, 3e11]`, `true`), else as text. Errors
    name the item; keys the spec does not know are refused by the spec's own parser."""
    out = copy.deepcopy(d)
    hints = {t: (cls, typing.get_type_hints(cls)) for t, cls in (typed or {}).items()}
    seen: dict[tuple, str] = {}
    for item in items:
        key, sep, text = item.partition("=")
        path = [k.strip() for k in key.split(".")]
        if not sep or not all(path):
            raise ConfigError(f"--set {item}: expected KEY=VALUE, e.g. train.batch_size=16")
        if tuple(path) in seen:  # the last one won, whichever the user meant
            raise ConfigError(
                f"--set {item}: {'.'.join(path)} is set twice (--set {seen[tuple(path)]})"
            )
        seen[tuple(path)] = item
        table = out
        for i, k in enumerate(path[:-1]):
            table = table.setdefault(k, {})
            if not isinstance(table, dict):
                raise ConfigError(f"--set {item}: {'.'.join(path[: i + 1])} is not a table")
        value = _toml_value(text)
        if len(path) == 2 and path[0] in hints:
            cls, tps = hints[path[0]]
            names = sorted(f.name for f in dataclasses.fields(cls))
            if path[1] not in names:
                raise ConfigError(
                    f"--set {item}: unknown key {path[1]} in [{path[0]}] (known: "
                    f"{', '.join(names)})"
                )
            try:
                value = _typed_value(text, _base_type(tps[path[1]]))
            except argparse.ArgumentTypeError as exc:
                raise ConfigError(f"--set {item}: {exc}") from None
        table[path[-1]] = value
    return out
