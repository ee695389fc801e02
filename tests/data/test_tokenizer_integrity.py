"""A shards folder's tokenizer.json is checked when `train` (or `eval`) opens it: replaced
by "not json", `train` trained to completion, copied the garbage into the run folder and
`eval` passed; only `generate` failed, after the run (an audit). Now `train` refuses at
the start in one line naming the file, in `generate`'s words, before the run folder is
made; a resume leaves the run as it was."""

import json
import shutil

import pytest

from scalinglab.cli import main
from scalinglab.data.tokenizers import CharTokenizer
from tests.conftest import write_raw_shards
from tests.reliability.helpers import one_line_error
from tests.train.helpers import TEXT, cli_args

DAMAGED = "; the folder is damaged, rerun `prepare`\n"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A tiny byte-level shards folder, as `prepare` writes it."""
    tmp = tmp_path_factory.mktemp("tokint")
    corpus = tmp / "corpus.txt"
    corpus.write_bytes(TEXT)
    out = tmp / "shards"
    argv = ["prepare", str(corpus), "--out", str(out), "--tokenizer", "byte",
            "--block-size", "16", "--val-fraction", "0.1"]  # fmt: skip
    assert main(argv) == 0
    return out


def _copy(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".*"))  # not the check's cache
    return dst


def _train(data, run, *extra):
    return cli_args(data, run, "--steps", "2", "--threads", "1", *extra)


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# (what tokenizer.json holds, the error after "SHARDS/tokenizer.json: ")
NOT_JSON = "unreadable tokenizer file (Expecting value: line 1 column 1 (char 0))"
CORRUPT = {
    "not-json": (b"not json", NOT_JSON),
    "a-list": (b"[1, 2, 3]", "not a tokenizer file"),
    "no-model": (b'{"version": "1.0", "vocab": {}}', "not a tokenizer file (no 'model')"),
    "not-utf8": (b'{"kind": "\xff"}', "unreadable tokenizer file ("),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_train_refuses_a_damaged_tokenizer_before_making_the_run(prepared, tmp_path, capsys, case):
    data = _copy(prepared, tmp_path / "shards")
    content, why = CORRUPT[case]
    (data / "tokenizer.json").write_bytes(content)
    run = tmp_path / "run"
    err = one_line_error(capsys, _train(data, run))
    assert err.startswith(f"error: {data / 'tokenizer.json'}: {why}"), err
    assert err.endswith(DAMAGED) and "Traceback" not in err
    assert not run.exists()


def test_another_valid_tokenizer_or_none_is_refused_by_the_manifests_sha256(
    prepared, tmp_path, capsys
):
    """A loadable tokenizer.json that is not the one the manifest hashed (another kind's
    ids would mean other text), and a missing one, are refused alike."""
    data = _copy(prepared, tmp_path / "shards")
    tok = data / "tokenizer.json"
    CharTokenizer(list("abc")).save(tok)
    run = tmp_path / "run"
    err = one_line_error(capsys, _train(data, run))
    assert err == f"error: {tok}: sha256 does not match the manifest{DAMAGED}"
    assert not run.exists()
    tok.unlink()
    err = one_line_error(capsys, _train(data, run))
    assert err == f"error: {tok}: tokenizer file not found{DAMAGED}"
    assert not run.exists()


def test_an_intact_folder_trains_and_a_resume_after_damage_changes_nothing(
    prepared, tmp_path, capsys
):
    data = _copy(prepared, tmp_path / "shards")
    run = tmp_path / "run"
    assert main(_train(data, run, "--ckpt-every", "2")) == 0  # intact: trains, as before
    good = (data / "tokenizer.json").read_bytes()
    assert (run / "tokenizer.json").read_bytes() == good
    capsys.readouterr()
    (data / "tokenizer.json").write_text("not json")
    before = _snapshot(run)
    want = f"error: {data / 'tokenizer.json'}: {NOT_JSON}{DAMAGED}"
    argv = cli_args(data, run, "--steps", "4", "--threads", "1", "--ckpt-every", "2")
    assert one_line_error(capsys, argv) == want  # a resume to more steps
    assert _snapshot(run) == before  # the run's own tokenizer.json is not overwritten
    assert one_line_error(capsys, ["eval", str(run)]) == want
    (data / "tokenizer.json").write_bytes(good)  # repaired: the resume goes ahead
    assert main(argv) == 0
    assert json.loads((run / "result.json").read_text())["steps"] == 4


def test_a_hand_written_folder_without_sha256_is_checked_and_without_a_tokenizer_trains(
    tmp_path, capsys
):
    """A manifest that records no sha256 (written by hand, or before the field) still
    opens: its tokenizer.json is loaded all the same, and a folder without one trains."""
    import numpy as np

    ids = np.frombuffer(TEXT, dtype=np.uint8)
    data = write_raw_shards(tmp_path / "shards", ids[:8000], ids[8000:])
    assert "sha256" not in json.loads((data / "manifest.json").read_text())
    (data / "tokenizer.json").write_text("not json")
    err = one_line_error(capsys, _train(data, tmp_path / "run"))
    assert err.startswith(f"error: {data / 'tokenizer.json'}: unreadable tokenizer file (")
    assert not (tmp_path / "run").exists()
    (data / "tokenizer.json").unlink()
    assert main(_train(data, tmp_path / "run")) == 0
    assert not (tmp_path / "run" / "tokenizer.json").exists()
