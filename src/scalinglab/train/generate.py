"""Sampling text from a trained model, one token at a time (GPT and RNNs alike)."""

import math
from collections.abc import Iterator

import torch
from torch.nn import functional as F

from scalinglab.errors import ConfigError


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Mask (to -inf) all but the top_k logits and the smallest set with probability >= top_p."""
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token when the tokens ranked above it already reach top_p.
        drop = (cum - sorted_logits.softmax(-1)) >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    prompt: list[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    vocab_size: int | None = None,
) -> Iterator[int]:
    """Yield `max_new_tokens` sampled token ids continuing `prompt` (temperature 0: greedy).

    A Transformer re-reads its last `block_size` tokens each step; a recurrent
    model reads the prompt once and then carries its state, one token per step.
    `vocab_size`: the tokenizer's; ids from it up to the model's padded vocabulary
    (`--vocab-size` above the tokenizer's) stand for no token and are never drawn.
    """
    if not prompt:
        raise ConfigError("--prompt is empty: give at least one token of text")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ConfigError(f"--temperature must be a finite number >= 0, got {temperature}")
    if not 0.0 < top_p <= 1.0:
        raise ConfigError(f"--top-p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise ConfigError(f"--top-k must be >= 0, got {top_k}")
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device)
    gen.manual_seed(seed if seed is not None else torch.seed())
    recurrent = getattr(model, "recurrent", False)
    idx = torch.tensor([prompt], dtype=torch.long, device=device)
    state = model.init_state(1, device) if recurrent else None
    feed = idx
    for _ in range(max_new_tokens):
        if recurrent:
            logits, _, state = model(feed, state=state)
        else:
            logits, _ = model(idx[:, -model.block_size :])
        logits = logits[:, -1, :].float()
        if vocab_size is not None:
            logits = logits[:, :vocab_size]
        scaled = logits.double() / temperature if temperature > 0 else None
        if scaled is None or not torch.isfinite(scaled).all():
            # greedy, or a temperature so small that the scaled logits overflow: the same
            nxt = logits.argmax(-1, keepdim=True)
        else:
            probs = F.softmax(filter_logits(scaled, top_k, top_p), dim=-1)
            nxt = torch.multinomial(probs, 1, generator=gen)
        idx = torch.cat([idx, nxt], dim=1)
        feed = nxt
        yield int(nxt)
