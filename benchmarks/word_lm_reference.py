"""A word-level language model trained the way PyTorch's word_language_model example does.

Our own re-implementation of that example's published recipe, the yardstick of
benchmarks/rnn_recipe.py (no code of the example is copied):

- vocabulary: every whitespace-separated word of the training file, each line
  ending in `<eos>`, ids in order of first appearance (the example collects the
  words of all three files; here, as in issue 25's setup and in `scalinglab
  prepare`, held-out words missing from the training text read `<unk>`, which
  WikiText already uses for rare words: both tools see the same word sequences);
- batches: the token stream cut into `batch` contiguous columns (the tail that
  does not fill a row dropped), windows of `bptt` tokens walked in order, the
  hidden state carried from one window to the next and detached (truncated BPTT);
- model: embedding -> dropout -> nn.LSTM / nn.GRU / nn.RNN(tanh) -> dropout ->
  linear decoder; embeddings and decoder uniform(-0.1, 0.1), decoder bias 0;
  or a Transformer encoder (sinusoidal positions, embeddings x sqrt(width),
  causal mask, feed-forward width = the hidden width, 2 heads);
- training: plain SGD (p -= lr * grad) after clipping the gradient norm to 0.25,
  lr 20 (5 for the Transformer); after each epoch the validation loss, and the
  lr divided by 4 when it did not improve on the best; the test loss of the best
  epoch's weights, evaluated with 10 columns.

`train_reference(...)` returns test perplexity and training tokens per second.
"""

import math
import time

import torch
import torch.nn as nn
from torch.nn import functional as F


class Vocab:
    def __init__(self):
        self.ids: dict[str, int] = {}

    def encode_file(self, path, grow: bool) -> torch.Tensor:
        """Ids of a file's words; `grow`: new words get new ids, else they read `<unk>`."""
        out, ids = [], self.ids
        with open(path, encoding="utf-8") as f:
            for line in f:
                for w in [*line.split(), "<eos>"]:
                    out.append(ids.setdefault(w, len(ids)) if grow else ids.get(w, ids["<unk>"]))
        return torch.tensor(out, dtype=torch.long)


def columns(data: torch.Tensor, n: int) -> torch.Tensor:
    """(T, n): n contiguous streams, the remainder dropped."""
    rows = data.numel() // n
    return data[: rows * n].view(n, rows).t().contiguous()


class RecurrentLM(nn.Module):
    def __init__(self, cell: str, vocab: int, width: int, layers: int, dropout: float):
        super().__init__()
        self.cell = cell
        self.drop = nn.Dropout(dropout)
        self.embed = nn.Embedding(vocab, width)
        kinds = {"LSTM": nn.LSTM, "GRU": nn.GRU}
        make = kinds.get(cell) or (lambda *a, **k: nn.RNN(*a, nonlinearity="tanh", **k))
        self.rnn = make(width, width, layers, dropout=dropout)
        self.out = nn.Linear(width, vocab)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        nn.init.uniform_(self.out.weight, -0.1, 0.1)
        nn.init.zeros_(self.out.bias)
        self.layers, self.width = layers, width

    def zero_state(self, n: int):
        h = torch.zeros(self.layers, n, self.width)
        return (h, h.clone()) if self.cell == "LSTM" else h

    def forward(self, x, state):
        y, state = self.rnn(self.drop(self.embed(x)), state)
        return F.log_softmax(self.out(self.drop(y)), dim=-1), state


class TransformerLM(nn.Module):
    def __init__(self, vocab: int, width: int, layers: int, dropout: float, heads: int = 2):
        super().__init__()
        self.width = width
        self.drop = nn.Dropout(dropout)
        self.embed = nn.Embedding(vocab, width)
        pos = torch.arange(5000).unsqueeze(1)
        freq = torch.exp(torch.arange(0, width, 2) * (-math.log(10000.0) / width))
        pe = torch.zeros(5000, 1, width)
        pe[:, 0, 0::2] = torch.sin(pos * freq)
        pe[:, 0, 1::2] = torch.cos(pos * freq)
        self.register_buffer("pe", pe)
        layer = nn.TransformerEncoderLayer(width, heads, width, dropout)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(width, vocab)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        nn.init.uniform_(self.out.weight, -0.1, 0.1)
        nn.init.zeros_(self.out.bias)

    def zero_state(self, n: int):
        return None

    def forward(self, x, state):
        t = x.size(0)
        mask = torch.triu(torch.full((t, t), float("-inf")), diagonal=1)
        h = self.drop(self.embed(x) * math.sqrt(self.width) + self.pe[:t])
        return F.log_softmax(self.out(self.body(h, mask)), dim=-1), None


def detach(state):
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def mean_loss(model, data: torch.Tensor, bptt: int) -> float:
    model.eval()
    total, state = 0.0, model.zero_state(data.size(1))
    with torch.no_grad():
        for i in range(0, data.size(0) - 1, bptt):
            n = min(bptt, data.size(0) - 1 - i)
            logp, state = model(data[i : i + n], state)
            total += (
                n
                * F.nll_loss(logp.view(-1, logp.size(-1)), data[i + 1 : i + 1 + n].view(-1)).item()
            )
    return total / (data.size(0) - 1)


def train_reference(
    train_file, val_file, test_file, model: str = "LSTM", width: int = 200, layers: int = 2,
    dropout: float = 0.2, bptt: int = 35, batch: int = 20, epochs: int = 3, lr: float | None = None,
    clip: float = 0.25, seed: int = 1111, log=print, max_steps: int = 0,
) -> dict:  # fmt: skip
    """Train and test one model; `max_steps` > 0 stops the first epoch there (a speed probe,
    which skips the evaluations)."""
    torch.manual_seed(seed)
    vocab = Vocab()
    train = vocab.encode_file(train_file, grow=True)
    vocab.ids.setdefault("<unk>", len(vocab.ids))
    val, test = (vocab.encode_file(p, grow=False) for p in (val_file, test_file))
    lr = lr if lr is not None else (5.0 if model == "Transformer" else 20.0)
    n_vocab = len(vocab.ids)
    if model == "Transformer":
        net = TransformerLM(n_vocab, width, layers, dropout)
    else:
        net = RecurrentLM(model, n_vocab, width, layers, dropout)
    train_c, val_c, test_c = columns(train, batch), columns(val, 10), columns(test, 10)
    best, best_state, tokens, seconds = math.inf, None, 0, 0.0
    for epoch in range(epochs):
        net.train()
        state = net.zero_state(batch)
        t0 = time.perf_counter()
        for step, i in enumerate(range(0, train_c.size(0) - 1, bptt)):
            if max_steps and step == max_steps:
                break
            n = min(bptt, train_c.size(0) - 1 - i)
            x, y = train_c[i : i + n], train_c[i + 1 : i + 1 + n]
            state = detach(state)
            net.zero_grad()
            logp, state = net(x, state)
            F.nll_loss(logp.view(-1, n_vocab), y.reshape(-1)).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            with torch.no_grad():
                for p in net.parameters():
                    p.add_(p.grad, alpha=-lr)
            tokens += x.numel()
        seconds += time.perf_counter() - t0
        if max_steps:
            return {"tok_s": tokens / seconds, "vocab": n_vocab, "train_tokens": train.numel()}
        v = mean_loss(net, val_c, bptt)
        log(f"  reference {model} epoch {epoch + 1}: lr {lr:g} val ppl {math.exp(v):.1f}")
        if v < best:
            best, best_state = v, {k: t.clone() for k, t in net.state_dict().items()}
        else:
            lr /= 4.0
    net.load_state_dict(best_state)
    test_loss = mean_loss(net, test_c, bptt)
    return {
        "test_ppl": math.exp(test_loss), "val_ppl": math.exp(best), "tok_s": tokens / seconds,
        "vocab": n_vocab, "train_tokens": train.numel(), "seconds": seconds,
    }  # fmt: skip


def main():
    """`python word_lm_reference.py TRAIN VAL TEST [--model LSTM] [--max-steps N]`: one run in a
    process of its own, with the system's malloc settings, as the example itself runs."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__.split("\n")[0])
    ap.add_argument("files", nargs=3)
    ap.add_argument("--model", default="LSTM")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    got = train_reference(*args.files, model=args.model, epochs=args.epochs,
                          max_steps=args.max_steps)  # fmt: skip
    print(got)


if __name__ == "__main__":
    main()
