"""The shards folder: its dtype, manifest, integrity scan and checksums, each against
a file written here with a known fault."""

import json

import numpy as np
import pytest

from scalinglab.data import shards as S
from scalinglab.data.writer import prepare
from scalinglab.errors import DataError
from tests.conftest import write_raw_shards


def test_dtype_for_vocab_switches_to_uint32_above_65536_ids():
    assert S.dtype_for_vocab(256) == "uint16"
    assert S.dtype_for_vocab(65536) == "uint16"  # ids 0..65535 fit
    assert S.dtype_for_vocab(65537) == "uint32"  # id 65536 does not


def test_integrity_refuses_an_id_equal_to_vocab_size(tmp_path):
    p = write_raw_shards(
        tmp_path / "sh", np.arange(300) % 200, np.arange(100) % 200, vocab_size=200
    )
    S.check_integrity(S.open_shards(p))  # ids 0..199: fine
    t = np.fromfile(p / "train.bin", "<u2")
    t[5] = 200
    t.tofile(p / "train.bin")
    with pytest.raises(DataError, match="token id 200 is out of range"):
        S.check_integrity(S.open_shards(p))


def test_integrity_finds_a_bad_id_in_an_early_chunk(tmp_path):
    p = write_raw_shards(
        tmp_path / "sh", np.arange(300) % 200, np.arange(100) % 200, vocab_size=200
    )
    t = np.fromfile(p / "train.bin", "<u2")
    t[5] = 250  # in the first of many 64-byte chunks
    t.tofile(p / "train.bin")
    with pytest.raises(DataError, match="token id 250"):
        S.check_integrity(S.open_shards(p), chunk=64)


def test_manifest_without_a_val_split_is_refused_by_name(tmp_path):
    p = write_raw_shards(tmp_path / "sh", np.arange(300) % 200, np.arange(100) % 200)
    m = json.loads((p / "manifest.json").read_text())
    del m["splits"]["val"]
    (p / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match=r"missing splits\.val\.tokens"):
        S.read_manifest(p)


def test_open_shards_verify_refuses_a_flipped_byte(tmp_path):
    src = tmp_path / "c.txt"
    src.write_text("hello world\n" * 400)
    prepare(str(src), tmp_path / "sh", block_size=16)
    S.open_shards(tmp_path / "sh", verify=True)
    b = bytearray((tmp_path / "sh/train.bin").read_bytes())
    b[10] ^= 1
    (tmp_path / "sh/train.bin").write_bytes(bytes(b))
    S.open_shards(tmp_path / "sh")  # sizes still agree
    with pytest.raises(DataError, match="sha256 does not match"):
        S.open_shards(tmp_path / "sh", verify=True)
