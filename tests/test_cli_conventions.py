"""The conventions of docs/cli.md hold on every command: the parsers are walked, so a new
command that breaks them (no --json, an --out without -o, a sentinel default in its help,
no row in the table) fails here."""

import argparse
import json
import os
import re
from pathlib import Path

import pytest

from scalinglab.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
TABLE_ROW = re.compile(r"^\| `([a-z -]+)` \|(.*)\|\s*$")
# What `--help` must never show: a sentinel instead of its meaning, a Python tuple of choices.
LEAKS = re.compile(r"\(default: (''|-\d|None\)|True\)|False\))|\('[^']*', '")


def leaves(p: argparse.ArgumentParser, path=()):
    """(command words, parser) of every command that runs something."""
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(path), p
    for a in subs:
        for name, sp in dict(a.choices).items():
            if sp.prog.split()[-1] == name:  # aliases share a parser: walk it once
                yield from leaves(sp, (*path, name))


COMMANDS = dict(leaves(build_parser()))


def table() -> dict[str, dict[str, str]]:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    head = ["--out", "--json", "-v/-q", "--print-config", "--set"]
    rows = {}
    for line in text.splitlines():
        m = TABLE_ROW.match(line)
        if m:
            cells = [c.strip() for c in m.group(2).split("|")]
            rows[m.group(1)] = dict(zip(head, cells, strict=True))
    return rows


def options(p) -> dict[str, argparse.Action]:
    return {o: a for a in p._actions for o in a.option_strings}


def test_every_command_has_a_row_in_docs_cli_and_every_row_a_command():
    rows = table()
    assert len(COMMANDS) >= 15 and set(rows) == set(COMMANDS), (
        f"docs/cli.md rows {sorted(rows)} != commands {sorted(COMMANDS)}"
    )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_common_flags_mean_the_same_everywhere(name):
    p, row = COMMANDS[name], table()[name]
    opts = options(p)
    # --json: a switch on every command; what it prints is said in its help
    j = opts.get("--json")
    assert j is not None and j.nargs == 0 and j.dest == "json", f"{name}: no --json switch"
    assert j.help.startswith("print"), f"{name}: --json help should say what it prints"
    assert "-v" in opts and "-q" in opts and opts["-v"].dest == "verbose"
    # --out: where the command writes, spelled -o too, named DIR/RUN/FILE/PATH as the table says
    out = opts.get("--out")
    if row["--out"] == "-":
        assert out is None, f"{name}: writes nothing, yet has --out (add its row to docs/cli.md)"
    else:
        assert out is not None, f"{name}: docs/cli.md says it writes to --out"
        assert "-o" in out.option_strings and out.dest == "out" and out.nargs is None
        assert out.metavar == row["--out"].split()[0] in ("DIR", "RUN", "FILE", "PATH"), name
    for flag in ("--print-config", "--set"):
        assert (flag in opts) == (row[flag] == "yes"), f"{name}: {flag} vs docs/cli.md"
    if "--print-config" in opts:
        assert opts["--print-config"].nargs == 0
    assert row["-v/-q"] == "yes" and row["--json"] == "yes"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_shows_no_sentinel_defaults_or_python_tuples(name):
    text = COMMANDS[name].format_help()
    assert not LEAKS.search(text), f"scalinglab {name} --help: {LEAKS.search(text).group()}"
    assert "--csv" not in text  # runs: the older spelling works, unlisted


def test_the_sentinels_show_as_their_meaning():
    text = " ".join(COMMANDS["train"].format_help().split())
    for shown in ("--min-lr MIN_LR final learning rate (default: lr / 10)",
                  "--steps STEPS budget: optimizer steps (default: none)",
                  "--schedule {cosine,constant,wsd}", "(default: --no-compile)",
                  "--data DATA shards folder made by `scalinglab prepare` (default: none, required)"):  # fmt: skip
        assert shown in text


def test_column_flags_show_the_names_looked_for_without_them():
    """fit --n-col ... --u-col: given nothing, the column is found by its names
    (laws.table.ALIASES), so the default shown is those names, not 'none'."""
    from scalinglab.laws.table import ALIASES, FLAGS

    for cmd in ("fit", "backtest"):
        opts = options(COMMANDS[cmd])
        for key, flag in FLAGS.items():
            text = " ".join(opts[flag].help.split())
            assert f"(default: {ALIASES[key][0]}" in text, f"{cmd} {flag}: {text}"


def test_json_is_one_document_on_stdout(tmp_path, capsys):
    from tests.report.synth_runs import isoflop_sweep

    assert main(["presets", "--json"]) == 0
    gpt_tiny = json.loads(capsys.readouterr().out)[0]
    assert gpt_tiny["preset"] == "gpt-tiny" and gpt_tiny["params"] == 834304
    assert main(["data", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert any(d["name"] == "tinyshakespeare" and d["bytes"] > 1e6 for d in listed)
    isoflop_sweep(tmp_path, "gpt", [1e12, 3e12, 1e13], noise=0.002)
    assert main(["runs", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 * 6 and all(r["status"] == "completed" for r in rows)
    # --out with --json: the file is written and the result printed
    assert main(["runs", str(tmp_path), "-o", str(tmp_path / "t.jsonl"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == rows
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 18
    # the older --csv still writes the CSV
    assert main(["runs", str(tmp_path), "--csv", str(tmp_path / "t.csv")]) == 0
    assert len((tmp_path / "t.csv").read_text().splitlines()) == 19


def test_report_out_and_json(tmp_path, capsys):
    from tests.report.synth_runs import LAWS, isoflop_sweep

    isoflop_sweep(tmp_path / "sweep", "gpt", [1e12, 3e12, 1e13], noise=0.002)
    out = tmp_path / "elsewhere"
    assert main(["report", str(tmp_path / "sweep"), "-o", str(out), "--json",
                 "--bootstrap", "10"]) == 0  # fmt: skip
    s = json.loads(capsys.readouterr().out)
    assert s == json.loads((out / "summary.json").read_text())
    assert (out / "report.html").stat().st_size > 50_000 and (out / "isoflop.png").exists()
    assert not (tmp_path / "sweep" / "report.html").exists()  # the folder read is untouched
    law = LAWS["gpt"]  # N_opt ∝ C^a with a = beta / (alpha + beta) of the law drawn from
    assert s["fits"]["gpt"]["isoflop"]["params"]["a"] == pytest.approx(
        law["beta"] / (law["alpha"] + law["beta"]), abs=0.03
    )


def test_set_overrides_typed_keys_of_sweep_and_study(capsys):
    import tomllib

    spec = str(ROOT / "examples" / "tiny_sweep.toml")
    argv = ["sweep", spec, "--print-config", "--set", "train.batch_size=16",
            "--set", "train.tokens_per_step=1", "--set", "design.budgets=[1e11, 3e11]"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --set train.tokens_per_step=1: unknown key tokens_per_step "
                          "in [train] (known: batch_size,") and err.count("\n") == 1  # fmt: skip
    del argv[5:7]
    assert main([*argv, "--set", "train.deterministic=false", "--set", "model.dropout=0"]) == 0
    d = tomllib.loads(capsys.readouterr().out)
    assert d["train"]["batch_size"] == 16 and d["design"]["budgets"] == [1e11, 3e11]
    assert d["train"]["deterministic"] is False and d["model"]["dropout"] == 0.0
    for item, says in [
        ("train.batch_size=1.5", "not a whole number: '1.5'"),
        ("design.budgetz=3", "[design]: unknown key(s) budgetz"),
        ("train.data=x", "[train]: data are set by the sweep"),
        ("batch_size", "expected KEY=VALUE"),
    ]:
        assert main(["sweep", spec, "--print-config", "--set", item]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --set {item}") and says in err and err.count("\n") == 1
    # keys that need each other, in either order; the one at fault is named, not the one
    # before it that only lacked it
    duration = "hparams.duration_power=0.228"
    for sets in ([duration, "hparams.ref_tokens=35712"], ["hparams.ref_tokens=35712", duration]):
        assert main(["sweep", spec, "--print-config", *(f"--set={s}" for s in sets)]) == 0
        assert tomllib.loads(capsys.readouterr().out)["hparams"]["gpt"]["ref_tokens"] == 35712
    assert main(["sweep", spec, "--print-config", f"--set={duration}",
                 "--set=hparams.ref_tokens=-5"]) == 2  # fmt: skip
    assert capsys.readouterr().err.startswith("error: --set hparams.ref_tokens=-5: ")
    # study: keys of the study spec, the shared [train] typed as train's flags (1e6 an int)
    assert main(["quickstart", "--print-config", "--set", "sweeps.gpt.sizes=5",
                 "--set", "train.eval_tokens=1e4", "--set", "workers=1"]) == 0  # fmt: skip
    d = tomllib.loads(capsys.readouterr().out)
    assert d["sweeps"]["gpt"]["sizes"] == 5 and d["workers"] == 1
    assert d["train"]["eval_tokens"] == 10_000 and isinstance(d["train"]["eval_tokens"], int)
    assert main(["quickstart", "--print-config", "--set", "backtest.budget=1"]) == 2
    assert "--set backtest.budget=1: built-in quickstart [backtest]: budget 1 must be at least" in (
        capsys.readouterr().err
    )


def test_generate_json_holds_what_streaming_prints(tmp_path, capsys):
    from scalinglab.train import train
    from tests.train.helpers import tiny_cfg, tiny_shards

    run = tmp_path / "run"
    train(tiny_cfg(tiny_shards(tmp_path / "shards"), steps=30), run)
    argv = ["generate", str(run), "--prompt", "a quick", "--temperature", "0",
            "--max-new-tokens", "25"]  # fmt: skip
    assert main(argv) == 0
    streamed = capsys.readouterr().out
    assert main([*argv, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["text"] + "\n" == streamed and got["new_tokens"] == 25
    assert got["prompt"] == "a quick" and got["text"].startswith("a quick")
    assert len(got["text"].encode()) == len(b"a quick") + 25  # bytes: one token each


def test_runs_curves_out_csv_is_what_the_older_csv_wrote(tmp_path, capsys):
    from tests.report.synth_runs import isoflop_sweep

    isoflop_sweep(tmp_path, "gpt", [1e12, 3e12], noise=0.0)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(["runs", str(tmp_path), "--curves", "--csv", str(a)]) == 0
    assert main(["runs", str(tmp_path), "--curves", "--out", str(b)]) == 0
    text = a.read_text()
    assert text == b.read_text() and text.splitlines()[0].startswith("run_id,arch,status")
    assert len(text.splitlines()) > 12  # a row per evaluation of each of the 12 runs


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_two_word_flag_answers_to_underscores_and_integers_to_1e6(name):
    """docs/cli.md: 'integers accept 1e6; every --two-words flag also answers to
    --two_words'. Once true only of the flags made from a config (plan --target_loss and
    plan --steps 2.4e4 were usage errors)."""
    p = COMMANDS[name]
    for a in p._actions:
        assert a.type is not int, f"{name} {a.option_strings}: reads 1e6 as an error"
        if isinstance(a, argparse.BooleanOptionalAction):
            continue
        for o in a.option_strings:
            if o.startswith("--") and "-" in o[2:]:
                alias = "--" + o[2:].replace("-", "_")
                other = p._option_string_actions.get(alias)
                assert other is not None and other.dest == a.dest, f"{name} {o}: no {alias}"


def test_underscores_and_1e_integers_parse_as_the_documented_spelling():
    parse = build_parser().parse_args
    a = parse(["plan", "f.json", "--target_loss", "2.2", "--steps", "2.4e4", "--warmup", "2.16e3"])
    assert (a.target_loss, a.steps, a.warmup) == (2.2, 24000, 2160)
    a = parse(["eval", "RUN", "--eval_tokens", "1e3", "--task_items", "1e2"])
    assert (a.eval_tokens, a.task_items) == (1000, 100)
    a = parse(["generate", "RUN", "--max_new_tokens", "1e1", "--top_k", "5"])
    assert (a.max_new_tokens, a.top_k) == (10, 5)
    a = parse(["sweep", "s.toml", "--dry_run", "--out", "o"])
    assert a.dry_run is True


def test_a_negative_number_in_any_form_is_a_value_not_a_flag(capsys):
    """`--lr -1e-3` said "--lr: expected one argument" (argparse took -1e-3 for a flag);
    it is a value, refused for what it is by the command's own check."""
    parse = build_parser().parse_args
    for text, value in [("-1e-3", -1e-3), ("-1", -1.0), ("-.5", -0.5), ("-2.E+1", -20.0)]:
        assert parse(["train", "--data", "d", "--out", "o", "--lr", text]).lr == value
    assert main(["train", "--data", "d", "--out", "o", "--lr", "-1e-3"]) == 2
    assert capsys.readouterr().err == (
        "error: --lr must be a positive number (0: the optimizer's default), got -0.001\n"
    )
    with pytest.raises(SystemExit):  # a word after a dash is still a flag
        parse(["train", "--data", "d", "--out", "o", "--lr", "-x"])
    assert "--lr: expected one argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, flag",
    [(["plan", "f.json", "--flops", "1e20", "--flops", "1e21"], "--flops"),
     (["backtest", "r.csv", "--thresholds", "1e20", "--thresholds", "1e21"], "--thresholds"),
     (["backtest", "r.csv", "--train-fracs", "0.5", "--train_fracs", "0.6"], "--train_fracs"),
     (["fit", "r.csv", "--budgets", "1e18", "--budgets", "1e19"], "--budgets")],
)  # fmt: skip
def test_a_flag_of_several_values_given_twice_is_refused(capsys, argv, flag):
    """docs/cli.md: a flag of several values takes them all after one spelling. Given
    twice, argparse kept the last: `plan --flops 1e20 --flops 1e21` planned 1e21 alone."""
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    command = argv[0]
    assert capsys.readouterr().err == (
        f"error: scalinglab {command}: argument {argv[2]}: given twice: give all its values "
        f"after one {flag} ({flag} A B ...) (see `scalinglab {command} --help`)\n"
    )
    parse = build_parser().parse_args  # one parser, many parses: each its own
    for _ in range(3):
        assert parse(["plan", "f.json", "--flops", "1e20", "1e21"]).flops == [1e20, 1e21]


def test_quiet_leaves_only_warnings_and_errors(tmp_path):
    """docs/cli.md: -q logs warnings and errors only (`runs -o` said "wrote N rows" anyway)."""
    import subprocess
    import sys

    from tests.report.synth_runs import isoflop_sweep

    isoflop_sweep(tmp_path / "s", "gpt", [1e12, 3e12], noise=0.0)
    argv = [sys.executable, "-m", "scalinglab", "runs", str(tmp_path / "s"), "-o"]
    loud = subprocess.run([*argv, str(tmp_path / "a.csv")], capture_output=True, text=True)
    quiet = subprocess.run([*argv, str(tmp_path / "b.csv"), "-q"], capture_output=True, text=True)
    assert loud.returncode == quiet.returncode == 0
    assert loud.stderr.startswith("wrote ") and quiet.stderr == ""
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_logged_warnings_and_errors_say_so_as_printed_ones_do(tmp_path):
    """The library logs its warnings (here prepare's BPE trainer, which ran out of merges);
    the command line prints them with the `warning: ` that its own printed warnings carry,
    and logged errors with `error: `."""
    import logging
    import subprocess
    import sys

    from scalinglab.cli import LevelFormatter

    (tmp_path / "c.txt").write_text("the cat sat on the mat\n" * 200)
    argv = [sys.executable, "-m", "scalinglab", "prepare", str(tmp_path / "c.txt"),
            "--out", str(tmp_path / "sh"), "--tokenizer", "bpe", "--vocab-size", "2000"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=os.environ | {
        "SCALINGLAB_CACHE": str(tmp_path / "cache")})  # fmt: skip
    assert done.returncode == 0, done.stderr
    warned = [x for x in done.stderr.splitlines() if "--vocab-size" in x]
    assert warned == [
        "warning: --vocab-size 2000: the bpe vocabulary reached 269; the training text has no "
        "more merges to make (every pair of tokens seen is merged), so use more text for a "
        "larger vocabulary"
    ]
    fmt = LevelFormatter()
    said = [fmt.format(logging.makeLogRecord({"levelno": n, "msg": "x %d", "args": (1,)}))
            for n in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)]  # fmt: skip
    assert said == ["x 1", "x 1", "warning: x 1", "error: x 1"]


def test_an_exponent_integer_is_the_number_typed_and_bounded(capsys):
    """`--seed 1e30` went through float and echoed 1000000000000000019884624838656;
    `presets --vocab-size 1e30` printed a table of 1e35-parameter models."""
    from scalinglab.config import int_arg

    assert int_arg("1e30") == 10**30 and int_arg("2.5e5") == 250_000
    with pytest.raises(argparse.ArgumentTypeError, match="not a whole number a flag can take"):
        int_arg("1e999999999")  # a billion digits, not an integer to build
    assert main(["generate", "nowhere", "--seed", "1e30"]) == 2
    assert capsys.readouterr().err == (
        f"error: --seed must be in [0, 9223372036854775807], got {10**30}\n"
    )
    assert main(["presets", "--vocab-size", "1e30"]) == 2
    assert capsys.readouterr().err == (
        f"error: --vocab-size must be in [1, 4294967296] (shards hold token ids in at most "
        f"32 bits), got {10**30}\n"
    )
