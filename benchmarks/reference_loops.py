"""Plain reference training loops for the benchmarks: what a user writes without scalinglab.

A GPT-2 style model as in nanoGPT's model.py (pre-LayerNorm, SDPA attention,
4x GELU MLP, learned positions, tied embeddings, GPT-2 init) and a PyTorch
word-language-model LSTM, each trained by `torch.optim.AdamW` with its default
(foreach) implementation, float32, no autocast, no compile, batches cut from a
numpy token array as nanoGPT's get_batch does. No tricks: the yardstick.
"""

import math

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd)
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.attn_proj = nn.Linear(n_embd, n_embd)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.mlp_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        b, t, c = x.size()
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class PlainGPT(nn.Module):
    recurrent = False

    def __init__(self, vocab: int, n_layer: int, n_head: int, n_embd: int, block_size: int):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.wte.weight = self.lm_head.weight
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets=None):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


class PlainLSTM(nn.Module):
    recurrent = True

    def __init__(self, vocab: int, n_layer: int, n_embd: int, n_hidden: int):
        super().__init__()
        self.encoder = nn.Embedding(vocab, n_embd)
        self.rnn = nn.LSTM(n_embd, n_hidden, n_layer, batch_first=True)
        self.decoder = nn.Linear(n_hidden, vocab)

    def forward(self, idx, targets, state):
        out, state = self.rnn(self.encoder(idx), state)
        logits = self.decoder(out)
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten()), state


def lr_at(step: int, total: int, lr: float, warmup: int) -> float:
    """nanoGPT's schedule: linear warmup, cosine to lr/10 at the last step."""
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    p = min(1.0, (step - warmup) / max(1, total - 1 - warmup))
    return lr / 10 + 0.5 * (1 + math.cos(math.pi * p)) * (lr - lr / 10)


def gpt_loop(tokens: np.ndarray, vocab, n_layer, n_head, n_embd, block, batch, lr=1e-3, seed=0):
    """(model, step(lr) -> loss tensor): one plain float32 training step per call."""
    torch.manual_seed(seed)
    model = PlainGPT(vocab, n_layer, n_head, n_embd, block)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.1)
    rng = np.random.default_rng(seed)

    def step(lr_now=lr):
        ix = rng.integers(0, len(tokens) - block - 1, size=batch)
        x = torch.stack([torch.from_numpy(tokens[i : i + block].astype(np.int64)) for i in ix])
        y = torch.stack(
            [torch.from_numpy(tokens[i + 1 : i + 1 + block].astype(np.int64)) for i in ix]
        )
        for g in opt.param_groups:
            g["lr"] = lr_now
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return model, step


def lstm_loop(tokens: np.ndarray, vocab, n_layer, n_embd, n_hidden, seq, batch, lr=1e-3, seed=0):
    """(model, step(lr) -> loss tensor): truncated BPTT over `batch` contiguous lanes."""
    torch.manual_seed(seed)
    model = PlainLSTM(vocab, n_layer, n_embd, n_hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.1)
    lane = len(tokens) // batch
    data = torch.from_numpy(tokens[: lane * batch].astype(np.int64)).view(batch, lane)
    pos, state = 0, None

    def step(lr_now=lr):
        nonlocal pos, state
        if pos + seq + 1 > lane:
            pos, state = 0, None
        x, y = data[:, pos : pos + seq], data[:, pos + 1 : pos + 1 + seq]
        pos += seq
        for g in opt.param_groups:
            g["lr"] = lr_now
        _, loss, state = model(x, y, state)
        state = tuple(s.detach() for s in state)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return model, step
