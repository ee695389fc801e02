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

Perplexities come from full runs. Tokens per second: each full run's training
steps, and, because the machine may be shared, a throughput check in which the two
tools take turns (`--rounds` rounds of `--probe-steps` steps each, same threads,
same process and malloc setting); its median ratio is the one to quote.

    python benchmarks/rnn_recipe.py [--models lstm,gru,rnn_tanh,gpt] [--epochs 3]
        [--threads 2] [--rounds 5] [--corpus ../shared/corpora/wikitext-2]
"""

import argparse
import math
import statistics
import tempfile
import time
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


def probe(arch: str, shards: Path, files, out: Path, steps: int, rounds: int, threads: int):
    """Training tokens/s of the two tools, taking turns; (ours, reference, ratios)."""
    ours, theirs = [], []
    for r in range(rounds):
        res = train(
            ours_config(arch, shards, 0, threads, steps=steps, eval_tokens=35 * 20),
            out / f"probe-{arch}-{r}",
        )  # fmt: skip
        ours.append(res["tokens_per_second"])
        got = ref.train_reference(*files, model=REFERENCE_NAME[arch], epochs=1,
                                  max_steps=steps, log=lambda *_: None)  # fmt: skip
        theirs.append(got["tok_s"])
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return statistics.median(ours), statistics.median(theirs), statistics.median(ratios)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="lstm,gru,rnn_tanh,gpt")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--probe-steps", type=int, default=40)
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
    rows = []
    for arch in args.models.split(","):
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
        print(
            f"{arch}: taking turns, scalinglab {row['probe'][0]:,.0f} tok/s, reference "
            f"{row['probe'][1]:,.0f} tok/s, ratio {row['probe'][2]:.2f}",
            flush=True,
        )
        rows.append(row)
    print(
        "\n| model | reference test ppl | scalinglab test ppl | reference tok/s | "
        "scalinglab tok/s | tok/s ratio (turns) |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        name = f"{REFERENCE_NAME[row['arch']]} / {row['arch']}"
        if "ref" in row:
            r, o = row["ref"], row["ours"]
            cells = (
                f"{r['test_ppl']:.1f} | {o['test_ppl']:.1f} | {r['tok_s']:,.0f} | {o['tok_s']:,.0f}"
            )
        else:
            cells = "- | - | - | -"
        print(f"| {name} | {cells} | {row['probe'][2]:.2f} |")


if __name__ == "__main__":
    main()
