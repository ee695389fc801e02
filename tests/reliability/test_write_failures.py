"""Every write failure of every command is one line, never a traceback, and leaves no
partial output (issue 16, item 7): a full disk, a read-only folder, `--out` naming a
file where a folder is expected and the reverse.

The disk is really full: a 4 MiB tmpfs filled to the last byte, where the test may
mount one (root with mount(2)); elsewhere RLIMIT_FSIZE makes every write past 0 bytes
fail (EFBIG) in the command's process. A read-only folder is a tmpfs remounted
read-only, or (not root) a folder without write permission."""

import contextlib
import errno
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from scalinglab.cli import main
from tests.data.test_fetch import SHARED, Server
from tests.laws.test_cli_fit import GOOD
from tests.reliability.helpers import ROOT
from tests.sweep.conftest import spec_text
from tests.train.helpers import TEXT

ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    "PYTHONDONTWRITEBYTECODE": "1",
}
TINY = ["--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--block-size", "16",
        "--batch-size", "8", "--eval-tokens", "400", "--threads", "1"]  # fmt: skip
GRID = """kind = "grid"
shapes = [{n_layer = 1, n_embd = 8, n_head = 2}]
tokens = [640]
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = tmp_path_factory.mktemp("world")
    (w / "corpus.txt").write_bytes(TEXT)
    assert main(["prepare", str(w / "corpus.txt"), "--out", str(w / "shards"),
                 "--block-size", "16"]) == 0  # fmt: skip
    assert main(["train", "--data", str(w / "shards"), "--out", str(w / "run"), "--steps", "4",
                 *TINY]) == 0  # fmt: skip
    (w / "runs.csv").write_text(GOOD)
    assert (
        main(["fit", str(w / "runs.csv"), "--law", "chinchilla", "--out", str(w / "fit.json")]) == 0
    )
    (w / "sweep.toml").write_text(spec_text(w / "shards", GRID))
    study = (ROOT / "examples/tiny_study.toml").read_text()
    study = study.replace('sources = ["stdlib"]', f'sources = ["{w / "corpus.txt"}"]')
    (w / "study.toml").write_text(study)
    (w / "qa.jsonl").write_text(
        '{"context": "To be or not to", "choices": [" be", " go"], "gold": 0}\n'
    )
    # data fetch downloads from a loopback mirror of the public file (in ../shared)
    mirror = w / "mirror"
    if (SHARED / "corpora/tinyshakespeare.txt").is_file():
        (mirror / "corpora").mkdir(parents=True)
        shutil.copyfile(
            SHARED / "corpora/tinyshakespeare.txt", mirror / "corpora/tinyshakespeare.txt"
        )
    server = Server(b"", root=mirror)
    (w / "mirror.url").write_text(server.url)
    yield w
    server.close()


# name -> (argv given the world and the output path, output is a folder)
COMMANDS = {
    "prepare": (lambda w, o: ["prepare", w / "corpus.txt", "--out", o, "--block-size", "16"], True),
    "train": (lambda w, o: ["train", "--data", w / "shards", "--out", o, "--steps", "4", *TINY],
              True),
    "export-hf": (lambda w, o: ["export", w / "run", "--format", "hf", "--out", o], True),
    "export-onnx": (lambda w, o: ["export", w / "run", "--format", "onnx", "--out", o], False),
    "fit": (lambda w, o: ["fit", w / "runs.csv", "--law", "chinchilla", "--out", o], False),
    "backtest": (lambda w, o: ["backtest", w / "runs.csv", "--law", "chinchilla",
                               "--bootstrap", "0", "--out", o], False),
    "runs": (lambda w, o: ["runs", w / "run", "--csv", o], False),
    "sweep": (lambda w, o: ["sweep", w / "sweep.toml", "--out", o, "--workers", "1"], True),
    "study": (lambda w, o: ["study", w / "study.toml", "--out", o, "--workers", "1",
                            "--cache", w / "cache"], True),
    "report": (lambda w, o: ["report", o, "--bootstrap", "0"], True),
    "eval-tasks": (lambda w, o: ["eval", o, "--tasks", w / "qa.jsonl"], True),
    "coord-check": (lambda w, o: ["coord-check", "--data", w / "shards", "--out", o,
                                  "--widths", "16,32", "--steps", "2", "--batch-size", "4",
                                  "--block-size", "16", "--n-head", "2"], True),
    "data-fetch": (lambda w, o: ["data", "fetch", "tinyshakespeare", "--out", o, "--mirror",
                                 (w / "mirror.url").read_text()], True),
}  # fmt: skip


def _needs(name):
    if name == "data-fetch" and not (SHARED / "corpora/tinyshakespeare.txt").is_file():
        pytest.skip("data fetch serves ../shared's tinyshakespeare, absent beside the repo")
    if name == "export-onnx":
        pytest.importorskip("onnx", reason="export --format onnx needs the [onnx] extra")
        pytest.importorskip("onnxruntime", reason="export --format onnx needs the [onnx] extra")
    if name == "export-hf":
        pytest.importorskip("transformers", reason="export --format hf needs the [hf] extra")


def _run(argv, limit_fsize: bool = False, fsize: int = 0) -> subprocess.CompletedProcess:
    """`argv` in a new process; with `limit_fsize`, no file grows past `fsize` bytes."""

    def no_writes():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit: EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        [sys.executable, "-m", "scalinglab", *map(str, argv)], capture_output=True, text=True,
        env=ENV, timeout=300, preexec_fn=no_writes if limit_fsize else None,
    )  # fmt: skip


def _assert_one_line(p: subprocess.CompletedProcess, *names: str) -> str:
    assert p.returncode in (1, 2), (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.splitlines()
    assert lines and lines[-1].startswith("error: "), p.stderr
    err = lines[-1]
    assert any(n in err for n in names), err
    return err


@contextlib.contextmanager
def _tmpfs(where: Path):
    """A 4 MiB tmpfs mounted at `where`, or None where this process may not mount."""
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield None
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)],
                      capture_output=True).returncode:  # fmt: skip
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(mnt: Path) -> None:
    with open(mnt / "filler", "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * (1 << 16))
            f.flush()
    with pytest.raises(OSError) as exc:
        (mnt / "probe").write_bytes(b"x" * 8192)
    assert exc.value.errno == errno.ENOSPC
    (mnt / "probe").unlink(missing_ok=True)


def _case(name: str, world: Path, place: Path) -> tuple[list, Path]:
    """(the command's argv, its output path in `place`); report reads (and writes into)
    a copy of the run there."""
    _needs(name)
    place.mkdir(exist_ok=True)
    out = place / ("out.onnx" if name == "export-onnx" else "out")
    if name == "report":
        shutil.copytree(world / "run", out / "run")
    if name == "eval-tasks":  # eval --tasks writes RUN/tasks.json into the run
        shutil.copytree(world / "run", out)
    return COMMANDS[name][0](world, out), out


def _listing(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def _make_fault(fault: str, mnt: Path | None, place: Path, out: Path) -> bool:
    """Fill the tmpfs or make `place` read-only; True when RLIMIT_FSIZE must stand in
    for a full disk (no tmpfs)."""
    if fault == "full":
        if mnt is not None:
            _fill(mnt)
        return mnt is None
    if mnt is not None:
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    elif os.geteuid() == 0:
        pytest.skip("as root without mount(2) no folder can be made read-only")
    else:
        for folder in (place, out) if out.is_dir() else (place,):
            os.chmod(folder, 0o555)
    return False


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_full_disk_or_read_only_folder_is_one_line_and_leaves_no_partial_output(
    world, tmp_path, fault, name
):
    with _tmpfs(tmp_path / "mnt") as mnt:
        place = mnt or tmp_path / "mnt"
        argv, out = _case(name, world, place)
        try:
            limit = _make_fault(fault, mnt, place, out)
            before = _listing(place)
            p = _run(argv, limit_fsize=limit)
        finally:
            if mnt is None:
                for folder in (place, out):
                    with contextlib.suppress(OSError):
                        os.chmod(folder, 0o755)
        err = _assert_one_line(p, str(place))
        assert ".tmp" not in err, err  # the user's path, never a temporary one's
        reasons = {
            # Under RLIMIT_FSIZE a library's probe of the temporary folder may fail first.
            "full": ["No space left on device"]
            if mnt is not None
            else ["File too large", "No usable temporary directory"],
            "read-only": ["Read-only file system", "Permission denied"],
        }[fault]
        assert any(r in err for r in reasons), err
        after = _listing(place)
        # Nothing half-written is left: no temporary file, no file that was not there,
        # but for empty ones (a lock file, a folder's first empty file).
        new = {k: v for k, v in after.items() if k not in before}
        assert all(v == 0 for v in new.values()), new
        assert {k: after[k] for k in before} == before
        assert not [k for k in after if ".tmp" in k], after


@pytest.mark.parametrize("name", COMMANDS)
def test_out_naming_a_file_for_a_folder_or_a_folder_for_a_file(world, tmp_path, name):
    _needs(name)
    argv, is_folder = COMMANDS[name]
    out = tmp_path / "taken"
    if is_folder:
        out.write_text("a file the user keeps\n")
    else:
        out.mkdir()
        (out / "keep.txt").write_text("a folder the user keeps\n")
    before = _listing(tmp_path)
    p = _run(argv(world, out))
    _assert_one_line(p, str(out))
    assert _listing(tmp_path) == before
    if is_folder:
        assert out.read_text() == "a file the user keeps\n"


def test_a_disk_that_fills_mid_run_keeps_what_was_written_and_resumes(world, tmp_path):
    """train writes its config and metrics, then the disk fills at the checkpoint: one
    line, the files written before intact, no partial checkpoint; freed, it resumes."""
    with _tmpfs(tmp_path / "mnt") as mnt:
        if mnt is None:
            pytest.skip("needs a small file system of its own: root with mount(2)")
        _fill(mnt)
        os.truncate(mnt / "filler", (mnt / "filler").stat().st_size - (96 << 10))  # 96 KiB free
        run = mnt / "run"
        argv = ["train", "--data", world / "shards", "--out", run, "--steps", "4",
                "--log-every", "1", *TINY]  # fmt: skip
        p = _run(argv)
        err = _assert_one_line(p, str(run))
        assert err.startswith(f"error: cannot write checkpoint {run / 'ckpt/step-00000004'}: ")
        assert "No space left on device" in err and err.endswith("earlier checkpoints are kept")
        rows = (run / "metrics.jsonl").read_text().splitlines()
        assert [int(x.split('"step": ')[1].split(",")[0]) for x in rows] == [1, 2, 3, 4]
        assert "n_embd = 32" in (run / "config.toml").read_text()
        assert [x.name for x in (run / "ckpt").iterdir()] == []  # the partial one is gone
        (mnt / "filler").unlink()
        p = _run(argv)
        assert p.returncode == 0, p.stderr
        assert '"status": "completed"' in (run / "result.json").read_text()


def test_the_optimizer_states_failed_write_names_its_cause_and_leaves_no_partial(world, tmp_path):
    """torch.save's failed write is a RuntimeError about stream positions: it was a
    traceback and left the partial checkpoint folder behind, which on a full disk kept
    the next try from writing anything (an audit). Here the weights fit under the file
    size limit and the optimizer state, twice their size, does not."""
    run = tmp_path / "run"
    shutil.copytree(world / "run", run)  # finished at step 4: continue it to 8
    done = run / "ckpt/step-00000004"
    weights = (done / "model.safetensors").stat().st_size
    assert (done / "state.pt").stat().st_size > 2 * weights
    before = {p.name: p.read_bytes() for p in done.iterdir()}
    argv = ["train", "--data", world / "shards", "--out", run, "--steps", "8", *TINY]
    p = _run(argv, limit_fsize=True, fsize=weights * 3 // 2)
    err = _assert_one_line(p, str(run / "ckpt/step-00000008"))
    assert err == (f"error: cannot write checkpoint {run / 'ckpt/step-00000008'}: "
                   "File too large; earlier checkpoints are kept")  # fmt: skip
    assert sorted(x.name for x in (run / "ckpt").iterdir()) == ["step-00000004"]
    assert {p.name: p.read_bytes() for p in done.iterdir()} == before
    assert _run(argv).returncode == 0  # room again: it goes on from step 4
    assert sorted(x.name for x in (run / "ckpt").iterdir())[-1] == "step-00000008"


def test_a_metrics_row_past_the_file_size_limit_names_metrics_jsonl(world, tmp_path):
    """A write to metrics.jsonl names no file, and closing the log flushed the rest of the
    torn row again, which raised in its place: the error named only the run folder (an
    audit). Resumed without the limit, every step is there once."""
    run = tmp_path / "run"
    argv = ["train", "--data", world / "shards", "--out", run, "--steps", "200",
            "--log-every", "1", *TINY]  # fmt: skip
    p = _run(argv, limit_fsize=True, fsize=16 << 10)  # about 125 rows
    err = _assert_one_line(p, str(run))
    assert err.startswith(f"error: {run / 'metrics.jsonl'}: File too large"), err
    assert _run(argv).returncode == 0
    steps = [int(x.split('"step": ')[1].split(",")[0])
             for x in (run / "metrics.jsonl").read_text().splitlines() if '"train_loss"' in x]  # fmt: skip
    assert steps == list(range(1, 201))


def test_an_onnx_export_past_the_file_size_limit_names_out_not_its_temporary(world, tmp_path):
    _needs("export-onnx")
    out = tmp_path / "m.onnx"
    p = _run(["export", world / "run", "--format", "onnx", "--out", out], True, 16 << 10)
    err = _assert_one_line(p, str(out))
    assert err.startswith(f"error: {out}: File too large"), err
    assert list(tmp_path.iterdir()) == []


def test_a_forced_prepare_on_a_read_only_disk_names_out_not_its_temporary(world, tmp_path):
    with _tmpfs(tmp_path / "mnt") as mnt:
        if mnt is None:
            pytest.skip("needs a file system of its own to remount read-only: root with mount(2)")
        out = mnt / "shards"
        argv = ["prepare", world / "corpus.txt", "--out", out, "--block-size", "16"]
        assert _run(argv).returncode == 0
        before = _listing(mnt)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        err = _assert_one_line(_run([*argv, "--force"]), str(out))
        assert err.startswith(f"error: {out}: Read-only file system"), err
        assert _listing(mnt) == before
