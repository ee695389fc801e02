"""The RNN recipe's dropout placement, initialisation and tying, each against alternatives
(issue 25).

Issue 25's setup (see rnn_recipe.py: WikiText-2's valid.txt as the training text, the
two halves of test.txt as validation and test, the 13,777-word vocabulary), an LSTM
2x200, dropout 0.2, block 35, batch 20, the default recipe (clipped SGD lr 20, cosine),
`--epochs` epochs; one variant changed at a time from the default:

- `default`: dropout on the embeddings, between the stacked layers and before the
  decoder; embedding and decoder U(-0.1, 0.1), decoder bias 0, the cells torch's
  U(-1/sqrt(H), 1/sqrt(H)); input and output embeddings tied;
- `drop-between`: dropout between the layers only (none on the embeddings or before
  the decoder);
- `drop-io`: dropout on the embeddings and before the decoder only (none between
  the layers);
- `no-dropout`: `--dropout 0`;
- `init-torch`: torch's own init for the embedding (N(0, 1)) and the decoder
  (U(-1/sqrt(H), 1/sqrt(H)));
- `init-normal`: embedding (so the tied decoder) N(0, 0.02), GPT-2's init;
- `untied`: `--no-tie-embeddings` (the example's own default).

The variants other than dropout rate and tying are made here, after the model is
built (the trainer's own settings do not offer them). Prints each variant's
validation and test perplexity (10 lanes, as rnn_recipe.py scores the test).

    python benchmarks/rnn_choices.py [--variants default,drop-between,...] [--epochs 3]
        [--threads 1] [--corpus ../shared/corpora/wikitext-2]
"""

import argparse
import dataclasses
import math
import tempfile
import time
from pathlib import Path

import torch
from rnn_recipe import ROOT, halves, ours_config
from torch import nn

from scalinglab.data.shards import open_shards
from scalinglab.data.writer import prepare
from scalinglab.models.rnn import RNNModel
from scalinglab.train import train
from scalinglab.train.evaluate import evaluate, load_trained

VARIANTS = ("default", "drop-between", "drop-io", "no-dropout", "init-torch", "init-normal",
            "untied")  # fmt: skip


def adjust(model: RNNModel, variant: str) -> None:
    """Change a freshly built model into `variant` (in place)."""
    if variant == "drop-between":
        model.drop = nn.Dropout(0.0)
    elif variant == "drop-io":
        model.rnn.dropout = 0.0
    elif variant == "init-torch":
        nn.init.normal_(model.encoder.weight)
        if model.decoder.weight is not model.encoder.weight:
            model.decoder.reset_parameters()
    elif variant == "init-normal":
        nn.init.normal_(model.encoder.weight, std=0.02)
        if model.decoder.weight is not model.encoder.weight:
            nn.init.normal_(model.decoder.weight, std=0.02)


def run_variant(variant: str, shards: Path, out: Path, epochs: int, threads: int) -> dict:
    built = RNNModel.__init__

    def init(self, cfg, vocab_size):
        built(self, cfg, vocab_size)
        adjust(self, variant)

    cfg = ours_config("lstm", shards, epochs * len(open_shards(shards).train), threads)
    model_over = {"no-dropout": {"dropout": 0.0}, "untied": {"tie_embeddings": False}}
    cfg = dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, **model_over.get(variant, {}))
    )
    RNNModel.__init__ = init
    try:
        res = train(cfg, out / variant)
        model, _, _ = load_trained(out / variant)  # evaluation: dropout is off
    finally:
        RNNModel.__init__ = built
    loss, _ = evaluate(model, open_shards(shards).split("test"), 35, 10)
    return {"val_ppl": res["val_ppl"], "test_ppl": math.exp(loss)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared/corpora/wikitext-2"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    corpus = Path(args.corpus)
    work = Path(tempfile.mkdtemp(prefix="rnn_choices-"))
    a, b = halves(corpus / "test.txt", work)
    shards = work / "shards"
    prepare([str(corpus / "valid.txt")], shards, tokenizer="word", val_file=str(a),
            test_file=str(b), block_size=35)  # fmt: skip
    rows = []
    for variant in args.variants.split(","):
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
        t0 = time.perf_counter()
        r = run_variant(variant, shards, work / "runs", args.epochs, args.threads)
        rows.append((variant, r))
        print(f"{variant}: val ppl {r['val_ppl']:.1f} test ppl {r['test_ppl']:.1f} "
              f"({(time.perf_counter() - t0) / 60:.1f} min)", flush=True)  # fmt: skip
    print("\n| variant | val ppl | test ppl |\n|---|---|---|")
    for variant, r in rows:
        print(f"| {variant} | {r['val_ppl']:.1f} | {r['test_ppl']:.1f} |")


if __name__ == "__main__":
    main()
