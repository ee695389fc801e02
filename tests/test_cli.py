import subprocess
import sys

from scalinglab.cli import main
from scalinglab.errors import DataError


def test_help_lists_commands(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "usage: scalinglab" in out


def test_module_entry_point_runs():
    r = subprocess.run(
        [sys.executable, "-m", "scalinglab", "--version"], capture_output=True, text=True
    )
    assert r.returncode == 0
    assert r.stdout.startswith("scalinglab ")


def test_library_errors_become_one_line(monkeypatch, capsys):
    import scalinglab.cli as cli

    def boom(args):
        raise DataError("corpus.txt: byte 17: invalid UTF-8")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    sub = next(a for a in parser._actions if a.dest == "command")
    p = sub.add_parser("boom")
    p.set_defaults(func=boom)
    assert cli.main(["boom"]) == 2
    err = capsys.readouterr().err
    assert err == "error: corpus.txt: byte 17: invalid UTF-8\n"


def test_usage_errors_are_one_line_and_point_to_help():
    for argv, what in [
        (["train", "--n-embd", "wide"], "argument --n-embd: invalid integer: 'wide'"),
        (["train", "--tokens", "1.5"], "argument --tokens: not a whole number: '1.5'"),
        (["fit"], "the following arguments are required: runs"),
        (["bogus"], "invalid choice: 'bogus'"),
        # a command's unknown flag: that command's help lists its flags, the top one not
        (
            ["train", "--bogus"],
            "scalinglab train: unrecognized arguments: --bogus (see `scalinglab train --help`)",
        ),
        (["data", "fetch", "x", "--bogus"], "(see `scalinglab data fetch --help`)"),
        (["--bogus"], "scalinglab: unrecognized arguments: --bogus (see `scalinglab --help`)"),
    ]:
        r = subprocess.run([sys.executable, "-m", "scalinglab", *argv], capture_output=True,
                           text=True)  # fmt: skip
        assert r.returncode == 2 and r.stdout == "", (argv, r.stdout)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: scalinglab"), r.stderr
        assert what in r.stderr and "--help`" in r.stderr, r.stderr


def test_integer_flags_take_1e6_and_underscore_spellings_are_aliases():
    from scalinglab.cli import build_parser
    from scalinglab.config import ModelConfig, TrainConfig, flags_given

    args = build_parser().parse_args(
        [
            "train",
            "--out",
            "r",
            "--tokens",
            "1e6",
            "--n_embd",
            "96",
            "--block_size",
            "64",
            "--no-bias",
        ]
    )
    assert flags_given(args, TrainConfig) == {"tokens": 1_000_000}
    assert flags_given(args, ModelConfig) == {"n_embd": 96, "block_size": 64, "bias": False}
    assert isinstance(args.tokens, int)


def test_verbosity_flags_go_before_or_after_the_command():
    from scalinglab.cli import build_parser

    p = build_parser()
    assert p.parse_args(["-v", "data", "list"]).verbose is True
    assert p.parse_args(["data", "list", "-q"]).quiet is True
    assert p.parse_args(["fit", "runs.csv", "--quiet"]).quiet is True
    args = p.parse_args(["fit", "runs.csv"])
    assert not getattr(args, "verbose", False) and not getattr(args, "quiet", False)
    r = subprocess.run([sys.executable, "-m", "scalinglab", "data", "list", "-v", "-q"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "-q/--quiet: not allowed with argument -v/--verbose" in r.stderr


def test_presets_lists_every_shape_with_known_parameter_counts(capsys):
    import json

    from scalinglab.models.registry import PRESETS

    assert main(["presets", "--vocab-size", "50257", "--json"]) == 0
    table = {r["preset"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(table) == list(PRESETS)
    # GPT-2 small and medium with their own vocabulary: the published counts
    assert table["gpt2"]["params"] == 124_439_808
    assert table["gpt2-medium"]["params"] == 354_823_168
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(PRESETS) and "834,304" in lines[1]  # gpt-tiny on bytes


def test_train_print_config_is_the_resolved_config_and_writes_nothing(tmp_path, capsys):
    import tomllib

    from scalinglab.config import RunConfig
    from tests.train.helpers import tiny_shards

    data = tiny_shards(tmp_path / "shards")
    argv = ["train", "--data", str(data), "--preset", "gpt-micro", "--n_layer", "2",
            "--tokens", "1e4", "--lr", "3e-3", "--dtype", "float32"]  # fmt: skip
    assert main([*argv, "--print-config"]) == 0
    cfg = RunConfig.from_dict(tomllib.loads(capsys.readouterr().out))
    assert (cfg.model.preset, cfg.model.n_layer, cfg.model.n_embd) == ("gpt-micro", 2, 64)
    assert cfg.model.vocab_size == 256 and cfg.train.tokens == 10_000  # resolved from shards
    assert cfg.train.min_lr == 3e-3 / 10 and cfg.train.dtype == "float32"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]  # nothing written
    assert main(argv) == 2  # without --print-config a run folder is required
    assert "--out RUN is required" in capsys.readouterr().err


def test_sweep_and_study_print_config_round_trip(capsys):
    import tomllib
    from pathlib import Path

    from scalinglab.study.builtin import QUICKSTART_TOML
    from scalinglab.study.spec import parse_study, study_dict, sweep_dict
    from scalinglab.sweep.spec import load_spec, parse_spec, spec_dict

    example = Path(__file__).resolve().parents[1] / "examples" / "tiny_sweep.toml"
    assert main(["sweep", str(example), "--print-config"]) == 0
    printed = tomllib.loads(capsys.readouterr().out)
    assert printed["shape"]["max_layers"] == 48  # a default the example leaves out, filled in
    assert spec_dict(parse_spec(printed, "printed")) == spec_dict(load_spec(example))
    assert main(["quickstart", "--print-config"]) == 0  # no --out needed to print
    printed = tomllib.loads(capsys.readouterr().out)
    assert printed["fit"]["bootstrap"] == 1000 and printed["backtest"]["predictor"]
    builtin = parse_study(tomllib.loads(QUICKSTART_TOML), "built-in")
    assert study_dict(parse_study(printed, "printed")) == study_dict(builtin)
    # [shape] and [hparams] filled in too: each arch's rule in full, [hparams] over it
    assert printed["shape"]["rnn_layers"] == 1  # a default the quickstart leaves out
    assert printed["hparams"]["gpt"]["lr"] == 5e-3 and printed["hparams"]["lstm"]["lr"] == 20
    assert printed["hparams"]["lstm"]["warmup_frac"] == 0.05  # from [hparams], not [.lstm]
    assert printed["hparams"]["gpt"]["duration_power"] == 0  # a default of neither
    grid = {"kind": "grid", "shapes": [{"n_layer": 1, "n_embd": 16}], "tokens": [1e6]}
    for arch in ("gpt", "lstm"):  # the sweeps it plans have the same rules
        sweeps = [spec_dict(parse_spec(sweep_dict(s, arch, Path("x"), grid, "a"), "a"))
                  for s in (builtin, parse_study(printed, "printed"))]  # fmt: skip
        assert sweeps[0] == sweeps[1] and sweeps[0]["hparams"][arch] == printed["hparams"][arch]
