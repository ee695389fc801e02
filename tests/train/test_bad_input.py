import json

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.errors import ConfigError
from tests.conftest import write_raw_shards
from tests.train.helpers import cli_args, tiny_shards


def _error(capsys, argv) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture
def data(tmp_path):
    return tiny_shards(tmp_path / "shards")


def test_missing_shards_folder(tmp_path, capsys):
    err = _error(capsys, cli_args(tmp_path / "nope", tmp_path / "run", "--steps", "3"))
    assert f"shards folder not found: {tmp_path / 'nope'}" in err


def test_invalid_shards_folder(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    err = _error(capsys, cli_args(bad, tmp_path / "run", "--steps", "3"))
    assert "manifest.json: unreadable manifest" in err


def test_budgets_are_mutually_exclusive(data, tmp_path, capsys):
    err = _error(capsys, cli_args(data, tmp_path / "run", "--steps", "3", "--tokens", "1000"))
    assert "give exactly one budget; got --steps and --tokens" in err


def test_a_budget_is_required(data, tmp_path, capsys):
    err = _error(capsys, cli_args(data, tmp_path / "run"))
    assert "no training budget" in err
    assert not (tmp_path / "run").exists()


def test_n_embd_not_divisible_by_n_head(data, tmp_path, capsys):
    argv = cli_args(data, tmp_path / "run", "--steps", "3", "--n-embd", "30", "--n-head", "4")
    assert "--n-embd 30 is not divisible by --n-head 4" in _error(capsys, argv)


def test_block_size_larger_than_val_split(tmp_path, capsys):
    data = write_raw_shards(tmp_path / "s", np.arange(5000) % 50, np.arange(40) % 50, 256)
    err = _error(capsys, cli_args(data, tmp_path / "run", "--steps", "3", "--block-size", "64"))
    assert err == (
        f"error: --block-size 64 is too large for the val split of {data}: it has 40 tokens, "
        "one window needs 65 (--block-size + 1); use a smaller --block-size or more data\n"
    )


def test_a_split_of_one_window_trains_as_prepare_promised(tmp_path, capsys):
    """prepare passes a val split of --block-size + 1 tokens (one window and its target),
    but train refused it, saying '--block-size 16 is larger than the val split (17 tokens)'.
    A val split of one window now trains; a train split one short of the random window's
    + 2 is named with the number it needs."""
    data = write_raw_shards(tmp_path / "s", np.arange(18) % 50, np.arange(17) % 50, 256)
    argv = ["--steps", "1", "--batch-size", "1", "--eval-tokens", "0"]
    assert main(cli_args(data, tmp_path / "run", *argv)) == 0
    assert json.loads((tmp_path / "run" / "result.json").read_text())["eval_tokens"] == 16
    data = write_raw_shards(tmp_path / "t", np.arange(17) % 50, np.arange(17) % 50, 256)
    err = _error(capsys, cli_args(data, tmp_path / "run2", *argv))
    assert err == (
        f"error: --block-size 16 is too large for the train split of {data}: it has 17 tokens, "
        "one window needs 18 (--block-size + 2); use a smaller --block-size or more data\n"
    )


def test_resume_with_a_changed_model_is_refused(data, tmp_path, capsys):
    assert main(cli_args(data, tmp_path / "run", "--steps", "3")) == 0
    capsys.readouterr()
    argv = cli_args(data, tmp_path / "run", "--steps", "6", "--n-layer", "2", "--dropout", "0.1")
    err = _error(capsys, argv)
    assert "the model or data changed" in err
    assert "--n-layer 1 -> 2" in err and "--dropout 0.0 -> 0.1" in err
    # A longer budget with the same model and data continues the run.
    assert main(cli_args(data, tmp_path / "run", "--steps", "6")) == 0
    assert json.loads((tmp_path / "run/result.json").read_text())["steps"] == 6


def test_unknown_preset_and_toml_key(data, tmp_path, capsys):
    argv = cli_args(data, tmp_path / "run", "--steps", "3", "--preset", "gpt-huge")
    assert "--preset 'gpt-huge' is unknown" in _error(capsys, argv)
    toml = tmp_path / "run.toml"
    toml.write_text("[model]\nn_layers = 2\n")
    err = _error(capsys, cli_args(data, tmp_path / "run", "--steps", "3", "--config", str(toml)))
    assert "unknown key(s) n_layers" in err
    # a preset in the file is named there, not blamed on a --preset flag never given
    toml.write_text('[model]\npreset = "bogus"\n')
    err = _error(capsys, cli_args(data, tmp_path / "run", "--steps", "3", "--config", str(toml)))
    assert err.startswith(f"error: {toml} [model]: preset 'bogus' is unknown; known presets: ")
    assert "--preset" not in err
    # the flag wins over the file, and is the one named
    argv = cli_args(data, tmp_path / "run", "--steps", "3", "--config", str(toml), "--preset", "x")
    assert _error(capsys, argv).startswith("error: --preset 'x' is unknown; known presets: ")
    from scalinglab.api import run_config

    with pytest.raises(ConfigError, match=rf"^{toml} \[model\]: preset 'bogus' is unknown"):
        run_config(toml)
    with pytest.raises(ConfigError, match=r"^run_config\(preset=...\): preset 'y' is unknown"):
        run_config(toml, preset="y")


def test_unknown_malloc_choice(data, tmp_path, capsys, monkeypatch):
    from scalinglab.train import malloc

    monkeypatch.setenv("SCALINGLAB_MALLOC", "sytem")
    monkeypatch.setattr(malloc, "_done", None)  # as in a fresh process
    err = _error(capsys, cli_args(data, tmp_path / "run", "--steps", "3"))
    assert "SCALINGLAB_MALLOC='sytem': expected 'tuned' (default) or 'system'" in err
    assert not (tmp_path / "run" / "ckpt").exists()


def test_compile_without_a_cpp_compiler(data, tmp_path, capsys, monkeypatch):
    from torch._inductor import cpp_builder
    from torch._inductor.exc import InvalidCxxCompiler

    def no_compiler():
        raise InvalidCxxCompiler

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    err = _error(capsys, cli_args(data, tmp_path / "run", "--steps", "3", "--compile"))
    assert "--compile: torch.compile on a CPU needs a C++ compiler and none was found" in err
    assert not (tmp_path / "run").exists()  # nothing written before the check
