import pytest
import torch

from scalinglab.config import ModelConfig
from scalinglab.errors import ConfigError
from scalinglab.models.counting import count
from scalinglab.models.registry import PRESETS, build_model, from_preset

SHAPES = [
    dict(arch="gpt", n_layer=2, n_embd=16, n_head=2, block_size=8),
    dict(arch="gpt", n_layer=2, n_embd=16, n_head=2, block_size=8, tie_embeddings=False),
    dict(arch="gpt", n_layer=1, n_embd=16, n_head=4, block_size=8, pos="rope", bias=False),
    dict(arch="lstm", n_layer=2, n_embd=12, block_size=8),
    dict(arch="lstm", n_layer=1, n_embd=12, n_hidden=20, tie_embeddings=False),
    dict(arch="gru", n_layer=2, n_embd=12, block_size=8),
    dict(arch="gru", n_layer=3, n_embd=8, n_hidden=10, tie_embeddings=False),
    dict(arch="rnn_tanh", n_layer=2, n_embd=12),
    dict(arch="rnn_relu", n_layer=1, n_embd=12, tie_embeddings=False),
]


def _numel(model, skip=()):
    # parameters() yields a tied tensor once, as Chinchilla's count wants
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(skip))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "-".join(map(str, s.values())))
def test_counts_match_the_built_model(shape):
    cfg = ModelConfig(**shape)
    model = build_model(cfg, 37)
    c = count(cfg, 37)
    assert c.params == _numel(model)
    vocab_tables = ("transformer.wte", "transformer.wpe", "lm_head", "encoder", "decoder")
    assert c.params_nonembed == _numel(model, vocab_tables)


@pytest.mark.parametrize("shape", SHAPES[::2], ids=lambda s: s["arch"])
def test_forward_shapes_and_loss(shape):
    torch.manual_seed(0)
    cfg = ModelConfig(**shape)
    model = build_model(cfg, 37)
    x = torch.randint(0, 37, (3, 8))
    logits, loss = model(x, torch.randint(0, 37, (3, 8)))
    assert logits.shape == (3, 8, 37)
    # a fresh model predicts close to uniform: loss near ln(37) = 3.61
    assert abs(loss.item() - torch.log(torch.tensor(37.0)).item()) < 0.2


def test_gpt2_init_scales_residual_projections():
    torch.manual_seed(0)
    cfg = ModelConfig(arch="gpt", n_layer=8, n_embd=64, n_head=4, block_size=8)
    model = build_model(cfg, 50)
    std = model.transformer.h[0].attn.c_proj.weight.std().item()
    assert abs(std - 0.02 / 4) < 0.001  # 0.02 / sqrt(2 * 8)
    assert abs(model.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 0.002
    assert model.lm_head.weight is model.transformer.wte.weight


def test_gpt_is_causal():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="gpt", n_layer=2, n_embd=16, n_head=2, block_size=8), 11)
    model.eval()
    x = torch.randint(0, 11, (1, 8))
    y = x.clone()
    y[0, 5:] = (y[0, 5:] + 1) % 11
    a, _ = model(x)
    b, _ = model(y)
    torch.testing.assert_close(a[0, :5], b[0, :5])
    assert not torch.allclose(a[0, 5], b[0, 5])


@pytest.mark.parametrize("arch", ["lstm", "gru", "rnn_tanh"])
def test_rnn_carried_state_equals_one_long_window(arch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, n_layer=2, n_embd=12, block_size=8), 11)
    model.eval()
    x = torch.randint(0, 11, (2, 16))
    whole, _ = model(x)
    state = model.init_state(2)
    first, _, state = model(x[:, :8], state=state)
    second, _, _ = model(x[:, 8:], state=model.detach_state(state))
    torch.testing.assert_close(torch.cat([first, second], 1), whole)


def test_presets_build_and_override():
    cfg = from_preset("gpt-tiny", n_layer=2)
    assert (cfg.n_layer, cfg.n_embd, cfg.preset) == (2, 128, "gpt-tiny")
    assert count(cfg, 256).params == _numel(build_model(cfg, 256))
    for name in PRESETS:
        from_preset(name)  # every preset is a valid config
    with pytest.raises(ConfigError, match="gpt-tiny"):
        from_preset("gpt-huge")


def test_n_embd_must_divide_by_n_head():
    with pytest.raises(ConfigError, match="n_embd 10 is not divisible by n_head 4"):
        ModelConfig(arch="gpt", n_embd=10, n_head=4)


def test_explicit_cpu_bf16_attention_matches_sdpa():
    """bfloat16 on a CPU takes the explicit path (faster than the flash backward there):
    the same values and gradients as SDPA's causal attention, to bfloat16 precision."""
    import torch.nn.functional as F

    from scalinglab.models import gpt

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 40, 8, generator=g) for _ in range(3))
    out = {}
    for name, fn in (
        ("explicit", gpt.causal_attention),
        ("sdpa", lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True)),
    ):
        leaves = [x.clone().bfloat16().requires_grad_() for x in (q, k, v)]
        y = fn(*leaves)
        (y.float() * torch.linspace(-1, 1, 8)).sum().backward()
        out[name] = [y.float()] + [x.grad.float() for x in leaves]
    for a, b in zip(out["explicit"], out["sdpa"], strict=True):
        torch.testing.assert_close(a, b, atol=3e-2, rtol=3e-2)
    # the future never leaks: changing the last token's key and value leaves earlier outputs
    k2, v2 = k.clone(), v.clone()
    k2[:, :, -1], v2[:, :, -1] = 9.0, 9.0
    y1 = gpt.causal_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    y2 = gpt.causal_attention(q.bfloat16(), k2.bfloat16(), v2.bfloat16())
    assert torch.equal(y1[:, :, :-1], y2[:, :, :-1]) and not torch.equal(y1[:, :, -1], y2[:, :, -1])


def test_explicit_attention_only_where_it_pays(monkeypatch):
    """float32, dropout and large score matrices stay on SDPA."""
    import torch.nn.functional as F

    from scalinglab.models import gpt

    calls = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(gpt.F, "scaled_dot_product_attention",
                        lambda *a, **kw: calls.append(a[0].dtype) or real(*a, **kw))  # fmt: skip
    x = torch.randn(1, 2, 16, 8)
    gpt.causal_attention(x, x, x)  # float32
    gpt.causal_attention(x.bfloat16(), x.bfloat16(), x.bfloat16(), dropout_p=0.1)
    monkeypatch.setattr(gpt, "CPU_EXPLICIT_MAX_SCORES", 2 * 16 * 16 - 1)
    gpt.causal_attention(x.bfloat16(), x.bfloat16(), x.bfloat16())  # too large now
    assert calls == [torch.float32, torch.bfloat16, torch.bfloat16]
    monkeypatch.setattr(gpt, "CPU_EXPLICIT_MAX_SCORES", 2 * 16 * 16)
    gpt.causal_attention(x.bfloat16(), x.bfloat16(), x.bfloat16())  # explicit
    assert len(calls) == 3


@pytest.mark.parametrize("with_logits", [True, False], ids=["logits-used", "loss-alone"])
@pytest.mark.parametrize("tied", [True, False])
def test_rnn_fused_decoder_loss_matches_autograd(tied, with_logits):
    # Training runs the decoder and the loss as one function (DecoderLoss); its loss and
    # every parameter's gradient must be those of the plain linear + cross_entropy path.
    # Training backpropagates the loss alone (its logits unused), the fused function's own
    # path: its bias gradient averaged over the rows, 24x too small under SGD, passed the
    # logits-used case (found by a mutation audit).
    cfg = ModelConfig(arch="lstm", n_layer=2, n_embd=12, block_size=8, tie_embeddings=tied)
    torch.manual_seed(0)
    model = build_model(cfg, 29).double()
    x, y = torch.randint(0, 29, (3, 8)), torch.randint(0, 29, (3, 8))
    grads = []
    for fused in (True, False):
        model.zero_grad()
        if fused:
            logits, loss = model(x, y)
            assert type(loss.grad_fn).__name__ == "DecoderLossBackward"
            extra = logits.pow(2).mean() if with_logits else 0.0  # they carry a gradient
        else:
            logits, _ = model(x)  # no targets: the plain decoder
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
            extra = logits.pow(2).mean() if with_logits else 0.0
        (3 * loss + extra).backward()
        grads.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (l1, g1), (l2, g2) = grads
    assert l1 == pytest.approx(l2, rel=1e-12)
    assert abs(l1 - torch.log(torch.tensor(29.0)).item()) < 0.2
    for name in g1:
        torch.testing.assert_close(g1[name], g2[name], rtol=1e-9, atol=1e-12, msg=name)


@pytest.mark.parametrize("arch", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_rnn_tied_embeddings_are_one_tensor_that_both_ends_train(arch):
    # --tie-embeddings (the default; the reference example's --tied): the decoder's weight
    # IS the embedding, so a step that reaches the weight through either end moves both,
    # and the model has V*H fewer parameters than untied.
    tied = build_model(ModelConfig(arch=arch, n_layer=1, n_embd=6), 11)
    untied = build_model(ModelConfig(arch=arch, n_layer=1, n_embd=6, tie_embeddings=False), 11)
    assert tied.decoder.weight is tied.encoder.weight
    assert untied.decoder.weight is not untied.encoder.weight
    assert _numel(untied) - _numel(tied) == 11 * 6
    x = torch.tensor([[1, 2, 3]])
    # a token that only the decoder sees (5 never enters) still gets an input row update
    _, loss = tied(x, torch.tensor([[5, 5, 5]]))
    loss.backward()
    assert tied.encoder.weight.grad[5].abs().sum() > 0
    assert tied.encoder.weight.grad[1].abs().sum() > 0
    _, loss = untied(x, torch.tensor([[5, 5, 5]]))
    loss.backward()
    assert untied.encoder.weight.grad[5].abs().sum() == 0


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("gpt-tiny", ("gpt", 4, 4, 128, 64, 0.0)),
        ("gpt-mini", ("gpt", 6, 6, 192, 256, 0.0)),
        ("gpt-micro", ("gpt", 4, 4, 64, 128, 0.0)),
        ("gpt-small-char", ("gpt", 6, 6, 384, 256, 0.0)),
        ("gpt2", ("gpt", 12, 12, 768, 1024, 0.0)),
        ("gpt2-medium", ("gpt", 24, 16, 1024, 1024, 0.0)),
        (
            "lstm-small",
            ("lstm", 2, None, 200, 35, 0.0),
        ),  # Zaremba et al.'s small: 200 units, 35 steps
        ("lstm-medium", ("lstm", 2, None, 650, 35, 0.5)),  # medium: 650 units, dropout 0.5
    ],
)
def test_presets_are_the_published_shapes(name, shape):
    from scalinglab.models.registry import from_preset

    c = from_preset(name)
    arch, n_layer, n_head, n_embd, block, dropout = shape
    assert (c.arch, c.n_layer, c.n_embd, c.block_size, c.dropout) == (
        arch,
        n_layer,
        n_embd,
        block,
        dropout,
    )
    if n_head is not None:
        assert c.n_head == n_head


def test_from_preset_overrides_win_and_build_model_takes_the_vocab_given():
    from scalinglab.models.registry import build_model, from_preset

    c = from_preset("gpt-micro", n_embd=32, block_size=16, vocab_size=50)
    assert (c.n_embd, c.block_size, c.n_layer) == (32, 16, 4)
    m = build_model(c, vocab_size=7)  # the vocabulary passed wins over the config's
    assert dict(m.named_parameters())["transformer.wte.weight"].shape == (7, 32)
    assert build_model(c).transformer.wte.weight.shape == (50, 32)  # else the config's
    rnn = build_model(from_preset("gru-tiny", vocab_size=11))
    assert type(rnn).__name__ == "RNNModel"
    assert rnn.rnn.weight_ih_l0.shape == (3 * 128, 128)  # a GRU: 3 gates of 128 units


def test_gpt_attention_dropout_is_off_in_eval_mode():
    """model.eval(): val loss and generation must not draw attention dropout masks."""
    torch.manual_seed(0)
    cfg = dict(arch="gpt", n_layer=2, n_embd=16, n_head=2, block_size=8, vocab_size=37)
    noisy = build_model(ModelConfig(dropout=0.5, **cfg)).eval()
    plain = build_model(ModelConfig(dropout=0.0, **cfg)).eval()
    plain.load_state_dict(noisy.state_dict())
    x = torch.randint(0, 37, (3, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b, ref = noisy(x, x)[1], noisy(x, x)[1], plain(x, x)[1]
    assert a.item() == b.item()
    assert a.item() == pytest.approx(ref.item(), rel=1e-6)


def test_rnn_drops_out_between_its_layers():
    """--dropout on a 2-layer RNN also masks between the layers (the example's dropout)."""
    torch.manual_seed(0)
    x = torch.randint(0, 29, (3, 8), generator=torch.Generator().manual_seed(1))
    for n_layer, differ in ((2, True), (1, False)):
        model = build_model(ModelConfig(arch="lstm", n_layer=n_layer, n_embd=12, dropout=0.5), 29)
        model.train()
        model.drop = torch.nn.Identity()  # leaves only the dropout inside the stacked cell
        with torch.no_grad():
            a, b = model(x)[0], model(x)[0]
        assert (not torch.equal(a, b)) == differ, n_layer


def test_rnn_drops_out_its_output_before_the_decoder():
    """In training the decoder sees the RNN output with dropout: zeros, the rest x 1/(1-p)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="lstm", n_layer=1, n_embd=12, dropout=0.5), 29).train()
    seen = {}
    model.rnn.register_forward_hook(lambda m, i, o: seen.__setitem__("out", o[0]))
    model.decoder.register_forward_pre_hook(lambda m, i: seen.__setitem__("rows", i[0]))
    x = torch.randint(0, 29, (4, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model(x)  # no targets: the plain decoder module runs
    out, rows = seen["out"].reshape(-1, 12), seen["rows"]
    kept = rows != 0
    assert 0.3 < 1 - kept.float().mean().item() < 0.7
    torch.testing.assert_close(rows[kept], 2 * out[kept])
