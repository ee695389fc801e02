"""A decoder-only Transformer in the GPT-2 mould (names and init as GPT-2 / nanoGPT).

Pre-LayerNorm blocks, causal self-attention through
`F.scaled_dot_product_attention` (flash / memory-efficient kernels where the
device has them), a 4× GELU MLP, learned or rotary positions, and input and
output embeddings tied by default.

Three parametrisations (`--param`, docs/training.md "Parametrisations"), with
m = n_embd / base_width and, for completep, r = n_layer / base_depth:

- `sp`: GPT-2's (every weight drawn with std 0.02, residual projections with
  0.02 / sqrt(2 n_layer), attention 1/sqrt(head_dim), one learning rate).
- `mup` (Yang et al., Tensor Programs V, Adam): hidden matrices drawn with std
  0.02 / sqrt(m) and trained at lr / m (their decoupled weight decay times m, so
  lr x decay stays); embeddings, biases and LayerNorm gains as SP at lr;
  attention sqrt(base_head_dim) / head_dim; logits multiplied by readout_mult / m
  (readout_mult, 1 by default, is the base shape's output multiplier, tuned there).
  At the base shape (m = 1) it computes what SP computes.
- `completep` (Dey et al. 2025, alpha = 1): mup, with every residual branch
  multiplied by 1 / r and residual projections drawn with 0.02 / sqrt(m 2 base_depth)
  (no depth factor: the branch multiplier does its work).
"""

import math

import torch
import torch.nn as nn
from torch.nn import functional as F

from scalinglab.config import ModelConfig


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (torch's has no bias=False before 2.1)."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


def rope_tables(block_size: int, head_size: int, base: float = 10000.0):
    """cos/sin tables of rotary position embeddings, each (block_size, head_size // 2)."""
    inv = 1.0 / base ** (torch.arange(0, head_size, 2, dtype=torch.float32) / head_size)
    angles = torch.outer(torch.arange(block_size, dtype=torch.float32), inv)
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    """Rotate pairs (x[..., :h/2], x[..., h/2:]) of x (B, nh, T, hs) by position angles."""
    t = x.size(-2)
    cos, sin = cos[:t].to(x.dtype), sin[:t].to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


CPU_EXPLICIT_MAX_SCORES = 1 << 25
"""Largest B·heads·T² attention matrix computed explicitly on a CPU (64 MB in bf16)."""
_MASKS: dict = {}


def causal_attention(q, k, v, dropout_p: float = 0.0, scale: float | None = None):
    """softmax(q kᵀ·scale + causal mask) v for (B, nh, T, hs) tensors (scale: 1/√hs).

    SDPA's flash kernel everywhere, except bfloat16 on a CPU: there its backward is
    slow (measured on an AVX-512/AMX CPU, B16 nh4 T256 hs32: flash 15.0 ms forward +
    backward, explicit 6.9 ms; float32 flash 12.0 ms), so while the score matrix is
    small (CPU_EXPLICIT_MAX_SCORES) it is computed explicitly with batched matmuls.
    """
    b, nh, t, _ = q.shape
    if (
        q.device.type != "cpu"
        or q.dtype != torch.bfloat16
        or dropout_p > 0
        or b * nh * t * t > CPU_EXPLICIT_MAX_SCORES
    ):
        return F.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout_p, is_causal=True, scale=scale
        )
    return explicit_causal_attention(q, k, v, scale)


def explicit_causal_attention(q, k, v, scale: float | None = None):
    """causal_attention as batched matmuls with an additive mask, softmax, batched matmul."""
    b, nh, t, hs = q.shape
    mask = _MASKS.get((t, q.dtype))
    if mask is None:  # additive: 0 on and below the diagonal, -inf above
        mask = _MASKS[(t, q.dtype)] = torch.full((t, t), float("-inf"), dtype=q.dtype).triu(1)
    scores = torch.baddbmm(
        mask.expand(b * nh, t, t), q.reshape(b * nh, t, hs), k.reshape(b * nh, t, hs).mT,
        alpha=hs**-0.5 if scale is None else scale,
    )  # fmt: skip
    return torch.bmm(torch.softmax(scores, dim=-1), v.reshape(b * nh, t, hs)).view(b, nh, t, hs)


def width_mult(cfg: ModelConfig) -> float:
    """m = n_embd / base_width under mup and completep; 1 under sp."""
    return cfg.n_embd / cfg.base_width if cfg.param != "sp" else 1.0


def branch_mult(cfg: ModelConfig) -> float:
    """The residual branches' multiplier: base_depth / n_layer under completep, else 1."""
    return cfg.base_depth / cfg.n_layer if cfg.param == "completep" else 1.0


def attn_scale(cfg: ModelConfig) -> float:
    """The attention logits' scale: 1/sqrt(head_dim) under sp; sqrt(base_head_dim) /
    head_dim under mup/completep, base_head_dim by default base_width / n_head (the heads
    widen with the model; with a fixed head size give base_head_dim = that size)."""
    hd = cfg.n_embd // cfg.n_head
    if cfg.param == "sp":
        return hd**-0.5
    return math.sqrt(cfg.base_head_dim or cfg.base_width / cfg.n_head) / hd


def readout_mult(cfg: ModelConfig) -> float:
    """The logits' multiplier: the base shape's (cfg.readout_mult, 1 by default) times 1 / m
    (m is 1 under sp)."""
    return cfg.readout_mult / width_mult(cfg)


def is_hidden(name: str) -> bool:
    """A hidden matrix (both fan-in and fan-out grow with width): the blocks' Linear weights."""
    return name.startswith("transformer.h.") and name.endswith(("c_attn.weight", "c_fc.weight",
                                                                 "c_proj.weight"))  # fmt: skip


def init_std(cfg: ModelConfig, name: str) -> float:
    """The std a weight matrix is drawn with (biases start at 0, LayerNorm gains at 1)."""
    if not is_hidden(name):
        return 0.02
    std = 0.02 / math.sqrt(width_mult(cfg))
    if name.endswith("c_proj.weight"):  # GPT-2: each block adds two to the residual stream
        depth = cfg.base_depth if cfg.param == "completep" else cfg.n_layer
        std /= math.sqrt(2 * depth)
    return std


def lr_mult(cfg: ModelConfig, name: str) -> float:
    """The factor on the learning rate of the parameter `name`: 1 / m for hidden matrices
    under mup/completep, else 1."""
    return 1.0 / width_mult(cfg) if is_hidden(name) else 1.0


def decay_mult(cfg: ModelConfig, name: str) -> float:
    """The factor on the (decoupled) weight decay: m for hidden matrices, so lr x decay
    is the same at every width; else 1."""
    return width_mult(cfg) if is_hidden(name) else 1.0


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.scale = None if cfg.param == "sp" else attn_scale(cfg)  # None: SDPA's own
        self.n_head = cfg.n_head
        self.n_embd = cfg.n_embd
        self.dropout = cfg.dropout
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # q, k, v at once
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.rope = cfg.pos == "rope"
        if self.rope:
            cos, sin = rope_tables(cfg.block_size, cfg.n_embd // cfg.n_head)
            # Not persistent: derived from the config, so they stay out of checkpoints.
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, x):
        b, t, c = x.size()  # (B, T, C)
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        hs = c // self.n_head
        q = q.view(b, t, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(b, t, self.n_head, hs).transpose(1, 2)
        v = v.view(b, t, self.n_head, hs).transpose(1, 2)
        if self.rope:
            q = apply_rope(q, self.rope_cos, self.rope_sin)
            k = apply_rope(k, self.rope_cos, self.rope_sin)
        y = causal_attention(q, k, v, self.dropout if self.training else 0.0, self.scale)
        y = y.transpose(1, 2).contiguous().view(b, t, c)  # re-assemble heads
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln_1 = LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)
        self.branch = branch_mult(cfg)

    def forward(self, x):
        if self.branch == 1.0:
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))
        x = x + self.branch * self.attn(self.ln_1(x))
        return x + self.branch * self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """`forward(idx, targets=None) -> (logits, loss)`; idx is (B, T) token ids, T <= block_size."""

    recurrent = False

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.block_size = cfg.block_size
        modules = dict(
            wte=nn.Embedding(vocab_size, cfg.n_embd),
            drop=nn.Dropout(cfg.dropout),
            h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
            ln_f=LayerNorm(cfg.n_embd, bias=cfg.bias),
        )
        if cfg.pos == "learned":
            modules["wpe"] = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.transformer = nn.ModuleDict(modules)
        self.lm_head = nn.Linear(cfg.n_embd, vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.transformer.wte.weight = self.lm_head.weight
        self.readout = readout_mult(cfg)
        # nanoGPT's order of draws (kept: a seed gives the weights it always gave, and mup
        # at its base shape the weights of sp): every Linear and Embedding in module order,
        # hidden ones at 0.02 / sqrt(m), then the residual projections again, scaled by
        # 1/sqrt(2 n_layer) since each block adds two of them to the residual stream.
        hidden_std = 0.02 / math.sqrt(width_mult(cfg))
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                std = hidden_std if is_hidden(name + ".weight") else 0.02
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=init_std(cfg, name))

    def lr_multipliers(self) -> dict[str, tuple[float, float]]:
        """{parameter name: (learning-rate factor, weight-decay factor)}, for the optimizer
        (names as `named_parameters` gives them: a tied weight once)."""
        return {
            n: (lr_mult(self.cfg, n), decay_mult(self.cfg, n)) for n, _ in self.named_parameters()
        }

    def sp_state_dict(self) -> dict:
        """The weights of an SP GPT (the same shape, untied when the readout multiplier is
        not 1) that computes the same logits: the multipliers folded into the weights, for
        exporters whose architectures have no multipliers."""
        sd = {k: v.detach().clone() for k, v in self.state_dict().items()}
        cfg, c = self.cfg, self.cfg.n_embd
        hd = c // cfg.n_head
        q = attn_scale(cfg) * math.sqrt(hd)
        for i in range(cfg.n_layer):
            p = f"transformer.h.{i}."
            for key in (p + "attn.c_attn.weight", p + "attn.c_attn.bias"):
                if key in sd:
                    sd[key][:c] *= q  # the query rows: q kᵀ·scale = (q·s√hd) kᵀ/√hd
            for key in ("attn.c_proj.weight", "attn.c_proj.bias", "mlp.c_proj.weight",
                        "mlp.c_proj.bias"):  # fmt: skip
                if p + key in sd:
                    sd[p + key] *= self.transformer.h[i].branch
        sd["lm_head.weight"] = sd["lm_head.weight"] * self.readout
        return sd

    def forward(self, idx, targets=None):
        t = idx.size(1)
        if t > self.block_size:
            raise ValueError(f"sequence of length {t} exceeds block_size {self.block_size}")
        x = self.transformer.wte(idx)  # (B, T, C)
        if "wpe" in self.transformer:
            x = x + self.transformer.wpe(torch.arange(t, device=idx.device))
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
        if self.readout != 1.0:
            logits = logits * self.readout
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        return logits, loss
