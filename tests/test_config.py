import argparse
import dataclasses

import pytest

from scalinglab.config import (
    ModelConfig,
    RunConfig,
    TrainConfig,
    add_flags,
    dumps_toml,
    flags_given,
    load_toml,
)
from scalinglab.errors import ConfigError


def test_toml_roundtrip(tmp_path):
    cfg = RunConfig(ModelConfig(arch="lstm", n_embd=64), TrainConfig(data="d", tokens=10_000))
    p = tmp_path / "config.toml"
    p.write_text(dumps_toml(cfg.to_dict()))
    assert RunConfig.from_dict(load_toml(p)) == cfg


def test_unknown_keys_are_named():
    with pytest.raises(ConfigError, match=r"\[model\]: unknown key\(s\) n_embed"):
        RunConfig.from_dict({"model": {"n_embed": 3}})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_embd=100, n_head=3), "^n_embd 100 is not divisible by n_head 3"),
        (dict(n_layer=0), "^n_layer must be positive"),
        (dict(arch="transformer"), "^arch 'transformer' is not one of"),
        (dict(dropout=1.5), r"^dropout must be in \[0, 1\)"),
        (dict(n_embd="wide"), "^n_embd must be int"),
    ],
)
def test_invalid_model_configs_name_the_keyword(kwargs, message):
    """From Python a message names the keyword (the CLI names the flag: test_errors.py)."""
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**kwargs)


def test_budgets_are_mutually_exclusive():
    with pytest.raises(ConfigError, match=r"got steps and tokens$"):
        TrainConfig(steps=10, tokens=100)
    assert TrainConfig(flops=1e12).budget == ("flops", 1e12)
    with pytest.raises(ConfigError, match="no training budget"):
        _ = TrainConfig().budget


def test_ints_from_toml_floats_are_accepted():
    assert TrainConfig(tokens=1e6).tokens == 1_000_000
    assert isinstance(TrainConfig(lr=1).lr, float)


def test_toml_syntax_error_names_file_and_line(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[model]\nn_layer = = 3\n")
    with pytest.raises(ConfigError, match=r"bad.toml: invalid TOML: .*line 2"):
        load_toml(p)


def test_flags_only_override_what_was_given():
    parser = argparse.ArgumentParser()
    add_flags(parser, ModelConfig)
    args = parser.parse_args(["--model", "gru", "--n-embd", "64", "--no-tie-embeddings"])
    assert flags_given(args, ModelConfig) == {"arch": "gru", "n_embd": 64, "tie_embeddings": False}


def test_config_files_carry_a_format_version_and_refuse_other_versions(tmp_path):
    from scalinglab.runfolder import CONFIG, write_config

    cfg = RunConfig()
    write_config(tmp_path, cfg)
    d = load_toml(tmp_path / CONFIG)
    assert d["format_version"] == 1
    assert RunConfig.from_dict(d) == cfg
    d["format_version"] = 2
    with pytest.raises(ConfigError, match=r"x.toml: format_version 2 is not supported"):
        RunConfig.from_dict(d, "x.toml")


def test_run_ids_of_adamw_runs_did_not_change_with_the_optimizer_fields():
    # The id this resolved AdamW config had before --optimizer and --plateau-factor existed
    # (computed by the code of that time): sweeps and resumes still recognise those runs.
    from scalinglab.config import ModelConfig, RunConfig, TrainConfig, run_identity

    # an LSTM trained then walked its lanes in order (--order stream)
    t = TrainConfig(
        steps=10, lr=1e-3, grad_clip=1.0, min_lr=1e-4, optimizer="adamw", order="stream"
    )
    old = "2ac53e37aba8011435d5d932f337fd0b109a81a99e0cc6970cdcd08a96924b4d"
    assert run_identity(RunConfig(model=ModelConfig(arch="lstm"), train=t), "abc") == old
    # today's default order (random windows) trains another run: another id
    now = RunConfig(model=ModelConfig(arch="lstm"), train=dataclasses.replace(t, order="random"))
    assert run_identity(now, "abc") != old
    sgd = RunConfig(model=ModelConfig(arch="lstm"), train=dataclasses.replace(t, optimizer="sgd"))
    assert run_identity(sgd, "abc") != old
    plateau = dataclasses.replace(sgd.train, plateau_factor=4.0, eval_every=100)
    other = dataclasses.replace(plateau, eval_every=200)  # then the evaluations steer the LR
    ids = {run_identity(RunConfig(model=sgd.model, train=x), "abc") for x in (plateau, other)}
    assert len(ids) == 2


def test_an_out_of_range_seed_is_told_the_range_seeds_take():
    # it said "--seed must be in [-9223372036854775808, 9223372036854775807]", a range of
    # which every negative seed is refused: [0, 2**63 - 1] is what a seed may be
    from scalinglab.data.writer import PrepareConfig
    from scalinglab.laws.settings import FitConfig
    from scalinglab.study.spec import TaskTable

    big = 99999999999999999999999
    for make in (TrainConfig, PrepareConfig, FitConfig, TaskTable):
        for seed in (big, 2**63, -(2**63) - 1, -1):
            with pytest.raises(ConfigError) as e:
                make(seed=seed)
            assert str(e.value) == f"seed must be in [0, 9223372036854775807], got {seed}"
        make(seed=2**63 - 1)
    with pytest.raises(ConfigError) as e:  # any other integer: the 64-bit range
        TrainConfig(warmup=big)
    assert (
        str(e.value) == f"warmup must be in [-9223372036854775808, 9223372036854775807], got {big}"
    )


def test_an_out_of_range_seed_flag_is_one_line(tmp_path, capsys):
    from scalinglab.cli import main

    (tmp_path / "t.txt").write_text("a few words on a line\n" * 50)
    argv = ["prepare", str(tmp_path / "t.txt"), "--out", str(tmp_path / "s"), "--seed"]
    assert main([*argv, "99999999999999999999999"]) == 2
    assert capsys.readouterr().err == (
        "error: --seed must be in [0, 9223372036854775807], got 99999999999999999999999\n"
    )
    assert not (tmp_path / "s").exists()
