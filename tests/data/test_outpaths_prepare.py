"""`prepare --out` that holds a source: refused before anything is replaced (a rebuild or
--force would delete the corpus with the old folder)."""

import json

import pytest

from scalinglab.cli import main
from tests.data.test_nanogpt import char_folder
from tests.data.test_prepare import _corpus


def _refused(capsys, argv) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _msg(out, source) -> str:
    return (
        f"error: --out {out}: the source {source} lies inside it, and replacing the folder "
        "would delete it; write the shards to another folder\n"
    )


@pytest.mark.parametrize("how", ["file", "folder", "glob", "val-file"])
def test_a_source_inside_out_is_refused_and_kept(tmp_path, capsys, how):
    out = tmp_path / "pf"
    _corpus(out, n_docs=3)
    src = out / "d0000.txt"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _corpus(tmp_path / "other", n_docs=20)
    sources = {
        "file": [src],
        "folder": [out],
        "glob": [f"{out}/*.txt"],
        "val-file": [tmp_path / "other", "--val-file", src],
    }[how]
    err = _refused(capsys, ["prepare", *sources, "--out", out, "--force", "--block-size", "8"])
    assert err == _msg(out, src)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_source_inside_a_shards_folder_is_refused_without_force(tmp_path, capsys):
    """A shards folder is rebuilt without --force when the request changed: the corpus put
    inside it would go with it."""
    _corpus(tmp_path / "c", n_docs=20)
    out = tmp_path / "shards"
    assert main(["prepare", str(tmp_path / "c"), "--out", str(out), "--block-size", "8"]) == 0
    capsys.readouterr()
    src = out / "extra.txt"
    src.write_text("alpha beta gamma delta " * 200)
    err = _refused(capsys, ["prepare", src, "--out", out, "--block-size", "8"])
    assert err == _msg(out, src)
    assert src.exists() and (out / "train.bin").exists()


def test_files_of_the_users_in_a_shards_folder_are_not_deleted_by_a_rebuild(tmp_path, capsys):
    """A rebuild replaced the whole folder: notes or runs kept in it went too, unasked."""
    _corpus(tmp_path / "c", n_docs=20)
    out = tmp_path / "shards"
    argv = ["prepare", tmp_path / "c", "--out", out, "--block-size", "8"]
    assert main([str(a) for a in argv]) == 0
    (out / "notes.md").write_text("how these were made")
    (out / "runs").mkdir()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    err = _refused(capsys, [*argv, "--tokenizer", "char"])
    assert err == (
        f"error: --out {out}: the shards folder also holds notes.md, runs, which rebuilding "
        "it would delete; move them out, or pass --force to replace it all\n"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert main([str(a) for a in argv]) == 0  # up to date: nothing replaced, nothing said
    assert main([str(a) for a in [*argv, "--tokenizer", "char", "--force"]]) == 0
    assert not (out / "notes.md").exists()
    # --from-nanogpt's rebuild too
    src, _, _ = char_folder(tmp_path / "ng")
    ng = ["prepare", "--from-nanogpt", src, "--out", tmp_path / "ngs", "--block-size", "8"]
    assert main([str(a) for a in ng]) == 0
    (tmp_path / "ngs" / "notes.md").write_text("kept")
    (src / "val.bin").write_bytes((src / "val.bin").read_bytes()[:-2])  # changed: a rebuild
    err = _refused(capsys, ng)
    assert "the shards folder also holds notes.md, which rebuilding it" in err
    assert (tmp_path / "ngs" / "notes.md").exists()


def test_a_path_spelled_otherwise_is_still_inside(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _corpus(tmp_path / "pf", n_docs=3)
    err = _refused(capsys, ["prepare", "pf/d0001.txt", "--out", "./pf/../pf", "--force"])
    assert err == _msg("pf/../pf", "pf/d0001.txt")
    assert (tmp_path / "pf" / "d0001.txt").exists()


def test_a_source_beside_out_still_works(tmp_path, capsys):
    _corpus(tmp_path / "c", n_docs=20)
    out = tmp_path / "c-shards"  # a sibling whose name starts with the source's
    out.mkdir()
    (out / "old.txt").write_text("replaced")
    argv = ["prepare", str(tmp_path / "c"), "--out", str(out), "--force", "--block-size", "8"]
    assert main(argv) == 0
    assert (out / "train.bin").exists() and (tmp_path / "c" / "d0000.txt").exists()


def test_a_nanogpt_folder_inside_out_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "sh"
    out.mkdir()
    src, _, _ = char_folder(out / "nano")
    err = _refused(capsys, ["prepare", "--from-nanogpt", src, "--out", out, "--force"])
    assert err == (
        f"error: --out {out}: the --from-nanogpt folder {src} lies inside it, and replacing "
        "the folder would delete it; write the shards to another folder\n"
    )
    assert sorted(p.name for p in src.iterdir()) == ["meta.pkl", "train.bin", "val.bin"]


@pytest.mark.parametrize("as_folder", [False, True])
def test_a_pretrained_tokenizer_inside_out_is_refused_and_kept(tmp_path, capsys, as_folder):
    """`prepare --tokenizer pf/tok --out pf --force` replaced pf and the tokenizer with it."""
    from tests.data.test_pretrained_tokenizer import TEXT, hf_tokenizer

    out = tmp_path / "pf"
    (out / "tok").mkdir(parents=True)
    hf_tokenizer().save(str(out / "tok" / "tokenizer.json"))
    (out / "notes.txt").write_text("mine")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    tok = out / "tok" if as_folder else out / "tok" / "tokenizer.json"
    before = sorted((p.relative_to(out), p.read_bytes()) for p in out.rglob("*") if p.is_file())
    err = _refused(capsys, ["prepare", corpus, "--tokenizer", tok, "--out", out, "--force",
                            "--block-size", "8"])  # fmt: skip
    assert err == (
        f"error: --out {out}: the tokenizer {tok} lies inside it, and replacing the folder "
        "would delete it; write the shards to another folder\n"
    )
    assert (
        sorted((p.relative_to(out), p.read_bytes()) for p in out.rglob("*") if p.is_file())
        == before
    )


def test_an_out_that_is_or_holds_the_current_folder_is_refused_up_front(tmp_path, monkeypatch,
                                                                        capsys):  # fmt: skip
    # `--out .` did all the work, then failed renaming '.' (busy), leaving a ..old-* folder
    f = tmp_path / "t.txt"
    f.write_text("a few words on a line\n" * 50)
    here = tmp_path / "work" / "here"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    for out in (".", "..", str(here)):
        assert main(["prepare", str(f), "--out", out, "--block-size", "8"]) == 2
        err = capsys.readouterr().err
        assert err == f"error: --out {out}: is the current folder or holds it, which the " \
            "finished shards folder cannot replace; write the shards to a folder of their " \
            "own (--out shards)\n"  # fmt: skip
    assert main(["prepare", "--from-nanogpt", str(tmp_path), "--out", "."]) == 2
    assert "--out .: is the current folder" in capsys.readouterr().err
    assert list(tmp_path.rglob("*")) == [f, tmp_path / "work", here]  # nothing left behind
    assert main(["prepare", str(f), "--out", "shards", "--block-size", "8"]) == 0


def test_an_out_below_a_file_is_refused_up_front(tmp_path, capsys):
    # making the folder failed after the scan pass: exit 1, "f.txt: File exists (something
    # else is in the way)", --out unnamed
    _corpus(tmp_path / "c", n_docs=3)
    f = tmp_path / "f.txt"
    f.write_text("mine")
    src, _, _ = char_folder(tmp_path / "ng")
    for source in ([tmp_path / "c"], ["--from-nanogpt", src]):
        out = f / "sub" / "shards"
        err = _refused(capsys, ["prepare", *source, "--out", out, "--block-size", "8"])
        assert err == f"error: --out {out}: {f} is a file, not a folder\n"
        assert f.read_text() == "mine"


def test_a_symlinked_out_keeps_its_link_and_its_target_is_rebuilt(tmp_path, capsys):
    # the rebuild's rename replaced the link with a folder beside it: the shards left the
    # disk the link pointed to, whose folder kept the old shards
    _corpus(tmp_path / "c", n_docs=3)
    target, link = tmp_path / "disk" / "ts", tmp_path / "ts"
    argv = ["prepare", str(tmp_path / "c"), "--block-size", "8", "--out"]
    assert main([*argv, str(target)]) == 0
    link.symlink_to(target, target_is_directory=True)
    assert main([*argv, str(link), "--tokenizer", "char"]) == 0
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert json.loads((target / "manifest.json").read_text())["tokenizer"] == "char"
    src, _, _ = char_folder(tmp_path / "ng")
    assert main(["prepare", "--from-nanogpt", str(src), "--out", str(link)]) == 0
    assert link.is_symlink() and "nanogpt:" in (target / "manifest.json").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


@pytest.mark.parametrize("what", ["source", "tokenizer"])
def test_an_input_inside_a_non_shards_out_is_refused_as_such_without_force(tmp_path, capsys, what):
    """Without --force, `prepare pf/c.txt --out pf` said pf 'is not a shards folder ...
    (pass --force to replace it)', and with --force it was refused for the source inside:
    the first line advised a flag that cannot help. The source (or tokenizer) is named
    first, with or without --force."""
    from tests.data.test_pretrained_tokenizer import TEXT, hf_tokenizer

    out = tmp_path / "pf"
    _corpus(out, n_docs=3)
    if what == "source":
        inside, argv = out / "d0000.txt", [out / "d0000.txt"]
        want = _msg(out, inside)
    else:
        inside = out / "tok.json"
        hf_tokenizer().save(str(inside))
        corpus = tmp_path / "corpus.txt"
        corpus.write_text(TEXT, encoding="utf-8")
        argv = [corpus, "--tokenizer", inside]
        want = _msg(out, inside).replace("the source", "the tokenizer")
    before = sorted(p.name for p in out.iterdir())
    for force in ([], ["--force"]):
        err = _refused(capsys, ["prepare", *argv, "--out", out, "--block-size", "8", *force])
        assert err == want
    assert sorted(p.name for p in out.iterdir()) == before


def test_a_nanogpt_tokenizer_inside_out_is_refused_and_kept(tmp_path, capsys):
    """`prepare --from-nanogpt DIR --tokenizer out/tok.json --out out --force` replaced out
    and deleted the tokenizer with it (prepare of SOURCEs refused this, the import did not)."""
    import numpy as np

    from tests.data.test_pretrained_tokenizer import hf_tokenizer

    out = tmp_path / "out"
    out.mkdir()
    tok = out / "tok.json"
    hf_tokenizer().save(str(tok))
    src = tmp_path / "nano"
    src.mkdir()
    ids = (np.arange(4000) % 50).astype(np.uint16)
    ids.tofile(src / "train.bin")
    ids.tofile(src / "val.bin")
    err = _refused(capsys, ["prepare", "--from-nanogpt", src, "--tokenizer", tok, "--out", out,
                            "--force", "--block-size", "8"])  # fmt: skip
    assert err == _msg(out, tok).replace("the source", "the tokenizer")
    assert tok.exists()
