"""A run folder's files must be the run's: its tokenizer.json the one it trained with
(`eval --tasks`, `generate` and `export` read text through it, and another run's copy
scored a byte run's tasks at 0.5 instead of 0.0, exit 0, or crashed with an IndexError in
the embedding), its config.toml the model its checkpoint holds (said so by name)."""

import json
import shutil

import pytest
import torch
from tokenizers import Tokenizer, models

from scalinglab.cli import main
from scalinglab.train import checkpoint, train
from tests.reliability.helpers import one_line_error
from tests.train.helpers import tiny_cfg, tiny_shards


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tok")
    torch.set_num_threads(1)
    result = train(tiny_cfg(tiny_shards(tmp / "shards"), steps=3), tmp / "run")
    assert result["status"] == "completed" and result["tokenizer_id"]
    return tmp / "run"


def task_file(path):
    items = [{"context": "ab", "choices": ["c", "d"], "gold": 0}] * 4
    path.write_text("".join(json.dumps(x) + "\n" for x in items))
    return path


def bpe(path, n):
    vocab = {chr(0x100 + i): i for i in range(n)}  # n ids, none of them the run's bytes
    Tokenizer(models.BPE(vocab=vocab, merges=[])).save(str(path))


def commands(folder, tmp_path):
    return [
        ["eval", str(folder), "--tasks", str(task_file(tmp_path / "t.jsonl"))],
        ["generate", str(folder), "--prompt", "ab", "--max-new-tokens", "2"],
        ["export", str(folder), "--format", "hf", "--out", str(tmp_path / "hf")],
    ]


def test_another_runs_tokenizer_is_refused_by_what_reads_text(run, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    bpe(bad / "tokenizer.json", 2)
    theirs = json.loads((run / "result.json").read_text())["tokenizer_id"]
    for argv in commands(bad, tmp_path):
        said = one_line_error(capsys, argv)
        assert said.startswith(f"error: {bad / 'tokenizer.json'}: not the tokenizer the run "
                               "trained with (its sha256 begins "), argv  # fmt: skip
        assert said.endswith(
            f", result.json records {theirs}): replaced or copied from another run? Put back "
            "the run's own tokenizer.json (that of its shards)\n"
        )
    assert not (tmp_path / "hf").exists()
    assert not (bad / "tasks.json").exists()  # no wrong score recorded
    for argv in commands(run, tmp_path)[:2]:  # the run's own: scored and sampled
        assert main(argv) == 0


def test_a_tokenizer_of_more_ids_than_the_model_is_refused_without_a_record(run, tmp_path, capsys):
    """A run without result.json's record (one still training, or written before it) has
    no sha256 to compare: more ids than the model reads is still no tokenizer of its."""
    bad = tmp_path / "big"
    shutil.copytree(run, bad)
    result = json.loads((bad / "result.json").read_text())
    del result["tokenizer_id"]
    (bad / "result.json").write_text(json.dumps(result))
    bpe(bad / "tokenizer.json", 300)
    for argv in commands(bad, tmp_path):
        assert one_line_error(capsys, argv) == (
            f"error: {bad / 'tokenizer.json'}: a bpe tokenizer of 300 ids, and the run's model "
            f"reads 256 (vocab_size in {bad / 'config.toml'}): not the run's tokenizer; put "
            "back its own tokenizer.json (that of its shards)\n"
        ), argv
    assert not (tmp_path / "hf").exists()


def test_a_config_of_another_model_names_the_tensor_that_does_not_fit(run, tmp_path, capsys):
    bad = tmp_path / "cfg"
    shutil.copytree(run, bad)
    text = (bad / "config.toml").read_text()
    assert "n_embd = 32\n" in text
    (bad / "config.toml").write_text(text.replace("n_embd = 32\n", "n_embd = 64\n"))
    said = one_line_error(capsys, ["generate", str(bad), "--prompt", "ab"])
    assert said.startswith(f"error: {bad / 'ckpt'}/step-")  # was torch's heading alone
    assert "/model.safetensors: cannot load into this model: size mismatch for " in said
    assert said.endswith("; does the run's config.toml describe the model that wrote it?\n")


def test_run_folders_that_are_not_one_run_say_what_they_are(run, tmp_path, capsys):
    empty = tmp_path / "empty"
    shutil.copytree(run, empty)
    (empty / "config.toml").write_text("")  # was 'needs a vocabulary size (vocab_size is 0)'
    assert one_line_error(capsys, ["generate", str(empty)]) == (
        f"error: {empty / 'config.toml'}: has no [model] table, which the trainer writes: "
        "damaged or written by hand?\n"
    )
    folder = tmp_path / "tokdir"
    shutil.copytree(run, folder)
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.json").mkdir()  # read as shards: 'tokdir/tokenizer.json/tokenizer.json'
    assert one_line_error(capsys, ["generate", str(folder)]) == (
        f"error: {folder / 'tokenizer.json'}: a folder, not a tokenizer file\n"
    )
    sweep = tmp_path / "sweep"
    for name in ("a", "b"):
        shutil.copytree(run, sweep / "runs" / name)
    for argv in (
        ["generate", str(sweep)],
        ["export", str(sweep), "--format", "hf", "--out", str(tmp_path / "x")],
    ):
        assert one_line_error(capsys, argv) == (
            f"error: {sweep}: a folder of 2 runs, not one run folder (give one, e.g. "
            f"{sweep / 'runs' / 'a'})\n"
        )


def test_a_checkpoint_file_that_is_a_folder_skips_that_run_of_a_folder(run, tmp_path, capsys):
    """checkpoint.verify let sha256's IsADirectoryError through: one such run stopped `eval
    --tasks` over a whole folder of runs (exit 1) instead of being skipped with a warning."""
    root = tmp_path / "runs"
    for name in ("a", "b"):
        shutil.copytree(run, root / name)
        (root / name / "tasks.json").unlink(missing_ok=True)  # the fixture's, if scored
    (step,) = (root / "b" / "ckpt").glob("step-*")
    (step / "model.safetensors").unlink()
    (step / "model.safetensors").mkdir()
    assert main(["eval", str(root), "--tasks", str(task_file(tmp_path / "t.jsonl"))]) == 0
    assert capsys.readouterr().err == (
        f"warning: {root / 'b'}: no valid checkpoint in {root / 'b' / 'ckpt'}: skipped\n"
    )
    assert checkpoint.verify(step) == "model.safetensors is not a file"
    assert (root / "a" / "tasks.json").exists() and not (root / "b" / "tasks.json").exists()


def test_task_names_that_are_neither_task_nor_file_are_named_first(run, capsys):
    """`--tasks bogus --task-items 20` blamed the flag ('names task files only'), and
    `--tasks /dev/null` said 'no such task file' of a path that exists."""
    assert one_line_error(capsys, ["eval", str(run), "--tasks", "bogus", "--task-items", "20"]) == (
        "error: --tasks 'bogus': no such task file, and not a built-in task (next-line, "
        "brackets, recall, or builtin for all)\n"
    )
    assert one_line_error(capsys, ["eval", str(run), "--tasks", "/dev/null"]) == (
        "error: --tasks '/dev/null': not a regular file (a JSONL task file)\n"
    )


def test_export_out_is_neither_empty_nor_among_the_runs_shards(run, capsys):
    """`--out ""` was refused as '--out . contains the run folder'; an ONNX export was
    written into the run's shards folder, where the HF export is refused."""
    assert one_line_error(capsys, ["export", str(run), "--format", "onnx", "--out", ""]) == (
        "error: --out is empty: give where to write the export\n"
    )
    shards = run.parent / "shards"
    target = shards / "x.onnx"
    assert one_line_error(
        capsys, ["export", str(run), "--format", "onnx", "--out", str(target)]
    ) == (
        f"error: --out {target} lies inside the run's shards folder {shards}; choose an --out "
        "outside the shards\n"
    )
    assert not target.exists()
