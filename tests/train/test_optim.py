import itertools
import math

import pytest
import torch

from scalinglab.config import ModelConfig, TrainConfig
from scalinglab.errors import ConfigError
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
    assert t(1, 0.01) == pytest.approx(2 / 3)
    assert t(2, 0.02) == 1.0 and t.warmup_frac == 0.02  # the decay begins at the warmup's end
    assert t(50, 0.51) == pytest.approx(0.5)  # halfway through the rest of the budget
    assert t(99, 1.0) == pytest.approx(0.0)


def test_a_time_budgets_warmup_ends_by_half_the_budget():
    t = Schedule("cosine", lr=1.0, min_lr=0.0, warmup=200, total=None)
    # 10 steps a percent of the budget: 200 warmup steps would take 20 of the 100
    lrs = [t(s, s / 1000) for s in range(1001)]
    assert lrs[9] == pytest.approx(10 / 201) and t.warmup_frac == 0.2
    assert lrs[200] == 1.0 and lrs[600] == pytest.approx(0.5) and lrs[1000] == pytest.approx(0)
    # 1 step a percent: half the budget passes at step 50, and the warmup ends there,
    # its LR rising with the budget spent from the moment that is further along
    t = Schedule("cosine", lr=1.0, min_lr=0.0, warmup=200, total=None)
    lrs = [t(s, s / 100) for s in range(101)]
    assert lrs[10] == pytest.approx(0.2) and lrs[49] == pytest.approx(0.98)
    assert t.warmup_frac == 0.5 and lrs[50] == 1.0 and lrs[75] == pytest.approx(0.5)
    assert lrs[100] == pytest.approx(0.0)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(lrs[50:]))
    assert t.state_dict()["warmup_frac"] == 0.5


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


def test_optimizer_auto_is_the_families_recipe():
    lstm = build_model(ModelConfig(arch="lstm", n_layer=1, n_embd=16, block_size=8), 30)
    gpt = build_model(ModelConfig(arch="gpt", n_layer=1, n_embd=16, n_head=2, block_size=8), 30)
    # an RNN at the default lr: plain SGD at lr 20 (no momentum, no weight decay), clip 0.25
    opt = make_optimizer(lstm, TrainConfig(), "cpu")
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["lr"] == 20.0
    assert opt.defaults["momentum"] == 0 and opt.defaults["weight_decay"] == 0
    assert TrainConfig().with_optimizer_defaults(True).grad_clip == 0.25
    # the GPT, or an RNN with an lr given (as before --optimizer): AdamW, clip 1.0
    for model, tc in ((gpt, TrainConfig()), (lstm, TrainConfig(lr=3e-3))):
        opt = make_optimizer(model, tc, "cpu")
        assert isinstance(opt, torch.optim.AdamW)
        assert opt.defaults["lr"] == (tc.lr or 1e-3)
        assert tc.with_optimizer_defaults(model.recurrent).grad_clip == 1.0
    # asked for by name, with the lr given; a clip given is kept
    t = TrainConfig(optimizer="sgd", lr=5.0, grad_clip=0.5).with_optimizer_defaults(False)
    assert (t.optimizer, t.lr, t.grad_clip) == ("sgd", 5.0, 0.5)
    assert TrainConfig(optimizer="adamw").with_optimizer_defaults(True).lr == 1e-3
    # the Elman RNNs' own default lr (20 blows them up); the LSTM and GRU keep 20
    for arch, lr in (("rnn_tanh", 5.0), ("rnn_relu", 5.0), ("gru", 20.0), ("lstm", 20.0)):
        assert TrainConfig().with_optimizer_defaults(True, arch).lr == lr
        model = build_model(ModelConfig(arch=arch, n_layer=1, n_embd=8, block_size=8), 30)
        assert make_optimizer(model, TrainConfig(), "cpu").defaults["lr"] == lr
    assert TrainConfig(lr=2.0).with_optimizer_defaults(True, "rnn_tanh").lr == 2.0


def test_sgd_step_is_p_minus_lr_times_grad():
    model = torch.nn.Linear(3, 2)
    opt = make_optimizer(model, TrainConfig(optimizer="sgd", lr=0.5), "cpu")
    model(torch.ones(1, 3)).sum().backward()
    want = {n: (p - 0.5 * p.grad).detach() for n, p in model.named_parameters()}
    opt.step()
    assert all(torch.equal(p, want[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize(
    "flags, msg",
    [
        ({"optimizer": "adam"}, "^optimizer 'adam' is not one of"),
        ({"plateau_factor": 1.0}, "^plateau_factor must be 0"),
        ({"plateau_factor": -4.0}, "^plateau_factor must be 0"),
        ({"lr": -1.0}, "^lr must be a positive number"),
        ({"grad_clip": math.inf}, "^grad_clip must be a finite number"),
    ],
)
def test_optimizer_settings_out_of_range_name_the_keyword(flags, msg):
    with pytest.raises(ConfigError, match=msg):
        TrainConfig(**flags)


@pytest.mark.parametrize("cooldown_frac", [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.5])
@pytest.mark.parametrize("total", [40, 41, 97, 1000])
def test_wsd_never_goes_past_min_lr(cooldown_frac, total):
    """WSD's cooldown fraction rounded a hair past 1 at the last step for cooldown 0.15 and
    0.3: with --min-lr 0 the optimizer got lr -2.2e-19, the run logged it, and the curve
    laws then refused the run's curves (an lr below 0)."""
    sched = Schedule("wsd", lr=3e-3, min_lr=0.0, warmup=4, total=total, cooldown_frac=cooldown_frac)
    lrs = [sched(s) for s in range(total)]
    assert min(lrs) >= 0.0 and lrs[-1] <= 3e-3 * 1e-15  # 0 to rounding, never below it
    floor = Schedule(
        "wsd", lr=3e-3, min_lr=3e-4, warmup=4, total=total, cooldown_frac=cooldown_frac
    )
    assert min(floor(s) for s in range(total)) >= 3e-4 * (1 - 1e-15)


def test_a_budget_of_exactly_one_step_is_one_step():
    assert plan_steps(TrainConfig(tokens=128), 128, 100) == 1
    assert plan_steps(TrainConfig(flops=12_800.0), 128, 100) == 1
    with pytest.raises(ConfigError, match="less than one optimizer step"):
        plan_steps(TrainConfig(tokens=127), 128, 100)


def test_large_token_and_flop_budgets_are_counted_in_steps_not_refused():
    """The 1e12 bound is on optimizer steps: a 2T-token or 1e21-FLOP run is a plan."""
    tps = 512 * 1024  # tokens per step
    assert plan_steps(TrainConfig(tokens=2e12), tps, 6 * 10**8) == 3_814_698
    assert (
        plan_steps(TrainConfig(flops=1e21), tps, 6 * 10**9) == 317_892
    )  # ceil(1e21 / (524288 · 6e9))
    with pytest.raises(ConfigError, match="more than 1e\\+12"):
        plan_steps(TrainConfig(tokens=2e12), 1, 6)
