"""--param sp|mup|completep: init scales, per-group learning rates, identity, export."""

import dataclasses
import hashlib
import json
import math

import pytest
import torch

from scalinglab.config import ModelConfig, RunConfig, TrainConfig, run_identity
from scalinglab.errors import ConfigError
from scalinglab.models.registry import build_model
from scalinglab.train import train
from scalinglab.train.optim import make_optimizer
from scalinglab.train.setup import resume_conflicts
from tests.train.helpers import tiny_cfg, tiny_shards

BASE = 64


def _gpt(param="mup", n_embd=128, n_layer=2, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = ModelConfig(n_embd=n_embd, n_head=4, n_layer=n_layer, block_size=16, vocab_size=256,
                      param=param, base_width=BASE, base_depth=2, **kw)  # fmt: skip
    return build_model(cfg)


def _group_of(opt, p):
    return next(g for g in opt.param_groups if any(q is p for q in g["params"]))


@pytest.mark.parametrize("width", [128, 256])
def test_mup_init_scales_and_group_lrs_follow_the_rule(width):
    """At width w and base 64 (m = w/64): hidden matrices std 0.02/sqrt(m) (residual
    projections also /sqrt(2 n_layer)), Adam lr/m and decay*m; embeddings std 0.02 at lr."""
    model = _gpt(n_embd=width)
    m = width / BASE
    named = dict(model.named_parameters())
    stds = {n: p.detach().std().item() for n, p in named.items()}
    # 128 x 384 .. 512 x 256 draws: the sample std is within 1% of the rule
    for name, want in [
        ("transformer.h.0.attn.c_attn.weight", 0.02 / math.sqrt(m)),
        ("transformer.h.1.mlp.c_fc.weight", 0.02 / math.sqrt(m)),
        ("transformer.h.0.attn.c_proj.weight", 0.02 / math.sqrt(m) / 2),
        ("transformer.h.1.mlp.c_proj.weight", 0.02 / math.sqrt(m) / 2),
        ("transformer.wte.weight", 0.02),
        ("transformer.wpe.weight", 0.02),
    ]:
        assert stds[name] == pytest.approx(want, rel=0.03), name
    tc = TrainConfig(lr=0.01, weight_decay=0.1, steps=1)
    opt = make_optimizer(model, tc, "cpu")
    for g in opt.param_groups:
        g["lr"] = tc.lr * g["lr_mult"]  # what the training loop does each step
    want_lr = {
        "transformer.h.0.attn.c_attn.weight": (0.01 / m, 0.1 * m),
        "transformer.h.1.mlp.c_proj.weight": (0.01 / m, 0.1 * m),
        "transformer.wte.weight": (0.01, 0.1),
        "transformer.h.0.ln_1.weight": (0.01, 0.0),
        "transformer.h.0.mlp.c_fc.bias": (0.01, 0.0),
    }
    for name, (lr, wd) in want_lr.items():
        g = _group_of(opt, named[name])
        assert (g["lr"], g["weight_decay"]) == pytest.approx((lr, wd)), name
    # the readout (tied to wte) multiplies the logits by 1/m; attention sqrt(hd0)/hd
    assert model.readout == pytest.approx(BASE / width)
    hd = width // 4
    assert model.transformer.h[0].attn.scale == pytest.approx(math.sqrt(BASE / 4) / hd)


def test_sp_keeps_two_groups_and_one_lr():
    model = _gpt(param="sp", n_embd=256)
    opt = make_optimizer(model, TrainConfig(lr=0.01, steps=1), "cpu")
    assert [(g["lr_mult"], g["weight_decay"]) for g in opt.param_groups] == [(1.0, 0.1), (1.0, 0)]
    assert model.readout == 1.0 and model.transformer.h[0].attn.scale is None


def test_at_the_base_shape_mup_and_completep_compute_sp():
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = _gpt("sp", n_embd=BASE)(ids)[0]
        for p in ("mup", "completep"):
            assert torch.allclose(_gpt(p, n_embd=BASE)(ids)[0], ref, atol=1e-6), p


def test_the_readout_multiplier_scales_the_logits_at_every_width():
    """--readout-mult c (the base shape's output multiplier): the logits are c x base/width
    x W h under mup at widths 64 and 256, c x W h under sp; the weights, init and lrs are
    the c = 1 model's, and the HF export folds c into an untied output projection."""
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(1))
    for param, width, want in [("mup", 64, 0.5), ("mup", 256, 0.5 * BASE / 256), ("sp", 256, 0.5)]:
        plain, scaled = _gpt(param, n_embd=width), _gpt(param, n_embd=width, readout_mult=0.5)
        assert scaled.readout == pytest.approx(want), (param, width)
        with torch.no_grad():
            ref, got = plain(ids)[0], scaled(ids)[0]
        assert torch.allclose(got, 0.5 * ref, rtol=1e-5, atol=1e-7), (param, width)
        assert plain.lr_multipliers() == scaled.lr_multipliers()
        sd = scaled.sp_state_dict()
        assert torch.equal(sd["lm_head.weight"], scaled.lm_head.weight.detach() * want)
    with pytest.raises(ConfigError, match=r"^readout_mult must be positive, got 0.0$"):
        ModelConfig(readout_mult=0.0)
    with pytest.raises(ConfigError, match=r"^readout_mult is for the GPT; arch lstm has none$"):
        ModelConfig(arch="lstm", readout_mult=2.0)
    # a run's identity: unchanged at the default, changed by c under sp too
    cfg = RunConfig(model=ModelConfig(), train=TrainConfig(steps=5, data="d"))
    ids_ = {run_identity(dataclasses.replace(cfg, model=ModelConfig(param=p, readout_mult=c)), "x")
            for p in ("sp", "mup") for c in (1.0, 2.0)}  # fmt: skip
    assert len(ids_) == 4 and run_identity(cfg, "x") in ids_


def test_completep_scales_the_branches_not_the_projection_init():
    deep = _gpt("completep", n_embd=128, n_layer=8)
    assert deep.transformer.h[3].branch == pytest.approx(2 / 8)
    std = deep.transformer.h[5].mlp.c_proj.weight.std().item()
    # base depth 2: 0.02/sqrt(m)/sqrt(2*2), not /sqrt(2*8) as under sp and mup
    assert std == pytest.approx(0.02 / math.sqrt(2) / 2, rel=0.03)
    mup = _gpt("mup", n_embd=128, n_layer=8)
    assert mup.transformer.h[5].mlp.c_proj.weight.std().item() == pytest.approx(
        0.02 / math.sqrt(2) / 4, rel=0.03
    )


def test_a_base_width_the_heads_do_not_divide_is_refused():
    """--base-width 7 with 2 heads made a base of head size 3.5 (coord-check refused it)."""
    with pytest.raises(ConfigError, match=r"^base_width 7 is not a multiple of n_head 2: "):
        ModelConfig(param="mup", base_width=7, n_head=2, n_embd=16)
    assert ModelConfig(param="mup", base_width=7, n_head=2, n_embd=16, base_head_dim=4)
    assert ModelConfig(param="sp", base_width=7, n_head=2, n_embd=16)  # sp has no base


def test_param_is_refused_for_recurrent_models():
    with pytest.raises(ConfigError, match=r"^param mup is for the GPT; arch lstm has only sp$"):
        ModelConfig(arch="lstm", param="mup")
    with pytest.raises(ConfigError, match=r"^param .ntk. is not one of sp, mup, completep$"):
        ModelConfig(param="ntk")


def test_sp_runs_keep_their_ids_and_old_checkpoints_resume():
    # as the trainer resolves it (optimizer auto -> adamw, lr 0 -> 1e-3): the ids' input
    cfg = RunConfig(model=ModelConfig(), train=TrainConfig(steps=5, data="d"))
    cfg = dataclasses.replace(cfg, train=cfg.train.with_optimizer_defaults(recurrent=False))
    d = cfg.to_dict()
    old_model = {k: v for k, v in d["model"].items()
                 if k not in ("preset", "param", "base_width", "base_depth", "base_head_dim",
                              "readout_mult")}  # fmt: skip
    from scalinglab.config import LATER_FIELDS, OPERATIONAL

    # fields that did not exist then: optimizer (adamw), plateau_factor (0), order (a GPT's
    # windows were drawn at random)
    later = (*OPERATIONAL, *LATER_FIELDS, "order")
    train_d = {k: v for k, v in d["train"].items() if k not in later}
    blob = json.dumps({"model": old_model, "train": train_d, "data": "x"}, sort_keys=True)
    assert run_identity(cfg, "x") == hashlib.sha256(blob.encode()).hexdigest()
    # the base shape matters only under mup/completep; the parametrisation always does
    wide = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, base_width=256))
    assert run_identity(wide, "x") == run_identity(cfg, "x")
    mup = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, param="mup"))
    mup_wide = dataclasses.replace(mup, model=dataclasses.replace(mup.model, base_width=256))
    assert len({run_identity(c, "x") for c in (cfg, mup, mup_wide)}) == 3
    # a checkpoint written before --param existed resumes as sp, not as a changed model
    saved = {"config": {"model": old_model}, "data_fingerprint": "f"}
    saved["config"]["train"] = d["train"]
    assert resume_conflicts(saved, cfg, "f") == []
    assert resume_conflicts(saved, mup, "f") == ["--param 'sp' -> 'mup'"]


def test_a_mup_run_trains_with_per_group_lrs_and_records_its_param(tmp_path):
    data = tiny_shards(tmp_path / "shards")
    cfg = tiny_cfg(data, n_embd=64, param="mup", base_width=32, steps=30, lr=1e-2,
                   schedule="constant", warmup=0)  # fmt: skip
    torch.set_num_threads(1)
    result = train(cfg, tmp_path / "run")
    assert result["status"] == "completed" and result["val_loss"] < 1.5
    saved = (tmp_path / "run" / "config.toml").read_text()
    assert 'param = "mup"' in saved and "base_width = 32" in saved
    state = torch.load(tmp_path / "run/ckpt/step-00000030/state.pt", weights_only=True)
    lrs = sorted({g["lr"] for g in state["optimizer"]["param_groups"]})
    assert lrs == pytest.approx([1e-2 * 32 / 64, 1e-2])  # hidden at lr/m, the rest at lr


def test_a_fixed_head_size_keeps_the_base_attention_scale():
    """Heads of 8 at every width (more heads, not wider ones): with base_head_dim 8 the
    attention scale is 1/sqrt(8) at every width, as at the base."""
    for width in (64, 256):
        cfg = ModelConfig(n_embd=width, n_head=width // 8, param="mup", base_width=64,
                          base_head_dim=8, vocab_size=256)  # fmt: skip
        assert build_model(cfg).transformer.h[0].attn.scale == pytest.approx(8**-0.5)


def test_sgd_takes_sp_but_refuses_the_adam_multipliers_of_mup():
    """Plain SGD trains an SP GPT (one group at lr); with --param mup it is refused, since
    μP's per-layer factors are Adam's and SGD's rule differs."""
    opt = make_optimizer(_gpt(param="sp"), TrainConfig(optimizer="sgd", lr=0.5), "cpu")
    assert isinstance(opt, torch.optim.SGD) and [g["lr"] for g in opt.param_groups] == [0.5]
    with pytest.raises(ConfigError, match=r"multipliers are Adam's; use optimizer adamw"):
        make_optimizer(_gpt(param="mup"), TrainConfig(optimizer="sgd", lr=0.5), "cpu")
