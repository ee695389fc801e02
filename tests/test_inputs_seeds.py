"""A negative seed is refused up front, naming the flag or the spec's table, before numpy's
generators see it (they raised `ValueError: expected non-negative integer`: a traceback,
and for a study only after every run had trained)."""

import pytest

from scalinglab.errors import ConfigError
from scalinglab.laws.settings import FitConfig
from tests.laws.test_cli_fit import runs_csv
from tests.reliability.helpers import one_line_error
from tests.reliability.test_study_spec import _argv, _spec
from tests.train.helpers import cli_args, tiny_shards

SEED = "must be in [0, 9223372036854775807], got -1"


@pytest.mark.parametrize("command", ["fit", "backtest"])
def test_negative_fit_seed_is_one_line(tmp_path, capsys, command):
    csv = runs_csv(tmp_path)
    err = one_line_error(capsys, [command, str(csv), "--bootstrap", "20", "--seed", "-1"])
    assert err == f"error: --seed {SEED}\n"


def test_negative_fit_seed_from_python_names_the_keyword():
    with pytest.raises(ConfigError) as e:
        FitConfig(seed=-1)
    assert str(e.value) == f"seed {SEED}"


def test_negative_study_fit_seed_is_refused_before_any_run(tmp_path, capsys):
    spec = _spec(
        tmp_path, **{"[fit]\nbootstrap = 20\nseed = 0": "[fit]\nbootstrap = 20\nseed = -1"}
    )
    want = f"error: {spec} [fit]: seed {SEED}\n"  # the key as the file spells it
    assert one_line_error(capsys, _argv(tmp_path, spec, "--dry-run")) == want
    assert one_line_error(capsys, _argv(tmp_path, spec)) == want
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_negative_task_seed_is_one_line(tmp_path, capsys):
    shards = tiny_shards(tmp_path / "shards")
    from scalinglab.cli import main

    assert main(cli_args(shards, tmp_path / "run", "--steps", "2")) == 0
    capsys.readouterr()
    argv = ["eval", str(tmp_path / "run"), "--tasks", "builtin", "--task-seed", "-1"]
    assert one_line_error(capsys, argv) == f"error: --task-seed {SEED}\n"
    assert not (tmp_path / "run" / "tasks.json").exists()
