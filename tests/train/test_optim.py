import itertools
import math

import pytest
import torch

from scalinglab.config import ModelConfig, TrainConfig
from scalinglab.models.registry import build_model
from scalinglab.train.optim import Schedule, make_optimizer, plan_steps


def test_cosine_warms_up_then_ends_at_min_lr_on_the_last_step():
    s = Schedule("cosine", lr=1.0, min_lr=0.1, warmup=4, total=13)
    assert [s(i) for i in range(4)] == [0.2, 0.4, 0.6, 0.8]
    assert s(4) == 1.0
    assert s(8) == pytest.approx(0.55)  # halfway through the decay: the mean of 1 and 0.1
    assert s(12) == pytest.approx(0.1)  # the last step of the run
    lrs = [s(i) for i in range(4, 13)]
    assert all(a > b for a, b in itertools.pairwise(lrs))


def test_wsd_is_stable_then_cools_down_linearly():
    s = Schedule("wsd", lr=1.0, min_lr=0.0, warmup=0, total=11, cooldown_frac=0.2)
    assert [s(i) for i in range(9)] == [1.0] * 9  # progress i/10 < 0.8
    assert s(9) == pytest.approx(0.5)
    assert s(10) == pytest.approx(0.0)


def test_constant_and_time_budget_fraction():
    assert Schedule("constant", 1.0, 0.1, 2, 10)(7) == 1.0
    t = Schedule("cosine", lr=1.0, min_lr=0.0, warmup=2, total=None)
    assert t(1, 0.0) == pytest.approx(2 / 3)
    assert t(50, 0.5) == pytest.approx(0.5)
    assert t(99, 1.0) == pytest.approx(0.0)


def test_warmup_is_capped_by_a_short_run():
    s = Schedule("cosine", lr=1.0, min_lr=0.1, warmup=100, total=10)
    assert s.warmup == 4 and s(4) == 1.0 and s(9) == pytest.approx(0.1)


def test_budgets_become_steps():
    tps = 8 * 16  # tokens per step
    assert plan_steps(TrainConfig(steps=7), tps, 100) == 7
    assert plan_steps(TrainConfig(tokens=1280), tps, 100) == 10
    assert plan_steps(TrainConfig(tokens=1281), tps, 100) == 11  # rounded up
    assert plan_steps(TrainConfig(flops=128_000.0), tps, 100) == 10
    assert plan_steps(TrainConfig(time=5.0), tps, 100) is None


def test_weight_decay_only_on_matrices():
    model = build_model(ModelConfig(arch="gpt", n_layer=2, n_embd=16, n_head=2, block_size=8), 30)
    opt = make_optimizer(model, TrainConfig(weight_decay=0.1), "cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() == 1 for p in no_decay["params"])
    n = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n == sum(p.numel() for p in model.parameters())
    assert opt.defaults["betas"] == (0.9, 0.99)
    assert math.isclose(opt.defaults["lr"], 1e-3)


def test_fused_adamw_step_runs_on_cpu():
    model = torch.nn.Linear(4, 4)
    opt = make_optimizer(model, TrainConfig(), "cpu")
    model(torch.ones(1, 4)).sum().backward()
    before = model.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, model.weight)
