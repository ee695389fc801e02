import json
import os
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests run on a shared 2-core machine: keep torch to one thread, deterministically."""
    try:
        import torch
    except ImportError:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def shared_file(rel: str) -> Path:
    """A file from ../shared (public corpora and scaling data); skip, saying why, if absent."""
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"{path} is absent: the public data sets live in ../shared beside the checkout")
    return path


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def write_raw_shards(path, train, val, vocab_size=256, bytes_per_token=1.0):
    """A minimal shards folder written by hand, for tests of the layers above the writer."""
    path = Path(path)
    path.mkdir(parents=True)
    dtype = "<u2" if vocab_size <= 1 << 16 else "<u4"
    np.asarray(train).astype(dtype).tofile(path / "train.bin")
    np.asarray(val).astype(dtype).tofile(path / "val.bin")
    from scalinglab.data.tokenizers import ByteTokenizer

    ByteTokenizer().save(path / "tokenizer.json")  # a real one: load_tokenizer(path) works
    manifest = {
        "format_version": 1,
        "kind": "scalinglab.shards",
        "sources": ["test"],
        "tokenizer": "byte",
        "vocab_size": vocab_size,
        "dtype": "uint16" if dtype == "<u2" else "uint32",
        "splits": {
            split: {
                "documents": 1,
                "bytes": round(len(arr) * bytes_per_token),
                "tokens": len(arr),
            }
            for split, arr in (("train", train), ("val", val))
        },
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path
