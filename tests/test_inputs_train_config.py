"""`train --config FILE` whose [model] or [train] is not a table (`model = "big"`, an array
of tables `[[model]]`) is refused naming the file and the key; it was ignored, and the
default model trained (`[[train]]` said "no shards folder")."""

import pytest

from scalinglab.cli import main
from tests.reliability.helpers import one_line_error
from tests.train.helpers import cli_args, tiny_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return tiny_shards(tmp_path_factory.mktemp("data") / "shards")


@pytest.mark.parametrize(
    "toml, got",
    [
        ('model = "big"\n', 'model must be a table [model], got str \'big\''),
        ("[[model]]\nn_layer = 2\n", "model must be a table [model], got an array of tables "
                                     "[[model]]"),
        ('[[train]]\ndata = "x"\n', "train must be a table [train], got an array of tables "
                                    "[[train]]"),
        ("train = [1, 2]\n", "train must be a table [train], got list [1, 2]"),
        ("train = 3\n", "train must be a table [train], got int 3"),
    ],
)  # fmt: skip
def test_a_section_that_is_not_a_table_is_one_line(shards, tmp_path, capsys, toml, got):
    config = tmp_path / "run.toml"
    config.write_text(toml)
    out = tmp_path / "run"
    argv = cli_args(shards, out, "--steps", "2", "--config", str(config))
    assert one_line_error(capsys, argv) == f"error: {config}: {got}\n"
    assert not out.exists()


def test_config_without_data_still_says_no_shards_folder(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text("[model]\nn_layer = 1\n")
    err = one_line_error(capsys, ["train", "--config", str(config), "--steps", "2"])
    assert err.startswith("error: no shards folder: give --data SHARDS")


def test_tables_still_train(shards, tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text("[model]\nn_layer = 1\n[train]\nsteps = 2\n")
    assert main(cli_args(shards, tmp_path / "run", "--config", str(config))) == 0


def test_the_python_api_refuses_it_too(tmp_path):
    """scalinglab.api's run config read the same file and ended in a TypeError."""
    from scalinglab import api
    from scalinglab.errors import ConfigError

    config = tmp_path / "run.toml"
    config.write_text('model = "big"\n')
    with pytest.raises(ConfigError) as e:
        api.run_config(config)
    assert str(e.value) == f"{config}: model must be a table [model], got str 'big'"


@pytest.mark.parametrize(
    ("budget", "said"),
    [
        (["--flops", "1e40"], "--flops 1e+40 is 6.06e+32 optimizer steps of 1.652e+07 FLOPs each, "
         "more than 1e+12 (a typo?); give a smaller budget"),
        (["--tokens", "1e18"], "--tokens 1e+18 is 7.81e+15 optimizer steps of 128 tokens each, "
         "more than 1e+12 (a typo?); give a smaller budget"),
        (["--steps", "1e13"], "--steps must be at most 1e+12, got 1e+13 (a typo?)"),
        (["--time", "1e300"], "--time is in seconds and at most 3.156e+08 (ten years), got "
         "1e+300 (a typo?)"),
    ],
)  # fmt: skip
def test_a_budget_no_run_could_finish_is_refused_before_it_starts(
    shards, tmp_path, capsys, budget, said
):
    """`--flops 1e40` and `--time 1e300` started a run that would train until killed."""
    out = tmp_path / "run"
    assert one_line_error(capsys, cli_args(shards, out, *budget)) == f"error: {said}\n"
    assert not out.exists()
