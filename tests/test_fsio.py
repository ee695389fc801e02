import json
import os
import stat

import pytest

from scalinglab.fsio import atomic_write_json, atomic_write_text


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
