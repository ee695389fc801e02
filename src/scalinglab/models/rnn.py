"""The recurrent family, as in PyTorch's word-language-model example.

Embedding -> dropout -> stacked `nn.RNN` (tanh or ReLU) / `nn.GRU` / `nn.LSTM`
(dropout between layers) -> dropout -> linear decoder, optionally tied to the
embedding (which needs the hidden width equal to the embedding width).

The interface is the GPT one, `forward(idx, targets=None) -> (logits, loss)`,
starting from a zero state. To carry state across windows of a stream, pass
`state=` (from `init_state` or a previous call): the call then returns
`(logits, loss, new_state)`. The caller detaches the state between windows
(`detach_state`) so that gradients stop at the window boundary (truncated BPTT).

Training (targets given, gradients on, no autocast) runs the decoder and the loss as one
autograd function, `DecoderLoss`: on a word vocabulary the (tokens x vocab) logits are
most of a step's memory traffic, and autograd's log_softmax + nll_loss walk them five
times and allocate three such tensors; the fused backward turns the saved
log-probabilities into the gradient in place (one pass). Same loss, same gradients.
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


class DecoderLoss(torch.autograd.Function):
    """(mean cross-entropy, logits) of `h @ weight.T + bias` against `targets`, rows (N, H).

    The logits come back as an output; they take part in the backward if the caller
    makes a loss of them (their gradient is added). The backward may run once only
    (it reuses the saved log-probabilities' memory)."""

    @staticmethod
    def forward(ctx, h, weight, bias, targets):
        logits = torch.addmm(bias, h, weight.t())
        logp = torch.log_softmax(logits, dim=-1)
        loss = -logp.gather(1, targets[:, None]).mean()
        ctx.save_for_backward(h, weight, logp, targets)
        ctx.set_materialize_grads(False)
        ctx.used = False
        return loss, logits

    @staticmethod
    def backward(ctx, g_loss, g_logits):
        if ctx.used:
            raise RuntimeError("DecoderLoss: backward twice through one forward")
        ctx.used = True
        h, weight, logp, targets = ctx.saved_tensors
        g, scale = g_logits, None  # the logits' gradient is g * scale
        if g_loss is not None:
            g = logp.exp_()  # softmax, in place: logp is ours alone
            n, v = g.shape
            g.view(-1)[torch.arange(n, device=g.device) * v + targets] -= 1.0
            scale = g_loss / n
            if g_logits is not None:
                g, scale = g.mul_(scale).add_(g_logits), None
        gh = gw = gb = None
        if ctx.needs_input_grad[0]:
            gh = g @ weight if scale is None else (g @ weight).mul_(scale)
        if ctx.needs_input_grad[1]:
            gw = g.t() @ (h if scale is None else h * scale)
        if ctx.needs_input_grad[2]:
            gb = g.sum(0) if scale is None else g.sum(0).mul_(scale)
        return gh, gw, gb, None


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
        # Rows (B*T, H), contiguous: the decoder is one addmm (a (B, T, H) view of the
        # rnn's time-major output would take a matmul and a separate bias add).
        rows = self.drop(out).reshape(-1, out.size(-1))
        b, t = idx.shape
        loss = None
        d = self.decoder
        fused = rows.dtype == d.weight.dtype and not torch.is_autocast_enabled(rows.device.type)
        if targets is not None and torch.is_grad_enabled() and fused:
            loss, logits = DecoderLoss.apply(rows, d.weight, d.bias, targets.reshape(-1))
        else:
            logits = self.decoder(rows)
            if targets is not None:
                loss = F.cross_entropy(logits.float(), targets.reshape(-1))
        logits = logits.view(b, t, -1)  # (B, T, V)
        return (logits, loss, state) if carry else (logits, loss)
