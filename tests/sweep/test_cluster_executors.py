"""The same tiny sweep (real trainer, deterministic) through the local executor, a
local Ray instance and submitit's local executor: the same runs table, the same losses."""

import pytest

from scalinglab.sweep import driver
from scalinglab.sweep.spec import load_spec
from scalinglab.sweep.table import runs_table
from tests.conftest import write_raw_shards
from tests.sweep.conftest import pattern_tokens, write_spec

GRID = """kind = "grid"
shapes = [{n_layer = 1, n_embd = 8, n_head = 2}]
tokens = [640, 1280]
"""
KEY = ("run_id", "status", "params", "tokens", "flops", "loss", "bpb", "budget")


@pytest.fixture(scope="module")
def local_table(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("local")
    shards = write_raw_shards(
        tmp / "shards", pattern_tokens(20000), pattern_tokens(4000, 1), vocab_size=32
    )
    spec = load_spec(write_spec(tmp, shards, GRID))
    ex = driver.make_executor("local", tmp / "out", 2, 1)
    driver.run_sweep(spec, tmp / "out", ex, threads=1)
    rows = [[r[k] for k in KEY] for r in runs_table(tmp / "out")]
    assert [r[1] for r in rows] == ["completed", "completed"]
    assert all(isinstance(r[5], float) and 0 < r[5] < 4 for r in rows)  # ln 32 ≈ 3.47
    return spec, rows


def _table(out):
    return [[r[k] for k in KEY] for r in runs_table(out)]


def test_ray_executor_same_table(local_table, tmp_path):
    ray = pytest.importorskip("ray", reason="needs the [ray] extra: pip install 'scalinglab[ray]'")
    spec, expected = local_table
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ex = driver.make_executor("ray", tmp_path / "out", 2, 1)
        outcomes = driver.run_sweep(spec, tmp_path / "out", ex, threads=1)
        assert ray.is_initialized()  # it used ours and left it running
    finally:
        ray.shutdown()
    assert sorted(o["status"] for o in outcomes) == ["completed", "completed"]
    assert _table(tmp_path / "out") == expected


def test_submitit_local_executor_same_table(local_table, tmp_path):
    pytest.importorskip(
        "submitit", reason="needs the [slurm] extra: pip install 'scalinglab[slurm]'"
    )
    spec, expected = local_table
    ex = driver.make_executor("submitit", tmp_path / "out", 2, 1, cluster="local")
    outcomes = driver.run_sweep(spec, tmp_path / "out", ex, threads=1)
    assert sorted(o["status"] for o in outcomes) == ["completed", "completed"]
    assert list((tmp_path / "out" / "submitit").iterdir())  # submitit's job folders
    assert _table(tmp_path / "out") == expected
