"""Errors name a setting as the user wrote it: the Python keyword from Python
(`drop_highest must be >= 0`), the command-line flag from the CLI (`--drop-highest must
be >= 0`). One mechanism (errors.python_spelling, errors.flag_spelling): messages are
written with flags and read from Python as keywords."""

import pytest

from scalinglab.config import ModelConfig, RunConfig, TrainConfig
from scalinglab.errors import ConfigError, ScalingLabError, flag_spelling, python_spelling
from scalinglab.laws import ScalingLaw
from scalinglab.laws.settings import FitConfig
from scalinglab.train.generate import sample
from tests.reliability.helpers import one_line_error


@pytest.mark.parametrize(
    "call, python",
    [
        (lambda: ScalingLaw("chinchilla", drop_highest=-1), "drop_highest must be >= 0, got -1"),
        (lambda: FitConfig(bootstrap=-2), "bootstrap must be 0 (no intervals) or >= 10 resamples, got -2"),
        (lambda: TrainConfig(lr=-1.0),
         "lr must be a positive number (0: the optimizer's default), got -1.0"),
        (lambda: TrainConfig(lr=1e-3, min_lr=0.5), "min_lr 0.5 is larger than lr 0.001"),
        (lambda: TrainConfig(steps=5, tokens=9), "give exactly one budget; got steps and tokens"),
        (lambda: ModelConfig(arch="cnn"), "arch 'cnn' is not one of gpt, lstm,"),
        (lambda: ModelConfig(arch="lstm", n_hidden=64),
         "tied embeddings need n_hidden equal to n_embd (128), got 64; pass "
         "tie_embeddings=False or drop n_hidden"),
        (lambda: next(sample(None, [], 3)), "prompt is empty"),
        (lambda: next(sample(None, [1], 3, top_p=2.0)), "top_p must be in (0, 1], got 2.0"),
    ],
)  # fmt: skip
def test_from_python_an_error_names_the_keyword(call, python):
    with pytest.raises(ScalingLabError) as e:
        call()
    assert str(e.value).startswith(python) and "--" not in str(e.value)
    with flag_spelling():  # as the CLI reads the same error: with the flags
        flags = str(e.value)
    assert flags != str(e.value) and python_spelling(flags) == str(e.value)


def test_a_key_read_from_a_file_is_named_as_the_file_spells_it():
    """A value from a config file or spec table is named by its key in either spelling
    (`--batch-size` was named for a `batch_size` the user wrote in a file); one given by a
    flag beside the file is named by its flag, without the file."""
    want = "cfg.toml [train]: batch_size must be int, got float 2.5"
    for spelling in (python_spelling, lambda m: m):
        with pytest.raises(ConfigError) as e:
            RunConfig.from_dict({"train": {"batch_size": 2.5}}, "cfg.toml")
        assert spelling(e.value.message) == want
    with pytest.raises(ConfigError) as e:
        RunConfig.from_dict({"train": {"lr": -1.0}}, "cfg.toml", {"train": {"lr"}})
    assert e.value.message.startswith("--lr must be a positive number")
    with pytest.raises(ConfigError) as e:  # both named: each as it was given
        RunConfig.from_dict({"train": {"lr": 1e-3, "min_lr": 0.5}}, "cfg.toml", {"train": {"lr"}})
    assert e.value.message == "cfg.toml [train]: min_lr 0.5 is larger than --lr 0.001"


def test_from_the_cli_the_same_errors_name_the_flags(tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    csv.write_text("params,tokens,loss\n1e6,2e7,3.0\n2e6,4e7,2.9\n")
    err = one_line_error(capsys, ["fit", str(csv), "--drop-highest", "-1"])
    assert err == "error: --drop-highest must be >= 0, got -1\n"
    err = one_line_error(capsys, ["train", "--data", "x", "--out", str(tmp_path / "r"),
                                  "--steps", "5", "--lr", "-1"])  # fmt: skip
    assert err == "error: --lr must be a positive number (0: the optimizer's default), got -1.0\n"
    err = one_line_error(capsys, ["train", "--data", "x", "--out", str(tmp_path / "r"),
                                  "--steps", "5", "--model", "lstm", "--n-hidden", "64"])  # fmt: skip
    assert "pass --no-tie-embeddings or drop --n-hidden" in err
    # and Python's spelling is back after the command
    with pytest.raises(ConfigError, match=r"^lr must be a positive number"):
        TrainConfig(lr=-1.0)


def test_only_flags_outside_backticks_and_words_change():
    text = "a--b /x/--c --n-embd 4: run `scalinglab prepare --out X` or pass --force"
    assert python_spelling(text) == (
        "a--b /x/--c n_embd 4: run `scalinglab prepare --out X` or pass force=True"
    )
