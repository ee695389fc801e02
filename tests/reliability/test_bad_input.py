"""Bad input at each boundary: one `error: ...` line naming the fault, exit code 2, and
nothing written, not even in part. The items already tested elsewhere are listed in
docs/reliability.md; these add the ones that were not, and the "nothing written"
half of the others."""

import pytest

from tests.laws.test_cli_fit import GOOD
from tests.reliability.helpers import one_line_error
from tests.train.helpers import cli_args, tiny_shards


def test_binary_corpus_with_nul_bytes(tmp_path, capsys):
    corpus = tmp_path / "blob.txt"
    corpus.write_bytes(b"plain text that looks fine\n" * 200 + b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d")
    out = tmp_path / "shards"
    argv = ["prepare", str(corpus), "--out", str(out), "--block-size", "8", "--chunk-bytes", "1024"]
    err = one_line_error(capsys, argv)
    assert f"{corpus}: byte 5408: NUL byte; this looks like a binary file" in err  # 27 * 200 + 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.txt"]  # no folder, no temp


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return tiny_shards(tmp_path_factory.mktemp("data") / "shards")


TOML_SYNTAX = "[model]\nn_layer = 1\n[train\nlr = 3e-3\n"
TOML_UNKNOWN = "[train]\nwarmup_steps = 5\n"


@pytest.mark.parametrize(
    "flags, toml, expect",
    [
        ([], TOML_UNKNOWN, "run.toml [train]: unknown key(s) warmup_steps (known: "),
        ([], TOML_SYNTAX, "run.toml: invalid TOML: Expected ']' at the end of a table "
                          "declaration (at line 3, column 7)"),
        (["--batch-size", "-4"], None, "--batch-size must be positive, got -4"),
        (["--n-embd", "0"], None, "--n-embd must be positive, got 0"),
        (["--block-size", "0"], None, "--block-size must be positive, got 0"),
        (["--steps", "-5"], None, "--steps must be >= 0, got -5"),
        (["--lr", "-1"], None, "--lr must be a positive number (0: the optimizer's default), got -1.0"),
        (["--tokens", "100"], None, "--tokens 100 is less than one optimizer step (--batch-size "
                                    "8 x --grad-accum 1 x --block-size 16 = 128 tokens)"),
        (["--flops", "1e6"], None, "--flops 1e+06 is less than one optimizer step"),
        (["--n-embd", "30", "--n-head", "4"], None, "--n-embd 30 is not divisible by --n-head 4"),
        (["--seed", "-1"], None, "--seed must be in [0, 9223372036854775807], got -1"),
        (["--beta1", "1.0"], None, "--beta1 must be in [0, 1), got 1.0"),
        (["--beta2", "nan"], None, "--beta2 must be a finite number, got nan"),
        (["--min-lr", "nan"], None, "--min-lr must be a finite number, got nan"),
        (["--threads", "-2"], None, "--threads must be >= 0 (0: the library's default), got -2"),
        (["--warmup", "99999999999999999999"], None,
         "--warmup must be in [-9223372036854775808, 9223372036854775807], got 99999999999999999999"),
        (["--dropout", "inf"], None, "--dropout must be a finite number, got inf"),
    ],
)  # fmt: skip
def test_bad_training_config(shards, tmp_path, capsys, flags, toml, expect):
    budget = [] if {"--tokens", "--flops", "--steps"} & set(flags) else ["--steps", "3"]
    extra = [*budget, *flags]
    if toml is not None:
        (tmp_path / "run.toml").write_text(toml)
        extra += ["--config", str(tmp_path / "run.toml")]
    err = one_line_error(capsys, cli_args(shards, tmp_path / "run", *extra))
    assert expect in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "content, expect",
    [
        (b"", "the file is empty"),
        (b"run_id,params,tokens,loss\n", "the header has no data rows"),
        (GOOD.replace("r1,", "r0,").encode(), "duplicate run_id 'r0' on lines 2 and 3"),
        (b"run_id,params,tokens,loss\nr1,1e7,1e9,3.0\xff\n", "byte 40: not valid UTF-8"),
        (GOOD.replace("r3,1e8", "r3,abc").encode(), "row 4 (line 5), column 'params'"),
    ],
)
def test_bad_fit_input_writes_no_fit(tmp_path, capsys, content, expect):
    csv = tmp_path / "runs.csv"
    csv.write_bytes(content)
    out = tmp_path / "fit.json"
    err = one_line_error(capsys, ["fit", str(csv), "--bootstrap", "0", "--out", str(out)])
    assert f"{csv}" in err and expect in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv"]
