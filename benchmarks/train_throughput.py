"""Training throughput of scalinglab's trainer against a plain reference loop, and the matmul peak.

Everything is measured side by side in one run: the candidates are interleaved
round by round and each figure is the median over rounds, so a machine shared
with other jobs slows them alike and the printed ratios hold. Each training
candidate steps in its own process (driven round by round over a pipe, one at a
time), so what one sets process-wide (scalinglab's malloc tuning, threads) or
leaves in the heap does not reach the others: the reference loop runs with the
system's defaults, as a plain script would.

1. The matmul peak: torch.mm float32 (MKL), oneDNN's float32 inner product
   (`mkldnn_linear` on oneDNN tensors), torch.mm under oneDNN's implicit bf16
   (`torch.backends.mkldnn.matmul.fp32_precision = "bf16"`) and torch.mm
   bfloat16. The float32 peak is the faster float32 path, the bf16 peak bf16 mm.
2. For each shape (GPT 4x128 block 256 batch 16, GPT 6x384 block 256 batch 8, GPT
   4x128 with GPT-2's 50k vocabulary batch 8, the quickstart's tiny GPT 2x32 block
   128 batch 8, LSTM 2 layers 128/256 seq 256 batch 16): tokens/s, achieved FLOP/s (scalinglab.models.counting) and its
   ratio to both peaks, for the plain float32 reference (reference_loops.py),
   scalinglab's Trainer with `--dtype auto`, with `--dtype float32`, with `--dtype
   auto` and the system's malloc (SCALINGLAB_MALLOC=system), and with `--compile`
   added to `auto` (`--compile`: it builds first; the time it took is printed).
3. Tiny-model overhead: the trainer's step against the bare model step
   (forward, backward, fused AdamW on a fixed batch) and the loader's cost.

    python benchmarks/train_throughput.py [--threads 1] [--seconds 1.0] [--rounds 3] [--compile]
"""

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import reference_loops as ref
import torch

from scalinglab.config import ModelConfig, RunConfig, TrainConfig
from scalinglab.data.shards import open_shards
from scalinglab.data.writer import prepare
from scalinglab.models.counting import count
from scalinglab.models.registry import build_model
from scalinglab.train.loop import Trainer
from scalinglab.train.malloc import keep_freed_memory

SHAPES = {
    "gpt 4x128": (ModelConfig(arch="gpt", n_layer=4, n_head=4, n_embd=128, block_size=256), 16),
    "gpt 6x384": (ModelConfig(arch="gpt", n_layer=6, n_head=6, n_embd=384, block_size=256), 8),
    "gpt 4x128 vocab 50k": (
        ModelConfig(arch="gpt", n_layer=4, n_head=4, n_embd=128, block_size=256, vocab_size=50304),
        8,
    ),
    "gpt 2x32 (quickstart)": (
        ModelConfig(arch="gpt", n_layer=2, n_head=4, n_embd=32, block_size=128),
        8,
    ),
    "lstm 2x256": (
        ModelConfig(
            arch="lstm", n_layer=2, n_embd=128, n_hidden=256, block_size=256, tie_embeddings=False
        ),
        16,
    ),
}


def median_rate(fns: dict, units: dict, seconds: float, rounds: int) -> dict:
    """{name: median over rounds of units[name] per second}; candidates interleaved per round.

    Each fn(n) runs n steps and returns the seconds they took.
    """
    reps = {}
    for name, fn in fns.items():
        fn(1)  # warm up (allocator, oneDNN primitive caches)
        reps[name] = max(1, round(seconds / max(fn(1), 1e-6)))
    rates = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            rates[name].append(reps[name] * units[name] / fn(reps[name]))
    return {name: statistics.median(r) for name, r in rates.items()}


def timed(step):
    """step() as fn(n) -> seconds, run in this process."""

    def fn(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        return time.perf_counter() - t0

    return fn


def _serve(conn, threads: int, build, args, kw):
    torch.set_num_threads(threads)
    step, info = build(*args, **kw)
    conn.send(info)
    while (n := conn.recv()) is not None:
        conn.send(timed(step)(n))


class InProcess:
    """A candidate stepping in a process of its own: fn(n) -> seconds, like timed()."""

    def __init__(self, threads: int, build, *args, **kw):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, threads, build, args, kw), daemon=True)
        self.proc.start()
        self.info = self.conn.recv()  # built (and compiled) when this returns

    def __call__(self, n: int) -> float:
        self.conn.send(n)
        return self.conn.recv()

    def close(self):
        self.conn.send(None)
        self.proc.join()


def matmul_fns() -> tuple[dict, int]:
    """The matmul candidates ({name: fn}) and the FLOPs of one call."""
    m, k, n = 2048, 768, 3072
    a, w, b = torch.randn(m, k), torch.randn(n, k), torch.randn(n)
    ab, wb = a.bfloat16(), w.bfloat16()
    out, outb = torch.empty(m, n), torch.empty(m, n, dtype=torch.bfloat16)  # no allocation
    am, wm, bm = a.to_mkldnn(), w.to_mkldnn(), b.to_mkldnn()
    mk = torch.backends.mkldnn.matmul

    def implicit_bf16():
        old, mk.fp32_precision = mk.fp32_precision, "bf16"
        try:
            torch.mm(a, w.t(), out=out)
        finally:
            mk.fp32_precision = old

    fns = {
        "torch.mm float32 (MKL)": lambda: torch.mm(a, w.t(), out=out),
        "oneDNN float32 linear": lambda: torch._C._nn.mkldnn_linear(am, wm, bm),
        "torch.mm fp32_precision=bf16": implicit_bf16,
        "torch.mm bfloat16": lambda: torch.mm(ab, wb.t(), out=outb),
    }
    fns = {name: timed(fn) for name, fn in fns.items()}
    return fns, 2 * m * k * n


def matmul_peaks(seconds: float, rounds: int) -> dict:
    fns, flops = matmul_fns()
    return median_rate(fns, dict.fromkeys(fns, flops), seconds, rounds)


def peaks_of(rates: dict) -> dict:
    """GFLOP/s ceilings: the faster float32 path, and bf16 mm."""
    f32 = max(rates["torch.mm float32 (MKL)"], rates["oneDNN float32 linear"])
    return {"f32": f32 / 1e9, "bf16": rates["torch.mm bfloat16"] / 1e9}


def make_data(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    # Word-like text, so byte statistics resemble a corpus (throughput does not care).
    words = ["".join(map(chr, rng.integers(97, 123, size=rng.integers(2, 9)))) for _ in range(500)]
    text = " ".join(rng.choice(words, size=400_000))
    (folder / "corpus.txt").write_text(text)
    prepare(str(folder / "corpus.txt"), folder / "shards", tokenizer="byte")
    return folder / "shards"


def build_trainer(
    shards, out, cfg, batch, dtype, threads, compile=False, loader=False, malloc="tuned"
):  # fmt: skip
    """scalinglab's Trainer step (or its loader's next()), as the training loop calls it."""
    if malloc == "system":
        os.environ["SCALINGLAB_MALLOC"] = "system"  # this worker process only
    train = TrainConfig(
        data=str(shards), batch_size=batch, steps=10**6, warmup=10, dtype=dtype,
        threads=threads, resume="never", seed=0, compile=compile,
    )  # fmt: skip
    tr = Trainer(RunConfig(model=cfg, train=train), out)
    tr._start()
    if compile:
        tr._step()  # compiles here, not in the first timed round
    return (tr.loader.next if loader else tr._step), {"dtype": tr.cfg.train.dtype}


def build_bare(cfg: ModelConfig, batch: int):
    """The model's forward, backward and fused AdamW on one fixed batch: no loader, guard, LR."""
    keep_freed_memory()  # as the trainer does: the difference is then the trainer's own work
    torch.manual_seed(0)
    model = build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    x = torch.randint(0, 256, (batch, cfg.block_size))

    def step():
        model(x, x)[1].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, {}


def build_reference(shards, cfg: ModelConfig, batch: int):
    """The plain float32 loop of reference_loops.py, with the system's malloc."""
    tokens = open_shards(str(shards)).train
    if cfg.arch == "gpt":
        args = (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, batch)
        return ref.gpt_loop(tokens, cfg.vocab_size, *args)[1], {}
    args = (cfg.n_layer, cfg.n_embd, cfg.hidden, cfg.block_size, batch)
    return ref.lstm_loop(tokens, cfg.vocab_size, *args)[1], {}


PEAK_KEYS = ("torch.mm float32 (MKL)", "oneDNN float32 linear", "torch.mm bfloat16")


def bench_shape(name, cfg, batch, shards, tmp, a) -> dict:
    cfg = ModelConfig(**{**cfg.__dict__, "vocab_size": cfg.vocab_size or 256})
    fpt = count(cfg).flops_per_token
    tok_step = batch * cfg.block_size
    th = a.threads

    def trainer(tag: str, dtype: str = "auto", **kw) -> InProcess:
        return InProcess(
            th, build_trainer, shards, tmp / f"{name}-{tag}", cfg, batch, dtype, th, **kw
        )

    auto = trainer("auto")
    fns = {
        "reference float32": InProcess(th, build_reference, shards, cfg, batch),
        f"scalinglab auto ({auto.info['dtype']})": auto,
        "scalinglab float32": trainer("f32", "float32"),
        "auto + system malloc": trainer("sys", malloc="system"),
    }
    if a.compile:
        t0 = time.perf_counter()
        fns["scalinglab auto --compile"] = trainer("c", compile=True)
        print(f"{name}: building and compiling took {time.perf_counter() - t0:.1f} s")
    tiny = cfg.n_embd <= 64
    if tiny:
        fns["bare model step float32"] = InProcess(th, build_bare, cfg, batch)
        fns["loader.next()"] = trainer("ld", "float32", loader=True)
    units = dict.fromkeys(fns, tok_step)
    # The peaks again, interleaved with this shape's candidates: the ratios then hold
    # even when other jobs on the machine come and go between shapes.
    mm, mm_flops = matmul_fns()
    mm = {k: v for k, v in mm.items() if k in PEAK_KEYS}
    rates = median_rate(fns | mm, units | dict.fromkeys(mm, mm_flops), a.seconds, a.rounds)
    for fn in fns.values():
        fn.close()
    peaks = peaks_of(rates)
    rates = {k: v for k, v in rates.items() if k not in mm}
    base = rates["reference float32"]
    print(
        f"\n{name}: {count(cfg).params:,} params, {fpt:,} FLOP/token, {tok_step} tokens/step; "
        f"peaks in these rounds: float32 {peaks['f32']:.1f}, bf16 {peaks['bf16']:.1f} GFLOP/s"
    )
    for cand, r in rates.items():
        if cand == "loader.next()":
            continue
        gf = r * fpt / 1e9
        print(
            f"  {cand:28s} {r:9.0f} tok/s {gf:7.1f} GFLOP/s  "
            f"{gf / peaks['f32']:6.1%} of f32 peak  {gf / peaks['bf16']:6.1%} of bf16 peak  "
            f"x{r / base:5.2f} vs reference"
        )
    if tiny:
        per = {k: 1e6 * tok_step / v for k, v in rates.items()}
        print(
            f"  per step: trainer float32 {per['scalinglab float32']:.0f} us, bare model step "
            f"{per['bare model step float32']:.0f} us, loader.next() {per['loader.next()']:.0f} us"
        )
    return rates


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--seconds", type=float, default=1.0, help="time per candidate per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated subset")
    ap.add_argument("--compile", action="store_true", help="add scalinglab auto + --compile")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    mm = matmul_peaks(a.seconds, max(a.rounds, 3))
    print(f"matmul 2048x768x3072, {a.threads} thread(s), medians of interleaved rounds:")
    for k, v in mm.items():
        print(f"  {k:30s} {v / 1e9:7.1f} GFLOP/s")
    peaks = peaks_of(mm)
    print(f"peaks: float32 {peaks['f32']:.1f} GFLOP/s, bfloat16 {peaks['bf16']:.1f} GFLOP/s")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        shards = make_data(tmp)
        for name in a.shapes.split(","):
            cfg, batch = SHAPES[name]
            bench_shape(name, cfg, batch, shards, tmp, a)


if __name__ == "__main__":
    main()
