import json
import math

import pytest

from scalinglab.config import ModelConfig, from_dict
from scalinglab.errors import ConfigError, SweepError
from scalinglab.models.counting import count
from scalinglab.sweep import design, shapes
from scalinglab.sweep.driver import make_plan
from scalinglab.sweep.spec import ShapeRule, load_spec
from tests.sweep.conftest import spec_text, write_spec

ISO = """kind = "isoflop"
budgets = [2.4e7, 9.6e7]
sizes = 3
tokens_per_param = 1
spread = 4
"""


def test_gpt_shape_rule_heads_divide_width_and_nearest_count():
    rule = ShapeRule(aspect=16, head_size=8)
    for n in (5e3, 5e4, 2e5, 1e6, 1e8):
        m = shapes.shape_for("gpt", n, 256, {"block_size": 64}, rule)
        assert m.n_embd % m.n_head == 0 and m.n_embd // m.n_head == 8
        p = count(m, 256).params
        # the nearest width at this depth: one head_size step either way is not nearer
        for w in (m.n_embd - 8, m.n_embd + 8):
            if w > 0:
                q = count(
                    ModelConfig(n_layer=m.n_layer, n_embd=w, n_head=w // 8, block_size=64), 256
                )
                assert abs(math.log(q.params / n)) >= abs(math.log(p / n))
    big = shapes.shape_for("gpt", 1e8, 256, {"block_size": 64}, rule)
    assert (big.n_layer, big.n_embd, big.n_head) == (32, 512, 64)  # aspect 16 exactly


def test_min_layers_fixes_the_depth():
    """With min_layers = max_layers = 2 no size falls back to one layer (the quickstart's
    rule: a 1-layer model among 2-layer ones is another shape family, a bump in the profile)."""
    free = ShapeRule(aspect=1, head_size=8, max_layers=2)
    fixed = ShapeRule(aspect=1, head_size=8, max_layers=2, min_layers=2)
    shared = {"block_size": 128}
    depths = {shapes.shape_for("gpt", n, 256, shared, free).n_layer for n in (1.6e4, 1.7e4)}
    assert depths == {1}  # the free rule takes a 1x24 here: nearer the target than a 2x16
    for n in (1e4, 1.6e4, 1.7e4, 5e4, 2e5):
        m = shapes.shape_for("gpt", n, 256, shared, fixed)
        assert m.n_layer == 2 and m.n_embd % 8 == 0
    with pytest.raises(ConfigError, match=r"\[shape\]: min_layers \(3\) is larger than max_layers"):
        from_dict(ShapeRule, {"min_layers": 3, "max_layers": 2}, "spec.toml [shape]")


def test_rnn_width_from_n():
    m = shapes.shape_for("lstm", 5e4, 256, {"block_size": 32}, ShapeRule(width_multiple=4))
    assert m.n_layer == 1 and m.n_embd % 4 == 0
    p = count(m, 256).params
    assert abs(p - 5e4) / 5e4 < 0.05
    # LSTM, tied, one layer: params = 256 E + 4H(E+H) + 8H + 256 with E = H
    h = m.n_embd
    assert p == 256 * h + 4 * h * 2 * h + 8 * h + 256


def test_isoflop_plan_tokens_from_6nd_and_model_counts(tmp_path, shards):
    spec = load_spec(write_spec(tmp_path, shards, ISO))
    ctx, runs = make_plan(spec)
    assert len(runs) == 6 and ctx.tokens_per_step == 64
    for r in runs:
        c = r.group["budget"]
        exact = c / (6 * r.counts.params)
        assert r.tokens == round(exact / 64) * 64  # D = C/(6N), whole steps
        assert r.steps == r.tokens // 64
        assert r.config.train.tokens == r.tokens
        assert r.config.model.n_embd % r.config.model.n_head == 0
        # lr = 1e-2 · (16 / width) ** 0.5; warmup = round(0.1 · steps)
        assert r.lr == pytest.approx(1e-2 * (16 / r.config.model.n_embd) ** 0.5)
        assert r.config.train.warmup == round(0.1 * r.steps)
        assert r.name.startswith(f"gpt-n{design.human(r.counts.params)}-c{design.sci(c)}-")
    # sizes are spread log-uniformly around N_c = sqrt(C / (6 · 200))
    first = [r for r in runs if r.group["budget"] == 2.4e7]
    n_c = math.sqrt(2.4e7 / 6)
    assert first[0].counts.params < n_c < first[-1].counts.params
    spec.design.flops_convention = "model"
    _, runs_m = make_plan(spec)
    for r in runs_m:
        assert r.tokens == round(r.group["budget"] / r.counts.flops_per_token / 64) * 64
    # a run's identity is its config: the same shape and tokens is the same run
    by_hash = {r.run_hash: r.tokens for r in runs}
    for r in runs_m:
        assert (r.run_hash in by_hash) == (by_hash.get(r.run_hash) == r.tokens)
    assert any(r.run_hash not in by_hash for r in runs_m)


def test_identity_ignores_threads_and_data_path_but_not_lr(tmp_path, shards):
    spec = load_spec(write_spec(tmp_path, shards, ISO))
    ctx, runs = make_plan(spec)
    cfg = runs[0].config
    h = design.run_hash(cfg, ctx.data_id)
    cfg.train.threads, cfg.train.data, cfg.train.ckpt_every = 7, "/elsewhere", 5
    assert design.run_hash(cfg, ctx.data_id) == h
    cfg.train.lr *= 2
    assert design.run_hash(cfg, ctx.data_id) != h
    assert design.run_hash(runs[0].config, "other data") != runs[0].run_hash


def test_budget_too_small_for_one_batch(tmp_path, shards):
    spec = load_spec(write_spec(tmp_path, shards, ISO.replace("[2.4e7, 9.6e7]", "[1e5, 4.8e7]")))
    with pytest.raises(SweepError, match=r"budget 1e\+05.*less than one batch \(64 tokens"):
        make_plan(spec)


@pytest.mark.parametrize("budget", ["tokens = [10]", "flops = [1e5]"])
def test_a_grid_budget_below_one_batch_names_it(tmp_path, shards, budget):
    """A grid's group holds its budget kind (a string): formatting it as a number was a
    ValueError traceback instead of the error naming the budget and the model."""
    spec = load_spec(write_spec(tmp_path, shards, f'kind = "grid"\nparams = [3000]\n{budget}'))
    with pytest.raises(SweepError, match=r"\[design\]: budget .*, budget_kind \w+: the gpt of "):
        make_plan(spec)


@pytest.mark.parametrize("kind", ["grid", "hparams"])
def test_two_grid_targets_that_round_to_one_shape_run_once(tmp_path, shards, kind):
    """As docs/sweeps.md says; they were refused as 'the same run twice'."""
    text = f'kind = "{kind}"\nparams = [3000, 3050]\ntokens = [640]'
    _, two = make_plan(load_spec(write_spec(tmp_path, shards, text)))
    _, one = make_plan(load_spec(write_spec(tmp_path, shards, text.replace(", 3050", ""))))
    assert [r.name for r in two] == [r.name for r in one] and len(one) >= 1


@pytest.mark.parametrize(
    "edit, want",
    [
        (('data = "', 'data = 5 #"'), "data must be a path (a string), got 5"),
        (('archs = ["gpt"]', "archs = 3"), "archs must be a name or a list of names, got 3"),
        (("aspect = 4", "aspect = inf"), "[shape]: aspect must be a positive number, got inf"),
    ],
)
def test_spec_values_of_the_wrong_kind_are_one_line_errors(tmp_path, shards, edit, want):
    """Each was a TypeError or ValueError traceback."""
    p = write_spec(tmp_path, shards, 'kind = "grid"\nparams = [3000]\ntokens = [640]')
    p.write_text(p.read_text().replace(*edit))
    with pytest.raises((SweepError, ConfigError)) as e:
        load_spec(p)
    assert str(e.value).endswith(want)


def test_grid_and_ladder(tmp_path, shards):
    grid = """kind = "grid"
shapes = [{n_layer = 1, n_embd = 8, n_head = 2}, {n_layer = 2, n_embd = 16, n_head = 4}]
tokens = [640, 1280]
"""
    _, runs = make_plan(load_spec(write_spec(tmp_path, shards, grid)))
    assert [(r.config.model.n_embd, r.tokens) for r in runs] == [
        (8, 640), (8, 1280), (16, 640), (16, 1280)
    ]  # fmt: skip
    assert all(r.group["budget_kind"] == "tokens" for r in runs)
    ladder = """kind = "ladder"
params = [3000, 10000]
tokens_per_param = [1, 2]
"""
    _, runs = make_plan(load_spec(write_spec(tmp_path, shards, ladder)))
    assert len(runs) == 4
    for r in runs:
        assert r.tokens == round(r.group["tokens_per_param"] * r.counts.params / 64) * 64


def test_measured_centre_parabola_vertex():
    # loss = (log N - log 1000)^2 + 2 on one budget C = 6 N D with C = 6e8
    rows = []
    for n in (250, 500, 1000, 2000, 4000):
        d = 6e8 / (6 * n)
        rows.append({"status": "completed", "params": n, "tokens": d,
                     "loss": (math.log(n) - math.log(1000)) ** 2 + 2})  # fmt: skip
    assert design.measured_centre(rows) == pytest.approx(1e8 / 1000 / 1000)
    rows[2]["status"] = "diverged"  # still fits the other four
    assert design.measured_centre(rows) == pytest.approx(100.0)
    assert design.measured_centre([]) is None


def test_sweep_identity_is_the_trainers_run_id():
    from scalinglab.config import ModelConfig, RunConfig, TrainConfig
    from scalinglab.runfolder import run_id

    cfg = RunConfig(ModelConfig(n_embd=32, n_head=4), TrainConfig(data="x", steps=5))
    assert design.run_hash(cfg, "abc").startswith(run_id(cfg, "abc"))
    # operational settings do not change what a run computes; the seed does
    other = RunConfig(cfg.model, TrainConfig(data="y", steps=5, threads=2, log_every=1))
    assert design.run_hash(other, "abc") == design.run_hash(cfg, "abc")
    seeded = RunConfig(cfg.model, TrainConfig(data="x", steps=5, seed=1))
    assert design.run_hash(seeded, "abc") != design.run_hash(cfg, "abc")


def test_hparams_design_is_an_lr_by_batch_grid_at_each_n_and_d(tmp_path, shards):
    hp = """kind = "hparams"
shapes = [{n_layer = 1, n_embd = 8, n_head = 2}, {n_layer = 1, n_embd = 16, n_head = 2}]
tokens = [1280, 2560]
lr_factors = [0.5, 1, 2]
batch_sizes = [2, 8]
"""
    _, runs = make_plan(load_spec(write_spec(tmp_path, shards, hp)))
    assert len(runs) == 2 * 2 * 3 * 2 and len({r.name for r in runs}) == 24
    for r in runs:
        t = r.config.train
        rule_lr = 1e-2 * (16 / r.config.model.n_embd) ** 0.5  # the spec's [hparams] rule
        assert t.lr == pytest.approx(rule_lr * r.group["lr_factor"])
        assert t.batch_size == r.group["batch_size"] and r.tokens == r.group["budget"]
        assert r.steps == r.tokens // (t.batch_size * 16)
    # D in whole steps of every batch size: one D per cell, whatever the batch
    _, runs = make_plan(load_spec(write_spec(tmp_path, shards, hp.replace("1280", "1000"))))
    assert {r.tokens for r in runs if r.group["budget"] == 1000} == {1024}
    with pytest.raises(SweepError, match="exactly one of tokens or tokens_per_param"):
        load_spec(write_spec(tmp_path, shards, hp.replace("tokens = [1280, 2560]\n", "")))


@pytest.mark.parametrize(
    "budget, given, d",
    [
        ("tokens = [100, 2560]", "tokens 100", 100),
        ("tokens_per_param = [0.01]", "tokens_per_param 0.01", 13),
    ],
)
def test_an_hparams_budget_below_one_step_of_every_batch_size_is_refused(
    tmp_path, shards, capsys, budget, given, d
):
    """D is rounded to whole steps of every batch size: 128 tokens here (the least common
    multiple of 2 × 16 and 8 × 16). A D below that was rounded up to it, so the runs
    trained more than asked (100 tokens trained 128) without a word; as a grid's budget
    below one batch, it is refused, naming the key, its value and the smallest D."""
    from scalinglab.cli import main

    hp = f"""kind = "hparams"
shapes = [{{n_layer = 1, n_embd = 8, n_head = 2}}]
{budget}
batch_sizes = [2, 8]
"""
    p = write_spec(tmp_path, shards, hp)
    assert main(["sweep", str(p), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {p} [design]: {given}: the gpt of 1272 parameters gets {d} tokens, less than "
        "one step of every batch size (128 tokens: the least common multiple of batch_sizes "
        "× grad_accum × block_size); raise the budget to D = 128 tokens or more\n"
    )


def test_hparams_rules_mup_and_fitted(tmp_path, shards):
    ladder = """kind = "ladder"
params = [3000, 20000]
tokens_per_param = [1]
"""
    mup = (
        write_spec(tmp_path, shards, ladder)
        .read_text()
        .replace("warmup_frac = 0.1", 'warmup_frac = 0.1\nrule = "mup"')
    )
    (tmp_path / "mup.toml").write_text(mup)
    _, runs = make_plan(load_spec(tmp_path / "mup.toml"))
    widths = {r.config.model.n_embd for r in runs}
    assert len(widths) == 2  # two widths, one lr: the multipliers scale it per layer
    for r in runs:
        m = r.config.model
        assert (m.param, m.base_width, m.base_head_dim) == ("mup", 16, 4)
        assert r.config.train.lr == 1e-2
    # fitted: the lr of an lr-opt fit at each run's N and D
    fit = {"kind": "scalinglab.lr_opt_fit", "cells": [], "params": {
        "step": {"a": 2.0, "alpha": -0.5, "beta": 0.1, "b": 1.0, "gamma": 0.5},
        "deepseek": {"a": 1.0, "alpha": -0.1, "b": 1.0, "gamma": 0.3}}}  # fmt: skip
    (tmp_path / "lr.json").write_text(json.dumps(fit))
    fitted = mup.replace('rule = "mup"', f'rule = "fitted"\nfit = "{tmp_path / "lr.json"}"')
    (tmp_path / "fitted.toml").write_text(fitted)
    _, runs = make_plan(load_spec(tmp_path / "fitted.toml"))
    for r in runs:
        assert r.config.model.param == "sp"
        assert r.config.train.lr == pytest.approx(2.0 * r.counts.params**-0.5 * r.tokens**0.1)
    (tmp_path / "bad.toml").write_text(mup.replace('rule = "mup"', 'rule = "fitted"'))
    with pytest.raises(SweepError, match='rule = "fitted" goes with fit'):
        load_spec(tmp_path / "bad.toml")
    # the power rule's lr_power under another rule was ignored, silently
    (tmp_path / "bad.toml").write_text(mup.replace('rule = "mup"', 'rule = "mup"\nlr_power = 1'))
    with pytest.raises(SweepError, match="lr_power is the power rule's; rule = 'mup' sets"):
        load_spec(tmp_path / "bad.toml")


GRID_2X2 = """kind = "grid"
shapes = [{n_layer = 1, n_embd = 8, n_head = 2}, {n_layer = 1, n_embd = 16, n_head = 4}]
tokens = [640, 2560]
"""


def _spec_with(tmp_path, shards, design: str, hparams: str):
    """A spec of `design` whose [hparams] also has the lines `hparams`."""
    p = write_spec(tmp_path, shards, design)
    p.write_text(p.read_text().replace("warmup_frac = 0.1", f"warmup_frac = 0.1\n{hparams}"))
    return p


def _lrs(tmp_path, shards, hparams: str) -> dict:
    """{(width, tokens): lr} of the 2 × 2 grid under the spec's [hparams] plus `hparams`."""
    _, runs = make_plan(load_spec(_spec_with(tmp_path, shards, GRID_2X2, hparams)))
    return {(r.config.model.n_embd, r.tokens): r.lr for r in runs}


def test_duration_power_scales_each_runs_lr_by_its_tokens(tmp_path, shards):
    """lr × (D / ref_tokens) ** duration_power on top of the width rule: under "mup" the
    lr tuned on 640 tokens is 1e-2 × 4^0.228 = 0.013717 on 2560 tokens at both widths;
    under "power" (lr_power 0.5, ref_width 16) with 0.5: × √2 at width 8, × 2 at 4× D."""
    mup = _lrs(tmp_path, shards, 'rule = "mup"\nduration_power = 0.228\nref_tokens = 640')
    assert mup == pytest.approx({(8, 640): 1e-2, (8, 2560): 0.0137173,
                                 (16, 640): 1e-2, (16, 2560): 0.0137173}, rel=1e-5)  # fmt: skip
    power = _lrs(tmp_path, shards, "duration_power = 0.5\nref_tokens = 640")
    assert power == pytest.approx({(8, 640): 0.0141421, (8, 2560): 0.0282843,
                                   (16, 640): 1e-2, (16, 2560): 2e-2}, rel=1e-5)  # fmt: skip
    # the lr-factor grid of an hparams design is centred on the rule's lr at each D
    hp = GRID_2X2.replace('"grid"', '"hparams"') + "lr_factors = [0.5, 2]\n"
    rule = 'rule = "mup"\nduration_power = 0.228\nref_tokens = 640'
    _, runs = make_plan(load_spec(_spec_with(tmp_path, shards, hp, rule)))
    assert sorted({(r.tokens, r.group["lr_factor"], round(r.lr, 7)) for r in runs}) == [
        (640, 0.5, 0.005), (640, 2, 0.02), (2560, 0.5, 0.0068587), (2560, 2, 0.0274347)
    ]  # fmt: skip


def test_duration_power_0_leaves_the_plan_unchanged(tmp_path, shards):
    """The default (no duration_power) and duration_power = 0 with any ref_tokens plan the
    same runs (names are identity hashes), each at the width rule's lr."""
    _, before = make_plan(load_spec(write_spec(tmp_path, shards, ISO)))
    zero = _spec_with(tmp_path, shards, ISO, "duration_power = 0\nref_tokens = 5e6")
    _, after = make_plan(load_spec(zero))
    assert [r.name for r in after] == [r.name for r in before] and len(before) == 6
    for r in after:
        assert r.lr == pytest.approx(1e-2 * (16 / r.config.model.n_embd) ** 0.5, rel=1e-12)


@pytest.mark.parametrize(
    "hparams,message",
    [
        ("duration_power = 0.228", r"\[hparams\]: duration_power = 0.228 needs ref_tokens"),
        ("duration_power = 0.2\nref_tokens = -5", "ref_tokens must be positive, got -5"),
        ('rule = "fitted"\nfit = "x.json"\nduration_power = 0.2\nref_tokens = 640',
         'rule = "fitted" takes the lr\'s dependence on D from its fit'),
    ],
)  # fmt: skip
def test_duration_power_bad_settings_name_the_key(tmp_path, shards, hparams, message):
    with pytest.raises(SweepError, match=message):
        load_spec(_spec_with(tmp_path, shards, GRID_2X2, hparams))


def test_decay_tokens_per_param_gives_each_size_the_same_decay_timescale(tmp_path, shards):
    """wd = tokens per step / (lr · τ · N): the decay's timescale 1/(lr · wd) steps is τ·N
    tokens at both widths of the 2 × 2 grid (batch 4 × block 16 = 64 tokens a step), the
    same wd for both lengths of a size; left out, every run keeps [train]'s 0.1."""
    _, runs = make_plan(load_spec(_spec_with(tmp_path, shards, GRID_2X2,
                                             "decay_tokens_per_param = 20")))  # fmt: skip
    assert len(runs) == 4
    by_size = {}
    for r in runs:
        t, n = r.config.train, r.counts.params
        assert t.weight_decay == pytest.approx(64 / (t.lr * 20 * n), rel=1e-12)
        assert 64 / (t.lr * t.weight_decay) == pytest.approx(20 * n, rel=1e-12)  # τ·N tokens
        by_size.setdefault(n, set()).add(t.weight_decay)
    assert all(len(w) == 1 for w in by_size.values()) and len(by_size) == 2
    (small, large) = sorted(by_size)  # the wider model: a smaller lr, more parameters
    assert by_size[small] != by_size[large]
    _, plain = make_plan(load_spec(write_spec(tmp_path, shards, GRID_2X2)))
    assert {r.config.train.weight_decay for r in plain} == {0.1}


@pytest.mark.parametrize(
    "hparams,train,message",
    [
        ("decay_tokens_per_param = -3", "",
         r"decay_tokens_per_param must be a finite number >= 0 .*got -3"),
        ("decay_tokens_per_param = 20", "weight_decay = 0.05",
         r"\[hparams\] decay_tokens_per_param sets each run's weight_decay: leave \[train\] "
         r"weight_decay \(0.05\) out"),
        ('decay_tokens_per_param = 20\noptimizer = "sgd"', "",
         'decay_tokens_per_param sets AdamW\'s weight decay; optimizer = "sgd" has none'),
        ("decay_tokens_per_param = 20", 'optimizer = "sgd"',
         r"decay_tokens_per_param sets AdamW's weight decay, but the runs train with "
         r"optimizer 'sgd'"),
    ],
)  # fmt: skip
def test_decay_tokens_per_param_bad_settings_name_the_key(tmp_path, shards, hparams, train,
                                                          message):  # fmt: skip
    p = _spec_with(tmp_path, shards, GRID_2X2, hparams)
    if train:
        p.write_text(p.read_text().replace("[train]\n", f"[train]\n{train}\n"))
    with pytest.raises((SweepError, ConfigError), match=message):
        make_plan(load_spec(p))


def test_an_architecture_may_name_its_own_optimizer_and_clip(tmp_path, shards):
    """[hparams.lstm] optimizer = "sgd" with its own lr and clip (the RNN recipe, docs/
    training.md) while the GPTs of the same sweep keep AdamW and the [train] defaults."""
    ladder = """kind = "ladder"
params = [3000, 20000]
tokens_per_param = [1]
"""
    text = write_spec(tmp_path, shards, ladder).read_text()
    text = text.replace('archs = ["gpt"]', 'archs = ["gpt", "lstm"]').replace(
        "[design]",
        '[hparams.lstm]\noptimizer = "sgd"\nlr = 10\nlr_power = 0\ngrad_clip = 0.25\n\n[design]',
    )
    (tmp_path / "two.toml").write_text(text)
    _, runs = make_plan(load_spec(tmp_path / "two.toml"))
    by_arch = {}
    for r in runs:
        by_arch.setdefault(r.config.model.arch, []).append(r.config.train)
    assert len(by_arch["lstm"]) == len(by_arch["gpt"]) == 2
    for t in by_arch["lstm"]:
        assert (t.optimizer, t.lr, t.grad_clip) == ("sgd", 10.0, 0.25)
    for t, r in zip(by_arch["gpt"], [r for r in runs if r.config.model.arch == "gpt"], strict=True):
        assert (t.optimizer, t.grad_clip) == ("adamw", 1.0)
        assert t.lr == pytest.approx(1e-2 * (16 / r.config.model.n_embd) ** 0.5)
    (tmp_path / "bad.toml").write_text(text.replace('optimizer = "sgd"', 'optimizer = "adam"'))
    with pytest.raises(
        SweepError, match=r"bad.toml \[hparams\].lstm: optimizer 'adam' is not one of"
    ):
        load_spec(tmp_path / "bad.toml")


def test_grid_targets_that_round_to_one_shape_are_warned_about(
    tmp_path, shards, capsys, monkeypatch
):
    """Grid targets that round to one shape were planned once without a word; the sweep
    (here its --dry-run) now warns, naming the targets and the size."""
    from scalinglab.cli import main
    from scalinglab.sweep import estimate

    monkeypatch.setattr(estimate, "load_now", lambda: None)  # the step times: not the point
    monkeypatch.setattr(estimate, "_seconds_per_step", lambda run, threads: 0.01)
    grid = write_spec(tmp_path, shards, 'kind = "grid"\nparams = [3000, 3300]\ntokens = [640]\n')
    _, runs = make_plan(load_spec(grid))
    (n,) = {r.counts.params for r in runs}
    assert main(["sweep", str(grid), "--dry-run", "--threads", "1"]) == 0
    assert (
        f"warning: [design] params 3000 and 3300 (gpt) round to one shape ({n:,} parameters): "
        "it is planned once" in capsys.readouterr().err
    )


def test_targets_the_width_grid_moves_far_are_named(tmp_path, shards):
    """A target below the grid's smallest shape was planned 4x larger, and a budget's sizes
    pushed outward off a taken shape moved far, without a word."""
    ladder = 'kind = "ladder"\nparams = [100, 10000]\ntokens_per_param = [1]\n'
    ctx, runs = make_plan(load_spec(write_spec(tmp_path, shards, ladder)))
    small = min(r.counts.params for r in runs)
    assert small > 1.25 * 100
    assert design.moved_targets(ctx) == [
        f"[design] target N 100 (gpt) is planned as {small:,} parameters ({small / 100:.2g}x), "
        "the [shape] grid's smallest: raise the target, or make [shape] head_size smaller"
    ]
    iso = ISO.replace("sizes = 3", "sizes = 5").replace("spread = 4", "spread = 1.3")
    iso = iso.replace("budgets = [2.4e7, 9.6e7]", "budgets = [2.4e7]")
    ctx, runs = make_plan(load_spec(write_spec(tmp_path, shards, iso)))
    lines = design.moved_targets(ctx)
    assert lines and all(line.startswith("[design] budget ") for line in lines)
    assert all("moved outward off a shape another size took: raise spread" in x for x in lines)
    for line in lines:  # each names a size this plan has at that budget, far off its target
        budget = float(line.split()[2].rstrip(":"))
        target = float(line.split("target N ")[1].split()[0])
        size = int(line.split("planned as ")[1].split()[0].replace(",", ""))
        assert size in {r.counts.params for r in runs if r.group["budget"] == budget}
        assert max(size / target, target / size) > design.MOVE_WARN


def test_a_coarse_grids_nearest_shape_is_not_called_its_smallest(tmp_path, shards):
    """An LSTM grid of widths 64, 128, ... plans a target of 1e5 as the 128-wide shape,
    1.4x above it: that was named 'the [shape] grid's smallest: raise the target', though
    the smallest (64 wide) lies below the target and raising it moves it further off; a
    target rounded down as far went unwarned."""
    lstm = 'kind = "ladder"\nparams = [1e5, 4e5, 1e6]\ntokens_per_param = [1]\n'
    text = spec_text(shards, lstm).replace('archs = ["gpt"]', 'archs = ["lstm"]')
    path = tmp_path / "spec.toml"
    path.write_text(text.replace("head_size = 4", "head_size = 4\nwidth_multiple = 64"))
    ctx, runs = make_plan(load_spec(path))
    sizes = sorted(r.counts.params for r in runs)
    smallest = shapes.smallest_params("lstm", ctx.vocab, ctx.spec.model, ctx.spec.shape)
    assert smallest < 1e5 < 1.25 * 1e5 < sizes[0] and sizes[1] < 4e5 / 1.25
    coarse = "the [shape] grid's nearest (its shapes step coarsely there): make [shape] "
    assert design.moved_targets(ctx) == [
        f"[design] target N 1e+05 (lstm) is planned as {sizes[0]:,} parameters "
        f"({sizes[0] / 1e5:.2g}x), {coarse}width_multiple smaller",
        f"[design] target N 4e+05 (lstm) is planned as {sizes[1]:,} parameters "
        f"({sizes[1] / 4e5:.2g}x), {coarse}width_multiple smaller",
    ]


def test_ladder_targets_below_the_smallest_shape_are_refused_naming_them(tmp_path, shards):
    """Two targets both under the grid's smallest shape were refused as 'the design plans
    the same run twice: gpt-n444-r1-...', naming neither target."""
    ladder = 'kind = "ladder"\nparams = [100, 120, 10000]\ntokens_per_param = [1]\n'
    with pytest.raises(SweepError, match=r"\[design\] params 100 and 120 \(gpt\) round to one "
                       r"shape \([\d,]+ parameters, the smallest shape"):  # fmt: skip
        make_plan(load_spec(write_spec(tmp_path, shards, ladder)))


def test_a_size_moved_outward_takes_the_next_shape_not_one_past_it(tmp_path, shards):
    """Two targets of the 4e10 budget round to one shape (2x12, 7,248 parameters); the
    outer one moves down to the next shape. The target stepped 2% at a time passed over
    4x8 (5,808 parameters: the rule gives it only for targets 6,226-6,293, 1% wide), so it
    took 2x8 (5,364) and the sizes below it one shape further down each: N [3192, 4064,
    5364, 7248, ...] where the next shape outward gives [4064, 5364, 5808, 7248, ...]."""
    iso = ISO.replace("budgets = [2.4e7, 9.6e7]", "budgets = [4e10]")
    iso = iso.replace("sizes = 3", "sizes = 7").replace(
        "tokens_per_param = 1", "tokens_per_param = 100"
    )
    text = spec_text(shards, iso).replace("block_size = 16", "block_size = 32")
    (tmp_path / "spec.toml").write_text(text.replace("aspect = 4", "aspect = 8"))
    ctx = design.Context(spec=load_spec(tmp_path / "spec.toml"), vocab=256, data_id="x")
    sizes = [count(m, 256).params for m in design.distinct_shapes(
        ctx, "gpt", design.budget_targets(ctx, 0, 100.0, "gpt"))]  # fmt: skip
    assert sizes == [4064, 5364, 5808, 7248, 11200, 14480, 15920]
    # independently: every shape the rule gives for a target between 5,364 and 7,248
    # parameters, scanned 0.02% apart; the only one in between is the one planned
    seen = {count(design.model_for(ctx, "gpt", 5364 * 1.0002**i), 256).params
            for i in range(1 + int(math.log(7248 / 5364) / math.log(1.0002)))}  # fmt: skip
    assert sorted(seen) == [5364, 5808, 7248]


ISO1 = """kind = "isoflop"
budgets = [2.4e7]
sizes = 3
tokens_per_param = 1
spread = 4
"""


def test_a_planned_runs_flops_are_6nd_of_the_tokens_it_trains_after_rounding(tmp_path, shards):
    """D is rounded to whole steps (64 tokens here), so a run's planned C is 6·N·D of the
    rounded D, not the budget it was aimed at: the dry-run plan, a study's cost table and a
    sweep's progress show this number."""
    _, runs = make_plan(load_spec(write_spec(tmp_path, shards, ISO1)))
    assert len(runs) == 3
    for r in runs:
        assert r.tokens % 64 == 0
        assert r.flops == 6.0 * r.counts.params * r.tokens
    # the rounding is visible at this budget: not every run trains exactly 2.4e7 FLOPs
    assert any(abs(r.flops - 2.4e7) > 1e4 for r in runs)


def _budget_rows(n_best: float, sizes=(250, 500, 1000, 2000, 4000)) -> list[dict]:
    """One IsoFLOP budget C = 6e8 (D = 1e8 / N), loss = (log N - log n_best)^2 + 2."""
    return [
        {"status": "completed", "params": n, "tokens": 6e8 / (6 * n),
         "loss": (math.log(n) - math.log(n_best)) ** 2 + 2}
        for n in sizes
    ]  # fmt: skip


def test_measured_centre_leaves_out_a_run_that_did_not_complete_whatever_its_loss():
    rows = _budget_rows(1000)
    rows[3].update(status="diverged", loss=3.5)  # its last loss, far off the parabola
    # the four completed runs lie on the parabola: vertex N = 1000, D/N = 1e8 / 1000^2
    assert design.measured_centre(rows) == pytest.approx(100.0)


def test_measured_centre_falls_back_to_the_best_run_when_the_vertex_is_past_the_sizes_tried():
    rows = _budget_rows(8000)  # the vertex N = 8000 lies beyond the largest size, 4000
    # not extrapolated to 1e8 / 8000^2 = 1.5625: the best run's own D/N, 1e8 / 4000^2
    assert design.measured_centre(rows) == pytest.approx(6.25)
    rows = _budget_rows(100)  # and below the smallest: the 250 run's, 1e8 / 250^2
    assert design.measured_centre(rows) == pytest.approx(1600.0)


def test_an_hparams_designs_lr_factor_scales_a_set_min_lr_with_the_lr(tmp_path, shards):
    """A factor f multiplies the whole schedule: lr and a [train] min_lr both (the final
    lr stays the same fraction of the peak), so the lr grid compares schedules of one
    shape, not a peak moving against a fixed floor."""
    hp = """kind = "hparams"
shapes = [{n_layer = 1, n_embd = 8, n_head = 2}]
tokens = [1280]
lr_factors = [0.25, 1, 4]
"""
    p = write_spec(tmp_path, shards, hp, train='min_lr = 1e-3\nschedule = "cosine"')
    _, runs = make_plan(load_spec(p))
    assert sorted(r.group["lr_factor"] for r in runs) == [0.25, 1, 4]
    for r in runs:
        f, t = r.group["lr_factor"], r.config.train
        assert t.lr == pytest.approx(1e-2 * (16 / 8) ** 0.5 * f)  # the [hparams] rule × f
        assert t.min_lr == pytest.approx(1e-3 * f)


def test_an_isoflop_budget_whose_sizes_round_to_two_shapes_is_warned_and_one_with_three_is_not(
    tmp_path, shards
):
    """At C = 2e6 the three sizes of spread 16 round to two shapes of the grid (the smallest,
    444 parameters, and 2,144): two points draw no parabola, so the plan warns of that
    budget; at C = 4e6 the three sizes are three shapes and nothing is said."""
    iso = 'kind = "isoflop"\nbudgets = [2e6, 4e6]\nsizes = 3\ntokens_per_param = 1\nspread = 16\n'
    p = tmp_path / "spec.toml"
    p.write_text(spec_text(shards, iso))
    _, runs = make_plan(load_spec(p))
    sizes = design.sizes_per_budget(runs)
    assert sizes == {("gpt", 2e6): {444, 2144}, ("gpt", 4e6): {444, 688, 3016}}
    assert design.thin_budgets(runs) == [
        "[design] budget 2e+06 (gpt): its sizes round to 2 distinct shape(s) (444, 2,144 "
        "parameters); the IsoFLOP fit needs 3 per budget: raise that budget or sizes, or make "
        "[shape] head_size smaller"
    ]


def test_a_fixed_train_min_lr_above_a_sizes_lr_is_capped_at_that_lr(tmp_path, shards):
    """docs/sweeps.md: "`min_lr` (if set in `[train]`) is capped at the run's lr". With
    min_lr = 1e-2 the 8-wide size keeps it (lr 1e-2 · (16/8) ** 0.5 = 0.01414) and the
    40-wide one is capped at its lr 1e-2 · (16/40) ** 0.5 = 0.006325."""
    lad = 'kind = "ladder"\nparams = [3000, 200000]\ntokens_per_param = [1]\n'
    p = tmp_path / "spec.toml"
    p.write_text(spec_text(shards, lad, train="min_lr = 1e-2"))
    _, runs = make_plan(load_spec(p))
    got = {r.config.model.n_embd: (r.config.train.lr, r.config.train.min_lr) for r in runs}
    assert got[8] == pytest.approx((2**0.5 * 1e-2, 1e-2))
    assert got[40] == pytest.approx((0.4**0.5 * 1e-2, 0.4**0.5 * 1e-2))


def test_an_rnns_width_is_solved_at_its_rnn_layers():
    """A 2-layer LSTM (tied, vocab 256, E = H) has 256 H + 16 H² + 16 H + 256 parameters:
    50,176 at H = 48, the nearest to 5e4 (44 gives 43,200, 52 gives 57,664). Solved at one
    layer (8 H² + 264 H + 256) the width would be 64: 83,200 parameters at two layers."""

    m = shapes.shape_for("lstm", 5e4, 256, {"block_size": 32},
                         ShapeRule(width_multiple=4, rnn_layers=2))  # fmt: skip
    assert (m.n_layer, m.n_embd) == (2, 48)
    h = 48
    assert count(m, 256).params == 256 * h + 16 * h * h + 16 * h + 256 == 50176


def test_a_width_is_nearest_its_target_in_log_not_in_parameters():
    """A 1-layer LSTM (vocab 256) of width 4 has 1,440 parameters and of width 8 2,880.
    2,100 is nearer 1,440 in parameters (660 against 780) but nearer 2,880 in log
    (2,880 / 2,100 = 1.37 against 2,100 / 1,440 = 1.46): the rule takes width 8."""

    m = shapes.shape_for("lstm", 2100, 256, {"block_size": 32}, ShapeRule(width_multiple=4))
    assert m.n_embd == 8
    # just below the geometric mean sqrt(1440 · 2880) = 2036.6 the narrower width is nearer
    assert shapes.shape_for("lstm", 2030, 256, {"block_size": 32}, ShapeRule()).n_embd == 4
