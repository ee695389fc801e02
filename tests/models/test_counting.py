import pytest

from scalinglab.config import ModelConfig
from scalinglab.errors import ConfigError
from scalinglab.models.counting import count


def test_gpt_hand_count():
    # V=10, C=8, T=4, one layer, biases, tied, learned positions:
    # wte 80, wpe 32, ln_1 16, c_attn 8*24+24=216, attn c_proj 64+8=72, ln_2 16,
    # c_fc 8*32+32=288, mlp c_proj 32*8+8=264, ln_f 16  -> 1000
    cfg = ModelConfig(arch="gpt", n_layer=1, n_embd=8, n_head=2, block_size=4)
    c = count(cfg, 10)
    assert c.params == 1000
    assert c.params_nonembed == 1000 - 80 - 32
    # forward MACs: 12*C^2 = 768, attention 2*T*C = 64, lm_head V*C = 80 -> 912
    assert c.flops_per_token == 3 * 2 * 912
    assert c.flops_forward_per_token == 2 * 912


def test_gpt_untied_rope_nobias():
    cfg = ModelConfig(
        arch="gpt", n_layer=1, n_embd=8, n_head=2, block_size=4,
        tie_embeddings=False, pos="rope", bias=False,
    )  # fmt: skip
    # wte 80, no wpe, ln 8+8, c_attn 192, c_proj 64, c_fc 256, c_proj 256, ln_f 8, lm_head 80
    c = count(cfg, 10)
    assert c.params == 80 + 8 + 8 + 192 + 64 + 256 + 256 + 8 + 80
    assert c.params_nonembed == c.params - 160


def test_lstm_hand_count():
    # V=10, E=H=4, one layer, tied: encoder 40, w_ih 16*4, w_hh 16*4, biases 2*16,
    # decoder bias 10 -> 210; MACs 64 + 64 + decoder 40 = 168
    cfg = ModelConfig(arch="lstm", n_layer=1, n_embd=4, block_size=4)
    c = count(cfg, 10)
    assert c.params == 210
    assert c.params_nonembed == 160
    assert c.flops_per_token == 3 * 2 * 168


def test_two_layer_gru_untied_hidden():
    cfg = ModelConfig(arch="gru", n_layer=2, n_embd=4, n_hidden=6, tie_embeddings=False)
    c = count(cfg, 10)
    layer0 = 18 * 4 + 18 * 6 + 36
    layer1 = 18 * 6 + 18 * 6 + 36
    assert c.params == 40 + layer0 + layer1 + 60 + 10
    assert c.params_nonembed == layer0 + layer1
    assert c.flops_per_token == 6 * (18 * 4 + 18 * 6 + 18 * 6 + 18 * 6 + 60)


def test_needs_vocab():
    with pytest.raises(ConfigError, match="vocabulary size"):
        count(ModelConfig(), 0)


def _torch_counted_flops(cfg: ModelConfig, batch: int, bf16: bool = False) -> int:
    """FLOPs torch's own counter sees in one forward and backward of the real model."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from scalinglab.models.registry import build_model

    torch.manual_seed(0)
    model = build_model(cfg)
    x = torch.randint(0, cfg.vocab_size, (batch, cfg.block_size))
    with FlopCounterMode(display=False) as counter:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(x, x)[1]
        loss.backward()
    return counter.get_total_flops()


@pytest.mark.parametrize(
    "extra",
    [{}, {"tie_embeddings": False, "pos": "rope", "bias": False}, {"n_layer": 3, "n_head": 2}],
)
def test_gpt_count_is_what_torch_executes(extra):
    # torch's FLOP counter sees every linear layer's matmuls (forward, and input and weight
    # gradients) but not the CPU flash-attention kernel: the count minus its attention
    # term (QK^T and AV at the full context, 12 * n_layer * n_embd * block_size a token).
    cfg = ModelConfig(**{"arch": "gpt", "n_layer": 2, "n_head": 3, "n_embd": 24,
                         "block_size": 32, "vocab_size": 77, "dropout": 0.0} | extra)  # fmt: skip
    tokens = 4 * cfg.block_size
    attention = 12 * cfg.n_layer * cfg.n_embd * cfg.block_size * tokens
    assert _torch_counted_flops(cfg, 4) == count(cfg).flops_per_token * tokens - attention


def test_gpt_count_with_explicit_attention_is_exact():
    # bfloat16 on a CPU computes small attentions as explicit batched matmuls over the full
    # T x T scores (models/gpt.py causal_attention), which torch's counter does see: then
    # the whole count, attention included, is exactly what runs.
    cfg = ModelConfig(arch="gpt", n_layer=2, n_head=2, n_embd=16, block_size=16,
                      vocab_size=50, dropout=0.0)  # fmt: skip
    assert _torch_counted_flops(cfg, 3, bf16=True) == count(cfg).flops_per_token * 3 * 16
