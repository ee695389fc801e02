"""The recurrent family, as in PyTorch's word-language-model example.

Embedding -> dropout -> stacked `nn.RNN` (tanh or ReLU) / `nn.GRU` / `nn.LSTM`
(dropout between layers) -> dropout -> linear decoder, optionally tied to the
embedding (which needs the hidden width equal to the embedding width).

The interface is the GPT one, `forward(idx, targets=None) -> (logits, loss)`,
starting from a zero state. To carry state across windows of a stream, pass
`state=` (from `init_state` or a previous call): the call then returns
`(logits, loss, new_state)`. The caller detaches the state between windows
(`detach_state`) so that gradients stop at the window boundary (truncated BPTT).
"""

import torch
import torch.nn as nn
from torch.nn import functional as F

from scalinglab.config import ModelConfig

CELLS = {
    "rnn_tanh": lambda **kw: nn.RNN(nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: nn.RNN(nonlinearity="relu", **kw),
    "gru": nn.GRU,
    "lstm": nn.LSTM,
}


class RNNModel(nn.Module):
    recurrent = True

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.arch = cfg.arch
        self.n_layer = cfg.n_layer
        self.n_hidden = cfg.hidden
        self.block_size = cfg.block_size
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.Embedding(vocab_size, cfg.n_embd)
        self.rnn = CELLS[cfg.arch](
            input_size=cfg.n_embd,
            hidden_size=cfg.hidden,
            num_layers=cfg.n_layer,
            dropout=cfg.dropout if cfg.n_layer > 1 else 0.0,
            batch_first=True,
        )
        self.decoder = nn.Linear(cfg.hidden, vocab_size)
        # The example's init: small uniform embeddings, zero output bias; the
        # recurrent weights keep torch's uniform(-1/sqrt(H), 1/sqrt(H)).
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        if cfg.tie_embeddings:
            self.decoder.weight = self.encoder.weight

    def init_state(self, batch_size: int, device=None):
        """A zero hidden state for `batch_size` rows: a tensor, or (h, c) for an LSTM."""
        w = self.decoder.weight
        h = torch.zeros(self.n_layer, batch_size, self.n_hidden, device=device or w.device)
        return (h, h.clone()) if self.arch == "lstm" else h

    @staticmethod
    def detach_state(state):
        if isinstance(state, tuple):
            return tuple(s.detach() for s in state)
        return state.detach()

    def forward(self, idx, targets=None, state=None):
        carry = state is not None
        if not carry:
            state = self.init_state(idx.size(0), idx.device)
        emb = self.drop(self.encoder(idx))  # (B, T, E)
        if isinstance(state, tuple):
            state = tuple(s.to(emb.dtype) for s in state)
        else:
            state = state.to(emb.dtype)
        out, state = self.rnn(emb, state)  # (B, T, H)
        logits = self.decoder(self.drop(out))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        return (logits, loss, state) if carry else (logits, loss)
