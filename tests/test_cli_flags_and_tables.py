"""What train, generate, presets and data take from their flags and print: flags over
--config, the sampler's seed and defaults, the presets table by hand, data list."""

import json
import tomllib

import pytest

from scalinglab.cli import build_parser, main
from tests.train.helpers import cli_args, tiny_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    path = tmp_path_factory.mktemp("shards") / "shards"
    tiny_shards(path)
    return path


# ---- train: flags override --config ------------------------------------------------
def test_train_flags_override_the_config_file(shards, tmp_path, capsys):
    """--config FILE sets n_layer 3 and lr 0.01; --n-layer 1 and --lr 0.002 on the command
    line win (the help says: flags override --config, which overrides --preset)."""
    cfg = tmp_path / "run.toml"
    cfg.write_text("[model]\nn_layer = 3\nn_embd = 64\n[train]\nlr = 0.01\nbatch_size = 4\n")
    flags = cli_args(shards, tmp_path / "run", "--steps", "2", "--lr", "0.002")
    assert main([*flags, "--config", str(cfg), "--print-config"]) == 0
    got = tomllib.loads(capsys.readouterr().out)
    assert got["model"]["n_layer"] == 1 and got["model"]["n_embd"] == 32  # flags
    assert got["train"]["lr"] == 0.002 and got["train"]["batch_size"] == 8  # flags
    bare = ["train", "--data", str(shards), "--out", str(tmp_path / "r2"), "--steps", "2"]
    assert main([*bare, "--config", str(cfg), "--print-config"]) == 0
    file_only = tomllib.loads(capsys.readouterr().out)  # no flags: the file's values
    assert file_only["model"]["n_layer"] == 3 and file_only["train"]["lr"] == 0.01


# ---- generate -----------------------------------------------------------------------
def test_generate_defaults_are_the_documented_ones():
    a = build_parser().parse_args(["generate", "RUN"])
    assert (a.max_new_tokens, a.temperature, a.top_k, a.top_p, a.seed, a.prompt) == (
        200,
        0.8,
        0,
        1.0,
        None,
        "\n",
    )


def test_max_new_tokens_bound_is_inclusive(capsys):
    from scalinglab.cli.generate import MAX_NEW_TOKENS, check_flags

    a = build_parser().parse_args(["generate", "RUN", "--max-new-tokens", str(MAX_NEW_TOKENS)])
    check_flags(a)  # exactly the bound is allowed
    assert main(["generate", "nowhere", "--max-new-tokens", str(MAX_NEW_TOKENS + 1)]) == 2


def test_generate_seed_makes_the_sample_reproducible(shards, tmp_path, capsys):
    """Same --seed: the same text; the sampler's seed reaches the sampler."""
    run = tmp_path / "run"
    assert main(cli_args(shards, run, "--steps", "2")) == 0
    capsys.readouterr()
    texts = []
    for seed in ("3", "3", "4"):
        assert (
            main(
                [
                    "generate",
                    str(run),
                    "--max-new-tokens",
                    "40",
                    "--temperature",
                    "1.5",
                    "--seed",
                    seed,
                    "--json",
                ]
            )
            == 0
        )
        texts.append(json.loads(capsys.readouterr().out)["text"])
    assert texts[0] == texts[1] != texts[2]


# ---- presets and data list ----------------------------------------------------------
def test_presets_row_of_gpt_tiny_by_hand(capsys):
    """gpt-tiny (L=4, d=128, T=64, learned positions) on bytes: N = 834,304; without
    wte (256*128) and wpe (64*128): 793,344; FLOPs/token = 6 (L (12 d^2 + 2 T d) + V d)."""
    assert main(["presets", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)[0]
    assert r["preset"] == "gpt-tiny" and r["params_nonembed"] == 834_304 - 256 * 128 - 64 * 128
    assert r["flops_per_token"] == 6 * (4 * (12 * 128**2 + 2 * 64 * 128) + 256 * 128)
    assert main(["presets"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row == ["gpt-tiny", "gpt", "4", "128", "4", "64", "834,304", "5.31e+06"]


def test_presets_vocab_bound_is_two_to_the_32():
    assert main(["presets", "--vocab-size", str(1 << 32), "--json"]) == 0
    assert main(["presets", "--vocab-size", str((1 << 32) + 1)]) == 2


def test_data_list_text_sizes_in_decimal_mb_and_derived_files(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert any(ln.startswith("tinyshakespeare") and "  1.12 MB  " in ln for ln in out.splitlines())
    assert "scaling_data/multipowerlaw_schedule_curves.csv (made from the files above)" in out


def test_data_fetch_force_replaces_a_wrong_file(tmp_path):
    from tests.data.test_fetch import SHARED

    if not (SHARED / "corpora/tinyshakespeare.txt").is_file():
        pytest.skip("../shared is not beside the repo")
    dest = tmp_path / "out" / "corpora" / "tinyshakespeare.txt"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"mine")
    argv = [
        "data",
        "fetch",
        "tinyshakespeare",
        "--out",
        str(tmp_path / "out"),
        "--mirror",
        str(SHARED),
    ]
    assert main(argv) == 2 and dest.read_bytes() == b"mine"
    assert main([*argv, "--force"]) == 0
    assert dest.read_bytes() == (SHARED / "corpora/tinyshakespeare.txt").read_bytes()
