"""scalinglab's RNN recipes against PyTorch's word_language_model example (issue 25).

The setup of issue 25, both tools in one run: WikiText-2's valid.txt is the
training text, the two halves of test.txt (cut at the line boundary nearest the
middle byte) the validation and test text; the vocabulary is the training text's
13,777 words (held-out words read `<unk>`), so both tools see the same word
sequences (checked). 2 layers of width 200, dropout 0.2, bptt/block 35, batch 20,
3 epochs.

- reference: word_lm_reference.py, our re-implementation of PyTorch's example
  (SGD lr 20 — 5 for the Transformer —, clip 0.25, lr / 4 when an epoch's
  validation loss does not improve, test loss of the best epoch);
- scalinglab: `prepare valid.txt --val-file A --test-file B --tokenizer word`, then
  `train` with the defaults but for the shape and budget above (for the RNNs:
  `--optimizer auto` = SGD lr 20, clip 0.25, cosine to lr/10, tied embeddings),
  and the test perplexity of `eval --split test`.

Perplexities come from full runs. Speed: each full run's training tokens per
second, and, because the machine may be shared, a check in which the two tools
take turns (`--rounds` turns; in each, each tool trains 3 and 3 + `--probe-steps`
steps, same threads, process and malloc setting) counting tokens per CPU-second of
the extra steps: wall time on a loaded machine swings with the other jobs, CPU time
much less. The geometric mean of the turns' ratios (scalinglab / reference) and
its 95% interval are the numbers to quote.

    python benchmarks/rnn_recipe.py [--models lstm,gru,rnn_tanh,gpt] [--epochs 3]
        [--threads 2] [--rounds 9] [--probe-steps 20] [--jobs 1]
        [--corpus ../shared/corpora/wikitext-2]

`--jobs N` trains N models at once, each model's pair in a process of its own (the
full runs' tokens/s are then wall-clock under that load; the turns count CPU time,
so their ratios hold).
"""

import argparse
import math
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
import word_lm_reference as ref

from scalinglab.config import ModelConfig, RunConfig, TrainConfig
from scalinglab.data.shards import open_shards
from scalinglab.data.writer import prepare
from scalinglab.train import train
from scalinglab.train.evaluate import evaluate, load_trained
from scalinglab.train.malloc import keep_freed_memory

REFERENCE_NAME = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN_TANH", "gpt": "Transformer"}
ROOT = Path(__file__).resolve().parents[1]


def halves(test: Path, out: Path) -> tuple[Path, Path]:
    """test.txt cut in two at the line boundary nearest its middle byte."""
    data = test.read_bytes()
    mid = len(data) // 2
    cut = data.find(b"\n", mid) + 1
    a, b = out / "test_a.txt", out / "test_b.txt"
    a.write_bytes(data[:cut])
    b.write_bytes(data[cut:])
    return a, b


def ours_config(arch: str, shards: Path, tokens: int, threads: int, **over) -> RunConfig:
    m = ModelConfig(arch=arch, n_layer=2, n_embd=200, dropout=0.2, block_size=35)
    # lanes walked in order, as the reference (PyTorch's word LM example) batchifies
    over = {"order": "stream", **over}
    t = TrainConfig(data=str(shards), batch_size=20, tokens=tokens, threads=threads, **over)
    return RunConfig(model=m, train=t)


def ours_full(arch: str, shards: Path, out: Path, epochs: int, threads: int) -> dict:
    n_train = len(open_shards(shards).train)
    res = train(ours_config(arch, shards, epochs * n_train, threads), out / arch)
    model, cfg, _ = load_trained(out / arch)
    test = open_shards(shards).split("test")
    loss, _ = evaluate(model, test, 35, 10)  # 10 lanes, as the reference scores its test
    return {"test_ppl": math.exp(loss), "val_ppl": res["val_ppl"],
            "tok_s": res["tokens_per_second"], "optimizer": cfg.train.optimizer,
            "lr": cfg.train.lr}  # fmt: skip


def cpu_seconds(fn) -> float:
    """The process's CPU time spent in fn() (seconds): unlike wall time, it does not grow
    while other jobs hold the cores."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def child_cpu_seconds(cmd: list[str]) -> float:
    """The CPU time of a child process running cmd (seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, capture_output=True, env=os.environ | {"PYTHONHASHSEED": "0"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def probe(arch: str, shards: Path, files, out: Path, steps: int, rounds: int, threads: int):
    """Training tokens per CPU-second of the two tools, taking turns.

    Each turn runs each tool for `base` and for `base + steps` steps and divides the
    extra tokens by the extra CPU time: the set-up, the first steps' allocations and
    the end (our evaluation and checkpoint) cancel; one untimed call of each comes
    first (a process's first run pays one-time costs). The reference runs twice: in this
    process (so with the malloc setting the trainer makes process-wide) and, as
    PyTorch's example runs, in a process of its own with the system's malloc.
    Returns (ours, reference, ratios, ratios to the reference in its own process, its
    tokens per CPU-second); the rates are medians over the turns.
    """
    base = 3
    tokens = steps * 35 * 20

    def ours(n, r):
        cfg = ours_config(arch, shards, 0, threads, steps=n, eval_tokens=35 * 20)
        train(cfg, out / f"probe-{arch}-{r}-{n}")

    def theirs(n):
        ref.train_reference(*files, model=REFERENCE_NAME[arch], epochs=1, max_steps=n,
                            log=lambda *_: None)  # fmt: skip

    def alone(n):
        cmd = [sys.executable, str(Path(ref.__file__)), *map(str, files), "--epochs", "1",
               "--model", REFERENCE_NAME[arch], "--max-steps", str(n), "--threads", str(threads)]  # fmt: skip
        return child_cpu_seconds(cmd)

    ours(base, "warm-up")  # the first call pays one-time costs (lazy imports, kernels)
    theirs(base)
    rates: tuple[list, list, list] = ([], [], [])
    for r in range(rounds):
        a = cpu_seconds(lambda r=r: ours(base + steps, r)) - cpu_seconds(lambda r=r: ours(base, r))
        b = cpu_seconds(lambda: theirs(base + steps)) - cpu_seconds(lambda: theirs(base))
        c = alone(base + steps) - alone(base)
        for rate, cpu in zip(rates, (a, b, c), strict=True):
            rate.append(tokens / cpu)
        print(f"  {arch} turn {r + 1}: scalinglab {rates[0][-1]:,.0f} tok/CPU-s, reference "
              f"{rates[1][-1]:,.0f} (ratio {b / a:.3f}), reference in its own process "
              f"{rates[2][-1]:,.0f} (ratio {c / a:.3f})", flush=True)  # fmt: skip
    ratios = [a / b for a, b in zip(rates[0], rates[1], strict=True)]
    alone_ratios = [a / c for a, c in zip(rates[0], rates[2], strict=True)]
    medians = [statistics.median(rate) for rate in rates]
    return *medians[:2], ratios, alone_ratios, medians[2]


def interval(ratios: list[float]) -> tuple[float, float, float]:
    """The geometric mean of the ratios and its ~95% interval (t on the log ratios)."""
    logs = [math.log(r) for r in ratios]
    m = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(m), math.nan, math.nan
    t = {2: 12.7, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}
    half = t.get(len(logs), 2.2) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(m), math.exp(m - half), math.exp(m + half)


def compare(arch: str, args, shards: Path, files, work: Path) -> dict:
    """One model's row: both tools' full runs (unless --skip-full) and the turns."""
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    row = {"arch": arch}
    if not args.skip_full:
        t0 = time.perf_counter()
        r = ref.train_reference(*files, model=REFERENCE_NAME[arch], epochs=args.epochs)
        o = ours_full(arch, shards, work / "runs", args.epochs, args.threads)
        row |= {"ref": r, "ours": o, "minutes": (time.perf_counter() - t0) / 60}
        print(f"{arch}: reference test ppl {r['test_ppl']:.1f} ({r['tok_s']:,.0f} tok/s), "
              f"scalinglab test ppl {o['test_ppl']:.1f} ({o['tok_s']:,.0f} tok/s; "
              f"{o['optimizer']} lr {o['lr']:g})", flush=True)  # fmt: skip
    row["probe"] = probe(arch, shards, files, work / "probe", args.probe_steps,
                         args.rounds, args.threads)  # fmt: skip
    g, lo, hi = interval(row["probe"][2])
    row["ratio"] = f"{g:.3f} [{lo:.3f}, {hi:.3f}]"
    g, lo, hi = interval(row["probe"][3])
    row["alone"] = f"{g:.3f} [{lo:.3f}, {hi:.3f}]"
    print(
        f"{arch}: taking turns, scalinglab {row['probe'][0]:,.0f} tok/CPU-s, reference "
        f"{row['probe'][1]:,.0f} (medians); ratio {row['ratio']} (geometric mean, 95% "
        f"interval; {sum(r > 1 for r in row['probe'][2])} of {args.rounds} turns > 1); "
        f"to the reference in its own process ({row['probe'][4]:,.0f} tok/CPU-s) "
        f"{row['alone']}",
        flush=True,
    )
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="lstm,gru,rnn_tanh,gpt")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--probe-steps", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=1,
                    help="models trained at once, each in its own process (speed: CPU time)")  # fmt: skip
    ap.add_argument("--skip-full", action="store_true", help="only the throughput check")
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared/corpora/wikitext-2"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # the trainer sets it process-wide anyway: the reference gets it too
    corpus = Path(args.corpus)
    work = Path(tempfile.mkdtemp(prefix="rnn_recipe-"))
    a, b = halves(corpus / "test.txt", work)
    files = (corpus / "valid.txt", a, b)
    shards = work / "shards"
    m = prepare([str(files[0])], shards, tokenizer="word", val_file=str(a), test_file=str(b),
                block_size=35)  # fmt: skip
    vocab = ref.Vocab()
    n_ref = vocab.encode_file(files[0], grow=True).numel()
    assert (m["vocab_size"], m["splits"]["train"]["tokens"]) == (len(vocab.ids), n_ref), (
        "the two tools do not read the same words"
    )
    print(f"vocab {m['vocab_size']:,}; tokens train {n_ref:,} val "
          f"{m['splits']['val']['tokens']:,} test {m['splits']['test']['tokens']:,}; "
          f"threads {args.threads}", flush=True)  # fmt: skip
    archs = args.models.split(",")
    if args.jobs > 1:  # each model in a process of its own, all at once
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(args.jobs, len(archs)), mp_context=ctx) as pool:
            futures = [pool.submit(compare, a, args, shards, files, work) for a in archs]
            rows = [f.result() for f in futures]
    else:
        rows = [compare(a, args, shards, files, work) for a in archs]
    print(
        "\n| model | reference test ppl | scalinglab test ppl | reference tok/s | "
        "scalinglab tok/s | tok/CPU-s ratio, same process | ratio, reference's own process |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        name = f"{REFERENCE_NAME[row['arch']]} / {row['arch']}"
        if "ref" in row:
            r, o = row["ref"], row["ours"]
            cells = (
                f"{r['test_ppl']:.1f} | {o['test_ppl']:.1f} | {r['tok_s']:,.0f} | {o['tok_s']:,.0f}"
            )
        else:
            cells = "- | - | - | -"
        print(f"| {name} | {cells} | {row['ratio']} | {row['alone']} |")


if __name__ == "__main__":
    main()
