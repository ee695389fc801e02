"""`generate` with any prompt bytes and any sampling settings either works or refuses
with one line (issue 16, item 10); NaN temperatures and out-of-range seeds used to end
in a traceback, and a prompt that is not UTF-8 in a UnicodeEncodeError."""

import os
import random

import pytest

from scalinglab.cli import main
from tests.reliability.helpers import one_line_error
from tests.train.helpers import TEXT, cli_args


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A byte-level run and a char-level one (trained 2 steps: the sampler is the test)."""
    tmp = tmp_path_factory.mktemp("gen")
    (tmp / "corpus.txt").write_bytes(TEXT)
    out = {}
    for kind in ("byte", "char"):
        shards = tmp / f"shards-{kind}"
        assert main(["prepare", str(tmp / "corpus.txt"), "--out", str(shards), "--tokenizer",
                     kind, "--block-size", "16"]) == 0  # fmt: skip
        out[kind] = tmp / f"run-{kind}"
        assert main(cli_args(shards, out[kind], "--steps", "2", "--threads", "1")) == 0
    return out


def _generate(run, *flags):
    return ["generate", str(run), "--max-new-tokens", "8", "--seed", "1", *flags]


@pytest.mark.parametrize(
    "flags, expect",
    [
        (["--temperature", "nan"], "--temperature must be a finite number >= 0 (0: greedy), got nan"),
        (["--temperature", "inf"], "--temperature must be a finite number >= 0 (0: greedy), got inf"),
        (["--temperature", "-1"], "--temperature must be a finite number >= 0 (0: greedy), got -1.0"),
        (["--seed", "-1"], "--seed must be in [0, 9223372036854775807], got -1"),
        (["--seed", str(2**70)], f"--seed must be in [0, 9223372036854775807], got {2**70}"),
        (["--top-p", "nan"], "--top-p must be in (0, 1], got nan"),
        (["--top-p", "0"], "--top-p must be in (0, 1], got 0.0"),
        (["--top-k", "-3"], "--top-k must be >= 0, got -3"),
        (["--max-new-tokens", "-1"], "--max-new-tokens must be >= 0, got -1"),
        (["--prompt", ""], "--prompt is empty: give at least one token of text"),
    ],
)  # fmt: skip
def test_settings_out_of_range_are_one_line(runs, capsys, flags, expect):
    err = one_line_error(capsys, _generate(runs["byte"], *flags))
    assert err == f"error: {expect}\n"


@pytest.mark.parametrize(
    "flags",
    [["--temperature", "0"], ["--temperature", "1e-300"], ["--temperature", "1e6"],
     ["--top-k", "1"], ["--top-k", "100000"], ["--top-p", "1e-9"], ["--top-p", "1"],
     ["--max-new-tokens", "0"]],
)  # fmt: skip
def test_extreme_settings_in_range_work(runs, capsys, flags):
    assert main([*_generate(runs["byte"]), *flags, "--prompt", "the "]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the ")
    # a temperature of 1e-300 overflows the scaled logits: it samples as greedy does
    if flags == ["--temperature", "1e-300"]:
        assert main([*_generate(runs["byte"]), "--temperature", "0", "--prompt", "the "]) == 0
        assert capsys.readouterr().out == out


def test_any_prompt_bytes_work_on_bytes_or_refuse_cleanly_on_chars(runs, capsys):
    seed = int.from_bytes(os.urandom(4), "little")
    print("seed", seed)
    rnd = random.Random(seed)
    prompts = [b"ab\xff\xfe", b"\x00\x01", "€ and ☃".encode(), b"\xc3"]
    prompts += [rnd.randbytes(rnd.randint(1, 40)) for _ in range(12)]
    for raw in prompts:
        prompt = os.fsdecode(raw)  # as Python hands argv bytes to the program
        # --prompt=TEXT: a prompt that starts with "-" would read as a flag after a space
        assert main([*_generate(runs["byte"]), f"--prompt={prompt}"]) == 0, raw
        assert capsys.readouterr().out
        rc = main([*_generate(runs["char"]), f"--prompt={prompt}"])
        out, err = capsys.readouterr()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            assert rc == 2 and err == (
                f"error: --prompt: not valid UTF-8 at byte {exc.start}; the char tokenizer "
                "of this run reads text (only a run of the byte tokenizer takes any bytes)\n"
            ), raw
        else:
            assert rc == 0 and out, (raw, err)
