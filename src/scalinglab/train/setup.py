"""Resolving a run's config against its data and machine, and checking resumes.

`resolve` turns a RunConfig as given (vocab_size 0, min_lr -1, dtype auto, optimizer
auto, lr 0, grad_clip -1)
into the fully resolved one written to RUN/config.toml (`runfolder.run_id` names it).
"""

import contextlib
import dataclasses
import os

import torch

from scalinglab.config import (
    NEUTRAL_AT_DEFAULT,
    ModelConfig,
    RunConfig,
    TrainConfig,
    flag,
    order_before_field,
)
from scalinglab.data.shards import Shards, content_id
from scalinglab.errors import ConfigError, DataError
from scalinglab.models.counting import count
from scalinglab.train.malloc import keep_freed_memory

# Train fields that change what data the model sees, step by step: a resume
# that changes any of them would not continue the same run.
DATA_FIELDS = ("batch_size", "grad_accum", "seed", "order")


DEVICE_KINDS = ("cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """The devices this machine can train on, as --device spells them."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        out.append("mps")
    return out


def pick_device(name: str) -> str:
    """The device `name` (--device) means here: `auto` is cuda where there is one, else
    cpu. A name torch does not know, or a device this machine lacks, is refused (one line
    that lists the devices available) before anything is built or written."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    here = f"(available here: {', '.join(available_devices())})"
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in DEVICE_KINDS:
        raise ConfigError(
            f"--device {name!r} is not a device: give auto, cpu, cuda, cuda:N or mps {here}"
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available on this machine {here}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: no such CUDA device {here}")
    if dev.type == "mps" and not (torch.backends.mps.is_available() and not dev.index):
        raise ConfigError(f"--device {name}: MPS is not available on this machine {here}")
    return name


# On a CPU, bfloat16 autocast pays once the matmuls are wide and tall enough to
# outweigh its casts, and each thread's share of the rows counts
# (benchmarks/dtype_rule.py on an AVX-512-bf16 / AMX CPU, bf16 speed-up of a step):
# 2-layer GPT, 1024 rows, one thread: width 32 0.92x, 48 0.98x, 64 1.13x, 96 1.30x;
# 2-layer LSTM, 1024 rows, one thread: width 32 1.05x, 64 1.22x, 96 1.35x; width
# 64 over two threads: GPT 1.04x at 1024 rows, 1.19x at 2048.
CPU_BF16_MIN_WIDTH = 64
CPU_BF16_MIN_ROWS_PER_THREAD = 1024  # batch_size x block_size of a micro-batch, per thread


def cpu_has_bf16() -> bool:
    """The CPU has native bfloat16 matmuls (AVX-512-bf16 or AMX): oneDNN's fast path."""
    cpu = torch.backends.cpu
    if cpu.get_cpu_capability() not in ("AVX512", "AMX"):
        # torch may be built or run without AVX-512 kernels; then bf16 is emulated.
        return False
    # torch has no public name for these checks (SLF001 is about our own modules).
    avx512_bf16 = torch.cpu._is_avx512_bf16_supported()  # noqa: SLF001
    return avx512_bf16 or torch.cpu._is_amx_tile_supported()  # noqa: SLF001


def pick_dtype(
    name: str, device: str, model: ModelConfig | None = None, rows: int = 0, threads: int = 0
) -> str:
    """`auto`: bfloat16 autocast where the hardware has it and it pays; float32 elsewhere.

    GPUs: bfloat16 wherever CUDA supports it. CPUs: bfloat16 only with native
    bf16 matmuls and a model at least CPU_BF16_MIN_WIDTH wide fed at least
    CPU_BF16_MIN_ROWS_PER_THREAD rows (batch x block) per micro-batch for each of
    its `threads` (0: torch's current number), RNNs on several threads twice as
    wide; below that the casts cost more than the faster matmuls save (measured by
    benchmarks/dtype_rule.py). Without a model (`model` None) a CPU gets float32.
    """
    if name != "auto":
        return name
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    if device == "cpu" and model is not None and cpu_has_bf16():
        width = max(model.n_embd, model.hidden)
        threads = threads or torch.get_num_threads()
        # An RNN's step is a chain of small matmuls: over several threads bf16 pays only
        # from twice the width (LSTM, two threads, 2048 rows: 64 wide 0.94x, 128 1.13x).
        min_width = CPU_BF16_MIN_WIDTH * (2 if model.arch != "gpt" and threads > 1 else 1)
        if width >= min_width and rows / threads >= CPU_BF16_MIN_ROWS_PER_THREAD:
            return "bfloat16"
    return "float32"


def autocast(device: str, dtype: str):
    """A factory of autocast contexts for the compute dtype (float32: none)."""
    if dtype == "bfloat16":
        kind = device.split(":")[0]
        return lambda: torch.autocast(device_type=kind, dtype=torch.bfloat16)
    return contextlib.nullcontext


def resolve(cfg: RunConfig, shards: Shards, device: str) -> RunConfig:
    """The run's config with every 'auto' and 'derived' value filled in."""
    m, t = cfg.model, cfg.train
    if m.vocab_size and m.vocab_size < shards.vocab_size:
        raise ConfigError(
            f"--vocab-size {m.vocab_size} is smaller than the shards' vocabulary "
            f"({shards.vocab_size} in {shards.path})"
        )
    model = dataclasses.replace(m, vocab_size=m.vocab_size or shards.vocab_size)
    t = t.with_optimizer_defaults(model.recurrent, model.arch)
    if t.min_lr > t.lr:
        raise ConfigError(f"--min-lr {t.min_lr} is larger than --lr {t.lr} ({t.optimizer})")
    train = dataclasses.replace(
        t, data=str(shards.path), min_lr=t.final_lr,
        dtype=pick_dtype(t.dtype, device, model, t.batch_size * model.block_size, t.threads),
    )  # fmt: skip
    t.budget  # noqa: B018 -- raises ConfigError when no budget is given
    return RunConfig(model=model, train=train)


def check_compiler(t: TrainConfig, device: str) -> None:
    """--compile on a CPU needs a C++ compiler: say so before the first step, not after."""
    if not t.compile or device != "cpu":
        return
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
        from torch._inductor.exc import InvalidCxxCompiler
    except ImportError:  # torch moved them: its own error will have to do
        return
    try:
        get_cpp_compiler()
    except InvalidCxxCompiler:
        raise ConfigError(
            "--compile: torch.compile on a CPU needs a C++ compiler and none was found "
            "(torch looks for g++ on PATH, or the CXX environment variable); install one or "
            "leave out --compile"
        ) from None


def check_split_sizes(cfg: RunConfig, shards: Shards) -> None:
    """Fail early, naming the flag, when a split cannot hold one window."""
    bs = cfg.model.block_size
    if 0 < cfg.train.eval_tokens < bs:
        raise ConfigError(
            f"--eval-tokens {cfg.train.eval_tokens} is less than one window of --block-size {bs}"
        )
    # a window is block_size inputs and the token after; training draws one at random
    # (the loader wants one start more); validation walks them: one window is enough, as
    # prepare checks. The val split was held to the train's bs + 2 and both were said to be
    # smaller than --block-size ("--block-size 5 is larger than ... (6 tokens)").
    for split, arr, need in (("train", shards.train, bs + 2), ("val", shards.val, bs + 1)):
        if len(arr) < need:
            raise DataError(
                f"--block-size {bs} is too large for the {split} split of {shards.path}: it "
                f"has {len(arr)} tokens, one window needs {need} (--block-size + "
                f"{need - bs}); use a smaller --block-size or more data"
            )


def data_fingerprint(shards: Shards) -> str:
    """Identifies the shards' content (token files and tokenizer), not their path."""
    return content_id(shards.manifest)[:16]


def resume_conflicts(saved: dict, cfg: RunConfig, fingerprint: str) -> list[str]:
    """The differences in model or data between a checkpoint's config and `cfg`."""
    out = []
    old_model = saved.get("config", {}).get("model", {})
    for f in dataclasses.fields(ModelConfig):
        if f.name == "preset":
            continue
        # A checkpoint written before a NEUTRAL_AT_DEFAULT field existed computed its default.
        missing = f.default if f.name in NEUTRAL_AT_DEFAULT else None
        old, new = old_model.get(f.name, missing), getattr(cfg.model, f.name)
        if old != new:
            out.append(f"{f.metadata.get('flag', flag(f.name))} {old!r} -> {new!r}")
    old_train = saved.get("config", {}).get("train", {})
    for name in DATA_FIELDS:
        # a checkpoint written before --order existed trained in that model's order then
        missing = order_before_field(cfg.model) if name == "order" else None
        old, new = old_train.get(name, missing), getattr(cfg.train, name)
        if old != new:
            out.append(f"{flag(name)} {old!r} -> {new!r}")
    old_opt = old_train.get("optimizer", "adamw")  # checkpoints before --optimizer: AdamW
    if old_opt != cfg.train.optimizer:  # its state (moments or none) would not fit
        out.append(f"--optimizer {old_opt!r} -> {cfg.train.optimizer!r}")
    if saved.get("data_fingerprint") != fingerprint:
        out.append(f"--data: the shards' content differs from the checkpoint's ({cfg.train.data})")
    return out


def configure_torch(t: TrainConfig, device: str):
    """Threads, determinism and (on a CPU) malloc: process-wide settings, as torch has no
    other kind.

    Returns a function that puts the determinism setting back (threads and malloc stay set).
    """
    before = torch.are_deterministic_algorithms_enabled()
    if device == "cpu":
        keep_freed_memory()
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    if t.deterministic:
        if device.startswith("cuda"):
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return lambda: torch.use_deterministic_algorithms(before)


def out_of_memory(exc: BaseException) -> bool:
    """Whether building or running a model failed for want of memory (torch's
    OutOfMemoryError and the CPU allocator's error are RuntimeErrors)."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "alloc" in text or "memory" in text


def too_large(m, device: str, extra: str = "") -> str:
    """The one-line refusal of a model that does not fit in the memory of `device`."""
    return (
        f"the {m.arch} of {count(m).params:,} parameters (vocab_size {m.vocab_size:,}) "
        f"does not fit in the memory of {device}{extra}; make it smaller"
    )
