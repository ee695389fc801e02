"""torchrun / DDP on CPU (gloo): 2 processes follow 1 process with the same global batch,
only rank 0 writes, and a crashed worker is restarted from the last checkpoint."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

from scalinglab import runfolder
from scalinglab.train import distributed as D
from scalinglab.train import train
from tests.train.helpers import cli_args, tiny_cfg, tiny_shards

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="this torch build has no torch.distributed gloo backend",
)


def torchrun(args: list[str], env: dict | None = None, restarts: int = 0):
    """Run tests.train.ddp_entry (scalinglab's CLI) in 2 CPU processes; returns the process."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        f"--max-restarts={restarts}", "-m", "tests.train.ddp_entry", *args, "--threads", "1",
    ]  # fmt: skip
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    # torchrun makes a torchelastic_* folder in the temporary folder and leaves it there:
    # a temporary folder of its own, removed afterwards
    scratch = tempfile.mkdtemp(prefix="scalinglab-torchrun-")
    full_env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": path, "TMPDIR": scratch}
    full_env |= env or {}
    # torchrun in a session of its own: on a timeout the whole group (its workers
    # too) is killed, so a hung test leaves no orphaned workers behind.
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=full_env, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _threads_left(audit: Path, attempt: int = 0) -> dict[int, list[str]]:
    """Each rank's native threads once its CLI returned, as ddp_entry recorded them."""
    files = {r: audit / f"threads-rank{r}-attempt{attempt}.txt" for r in range(2)}
    assert all(f.exists() for f in files.values()), sorted(p.name for p in audit.iterdir())
    return {r: f.read_text().split() for r, f in files.items()}


def _written(audit: Path, rank: int, run: Path) -> set[str]:
    """Names (relative to `run`) of the files a rank wrote inside the run folder."""
    log = audit / f"writes-rank{rank}.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return {str(Path(p).relative_to(run)) for p in lines if Path(p).is_relative_to(run)}


def test_two_processes_follow_one_and_only_rank_0_writes(tmp_path):
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    data = tiny_shards(tmp_path / "shards")
    # the same global batch: 8 sequences per step, 4 on each of the 2 ranks
    ref = train(tiny_cfg(data, steps=20, threads=1), tmp_path / "one")
    run, audit = tmp_path / "two", tmp_path / "audit"
    audit.mkdir()
    args = cli_args(data, run, "--steps", "20", "--lr", "3e-3", "--warmup", "5", "--log-every",
                    "1", "--tensorboard")  # fmt: skip
    proc = torchrun(args, env={"SCALINGLAB_TEST_AUDIT": str(audit),
                               "SCALINGLAB_TEST_THREADS": str(audit)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("completed:") == 1  # rank 0 alone reports
    # The process group is gone (its gloo threads joined) before the interpreter exits:
    # threads alive at exit abort the process (the crash-restart flake of issue 24).
    for rank, names in _threads_left(audit).items():
        assert not [n for n in names if "gloo" in n], (rank, names)

    got = json.loads((run / "result.json").read_text())
    assert got["status"] == "completed" and got["steps"] == 20
    assert got["tokens"] == ref["tokens"] == 20 * 8 * 16
    assert got["run_id"] == ref["run_id"]  # the number of processes is not part of the run
    one, two = _rows(tmp_path / "one"), _rows(run)
    assert [r["step"] for r in two] == [r["step"] for r in one] == [*range(1, 21), 20]
    for a, b in zip(one[:-1], two[:-1], strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-4, (a, b)
    assert abs(got["train_loss"] - ref["train_loss"]) <= 1e-4
    assert abs(got["val_loss"] - ref["val_loss"]) <= 1e-4
    assert got["train_loss"] < one[0]["train_loss"] - 1.0  # it did learn

    wrote0, wrote1 = _written(audit, 0, run), _written(audit, 1, run)
    assert wrote1 == set()
    assert {"config.toml", "tokenizer.json", "metrics.jsonl", "result.json",
            "ckpt/step-00000020"} <= wrote0  # fmt: skip
    assert len(list(run.glob("events.out.tfevents.*"))) == 1


def test_crashed_worker_is_restarted_and_resumes(tmp_path):
    """An LSTM whose rank 1 dies after step 12; torchrun restarts both from the step-10
    checkpoint and the run ends as uninterrupted. (In random order its state starts anew
    each window: the carried state is tested in stream order below.)"""
    data = tiny_shards(tmp_path / "shards")
    extra = dict(steps=20, ckpt_every=5, threads=1)
    ref = train(tiny_cfg(data, "lstm", **extra), tmp_path / "one")
    run = tmp_path / "two"
    args = cli_args(data, run, "--model", "lstm", "--steps", "20", "--ckpt-every", "5",
                    "--lr", "3e-3", "--warmup", "5", "--log-every", "1")  # fmt: skip
    audit = tmp_path / "audit"
    audit.mkdir()
    env = {"SCALINGLAB_TEST_CRASH": "1:12", "SCALINGLAB_TEST_THREADS": str(audit)}
    proc = torchrun(args, env=env, restarts=1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed" in proc.stderr and "step-00000010" in proc.stderr
    assert "terminate called" not in proc.stderr
    for rank, names in _threads_left(audit, attempt=1).items():  # the restarted attempt
        assert not [n for n in names if "gloo" in n], (rank, names)
    got = json.loads((run / "result.json").read_text())
    assert got["status"] == "completed" and got["steps"] == 20
    rows = _rows(run)
    assert [r["step"] for r in rows] == [*range(1, 21), 20]  # steps 11-12 not twice
    one = _rows(tmp_path / "one")
    for a, b in zip(one[:-1], rows[:-1], strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-4, (a, b)
    assert abs(got["val_loss"] - ref["val_loss"]) <= 1e-4


@pytest.mark.parametrize("mode", ["random", "stream"])
def test_rank_slices_make_up_the_single_process_batch(mode):
    import numpy as np

    from scalinglab.data.loader import BatchLoader
    from scalinglab.train.distributed import Distributed

    tokens = np.arange(5000) % 251

    def loader():
        return BatchLoader(tokens, 16, 8, seed=3, mode=mode)

    single = loader()
    ranks = [Distributed(r, 2).shard_loader(loader(), 8) for r in range(2)]
    for _ in range(5):
        x, y = single.next()
        parts = [r.next() for r in ranks]
        assert torch.equal(torch.cat([p[0] for p in parts]), x)
        assert torch.equal(torch.cat([p[1] for p in parts]), y)
        assert all(r.reset == single.reset for r in ranks)
    assert ranks[1].state_dict() == single.state_dict()  # checkpoints do not depend on N


def test_global_batch_must_divide_among_processes():
    import numpy as np

    from scalinglab.data.loader import BatchLoader
    from scalinglab.errors import ConfigError
    from scalinglab.train.distributed import Distributed

    with pytest.raises(ConfigError, match=r"batch_size 8 .* processes \(3\)"):
        Distributed(0, 3).shard_loader(BatchLoader(np.arange(100), 4, 8), 8)


def test_carried_state_is_sliced_by_rank():
    from scalinglab.train.distributed import Distributed

    h = torch.arange(2 * 8 * 3.0).view(2, 8, 3)  # (n_layer, global batch, hidden)
    h1, c1 = Distributed(1, 2).slice_rows((h, -h))
    assert torch.equal(h1, h[:, 4:]) and torch.equal(c1, -h[:, 4:])
    assert Distributed(0, 1).slice_rows(h) is h


@pytest.mark.parametrize("fault", ["lock held", "disk full"])
def test_a_failure_on_rank_0_stops_every_rank_with_one_line(tmp_path, fault):
    """Rank 0 alone takes the lock and writes checkpoints: when that fails, rank 1 stops
    too, with one line naming rank 0's cause and the same exit code, no gloo traceback."""
    data = tiny_shards(tmp_path / "shards")
    run, exits = tmp_path / "two", tmp_path / "exits"
    exits.mkdir()
    args = cli_args(data, run, "--steps", "6", "--ckpt-every", "2")
    env = {"SCALINGLAB_TEST_EXIT": str(exits)}
    lock = None
    if fault == "lock held":
        run.mkdir()
        lock = runfolder.hold_lock(run)  # as another trainer of this folder does
        cause = f"{run} is in use by another trainer (pid {os.getpid()} on {socket.gethostname()})"
    else:
        env["SCALINGLAB_TEST_DISK_FULL"] = "4"
        cause = f"cannot write checkpoint {run / 'ckpt' / 'step-00000004'}: No space left on device"
    try:
        torchrun(args, env=env)
    finally:
        runfolder.release_lock(lock)
    for rank in range(2):
        err = (exits / f"stderr-rank{rank}.txt").read_text()
        assert "Traceback" not in err, err[-3000:]
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, err[-3000:]
        said = "error: " if rank == 0 else "error: rank 1 stops: rank 0 failed: "
        assert errors[0].startswith(said + cause), errors
        assert (exits / f"exit-rank{rank}.txt").read_text() == "2\n"
    if fault == "disk full":  # the checkpoint before the failed one is kept
        assert [p.name for p in (run / "ckpt").iterdir()] == ["step-00000002"]


def test_ranks_draw_their_own_dropout_masks_and_resume_them_bitwise(tmp_path):
    """With dropout each rank masks its rows with masks of its own (as one large batch's
    rows get theirs), from the same initial weights; a worker killed after step 5 and
    restarted from the step-4 checkpoint draws each rank's masks again and ends bitwise
    equal to the uninterrupted 2-process run."""
    data = tiny_shards(tmp_path / "shards")

    def args(run):
        return cli_args(data, run, "--dropout", "0.3", "--steps", "8", "--ckpt-every", "2",
                        "--lr", "3e-3", "--warmup", "2", "--log-every", "1")  # fmt: skip

    def masks(folder: Path, rank: int, attempt: int = 0) -> list[str]:
        return (folder / f"masks-rank{rank}-attempt{attempt}.txt").read_text().split()

    whole, crashed = tmp_path / "whole", tmp_path / "crashed"
    seen, seen_crashed = tmp_path / "masks", tmp_path / "masks-crashed"
    seen.mkdir()
    seen_crashed.mkdir()
    proc = torchrun(args(whole), env={"SCALINGLAB_TEST_MASKS": str(seen)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    m0, m1 = masks(seen, 0), masks(seen, 1)
    assert len(m0) == len(m1) == 8 * 3  # per step: the embeddings', attention's and MLP's
    assert [a == b for a, b in zip(m0, m1, strict=True)] == [False] * 24

    env = {"SCALINGLAB_TEST_CRASH": "1:5", "SCALINGLAB_TEST_MASKS": str(seen_crashed)}
    proc = torchrun(args(crashed), env=env, restarts=1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed" in proc.stderr and "step-00000004" in proc.stderr
    for rank in range(2):  # steps 5-8 again, with the masks of the uninterrupted run
        assert masks(seen_crashed, rank, attempt=1) == masks(seen, rank)[4 * 3 :]
    last = Path("ckpt") / "step-00000008" / "model.safetensors"
    assert (crashed / last).read_bytes() == (whole / last).read_bytes()
    rows = [[r | {"seconds": None} for r in _rows(run)] for run in (whole, crashed)]
    assert rows[0] == rows[1] and [r["step"] for r in rows[0]] == [*range(1, 9), 8]


def _fake_peer(monkeypatch, peer: torch.Tensor):
    """_all_reduce as a 2-process group whose other rank holds `peer` (same shape)."""

    def all_reduce(t, op):
        both = torch.stack([t, peer.to(t.dtype)])
        if op == dist.ReduceOp.SUM:
            r = both.sum(0)
        elif op == dist.ReduceOp.MAX:
            r = both.max(0).values
        elif op == dist.ReduceOp.MIN:
            r = both.min(0).values
        else:  # pragma: no cover
            raise AssertionError(op)
        t.copy_(r)
        return t

    monkeypatch.setattr(D, "_all_reduce", all_reduce)


def test_agree_step_is_all_finite_and_the_mean_loss_and_norm(monkeypatch):
    """[finite, loss, norm] of two ranks -> [both finite?, mean loss, mean norm]."""
    # the peer's stats, already in the form agree_step sends: 1 - finite
    _fake_peer(monkeypatch, torch.tensor([1.0 - 1.0, 3.0, 0.5]))
    got = D.Distributed(0, 2).agree_step(torch.tensor([1.0, 5.0, 1.5]))
    assert got.tolist() == [1.0, 4.0, 1.0]
    # one rank not finite: no rank steps, whatever the other says
    _fake_peer(monkeypatch, torch.tensor([1.0 - 0.0, float("nan"), float("nan")]))
    got = D.Distributed(0, 2).agree_step(torch.tensor([1.0, 5.0, 1.5]))
    assert got[0].item() == 0.0


def test_agree_after_step_stops_if_any_rank_stops_and_keeps_the_slowest_clock(monkeypatch):
    class C:
        train_seconds = 2.0

    _fake_peer(monkeypatch, torch.tensor([1.0, 7.5], dtype=torch.float64))  # peer: SIGTERM, 7.5 s
    c = C()
    assert D.Distributed(0, 2).agree_after_step(c, False) is True
    assert c.train_seconds == 7.5
    _fake_peer(monkeypatch, torch.tensor([0.0, 1.0], dtype=torch.float64))
    c = C()
    assert D.Distributed(1, 2).agree_after_step(c, False) is False and c.train_seconds == 2.0


def test_check_same_passes_equal_values_and_names_both_when_they_differ(monkeypatch):
    from scalinglab.errors import ConfigError

    _fake_peer(monkeypatch, torch.tensor([10.0, -10.0], dtype=torch.float64))
    D.Distributed(0, 2).check_same(10, "step to resume from")  # same on both: no error
    _fake_peer(monkeypatch, torch.tensor([5.0, -5.0], dtype=torch.float64))
    with pytest.raises(ConfigError, match="disagree on the step to resume from: 5 to 10"):
        D.Distributed(0, 2).check_same(10, "step to resume from")


def test_gathered_state_is_the_global_batch_and_slices_back(monkeypatch):
    """Rank r's (n_layer, B/2, H) lanes go to rows [r*B/2, (r+1)*B/2) of the global state
    a checkpoint keeps, and slice_rows of that gives each rank its own lanes again."""
    full = torch.arange(2 * 8 * 3.0).view(2, 8, 3)  # (n_layer, global batch, hidden)
    local = [full[:, :4], full[:, 4:]]

    for rank in range(2):

        def all_gather(parts, t, rank=rank):  # this rank's t and the peer's matching tensor
            sign = 1.0 if torch.equal(t, local[rank]) else -1.0
            for r, p in enumerate(parts):
                p.copy_(t if r == rank else sign * local[r])

        monkeypatch.setattr(dist, "all_gather", all_gather)
        d = D.Distributed(rank, 2)
        g = d.gather_rows((local[rank], -local[rank]))
        assert torch.equal(g[0], full) and torch.equal(g[1], -full)
        assert torch.equal(d.slice_rows(g[0]), local[rank])


def test_a_rank_seed_is_its_own_per_rank_and_per_step():
    """A rank > 0 that resumes at step s without a saved generator seeds a stream that is
    not the one it drew at step 0 (nor another rank's)."""
    seeds = {(r, s): D.rank_seed(7, r, s) for r in (1, 2) for s in (0, 10)}
    assert len(set(seeds.values())) == 4
    assert D.rank_seed(7, 1) == seeds[(1, 0)]
    expected = int(np.random.SeedSequence([7, 1, 10]).generate_state(1)[0])
    assert seeds[(1, 10)] == expected


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo")
def test_stream_order_lstm_resumes_its_carried_state_across_ranks(tmp_path):
    """--order stream: an LSTM's state is carried across windows (random order resets it
    every window, so the existing crash test never reads a gathered state). Rank 1 dies
    after step 7; both restart from the step-5 checkpoint, whose state was gathered from
    both ranks, and the losses follow the 1-process run."""
    from scalinglab.train import train
    from tests.train.helpers import cli_args, tiny_cfg, tiny_shards
    from tests.train.test_distributed import _rows, torchrun

    data = tiny_shards(tmp_path / "shards")
    ref = train(tiny_cfg(data, "lstm", steps=12, ckpt_every=5, threads=1, order="stream"),
                tmp_path / "one")  # fmt: skip
    run = tmp_path / "two"
    args = cli_args(data, run, "--model", "lstm", "--steps", "12", "--ckpt-every", "5",
                    "--lr", "3e-3", "--warmup", "5", "--log-every", "1", "--order", "stream")  # fmt: skip
    proc = torchrun(args, env={"SCALINGLAB_TEST_CRASH": "1:7"}, restarts=1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed" in proc.stderr and "step-00000005" in proc.stderr
    one, two = _rows(tmp_path / "one"), _rows(run)
    assert [r["step"] for r in two] == [*range(1, 13), 12]
    for a, b in zip(one[:-1], two[:-1], strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-4, (a, b)
    got = json.loads((run / "result.json").read_text())
    assert abs(got["val_loss"] - ref["val_loss"]) <= 1e-4
