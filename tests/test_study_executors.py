"""The same tiny study (examples/tiny_study.toml, deterministic training) through the
local executor, a local Ray instance and submitit's local executor: the same runs table,
the same prediction, the same summary, number for number."""

import json
import math
from pathlib import Path

import pytest

from scalinglab.cli import main
from scalinglab.report.collect import collect

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tiny_study.toml"
KEY = ("role", "run_id", "status", "arch", "params", "tokens", "flops", "loss", "bpb", "budget")
# what differs between two runs of one study by design: clocks and timings
VOLATILE = {
    "generated",
    "written_at",
    "mtime",
    "prediction_mtime",
    "run_folder_mtime",
    "wall_seconds",
    "report_seconds",
}


def _same(x, y, where="") -> None:
    """Equal, NaN equal to NaN, clocks ignored; a difference names its path."""
    if isinstance(x, dict) and isinstance(y, dict):
        keys = set(x) | set(y)
        for k in sorted(keys - VOLATILE, key=str):
            assert k in x and k in y, f"{where}/{k}: in one study only"
            _same(x[k], y[k], f"{where}/{k}")
    elif isinstance(x, list) and isinstance(y, list):
        assert len(x) == len(y), f"{where}: {len(x)} != {len(y)} items"
        for i, (a, b) in enumerate(zip(x, y, strict=True)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(x, float) and isinstance(y, float) and math.isnan(x):
        assert math.isnan(y), f"{where}: nan != {y}"
    else:
        assert x == y, f"{where}: {x!r} != {y!r}"


def _study(out: Path, cache: Path, *flags: str) -> dict:
    argv = ["study", str(EXAMPLE), "--out", str(out), "--cache", str(cache), "--threads", "1"]
    assert main([*argv, *flags]) == 0
    return {
        "runs": sorted([r[k] for k in KEY] for r in collect(out).rows),
        "prediction": json.loads((out / "prediction.json").read_text()),
        "summary": json.loads((out / "summary.json").read_text()),
    }


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def local(tmp_path_factory, cache):
    got = _study(tmp_path_factory.mktemp("local") / "study", cache)
    runs = got["runs"]
    # 2 budgets x 3 sizes, the seed repeat and the backtest, all trained to a real loss
    assert [r[0] for r in runs] == ["backtest"] + ["seed"] + ["sweep"] * 6
    assert {r[2] for r in runs} == {"completed"}
    assert all(isinstance(r[7], float) and 1.0 < r[7] < math.log(256) for r in runs)
    pred = got["prediction"]
    assert pred["flops"] == pytest.approx(6.0 * pred["params"] * pred["tokens"])
    assert pred["run_name"] == runs[0][1]
    lo, hi = pred["interval"]
    assert lo < pred["predicted_loss"] < hi  # widened by the measured seed noise
    assert got["summary"]["backtest"]["status"] == "completed"
    return got


def test_ray_executor_same_study(local, tmp_path, cache):
    pytest.importorskip("ray", reason="needs the [ray] extra: pip install 'scalinglab[ray]'")
    _same(_study(tmp_path / "study", cache, "--executor", "ray"), local)


def test_submitit_local_executor_same_study(local, tmp_path, cache):
    pytest.importorskip(
        "submitit", reason="needs the [slurm] extra: pip install 'scalinglab[slurm]'"
    )
    out = tmp_path / "study"
    _same(_study(out, cache, "--executor", "submitit", "--cluster", "local"), local)
    assert list((out / "submitit").iterdir())  # the runs went through submitit's jobs
