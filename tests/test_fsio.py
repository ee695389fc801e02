import json
import os
import socket
import stat
import subprocess
import sys
import time

import pytest

from scalinglab import fsio
from scalinglab.fsio import atomic_write_json, atomic_write_text, replace_dir, temp_tag


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    p = tmp_path / "result.json"
    atomic_write_json(p, {"a": 1})
    atomic_write_json(p, {"b": 2})
    assert json.loads(p.read_text()) == {"b": 2}
    assert os.listdir(tmp_path) == ["result.json"]


def test_atomic_write_honours_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "config.toml", "x = 1\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "config.toml").stat().st_mode) == 0o644


def test_failed_write_keeps_the_old_file(tmp_path):
    p = tmp_path / "result.json"
    atomic_write_json(p, {"ok": True})
    with pytest.raises(ValueError):
        atomic_write_json(p, {"loss": float("nan")})  # not valid JSON: refused
    assert json.loads(p.read_text()) == {"ok": True}
    assert os.listdir(tmp_path) == ["result.json"]


def test_prepared_shards_are_readable_by_others(tmp_path):
    from scalinglab.data import prepare

    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world, " * 2000)
    old = os.umask(0o022)
    try:
        prepare([str(corpus)], tmp_path / "shards", tokenizer="byte", block_size=8)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shards").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "shards" / "manifest.json").stat().st_mode) == 0o644


def _dead_pid() -> int:
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                       capture_output=True, text=True, check=True)  # fmt: skip
    return int(p.stdout)


@pytest.fixture(params=["swap", "two renames"])
def swap_or_not(request, monkeypatch):
    """replace_dir as on Linux (one atomic swap) and as where the system has none."""
    if request.param == "two renames":
        monkeypatch.setattr(fsio, "_exchange", lambda a, b: False)


def test_replace_dir_deletes_the_old_folders_killed_replaces_left_and_keeps_live_ones(
    tmp_path, swap_or_not
):
    out, new = tmp_path / "shards", tmp_path / "new"
    out.mkdir()
    (out / "f").write_text("old")
    new.mkdir()
    (new / "f").write_text("new")
    host = socket.gethostname()
    stale = tmp_path / f".shards.old-{_dead_pid()}@{host}.abc"  # SIGKILLed before its delete
    live = tmp_path / f".shards.old-{temp_tag()}.def"  # this process: alive
    elsewhere = tmp_path / f".shards.old-{_dead_pid()}@another-host.ghi"  # not ours to judge
    unnamed = tmp_path / ".shards.old-x1y2z3"  # an older version's: no pid to check
    for d in (stale, live, elsewhere, unnamed):
        (d / "x").mkdir(parents=True)
        (d / "x" / "f").write_text("older")
    replace_dir(new, out)
    assert (out / "f").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["shards", live.name, elsewhere.name, unnamed.name]
    )


def test_replace_dir_that_cannot_rename_the_new_folder_puts_the_old_one_back(tmp_path, swap_or_not):
    out = tmp_path / "shards"
    out.mkdir()
    (out / "f").write_text("old")
    with pytest.raises(FileNotFoundError):
        replace_dir(tmp_path / "gone", out)
    assert [p.name for p in tmp_path.iterdir()] == ["shards"]
    assert (out / "f").read_text() == "old"


_KILLED_AT_FIRST_RENAME = """
import os, sys
from pathlib import Path
from scalinglab.fsio import replace_dir

def killed(self, target):  # SIGKILL at the first rename: no handler runs
    os._exit(9)

Path.rename = killed
replace_dir(sys.argv[1], sys.argv[2])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_replace_dir_killed_midway_never_leaves_the_folder_missing(tmp_path):
    # The folder a rebuild replaces (prepare's shards) was missing between moving the old
    # one aside and renaming the new one in: a kill there left no shards until the next
    # prepare. The two are now swapped in one step, and a kill after it leaves the new.
    out, new = tmp_path / "shards", tmp_path / "new"
    for d, text in ((out, "old"), (new, "new")):
        d.mkdir()
        (d / "f").write_text(text)
    p = subprocess.run([sys.executable, "-c", _KILLED_AT_FIRST_RENAME, str(new), str(out)],
                       capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 9, p.stderr
    assert (out / "f").read_text() == "new"
    assert (new / "f").read_text() == "old"  # the old one, under the temporary name


def test_stale_temps_never_takes_another_hosts_whose_name_starts_with_this_ones(tmp_path):
    """`.f.PID@node12.*` was read as this host's when this host is `node1` (the name only
    had to start with it): a live process of node12 writing to a shared folder lost its
    temporary file whenever its pid was not running here."""
    host = socket.gethostname()
    mine = tmp_path / f".f.{_dead_pid()}@{host}.abc123.tmp"
    others = [tmp_path / f".f.{_dead_pid()}@{host}{tail}.abc123.tmp" for tail in ("2", ".example")]
    for p in (mine, *others):
        p.write_text("partial")
    atomic_write_text(tmp_path / "f", "done")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["f", *(p.name for p in others)])


def test_replace_dir_deletes_an_older_versions_unnamed_old_folder_once_an_hour_old(tmp_path):
    """`.shards.old-XXXXXXXX` (mkdtemp's name, no PID@HOST), left by an older scalinglab
    killed before its delete, was kept forever (as large as the shards). It is deleted once
    its mtime is an hour old; a fresh one (a live older process between its two renames)
    and other names are kept."""
    out, new = tmp_path / "shards", tmp_path / "new"
    out.mkdir()
    new.mkdir()
    left = tmp_path / ".shards.old-k3j_9x2a"
    fresh = tmp_path / ".shards.old-p0q1r2s3"
    other = tmp_path / ".shards.old-notmine.k3j_9x2a"
    for d in (left, fresh, other):
        (d / "x").mkdir(parents=True)
        (d / "x" / "f").write_text("older")
    hour_ago = time.time() - fsio.UNNAMED_OLD_AGE - 60
    for d in (left, other):
        os.utime(d, (hour_ago, hour_ago))
    replace_dir(new, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["shards", fresh.name, other.name])


def test_an_older_versions_unnamed_temporary_folders_go_once_an_hour_still(tmp_path):
    """An older prepare's `.shards.tmp-XXXXXXXX` (mkdtemp) and an older export's
    `.hf.tmp-PID` (no host), left by a kill, were kept forever: no PID@HOST to check.
    prepare and export delete one once nothing in it has changed for an hour; one with
    a file written since (a live older process) and other names are kept."""
    from scalinglab.data.writer import prepare
    from scalinglab.export import temp_beside

    (tmp_path / "a.txt").write_text("hello world\n" * 200)
    hour_ago = time.time() - fsio.UNNAMED_OLD_AGE - 60
    left = [tmp_path / ".shards.tmp-k3j_9x2a", tmp_path / ".hf.tmp-4242"]
    kept = [tmp_path / ".shards.tmp-p0q1r2s3", tmp_path / ".shards.tmp-notmine.k3j_9x2a"]
    for d in (*left, *kept):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "train.bin").write_bytes(b"\0" * 8)
        for p in (d / "sub" / "train.bin", d / "sub", d):
            os.utime(p, (hour_ago, hour_ago))
    os.utime(kept[0] / "sub" / "train.bin")  # written just now
    prepare([str(tmp_path / "a.txt")], tmp_path / "shards", tokenizer="byte", block_size=8)
    temp_beside(tmp_path / "hf", "hf").rmdir()
    assert sorted(p.name for p in tmp_path.glob(".*")) == sorted(p.name for p in kept)
