"""Shards a run reads are the shards `prepare` wrote, and of the run's tokenizer: a
flipped byte, an out-of-range token id or another tokenizer's shards stop `train` and
`eval` with one line before a step or a loss (issue 16, items 3 and 4)."""

import json
import os

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.data import shards as shards_mod
from tests.conftest import write_raw_shards
from tests.reliability.helpers import one_line_error
from tests.train.helpers import TEXT, cli_args

CORPUS = TEXT.decode() + "".join(f"line {i}: the {i % 7} quick foxes\n" for i in range(400))


def _prepare(tmp, name, tokenizer, text=CORPUS):
    corpus = tmp / f"{name}.txt"
    corpus.write_text(text)
    out = tmp / name
    argv = ["prepare", str(corpus), "--out", str(out), "--tokenizer", tokenizer,
            "--block-size", "16", "--val-fraction", "0.1"]  # fmt: skip
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A byte run, its shards, char shards of the same corpus and byte shards of another."""
    tmp = tmp_path_factory.mktemp("tok")
    byte = _prepare(tmp, "byte", "byte")
    char = _prepare(tmp, "char", "char")
    other = _prepare(tmp, "other", "byte", text=CORPUS.upper())
    run = tmp / "run"
    assert main(cli_args(byte, run, "--steps", "4", "--threads", "1")) == 0
    return {"byte": byte, "char": char, "other": other, "run": run}


def test_eval_refuses_shards_of_another_tokenizer_naming_both(world, capsys):
    run, char = world["run"], world["char"]
    result = json.loads((run / "result.json").read_text())
    byte_id = shards_mod.open_shards(world["byte"]).tokenizer_id
    char_id = shards_mod.open_shards(char).tokenizer_id
    assert (result["tokenizer"], result["tokenizer_id"]) == ("byte", byte_id) and char_id != byte_id
    assert shards_mod.open_shards(char).vocab_size < 256  # the vocabulary fits: a loss would come
    err = one_line_error(capsys, ["eval", str(run), "--data", str(char)])
    assert err == (
        f"error: --data {char}: made by another tokenizer (char, {char_id}) than the one "
        f"{run} trained with (byte, {byte_id}); evaluate on shards of the run's tokenizer\n"
    )
    # Without result.json (a run still going) the run's copy of tokenizer.json says it.
    os.rename(run / "result.json", run / "result.kept")
    try:
        err = one_line_error(capsys, ["eval", str(run), "--data", str(char)])
        assert f"(char, {char_id}) than the one {run} trained with (byte, {byte_id})" in err
    finally:
        os.rename(run / "result.kept", run / "result.json")
    # Another corpus of the same tokenizer is what --data is for.
    assert main(["eval", str(run), "--data", str(world["other"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["data"] == str(world["other"])


def test_eval_tasks_refuses_shards_of_another_tokenizer(world, capsys):
    """Built-in items of char shards scored under a byte run were accepted silently."""
    run, char = world["run"], world["char"]
    err = one_line_error(capsys, ["eval", str(run), "--tasks", "next-line", "--data", str(char)])
    assert err.startswith(f"error: --data {char}: made by another tokenizer (char, ")
    assert not (run / "tasks.json").exists()


def test_eval_of_a_run_whose_relative_data_finds_other_shards_refuses(
    world, tmp_path, monkeypatch, capsys
):
    """A run keeps `--data` as typed; `eval RUN` from another folder found the relative path
    there, and measured the loss of byte shards of another corpus, exit 0 (an audit: 4.8034
    against the run's 4.7700). Now refused; from its own folder, or with --data, it runs."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    _copy_shards(world["byte"], home / "shards")
    _copy_shards(world["other"], elsewhere / "shards")  # same tokenizer, another corpus
    monkeypatch.chdir(home)
    argv = cli_args("shards", "run", "--steps", "4", "--threads", "1", "--ckpt-every", "2")
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["eval", "run", "--json"]) == 0
    own = json.loads(capsys.readouterr().out)["loss"]
    monkeypatch.chdir(elsewhere)
    err = one_line_error(capsys, ["eval", str(home / "run")])
    assert err == (
        f"error: {home / 'run'}: its data 'shards' is found at {elsewhere / 'shards'}, whose "
        "shards are not the ones it trained on (their content differs); give --data the "
        "run's shards, or run from the folder it was trained in\n"
    )
    assert main(["eval", str(home / "run"), "--data", str(home / "shards"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == own
    assert main(["eval", str(home / "run"), "--data", "shards", "--json"]) == 0  # as asked
    assert json.loads(capsys.readouterr().out)["loss"] != own
    # built-in task items are made from the same shards: refused alike (they were made
    # from the other corpus, exit 0)
    err = one_line_error(capsys, ["eval", str(home / "run"), "--tasks", "next-line"])
    assert err.startswith(f"error: {home / 'run'}: its data 'shards' is found at ")
    assert not (home / "run" / "tasks.json").exists()


def test_eval_of_a_run_whose_data_is_not_found_names_the_run_and_the_folder(
    world, tmp_path, monkeypatch, capsys
):
    """`eval RUN` from another folder than the run was trained in said only 'shards folder
    not found: shards', naming neither the run nor that the path was found from here; a
    missing --data did not name the flag. Now both say what is missing and what to do."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    _copy_shards(world["byte"], home / "shards")
    monkeypatch.chdir(home)
    assert main(cli_args("shards", "run", "--steps", "2", "--threads", "1")) == 0
    monkeypatch.chdir(elsewhere)
    run = home / "run"
    assert one_line_error(capsys, ["eval", str(run)]) == (
        f"error: {run}: its data 'shards' is not found from {elsewhere} (a relative path is "
        "found from the current folder); give --data the run's shards, or run from the "
        "folder it was trained in\n"
    )
    err = one_line_error(capsys, ["eval", str(run), "--tasks", "next-line"])
    assert err.startswith(f"error: {run}: its data 'shards' is not found from {elsewhere} ")
    err = one_line_error(capsys, ["eval", str(run), "--data", "nope"])
    assert err == "error: --data nope: shards folder not found\n"
    assert main(["eval", str(run), "--data", str(home / "shards"), "--json"]) == 0


def _copy_shards(src, dst):
    dst.mkdir()
    for p in src.iterdir():
        if not p.name.startswith("."):  # the shards, not what a check cached about them
            (dst / p.name).write_bytes(p.read_bytes())
    return dst


@pytest.mark.parametrize("split", ["train", "val"])
def test_a_flipped_byte_stops_train_and_eval(world, tmp_path, capsys, split):
    data = _copy_shards(world["byte"], tmp_path / "shards")
    run = tmp_path / "run"
    assert main(cli_args(data, run, "--steps", "2", "--threads", "1")) == 0  # verified, cached
    assert set(json.loads((data / ".verified.json").read_text())) == {"train.bin", "val.bin"}
    f = data / f"{split}.bin"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    f.write_bytes(bytes(raw))  # same size: only the hash can tell
    want = (
        f"error: {f}: sha256 does not match the manifest; the folder is damaged, rerun `prepare`\n"
    )
    assert one_line_error(capsys, cli_args(data, tmp_path / "new", "--steps", "2")) == want
    assert not (tmp_path / "new").exists()
    assert one_line_error(capsys, ["eval", str(run)]) == want


def test_a_token_id_beyond_the_vocabulary_is_one_line(tmp_path, capsys):
    ids = np.frombuffer(TEXT, dtype=np.uint8).astype(np.int64)
    ids[500] = 300  # an id the manifest's vocabulary of 256 does not have
    data = write_raw_shards(tmp_path / "shards", ids[:8000], ids[8000:])
    err = one_line_error(capsys, cli_args(data, tmp_path / "run", "--steps", "2"))
    assert err == (
        f"error: {data / 'train.bin'}: token id 300 is out of range for the manifest's "
        "vocab_size 256; the folder is damaged or was not made by `prepare`\n"
    )
    assert not (tmp_path / "run").exists()
    assert not (data / ".verified.json").exists()  # a failed check is never cached as a pass


def test_a_shards_folder_without_write_access_is_checked_without_a_cache(
    world, tmp_path, monkeypatch
):
    data = _copy_shards(world["byte"], tmp_path / "shards")

    def refuse(path, obj):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(shards_mod, "atomic_write_json", refuse)  # as a read-only folder does
    assert main(cli_args(data, tmp_path / "run", "--steps", "2", "--threads", "1")) == 0
    assert not (data / ".verified.json").exists()


def test_a_runs_own_data_rebuilt_with_another_tokenizer_is_named_in_eval_and_tasks(
    world, tmp_path, capsys
):
    """The run's shards folder rebuilt with the char tokenizer: `eval RUN` blamed a --data
    it was not given, and `eval RUN --tasks FILE` of a run without its own tokenizer.json
    encoded the items with the shards' char tokenizer and recorded the scores, exit 0 (an
    audit: qa acc 0.25, bpb 8.14, against 0.125 and 5.99 under the run's byte tokenizer)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    cfg = (run / "config.toml").read_text()
    (run / "config.toml").write_text(cfg.replace(str(world["byte"]), str(world["char"])))
    char_id = shards_mod.open_shards(world["char"]).tokenizer_id
    byte_id = json.loads((run / "result.json").read_text())["tokenizer_id"]
    err = one_line_error(capsys, ["eval", str(run)])
    assert err == (
        f"error: {run}: its data {world['char']} is made by another tokenizer (char, {char_id}) "
        f"than the one it trained with (byte, {byte_id}) (rebuilt since?); give --data shards "
        "of the run's tokenizer\n"
    )
    (run / "tokenizer.json").unlink()
    qa = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "tasks", "qa.jsonl")
    err = one_line_error(capsys, ["eval", str(run), "--tasks", qa])
    assert err.startswith(f"error: {run}: has no tokenizer.json, and its data {world['char']} ")
    assert f"(char, {char_id}) than the one it trained with (byte, {byte_id})" in err
    assert not (run / "tasks.json").exists()


@pytest.mark.parametrize("command", ["generate", "export"])
def test_generate_and_export_of_a_run_without_its_tokenizer_refuse_rebuilt_data(
    world, tmp_path, capsys, command
):
    """A run without its own tokenizer.json reads its shards' tokenizer; with the shards
    rebuilt by the char tokenizer since, `generate` decoded the byte run's ids as
    characters (exit 0) and `export --format hf` wrote the char tokenizer beside the byte
    model, though `eval --tasks` refused the same run (an audit). Both now refuse it in
    the line `eval --tasks` gives, naming both tokenizers."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    cfg = (run / "config.toml").read_text()
    (run / "config.toml").write_text(cfg.replace(str(world["byte"]), str(world["char"])))
    (run / "tokenizer.json").unlink()
    char_id = shards_mod.open_shards(world["char"]).tokenizer_id
    byte_id = json.loads((run / "result.json").read_text())["tokenizer_id"]
    if command == "export":
        pytest.importorskip("transformers")
        argv = ["export", str(run), "--format", "hf", "--out", str(tmp_path / "hf")]
    else:
        argv = ["generate", str(run), "--max-new-tokens", "4", "--seed", "0"]
    err = one_line_error(capsys, argv)
    assert err == (
        f"error: {run}: has no tokenizer.json, and its data {world['char']} is made by another "
        f"tokenizer (char, {char_id}) than the one it trained with (byte, {byte_id}) (rebuilt "
        f"since?): put the run's tokenizer.json (that of shards of its tokenizer) at "
        f"{run / 'tokenizer.json'}\n"
    )
    assert not (tmp_path / "hf").exists()
    # with shards of the run's own tokenizer it goes ahead as before
    (run / "config.toml").write_text(cfg)
    assert main(argv) == 0
