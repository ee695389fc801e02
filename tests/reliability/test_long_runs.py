"""A corpus that is one long run without whitespace (50 MB of "a", a digit string,
minified data) prepares with the BPE tokenizer in seconds and bounded memory.

Before pre-tokens were capped (MAX_PRETOKEN) the Hugging Face BPE trainer took each
4 MB chunk as one pre-token: 2 MB of "a" had not finished after 60 s, 50 MB not
after 5 minutes, its memory growing past 360 MB."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from scalinglab.data.shards import open_shards
from scalinglab.data.tokenizers import MAX_PRETOKEN, load_tokenizer
from scalinglab.data.writer import BPE_PIECE
from tests.reliability.helpers import ROOT
from tests.reliability.test_prepare_faults import PEAK_RSS


def _prepare_bpe(corpus, out) -> int:
    """Peak RSS in kB of `prepare --tokenizer bpe` in a fresh process."""
    p = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, "prepare", str(corpus), "--tokenizer", "bpe",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,  # a hang fails, not blocks
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    return int(p.stdout.split()[-1])


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_a_whitespace_free_run_prepares_with_bpe_in_bounded_memory(tmp_path):
    # Sizes in whole 64 KiB pieces, so that the 90/10 split, the 4 MiB chunks and the
    # encoder's pieces all cut at multiples of MAX_PRETOKEN: each 256-byte piece of the
    # run is one token, "a" * 256, the last of the 8 merges a+a, aa+aa, ...
    assert BPE_PIECE % MAX_PRETOKEN == 0
    sizes = {"small": 10 * BPE_PIECE, "big": 200 * BPE_PIECE}  # 0.66 MB and 13 MB
    rss = {}
    for name, size in sizes.items():
        (tmp_path / f"{name}.txt").write_bytes(b"a" * size)
        rss[name] = _prepare_bpe(tmp_path / f"{name}.txt", tmp_path / name)
    print(
        f"peak RSS: {rss['small'] / 1024:.0f} MB for 0.66 MB, {rss['big'] / 1024:.0f} MB for 13 MB"
    )
    big = tmp_path / "big"
    m = json.loads((big / "manifest.json").read_text())
    assert m["vocab_size"] == 256 + 1 + 8  # the bytes, <|endoftext|>, the doublings of "a"
    assert m["splits"]["train"]["tokens"] == 180 * BPE_PIECE // MAX_PRETOKEN
    assert m["splits"]["val"]["tokens"] == 20 * BPE_PIECE // MAX_PRETOKEN
    tok = load_tokenizer(big)
    s = open_shards(big, verify=True)
    ids = np.unique(np.concatenate([s.train[:], s.val[:]]))
    assert ids.tolist() == tok.encode("a" * MAX_PRETOKEN).tolist()
    assert tok.decode(ids) == "a" * MAX_PRETOKEN
    # 12 MB more input (three 4 MiB chunks) may not cost 30 MB more memory. Training on
    # whole chunks, `tokenizers` held ~16 bytes per byte of each: 600 MB for 50 MB of "a".
    assert rss["big"] - rss["small"] < 30 * 1024, rss
    assert rss["big"] < 160 * 1024, rss
