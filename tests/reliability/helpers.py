"""Shared by the fault tests: one tiny GPT run, its CLI form, and bitwise comparisons."""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from scalinglab.cli import main
from scalinglab.train import checkpoint
from tests.train.helpers import cli_args, tiny_cfg

ROOT = Path(__file__).resolve().parents[2]
STEPS, EVERY = 12, 4  # checkpoints at steps 4, 8 and 12


def cfg(data, steps: int = STEPS, **kw):
    # threads=1 as the CLI form gives, and since module fixtures run before conftest sets it
    return tiny_cfg(data, steps=steps, ckpt_every=EVERY, keep_ckpts=3, threads=1, **kw)


def argv(data, run, *extra, steps: int = STEPS) -> list[str]:
    """The CLI form of `cfg(data, steps)`: the same run, bit for bit."""
    return cli_args(data, run, "--steps", str(steps), "--ckpt-every", str(EVERY),
                    "--keep-ckpts", "3", "--lr", "3e-3", "--warmup", "5", "--log-every", "1",
                    "--threads", "1", *extra)  # fmt: skip


def one_line_error(capsys, args) -> str:
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def rows(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]


def assert_steps_once(run: Path, steps: int) -> None:
    """metrics.jsonl (log_every 1): each step exactly once, in order, then one final row."""
    r = rows(run)
    assert [x["step"] for x in r if not x.get("final")] == list(range(1, steps + 1))
    assert [x["step"] for x in r if x.get("final")] == [steps]


def assert_same_tree(a, b, where: str = "state") -> None:
    """Equal nested containers; tensors bitwise (dtype, shape and every bit)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_same_tree(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tree(x, y, f"{where}[{i}]")
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"  # NaN == NaN here


def assert_same_run(run: Path, ref: Path) -> None:
    """The final checkpoint (weights, optimizer, schedule, loader, RNG, step and token
    counters) and the metrics equal the reference run's, bit for bit."""
    a, b = checkpoint.latest(run / "ckpt"), checkpoint.latest(ref / "ckpt")
    assert a.name == b.name
    assert_same_checkpoint(a, b)
    assert rows(run) == rows(ref)
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (run, ref))
    assert ra["status"] == rb["status"] == "completed"
    assert (ra["val_loss"], ra["steps"], ra["tokens"]) == (
        rb["val_loss"],
        rb["steps"],
        rb["tokens"],
    )


def assert_same_checkpoint(a: Path, b: Path) -> None:
    """Weights and state bitwise equal; only the clocks may differ."""
    assert_same_tree(
        load_file(a / checkpoint.WEIGHTS), load_file(b / checkpoint.WEIGHTS), "weights"
    )
    sa, sb = checkpoint.load_state(a), checkpoint.load_state(b)
    for s in (sa, sb):  # clocks differ between any two runs
        del s["counters"]["wall_seconds"], s["counters"]["train_seconds"]
    assert_same_tree(sa, sb)
