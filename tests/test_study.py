"""The study: its spec, and the whole orchestration at toy scale (real training, tiny runs)."""

import dataclasses
import json
import math
import os
import tomllib
from pathlib import Path
from statistics import NormalDist
from types import SimpleNamespace as NS

import numpy as np
import pytest

from scalinglab.errors import ConfigError, SweepError
from scalinglab.laws.settings import FitConfig
from scalinglab.study.builtin import QUICKSTART_TOML
from scalinglab.study.spec import parse_study
from scalinglab.sweep.executors import ExecutorConfig

ROOT = Path(__file__).resolve().parents[1]


def quickstart() -> dict:
    return tomllib.loads(QUICKSTART_TOML)


def ladder() -> dict:
    """examples/wsd_ladder.toml: a WSD ladder study (the `kind = "wsd"` example)."""
    return tomllib.loads((ROOT / "examples" / "wsd_ladder.toml").read_text(encoding="utf-8"))


def test_examples_copy_is_the_builtin_spec():
    assert (ROOT / "examples" / "quickstart.toml").read_text(encoding="utf-8") == QUICKSTART_TOML


def plan_on_a_byte_corpus(d: dict, tmp_path):
    """The plan of study spec `d` and its GPT fits' cost, on a small byte corpus in place
    of the built-in one."""
    from scalinglab.study.run import fit_cost, plan_study, prepare_data

    # (its [tasks] left out: the toy corpus has no passages for next-line, and the plan
    # refuses a task it cannot score)
    d = {**d, "data": {"sources": [str(toy_corpus(tmp_path / "c.txt"))], "tokenizer": "byte"},
         "tasks": {}}  # fmt: skip
    study = parse_study(d, d["name"])
    shards, name = prepare_data(study, tmp_path / "cache")
    plan = plan_study(study, shards, name, tmp_path / "out", 2, 1, estimate=False)
    return plan, fit_cost(plan.parts, "gpt")


def test_quickstart_design_meets_the_issue(tmp_path):
    """The quickstart's plan reaches >= 10x beyond its largest fitted GPT run for <= 0.3x
    the backtest's compute (issue 22), planned on a byte corpus like the built-in one
    (the shapes and tokens depend on the vocabulary and the spec, not on the text)."""
    d = quickstart()
    s = parse_study(d, "quickstart")
    gpt, lstm = s.sweeps["gpt"], s.sweeps["lstm"]
    assert gpt.trunks and len(gpt.budgets) >= 3 and max(gpt.budgets) / min(gpt.budgets) >= 9
    assert gpt.sizes >= 3 and lstm.sizes >= 4 and len(lstm.budgets) >= 2
    assert s.factors == [10, 100, 1000] and len(s.seed_noise.seeds) >= 2
    assert s.data == {"sources": ["stdlib"], "tokenizer": "byte", "stdlib_tests": True}
    assert s.shared["shape"]["min_layers"] == s.shared["shape"]["max_layers"] == 2
    assert s.fit == FitConfig(bootstrap=1000, curvature="per-budget")
    assert s.tasks.names == ["next-line", "recall"]  # the two the sweep says are predictable
    plan, cost = plan_on_a_byte_corpus(d, tmp_path)
    assert s.backtest.budget / cost["largest"] >= 10  # extrapolation
    assert cost["flops"] / s.backtest.budget <= 0.3  # fit_cost_ratio
    sizes = {}
    for p in plan.parts:
        for r in p.runs:
            if p.role == "sweep" and r.arch == "gpt":
                sizes.setdefault(r.group["budget"], set()).add(r.counts.params)
    assert all(len(v) == 3 for v in sizes.values()) and len(sizes) == 3


def test_bad_shape_and_hparams_are_refused_when_the_spec_is_read():
    """[shape] and [hparams] are a sweep's tables, which the study passes on: a bad value
    is refused when the study is read (by `--print-config` too), not once its data are
    prepared and its first sweep is planned."""
    for table, value, message in [
        ("shape", {"aspect": -1}, "[shape]: aspect must be a positive number, got -1"),
        ("hparams", {"lstm": {"rule": "x"}}, "[hparams].lstm: rule 'x' is not one of"),
        ("hparams", {"lrr": 1}, "[hparams]: unknown key(s) lrr"),
    ]:
        d = quickstart()
        d[table] = {**d[table], **value}
        with pytest.raises(SweepError) as e:
            parse_study(d, "q.toml")
        assert str(e.value).startswith(f"q.toml {message}"), str(e.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("recentre", True, "recentre = true: a study plans every budget before any trains"),
     ("flops_convention", "model", "flops_convention = 'model': a study counts every budget")],
)  # fmt: skip
def test_sweep_keys_a_study_cannot_honour_are_refused(key, value, message):
    """A study read `recentre = true` and trained every budget at the spec's centre all the
    same; under flops_convention "model" it planned its seed repeat and backtest as 6·N·D
    runs, so the repeat paired with no sweep run (seed_noise null, no noise interval) and
    the frontier was read at the backtest's 6ND, 3.7% off its own C (found by an audit)."""
    d = quickstart()
    d["sweeps"]["lstm"][key] = value  # the LSTM's sweep has no trunks (which refuse recentre)
    with pytest.raises(SweepError) as e:
        parse_study(d, "q.toml")
    assert str(e.value).startswith(f"q.toml [sweeps.lstm]: {message}"), str(e.value)
    d["sweeps"]["lstm"][key] = {"recentre": False, "flops_convention": "6nd"}[key]
    parse_study(d, "q.toml")  # the defaults, written out, are fine


def test_a_budget_of_fewer_than_3_shapes_is_refused(tmp_path):
    """An IsoFLOP budget whose sizes round to fewer than 3 shapes of the grid would be
    skipped by the fit, and the allocation drawn through the others (a BPE ladder's
    planned a 2.2M-parameter run on 1.6M tokens so): refused before anything runs."""
    d = quickstart()
    # 1e9: every target rounds to width 8, the smallest shape; the largest takes the next
    # shape up (width 16), and nothing lies below width 8
    d["sweeps"]["gpt"]["budgets"] = [1e9, 2.3e11, 7e11]
    d["seed_noise"]["budget"] = 2.3e11
    with pytest.raises(SweepError) as e:
        plan_on_a_byte_corpus(d, tmp_path)
    assert str(e.value) == (  # the spec's name (its file, from the CLI) in front
        "quickstart [sweeps.gpt] budget 1e+09: its sizes round to 2 distinct shape(s) of the grid "
        "(4,832, 12,736 parameters); its parabola needs 3: raise that budget or sizes, "
        "or make [shape] head_size smaller"
    )


def test_targets_that_round_to_one_shape_take_the_next_shape_outward(tmp_path):
    """The quickstart's budgets x1.3 (`--minutes 13`): its smallest budget's targets round
    to 12,736, 12,736 and 23,712 parameters on the 2-layer grid, which was refused (2
    shapes). The duplicate below the middle takes the next shape down; at the spec's own
    budgets no target collides, and the plan is as before."""
    d = {**quickstart(), "minutes": 10.0 / 1.3}  # the quickstart's budgets x1.3
    for s in d["sweeps"].values():
        s["budgets"] = [b * 1.3 for b in s["budgets"]]
    d["seed_noise"] = {**d["seed_noise"], "budget": d["seed_noise"]["budget"] * 1.3}
    plan, _ = plan_on_a_byte_corpus(d, tmp_path)
    sizes = {}
    for p in plan.parts:
        for r in p.runs:
            if p.role == "sweep" and r.arch == "gpt":
                sizes.setdefault(r.group["budget"], set()).add(r.counts.params)
    assert sizes[9.75e10] == {4832, 12736, 23712}
    assert all(len(v) == 3 for v in sizes.values())


def test_minutes_that_break_the_plan_name_the_flag_and_the_minutes_that_work(tmp_path):
    """`quickstart --minutes 3` blamed the built-in spec's [design] (a budget of 2 shapes),
    and `--minutes 1e-3` too (a run under one batch): the user can change only the flag.
    The error names it and the nearest minutes whose plans succeed."""
    from scalinglab.study.run import plan_study, prepare_data

    d = {**quickstart(), "data": {"sources": [str(toy_corpus(tmp_path / "c.txt"))],
                                  "tokenizer": "byte"}, "tasks": {}}  # fmt: skip
    spec = parse_study(d, "quickstart")
    shards, name = prepare_data(spec, tmp_path / "cache")

    def plan(minutes):
        return plan_study(spec.scaled(minutes), shards, name, tmp_path / "o", 2, 1, False)

    with pytest.raises(SweepError) as e:
        plan(3)  # the smallest budget's sizes at the grid's smallest shapes
    assert str(e.value) == (
        "minutes 3 scales the spec's design past what it can plan ([sweeps.gpt] budget "
        "2.25e+10: its sizes round to 2 distinct shape(s) of the grid (4,832, 12,736 "
        "parameters); its parabola needs 3: raise that budget or sizes, or make [shape] "
        "head_size smaller); it plans at minutes 3.3"
    )
    assert plan(3.3).parts  # what it suggests does plan
    for minutes in (5, 11.3, 12, 13.5, 15.7, 30, 60, 120):  # was refused at 11.3-15.7
        assert plan(minutes).parts, minutes
    from scalinglab.study.run import _round_values  # the values it tries, nearest first

    assert _round_values(5.1, 1)[:3] == [5.2, 5.3, 5.4] and _round_values(10, -1)[:2] == [9.9, 9.8]
    assert _round_values(11.3, 1)[0] == 12 and max(_round_values(2, 1)) == 6
    with pytest.raises(SweepError) as e:
        plan(1e-3)
    assert str(e.value) == (
        "minutes 0.001 is too small: the gpt of 4832 parameters would train on 259 tokens, "
        "less than one batch (1024 tokens: batch_size × grad_accum × block_size); raise "
        "minutes"
    )


def test_a_seed_repeat_of_a_trunk_branch_trains_as_the_branch_does(tmp_path):
    """A repeat of a WSD branch at a budget above the smallest got the warmup its own
    length gives (5% of its steps) where the branch has its trunk's: the seed noise was
    measured between runs that differed in more than the seed. Now every train setting
    but the seed (and the resume bookkeeping) is the branch's."""
    d = quickstart()
    d["seed_noise"] = {**d["seed_noise"], "budget": 2.3e11}
    plan, _ = plan_on_a_byte_corpus(d, tmp_path)
    branches = {r.counts.params: r for p in plan.parts if p.role == "sweep"
                for r in p.runs if r.group.get("budget") == 2.3e11}  # fmt: skip
    repeats = [r for p in plan.parts if p.role == "seed" for r in p.runs]
    assert len(repeats) == 2
    for r in repeats:
        b = branches[r.counts.params]
        mine, theirs = dataclasses.asdict(r.config.train), dataclasses.asdict(b.config.train)
        differ = {k for k in mine if mine[k] != theirs[k]}
        assert differ <= {"seed", "tokens", "steps", "branch_from", "resume_from"}, differ
        assert r.config.train.warmup == b.config.train.warmup and r.tokens == b.tokens
        assert r.config.train.warmup != round(0.05 * r.tokens / 1024)  # not its own 5%


def test_a_ladders_seed_repeat_is_its_targets_own_run_where_the_ladder_moved_it(tmp_path):
    """A WSD ladder whose targets 3000 and 3300 round to one shape moves 3000 off it (to
    1,404 parameters). The [seed_noise] repeat of 3000 was planned with that target alone,
    which took the shape back: it trained target 3300's model (3,192 parameters), and the
    noise of that size was read as 3000's (a metamorphic audit). Each repeat is now the
    sweep's own run of its target, seed apart."""
    import tomllib

    d = tomllib.loads(
        """
format_version = 1
name = "tw"
minutes = 1
workers = 2
[model]
block_size = 32
[train]
batch_size = 16
dtype = "float32"
eval_tokens = 4096
deterministic = true
[shape]
aspect = 8
max_layers = 1
head_size = 4
[hparams]
lr = 1e-2
ref_width = 16
lr_power = 0.5
warmup_frac = 0.05
[sweeps.gpt]
kind = "wsd"
params = [3000, 3300, 5364, 7920]
tokens_per_param = [12, 24, 48]
[backtest]
arch = "gpt"
budget = 1e11
predictor = "ray"
tokens_per_param = 48
[seed_noise]
arch = "gpt"
params = 3000
seeds = [101]
[fit]
bootstrap = 20
"""
    )
    plan, _ = plan_on_a_byte_corpus(d, tmp_path)
    sweep = [r for p in plan.parts if p.role in ("sweep", "trunk") and "sweeps" in p.folder
             for r in p.runs]  # fmt: skip
    repeats = [r for p in plan.parts if p.folder.startswith("seed") for r in p.runs]
    assert len(repeats) == 4  # the trunk and its three branches
    for r in repeats:
        (twin,) = [s for s in sweep if s.config.model == r.config.model and s.tokens == r.tokens]
        assert twin.group["target_params"] == 3000 and r.counts.params == 1404
        mine, theirs = dataclasses.asdict(r.config.train), dataclasses.asdict(twin.config.train)
        assert {k for k in mine if mine[k] != theirs[k]} <= {"seed", "branch_from", "resume_from"}


def test_a_seed_repeat_must_be_another_run(tmp_path):
    """A [seed_noise] seed equal to the sweep's own [train] seed "repeats" the sweep's run
    with the same seed: the same run, whose zero difference shrank the measured noise (a
    study at seed 1 with the default seeds [1, 2] did so). Refused, as is a seed listed
    twice; other seeds plan repeats that differ from the sweep's run in seed and name."""
    for sub in "abc":
        (tmp_path / sub).mkdir()
    d = quickstart()
    d["train"] = {**d["train"], "seed": 1}
    with pytest.raises(SweepError) as e:
        plan_on_a_byte_corpus(d, tmp_path / "a")
    assert str(e.value) == (
        "quickstart [seed_noise] seeds [1, 2]: 1 is the seed [sweeps.gpt] trains with ([train] seed), "
        "so its repeat would be the same run: choose seeds other than 1"
    )
    d["seed_noise"] = {**d["seed_noise"], "seeds": [2, 2]}
    with pytest.raises(SweepError) as e:
        plan_on_a_byte_corpus(d, tmp_path / "b")
    assert (
        str(e.value)
        == "quickstart [seed_noise] seeds [2, 2]: 2 listed twice; each repeat needs a seed of its "
        "own"
    )
    d["seed_noise"]["seeds"] = [2, 3]
    plan, _ = plan_on_a_byte_corpus(d, tmp_path / "c")
    sweep = next(p for p in plan.parts if p.role == "sweep" and p.spec.archs == ["gpt"])
    repeats = [r for p in plan.parts if p.role == "seed" for r in p.runs]
    assert [r.config.train.seed for r in repeats] == [2, 3]
    assert {r.config.train.seed for r in sweep.runs} == {1}
    assert not {r.name for r in repeats} & {r.name for r in sweep.runs}


def test_ladder_example_meets_the_issue(tmp_path):
    """examples/ladder.toml, the longer study, plans >= 30x beyond its largest fitted run
    for <= 0.1x the backtest's compute (issue 22), planned on a byte corpus like the
    built-in one."""
    d = tomllib.loads((ROOT / "examples" / "ladder.toml").read_text(encoding="utf-8"))
    s = parse_study(d, "ladder")
    gpt = s.sweeps["gpt"]
    assert gpt.trunks and len(gpt.budgets) >= 3 and s.backtest.predictor == "frontier"
    assert s.data == {"sources": ["stdlib"], "tokenizer": "byte", "stdlib_tests": True}
    assert set(s.sweeps) == {"gpt"} and len(s.seed_noise.seeds) >= 2
    _, cost = plan_on_a_byte_corpus(d, tmp_path)
    assert s.backtest.budget / cost["largest"] >= 30  # extrapolation
    assert cost["flops"] / s.backtest.budget <= 0.1  # fit_cost_ratio


def test_wsd_ladder_example_is_a_decade_ladder():
    s = parse_study(ladder(), "ladder")
    gpt = s.sweeps["gpt"]
    assert gpt.kind == "wsd" and len(gpt.params) >= 5 and len(gpt.tokens_per_param) >= 3
    assert max(gpt.params) / min(gpt.params) >= 10  # a decade of N
    # the largest run's C = 6·N·r·N at the target sizes: the backtest is >= 30x it
    assert s.backtest.budget >= 30 * 6 * max(gpt.params) ** 2 * max(gpt.tokens_per_param)
    # the ray: the backtest's D/N is the ladder's largest ratio
    assert s.backtest.predictor == "ray" and s.backtest.tokens_per_param == 48
    assert max(gpt.tokens_per_param) == 48
    assert s.seed_noise.params in gpt.params and len(s.seed_noise.seeds) >= 2


def isoflop_study() -> dict:
    return quickstart()


def test_curvature_is_refused_where_no_sweep_has_budgets():
    """Every sweep a WSD ladder: no IsoFLOP profiles, so [fit] curvature changed nothing."""
    d = ladder()
    d["fit"] = {"curvature": "shared"}
    with pytest.raises(SweepError, match=r"\[fit\]: curvature is not used by this study"):
        parse_study(d, "ladder")
    d = isoflop_study()
    d["fit"] = {"curvature": "shared"}
    assert parse_study(d, "quickstart").fit.curvature == "shared"


def test_minutes_scales_every_budget():
    s = parse_study(isoflop_study(), "quickstart").scaled(5)
    assert s.sweeps["gpt"].budgets == [3.75e10, 1.15e11, 3.5e11]
    assert s.backtest.budget == 5e12 and s.seed_noise.budget == 3.75e10
    assert s.minutes == 5


def test_minutes_scales_a_ladder_by_its_compute():
    # C = 6·r·N² at fixed ratios: half the minutes, N / sqrt(2), every run's C halved
    d = ladder()
    d["minutes"] = 20
    s = parse_study(d, "ladder").scaled(10)
    sizes = d["sweeps"]["gpt"]["params"]
    assert s.sweeps["gpt"].params == pytest.approx([n / 2**0.5 for n in sizes])
    assert s.sweeps["gpt"].tokens_per_param == d["sweeps"]["gpt"]["tokens_per_param"]
    assert s.seed_noise.params == pytest.approx(d["seed_noise"]["params"] / 2**0.5)
    assert s.backtest.budget == d["backtest"]["budget"] / 2


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kind": "cosine"}, "kind must be one of isoflop, wsd, got 'cosine'"),
        ({"params": [1e4, 2e4]}, "params must list at least 3 sizes"),
        ({"tokens_per_param": [10]}, "tokens_per_param must list at least 2 ratios"),
        ({"tokens_per_param": [10, -1]}, "tokens_per_param must hold positive numbers, got -1"),
        # a size typed twice passed the 3-size check and its copy moved to another shape
        ({"params": [1e4, 1e4, 2e4, 4e4]}, "params: 10000 is given twice (each value is"),
        ({"cooldown_frac": 1.5}, "cooldown_frac must be a number in (0, 1), got 1.5"),
        ({"budgets": [1e12, 3e12]}, "unknown key(s) budgets"),
    ],
)
def test_bad_ladder_names_the_key(change, message):
    d = ladder()
    d["sweeps"]["gpt"].update(change)
    with pytest.raises(SweepError, match=r"ladder \[sweeps.gpt\]") as e:
        parse_study(d, "ladder")
    assert message in str(e.value)


@pytest.mark.parametrize(
    "table, change, message",
    [
        ("backtest", {"predictor": "frontier"}, 'predictor "frontier" needs IsoFLOP budgets'),
        ("seed_noise", {"params": 2e4}, "give params, one of its sizes"),
        ("seed_noise", {"params": 0, "budget": 1e12}, "give params, one of its sizes"),
        ("backtest", {"tokens_per_param": -1}, "tokens_per_param must be a number >= 0"),
        ("backtest", {"budget": 1.5e12}, "budget 1.5e+12 must be at least 3x the largest run"),
    ],
)
def test_bad_ladder_backtest_or_seeds(table, change, message):
    d = ladder()
    d[table].update(change)
    with pytest.raises(SweepError, match=f"ladder \\[{table}\\]") as e:
        parse_study(d, "ladder")
    assert message in str(e.value)


def test_predictor_defaults_to_the_sweeps_own():
    d = ladder()
    del d["backtest"]["predictor"]
    assert parse_study(d, "q").backtest.predictor == "chinchilla"
    d = isoflop_study()
    del d["backtest"]["predictor"]
    assert parse_study(d, "q").backtest.predictor == "frontier"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"backtest": {"budget": 1.5e12}}, "at least 3x the largest budget"),
        ({"sweeps": {"gpt": {"budgets": [1e12]}}}, "at least 2 FLOP budgets"),
        ({"sweeps": {"gpt": {"budgets": [1e11, 1e12], "size": 4}}}, "unknown key(s) size"),
        # it said "budgets must list at least 2 FLOP budgets", never naming the typo
        ({"sweeps": {"gpt": {"budgts": [1e11, 1e12]}}}, "[sweeps.gpt]: unknown key(s) budgts"),
        ({"bogus": 1}, "unknown key(s) bogus"),
        ({"backtest": {"budget": 1e13, "predictor": "magic"}}, "predictor must be one of"),
        ({"seed_noise": {"budget": 1e12}}, "one of the budgets"),
        # every table goes through the config mechanism: unknown keys named with the known
        ({"backtest": {"budget": 1e13, "colour": 1}}, "[backtest]: unknown key(s) colour (known:"),
        ({"backtest": {"budget": 1e13, "alone": "yes"}}, "[backtest]: alone must be bool, got str"),
        ({"plan": {"factors": [10], "when": 1}}, "[plan]: unknown key(s) when (known: factors)"),
        ({"plan": {"factors": []}}, "[plan]: factors is empty: give the multiples"),
        (
            {"data": {"sources": ["stdlib"], "tokeniser": "byte"}},
            "[data]: unknown key(s) tokeniser",
        ),
        ({"data": {"sources": ["stdlib"], "tokenizer": "morse"}}, "'morse' is not one of"),
        ({"sweeps": {"gpt": {"budgets": [1e11, 1e12], "spread": -2}}}, "[sweeps.gpt]: spread"),
        # both said "sizes must be an integer and spread >= 1", showing neither value
        (
            {"sweeps": {"gpt": {"budgets": [1e11, 1e12], "sizes": 4.5}}},
            "[sweeps.gpt]: sizes must be a whole number of sizes, got 4.5",
        ),
        (
            {"sweeps": {"gpt": {"budgets": [1e11, 1e12], "spread": 0.5}}},
            "[sweeps.gpt]: spread must be >= 1 (the largest size over the smallest), got 0.5",
        ),
        # a number where a list belongs was a TypeError traceback ('int' is not iterable)
        ({"plan": {"factors": 10}}, "[plan]: factors must be a list of numbers, like"),
        # named neither the table nor the key ('quickstart: every plan factor must be ...')
        (
            {"plan": {"factors": [10, "100"]}},
            "quickstart [plan]: each of factors must be a positive number, got '100'",
        ),
        (
            {"plan": {"factors": [10, -1]}},
            "quickstart [plan]: each of factors must be a positive number, got -1",
        ),
        # planned twice, in two rows of the report's plan table
        ({"plan": {"factors": [10, 10.0]}}, "quickstart [plan]: factors: 10 is given twice"),
        ({"seed_noise": {"seeds": 1}}, "[seed_noise]: seeds must be a list of integers"),
        ({"tasks": {"names": 3}}, "[tasks]: names must be a list of task names, like"),
        # taken and never used; caught only once planned; a number or "" taken as a name
        ({"fit": {"tie": ["alpha=beta"]}}, "[fit]: tie is not used by a study: its laws"),
        ({"fit": {"fix": ["E=1.5"]}}, "[fit]: fix is not used by a study: its laws"),
        # refused by the fits only once every run had trained (ConfigError, not caught)
        (
            {"fit": {"decay_factor": 0.99}},
            "[fit]: decay_factor is not used by a study: it is a setting of lr-annealing",
        ),
        ({"fit": {"lr_fill": "previous"}}, "[fit]: lr_fill is not used by a study"),
        # the frontier's and the ray's power laws are fitted without one, whatever it said
        ({"fit": {"floor": False}}, "[fit]: floor is not used by a study: its frontier"),
        (
            {"sweeps": {"gpt": {"budgets": [1e11, 3e11, 1e11]}}},
            "[sweeps.gpt]: budgets: 1e+11 is given twice (each budget is swept once)",
        ),
        ({"name": 3}, "quickstart: name must be a non-empty string, got 3"),
        ({"name": " "}, "quickstart: name must be a non-empty string, got ' '"),
    ],
)
def test_bad_spec_names_the_key(change, message):
    d = isoflop_study()
    for k, v in change.items():
        d[k] = v
    with pytest.raises(SweepError, match="quickstart") as e:
        parse_study(d, "quickstart")
    assert message in str(e.value)


@pytest.mark.parametrize(
    "fit, message",
    [
        ({"curvature": "flat"}, "quickstart [fit]: curvature 'flat' is not one of per-budget"),
        # the spelling of study files written before the fit settings became FitConfig
        ({"isoflop_curvature": "flat"}, "quickstart [fit]: curvature 'flat' is not one of"),
        (
            {"bootstrap": -1},
            "quickstart [fit]: bootstrap must be 0 (no intervals) or >= 10 resamples, got -1",
        ),
        ({"bootstrap": "many"}, "quickstart [fit]: bootstrap must be int, got str 'many'"),
        ({"resamples": 10}, "quickstart [fit]: unknown key(s) resamples (known: boot_starts,"),
        ({"n_kind": "N"}, "quickstart [fit]: n_kind = 'N': expected one of params, params_nonemb"),
        # both read, the later one kept, whichever it was
        (
            {"curvature": "per-budget", "isoflop_curvature": "shared"},
            "quickstart [fit]: isoflop_curvature and curvature are one setting",
        ),
    ],
)
def test_bad_fit_table_is_a_one_line_config_error(fit, message):
    d = quickstart()
    d["fit"] = fit
    with pytest.raises(ConfigError) as e:
        parse_study(d, "quickstart")
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_an_unknown_fit_key_is_named_with_every_key_the_table_takes():
    """The list of known keys was FitConfig's, without n_kind, a key of a study's [fit]."""
    d = quickstart()
    d["fit"] = {"n_knid": "params"}
    with pytest.raises(ConfigError, match=r"unknown key\(s\) n_knid \(known: .*\bn_kind\b"):
        parse_study(d, "quickstart")


def test_fit_table_is_the_fit_config():
    d = quickstart()
    d["fit"] = {"bootstrap": 50, "isoflop_curvature": "shared"}
    assert parse_study(d, "quickstart").fit == FitConfig(bootstrap=50, curvature="shared")
    del d["fit"]
    assert parse_study(d, "quickstart").fit == FitConfig()


def test_fit_n_kind_is_the_studys_count_and_is_written_only_when_given():
    from scalinglab.study.spec import study_dict

    d = quickstart()
    d["fit"] = {"bootstrap": 50, "n_kind": "params_nonembed"}
    s = parse_study(d, "quickstart")
    assert s.fit == FitConfig(bootstrap=50) and s.n_kind == "params_nonembed"
    assert study_dict(s)["fit"]["n_kind"] == "params_nonembed"
    del d["fit"]["n_kind"]  # the default: study.json as before the key existed
    s = parse_study(d, "quickstart")
    assert s.n_kind == "params" and "n_kind" not in study_dict(s)["fit"]


def test_the_backtest_shape_counted_without_embeddings_is_its_own_optimum(tmp_path):
    """With [fit] n_kind = "params_nonembed" the fits' C is 6·N_ne·D, which depends on the
    shape: the backtest's shape is the allocation at its own C (a fixed point), where the
    budget C is 6·N·D in all its parameters."""
    from scalinglab.models.counting import count
    from scalinglab.plan.analysis import allocation, fit_arch
    from scalinglab.study.run import _allocate, plan_study, prepare_data
    from scalinglab.sweep import driver
    from scalinglab.sweep.shapes import shape_for
    from tests.plan.test_analysis import kaplan_rows

    corpus = toy_corpus(tmp_path / "corpus.txt")
    study = parse_study(tomllib.loads(TOY.format(corpus=corpus)), "toy")
    shards, name = prepare_data(study, tmp_path / "cache")
    plan = plan_study(study, shards, name, tmp_path / "out", 2, 1, estimate=False)
    spec = next(p for p in plan.parts if p.role == "sweep").spec
    vocab = driver.open_context(spec).vocab
    fits = fit_arch("gpt", kaplan_rows(), FitConfig(bootstrap=0), "params_nonembed")
    C = 3e9
    n, how, model = _allocate(fits, C, "params_nonembed", vocab, spec)
    c = count(model, vocab)
    assert how == "isoflop" and c.params_nonembed < 0.8 * c.params  # a toy: mostly embeddings
    assert (n, how) == allocation(fits, C * c.params_nonembed / c.params)
    assert model == shape_for("gpt", n, vocab, spec.model, spec.shape, "params_nonembed")
    assert abs(math.log(c.params_nonembed / n)) < math.log(1.6)  # the width grid's nearest


def test_a_frontier_prediction_is_also_made_with_n_counted_the_other_way():
    """Every study that predicts by the frontier predicts its backtest run with N counted
    the other way too, before training, with its predictive interval (the corpus and
    tokenizer decide which count extrapolates better: docs/study.md)."""
    from scalinglab.models.counting import Counts
    from scalinglab.plan.analysis import fit_arch, predict, predictive_interval
    from scalinglab.study.run import _other_count
    from tests.plan.test_analysis import E_SIZE, kaplan_rows

    study = parse_study(quickstart(), "quickstart")
    rows, noise = kaplan_rows(), {"rel_std": 0.004}
    ne, D = 5e5, 4e7
    counts = Counts(params=int(ne + E_SIZE * math.sqrt(ne)), params_nonembed=int(ne),
                    flops_per_token=0)  # fmt: skip
    ((key, p),) = _other_count(study, rows, "gpt", counts, D, "params", noise).items()
    assert key == "frontier, N without embeddings"
    assert p["predicted_loss"] == pytest.approx((1e14 / (6 * int(ne) * D)) ** 0.1, rel=1e-6)
    lo, hi = p["prediction_interval"]
    assert p["prediction_interval"] == predictive_interval(p, noise, 0.95)
    assert lo < p["predicted_loss"] < hi
    ((key, p),) = _other_count(study, rows, "gpt", counts, D, "params_nonembed", noise).items()
    n = counts.params
    want = predict(fit_arch("gpt", rows, study.fit), n, D, 6.0 * n * D, "frontier", noise)
    assert key == "frontier, all parameters"
    assert p["predicted_loss"] == want["predicted_loss"]
    one = [r for r in rows if r["budget"] == rows[0]["budget"]]  # one budget: no frontier
    ((key, p),) = _other_count(study, one, "gpt", counts, D, "params", noise).items()
    assert "predicted_loss" not in p and "at least 2 budgets" in p["error"]


def toy_corpus(path: Path) -> Path:
    """A bigram 'language' of 40 made-up words: structure a tiny model learns in seconds."""
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghijklmnop"), rng.integers(2, 6))) for _ in range(40)]
    P = rng.dirichlet(np.full(40, 0.2), size=40)
    w, out = 0, []
    for i in range(30000):
        w = rng.choice(40, p=P[w])
        out.append(words[w] + (".\n" if i % 10 == 9 else " "))
    path.write_text("".join(out))
    return path


TOY = """
format_version = 1
name = "toy"
workers = 2
[data]
sources = ["{corpus}"]
tokenizer = "byte"
[model]
block_size = 16
[train]
batch_size = 4
log_every = 5
deterministic = true
[shape]
aspect = 1
max_layers = 1
head_size = 4
[hparams]
lr = 3e-3
ref_width = 16
[sweeps.gpt]
budgets = [3e8, 1e9]
sizes = 4
tokens_per_param = 1.5
spread = 8
[backtest]
budget = 3e9
[seed_noise]
budget = 3e8
seeds = [7]
[fit]
bootstrap = 10
"""


@pytest.mark.slow
def test_toy_study_end_to_end(tmp_path, capsys):
    from scalinglab.study.run import make_prediction, plan_study, prepare_data, run_study

    corpus = toy_corpus(tmp_path / "corpus.txt")
    study = parse_study(tomllib.loads(TOY.format(corpus=corpus)), "toy")
    out, cache = tmp_path / "study", tmp_path / "cache"
    events = []
    summary = run_study(study, out, cache, listener=lambda e, info: events.append((e, info)))

    bt = summary["backtest"]
    pred = json.loads((out / "prediction.json").read_text())
    assert bt["status"] == "completed" and bt["predicted_loss"] == pred["predicted_loss"]
    assert bt["rel_error"] == abs(bt["predicted_loss"] - bt["actual_loss"]) / bt["actual_loss"]
    lo, hi = pred["interval"]
    assert bt["in_interval"] == (lo <= bt["actual_loss"] <= hi)
    # the seed noise: the seed repeat with the sweep run it repeats (one group), the same
    # in the prediction (made before the backtest trained) as in the report
    assert summary["seed_noise"]["dof"] == 1
    assert pred["seed_noise_rel_std"] == pytest.approx(summary["seed_noise"]["rel_std"], rel=1e-12)
    # the prediction was on disk before the backtest's run folder was made
    run_dir = out / "backtest" / "runs" / pred["run_name"]
    assert (out / "prediction.json").stat().st_mtime <= (run_dir / "sweep.json").stat().st_mtime
    order = [
        e
        for e, info in events
        if e == "prediction" or (isinstance(info, dict) and info.get("name") == pred["run_name"])
    ]
    assert order[:2] == ["prediction", "run_started"]
    # [backtest] alone (the default): it started after every other run had ended, and
    # trained on all the study's threads (2 workers x this machine's cores // 2)
    started = [i for i, (e, info) in enumerate(events)
               if e == "run_started" and info["name"] == pred["run_name"]]  # fmt: skip
    others = [i for i, (e, info) in enumerate(events)
              if e == "run_finished" and info["name"] != pred["run_name"]]  # fmt: skip
    assert len(others) == 9 and started[0] > max(others)
    # the progress lines count the backtest in their total from the first ([1/10], not
    # [1/9] ... [9/9] then [10/10])
    totals = [(info["index"], info["total"]) for e, info in events if e == "run_finished"]
    assert totals == [(i, 10) for i in range(1, 11)]
    threads = ExecutorConfig(workers=2).threads_per_run
    config = tomllib.loads((run_dir / "config.toml").read_text())
    # (no more than this machine's cores: 2 workers of 1 thread on 1 core give it 1)
    assert config["train"]["threads"] == min(2 * threads, max(threads, os.cpu_count() or 1))
    sweep_run = next((out / "sweeps" / "gpt" / "runs").iterdir())
    assert tomllib.loads((sweep_run / "config.toml").read_text())["train"]["threads"] == threads
    # exactly the predicted run was trained
    result = json.loads((run_dir / "result.json").read_text())
    assert result["params"] == pred["params"] and result["tokens"] == pred["tokens"]
    assert pred["flops"] == 6.0 * pred["params"] * pred["tokens"] >= 3 * 1e9 * 0.99
    assert summary["seed_noise"]["dof"] == 1
    assert (out / "report.html").exists() and (out / "summary.json").exists()
    # issue 22's numbers: every fitted run (the sweep and the seed repeat) from scratch
    fitted = [json.loads(p.read_text()) for part in ("sweeps/gpt", "seed")
              for p in (out / part / "runs").glob("*/result.json")]  # fmt: skip
    c = [6.0 * r["params"] * r["tokens"] for r in fitted]
    assert len(fitted) == 9  # 4 sizes x 2 budgets, and the seed repeat
    assert bt["extrapolation"] == pytest.approx(pred["flops"] / max(c), rel=1e-12)
    assert bt["fit_cost_ratio"] == pytest.approx(sum(c) / pred["flops"], rel=1e-12)
    # the toy corpus holds 129k training tokens, fewer than the backtest's: it repeats them,
    # so the study predicted with the data-constrained law, the others beside it
    assert pred["design"] == "isoflop" and pred["repeats_data"] is True
    assert pred["tokens"] > pred["unique_tokens"] and pred["predictor"] == "data-constrained"
    assert set(pred["other_predictions"]) == {"chinchilla", "frontier"}
    assert pred["other_predictions"]["chinchilla"]["predicted_loss"] < pred["predicted_loss"]

    # resumable: a rerun finds every run done and reuses the prediction as it is
    before = (out / "prediction.json").read_bytes()
    shards, name = prepare_data(study, cache)
    plan = plan_study(study, shards, name, out, 2, 1, estimate=False)
    assert {r.name for _, r in plan.pool_runs} <= plan.done
    # the plan's backtest is the predicted run, done (it was a guess of another size, to
    # train: the rerun's plan said 5 minutes to go)
    assert plan.backtest_known and plan.backtest_guess.name == pred["run_name"] in plan.done
    assert plan.seconds("gpt")["backtest"] == 0.0
    # another spec on this folder (--minutes twice the spec's) is refused before anything
    # is planned or written; it rewrote study.json and trained its own runs beside these
    manifest = (out / "study.json").read_bytes()
    with pytest.raises(SweepError, match=r"holds a study of another spec \(backtest.budget"):
        plan_study(study.scaled(2 * study.minutes), shards, name, out, 2, 1, estimate=False)
    assert (out / "study.json").read_bytes() == manifest
    # a run folder the study does not plan (an earlier version's LSTM runs had other ids)
    # was read by the report with the study's own, and entered the fits beside them
    stray = out / "sweeps" / "gpt" / "runs" / "gpt-n4.1k-c3e9-0badcafe"
    stray.mkdir()
    with pytest.raises(SweepError, match=rf"^{out / 'sweeps/gpt/runs'} holds 1 run folder\(s\) "
                       r"this study does not plan \(gpt-n4.1k-c3e9-0badcafe: made by another"):  # fmt: skip
        plan_study(study, shards, name, out, 2, 1, estimate=False)
    stray.rmdir()
    again, _ = make_prediction(study, plan, out)
    assert again == pred and (out / "prediction.json").read_bytes() == before
    # and a rerun of the finished study adds its seconds to the study's wall time (it
    # replaced the study's minutes with its own few seconds)
    wall = summary["wall_seconds"]
    first = next(info for e, info in events if e == "prediction")
    assert first["reused"] is False
    events.clear()
    rerun = run_study(study, out, cache, listener=lambda e, info: events.append((e, info)))
    assert next(info for e, info in events if e == "prediction")["reused"] is True
    assert rerun["backtest"] == bt and rerun["wall_seconds"] >= wall > 0
    assert json.loads((out / "study.json").read_text())["wall_seconds"] == rerun["wall_seconds"]
    # the runs table of the study folder: every run of its parts, with its role (it
    # found none: "no run folders found")
    from scalinglab.sweep.table import runs_table

    roles = [r["role"] for r in runs_table(out)]
    assert sorted(roles) == ["backtest", "seed"] + ["sweep"] * 8
    # --json: stdout is one JSON document, the summary (the plan's rows came first)
    from scalinglab.cli import main

    capsys.readouterr()
    toml = tmp_path / "toy.toml"
    toml.write_text(TOY.format(corpus=corpus))
    assert main(["study", str(toml), "--out", str(out), "--cache", str(cache), "--json"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["backtest"] == bt
    # it says the prediction is the one made before the run, not a new one
    assert f"backtest prediction (reused: prediction.json, written {pred['written_at']} " in (
        printed.err
    )


def test_cli_bad_spec_is_one_line_error(tmp_path, capsys):
    from scalinglab.cli import main

    bad = tmp_path / "s.toml"
    bad.write_text(QUICKSTART_TOML.replace("budget = 1e13 ", "budget = 1.5e12 "))
    assert main(["study", str(bad), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "s.toml [backtest]: budget 1.5e+12 must be at least 3x" in err
    ladder_toml = (ROOT / "examples" / "wsd_ladder.toml").read_text(encoding="utf-8")
    assert "budget = 2.65e13 " in ladder_toml
    bad.write_text(ladder_toml.replace("budget = 2.65e13 ", "budget = 1e12 "))
    assert main(["study", str(bad), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    # the ladder's largest run: 6 · 54880 · 48 · 54880 = 8.674e11 FLOPs at its target size
    assert "s.toml [backtest]: budget 1e+12 must be at least 3x the largest run's C" in err
    assert "(8.67e+11)" in err
    assert main(["quickstart", "--out", str(tmp_path / "o"), "--minutes", "0"]) == 2
    assert "--minutes must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_missing_data_names_the_spec_and_key(tmp_path, capsys):
    # was "error: spec: data = '...'" (a sweep's name for it) and "error: nope.txt: no such
    # file or folder": neither named the study's file nor its [data] table
    from scalinglab.cli import main

    bad, nope = tmp_path / "s.toml", tmp_path / "nope"
    old = 'sources = ["stdlib"]'
    assert old in QUICKSTART_TOML
    for given, message in [
        (f"shards = {str(nope)!r}", f"[data] shards = {str(nope)!r}: shards folder not found"),
        (f"sources = [{str(nope)!r}]", f"[data]: {nope}: no such file or folder"),
        # both: the shards were used and the sources silently left unread
        (f"{old}\nshards = {str(nope)!r}",
         ": [data] has both sources (to prepare) and shards (prepared): keep one"),
    ]:  # fmt: skip
        bad.write_text(QUICKSTART_TOML.replace(old, given, 1))
        out = tmp_path / "o"
        args = ["study", str(bad), "--out", str(out), "--cache", str(tmp_path / "c")]
        assert main([*args, "--dry-run"]) == 2
        err = capsys.readouterr().err
        sep = "" if message.startswith(":") else " "
        assert err.startswith(f"error: {bad}{sep}{message}") and err.count("\n") == 1
        assert not out.exists()


def test_a_cache_under_a_file_names_the_cache_not_out(tmp_path, capsys):
    # prepare's message named its own flag: "SPEC [data]: --out CACHE/NAME: F is a file",
    # though the study's --out was another folder and the cache came from --cache
    from scalinglab.cli import main

    spec, afile = tmp_path / "s.toml", tmp_path / "afile"
    spec.write_text(QUICKSTART_TOML)
    afile.write_text("kept")
    cache = afile / "cache"
    argv = ["study", str(spec), "--out", str(tmp_path / "o"), "--cache", str(cache), "--dry-run"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the shards folder {cache / 'stdlib-byte'}")  # -HASH of options
    assert err.endswith(
        f" in the cache (--cache, SCALINGLAB_CACHE): {afile} is a file, not a folder\n"
    )
    assert err.count("\n") == 1
    assert afile.read_text() == "kept" and not (tmp_path / "o").exists()


def test_cli_out_that_is_a_file_is_refused_first(tmp_path, capsys):
    # --dry-run planned into it without a word, and a run failed only after the corpus was
    # prepared and its steps timed: "error: FILE: File exists (something else is in the way)"
    from scalinglab.cli import main

    spec, out = tmp_path / "s.toml", tmp_path / "notes.txt"
    spec.write_text(QUICKSTART_TOML.replace('sources = ["stdlib"]', 'shards = "no-such"', 1))
    out.write_text("keep me")
    for dry in (["--dry-run"], []):
        assert main(["study", str(spec), "--out", str(out), *dry]) == 2
        err = capsys.readouterr().err
        assert err == f"error: --out {out} is a file, not a study folder: give a folder\n"
        assert out.read_text() == "keep me"


def test_cli_out_that_is_a_sweep_or_run_folder_is_refused(tmp_path, capsys):
    # the study wrote its study.json and report.html into it, and `report` read the folder
    # as a study from then on
    from scalinglab.cli import main

    spec = tmp_path / "s.toml"
    spec.write_text(QUICKSTART_TOML.replace('sources = ["stdlib"]', 'shards = "no-such"', 1))
    for name, marker, what in [("sw", "sweep.toml", "a sweep's folder (sweep.toml)"),
                               ("run", "config.toml", "a run's folder")]:  # fmt: skip
        out = tmp_path / name
        out.mkdir()
        (out / marker).write_text("kept")
        for dry in (["--dry-run"], []):
            assert main(["study", str(spec), "--out", str(out), *dry]) == 2
            assert capsys.readouterr().err == (
                f"error: --out {out} is {what}, not a study's: give a folder of the study's own\n"
            )
            assert sorted(p.name for p in out.iterdir()) == [marker]


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("batch_size = 8 ", 'batch_size = "eight" ', "[train]: batch_size must be int, got str"),
        ('dtype = "float32"', "dtype = 32", "[train]: dtype must be str, got int 32"),
        ("block_size = 128", "block_size = 1.5", "[model]: block_size must be int, got float"),
    ],
)
def test_cli_mistyped_model_or_train_key_names_the_file(tmp_path, capsys, old, new, message):
    # was "study 'quickstart': gpt [train]: ...", from a sweep made of the study, no file
    from scalinglab.cli import main

    bad = tmp_path / "s.toml"
    assert old in QUICKSTART_TOML
    bad.write_text(QUICKSTART_TOML.replace(old, new, 1))
    assert main(["study", str(bad), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad} {message}") and err.count("\n") == 1
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_cached_corpus_folder_names_its_options(tmp_path):
    """Two studies whose [data] differ only in an option use two cache folders, so neither
    rebuilds the other's; the same options find the same folder, up to date."""
    from scalinglab.study.run import prepare_data

    corpus = toy_corpus(tmp_path / "corpus.txt")
    plain = parse_study(tomllib.loads(TOY.format(corpus=corpus)), "toy")
    other = tomllib.loads(TOY.format(corpus=corpus))
    other["data"]["val_fraction"] = 0.2
    other = parse_study(other, "toy")
    cache = tmp_path / "cache"
    a, _ = prepare_data(plain, cache)
    b, _ = prepare_data(other, cache)
    assert a.name.startswith("corpus.txt-byte-") and b.name.startswith("corpus.txt-byte-")
    assert a != b
    manifest = (a / "manifest.json").read_bytes()
    assert prepare_data(plain, cache)[0] == a and (a / "manifest.json").read_bytes() == manifest
    va = json.loads(manifest)["splits"]["val"]["tokens"]
    vb = json.loads((b / "manifest.json").read_text())["splits"]["val"]["tokens"]
    assert vb > 1.5 * va  # 20% held out against the default 10% of a one-document corpus
    # Another file of the same name in another folder, another cache folder: it rebuilt
    # the first one's shards (with a warning), under a sweep still training on them.
    (tmp_path / "b").mkdir()
    (tmp_path / "b/corpus.txt").write_bytes(b"another corpus\n" * 400)
    c, _ = prepare_data(parse_study(tomllib.loads(TOY.format(corpus=tmp_path / "b/corpus.txt")),
                                    "toy"), cache)  # fmt: skip
    assert c.name.startswith("corpus.txt-byte-") and c not in (a, b)
    assert (a / "manifest.json").read_bytes() == manifest


TOY_LADDER = TOY.replace(
    """[sweeps.gpt]
budgets = [3e8, 1e9]
sizes = 4
tokens_per_param = 1.5
spread = 8
[backtest]
budget = 3e9
[seed_noise]
budget = 3e8
seeds = [7]""",
    """[sweeps.gpt]
kind = "wsd"
params = [1500, 3000, 6000]
tokens_per_param = [2, 4]
cooldown_frac = 0.25
[backtest]
budget = 3e9
tokens_per_param = 4
[seed_noise]
params = 1500
seeds = [7]""",
)


def test_ladder_fit_cost_and_extrapolation_by_hand(tmp_path):
    """fit_cost: every trunk once, each branch from its trunk's checkpoint, the seed
    repeats too; the largest fitted run's C is the largest branch's 6·N·D."""
    from scalinglab.study.run import fit_cost, plan_study, prepare_data

    corpus = toy_corpus(tmp_path / "corpus.txt")
    study = parse_study(tomllib.loads(TOY_LADDER.format(corpus=corpus)), "toy")
    shards, name = prepare_data(study, tmp_path / "cache")
    plan = plan_study(study, shards, name, tmp_path / "out", 2, 1, estimate=False)
    roles = [(p.role, p.folder, len(p.runs)) for p in plan.parts]
    # 3 sizes: 3 trunks and 3 x 2 branches; the seed repeat: 1 trunk, 2 branches
    assert roles == [("trunk", "sweeps/gpt/stable", 3), ("sweep", "sweeps/gpt", 6),
                     ("trunk", "seed/stable", 1), ("seed", "seed", 2)]  # fmt: skip
    tps = 4 * 16  # batch_size x block_size tokens per step
    by_hand, largest = 0.0, 0.0
    for p in plan.parts:
        for r in p.runs:
            n = r.counts.params
            if p.role == "trunk":
                by_hand += 6 * n * tps * r.steps
            else:
                assert r.seed.run in {t.name for q in plan.parts for t in q.runs}
                by_hand += 6 * n * tps * (r.steps - r.seed.step)
                largest = max(largest, 6 * n * tps * r.steps)
    cost = fit_cost(plan.parts, "gpt")
    assert cost == {"flops": pytest.approx(by_hand, rel=1e-12), "largest": largest}
    # shared steps counted once: less than the same branches trained from scratch
    independent = sum(6 * r.counts.params * r.tokens for p in plan.parts if p.role != "trunk"
                      for r in p.runs)  # fmt: skip
    assert 0.3 * independent < cost["flops"] < independent
    # the largest branch is the biggest size's longest: 6 · N · (4 · N rounded to steps)
    big = max(plan.parts[1].runs, key=lambda r: r.counts.params * r.tokens)
    assert largest == 6.0 * big.counts.params * big.tokens
    assert big.group["tokens_per_param"] == 4 and big.counts.params > 3000


def test_isoflop_trunks_study_plan(tmp_path):
    """An IsoFLOP sweep with trunks = true: trunks in sweeps/gpt/stable, the budgets' runs
    as their branches; its seed repeat is the branch it repeats trained alone (the same
    WSD schedule, warmup and lr, another seed), the backtest a WSD run of the same
    cooldown; fit_cost counts every trunk once."""
    from scalinglab.study.run import backtest_train, fit_cost, plan_study, prepare_data

    d = tomllib.loads(TOY.format(corpus=toy_corpus(tmp_path / "corpus.txt")))
    d["sweeps"]["gpt"] |= {"trunks": True, "cooldown_frac": 0.25}
    study = parse_study(d, "toy")
    shards, name = prepare_data(study, tmp_path / "cache")
    plan = plan_study(study, shards, name, tmp_path / "out", 2, 1, estimate=False)
    trunk, sweep, seed = plan.parts
    assert [(p.role, p.folder) for p in plan.parts] == [
        ("trunk", "sweeps/gpt/stable"),
        ("sweep", "sweeps/gpt"),
        ("seed", "seed"),
    ]
    assert {r.group["budget"] for r in sweep.runs} == {3e8, 1e9}
    assert {r.seed.run for r in sweep.runs} == {t.name for t in trunk.runs}
    assert len(trunk.runs) < len(sweep.runs)  # a shape of both budgets trains one trunk
    (repeat,) = seed.runs
    twin = next(r for r in sweep.runs if r.config.model == repeat.config.model
                and r.group["budget"] == 3e8)  # fmt: skip
    a, b = repeat.config.train, twin.config.train
    assert (a.seed, b.seed) == (7, 1337) and repeat.tokens == twin.tokens
    for k in ("schedule", "cooldown_frac", "warmup", "lr", "min_lr"):
        assert getattr(a, k) == getattr(b, k), k
    assert backtest_train(study) == {"schedule": "wsd", "cooldown_frac": 0.25}
    cost = fit_cost(plan.parts, "gpt")
    independent = sum(6 * r.counts.params * r.tokens for r in sweep.runs + seed.runs)
    assert cost["flops"] < independent
    assert cost["largest"] == max(6 * r.counts.params * r.tokens for r in sweep.runs)


def test_data_constrained_prediction_by_hand():
    """Where the backtest would repeat its U unique tokens, the study predicts with the
    data-constrained law: Chinchilla's A, B, E, α, β and D' = U·(1 + R*·(1 − e^(−R/R*)))."""
    from scalinglab import ScalingLaw
    from scalinglab.plan.analysis import R_STAR, ArchFits, predict, predict_constrained

    n = np.array([1e4, 2e4, 4e4, 8e4] * 3)
    d = np.repeat([1e5, 3e5, 1e6], 4)
    law = ScalingLaw("chinchilla", bootstrap=20).fit({"N": n, "D": d, "loss": 0.8 + 20 / n**0.34
                                                      + 20 / d**0.28})  # fmt: skip
    fits = ArchFits("gpt", [], chinchilla=law)
    p = law.params_
    N, U = 5e4, 1e6
    # no repetition: Chinchilla's law itself
    assert predict_constrained(fits, N, U, U)["predicted_loss"] == pytest.approx(
        predict(fits, N, U, 6 * N * U, "chinchilla")["predicted_loss"], rel=1e-9
    )
    out = predict_constrained(fits, N, 4 * U, U)  # 4 epochs: R = 3 repetitions
    d_eff = U * (1 + 15.4 * (1 - np.exp(-3 / 15.4)))
    want = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / d_eff ** p["beta"]
    assert out["predicted_loss"] == pytest.approx(want, rel=1e-9)
    assert out["predictor"] == "data-constrained" and out["epochs"] == 4.0
    assert R_STAR == {"R_D": 15.4, "R_N": 5.3}
    # repeated tokens are worth less than fresh ones, more than none
    fresh = predict(fits, N, 4 * U, 6 * N * 4 * U, "chinchilla")["predicted_loss"]
    assert fresh < out["predicted_loss"] < predict_constrained(fits, N, U, U)["predicted_loss"]
    lo, hi = out["fit_interval"]
    assert lo <= out["predicted_loss"] <= hi


def test_ray_prediction_by_hand():
    """predictor "ray": a power law of C through the ladder's branch ends at the run's own
    D/N (within 10%), the other ratios left out; a ratio with fewer than 3 sizes refuses."""
    from scalinglab.errors import FitError
    from scalinglab.plan.analysis import ArchFits, on_ray, predict

    def row(n, r, loss):
        return {"status": "completed", "arch": "gpt", "params": n, "tokens": r * n,
                "loss": loss}  # fmt: skip

    def on_the_ray(n, r):  # L = (C_c / C)^0.11 along D/N = 48, C = 6·N·48·N
        return (1e20 / (6 * n * r * n)) ** 0.11

    sizes = [4832, 12736, 23712, 37760, 54880]
    rows = [row(n, 48.3, on_the_ray(n, 48.3)) for n in sizes]  # whole steps move D/N a little
    rows += [row(n, 24, 9.0) for n in sizes[:4]] + [row(n, 12, 9.0) for n in sizes[:2]]
    fits = ArchFits("gpt", rows, settings=FitConfig(bootstrap=50))
    assert len(on_ray(rows, 48)) == 5
    N = 186560
    D = 47.88 * N
    out = predict(fits, N, D, 6 * N * D, "ray")
    assert out["predictor"] == "ray"
    assert out["predicted_loss"] == pytest.approx((1e20 / (6 * N * D)) ** 0.11, rel=1e-5)
    # with noise on the ray, the bootstrap interval holds the prediction
    for r, e in zip(rows, [0.004, -0.004, 0.004, -0.004, 0.0], strict=False):
        r["loss"] *= 1 + e
    fits = ArchFits("gpt", rows, settings=FitConfig(bootstrap=50))
    out = predict(fits, N, D, 6 * N * D, "ray")
    lo, hi = out["fit_interval"]
    assert lo < out["predicted_loss"] < hi
    assert out["predicted_loss"] == pytest.approx((1e20 / (6 * N * D)) ** 0.11, rel=0.01)
    with pytest.raises(FitError, match="the ray at 12 tokens per parameter has 2 size"):
        predict(fits, 1e5, 12e5, 6 * 12e10, "ray")


def test_ray_predictor_needs_a_ladder_ratio():
    d = ladder()
    d["backtest"].update(predictor="ray", tokens_per_param=30)
    with pytest.raises(SweepError, match=r'predictor "ray" predicts along one of .*12, 24, 48'):
        parse_study(d, "ladder")
    d["backtest"]["tokens_per_param"] = 24
    assert parse_study(d, "ladder").backtest.predictor == "ray"
    d = isoflop_study()
    d["backtest"].update(predictor="ray", tokens_per_param=70)
    with pytest.raises(SweepError, match="none: it is IsoFLOP"):
        parse_study(d, "q")


@pytest.mark.slow
def test_toy_ladder_study_end_to_end(tmp_path):
    """A WSD ladder study on a corpus so small that the backtest repeats it: branches start
    from their trunks' checkpoints, the prediction says so and uses the data-constrained
    law, and summary.json's backtest carries extrapolation and fit_cost_ratio."""
    from scalinglab.study.run import run_study

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(toy_corpus(tmp_path / "big.txt").read_text()[:20000])
    study = parse_study(tomllib.loads(TOY_LADDER.format(corpus=corpus)), "toy")
    out = tmp_path / "study"
    summary = run_study(study, out, tmp_path / "cache")
    pred = json.loads((out / "prediction.json").read_text())
    bt = summary["backtest"]
    assert bt["status"] == "completed" and pred["repeats_data"] is True
    # the run the spec fixed: N = sqrt(C / (6 · 4)) ≈ 11.2k, rounded to a shape
    assert pred["allocated_by"] == "[backtest] tokens_per_param = 4"
    assert pred["target_params"] == pytest.approx((3e9 / 24) ** 0.5)
    assert pred["predictor"] == "data-constrained" and bt["predictor"] == "data-constrained"
    assert pred["epochs"] == pytest.approx(pred["tokens"] / pred["unique_tokens"])
    assert pred["epochs"] > 1
    # every fitted run is a branch (the trunks are not in the table the fits read)
    rows = [json.loads(p.read_text()) for p in (out / "sweeps/gpt/runs").glob("*/sweep.json")]
    assert len(rows) == 6 and all(r["group"]["stable_run"] for r in rows)
    largest = max(6.0 * r["planned"]["params"] * r["planned"]["tokens"] for r in rows)
    assert bt["extrapolation"] == pytest.approx(pred["flops"] / largest, rel=1e-12)
    assert bt["fit_cost_ratio"] == pytest.approx(pred["fit_flops"] / pred["flops"], rel=1e-12)
    assert bt["rel_error"] == abs(bt["predicted_loss"] - bt["actual_loss"]) / bt["actual_loss"]
    # a branch resumed from its trunk's checkpoint: its log says so
    log = next((out / "sweeps/gpt/runs").glob("*-r4-*/train.log")).read_text()
    assert "resumed" in log
    assert summary["seed_noise"]["dof"] == 2  # the repeated size's 2 branches, one seed more


def _toy_plan(tmp_path, hparams: str):
    """The toy study's plan with `hparams` lines added to its [hparams] (no run trained):
    the plan and every run in it, the backtest's guess last."""
    from scalinglab.study.run import plan_study, prepare_data

    text = TOY.format(corpus=toy_corpus(tmp_path / "corpus.txt"))
    study = parse_study(tomllib.loads(text.replace("ref_width = 16", f"ref_width = 16\n{hparams}")),
                        "toy")  # fmt: skip
    shards, name = prepare_data(study, tmp_path / "cache")
    plan = plan_study(study, shards, name, tmp_path / "out", 2, 1, estimate=False)
    return plan, [r for p in plan.parts for r in p.runs] + [plan.backtest_guess]


def test_hparams_duration_power_reaches_every_run_of_a_study(tmp_path):
    """A study's [hparams] goes to each sweep spec as it is: with rule "mup" and
    duration_power 0.228 every run, the backtest's too, gets 3e-3 × (D / 1e5)^0.228."""
    _, runs = _toy_plan(tmp_path, 'rule = "mup"\nduration_power = 0.228\nref_tokens = 1e5')
    for r in runs:
        assert r.lr == pytest.approx(3e-3 * (r.tokens / 1e5) ** 0.228, rel=1e-12)
        assert r.config.model.param == "mup"
    assert len({r.lr for r in runs}) == len({r.tokens for r in runs}) > 3  # one lr per D


def test_hparams_decay_tokens_per_param_reaches_every_run_of_a_study(tmp_path):
    """[hparams] decay_tokens_per_param τ sets every GPT run's weight decay, the seed
    repeats' and the backtest's too: tokens per step / (lr · τ · N), one per size."""
    plan, runs = _toy_plan(tmp_path, "decay_tokens_per_param = 30")
    assert {p.role for p in plan.parts} >= {"sweep", "seed"}
    for r in runs:
        t = r.config.train
        tps = t.batch_size * t.grad_accum * r.config.model.block_size
        assert t.weight_decay == pytest.approx(tps / (t.lr * 30 * r.counts.params), rel=1e-12)
    sizes = {r.counts.params for r in runs}
    assert len({r.config.train.weight_decay for r in runs}) == len(sizes) > 3


def test_the_backtest_alone_takes_no_more_threads_than_the_machine_has(monkeypatch):
    """4 workers of 1 thread on 2 cores gave the backtest alone 4 threads on 2 cores; on
    runs that go to other machines (a Ray cluster, SLURM) or an explicit --threads, it
    takes every worker's threads, as before."""
    from types import SimpleNamespace as NS

    from scalinglab.study.run import Part, StudyPlan

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    for cfg, want in [
        (ExecutorConfig(workers=4), 2),
        (ExecutorConfig(workers=2), 2),
        (ExecutorConfig(workers=1), 2),
        (ExecutorConfig(workers=4, executor="ray"), 2),  # a local Ray instance
        (ExecutorConfig(workers=4, executor="submitit", cluster="local"), 2),
        (ExecutorConfig(workers=4, executor="ray", ray_address="10.0.0.1:6379"), 4),
        (ExecutorConfig(workers=4, executor="submitit", cluster="slurm"), 4),
        (ExecutorConfig(workers=4, threads=3), 12),  # asked for
    ]:
        run = NS(name="r", arch="gpt", seed=None)
        plan = StudyPlan(Path("."), "c", [Part("sweep", "s", None, [run])], run,
                         threads=cfg.threads_per_run, workers=cfg.workers,
                         cores=cfg.cores_here)  # fmt: skip
        assert plan.backtest_threads == want, cfg
        plan.alone = False
        assert plan.backtest_threads == cfg.threads_per_run


@pytest.mark.parametrize("alone", [True, False])
def test_plan_seconds_simulates_the_backtest_alone_or_beside(alone):
    """The estimate's pool, by hand: 2 workers; GPT runs 30, 20, 10 s; LSTM runs 25, 5 s;
    the backtest 100 s (measured at its own thread count). FIT_SECONDS / 2 = 10 s before
    the prediction and after the last run."""
    from types import SimpleNamespace as NS

    from scalinglab.study.run import FIT_SECONDS, Part, StudyPlan

    def run(name, arch):
        return NS(name=name, arch=arch, seed=None)

    gpt = [run(f"g{s}", "gpt") for s in (30, 20, 10)]
    lstm = [run(f"l{s}", "lstm") for s in (25, 5)]
    est = {r.name: float(r.name[1:]) for r in gpt + lstm} | {"backtest": 100.0}
    plan = StudyPlan(Path("."), "c", [Part("sweep", "s", None, gpt + lstm)], run("bt", "gpt"),
                     threads=1, workers=2, alone=alone, estimates=est)  # fmt: skip
    assert plan.backtest_threads == (2 if alone else 1)
    s = plan.seconds("gpt")
    half = FIT_SECONDS / 2
    assert half == 10.0
    # GPT: worker 0 30 s, worker 1 20 + 10 = 30 s; the prediction at 30 + 10 = 40 s
    assert s["sweeps_to_prediction"] == 40.0 and s["backtest"] == 100.0
    if alone:  # LSTMs 25 and 5 after the GPT runs (55, 35): the backtest from 55 to 155
        assert s["total"] == 55 + 100 + half
    else:  # LSTM 25 on worker 0 (30-55), LSTM 5 on worker 1 (30-35), then the backtest 40-140
        assert s["total"] == 140 + half


def test_a_spec_with_its_defaults_written_out_is_the_same_study(tmp_path):
    """`study --print-config`'s spec (every default filled in), or `minutes = 10` written
    where it was left out, continues the folder; a changed budget does not."""
    from scalinglab.study.run import check_same_study
    from scalinglab.study.spec import study_dict

    d = tomllib.loads(TOY.format(corpus=tmp_path / "corpus.txt"))
    study = parse_study(d, "toy")
    (tmp_path / "study.json").write_text(json.dumps({"spec": study.raw}))
    check_same_study(parse_study(study_dict(study), "printed"), tmp_path)
    check_same_study(parse_study({**d, "minutes": 10}, "toy"), tmp_path)
    check_same_study(study.scaled(study.minutes), tmp_path)
    with pytest.raises(SweepError, match=r"another spec \(backtest.budget 3e\+09 -> 6e\+09\)"):
        check_same_study(parse_study({**d, "backtest": {"budget": 6e9}}, "toy"), tmp_path)


def test_sigterm_to_a_study_stops_it_as_ctrl_c_does(tmp_path, monkeypatch, capsys):
    """SIGTERM (a scheduler's, `timeout`'s) ended a study's driver at once, saying nothing;
    now it raises in the driver as Ctrl-C does (the executor stops its runs, which save a
    checkpoint), the study exits 143 with one line, and SIGTERM's handler is put back."""
    import signal
    import time

    from scalinglab import cli
    from scalinglab.study import run as study_run

    def terminated(*args, **kwargs):
        # without a handler SIGTERM would end the test's own process
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
        raise AssertionError("SIGTERM did not stop the study")

    monkeypatch.setattr(study_run, "run_study", terminated)
    before = signal.getsignal(signal.SIGTERM)
    argv = ["study", str(ROOT / "examples" / "tiny_study.toml"), "--out", str(tmp_path / "s")]
    assert cli.main(argv) == 143
    assert capsys.readouterr().err.splitlines()[-1] == "error: terminated"
    assert signal.getsignal(signal.SIGTERM) == before


def test_runs_that_did_not_finish_name_the_first_ones_reason(tmp_path):
    """The study's last line said 'see their train.log', but a run whose result.json broke
    the contract (another trainer's) has its reason in result.json's error, not there."""
    from types import SimpleNamespace

    from scalinglab import runfolder
    from scalinglab.study.run import _check

    why = "RUN/result.json: tokens is -5, not a positive number; kept as result.invalid-1.json"
    dirs = {n: tmp_path / n for n in ("a", "b", "c")}
    for d in dirs.values():
        d.mkdir()
    runfolder.write_result(dirs["b"], {"status": "failed", "error": why})
    runfolder.write_result(dirs["c"], {"status": "failed", "error": "other"})
    status = {"a": "completed", "b": "failed", "c": "failed"}
    pool = SimpleNamespace(outcomes={n: {"status": s} for n, s in status.items()}, dirs=dirs)
    with pytest.raises(SweepError) as e:
        _check(pool, {"a", "b", "c"})
    assert str(e.value) == (
        f"2 run(s) did not finish (b, c) (b: {why}); see their train.log and result.json; "
        "rerun the same command to retry them"
    )
    _check(pool, {"a"})  # the finished ones alone: nothing to say


def test_a_changed_long_setting_shows_where_it_changes():
    """Two trainer commands of one long prefix were both cut before it: 'fake.py
    out={out} para... -> fake.py out={out} para...' never showed the change (an audit)."""
    from scalinglab.study.run import _change

    cmd = "/opt/t/fake.py out={out} params={params} tokens={tokens}"
    assert _change(cmd, cmd + " extra=1") == '...ens={tokens}" -> ...ens={tokens} extra=1"'
    assert _change([1e11, 3e11], [1e11]) == "[1e+11, 3e+11] -> [1e+11]"


def test_a_dry_run_names_a_backtest_run_of_fixed_size(tmp_path, capsys):
    """With [backtest] tokens_per_param the spec fixes the run's size, yet the dry run
    called it '(size chosen by the fits, about)'."""
    from scalinglab.cli import main

    corpus = toy_corpus(tmp_path / "corpus.txt")
    spec = tmp_path / "s.toml"
    spec.write_text(TOY.format(corpus=corpus))
    argv = ["study", str(spec), "--out", str(tmp_path / "st"), "--cache", str(tmp_path / "c"),
            "--dry-run", "--json"]  # fmt: skip
    for extra, fixed in (([], False), (["--set", "backtest.tokens_per_param=5"], True)):
        assert main([*argv, *extra]) == 0
        (row,) = [r for r in json.loads(capsys.readouterr().out) if r["part"] == "backtest"]
        assert (row["run"] == "(size chosen by the fits, about)") is not fixed
        if fixed:
            assert row["run"].startswith("gpt-n") and row["tokens"] / row["params"] > 4


def test_a_studys_branch_estimate_is_discounted_once(monkeypatch, tmp_path):
    """A branch of 40 steps from its trunk's step 30 at 0.2 s a step: estimate_seconds
    already prices it 3 + 10 x 0.2 = 5 s; the study's schedule took 5 x 10/40 = 1.25 s,
    discounting the trunk's steps a second time (a mutation audit)."""
    from types import SimpleNamespace as NS

    from scalinglab.study.run import Part, StudyPlan
    from scalinglab.sweep import estimate
    from tests.sweep.test_estimate import _run, _times

    branch = _run("branch", 100, 4000, 40, seed_step=30)
    branch.arch = "gpt"
    _times(monkeypatch, {"branch": 0.2})
    est = estimate.estimate_seconds([branch], threads=1)
    assert est["branch"] == pytest.approx(5.0)
    guess = NS(name="bt", arch="gpt")
    plan = StudyPlan(tmp_path, "c", [Part("sweep", "s", None, [branch])], guess, threads=1,
                     workers=1, estimates=dict(est))  # fmt: skip
    assert plan._seconds(branch) == pytest.approx(5.0)


def test_the_other_counts_prediction_interval_is_at_the_studys_level():
    """Without a bootstrap the frontier's predictive interval is p ± z·s·p (s the seed
    noise's relative std): z = 1.2816 at [fit] ci_level = 0.8."""
    from scalinglab.models.counting import Counts
    from scalinglab.study.run import _other_count
    from tests.plan.test_analysis import E_SIZE, kaplan_rows

    ne, D, s = 5e5, 4e7, 0.004
    counts = Counts(params=int(ne + E_SIZE * math.sqrt(ne)), params_nonembed=int(ne),
                    flops_per_token=0)  # fmt: skip
    for level in (0.8, 0.95):
        study = NS(fit=FitConfig(bootstrap=0, ci_level=level))
        ((_, p),) = _other_count(study, kaplan_rows(), "gpt", counts, D, "params",
                                 {"rel_std": s}).items()  # fmt: skip
        z = NormalDist().inv_cdf(0.5 + level / 2)
        pl = p["predicted_loss"]
        assert p["prediction_interval"] == pytest.approx([pl - z * s * pl, pl + z * s * pl],
                                                         rel=1e-12)  # fmt: skip


def _toy_study(tmp_path, text):
    import tomllib

    from scalinglab.study.run import prepare_data
    from tests.test_study import toy_corpus

    study = parse_study(tomllib.loads(text.format(corpus=toy_corpus(tmp_path / "c.txt"))), "toy")
    shards, name = prepare_data(study, tmp_path / "cache")
    return study, shards, name


def test_a_ladders_backtest_must_be_three_times_its_largest_run(tmp_path):
    """A WSD ladder's backtest budget below MIN_BACKTEST_FACTOR (3) times the largest
    branch's 6·N·D (computed here from the plan) is refused; 3.1 times is planned."""
    import dataclasses

    from scalinglab.study.run import plan_study
    from tests.test_study import TOY_LADDER

    study, shards, name = _toy_study(tmp_path, TOY_LADDER)
    plan = plan_study(study, shards, name, tmp_path / "a", 2, 1, estimate=False)
    largest = max(6.0 * r.counts.params * r.tokens for p in plan.parts if p.role == "sweep"
                  for r in p.runs)  # fmt: skip
    for factor, ok in ((2.0, False), (3.1, True)):
        bt = dataclasses.replace(study.backtest, budget=factor * largest)
        s = dataclasses.replace(study, backtest=bt)
        if ok:
            plan_study(s, shards, name, tmp_path / f"x{factor}", 2, 1, estimate=False)
        else:
            with pytest.raises(SweepError, match=r"must be at least 3x the largest C"):
                plan_study(s, shards, name, tmp_path / f"x{factor}", 2, 1, estimate=False)


def test_the_seed_repeat_is_the_budgets_run_nearest_the_designs_tokens_per_param(tmp_path):
    """[seed_noise] budget = 3e8 repeats the run of that budget whose D/N is nearest (in
    log) the design's centre, 1.5 tokens per parameter: the run most like the optimum."""
    from scalinglab.study.run import plan_study
    from tests.test_study import TOY

    study, shards, name = _toy_study(tmp_path, TOY)
    plan = plan_study(study, shards, name, tmp_path / "out", 2, 1, estimate=False)
    sweep = next(p for p in plan.parts if p.role == "sweep")
    (repeat,) = next(p for p in plan.parts if p.role == "seed").runs
    at = [r for r in sweep.runs if r.group["budget"] == 3e8]
    dist = {r.name: abs(math.log(r.tokens / r.counts.params) - math.log(1.5)) for r in at}
    twin = next(r for r in at if r.config.model == repeat.config.model)
    assert dist[twin.name] == min(dist.values()) < max(dist.values())
