"""What a training audit found a new user meets: --out naming the shards folder wrote the
run among the shards (and rewrote their tokenizer.json); a warmup longer than the run was
shortened without a word; a prompt's characters the tokenizer lacks became <unk>
silently; eval's flags were named together and a file given for a run was "not found"."""

import json
import logging
import math
import os

import pytest

from scalinglab.cli import main
from scalinglab.cli.generate import prompt_ids
from scalinglab.data.tokenizers import CharTokenizer, WordTokenizer, train_tokenizer
from scalinglab.errors import ConfigError
from scalinglab.sweep.table import run_row
from tests.reliability.helpers import one_line_error
from tests.train.helpers import cli_args, tiny_shards


def test_out_may_not_be_the_shards_folder_or_lie_inside_it(tmp_path, capsys):
    data = tiny_shards(tmp_path / "shards")
    before = sorted(p.name for p in data.iterdir())
    for out, how in ((data, "is"), (data / "run", "lies inside")):
        err = one_line_error(capsys, cli_args(data, out, "--steps", "2"))
        assert err == (
            f"error: --out {out} {how} the shards folder {data} (--data); choose an --out "
            "outside it\n"
        )
    other = tiny_shards(tmp_path / "other")  # another shards folder
    err = one_line_error(capsys, cli_args(data, other, "--steps", "2"))
    assert (
        err
        == f"error: --out {other} is a shards folder (it holds manifest.json); choose another --out\n"
    )
    assert sorted(p.name for p in data.iterdir()) == before  # nothing written among them


def test_a_warmup_longer_than_half_the_run_is_shortened_with_a_warning(tmp_path, caplog):
    data = tiny_shards(tmp_path / "shards")
    with caplog.at_level(logging.WARNING):
        assert main(cli_args(data, tmp_path / "run", "--steps", "10", "--warmup", "1000")) == 0
    assert "--warmup 1000 is more than half the run's 10 steps: it warms up over 4" in caplog.text
    # the record said only the 1000 asked for: result.json says what the run used, and
    # config.toml keeps the request (the run's id), which a rerun caps alike
    result = json.loads((tmp_path / "run/result.json").read_text())
    assert result["warmup"] == 4 and "warmup = 1000" in (tmp_path / "run/config.toml").read_text()
    assert run_row(tmp_path / "run")["warmup"] == 4  # the runs table: what was used


def test_a_prompt_the_tokenizer_lacks_characters_of_is_read_with_a_warning(caplog):
    tok = CharTokenizer(list("ROME: abc"))
    with caplog.at_level(logging.WARNING):
        ids = prompt_ids(tok, "ROME: ü€ ü")
    assert ids.count(tok.unk_id) == 3
    assert "char tokenizer has no token for 'ü', '€': the model reads <unk> for them" in caplog.text
    caplog.clear()
    words = WordTokenizer(["the", "game"])
    prompt_ids(words, "the gmae")
    assert "word tokenizer has no token for 'gmae': the model reads <unk> for it" in caplog.text
    caplog.clear()
    prompt_ids(tok, "ROME")  # every character known: no warning
    assert caplog.text == ""


def test_eval_names_the_flag_and_a_file_given_for_a_run(tmp_path, capsys):
    run = tmp_path / "afile"
    run.write_text("x")
    assert (
        one_line_error(capsys, ["eval", str(run)])
        == f"error: {run}: not a folder (give a run folder)\n"
    )
    err = one_line_error(capsys, ["eval", str(run), "--batch-size", "-1"])
    assert err == "error: --batch-size must be >= 0 (0: the run's), got -1\n"


def test_eval_warns_once_of_a_corrupted_newest_checkpoint(tmp_path, caplog):
    data, run = tiny_shards(tmp_path / "shards"), tmp_path / "run"
    assert main(cli_args(data, run, "--steps", "8", "--ckpt-every", "4")) == 0
    blob = run / "ckpt" / "step-00000008" / "model.safetensors"
    blob.write_bytes(blob.read_bytes()[:-1] + bytes([blob.read_bytes()[-1] ^ 0xFF]))
    with caplog.at_level(logging.WARNING):
        assert main(["eval", str(run)]) == 0
    warned = [r.getMessage() for r in caplog.records if "skipping checkpoint" in r.getMessage()]
    assert len(warned) == 1 and "step-00000008" in warned[0], warned  # it came twice
    assert "--warmup" not in caplog.text  # the default warmup, shortened for 8 steps: quiet


def test_a_final_validation_loss_that_is_not_finite_is_diverged(tmp_path, monkeypatch, caplog):
    """Every step's loss finite, the final evaluation's not (overflow in the model's
    outputs): the run said `completed` with val_loss NaN, which a sweep then refused."""
    from scalinglab.train import loop

    data = tiny_shards(tmp_path / "shards")
    monkeypatch.setattr(loop, "evaluate", lambda *a, **k: (float("nan"), 128))
    with caplog.at_level(logging.ERROR):
        assert main(cli_args(data, tmp_path / "run", "--steps", "3")) == 3  # diverged
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "diverged" and result["val_loss"] is None
    assert result["error"] == "final validation loss nan" and result["steps"] == 3
    assert "step 3: the final validation loss is nan: the run diverged" in caplog.text


def test_the_summary_line_gives_both_losses_to_four_decimals(tmp_path, capsys):
    """'train_loss 4.969053268432617  val_loss 4.9434': the training loss came out with every
    digit of a float beside the four of the validation loss on the same line."""
    data = tiny_shards(tmp_path / "shards")
    assert main(cli_args(data, tmp_path / "run", "--steps", "2")) == 0
    r = json.loads((tmp_path / "run" / "result.json").read_text())
    line = capsys.readouterr().out.splitlines()[-1]
    assert f"tokens 256  train_loss {r['train_loss']:.4f}  val_loss {r['val_loss']:.4f}  " in line


def test_a_bpe_run_refusing_invalid_utf8_is_not_called_byte_level():
    """A bpe run (byte-level BPE, as docs/data.md calls it) refused an invalid UTF-8 prompt
    saying 'the bpe tokenizer of this run reads text (a byte-level run takes any bytes)'."""
    tok = train_tokenizer("bpe", ["the fox and the dog " * 20], vocab_size=260)
    with pytest.raises(ConfigError) as e:
        prompt_ids(tok, os.fsdecode(b"ab\xffc"))
    assert e.value.message == (
        "--prompt: not valid UTF-8 at byte 2; the bpe tokenizer of this run reads text (only a "
        "run of the byte tokenizer takes any bytes)"
    )


def test_grad_clip_zero_disables_clipping(tmp_path, monkeypatch):
    """--grad-clip 0 means no clipping: the same run as with a bound no gradient reaches.
    The LR is high enough that the gradient norm exceeds 1 on some step."""
    import torch

    from scalinglab.train.loop import train
    from tests.train.helpers import tiny_cfg

    data = tiny_shards(tmp_path / "shards")
    norms = []
    orig = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *a, **k):
        n = orig(params, max_norm, *a, **k)
        norms.append(float(n))
        return n

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    off = train(tiny_cfg(data, steps=6, lr=3e-2, grad_clip=0.0), tmp_path / "off")
    monkeypatch.undo()
    assert max(norms) > 1.0  # a clip at 1 (or any usual bound) would change the run
    huge = train(tiny_cfg(data, steps=6, lr=3e-2, grad_clip=1e12), tmp_path / "huge")
    assert off["train_loss"] == huge["train_loss"]
    assert off["val_loss"] == huge["val_loss"]


def test_a_non_finite_gradient_with_a_finite_loss_stops_before_the_update(tmp_path, monkeypatch):
    """A finite loss whose gradient overflows (an infinite gradient norm) must not be applied:
    the run stops as diverged at the last good step, its weights finite."""
    import torch

    from scalinglab.train.loop import Trainer, train
    from tests.train.helpers import tiny_cfg, tiny_shards

    class InfiniteGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return g * float("inf")

    orig = Trainer._forward
    seen = {}

    def forward(self, x, y):
        seen["trainer"] = self
        loss = orig(self, x, y)
        return InfiniteGradient.apply(loss) if self.c.step == 3 else loss

    monkeypatch.setattr(Trainer, "_forward", forward)
    data = tiny_shards(tmp_path / "shards")
    result = train(tiny_cfg(data, steps=10), tmp_path / "run")
    assert result["status"] == "diverged"
    assert result["steps"] == 3
    assert math.isfinite(result["train_loss"])
    for v in seen["trainer"].model.state_dict().values():
        assert torch.isfinite(v).all()
