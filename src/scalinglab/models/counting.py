"""The one place that counts parameters and FLOPs of every architecture.

Everything that reports N or C (the trainer, sweeps, fits, plans, reports)
calls `count(cfg, vocab_size)`; nothing else counts.

Conventions (also in docs/training.md):

- `params`: every trainable parameter (Chinchilla's N). A tied input/output
  embedding is counted once. Biases and LayerNorm weights are included.
- `params_nonembed`: `params` minus every vocabulary- or position-sized
  table (Kaplan's N): the token embedding, the learned position embedding,
  an untied output projection and, for RNNs, the output bias (size V).
- `flops_per_token`: training FLOPs per token = 3 × forward (backward costs
  twice the forward). The forward counts 2 FLOPs per multiply-accumulate of
  every matmul: for GPT the QKV, attention output, MLP and output (lm_head)
  projections, plus the attention QK^T and AV products at the **full**
  context `block_size` per token (the PaLM / nanoGPT `estimate_mfu`
  convention, 12·n_layer·n_embd·block_size training FLOPs per token; a causal
  kernel does about half of this); for RNNs the input and recurrent matmuls of
  every gate in every layer and the output projection. Element-wise work
  (biases, norms, activations, softmax) and embedding lookups are not counted.
  tests/models/test_counting.py checks the GPT count against torch's own
  `FlopCounterMode` over a real forward and backward: equal to the FLOP.
"""

from dataclasses import dataclass

from scalinglab.config import ModelConfig
from scalinglab.errors import ConfigError

# Gates (stacked weight blocks) per recurrent cell, as in torch.nn.RNN/GRU/LSTM.
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}


@dataclass(frozen=True)
class Counts:
    params: int
    """All trainable parameters (tied embeddings once): Chinchilla's N."""
    params_nonembed: int
    """Parameters outside vocabulary and position tables: Kaplan's N."""
    flops_per_token: int
    """Training (forward + backward) FLOPs per token: 3 × the forward count."""

    @property
    def flops_forward_per_token(self) -> int:
        return self.flops_per_token // 3


def count(cfg: ModelConfig, vocab_size: int = 0) -> Counts:
    """Parameters and training FLOPs per token of the model `cfg` describes."""
    v = vocab_size or cfg.vocab_size
    if v <= 0:
        raise ConfigError("counting a model needs a vocabulary size (vocab_size is 0)")
    if cfg.arch == "gpt":
        return _gpt(cfg, v)
    if cfg.arch in GATES:
        return _rnn(cfg, v)
    raise ConfigError(f"--model {cfg.arch!r}: no parameter count for this architecture")


def _gpt(cfg: ModelConfig, v: int) -> Counts:
    c, t, n_layer = cfg.n_embd, cfg.block_size, cfg.n_layer
    b = 1 if cfg.bias else 0
    ln = c * (1 + b)  # LayerNorm weight (+ bias)
    attn = (c * 3 * c + b * 3 * c) + (c * c + b * c)  # c_attn, c_proj
    mlp = (c * 4 * c + b * 4 * c) + (4 * c * c + b * c)  # c_fc, c_proj
    block = 2 * ln + attn + mlp
    wte = v * c
    wpe = t * c if cfg.pos == "learned" else 0
    lm_head = 0 if cfg.tie_embeddings else v * c
    params = wte + wpe + n_layer * block + ln + lm_head
    nonembed = params - wte - wpe - lm_head

    macs = n_layer * (12 * c * c + 2 * t * c) + v * c  # matmuls; QK^T and AV at full context
    return Counts(params=params, params_nonembed=nonembed, flops_per_token=3 * 2 * macs)


def _rnn(cfg: ModelConfig, v: int) -> Counts:
    g, e, h = GATES[cfg.arch], cfg.n_embd, cfg.hidden
    layers = 0
    macs = 0
    for layer in range(cfg.n_layer):
        inp = e if layer == 0 else h
        layers += g * h * inp + g * h * h + 2 * g * h  # w_ih, w_hh, b_ih, b_hh
        macs += g * h * inp + g * h * h
    encoder = v * e
    decoder_w = 0 if cfg.tie_embeddings else v * h
    decoder_b = v
    params = encoder + layers + decoder_w + decoder_b
    macs += v * h
    return Counts(params=params, params_nonembed=layers, flops_per_token=3 * 2 * macs)
