"""`scalinglab coord-check`'s --out and --widths refused in one line (exit 2) before any
model is built or anything is written."""

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from scalinglab.cli import main
from scalinglab.errors import ConfigError
from tests.reliability.helpers import ROOT
from tests.train.helpers import tiny_shards

SMALL = ["--steps", "1", "--batch-size", "2", "--block-size", "16", "--n-layer", "1",
         "--n-head", "2"]  # fmt: skip
ADDRESS_SPACE = 2 << 30
"""The address-space limit (ulimit -v) the process of the large width runs under: torch
loads in it, no model of the large width is ever allocated."""


def _snapshot(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def test_coord_check_out_a_file_names_the_flag_and_exits_2(tmp_path, capsys):
    """It was `error: afile.txt: File exists (something else is in the way)`, exit 1,
    after every model had trained."""
    data = tiny_shards(tmp_path / "shards")
    afile = tmp_path / "afile.txt"
    afile.write_bytes(b"keep\n")
    before = _snapshot(tmp_path)
    rc = main(["coord-check", "--data", str(data), "--out", str(afile), "--widths", "8,16",
               *SMALL])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    assert err == f"error: --out {afile} is a file, not a folder: give a folder\n"
    assert _snapshot(tmp_path) == before


def _limited():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def test_coord_check_width_too_large_for_memory_is_one_line(tmp_path):
    """--widths 8,200000 was a 37-line traceback from torch's allocator (exit 1); run in a
    process of its own under a 2 GiB address-space limit, so that nothing large can be
    allocated even where the check is missing."""
    data = tiny_shards(tmp_path / "shards")
    out = tmp_path / "cc"
    before = _snapshot(tmp_path)
    argv = ["coord-check", "--data", str(data), "--out", str(out), "--widths", "8,200000",
            *SMALL]  # fmt: skip
    p = subprocess.run(
        [sys.executable, "-c", "import sys; from scalinglab.cli import main; "
         "sys.exit(main(sys.argv[1:]))", *argv],
        capture_output=True, text=True, timeout=300, preexec_fn=_limited, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith("error: --widths: width 200000: the gpt of "), p.stderr
    assert "does not fit in the memory of cpu" in p.stderr and p.stderr.endswith(
        "; make it smaller\n"
    )
    assert not out.exists()
    assert _snapshot(tmp_path) == before


def test_an_allocation_failure_past_the_estimate_names_the_width(tmp_path, monkeypatch):
    """A model the estimate let through whose allocation fails: the same line, not
    torch's traceback (no memory is allocated: run_one fails as the allocator would)."""
    from scalinglab.train import coordcheck

    def no_memory(cfg, *a, **k):
        if cfg.n_embd == 16:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                               "can't allocate memory: you tried to allocate 1 bytes")  # fmt: skip
        return {"size": [[1.0]], "update": [[0.0]]}

    monkeypatch.setattr(coordcheck, "run_one", no_memory)
    batches = coordcheck.sample_batches(list(range(100)), 2, 2, 8)
    with pytest.raises(ConfigError) as exc:
        coordcheck.coord_check(batches, [8, 16], ["sp"], n_layer=1, n_head=2)
    assert exc.value.message.startswith("--widths: width 16: the gpt of ")
    assert exc.value.message.endswith(
        "parameters (vocab_size 256) does not fit in the memory of cpu; make it smaller"
    )
